"""Probe pods: what the harness creates (Pod Security "restricted", labels, the probe's config), how their
output is parsed, how they are awaited (watch, with a polling fallback and a deadline) and swept."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fakeworld import World

from harness.clouds import KNOWN_CLOUDS
from harness.collect.kube_api import KubeError
from harness.collect.probe_pods import (
    ProbeRequest,
    await_pods,
    build_probe_pod,
    parse_probe_log,
    probe_config_for,
    run_probe_pods,
    sweep,
)
from harness.config import ProbeSettings, WorkloadConfig
from harness.facts import KubeFailure, PodFacts


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


def test_the_probe_pod_meets_pod_security_restricted() -> None:
    from lab.kube.podsecurity import evaluate  # the lab's port of k8s.io/pod-security-admission

    pod = build_probe_pod(request(), "20250101T000000Z-abcdef", "ghcr.io/wi-harness/probe:0.1.0", 120)
    assert evaluate(pod, "restricted", 32) == []
    container = pod["spec"]["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["spec"]["securityContext"]["runAsUser"] == 65532
    assert pod["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}


def test_the_probe_pod_is_labelled_configured_and_bounded() -> None:
    pod = build_probe_pod(request(), "20250101T000000Z-abcdef", "img:1", 90)
    labels = pod["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "wi-harness"
    assert labels["wi-harness/run-id"] == "20250101T000000Z-abcdef"
    assert labels["azure.workload.identity/use"] == "true"
    spec = pod["spec"]
    assert spec["serviceAccountName"] == "orders-sa"
    assert spec["restartPolicy"] == "Never" and spec["activeDeadlineSeconds"] == 90
    env = {e["name"]: e for e in spec["containers"][0]["env"]}
    config = json.loads(env["WI_PROBE_CONFIG"]["value"])
    assert config == {
        "scope": "https://vault.azure.net/.default",  # the exchange step's, from the cloud
        "timeout_seconds": 7.0,
        "sdk_cross_check": True,
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


def test_a_probe_that_never_finishes_times_out_and_is_still_deleted() -> None:
    world = World.healthy(probe_never_finishes=True)
    kube = world.backend().kube
    requests = [ProbeRequest("finance/backend-sa", "finance", "backend-sa", {})]
    clock = iter(range(0, 10_000, 5))
    pods = run_probe_pods(
        kube, requests, "run", "img", 30, monotonic=lambda: next(clock), sleep=lambda _: None
    )
    facts = pods["finance/backend-sa"]
    assert facts.timed_out and facts.deleted and facts.probe is None
    assert kube.deleted == [f"finance/{facts.name}"]  # type: ignore[attr-defined]


def test_keep_leaves_the_pods() -> None:
    kube = World.healthy().backend().kube
    pods = run_probe_pods(
        kube, [ProbeRequest("finance/backend-sa", "finance", "backend-sa", {})], "run", "img", 30, keep=True
    )
    assert not pods["finance/backend-sa"].deleted and kube.deleted == []  # type: ignore[attr-defined]


def test_sweep_deletes_only_other_runs_pods() -> None:
    kube = World.healthy().backend().kube
    for run in ("old-run", "this-run"):
        run_probe_pods(
            kube, [ProbeRequest("finance/backend-sa", "finance", "backend-sa", {})], run, "img", 30, keep=True
        )
    swept = sweep(kube, ["finance"], "this-run")
    assert len(swept) == 1 and swept[0].startswith("finance/wi-probe-backend-sa-")
    remaining = kube.list_pods("finance", "app.kubernetes.io/managed-by=wi-harness")[0]
    assert [p["metadata"]["labels"]["wi-harness/run-id"] for p in remaining] == ["this-run"]
