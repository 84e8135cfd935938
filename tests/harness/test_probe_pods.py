"""Probe pods: what the harness creates (Pod Security "restricted", labels, the probe's config, the source
ConfigMap of probe.mode configmap), how their output is parsed, how they are awaited (watch, with a polling
fallback and a deadline), cleaned up (also when interrupted) and swept."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakeworld import FakeKube, World

from harness.clouds import KNOWN_CLOUDS
from harness.collect.kube_api import KubeError
from harness.collect.probe_pods import (
    ProbeRequest,
    await_pods,
    build_probe_pod,
    delete_run_pods,
    parse_probe_log,
    probe_config_for,
    run_probe_pods,
    sweep,
)
from harness.collect.probe_source import (
    probe_bytecode_files,
    probe_source_files,
    source_configmap,
    source_configmap_name,
)
from harness.collect.sweep import ended_marker_name
from harness.config import STOCK_PYTHON_IMAGE, ProbeSettings, WorkloadConfig
from harness.facts import KubeFailure, PodFacts
from harness.values import is_object_name, parse_quantity

REPO = Path(__file__).resolve().parents[2]
RUN = "20250101T000000Z-abcdef"


def request() -> ProbeRequest:
    workload = WorkloadConfig.model_validate(
        {
            "namespace": "orders",
            "service_account": "orders-sa",
            "access": [
                {
                    "kind": "blob",
                    "account_url": "https://a.blob.core.windows.net/",
                    "container": "c",
                    "blob": "b",
                    "expect": "allow",
                }
            ],
        }
    )
    settings = ProbeSettings(ca_file="/etc/ssl/lab-ca.pem", request_timeout_seconds=7)
    return ProbeRequest(
        workload.id,
        workload.namespace,
        workload.service_account,
        probe_config_for(workload, settings, KNOWN_CLOUDS["AzureCloud"]),
    )


def settings(**fields: Any) -> ProbeSettings:
    return ProbeSettings.model_validate({"timeout_seconds": 90, **fields})


EVERYTHING = {  # every knob of probe: that shapes the pod
    "ca_configmap": {"name": "proxy-ca", "key": "bundle.pem"},
    "resources": {"limits": {"memory": "256Mi"}},
    "node_selector": {"agentpool": "system"},
    "tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists", "effect": "NoSchedule"}],
    "labels": {"cost-center": "platform"},
    "annotations": {"example.com/owner": "platform team"},
    "image_pull_secrets": ["mirror-pull", "mirror-pull"],
}


@pytest.mark.parametrize(
    "fields",
    [{}, {"mode": "image", "image": "ghcr.io/wi-harness/probe:0.1.0"}, EVERYTHING],
    ids=["configmap", "image", "configmap-with-every-knob"],
)
def test_the_probe_pod_meets_pod_security_restricted(fields: dict[str, Any]) -> None:
    from lab.kube.podsecurity import evaluate  # the lab's port of k8s.io/pod-security-admission

    pod = build_probe_pod(request(), RUN, settings(**fields))
    assert evaluate(pod, "restricted", 32) == []
    container = pod["spec"]["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["spec"]["securityContext"]["runAsUser"] == 65532
    assert pod["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert all(mount["readOnly"] is True for mount in container.get("volumeMounts") or [])


def test_the_probe_pod_is_labelled_configured_and_bounded() -> None:
    pod = build_probe_pod(request(), RUN, settings())
    labels = pod["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "wi-harness"
    assert labels["wi-harness/run-id"] == RUN
    assert labels["azure.workload.identity/use"] == "true"
    spec = pod["spec"]
    assert spec["serviceAccountName"] == "orders-sa"
    assert spec["restartPolicy"] == "Never" and spec["activeDeadlineSeconds"] == 90
    env = {e["name"]: e for e in spec["containers"][0]["env"]}
    config = json.loads(env["WI_PROBE_CONFIG"]["value"])
    assert config == {
        "scope": "https://vault.azure.net/.default",  # the exchange step's, from the cloud
        "authority_hosts": ["login.microsoftonline.com"],  # the token is exchanged at the cloud's Entra only
        "timeout_seconds": 7.0,
        "sdk_cross_check": True,
        "retry_seconds": 30,
        "ca_file": "/etc/ssl/lab-ca.pem",
        "checks": [
            {
                "kind": "blob",
                "account_url": "https://a.blob.core.windows.net/",
                "container": "c",
                "blob": "b",
                "expect": "allow",
                "scope": "https://storage.azure.com/.default",
                "allowed_hosts": [".blob.core.windows.net"],
            }
        ],
    }
    assert not any(name.startswith("AZURE_") for name in env)  # the webhook's job, never preset
    assert len(pod["metadata"]["name"]) <= 63 and pod["metadata"]["name"].startswith("wi-probe-orders-sa-")


def test_configmap_mode_runs_python3_from_the_run_s_configmap_in_the_stock_image() -> None:
    pod = build_probe_pod(request(), RUN, settings())
    container = pod["spec"]["containers"][0]
    assert container["image"] == STOCK_PYTHON_IMAGE
    assert STOCK_PYTHON_IMAGE.startswith("mcr.microsoft.com/") and "@sha256:" in STOCK_PYTHON_IMAGE
    assert container["command"] == ["python3", "-m", "probe"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PYTHONPATH"] == "/opt/wi-probe" and env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert container["volumeMounts"] == [{"name": "wi-probe-source", "mountPath": "/opt/wi-probe", "readOnly": True}]
    (volume,) = pod["spec"]["volumes"]
    assert volume["configMap"]["name"] == source_configmap_name(RUN)
    assert volume["configMap"]["defaultMode"] == 0o444
    items = volume["configMap"]["items"]
    files = probe_source_files()
    bytecode = probe_bytecode_files(files)
    assert bytecode and {item["key"] for item in items} == set(files) | set(bytecode)
    assert all(item["path"] == f"probe/{item['key']}" for item in items if item["key"] in files)
    assert all(item["path"] == f"probe/__pycache__/{item['key']}" for item in items if item["key"] in bytecode)
    assert set(bytecode) == {f"{name[:-3]}.{sys.implementation.cache_tag}.pyc" for name in files}


def test_image_mode_runs_the_image_s_own_entrypoint_and_probe_image_overrides_the_image() -> None:
    image_mode = build_probe_pod(request(), RUN, settings(mode="image", image="example.azurecr.io/wi-probe:1"))
    container = image_mode["spec"]["containers"][0]
    assert container["image"] == "example.azurecr.io/wi-probe:1"
    assert "command" not in container and "volumes" not in image_mode["spec"]
    assert "PYTHONPATH" not in {e["name"] for e in container["env"]}
    override = build_probe_pod(request(), RUN, settings(), image="python:3.12-slim")  # --probe-image
    assert override["spec"]["containers"][0]["image"] == "python:3.12-slim"
    assert override["spec"]["containers"][0]["command"] == ["python3", "-m", "probe"]


def test_the_probe_has_a_cpu_limit_and_resources_merge_over_the_defaults() -> None:
    default = build_probe_pod(request(), RUN, settings())["spec"]["containers"][0]["resources"]
    assert default == {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"cpu": "200m", "memory": "128Mi"}}
    tuned = build_probe_pod(request(), RUN, settings(**EVERYTHING))["spec"]["containers"][0]["resources"]
    assert tuned == {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"cpu": "200m", "memory": "256Mi"}}
    for section in tuned.values():
        assert all(parse_quantity(quantity) is not None for quantity in section.values())


def test_node_selector_tolerations_labels_and_annotations_reach_the_pod() -> None:
    pod = build_probe_pod(request(), RUN, settings(**EVERYTHING))
    meta, spec = pod["metadata"], pod["spec"]
    assert spec["nodeSelector"] == {"kubernetes.io/os": "linux", "agentpool": "system"}
    assert spec["tolerations"] == [{"key": "CriticalAddonsOnly", "operator": "Exists", "effect": "NoSchedule"}]
    assert meta["labels"]["cost-center"] == "platform" and meta["labels"]["wi-harness/run-id"] == RUN
    assert meta["annotations"] == {"example.com/owner": "platform team", "wi-harness/workload": "orders/orders-sa"}
    assert "tolerations" not in build_probe_pod(request(), RUN, settings())["spec"]
    assert spec["imagePullSecrets"] == [{"name": "mirror-pull"}]
    assert "imagePullSecrets" not in build_probe_pod(request(), RUN, settings())["spec"]


def test_the_ca_configmap_is_mounted_and_is_the_probe_s_ca_file() -> None:
    workload = WorkloadConfig(namespace="orders", service_account="orders-sa")
    probe_settings = settings(ca_configmap={"name": "proxy-ca", "key": "bundle.pem"})
    config = probe_config_for(workload, probe_settings, KNOWN_CLOUDS["AzureCloud"])
    assert config["ca_file"] == "/etc/wi-probe/ca/bundle.pem"
    pod = build_probe_pod(ProbeRequest(workload.id, "orders", "orders-sa", config), RUN, probe_settings)
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    # optional: a missing ConfigMap lets the probe start and name the CA file it cannot read
    assert volumes["wi-probe-ca"]["configMap"] == {"name": "proxy-ca", "optional": True, "defaultMode": 0o444}
    mounts = {m["name"]: m for m in pod["spec"]["containers"][0]["volumeMounts"]}
    assert mounts["wi-probe-ca"] == {"name": "wi-probe-ca", "mountPath": "/etc/wi-probe/ca", "readOnly": True}
    from probe.config import parse

    assert parse(config, "WI_PROBE_CONFIG").ca_file == "/etc/wi-probe/ca/bundle.pem"  # raw exchange and SDK
    assert settings(ca_configmap="proxy-ca").ca_configmap.key == "ca.crt"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "fields, problem",
    [
        ({"labels": {"app.kubernetes.io/managed-by": "me"}}, "set by the harness"),
        ({"labels": {"azure.workload.identity/use": "false"}}, "set by the harness"),
        ({"labels": {"wi-harness/anything": "x"}}, "set by the harness"),
        ({"labels": {"team": "has space"}}, "label value"),
        ({"labels": {"-bad": "x"}}, "label key"),
        ({"node_selector": {"Bad_Prefix.io/x": "y"}}, "prefix"),
        ({"annotations": {"wi-harness/workload": "x"}}, "set by the harness"),
        ({"annotations": {"azure.workload.identity/skip-containers": "probe"}}, "webhook"),
        ({"tolerations": [{"operator": "Equal", "value": "x"}]}, "operator must be Exists"),
        ({"tolerations": [{"key": "k", "effect": "NoSchedule", "tolerationSeconds": 5}]}, "NoExecute"),
        ({"tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]}, "value must be empty"),
        ({"resources": {"limits": {"cpu": "lots"}}}, "quantity"),
        ({"resources": {"requests": {"memory": "1Gi"}}}, "less than or equal"),
        ({"mode": "image"}, "set image"),
        ({"ca_file": "/x.pem", "ca_configmap": "proxy-ca"}, "one of ca_file, ca_configmap"),
        ({"ca_configmap": "Not_A_Name"}, "DNS-1123"),
        ({"image_pull_secrets": ["Mirror_Pull"]}, "DNS-1123"),
    ],
)
def test_probe_settings_are_checked_as_the_api_server_would(fields: dict[str, Any], problem: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=problem):
        ProbeSettings.model_validate(fields)


def test_the_source_configmap_holds_the_installed_probe_and_is_labelled_like_its_pods() -> None:
    files = probe_source_files()
    assert files == {path.name: path.read_text() for path in sorted((REPO / "probe").glob("*.py"))}
    config_map = source_configmap("orders", RUN, {"cost-center": "platform"})
    assert is_object_name(config_map["metadata"]["name"]) and config_map["metadata"]["namespace"] == "orders"
    assert config_map["metadata"]["labels"] == {
        "cost-center": "platform",
        "app.kubernetes.io/name": "wi-probe",
        "app.kubernetes.io/managed-by": "wi-harness",
        "wi-harness/run-id": RUN,
    }
    assert config_map["data"] == files and config_map["immutable"] is True
    assert {name: base64.b64decode(data) for name, data in config_map["binaryData"].items()} == (
        probe_bytecode_files(files)
    )


def test_the_configmap_s_files_alone_are_a_runnable_stdlib_probe(tmp_path: Path) -> None:
    """As in the pod: the ConfigMap's keys at probe/<key>, PYTHONPATH at their parent, no site-packages (-S: a
    stock image has no azure-identity), nothing of this repository on the path."""
    package = tmp_path / "probe"
    (package / "__pycache__").mkdir(parents=True)
    config_map = source_configmap("orders", RUN, {})
    for name, text in config_map["data"].items():
        (package / name).write_text(text)
    for name, data in config_map["binaryData"].items():
        (package / "__pycache__" / name).write_bytes(base64.b64decode(data))
    (package / "__pycache__").chmod(0o555)  # read-only, as mounted
    result = subprocess.run(
        [sys.executable, "-S", "-v", "-m", "probe", "--config-json", '{"checks": []}'],
        cwd=tmp_path, env={"PYTHONPATH": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True, text=True, timeout=60,
    )
    doc, error = parse_probe_log(result.stdout)
    assert error is None, result.stdout + result.stderr
    assert doc is not None and doc["steps"][0] == {**doc["steps"][0], "name": "config", "status": "pass"}
    assert result.returncode == 1  # no webhook env outside a pod: the env step fails, as it should
    # -v: importlib says where each module's code came from; the shipped bytecode, not a compile of the source
    loaded = re.findall(r"^# code object from '?([^'\n]+)'?$", result.stderr, re.M)
    probe_code = [path for path in loaded if f"{package}{os.sep}" in path]
    assert probe_code and all(path.endswith(".pyc") for path in probe_code), probe_code
    assert {p.name for p in (package / "__pycache__").iterdir()} == set(config_map["binaryData"])  # none written


def test_bytecode_that_does_not_match_its_source_is_not_run(tmp_path: Path) -> None:
    """Hash-checked: a stale .pyc beside changed source is compiled anew from the source, never run."""
    package = tmp_path / "probe"
    (package / "__pycache__").mkdir(parents=True)
    stale = probe_bytecode_files({"__init__.py": "WHICH = 'stale bytecode'\n"})
    (package / "__init__.py").write_text("WHICH = 'source'\n")
    for name, data in stale.items():
        (package / "__pycache__" / name).write_bytes(data)
    result = subprocess.run([sys.executable, "-S", "-c", "import probe; print(probe.WHICH)"], cwd=tmp_path,
                            env={"PYTHONPATH": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"},
                            capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "source", result.stderr
    assert [path.read_bytes() for path in (package / "__pycache__").iterdir()] == list(stale.values())


def test_the_probe_config_is_one_the_probe_accepts() -> None:
    from probe.config import parse

    parsed = parse(request().probe_config, "WI_PROBE_CONFIG")
    assert parsed.checks[0].kind == "blob" and parsed.timeout_seconds == 7.0


@pytest.mark.parametrize(
    "text, ok",
    [
        ('{"schema": "wi-probe/v1", "steps": []}\n', True),
        (
            'wi-probe: invalid probe config: x\n{\n  "schema": "wi-probe/v1",\n'
            '  "steps": [{"name": "config"}]\n}\n',
            True,
        ),
        ('{"schema": "other"}\n{"schema": "wi-probe/v1", "steps": []}', True),
        ("Traceback (most recent call last):\n  boom\n", False),
        ('{"schema": "wi-probe/v1", "steps": "no"}', False),
        ("", False),
    ],
)
def test_parse_probe_log(text: str, ok: bool) -> None:
    doc, error = parse_probe_log(text)
    assert (doc is not None) is ok
    assert (error is None) is ok


class WatchlessKube:
    """A pod that succeeds on the third list; watching is not supported (405)."""

    def __init__(self) -> None:
        self.lists = 0

    def list_pods(self, namespace: str | None, label_selector: str) -> tuple[list[dict[str, Any]], str]:
        self.lists += 1
        phase = "Succeeded" if self.lists >= 3 else "Running"
        return [{"metadata": {"name": "p"}, "status": {"phase": phase}}], "1"

    def watch_pods(self, *args: Any) -> Iterator[tuple[str, dict[str, Any]]]:
        raise KubeError(KubeFailure(405, "MethodNotAllowed", "watch not supported"))
        yield  # pragma: no cover


def test_await_falls_back_to_polling_when_watch_fails() -> None:
    kube = WatchlessKube()
    facts = PodFacts("ns", "p", created=True)
    await_pods(kube, [facts], "run", deadline=1e12, sleep=lambda _: None)  # type: ignore[arg-type]
    assert facts.phase == "Succeeded" and not facts.timed_out and kube.lists == 3


def test_await_gives_up_at_the_deadline() -> None:
    clock = iter(range(0, 1000, 10))
    kube = WatchlessKube()
    kube.lists = -100  # never succeeds in time
    facts = PodFacts("ns", "p", created=True)
    await_pods(
        kube,
        [facts],
        "run",
        deadline=35,
        monotonic=lambda: next(clock),  # type: ignore[arg-type]
        sleep=lambda _: None,
    )
    assert facts.timed_out and facts.phase == "Running"


class DownKube:
    """An API server the client stopped asking: the watch broke, then no connection could be opened (final)."""

    def __init__(self) -> None:
        self.calls = 0

    def list_pods(self, namespace: str | None, label_selector: str) -> tuple[list[dict[str, Any]], str]:
        self.calls += 1
        raise KubeError(KubeFailure(0, "Unreachable", "no answer from the API server 10.0.0.1:443: refused"),
                        final=True)

    def watch_pods(self, *args: Any) -> Iterator[tuple[str, dict[str, Any]]]:
        raise KubeError(KubeFailure(0, "WatchBroken", "the pod watch broke"))
        yield  # pragma: no cover


def test_an_api_server_the_client_gave_up_on_is_not_polled_to_the_deadline() -> None:
    """A control-plane restart mid-run: the harness does not ask again this run, so waiting out the probe's deadline
    (minutes) only delays the end of the run and the clean-up that finds the API server back."""
    kube, slept, clock = DownKube(), [], iter(range(10_000))
    facts = PodFacts("ns", "p", created=True)
    await_pods(kube, [facts], "run", deadline=100, monotonic=lambda: next(clock),  # type: ignore[arg-type]
               sleep=slept.append)
    assert not slept and kube.calls <= 3
    # not a timeout: what the harness could not read, and why (the check names the API server)
    assert not facts.timed_out and facts.probe_error is not None
    assert facts.probe_error.startswith("could not read the probe's log: 0 Unreachable: no answer from the API server")


class ForgetfulWatchKube:
    """Watches that end before the pod settles, each as a real API server or network ends them: an ERROR event
    carrying a 410 Expired Status (the watch cache's "too old resource version", sent as an event: apiserver's
    cacher.Watch returns newErrWatcher), the stream broken mid-way, then a 410 answered as the watch request's own
    status (the kubernetes client's ApiException 410); the fourth watch sees the pod succeed."""

    EXPIRED = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "too old resource version: 5 (9)", "reason": "Expired", "code": 410}

    def __init__(self) -> None:
        self.lists, self.watches, self.slept = 0, 0, 0

    def list_pods(self, namespace: str | None, label_selector: str) -> tuple[list[dict[str, Any]], str]:
        self.lists += 1  # polling would see the pod succeed at the tenth list (a bound for the test, no hang)
        return [{"metadata": {"name": "p"}, "status": {"phase": "Succeeded" if self.lists >= 10 else "Running"}}], \
            str(self.lists)

    def watch_pods(self, *args: Any) -> Iterator[tuple[str, dict[str, Any]]]:
        self.watches += 1
        if self.watches == 1:
            yield "ERROR", self.EXPIRED
        elif self.watches == 2:
            raise KubeError(KubeFailure(0, "WatchBroken", "the pod watch broke: ProtocolError: Connection broken"))
        elif self.watches == 3:
            raise KubeError(KubeFailure(410, "Expired", "too old resource version: 5 (9)"))
        else:
            yield "MODIFIED", {"metadata": {"name": "p"}, "status": {"phase": "Succeeded"}}


def test_a_watch_that_expires_or_drops_is_listed_and_watched_again() -> None:
    """A 410 (as an event or as the answer) or a broken stream: the pods are listed again and the watch resumes from
    the new list's resourceVersion, as client-go's reflector does; the run neither fails nor turns to polling, and
    the pod's verdict is the one it reached."""
    kube = ForgetfulWatchKube()

    def sleep(_: float) -> None:
        kube.slept += 1

    facts = PodFacts("ns", "p", created=True)
    await_pods(kube, [facts], "run", deadline=1e12, sleep=sleep)  # type: ignore[arg-type]
    assert facts.phase == "Succeeded" and not facts.timed_out and facts.waiting_message is None
    assert (kube.watches, kube.lists) == (4, 4)  # each relist was followed by a watch, none by a poll
    assert kube.slept == 2  # the first relist at once, the next ones paced


class ManyNamespacesKube:
    """Twenty namespaces with one probe pod each: the first's is running (its watch ends with it succeeding), the
    others' have succeeded by the time anyone looks. Each list takes a moment; how many run at once is recorded.
    A list of every namespace (``None``) answers 403 unless ``cluster_wide``."""

    def __init__(self, cluster_wide: bool = True) -> None:
        import threading

        self.lock = threading.Lock()
        self.running = self.most = self.watches = 0
        self.lists: list[str] = []
        self.cluster_wide = cluster_wide

    def list_pods(self, namespace: str | None, label_selector: str) -> tuple[list[dict[str, Any]], str]:
        import time

        with self.lock:
            self.lists.append(str(namespace))
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(0.02)
        with self.lock:
            self.running -= 1
        if namespace is None and not self.cluster_wide:
            raise KubeError(KubeFailure(403, "Forbidden", 'pods is forbidden: User "u" cannot list resource "pods" '
                                        'in API group "" at the cluster scope'))
        return [self._pod(ns) for ns in ([namespace] if namespace else [f"ns{i:02d}" for i in range(20)])], "1"

    def _pod(self, namespace: str) -> dict[str, Any]:
        phase = "Running" if namespace == "ns00" and self.watches == 0 else "Succeeded"
        return {"metadata": {"name": f"p-{namespace}", "namespace": namespace}, "status": {"phase": phase}}

    def watch_pods(self, namespace: str, *args: Any) -> Iterator[tuple[str, dict[str, Any]]]:
        self.watches += 1
        yield "MODIFIED", {"metadata": {"name": f"p-{namespace}"}, "status": {"phase": "Succeeded"}}


def test_the_run_s_pods_of_every_namespace_are_looked_at_in_one_list() -> None:
    """Namespaces were awaited one after another: after the first pod settled, each other namespace's list waited
    for the one before it (at 50 workloads, 49 round trips in a row), and later each few namespaces were listed
    again at every turn (about 80 lists at 50 workloads). The run's pods of every namespace are one list now (the
    run-id label), and only a namespace still unsettled is watched."""
    kube = ManyNamespacesKube()
    pods = [PodFacts(f"ns{i:02d}", f"p-ns{i:02d}", created=True) for i in range(20)]
    await_pods(kube, pods, "run", deadline=1e12, sleep=pytest.fail)  # type: ignore[arg-type]
    assert all(f.phase == "Succeeded" and not f.timed_out for f in pods)
    assert kube.watches == 1 and kube.lists == ["None"]


def test_without_a_cluster_wide_list_the_namespaces_are_looked_at_together() -> None:
    """A user whose roles are namespaced only (403 for a list of every namespace): the namespaces are listed
    several at once, each once, and only a namespace still unsettled is watched."""
    kube = ManyNamespacesKube(cluster_wide=False)
    pods = [PodFacts(f"ns{i:02d}", f"p-ns{i:02d}", created=True) for i in range(20)]
    await_pods(kube, pods, "run", deadline=1e12, sleep=pytest.fail)  # type: ignore[arg-type]
    assert all(f.phase == "Succeeded" and not f.timed_out for f in pods)
    assert kube.watches == 1 and kube.most > 1
    assert kube.lists[0] == "None"  # asked once, refused
    assert sorted(kube.lists[1:]) == sorted(f.namespace for f in pods)  # then each namespace listed once


class TwoNamespaceKube:
    """finance's pod never leaves Pending (no node takes it); orders' pod has succeeded already. Watching is
    not supported, so the harness polls."""

    def list_pods(self, namespace: str | None, label_selector: str) -> tuple[list[dict[str, Any]], str]:
        finance = {"metadata": {"name": "f", "namespace": "finance"}, "status": {"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
             "message": "0/1 nodes are available: 1 node(s) were unschedulable."}]}}
        orders = {"metadata": {"name": "o", "namespace": "orders"}, "status": {"phase": "Succeeded"}}
        return [pod for pod in (finance, orders) if namespace in (None, pod["metadata"]["namespace"])], "1"

    def watch_pods(self, *args: Any) -> Iterator[tuple[str, dict[str, Any]]]:
        raise KubeError(KubeFailure(405, "MethodNotAllowed", "watch not supported"))
        yield  # pragma: no cover


def test_a_namespace_whose_pods_never_settle_does_not_hide_the_next_namespaces_pods() -> None:
    """The namespaces are watched one after another within one deadline: finance's unschedulable pod held it to
    the end and orders' pod, which had succeeded, was never read (PROBE_TIMEOUT for a working workload). Each pod
    not settled at the deadline is read once more."""
    clock = iter(range(0, 1000, 10))
    finance, orders = PodFacts("finance", "f", created=True), PodFacts("orders", "o", created=True)
    await_pods(TwoNamespaceKube(), [finance, orders], "run", deadline=35,  # type: ignore[arg-type]
               monotonic=lambda: next(clock), sleep=lambda _: None)
    assert finance.timed_out and finance.phase == "Pending"
    assert not orders.timed_out and orders.phase == "Succeeded"


class PendingKube:
    """One pod that stays Pending, bound to a node (ContainerCreating) or taken by none (Unschedulable); each list
    notes the clock. Watching is not supported, so the harness polls."""

    def __init__(self, node: str | None, clock: Iterator[int]) -> None:
        self.node, self.clock = node, clock
        self.listed_at: list[int] = []

    def list_pods(self, namespace: str | None, label_selector: str) -> tuple[list[dict[str, Any]], str]:
        self.listed_at.append(next(self.clock))
        pod: dict[str, Any] = {"metadata": {"name": "p"}, "spec": {}, "status": {"phase": "Pending"}}
        if self.node:
            pod["spec"]["nodeName"] = self.node
        else:
            pod["status"]["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                            "message": "0/1 nodes are available: 1 node(s) were unschedulable."}]
        return [pod], "1"

    def watch_pods(self, *args: Any) -> Iterator[tuple[str, dict[str, Any]]]:
        raise KubeError(KubeFailure(405, "MethodNotAllowed", "watch not supported"))
        yield  # pragma: no cover


@pytest.mark.parametrize(("node", "awaited_to_the_deadline"), [(None, False), ("aks-nodepool1-0", True)])
def test_a_pod_no_node_took_is_given_up_at_its_active_deadline_a_bound_one_at_the_grace(
    node: str | None, awaited_to_the_deadline: bool
) -> None:
    """activeDeadlineSeconds is the bound kubelet's to enforce: a pod no node took stays Pending past it, so the
    grace beyond it (for a kubelet to report the pod Failed) is not waited out for it; a pod a node took is."""
    ticks = iter(range(0, 1000, 5))
    kube = PendingKube(node, ticks)
    facts = PodFacts("ns", "p", created=True)
    await_pods(kube, [facts], "run", deadline=45, monotonic=lambda: next(ticks),  # type: ignore[arg-type]
               sleep=lambda _: None, unbound_by=30)
    assert facts.timed_out and facts.phase == "Pending"
    assert (kube.listed_at[-1] > 45) is awaited_to_the_deadline, kube.listed_at


def one_request() -> list[ProbeRequest]:
    return [ProbeRequest("finance/backend-sa", "finance", "backend-sa", {})]


def test_a_probe_that_never_finishes_times_out_and_is_still_deleted() -> None:
    world = World.healthy(probe_never_finishes=True)
    kube = world.backend().kube
    clock = iter(range(0, 10_000, 5))
    pods = run_probe_pods(
        kube, one_request(), "run", settings(timeout_seconds=30), monotonic=lambda: next(clock), sleep=lambda _: None
    )
    facts = pods["finance/backend-sa"]
    assert facts.timed_out and facts.deleted and facts.probe is None
    assert kube.deleted == [f"finance/{facts.name}"]  # type: ignore[attr-defined]
    assert kube.config_maps == {}  # type: ignore[attr-defined]


def test_each_namespace_s_source_configmap_is_created_before_its_pods_and_deleted_after_them() -> None:
    kube = World.healthy().backend().kube
    requests = [
        ProbeRequest("finance/backend-sa", "finance", "backend-sa", {}),
        ProbeRequest("finance/other-sa", "finance", "backend-sa", {}),
        ProbeRequest("orders/orders-sa", "orders", "orders-sa", {}),
    ]
    pods = run_probe_pods(kube, requests, RUN, settings())
    assert list(pods) == [r.workload_id for r in requests]  # the requests' order, whatever order they ran in
    assert all(facts.probe is not None and facts.deleted for facts in pods.values())  # the pods could mount it
    events = kube.events  # type: ignore[attr-defined]
    name = source_configmap_name(RUN)
    creates = [e for e in events if e.startswith("create configmap")]
    assert sorted(creates) == [f"create configmap finance/{name}", f"create configmap orders/{name}"]  # one each
    for namespace in ("finance", "orders"):
        pod_events = [i for i, e in enumerate(events) if e.startswith(("create pod", "delete pod"))
                      and f" {namespace}/" in e]
        assert pod_events
        assert events.index(f"create configmap {namespace}/{name}") < min(pod_events)
        assert events.index(f"delete configmap {namespace}/{name}") > max(pod_events)
    assert kube.config_maps == {}  # type: ignore[attr-defined]


def test_image_mode_creates_no_configmap() -> None:
    kube = World.healthy().backend().kube
    pods = run_probe_pods(kube, one_request(), RUN, settings(mode="image", image="ghcr.io/wi-harness/probe:1"))
    assert pods["finance/backend-sa"].probe is not None
    assert not any("configmap" in event for event in kube.events)  # type: ignore[attr-defined]


def test_a_refused_source_configmap_is_the_pod_s_failure_and_no_pod_is_sent() -> None:
    class NoConfigMaps(FakeKube):
        def create_config_map(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
            raise KubeError(KubeFailure(403, "Forbidden", 'configmaps is forbidden: User "ci" cannot create '
                                        'resource "configmaps" in API group "" in the namespace "finance"'))

    kube = NoConfigMaps(World.healthy())
    facts = run_probe_pods(kube, one_request(), RUN, settings())["finance/backend-sa"]
    assert not facts.created and facts.refused_resource == "configmaps"
    assert facts.create_error is not None and facts.create_error.status == 403
    assert kube.created == []


def test_keep_leaves_the_pods_and_their_configmap() -> None:
    kube = World.healthy().backend().kube
    pods = run_probe_pods(kube, one_request(), "run", settings(), keep=True)
    assert not pods["finance/backend-sa"].deleted and kube.deleted == []  # type: ignore[attr-defined]
    assert list(kube.config_maps) == [  # type: ignore[attr-defined]
        ("finance", source_configmap_name("run")), ("finance", ended_marker_name("run"))  # the run says it is done
    ]


class InterruptedKube(FakeKube):
    """Ctrl-C (or SIGTERM, which the plugin turns into KeyboardInterrupt) while the probe pods run."""

    def watch_pods(self, *args: Any) -> Iterator[tuple[str, dict[str, Any]]]:
        raise KeyboardInterrupt
        yield  # pragma: no cover


def test_an_interrupted_run_deletes_its_pods_and_configmaps() -> None:
    kube = InterruptedKube(World.healthy(probe_never_finishes=True))
    requests = [*one_request(), ProbeRequest("orders/orders-sa", "orders", "orders-sa", {})]
    with pytest.raises(KeyboardInterrupt):
        run_probe_pods(kube, requests, RUN, settings())
    assert kube.pods == {} and kube.config_maps == {}
    assert sorted(kube.deleted_config_maps) == [f"{ns}/{source_configmap_name(RUN)}" for ns in ("finance", "orders")]


def test_delete_run_pods_removes_only_this_run_s_pods_and_configmaps() -> None:
    kube = World.healthy().backend().kube
    for run in ("other-run", RUN):
        run_probe_pods(kube, one_request(), run, settings(), keep=True)
    delete_run_pods(kube, ["finance"], RUN)  # what the plugin calls when a run ends abruptly
    assert [p["metadata"]["labels"]["wi-harness/run-id"] for p in kube.pods.values()] == ["other-run"]  # type: ignore[attr-defined]
    assert sorted(kube.config_maps) == [  # type: ignore[attr-defined]
        ("finance", ended_marker_name("other-run")), ("finance", source_configmap_name("other-run"))
    ]


def test_sweep_deletes_only_other_runs_pods_and_configmaps() -> None:
    kube = World.healthy().backend().kube
    for run in ("old-run", "this-run"):
        run_probe_pods(kube, one_request(), run, settings(), keep=True)
    job_config = {"metadata": {"name": "wi-harness-config", "labels": {"app.kubernetes.io/managed-by": "wi-harness"}}}
    kube.create_config_map("finance", job_config)  # the in-cluster Job's harness.yaml: not a run's
    for obj in [*kube.pods.values(), *kube.config_maps.values()]:  # type: ignore[attr-defined]
        obj["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"  # long past every deadline
    swept = sweep(kube, ["finance"], "this-run")
    assert len(swept) == 3 and swept[0].startswith("finance/wi-probe-backend-sa-")
    assert swept[1:] == [f"finance/configmap/{source_configmap_name('old-run')}",
                         f"finance/configmap/{ended_marker_name('old-run')}"]
    remaining = kube.list_pods("finance", "app.kubernetes.io/managed-by=wi-harness")[0]
    assert [p["metadata"]["labels"]["wi-harness/run-id"] for p in remaining] == ["this-run"]
    assert sorted(name for _, name in kube.config_maps) == sorted(  # type: ignore[attr-defined]
        [source_configmap_name("this-run"), ended_marker_name("this-run"), "wi-harness-config"]
    )


def test_sweep_names_a_leftover_its_finalizers_keep_and_does_not_delete_it_again() -> None:
    """A probe pod deleted already and kept Terminating by a finalizer (its controller gone): --sweep does not
    claim it gone, nor send another delete; a leftover with a finalizer still deleted is named the same way."""
    kube = World.healthy().backend().kube
    for run in ("old-run", "held-run"):
        run_probe_pods(kube, one_request(), run, settings(), keep=True)
    pods = {p["metadata"]["labels"]["wi-harness/run-id"]: p for p in kube.pods.values()}  # type: ignore[attr-defined]
    for obj in [*kube.pods.values(), *kube.config_maps.values()]:  # type: ignore[attr-defined]
        obj["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    pods["old-run"]["metadata"]["finalizers"] = ["example.com/audit"]
    pods["held-run"]["metadata"].update(finalizers=["example.com/audit"], deletionTimestamp="2026-01-01T00:05:00Z")
    swept = sweep(kube, ["finance"], "this-run")
    held = [line for line in swept if "not gone" in line]
    assert len(held) == 2, swept
    name = pods["held-run"]["metadata"]["name"]
    assert f"finance/{name} (not gone: finalizers example.com/audit keep it Terminating until their controller " \
           f"removes them; kubectl get pod -n finance {name} -o yaml shows them)" in held
    remaining = [p["metadata"]["name"] for p in kube.list_pods("finance", "app.kubernetes.io/managed-by=wi-harness")[0]]
    assert remaining == [name]  # the fake has no finalizers: the one already marked was not deleted again
