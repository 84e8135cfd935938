"""Unit tests of the pure parts behind quota, Gatekeeper and scheduling in the lab: quantities as apimachinery
prints them, the quota evaluator's texts and usage, the scheduler's filter words, constraint matching."""

from __future__ import annotations

from typing import Any

import pytest

from lab.kube import errors, gatekeeper, quota, scheduler
from lab.kube.quantity import Quantity, QuantityError
from lab.kube.resources import ensure_builtin_types
from lab.kube.store import Store


@pytest.mark.parametrize(("text", "printed"), [
    ("1", "1"), ("500m", "500m"), ("1.5", "1500m"), ("1000", "1k"), ("2048", "2048"), ("2Ki", "2Ki"),
    ("1536Ki", "1536Ki"), ("1024", "1024"), ("128Mi", "128Mi"), ("0.1", "100m"), ("1e3", "1e3"),
    ("0.0000000001", "1n"), ("0", "0"), ("100M", "100M"),
])
def test_quantities_print_as_apimachinery_does(text: str, printed: str) -> None:
    assert str(Quantity.parse(text)) == printed


def test_quantity_sums_keep_the_first_non_zero_format_and_bad_text_is_refused() -> None:
    assert str(Quantity.count(0) + Quantity.parse("32Mi")) == "32Mi"
    assert str(Quantity.parse("10m") + Quantity.parse("1")) == "1010m"
    assert str(Quantity.parse("1Ki") + Quantity.parse("100")) == "1124"  # not a whole number of Ki
    for bad in ("", "abc", "1.2.3", "5Xi", True):
        with pytest.raises(QuantityError):
            Quantity.parse(bad)


def container(name: str, requests: dict[str, str] | None = None, limits: dict[str, str] | None = None,
              **extra: Any) -> dict[str, Any]:
    resources = {key: value for key, value in (("requests", requests), ("limits", limits)) if value}
    return {"name": name, "image": "x", "resources": resources, **extra}


def pod(name: str = "p", containers: list[dict[str, Any]] | None = None,
        init: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"metadata": {"name": name, "namespace": "ns"},
                            "spec": {"containers": containers or [container("main")], **spec},
                            "status": {"phase": "Pending"}}
    if init:
        body["spec"]["initContainers"] = init
    return body


def test_must_specify_lists_each_resource_with_its_containers_sorted() -> None:
    spec_pod = pod(containers=[container("web", limits={"cpu": "1"}), container("app")],
                   init=[container("setup")])
    required = {"limits.cpu", "requests.memory", "pods"}
    assert quota.pod_constraints(required, spec_pod) == (
        "must specify limits.cpu for: app,setup; requests.memory for: app,setup,web")
    # requests default to limits (API defaulting): a limit alone satisfies the request
    limited = pod(containers=[container("a", limits={"cpu": "1"})])
    assert quota.pod_constraints({"requests.cpu"}, limited) is None


def test_pod_usage_sums_containers_maxes_init_containers_and_adds_sidecars() -> None:
    usage = quota.pod_usage(pod(
        containers=[container("a", requests={"cpu": "100m"}), container("b", requests={"cpu": "200m"})],
        init=[container("big-init", requests={"cpu": "1"}),
              container("sidecar", requests={"cpu": "50m"}, restartPolicy="Always")]))
    assert {name: str(q) for name, q in usage.items()} == {
        "count/pods": "1", "pods": "1", "cpu": "1", "requests.cpu": "1"}
    finished = pod(containers=[container("a", requests={"cpu": "1"})])
    finished["status"]["phase"] = "Succeeded"
    assert {name: str(q) for name, q in quota.pod_usage(finished).items()} == {"count/pods": "1"}


def quota_store(hard: dict[str, str], used: dict[str, str] | None, **spec: Any) -> Store:
    store = Store()
    ensure_builtin_types(store)
    store.create(store.type_for("", "namespaces"), {"metadata": {"name": "ns"}})
    status = {"hard": hard, **({"used": used} if used is not None else {})}
    body = {"metadata": {"name": "q"}, "spec": {"hard": hard, **spec}, "status": status}
    store.create(store.type_for("", "resourcequotas"), body, namespace="ns")
    return store


def admit(store: Store, body: dict[str, Any], plural: str = "pods") -> None:
    quota.admit(store, store.type_for("", plural), body, "ns")


def test_quota_admission_texts_and_charge() -> None:
    store = quota_store({"requests.cpu": "1", "pods": "3"}, {"requests.cpu": "800m", "pods": "1"})
    with pytest.raises(errors.ApiError) as over:
        admit(store, pod("big", containers=[container("a", requests={"cpu": "500m"})]))
    assert (over.value.code, over.value.reason) == (403, "Forbidden")
    assert over.value.message == ('pods "big" is forbidden: exceeded quota: q, requested: requests.cpu=500m, '
                                  "used: requests.cpu=800m, limited: requests.cpu=1")
    assert over.value.details == {"kind": "pods", "name": "big"}
    admit(store, pod("small", containers=[container("a", requests={"cpu": "100m"})]))
    charged = store.get(store.type_for("", "resourcequotas"), "ns", "q")["status"]["used"]
    assert charged == {"pods": "2", "requests.cpu": "900m"}


def test_quota_without_usage_stats_and_scopes_and_other_kinds() -> None:
    unknown = quota_store({"pods": "3"}, None)
    with pytest.raises(errors.ApiError) as waiting:
        admit(unknown, pod("early"))
    assert waiting.value.message == 'pods "early" is forbidden: status unknown for quota: q, resources: pods'
    scoped = quota_store({"pods": "0"}, {"pods": "0"}, scopes=["NotBestEffort"])
    admit(scoped, pod("best-effort"))  # the scope does not match: not counted
    with pytest.raises(errors.ApiError):
        admit(scoped, pod("burstable", containers=[container("a", requests={"memory": "1Mi"})]))
    counted = quota_store({"count/configmaps": "0"}, {"count/configmaps": "0"})
    with pytest.raises(errors.ApiError) as configmap:
        admit(counted, {"metadata": {"name": "cm"}}, "configmaps")
    assert configmap.value.message == (
        'configmaps "cm" is forbidden: exceeded quota: q, requested: count/configmaps=1, '
        "used: count/configmaps=0, limited: count/configmaps=0")


def test_quota_status_follows_the_namespace() -> None:
    store = quota_store({"pods": "5", "count/pods": "5", "limits.memory": "1Gi"}, None)
    pods = store.type_for("", "pods")
    store.create(pods, pod("a", containers=[container("a", limits={"memory": "128Mi"})]), namespace="ns")
    done = pod("b")
    done["status"]["phase"] = "Failed"
    store.create(pods, done, namespace="ns")
    quota.sync_namespace(store, "ns")
    status = store.get(store.type_for("", "resourcequotas"), "ns", "q")["status"]
    assert status == {"hard": {"count/pods": "5", "limits.memory": "1Gi", "pods": "5"},
                      "used": {"count/pods": "2", "limits.memory": "128Mi", "pods": "1"}}
    synced = store.get(store.type_for("", "resourcequotas"), "ns", "q")
    assert quota.namespace_to_sync(("", "resourcequotas"), synced) is None


NODE = {"metadata": {"name": "n1", "labels": {"kubernetes.io/os": "linux", "agentpool": "nodepool1"}},
        "spec": {}}
NO_PREEMPTION = "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."


def test_scheduler_words_for_taints_cordon_and_selectors() -> None:
    taints = [{"key": "CriticalAddonsOnly", "value": "true", "effect": "NoSchedule"},
              {"key": "soft", "effect": "PreferNoSchedule"}]
    tainted = {**NODE, "spec": {"taints": taints}}
    assert scheduler.unschedulable_message(pod(), [tainted]) == (
        "0/1 nodes are available: 1 node(s) had untolerated taint {CriticalAddonsOnly: true}. "
        + NO_PREEMPTION)
    tolerant = pod(tolerations=[{"key": "CriticalAddonsOnly", "operator": "Exists"}])
    assert scheduler.unschedulable_message(tolerant, [tainted]) is None
    everything = pod(tolerations=[{"operator": "Exists"}])
    assert scheduler.unschedulable_message(everything, [{**tainted, "spec": {**tainted["spec"],
                                                                            "unschedulable": True}}]) is None
    wrong_effect = pod(tolerations=[{"key": "CriticalAddonsOnly", "operator": "Exists",
                                     "effect": "NoExecute"}])
    assert scheduler.unschedulable_message(wrong_effect, [tainted]) is not None
    cordoned = {**tainted, "spec": {**tainted["spec"], "unschedulable": True}}
    assert scheduler.unschedulable_message(pod(), [cordoned]) == (
        "0/1 nodes are available: 1 node(s) were unschedulable. " + NO_PREEMPTION)
    assert scheduler.unschedulable_message(pod(nodeSelector={"kubernetes.io/os": "linux"}), [NODE]) is None
    arm64 = {"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["arm64"]}]}
    arm = pod(affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [arm64]}}})
    assert scheduler.unschedulable_message(arm, [NODE]) == (
        "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. " + NO_PREEMPTION)
    assert scheduler.fit_error(["b reason", "a reason", "b reason"]) == (
        "0/3 nodes are available: 1 a reason, 2 b reason. preemption: 0/3 nodes are available: "
        "3 Preemption is not helpful for scheduling.")


def gatekeeper_store(*constraints: dict[str, Any]) -> Store:
    store = Store()
    ensure_builtin_types(store)
    gatekeeper.install(store, "", "2026-01-01T00:00:00Z")
    ensure_builtin_types(store)  # serves the constraint CRD, as the CRD controller does
    for item in constraints:
        store.create(gatekeeper.constraint_type(store), item)
    return store


def test_gatekeeper_joins_denials_keeps_warnings_and_skips_ignored_namespaces() -> None:
    warn = gatekeeper.constraint("b-warn", "ns", "prefer limits")
    warn["spec"]["enforcementAction"] = "warn"
    store = gatekeeper_store(gatekeeper.constraint("a-deny", "ns", "no"),
                             gatekeeper.constraint("c-deny", "ns", "never"),
                             warn, gatekeeper.constraint("other", "elsewhere", "not here"))
    pods = store.type_for("", "pods")
    with pytest.raises(errors.ApiError) as denied:
        gatekeeper.admit(store, pods, "ns", {})
    assert (denied.value.code, denied.value.reason, denied.value.details) == (403, "Forbidden", None)
    assert denied.value.message == ('admission webhook "validation.gatekeeper.sh" denied the request: '
                                    "[a-deny] no\n[c-deny] never")
    assert gatekeeper.admit(store, pods, "ns", {gatekeeper.IGNORE_LABEL: "yes"}) == []
    assert gatekeeper.admit(store, store.type_for("", "configmaps"), "ns", {}) == []
    only_warn = gatekeeper_store(warn)
    assert gatekeeper.admit(only_warn, only_warn.type_for("", "pods"), "ns", {}) == ["[b-warn] prefer limits"]
    assert gatekeeper.clear(only_warn) == ["b-warn"]
    assert gatekeeper.admit(only_warn, only_warn.type_for("", "pods"), "ns", {}) == []


def test_gatekeeper_allowed_repos_refuses_each_container_whose_image_starts_with_no_repo() -> None:
    """gatekeeper-library's allowedrepos Rego: a violation per container, initContainer and ephemeralContainer
    whose image starts with none of parameters.repos, the repos printed as OPA's sprintf %v prints an array."""
    store = gatekeeper_store()
    rt = store.type_for(gatekeeper.CONSTRAINT_GROUP, gatekeeper.ALLOWED_REPOS_PLURAL)
    store.create(rt, gatekeeper.allowed_repos_constraint("repos", "ns", ["docker.io/library/", "myacr.azurecr.io/"]))
    pods = store.type_for("", "pods")
    allowed = {"spec": {"containers": [{"name": "app", "image": "myacr.azurecr.io/app:1"}]}}
    assert gatekeeper.admit(store, pods, "ns", {}, allowed) == []
    assert gatekeeper.admit(store, pods, "elsewhere", {}, {"spec": {"containers": [{"name": "a", "image": "x"}]}}) \
        == []
    refused = {"spec": {"initContainers": [{"name": "init", "image": "busybox"}],
                        "containers": [{"name": "probe", "image": "mcr.microsoft.com/azurelinux/base/python:3.12"},
                                       {"name": "app", "image": "docker.io/library/python:3.12"}]}}
    with pytest.raises(errors.ApiError) as denied:
        gatekeeper.admit(store, pods, "ns", {}, refused)
    assert denied.value.message == (
        'admission webhook "validation.gatekeeper.sh" denied the request: '
        '[repos] container <probe> has an invalid image repo <mcr.microsoft.com/azurelinux/base/python:3.12>, '
        'allowed repos are ["docker.io/library/", "myacr.azurecr.io/"]\n'
        '[repos] initContainer <init> has an invalid image repo <busybox>, allowed repos are '
        '["docker.io/library/", "myacr.azurecr.io/"]')
    assert [(c["name"], c["kind"], c["repos"]) for c in gatekeeper.constraints(store)] == [
        ("repos", "K8sAllowedRepos", ["docker.io/library/", "myacr.azurecr.io/"])]
    assert gatekeeper.clear(store) == ["repos"]
    assert gatekeeper.admit(store, pods, "ns", {}, refused) == []


def test_gatekeeper_container_limits_wants_cpu_and_memory_limits_within_the_maxima() -> None:
    """gatekeeper-library's containerlimits Rego over containers and initContainers: no limits at all is one
    violation; a missing cpu (unless cpu is "-1") or memory limit, and a limit above the maximum, one each."""
    store = gatekeeper_store()
    rt = store.type_for(gatekeeper.CONSTRAINT_GROUP, gatekeeper.CONTAINER_LIMITS_PLURAL)
    store.create(rt, gatekeeper.container_limits_constraint("limits", "ns", "100m", "256Mi"))
    pods = store.type_for("", "pods")

    def pod(**resources: Any) -> dict[str, Any]:
        return {"spec": {"containers": [{"name": "probe", "image": "x", "resources": resources}]}}

    assert gatekeeper.admit(store, pods, "ns", {}, pod(limits={"cpu": "100m", "memory": "128Mi"})) == []
    refused = {
        "spec": {"initContainers": [{"name": "init", "image": "x", "resources": {"limits": {"memory": "1Gi"}}}],
                 "containers": [{"name": "probe", "image": "x",
                                 "resources": {"limits": {"cpu": "200m", "memory": "128Mi"}}},
                                {"name": "bare", "image": "x"}]}}
    with pytest.raises(errors.ApiError) as denied:
        gatekeeper.admit(store, pods, "ns", {}, refused)
    assert denied.value.message.split("\n") == [
        'admission webhook "validation.gatekeeper.sh" denied the request: [limits] container <bare> has no resource '
        "limits",
        "[limits] container <init> has no cpu limit",
        "[limits] container <init> memory limit <1Gi> is higher than the maximum allowed of <256Mi>",
        "[limits] container <probe> cpu limit <200m> is higher than the maximum allowed of <100m>",
    ]
    store.replace(rt, gatekeeper.container_limits_constraint("limits", "ns", "-1", "256Mi") | {
        "metadata": store.find(rt, "", "limits")["metadata"]}, check_version=False)
    assert gatekeeper.admit(store, pods, "ns", {}, pod(limits={"memory": "128Mi"})) == []
    assert gatekeeper.admit(store, pods, "ns", {}, pod(limits={"cpu": "4", "memory": "128Mi"})) == []


def test_gatekeeper_required_labels_names_the_missing_keys_as_a_set_and_checks_each_allowed_regex() -> None:
    """gatekeeper-library's requiredlabels Rego: the keys missing as OPA prints a set of strings (sorted, quoted),
    a value outside its allowedRegex on its own; what kubectl apply puts in the API as a constraint is
    evaluated, and deleting it lifts it."""
    store = gatekeeper_store()
    rt = store.type_for(gatekeeper.CONSTRAINT_GROUP, gatekeeper.REQUIRED_LABELS_PLURAL)
    store.create(rt, {"apiVersion": "constraints.gatekeeper.sh/v1beta1", "kind": gatekeeper.REQUIRED_LABELS_KIND,
                      "metadata": {"name": "owner"},
                      "spec": {"match": {"kinds": [{"apiGroups": [""], "kinds": ["Pod"]}], "namespaces": ["ns"]},
                               "parameters": {"labels": [{"key": "team"},
                                                         {"key": "costcenter", "allowedRegex": "^cc-[0-9]+$"}]}}})
    pods = store.type_for("", "pods")

    def pod(**labels: str) -> dict[str, Any]:
        return {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "probe", "image": "x"}]}}

    assert gatekeeper.admit(store, pods, "ns", {}, pod(team="payments", costcenter="cc-4711")) == []
    with pytest.raises(errors.ApiError) as denied:
        gatekeeper.admit(store, pods, "ns", {}, pod(app="x"))
    assert denied.value.message == ('admission webhook "validation.gatekeeper.sh" denied the request: [owner] you '
                                    'must provide labels: {"costcenter", "team"}')
    with pytest.raises(errors.ApiError) as denied:
        gatekeeper.admit(store, pods, "ns", {}, pod(team="payments", costcenter="4711"))
    assert denied.value.message.endswith("[owner] Label <costcenter: 4711> does not satisfy allowed regex: "
                                         "^cc-[0-9]+$")
    assert [(c["name"], c["kind"]) for c in gatekeeper.constraints(store)] == [("owner", "K8sRequiredLabels")]
    store.delete(rt, "", "owner")
    assert gatekeeper.admit(store, pods, "ns", {}, pod()) == []
