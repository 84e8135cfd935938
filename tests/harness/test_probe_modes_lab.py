"""End to end against the lab: the zero-build probe (probe.mode configmap, the default) runs python3 -m probe from
the run's ConfigMap in the stock Python image; the ConfigMap goes with the pods, or stays with --keep until
--sweep; an image no registry has is ErrImagePull; probe.ca_configmap is the one CA bundle the probe trusts;
probe.mode image still runs the probe image with its azure-identity cross-check."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml
from test_e2e_lab import checks_of, run_suites

from harness.collect.probe_source import probe_source_files, source_configmap_name
from harness.collect.sweep import ended_marker_name
from harness.config import STOCK_PYTHON_IMAGE

pytestmark = pytest.mark.slow
MANAGED = "app.kubernetes.io/managed-by=wi-harness"


def config_file(lab: Any, directory: Path, **probe: Any) -> str:
    """The lab's harness.yaml with ``probe`` settings changed, written into ``directory``."""
    config = yaml.safe_load((lab.state_dir / "harness.yaml").read_text())
    config["probe"].update(probe)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "harness.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def core(kube_api: Any) -> Any:
    from kubernetes import client

    return client.CoreV1Api(kube_api)


def run_objects(kube_api: Any, run_id: str) -> tuple[list[Any], list[Any]]:
    selector = f"wi-harness/run-id={run_id}"
    api = core(kube_api)
    return (api.list_namespaced_pod("finance", label_selector=selector).items,
            api.list_namespaced_config_map("finance", label_selector=selector).items)


def test_pytest_suites_lab_runs_the_probe_from_a_configmap_in_the_stock_image(tmp_path: Path) -> None:
    result, document = run_suites(tmp_path, "--lab")
    assert result.returncode == 0, result.stdout[-4000:]
    assert document["verdict"] == "pass"
    for workload in ("finance/backend-sa", "orders/orders-sa"):
        checks = checks_of(document, workload)
        launched = checks["pod.admitted"]["evidence"]
        assert launched["image"] == STOCK_PYTHON_IMAGE
        assert launched["command"] == ["python3", "-m", "probe"]
        assert launched["probe_mode"] == "configmap"
        assert launched["source_configmap"] == source_configmap_name(document["run_id"])
        assert checks["probe.completed"]["status"] == "pass"
        # a stock image has the standard library only: the SDK cross-check is image mode's
        assert checks["exchange.succeeds"]["evidence"]["sdk"] == {"available": False}


def test_the_configmap_goes_with_the_pods_or_stays_with_keep_until_swept(
    lab: Any, tmp_path: Path, kube_api: Any
) -> None:
    config = str(lab.state_dir / "harness.yaml")
    result, document = run_suites(tmp_path / "plain", "--config", config, "--workload", "finance/backend-sa")
    assert result.returncode == 0, result.stdout[-4000:]
    assert run_objects(kube_api, document["run_id"]) == ([], [])

    result, kept = run_suites(tmp_path / "kept", "--config", config, "--workload", "finance/backend-sa", "--keep")
    assert result.returncode == 0, result.stdout[-4000:]
    pods, config_maps = run_objects(kube_api, kept["run_id"])
    # beside the source, the kept run's marker that it is done with them (harness/collect/sweep.py)
    assert sorted(c.metadata.name for c in config_maps) == [ended_marker_name(kept["run_id"]),
                                                          source_configmap_name(kept["run_id"])]
    (pod,), (config_map,) = pods, [c for c in config_maps if c.metadata.name.startswith("wi-probe-src-")]
    container = pod.spec.containers[0]
    assert (container.image, container.command) == (STOCK_PYTHON_IMAGE, ["python3", "-m", "probe"])
    assert [(m.mount_path, m.read_only) for m in container.volume_mounts if m.name == "wi-probe-source"] == [
        ("/opt/wi-probe", True)
    ]
    assert config_map.metadata.name == source_configmap_name(kept["run_id"])
    assert config_map.metadata.labels["app.kubernetes.io/managed-by"] == "wi-harness"
    assert config_map.data == probe_source_files()

    result, _ = run_suites(tmp_path / "swept", "--config", config, "--workload", "finance/backend-sa", "--sweep")
    assert result.returncode == 0, result.stdout[-4000:]
    swept = re.search(r"swept \d+ leftover probe objects?: (.*)", result.stdout)
    assert swept is not None and f"finance/configmap/{config_map.metadata.name}" in swept.group(1)
    assert f"finance/{pod.metadata.name}" in swept.group(1)
    assert run_objects(kube_api, kept["run_id"]) == ([], [])


def test_a_probe_image_no_registry_has_is_err_image_pull(lab: Any, tmp_path: Path) -> None:
    image = "example.azurecr.io/mirrors/python:3.12"
    result, document = run_suites(tmp_path, "--config", str(lab.state_dir / "harness.yaml"),
                                  "--workload", "finance/backend-sa", "--probe-image", image)
    assert result.returncode == 1
    completed = checks_of(document, "finance/backend-sa")["probe.completed"]
    assert completed["evidence"]["waiting_reason"] in ("ErrImagePull", "ImagePullBackOff")
    assert "NotFound" in completed["evidence"]["waiting_message"]
    workload = next(w for w in document["workloads"] if w["id"] == "finance/backend-sa")
    finding = next(f for f in workload["findings"] if f["code"] == "PROBE_IMAGE_PULL_FAILED")
    assert any(line.startswith("az acr import") and image in line for line in finding["remediation"])


def test_probe_ca_configmap_is_the_bundle_the_probe_trusts(lab: Any, tmp_path: Path, kube_api: Any) -> None:
    from kubernetes import client

    api = core(kube_api)
    bundles = {"wi-lab-ca": (lab.state_dir / "ca.pem").read_text(),
               "wi-other-ca": trustme.CA().cert_pem.bytes().decode()}
    for name, pem in bundles.items():
        body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data={"ca.crt": pem})
        api.create_namespaced_config_map("finance", body)
    try:
        result, document = run_suites(tmp_path / "lab-ca", "--config",
                                      config_file(lab, tmp_path / "lab", ca_configmap="wi-lab-ca"),
                                      "--workload", "finance/backend-sa")
        assert result.returncode == 0, result.stdout[-4000:]

        result, document = run_suites(tmp_path / "other-ca", "--config",
                                      config_file(lab, tmp_path / "other", ca_configmap="wi-other-ca"),
                                      "--workload", "finance/backend-sa")
        assert result.returncode == 1  # the lab's own CA is no longer trusted: only the ConfigMap's bundle is
        workload = next(w for w in document["workloads"] if w["id"] == "finance/backend-sa")
        finding = next(f for f in workload["findings"] if f["code"] == "EGRESS_BLOCKED")
        assert "tls_verify" in finding["message"]
        assert any("probe.ca_configmap wi-other-ca does not hold the CA" in line for line in finding["remediation"])
    finally:
        for name in bundles:
            api.delete_namespaced_config_map(name, "finance")


def test_image_mode_runs_the_probe_image_with_its_sdk_cross_check(lab: Any, tmp_path: Path) -> None:
    config = config_file(lab, tmp_path / "config", mode="image", image="ghcr.io/wi-harness/probe:0.1.0")
    result, document = run_suites(tmp_path / "reports", "--config", config, "--workload", "finance/backend-sa")
    assert result.returncode == 0, result.stdout[-4000:]
    checks = checks_of(document, "finance/backend-sa")
    launched = checks["pod.admitted"]["evidence"]
    assert (launched["probe_mode"], launched["command"], launched["source_configmap"]) == ("image", None, None)
    sdk = checks["exchange.succeeds"]["evidence"]["sdk"]
    assert sdk["available"] is True and sdk["agrees"] is True
