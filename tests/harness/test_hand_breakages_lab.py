"""Workload ID broken by hand with kubectl, as platform engineers break it, then the harness run as a troubleshooter
types it (``--pod NS/POD``, ``--workload NS/SA``): the verdict, the first broken link, and the printed fix pasted
into a shell as printed, against one lab of this module's own."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from test_e2e_lab import checks_of, run_suites

from lab.bootstrap import RunningLab

pytestmark = pytest.mark.slow

CLIENT_ID = "azure.workload.identity/client-id"


def kubectl(lab: RunningLab, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["kubectl", "--kubeconfig", str(lab.state_dir / "kubeconfig"), *args],
                              capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        pytest.skip("kubectl is not installed")


def ok(lab: RunningLab, *args: str) -> str:
    done = kubectl(lab, *args)
    assert done.returncode == 0, (args, done.stderr)
    return done.stdout


def paste(lab: RunningLab, line: str) -> None:
    """One printed fix line run by a shell as a person pastes it (its ``# ...`` note is a shell comment)."""
    env = {**os.environ, "KUBECONFIG": str(lab.state_dir / "kubeconfig")}
    done = subprocess.run(["bash", "-c", line], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, (line, done.stdout, done.stderr)


def running_pods(lab: RunningLab, namespace: str, selector: str) -> list[dict[str, Any]]:
    items = json.loads(ok(lab, "get", "pods", "-n", namespace, "-l", selector, "-o", "json"))["items"]
    return [p for p in items if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")]


def wait_for_one_new_pod(lab: RunningLab, namespace: str, selector: str, old: set[str]) -> dict[str, Any]:
    """The rollout's new pod, once it runs and the old ones are gone."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pods = running_pods(lab, namespace, selector)
        names = {p["metadata"]["name"] for p in pods}
        if len(pods) == 1 and not names & old:
            return pods[0]
        time.sleep(0.5)
    raise AssertionError(f"no new pod of {selector} in {namespace}: {sorted(names)}")


def wait_for_replica_failure(lab: RunningLab, namespace: str, deployment: str) -> None:
    """Up to 30 s for the Deployment's ReplicaFailure condition (its ReplicaSet's new pods refused), then return
    either way: the run that follows says what it sees."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = json.loads(ok(lab, "-n", namespace, "get", "deployment", deployment, "-o", "json"))["status"]
        if any(c["type"] == "ReplicaFailure" for c in status.get("conditions") or []):
            return
        time.sleep(0.3)


Outcome = tuple[subprocess.CompletedProcess[str], dict[str, Any], dict[str, Any], dict[str, Any]]


def run_for(directory: Path, config: str, flag: str, target: str, returncode: int) -> Outcome:
    """The suites for one ``--workload`` or ``--pod`` TARGET, ending with ``returncode``: (the process, run.json,
    the target's checks by id, its entry in run.json's workloads)."""
    result, document = run_suites(directory, "--config", config, flag, target)
    assert result.returncode == returncode, result.stdout[-3000:]
    workload = next(w for w in document["workloads"] if w["id"] == target)
    return result, document, checks_of(document, target), workload


def client_id_env(pod: dict[str, Any]) -> str | None:
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0].get("env") or []}
    return env.get("AZURE_CLIENT_ID")


def test_a_paused_rollout_to_an_unannotated_service_account_fails_and_rollout_undo_takes_up_the_first_replicaset(
    running_lab: RunningLab, tmp_path: Path
) -> None:
    """By hand in the lab: ``kubectl set serviceaccount deployment/backend backend-sa-v2`` (no client-id
    annotation), then ``kubectl rollout undo --to-revision=1`` made a third ReplicaSet instead of taking up the
    first (the scenario's Deployment was stored without the API server's defaults, so the template kubectl patched
    back was not the first ReplicaSet's); a real controller takes it up as the next revision. Then ``kubectl
    rollout pause`` and the same ``set serviceaccount``: the pod kept running under backend-sa and ``--workload
    finance/backend-sa`` passed with no word. It now fails with POD_WRONG_SERVICE_ACCOUNT naming backend-sa-v2 and
    its missing annotation (once resumed, no pod of the app gets an identity); the printed patch, pasted, puts the
    template back with the pod left running."""
    config = str(running_lab.state_dir / "harness.yaml")
    sets = json.loads(ok(running_lab, "-n", "finance", "get", "rs", "-l", "app=backend", "-o", "json"))["items"]
    first = min(sets, key=lambda rs: rs["metadata"]["creationTimestamp"])
    revision = first["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
    ok(running_lab, "-n", "finance", "create", "serviceaccount", "backend-sa-v2")
    try:
        before = {p["metadata"]["name"] for p in running_pods(running_lab, "finance", "app=backend")}
        ok(running_lab, "-n", "finance", "set", "serviceaccount", "deployment/backend", "backend-sa-v2")
        moved = wait_for_one_new_pod(running_lab, "finance", "app=backend", before)["metadata"]["name"]
        ok(running_lab, "-n", "finance", "rollout", "undo", "deployment/backend", f"--to-revision={revision}")
        back = wait_for_one_new_pod(running_lab, "finance", "app=backend", before | {moved})
        assert back["metadata"]["labels"]["pod-template-hash"] == first["metadata"]["labels"]["pod-template-hash"]
        history = ok(running_lab, "-n", "finance", "rollout", "history", "deployment/backend")
        assert revision not in [line.split()[0] for line in history.splitlines()[2:] if line.strip()]

        ok(running_lab, "-n", "finance", "rollout", "pause", "deployment/backend")
        ok(running_lab, "-n", "finance", "set", "serviceaccount", "deployment/backend", "backend-sa-v2")
        _, _, checks, workload = run_for(tmp_path / "paused", config, "--workload", "finance/backend-sa", 1)
        assert checks["workload.live_pods"]["status"] == "fail"
        (finding,) = [f for f in workload["findings"] if f["code"] == "POD_WRONG_SERVICE_ACCOUNT"]
        assert finding["evidence"]["service_account"] == "backend-sa-v2"
        assert finding["evidence"]["pods"] == [back["metadata"]["name"]]
        assert "has no azure.workload.identity/client-id annotation" in finding["message"]
        assert "Deployment/backend is paused" in finding["message"]
        for line in finding["remediation"]:
            if not line.startswith("#"):
                paste(running_lab, line)
        _, _, checks, _ = run_for(tmp_path / "fixed", config, "--workload", "finance/backend-sa", 0)
        assert checks["workload.live_pods"]["status"] == "pass"
        assert {p["metadata"]["name"] for p in running_pods(running_lab, "finance", "app=backend")} == {
            back["metadata"]["name"]}
    finally:
        kubectl(running_lab, "-n", "finance", "rollout", "resume", "deployment/backend")
        kubectl(running_lab, "-n", "finance", "delete", "serviceaccount", "backend-sa-v2")


def test_a_pod_created_before_its_service_account_was_annotated_is_restarted_by_its_own_deployments_name(
    running_lab: RunningLab, tmp_path: Path
) -> None:
    """``kubectl annotate sa ... client-id-``, a rollout, the annotation put back without a restart: the running
    pod has every injected variable but AZURE_CLIENT_ID (the webhook reads the annotation at pod CREATE only).
    ``--pod`` names POD_MISSING_CLIENT_ID at pod.mutated, and its restart names the pod's own Deployment (from its
    ownerReferences), not a ``<deployment>`` to fill in: pasted as printed, the new pod has the client id."""
    config = str(running_lab.state_dir / "harness.yaml")
    sa = json.loads(ok(running_lab, "get", "serviceaccount", "orders-sa", "-n", "orders", "-o", "json"))
    client_id = sa["metadata"]["annotations"][CLIENT_ID]
    before = {p["metadata"]["name"] for p in running_pods(running_lab, "orders", "app=orders-api")}
    ok(running_lab, "annotate", "serviceaccount", "orders-sa", "-n", "orders", f"{CLIENT_ID}-")
    try:
        ok(running_lab, "rollout", "restart", "deployment/orders-api", "-n", "orders")
        made = wait_for_one_new_pod(running_lab, "orders", "app=orders-api", before)
    finally:
        ok(running_lab, "annotate", "serviceaccount", "orders-sa", "-n", "orders", f"{CLIENT_ID}={client_id}",
           "--overwrite")
    assert client_id_env(made) is None
    pod = made["metadata"]["name"]

    result, document = run_suites(tmp_path / "before", "--config", config, "--pod", f"orders/{pod}")
    assert result.returncode == 1, result.stdout[-3000:]
    checks = checks_of(document, f"orders/{pod}")
    failing = [cid for cid, c in checks.items() if c["status"] == "fail"]
    assert failing == ["pod.mutated"], failing
    workload = next(w for w in document["workloads"] if w["id"] == f"orders/{pod}")
    finding = next(f for f in workload["findings"] if f["code"] == "POD_MISSING_CLIENT_ID")
    restart = [line.split("#")[0].strip() for line in finding["remediation"] if "rollout restart" in line]
    assert restart == ["kubectl rollout restart deployment/orders-api -n orders"]
    assert not any("<" in line for line in finding["remediation"] if not line.startswith("#"))

    for line in finding["remediation"]:
        if not line.startswith("#"):
            paste(running_lab, line)
    fixed = wait_for_one_new_pod(running_lab, "orders", "app=orders-api", before | {pod})
    assert client_id_env(fixed) == client_id
    result, document = run_suites(tmp_path / "after", "--config", config, "--pod",
                                  f"orders/{fixed['metadata']['name']}")
    assert result.returncode == 0, result.stdout[-3000:]


EXPIRATION = "azure.workload.identity/service-account-token-expiration"


def test_a_deployment_whose_new_pods_the_webhook_denies_fails_and_the_printed_patch_rolls_it_out(
    running_lab: RunningLab, tmp_path: Path
) -> None:
    """``kubectl patch deployment`` giving the pod template ``service-account-token-expiration: "100"`` (below the
    webhook's 3600): the webhook denies every new pod (token expiration 100 not valid), the ReplicaSet records
    ReplicaFailure/FailedCreate and the Deployment carries it, the old pod keeps running. The probe pod (no such
    annotation) and the old pod are fine, so only the Deployment tells: workload.live_pods fails with
    POD_REJECTED_BY_WEBHOOK, and its printed patch, pasted, lets the rollout finish and the run pass."""
    config = str(running_lab.state_dir / "harness.yaml")
    before = {p["metadata"]["name"] for p in running_pods(running_lab, "finance", "app=backend")}
    patch = json.dumps({"spec": {"template": {"metadata": {"annotations": {EXPIRATION: "100"}}}}})
    ok(running_lab, "-n", "finance", "patch", "deployment", "backend", "--type", "merge", "-p", patch)
    deadline = time.monotonic() + 30
    while True:
        deployment = json.loads(ok(running_lab, "-n", "finance", "get", "deployment", "backend", "-o", "json"))
        failure = next((c for c in deployment["status"].get("conditions") or [] if c["type"] == "ReplicaFailure"),
                       None)
        if failure is not None or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert failure is not None and failure["reason"] == "FailedCreate", deployment["status"]
    assert "token expiration 100 not valid" in failure["message"]
    assert {p["metadata"]["name"] for p in running_pods(running_lab, "finance", "app=backend")} == before

    result, document = run_suites(tmp_path / "broken", "--config", config, "--workload", "finance/backend-sa")
    assert result.returncode == 1, result.stdout[-3000:]
    checks = checks_of(document, "finance/backend-sa")
    assert [cid for cid, c in checks.items() if c["status"] == "fail"] == ["workload.live_pods"]
    assert checks["exchange.succeeds"]["status"] == "pass"  # the probe alone would have passed
    workload = next(w for w in document["workloads"] if w["id"] == "finance/backend-sa")
    finding = next(f for f in workload["findings"] if f["code"] == "POD_REJECTED_BY_WEBHOOK")
    assert finding["evidence"]["owner"] == "Deployment/backend"
    assert "first broken link workload.live_pods" in result.stdout

    for line in finding["remediation"]:
        if not line.startswith("#"):
            paste(running_lab, line)
    fixed = wait_for_one_new_pod(running_lab, "finance", "app=backend", before)
    volumes = [v for v in fixed["spec"]["volumes"] if "projected" in v]
    assert any(s.get("serviceAccountToken", {}).get("expirationSeconds") == 3600
               for v in volumes for s in v["projected"]["sources"])
    result, document = run_suites(tmp_path / "fixed", "--config", config, "--workload", "finance/backend-sa")
    assert result.returncode == 0, result.stdout[-3000:]


def test_a_deployment_left_under_the_default_service_account_is_moved_to_the_annotated_one(
    running_lab: RunningLab, tmp_path: Path
) -> None:
    """A chart rendered without its ServiceAccount name (``serviceAccountName: default``, and the deprecated
    ``serviceAccount`` the API server keeps beside it): the pod is labelled and mutated but gets no AZURE_CLIENT_ID.
    ``--pod`` fails at sa.client_id_annotation for finance/default and, since backend-sa in finance names the
    identity, its first fix moves the Deployment to backend-sa (annotating ``default`` would need a credential
    for its subject too). Pasted up to the alternative, the new pod runs under backend-sa and ``--pod`` passes."""
    config = str(running_lab.state_dir / "harness.yaml")
    before = {p["metadata"]["name"] for p in running_pods(running_lab, "finance", "app=backend")}
    wrong = json.dumps({"spec": {"template": {"spec": {"serviceAccountName": "default", "serviceAccount": "default"}}}})
    ok(running_lab, "-n", "finance", "patch", "deployment", "backend", "--type", "merge", "-p", wrong)
    moved = wait_for_one_new_pod(running_lab, "finance", "app=backend", before)
    assert moved["spec"]["serviceAccountName"] == "default" and client_id_env(moved) is None
    pod = moved["metadata"]["name"]

    result, document, checks, workload = run_for(
        tmp_path / "wrong", config, "--pod", f"finance/{pod}", returncode=1)
    assert [cid for cid, c in checks.items() if c["status"] == "fail"] == ["sa.client_id_annotation"]
    finding = next(f for f in workload["findings"] if f["code"] == "SA_NOT_ANNOTATED")
    assert "backend-sa" in finding["message"]
    first = []
    for line in finding["remediation"]:
        if line.startswith("# or"):
            break
        if not line.startswith("#"):
            first.append(line)
    assert first and all("serviceAccountName" in line for line in first), finding["remediation"]
    for line in first:
        paste(running_lab, line)
    fixed = wait_for_one_new_pod(running_lab, "finance", "app=backend", before | {pod})
    assert fixed["spec"]["serviceAccountName"] == "backend-sa" and client_id_env(fixed)
    result, document = run_suites(tmp_path / "fixed", "--config", config, "--pod",
                                  f"finance/{fixed['metadata']['name']}")
    assert result.returncode == 0, result.stdout[-3000:]


def test_an_out_of_range_token_expiration_on_the_service_account_is_removed_by_the_printed_fix(
    running_lab: RunningLab, tmp_path: Path
) -> None:
    """``kubectl annotate sa orders-sa service-account-token-expiration=90000`` (above the webhook's 86400): the
    webhook denies every pod under it, the probe pod first, so pod.admitted is the first broken link with
    POD_REJECTED_BY_WEBHOOK. Its fix removes the annotation (it printed only a kubectl get of the ServiceAccount);
    pasted, the next run passes."""
    config = str(running_lab.state_dir / "harness.yaml")
    ok(running_lab, "-n", "orders", "annotate", "serviceaccount", "orders-sa", f"{EXPIRATION}=90000")
    try:
        result, document, checks, workload = run_for(
            tmp_path / "broken", config, "--workload", "orders/orders-sa", returncode=1)
        assert [cid for cid, c in checks.items() if c["status"] == "fail"] == ["pod.admitted"]
        finding = next(f for f in workload["findings"] if f["code"] == "POD_REJECTED_BY_WEBHOOK")
        assert "token expiration 90000 not valid" in finding["message"]
        commands = [line for line in finding["remediation"] if not line.startswith("#")]
        assert commands == [f"kubectl annotate serviceaccount -n orders orders-sa {EXPIRATION}-"]
        for line in commands:
            paste(running_lab, line)
    finally:
        kubectl(running_lab, "-n", "orders", "annotate", "serviceaccount", "orders-sa", f"{EXPIRATION}-")
    result, document = run_suites(tmp_path / "fixed", "--config", config, "--workload", "orders/orders-sa")
    assert result.returncode == 0, result.stdout[-3000:]


def test_a_template_presetting_the_token_file_path_is_an_env_conflict_unset_by_the_printed_fix(
    running_lab: RunningLab, tmp_path: Path
) -> None:
    """``kubectl set env deployment/backend AZURE_FEDERATED_TOKEN_FILE=<webhook v1.6's path>``: the webhook never
    overwrites a variable the container sets, and the lab's webhook (v1.5 layout, as AKS's add-on) mounts the token
    under /var/run/secrets/azure/tokens, so the app's SDK reads a missing file. It passed (the probe pod does not
    carry the template's env); now workload.live_pods fails with POD_ENV_CONFLICT, and the printed
    ``kubectl set env ... AZURE_FEDERATED_TOKEN_FILE-``, pasted, makes the run pass."""
    config = str(running_lab.state_dir / "harness.yaml")
    before = {p["metadata"]["name"] for p in running_pods(running_lab, "finance", "app=backend")}
    ok(running_lab, "-n", "finance", "set", "env", "deployment/backend",
       "AZURE_FEDERATED_TOKEN_FILE=/var/run/secrets/azure/wi/token/azure-identity-token")
    preset = wait_for_one_new_pod(running_lab, "finance", "app=backend", before)
    env = {e["name"]: e.get("value") for e in preset["spec"]["containers"][0]["env"]}
    assert env["AZURE_FEDERATED_TOKEN_FILE"] == "/var/run/secrets/azure/wi/token/azure-identity-token"

    result, document, checks, workload = run_for(
        tmp_path / "broken", config, "--workload", "finance/backend-sa", returncode=1)
    assert [cid for cid, c in checks.items() if c["status"] == "fail"] == ["workload.live_pods"]
    finding = next(f for f in workload["findings"] if f["code"] == "POD_ENV_CONFLICT")
    assert finding["remediation"] == [
        "kubectl set env deployment/backend -n finance AZURE_FEDERATED_TOKEN_FILE-"]
    paste(running_lab, finding["remediation"][0])
    fixed = wait_for_one_new_pod(running_lab, "finance", "app=backend", before | {preset["metadata"]["name"]})
    env = {e["name"]: e.get("value") for e in fixed["spec"]["containers"][0]["env"]}
    assert env["AZURE_FEDERATED_TOKEN_FILE"] == "/var/run/secrets/azure/tokens/azure-identity-token"
    result, document = run_suites(tmp_path / "fixed", "--config", config, "--workload", "finance/backend-sa")
    assert result.returncode == 0, result.stdout[-3000:]


def test_a_template_presetting_another_tenant_is_an_env_conflict_unset_by_the_printed_fix(
    running_lab: RunningLab, tmp_path: Path
) -> None:
    """``kubectl set env deployment/backend AZURE_TENANT_ID=<another tenant>`` (values copied from another
    environment): the webhook keeps it, the app asks the wrong tenant. The probe pod shows what the webhook injects
    for the ServiceAccount; workload.live_pods fails with POD_ENV_CONFLICT and its printed unset repairs it."""
    config = str(running_lab.state_dir / "harness.yaml")
    before = {p["metadata"]["name"] for p in running_pods(running_lab, "finance", "app=backend")}
    ok(running_lab, "-n", "finance", "set", "env", "deployment/backend",
       "AZURE_TENANT_ID=72f988bf-86f1-41af-91ab-2d7cd011db47")
    preset = wait_for_one_new_pod(running_lab, "finance", "app=backend", before)
    result, document, checks, workload = run_for(
        tmp_path / "broken", config, "--workload", "finance/backend-sa", returncode=1)
    assert [cid for cid, c in checks.items() if c["status"] == "fail"] == ["workload.live_pods"]
    finding = next(f for f in workload["findings"] if f["code"] == "POD_ENV_CONFLICT")
    assert finding["remediation"] == ["kubectl set env deployment/backend -n finance AZURE_TENANT_ID-"]
    paste(running_lab, finding["remediation"][0])
    wait_for_one_new_pod(running_lab, "finance", "app=backend", before | {preset["metadata"]["name"]})
    result, document = run_suites(tmp_path / "fixed", "--config", config, "--workload", "finance/backend-sa")
    assert result.returncode == 0, result.stdout[-3000:]


def test_a_namespace_labelled_control_plane_is_excluded_by_the_webhook_and_the_printed_fix_unlabels_it(
    running_lab: RunningLab, tmp_path: Path
) -> None:
    """``kubectl label namespace finance control-plane=true`` (a label copied onto a workload namespace): AKS's
    webhook configuration selects namespaces whose control-plane is NotIn ["true"], so the webhook is never
    called for finance's pods. pod.mutated names the namespaceSelector's requirement and the label to remove, not
    az aks update --enable-workload-identity (which leaves the label, and the webhook still skips the namespace);
    pasted with the restart it prints, the run passes."""
    config = str(running_lab.state_dir / "harness.yaml")
    before = {p["metadata"]["name"] for p in running_pods(running_lab, "finance", "app=backend")}
    ok(running_lab, "label", "namespace", "finance", "control-plane=true")
    try:
        result, document, checks, workload = run_for(
            tmp_path / "broken", config, "--workload", "finance/backend-sa", returncode=1)
        assert [cid for cid, c in checks.items() if c["status"] == "fail"] == ["pod.mutated"]
        finding = next(f for f in workload["findings"] if f["code"] == "POD_NOT_MUTATED")
        assert "control-plane=true" in finding["message"]
        commands = [line for line in finding["remediation"] if not line.startswith("#")]
        assert commands[0] == "kubectl label namespace finance control-plane-"
        assert not any(line.startswith("az aks update") for line in commands)
        pod = next(iter(before))  # --pod on the workload's pod: both its view and the probe's name the Deployment
        result, by_pod = run_suites(tmp_path / "by-pod", "--config", config, "--pod", f"finance/{pod}")
        assert result.returncode == 1, result.stdout[-3000:]
        lines = [line for w in by_pod["workloads"] for f in w["findings"] for line in f["remediation"]]
        assert "kubectl label namespace finance control-plane-" in lines
        assert not any("<deployment>" in line for line in lines), lines
        for line in commands:
            paste(running_lab, line)
    finally:
        kubectl(running_lab, "label", "namespace", "finance", "control-plane-")
    wait_for_one_new_pod(running_lab, "finance", "app=backend", before)
    result, document = run_suites(tmp_path / "fixed", "--config", config, "--workload", "finance/backend-sa")
    assert result.returncode == 0, result.stdout[-3000:]


def test_a_template_volume_named_like_the_webhooks_fails_the_workload_until_renamed(
    running_lab: RunningLab, tmp_path: Path
) -> None:
    """A template volume ``azure-identity-token`` (an emptyDir): webhook v1.5, as AKS's add-on, appends its own
    volume of that name, and the API server refuses every mutated pod (Duplicate value); the old pod keeps
    running and the probe pod is fine, so it passed. workload.live_pods now fails with POD_NOT_ADMITTED naming the
    volume; renamed as the advice says, the rollout finishes and the run passes."""
    config = str(running_lab.state_dir / "harness.yaml")
    before = {p["metadata"]["name"] for p in running_pods(running_lab, "finance", "app=backend")}
    clash = json.dumps({"spec": {"template": {"spec": {"volumes": [{"name": "azure-identity-token",
                                                                     "emptyDir": {}}]}}}})
    ok(running_lab, "-n", "finance", "patch", "deployment", "backend", "--type", "merge", "-p", clash)
    wait_for_replica_failure(running_lab, "finance", "backend")
    result, document, checks, workload = run_for(
        tmp_path / "broken", config, "--workload", "finance/backend-sa", returncode=1)
    assert [cid for cid, c in checks.items() if c["status"] == "fail"] == ["workload.live_pods"]
    finding = next(f for f in workload["findings"] if f["code"] == "POD_NOT_ADMITTED")
    assert finding["evidence"]["volume"] == "azure-identity-token"
    paste(running_lab, finding["remediation"][0])  # the look it prints runs as printed
    rename = json.dumps([{"op": "replace", "path": "/spec/template/spec/volumes/0/name", "value": "scratch"}])
    ok(running_lab, "-n", "finance", "patch", "deployment", "backend", "--type", "json", "-p", rename)
    wait_for_one_new_pod(running_lab, "finance", "app=backend", before)
    result, document = run_suites(tmp_path / "fixed", "--config", config, "--workload", "finance/backend-sa")
    assert result.returncode == 0, result.stdout[-3000:]


def test_a_deployment_moved_to_the_default_service_account_fails_the_workload_and_the_printed_patch_moves_it_back(
    running_lab: RunningLab, tmp_path: Path
) -> None:
    """The same chart rendered without its ServiceAccount name, seen from ``--workload finance/backend-sa``: no
    pod runs under backend-sa ("nothing to inspect", a pass), while Deployment/backend runs labelled under
    ``default`` with no AZURE_CLIENT_ID. Its first ReplicaSet ran under backend-sa, so the Deployment is the
    workload's and its app has lost its identity: workload.live_pods fails with POD_WRONG_SERVICE_ACCOUNT naming
    that ReplicaSet (it warned, and the run passed); the patch, pasted, moves it back and the run passes."""
    config = str(running_lab.state_dir / "harness.yaml")
    before = {p["metadata"]["name"] for p in running_pods(running_lab, "finance", "app=backend")}
    wrong = json.dumps({"spec": {"template": {"spec": {"serviceAccountName": "default", "serviceAccount": "default"}}}})
    ok(running_lab, "-n", "finance", "patch", "deployment", "backend", "--type", "merge", "-p", wrong)
    moved = wait_for_one_new_pod(running_lab, "finance", "app=backend", before)
    result, document, checks, workload = run_for(tmp_path / "wrong", config, "--workload", "finance/backend-sa", 1)
    assert checks["workload.live_pods"]["status"] == "fail"
    finding = next(f for f in workload["findings"] if f["code"] == "POD_WRONG_SERVICE_ACCOUNT")
    assert finding["evidence"]["pods"] == [moved["metadata"]["name"]] and finding["severity"] == "error"
    assert "Deployment/backend ran under backend-sa before (ReplicaSet backend-" in finding["message"]
    for line in finding["remediation"]:
        if not line.startswith("#"):
            paste(running_lab, line)
    fixed = wait_for_one_new_pod(running_lab, "finance", "app=backend", before | {moved["metadata"]["name"]})
    assert fixed["spec"]["serviceAccountName"] == "backend-sa"
    result, document = run_suites(tmp_path / "fixed", "--config", config, "--workload", "finance/backend-sa")
    assert result.returncode == 0, result.stdout[-3000:]
    assert checks_of(document, "finance/backend-sa")["workload.live_pods"]["status"] == "pass"


def test_pod_of_a_deployment_whose_template_lost_the_label_is_labelled_by_the_deployments_name(
    running_lab: RunningLab, tmp_path: Path
) -> None:
    """kubectl patch --type json removes the use label from the Deployment's template; --pod on the rollout's new
    pod printed ``kubectl patch deployment '<deployment>'`` (and a reinstall of the webhook for POD_NOT_MUTATED):
    now the Deployment by name, which, pasted, rolls out labelled pods that pass. pod.mutated, whose only reason
    is the missing label, is skipped because pod.labelled failed (it failed too, the same patch printed twice)."""
    config = str(running_lab.harness_config)
    old = {p["metadata"]["name"] for p in running_pods(running_lab, "finance", "app=backend")}
    ok(running_lab, "-n", "finance", "patch", "deployment", "backend", "--type", "json", "-p", json.dumps(
        [{"op": "remove", "path": "/spec/template/metadata/labels/azure.workload.identity~1use"}]))
    try:
        pod = wait_for_one_new_pod(running_lab, "finance", "app=backend", old)["metadata"]["name"]
        _, _, checks, workload = run_for(tmp_path / "broken", config, "--pod", f"finance/{pod}", 1)
        assert checks["pod.labelled"]["status"] == "fail"
        findings = {f["code"]: f for f in workload["findings"]}
        expected = ["kubectl patch deployment/backend -n finance --type merge -p "
                    "'{\"spec\":{\"template\":{\"metadata\":{\"labels\":{\"azure.workload.identity/use\":\"true\"}}}}}'"]
        assert findings["POD_NOT_LABELLED"]["remediation"] == expected
        assert "POD_NOT_MUTATED" not in findings
        assert checks["pod.mutated"]["status"] == "skip", checks["pod.mutated"]
        assert checks["pod.mutated"]["message"] == "skipped because pod.labelled failed"
        for line in expected:
            paste(running_lab, line)
    finally:
        ok(running_lab, "-n", "finance", "patch", "deployment", "backend", "--type", "merge", "-p",
           json.dumps({"spec": {"template": {"metadata": {"labels": {"azure.workload.identity/use": "true"}}}}}))
    pod = wait_for_one_new_pod(running_lab, "finance", "app=backend", old | {pod})["metadata"]["name"]
    run_for(tmp_path / "repaired", config, "--pod", f"finance/{pod}", 0)


@pytest.mark.parametrize(("target", "code", "message", "fix"), [
    ("fnance/backend-sa", "NAMESPACE_NOT_FOUND", "namespace fnance not found; did you mean finance/backend-sa?",
     "# finance/backend-sa exists: if that is the workload, correct --workload"),
    # the Deployment's name, as people type it (33cd29d): its ServiceAccount is named
    ("finance/backend", "SA_NOT_FOUND", "ServiceAccount finance/backend not found; finance/backend is a Deployment, "
                                        "its pods run as ServiceAccount backend-sa: --workload finance/backend-sa",
     "# verify Deployment finance/backend as its ServiceAccount: --workload finance/backend-sa"),
    # the name of a pod replaced since (no such pod now): the Deployment its shape fits, there, is named
    ("finance/backend-7d9f8b6c5-x2k9p", "SA_NOT_FOUND",
     "ServiceAccount finance/backend-7d9f8b6c5-x2k9p not found; no pod finance/backend-7d9f8b6c5-x2k9p is there now, "
     "but its name has the shape of a pod of Deployment backend (NAME-HASH-XXXXX; one replaced since?), whose pods "
     "run as ServiceAccount backend-sa: --workload finance/backend-sa",
     "# verify the ServiceAccount of Deployment backend's pods: --workload finance/backend-sa"),
])
def test_a_typo_in_workload_names_the_service_account_meant(
    running_lab: RunningLab, tmp_path: Path, target: str, code: str, message: str, fix: str
) -> None:
    """A troubleshooter's typo: the one finding names the ServiceAccount that exists (its printed fix began with
    creating the namespace or ServiceAccount typed); only that target is in the report."""
    result, document, checks, workload = run_for(tmp_path, str(running_lab.harness_config), "--workload", target, 1)
    assert [w["id"] for w in document["workloads"]] == [target]
    assert checks["sa.exists"]["status"] == "fail"
    (finding,) = workload["findings"]
    assert (finding["code"], finding["message"]) == (code, message)
    assert finding["remediation"][0].startswith(fix)
    assert "Traceback" not in result.stdout + result.stderr


SKIP_CONTAINERS = "azure.workload.identity/skip-containers"


def test_skip_containers_naming_the_apps_only_container_fails_and_the_printed_patch_removes_it(
    running_lab: RunningLab, tmp_path: Path
) -> None:
    """``kubectl patch`` giving orders-api's pod template ``skip-containers: orders-api`` (the container the app
    runs in, its only one): the webhook adds the token volume but no env or mount, so the app has no identity.
    ``--workload`` passed with a warning and ``--pod`` printed az aks update --enable-workload-identity and a
    restart; both now fail with POD_CONTAINER_SKIPPED and print the patch that removes the annotation, which,
    pasted, makes the next run pass."""
    config = str(running_lab.harness_config)
    before = {p["metadata"]["name"] for p in running_pods(running_lab, "orders", "app=orders-api")}
    skip = json.dumps({"spec": {"template": {"metadata": {"annotations": {SKIP_CONTAINERS: "orders-api"}}}}})
    ok(running_lab, "-n", "orders", "patch", "deployment", "orders-api", "--type", "merge", "-p", skip)
    pod = wait_for_one_new_pod(running_lab, "orders", "app=orders-api", before)
    assert client_id_env(pod) is None and any(v["name"] == "azure-identity-token" for v in pod["spec"]["volumes"])
    unskip = ("kubectl patch deployment/orders-api -n orders --type json -p '[{\"op\":\"remove\",\"path\":"
              "\"/spec/template/metadata/annotations/azure.workload.identity~1skip-containers\"}]'")
    try:
        _, _, checks, workload = run_for(tmp_path / "workload", config, "--workload", "orders/orders-sa", 1)
        assert [cid for cid, c in checks.items() if c["status"] == "fail"] == ["workload.live_pods"]
        (finding,) = [f for f in workload["findings"] if f["code"] == "POD_CONTAINER_SKIPPED"]
        assert finding["severity"] == "error" and finding["remediation"] == [unskip]
        name = pod["metadata"]["name"]
        _, _, checks, workload = run_for(tmp_path / "pod", config, "--pod", f"orders/{name}", 1)
        assert [cid for cid, c in checks.items() if c["status"] == "fail"] == ["pod.mutated"]
        assert [f["code"] for f in workload["findings"]] == ["POD_CONTAINER_SKIPPED"]
        assert workload["findings"][0]["remediation"] == [unskip]
        paste(running_lab, unskip)
    finally:
        kubectl(running_lab, "-n", "orders", "patch", "deployment", "orders-api", "--type", "merge", "-p",
                json.dumps({"spec": {"template": {"metadata": {"annotations": {SKIP_CONTAINERS: None}}}}}))
    fixed = wait_for_one_new_pod(running_lab, "orders", "app=orders-api", before | {pod["metadata"]["name"]})
    assert client_id_env(fixed)
    run_for(tmp_path / "fixed", config, "--workload", "orders/orders-sa", 0)


def test_a_pod_labelled_by_hand_is_labelled_on_its_template_by_the_printed_fix(
    running_lab: RunningLab, tmp_path: Path
) -> None:
    """The template without the use label, and ``kubectl label pod <its pod> azure.workload.identity/use=true``
    (the way people try it): the pod stays unmutated (the webhook acts on CREATE only). The fix was a rollout
    restart, which made an unlabelled pod again; now ``--workload`` prints the template patch and ``--pod`` the
    patch then the restart; pasted as printed, the next runs pass."""
    config = str(running_lab.harness_config)
    before = {p["metadata"]["name"] for p in running_pods(running_lab, "orders", "app=orders-api")}
    ok(running_lab, "-n", "orders", "patch", "deployment", "orders-api", "--type", "json", "-p", json.dumps(
        [{"op": "remove", "path": "/spec/template/metadata/labels/azure.workload.identity~1use"}]))
    label = {"spec": {"template": {"metadata": {"labels": {"azure.workload.identity/use": "true"}}}}}
    patch = ("kubectl patch deployment/orders-api -n orders --type merge -p "
             "'{\"spec\":{\"template\":{\"metadata\":{\"labels\":{\"azure.workload.identity/use\":\"true\"}}}}}'")
    try:
        name = wait_for_one_new_pod(running_lab, "orders", "app=orders-api", before)["metadata"]["name"]
        ok(running_lab, "-n", "orders", "label", "pod", name, "azure.workload.identity/use=true")
        _, _, checks, workload = run_for(tmp_path / "workload", config, "--workload", "orders/orders-sa", 1)
        (finding,) = [f for f in workload["findings"] if f["code"] == "POD_NOT_MUTATED"]
        assert "labelled by hand" in finding["message"] and finding["remediation"] == [patch]
        _, _, checks, workload = run_for(tmp_path / "pod", config, "--pod", f"orders/{name}", 1)
        (finding,) = [f for f in workload["findings"] if f["code"] == "POD_NOT_MUTATED"]
        commands = [line for line in finding["remediation"] if not line.startswith("#")]
        assert commands[0] == patch and "rollout restart deployment/orders-api" in commands[1], commands
        for line in commands:
            paste(running_lab, line)
    finally:
        ok(running_lab, "-n", "orders", "patch", "deployment", "orders-api", "--type", "merge", "-p",
           json.dumps(label))
    ok(running_lab, "-n", "orders", "rollout", "status", "deployment/orders-api", "--timeout=60s")
    fixed = wait_for_one_new_pod(running_lab, "orders", "app=orders-api", before | {name})
    assert client_id_env(fixed)
    run_for(tmp_path / "fixed", config, "--pod", f"orders/{fixed['metadata']['name']}", 0)


def test_a_migration_proxy_asked_for_in_a_restricted_namespace_fails_and_the_printed_patch_drops_it(
    running_lab: RunningLab, tmp_path: Path
) -> None:
    """``inject-proxy-sidecar: "false"`` on orders-api's template (meant to turn the proxy off; the webhook reads
    only the key's presence): the webhook injects azwi-proxy-init, privileged with NET_ADMIN, and orders enforces
    Pod Security restricted, so every new pod is refused. It passed with a warning "not for Workload ID" asking
    for the template's securityContext; now POD_NOT_ADMITTED, and the printed patch, pasted, rolls the template
    out and the run passes."""
    config = str(running_lab.harness_config)
    proxy = {"spec": {"template": {"metadata": {"annotations": {"azure.workload.identity/inject-proxy-sidecar":
                                                                "false"}}}}}
    ok(running_lab, "-n", "orders", "patch", "deployment", "orders-api", "--type", "merge", "-p", json.dumps(proxy))
    drop = ("kubectl patch deployment/orders-api -n orders --type json -p '[{\"op\":\"remove\",\"path\":"
            "\"/spec/template/metadata/annotations/azure.workload.identity~1inject-proxy-sidecar\"}]'")
    try:
        wait_for_replica_failure(running_lab, "orders", "orders-api")
        _, _, checks, workload = run_for(tmp_path / "broken", config, "--workload", "orders/orders-sa", 1)
        assert [cid for cid, c in checks.items() if c["status"] == "fail"] == ["workload.live_pods"]
        (finding,) = [f for f in workload["findings"] if f["code"] == "POD_NOT_ADMITTED"]
        assert "azwi-proxy-init" in finding["message"]
        assert finding["remediation"][0] == drop
        paste(running_lab, drop)
    finally:
        kubectl(running_lab, "-n", "orders", "patch", "deployment", "orders-api", "--type", "merge", "-p",
                json.dumps({"spec": {"template": {"metadata": {"annotations": {
                    "azure.workload.identity/inject-proxy-sidecar": None}}}}}))
    ok(running_lab, "-n", "orders", "rollout", "status", "deployment/orders-api", "--timeout=60s")
    run_for(tmp_path / "fixed", config, "--workload", "orders/orders-sa", 0)


def test_a_client_id_set_from_a_secret_is_an_env_conflict_unset_by_the_printed_fix(
    running_lab: RunningLab, tmp_path: Path
) -> None:
    """``kubectl set env deployment/orders-api --from=secret/app-ids`` with a Secret holding another AZURE_CLIENT_ID
    (copied from another environment): the template names the variable (valueFrom), so the webhook injects none
    and the app runs as whatever the Secret says. It was POD_STALE_CLIENT_ID with a restart, which changes nothing;
    now POD_ENV_CONFLICT naming the Secret, and its printed unset, pasted, makes the run pass."""
    config = str(running_lab.harness_config)
    before = {p["metadata"]["name"] for p in running_pods(running_lab, "orders", "app=orders-api")}
    ok(running_lab, "-n", "orders", "create", "secret", "generic", "app-ids",
       "--from-literal=AZURE_CLIENT_ID=00000000-1111-2222-3333-444444444444")
    try:
        ok(running_lab, "-n", "orders", "set", "env", "deployment/orders-api", "--from=secret/app-ids")
        preset = wait_for_one_new_pod(running_lab, "orders", "app=orders-api", before)
        _, _, checks, workload = run_for(tmp_path / "broken", config, "--workload", "orders/orders-sa", 1)
        assert [cid for cid, c in checks.items() if c["status"] == "fail"] == ["workload.live_pods"]
        (finding,) = [f for f in workload["findings"] if f["code"] == "POD_ENV_CONFLICT"]
        assert "secret app-ids" in finding["message"]
        assert finding["remediation"] == ["kubectl set env deployment/orders-api -n orders AZURE_CLIENT_ID-"]
        paste(running_lab, finding["remediation"][0])
    finally:
        kubectl(running_lab, "-n", "orders", "set", "env", "deployment/orders-api", "AZURE_CLIENT_ID-")
        kubectl(running_lab, "-n", "orders", "delete", "secret", "app-ids")
    wait_for_one_new_pod(running_lab, "orders", "app=orders-api", before | {preset["metadata"]["name"]})
    run_for(tmp_path / "fixed", config, "--workload", "orders/orders-sa", 0)


def test_a_webhook_upgraded_by_hand_leaves_a_hardcoded_token_path_behind_and_the_printed_unset_repairs_it(
    running_lab: RunningLab, tmp_path: Path
) -> None:
    """``kubectl set image`` of the add-on's webhook to v1.6.0 (which mounts the token under
    /var/run/secrets/azure/wi), while orders-api's template sets AZURE_FEDERATED_TOKEN_FILE to the v1.5 path its
    docs showed: the webhook keeps the preset, the app reads a file that is not there. (The lab injected the v1.5
    layout whatever image served.) POD_ENV_CONFLICT names both paths, and its printed unset, pasted, passes."""
    config = str(running_lab.harness_config)
    image = "mcr.microsoft.com/oss/azure/workload-identity/webhook"
    try:
        ok(running_lab, "-n", "kube-system", "set", "image", "deployment/azure-wi-webhook-controller-manager",
           f"manager={image}:v1.6.0")
        ok(running_lab, "-n", "kube-system", "rollout", "status", "deployment/azure-wi-webhook-controller-manager",
           "--timeout=60s")
        before = {p["metadata"]["name"] for p in running_pods(running_lab, "orders", "app=orders-api")}
        ok(running_lab, "-n", "orders", "set", "env", "deployment/orders-api",
           "AZURE_FEDERATED_TOKEN_FILE=/var/run/secrets/azure/tokens/azure-identity-token")
        preset = wait_for_one_new_pod(running_lab, "orders", "app=orders-api", before)
        assert any(v["name"].startswith("azure-workload-identity-reserved-") for v in preset["spec"]["volumes"])
        _, _, checks, workload = run_for(tmp_path / "broken", config, "--workload", "orders/orders-sa", 1)
        (finding,) = [f for f in workload["findings"] if f["code"] == "POD_ENV_CONFLICT"]
        assert "/var/run/secrets/azure/wi/token/azure-identity-token" in finding["message"]
        assert finding["remediation"] == ["kubectl set env deployment/orders-api -n orders AZURE_FEDERATED_TOKEN_FILE-"]
        paste(running_lab, finding["remediation"][0])
        fixed = wait_for_one_new_pod(running_lab, "orders", "app=orders-api", before | {preset["metadata"]["name"]})
        env = {e["name"]: e.get("value") for e in fixed["spec"]["containers"][0]["env"]}
        assert env["AZURE_FEDERATED_TOKEN_FILE"] == "/var/run/secrets/azure/wi/token/azure-identity-token"
        run_for(tmp_path / "fixed", config, "--workload", "orders/orders-sa", 0)
    finally:
        kubectl(running_lab, "-n", "orders", "set", "env", "deployment/orders-api", "AZURE_FEDERATED_TOKEN_FILE-")
        kubectl(running_lab, "-n", "kube-system", "set", "image", "deployment/azure-wi-webhook-controller-manager",
                f"manager={image}:v1.5.1")
        kubectl(running_lab, "-n", "kube-system", "rollout", "status",
                "deployment/azure-wi-webhook-controller-manager", "--timeout=60s")


def test_a_template_naming_a_service_account_that_does_not_exist_fails_and_the_printed_patch_puts_it_back(
    running_lab: RunningLab, tmp_path: Path
) -> None:
    """kubectl patch of orders-api's template to serviceAccountName orders-sa2 (a typo in a later change): the
    API server refuses every new pod ('error looking up service account orders/orders-sa2'), the old pod runs on
    under orders-sa, and the run passed. Now POD_WRONG_SERVICE_ACCOUNT (error) on workload.live_pods with the patch
    back to orders-sa; pasted, the rollout finishes and the run passes."""
    config = str(running_lab.harness_config)
    typo = json.dumps({"spec": {"template": {"spec": {"serviceAccountName": "orders-sa2"}}}})
    back = ("kubectl patch deployment/orders-api -n orders --type merge -p "
            "'{\"spec\":{\"template\":{\"spec\":{\"serviceAccountName\":\"orders-sa\"}}}}'")
    ok(running_lab, "-n", "orders", "patch", "deployment", "orders-api", "--type", "merge", "-p", typo)
    try:
        wait_for_replica_failure(running_lab, "orders", "orders-api")
        _, _, checks, workload = run_for(tmp_path / "broken", config, "--workload", "orders/orders-sa", 1)
        assert [cid for cid, c in checks.items() if c["status"] == "fail"] == ["workload.live_pods"]
        (finding,) = [f for f in workload["findings"] if f["code"] == "POD_WRONG_SERVICE_ACCOUNT"]
        assert "orders-sa2" in finding["message"] and finding["remediation"] == [back]
        paste(running_lab, back)
    finally:
        kubectl(running_lab, "-n", "orders", "patch", "deployment", "orders-api", "--type", "merge", "-p",
                json.dumps({"spec": {"template": {"spec": {"serviceAccountName": "orders-sa"}}}}))
    ok(running_lab, "-n", "orders", "rollout", "status", "deployment/orders-api", "--timeout=60s")
    run_for(tmp_path / "fixed", config, "--workload", "orders/orders-sa", 0)


def test_a_migration_proxy_asked_for_on_the_deployment_not_its_template_is_named_and_the_printed_patch_injects_it(
    running_lab: RunningLab, tmp_path: Path
) -> None:
    """``kubectl annotate deployment backend azure.workload.identity/inject-proxy-sidecar=true`` (and a
    proxy-sidecar-port), then a restart: the webhook reads the pod's annotations, made from the template, so no
    azwi-proxy is injected, and the run passed without a word. Now PROXY_SIDECAR_NOT_INJECTED (a warning) with a
    merge patch of the template's annotations; pasted, the webhook injects azwi-proxy-init and azwi-proxy on port
    8080 into the new pod, the rollout completes and the next run says nothing of the proxy."""
    config = str(running_lab.harness_config)
    inject, port = "azure.workload.identity/inject-proxy-sidecar", "azure.workload.identity/proxy-sidecar-port"
    before = {p["metadata"]["name"] for p in running_pods(running_lab, "finance", "app=backend")}
    ok(running_lab, "-n", "finance", "annotate", "deployment", "backend", f"{inject}=true", f"{port}=8080")
    printed = ("kubectl patch deployment/backend -n finance --type merge -p '{\"spec\":{\"template\":{\"metadata\":"
               "{\"annotations\":{\"azure.workload.identity/inject-proxy-sidecar\":\"true\","
               "\"azure.workload.identity/proxy-sidecar-port\":\"8080\"}}}}}'")
    try:
        ok(running_lab, "-n", "finance", "rollout", "restart", "deployment/backend")
        restarted = wait_for_one_new_pod(running_lab, "finance", "app=backend", before)
        assert [c["name"] for c in restarted["spec"]["containers"]] == ["backend"]
        _, _, checks, workload = run_for(tmp_path / "broken", config, "--workload", "finance/backend-sa", 0)
        assert checks["workload.live_pods"]["status"] == "warn", checks["workload.live_pods"]
        (finding,) = [f for f in workload["findings"] if f["code"] == "PROXY_SIDECAR_NOT_INJECTED"]
        assert "Deployment/backend's own metadata.annotations" in finding["message"]
        assert finding["remediation"][0] == printed
        paste(running_lab, printed)
        deadline = time.monotonic() + 30
        proxied: list[dict[str, Any]] = []
        while not proxied and time.monotonic() < deadline:
            pods = json.loads(ok(running_lab, "get", "pods", "-n", "finance", "-l", "app=backend", "-o", "json"))
            proxied = [p for p in pods["items"] if any(c["name"] == "azwi-proxy-init"
                                                       for c in p["spec"].get("initContainers") or [])]
            time.sleep(0.5)
        assert proxied, "the pasted patch made no pod with the migration proxy"
        spec = proxied[0]["spec"]
        sidecar = next(c for c in [*(spec.get("initContainers") or []), *spec["containers"]]
                       if c["name"] == "azwi-proxy")
        assert "--proxy-port=8080" in sidecar["args"]
        ok(running_lab, "-n", "finance", "rollout", "status", "deployment/backend", "--timeout=60s")
        _, _, checks, workload = run_for(tmp_path / "fixed", config, "--workload", "finance/backend-sa", 0)
        assert checks["workload.live_pods"]["status"] == "pass", checks["workload.live_pods"]
        assert not [f for f in workload["findings"] if f["code"].startswith("PROXY_SIDECAR")]
    finally:
        kubectl(running_lab, "-n", "finance", "annotate", "deployment", "backend", f"{inject}-", f"{port}-")
        kubectl(running_lab, "-n", "finance", "patch", "deployment", "backend", "--type", "merge", "-p",
                json.dumps({"spec": {"template": {"metadata": {"annotations": {inject: None, port: None}}}}}))
    ok(running_lab, "-n", "finance", "rollout", "status", "deployment/backend", "--timeout=60s")
