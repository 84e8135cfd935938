"""The workload's own pods, not only the harness's probe: labelled on the pod itself, mutated by the webhook,
not holding a preset or stale AZURE_CLIENT_ID. The failure users report most is a workload whose pods were
created before the label or the annotation, which a fresh probe pod cannot show."""

from __future__ import annotations

import difflib
import json
import posixpath
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from harness import values
from harness.checks import remediation as fix
from harness.checks.admission import (
    admission_policy,
    admission_policy_looks,
    pod_security_level,
    quota_refusal,
    refusal_cause,
    unreachable_webhook,
    unreachable_webhook_fixes,
)
from harness.checks.common import kube_call_failed
from harness.checks.context import WorkloadContext
from harness.checks.model import ERROR, WARNING, Finding, Outcome, failed, passed, warned
from harness.checks.podspec import (
    annotation,
    containers,
    controller_of,
    env_map,
    injected_azure_env,
    mounts_of,
    service_account_of,
    token_file_of,
    token_volumes,
    value_source,
    value_sources,
)
from harness.checks.proxy_sidecar import proxy_findings
from harness.checks.roles import created_on
from harness.commands import Step, advice
from harness.facts import LivePod, RefusedController
from harness.names import (
    CLIENT_ID_ANNOTATION,
    DEFAULT_EXPIRATION,
    EXPIRATION_ANNOTATION,
    INJECTED_ENV,
    SKIP_CONTAINERS_ANNOTATION,
    USE_LABEL,
    V15_VOLUME_NAME,
    V16_VOLUME_PREFIX,
    WEBHOOK_NAME,
)


@dataclass(frozen=True)
class Problem:
    code: str
    pod: str
    detail: str
    variable: str = "AZURE_CLIENT_ID"  # POD_ENV_CONFLICT: the variable the pod sets itself
    severity: str | None = None  # another severity than the code's usual one (_MEANING)
    # POD_CONTAINER_SKIPPED of a skipped container that keeps failing: its name, whether its last run's log is
    # --previous's, whether the annotation names it alone
    failing: tuple[str, bool, bool] | None = None


def live_pods(ctx: WorkloadContext) -> Outcome:
    facts = ctx.facts.live_pods
    if facts is None:
        return passed("the workload's own pods were not looked at (an existing pod was given)")
    if facts.error is not None:
        return kube_call_failed(
            facts.error, "pod", f"list the pods in {ctx.namespace}", fix.can_i("list", "pods", ctx.namespace),
            ctx.cluster, ctx.azure,
        )
    refusals = [refused for refused in facts.refused if meant_for(refused, ctx.service_account)]
    findings: list[Finding] = [_webhook_denial(ctx, refused) for refused in refusals
                                if _DENIED_BY_WEBHOOK in refused.message]
    findings += [_volume_clash(ctx, refused, volume) for refused in refusals
                 for volume in [_clashing_volume(refused.message)] if volume]
    findings += [_mount_clash(ctx, refused, path) for refused in refusals
                 for path in [_clashing_mount(refused.message)] if path]
    findings += [_proxy_refused(ctx, refused) for refused in refusals if _refuses_the_proxy(refused)]
    findings += [_proxy_port_refused(ctx, refused, port) for refused in refusals
                 for port in [proxy_port_out_of_range(refused.message, refused.template_annotations)]
                 if port is not None]
    findings += [_account_not_found(ctx, refused, account) for refused in refusals
                 for account in [_missing_account(refused.message)] if account]
    findings += [_refused_elsewhere(ctx, refused, cause) for refused in refusals
                 for cause in [refusal_cause(refused.message)] if cause and not _refuses_the_proxy(refused)]
    findings += [_token_mount_orphaned(ctx, refused) for refused in refusals
                 if _ORPHANED_MOUNT_RE.search(refused.message)]
    named = {str(f.evidence.get("owner")) for f in findings}
    findings += [_refused_unnamed(ctx, refused) for refused in refusals
                 if f"{refused.kind}/{refused.name}" not in named and unreachable_webhook(refused.message) is None]
    findings += [found for cronjob in facts.cronjobs for found in [_cronjob_unlabelled(ctx, cronjob)] if found]
    summary: list[dict[str, Any]] = [{"owner": f"{f.evidence['owner']}", "pods": [], "problems": [f.code]}
                                     for f in findings]
    if not facts.pods and not findings:
        if facts.unannotated:
            stray = _wrong_service_account(ctx, facts.unannotated)
            evidence = {"pods": [], "unannotated": stray.evidence["pods"]}
            if stray.severity == ERROR:
                return failed(stray.message, evidence, stray)
            return warned(stray.message, evidence, stray)
        return passed(
            f"no live pods run under ServiceAccount {ctx.namespace}/{ctx.service_account} (nothing to inspect)",
            {"pods": []},
        )
    annotations = ctx.facts.sa.annotations
    sa_labels = ctx.facts.sa.labels
    injected = _injected(ctx)
    groups: dict[tuple[str, str], list[LivePod]] = {}
    for live in facts.pods:
        groups.setdefault((live.owner_kind, live.owner_name), []).append(live)
    expected, annotation_unusable = _client_id_meant(ctx)
    for (kind, name), members in groups.items():
        problems = [p for live in members
                    for p in pod_problems(live, annotations, sa_labels, expected, injected, annotation_unusable)]
        problems += [old for live in members for old in [token_predates_cluster_update(ctx, live.pod)] if old]
        moved = None if f"{kind}/{name}" in named else template_moved(ctx, kind, name, members)
        summary.append({"owner": f"{kind}/{name}", "pods": [_name(m.pod) for m in members],
                        "problems": sorted({p.code for p in problems} | ({moved.code} if moved else set()))})
        for code in dict.fromkeys(p.code for p in problems):
            findings.append(_finding(ctx, kind, name, [p for p in problems if p.code == code]))
        findings += [moved] if moved else []
        findings += proxy_findings(ctx.namespace, kind, name, members)
    evidence = {"owners": summary}
    errors = [f for f in findings if f.severity == ERROR]
    owners = ", ".join(s["owner"] for s in summary)
    if errors:
        return failed(
            "the workload's own pods are not what the webhook should make of them: "
            + "; ".join(f.message for f in errors),
            evidence, *findings,
        )
    if findings:
        return warned("; ".join(f.message for f in findings), evidence, *findings)
    annotated = str(annotations.get(CLIENT_ID_ANNOTATION) or "")
    carried = "AZURE_CLIENT_ID matches the ServiceAccount"
    if annotation_unusable or (expected and annotated.lower() != expected.lower()):
        which = f"the identity's {expected}" if expected else "an earlier one"
        from harness.checks.federation import namesake_trusted_instead  # federation imports this module
        says = "federation.credential" if namesake_trusted_instead(ctx) is not None else "identity.matches"
        carried = (f"AZURE_CLIENT_ID is {which}, not the annotation's {annotated} ({says} says what to "
                   "annotate: a restart before that would hand the pods the annotation's)")
    return passed(f"{values.counted(len(facts.pods), 'live pod')} of {owners}: labelled, mutated, {carried}", evidence)


_DENIED_BY_WEBHOOK = f'admission webhook "{WEBHOOK_NAME}" denied the request'


def _job_template_fix(ctx: WorkloadContext, refused: RefusedController, change: str,
                      annotation_removed: str | None) -> list[Step]:
    """A refused Job's template fix (none for other kinds): a Job's pod template cannot change (batch/v1
    ValidateJobSpecUpdate: spec.template is immutable), so its CronJob's jobTemplate is patched and the Job
    deleted (the next Job carries the change), or, for a Job of its own, its manifest is changed and the Job
    made again. ``annotation_removed``: the pod template annotation the change removes; else the ServiceAccount
    is set."""
    if refused.kind != "Job":
        return []
    ns, cronjob = ctx.namespace, refused.cronjob
    if cronjob is None:
        return [advice(f"a Job's pod template cannot be changed: {change} in the pod template of Job/{refused.name}'s "
                       "manifest, then delete the Job and create it again")]
    patch = (fix.remove_cronjob_template_annotation(ns, cronjob, annotation_removed) if annotation_removed
             else fix.patch_cronjob_template_service_account(ns, cronjob, ctx.service_account))
    return [patch, fix.delete_job(ns, refused.name),
            advice(f"CronJob/{cronjob}'s next Job gets the change; to run one now: kubectl create job -n "
                   f"{fix.namespace_or(ns)} --from=cronjob/{cronjob} {cronjob}-wi")]


def _webhook_denial(ctx: WorkloadContext, refused: RefusedController) -> Finding:
    """The workload identity webhook refuses every pod of a controller that runs under the ServiceAccount (a
    Deployment's ReplicaSet, a StatefulSet, DaemonSet or Job: FailedCreate): none of its new pods exist, so no
    pod check and no probe pod can show it. An invalid service-account-token-expiration on the pod template (the
    webhook reads the pod's annotation before the ServiceAccount's, and denies a value outside 3600-86400 or not
    a number) is removed: the pods then get the ServiceAccount's expiration, or the default 3600 s."""
    ref = f"{refused.kind}/{refused.name}"
    said = refused.message.split(_DENIED_BY_WEBHOOK, 1)[-1].lstrip(": ").strip()
    evidence = {"owner": ref, "reason": refused.reason, "denial": refused.message}
    steps: list[Step]
    bad_port = "failed to parse proxy sidecar port" in said
    if PROXY_PORT_ANNOTATION in refused.template_annotations and bad_port:
        # the proxy asked for, with a port that is no number: without the annotation it listens on 8000, and
        # azwi-proxy-init redirects the pod's IMDS traffic to whatever port it is (the app names no port)
        evidence[PROXY_PORT_ANNOTATION] = refused.template_annotations[PROXY_PORT_ANNOTATION]
        steps = _job_template_fix(ctx, refused, f"remove {PROXY_PORT_ANNOTATION}", PROXY_PORT_ANNOTATION) or [
            fix.remove_template_annotation(refused.kind, ctx.namespace, refused.name, PROXY_PORT_ANNOTATION),
            advice(f"the proxy then listens on 8000; if a container of {ref} uses that port, set "
                   f"{PROXY_PORT_ANNOTATION} on its pod template to a free port number instead"),
        ]
    elif EXPIRATION_ANNOTATION in refused.template_annotations and not bad_port and (
            "token expiration" in said or "ParseInt" in said):
        evidence[EXPIRATION_ANNOTATION] = refused.template_annotations[EXPIRATION_ANNOTATION]
        steps = _job_template_fix(ctx, refused, f"remove {EXPIRATION_ANNOTATION} (or set it to whole seconds from "
                                  "3600 to 86400)", EXPIRATION_ANNOTATION) or [
            fix.remove_template_annotation(refused.kind, ctx.namespace, refused.name, EXPIRATION_ANNOTATION),
            advice(f"or set {EXPIRATION_ANNOTATION} on the pod template to whole seconds from 3600 to 86400"),
        ]
    elif INJECT_PROXY_ANNOTATION in refused.template_annotations and "proxy sidecar" in said:
        # "hostNetwork is set to true, cannot inject proxy sidecar" (#1090), "failed to parse proxy sidecar port"
        evidence[INJECT_PROXY_ANNOTATION] = refused.template_annotations[INJECT_PROXY_ANNOTATION]
        steps = _job_template_fix(ctx, refused, f"remove {INJECT_PROXY_ANNOTATION}", INJECT_PROXY_ANNOTATION) or [
            fix.remove_template_annotation(refused.kind, ctx.namespace, refused.name, INJECT_PROXY_ANNOTATION),
            advice("or, if the app still needs the proxy (an old SDK that asks IMDS), fix what the denial names in the "
                   f"pod template of {ref}: no hostNetwork, a numeric proxy-sidecar-port"),
        ]
    else:
        steps = [
            fix.kubectl("describe", f"{refused.kind.lower()}/{refused.name}", "-n", fix.namespace_or(ctx.namespace)),
            advice(f"fix what the webhook's denial names in the pod template of {ref} (or on ServiceAccount "
                   f"{ctx.namespace}/{ctx.service_account}); its controller creates the pods again"),
        ]
    return Finding(
        "POD_REJECTED_BY_WEBHOOK", ERROR, "webhook",
        f"{ref}: the workload identity webhook denies its pods, none of its current template runs ({refused.reason}):"
        f" {said}",
        evidence, steps,
    )


def _cronjob_unlabelled(ctx: WorkloadContext, cronjob: dict[str, Any]) -> Finding | None:
    """A CronJob whose pods run under the ServiceAccount, none of them live now (its Jobs' pods ended, or it has
    not run yet), whose jobTemplate's pod template lacks the use label: every pod its Jobs make runs without the
    identity, which no live pod shows. Its pod template (mutable, unlike a Job's) labelled, the next Job's pods
    get it. A suspended CronJob makes no Job until resumed: a warning."""
    meta, spec = cronjob.get("metadata") or {}, cronjob.get("spec") or {}
    name = str(meta.get("name") or "")
    template = (((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}).get("metadata") or {}
    value = (template.get("labels") or {}).get(USE_LABEL)
    if value == "true":
        return None
    state = "absent" if value is None else f"{value!r}, not \"true\""
    misplaced = misplaced_use_label("CronJob", None, cronjob)
    where = f"; it sits on {misplaced[1]}" if misplaced else ""
    suspended = spec.get("suspend") is True
    last = (cronjob.get("status") or {}).get("lastScheduleTime")
    now = ("it is suspended (spec.suspend), and its Jobs' pods will lack it once it is resumed" if suspended else
           f"no pod of it runs now{f' (last scheduled {last})' if last else ''}, and its next Jobs' pods lack it")
    detail = f"its jobTemplate's pod template's {USE_LABEL} label is {state}{where}"
    ns = fix.namespace_or(ctx.namespace)
    return Finding(
        "POD_NOT_LABELLED", WARNING if suspended else ERROR, "pod",
        f"CronJob/{name}: the webhook never sees the pods its Jobs make under {ctx.namespace}/{ctx.service_account}: "
        f"{detail}; {now}",
        {"owner": f"CronJob/{name}", "pods": [], "pod_count": 0, "detail": detail,
         **({"last_schedule_time": str(last)} if last else {})},
        [fix.patch_cronjob_template_labels(ctx.namespace, name, {USE_LABEL: "true"}),
         advice(f"CronJob/{name}'s next Job gets the label; to run one now: kubectl create job -n {ns} "
                f"--from=cronjob/{name} {name}-wi")],
    )


# the ServiceAccount admission plugin's refusal of a pod whose serviceAccountName does not exist
# (plugin/pkg/admission/serviceaccount: "error looking up service account %s/%s: %v")
_ACCOUNT_LOOKUP = re.compile(r'error looking up service account [^/\s]+/(\S+): serviceaccount "[^"]+" not found',
                             re.IGNORECASE)  # older API servers wrote "Error looking up" (unverified: which release changed it)


def meant_for(refused: RefusedController, service_account: str) -> bool:
    """The refused controller is the workload's: its pod template names the workload's ServiceAccount (or the facts,
    of an older run, do not say), its live pods run under it (a Deployment whose template changed since), or its
    template, labelled for Workload ID, names a ServiceAccount close to the workload's (a typo in a later change,
    backend-sa-v2 for backend-sa) that the API server says does not exist: a StatefulSet's or DaemonSet's rolling
    update deleted its pods of the template before, so no live pod ties it to the workload any more."""
    named = refused.service_account
    if named in ("", service_account) or refused.owns_workload_pods:
        return True
    return (_missing_account(refused.message) == named
            and difflib.SequenceMatcher(None, named, service_account).ratio() >= 0.6)


def _missing_account(message: str) -> str | None:
    match = _ACCOUNT_LOOKUP.search(message)
    return match.group(1) if match else None


def _account_not_found(ctx: WorkloadContext, refused: RefusedController, account: str) -> Finding:
    """A controller whose live pods run under the workload's ServiceAccount, and whose template now names one that
    does not exist (a typo in a later change): the API server refuses every new pod, its running pods are of the
    template before. Its serviceAccountName put back to the workload's (the one its pods run under) rolls it out."""
    ref = f"{refused.kind}/{refused.name}"
    steps: list[Step] = _job_template_fix(ctx, refused, f"set serviceAccountName: {ctx.service_account}", None) or [
        fix.patch_template_service_account(refused.kind, ctx.namespace, refused.name, ctx.service_account)]
    if account == ctx.service_account:  # the workload's own ServiceAccount gone: sa.exists says what to make
        steps = [advice(f"ServiceAccount {ctx.namespace}/{account} does not exist: create it (sa.exists)")]
    running = any((live.owner_kind, live.owner_name) == (refused.kind, refused.name)
                  for live in (ctx.facts.live_pods.pods if ctx.facts.live_pods else []))
    now = (f"the pods that run are of its template before, under {ctx.service_account}" if running else
           f"none of its pods runs (its rolling update deleted those of its template before, a name close to "
           f"{ctx.service_account}'s)")
    return Finding(
        "POD_WRONG_SERVICE_ACCOUNT", ERROR, "pod",
        f"{ref}: its pod template names ServiceAccount {account}, which does not exist in {ctx.namespace}: the API "
        f"server refuses every new pod ({refused.reason}), and {now}: {refused.message}",
        {"owner": ref, "reason": refused.reason, "refusal": refused.message, "service_account": account},
        steps,
    )


# the migration proxy's containers the webhook injects for inject-proxy-sidecar (pkg/webhook consts)
INJECT_PROXY_ANNOTATION = "azure.workload.identity/inject-proxy-sidecar"
PROXY_PORT_ANNOTATION = "azure.workload.identity/proxy-sidecar-port"  # default 8000
_PROXY_CONTAINERS = ("azwi-proxy-init", "azwi-proxy")


def _refuses_the_proxy(refused: RefusedController) -> bool:
    """Pod Security refuses the pods for a container the webhook injected: the migration proxy's azwi-proxy-init
    runs privileged, as root, with NET_ADMIN (it rewrites the pod's iptables), which the restricted and baseline
    levels forbid whatever the template says. The template's inject-proxy-sidecar annotation asked for it (its
    presence, whatever its value: shouldInjectProxySidecar reads no value, so "false" injects too)."""
    return (INJECT_PROXY_ANNOTATION in refused.template_annotations
            and pod_security_level(refused.message) is not None
            and any(f'container "{name}"' in refused.message for name in _PROXY_CONTAINERS))


def _proxy_refused(ctx: WorkloadContext, refused: RefusedController) -> Finding:
    ref = f"{refused.kind}/{refused.name}"
    value = refused.template_annotations.get(INJECT_PROXY_ANNOTATION)
    namespace = fix.namespace_or(ctx.namespace)
    steps: list[Step] = [
        fix.remove_template_annotation(refused.kind, ctx.namespace, refused.name, INJECT_PROXY_ANNOTATION),
        advice(f"or, if the app still needs the proxy (an old SDK that asks IMDS), a person decides whether {namespace} "
               "may run privileged pods (pod-security.kubernetes.io/enforce=privileged)"),
    ]
    said = f"{INJECT_PROXY_ANNOTATION}={value!r}" + (' (only the key\'s presence counts: "false" injects too)'
                                                      if str(value).lower() == "false" else "")
    return Finding(
        "POD_NOT_ADMITTED", ERROR, "pod",
        f"{ref}: Pod Security refuses its new pods for the migration proxy the webhook injects ({said} on the pod "
        f"template): azwi-proxy-init runs privileged with NET_ADMIN, which the namespace's level forbids; none of "
        f"its current template runs ({refused.reason}): {refused.message}",
        {"owner": ref, "reason": refused.reason, "refusal": refused.message, INJECT_PROXY_ANNOTATION: value},
        steps,
    )


_CONTAINER_PORT_RE = re.compile(r"spec\.(?:initContainers|containers)\[\d+\]\.ports\[\d+\]\.containerPort: "
                                r"(?:Invalid value: (-?\d+): must be between 1 and 65535, inclusive|Required value)")


def proxy_port_out_of_range(message: str, annotations: dict[str, str]) -> int | None:
    """The template's proxy-sidecar-port when the API server refused the mutated pod over that containerPort: the
    webhook's getProxyPort takes any base-10 int32 (strconv.ParseInt(value, 10, 32)) and gives it to azwi-proxy as
    its containerPort, which pod validation (validateContainerPorts) wants from 1 to 65535 (0: "Required value")."""
    if INJECT_PROXY_ANNOTATION not in annotations:
        return None
    try:
        port = int(annotations.get(PROXY_PORT_ANNOTATION, "").strip().removeprefix("+"), 10)
    except ValueError:
        return None
    for match in _CONTAINER_PORT_RE.finditer(message):
        if int(match.group(1) or 0) == port and not 1 <= port <= 65535:
            return port
    return None


def _proxy_port_refused(ctx: WorkloadContext, refused: RefusedController, port: int) -> Finding:
    """The migration proxy asked for with a proxy-sidecar-port that is no port number: the webhook admits the
    pod, the API server refuses it. Without the annotation the proxy listens on 8000."""
    ref = f"{refused.kind}/{refused.name}"
    steps = _job_template_fix(ctx, refused, f"remove {PROXY_PORT_ANNOTATION}", PROXY_PORT_ANNOTATION) or [
        fix.remove_template_annotation(refused.kind, ctx.namespace, refused.name, PROXY_PORT_ANNOTATION),
        advice(f"the proxy then listens on 8000; if a container of {ref} uses that port, set {PROXY_PORT_ANNOTATION} "
               "on its pod template to a free port from 1 to 65535 instead"),
    ]
    return Finding(
        "POD_NOT_ADMITTED", ERROR, "pod",
        f"{ref}: the API server refuses its pods once the webhook has mutated them ({refused.reason}): "
        f"{PROXY_PORT_ANNOTATION}={port} on the pod template is no port (1-65535), and the webhook makes it the "
        f"migration proxy's containerPort: {refused.message}",
        {"owner": ref, "reason": refused.reason, "refusal": refused.message, PROXY_PORT_ANNOTATION: str(port)},
        steps,
    )


def _refused_elsewhere(ctx: WorkloadContext, refused: RefusedController, cause: str) -> Finding:
    """A controller under the ServiceAccount (a Deployment's ReplicaSet, a StatefulSet, DaemonSet or Job) that
    cannot create pods for a reason that is not Workload ID (Pod Security admission, a policy engine, a quota or
    LimitRange, another vendor's webhook that cannot be called): its current template does not run, whatever pods
    of an older one still serve. A warning: the identity chain is proved by the probe; what to change is a
    person's call (the template, the namespace's level, the policy, the quota), and the controller creates the
    pods again once they are admitted."""
    ref = f"{refused.kind}/{refused.name}"
    namespace = fix.namespace_or(ctx.namespace)
    steps: list[Step] = [fix.kubectl("describe", f"{refused.kind.lower()}/{refused.name}", "-n", namespace)]
    unreachable = unreachable_webhook(refused.message)
    if unreachable is not None:
        steps += unreachable_webhook_fixes(unreachable[0], refused.message)
    elif pod_security_level(refused.message) is not None:
        steps += [
            fix.kubectl("get", "namespace", namespace, "--show-labels"),
            advice(f"a person decides: give the pod template of {ref} what the refusal names (each field it lists, "
                   "under securityContext), or relax the namespace's pod-security.kubernetes.io/enforce label"),
        ]
    elif quota_refusal(refused.message):
        steps += [
            fix.kubectl("describe", "resourcequota,limitrange", "-n", namespace),
            advice(f"a person decides: fit the resources of {ref}'s pod template to the namespace's limits, or "
                   "raise the quota"),
        ]
    else:
        if "gatekeeper.sh" in refused.message:  # Azure Policy for AKS and OPA Gatekeeper
            steps.append(fix.kubectl("get", "constraints", "-o", "wide", note="which constraint refused it"))
        if (policy := admission_policy(refused.message)) is not None:
            steps += admission_policy_looks(policy[0], policy[1])
        steps.append(advice(f"a person decides: make the pod template of {ref} comply with the policy that refused "
                            f"it, or exempt namespace {namespace} from it"))
    return Finding(
        "WORKLOAD_PODS_REFUSED", WARNING, "pod",
        f"{ref}: the API server refuses its new pods, not for Workload ID but {cause}: "
        f"{refused.message}",
        {"owner": ref, "reason": refused.reason, "refusal": refused.message, "cause": cause},
        steps,
    )


def _wrong_service_account(ctx: WorkloadContext, strays: list[LivePod]) -> Finding:
    """No pod runs under the workload's ServiceAccount while labelled pods of its namespace run under one that
    names no identity (no AZURE_CLIENT_ID): a pod template whose serviceAccountName was left out (``default``) or
    names another. An error when a Deployment of theirs ran under the workload's ServiceAccount before (an old
    ReplicaSet's template names it: kubectl set serviceaccount, an edit, a rollout undo moved it off); else a
    warning: which ServiceAccount those pods are meant for is the owner's to say."""
    owners: dict[tuple[str, str], list[str]] = {}
    accounts: set[str] = set()
    for live in strays:
        owners.setdefault((live.owner_kind, live.owner_name), []).append(_name(live.pod))
        spec = live.pod.get("spec") or {}
        accounts.add(service_account_of(spec))
    facts = ctx.facts.live_pods
    moved = {ref: before for ref, before in (facts.moved_off if facts else {}).items()
             if tuple(ref.split("/", 1)) in owners}
    shown = ", ".join(f"{kind}/{name}" for kind, name in owners)
    lead = (f"if {shown} should run under {ctx.service_account}, set its pod template's serviceAccountName:"
            if not moved else f"set the pod template's serviceAccountName back to {ctx.service_account} (or kubectl "
            "rollout undo to the revision named); its pods are replaced with ones the webhook gives the identity:")
    steps: list[Step] = [advice(lead)]
    for kind, name in owners:
        if kind in fix.RESTARTABLE:
            steps.append(fix.patch_template_service_account(kind, ctx.namespace, name, ctx.service_account))
        else:
            steps.append(advice(f"set spec.serviceAccountName: {ctx.service_account} in {kind}/{name}'s manifest "
                                "and create its pods again"))
    message = (f"no pod runs under {ctx.namespace}/{ctx.service_account}, but {shown} (labelled for Workload ID) "
               f"runs under {', '.join(sorted(accounts))}, which names no identity: its pods got no AZURE_CLIENT_ID")
    if moved:
        message += "; " + "; ".join(f"{ref} ran under {ctx.service_account} before ({before}): its pod template "
                                    "was moved off the workload's ServiceAccount" for ref, before in moved.items())
    return Finding(
        "POD_WRONG_SERVICE_ACCOUNT", ERROR if moved else WARNING, "pod", message,
        {"pods": sorted(p for pods in owners.values() for p in pods), "service_accounts": sorted(accounts),
         **({"ran_under_the_workloads_before": moved} if moved else {})},
        steps,
    )


def template_moved(ctx: WorkloadContext, kind: str, name: str, members: list[LivePod]) -> Finding | None:
    """The controller of live pods of the workload, as read now, has a pod template naming another ServiceAccount,
    not rolled out yet: a paused Deployment (kubectl rollout pause; kubectl set serviceaccount on it changes the
    template only), a rollout in progress whose new pods run beside the old (maxSurge), a StatefulSet's partition
    or an OnDelete strategy. Its pods are of the template before; once it is rolled out none runs under the
    workload's ServiceAccount, which POD_WRONG_SERVICE_ACCOUNT then says of its pods under the other one. An error
    when that one does not exist or names no identity (its new pods get no AZURE_CLIENT_ID, or none is admitted:
    the sign-off's "serviceAccountName points at the annotated ServiceAccount" fails); a warning when it names an
    identity of its own, which may be meant (a move to another identity) and is the owner's to say."""
    owner = next((m.owner for m in members if m.owner), None)
    if kind not in fix.RESTARTABLE or owner is None:
        return None
    template_spec = (((owner.get("spec") or {}).get("template") or {}).get("spec")) or {}
    if not (template_spec.get("serviceAccountName") or template_spec.get("serviceAccount")):
        return None  # a template that names none is left to its pods' own view
    account = service_account_of(template_spec)
    if account == ctx.service_account:
        return None
    facts = ctx.facts.live_pods
    accounts = facts.template_accounts if facts else {}
    ref, ns = f"{kind}/{name}", fix.namespace_or(ctx.namespace)
    severity = ERROR
    if account not in accounts:
        what, severity = "(that ServiceAccount could not be read)", WARNING
    elif accounts[account] is None:
        what = f"which does not exist in {ns}: the API server will refuse its new pods"
    elif not (accounts[account] or {}).get(CLIENT_ID_ANNOTATION):
        what = f"which has no {CLIENT_ID_ANNOTATION} annotation: its new pods get no AZURE_CLIENT_ID"
    else:
        what, severity = f"whose {CLIENT_ID_ANNOTATION} is {(accounts[account] or {})[CLIENT_ID_ANNOTATION]}", WARNING
    newer = [_name(live.pod) for live in (facts.unannotated if facts else [])
             if (live.owner_kind, live.owner_name) == (kind, name)]
    if paused(kind, owner):
        state = f"{ref} is paused (kubectl rollout pause): the change waits for kubectl rollout resume"
    elif newer:
        state = (f"its rollout is in progress: {', '.join(newer[:fix.SHOWN_PODS])} already "
                 f"{'runs' if len(newer) == 1 else 'run'} under {account}")
    else:
        state = "the change is not rolled out yet"
    pods = [_name(m.pod) for m in members]
    return Finding(
        "POD_WRONG_SERVICE_ACCOUNT", severity, "pod",
        f"{ref}: its pod template now names ServiceAccount {account} (not {ctx.service_account}), {what}; its "
        f"{values.counted(len(pods), 'live pod')} under {ctx.service_account} {'is' if len(pods) == 1 else 'are'} "
        f"of the template before, and none will be once it is rolled out ({state})",
        {"owner": ref, "pods": pods[:fix.SHOWN_PODS], "service_account": account,
         "client_id_annotation": (accounts.get(account) or {}).get(CLIENT_ID_ANNOTATION) if account in accounts
         else "unread", **({"new_pods": newer[:fix.SHOWN_PODS]} if newer else {})},
        [advice(f"if {ref} should stay under {ctx.service_account}, set its pod template's serviceAccountName back "
                "(when that was its only change, the template is again the one its pods run: none is replaced):"),
         fix.patch_template_service_account(kind, ctx.namespace, name, ctx.service_account),
         advice(f"if it is meant to run under {account}, that ServiceAccount needs an identity of its own (the "
                "client-id annotation and a federated credential for its subject): verify it as a workload")],
    )


_DUPLICATE_VOLUME_RE = re.compile(r'spec\.volumes\[\d+\]\.name: Duplicate value: "([^"]+)"')


def _clashing_volume(message: str) -> str | None:
    """The webhook's own volume name when the API server refused the mutated pod over a duplicate volume: webhook
    v1.5 (AKS's add-on) appends its azure-identity-token volume unless one projecting its token path is there, so
    a template volume of that name of another kind makes every pod invalid (422 Duplicate value)."""
    match = _DUPLICATE_VOLUME_RE.search(message)
    if match and (match.group(1) == V15_VOLUME_NAME or match.group(1).startswith(V16_VOLUME_PREFIX)):
        return match.group(1)
    return None


_DUPLICATE_MOUNT_RE = re.compile(r'spec\.(?:initContainers|containers)\[\d+\]\.volumeMounts\[\d+\]\.mountPath: Invalid '
                                 r'value: "([^"]+)": must be unique')
# where the webhook mounts its token: v1.0-v1.5 (AKS's add-on), v1.6
_WEBHOOK_MOUNT_PATHS = ("/var/run/secrets/azure/tokens", "/var/run/secrets/azure/wi")


def _clashing_mount(message: str) -> str | None:
    """The webhook's mount path when the API server refused the mutated pod over a duplicate mountPath: the
    webhook appends its mount unless the container has one named like its volume (addProjectedTokenVolumeMount
    looks at the name only), so a template mounting its own volume at that path (a token projected by hand before
    the webhook) makes every pod invalid (422 ... mountPath: Invalid value: "...": must be unique)."""
    match = _DUPLICATE_MOUNT_RE.search(message)
    return match.group(1) if match and match.group(1).rstrip("/") in _WEBHOOK_MOUNT_PATHS else None


# webhook v1.5 (AKS's add-on) adds no volume when any projected serviceAccountToken of the pod has the path
# azure-identity-token (addProjectedServiceAccountTokenVolume), yet mounts a volume of that name in every container
# (addProjectedVolumeMount): a template projecting a token at that path in a volume named otherwise is invalid
_ORPHANED_MOUNT_RE = re.compile(r'volumeMounts\[\d+\]\.name: Not found: "' + re.escape(V15_VOLUME_NAME) + '"')


def _token_mount_orphaned(ctx: WorkloadContext, refused: RefusedController) -> Finding:
    return _template_clash(
        ctx, refused, f"projects a service account token at path {V15_VOLUME_NAME} in a volume named otherwise: the "
        f"webhook takes that for its own token and adds no volume, yet mounts one named {V15_VOLUME_NAME}",
        {"volume": V15_VOLUME_NAME},
        "jsonpath={range .spec.template.spec.volumes[*]}{.name}{\": \"}{.projected.sources[*].serviceAccountToken}"
        "{\"\\n\"}{end}",
        f"in {refused.kind}/{refused.name}'s manifest, give that serviceAccountToken projection another path (or "
        "remove the volume, if it was a Workload ID token projected by hand), and apply it: the webhook projects its "
        "own token")


def _refused_unnamed(ctx: WorkloadContext, refused: RefusedController) -> Finding:
    """A controller of the workload whose new pods the API server refuses for a reason none of the above names:
    its current pod template does not run, which a run must not pass in silence. A warning: whether Workload ID
    has a part in it (the pod is validated after the webhook mutated it) is the refusal's to say. (The Workload ID
    webhook unreachable is the probe pod's finding, pod.admitted.)"""
    ref = f"{refused.kind}/{refused.name}"
    return Finding(
        "POD_NOT_ADMITTED", WARNING, "pod",
        f"{ref}: the API server refuses its new pods ({refused.reason}), for a reason the harness does not name: "
        f"none of its current template runs: {refused.message}",
        {"owner": ref, "reason": refused.reason, "refusal": refused.message},
        [fix.kubectl("describe", f"{refused.kind.lower()}/{refused.name}", "-n", fix.namespace_or(ctx.namespace)),
         advice(f"fix what the refusal names in the pod template of {ref}; its controller creates the pods again")],
    )


def _mount_clash(ctx: WorkloadContext, refused: RefusedController, path: str) -> Finding:
    return _template_clash(
        ctx, refused, f"mounts a volume of its own at {path}, where the webhook mounts its token",
        {"mount_path": path}, "jsonpath={.spec.template.spec.containers[*].volumeMounts}",
        f"remove the template's own mount at {path} (and its volume) from {refused.kind}/{refused.name}'s manifest, "
        "and apply it: the webhook mounts the token there, and the app finds it through AZURE_FEDERATED_TOKEN_FILE")


def _volume_clash(ctx: WorkloadContext, refused: RefusedController, volume: str) -> Finding:
    return _template_clash(
        ctx, refused, f"has a volume named {volume}, the name of the volume the webhook injects", {"volume": volume},
        "jsonpath={.spec.template.spec.volumes[*].name}",
        f"rename the template's volume {volume} (and the volumeMounts that name it) in "
        f"{refused.kind}/{refused.name}'s manifest, and apply it: the webhook adds its own")


def _template_clash(ctx: WorkloadContext, refused: RefusedController, clash: str, evidence: dict[str, str],
                    jsonpath: str, repair: str) -> Finding:
    """POD_NOT_ADMITTED for a pod template that, once the webhook has mutated its pods, the API server finds
    invalid: ``clash`` says what of the template collides with what the webhook adds; the look prints it."""
    ref = f"{refused.kind}/{refused.name}"
    return Finding(
        "POD_NOT_ADMITTED", ERROR, "pod",
        f"{ref}: the API server refuses its pods once the webhook has mutated them ({refused.reason}): the pod "
        f"template {clash}: {refused.message}",
        {"owner": ref, "reason": refused.reason, "refusal": refused.message, **evidence},
        [fix.kubectl("get", f"{refused.kind.lower()}/{refused.name}", "-n", fix.namespace_or(ctx.namespace), "-o",
                     jsonpath),
         advice(repair)],
    )


def _client_id_meant(ctx: WorkloadContext) -> tuple[str | None, bool]:
    """(the client id the workload is meant to run as, the annotation names no identity at all): harness.yaml's;
    else, when the identity read was the annotation's, the client id of the identity whose principal (object) id
    it holds, or of the application of the annotated one's display name that trusts the ServiceAccount when the
    annotated one does not; and whether the look-up, made in full, found nothing it names (a restart would hand the pods a
    client id Entra refuses: identity.matches says what to annotate). harness.yaml's client_id out of date (the
    identity it names by identity_resource_id was deleted and created again: the annotation has the new client id,
    sa.client_id_annotation says so): the annotation's, so pods still carrying the deleted identity's are stale."""
    stale_config = ctx.stale_configured_client_id
    if stale_config is not None:
        return stale_config, False
    if ctx.workload.client_id:
        return ctx.workload.client_id, False
    identity = ctx.facts.identity
    if identity is None or not identity.configured or identity.error is not None:
        return None, False
    if identity.principal_of and values.is_guid(identity.principal_of.get("client_id")):
        return str(identity.principal_of["client_id"]), False
    from harness.checks.federation import namesake_trusted_instead  # federation imports this module
    trusted = namesake_trusted_instead(ctx)  # the other app of its name trusts the ServiceAccount, not this one
    if trusted is not None:
        return str(trusted["appId"]), False
    return None, identity.kind is None and not identity.refused


def pod_problems(
    live: LivePod, sa_annotations: dict[str, str], sa_labels: dict[str, str], expected: str | None = None,
    injected: dict[str, str] | None = None, annotation_unusable: bool = False,
) -> list[Problem]:
    """What is wrong with one live pod; ``expected`` is the client id harness.yaml names (or the one the
    annotation's principal id belongs to). A pod that carries it while the ServiceAccount says another is not
    stale: the annotation is wrong (identity.matches says so), and a restart would hand the pod the wrong
    identity. Neither is one carrying a client id while the annotation names no identity
    (``annotation_unusable``)."""
    pod = live.pod
    name = _name(pod)
    labels = (pod.get("metadata") or {}).get("labels") or {}
    if labels.get(USE_LABEL) != "true" and not unlabelled_after_mutation(live):
        return [Problem("POD_NOT_LABELLED", name, _label_whereabouts(live, sa_labels, sa_annotations)
                        + template_ahead(live))]
    skipped = skipped_containers(pod)
    everything = [str(c.get("name") or "") for c in containers(pod, include_init=True)]
    if skipped and everything and all(cname in skipped for cname in everything):
        # the webhook adds the token volume but mounts it and sets the env in no container (mutateContainers
        # skips each one named): a pod labelled for Workload ID in which nothing can use the identity
        return [Problem("POD_CONTAINER_SKIPPED", name, f"every container of the pod ({', '.join(everything)}) is "
                        f"in {SKIP_CONTAINERS_ANNOTATION}: none gets the AZURE_* env or the token mount",
                        severity=ERROR)]
    problems: list[Problem] = [
        _skipped(pod, str(c.get("name") or ""), skipped, "init container")
        for c in (pod.get("spec") or {}).get("initContainers") or []
        if str(c.get("name") or "") in skipped and not any(env_map(c).get(var) for var in INJECTED_ENV)
    ]
    annotated = sa_annotations.get(CLIENT_ID_ANNOTATION)
    mutated_any = bool(token_volumes(pod))
    init_names = {str(c.get("name") or "") for c in (pod.get("spec") or {}).get("initContainers") or []}
    # init containers too: the webhook's mutateContainers sets their env as it does the app's (native sidecars
    # among them), and never overwrites a variable one names
    for container in containers(pod, include_init=True):
        cname = str(container.get("name") or "")
        what = "init container" if cname in init_names else "container"
        env = env_map(container)
        if cname in skipped:
            if what == "container" and not any(env.get(var) for var in INJECTED_ENV):
                problems.append(_skipped(pod, cname, skipped, "container"))
            continue
        if not any(env.get(var) for var in INJECTED_ENV):
            continue
        mutated_any = True
        client_id = env.get("AZURE_CLIENT_ID")
        source = value_source(container, "AZURE_CLIENT_ID")
        if annotated and not client_id and source:
            problems.append(Problem("POD_ENV_CONFLICT", name, f"{what} {cname} sets AZURE_CLIENT_ID itself, from "
                                    f"{source}: the webhook never sets a variable the container names, so the app "
                                    f"gets what that holds (the harness does not read it), not the ServiceAccount's "
                                    f"{annotated}"))
        elif annotated and not client_id and named_empty(container, "AZURE_CLIENT_ID"):
            problems.append(Problem("POD_ENV_CONFLICT", name, f"{what} {cname} sets AZURE_CLIENT_ID itself, to an "
                                    "empty value (a chart or manifest value left unset): the webhook never sets a "
                                    "variable the container names, so the app gets no client id, not the "
                                    f"ServiceAccount's {annotated}; a restart keeps it empty"))
        elif annotated and not client_id:
            problems.append(Problem("POD_STALE_CLIENT_ID", name, f"{what} {cname} has no AZURE_CLIENT_ID: "
                                    "the pod was created before the ServiceAccount was annotated"))
        elif annotated and client_id and client_id.lower() != annotated.lower():
            if not preset_in_template(live, cname) and (
                    annotation_unusable or (expected and client_id.lower() == expected.lower())):
                continue
            if preset_in_template(live, cname):
                problems.append(Problem("POD_ENV_CONFLICT", name, f"{what} {cname} sets AZURE_CLIENT_ID="
                                        f"{client_id} itself; the ServiceAccount says {annotated}"))
            else:
                problems.append(Problem("POD_STALE_CLIENT_ID", name, f"{what} {cname} has AZURE_CLIENT_ID="
                                        f"{client_id} but the ServiceAccount now says {annotated}: the pod "
                                        "predates the annotation's change"))
        others = [variable for variable in INJECTED_ENV if variable != "AZURE_CLIENT_ID"]  # AZURE_CLIENT_ID: above
        for variable, source in value_sources(container, others).items():
            webhook = f", not the {(injected or {})[variable]} the webhook injects" if variable in (injected or {}) else ""
            problems.append(Problem("POD_ENV_CONFLICT", name, f"{what} {cname} sets {variable} itself, from {source}: "
                                    "the webhook never sets a variable the container names, so the app gets what "
                                    f"that holds (the harness does not read it){webhook}", variable))
        problems += [Problem("POD_ENV_CONFLICT", name, f"{what} {cname} sets {variable} itself, to an empty value: "
                             "the webhook never sets a variable the container names, so the app gets none", variable)
                     for variable in INJECTED_ENV if variable != "AZURE_CLIENT_ID" and named_empty(container, variable)]
        for variable, wanted in (injected or {}).items():
            value = env.get(variable)
            if value and not _same(variable, value, wanted) and preset_in_template(live, cname, variable):
                problems.append(Problem("POD_ENV_CONFLICT", name, f"{what} {cname} sets {variable}={value} itself;"
                                        f" the webhook injects {wanted} for this ServiceAccount", variable))
        token_file = env.get("AZURE_FEDERATED_TOKEN_FILE")
        projected = sorted({token_file_of(mount, token) for token in token_volumes(pod)
                            for mount in mounts_of(container, token.volume)})
        if token_file and projected and posixpath.normpath(token_file) not in projected:
            # the webhook appends only the variables a container does not set (addEnvironmentVariables)
            problems.append(Problem("POD_ENV_CONFLICT", name, f"{what} {cname} sets AZURE_FEDERATED_TOKEN_FILE="
                                    f"{token_file} itself, but its projected token is {projected[0]}: the SDK reads "
                                    "a file that is not there", "AZURE_FEDERATED_TOKEN_FILE"))
    if not mutated_any:
        if _template_unlabelled(live):
            problems.append(Problem("POD_NOT_MUTATED", name, f"the pod carries the label but its {live.owner_kind}'s "
                                    f"pod template does not: it was labelled by hand after it was created (kubectl "
                                    "label pod), and the webhook acts on pod CREATE only; a restart would make "
                                    "unlabelled pods"))
        else:
            held = held_back(live)
            problems.append(Problem("POD_NOT_MUTATED", name, "labelled, but no AZURE_* env and no projected token: "
                                    "created before the label, or while the webhook was down"
                                    + (f"; {held}" if held else "")))
    return problems


def _skipped(pod: dict[str, Any], cname: str, skipped: set[str], what: str) -> Problem:
    """A container the skip-containers annotation names (it gets no AZURE_* env and no token mount): a warning,
    as sidecars are skipped on purpose; an error when it keeps failing (CrashLoopBackOff, or ended with an error),
    as an init container or app that needs the identity does (its log says whether for want of it)."""
    said = f"{what} {cname} is in {SKIP_CONTAINERS_ANNOTATION}: it gets no AZURE_* env"
    failing = container_failing(pod, cname)
    if failing is None:
        return Problem("POD_CONTAINER_SKIPPED", _name(pod), said)
    return Problem("POD_CONTAINER_SKIPPED", _name(pod), f"{said} and no token mount, and is {failing[0]}"
                   f"{': the pod never starts its app' if what == 'init container' else ''}",
                   severity=ERROR, failing=(cname, failing[1], skipped == {cname}))


def container_failing(pod: dict[str, Any], cname: str) -> tuple[str, bool] | None:
    """(how container ``cname`` of the pod fails, whether its failed run is --previous's): in CrashLoopBackOff, or
    ended with a non-zero exit code; None when neither."""
    status = pod.get("status") or {}
    for item in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        if item.get("name") != cname:
            continue
        state = item.get("state") or {}
        last = (item.get("lastState") or {}).get("terminated") or {}
        if (state.get("waiting") or {}).get("reason") == "CrashLoopBackOff":
            exit_code = last.get("exitCode")
            return ("in CrashLoopBackOff (" + (f"last exit {exit_code}, " if exit_code is not None else "")
                    + f"{item.get('restartCount') or 0} restarts)"), True
        ended = state.get("terminated") or {}
        if ended.get("exitCode") not in (None, 0):
            return f"ended with exit code {ended['exitCode']}", False
    return None


def named_empty(container: dict[str, Any], variable: str) -> bool:
    """The container names ``variable`` in its env with an empty value and no valueFrom (``value: ""``, or a Helm
    value left unset): the webhook's addEnvironmentVariables keys on the name, so it appends nothing for it."""
    return any(e.get("name") == variable and not e.get("value") and not e.get("valueFrom")
               for e in container.get("env") or [])


# a template already right, and no pause or partition holding the pods back: its rollout is under way or stuck
_NOT_HELD = "its rollout has not replaced it yet (under way, or stuck: kubectl rollout status says which)"


def template_ahead(live: LivePod) -> str:
    """An unlabelled pod whose controller's template carries the use label: why the pod is still the earlier
    template's (a pause, a partition, a rollout not done; a Job made by its CronJob before the CronJob's template
    was labelled); "" when the template lacks it too."""
    if live.owner_kind == "Job" and cronjob_template_labelled(live.cronjob):
        cronjob = (live.cronjob or {}).get("metadata", {}).get("name")
        return (f"; CronJob/{cronjob}'s jobTemplate carries it now: the pod is of Job/{live.owner_name}, made "
                "before (a Job's pod template cannot change), and the CronJob's next Jobs' pods get it")
    if not _template_labelled(live):
        return ""
    return (f"; {live.owner_kind}/{live.owner_name}'s pod template carries it: the pod was made from an earlier "
            f"template and {held_back(live) or _NOT_HELD}")


def cronjob_template_labelled(cronjob: dict[str, Any] | None) -> bool:
    """A CronJob, as read, whose jobTemplate's pod template carries the use label."""
    template = (((((cronjob or {}).get("spec") or {}).get("jobTemplate") or {}).get("spec") or {})
                .get("template") or {}).get("metadata") or {}
    return (template.get("labels") or {}).get(USE_LABEL) == "true"


def _template_labelled(live: LivePod) -> bool:
    """The pod's Deployment, StatefulSet or DaemonSet was read and its pod template carries the use label."""
    if live.owner is None or live.owner_kind not in fix.RESTARTABLE:
        return False
    template = ((live.owner.get("spec") or {}).get("template") or {}).get("metadata") or {}
    return (template.get("labels") or {}).get(USE_LABEL) == "true"


def paused(kind: str, owner: dict[str, Any] | None) -> bool:
    """A Deployment paused (kubectl rollout pause sets spec.paused): its controller makes no ReplicaSet for a
    changed template, so no new pod, until kubectl rollout resume; and kubectl rollout restart refuses it ("can't
    restart paused deployment (run rollout resume first)": kubectl polymorphichelpers/objectrestarter.go)."""
    return kind == "Deployment" and (owner or {}).get("spec", {}).get("paused") is True


def partition(kind: str, owner: dict[str, Any] | None) -> int:
    """A StatefulSet's spec.updateStrategy.rollingUpdate.partition (0: none, or not a RollingUpdate)."""
    strategy = ((owner or {}).get("spec") or {}).get("updateStrategy") or {} if kind == "StatefulSet" else {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return 0
    value = (strategy.get("rollingUpdate") or {}).get("partition")
    return value if isinstance(value, int) and value > 0 else 0


def below_partition(kind: str, name: str, owner: dict[str, Any] | None, pods: list[str]) -> list[str]:
    """The pods of StatefulSet ``name`` whose ordinal is below its rollingUpdate.partition: a template change
    (kubectl rollout restart's too) does not reach them, and one deleted is made again at the revision it had
    (kubernetes.io docs, StatefulSet "Partitioned rolling updates"; pkg/controller/statefulset
    stateful_set_utils.go newVersionedStatefulSetPod: ordinal < partition gets currentRevision)."""
    limit = partition(kind, owner)
    return [pod for pod in pods if (n := fix.statefulset_ordinal(pod, name)) is not None and n < limit] if limit else []


def held_back(live: LivePod) -> str:
    """Why the pod's controller does not replace it with one made from its template as it is now: a paused
    Deployment, a StatefulSet pod below the partition, or a StatefulSet or DaemonSet with updateStrategy OnDelete;
    "" for none."""
    if paused(live.owner_kind, live.owner):
        return (f"Deployment/{live.owner_name} is paused (kubectl rollout pause): it makes no pod from a changed "
                "template, and kubectl rollout restart refuses it, until kubectl rollout resume")
    limit = partition(live.owner_kind, live.owner)
    if below_partition(live.owner_kind, live.owner_name, live.owner, [_name(live.pod)]):
        return (f"its ordinal is below StatefulSet/{live.owner_name}'s rollingUpdate.partition {limit}: a template "
                "change does not reach it, and deleted it is made again from the earlier template, until the "
                "partition is lowered")
    strategy = ((live.owner or {}).get("spec") or {}).get("updateStrategy") or {}
    if live.owner_kind in ("StatefulSet", "DaemonSet") and strategy.get("type") == "OnDelete":
        # its controller replaces no pod for a template change, and kubectl rollout status refuses to follow it
        # ("rollout status is only available for RollingUpdate strategy type": kubectl polymorphichelpers
        # rollout_status.go)
        return (f"{live.owner_kind}/{live.owner_name} has updateStrategy OnDelete: no rollout replaces its pods, "
                "its controller makes each deleted one again from the template as it is then")
    return ""


def _template_unlabelled(live: LivePod) -> bool:
    """The pod's controller was read and its pod template lacks the use label the pod carries."""
    if live.owner is None or live.owner_kind not in fix.RESTARTABLE:
        return False
    template = ((live.owner.get("spec") or {}).get("template") or {}).get("metadata") or {}
    return (template.get("labels") or {}).get(USE_LABEL) != "true"


def skipped_containers(pod: dict[str, Any] | None) -> set[str]:
    """The container names in the pod's skip-containers annotation (``;``-separated, each trimmed, as the
    webhook's getSkipContainers splits them); they apply to init containers too."""
    return {c.strip() for c in (annotation(pod, SKIP_CONTAINERS_ANNOTATION) or "").split(";") if c.strip()}


def misplaced_use_label(kind: str, owner: dict[str, Any] | None, cronjob: dict[str, Any] | None
                        ) -> tuple[str, str, str] | None:
    """(where the use label sits, the same in words, where it must go) when a pod's controller carries it on its own metadata.labels
    (``kubectl label deploy|sts|ds|job``), or a Job's CronJob on its own or on its jobTemplate's metadata (which
    labels the Job, not its pods): the webhook's objectSelector reads the pod's labels, made from the template."""
    def labelled(meta: Any) -> bool:
        return isinstance(meta, dict) and (meta.get("labels") or {}).get(USE_LABEL) == "true"

    if cronjob is not None:
        ref = f"CronJob/{(cronjob.get('metadata') or {}).get('name')}"
        job_template = (cronjob.get("spec") or {}).get("jobTemplate") or {}
        for place, words, meta in (("metadata.labels", "own metadata.labels", cronjob.get("metadata")),
                                   ("spec.jobTemplate.metadata.labels", "spec.jobTemplate.metadata.labels (the "
                                    "Job's labels, not its pods')", job_template.get("metadata"))):
            if labelled(meta):
                return f"{ref} {place}", f"{ref}'s {words}", "spec.jobTemplate.spec.template.metadata.labels"
    if owner is not None and labelled(owner.get("metadata")):
        ref = f"{kind}/{(owner.get('metadata') or {}).get('name')}"
        return f"{ref} metadata.labels", f"{ref}'s own metadata.labels", "spec.template.metadata.labels"
    return None


def unlabelled_after_mutation(live: LivePod) -> bool:
    """The pod lacks the use label, yet the webhook mutated it (its token volume is there) and its controller's
    template, as read, carries the label: the label was taken off the running pod (kubectl label pod ...-), which
    changes nothing the webhook did (it acts on CREATE) nor its replacements, made from the template."""
    if live.owner is None or live.owner_kind not in fix.RESTARTABLE or not token_volumes(live.pod):
        return False
    template = ((live.owner.get("spec") or {}).get("template") or {}).get("metadata") or {}
    return (template.get("labels") or {}).get(USE_LABEL) == "true"


def _label_whereabouts(live: LivePod, sa_labels: dict[str, str], sa_annotations: dict[str, str] | None = None) -> str:
    places = []
    misplaced = misplaced_use_label(live.owner_kind, live.owner, live.cronjob)
    if misplaced is not None:
        places.append(f"on {misplaced[1]}, not under {misplaced[2]}" if misplaced[0].startswith("CronJob/")
                      else f"on the {live.owner_kind}'s own metadata, not its pod template")
    if sa_labels.get(USE_LABEL) == "true":
        places.append("on the ServiceAccount")
    elif (sa_annotations or {}).get(USE_LABEL) is not None:  # v0.x read it there; v1 reads the pod's label only
        places.append("as an annotation of the ServiceAccount")
    if annotation(live.pod, USE_LABEL) is not None:
        places.append("as an annotation of the pod")
    value = ((live.pod.get("metadata") or {}).get("labels") or {}).get(USE_LABEL)
    found = "; it sits " + " and ".join(places) if places else ""
    state = "absent" if value is None else f"{value!r}, not \"true\""
    made = (f" (this pod was mutated when it was made, under an earlier selector or label; the {live.owner_kind}'s "
            "next pods will not be)") if token_volumes(live.pod) else ""
    return f"the pod's {USE_LABEL} label is {state}{found}{made}"


def preset_in_template(live: LivePod, container_name: str, variable: str = "AZURE_CLIENT_ID") -> bool:
    """The container names ``variable`` itself: in its controller's pod template when that was read; else (a bare
    pod, or a controller not read) the pod's own env, where the webhook's appended variables cannot be told from
    the container's (it appends in its order after the container's own, addEnvironmentVariables): taken as the
    container's, whose fix (remove it, then restart) repairs a stale value too."""
    template = ((live.owner or {}).get("spec") or {}).get("template")
    for container in containers(template if template else live.pod, include_init=True):
        if container.get("name") == container_name:
            return any(e.get("name") == variable for e in container.get("env") or [])
    return False


def _injected(ctx: WorkloadContext) -> dict[str, str]:
    """AZURE_TENANT_ID and AZURE_AUTHORITY_HOST as the webhook injects them now: the probe pod's, which sets none
    itself (empty when no probe pod was admitted and mutated)."""
    probe = ctx.facts.pod
    if probe is None or probe.existing or not probe.pod:
        return {}
    env = injected_azure_env(probe.pod)
    return {var: env[var] for var in ("AZURE_TENANT_ID", "AZURE_AUTHORITY_HOST") if var in env}


def _same(variable: str, a: str, b: str) -> bool:
    if variable == "AZURE_AUTHORITY_HOST":
        return a.rstrip("/").lower() == b.rstrip("/").lower()
    return a.strip().lower() == b.strip().lower()


def token_predates_cluster_update(ctx: WorkloadContext, pod: dict[str, Any]) -> Problem | None:
    """A mutated pod made before the managed cluster's last update through ARM (systemData.lastModifiedAt), within
    the time its projected token may still be the one issued before it, when something says that update may have
    been the issuer's. Enabling the OIDC issuer on an existing cluster changes the issuer the API server writes into
    tokens (learn.microsoft.com AKS use-oidc-issuer: restart the pods that stay failed); a running pod keeps its
    token until the kubelet replaces it once older than 80% of its lifetime or 24 h (kubernetes.io, ServiceAccount
    token volume projection), so until then its exchange names the earlier issuer.

    The cluster is updated for many other reasons (tags, node counts, upgrades, any az aks update), and the harness
    can read neither the pod's token nor what an update changed, so the update alone is no evidence. An AKS issuer
    URL carries a random GUID of the cluster, cannot be disabled once enabled and does not change (AKS docs), so
    no federated credential can name it before it exists: one naming it made before the pod says the pod's token
    came from it (nothing to say). A warning needs one of: the identity's first credential naming the issuer was
    made after the update (enable the issuer, then federate: the documented order), or the pod's containers
    restarted, crash-loop or turned unready since the update."""
    arm = ctx.cluster.arm_cluster
    body = (arm.body if arm is not None and arm.ok and isinstance(arm.body, dict) else None) or {}
    profile = (body.get("properties") or {}).get("oidcIssuerProfile") or {}
    if not profile.get("enabled"):
        return None
    updated = created_on((body.get("systemData") or {}).get("lastModifiedAt"))
    made_text = str((pod.get("metadata") or {}).get("creationTimestamp") or "")
    made, volumes = created_on(made_text), token_volumes(pod)
    # creationTimestamp has whole seconds: a pod of the same second as the update is not taken to predate it
    if updated is None or made is None or not volumes or made >= updated - 1:
        return None
    lifetime = volumes[0].expiration_seconds or DEFAULT_EXPIRATION
    replaced_by = updated + min(0.8 * lifetime, 24 * 3600)
    if ctx.now >= replaced_by:
        return None
    federated = _issuer_first_federated(ctx, str(profile.get("issuerURL") or ctx.cluster.issuer_url or ""))
    if federated is not None and federated < made:
        return None
    stamp = lambda moment: datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    trouble = _trouble_since(pod, updated)
    if trouble:
        evidence = f"its containers have {trouble} since"
    elif federated is not None and federated >= updated - 1:
        evidence = (f"the identity's first federated credential for the issuer was made after it "
                    f"({stamp(federated)}), as when the update enabled the issuer")
    else:
        return None
    return Problem("POD_TOKEN_PREDATES_ISSUER", _name(pod), (
        f"the pod was created {made_text}, before the managed cluster's last update ({stamp(updated)}), and "
        f"{evidence}: if that update enabled or changed the cluster's OIDC issuer, the pod's projected token still "
        f"carries the earlier iss and its exchange fails (AADSTS700211) until the kubelet replaces it ({lifetime} s "
        f"lifetime: by {stamp(replaced_by)} at the latest) or the pod is made again"))


def _issuer_first_federated(ctx: WorkloadContext, issuer: str) -> float | None:
    """When the first of the identity's federated credentials naming ``issuer`` was made (ARM's
    systemData.createdAt); None when none does or none says (Microsoft Graph's carry no time)."""
    made = []
    for item in ctx.facts.identity.federated_credentials or []:
        fields = item.get("properties") if isinstance(item.get("properties"), dict) else item
        system = item.get("systemData") if isinstance(item.get("systemData"), dict) else {}
        at = created_on(system.get("createdAt"))
        if issuer and fields.get("issuer") == issuer and at is not None:
            made.append(at)
    return min(made, default=None)


def _trouble_since(pod: dict[str, Any], moment: float) -> str | None:
    """What the pod's containers show of trouble since ``moment``: a container's last run ended after it (a restart,
    or a crash loop), or the Ready condition turned False after it; None when they show none. A CrashLoopBackOff
    carries no time of its own: its last run's end is what says it failed since."""
    status = pod.get("status") or {}
    for container in status.get("containerStatuses") or []:
        ended = created_on(((container.get("lastState") or {}).get("terminated") or {}).get("finishedAt"))
        if ended is None or ended < moment:
            continue
        if ((container.get("state") or {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff":
            return f"been in CrashLoopBackOff ({container.get('name')})"
        return f"restarted ({container.get('name')}: {container.get('restartCount', 0)} restarts)"
    for condition in status.get("conditions") or []:
        turned = created_on(condition.get("lastTransitionTime"))
        if condition.get("type") == "Ready" and condition.get("status") == "False" and turned is not None \
                and turned >= moment:
            return "been unready"
    return None


def existing_pod_token_finding(ctx: WorkloadContext) -> Finding | None:
    """--pod: POD_TOKEN_PREDATES_ISSUER for the given pod (its controller restarted), None when it does not apply."""
    existing = ctx.facts.pod
    if existing is None or not existing.existing or not existing.pod:
        return None
    old = token_predates_cluster_update(ctx, existing.pod)
    if old is None:
        return None
    kind, name = controller_of(existing.pod)
    return _finding(ctx, kind, name, [old])


_MEANING = {
    "POD_NOT_LABELLED": (ERROR, "the webhook never sees the workload's pods"),
    "POD_NOT_MUTATED": (ERROR, "the workload's pods run without the injected identity"),
    "POD_STALE_CLIENT_ID": (ERROR, "the workload's pods carry an old client id: restart them"),
    "POD_ENV_CONFLICT": (ERROR, "the workload presets an AZURE_* variable, which the webhook never overwrites"),
    "POD_CONTAINER_SKIPPED": (WARNING, "a container of the workload is skipped by the webhook"),
    "POD_TOKEN_PREDATES_ISSUER": (WARNING, "the workload's pods may hold a token from an earlier issuer"),
}


def _finding(ctx: WorkloadContext, kind: str, name: str, problems: list[Problem]) -> Finding:
    code = problems[0].code
    severity, meaning = _MEANING[code]
    if any(p.severity == ERROR for p in problems):
        severity, meaning = ERROR, "no container of the workload's pods gets the identity"
        problems = [p for p in problems if p.severity == ERROR]
        if any(p.failing is None for p in problems):  # every container skipped: that one first
            problems = [p for p in problems if p.failing is None]
        else:
            meaning = "a container the webhook skips keeps failing"
    pods = sorted({p.pod for p in problems})
    shown = ", ".join(pods[:fix.SHOWN_PODS]) + (f" and {len(pods) - fix.SHOWN_PODS} more" if len(pods) > fix.SHOWN_PODS else "")
    # every detail of the first pod: a container presetting two variables gets a fix for each, and says why of each
    details = list(dict.fromkeys(p.detail for p in problems if p.pod == problems[0].pod))
    evidence = {"owner": f"{kind}/{name}", "pods": pods[:fix.SHOWN_PODS], "pod_count": len(pods),
                "detail": details[0], **({"details": details} if len(details) > 1 else {})}
    message = f"{kind}/{name} ({shown}): {meaning}: {'; '.join(details)}"
    variables = list(dict.fromkeys(p.variable for p in problems))
    if severity == ERROR and code == "POD_CONTAINER_SKIPPED" and problems[0].failing is not None:
        return Finding(code, severity, "pod", message, evidence, _failing_skipped_repair(ctx, kind, name, problems[0]))
    if severity == ERROR and code == "POD_CONTAINER_SKIPPED":
        return Finding(code, severity, "pod", message, evidence, unskip_repair(ctx, kind, name, pods))
    return Finding(code, severity, "pod", message, evidence, _repair(ctx, code, kind, name, pods, variables))


def preset_elsewhere_finding(ctx: WorkloadContext) -> Finding | None:
    """--pod: the given pod's containers other than the one pod.mutated judges (another app container, an init
    container, a native sidecar) that set an AZURE_* variable themselves, which the webhook never overwrites:
    workload.live_pods' POD_ENV_CONFLICT over that pod, with its fix. None when none does."""
    facts = ctx.facts.pod
    if facts is None or not facts.existing or not facts.pod:
        return None
    judged = str((ctx.container or {}).get("name") or "")
    kind, name = controller_of(facts.pod)
    expected, unusable = _client_id_meant(ctx)
    problems = [problem for problem in pod_problems(LivePod(facts.pod, kind, name, facts.owner, facts.cronjob),
                                                   ctx.facts.sa.annotations, ctx.facts.sa.labels, expected, None,
                                                   unusable)
                if problem.code == "POD_ENV_CONFLICT"
                and not problem.detail.startswith((f"container {judged} ", f"init container {judged} "))]
    return _finding(ctx, kind, name, problems) if problems else None


def _failing_skipped_repair(ctx: WorkloadContext, kind: str, name: str, problem: Problem) -> list[Step]:
    """A skipped container that keeps failing: its log first (whether it fails for want of the identity: "workload
    options are not fully configured", no AZURE_FEDERATED_TOKEN_FILE), then the container taken out of the
    annotation (the whole annotation when it names that container alone; a template change rolls the pods)."""
    assert problem.failing is not None
    cname, previous, alone = problem.failing
    return skipped_failing_repair(ctx, kind, name, problem.pod, cname, previous=previous, alone=alone)


def skipped_failing_repair(ctx: WorkloadContext, kind: str, name: str, pod: str, cname: str, *, previous: bool,
                           alone: bool) -> list[Step]:
    """_failing_skipped_repair's steps, for --pod's pod.mutated too: the failing container's log (its earlier run's
    with ``previous``), then the container taken out of the annotation (``alone``: the annotation names it only)."""
    ns = fix.namespace_or(ctx.namespace)
    steps: list[Step] = [fix.kubectl("logs", "-n", ns, pod, "-c", cname, *(["--previous"] if previous else []),
                                     note="why it fails: the identity's absence, or another cause")]
    return [*steps, *unskip_one_repair(ctx, kind, name, pod, cname, alone=alone)]


def unskip_one_repair(ctx: WorkloadContext, kind: str, name: str, pod: str, cname: str, *, alone: bool) -> list[Step]:
    """Container ``cname`` taken out of the skip-containers annotation if it needs the identity: the whole
    annotation removed from a Deployment's, StatefulSet's or DaemonSet's template when it names that container
    alone (a template change rolls the pods); otherwise said, as the other names stay."""
    if alone and kind in fix.RESTARTABLE:
        return [fix.remove_template_annotation(kind, ctx.namespace, name, SKIP_CONTAINERS_ANNOTATION),
                *_template_change_rolls(ctx, kind, name, [pod])]
    where = (f"pod {name}'s manifest, then delete the pod and create it again (the webhook acts on pod CREATE only)"
             if kind == "Pod" else f"{kind}/{name}'s pod template")
    return [advice(f"if it needs the identity, take {cname} out of {SKIP_CONTAINERS_ANNOTATION} in {where}"
                   + (" (the other names stay, ';'-separated)" if not alone else ""))]


def unskip_repair(ctx: WorkloadContext, kind: str, name: str, pods: list[str]) -> list[Step]:
    """Every container of the pods skipped: the skip-containers annotation removed from the pod template (a
    template change rolls the pods, which the webhook then mutates in full); a Job's template cannot change, a
    bare pod's is its manifest."""
    namespace = ctx.namespace
    if kind in fix.RESTARTABLE:
        return [fix.remove_template_annotation(kind, namespace, name, SKIP_CONTAINERS_ANNOTATION),
                *_template_change_rolls(ctx, kind, name, pods)]
    where = f"Job/{name}'s manifest (a Job's pod template cannot change: delete the Job and create it again)" \
        if kind == "Job" else f"{kind}/{name}'s manifest, then create its pods again"
    return [advice(f"remove {SKIP_CONTAINERS_ANNOTATION} (or the containers that need the identity from it) from the "
                   f"pod template in {where}"),
            *([fix.delete_pod(namespace, pod) for pod in pods[:fix.SHOWN_PODS]] if kind == "Pod" else [])]


def _repair(ctx: WorkloadContext, code: str, kind: str, name: str, pods: list[str],
            variables: list[str] | None = None) -> list[Step]:
    namespace = ctx.namespace
    rolled = _template_change_rolls(ctx, kind, name, pods)
    restart = _restart(ctx, kind, name, pods)
    if code == "POD_NOT_LABELLED":
        if kind in fix.RESTARTABLE and _template_already_labelled(ctx, kind, name):
            # the template is right: what holds its pods back is released, nothing is patched into it again
            return rolled or [fix.kubectl("rollout", "status", f"{kind.lower()}/{name}", "-n",
                                          fix.namespace_or(namespace), "--timeout=120s")]
        if kind in fix.RESTARTABLE:
            return [fix.patch_template_labels(kind, namespace, name, {USE_LABEL: "true"}), *rolled]
        cronjob = _cronjob_of(ctx, name) if kind == "Job" else None
        if cronjob is not None and _cronjob_labelled(ctx, name):  # fixed already: this Job was made before
            return [advice(f"CronJob/{cronjob}'s next Job's pods get the label; to run one now: kubectl create job -n "
                           f"{fix.namespace_or(namespace)} --from=cronjob/{cronjob} {cronjob}-wi")]
        if cronjob is not None:  # its CronJob's pod template (mutable) labelled; the Job made without it goes
            return [fix.patch_cronjob_template_labels(namespace, cronjob, {USE_LABEL: "true"}),
                    fix.delete_job(namespace, name),
                    advice(f"CronJob/{cronjob}'s next Job gets the label; to run one now: kubectl create job -n "
                           f"{fix.namespace_or(namespace)} --from=cronjob/{cronjob} {cronjob}-wi")]
        if kind == "Job":  # a Job's pod template is immutable (batch/v1 validation): a new Job it must be
            return [advice(f'a Job\'s pod template cannot be changed: add the label {USE_LABEL}: "true" to the pod '
                           f"template in Job/{name}'s manifest (or its CronJob's jobTemplate), then delete the Job "
                           "and create it again")]
        if kind == "ReplicaSet":  # its template may change, but only pods it makes from now on carry the label
            return [fix.patch_template_labels(kind, namespace, name, {USE_LABEL: "true"}), *restart]
        if kind == "Pod" and any(being_deleted(ctx, pod) for pod in pods):
            return [_held_advice(ctx, next(pod for pod in pods if being_deleted(ctx, pod)))]
        if kind == "Pod" and (again := bare_pods_again(ctx, pods, label=True)):  # no controller: labelled, copied
            return again
        if kind == "Pod":  # no controller: the pod's own manifest, and a new pod for the webhook to see
            return [advice(f'add the label {USE_LABEL}: "true" to pod {name}\'s manifest (metadata.labels), then '
                           "delete it and create it again: the webhook acts on pod CREATE only"),
                    *[fix.delete_pod(namespace, pod) for pod in pods[:fix.SHOWN_PODS]]]
        return [advice(f'add the label {USE_LABEL}: "true" to the pod template of {kind}/{name}'), *restart]
    if code == "POD_ENV_CONFLICT":
        preset = variables or ["AZURE_CLIENT_ID"]
        if kind in fix.RESTARTABLE:
            return [*(fix.unset_env(kind, namespace, name, variable) for variable in preset), *rolled]
        return [advice(f"remove {' and '.join(preset)} from the container's env (or envFrom sources)"), *restart]
    if code == "POD_CONTAINER_SKIPPED":
        return [advice(f"remove the container from {SKIP_CONTAINERS_ANNOTATION} on {kind}/{name}'s pod template "
                       "if it needs the identity")]
    if code in ("POD_STALE_CLIENT_ID", "POD_TOKEN_PREDATES_ISSUER"):
        return [*restart]
    if code == "POD_NOT_MUTATED" and kind in fix.RESTARTABLE and any(
            _template_unlabelled(live) for live in (ctx.facts.live_pods.pods if ctx.facts.live_pods else [])
            if (live.owner_kind, live.owner_name) == (kind, name)):
        # the label on the template: the change rolls the pods, which the webhook then sees at CREATE
        return [fix.patch_template_labels(kind, namespace, name, {USE_LABEL: "true"}), *rolled]
    return [
        fix.kubectl("get", "mutatingwebhookconfigurations"),
        *restart,
    ]


def _on_delete(ctx: WorkloadContext, kind: str, name: str) -> bool:
    """The StatefulSet or DaemonSet, as read with its pods, has ``updateStrategy: OnDelete``: a change to its
    template (kubectl rollout restart's included) replaces no pod; its controller makes a deleted one again from
    the template as it is then."""
    existing = ctx.facts.pod
    owners = [live.owner for live in (ctx.facts.live_pods.pods if ctx.facts.live_pods else [])
              if (live.owner_kind, live.owner_name) == (kind, name)]
    if existing is not None and existing.existing and existing.pod and controller_of(existing.pod) == (kind, name):
        owners.append(existing.owner)
    return kind in ("StatefulSet", "DaemonSet") and any(
        ((o.get("spec") or {}).get("updateStrategy") or {}).get("type") == "OnDelete" for o in owners if o)


def _owner(ctx: WorkloadContext, kind: str, name: str) -> dict[str, Any] | None:
    """Controller ``kind/name`` as read with the workload's live pods (or the --pod one)."""
    existing = ctx.facts.pod
    owners = [live.owner for live in (ctx.facts.live_pods.pods if ctx.facts.live_pods else [])
              if (live.owner_kind, live.owner_name) == (kind, name)]
    if existing is not None and existing.existing and existing.pod and controller_of(existing.pod) == (kind, name):
        owners.append(existing.owner)
    return next((owner for owner in owners if owner), None)


def _template_already_labelled(ctx: WorkloadContext, kind: str, name: str) -> bool:
    owner = _owner(ctx, kind, name)
    template = (((owner or {}).get("spec") or {}).get("template") or {}).get("metadata") or {}
    return (template.get("labels") or {}).get(USE_LABEL) == "true"


def _template_change_rolls(ctx: WorkloadContext, kind: str, name: str, pods: list[str]) -> list[Step]:
    """What makes the pods again after a change to the template: an OnDelete StatefulSet's or DaemonSet's pods
    deleted one by one; a paused Deployment resumed; a StatefulSet whose partition is above some of the pods'
    ordinals given partition 0 (deleting them would make them again from the earlier template); nothing for
    the others, whose controller rolls them."""
    if _on_delete(ctx, kind, name):
        return fix.replace_on_delete_pods(kind, ctx.namespace, name, pods)
    owner, ns = _owner(ctx, kind, name), fix.namespace_or(ctx.namespace)
    held = below_partition(kind, name, owner, pods)
    if held:
        lowered = json.dumps({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}}, separators=(",", ":"))
        return [fix.kubectl("patch", f"statefulset/{name}", "-n", ns, "--type", "merge", "-p", lowered),
                advice(f"StatefulSet/{name} has rollingUpdate.partition {partition(kind, owner)}: its pods below that "
                       f"ordinal ({', '.join(held[:fix.SHOWN_PODS])}) keep the earlier template, even deleted, until the "
                       "partition is lowered; set it back once they are replaced if it stages a rollout")]
    if paused(kind, owner):
        return [fix.kubectl("rollout", "resume", f"deployment/{name}", "-n", ns),
                advice(f"Deployment/{name} was paused (kubectl rollout pause): a paused Deployment makes no pod from "
                       "a changed template")]
    return []


def _restart(ctx: WorkloadContext, kind: str, name: str, pods: list[str]) -> list[Step]:
    """The pods of ``kind/name`` made again, their template unchanged, by the one builder (fix.restart_controller),
    told what was read of the controller: updateStrategy OnDelete, a StatefulSet's partition, a paused Deployment."""
    owner = _owner(ctx, kind, name)
    held = [pod for pod in pods if being_deleted(ctx, pod)] if kind == "Pod" else []
    if held:  # kubectl delete of a pod already Terminating waits on it (its finalizers) and changes nothing
        return [_held_advice(ctx, held[0])]
    if kind == "Pod" and (again := bare_pods_again(ctx, pods, label=False)):  # a delete loses it for good
        return again
    return fix.restart_controller(kind, ctx.namespace, name, pods, on_delete=_on_delete(ctx, kind, name),
                                  partition=partition(kind, owner), paused=paused(kind, owner))


def being_deleted(ctx: WorkloadContext, pod_name: str) -> dict[str, Any] | None:
    """The --pod pod, when it is ``pod_name`` and is being deleted (metadata.deletionTimestamp: Terminating, its
    containers stopped or stopping; kept while finalizers remain). The live pods never are."""
    existing = ctx.facts.pod
    pod = existing.pod if existing is not None and existing.existing and existing.pod else None
    meta = (pod or {}).get("metadata") or {}
    return pod if pod is not None and meta.get("deletionTimestamp") and _name(pod) == pod_name else None


def never_mutated(ctx: WorkloadContext, pod_name: str) -> bool:
    """Pod ``pod_name`` (a live one, or the --pod one) as read has no injected AZURE_* env and no projected token
    volume: the webhook never mutated it, so a copy of its own spec (fix.recreate_pod) is what the webhook then
    mutates at CREATE. A mutated pod's copy keeps the AZURE_* env it was given, which the webhook never overwrites."""
    existing = ctx.facts.pod
    read = [live.pod for live in (ctx.facts.live_pods.pods if ctx.facts.live_pods else [])]
    read += [existing.pod] if existing is not None and existing.existing and existing.pod else []
    pod = next((pod for pod in read if _name(pod) == pod_name), None)
    return pod is not None and not injected_azure_env(pod) and not token_volumes(pod)


def bare_pods_again(ctx: WorkloadContext, pods: list[str], *, label: bool) -> list[Step]:
    """Pods no controller owns, each made again from its own spec (labelled first when ``label``), when the webhook
    never mutated any of them (:func:`never_mutated`); [] otherwise, or for no pods."""
    if not pods or not all(never_mutated(ctx, pod) for pod in pods):
        return []
    return [step for pod in pods[:fix.SHOWN_PODS]
            for step in ([fix.label_pod(ctx.namespace, pod, USE_LABEL, "true")] if label else [])
            + [fix.recreate_pod(ctx.namespace, pod)]]


def _held_advice(ctx: WorkloadContext, pod_name: str) -> Step:
    pod = being_deleted(ctx, pod_name) or {}
    finalizers = [str(f) for f in (pod.get("metadata") or {}).get("finalizers") or []]
    held = (f", held by finalizers {', '.join(finalizers)} until what set them removes them" if finalizers else "")
    return advice(f"pod {pod_name} is already being deleted (Terminating{held}): create the pod again from its "
                  f'manifest, with the label {USE_LABEL}: "true" in its metadata.labels, under another name or once '
                  "it is gone: the webhook acts on pod CREATE only")


def label_repair(ctx: WorkloadContext) -> list[Step]:
    """The use label put where the given pod (--pod) comes from: its controller's pod template (a Deployment's,
    a StatefulSet's, a DaemonSet's patched; a Job's recreated), or a bare pod's manifest."""
    pod = ctx.pod or {}
    kind, name = controller_of(pod)
    return _repair(ctx, "POD_NOT_LABELLED", kind, name, [_name(pod) or (ctx.facts.pod.name if ctx.facts.pod else "")])


def restart_workload(ctx: WorkloadContext, carrying: str | None = None) -> list[Step]:
    """Restart, by name, what runs under the workload's ServiceAccount, so that its pods are created again for
    the webhook (which acts on pod CREATE only): ``kubectl rollout restart`` of each Deployment, StatefulSet or
    DaemonSet that owns one of its live pods, ``kubectl delete pod`` of a pod no such controller owns (a pod no
    controller at all owns, never mutated, is made again from its own spec: :func:`never_mutated`). With no
    live pod there is nothing to restart (a note says so). With ``--pod`` the live pods are not listed: the given
    pod's own controller (its ownerReferences) is restarted. When neither is known (the list was refused), the
    command with a ``<deployment>`` for a person to fill in. ``carrying``: the client id the fix annotates; pods
    whose injected AZURE_CLIENT_ID is already that one are left running (a bare pod deleted would not come back)."""
    facts = ctx.facts.live_pods
    owners: dict[tuple[str, str], list[dict[str, Any]]] = {}
    existing = ctx.facts.pod
    if facts is None and existing is not None and existing.existing and existing.pod:
        owners[controller_of(existing.pod)] = [existing.pod]
    elif facts is None or facts.error is not None:
        return [fix.restart_pods(ctx.namespace)]
    elif not facts.pods:
        return [advice(f"no pod runs under {ctx.namespace}/{ctx.service_account} now: the pods created from now on "
                       "get the change")]
    else:
        for live in facts.pods:
            owners.setdefault((live.owner_kind, live.owner_name), []).append(live.pod)
    steps: list[Step] = []
    kept: list[str] = []
    for (kind, name), pods in owners.items():
        if carrying and all(_carries(pod, carrying) for pod in pods):
            kept.append(f"{kind}/{name}")
            continue
        names = [_name(pod) or (existing.name if existing else "") for pod in pods]
        steps += _restart(ctx, kind, name, names)
    if kept:
        steps.append(advice(f"{', '.join(kept)}: the running pods already carry AZURE_CLIENT_ID={carrying}, no "
                            "restart needed"))
    return steps


def _carries(pod: dict[str, Any], client_id: str) -> bool:
    """Every container the webhook mutated carries ``client_id`` as AZURE_CLIENT_ID (and one was mutated)."""
    mutated = [env_map(c) for c in containers(pod) if any(env_map(c).get(var) for var in INJECTED_ENV)]
    return bool(mutated) and all((env.get("AZURE_CLIENT_ID") or "").lower() == client_id.lower() for env in mutated)


def _cronjob_of(ctx: WorkloadContext, job: str) -> str | None:
    """The name of Job ``job``'s CronJob, as read with the pods (live, or the --pod one)."""
    existing = ctx.facts.pod
    found = [live.cronjob for live in (ctx.facts.live_pods.pods if ctx.facts.live_pods else [])
             if (live.owner_kind, live.owner_name) == ("Job", job)]
    if existing is not None and existing.existing and existing.pod and controller_of(existing.pod) == ("Job", job):
        found.append(existing.cronjob)
    name = next((str((c.get("metadata") or {}).get("name") or "") for c in found if c), "")
    return name or None


def _cronjob_labelled(ctx: WorkloadContext, job: str) -> bool:
    """Job ``job``'s CronJob, as read with the pods (live, or the --pod one), carries the use label on its
    jobTemplate's pod template."""
    existing = ctx.facts.pod
    found = [live.cronjob for live in (ctx.facts.live_pods.pods if ctx.facts.live_pods else [])
             if (live.owner_kind, live.owner_name) == ("Job", job)]
    if existing is not None and existing.existing and existing.pod and controller_of(existing.pod) == ("Job", job):
        found.append(existing.cronjob)
    return any(cronjob_template_labelled(c) for c in found if c)


def _name(pod: dict[str, Any]) -> str:
    return str((pod.get("metadata") or {}).get("name") or "")

