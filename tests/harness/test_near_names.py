"""A troubleshooter's typo in ``--workload NS/SA`` (or harness.yaml): the ServiceAccount or namespace that does not
exist is named with the existing one it is close to, before the commands that would create it."""

from __future__ import annotations

import time
from typing import Any

from harness.checks.context import WorkloadContext
from harness.checks.serviceaccount import sa_exists
from harness.collect.kube import collect_service_account
from harness.collect.kube_api import KubeError
from harness.config import WorkloadConfig
from harness.facts import ClusterFacts, IdentityFacts, KubeFailure, ServiceAccountFacts, WorkloadFacts


class Cluster:
    """Namespaces and their ServiceAccounts; ``refuse`` lists what the harness may not list."""

    def __init__(self, accounts: dict[str, list[str]], refuse: tuple[str, ...] = ()) -> None:
        self.accounts, self.refuse = accounts, refuse

    def _refused(self, what: str) -> None:
        if what in self.refuse:
            raise KubeError(KubeFailure(403, "Forbidden", f"{what} is forbidden"))

    def service_account(self, namespace: str, name: str) -> dict[str, Any] | None:
        return {"metadata": {"name": name}} if name in self.accounts.get(namespace, []) else None

    def namespace(self, name: str) -> dict[str, Any] | None:
        return {"metadata": {"name": name}} if name in self.accounts else None

    def pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        return None

    def list_service_accounts(self, namespace: str | None) -> list[dict[str, Any]]:
        self._refused("serviceaccounts")
        return [{"metadata": {"name": name, "namespace": ns}} for ns, names in self.accounts.items()
                for name in names if namespace in (None, ns)]

    def list_objects(self, group: str, version: str, plural: str) -> list[dict[str, Any]]:
        self._refused(plural)
        assert (group, version, plural) == ("", "v1", "namespaces")
        return [{"metadata": {"name": name}} for name in self.accounts]


CLUSTER = {"finance": ["default", "backend-sa"], "orders": ["default", "orders-sa"], "kube-system": ["default"]}


def near(namespace: str, name: str, refuse: tuple[str, ...] = ()) -> list[str]:
    return collect_service_account(Cluster(CLUSTER, refuse), namespace, name).near_names  # type: ignore[arg-type]


def test_a_typo_in_the_name_or_the_namespace_finds_the_existing_service_account() -> None:
    assert near("finance", "backend") == ["finance/backend-sa"]
    assert near("fnance", "backend-sa") == ["finance/backend-sa"]
    assert near("order", "orders-sa") == ["orders/orders-sa"]
    assert near("fnance", "backend") == ["finance/backend-sa"]  # both wrong, both close
    assert near("finance", "zzz") == [] and near("nowhere", "zzz") == []
    assert near("finance", "backend", refuse=("serviceaccounts",)) == []  # refused: nothing suggested
    assert near("fnance", "backend-sa", refuse=("namespaces",)) == []
    assert collect_service_account(Cluster(CLUSTER), "finance", "backend-sa").near_names == []  # type: ignore[arg-type]


def test_a_service_account_of_that_name_in_another_namespace_is_named_rather_than_made_again() -> None:
    """--workload default/backend-sa (or orders/...) for finance's: the namespace was mistaken, and the
    ServiceAccount the fix would create there is not the workload's; a close name in the namespace comes first."""
    assert near("orders", "backend-sa") == ["finance/backend-sa"]
    assert near("kube-system", "orders-sa") == ["orders/orders-sa"]
    assert near("orders", "orders") == ["orders/orders-sa"]  # close in its own namespace: that one alone
    assert near("kube-system", "nothing-like-it") == []
    assert near("orders", "backend-sa", refuse=("serviceaccounts",)) == []
    finding = _check(ServiceAccountFacts("orders", "backend-sa", namespace_found=True,
                                         near_names=near("orders", "backend-sa")))
    assert finding.message == "ServiceAccount orders/backend-sa not found; did you mean finance/backend-sa?"
    assert finding.fix_lines()[0].startswith("# finance/backend-sa exists: if that is the workload, correct "
                                             "--workload")


def _check(sa: ServiceAccountFacts) -> Any:
    facts = WorkloadFacts(f"{sa.namespace}/{sa.name}", sa.namespace, sa.name, time.time(), sa, IdentityFacts())
    ctx = WorkloadContext(facts, WorkloadConfig(namespace=sa.namespace, service_account=sa.name),
                          ClusterFacts(time.time()), None, time.time())
    (finding,) = sa_exists(ctx).findings
    return finding


def test_the_finding_names_the_service_account_meant_before_creating_the_one_asked_for() -> None:
    finding = _check(ServiceAccountFacts("fnance", "backend-sa", namespace_found=False,
                                         near_names=["finance/backend-sa"]))
    assert finding.code == "NAMESPACE_NOT_FOUND"
    assert finding.message == "namespace fnance not found; did you mean finance/backend-sa?"
    assert finding.fix_lines()[:2] == [
        "# finance/backend-sa exists: if that is the workload, correct --workload (or harness.yaml's entry) and run "
        "again; if fnance/backend-sa is to be made:",
        "kubectl create namespace fnance",
    ]
    finding = _check(ServiceAccountFacts("finance", "backend", namespace_found=True, near_names=["finance/backend-sa"]))
    assert finding.code == "SA_NOT_FOUND"
    assert finding.message == "ServiceAccount finance/backend not found; did you mean finance/backend-sa?"
    assert finding.fix_lines()[1] == "kubectl create serviceaccount -n finance backend"
    finding = _check(ServiceAccountFacts("finance", "zzz", namespace_found=True))
    assert finding.message == "ServiceAccount finance/zzz not found"
    assert finding.fix_lines()[0] == "kubectl create serviceaccount -n finance zzz"


def test_a_controllers_name_given_as_the_workload_names_the_service_account_it_runs_as() -> None:
    """--workload orders/orders-api (the Deployment, as kubectl get deploy lists it), or the name of a StatefulSet,
    DaemonSet, Job or CronJob: its ServiceAccount is what to verify, not a new ServiceAccount of the controller's
    name. Each kind is listed by name, as the RBAC manifests render writes allows (list, no get)."""
    templates = {  # (group, plural) -> name -> the pod spec's path from the object's spec, and the pod spec
        ("apps", "deployments"): {"orders-api": {"template": {"spec": {"serviceAccountName": "orders-sa"}}},
                                  "worker": {"template": {"spec": {}}}},  # names none: runs as default
        ("apps", "statefulsets"): {"ledger": {"template": {"spec": {"serviceAccountName": "ledger-sa"}}}},
        ("apps", "daemonsets"): {"node-agent": {"template": {"spec": {"serviceAccount": "agent-sa"}}}},
        ("batch", "jobs"): {"migrate": {"template": {"spec": {"serviceAccountName": "migrate-sa"}}}},
        ("batch", "cronjobs"): {"nightly": {"jobTemplate": {"spec": {"template": {"spec": {
            "serviceAccountName": "batch-sa"}}}}}},
    }

    class WithControllers(Cluster):
        """Controllers as the RBAC manifests render writes lets the harness see them: listed, never read (get)."""

        def list_namespaced(self, group: str, version: str, plural: str, namespace: str,
                            field_selector: str = "") -> list[dict[str, Any]]:
            self._refused(plural)
            assert version == "v1" and field_selector.startswith("metadata.name=")
            name = field_selector.removeprefix("metadata.name=")
            found = templates[(group, plural)].get(name)
            return [] if found is None else [{"metadata": {"name": name}, "spec": found}]

    def read(name: str, refuse: tuple[str, ...] = (), controller_too: bool = True) -> ServiceAccountFacts:
        return collect_service_account(WithControllers(CLUSTER, refuse), "orders", name,  # type: ignore[arg-type]
                                       controller_too=controller_too)

    def runs_as(facts: ServiceAccountFacts) -> tuple[str | None, str | None]:
        return facts.controller_kind, facts.controller_runs_as

    assert runs_as(read("orders-api")) == ("Deployment", "orders-sa")
    assert runs_as(read("worker")) == ("Deployment", "default")
    assert runs_as(read("ledger")) == ("StatefulSet", "ledger-sa")
    assert runs_as(read("node-agent")) == ("DaemonSet", "agent-sa")  # the deprecated serviceAccount field
    assert runs_as(read("migrate")) == ("Job", "migrate-sa")
    assert runs_as(read("nightly")) == ("CronJob", "batch-sa")
    assert runs_as(read("nothing")) == (None, None)
    assert runs_as(read("orders-api", refuse=("deployments",))) == (None, None)  # refused: as before
    # one kind refused is no answer for the others
    assert runs_as(read("ledger", refuse=("deployments",))) == ("StatefulSet", "ledger-sa")
    assert runs_as(read("orders-api", controller_too=False)) == (None, None)  # --pod's ServiceAccount: not read
    finding = _check(read("orders-api"))
    assert finding.code == "SA_NOT_FOUND"
    assert finding.message == ("ServiceAccount orders/orders-api not found; orders/orders-api is a Deployment, its "
                               "pods run as ServiceAccount orders-sa: --workload orders/orders-sa")
    assert finding.fix_lines()[:2] == [
        "# verify Deployment orders/orders-api as its ServiceAccount: --workload orders/orders-sa (or "
        "service_account: orders-sa in harness.yaml's entry); if ServiceAccount orders/orders-api is to be made:",
        "kubectl create serviceaccount -n orders orders-api",
    ]
    finding = _check(read("nightly"))
    assert finding.message == ("ServiceAccount orders/nightly not found; orders/nightly is a CronJob, its pods run as "
                               "ServiceAccount batch-sa: --workload orders/batch-sa")
    assert finding.fix_lines()[0].startswith("# verify CronJob orders/nightly as its ServiceAccount: --workload "
                                             "orders/batch-sa (or service_account: batch-sa in harness.yaml's entry)")


def test_a_pods_name_given_as_the_workload_names_the_pod_option_before_creating_a_service_account() -> None:
    """By hand in the lab: --workload finance/backend-s4bkdh9bvk-4qclc (the pod's name, as kubectl get pods lists
    it) printed 'kubectl create serviceaccount -n finance backend-s4bkdh9bvk-4qclc' and nothing else. A name of a
    Deployment's pod's shape (NAME-HASH-SUFFIX, Kubernetes' vowel-free alphabet) now names --pod and how to read
    the ServiceAccount the pod runs as, before the create; ServiceAccount names made of words keep the create."""
    finding = _check(ServiceAccountFacts("finance", "backend-s4bkdh9bvk-4qclc", namespace_found=True))
    assert finding.code == "SA_NOT_FOUND"
    assert finding.message == (
        "ServiceAccount finance/backend-s4bkdh9bvk-4qclc not found; finance/backend-s4bkdh9bvk-4qclc looks like a pod "
        "of Deployment backend (NAME-HASH-SUFFIX): --pod finance/backend-s4bkdh9bvk-4qclc checks that pod, then its "
        "ServiceAccount")
    assert finding.fix_lines()[:4] == [
        "# to check pod finance/backend-s4bkdh9bvk-4qclc: --pod finance/backend-s4bkdh9bvk-4qclc; the ServiceAccount "
        "it runs as, for --workload:",
        "kubectl get pod -n finance backend-s4bkdh9bvk-4qclc -o 'jsonpath={.spec.serviceAccountName}'",
        "# if ServiceAccount finance/backend-s4bkdh9bvk-4qclc is to be made:",
        "kubectl create serviceaccount -n finance backend-s4bkdh9bvk-4qclc",
    ]
    assert _check(ServiceAccountFacts("orders", "orders-api-7x2p4p55k4-p6w8n", namespace_found=True)).message.endswith(
        "looks like a pod of Deployment orders-api (NAME-HASH-SUFFIX): --pod orders/orders-api-7x2p4p55k4-p6w8n "
        "checks that pod, then its ServiceAccount")
    for name in ("backend-sa", "payments-worker-sa", "web-0", "batch-runner-admin", "a-bcdfgh-2zz"):
        assert "looks like a pod" not in _check(ServiceAccountFacts("finance", name, namespace_found=True)).message


def test_a_statefulset_or_job_pods_name_given_as_the_workload_is_resolved_to_its_controller() -> None:
    """By hand in the lab (a StatefulSet ledger and a Job migrate under backend-sa): --workload finance/ledger-0 and
    --workload finance/migrate-wr7pl printed only 'kubectl create serviceaccount -n finance ledger-0': neither
    name has a Deployment pod's shape. The pod of that name is now read, and the finding names the controller it
    was resolved to and the ServiceAccount to verify; no such pod, or one the harness may not read: as before."""
    pods = {
        "ledger-0": {"metadata": {"name": "ledger-0", "ownerReferences": [
            {"kind": "StatefulSet", "name": "ledger", "controller": True}]}, "spec": {"serviceAccountName": "ledger-sa"}},
        "migrate-x7k2p": {"metadata": {"name": "migrate-x7k2p", "ownerReferences": [
            {"kind": "Job", "name": "migrate", "controller": True}]}, "spec": {"serviceAccountName": "backend-sa"}},
        "backend-s4bkdh9bvk-4qclc": {"metadata": {
            "name": "backend-s4bkdh9bvk-4qclc", "labels": {"pod-template-hash": "s4bkdh9bvk"},
            "ownerReferences": [{"kind": "ReplicaSet", "name": "backend-s4bkdh9bvk", "controller": True}]},
            "spec": {"serviceAccountName": "backend-sa"}},
        "debug": {"metadata": {"name": "debug"}, "spec": {}},
    }

    class WithPods(Cluster):
        def list_namespaced(self, group: str, version: str, plural: str, namespace: str,
                            field_selector: str = "") -> list[dict[str, Any]]:
            return []  # no controller of the name

        def pod(self, namespace: str, name: str) -> dict[str, Any] | None:
            self._refused("pods")
            return pods.get(name) if namespace == "finance" else None

    def read(name: str, refuse: tuple[str, ...] = ()) -> ServiceAccountFacts:
        return collect_service_account(WithPods(CLUSTER, refuse), "finance", name,  # type: ignore[arg-type]
                                       controller_too=True)

    assert read("ledger-0").pod_named == {"kind": "StatefulSet", "name": "ledger", "service_account": "ledger-sa"}
    assert read("migrate-x7k2p").pod_named == {"kind": "Job", "name": "migrate", "service_account": "backend-sa"}
    assert read("backend-s4bkdh9bvk-4qclc").pod_named == {"kind": "Deployment", "name": "backend",
                                                          "service_account": "backend-sa"}
    assert read("debug").pod_named == {"kind": "Pod", "name": "debug", "service_account": "default"}
    assert read("ledger-9").pod_named is None and read("ledger-0", refuse=("pods",)).pod_named is None

    finding = _check(read("ledger-0"))
    assert finding.code == "SA_NOT_FOUND"
    assert finding.message == (
        "ServiceAccount finance/ledger-0 not found; finance/ledger-0 is a pod (made by StatefulSet ledger) that runs "
        "as ServiceAccount ledger-sa: --workload finance/ledger-sa verifies its ServiceAccount, --pod finance/ledger-0 "
        "that pod")
    assert finding.evidence["pod_of_kind"] == "StatefulSet" and finding.evidence["pod_runs_as"] == "ledger-sa"
    assert finding.fix_lines()[:2] == [
        "# verify the ServiceAccount of pod finance/ledger-0 (StatefulSet ledger): --workload finance/ledger-sa (or "
        "service_account: ledger-sa in harness.yaml's entry), or the pod itself: --pod finance/ledger-0; if "
        "ServiceAccount finance/ledger-0 is to be made:",
        "kubectl create serviceaccount -n finance ledger-0",
    ]
    assert "made by Job migrate" in _check(read("migrate-x7k2p")).message
    # a Deployment's pod read from the API server: named for certain, not by its shape
    assert "is a pod (made by Deployment backend) that runs as ServiceAccount backend-sa" in _check(
        read("backend-s4bkdh9bvk-4qclc")).message
    assert "made by no controller" in _check(read("debug")).message
    assert _check(read("ledger-9")).message == "ServiceAccount finance/ledger-9 not found"


def test_the_name_of_a_pod_replaced_since_is_resolved_to_the_controller_its_shape_fits() -> None:
    """--workload NS/NAME with the name of a pod that is gone (replaced since, as a troubleshooter types it from an
    old log) was resolved to its controller only by a Deployment pod's shape, whether or not that Deployment was
    there. Each shape a controller names its pods by (StatefulSet NAME-ORDINAL, DaemonSet or Job NAME-XXXXX, a
    CronJob's Job NAME-TIME-XXXXX, Deployment NAME-HASH-XXXXX) is now looked for among the controllers there: one
    found names its ServiceAccount; several are listed in one line; a list refused says nothing, as before."""
    def spec(account: str, kind: str = "") -> dict[str, Any]:
        pod = {"template": {"spec": {"serviceAccountName": account}}}
        return {"jobTemplate": {"spec": pod}} if kind == "CronJob" else pod

    cronjob_ref = [{"kind": "CronJob", "name": "nightly", "controller": True}]
    controllers = {  # plural -> name -> (spec, ownerReferences)
        "deployments": {"backend": (spec("backend-sa"), [])},
        "statefulsets": {"ledger": (spec("ledger-sa"), [])},
        "daemonsets": {"node-agent": (spec("agent-sa"), []), "agent": (spec("agent-sa"), [])},
        "jobs": {"migrate": (spec("backend-sa"), []), "nightly-29410": (spec("batch-sa"), cronjob_ref),
                 "agent": (spec("batch-sa"), [])},
        "cronjobs": {"nightly": (spec("batch-sa", "CronJob"), [])},
    }

    class Replaced(Cluster):
        """No pod of the name (pod() is None): only controllers, listed by name."""

        def list_namespaced(self, group: str, version: str, plural: str, namespace: str,
                            field_selector: str = "") -> list[dict[str, Any]]:
            self._refused(plural)
            name = field_selector.removeprefix("metadata.name=")
            found = controllers[plural].get(name) if namespace == "finance" else None
            return [] if found is None else [{"metadata": {"name": name, "ownerReferences": found[1]},
                                              "spec": found[0]}]

    def read(name: str, refuse: tuple[str, ...] = ()) -> ServiceAccountFacts:
        return collect_service_account(Replaced(CLUSTER, refuse), "finance", name,  # type: ignore[arg-type]
                                       controller_too=True)

    def shaped(name: str) -> list[tuple[str, str, str]] | None:
        found = read(name).pod_shaped_of
        return None if found is None else [(c["kind"], c["name"], c["service_account"]) for c in found]

    assert shaped("ledger-3") == [("StatefulSet", "ledger", "ledger-sa")]
    assert shaped("node-agent-x7k2p") == [("DaemonSet", "node-agent", "agent-sa")]
    assert shaped("migrate-wr7pl") == [("Job", "migrate", "backend-sa")]
    assert shaped("backend-s4bkdh9bvk-4qclc") == [("Deployment", "backend", "backend-sa")]
    # a CronJob's Job still there is named with its CronJob, once; with the Job gone, the CronJob
    assert read("nightly-29410-k2p4q").pod_shaped_of == [{"kind": "Job", "name": "nightly-29410", "shape": "NAME-XXXXX",
                                                          "service_account": "batch-sa", "cronjob": "nightly"}]
    assert shaped("nightly-29999-k2p4q") == [("CronJob", "nightly", "batch-sa")]
    assert shaped("agent-x7k2p") == [("DaemonSet", "agent", "agent-sa"), ("Job", "agent", "batch-sa")]
    assert shaped("nothing-x7k2p") == [] and shaped("payments") == []
    # a kind the name's shape fits refused: no claim that the other is the one; a kind it cannot fit: no matter
    assert read("agent-x7k2p", refuse=("jobs",)).pod_shaped_of is None
    assert shaped("ledger-3") == [("StatefulSet", "ledger", "ledger-sa")] == [
        (c["kind"], c["name"], c["service_account"]) for c in read("ledger-3", refuse=("jobs",)).pod_shaped_of or []]

    finding = _check(read("ledger-3"))
    assert finding.code == "SA_NOT_FOUND"
    assert finding.message == (
        "ServiceAccount finance/ledger-3 not found; no pod finance/ledger-3 is there now, but its name has the shape "
        "of a pod of StatefulSet ledger (NAME-ORDINAL; one replaced since?), whose pods run as ServiceAccount "
        "ledger-sa: --workload finance/ledger-sa")
    assert finding.evidence["pod_of_kind"] == "StatefulSet" and finding.evidence["pod_runs_as"] == "ledger-sa"
    assert finding.fix_lines()[:2] == [
        "# verify the ServiceAccount of StatefulSet ledger's pods: --workload finance/ledger-sa (or service_account: "
        "ledger-sa in harness.yaml's entry); if ServiceAccount finance/ledger-3 is to be made:",
        "kubectl create serviceaccount -n finance ledger-3"]
    assert "a pod of Job nightly-29410 of CronJob nightly (NAME-XXXXX" in _check(read("nightly-29410-k2p4q")).message
    # a Deployment's pod's shape, the Deployment there: its ServiceAccount, not only --pod of a pod that is gone
    assert _check(read("backend-s4bkdh9bvk-4qclc")).message.endswith(
        "a pod of Deployment backend (NAME-HASH-XXXXX; one replaced since?), whose pods run as ServiceAccount "
        "backend-sa: --workload finance/backend-sa")
    ambiguous = _check(read("agent-x7k2p"))
    assert ambiguous.message == (
        "ServiceAccount finance/agent-x7k2p not found; no pod finance/agent-x7k2p is there now, and its name has the "
        "shape of a pod of several controllers here, which one is not known: DaemonSet agent (NAME-XXXXX, runs as "
        "agent-sa), Job agent (NAME-XXXXX, runs as batch-sa)")
    assert ambiguous.fix_lines()[0] == (
        "# verify the ServiceAccount of the one meant: --workload finance/agent-sa or --workload finance/batch-sa; if "
        "ServiceAccount finance/agent-x7k2p is to be made:")
    assert _check(read("nothing-x7k2p")).message == "ServiceAccount finance/nothing-x7k2p not found"


def test_the_existing_pod_check_names_the_controller_its_pod_was_resolved_to() -> None:
    """--pod finance/ledger-0 passed with 'pod finance/ledger-0 found (phase Running, ...)': which controller the
    harness took it for (and restarts or patches in its fixes) is now in the line."""
    from harness.checks.pod import pod_exists
    from harness.facts import PodFacts

    sa = ServiceAccountFacts("finance", "backend-sa", found=True, namespace_found=True)
    pod = PodFacts("finance", "ledger-0", existing=True, created=True, phase="Running", pod={"metadata": {
        "name": "ledger-0", "ownerReferences": [{"kind": "StatefulSet", "name": "ledger", "controller": True}]}})
    facts = WorkloadFacts("finance/ledger-0", "finance", "backend-sa", time.time(), sa, IdentityFacts(), pod)
    ctx = WorkloadContext(facts, WorkloadConfig(namespace="finance", service_account="backend-sa"),
                          ClusterFacts(time.time()), None, time.time())
    outcome = pod_exists(ctx)
    assert outcome.status == "pass"
    assert outcome.message == ("pod finance/ledger-0 found (made by StatefulSet ledger, phase Running, service "
                               "account backend-sa)")


# ---------------------------------------------------------------- --pod NS/POD that is not there


def _pod_finding(namespace: str, name: str, namespace_pods: list[str], namespace_found: bool = True,
                 near_namespaces: list[str] | None = None) -> Any:
    from harness.checks.pod import pod_exists
    from harness.facts import PodFacts

    sa = ServiceAccountFacts(namespace, "default", namespace_found=namespace_found,
                             near_names=[f"{n}/default" for n in near_namespaces or []])
    pod = PodFacts(namespace, name, existing=True, namespace_pods=namespace_pods)
    facts = WorkloadFacts(f"{namespace}/{name}", namespace, "default", time.time(), sa, IdentityFacts(), pod)
    ctx = WorkloadContext(facts, WorkloadConfig(namespace=namespace, service_account="default"),
                          ClusterFacts(time.time()), None, time.time())
    outcome = pod_exists(ctx)
    assert outcome.status == "fail"
    (finding,) = outcome.findings
    assert finding.code == "POD_NOT_FOUND"
    return finding


def test_a_pod_a_rollout_replaced_is_named_with_the_pods_there_now() -> None:
    """--pod with a name copied from an earlier kubectl get pods (the Deployment rolled since, or a typo in the
    random suffix): 'not found' alone sent the person back to kubectl; the line now names the pods of the same
    ReplicaSet, else of the same Deployment, else a close spelling, and the --pod to use."""
    from harness.checks.pod import near_pod_names

    pods = ["backend-7d9f6c8b5-x2x2x", "backend-7d9f6c8b5-y3y3y", "backend-5c4b3a291-zzzzz", "orders-api-6b5-aaaaa",
            "web-0", "web-1", "nightly-28991234-q8v7z"]
    assert near_pod_names("backend-7d9f6c8b5-abcde", pods) == ["backend-7d9f6c8b5-x2x2x", "backend-7d9f6c8b5-y3y3y"]
    assert near_pod_names("backend-1111111-abcde", pods) == ["backend-7d9f6c8b5-x2x2x", "backend-7d9f6c8b5-y3y3y",
                                                              "backend-5c4b3a291-zzzzz"]
    assert near_pod_names("web-2", pods) == ["web-0", "web-1"]
    assert near_pod_names("orders-api-6b5-aaaab", pods) == ["orders-api-6b5-aaaaa"]
    assert near_pod_names("nothing-like-it", pods) == [] and near_pod_names("x", []) == []

    finding = _pod_finding("finance", "backend-7d9f6c8b5-abcde", pods)
    assert finding.message == (
        "pod finance/backend-7d9f6c8b5-abcde not found; its namespace has backend-7d9f6c8b5-x2x2x, "
        "backend-7d9f6c8b5-y3y3y (a rollout replaces a Deployment's pods: --pod finance/backend-7d9f6c8b5-x2x2x)")
    assert finding.fix_lines() == ["kubectl get pods -n finance"]
    # nothing like it there (another namespace?): where a pod of that name is, cluster-wide
    finding = _pod_finding("orders", "backend-7d9f6c8b5-abcde", ["orders-api-6b5-aaaaa"])
    assert finding.message == "pod orders/backend-7d9f6c8b5-abcde not found"
    assert finding.fix_lines() == ["kubectl get pods -n orders",
                                   "kubectl get pods -A --field-selector metadata.name=backend-7d9f6c8b5-abcde"]
    # a namespace that does not exist is named as such, with the close one
    finding = _pod_finding("fnance", "backend-7d9f6c8b5-abcde", [], namespace_found=False, near_namespaces=["finance"])
    assert finding.message == ("pod fnance/backend-7d9f6c8b5-abcde not found: namespace fnance does not exist; did you "
                               "mean finance?")


def test_a_controllers_name_given_as_the_pod_names_its_pods() -> None:
    """By hand in the lab: --pod finance/backend (the Deployment, as kubectl get deploy lists it) said only 'pod
    finance/backend not found' with no near name, though its pod backend-s4bkdh9bvk-4qclc was there. The pods a
    controller of that name made (a Deployment's, a StatefulSet's, a DaemonSet's or Job's) are now named, with
    the --pod to use; a pod of another controller that only shares the prefix is not one of them."""
    from harness.checks.pod import pods_of_controller

    pods = ["backend-s4bkdh9bvk-4qclc", "backend-sa-worker-7d9f6c8b5-x2x2x", "web-0", "web-1", "nightly-q8v7z",
            "backend-admin"]
    assert pods_of_controller("backend", pods) == ["backend-s4bkdh9bvk-4qclc"]
    assert pods_of_controller("web", pods) == ["web-0", "web-1"] and pods_of_controller("nightly", pods) == [
        "nightly-q8v7z"]
    assert pods_of_controller("backend-sa", pods) == [] and pods_of_controller("back", pods) == []
    finding = _pod_finding("finance", "backend", pods)
    assert finding.message == ("pod finance/backend not found; backend names the controller of pods "
                               "backend-s4bkdh9bvk-4qclc (--pod finance/backend-s4bkdh9bvk-4qclc)")
    assert finding.fix_lines() == ["kubectl get pods -n finance"]


def test_pod_whose_service_account_was_deleted_gets_it_back_with_the_client_id_the_pod_carries() -> None:
    """--pod of a pod whose ServiceAccount was deleted after the pod was made: SA_NOT_FOUND printed the annotate
    with '<client-id>' to fill in, though the pod carries the AZURE_CLIENT_ID the webhook took from that
    ServiceAccount's annotation; the annotate now names it (a paste recreates what was there)."""
    from harness.checks.serviceaccount import sa_exists
    from harness.facts import PodFacts

    guid = "b9b3ec24-ca37-428a-aad5-b3eaedee7d72"
    pod = {"metadata": {"name": "orphan"}, "spec": {"serviceAccountName": "tmp-sa", "containers": [
        {"name": "app", "env": [{"name": "AZURE_CLIENT_ID", "value": guid}]}]}}
    sa = ServiceAccountFacts("finance", "tmp-sa", namespace_found=True)
    facts = WorkloadFacts("finance/orphan", "finance", "tmp-sa", time.time(), sa, IdentityFacts(),
                          PodFacts("finance", "orphan", existing=True, created=True, pod=pod))
    ctx = WorkloadContext(facts, WorkloadConfig(namespace="finance", service_account="tmp-sa"),
                          ClusterFacts(time.time()), None, time.time())
    (finding,) = sa_exists(ctx).findings
    assert finding.code == "SA_NOT_FOUND"
    assert finding.fix_lines() == [
        "kubectl create serviceaccount -n finance tmp-sa",
        "# with the client id the webhook gave pod finance/orphan from it when the pod was made:",
        f"kubectl annotate serviceaccount -n finance tmp-sa azure.workload.identity/client-id={guid} --overwrite",
    ]


def test_a_service_accounts_name_given_as_the_pod_says_workload_checks_it() -> None:
    """By hand in the lab: --pod finance/backend-sa (the ServiceAccount, the name --workload takes) said 'its
    namespace has backend-hj6t2n58d7-6g5ts (a rollout replaces a Deployment's pods ...)', a pod that only shares
    the prefix. A ServiceAccount of that name is now named as such, with the --workload that checks it."""
    from harness.checks.pod import pod_exists
    from harness.facts import PodFacts

    sa = ServiceAccountFacts("finance", "default")
    pod = PodFacts("finance", "backend-sa", existing=True, namespace_pods=["backend-hj6t2n58d7-6g5ts"],
                   service_account_named=True)
    facts = WorkloadFacts("finance/backend-sa", "finance", "default", time.time(), sa, IdentityFacts(), pod)
    ctx = WorkloadContext(facts, WorkloadConfig(namespace="finance", service_account="default"),
                          ClusterFacts(time.time()), None, time.time())
    (finding,) = pod_exists(ctx).findings
    assert finding.code == "POD_NOT_FOUND"
    assert finding.message == ("pod finance/backend-sa not found; backend-sa is a ServiceAccount: --workload "
                               "finance/backend-sa checks it (--pod takes a pod's name, as listed by get pods)")
    assert finding.fix_lines() == ["kubectl get pods -n finance"]


def test_a_crash_looping_pod_is_named_as_such_above_its_service_accounts_chain() -> None:
    """By hand in the lab: --pod of a Deployment's pod in CrashLoopBackOff (its app exits 3) passed with 'pod ...
    found (..., phase Running, ...)', the one thing the troubleshooter came with left unsaid. The line now names
    the container that keeps stopping, says the chain below proves the ServiceAccount, not the app, and where the
    app says why; a container restarted once after a clean exit, or one running, is no crash."""
    from harness.checks.pod import crashing_containers, pod_exists
    from harness.facts import PodFacts

    status = {"phase": "Running", "containerStatuses": [
        {"name": "app", "restartCount": 1, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
         "lastState": {"terminated": {"exitCode": 3, "reason": "Error"}}},
        {"name": "sidecar", "restartCount": 0, "state": {"running": {}}}]}
    sa = ServiceAccountFacts("finance", "backend-sa", found=True, namespace_found=True)
    pod = PodFacts("finance", "crasher-gmnd579pnd-hpw26", existing=True, created=True, phase="Running", pod={
        "metadata": {"name": "crasher-gmnd579pnd-hpw26", "labels": {"pod-template-hash": "gmnd579pnd"},
                     "ownerReferences": [{"kind": "ReplicaSet", "name": "crasher-gmnd579pnd", "controller": True}]},
        "status": status})
    facts = WorkloadFacts("finance/crasher-gmnd579pnd-hpw26", "finance", "backend-sa", time.time(), sa,
                          IdentityFacts(), pod)
    ctx = WorkloadContext(facts, WorkloadConfig(namespace="finance", service_account="backend-sa"),
                          ClusterFacts(time.time()), None, time.time())
    outcome = pod_exists(ctx)
    assert outcome.status == "pass"
    assert outcome.message == (
        "pod finance/crasher-gmnd579pnd-hpw26 found, its container app (CrashLoopBackOff, last exit 3, 1 restart) "
        "keeps stopping (made by Deployment crasher, phase Running, service account backend-sa): the checks below "
        "prove Workload ID for its ServiceAccount; its last run's log (logs --previous) says why the app stops")
    assert outcome.evidence["crashing"] == ["app (CrashLoopBackOff, last exit 3, 1 restart)"]
    assert crashing_containers({"status": {"containerStatuses": [
        {"name": "app", "restartCount": 4, "state": {"running": {}}, "lastState": {"terminated": {"exitCode": 1}}}]}}
    ) == ["app (last exit 1, 4 restarts)"]
    assert crashing_containers({"status": {"containerStatuses": [
        {"name": "app", "restartCount": 1, "state": {"running": {}}, "lastState": {"terminated": {"exitCode": 0}}}]}}
    ) == []
