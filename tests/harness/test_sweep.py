"""--sweep's bound (harness/collect/sweep.py) and a pod create retried after a lost answer, on the fake world."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fakeworld import World

from harness.collect.kube_api import KubeError
from harness.collect.probe_pods import GRACE_SECONDS, ProbeRequest, run_probe_pods, sweep
from harness.collect.probe_source import source_configmap_name
from harness.collect.sweep import DEADLINE_ANNOTATION, MARGIN_SECONDS, ended_marker_name
from harness.config import ProbeSettings
from harness.facts import KubeFailure

NOW = datetime(2026, 12, 5, 1, 0, 0, tzinfo=UTC).timestamp()
TIMEOUT = 60


def stamp(obj: dict[str, Any], age: float) -> None:
    obj["metadata"]["creationTimestamp"] = datetime.fromtimestamp(NOW - age, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def leftovers(kube: Any, ages: dict[str, float], ended: bool = False) -> None:
    """One pod + source ConfigMap per run, each as old as ``ages`` says; the run's end-of-run marker only when
    ``ended`` (a run killed outright leaves none)."""
    for run, age in ages.items():
        run_probe_pods(kube, [ProbeRequest("finance/backend-sa", "finance", "backend-sa", {})], run,
                       ProbeSettings(timeout_seconds=TIMEOUT), keep=True)
        if not ended:
            del kube.config_maps[("finance", ended_marker_name(run))]
        for obj in [*kube.pods.values(), *kube.config_maps.values()]:
            if obj["metadata"]["labels"].get("wi-harness/run-id") == run:
                stamp(obj, age)


def test_a_kept_run_is_swept_at_once_a_live_one_is_not() -> None:
    """--keep: the run made a marker after its objects; what came before it is done with, however young."""
    kube = World.healthy().backend().kube
    leftovers(kube, {"kept-run": 5}, ended=True)
    leftovers(kube, {"live-run": 5})
    swept = sweep(kube, ["finance"], "this-run", now=lambda: NOW)
    assert runs_left(kube) == ["live-run"]
    assert sorted(s.split("/")[-1] for s in swept if "configmap" in s) == sorted(
        [source_configmap_name("kept-run"), ended_marker_name("kept-run")])


def test_a_pod_made_after_the_marker_is_not_covered_by_it() -> None:
    kube = World.healthy().backend().kube
    leftovers(kube, {"run-a": 5}, ended=True)
    kube.config_maps[("finance", ended_marker_name("run-a"))]["metadata"]["creationTimestamp"] = (
        datetime.fromtimestamp(NOW - 10, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))  # before the pod (5 s old)
    assert sweep(kube, ["finance"], "this-run", now=lambda: NOW) == []


def runs_left(kube: Any) -> list[str]:
    return sorted({o["metadata"]["labels"]["wi-harness/run-id"]
                   for o in [*kube.pods.values(), *kube.config_maps.values()]})


BOUND = TIMEOUT + GRACE_SECONDS + MARGIN_SECONDS


def test_only_objects_past_their_runs_deadline_are_swept() -> None:
    kube = World.healthy().backend().kube
    leftovers(kube, {"dead-run": BOUND + 1, "live-run": BOUND - 5, "this-run": BOUND + 100})
    swept = sweep(kube, ["finance"], "this-run", now=lambda: NOW)
    assert runs_left(kube) == ["live-run", "this-run"]
    assert len(swept) == 2 and swept[1] == f"finance/configmap/{source_configmap_name('dead-run')}"


def test_what_is_kept_is_named_with_its_run_and_when_it_becomes_sweepable() -> None:
    """--sweep before a killed run's probe pods passed their deadline deleted nothing and said nothing: the person
    could not tell a sweep that found nothing from one that waits. Each earlier run whose objects it left is one
    line: how many, where, why, and from when a --sweep deletes them."""
    kube = World.healthy().backend().kube
    leftovers(kube, {"killed-run": 30, "this-run": 5})
    kept: list[str] = []
    assert sweep(kube, ["finance"], "this-run", now=lambda: NOW, kept=kept) == []
    at = datetime.fromtimestamp(NOW - 30 + BOUND, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert kept == [f"kept 2 objects of run killed-run (in finance): younger than their probe deadline plus "
                    f"{MARGIN_SECONDS:g} s and the owner's grace, so that run may still be using them; a --sweep from "
                    f"{at} (in {round(BOUND - 30)} seconds) deletes them"]
    kept.clear()  # once that time has passed, the same sweep deletes them and keeps nothing
    assert len(sweep(kube, ["finance"], "this-run", now=lambda: NOW - 30 + BOUND + 1, kept=kept)) == 2
    assert kept == [] and runs_left(kube) == ["this-run"]


def test_the_configmap_says_its_runs_deadline() -> None:
    kube = World.healthy().backend().kube
    leftovers(kube, {"run-a": 1})
    (config_map,) = kube.config_maps.values()
    assert config_map["metadata"]["annotations"][DEADLINE_ANNOTATION] == str(TIMEOUT)


def test_an_old_configmap_of_a_run_whose_pods_are_young_is_kept() -> None:
    """A run that made its ConfigMap long before its pods (slow creates) is alive while its pods are."""
    kube = World.healthy().backend().kube
    leftovers(kube, {"slow-run": 1})
    for config_map in kube.config_maps.values():
        stamp(config_map, BOUND + 50)
    assert sweep(kube, ["finance"], "this-run", now=lambda: NOW) == []
    assert runs_left(kube) == ["slow-run"]


def test_a_configmap_without_a_deadline_waits_the_longest_one() -> None:
    kube = World.healthy().backend().kube
    leftovers(kube, {"old-harness": BOUND + 1})
    for config_map in kube.config_maps.values():
        del config_map["metadata"]["annotations"]
    swept = sweep(kube, ["finance"], "this-run", now=lambda: NOW)
    assert len(swept) == 1 and "/configmap/" not in swept[0]  # the pod, not yet the ConfigMap


def test_a_retried_create_that_had_landed_is_this_runs_pod() -> None:
    """The API server made the pod but its answer was lost; the retry gets 409 AlreadyExists."""
    kube = World.healthy().backend().kube
    create = kube.create_pod

    def lost_answer(namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        create(namespace, body)
        raise KubeError(KubeFailure(409, "AlreadyExists", f'pods "{body["metadata"]["name"]}" already exists'))

    kube.create_pod = lost_answer  # type: ignore[method-assign]
    pods = run_probe_pods(kube, [ProbeRequest("finance/backend-sa", "finance", "backend-sa", {})], "run-1",
                          ProbeSettings(timeout_seconds=TIMEOUT))
    facts = pods["finance/backend-sa"]
    assert facts.created and facts.create_error is None and facts.deleted
