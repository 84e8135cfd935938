"""The Deployment controller's rolling update, as pkg/controller/deployment/rolling.go steps it, on plain
ReplicaSets (no lab running)."""

from __future__ import annotations

from typing import Any

from lab.kube.rollout import DeploymentController


class _Recorder:
    """Stands in for the controller: roll() only scales."""

    def __init__(self) -> None:
        self.scaled: list[tuple[str, int]] = []

    def scale(self, deployment: Any, rs: dict[str, Any], replicas: int, desired: int, surge: int) -> None:
        rs["spec"]["replicas"] = replicas
        self.scaled.append((rs["metadata"]["name"], replicas))


def _rs(name: str, replicas: int, available: int) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"replicas": replicas}, "status": {"availableReplicas": available}}


def test_a_rollout_over_a_refused_one_gives_up_the_refused_replicaset_not_the_running_pod() -> None:
    """By hand in the lab: backend (1 replica, the default 25%/25%) got a template the webhook refused (its
    ReplicaSet wanted 1, made none), then a fixed template: the lab scaled the running old ReplicaSet to 0 and
    kept the refused one, so the workload lost its only pod. Upstream (reconcileOldReplicaSets) first scales down
    the old ReplicaSets' unavailable replicas (cleanupUnhealthyReplicas), then available ones only while more
    than replicas - maxUnavailable stay available."""
    recorder = _Recorder()
    running, refused, new = _rs("backend-tzp5", 1, 1), _rs("backend-jj2q", 1, 0), _rs("backend-gq25", 0, 0)
    DeploymentController.roll(recorder, {}, new, [running, refused], desired=1, surge=1, unavailable=0)  # type: ignore[arg-type]
    assert recorder.scaled == [("backend-jj2q", 0)]
    DeploymentController.roll(recorder, {}, new, [running, refused], desired=1, surge=1, unavailable=0)  # type: ignore[arg-type]
    assert recorder.scaled[1:] == [("backend-gq25", 1)]  # room now: the new one grows, the running pod stays
    new["status"]["availableReplicas"] = 1
    DeploymentController.roll(recorder, {}, new, [running, refused], desired=1, surge=1, unavailable=0)  # type: ignore[arg-type]
    assert recorder.scaled[2:] == [("backend-tzp5", 0)]  # its replacement available: the old pod goes
