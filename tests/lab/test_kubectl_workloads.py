"""What a troubleshooter types about workloads, with the real kubectl against the session's lab: the Workload ID
webhook's own pods and logs, ``kubectl logs`` options (--previous, --since, --since-time, --timestamps, -f),
Deployment rollouts (revisions, history, undo, status, scaling events, defaults) and the node with its Lease."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from lab.control import set_webhook

SYSTEM = "azure-workload-identity.io/system=true"
DEPLOYMENT = "azure-wi-webhook-controller-manager"


def wait_for(predicate: Callable[[], bool], timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in time")
        time.sleep(0.2)


def as_json(kubectl, *args: str) -> dict:
    return json.loads(kubectl(*args, "-o", "json").stdout)


@pytest.fixture
def namespace(kubectl) -> str:
    name = f"wk-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    return name


def webhook_pods(kubectl) -> list[dict]:
    return as_json(kubectl, "get", "pods", "-n", "kube-system", "-l", SYSTEM)["items"]


def ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))


# ---------------------------------------------------------------- the webhook as AKS runs it


def test_the_webhook_runs_as_pods_behind_its_service_and_logs_its_denials(kubectl, namespace: str) -> None:
    deployment = as_json(kubectl, "get", "deploy", DEPLOYMENT, "-n", "kube-system")
    assert deployment["status"]["availableReplicas"] == 2
    replicasets = as_json(kubectl, "get", "rs", "-n", "kube-system", "-l", SYSTEM)["items"]
    assert {rs["metadata"]["ownerReferences"][0]["name"] for rs in replicasets} == {DEPLOYMENT}
    pods = webhook_pods(kubectl)
    assert len(pods) == 2 and all(ready(p) for p in pods)
    assert {c["name"] for p in pods for c in p["spec"]["containers"]} == {"manager"}
    service = as_json(kubectl, "get", "svc", "azure-wi-webhook-webhook-service", "-n", "kube-system")
    assert service["spec"]["ports"][0]["port"] == 443 and service["spec"]["ports"][0]["targetPort"] == 9443
    assert service["spec"]["selector"] == {"azure-workload-identity.io/system": "true"}
    secret = as_json(kubectl, "get", "secret", "azure-wi-webhook-server-cert", "-n", "kube-system")
    assert {"ca.crt", "tls.crt", "tls.key"} <= set(secret["data"])
    startup = kubectl("logs", "-n", "kube-system", f"deploy/{DEPLOYMENT}").stdout.splitlines()
    assert json.loads(startup[0])["msg"] == "initializing metrics backend"

    # a denial: the handler logs it on whichever pod served the request
    kubectl("create", "serviceaccount", "short", "-n", namespace)
    kubectl("annotate", "serviceaccount", "short", "-n", namespace,
            "azure.workload.identity/service-account-token-expiration=100")
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "too-short", "namespace": namespace, "labels": {"azure.workload.identity/use": "true"}},
           "spec": {"serviceAccountName": "short", "containers": [{"name": "c", "image": "busybox"}]}}
    refused = kubectl("create", "-f", "-", input=json.dumps(pod), check=False)
    assert refused.returncode == 1
    assert "token expiration 100 not valid. Expected value to be between 3600 and 86400" in refused.stderr
    logs = kubectl("logs", "-n", "kube-system", "-l", SYSTEM, "--tail=-1").stdout.splitlines()
    records = [json.loads(line) for line in logs if line.startswith("{")]
    denial = next(r for r in records if r.get("logger") == "handler" and r.get("namespace") == namespace)
    assert denial["level"] == "error" and denial["msg"] == "failed to get service account token expiration"
    assert (denial["pod"], denial["service-account"]) == ("too-short", "short")
    assert denial["error"] == "token expiration 100 not valid. Expected value to be between 3600 and 86400"

    # upstream TestHandleError "failed to decode pod": the API server decodes before any webhook, same answer
    garbage = kubectl("create", "--raw", f"/api/v1/namespaces/{namespace}/pods", "-f", "-", input="invalid",
                      check=False)
    assert garbage.returncode == 1 and "couldn't get version/kind" in garbage.stderr

    # what AKS ships today: the /tokens layout
    pod["metadata"]["name"], pod["spec"]["serviceAccountName"] = "admitted", "default"
    created = json.loads(kubectl("create", "-f", "-", "-o", "json", input=json.dumps(pod)).stdout)
    env = {e["name"]: e["value"] for e in created["spec"]["containers"][0]["env"]}
    assert env["AZURE_FEDERATED_TOKEN_FILE"] == "/var/run/secrets/azure/tokens/azure-identity-token"
    kubectl("delete", "pod", "admitted", "-n", namespace, "--wait=false")


def test_webhook_down_is_visible_as_crashing_pods(kubectl, lab, lab_thread) -> None:
    lab_thread.call(lambda: set_webhook(lab, {"mode": "down"})).result(10)
    try:
        def crashing() -> bool:
            pods = webhook_pods(kubectl)
            states = [s["state"] for p in pods for s in p["status"].get("containerStatuses", [])]
            return len(states) == 2 and not any(ready(p) for p in pods) and all(
                (st.get("waiting") or {}).get("reason") == "CrashLoopBackOff" or "terminated" in st for st in states)

        wait_for(crashing, what="webhook pods crashing")
        table = kubectl("get", "pods", "-n", "kube-system", "-l", SYSTEM).stdout
        assert "0/1" in table and ("CrashLoopBackOff" in table or "Error" in table)
        wait_for(lambda: not as_json(kubectl, "get", "deploy", DEPLOYMENT, "-n", "kube-system")["status"]
                 .get("availableReplicas"), what="deployment unavailable")
        name = webhook_pods(kubectl)[0]["metadata"]["name"]
        last = kubectl("logs", "-n", "kube-system", name, "--previous").stdout.splitlines()[-1]
        assert json.loads(last)["level"] == "error" and "unable to run manager" in json.loads(last)["msg"]
    finally:
        lab_thread.call(lambda: set_webhook(lab, {"mode": "up"})).result(10)
    wait_for(lambda: len(webhook_pods(kubectl)) == 2 and all(ready(p) for p in webhook_pods(kubectl)),
             what="webhook pods ready again")


def test_a_configuration_the_webhook_refuses_crashes_it_and_leaves_its_service_without_endpoints(
        kubectl, namespace: str) -> None:
    def restart_pods() -> None:  # envFrom is read when a container starts: new pods read the edit
        kubectl("delete", "pods", "-n", "kube-system", "-l", SYSTEM, "--wait=false")

    kubectl("patch", "configmap", "azure-wi-webhook-config", "-n", "kube-system", "--type=merge",
            "-p", '{"data":{"AZURE_ENVIRONMENT":"AzureMoonCloud"}}')
    try:
        restart_pods()

        def panicked() -> bool:
            pods = webhook_pods(kubectl)
            statuses = [s for p in pods for s in p["status"].get("containerStatuses", [])]
            return len(pods) == 2 and not any(ready(p) for p in pods) and len(statuses) == 2 and all(
                s.get("lastState", {}).get("terminated", {}).get("exitCode") == 2
                or s["state"].get("terminated", {}).get("exitCode") == 2 for s in statuses)

        wait_for(panicked, what="webhook pods panicking")
        name = webhook_pods(kubectl)[0]["metadata"]["name"]
        last = kubectl("logs", "-n", "kube-system", name).stdout.splitlines()[-1]
        assert last == ('panic: unable to set up pod mutator: failed to get AAD endpoint: autorest/azure: There is '
                        'no cloud environment matching the name "AZUREMOONCLOUD"')
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "refused", "namespace": namespace,
                            "labels": {"azure.workload.identity/use": "true"}},
               "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
        refused = kubectl("create", "-f", "-", input=json.dumps(pod), check=False)
        assert refused.returncode == 1
        assert 'no endpoints available for service "azure-wi-webhook-webhook-service"' in refused.stderr
        labelled = WEB.format(ns=namespace).replace("labels: {app: web}}", 'labels: {app: web, '
                                                    'azure.workload.identity/use: "true"}}')
        kubectl("apply", "-f", "-", input=labelled)
        wait_for(lambda: any(e["reason"] == "FailedCreate" and "no endpoints available" in e["message"]
                             for e in as_json(kubectl, "get", "events", "-n", namespace)["items"]),
                 what="the ReplicaSet's FailedCreate")
    finally:
        kubectl("patch", "configmap", "azure-wi-webhook-config", "-n", "kube-system", "--type=merge",
                "-p", '{"data":{"AZURE_ENVIRONMENT":"AzurePublicCloud"}}')
        restart_pods()
    wait_for(lambda: len(webhook_pods(kubectl)) == 2 and all(ready(p) for p in webhook_pods(kubectl)),
             what="webhook pods ready again")
    # the ReplicaSet tries again once the webhook serves: its pod is created, mutated
    wait_for(lambda: len(as_json(kubectl, "get", "pods", "-n", namespace, "-l", "app=web")["items"]) == 1,
             what="the Deployment's pod")
    created = as_json(kubectl, "get", "pods", "-n", namespace, "-l", "app=web")["items"][0]
    assert any(e["name"] == "AZURE_FEDERATED_TOKEN_FILE" for e in created["spec"]["containers"][0]["env"])


def test_at_trace_level_the_webhook_logs_every_request(kubectl, namespace: str) -> None:
    def set_level(level: str) -> None:
        patch = [{"op": "replace", "path": "/spec/template/spec/containers/0/args/0", "value": f"--log-level={level}"}]
        kubectl("patch", "deploy", DEPLOYMENT, "-n", "kube-system", "--type=json", "-p", json.dumps(patch))
        kubectl("rollout", "status", f"deploy/{DEPLOYMENT}", "-n", "kube-system", "--timeout=30s")

    set_level("trace")
    try:
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "traced", "namespace": namespace,
                            "labels": {"azure.workload.identity/use": "true"}},
               "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
        kubectl("create", "-f", "-", input=json.dumps(pod))
        logs = kubectl("logs", "-n", "kube-system", "-l", SYSTEM, "--tail=-1").stdout.splitlines()
        records = [json.loads(line) for line in logs if line.startswith("{")]
        received = next(r for r in records if r["msg"] == "received request" and r.get("name") == "traced")
        assert (received["logger"], received["namespace"]) == ("admission", namespace)
        answer = next(r for r in records if r["msg"] == "wrote response" and r["requestID"] == received["requestID"])
        assert answer["allowed"] is True and answer["code"] == 200
    finally:
        set_level("info")
        kubectl("delete", "pod", "traced", "-n", namespace, "--wait=false", check=False)


# ---------------------------------------------------------------- kubectl logs


CRASHER = """
apiVersion: v1
kind: Pod
metadata: {{name: crasher, namespace: {ns}}}
spec:
  volumes: [{{name: state, emptyDir: {{}}}}]
  containers:
  - name: main
    image: busybox
    volumeMounts: [{{name: state, mountPath: /state}}]
    # the first instance writes two lines and crashes; the next one (the emptyDir survives restarts) stays up
    command: ["sh", "-c", "echo run-$(date +%s%N); if [ -f /state/ran ]; then exec sleep 3600; fi;
              touch /state/ran; sleep 1.2; echo second; sleep 0.5; exit 3"]
"""


def test_logs_previous_since_timestamps_and_follow_one_instance(kubectl, lab, lab_thread, namespace: str) -> None:
    backoff = lab.kubelet.crash_backoff
    lab_thread.call(lambda: setattr(lab.kubelet, "crash_backoff", (0.5, 1.0))).result(10)
    try:
        kubectl("apply", "-f", "-", input=CRASHER.format(ns=namespace))
        wait_for(lambda: "run-" in kubectl("logs", "crasher", "-n", namespace, check=False).stdout,
                 what="first output")
        missing = kubectl("logs", "crasher", "-n", namespace, "--previous", check=False)
        assert missing.returncode == 1
        assert 'previous terminated container "main" in pod "crasher" not found' in missing.stderr
        # -f follows this instance until it exits; the restart does not continue the stream
        followed = kubectl("logs", "-f", "crasher", "-n", namespace, timeout=20).stdout.splitlines()
        assert len(followed) == 2 and followed[0].startswith("run-") and followed[1] == "second"

        wait_for(lambda: as_json(kubectl, "get", "pod", "crasher", "-n", namespace)["status"]
                 ["containerStatuses"][0]["restartCount"] >= 1, what="a restart")
        wait_for(lambda: kubectl("logs", "crasher", "-n", namespace).stdout.startswith("run-"), what="second run")
        previous = kubectl("logs", "crasher", "-n", namespace, "-p").stdout
        current = kubectl("logs", "crasher", "-n", namespace).stdout
        assert previous.splitlines()[0] == followed[0]
        assert current.splitlines()[0] != previous.splitlines()[0]

        stamped = kubectl("logs", "crasher", "-n", namespace, "-p", "--timestamps").stdout.splitlines()
        times = [datetime.fromisoformat(line.split(" ", 1)[0][:26] + "+00:00") for line in stamped]
        assert [line.split(" ", 1)[1] for line in stamped] == previous.splitlines()
        assert 1.0 <= (times[1] - times[0]).total_seconds() < 3.0  # when each line was written, not now
        cut = times[1].replace(microsecond=0).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        since_time = kubectl("logs", "crasher", "-n", namespace, "-p", f"--since-time={cut}").stdout.splitlines()
        assert since_time == ["second"] or since_time == previous.splitlines()[1:]
        time.sleep(1.1)
        assert kubectl("logs", "crasher", "-n", namespace, "-p", "--since=1s").stdout == ""
    finally:
        lab_thread.call(lambda: setattr(lab.kubelet, "crash_backoff", backoff)).result(10)
        kubectl("delete", "pod", "crasher", "-n", namespace, "--wait=false", check=False)


# ---------------------------------------------------------------- Deployments


WEB = """
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {ns}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers: [{{name: main, image: "busybox", command: [sleep, "3600"]}}]
"""


def deployment_events(kubectl, namespace: str) -> list[str]:
    events = as_json(kubectl, "get", "events", "-n", namespace)["items"]
    return [e["message"] for e in sorted(events, key=lambda e: e["metadata"]["creationTimestamp"])
            if e["reason"] == "ScalingReplicaSet"]


def test_rollout_revisions_history_undo_and_scaling(kubectl, lab, lab_thread, namespace: str) -> None:
    kubectl("apply", "-f", "-", input=WEB.format(ns=namespace))
    status = kubectl("rollout", "status", "deploy/web", "-n", namespace, "--timeout=30s").stdout
    assert 'deployment "web" successfully rolled out' in status
    deployment = as_json(kubectl, "get", "deploy", "web", "-n", namespace)
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate",
                                              "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}
    assert (deployment["spec"]["revisionHistoryLimit"], deployment["spec"]["progressDeadlineSeconds"]) == (10, 600)
    assert deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    first = as_json(kubectl, "get", "pods", "-n", namespace)["items"][0]["metadata"]["name"]

    # a rolling update: the old pod stays until its replacement is available
    lab_thread.call(lambda: setattr(lab.kube, "pod_start_latency_seconds", 1.5)).result(10)
    try:
        kubectl("set", "image", "deploy/web", "-n", namespace, "main=busybox:1.36")
        kubectl("annotate", "deploy/web", "-n", namespace, "kubernetes.io/change-cause=busybox 1.36")
        wait_for(lambda: len(as_json(kubectl, "get", "pods", "-n", namespace)["items"]) == 2, what="a surge pod")
        pods = {p["metadata"]["name"]: p for p in as_json(kubectl, "get", "pods", "-n", namespace)["items"]}
        assert first in pods and ready(pods[first])
        assert not all(ready(p) for p in pods.values())
        status = kubectl("rollout", "status", "deploy/web", "-n", namespace, "--timeout=30s").stdout
    finally:
        lab_thread.call(lambda: setattr(lab.kube, "pod_start_latency_seconds", 0.0)).result(10)
    assert "Waiting for deployment \"web\" rollout to finish" in status
    assert status.rstrip().endswith('deployment "web" successfully rolled out')
    history = kubectl("rollout", "history", "deploy/web", "-n", namespace).stdout
    assert [line.split(None, 1) for line in history.splitlines()[2:] if line.strip()] == [
        ["1", "<none>"], ["2", "busybox 1.36"]]
    events = deployment_events(kubectl, namespace)
    up = next(i for i, m in enumerate(events) if m.startswith("Scaled up") and m.endswith("from 0 to 1")
              and i > 0)
    down = next(i for i, m in enumerate(events) if m.startswith("Scaled down") and m.endswith("from 1 to 0"))
    assert up < down

    # undo: the first template's ReplicaSet comes back as revision 3
    kubectl("rollout", "undo", "deploy/web", "-n", namespace)
    kubectl("rollout", "status", "deploy/web", "-n", namespace, "--timeout=30s")
    history = kubectl("rollout", "history", "deploy/web", "-n", namespace).stdout
    assert [line.split(None, 1)[0] for line in history.splitlines()[2:] if line.strip()] == ["2", "3"]
    replicasets = as_json(kubectl, "get", "rs", "-n", namespace)["items"]
    back = next(rs for rs in replicasets if rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3")
    assert back["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "1"
    assert back["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox"

    kubectl("scale", "deploy/web", "-n", namespace, "--replicas=2")
    wait_for(lambda: any(m.endswith(f"{back['metadata']['name']} from 1 to 2")
                         for m in deployment_events(kubectl, namespace)), what="the scaling event")
    wide = kubectl("get", "rs", "-n", namespace, "-o", "wide").stdout
    assert "CONTAINERS" in wide and "busybox:1.36" in wide and "app=web,pod-template-hash=" in wide


def test_a_rollout_that_makes_no_progress_exceeds_its_deadline(kubectl, namespace: str) -> None:
    stuck = WEB.format(ns=namespace).replace('image: "busybox"', 'image: "myacr.azurecr.io/nothing:1"').replace(
        "  replicas: 1\n", "  replicas: 1\n  progressDeadlineSeconds: 2\n")
    kubectl("apply", "-f", "-", input=stuck)
    status = kubectl("rollout", "status", "deploy/web", "-n", namespace, "--timeout=20s", check=False)
    assert status.returncode == 1
    assert 'error: deployment "web" exceeded its progress deadline' in status.stderr
    conditions = {c["type"]: c for c in as_json(kubectl, "get", "deploy", "web", "-n", namespace)["status"]
                  ["conditions"]}
    assert (conditions["Progressing"]["status"], conditions["Progressing"]["reason"]) == (
        "False", "ProgressDeadlineExceeded")
    assert conditions["Progressing"]["message"].endswith("has timed out progressing.")


# ---------------------------------------------------------------- the node


def test_the_node_shows_its_status_columns_conditions_and_lease(kubectl) -> None:
    table = kubectl("get", "nodes", "-o", "wide").stdout.splitlines()
    assert table[0].split()[:5] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert "CONTAINER-RUNTIME" in table[0]
    row = table[1].split()
    assert row[1:3] == ["Ready", "agent"] and row[4] == "v1.32.6" and row[5] == "127.0.0.1"
    node = row[0]
    conditions = {c["type"]: c["status"] for c in as_json(kubectl, "get", "node", node)["status"]["conditions"]}
    assert conditions == {"MemoryPressure": "False", "DiskPressure": "False", "PIDPressure": "False",
                          "Ready": "True"}
    lease = as_json(kubectl, "get", "lease", node, "-n", "kube-node-lease")
    assert lease["spec"]["holderIdentity"] == node and lease["spec"]["leaseDurationSeconds"] == 40
    assert lease["metadata"]["ownerReferences"][0]["kind"] == "Node"
    assert kubectl("get", "lease", "-n", "kube-node-lease").stdout.split()[:3] == ["NAME", "HOLDER", "AGE"]


LEDGER = """\
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: ledger, namespace: {ns}}}
spec:
  serviceName: ledger
  replicas: 2
  selector: {{matchLabels: {{app: ledger}}}}
  template:
    metadata: {{labels: {{app: ledger}}}}
    spec:
      containers: [{{name: main, image: busybox, command: [sleep, "3600"]}}]
"""


def statefulset_events(kubectl, namespace: str) -> list[str]:
    items = sorted(as_json(kubectl, "get", "events", "-n", namespace)["items"],
                   key=lambda e: int(e["metadata"]["resourceVersion"]))  # in the order they were made
    return [e["message"] for e in items if e["involvedObject"]["kind"] == "StatefulSet"]


def test_a_pod_below_a_statefulsets_partition_is_made_again_at_the_earlier_revision(kubectl, lab, lab_thread,
                                                                                   namespace: str) -> None:
    """rollingUpdate.partition 2 of 3: a template change replaces ledger-2 only, and ledger-0, deleted, is made again
    from the earlier template (kubernetes.io StatefulSet "Partitioned rolling updates": "even if they are deleted,
    they will be recreated at the previous version"; stateful_set_utils.go newVersionedStatefulSetPod); partition 0
    rolls it. The lab made it from the new template."""
    manifest = LEDGER.format(ns=namespace).replace("replicas: 2", "replicas: 3").replace(
        "  template:", "  updateStrategy: {type: RollingUpdate, rollingUpdate: {partition: 2}}\n  template:")
    kubectl("apply", "-f", "-", input=manifest)
    kubectl("rollout", "status", "sts/ledger", "-n", namespace, "--timeout=30s")
    old = as_json(kubectl, "get", "sts", "ledger", "-n", namespace)["status"]["currentRevision"]
    kubectl("patch", "sts", "ledger", "-n", namespace, "--type", "merge", "-p",
            '{"spec":{"template":{"metadata":{"labels":{"canary":"yes"}}}}}')
    revision = lambda pod: as_json(kubectl, "get", "pod", pod, "-n", namespace)["metadata"]["labels"]  # noqa: E731
    wait_for(lambda: revision("ledger-2").get("canary") == "yes" and
             as_json(kubectl, "get", "pod", "ledger-2", "-n", namespace)["status"].get("phase") == "Running",
             what="ledger-2 replaced")
    kubectl("delete", "pod", "ledger-0", "-n", namespace, "--wait=true")
    wait_for(lambda: kubectl("get", "pod", "ledger-0", "-n", namespace, check=False).returncode == 0,
             what="ledger-0 made again")
    labels = revision("ledger-0")
    assert labels["controller-revision-hash"] == old and "canary" not in labels
    kubectl("patch", "sts", "ledger", "-n", namespace, "--type", "merge", "-p",
            '{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}')
    wait_for(lambda: all(revision(f"ledger-{n}").get("canary") == "yes" for n in range(3)), timeout=60,
             what="partition 0 rolled every pod")


def test_a_statefulset_makes_its_pods_in_order_and_rolls_them_back_to_front(kubectl, lab, lab_thread,
                                                                             namespace: str) -> None:
    """apps/v1 StatefulSets are served (kubectl get sts) and run: SetDefaults_StatefulSet's fields, pods
    <set>-<ordinal> made in order with their identity labels, hostname and subdomain, the controller's event
    words, kubectl rollout status/restart (highest ordinal first) and a refused pod's FailedCreate event."""
    kubectl("apply", "-f", "-", input=LEDGER.format(ns=namespace))
    status = kubectl("rollout", "status", "sts/ledger", "-n", namespace, "--timeout=30s").stdout.strip().splitlines()
    # kubectl prints its waiting lines while pods are still becoming ready (how many depends on the timing), then this
    assert status[-1] == "partitioned roll out complete: 2 new pods have been updated...", status
    assert all(line.startswith("Waiting for ") for line in status[:-1]), status
    sts = as_json(kubectl, "get", "sts", "ledger", "-n", namespace)
    assert (sts["spec"]["podManagementPolicy"], sts["spec"]["updateStrategy"]) == (
        "OrderedReady", {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    revision = sts["status"]["updateRevision"]
    assert sts["status"]["currentRevision"] == revision and revision.startswith("ledger-")
    assert (sts["status"]["replicas"], sts["status"]["readyReplicas"], sts["status"]["updatedReplicas"]) == (2, 2, 2)
    pod = as_json(kubectl, "get", "pod", "ledger-0", "-n", namespace)
    assert {k: v for k, v in pod["metadata"]["labels"].items() if k != "app"} == {
        "controller-revision-hash": revision, "statefulset.kubernetes.io/pod-name": "ledger-0",
        "apps.kubernetes.io/pod-index": "0"}
    assert (pod["spec"]["hostname"], pod["spec"]["subdomain"]) == ("ledger-0", "ledger")
    # the AGE column is whatever the clock says (two reads of it may straddle a second)
    listed = kubectl("get", "sts", "-n", namespace).stdout.split()
    assert listed[:5] == ["NAME", "READY", "AGE", "ledger", "2/2"] and re.fullmatch(r"\d+s", listed[5]), listed
    assert statefulset_events(kubectl, namespace)[:2] == [
        "create Pod ledger-0 in StatefulSet ledger successful", "create Pod ledger-1 in StatefulSet ledger successful"]

    kubectl("rollout", "restart", "sts/ledger", "-n", namespace)
    wait_for(lambda: (s := as_json(kubectl, "get", "sts", "ledger", "-n", namespace)["status"])
             .get("currentRevision") == s.get("updateRevision") != revision and s.get("readyReplicas") == 2,
             what="the restart rolled")
    deletes = [m for m in statefulset_events(kubectl, namespace) if m.startswith("delete Pod")]
    assert deletes[:2] == ["delete Pod ledger-1 in StatefulSet ledger successful",
                           "delete Pod ledger-0 in StatefulSet ledger successful"]

    kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    kubectl("delete", "pod", "ledger-1", "-n", namespace, "--wait=true")
    wait_for(lambda: any("failed error" in m for m in statefulset_events(kubectl, namespace)), what="FailedCreate")
    refused = next(m for m in statefulset_events(kubectl, namespace) if "failed error" in m)
    assert refused.startswith('create Pod ledger-1 in StatefulSet ledger failed error: pods "ledger-1" is forbidden: '
                              'violates PodSecurity "restricted:latest": ')
    kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce-")
    status = kubectl("rollout", "status", "sts/ledger", "-n", namespace, "--timeout=30s").stdout
    assert status.strip().endswith("partitioned roll out complete: 2 new pods have been updated...")
