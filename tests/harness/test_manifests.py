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
        image="example.azurecr.io/wi-harness:1",
        config_yaml="workloads: []\n",
        run_name="wi-harness-smoke",
        pytest_args=["-n", "2"],
    )
    job = next(d for d in docs if d["kind"] == "Job")
    pod = {"metadata": {}, "spec": job["spec"]["template"]["spec"]}
    assert evaluate(pod, "restricted", 32) == []
    command = pod["spec"]["containers"][0]["command"]
    assert command[:4] == ["python", "-m", "pytest", "suites"] and command[-2:] == ["-n", "2"]
    config_map = next(d for d in docs if d["kind"] == "ConfigMap")
    assert config_map["data"]["harness.yaml"] == "workloads: []\n"


def test_the_probe_image_runs_the_probe_as_non_root() -> None:
    from pathlib import Path

    dockerfile = (Path(__file__).resolve().parents[2] / "Dockerfile").read_text()
    lines = [line.strip() for line in dockerfile.splitlines() if line.strip() and not line.startswith("#")]
    assert lines[-1] == 'ENTRYPOINT ["python", "-m", "probe"]'
    assert "USER 65532:65532" in lines
    assert any(line.startswith("COPY probe/ ") for line in lines)
    assert not any(line.startswith(("COPY harness", "COPY lab", "COPY . ")) for line in lines)
