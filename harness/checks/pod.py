"""Pod checks: admitted, mutated by the webhook (env + projected token + read-only mount, whatever the
layout); with --pod: the existing pod exists and is labelled."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterator
from typing import Any

from harness.checks import remediation as fix
from harness.checks.admission import (
    TERMINATING_TEXT,
    admission_policy,
    admission_policy_looks,
    image_repo_refusal,
    kyverno_fixes,
    kyverno_policies,
    limit_range_bounds,
    limit_ratio_advice,
    limit_refusal,
    namespace_terminating_fixes,
    probe_policy_advice,
    probe_resources_text,
    quota_refusal,
    quota_room_advice,
    refusing_webhook,
    unreachable_webhook,
    unreachable_webhook_fixes,
)
from harness.checks.cluster import (
    ClusterContext,
    chart_install,
    enable_webhook,
    label_values,
    object_selector_patches,
    webhook_configuration_name,
    webhook_namespace,
    webhook_service,
)
from harness.checks.common import kube_call_failed, kube_failure_finding
from harness.checks.context import WorkloadContext
from harness.checks.federation import namesake_trusted_instead
from harness.checks.live_pods import (
    bare_pods_again,
    container_failing,
    label_repair,
    misplaced_use_label,
    named_empty,
    preset_in_template,
    restart_workload,
    skipped_containers,
    skipped_failing_repair,
    template_ahead,
    unlabelled_after_mutation,
    unskip_one_repair,
    unskip_repair,
)
from harness.checks.model import ERROR, WARNING, Finding, Outcome, failed, passed, skipped, warned
from harness.checks.network_policies import WebhookIngressBlock, webhook_ingress_blocks
from harness.checks.podspec import (
    all_token_audiences,
    annotation,
    containers,
    controller_of,
    env_map,
    injected_azure_env,
    is_webhook_pod,
    mounts_of,
    token_file_of,
    token_volumes,
    value_sources,
)
from harness.checks.probe_output import unschedulable_message
from harness.checks.serviceaccount import create_sa_steps
from harness.commands import Step, advice
from harness.config import DEFAULT_PROBE_LIMITS, DEFAULT_PROBE_REQUESTS
from harness.facts import LivePod
from harness.names import (
    EXPIRATION_ANNOTATION,
    INJECTED_ENV,
    PROBE_CONTAINER,
    PROBE_SOURCE_VOLUME,
    SKIP_CONTAINERS_ANNOTATION,
    TENANT_ID_ANNOTATION,
    TOKEN_AUDIENCE,
    USE_LABEL,
    WEBHOOK_CERT_SECRET,
    WEBHOOK_NAME,
    WEBHOOK_SERVICE_ACCOUNT,
    WEBHOOK_SYSTEM_LABEL,
)
from harness.values import in_number, parse_quantity, printable

_WEBHOOK_HINTS = {
    400: "the webhook denied it",
    403: "forbidden (Pod Security admission, RBAC or a policy engine)",
    500: "the API server could not call the webhook (failurePolicy Fail)",
}


def pod_admitted(ctx: WorkloadContext) -> Outcome:
    pod = ctx.facts.pod
    assert pod is not None
    if pod.created:
        evidence = {"pod": pod.name, **probe_launch(pod.pod)}
        return passed(f"probe pod {pod.namespace}/{pod.name} admitted", evidence)
    error = pod.create_error
    message = error.message if error else "not created"
    evidence = {"pod": pod.name, "error": error.__dict__ if error else None}
    refused = pod.refused_resource or "pods"
    what = "the probe's source ConfigMap" if refused == "configmaps" else "the probe pod"
    if refused == "configmaps":
        evidence["refused"] = "the ConfigMap holding the probe's source (probe.mode configmap); no pod was sent"
    status = error.status if error else 0
    hint = _WEBHOOK_HINTS.get(status, "")
    webhook = refusing_webhook(message)
    unreachable = unreachable_webhook(message)
    if unreachable is not None and unreachable[0] != WEBHOOK_NAME:
        name, cause = unreachable
        evidence["webhook"] = name
        finding = Finding(
            "OTHER_WEBHOOK_UNAVAILABLE",
            ERROR,
            "pod",
            f"the admission webhook {name} (not Workload ID's) cannot be called: {cause}; its failurePolicy is "
            "Fail, so the API server refuses every pod it matches, the probe among them",
            evidence,
            unreachable_webhook_fixes(name, message),
        )
    elif webhook is not None and webhook[0] != WEBHOOK_NAME:
        name, said = webhook
        evidence["webhook"] = name
        finding = Finding(
            "POD_REJECTED_BY_POLICY",
            ERROR,
            "pod",
            f"the admission webhook {name} (a policy engine, not Workload ID) refused the probe pod: {said}",
            evidence,
            [
                fix.kubectl("get", "validatingwebhookconfigurations,mutatingwebhookconfigurations"),
                *_policy_fixes(name, ctx.namespace, said, _app_labels(ctx)),
            ],
        )
    elif (policy := admission_policy(message)) is not None:
        # the API server's own CEL policy: a 422 by default, or the 403 (401, 413) its validation asks for
        name, binding, said = policy
        evidence.update({"admission_policy": name, **({"binding": binding} if binding else {})})
        finding = Finding(
            "POD_REJECTED_BY_POLICY",
            ERROR,
            "pod",
            f"the ValidatingAdmissionPolicy {name}{f' (binding {binding})' if binding else ''}, a policy of the API "
            f"server's own, not Workload ID nor the harness's rights, refused {what}: {said}",
            evidence,
            _admission_policy_fixes(name, binding, ctx.namespace, said, _app_labels(ctx)),
        )
    elif (gone := _SA_GONE_RE.search(message)) is not None:
        # read by the harness a moment before, deleted since: the ServiceAccount admission plugin's 403
        # ("error looking up service account NS/NAME: serviceaccount \"NAME\" not found"), not RBAC
        evidence["service_account"] = f"{gone.group(1)}/{gone.group(2)}"
        finding = Finding(
            "SA_NOT_FOUND",
            ERROR,
            "serviceaccount",
            f"ServiceAccount {gone.group(1)}/{gone.group(2)} was deleted during the run: the harness read it, then "
            f"the API server refused the probe pod: {message}",
            evidence,
            create_sa_steps(ctx),
        )
    elif TERMINATING_TEXT in message:
        finding = Finding(
            "NAMESPACE_TERMINATING",
            ERROR,
            "pod",
            f"namespace {ctx.namespace} is being deleted: the API server refuses anything new in it, the probe pod "
            f"among it: {message}",
            evidence,
            namespace_terminating_fixes(ctx.namespace, []),
        )
    elif quota_refusal(message):
        finding = Finding(
            "POD_REJECTED_BY_QUOTA",
            ERROR,
            "pod",
            f"a ResourceQuota or LimitRange in {ctx.namespace} refused {what}: {message}",
            evidence,
            [
                fix.kubectl("describe", "resourcequota,limitrange", "-n", ctx.namespace),
                advice(_within_limit_range(message) or quota_room_advice(message)
                       or limit_ratio_advice(message, DEFAULT_PROBE_LIMITS) or _quota_advice(message)),
            ],
        )
    elif ("failed calling webhook" in message or "failed to call webhook" in message) and \
            "x509: " in (cause := (unreachable or ("", ""))[1]):
        namespace, _ = webhook_service(ctx.cluster)
        finding = Finding(
            "WEBHOOK_UNAVAILABLE",
            ERROR,
            "webhook",
            "the API server does not trust the webhook's serving certificate (labelled pods refused): "
            + cause.removeprefix("tls: failed to verify certificate: "),
            evidence,
            _webhook_certificate_fixes(ctx, namespace, cause),
        )
    elif "failed calling webhook" in message or "failed to call webhook" in message:
        namespace, service = webhook_service(ctx.cluster)
        cause = (unreachable or ("", ""))[1]
        short = _short_webhook_timeout(ctx) if _TIMED_OUT_RE.search(cause) else None
        if short is not None:
            evidence["timeoutSeconds"] = short[2]
        dropped = next((b for b in webhook_ingress_blocks(ctx.cluster) if b.namespace == namespace), None) \
            if _TIMED_OUT_RE.search(cause) else None
        moved = _moved_service_field(ctx, "path", WEBHOOK_PATH) if _NOT_FOUND in cause else \
            _moved_service_field(ctx, "port", WEBHOOK_SERVICE_PORT) if _NO_SERVICE_PORT_RE.search(cause) else None
        if moved is not None:
            evidence[moved[2]] = moved[3]
        if dropped is not None:
            evidence["webhook_ingress_policies"] = dropped.names
        finding = Finding(
            "WEBHOOK_UNAVAILABLE",
            ERROR,
            "webhook",
            "the API server cannot reach the workload identity webhook, so labelled pods are refused"
            + (f": {cause}" if cause else "") + (_timeout_said(short) if short else "")
            + (_ingress_block_said(dropped) if dropped else "") + (_moved_said(moved) if moved else ""),
            evidence,
            _webhook_ingress_fixes(dropped) if dropped else _moved_back(moved) if moved else [
                *(_timeout_back(short) if short else []),
                fix.kubectl("-n", fix.namespace_or(namespace), "get", "pods", "-l",
                            "azure-workload-identity.io/system=true"),
                fix.kubectl("-n", fix.namespace_or(namespace), "get", "endpoints", fix.object_or(service, "<service>")),
                *([] if short else  # its pods serve; the calls run out of the time given them
                  _service_selects_no_ready_pod(ctx, namespace, service) if "no endpoints available" in message
                  and _ready_webhook_replicas(ctx, namespace) else
                  _service_target_port_back(namespace, service, port) if (port := _refused_port(message)) and
                  _ready_webhook_replicas(ctx, namespace) else _webhook_pods_back(ctx, namespace)),
            ],
        )
    elif "denied the request" in message:
        finding = Finding(
            "POD_REJECTED_BY_WEBHOOK",
            ERROR,
            "webhook",
            f"the webhook denied the pod: {message}{_expiration_said(ctx, message)}{_own_expiration(ctx, message)}",
            evidence,
            _denial_fixes(ctx, message),
        )
    elif "PodSecurity" in message:
        finding = Finding(
            "POD_SECURITY_REJECTED",
            ERROR,
            "pod",
            f"Pod Security admission refused the probe: {message}",
            evidence,
            [fix.kubectl("get", "namespace", ctx.namespace, "--show-labels")],
        )
    elif error is not None and status == 403:  # RBAC (a quota's or a limit's 403 is matched above)
        finding = Finding(
            "PROBE_FORBIDDEN",
            ERROR,
            "harness",
            f"the harness may not create {what} in {ctx.namespace}: {message}",
            {**evidence, "server": ctx.cluster.server, "context": ctx.cluster.context},
            _probe_rbac_fix(ctx, refused, message),
        )
    elif error is not None and status in (0, 401):
        finding = kube_failure_finding(
            error,
            "pod",
            f"create {what} in {ctx.namespace}",
            fix.can_i("create", refused, ctx.namespace),
            ctx.cluster,
            ctx.azure,
        )
    else:
        finding = Finding(
            "POD_NOT_ADMITTED", ERROR, "pod", f"{what} was refused: {message}", evidence, []
        )
    hint = "a ValidatingAdmissionPolicy denied it" if "admission_policy" in evidence else \
        _REFUSAL_HINTS.get(finding.code, hint)
    return failed(
        f"the API server refused {what} ({status}{' ' + hint if hint else ''}): {message}",
        evidence,
        finding,
    )


# Who refused, once the refusal is read: the status's generic hint ("Pod Security admission, RBAC or a policy
# engine" for any 403) named a quota's or a policy engine's refusal as one of three it is not
_REFUSAL_HINTS = {
    "POD_REJECTED_BY_QUOTA": "forbidden by a ResourceQuota or LimitRange",
    "POD_REJECTED_BY_POLICY": "a policy engine's admission webhook denied it",
    "POD_SECURITY_REJECTED": "forbidden by Pod Security admission",
    "PROBE_FORBIDDEN": "forbidden by RBAC",
    "SA_NOT_FOUND": "its ServiceAccount is gone",
    "NAMESPACE_TERMINATING": "the namespace is being deleted",
    "OTHER_WEBHOOK_UNAVAILABLE": "another admission webhook cannot be called",
}


def _ingress_dropped_under_ignore(ctx: WorkloadContext) -> WebhookIngressBlock | None:
    """A NetworkPolicy that drops the API server's calls to the webhook while its failurePolicy is Ignore: each
    call runs to its timeout and the pod is admitted unmutated."""
    hooks = [hook for _, _, hook in _workload_identity_webhooks(ctx)]
    if not hooks or not all(hook.get("failurePolicy") == "Ignore" for hook in hooks):
        return None
    namespace, _ = webhook_service(ctx.cluster)
    return next((b for b in webhook_ingress_blocks(ctx.cluster) if b.namespace == namespace), None)


def _ingress_block_said(block: WebhookIngressBlock) -> str:
    names = ", ".join(block.names)
    several = len(block.names) > 1
    return (f"; NetworkPolic{'ies' if several else 'y'} {names} in {block.namespace} isolate{'' if several else 's'} "
            f"the webhook's pods for ingress and none of {'their' if several else 'its'} rules opens port "
            f"{block.port}, so the API server's calls to it are dropped")


def _webhook_ingress_fixes(block: WebhookIngressBlock) -> list[Step]:
    """An ingress rule for the webhook's serving port added to one of the policies that isolate its pods (a pod
    takes what any policy selecting it allows), from any address: which one the control plane calls from (AKS's
    konnectivity agents, API server VNet integration) is the cluster's; the policy looked at first."""
    policy = sorted(block.policies, key=lambda p: str((p.get("metadata") or {}).get("name")))[0]
    name = str((policy.get("metadata") or {}).get("name"))
    rule = {"ports": [{"protocol": "TCP", "port": block.port}]}
    has_rules = bool((policy.get("spec") or {}).get("ingress"))
    patch = [{"op": "add", "path": "/spec/ingress/-", "value": rule} if has_rules
             else {"op": "add", "path": "/spec/ingress", "value": [rule]}]
    namespace = fix.namespace_or(block.namespace)
    return [
        fix.kubectl("get", "networkpolicy", "-n", namespace, fix.object_or(name, "<policy>"), "-o", "yaml"),
        advice(f"let the API server's calls in: an ingress rule for the webhook's port {block.port} (from any "
               "address: where the control plane calls from is the cluster's), added to that policy:"),
        fix.kubectl("patch", "networkpolicy", fix.object_or(name, "<policy>"), "-n", namespace, "--type",
                    "json", "-p", json.dumps(patch, separators=(",", ":"))),
    ]


# ResourceQuota's "exceeded quota: <name>, requested: pods=1, used: pods=10, limited: pods=10" (object counts
# pods, configmaps, count/<resource>; or compute resources: requests.cpu, limits.memory, cpu...)
_REQUESTED_RE = re.compile(r"exceeded quota: [^,]+, requested: (?P<requested>[^\s,=]+=[^\s,]+(?:,[^\s,=]+=[^\s,]+)*)")


def _quota_advice(message: str) -> str:
    """What meets a ResourceQuota's refusal: an object count (pods, configmaps) is freed or raised, the probe's
    size does not matter; compute resources fit probe.resources; a ConfigMap count is also avoided by probe.mode
    image, which needs no ConfigMap."""
    match = _REQUESTED_RE.search(message)
    requested = [item.split("=", 1)[0] for item in match.group("requested").split(",")] if match else []
    counts = [name for name in requested if name in ("pods", "configmaps") or name.startswith("count/")]
    if requested and len(counts) == len(requested):
        which = " and ".join(counts)
        tail = (" or run the probe with probe.mode image (an image holding the probe: no ConfigMap)"
                if any("configmaps" in name for name in counts) else "")
        return (f"the quota counts {which}, whatever the probe's size: free some (or raise the quota: a person "
                f"decides),{tail or ' then run again'}")
    return "set probe.resources in harness.yaml within the namespace's limits, or raise the quota"


def _within_limit_range(message: str) -> str | None:
    """probe.resources that meet the bounds a LimitRange's refusal names, as harness.yaml takes them."""
    wanted = limit_range_bounds(message)
    if not wanted:
        return None
    for resource, least in wanted.get("requests", {}).items():  # the LimitRanger holds a limit to the minimum too
        wanted.setdefault("limits", {}).setdefault(resource, least)
    return (f"set probe.resources in harness.yaml within the namespace's LimitRange: {probe_resources_text(wanted)} "
            "(a maximum: at most; a minimum: at least, for the request and the limit), or change the LimitRange")


# the ServiceAccount admission plugin (plugin/pkg/admission/serviceaccount/admission.go): admission.NewForbidden
# with "error looking up service account %s/%s: %w" when the pod's ServiceAccount cannot be read
_SA_GONE_RE = re.compile(r'error looking up service account ([^/\s]+)/([^:\s]+): serviceaccounts? "[^"]*" not found')
_FORBIDDEN_USER_RE = re.compile(r'User "([^"]+)" cannot')


def _probe_rbac_fix(ctx: WorkloadContext, refused: str, message: str) -> list[Step]:
    """The probe's RBAC in the namespace for whoever the harness runs as (the API server's SelfSubjectReview,
    else the name its 403 gives), the gap's can-i as the check after."""
    username = (ctx.cluster.run_by_kubernetes or {}).get("username")
    if not isinstance(username, str) or not username:
        named = _FORBIDDEN_USER_RE.search(message)
        username = named.group(1) if named else None
    return [
        *fix.probe_rbac(ctx.namespace, username),
        advice(f"or, for the in-cluster Job: python -m harness manifests render with {ctx.namespace} among the "
               f"workloads (or --namespace {ctx.namespace}), and kubectl apply its 01-rbac.yaml"),
        fix.can_i_advice("create", refused, ctx.namespace, username),
    ]


def probe_launch(pod: dict[str, Any] | None) -> dict[str, Any]:
    """What the admitted probe pod runs, read from its spec: the image, the command (none: the image's
    entrypoint) and, in probe.mode configmap, the ConfigMap its source comes from."""
    spec = (pod or {}).get("spec") or {}
    container = next((c for c in spec.get("containers") or [] if c.get("name") == PROBE_CONTAINER), {})
    volumes = spec.get("volumes") or []
    source = next((v.get("configMap", {}).get("name") for v in volumes if v.get("name") == PROBE_SOURCE_VOLUME), None)
    return {
        "image": container.get("image"),
        "command": container.get("command"),
        "probe_mode": "configmap" if source else "image",
        "source_configmap": source,
    }


# what upstream's getServiceAccountTokenExpiration parses with strconv.ParseInt(value, 10, 64): a sign and digits
_WHOLE_SECONDS_RE = re.compile(r"[+-]?[0-9]+")


def _expiration_said(ctx: WorkloadContext, message: str) -> str:
    """Where the expiration the webhook refused comes from: the probe sets none, so the ServiceAccount's
    annotation (a ParseInt error names neither it nor the ServiceAccount). A value that is no whole number (24h,
    as azwi's --service-account-token-expiration takes it) is said to need seconds."""
    value = ctx.facts.sa.annotations.get(EXPIRATION_ANNOTATION)
    if value is None or not ("token expiration" in message or "ParseInt" in message):
        return ""
    said = f" (the ServiceAccount's {EXPIRATION_ANNOTATION} is {printable(value, 40)!r}"
    return said + (")" if _WHOLE_SECONDS_RE.fullmatch(value) else ": whole seconds, not a duration)")


def _own_expiration(ctx: WorkloadContext, message: str) -> str:
    """The workload's own pods admitted despite the ServiceAccount's invalid token expiration, because each sets
    its own (upstream getServiceAccountTokenExpiration reads the pod's annotation first, the ServiceAccount's only
    without one): said, so a FAIL over a working app reads as what it is; "" otherwise."""
    if EXPIRATION_ANNOTATION not in ctx.facts.sa.annotations or not (
            "token expiration" in message or "ParseInt" in message):
        return ""
    own = sorted({f"{live.owner_kind}/{live.owner_name}" for live in (ctx.facts.live_pods.pods
                                                                     if ctx.facts.live_pods else [])
                  if (((live.pod.get("metadata") or {}).get("annotations") or {}).get(EXPIRATION_ANNOTATION))})
    if not own:
        return ""
    return (f"; the workload's own pods ({', '.join(own[:3])}) are admitted: each sets its own {EXPIRATION_ANNOTATION}, "
            "which the webhook reads before the ServiceAccount's; a pod without one (this probe, a new workload "
            "under the ServiceAccount) is refused")


def _denial_fixes(ctx: WorkloadContext, message: str) -> list[Step]:
    """The webhook's denial of the probe pod, which carries nothing of its own the webhook validates: what it
    names is on the ServiceAccount. An invalid service-account-token-expiration there (upstream
    getServiceAccountTokenExpiration: not a number, or outside 3600-86400: "token expiration N not valid") is
    removed, which gives the pods the default 3600 s; anything else is read on the ServiceAccount."""
    look = fix.kubectl("get", "serviceaccount", "-n", ctx.namespace, ctx.service_account, "-o", "yaml")
    if EXPIRATION_ANNOTATION in ctx.facts.sa.annotations and ("token expiration" in message or "ParseInt" in message):
        return [
            fix.remove_sa_annotation(ctx.namespace, ctx.service_account, EXPIRATION_ANNOTATION),
            advice(f"or set {EXPIRATION_ANNOTATION} on the ServiceAccount to whole seconds from 3600 to 86400 "
                   "(kubectl annotate ... --overwrite)"),
        ]
    return [look]


def _app_labels(ctx: WorkloadContext) -> dict[str, str]:
    """The labels of the workload's first live pod (the same policies admitted it)."""
    live = ctx.facts.live_pods
    pod = live.pods[0].pod if live and live.pods else {}
    return dict((pod.get("metadata") or {}).get("labels") or {})


def _policy_fixes(webhook: str, namespace: str, said: str = "", labels: dict[str, str] | None = None) -> list[Step]:
    """What the policy wants of the probe. An allowed-repositories policy (gatekeeper-library's allowedrepos text)
    that refused the probe container's image: the image imported into a registry the policy allows and named in
    probe.image, or another Python image from one of the repositories it lists; required labels (as the
    workload's pods carry them) or an image pinned by digest, in harness.yaml (admission.probe_policy_advice)."""
    gatekeeper = webhook.endswith("gatekeeper.sh")  # Azure Policy for AKS and OPA Gatekeeper
    which = fix.kubectl("get", "constraints", "-o", "wide", note="which constraint refused it")
    refused_image = image_repo_refusal(said, PROBE_CONTAINER)
    if refused_image is not None:
        image, repos = refused_image
        return [
            *([which] if gatekeeper else []),
            *fix.mirror_probe_image(image, repos),
            advice(f"or set probe.image in harness.yaml to a Python image under the repositories the policy allows: "
                   f"{repos}"),
        ]
    limits = limit_refusal(said, PROBE_CONTAINER)
    if limits:  # a container-limits policy: the probe's limits set within its maxima
        wanted = ", ".join(f"{resource}: {most}" for resource, most in sorted(limits.items()))
        lowered = {resource: most for resource, most in limits.items()  # harness.yaml wants requests within limits
                   if (request := parse_quantity(DEFAULT_PROBE_REQUESTS.get(resource, ""))) is not None
                   and (top := parse_quantity(most)) is not None and request > top}
        requests = (", requests: {" + ", ".join(f"{r}: {v}" for r, v in sorted(lowered.items())) + "}"
                    if lowered else "")
        return [
            *([which] if gatekeeper else []),
            advice(f"set probe.resources in harness.yaml within what the policy allows: limits: {{{wanted}}}"
                   f"{requests} (or lower); the probe needs little"),
        ]
    asked = probe_policy_advice(said, PROBE_CONTAINER, labels or {})
    if asked:
        return [*([which] if gatekeeper else []), *asked]
    kyverno = kyverno_policies(said)
    if kyverno:
        return kyverno_fixes(kyverno, namespace)
    if gatekeeper:
        return [
            which,
            advice(f"exempt namespace {namespace} or make the probe comply (probe.resources, probe.labels in "
                   "harness.yaml); Azure Policy assignments live on the cluster's scope in Azure"),
        ]
    return [advice(f"read the policy behind webhook {webhook}; make the probe comply (probe.* in harness.yaml) "
                   f"or exempt namespace {namespace}")]


def _admission_policy_fixes(policy: str, binding: str, namespace: str, said: str,
                            labels: dict[str, str]) -> list[Step]:
    """The ValidatingAdmissionPolicy and its binding shown; what its message asks of the probe (labels, an image
    pinned by digest) when it is a text the harness knows; else the person's call: the probe made to comply, or the
    harness's pods left out of the binding."""
    return [
        *admission_policy_looks(policy, binding),
        *probe_policy_advice(said, PROBE_CONTAINER, labels),
        advice(f"make the probe comply with what the policy's validation asks (probe.labels, probe.resources, "
               f"probe.image in harness.yaml), or a person decides to leave the harness's pods in "
               f"{fix.namespace_or(namespace)} out of {'binding ' + binding if binding else 'its binding'}: its "
               "matchResources.objectSelector, e.g. app.kubernetes.io/managed-by NotIn [wi-harness]"),
    ]


def pod_exists(ctx: WorkloadContext) -> Outcome:
    pod = ctx.facts.pod
    assert pod is not None
    if pod.created and is_webhook_pod(pod.pod):
        kind, name = controller_of(pod.pod or {})
        said = (f"pod {pod.namespace}/{pod.name} is the Workload ID webhook's own pod ({kind}/{name}, labelled "
                f"{WEBHOOK_SYSTEM_LABEL}=true), not a workload that uses Workload ID: --pod takes a pod of the "
                "workload to check")
        evidence = {"labels": ((pod.pod or {}).get("metadata") or {}).get("labels") or {}}
        return failed(said, evidence, Finding(
            "POD_NOT_A_WORKLOAD", ERROR, "pod", said, evidence,
            [fix.kubectl("get", "pods", "-A", "-l", f"{USE_LABEL}=true", note="the pods labelled for Workload ID")]))
    if pod.created:
        kind, name = controller_of(pod.pod or {})
        made_by = f"{kind} {name}" if kind != "Pod" else "no controller"
        evidence: dict[str, Any] = {"phase": pod.phase, "service_account": ctx.service_account,
                                    "controller": f"{kind}/{name}"}
        stopping = crashing_containers(pod.pod or {})
        if stopping:  # --pod of a crash-looping pod: the chain below proves its ServiceAccount, not the app
            evidence["crashing"] = stopping
        status = (pod.pod or {}).get("status") or {}
        ended = (f" ({printable(str(status['reason']), 63)}: {printable(str(status.get('message') or ''), 200)})"
                 if status.get("reason") else "")  # Evicted, DeadlineExceeded ...: why the pod ended, not Workload ID
        found = f"made by {made_by}, phase {pod.phase}{ended}, service account {ctx.service_account}"
        meta = (pod.pod or {}).get("metadata") or {}
        if meta.get("deletionTimestamp"):  # Terminating: what it shows is of a pod going away
            finalizers = [str(f) for f in meta.get("finalizers") or []]
            evidence["deletion_timestamp"] = str(meta["deletionTimestamp"])
            found += f"; being deleted since {meta['deletionTimestamp']} (Terminating" + (
                f", held by finalizers {', '.join(finalizers)})" if finalizers else ")")
        if stopping:
            return passed(
                f"pod {pod.namespace}/{pod.name} found, its container {', '.join(stopping)} keeps stopping ({found}): "
                "the checks below prove Workload ID for its ServiceAccount; its last run's log (logs --previous) "
                "says why the app stops", evidence)
        unscheduled = unschedulable_message(pod.pod) if pod.phase == "Pending" else None
        unscheduled = printable(unscheduled, 300) if unscheduled else None
        if unscheduled:  # --pod of a pod no node takes (a Windows nodeSelector, a taint): it has never run
            evidence["unschedulable"] = unscheduled
            return passed(
                f"pod {pod.namespace}/{pod.name} found, but no node takes it: {unscheduled} ({found}): it has never "
                "run, which is not Workload ID's doing; the checks below prove Workload ID for its ServiceAccount "
                "through a probe pod", evidence)
        return passed(f"pod {pod.namespace}/{pod.name} found ({found})", evidence)
    error = pod.create_error
    if error is not None:  # not "absent": the harness could not look
        return kube_call_failed(
            error,
            "pod",
            f"read pod {pod.namespace}/{pod.name}",
            fix.can_i("get", "pods", pod.namespace),
            ctx.cluster,
            ctx.azure,
        )
    sa = ctx.facts.sa
    if sa.namespace_found is False:  # --pod names a namespace that is not there: say so, with the near ones
        namespaces = list(dict.fromkeys(near.split("/", 1)[0] for near in sa.near_names))
        said = f"pod {pod.namespace}/{pod.name} not found: namespace {pod.namespace} does not exist" + (
            f"; did you mean {' or '.join(namespaces)}?" if namespaces else "")
        return failed(said, {"namespace_found": False, "near_names": namespaces}, Finding(
            "POD_NOT_FOUND", ERROR, "pod", said, {"namespace_found": False},
            [fix.kubectl("get", "pods", "-A", "--field-selector", f"metadata.name={pod.name}")]))
    owned = pods_of_controller(pod.name, pod.namespace_pods or [])
    near = owned or near_pod_names(pod.name, pod.namespace_pods or [])
    if pod.service_account_named:  # --pod given the ServiceAccount's name, the one --workload takes
        said = (f"pod {pod.namespace}/{pod.name} not found; {pod.name} is a ServiceAccount: --workload "
                f"{pod.namespace}/{pod.name} checks it (--pod takes a pod's name, as listed by get pods)")
    elif owned:  # --pod given the Deployment's (StatefulSet's, Job's ...) name, as kubectl get deploy lists it
        said = (f"pod {pod.namespace}/{pod.name} not found; {pod.name} names the controller of pods "
                f"{', '.join(owned)} (--pod {pod.namespace}/{owned[0]})")
    else:
        said = f"pod {pod.namespace}/{pod.name} not found" + (
            f"; its namespace has {', '.join(near)} (a rollout replaces a Deployment's pods: --pod "
            f"{pod.namespace}/{near[0]})" if near else "")
    return failed(
        said,
        {"near_names": near},
        Finding(
            "POD_NOT_FOUND",
            ERROR,
            "pod",
            said,
            {"near_names": near},
            [fix.kubectl("get", "pods", "-n", fix.namespace_or(pod.namespace)),
             *([] if near else [fix.kubectl("get", "pods", "-A", "--field-selector", f"metadata.name={pod.name}")])],
        ),
    )


def crashing_containers(pod: dict[str, Any]) -> list[str]:
    """Each container of ``pod`` in CrashLoopBackOff or restarted after an error, as ``NAME (CrashLoopBackOff,
    last exit 1, 3 restarts)``."""
    said = []
    for container in (pod.get("status") or {}).get("containerStatuses") or []:
        waiting = ((container.get("state") or {}).get("waiting") or {}).get("reason")
        last = (container.get("lastState") or {}).get("terminated") or {}
        exit_code = last.get("exitCode")
        restarts = container.get("restartCount") or 0
        if waiting != "CrashLoopBackOff" and not (restarts and exit_code):
            continue
        parts = [str(waiting)] if waiting == "CrashLoopBackOff" else []
        parts += [f"last exit {exit_code}"] if exit_code is not None else []
        parts.append(f"{restarts} restart{'s' if restarts != 1 else ''}")
        said.append(f"{printable(str(container.get('name')), 63)} ({', '.join(parts)})")
    return said


# what a controller appends to its name for a pod's: a Deployment's pod-template-hash and generateName's 5 characters
# (k8s.io/apimachinery/pkg/util/rand's vowel-free alphabet), a DaemonSet's or Job's 5, a StatefulSet's ordinal
_GENERATED = "[bcdfghjklmnpqrstvwxz2456789]"
_CONTROLLED_SUFFIX_RE = re.compile(rf"(?:{_GENERATED}{{6,10}}-)?{_GENERATED}{{5}}|[0-9]+")


def pods_of_controller(name: str, names: list[str], most: int = 3) -> list[str]:
    """The pods a controller named ``name`` made (NAME-HASH-RANDOM, NAME-RANDOM, NAME-N): --pod given the
    Deployment's name, not one of its pods'."""
    return [n for n in names if n.startswith(f"{name}-") and _CONTROLLED_SUFFIX_RE.fullmatch(n[len(name) + 1:])][:most]


def near_pod_names(name: str, names: list[str], most: int = 3) -> list[str]:
    """The pods that ``name`` most likely meant: those of its controller now (a Deployment's pod is
    NAME-HASH-RANDOM, a ReplicaSet's, DaemonSet's or Job's NAME-RANDOM, a StatefulSet's NAME-N), else a close
    spelling."""
    parts = name.rsplit("-", 2)
    stems = [parts[0] + "-"] if len(parts) == 3 else []
    stems += [name.rsplit("-", 1)[0] + "-"] if "-" in name else []
    for stem in stems[::-1]:  # the longer stem first: the same ReplicaSet before the same Deployment
        same = [n for n in names if n.startswith(stem) and n != name and "-" not in n[len(stem):]]
        if same:
            return same[:most]
    for stem in stems:
        same = [n for n in names if n.startswith(stem) and n != name]
        if same:
            return same[:most]
    return difflib.get_close_matches(name, names, n=most, cutoff=0.8)


def pod_labelled(ctx: WorkloadContext) -> Outcome:
    labels = ((ctx.pod or {}).get("metadata") or {}).get("labels") or {}
    value = labels.get(USE_LABEL)
    if value == "true":
        return passed(f'pod labelled {USE_LABEL}: "true"', {"labels": labels})
    existing, (kind, name) = ctx.facts.pod, controller_of(ctx.pod or {})
    if existing is not None and unlabelled_after_mutation(LivePod(ctx.pod or {}, kind, name, existing.owner)):
        return passed(f"the pod lacks {USE_LABEL} (taken off after it was made), but the webhook mutated it and "
                      f"{kind}/{name}'s pod template carries the label: its next pods are labelled too",
                      {"labels": labels, "template_labelled": f"{kind}/{name}"})
    evidence: dict[str, Any] = {"labels": labels, "value": value}
    why = "absent" if value is None else f'{value!r}, and only the exact value "true" selects the pod'
    misplaced = misplaced_use_label(kind, existing.owner, existing.cronjob) if existing else None
    controller = "CronJob" if existing and existing.cronjob else kind if kind != "Pod" else "Deployment"
    controller_less = kind == "Pod" and existing is not None and existing.existing
    if misplaced is not None:
        evidence["placed_on"] = misplaced[0]
        why += f"; it sits on {misplaced[1]}, it must be under {misplaced[2]}"
    sits = ""
    if misplaced is None:  # where the webhook does not look: the pod's annotations, its ServiceAccount's labels
        elsewhere = (["as an annotation of the pod"] if annotation(ctx.pod, USE_LABEL) is not None else []) + (
            ["on the ServiceAccount"] if ctx.facts.sa.labels.get(USE_LABEL) == "true" else [])
        if elsewhere:
            evidence["placed_on"] = elsewhere
            sits = f"; it sits {' and '.join(elsewhere)}"
            why += sits
    # the template has it already: why this pod is still the earlier template's (a pause, a partition)
    ahead = template_ahead(LivePod(ctx.pod or {}, kind, name, existing.owner, existing.cronjob)) \
        if existing is not None else ""
    return failed(
        f"the pod's {USE_LABEL} label is {why}{ahead}: the webhook never sees it",
        evidence,
        Finding(
            "POD_NOT_LABELLED",
            ERROR,
            "pod",
            f'pod lacks {USE_LABEL}: "true"' + (
                ahead or (f" (its label is {printable(value, 63)!r}: only the exact value \"true\" selects the pod"
                          f"{sits})" if value is not None else
                          f" (it belongs in the pod's own metadata.labels{sits})" if controller_less else
                          f" (it belongs on the pod TEMPLATE, as a label, not on the {controller}, the ServiceAccount "
                          f"or a Service{sits})")),
            evidence,
            _bare_pod_again(ctx, label=True) or label_repair(ctx),
        ),
    )


def _bare_pod_again(ctx: WorkloadContext, *, label: bool) -> list[Step]:
    """The given pod (--pod), when no controller owns it (kubectl run, a manifest applied by hand) and the webhook
    never mutated it: labelled first when ``label``, then created again from its own spec. A delete, with
    "recreate it from its manifest" after it, loses a pod that has no manifest. [] for a pod with a controller,
    one being deleted, or one mutated already (its copy would keep the injected env, which the webhook leaves)."""
    existing, pod = ctx.facts.pod, ctx.pod or {}
    kind, name = controller_of(pod)
    if kind != "Pod" or not name or existing is None or not existing.existing:
        return []
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return []
    return bare_pods_again(ctx, [name], label=label)


def pod_mutated(ctx: WorkloadContext) -> Outcome:
    pod, container = ctx.pod, ctx.container
    env = env_map(container)
    volumes = token_volumes(pod)
    evidence: dict[str, Any] = {
        "container": (container or {}).get("name"),
        "env": {name: env.get(name) for name in INJECTED_ENV if name in env},
        "token_volumes": [v.__dict__ | {"layout": v.layout} for v in volumes],
    }
    missing = [name for name in INJECTED_ENV if not env.get(name)]
    if len(missing) == len(INJECTED_ENV) and not volumes:
        return _not_mutated(ctx, evidence)
    if missing == ["AZURE_CLIENT_ID"] and ctx.annotated_client_id is None and volumes:
        # The webhook did its part; the client id comes from the ServiceAccount's annotation, already the root.
        evidence["note"] = "the webhook injects AZURE_CLIENT_ID from that annotation; everything else was injected"
        return skipped("skipped because sa.client_id_annotation failed", evidence, blocked_by="sa.client_id_annotation")
    tenant = ctx.facts.sa.annotations.get(TENANT_ID_ANNOTATION)
    if missing == ["AZURE_TENANT_ID"] and tenant is not None and not tenant.strip() and volumes:
        # getTenantID takes the annotation even empty, and the webhook appends only non-empty variables
        evidence["note"] = "the webhook takes AZURE_TENANT_ID from that empty annotation; everything else was injected"
        return skipped("skipped because sa.client_id_annotation failed", evidence, blocked_by="sa.client_id_annotation")
    skipped_names = skipped_containers(pod)
    everything = [str(c.get("name") or "") for c in containers(pod, include_init=True)]
    if volumes and skipped_names and everything and all(name in skipped_names for name in everything):
        return _every_container_skipped(ctx, evidence, everything)
    chosen = str((container or {}).get("name") or "")
    if volumes and chosen in skipped_names and len(missing) == len(INJECTED_ENV):
        return _judged_container_skipped(ctx, evidence, chosen, skipped_names)
    evidence["containers_without_env"] = [
        str(c.get("name")) for c in containers(pod)
        if c.get("name") not in skipped_names and not any(env_map(c).get(name) for name in INJECTED_ENV)
    ]
    problems: list[str] = []
    findings: list[Finding] = []
    preset = value_sources(container, missing)
    if preset:
        # the webhook appends only the variables a container does not name (addEnvironmentVariables keys on the
        # name): one set with valueFrom keeps its source's value, which the pod spec does not show
        evidence["value_from"] = preset
        said = "; ".join(f"{name} from {source}" for name, source in preset.items())
        problems.append(f"the container sets {said} itself (valueFrom): the webhook never sets a variable the "
                        "container names")
        findings.append(Finding(
            "POD_ENV_CONFLICT", ERROR, "pod",
            f"container {evidence['container']} sets {said} itself: the webhook never overwrites a variable the "
            "container names, so the app gets what that holds (the harness does not read it)",
            evidence, _unset_preset(ctx, list(preset)),
        ))
        missing = [name for name in missing if name not in preset]
    empty = [name for name in missing if named_empty(container or {}, name)]
    if empty:  # named with an empty value (a chart value left unset): the webhook appends nothing for it either
        evidence["set_empty"] = empty
        said = f"the container sets {' and '.join(empty)} itself, to an empty value"
        problems.append(f"{said}: the webhook never sets a variable the container names")
        findings.append(Finding(
            "POD_ENV_CONFLICT", ERROR, "pod",
            f"container {evidence['container']}: {said[len('the container '):]} (a chart or manifest value left "
            "unset): the webhook never sets a variable the container names, so the app gets none; a restart keeps "
            "it empty", evidence, _unset_preset(ctx, empty)))
        missing = [name for name in missing if name not in empty]
    if missing:
        problems.append(f"missing env {', '.join(missing)}")
        if missing == ["AZURE_CLIENT_ID"]:
            findings.append(
                Finding(
                    "POD_MISSING_CLIENT_ID",
                    ERROR,
                    "pod",
                    "the webhook injected everything but AZURE_CLIENT_ID: the ServiceAccount had no "
                    "client-id annotation when the pod was created",
                    evidence,
                    [
                        fix.annotate_sa(ctx.namespace, ctx.service_account, ctx.expected_client_id),
                        *restart_workload(ctx),
                    ],
                )
            )
    token_file = env.get("AZURE_FEDERATED_TOKEN_FILE")
    mounted = None
    if not volumes:
        audiences = all_token_audiences(pod)
        problems.append(
            f"no projected service-account token with audience {TOKEN_AUDIENCE}"
            + (f" (found audiences {audiences})" if audiences else "")
        )
    else:
        for volume in volumes:
            for mount in mounts_of(container, volume.volume):
                path = token_file_of(mount, volume)
                if token_file and path == token_file.rstrip("/"):
                    mounted = (volume, mount)
        # the token mounted in this container elsewhere: the webhook sets the variable to its own mount's path and
        # never overwrites one the container sets, so a value that is no mount's path is the pod spec's own
        elsewhere = sorted({token_file_of(mount, volume) for volume in volumes
                            for mount in mounts_of(container, volume.volume)})
        if mounted is None and token_file and elsewhere:
            said = (f"AZURE_FEDERATED_TOKEN_FILE={printable(token_file, 120)} is set in the pod spec (no mount of the "
                    f"token volume there; the token is at {elsewhere[0]}): the webhook never overwrites a variable "
                    "already set, so the SDK reads a file that is not the token")
            problems.append(said)
            findings.append(Finding(
                "POD_ENV_CONFLICT", ERROR, "pod", said, evidence,
                _remove_env_and_restart(ctx, "AZURE_FEDERATED_TOKEN_FILE")))
        elif mounted is None:
            problems.append(
                f"no mount of the token volume at the path in AZURE_FEDERATED_TOKEN_FILE ({token_file})"
            )
        elif not mounted[1].get("readOnly"):
            problems.append(f"the token mount {mounted[1].get('mountPath')} is not readOnly")
    if mounted is not None:
        evidence.update(
            {
                "volume": mounted[0].volume,
                "layout": mounted[0].layout,
                "mount_path": mounted[1].get("mountPath"),
                "read_only": bool(mounted[1].get("readOnly")),
                "token_file": token_file,
                "expiration_seconds": mounted[0].expiration_seconds,
            }
        )
    if evidence["containers_without_env"]:
        problems.append(
            f"{in_number(len(evidence['containers_without_env']), 'container')} "
            f"{', '.join(evidence['containers_without_env'])} got no AZURE_* env (added after the "
            "webhook ran, e.g. by another webhook?)"
        )
    annotated = ctx.annotated_client_id
    injected = env.get("AZURE_CLIENT_ID")
    made = ctx.facts.pod is not None and not ctx.facts.pod.existing  # the harness's own probe pod, not --pod
    if made and injected and annotated and injected.lower() != annotated.lower():
        # the harness's own probe pod sets no AZURE_CLIENT_ID: the webhook injected what the ServiceAccount said when
        # the pod was admitted, which is not what the harness read a moment before
        evidence["annotation_read"], evidence["injected"] = annotated, injected
        message = (f"the ServiceAccount's client-id annotation changed during the run: the harness read "
                   f"{printable(annotated, 80)}, the webhook injected {printable(injected, 80)} into the probe pod "
                   "moments later (or another mutating webhook sets AZURE_CLIENT_ID); the checks that follow mix "
                   "the two: run again once it is settled")
        return failed(message, evidence, Finding(
            "SA_CHANGED_DURING_RUN", ERROR, "serviceaccount", message, evidence, [
                fix.kubectl("get", "serviceaccount", "-n", fix.namespace_or(ctx.namespace),
                            fix.object_or(ctx.service_account, "<sa>"), "-o", "yaml",
                            note="its annotation now, and who changed it (managedFields)"),
                fix.kubectl("get", "mutatingwebhookconfigurations",
                            note="if nobody changed it: another webhook that sets AZURE_CLIENT_ID"),
            ]))
    stale = _stale_client_id(ctx, env.get("AZURE_CLIENT_ID"), annotated)
    if stale is not None:
        if stale:  # the webhook's own, from before the annotation changed: the restart gives the pod the new one
            problems.append(stale)
            findings.append(Finding("POD_STALE_CLIENT_ID", ERROR, "pod", f"the pod's {stale}", evidence,
                                    restart_workload(ctx)))
    elif env.get("AZURE_CLIENT_ID") and annotated and env["AZURE_CLIENT_ID"].lower() != annotated.lower():
        problems.append(
            f"AZURE_CLIENT_ID={printable(env['AZURE_CLIENT_ID'], 80)} in the pod spec, but the ServiceAccount says "
            f"{printable(annotated, 80)} (the webhook never overwrites a variable already set)"
        )
        findings.append(
            Finding(
                "POD_ENV_CONFLICT",
                ERROR,
                "pod",
                "AZURE_CLIENT_ID is preset in the pod spec and differs from the ServiceAccount's annotation",
                evidence,
                _remove_env_and_restart(ctx, "AZURE_CLIENT_ID"),
            )
        )
    if problems:
        if not findings:
            findings.append(
                Finding(
                    "POD_NOT_MUTATED",
                    ERROR,
                    "pod",
                    "the pod was only partly mutated: " + "; ".join(problems),
                    evidence,
                    _mutation_remediation(ctx),
                )
            )
        if [f.code for f in findings] == ["POD_STALE_CLIENT_ID"] and len(problems) == 1:
            return failed(f"the pod's {problems[0]}", evidence, *findings)
        return failed("the webhook's mutation is incomplete: " + "; ".join(problems), evidence, *findings)
    authority = env.get("AZURE_AUTHORITY_HOST") or ""
    conflict = _authority_conflict(ctx, authority, evidence)
    if conflict is not None:
        return conflict
    if ctx.azure and authority.rstrip("/") != ctx.azure.cloud.endpoints.authority_host.rstrip("/"):
        return warned(
            f"mutated, but AZURE_AUTHORITY_HOST={authority} is not the configured cloud's "
            f"{ctx.azure.cloud.endpoints.authority_host} (the webhook's AZURE_ENVIRONMENT?)",
            evidence,
            Finding(
                "AUTHORITY_HOST_MISMATCH",
                WARNING,
                "webhook",
                "the webhook injects another cloud's authority host",
                evidence,
                authority_fix(ctx),
            ),
        )
    return passed(
        f"mutated ({evidence['layout']} layout): 4 env vars, projected token audience {TOKEN_AUDIENCE} "
        f"in volume {evidence['volume']}, read-only at {evidence['mount_path']}, "
        f"AZURE_FEDERATED_TOKEN_FILE={token_file}",
        evidence,
    )


def _stale_client_id(ctx: WorkloadContext, pod_client_id: str | None, annotated: str | None) -> str | None:
    """--pod: the given pod's AZURE_CLIENT_ID is not the ServiceAccount's annotation and the webhook put it there
    (its controller's template, as read, does not set it): the pod predates the annotation's change. "" when it is
    harness.yaml's client id (the annotation is what is wrong, sa.client_id_annotation says so, and a restart would
    hand the pod the wrong identity), or the other application of the annotated one's name that trusts the
    ServiceAccount while the annotated one does not; None otherwise (the container sets it, or that cannot be told)."""
    pod = ctx.facts.pod
    if (pod is None or not pod.existing or not pod_client_id or not annotated
            or pod_client_id.lower() == annotated.lower()):
        return None
    if (ctx.workload.client_id and ctx.stale_configured_client_id is None
            and pod_client_id.lower() == ctx.workload.client_id.lower()):
        return ""  # harness.yaml's, unless that is out of date (its identity created again: the annotation is right)
    trusted = namesake_trusted_instead(ctx)
    if trusted is not None and pod_client_id.lower() == str(trusted["appId"]).lower():
        return ""  # the app of the same name that trusts the ServiceAccount: federation.credential names it
    kind, name = controller_of(ctx.pod or {})
    if preset_in_template(LivePod(ctx.pod or {}, kind, name, pod.owner, pod.cronjob),
                          str((ctx.container or {}).get("name") or "")):
        return None
    return (f"AZURE_CLIENT_ID={printable(pod_client_id, 80)} was injected when the pod was created, but the "
            f"ServiceAccount now says {printable(annotated, 80)}: the pod predates the annotation's change")


def _authority_conflict(ctx: WorkloadContext, authority: str, evidence: dict[str, Any]) -> Outcome | None:
    """--pod: the given pod's AZURE_AUTHORITY_HOST is not what the webhook injects under its ServiceAccount now (the
    probe pod's, which sets none itself): the pod sets it (the webhook never overwrites a variable already set), or
    it was made under another webhook configuration; its SDK exchanges the ServiceAccount token at that host."""
    webhook_now = _probe_env(ctx).get("AZURE_AUTHORITY_HOST")
    if not webhook_now or not authority or authority.rstrip("/").lower() == webhook_now.rstrip("/").lower():
        return None
    evidence["webhook_injects"] = {"AZURE_AUTHORITY_HOST": webhook_now}
    message = (f"AZURE_AUTHORITY_HOST={printable(authority, 120)} in the pod, but the webhook injects "
               f"{webhook_now} under ServiceAccount {ctx.service_account}: the pod spec sets it (the webhook "
               "never overwrites a variable already set), or the pod predates a change of the webhook's cloud; "
               "the workload's SDK sends its ServiceAccount token to that host")
    return failed(message, evidence, Finding("POD_ENV_CONFLICT", ERROR, "pod", message, evidence,
                                             _remove_env_and_restart(ctx, "AZURE_AUTHORITY_HOST")))


def _remove_env_and_restart(ctx: WorkloadContext, variable: str) -> list[Step]:
    """A variable the pod spec sets itself (literally) taken out, then the pods made again: the webhook never
    overwrites a variable a container names. A Deployment's, StatefulSet's or DaemonSet's pod: the variable unset
    on its template (which rolls the pods), as workload.live_pods prints for the same conflict; a restart alone
    would make the pods again with it."""
    kind, name = controller_of(ctx.pod or {})
    if kind in ("Deployment", "StatefulSet", "DaemonSet"):
        return [fix.unset_env(kind, ctx.namespace, name, variable)]
    return [advice(f"remove {variable} from the container's env (or its envFrom source)"), *restart_workload(ctx)]


def _unset_preset(ctx: WorkloadContext, variables: list[str]) -> list[Step]:
    """The variables the given pod's containers set themselves removed from its controller's template (a template
    change rolls the pods); a Job's or a bare pod's manifest is a person's to change."""
    kind, name = controller_of(ctx.pod or {})
    if kind in ("Deployment", "StatefulSet", "DaemonSet"):
        return [fix.unset_env(kind, ctx.namespace, name, variable) for variable in variables]
    return [advice(f"remove {' and '.join(variables)} from the container's env in {kind}/{name}'s manifest"),
            *restart_workload(ctx)]


def _every_container_skipped(ctx: WorkloadContext, evidence: dict[str, Any], names: list[str]) -> Outcome:
    """The webhook ran (the token volume is there) but mounted it and set the env in no container: each is in the
    pod's skip-containers annotation (mutateContainers skips the containers it names, init containers too). Not a
    webhook to reinstall nor a pod to restart: the annotation on the pod template is what to change."""
    evidence[SKIP_CONTAINERS_ANNOTATION] = annotation(ctx.pod, SKIP_CONTAINERS_ANNOTATION)
    message = (f"every container of the pod ({', '.join(names)}) is in {SKIP_CONTAINERS_ANNOTATION}: the webhook "
               "added the token volume but no AZURE_* env or token mount to any of them, so nothing in the pod can "
               "use the identity")
    kind, name = controller_of(ctx.pod or {})
    pod_name = str(((ctx.pod or {}).get("metadata") or {}).get("name") or "")
    return failed(message, evidence, Finding("POD_CONTAINER_SKIPPED", ERROR, "pod", message, evidence,
                                             unskip_repair(ctx, kind, name, [pod_name])))


def _judged_container_skipped(ctx: WorkloadContext, evidence: dict[str, Any], cname: str, skipped: set[str]
                              ) -> Outcome:
    """--pod: the container judged (no app container got the AZURE_* env) is in the pod's skip-containers
    annotation, while the webhook mutated an init container (a native sidecar, or one that fetches secrets): the
    webhook ran and did what the annotation says (mutateContainers skips the names it lists, init containers too),
    so no reinstall nor restart helps. A warning, as live_pods says of a skipped container (it may be skipped on
    purpose); an error when it keeps failing, as one that needs the identity does (its log says)."""
    pod = ctx.pod or {}
    evidence[SKIP_CONTAINERS_ANNOTATION] = annotation(pod, SKIP_CONTAINERS_ANNOTATION)
    init_names = {str(c.get("name") or "") for c in (pod.get("spec") or {}).get("initContainers") or []}
    got = [str(c.get("name") or "") for c in containers(pod, include_init=True)
           if any(env_map(c).get(name) for name in INJECTED_ENV)]
    evidence["mutated_containers"] = got
    named = [f"{'init container' if got_name in init_names else 'container'} {got_name}" for got_name in got]
    kind, name = controller_of(pod)
    pod_name = str((pod.get("metadata") or {}).get("name") or "")
    said = (f"container {cname} is in {SKIP_CONTAINERS_ANNOTATION}: the webhook gave it no AZURE_* env and no token "
            "mount" + (f" (it mutated {', '.join(named)} only)" if named else ""))
    failing = container_failing(pod, cname)
    alone = skipped == {cname}
    if failing is None:
        return warned(said, evidence, Finding("POD_CONTAINER_SKIPPED", WARNING, "pod", said, evidence,
                                              unskip_one_repair(ctx, kind, name, pod_name, cname, alone=alone)))
    message = f"{said}, and it is {failing[0]}"
    return failed(message, evidence, Finding(
        "POD_CONTAINER_SKIPPED", ERROR, "pod", message, evidence,
        skipped_failing_repair(ctx, kind, name, pod_name, cname, previous=failing[1], alone=alone)))


# the webhook's AZURE_ENVIRONMENT names (go-autorest's environments, getAzureAuthorityHost) by authority host
WEBHOOK_ENVIRONMENTS = {
    "https://login.microsoftonline.com/": "AzurePublicCloud",
    "https://login.chinacloudapi.cn/": "AzureChinaCloud",
    "https://login.microsoftonline.us/": "AzureUSGovernmentCloud",
}


def authority_fix(ctx: WorkloadContext) -> list[Step]:
    """AUTHORITY_HOST_MISMATCH's fix: the webhook's cloud, as its ConfigMap holds it, and the chart's value set to the
    configured cloud's where the Helm chart installed it."""
    return [fix.kubectl("-n", fix.namespace_or(webhook_namespace(ctx.cluster)), "get", "configmap",
                        "azure-wi-webhook-config", "-o", "yaml"), *_chart_environment_fix(ctx)]


def _chart_environment_fix(ctx: WorkloadContext) -> list[Step]:
    """Under the Helm chart, the webhook's cloud is its azureEnvironment value (the ConfigMap's
    AZURE_ENVIRONMENT, read at the manager's start): set to the configured cloud's, the webhook restarted, the
    workload's pods made again. The add-on's ConfigMap is AKS's own: nothing to print but the look at it."""
    chart = chart_install(ctx.cluster)
    if chart is None or ctx.azure is None:
        return []
    environment = WEBHOOK_ENVIRONMENTS.get(ctx.azure.cloud.endpoints.authority_host.rstrip("/") + "/")
    if environment is None:
        return [advice(f"set the chart's azureEnvironment to the cloud of {ctx.azure.cloud.endpoints.authority_host}"
                       " (helm upgrade --reuse-values --set azureEnvironment=...), restart its webhook Deployment, "
                       "then the workload")]
    return [*fix.helm_set_chart_environment(chart.release, chart.namespace, environment), *restart_workload(ctx)]


def _not_mutated(ctx: WorkloadContext, evidence: dict[str, Any]) -> Outcome:
    labels = ((ctx.pod or {}).get("metadata") or {}).get("labels") or {}
    reasons = []
    if labels.get(USE_LABEL) != "true":
        reasons.append(f'the pod lacks the label {USE_LABEL}: "true"')
    if not ctx.cluster.webhook_configurations:
        reasons.append("no workload identity webhook is installed" + _addon_off(ctx))
    kube_system = ctx.namespace == "kube-system" and not _enforcer_opted_out(ctx)
    if kube_system:
        reasons.append("AKS keeps webhooks away from kube-system")
    skip = annotation(ctx.pod, SKIP_CONTAINERS_ANNOTATION)
    if skip:
        reasons.append(f"{SKIP_CONTAINERS_ANNOTATION}={skip}")
    rules = _rules_miss_pod_create(ctx)
    if rules and not reasons:
        reasons.append(f"the webhook's rules do not select pod CREATE ({rules}): the API server never calls it for a "
                       "new pod (the add-on and the chart ship operations [CREATE] on v1 pods)")
    narrowed = _object_selector_unmet(ctx, labels)
    if narrowed and not reasons:
        own = all(r.startswith(USE_LABEL) for r in narrowed)  # the use label's own value edited ("enabled")
        reasons.append(f"the webhook's objectSelector {'' if own else 'also '}requires " + ", ".join(narrowed)
                       + ", which the pod does not meet (the webhook ships selecting on the use label alone"
                       + (f', {USE_LABEL}: "true")' if own else ")"))
    excluded = _excluding_requirements(ctx)
    if excluded and not reasons:
        edited = " was edited (" + _SELECTOR_DEFAULT + ") and" if _edited_selector_patches(ctx) else ""
        reasons.append(f"the webhook's namespaceSelector{edited} excludes namespace {ctx.namespace}: "
                       + "; ".join(text for text, _, _ in excluded))
        evidence["namespace_labels"] = ctx.facts.sa.namespace_labels
    down = _webhook_down_under_ignore(ctx)
    if down and not reasons:
        reasons.append(f"the webhook has no ready replica and its failurePolicy is Ignore ({down}): the API server "
                       "admitted the pod without calling it")
    short = _short_webhook_timeout(ctx, "Ignore")
    if short and not reasons and labels.get(USE_LABEL) == "true":
        reasons.append(f"the webhook's failurePolicy is Ignore{_timeout_said(short)}; under Ignore the API server "
                       "admits the pod unmutated when the call fails")
        evidence["timeoutSeconds"] = short[2]
    dropped = _ingress_dropped_under_ignore(ctx) if not reasons and labels.get(USE_LABEL) == "true" else None
    if dropped is not None:
        reasons.append("the webhook's failurePolicy is Ignore" + _ingress_block_said(dropped)
                       + "; under Ignore the API server admits the pod unmutated when the call fails")
        evidence["webhook_ingress_policies"] = dropped.names
    existing = ctx.facts.pod is not None and ctx.facts.pod.existing
    works = not reasons and existing and labels.get(USE_LABEL) == "true" and _probe_mutated(ctx)
    if works:
        reasons.append("the webhook works now (the probe pod run under the same ServiceAccount was mutated): the pod "
                       "was created while the webhook did not act on pods (before it was installed or ready, or while "
                       "it was down), or the label was put on the running pod by hand (kubectl label pod), which the "
                       "webhook never sees (it acts on pod CREATE only)")
    if not reasons:
        reasons.append(
            "the webhook did not act on the pod (was it created before the webhook was ready, or "
            "does a namespaceSelector exclude the namespace?)"
        )
    evidence["labels"] = labels
    code = "WEBHOOK_NOT_INSTALLED" if not ctx.cluster.webhook_configurations else "POD_NOT_MUTATED"
    if narrowed:
        remediation = [*object_selector_patches(ClusterContext(ctx.cluster, ctx.azure), {WEBHOOK_NAME}),
                       *restart_workload(ctx)]
    elif excluded and code == "POD_NOT_MUTATED":
        remediation = _namespace_fixes(ctx, excluded)
    elif len(reasons) == 1 and reasons[0].startswith("the pod lacks the label") and code == "POD_NOT_MUTATED" and (
            ctx.facts.pod is not None and ctx.facts.pod.existing):
        # the webhook is there: the given pod never asked it (pod.labelled)
        remediation = _bare_pod_again(ctx, label=True) or label_repair(ctx)
    elif down and code == "POD_NOT_MUTATED":
        remediation = [*_webhook_pods_back(ctx, webhook_namespace(ctx.cluster)), *restart_workload(ctx)]
    elif dropped is not None and code == "POD_NOT_MUTATED":
        remediation = [*_webhook_ingress_fixes(dropped), *restart_workload(ctx)]
    elif short and "timeoutSeconds" in evidence and code == "POD_NOT_MUTATED":
        remediation = [*_timeout_back(short), *restart_workload(ctx)]
    elif works:
        remediation = _bare_pod_again(ctx, label=False) or [*_template_label(ctx), *restart_workload(ctx)]
    elif kube_system and code == "POD_NOT_MUTATED":
        remediation = _kube_system_fixes(ctx)
    elif rules and reasons[0].startswith("the webhook's rules") and code == "POD_NOT_MUTATED":
        remediation = [*_rules_back(ctx), *restart_workload(ctx)]
    else:
        remediation = _mutation_remediation(ctx)
    return failed(
        "the pod was not mutated: no AZURE_* env and no projected token (" + "; ".join(reasons) + ")",
        evidence,
        Finding(
            code,
            ERROR,
            "webhook" if code == "WEBHOOK_NOT_INSTALLED" else "pod",
            "the pod was not mutated: " + "; ".join(reasons),
            evidence,
            remediation,
        ),
    )


def _addon_off(ctx: WorkloadContext) -> str:
    """Why no webhook is there, when ARM says it: the AKS add-on is off (az aks update --disable-workload-identity)
    and no chart stands in. A --workload run has no cluster suite to say WORKLOAD_IDENTITY_DISABLED."""
    arm = ctx.cluster.arm_cluster
    if arm is None or not arm.ok or chart_install(ctx.cluster) is not None:
        return ""
    properties = (arm.body or {}).get("properties") or {}
    profile = (properties.get("securityProfile") or {}).get("workloadIdentity") or {}
    return "" if profile.get("enabled") else (
        ": the cluster's workload identity add-on is off (securityProfile.workloadIdentity.enabled is not true)")


def _matches(values: Any, wanted: str) -> bool:
    return any(v in ("*", wanted) for v in values or [])


def _rules_miss_pod_create(ctx: WorkloadContext) -> str:
    """The workload identity webhook's rules, shown, when none of them matches a pod CREATE (group "", version v1,
    resource pods) as the API server matches rules (edited by hand: operations [UPDATE], resources
    [deployments]); "" when one does, or when no such webhook is configured."""
    hooks = [hook for configuration in ctx.cluster.webhook_configurations for hook in configuration.get("webhooks") or []
             if hook.get("name") == WEBHOOK_NAME]
    if not hooks or not all(hook.get("rules") for hook in hooks):  # rules not read: nothing to say
        return ""
    for hook in hooks:
        for rule in hook.get("rules") or []:
            if (_matches(rule.get("operations"), "CREATE") and _matches(rule.get("apiGroups"), "")
                    and _matches(rule.get("apiVersions"), "v1")
                    and any(r in ("*", "*/*", "pods") for r in rule.get("resources") or [])):
                return ""
    return "; ".join(json.dumps(hook.get("rules") or [], separators=(",", ":")) for hook in hooks)


# the rules the add-on's and the chart's webhook ship (/work/shared/reference/azure-workload-identity.md)
WEBHOOK_RULES = [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}]


def _rules_back(ctx: WorkloadContext) -> list[Step]:
    """The workload identity webhook's rules put back to the shipped pod CREATE rule, its edited rules tested first
    (a configuration changed since the run is refused, not overwritten)."""
    steps: list[Step] = []
    for name, index, hook in _workload_identity_webhooks(ctx):
        path = f"/webhooks/{index}/rules"
        ops = [{"op": "test", "path": path, "value": hook.get("rules")},
               {"op": "replace", "path": path, "value": WEBHOOK_RULES}]
        steps.append(fix.kubectl("patch", "mutatingwebhookconfiguration", fix.object_or(name, "<configuration>"),
                                 "--type", "json", "-p", json.dumps(ops, separators=(",", ":")),
                                 note="the rules back to pod CREATE (unverified: whether the add-on restores them on "
                                      "its own)"))
    return steps


# timeoutSeconds of the add-on's and the chart's webhook: the chart's MutatingWebhookConfiguration sets none
# (Azure/azure-workload-identity charts/workload-identity-webhook/templates/...mutatingwebhookconfiguration.yaml), so
# the API server's default applies (admissionregistration.k8s.io/v1: 10 s); the add-on's calls carry ?timeout=10s
# (its refusals quoted in Azure/AKS#3897, #4139)
WEBHOOK_TIMEOUT_SECONDS = 10
# a call that ran out of its timeout: Go's context ("context deadline exceeded", Azure/azure-workload-identity#1608)
# or its http.Client ("Client.Timeout exceeded while awaiting headers")
_TIMED_OUT_RE = re.compile(r"context deadline exceeded|Client\.Timeout exceeded|\btimeout\b", re.IGNORECASE)


def _workload_identity_webhooks(ctx: WorkloadContext) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """(its configuration's name, its index in that configuration's webhooks, the webhook) for each workload
    identity webhook the cluster's MutatingWebhookConfigurations hold."""
    for configuration in ctx.cluster.webhook_configurations:
        name = str((configuration.get("metadata") or {}).get("name") or "")
        for index, hook in enumerate(configuration.get("webhooks") or []):
            if hook.get("name") == WEBHOOK_NAME:
                yield name, index, hook


def _short_webhook_timeout(ctx: WorkloadContext, policy: str | None = None) -> tuple[str, int, int] | None:
    """(configuration, webhook index, timeoutSeconds) of the workload identity webhook when its timeoutSeconds was
    set below the add-on's and the chart's 10 s (by hand): a call slower than that fails, now and then, and under
    ``policy`` (its failurePolicy, when given) only. None when it is not shorter, or not read."""
    for name, index, hook in _workload_identity_webhooks(ctx):
        timeout = hook.get("timeoutSeconds")
        if not isinstance(timeout, int) or isinstance(timeout, bool):
            continue
        if timeout < WEBHOOK_TIMEOUT_SECONDS and (policy is None or hook.get("failurePolicy", "Fail") == policy):
            return name, index, timeout
    return None


def _timeout_said(short: tuple[str, int, int]) -> str:
    name, _, timeout = short
    return (f"; the webhook configuration {name} gives the call timeoutSeconds {timeout} (the add-on's and the "
            f"chart's is {WEBHOOK_TIMEOUT_SECONDS}): a call slower than that fails, intermittently")


def _timeout_back(short: tuple[str, int, int]) -> list[Step]:
    """timeoutSeconds set back to the add-on's and the chart's 10, tested first so a configuration changed since
    the run is refused, not patched in the wrong place."""
    name, index, timeout = short
    path = f"/webhooks/{index}/timeoutSeconds"
    ops = [{"op": "test", "path": path, "value": timeout},
           {"op": "replace", "path": path, "value": WEBHOOK_TIMEOUT_SECONDS}]
    return [fix.kubectl("patch", "mutatingwebhookconfiguration", fix.object_or(name, "<configuration>"), "--type",
                        "json", "-p", json.dumps(ops, separators=(",", ":")),
                        note="timeoutSeconds back to 10 (unverified: whether the add-on restores it on its own)")]


# the webhook's server answered 404: the API server's REST client says so (k8s.io/client-go rest, a 404 whose body
# is not a Status) after "failed to call webhook: "
_NOT_FOUND = "the server could not find the requested resource"
# the API server's service resolver (apiserver util/proxy ResolveEndpoint) for a port the Service does not have
_NO_SERVICE_PORT_RE = re.compile(r'no service port \d+ found for service "')
# what the add-on's and the chart's configuration call (/work/shared/reference/azure-workload-identity.md)
WEBHOOK_PATH = "/mutate-v1-pod"
WEBHOOK_SERVICE_PORT = 443
Moved = tuple[str, int, str, str | int | None, str | int]


def _moved_service_field(ctx: WorkloadContext, field: str, shipped: str | int) -> Moved | None:
    """(configuration, webhook index, field, value, shipped value) of the workload identity webhook whose
    clientConfig.service ``field`` (path, port) is not the add-on's and the chart's (edited by hand). None when it
    is, or the configuration calls a url. An absent port is the API's default 443; an absent path is "/"."""
    for name, index, hook in _workload_identity_webhooks(ctx):
        service = (hook.get("clientConfig") or {}).get("service")
        if not isinstance(service, dict):
            continue
        value = service.get(field, 443 if field == "port" else None)
        if value != shipped:
            return name, index, field, value if isinstance(value, str | int) else None, shipped
    return None


def _moved_said(moved: Moved) -> str:
    name, _, field, value, shipped = moved
    where = "where the webhook serves none" if field == "path" else "which its Service does not have"
    return (f"; the webhook configuration {name} calls the {field} {printable(str(value)) if value else '(none)'}, "
            f"{where} (the add-on's and the chart's is {shipped})")


def _moved_back(moved: Moved) -> list[Step]:
    """clientConfig.service's path or port set back to the add-on's and the chart's, tested first so a
    configuration changed since the run is refused, not patched in the wrong place (an absent one is added)."""
    name, index, field, value, shipped = moved
    where = f"/webhooks/{index}/clientConfig/service/{field}"
    ops = ([{"op": "test", "path": where, "value": value}] if value is not None else []) + \
        [{"op": "replace" if value is not None else "add", "path": where, "value": shipped}]
    return [fix.kubectl("patch", "mutatingwebhookconfiguration", fix.object_or(name, "<configuration>"), "--type",
                        "json", "-p", json.dumps(ops, separators=(",", ":")),
                        note=f"the {field} back to {shipped} (unverified: whether the add-on restores it on its own)")]


def _webhook_down_under_ignore(ctx: WorkloadContext) -> str:
    """The workload identity webhook's Deployments have no ready replica while its failurePolicy is Ignore: the
    API server admits labelled pods unmutated (a failed call under Ignore). The Deployments, or "" if not so."""
    deployments = ctx.cluster.webhook_deployments
    if not deployments or any(((d.get("status") or {}).get("readyReplicas") or 0) > 0 for d in deployments):
        return ""
    policies = [hook.get("failurePolicy", "Fail") for configuration in ctx.cluster.webhook_configurations
                for hook in configuration.get("webhooks") or [] if hook.get("name") == WEBHOOK_NAME]
    if "Ignore" not in policies:
        return ""
    return ", ".join(f"{(d.get('metadata') or {}).get('namespace')}/{(d.get('metadata') or {}).get('name')}"
                     for d in deployments)


def _probe_env(ctx: WorkloadContext) -> dict[str, str]:
    """--pod: the env the webhook gave the probe pod run under the given pod's ServiceAccount (the probe sets no
    AZURE_* itself, so this is what the webhook injects there now); {} otherwise."""
    probe = ctx.facts.probe_pod
    if ctx.facts.pod is None or not ctx.facts.pod.existing or probe is None or not probe.pod:
        return {}
    return injected_azure_env(probe.pod)


def _probe_mutated(ctx: WorkloadContext) -> bool:
    """--pod: the probe pod run under the given pod's ServiceAccount got the webhook's token volume."""
    probe = ctx.facts.probe_pod
    return probe is not None and probe.pod is not None and bool(token_volumes(probe.pod))


def _template_label(ctx: WorkloadContext) -> list[Step]:
    """The use label put on the given pod's controller's template too, before its restart: a label put on the
    running pod by hand is not on the template, so the restart alone would make unlabelled pods."""
    kind, name = controller_of(ctx.pod or {})
    if kind not in ("Deployment", "StatefulSet", "DaemonSet"):
        return []
    return [advice(f"the use label on {kind}/{name}'s pod template (no change if it is there already; a label put on "
                   "the running pod by hand is not):"),
            fix.patch_template_labels(kind, ctx.namespace, name, {USE_LABEL: "true"})]


def _object_selector_unmet(ctx: WorkloadContext, labels: dict[str, Any]) -> list[str]:
    """The workload identity webhook's objectSelector requirements beside the use label that the pod's labels
    fail (matched as the API server matches a LabelSelector), for a pod that has the use label."""
    if labels.get(USE_LABEL) != "true":
        return []
    unmet: list[str] = []
    for _name, _index, hook in _workload_identity_webhooks(ctx):
        selector = hook.get("objectSelector") or {}
        for key, value in (selector.get("matchLabels") or {}).items():
            if labels.get(key) != value:
                unmet.append(f"{key}={value}")
        for req in selector.get("matchExpressions") or []:
            key, op = str(req.get("key") or ""), str(req.get("operator") or "")
            values = [str(v) for v in req.get("values") or []]
            has = key in labels
            if ((op == "In" and labels.get(key) not in values) or (op == "NotIn" and has and labels[key] in values)
                    or (op == "Exists" and not has) or (op == "DoesNotExist" and has)):
                unmet.append(f"{key} {op}" + (f" {label_values(values)}" if values else ""))
    return unmet


def _excluding_requirements(ctx: WorkloadContext) -> list[tuple[str, Step | None, bool]]:
    """The workload identity webhook's namespaceSelector requirements the namespace's labels fail (as the API
    server matches a LabelSelector: matchLabels, and matchExpressions In/NotIn/Exists/DoesNotExist), each with
    the change that lets the namespace in and whether that change is to the webhook configuration itself (a
    requirement on kubernetes.io/metadata.name, which the API server sets and no label change can meet), or None
    when none can be named. AKS's add-on selects namespaces without control-plane: "true" and
    kubernetes.azure.com/managedby: aks, so such a label on a workload namespace turns the webhook off there."""
    labels = ctx.facts.sa.namespace_labels
    if labels is None:
        return []
    out: list[tuple[str, Step | None, bool]] = []
    ns = fix.namespace_or(ctx.namespace)
    for name, index, hook in _workload_identity_webhooks(ctx):
        selector = hook.get("namespaceSelector") or {}
        requirements: list[tuple[dict[str, Any], int | None]] = [
            ({"key": k, "operator": "In", "values": [v]}, None)
            for k, v in (selector.get("matchLabels") or {}).items()]
        requirements += [(req, position) for position, req in enumerate(selector.get("matchExpressions") or [])
                         if isinstance(req, dict)]
        for req, position in requirements:
            key, op = str(req.get("key") or ""), str(req.get("operator") or "")
            values = [str(v) for v in req.get("values") or []]
            has, value = key in labels, labels.get(key)
            by_name = key == "kubernetes.io/metadata.name"
            where = (name, index, position, req)
            if op == "In" and value not in values:
                out.append((f"it needs {key} in {label_values(values)}, the namespace has "
                            f"{value if has else 'no such label'}",
                            (_selector_patch(*where, "add", ctx.namespace) if position is not None else None)
                            if by_name else fix.kubectl("label", "namespace", ns, f"{key}={values[0]}",
                                                        "--overwrite"), by_name))
            elif op == "NotIn" and has and value in values:
                out.append((f"the namespace's label {key}={value} is one it excludes ({key} NotIn {label_values(values)})",
                            _selector_patch(*where, "drop", str(value)) if by_name
                            else fix.kubectl("label", "namespace", ns, f"{key}-"), by_name))
            elif op == "Exists" and not has:
                out.append((f"it needs a label {key}", None, False))
            elif op == "DoesNotExist" and has:
                out.append((f"the namespace has the label {key}, which it excludes",
                            _selector_patch(*where, "drop", str(value)) if by_name
                            else fix.kubectl("label", "namespace", ns, f"{key}-"), by_name))
    return out


def _selector_patch(configuration: str, hook: int, position: int | None, req: dict[str, Any], change: str,
                    namespace: str) -> Step:
    """A JSON patch of the webhook configuration's namespaceSelector that lets the namespace in: its name added
    to an In requirement's values, or taken out of a NotIn requirement's (the whole requirement when it is the
    only value: the API server refuses an empty NotIn), or a DoesNotExist requirement removed. A "test" of the
    requirement first, so a configuration changed since the run is refused, not patched in the wrong place."""
    if position is None:
        return advice(f"remove kubernetes.io/metadata.name from the namespaceSelector's matchLabels of webhook "
                      f"{WEBHOOK_NAME} in {configuration}")
    path = f"/webhooks/{hook}/namespaceSelector/matchExpressions/{position}"
    values = [str(v) for v in req.get("values") or []]
    ops: list[dict[str, Any]] = [{"op": "test", "path": path, "value": req}]
    if change == "add":
        ops.append({"op": "add", "path": f"{path}/values/-", "value": namespace})
    elif req.get("operator") == "NotIn" and len(values) > 1:
        ops.append({"op": "remove", "path": f"{path}/values/{values.index(namespace)}"})
    else:
        ops.append({"op": "remove", "path": path})
    return fix.kubectl("patch", "mutatingwebhookconfiguration", fix.object_or(configuration, "<configuration>"),
                       "--type", "json", "-p", json.dumps(ops, separators=(",", ":")))


def _namespace_fixes(ctx: WorkloadContext, excluded: list[tuple[str, Step | None, bool]]) -> list[Step]:
    """The label changes that let the namespace in, then the pods made again. A requirement no label change meets
    (the namespace excluded or left out by name) is the webhook configuration's own: under the Helm chart it comes
    from the release's mutatingWebhookNamespaceSelector value, which helm upgrade --reuse-values keeps, so the
    configuration is patched and the value named; under the add-on, the add-on is reinstalled."""
    steps: list[Step] = [step for _, step, own in excluded if step is not None and not own]
    restore = _edited_selector_patches(ctx)
    if restore and steps:
        chart = chart_install(ctx.cluster)
        steps = [advice("the webhook's namespaceSelector was edited (" + _SELECTOR_DEFAULT + "): restore it, "
                        "taking out what was added" + (
                            " (the chart renders it from the release's mutatingWebhookNamespaceSelector value: "
                            "take it out there too, or the next helm upgrade puts it back)" if chart else "")),
                 *restore,
                 *([fix.helm_get_values(chart.release, chart.namespace)] if chart else []),
                 advice(f"or, if the webhook is meant to act only where the selector says, label namespace "
                        f"{ctx.namespace} to match it:"),
                 *steps]
    own = [(text, step) for text, step, mine in excluded if mine or step is None]
    if own:
        name = webhook_configuration_name(ctx.cluster) or "<name>"
        chart = chart_install(ctx.cluster)
        patches = [step for _, step in own if step is not None]
        if chart is not None and patches:
            steps += [advice(f"the webhook configuration {name} itself excludes {ctx.namespace}; the chart "
                             "renders its namespaceSelector from the release's mutatingWebhookNamespaceSelector "
                             "value (helm upgrade --reuse-values keeps it), so let the namespace in there:"),
                      *reversed(patches),  # a later index first: a removal shifts the ones after it
                      fix.helm_get_values(chart.release, chart.namespace),
                      advice("and take mutatingWebhookNamespaceSelector out of those values (or let the namespace "
                             "in there) before the next helm upgrade, or it comes back")]
        elif patches:  # the requirement on the name taken out, tested first; a reinstall is not known to undo it
            steps += [advice(f"the webhook configuration {name} itself excludes {ctx.namespace} by name: let it in "
                             "(unverified: whether the add-on puts an edited selector back on its own):"),
                      *reversed(patches)]  # a later index first: a removal shifts the ones after it
        else:
            steps += [advice(f"the webhook configuration {name} itself excludes {ctx.namespace}: restore its "
                             "namespaceSelector (reinstall the add-on or chart)"),
                      *enable_webhook(ctx.cluster, ctx.azure)]
    return [*steps, *restart_workload(ctx)]


# The namespaceSelector the webhook has as installed: the chart's mutatingWebhookNamespaceSelector defaults to {}
# (Azure/azure-workload-identity charts/workload-identity-webhook/values.yaml), and AKS's admissions enforcer adds
# these two requirements to it (Azure/AKS#1771, #4002); anything else in it was put there (by hand or a chart value)
DEFAULT_SELECTOR_REQUIREMENTS = {("control-plane", "NotIn", ("true",)), ("kubernetes.azure.com/managedby", "NotIn",
                                                                          ("aks",))}
_SELECTOR_DEFAULT = ("as installed it selects every namespace but those labelled control-plane=true or "
                     "kubernetes.azure.com/managedby=aks")


def _pointer(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")  # RFC 6901


def _edited_selector_patches(ctx: WorkloadContext) -> list[Step]:
    """JSON patches taking out of the workload identity webhook's namespaceSelector the requirements the namespace
    fails that the webhook was not installed with (DEFAULT_SELECTOR_REQUIREMENTS), each tested first so a
    configuration changed since the run is refused; a later matchExpressions index first (a removal shifts the ones
    after it). A requirement on kubernetes.io/metadata.name is left to _namespace_fixes' own patch."""
    labels = ctx.facts.sa.namespace_labels
    if labels is None:
        return []
    patches: list[Step] = []
    for name, index, hook in _workload_identity_webhooks(ctx):
        selector = hook.get("namespaceSelector") or {}
        base = f"/webhooks/{index}/namespaceSelector"
        ops: list[dict[str, Any]] = []
        for key, value in (selector.get("matchLabels") or {}).items():
            if labels.get(key) != value and key != "kubernetes.io/metadata.name":
                path = f"{base}/matchLabels/{_pointer(str(key))}"
                ops += [{"op": "test", "path": path, "value": value}, {"op": "remove", "path": path}]
        expressions = [req for req in selector.get("matchExpressions") or [] if isinstance(req, dict)]
        for position in reversed(range(len(expressions))):
            req = expressions[position]
            key, op = str(req.get("key") or ""), str(req.get("operator") or "")
            values = tuple(str(v) for v in req.get("values") or [])
            if (key, op, values) in DEFAULT_SELECTOR_REQUIREMENTS or key == "kubernetes.io/metadata.name":
                continue
            if selector_requirement_met(req, labels):
                continue
            path = f"{base}/matchExpressions/{position}"
            ops += [{"op": "test", "path": path, "value": req}, {"op": "remove", "path": path}]
        if ops:
            patches.append(fix.kubectl("patch", "mutatingwebhookconfiguration",
                                       fix.object_or(name, "<configuration>"), "--type", "json", "-p",
                                       json.dumps(ops, separators=(",", ":"))))
    return patches


def selector_requirement_met(req: dict[str, Any], labels: dict[str, str]) -> bool:
    """One matchExpressions requirement against a namespace's labels, as the API server's LabelSelector matches."""
    key, op = str(req.get("key") or ""), str(req.get("operator") or "")
    values = [str(v) for v in req.get("values") or []]
    has = key in labels
    return {"In": has and labels.get(key) in values, "NotIn": not (has and labels.get(key) in values),
            "Exists": has, "DoesNotExist": not has}.get(op, False)


ENFORCER_OPT_OUT = "admissions.enforcer/disabled"


def _enforcer_opted_out(ctx: WorkloadContext) -> bool:
    """The webhook's configuration carries admissions.enforcer/disabled: "true", which keeps AKS's admissions
    enforcer from excluding kube-system and AKS-internal namespaces from it (AKS FAQ; Azure/AKS#4002)."""
    return any(((c.get("metadata") or {}).get("annotations") or {}).get(ENFORCER_OPT_OUT) == "true"
               for c in ctx.cluster.webhook_configurations)


def _kube_system_fixes(ctx: WorkloadContext) -> list[Step]:
    """A workload in kube-system: AKS's admissions enforcer keeps every webhook away from it, so enabling the
    add-on again changes nothing. azure-workload-identity's known issues (docs/book/src/known-issues.md) annotate
    the webhook's configuration to opt out; running the workload in a namespace of its own needs no exception."""
    # unverified: whether AKS reconciles the add-on's own configuration back without the annotation
    return [
        advice("AKS's admissions enforcer keeps every webhook away from kube-system (AKS FAQ): run the workload "
               "under a ServiceAccount in a namespace of its own, annotated and federated like this one, or let "
               "the webhook into kube-system:"),
        fix.kubectl("annotate", "mutatingwebhookconfiguration", webhook_configuration_name(ctx.cluster),
                    f"{ENFORCER_OPT_OUT}=true"),
        *restart_workload(ctx),
    ]


def _mutation_remediation(ctx: WorkloadContext) -> list[Step]:
    # with none installed, the named configuration would only answer NotFound: the list shows what there is
    look = (fix.kubectl("get", "mutatingwebhookconfiguration", webhook_configuration_name(ctx.cluster), "-o", "yaml")
            if ctx.cluster.webhook_configurations else fix.kubectl("get", "mutatingwebhookconfigurations"))
    return [
        look,
        *enable_webhook(ctx.cluster, ctx.azure),
        *restart_workload(ctx),
    ]


def _ready_webhook_replicas(ctx: WorkloadContext, namespace: str) -> int:
    return sum(int(((d.get("status") or {}).get("readyReplicas")) or 0) for d in ctx.cluster.webhook_deployments
               if (d.get("metadata") or {}).get("namespace") == namespace)


def _service_selects_no_ready_pod(ctx: WorkloadContext, namespace: str, service: str) -> list[Step]:
    """"no endpoints available" while the webhook's Deployment has ready pods: the Service selects none of them (its
    selector or targetPort edited, or the pods' labels): restarting the pods changes nothing. The Service's
    selector and the pods' labels side by side, and the install that owns the Service put back as it ships it."""
    ns = fix.namespace_or(namespace)
    return [
        fix.kubectl("-n", ns, "get", "service", fix.object_or(service, "<service>"), "-o",
                    "jsonpath={.spec.selector} {.spec.ports}", note="the chart and add-on select "
                    "azure-workload-identity.io/system=true, targetPort 9443"),
        fix.kubectl("-n", ns, "get", "pods", "--show-labels"),
        advice(f"the webhook's pods are ready but Service {ns}/{service} sends to none of them: put the Service back "
               "as its install ships it:"),
        *enable_webhook(ctx.cluster, ctx.azure),
    ]


def _webhook_certificate_fixes(ctx: WorkloadContext, namespace: str, cause: str) -> list[Step]:
    """The API server's TLS handshake with the webhook failed (caBundle, a rotated or expired serving certificate).
    The webhook's cert-controller (open-policy-agent/cert-controller's rotator, on unless the manager runs with
    --disable-cert-rotation) writes its Secret's ca.crt into the configuration's caBundle when it starts and at
    every change of the configuration or the Secret, and renews a serving certificate its CA did not sign or that
    is within 90 days of expiry: with it on, the pods restarted put caBundle back (a caBundle that stays wrong while
    they run means it may not write the configuration: the can-i look). With it off, the certificates are the
    person's: caBundle is given the Secret's own ca.crt, or, for an expired or misnamed certificate, the flag is
    taken off so the rotator makes one."""
    ns = fix.namespace_or(namespace)
    found = [d for d in ctx.cluster.webhook_deployments if (d.get("metadata") or {}).get("namespace") == namespace]
    template = ((found[0].get("spec") or {}).get("template") or {}).get("spec") or {} if found else {}
    deployment = str((found[0].get("metadata") or {}).get("name") or "") if found else ""
    disabled = _rotation_flag(template)
    secret = next((str((v.get("secret") or {}).get("secretName")) for v in template.get("volumes") or []
                   if v.get("name") == "cert" and (v.get("secret") or {}).get("secretName")), WEBHOOK_CERT_SECRET)
    if disabled is None:
        return [
            *_webhook_pods_back(ctx, namespace),
            advice("cert-controller in the webhook's pods writes its Secret's ca.crt into the configuration's caBundle "
                   "as they start; if the next run fails the same, it may not update the configuration: 'no' below "
                   "means its role lost that right (reinstall the webhook)"),
            fix.kubectl("auth", "can-i", "update", "mutatingwebhookconfigurations",
                        f"--as=system:serviceaccount:{ns}:{_webhook_service_account(template)}"),
        ]
    ref = f"deployment/{fix.object_or(deployment, '<deployment>')}"
    index, arg = disabled
    remove = fix.kubectl("-n", ns, "patch", ref, "--type", "json", "-p", json.dumps(
        [{"op": "remove", "path": f"/spec/template/spec/containers/{index}/args/{arg}"}], separators=(",", ":")),
        note="takes --disable-cert-rotation off: its cert-controller renews the certificate and caBundle")
    if "signed by unknown authority" not in cause:  # expired, or for another name: the certificate itself
        return [advice(f"the webhook runs with --disable-cert-rotation, so nothing renews its serving certificate "
                       f"(Secret {ns}/{secret}): issue a valid one where it comes from, or let the webhook rotate it:"),
                remove, fix.kubectl("-n", ns, "rollout", "status", ref, "--timeout=120s")]
    hook = _webhook_index(ctx)
    return [
        advice("the webhook runs with --disable-cert-rotation, so nothing puts its CA into the configuration's "
               f"caBundle: give it the ca.crt of Secret {ns}/{secret} (or take the flag off the Deployment's args: "
               "its cert-controller then keeps caBundle in step)"),
        *fix.webhook_ca_bundle(namespace, secret, webhook_configuration_name(ctx.cluster), hook),
    ]


def _rotation_flag(pod_spec: dict[str, Any]) -> tuple[int, int] | None:
    """(container, arg) index of the manager's --disable-cert-rotation, None when it rotates its certificates."""
    for c_index, container in enumerate(pod_spec.get("containers") or []):
        for a_index, arg in enumerate(container.get("args") or []):
            if arg in ("--disable-cert-rotation", "-disable-cert-rotation", "--disable-cert-rotation=true",
                       "-disable-cert-rotation=true"):
                return c_index, a_index
    return None


def _webhook_service_account(pod_spec: dict[str, Any]) -> str:
    return str(pod_spec.get("serviceAccountName") or WEBHOOK_SERVICE_ACCOUNT)


def _webhook_index(ctx: WorkloadContext) -> int:
    for mwc in ctx.cluster.webhook_configurations:
        for index, hook in enumerate(mwc.get("webhooks") or []):
            if hook.get("name") == WEBHOOK_NAME:
                return index
    return 0


# the dial the API server made to the Service's endpoint (its targetPort): "dial tcp <ip>:<port>: connect: ..."
_REFUSED_DIAL_RE = re.compile(r"dial tcp [^\s]*:(\d+): connect: connection refused")
WEBHOOK_SERVER_PORT = 9443  # the manager's webhook-server containerPort (the chart's Service targetPort)


def _refused_port(message: str) -> int | None:
    """The port a refused dial went to when it is not the manager's 9443 (the Service's targetPort edited)."""
    match = _REFUSED_DIAL_RE.search(message)
    return int(match.group(1)) if match and int(match.group(1)) != WEBHOOK_SERVER_PORT else None


def _service_target_port_back(namespace: str, service: str, port: int) -> list[Step]:
    """The webhook's pods are ready, yet the API server's dial to the Service's endpoint on ``port`` is refused:
    the Service sends to a port the manager does not listen on (it serves on 9443, the chart's targetPort). The
    Service's one port put back, a test of its port 443 first (a Service changed since is refused)."""
    ns = fix.namespace_or(namespace)
    ops = [{"op": "test", "path": "/spec/ports/0/port", "value": 443},
           {"op": "replace", "path": "/spec/ports/0/targetPort", "value": WEBHOOK_SERVER_PORT}]
    return [
        advice(f"the webhook's pods are ready but Service {ns}/{service} sends to port {port}, where the manager does "
               f"not listen (it serves on {WEBHOOK_SERVER_PORT}): put its targetPort back"),
        fix.kubectl("-n", ns, "patch", "service", fix.object_or(service, "<service>"), "--type", "json", "-p",
                    json.dumps(ops, separators=(",", ":"))),
    ]


def _webhook_pods_back(ctx: WorkloadContext, namespace: str) -> list[Step]:
    """The webhook's own Deployment (in the Service's namespace) brought back; none read: nothing to name."""
    found = [d for d in ctx.cluster.webhook_deployments if (d.get("metadata") or {}).get("namespace") == namespace]
    if not found:
        return []
    if ctx.cluster.webhook_unschedulable:  # a restart makes more pods that wait for a node the same way
        return [advice("the webhook's pods wait for a node that takes them (the run's WEBHOOK_NOT_READY names the "
                       "scheduler's reason): no restart brings them back; once a node takes them, they serve")]
    if ctx.cluster.webhook_not_started:  # a restart makes more pods that wait for the same Secret or ConfigMap
        return [advice("the webhook's pods are scheduled but never start (the run's WEBHOOK_NOT_READY names what "
                       "the kubelet waits for and how to make it): no restart brings them back")]
    meta, spec = found[0].get("metadata") or {}, found[0].get("spec") or {}
    return fix.webhook_pods_back(namespace, str(meta.get("name") or ""), spec.get("replicas", 1))

