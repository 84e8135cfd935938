"""Probe checks: the probe pod ran to the end and printed its report; the container saw the env as
admitted."""

from __future__ import annotations

import re
from typing import Any

from harness.checks import remediation as fix
from harness.checks.admission import namespace_terminating_fixes
from harness.checks.common import kube_failure_finding, missing_probe_step
from harness.checks.context import WorkloadContext
from harness.checks.model import ERROR, Finding, Outcome, failed, passed, skipped
from harness.checks.podspec import env_map
from harness.checks.serviceaccount import create_sa_steps
from harness.commands import Step, advice
from harness.config import STOCK_PYTHON_IMAGE
from harness.facts import KubeFailure
from harness.names import (
    EVICTED,
    FATAL_WAITING,
    INJECTED_ENV,
    NAMESPACE_DELETED,
    NAMESPACE_DELETING,
    POD_DELETED,
    PROBE_CA_VOLUME,
    PROBE_CONTAINER,
    PROBE_SOURCE_VOLUME,
)
from harness.values import is_image_reference


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
                f"the probe container did not start: {pod.waiting_reason}"
                + (f" ({pod.waiting_message})" if pod.waiting_message else ""),
                evidence,
                [
                    *(_registry_pull_fixes(ctx, image, str(pod.waiting_message or ""), runs_from_configmap(pod.pod))
                      or (fix.mirror_probe_image(image) if runs_from_configmap(pod.pod)
                          else fix.build_probe_image(image))),
                    fix.kept_pod(pod.namespace, pod.name, "the kubelet's pull error"),
                ],
            ),
        )
    unschedulable = unschedulable_message(pod.pod)
    if unschedulable is not None and pod.exit_code is None and pod.phase not in ("Succeeded",):
        evidence["scheduler"] = unschedulable
        return failed(
            f"the probe pod was never scheduled: {unschedulable}",
            evidence,
            Finding(
                "PROBE_UNSCHEDULABLE",
                ERROR,
                "probe",
                f"no node accepts the probe pod: {unschedulable}",
                evidence,
                _unschedulable_fix(pod.namespace, pod.name, unschedulable, pod.pod, _live_pod_specs(ctx)),
            ),
        )
    if pod.probe is None and (pod.waiting_message or "").startswith(POD_DELETED):
        return _deleted(ctx, evidence)
    if (pod.timed_out or deadline_exceeded(pod.pod)) and pod.probe is None:
        pulling = pod.waiting_reason in _STARTING
        unmounted = pulling and (pod.waiting_message or "").startswith("FailedMount")
        if unmounted:
            return _never_mounted(ctx, evidence)
        what = (
            f"the deadline passed while the probe's image was still being pulled ({_image(pod.pod)})"
            + (f"; the kubelet said {pod.waiting_message}" if pod.waiting_message else "")
            if pulling
            else "the probe pod did not finish within probe.timeout_seconds"
        )
        evidence["deadline_exceeded"] = deadline_exceeded(pod.pod)
        return failed(
            f"the probe did not finish in time (phase {pod.phase}"
            + (f", {pod.waiting_reason}" if pod.waiting_reason else "")
            + f"): {what}",
            evidence,
            Finding(
                "PROBE_TIMEOUT",
                ERROR,
                "probe",
                what,
                evidence,
                [
                    advice("raise probe.timeout_seconds in harness.yaml, or use an image the nodes already hold"
                           if pulling else "raise probe.timeout_seconds in harness.yaml if the cluster is slow to "
                           "start pods"),
                    fix.kept_pod(pod.namespace, pod.name, "the pod's events say where the time went"),
                ],
            ),
        )
    unreachable = _LOG_UNREACHABLE.match(pod.probe_error or "") if pod.probe is None else None
    if unreachable is not None:  # the API server did not answer or refused the log read: not the probe's output
        evidence["error"] = pod.probe_error
        return failed(
            f"no probe report: {pod.probe_error}",
            evidence,
            kube_failure_finding(KubeFailure(int(unreachable.group(1)), unreachable.group(2), unreachable.group(3)),
                                 "probe",
                                 f"read the probe's log (pod {pod.namespace}/{pod.name})",
                                 fix.can_i("get", "pods/log", pod.namespace), ctx.cluster, ctx.azure),
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
        ca_configmap = mounted_ca_configmap(pod.pod)
        steps = [advice("check the workload's access: entries")]
        if error.get("field") == "ca_file" and ca_configmap is not None:
            steps = [
                fix.kubectl("describe", "configmap", fix.object_or(ca_configmap, "<configmap>"), "-n",
                            fix.namespace_or(pod.namespace),
                            note="probe.ca_configmap must exist in every workload's namespace, with the key"),
                advice("copy the CA bundle's ConfigMap into this namespace, or fix probe.ca_configmap's name and key"),
            ]
        return failed(
            f"the probe rejected its configuration: {error.get('field')}: {error.get('message')}",
            evidence,
            Finding(
                "PROBE_CONFIG_INVALID",
                ERROR,
                "probe",
                "the probe's WI_PROBE_CONFIG was refused",
                {"error": error, **({"ca_configmap": ca_configmap} if ca_configmap else {})},
                steps,
            ),
        )
    return passed(f"probe finished (phase {pod.phase}, exit {pod.exit_code}): {', '.join(steps)}", evidence)


# an Azure Container Registry's login server, <name>.azurecr.io (azurecr.cn, azurecr.us in the sovereign clouds),
# whose registry name is 5-50 letters and digits (Microsoft.ContainerRegistry naming rules)
_ACR_IMAGE_RE = re.compile(r"(?P<name>[a-zA-Z0-9]{5,50})\.azurecr\.(?:io|cn|us)/(?P<path>[^@:]+)"
                           r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?:@.+)?")


def acr_image(image: str) -> tuple[str, str, str] | None:
    """(registry name, login server, repository:tag) of an image in an Azure Container Registry, else None; an
    image named by digest alone keeps the repository with the tag ``3`` (what ``az acr import --image`` then
    makes, for probe.image to name)."""
    match = _ACR_IMAGE_RE.fullmatch(image) if is_image_reference(image) else None
    if match is None:
        return None
    server = image.split("/", 1)[0]
    return match.group("name"), server, f"{match.group('path')}:{match.group('tag') or '3'}"


# containerd's pull errors as the kubelet reports them: a registry that refused the node's credentials ("failed to
# authorize: failed to fetch anonymous token: unexpected status from GET request to https://<acr>.azurecr.io/oauth2/
# token?...: 401 Unauthorized", the AKS troubleshooting article "Fail to pull images from Azure Container Registry to
# Azure Kubernetes Service cluster"; "pull access denied", "insufficient_scope"), and a reference it does not hold
# ("rpc error: code = NotFound desc = failed to pull and unpack image ...: not found")
_PULL_REFUSED_RE = re.compile(r"401 Unauthorized|403 Forbidden|failed to authorize|unauthorized|pull access denied|"
                              r"insufficient_scope", re.IGNORECASE)
_PULL_NOT_FOUND_RE = re.compile(r"code = NotFound|: not found\b|manifest unknown")


def _registry_pull_fixes(ctx: WorkloadContext, image: str, said: str, from_configmap: bool) -> list[Step]:
    """The nodes could not pull probe.image from a registry of the team's own (a mirror in an Azure Container
    Registry, say): when the registry refused the nodes, the cluster's kubelet identity needs AcrPull there
    (``az aks check-acr`` shows it, ``az aks update --attach-acr`` grants it); when the registry has no such
    image, the stock Python image is imported there under the name probe.image gives (configmap mode runs the
    probe in any image with python3). Empty when the image is not in an ACR, or the error is neither: the
    caller's mirror / build steps then apply."""
    acr = acr_image(image)
    if acr is None:
        if (from_configmap and image != STOCK_PYTHON_IMAGE and _PULL_NOT_FOUND_RE.search(said)
                and not _PULL_REFUSED_RE.search(said)):
            # the registry answered that it has no such image: importing it from there cannot work either
            return [advice(f"{image} is not in its registry: set probe.image in harness.yaml to a Python image that "
                           "exists, or remove probe.image (the default is a stock Python image pinned by digest)")]
        if not _PULL_REFUSED_RE.search(said):
            return []
        secrets = [str(s.get("name")) for s in (((ctx.facts.pod.pod if ctx.facts.pod else None) or {}).get("spec")
                                                or {}).get("imagePullSecrets") or []]
        ns = fix.namespace_or(ctx.namespace)
        if secrets:
            return [fix.kubectl("get", "secret", "-n", ns, *[fix.object_or(s, "<secret>") for s in secrets[:5]],
                                note="the probe pod's imagePullSecrets"),
                    advice(f"the registry refused the pull of {image} with {', '.join(secrets[:5])}: create the "
                           f"Secret in namespace {ns} if the look above answers NotFound (the kubelet then pulls "
                           "without it), else put a credential the registry accepts in it (kubectl create secret "
                           "docker-registry)")]
        return [advice(f"the registry refused the nodes' pull of {image}: make a docker-registry Secret with a "
                       f"credential it accepts in namespace {ns} (kubectl create secret docker-registry NAME "
                       "--docker-server ... ) and name it in probe.image_pull_secrets in harness.yaml, or set "
                       "probe.image to an image in a registry the nodes can pull from")]
    name, server, repository = acr
    name = name.lower()  # az acr's --name: the registry name in lower case
    if _PULL_REFUSED_RE.search(said):
        return [
            fix.aks_check_acr(ctx.azure, server),
            fix.aks_update(ctx.azure, "--attach-acr", name,
                           note="grants the kubelet identity AcrPull on the registry (an ACR in another "
                                "subscription: pass its resource id)"),
        ]
    if _PULL_NOT_FOUND_RE.search(said) and from_configmap:
        imported = fix.acr_import(name, STOCK_PYTHON_IMAGE, repository,
                                  note=f"{image} is not in {server}: put the stock Python image there")
        if "@" not in image:
            return [imported]
        return [imported, advice(f"then set probe.image: {server}/{repository} in harness.yaml (a digest names "
                                 "one manifest, which the import need not make)")]
    return []


_STARTING = ("ContainerCreating", "PodInitializing")
# harness/collect/probe_pods.py read_probe_output's text for a log read the API server did not answer (status 0),
# or refused: the credentials (401) or RBAC (403: the Role without pods/log) (KubeError: "STATUS REASON: MESSAGE")
_LOG_UNREACHABLE = re.compile(r"could not read the probe's log: (0|401|403) (\S+): (.*)", re.S)


def _never_mounted(ctx: WorkloadContext, evidence: dict[str, Any]) -> Outcome:
    """Still ContainerCreating at the deadline and the kubelet's latest warning is FailedMount: a volume's source
    is missing, which no longer timeout repairs. The run's own source ConfigMap gone means someone deleted it
    while the pod started."""
    pod = ctx.facts.pod
    assert pod is not None
    said = str(pod.waiting_message)
    evidence["kubelet"] = said
    source = _volume_configmap(pod.pod, PROBE_SOURCE_VOLUME)
    mine = source is not None and f'configmap "{source}" not found' in said
    what = ("the probe's source ConfigMap " + f"{pod.namespace}/{source} was deleted before the pod could mount it "
            f"({said})" if mine else f"the probe pod's volumes were never mounted ({said})")
    steps: list[Step] = ([advice("something deleted the run's own ConfigMap while its pod started (a person, a "
                                 "cleanup job): run again, and keep it away from objects labelled "
                                 "app.kubernetes.io/managed-by=wi-harness")] if mine else
                         [advice("create what FailedMount names in the workload's namespace (probe.ca_configmap's "
                                 "ConfigMap, with its key), or fix its name in harness.yaml")])
    steps.append(fix.kept_pod(pod.namespace, pod.name, "the pod's events"))
    return failed(f"the probe did not start: {what}", evidence,
                  Finding("PROBE_TIMEOUT", ERROR, "probe", what, evidence, steps))


def _deleted(ctx: WorkloadContext, evidence: dict[str, Any]) -> Outcome:
    """The probe pod went before the probe printed its report, deleted by someone else (kubectl delete, an
    eviction or a node drain, its namespace's deletion): nothing after its admission was verified, and the cause
    is that deletion, not the probe's output."""
    pod = ctx.facts.pod
    assert pod is not None
    how = str(pod.waiting_message)
    evidence["deleted_by_someone_else"] = how
    where = f"{pod.namespace}/{pod.name}"
    if NAMESPACE_DELETED in how or NAMESPACE_DELETING in how:
        terminating = NAMESPACE_DELETING in how
        message = (f"namespace {pod.namespace} was deleted during the run, the probe pod {where} with it"
                   + (f" ({how.split(NAMESPACE_DELETING, 1)[1].strip(' ()')})" if terminating else "")
                   + ": nothing after the probe pod's admission was verified")
        steps = (namespace_terminating_fixes(pod.namespace, []) if terminating else [
            advice(f"if {pod.namespace} was deleted on purpose, take the workload out of harness.yaml; if not, "
                   "make it again:"),
            fix.kubectl("create", "namespace", fix.namespace_or(pod.namespace)),
            *create_sa_steps(ctx),
        ])
        code, layer = ("NAMESPACE_TERMINATING", "serviceaccount") if terminating else (
            "NAMESPACE_NOT_FOUND", "serviceaccount")
        return failed(message, evidence, Finding(code, ERROR, layer, message, evidence, steps))
    evicted = f": {EVICTED} " in how
    detail = how[len(POD_DELETED):].removeprefix(f": {EVICTED}").strip(" ;:")
    message = (f"the probe pod {where} was {'evicted' if evicted else 'deleted'} before the probe finished"
               + (f" {detail}" if detail else "") + ": nothing after its admission was verified; run again")
    steps: list[Step] = [fix.kubectl("get", "events", "-n", fix.namespace_or(pod.namespace), "--field-selector",
                                     f"involvedObject.name={pod.name}",
                                     note="who stopped it: Killing, Evicted, a drain's eviction")]
    if evicted:
        steps.append(fix.kubectl("get", "nodes", note="SchedulingDisabled: a drain or an upgrade under way"))
    steps.append(advice("run again once whatever deletes pods there (a drain, an upgrade, a cleanup job, a "
                        "person) is done"))
    return failed(message, evidence, Finding("PROBE_POD_DELETED", ERROR, "probe", message, evidence, steps))


# the scheduler's filter plugins' reasons (kubernetes pkg/scheduler/framework/plugins): NodeUnschedulable's
# ErrReasonUnschedulable (a cordoned node) and NodeAffinity's ErrReasonPod (nodeSelector / required affinity)
_CORDONED = "node(s) were unschedulable"
_LINUX_ONLY = {"kubernetes.io/os": "linux"}  # build_probe_pod's nodeSelector without probe.node_selector
# NodeResourcesFit's reasons (noderesources/fit.go): "Insufficient <resource>", "Too many pods"
_NO_ROOM_RE = re.compile(r"\b\d+ (Insufficient [a-z0-9./-]+|Too many pods)")
_SELECTOR_MISSED = "node(s) didn't match Pod's node affinity/selector"


# what the node lifecycle controller taints a node with for its conditions (kubernetes.io "Taints and Tolerations":
# Taint based Evictions, Taint Nodes by Condition), and the cloud provider's taint on a node it has not initialized:
# a node's state to repair, never a taint to tolerate
_CONDITION_TAINTS = frozenset({
    "node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable", "node.kubernetes.io/memory-pressure",
    "node.kubernetes.io/disk-pressure", "node.kubernetes.io/pid-pressure", "node.kubernetes.io/network-unavailable",
    "node.cloudprovider.kubernetes.io/uninitialized",
})


def _live_pod_specs(ctx: WorkloadContext) -> list[dict[str, Any]]:
    live = ctx.facts.live_pods
    return [pod.pod for pod in (live.pods if live else [])]


def _tolerates(toleration: dict[str, Any], key: str, value: str) -> bool:
    """v1.Toleration.ToleratesTaint for a taint the scheduler named by key and value (its effect unsaid)."""
    operator = toleration.get("operator") or "Equal"
    if toleration.get("key") not in (None, "", key) or (not toleration.get("key") and operator != "Exists"):
        return False
    return operator == "Exists" or (operator == "Equal" and str(toleration.get("value") or "") == value)


def _pool_taints(untolerated: list[tuple[str, str, int, int]], live: list[dict[str, Any]]) -> list[Step]:
    """Taints that each hold only some nodes (a system pool's CriticalAddonsOnly, a spot pool's
    kubernetes.azure.com/scalesetpriority=spot): the probe tolerates the one the workload's own pods tolerate,
    so it runs in their node pool; with no pod of the workload to go by, each is named for a person to choose."""
    tolerated = [(key, value) for key, value, _, _ in untolerated
                 if any(isinstance(t, dict) and _tolerates(t, key, value)
                        for pod in live for t in (pod.get("spec") or {}).get("tolerations") or [])]
    if tolerated:  # one is enough for the scheduler: the pool it names takes the probe
        return [fix.tolerate_taint(*tolerated[0])]
    if not untolerated:
        return []
    named = ", ".join(f"{key}={value}" if value else key for key, value, _, _ in untolerated)
    return [advice(f"the nodes that could take the probe carry taints it does not tolerate ({named}): tolerate one in "
                   "probe.tolerations in harness.yaml (the workload's pool's, as its pod template tolerates it, where "
                   "the workload runs on Linux)")]


def _unschedulable_fix(namespace: str, pod: str, message: str, spec_pod: dict[str, Any] | None = None,
                       live: list[dict[str, Any]] | None = None) -> list[Step]:
    """The nodes' taints listed; for each taint every node has and the probe does not tolerate (the scheduler's
    message names it), probe.tolerations that tolerate it; taints of separate node pools, the one the workload's
    own pods (``live``) tolerate; a cordoned node (kubectl cordon, a drain, an upgrade) is a person's maintenance
    to end, never a toleration; a nodeSelector no node meets (probe.node_selector) is looked up as a label query;
    else probe.node_selector / tolerations for the workload's node pool; the kept pod's events last."""
    listed = fix.kubectl("get", "nodes", "-o", "custom-columns=NAME:.metadata.name,TAINTS:.spec.taints")
    found = fix.untolerated_taints(message)
    unhealthy = sorted({key for key, _, _, _ in found if key in _CONDITION_TAINTS})
    untolerated = [taint for taint in found if taint[0] not in _CONDITION_TAINTS]
    tolerations = [fix.tolerate_taint(key, value) for key, value, count, total in untolerated if count == total]
    if not tolerations:
        tolerations = _pool_taints(untolerated, live or [])
    steps: list[Step] = [listed, *tolerations]
    if unhealthy:
        steps += [
            fix.kubectl("get", "nodes", "-o", "custom-columns=NAME:.metadata.name,READY:.status.conditions[?(@.type"
                        '=="Ready")].status', note="the nodes' state"),
            advice(f"{', '.join(unhealthy)}: the taint the node controller puts on a node in that condition (not "
                   "ready, unreachable, under memory, disk or PID pressure): a person repairs the nodes (kubectl "
                   "describe node: Conditions, Events), or waits for new ones; the probe must not tolerate it"),
        ]
    if _CORDONED in message:
        steps += [
            fix.kubectl("get", "nodes", note="SchedulingDisabled: cordoned"),
            advice("a person decides: a cordoned node takes no new pods until kubectl uncordon NODE, once the drain "
                   "or upgrade that cordoned it is over; do not tolerate node.kubernetes.io/unschedulable"),
        ]
    selector = ((spec_pod or {}).get("spec") or {}).get("nodeSelector") or {}
    if _SELECTOR_MISSED in message and selector == _LINUX_ONLY:  # the one the harness always sets
        steps.append(advice("the probe runs on Linux nodes only (kubernetes.io/os=linux): the other nodes (Windows "
                            "pools) cannot take it, whatever the workload runs on"))
    elif _SELECTOR_MISSED in message and selector:
        wanted = ",".join(f"{key}={value}" for key, value in sorted(selector.items()))
        steps += [
            fix.kubectl("get", "nodes", "-l", wanted, note="no node has every label the probe's nodeSelector names"),
            fix.kubectl("get", "pods", "-n", fix.namespace_or(namespace), "-o", "wide",
                        note="the nodes the workload runs on"),
            advice(f"set probe.node_selector in harness.yaml to labels those nodes have (kubectl get nodes "
                   f"--show-labels), or remove it: the probe pod asks for {wanted}"),
        ]
    short = sorted(set(_NO_ROOM_RE.findall(message.split(". preemption:", 1)[0])))
    if short:
        steps += [
            fix.kubectl("describe", "nodes", note="Allocated resources: what the nodes' pods already request"),
            advice(f"the nodes have no room left for the probe ({', '.join(short)}): scale the node pool out (az "
                   "aks nodepool scale --node-count N, or its cluster autoscaler: az aks nodepool update "
                   "--enable-cluster-autoscaler --min-count N --max-count M), free room, or lower "
                   "probe.resources.requests in harness.yaml"),
        ]
    if len(steps) == 1:
        steps.append(advice("set probe.tolerations / probe.node_selector in harness.yaml to the workload's node pool"))
    return [*steps, fix.kept_pod(namespace, pod, "the scheduler's events")]


def unschedulable_message(pod: dict[str, Any] | None) -> str | None:
    """The scheduler's message when the pod's PodScheduled condition is False (taints, selectors, resources)."""
    for condition in ((pod or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return str(condition.get("message") or condition.get("reason") or "Unschedulable")
    return None


def deadline_exceeded(pod: dict[str, Any] | None) -> bool:
    """The kubelet ended the pod at activeDeadlineSeconds (status.reason DeadlineExceeded)."""
    return ((pod or {}).get("status") or {}).get("reason") == "DeadlineExceeded"


def _volume_configmap(pod: dict[str, Any] | None, volume: str) -> str | None:
    for item in ((pod or {}).get("spec") or {}).get("volumes") or []:
        if item.get("name") == volume:
            return (item.get("configMap") or {}).get("name")
    return None


def runs_from_configmap(pod: dict[str, Any] | None) -> bool:
    """probe.mode configmap: the probe's source is mounted from the run's ConfigMap (a stock image runs it)."""
    return _volume_configmap(pod, PROBE_SOURCE_VOLUME) is not None


def mounted_ca_configmap(pod: dict[str, Any] | None) -> str | None:
    return _volume_configmap(pod, PROBE_CA_VOLUME)


def _image(pod: dict[str, Any] | None) -> str:
    containers = ((pod or {}).get("spec") or {}).get("containers") or [{}]
    probe = next((c for c in containers if c.get("name") == PROBE_CONTAINER), containers[0])
    return str(probe.get("image") or "<probe-image>")


def env_in_container(ctx: WorkloadContext) -> Outcome:
    step = ctx.step("env")
    if step is None:
        return missing_probe_step("env")
    seen = ((step.get("evidence") or {}).get("vars")) or {}
    spec_env = env_map(ctx.container)
    evidence = {"container": seen, "spec": {k: spec_env.get(k) for k in INJECTED_ENV}}
    missing = [k for k in INJECTED_ENV if not seen.get(k)]
    blank = [k for k in missing if spec_env.get(k) and not str(spec_env[k]).strip()]
    if missing and missing == blank and "AZURE_CLIENT_ID" in blank:
        # admitted with the whitespace of a blank client-id annotation, which the probe reads as unset: the
        # container has what was admitted, so no entrypoint overrode it; the annotation is the root
        evidence["note"] = f"{', '.join(blank)} admitted as whitespace, which the probe reads as unset"
        return skipped("skipped because sa.client_id_annotation failed: AZURE_CLIENT_ID was admitted as the "
                       "annotation's whitespace", evidence, blocked_by="sa.client_id_annotation")
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
