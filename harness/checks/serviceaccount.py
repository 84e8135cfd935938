"""ServiceAccount checks: it exists and carries a well-formed client-id annotation matching the expected
one."""

from __future__ import annotations

import difflib
import re
from typing import Any

from harness import values
from harness.checks import remediation as fix
from harness.checks.admission import namespace_terminating_fixes
from harness.checks.common import kube_call_failed
from harness.checks.context import WorkloadContext
from harness.checks.live_pods import restart_workload
from harness.checks.model import ERROR, WARNING, Finding, Outcome, failed, passed, warned
from harness.checks.named_identities import NamedChoice, choose, identity_words, several_steps, several_words
from harness.checks.podspec import containers, controller_of, env_map
from harness.commands import Command, Step, advice
from harness.names import (
    CLIENT_ID_ANNOTATION,
    EXPIRATION_ANNOTATION,
    SKIP_CONTAINERS_ANNOTATION,
    TENANT_ID_ANNOTATION,
    USE_LABEL,
)

# A Deployment's pod is named NAME-HASH-SUFFIX: the ReplicaSet's pod-template-hash (a uint32 safe-encoded, up to 10
# characters) and the 5 random characters of generateName, both from k8s.io/apimachinery/pkg/util/rand's alphabet,
# which has no vowels (nor 0, 1, 3): a ServiceAccount's name, made of words, rarely ends so.
_RAND = "[bcdfghjklmnpqrstvwxz2456789]"
_DEPLOYMENT_POD_RE = re.compile(rf"(?P<deployment>[a-z0-9][a-z0-9.-]*?)-{_RAND}{{6,10}}-{_RAND}{{5}}")

# Near misses people write instead of the exact annotation key (issue #1026 and friends).
_TYPOS = (
    "azure.workload.identity/client_id",
    "azure.workload.identity/clientid",
    "azure.workload.identity/clientId",
    "azure.workload.identity/client-ID",
    "azure.workload.identity/client",
)


def sa_exists(ctx: WorkloadContext) -> Outcome:
    sa = ctx.facts.sa
    where = f"{ctx.namespace}/{ctx.service_account}"
    if sa.error is not None:
        return kube_call_failed(
            sa.error,
            "serviceaccount",
            f"read ServiceAccount {where}",
            fix.can_i("get", "serviceaccounts", ctx.namespace),
            ctx.cluster,
            ctx.azure,
        )
    if sa.found:
        return passed(f"ServiceAccount {where} exists", {"annotations": sa.annotations, "labels": sa.labels})
    if sa.namespace_deleting is not None:
        return _namespace_deleting(ctx, sa.namespace_deleting)
    if sa.namespace_found is False:
        return failed(
            f"namespace {ctx.namespace} does not exist",
            {"namespace": ctx.namespace},
            Finding(
                "NAMESPACE_NOT_FOUND",
                ERROR,
                "serviceaccount",
                f"namespace {ctx.namespace} not found{_meant(sa.near_names)}",
                {"namespace": ctx.namespace, "near_names": sa.near_names},
                [
                    *_typo_steps(ctx, sa.near_names),
                    fix.kubectl("create", "namespace", fix.namespace_or(ctx.namespace)),
                    *_create_sa(ctx),
                ],
            ),
        )
    meant, steps, also = _meant(sa.near_names), _typo_steps(ctx, sa.near_names), {}
    pod_of = _DEPLOYMENT_POD_RE.fullmatch(ctx.service_account)
    if pod_of is not None and not sa.near_names and not (ctx.facts.pod and ctx.facts.pod.existing):
        # --workload given a pod's name, copied from kubectl get pods: creating a ServiceAccount of that name is
        # not what the person meant
        also = {"pod_shaped": True}
        meant = (f"; {where} looks like a pod of Deployment {pod_of['deployment']} (NAME-HASH-SUFFIX): --pod {where} "
                 "checks that pod, then its ServiceAccount")
        steps = [advice(f"to check pod {where}: --pod {where}; the ServiceAccount it runs as, for --workload:"),
                 fix.kubectl("get", "pod", "-n", fix.namespace_or(ctx.namespace),
                             fix.object_or(ctx.service_account, "<pod>"), "-o", "jsonpath={.spec.serviceAccountName}"),
                 advice(f"if ServiceAccount {where} is to be made:")]
    if sa.controller_runs_as is not None:  # --workload given a Deployment's (StatefulSet's, Job's ...) name
        kind = sa.controller_kind or "controller"
        also = {"controller_kind": kind, "controller_runs_as": sa.controller_runs_as}
        runs_as = f"{ctx.namespace}/{sa.controller_runs_as}"
        meant = (f"; {where} is a {kind}, its pods run as ServiceAccount {sa.controller_runs_as}: "
                 f"--workload {runs_as}")
        steps = [advice(f"verify {kind} {where} as its ServiceAccount: --workload {runs_as} (or "
                        f"service_account: {sa.controller_runs_as} in harness.yaml's entry); if ServiceAccount "
                        f"{where} is to be made:")]
    if sa.pod_named is not None:  # --workload given a pod's name (a StatefulSet's web-0, a Job's migrate-x7k2p)
        also, meant, steps = _pod_named(ctx, sa.pod_named)
    elif sa.pod_shaped_of:  # a pod's name, of a pod replaced since: the controllers its shape fits
        also, meant, steps = _pod_shaped(ctx, sa.pod_shaped_of)
    return failed(
        f"ServiceAccount {where} does not exist{meant}",
        {"namespace_found": sa.namespace_found, "near_names": sa.near_names, **also},
        Finding(
            "SA_NOT_FOUND",
            ERROR,
            "serviceaccount",
            f"ServiceAccount {where} not found{meant}",
            {"namespace": ctx.namespace, "service_account": ctx.service_account, "near_names": sa.near_names,
             **also},
            [*steps, *_create_sa(ctx)],
        ),
    )


def _pod_named(ctx: WorkloadContext, pod: dict[str, str]) -> tuple[dict[str, Any], str, list[Step]]:
    """--workload NS/NAME where NAME is a pod, read from the API server: the controller it was resolved to and the
    ServiceAccount to verify, what ``also``, ``meant`` and ``steps`` of SA_NOT_FOUND become."""
    where, runs_as = f"{ctx.namespace}/{ctx.service_account}", f"{ctx.namespace}/{pod['service_account']}"
    made_by = f"{pod['kind']} {pod['name']}" if pod["kind"] != "Pod" else "no controller"
    also = {"pod_of_kind": pod["kind"], "pod_of_name": pod["name"], "pod_runs_as": pod["service_account"]}
    meant = (f"; {where} is a pod (made by {made_by}) that runs as ServiceAccount {pod['service_account']}: "
             f"--workload {runs_as} verifies its ServiceAccount, --pod {where} that pod")
    steps = [advice(f"verify the ServiceAccount of pod {where} ({made_by}): --workload {runs_as} (or "
                    f"service_account: {pod['service_account']} in harness.yaml's entry), or the pod itself: --pod "
                    f"{where}; if ServiceAccount {where} is to be made:")]
    return also, meant, steps


def _made_by(controller: dict[str, str]) -> str:
    made = f"{controller['kind']} {controller['name']}"
    return f"{made} of CronJob {controller['cronjob']}" if controller.get("cronjob") else made


def _pod_shaped(ctx: WorkloadContext, shaped: list[dict[str, str]]) -> tuple[dict[str, Any], str, list[Step]]:
    """--workload NS/NAME where NAME is no ServiceAccount, controller nor pod, but has the shape of a pod of the
    existing controllers ``shaped`` (a pod replaced since): one names its ServiceAccount to verify; several are
    listed in one line, the person picks."""
    where = f"{ctx.namespace}/{ctx.service_account}"
    also: dict[str, Any] = {"pod_shaped_of": [dict(c) for c in shaped]}
    if len(shaped) == 1:
        (one,) = shaped
        runs_as = f"{ctx.namespace}/{one['service_account']}"
        also |= {"pod_of_kind": one["kind"], "pod_of_name": one["name"], "pod_runs_as": one["service_account"]}
        meant = (f"; no pod {where} is there now, but its name has the shape of a pod of {_made_by(one)} "
                 f"({one['shape']}; one replaced since?), whose pods run as ServiceAccount {one['service_account']}: "
                 f"--workload {runs_as}")
        steps: list[Step] = [advice(f"verify the ServiceAccount of {_made_by(one)}'s pods: --workload {runs_as} (or "
                                    f"service_account: {one['service_account']} in harness.yaml's entry); if "
                                    f"ServiceAccount {where} is to be made:")]
        return also, meant, steps
    listed = ", ".join(f"{_made_by(c)} ({c['shape']}, runs as {c['service_account']})" for c in shaped)
    meant = (f"; no pod {where} is there now, and its name has the shape of a pod of several controllers here, "
             f"which one is not known: {listed}")
    accounts = sorted({c["service_account"] for c in shaped})
    steps = [advice(f"verify the ServiceAccount of the one meant: "
                    f"{' or '.join(f'--workload {ctx.namespace}/{a}' for a in accounts)}; if ServiceAccount {where} "
                    "is to be made:")]
    return also, meant, steps


def _meant(near: list[str]) -> str:
    return f"; did you mean {' or '.join(near)}?" if near else ""


def _typo_steps(ctx: WorkloadContext, near: list[str]) -> list[Step]:
    """A name close to an existing ServiceAccount is more often a typo (in --workload or harness.yaml) than one
    to create: the existing one first; creating the name asked for stays, for a person who meant it."""
    if not near:
        return []
    return [advice(f"{' or '.join(near)} exists: if that is the workload, correct --workload (or harness.yaml's "
                   f"entry) and run again; if {ctx.namespace}/{ctx.service_account} is to be made:")]


def _namespace_deleting(ctx: WorkloadContext, deleting: dict[str, Any]) -> Outcome:
    """The ServiceAccount is gone because its namespace is being deleted (kubectl delete namespace): the namespace
    controller deleted its content and the API server refuses anything new in it (NamespaceLifecycle), so creating
    the ServiceAccount again cannot work until the namespace is gone; what still holds it is in its conditions."""
    conditions = [c for c in deleting.get("conditions") or [] if isinstance(c, dict)]
    held = "; ".join(str(c.get("message")) for c in conditions if c.get("status") == "True" and c.get("message"))
    evidence = {"namespace": ctx.namespace, "deletionTimestamp": deleting.get("since"), "remaining": held or None}
    message = (f"namespace {ctx.namespace} is being deleted (Terminating since {deleting.get('since')}): its "
               f"content, ServiceAccount {ctx.service_account} among it, is deleted and nothing new may be created "
               "in it until it is gone" + (f"; {held}" if held else ""))
    return failed(message, evidence, Finding("NAMESPACE_TERMINATING", ERROR, "serviceaccount", message, evidence,
                                             namespace_terminating_fixes(ctx.namespace, conditions)))


def _create_sa(ctx: WorkloadContext) -> list[Step]:
    return create_sa_steps(ctx)


def create_sa_steps(ctx: WorkloadContext) -> list[Step]:
    """The ServiceAccount as harness.yaml describes it: created, and annotated when harness.yaml names the client
    id (a namespace that is gone took its ServiceAccounts with it), else with the one it had when the harness read
    it (deleted during the run)."""
    steps: list[Step] = [fix.kubectl("create", "serviceaccount", "-n", fix.namespace_or(ctx.namespace),
                                     fix.object_or(ctx.service_account, "<sa>"))]
    client_id = ctx.workload.client_id or (ctx.facts.sa.annotations.get(CLIENT_ID_ANNOTATION)
                                           if ctx.facts.sa.found else None)
    injected = _injected_client_id(ctx) if not client_id else None
    if client_id:
        steps.append(fix.annotate_sa(ctx.namespace, ctx.service_account, client_id))
    elif injected:  # --pod: the pod was made while the ServiceAccount still was, and annotated
        steps.append(advice(f"with the client id the webhook gave pod {ctx.namespace}/{ctx.facts.pod.name} from it "
                            "when the pod was made:" if ctx.facts.pod else "with the client id it had:"))
        steps.append(fix.annotate_sa(ctx.namespace, ctx.service_account, injected))
    else:
        steps.append(advice(f"annotate it with the client id of the identity that trusts {ctx.subject}:"))
        steps.append(fix.annotate_sa(ctx.namespace, ctx.service_account, None))
    return steps


def _injected_client_id(ctx: WorkloadContext) -> str | None:
    """--pod: the AZURE_CLIENT_ID the webhook gave the existing pod (a GUID), which its ServiceAccount's annotation
    held when the pod was made; None for the harness's own probe pod, or none there."""
    if ctx.facts.pod is None or not ctx.facts.pod.existing:
        return None
    for item in containers(ctx.pod or {}):
        value = env_map(item).get("AZURE_CLIENT_ID")
        if value and values.is_guid(str(value)):
            return str(value)
    return None


# The webhook's other keys (upstream pkg/webhook/consts.go): each right as it is, never a misspelled client-id
# (tenant-id is within the typo distance of client-id, and its value a GUID too)
_WEBHOOK_KEYS = frozenset({
    CLIENT_ID_ANNOTATION, TENANT_ID_ANNOTATION, EXPIRATION_ANNOTATION, SKIP_CONTAINERS_ANNOTATION, USE_LABEL,
    "azure.workload.identity/inject-proxy-sidecar", "azure.workload.identity/proxy-sidecar-port",
})


def near_miss_keys(keys: list[str]) -> list[str]:
    """Keys someone meant as the client-id annotation: a known typo, the same letters in another spelling
    (``client_id``, ``clientId``, another prefix), or a key within a couple of characters of it; never one of the
    webhook's own keys."""
    wanted = _letters(CLIENT_ID_ANNOTATION)
    return [
        key for key in keys
        if key not in _WEBHOOK_KEYS and (
            key in _TYPOS
            or _letters(key) == wanted
            or (_letters(key).endswith("clientid") and "identity" in key.lower())
            or difflib.SequenceMatcher(None, key.lower(), CLIENT_ID_ANNOTATION).ratio() >= 0.85
        )
    ]


def meant_for_workload_identity(annotations: dict[str, Any], labels: dict[str, Any]) -> bool:
    """A ServiceAccount the runbook's filter (the client-id annotation or the use label) misses that someone meant
    for Workload ID: a misspelled client-id key, the client-id set as a label, or only another of the webhook's
    keys (tenant-id, the token expiration) on it."""
    keys = [*annotations, *labels]
    return bool(near_miss_keys(keys)) or any(key in _WEBHOOK_KEYS for key in keys)


def _letters(key: str) -> str:
    return re.sub(r"[^a-z0-9]", "", key.lower())


def misplaced_annotations(ctx: WorkloadContext) -> list[str]:
    """Where the client-id annotation sits instead of the ServiceAccount: its Namespace, the workload's pods, their
    Deployment or its pod template."""
    places: list[str] = []
    if CLIENT_ID_ANNOTATION in (ctx.facts.sa.namespace_annotations or {}):
        places.append(f"Namespace/{ctx.namespace}")
    for live in (ctx.facts.live_pods.pods if ctx.facts.live_pods else []):
        owner = live.owner or {}
        template = ((owner.get("spec") or {}).get("template") or {}).get("metadata") or {}
        for where, meta in ((f"{live.owner_kind}/{live.owner_name}", owner.get("metadata") or {}),
                            (f"{live.owner_kind}/{live.owner_name}'s pod template", template),
                            (f"pod {(live.pod.get('metadata') or {}).get('name')}", live.pod.get("metadata") or {})):
            if CLIENT_ID_ANNOTATION in (meta.get("annotations") or {}) and where not in places:
                places.append(where)
    return places


def _misplaced_client_id(ctx: WorkloadContext) -> str | None:
    """The client id (a GUID) a person put on the Namespace, the Deployment, its pod template or a pod instead of
    the ServiceAccount: the one to annotate when harness.yaml names none."""
    metas = [{"annotations": ctx.facts.sa.namespace_annotations or {}}]
    for live in (ctx.facts.live_pods.pods if ctx.facts.live_pods else []):
        owner = live.owner or {}
        metas += [owner.get("metadata") or {}, ((owner.get("spec") or {}).get("template") or {}).get("metadata") or {},
                  live.pod.get("metadata") or {}]
    found = {str(v).strip() for m in metas if values.is_guid(str(v := (m.get("annotations") or {}).get(
        CLIENT_ID_ANNOTATION) or "").strip())}
    return next(iter(found)) if len(found) == 1 else None


def _other_service_account(ctx: WorkloadContext, neighbours: dict[str, str]) -> list[Step]:
    """--pod on a pod whose ServiceAccount names no identity while others of its namespace do: the usual cause is
    the pod template's serviceAccountName (left out: ``default``; or another's). With one such ServiceAccount,
    the patch that moves the pod's controller to it; annotating the pod's own ServiceAccount (below it) would
    also need a federated credential for that ServiceAccount's subject."""
    pod = ctx.pod or {}
    kind, name = controller_of(pod)
    steps: list[Step] = [advice(f"pod {ctx.facts.pod.name if ctx.facts.pod else '<pod>'} runs under "
                                f"{ctx.namespace}/{ctx.service_account}, which names no identity; "
                                f"{', '.join(sorted(neighbours))} in {ctx.namespace} does: if the pod is meant to "
                                "run under it, set the pod template's serviceAccountName:")]
    if len(neighbours) == 1 and kind in ("Deployment", "StatefulSet", "DaemonSet"):
        steps.append(fix.patch_template_service_account(kind, ctx.namespace, name, next(iter(neighbours))))
    else:
        steps.append(advice(f"set spec.serviceAccountName in {kind}/{name}'s manifest to "
                            f"{' or '.join(sorted(neighbours))} and apply it again"))
    steps.append(advice(f"or, if {ctx.service_account} itself is meant to carry an identity (its federated "
                        f"credential must name {ctx.subject}):"))
    return steps


def _trusted_client_id(ctx: WorkloadContext, evidence: dict[str, Any], fix_it: list[Step]) -> list[Step]:
    """harness.yaml names no client id: the one of the identity (the inventory read) whose federated credential
    already trusts this ServiceAccount; with several, each named in a comment above the placeholder."""
    trusting = sorted(ctx.trusting(), key=lambda i: (i.name, i.client_id))
    if not trusting:
        return fix_it
    evidence["trusted_by"] = [{"kind": i.kind, "name": i.name, "client_id": i.client_id} for i in trusting]
    annotate = fix.annotate_sa(ctx.namespace, ctx.service_account, trusting[0].client_id)
    if len(trusting) == 1:
        return [annotate, *fix_it[1:]]
    named: list[Step] = [advice(f"{len(trusting)} identities have a federated credential for {ctx.subject}; "
                                "annotate the client id of the one this workload is meant to use:")]
    named += [advice(f"{_kind_word(i.kind)} {i.name}: client id {i.client_id}") for i in trusting]
    return [*named, *fix_it]


def _kind_word(kind: str) -> str:
    return "managed identity" if kind == "managed_identity" else "app registration"


def _not_annotated(
    ctx: WorkloadContext, evidence: dict[str, Any], expected: str | None, fix_it: list[Step]
) -> Outcome:
    sa = ctx.facts.sa
    where = f"{ctx.namespace}/{ctx.service_account}"
    near = near_miss_keys(list(sa.annotations) + list(sa.labels))
    elsewhere = misplaced_annotations(ctx)
    evidence["near_misses"], evidence["placed_on"] = near, elsewhere
    if CLIENT_ID_ANNOTATION in sa.labels:
        near, hint = [CLIENT_ID_ANNOTATION], "; it is set as a LABEL, it must be an ANNOTATION"
    elif near:
        hint = f"; found {', '.join(near)} instead (the key must be exactly {CLIENT_ID_ANNOTATION})"
    elif elsewhere:
        hint = f"; it is on {', '.join(elsewhere)} instead, the webhook reads it from the ServiceAccount only"
    else:
        hint = ""
    if not near and not elsewhere:
        if expected is None:
            fix_it = _trusted_client_id(ctx, evidence, fix_it)
        neighbours = sa.annotated_neighbours
        if neighbours:
            evidence["annotated_in_namespace"] = dict(sorted(neighbours.items()))
            hint = (f"; {values.in_number(len(neighbours), 'ServiceAccount')} of {ctx.namespace} that name"
                    f"{'s' if len(neighbours) == 1 else ''} an identity: {', '.join(sorted(neighbours))}"
                    " (is the pod's serviceAccountName the wrong one?)")
            fix_it = [*_other_service_account(ctx, neighbours), *fix_it]
        return failed(
            f"ServiceAccount {where} has no {CLIENT_ID_ANNOTATION} annotation{hint}",
            evidence,
            Finding("SA_NOT_ANNOTATED", ERROR, "serviceaccount",
                    f"{where} lacks the {CLIENT_ID_ANNOTATION} annotation: the webhook injects no AZURE_CLIENT_ID"
                    f"{hint}", evidence, fix_it),
        )
    meant = expected or next(
        (value for key in near if values.is_guid(value := sa.annotations.get(key) or sa.labels.get(key) or "")),
        None,
    ) or (_misplaced_client_id(ctx) if not near else None)
    repair: list[Step] = [fix.annotate_sa(ctx.namespace, ctx.service_account, meant)]
    repair += [fix.remove_sa_annotation(ctx.namespace, ctx.service_account, key) for key in near
               if key in sa.annotations]
    repair += [fix.remove_sa_label(ctx.namespace, ctx.service_account, key) for key in near if key in sa.labels]
    repair += restart_workload(ctx, meant if values.is_guid(meant) else None)
    return failed(
        f"ServiceAccount {where} has no {CLIENT_ID_ANNOTATION} annotation{hint}",
        evidence,
        Finding("SA_ANNOTATION_MISSPELLED", ERROR, "serviceaccount",
                f"{where}: the client-id annotation is misspelled or misplaced{hint}", evidence, repair),
    )


def _principal_named(ctx: WorkloadContext, value: str) -> dict[str, str] | None:
    """The identity the harness read for harness.yaml's entry when ``value`` is its principal (object) id: the
    managed identity's principalId, the application's object id or its service principal's id."""
    facts = ctx.facts.identity
    identity = facts.identity or {}
    candidates = [
        ("principal (object) id of the managed identity", ((identity.get("properties") or {}).get("principalId")),
         identity.get("id") or identity.get("name")),
        ("object id of the application", (facts.application or {}).get("id"),
         (facts.application or {}).get("displayName")),
        ("object id of the service principal", (facts.service_principal or {}).get("id"),
         (facts.service_principal or {}).get("displayName")),
    ]
    for what, object_id, name in candidates:
        if object_id and str(object_id).lower() == value.lower():
            return {"what": what, "object_id": str(object_id), "name": str(name or object_id)}
    return None


def _exchange_as(ctx: WorkloadContext, client_id: str) -> str:
    """What Entra answered the probe, which exchanged as ``client_id`` (the annotation, which the webhook
    injected): names the identity the annotation really points at. Empty when the probe did not exchange as it."""
    step = ctx.step("exchange") or {}
    exchanged = str((step.get("evidence") or {}).get("client_id") or "")
    if exchanged.lower() != client_id.lower():
        return ""
    if step.get("status") == "pass":
        return f"Entra issued the pod a token as {client_id}: another identity than the one expected"
    aadsts = str((step.get("error") or {}).get("aadsts") or "")
    if aadsts in ("AADSTS70021", "AADSTS700211", "AADSTS700212", "AADSTS700213", "AADSTS7002138", "AADSTS70025"):
        return (f"the pod exchanges as {client_id}, which has no federated credential for {ctx.subject} "
                f"(Entra: {aadsts})")
    if aadsts == "AADSTS700016":
        return f"no identity has the client id {client_id} (Entra: {aadsts})"
    return ""


def _why_not_a_guid(value: str) -> str:
    """What makes a pasted client id not one: whitespace around it or braces (``{guid}``, as .NET and the registry
    print GUIDs) are sent to Entra as they are (the webhook copies the annotation into AZURE_CLIENT_ID verbatim).
    An empty annotation injects no AZURE_CLIENT_ID (the webhook appends only variables with a value: upstream
    pkg/webhook/webhook.go, addEnvironmentVariables, len(env.Value) > 0); one of only whitespace injects that
    whitespace, which names no identity."""
    if not value:
        return "empty: the webhook injects no AZURE_CLIENT_ID, so the pod has no identity to ask a token for"
    if not value.strip():
        return "only whitespace: the webhook injects it as AZURE_CLIENT_ID as it is, and it names no identity"
    if values.is_guid(value.strip()):
        return "whitespace around it: the webhook injects the value as it is, spaces included"
    if values.is_guid(value.strip().strip("{}")):
        return "braces around it: the client id is the bare GUID"
    return "the identity's client id, not its name"


def _client_id_lookup(ctx: WorkloadContext, value: str) -> list[Command]:
    """Where the client id to annotate is read: the configured (or read) managed identity; else, for a name in
    the annotation (an identity's or an app registration's, as people paste them), the identities and apps of
    that name; else a managed identity to be named."""
    resource_id = ctx.facts.identity.resource_id or ctx.workload.identity_resource_id
    name = fix.pasted_name(value)
    if resource_id is None and name is not None:
        return fix.find_identity_by_name(name)
    return [fix.show_identity_client_id(resource_id)]


def _malformed_repair(ctx: WorkloadContext, value: str, fix_it: list[Step]) -> list[Step]:
    """Where the client id is read, then the annotation with it (``fix_it``). A GUID pasted with whitespace or
    braces around it, with harness.yaml naming no client id, is the one to annotate: nothing to look up; so is the
    client id of the one identity a pasted name names. Several of that name: each listed, the choice the person's."""
    guid = fix.pasted_guid(value)
    if ctx.workload.client_id is None and guid is not None:
        return [fix.annotate_sa(ctx.namespace, ctx.service_account, guid), *restart_workload(ctx, guid)]
    named = _named(ctx, value)
    chosen = _choice(ctx, named).chosen
    if chosen is not None:
        return [fix.annotate_sa(ctx.namespace, ctx.service_account, chosen["client_id"]),
                *restart_workload(ctx, chosen["client_id"])]
    if len(named) > 1:
        return [*several_steps(_choice(ctx, named), fix.pasted_name(value) or value, ctx.subject), *fix_it]
    return [*_client_id_lookup(ctx, value), *fix_it]


def _choice(ctx: WorkloadContext, named: list[dict[str, str]]) -> NamedChoice:
    """Of the identities of the name, the one to annotate (named_identities.choose) by what the inventory read
    trusting this ServiceAccount; trust not known without the inventory."""
    return choose(named, ctx.trusting() if ctx.inventory_identities is not None else None)


def _named(ctx: WorkloadContext, value: str) -> list[dict[str, str]]:
    """The identities the harness read under the name pasted into the annotation (none when harness.yaml names the
    client id: that one is annotated)."""
    if ctx.workload.client_id is not None or fix.pasted_name(value) is None:
        return []
    return list(ctx.facts.identity.named or [])


def _named_words(ctx: WorkloadContext, value: str) -> str:
    """What the name in the annotation stands for, as the harness read it: "" when it was not looked up."""
    named, name = _named(ctx, value), fix.pasted_name(value)
    if len(named) == 1:
        return f"; {name} is {identity_words(named[0])}"
    if len(named) > 1:
        trust = several_words(_choice(ctx, named), ctx.subject)
        return f"; {len(named)} identities are named {name}: " + "; ".join(identity_words(i) for i in named) + (
            f"; {trust}" if trust else "")
    if ctx.workload.client_id is None and name is not None and ctx.facts.identity.named == []:
        return f"; no managed identity or app registration the harness can read is named {name}"
    return ""


def sa_client_id_annotation(ctx: WorkloadContext) -> Outcome:
    sa = ctx.facts.sa
    where = f"{ctx.namespace}/{ctx.service_account}"
    value = sa.annotations.get(CLIENT_ID_ANNOTATION)
    expected = ctx.workload.client_id
    evidence = {"annotation": CLIENT_ID_ANNOTATION, "value": value, "expected": expected}
    fix_it = [fix.annotate_sa(ctx.namespace, ctx.service_account, expected),
              *restart_workload(ctx, expected if values.is_guid(expected) else None)]
    if value is None:
        return _not_annotated(ctx, evidence, expected, fix_it)
    if not values.is_guid(value):
        shown = values.printable(value, 80)
        evidence["value"] = shown
        named = _named_words(ctx, value)
        if _named(ctx, value):
            evidence["named"] = _named(ctx, value)
        return failed(
            f"{CLIENT_ID_ANNOTATION}='{shown}' is not a GUID ({_why_not_a_guid(value)}){named}",
            evidence,
            Finding(
                "SA_CLIENT_ID_MALFORMED",
                ERROR,
                "serviceaccount",
                f"{where}: the client-id annotation is not a client id (GUID){named}",
                evidence,
                _malformed_repair(ctx, value, fix_it),
            ),
        )
    if expected is not None and value.lower() != expected.lower():
        principal = _principal_named(ctx, value)
        if principal is not None:
            # the identity harness.yaml names, by its principal (object) id: a common paste from the portal
            evidence["identity"] = principal
            message = (f"{value} is the {principal['what']} {principal['name']} harness.yaml names, not a client "
                       f"id: the annotation must hold its client id {expected}")
            return failed(message, evidence,
                          Finding("SA_ANNOTATION_IS_PRINCIPAL_ID", ERROR, "serviceaccount", f"{where}: {message}",
                                  evidence, fix_it))
        answer = _exchange_as(ctx, value)
        if answer:
            evidence["exchange_as_annotated"] = answer
        owner = ctx.configured_object_id_of
        if owner is not None:
            # harness.yaml's client_id is the object id of the identity the annotation names by its client id (the
            # portal's Object ID beside the client id): annotating it would break a working workload (AADSTS700016)
            evidence["identity_client_id"], evidence["identity"] = value, owner
            what = str(owner.get("kind")).replace("_", " ")
            message = (f"{where} is annotated with client id {value}, the client id of {what} "
                       f"{owner.get('resource_id') or owner.get('name')}; harness.yaml's client_id {expected} is "
                       "its object id, not its client id")
            return failed(message, evidence, Finding(
                "SA_CLIENT_ID_MISMATCH", ERROR, "serviceaccount", message, evidence,
                [advice(f"set client_id: {value} for {where} in harness.yaml (it names {expected}, the {what}'s "
                        "object id); the annotation is right")]))
        if ctx.stale_configured_client_id is not None:
            # the annotation names the identity harness.yaml names by its resource id: re-annotating with
            # harness.yaml's client id would point the workload at an identity that is no longer there
            evidence["identity_client_id"] = value
            return failed(
                f"{CLIENT_ID_ANNOTATION}={value} but harness.yaml expects {expected}; {value} is the client id of "
                f"the identity harness.yaml names ({ctx.workload.identity_resource_id}): harness.yaml's client_id "
                "is out of date",
                evidence,
                Finding(
                    "SA_CLIENT_ID_MISMATCH",
                    ERROR,
                    "serviceaccount",
                    f"{where} is annotated with client id {value}, the client id of the identity harness.yaml names "
                    f"by identity_resource_id; harness.yaml's client_id {expected} is another (an identity deleted "
                    "and created again under its name gets a new client id)",
                    evidence,
                    [fix.config_client_id(where, expected, value)],
                ),
            )
        return failed(
            f"{CLIENT_ID_ANNOTATION}={value} but harness.yaml expects {expected}{answer and '; ' + answer}",
            evidence,
            Finding(
                "SA_CLIENT_ID_MISMATCH",
                ERROR,
                "serviceaccount",
                f"{where} is annotated with client id {value}, expected {expected}{answer and ': ' + answer}",
                evidence,
                fix_it,
            ),
        )
    tenant = sa.annotations.get(TENANT_ID_ANNOTATION)
    if tenant is not None and not tenant.strip():
        # getTenantID takes the annotation whenever the key is there, even empty, and the webhook appends only
        # non-empty variables: the pods get no AZURE_TENANT_ID, and the SDK's workload identity credential has none
        evidence["tenant_id"] = tenant
        message = (f"{TENANT_ID_ANNOTATION} is empty: the webhook takes the annotation whenever it is there, so "
                   "the pods get no AZURE_TENANT_ID (not the cluster's tenant)")
        return failed(message, evidence, Finding(
            "SA_TENANT_ID_MALFORMED", ERROR, "serviceaccount", f"{where}: {message}", evidence,
            [fix.remove_sa_annotation(ctx.namespace, ctx.service_account, TENANT_ID_ANNOTATION),
             *restart_workload(ctx)],
        ))
    if tenant is not None and not values.is_guid(tenant):
        evidence["tenant_id"] = values.printable(tenant, 80)
        return warned(
            f"{TENANT_ID_ANNOTATION}='{evidence['tenant_id']}' is not a GUID",
            evidence,
            Finding(
                "SA_TENANT_ID_MALFORMED",
                WARNING,
                "serviceaccount",
                f"{where}: tenant-id annotation is not a GUID",
                evidence,
                [fix.remove_sa_annotation(ctx.namespace, ctx.service_account, TENANT_ID_ANNOTATION),
                 *restart_workload(ctx)],
            ),
        )
    source = "matches harness.yaml" if expected else "no expectation in harness.yaml: taken as the client id"
    return passed(f"{CLIENT_ID_ANNOTATION}={value} ({source})", evidence)
