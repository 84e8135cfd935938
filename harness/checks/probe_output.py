"""Probe checks: the probe pod ran to the end and printed its report; the container saw the env as
admitted."""

from __future__ import annotations

from typing import Any

from harness.checks import remediation as fix
from harness.checks.common import missing_probe_step
from harness.checks.context import WorkloadContext
from harness.checks.model import ERROR, Finding, Outcome, failed, passed
from harness.checks.podspec import env_map
from harness.commands import advice
from harness.names import FATAL_WAITING, INJECTED_ENV


def probe_completed(ctx: WorkloadContext) -> Outcome:
    pod = ctx.facts.pod
    assert pod is not None
    evidence: dict[str, Any] = {
        "pod": pod.name,
        "phase": pod.phase,
        "exit_code": pod.exit_code,
        "waiting_reason": pod.waiting_reason,
        "deleted": pod.deleted,
    }
    if pod.waiting_reason in FATAL_WAITING and pod.phase not in ("Succeeded", "Failed"):
        evidence["waiting_message"] = pod.waiting_message
        image = _image(pod.pod)
        return failed(
            f"the probe container never started: {pod.waiting_reason} ({pod.waiting_message})",
            evidence,
            Finding(
                "PROBE_IMAGE_PULL_FAILED" if "Image" in (pod.waiting_reason or "") else "PROBE_NOT_STARTED",
                ERROR,
                "probe",
                f"the probe container did not start: {pod.waiting_reason}",
                evidence,
                [fix.describe_pod(pod.namespace, pod.name), *fix.build_probe_image(str(image or ""))],
            ),
        )
    if pod.timed_out:
        return failed(
            f"the probe did not finish in time (phase {pod.phase}"
            + (f", {pod.waiting_reason}" if pod.waiting_reason else "")
            + ")",
            evidence,
            Finding(
                "PROBE_TIMEOUT",
                ERROR,
                "probe",
                "the probe pod did not finish within probe.timeout_seconds",
                evidence,
                [fix.describe_pod(pod.namespace, pod.name, note="with --keep")],
            ),
        )
    if pod.probe is None:
        evidence["error"] = pod.probe_error
        evidence["log_tail"] = pod.log_tail  # redacted with every other fact before any check runs
        return failed(
            f"no probe report: {pod.probe_error}",
            evidence,
            Finding(
                "PROBE_OUTPUT_INVALID",
                ERROR,
                "probe",
                f"no wi-probe/v1 document: {pod.probe_error}",
                evidence,
                [fix.pod_logs(pod.namespace, pod.name, note="with --keep")],
            ),
        )
    steps = [f"{s.get('name')} {s.get('status')}" for s in pod.probe.get("steps") or []]
    evidence["steps"] = steps
    evidence["probe_version"] = pod.probe.get("probe_version")
    config_step = ctx.step("config")
    if config_step and config_step.get("status") != "pass":
        error = config_step.get("error") or {}
        return failed(
            f"the probe rejected its configuration: {error.get('field')}: {error.get('message')}",
            evidence,
            Finding(
                "PROBE_CONFIG_INVALID",
                ERROR,
                "probe",
                "the probe's WI_PROBE_CONFIG was refused",
                {"error": error},
                [advice("check the workload's access: entries")],
            ),
        )
    return passed(f"probe finished (phase {pod.phase}, exit {pod.exit_code}): {', '.join(steps)}", evidence)


def _image(pod: dict[str, Any] | None) -> str:
    containers = ((pod or {}).get("spec") or {}).get("containers") or [{}]
    return str(containers[0].get("image") or "<probe-image>")


def env_in_container(ctx: WorkloadContext) -> Outcome:
    step = ctx.step("env")
    if step is None:
        return missing_probe_step("env")
    seen = ((step.get("evidence") or {}).get("vars")) or {}
    spec_env = env_map(ctx.container)
    evidence = {"container": seen, "spec": {k: spec_env.get(k) for k in INJECTED_ENV}}
    missing = [k for k in INJECTED_ENV if not seen.get(k)]
    differ = [k for k in INJECTED_ENV if seen.get(k) and spec_env.get(k) and seen[k] != spec_env[k]]
    if missing or differ:
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"{k}={seen[k]!r} in the container but {spec_env[k]!r} in the spec" for k in differ]
        )
        return failed(
            "the container's environment disagrees with the admitted spec: " + "; ".join(parts),
            evidence,
            Finding(
                "ENV_MISMATCH",
                ERROR,
                "pod",
                "in-container AZURE_* env differs from the pod spec: " + "; ".join(parts),
                evidence,
                [advice("look for an entrypoint or envFrom that overrides AZURE_* variables")],
            ),
        )
    return passed("the container sees the 4 injected variables as admitted", evidence)
