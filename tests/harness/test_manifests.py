"""The other templates in manifests/: least-privilege RBAC for the harness and the in-cluster Job."""

from __future__ import annotations

from harness.manifests import render


def test_rbac_is_namespaced_for_writes() -> None:
    docs = render(
        "harness-rbac.yaml.j2",
        subject_kind="ServiceAccount",
        subject_name="wi-harness",
        subject_namespace="wi-harness",
        namespaces=["finance", "orders"],
        webhook_namespace="kube-system",
    )
    kinds = [(d["kind"], d["metadata"].get("namespace")) for d in docs]
    assert ("ClusterRole", None) in kinds and ("Role", "finance") in kinds and ("Role", "orders") in kinds
    cluster_role = next(d for d in docs if d["kind"] == "ClusterRole")
    verbs = {v for rule in cluster_role["rules"] for v in rule["verbs"]}
    assert verbs <= {"get", "list"}
    probe_role = next(d for d in docs if d["kind"] == "Role" and d["metadata"]["namespace"] == "finance")
    assert {"create", "delete", "watch"} <= set(probe_role["rules"][0]["verbs"])
    config_maps = next(rule for rule in probe_role["rules"] if rule["resources"] == ["configmaps"])
    assert set(config_maps["verbs"]) == {"create", "list", "delete"}  # probe.mode configmap's source, and --sweep
    binding = next(d for d in docs if d["kind"] == "ClusterRoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "wi-harness", "namespace": "wi-harness"}
    ]


def test_rbac_for_a_group() -> None:
    docs = render(
        "harness-rbac.yaml.j2",
        subject_kind="Group",
        subject_name="platform-team",
        subject_namespace="",
        namespaces=["finance"],
        webhook_namespace="kube-system",
    )
    binding = next(d for d in docs if d["kind"] == "RoleBinding")
    assert binding["subjects"] == [
        {"kind": "Group", "name": "platform-team", "apiGroup": "rbac.authorization.k8s.io"}
    ]


def test_the_job_runs_the_suites_under_pod_security_restricted() -> None:
    from lab.kube.podsecurity import evaluate

    docs = render(
        "harness-job.yaml.j2",
        namespace="wi-harness",
        service_account="wi-harness",
        client_id="22222222-2222-2222-2222-222222222222",
        tenant_id=None,
        image="example.azurecr.io/wi-harness:1",
        config_files={"harness.yaml": "workloads: []\n"},
        run_name="wi-harness-smoke",
        report_claim=None,
        pytest_args=["-n", "2"],
    )
    job = next(d for d in docs if d["kind"] == "Job")
    pod = {"metadata": {}, "spec": job["spec"]["template"]["spec"]}
    assert evaluate(pod, "restricted", 32) == []
    container = pod["spec"]["containers"][0]
    assert "command" not in container  # the image's entrypoint: wi-harness
    assert container["args"][:2] == ["--config", "/etc/wi-harness/harness.yaml"] and container["args"][-2:] == ["-n", "2"]
    assert "--sweep" in container["args"] and "--print-run-json" in container["args"]
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert labels["azure.workload.identity/use"] == "true" and "app.kubernetes.io/managed-by" not in labels
    account = next(d for d in docs if d["kind"] == "ServiceAccount")
    assert account["metadata"]["annotations"] == {
        "azure.workload.identity/client-id": "22222222-2222-2222-2222-222222222222"
    }
    config_map = next(d for d in docs if d["kind"] == "ConfigMap")
    assert config_map["data"]["harness.yaml"] == "workloads: []\n"
    reports = next(v for v in job["spec"]["template"]["spec"]["volumes"] if v["name"] == "reports")
    assert reports == {"name": "reports", "emptyDir": {}}


def _dockerfile_stages() -> dict[str, list[str]]:
    """The Dockerfile's instructions per build stage (FROM ... AS NAME), comments and blank lines left out."""
    from pathlib import Path

    dockerfile = (Path(__file__).resolve().parents[2] / "Dockerfile").read_text()
    stages: dict[str, list[str]] = {}
    current: list[str] = []
    for line in dockerfile.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("FROM "):
            current = stages.setdefault(line.split(" AS ", 1)[1].strip(), [])
        current.append(line)
    return stages


def test_the_probe_image_runs_the_probe_as_non_root() -> None:
    lines = _dockerfile_stages()["probe"]
    assert lines[-1] == 'ENTRYPOINT ["python", "-m", "probe"]'
    assert "USER 65532:65532" in lines
    assert any(line.startswith("COPY probe/ ") for line in lines)
    assert not any(line.startswith(("COPY harness", "COPY lab", "COPY . ")) for line in lines)


def test_the_harness_image_runs_wi_harness_as_non_root_without_the_lab() -> None:
    stages = _dockerfile_stages()
    assert stages["base"][0].startswith("FROM ${PYTHON_IMAGE} AS base")
    lines = stages["harness"]
    assert lines[-1] == 'ENTRYPOINT ["wi-harness"]'
    assert "USER 65532:65532" in lines
    build = stages["harness-wheel"]
    assert {"COPY suites/ suites/", "COPY manifests/ manifests/", "COPY harness/ harness/"} <= set(build)
    assert not any(line.startswith(("COPY lab", "COPY . ")) for line in build)  # no lab, no kubectl in the Job
