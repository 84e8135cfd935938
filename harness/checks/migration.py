"""Pod-managed identity (aad-pod-identity) leftovers, and how far each binding has moved to Workload ID.

Every leftover is a finding whose code starts with ``POD_IDENTITY_``: an error once harness.yaml says the migration
is complete (``expect.migration_complete: true``), a warning before. A resource the harness may not list (403) is
no leftover and no failure: POD_IDENTITY_UNREADABLE (a warning) names it; one the API server does not serve (404)
is simply not installed. The coverage table has one row per AzureIdentityBinding: its AzureIdentity's client id,
the ServiceAccounts annotated with it, whether the identity has a federated credential for this cluster's issuer,
and the pods labelled for Workload ID running as those ServiceAccounts. Pure functions of the facts.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from harness import values
from harness.checks import remediation as fix
from harness.checks.chain import CheckSpec, run_chain
from harness.checks.common import kube_failure_finding
from harness.checks.model import (
    ERROR,
    WARNING,
    CheckResult,
    Finding,
    Outcome,
    failed,
    passed,
    skipped,
    warned,
)
from harness.commands import Command, Step, advice
from harness.config import AzureConfig, ExpectConfig
from harness.facts import ClusterFacts, IdentityFacts, MigrationFacts, ObjectList
from harness.names import (
    POD_IDENTITY_GROUP,
    POD_IDENTITY_LABEL,
    POD_IDENTITY_PLURALS,
    POD_IDENTITY_VERSION,
    TOKEN_AUDIENCE,
    USE_LABEL,
)

LAYER = "migration"
SINGULAR = {  # resource plural -> (kind, what kubectl takes)
    "azureidentities": ("AzureIdentity", "azureidentity"),
    "azureidentitybindings": ("AzureIdentityBinding", "azureidentitybinding"),
    "azurepodidentityexceptions": ("AzurePodIdentityException", "azurepodidentityexception"),
    "azureassignedidentities": ("AzureAssignedIdentity", "azureassignedidentity"),
}
MISSING_SERVICE_ACCOUNT, MISSING_CREDENTIAL, MISSING_PODS = "service_account", "federated_credential", "labelled_pods"


@dataclass
class MigrationContext:
    facts: MigrationFacts
    cluster: ClusterFacts
    azure: AzureConfig | None
    expect: ExpectConfig = field(default_factory=ExpectConfig)

    @property
    def complete(self) -> bool:
        return self.expect.migration_complete

    @property
    def severity(self) -> str:
        return ERROR if self.complete else WARNING

    def lists(self) -> dict[str, ObjectList]:
        facts = self.facts
        return {
            "azureidentities": facts.azure_identities,
            "azureidentitybindings": facts.azure_identity_bindings,
            "azurepodidentityexceptions": facts.azure_pod_identity_exceptions,
            "azureassignedidentities": facts.azure_assigned_identities,
        }


def _finding(ctx: MigrationContext, code: str, message: str, evidence: dict[str, Any], steps: list[Step]) -> Finding:
    return Finding(code, ctx.severity, LAYER, message, evidence, steps)


def _when(complete: bool) -> str:
    return "the migration is declared complete" if complete else "to finish the migration"


def _judge(
    ctx: MigrationContext,
    found: list[ObjectList],
    leftovers: list[Finding],
    message: str,
    evidence: dict[str, Any],
    clean: str,
) -> Outcome:
    """The outcome of one leftover check: the leftovers (failed once the migration is complete, warned before),
    then any list the harness may not read (a warning naming it), then any other refusal (an error: the API
    server did not answer, or refused the credentials), else ``clean``."""
    unreadable = [(listed, listed.error) for listed in found if listed.error is not None]
    evidence = {**evidence, **({"unreadable": [_describe(u) for u, _ in unreadable]} if unreadable else {})}
    forbidden = [listed for listed, error in unreadable if error.status == 403]
    other = [(listed, error) for listed, error in unreadable if error.status != 403]
    notes = [_unreadable_finding(ctx, forbidden)] if forbidden else []
    if other:
        listed, error = other[0]
        notes.append(kube_failure_finding(error, LAYER, f"list {listed.resource}",
                                          fix.can_i("list", listed.resource.split(",")[0]), ctx.cluster, ctx.azure))
    if leftovers:
        outcome = failed if ctx.complete or other else warned
        return outcome(f"{message} ({'an error' if ctx.complete else 'a warning'}: {_when(ctx.complete)})",
                       evidence, *leftovers, *notes)
    if other:
        return failed(f"could not list {other[0][0].resource}: {other[0][1].message}", evidence, *notes)
    if forbidden:
        what = ", ".join(u.resource for u in forbidden)
        return warned(f"{clean}, as far as the harness may see: it may not list {what}", evidence, *notes)
    return passed(clean, evidence)


def _describe(listed: ObjectList) -> dict[str, Any]:
    error = listed.error
    return {"resource": listed.resource, **(asdict(error) if error else {})}


def _unreadable_finding(ctx: MigrationContext, forbidden: list[ObjectList]) -> Finding:
    """The reads manifests/harness-rbac.yaml.j2 grants (list), for the identity the harness runs as."""
    what = ", ".join(u.resource for u in forbidden)
    username = (ctx.cluster.run_by_kubernetes or {}).get("username")
    username = username if isinstance(username, str) else None
    # kubectl create clusterrole refuses a resource the server does not serve (no CRD: the kinds of a cluster
    # that never ran pod identity), but takes *.group: the group's four kinds are all harness-rbac.yaml.j2 lists
    resources = list(dict.fromkeys(
        f"*.{POD_IDENTITY_GROUP}" if r.endswith(f".{POD_IDENTITY_GROUP}") else r
        for u in forbidden for r in u.resource.split(",")))
    return Finding(
        "POD_IDENTITY_UNREADABLE",
        WARNING,
        LAYER,
        f"the harness may not list {what}: pod-managed identity leftovers there cannot be ruled out",
        {"unreadable": [_describe(u) for u in forbidden]},
        [*fix.cluster_list_rbac("wi-harness-pod-identity-reader", resources, username),
         advice("or, for the in-cluster Job: python -m harness manifests render and kubectl apply its 01-rbac.yaml "
                "(its ClusterRole wi-harness-reader grants these reads)"),
         *(_list_check(u.resource.split(",")[0], username) for u in forbidden)],
    )


def _list_check(resource: str, username: str | None) -> Step:
    """The check after the fix. kubectl auth can-i maps the resource through discovery first, and for a kind with
    no CRD (a cluster that never ran pod identity) warns "the server doesn't have a resource type" and asks about
    the whole string with no group: no, granted or not (kubectl pkg/cmd/auth/cani.go resourceFor). The list itself
    answers Forbidden while the gap is open and NotFound once it is closed, CRD or not."""
    plural, _, group = resource.partition(".")
    if group != POD_IDENTITY_GROUP or not values.is_dns_label(plural):
        return fix.can_i_advice("list", resource, None, username)
    who = f" --as {username}" if username and _USERNAME_RE.fullmatch(username) else ""
    return advice(f"then check: kubectl get --raw /apis/{group}/{POD_IDENTITY_VERSION}/{plural}{who} (NotFound "
                  "without its CRD, or a list, once the gap is closed; Forbidden while it is not)")


_USERNAME_RE = re.compile(r"[A-Za-z0-9@._:-]{1,253}")


# ---------------------------------------------------------------- ARM: the AKS add-on


def pod_identity_profile(cluster: ClusterFacts) -> dict[str, Any] | None:
    """ARM's properties.podIdentityProfile (what ``az aks pod-identity list`` shows); None when ARM was not read."""
    fetched = cluster.arm_cluster
    if fetched is None or not fetched.ok:
        return None
    profile = ((fetched.body or {}).get("properties") or {}).get("podIdentityProfile")
    return profile if isinstance(profile, dict) else {}


def _arm_identities(profile: dict[str, Any] | None) -> list[dict[str, Any]]:
    return [
        {"namespace": str(i.get("namespace") or ""), "name": str(i.get("name") or ""),
         "binding_selector": i.get("bindingSelector"),
         "client_id": (i.get("identity") or {}).get("clientId"),
         "resource_id": (i.get("identity") or {}).get("resourceId"),
         "provisioning_state": i.get("provisioningState")}
        for i in (profile or {}).get("userAssignedIdentities") or [] if isinstance(i, dict)
    ]


def _arm_exceptions(profile: dict[str, Any] | None) -> list[dict[str, Any]]:
    return [
        {"namespace": str(e.get("namespace") or ""), "name": str(e.get("name") or ""),
         "pod_labels": e.get("podLabels") or {}}
        for e in (profile or {}).get("userAssignedIdentityExceptions") or [] if isinstance(e, dict)
    ]


def addon_disabled(ctx: MigrationContext) -> Outcome:
    fetched = ctx.cluster.arm_cluster
    if fetched is None:
        return skipped("no Azure access configured (azure: in harness.yaml): ARM's podIdentityProfile was not read")
    if not fetched.ok:
        return skipped(f"ARM could not tell: {fetched.describe()} (the cluster checks name why)")
    profile = pod_identity_profile(ctx.cluster)
    identities, exceptions = _arm_identities(profile), _arm_exceptions(profile)
    enabled = bool((profile or {}).get("enabled"))
    evidence = {"enabled": enabled, "userAssignedIdentities": identities, "userAssignedIdentityExceptions": exceptions}
    if not enabled and not identities and not exceptions:
        return passed("the AKS pod identity add-on is off (podIdentityProfile.enabled is not true)", evidence)
    state = "on" if enabled else "off, yet ARM still lists pod identities"
    steps: list[Step] = [fix.aks_preview_extension()]
    steps += [fix.pod_identity_delete(ctx.azure, i["namespace"], i["name"]) for i in identities]
    steps += [fix.pod_identity_exception_delete(ctx.azure, e["namespace"], e["name"]) for e in exceptions]
    steps.append(fix.disable_pod_identity(ctx.azure))
    finding = _finding(
        ctx, "POD_IDENTITY_ADDON_ENABLED",
        f"the AKS pod identity add-on is {state}: {len(identities)} pod identities, {len(exceptions)} exceptions",
        evidence, steps,
    )
    return _judge(ctx, [], [finding], f"the AKS pod identity add-on is {state} ({len(identities)} pod identities: "
                  + ", ".join(f"{i['namespace']}/{i['name']}" for i in identities) + ")", evidence, "")


# ---------------------------------------------------------------- the cluster: CRDs, objects, NMI/MIC, pods


def _kinds_served(ctx: MigrationContext) -> tuple[list[str], bool]:
    """(the pod identity resources the API server serves, whether it answered for all four)."""
    lists = ctx.lists()
    served = [f"{plural}.{POD_IDENTITY_GROUP}" for plural, listed in lists.items()
              if listed.served and listed.error is None]
    return served, all(listed.error is None for listed in lists.values())


def crds_removed(ctx: MigrationContext) -> Outcome:
    crds = ctx.facts.crds
    names = [str(c.get("name")) for c in crds.items]
    evidence: dict[str, Any] = {"crds": names}
    found = [crds]
    if crds.error is not None and crds.error.status == 403:
        served, known = _kinds_served(ctx)
        if served:  # the kinds are served: their CRDs exist, whoever may list them
            names, found = served, []
            evidence = {"crds": names, "inferred_from": "the API server serves these kinds",
                        "unreadable": [_describe(crds)]}
        elif known:
            return passed("no aadpodidentity.k8s.io CRD: the API server serves none of its kinds (the CRD list "
                          "itself was refused)", {**evidence, "unreadable": [_describe(crds)]})
    leftovers = []
    if names:
        leftovers.append(_finding(
            ctx, "POD_IDENTITY_CRDS_PRESENT",
            f"the aad-pod-identity CRDs are still installed: {', '.join(names)}", evidence,
            [advice("after the objects, NMI and MIC are gone (helm uninstall leaves a chart's CRDs in place):"),
             fix.delete_crds(names)],
        ))
    return _judge(ctx, found, leftovers, f"{len(names)} aad-pod-identity CRDs are still installed", evidence,
                  "no aadpodidentity.k8s.io CRD is installed")


def _arm_owned(ctx: MigrationContext) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(namespace, name) of the pod identities and exceptions the AKS add-on manages (ARM lists them)."""
    profile = pod_identity_profile(ctx.cluster)
    return ({(i["namespace"], i["name"]) for i in _arm_identities(profile)},
            {(e["namespace"], e["name"]) for e in _arm_exceptions(profile)})


def objects_removed(ctx: MigrationContext) -> Outcome:
    arm_identities, arm_exceptions = _arm_owned(ctx)
    present: dict[str, list[str]] = {}
    by_namespace: dict[tuple[str, str], list[str]] = defaultdict(list)
    through_arm: list[Step] = []
    for plural, listed in ctx.lists().items():
        kind, resource = SINGULAR[plural]
        for item in listed.items:
            namespace, name = item["namespace"], item["name"]
            present.setdefault(kind, []).append(f"{namespace}/{name}")
            owner = name if plural == "azureidentities" else str(item.get("spec", {}).get("azureIdentity") or "")
            if plural in ("azureidentities", "azureidentitybindings") and (namespace, owner) in arm_identities:
                step = fix.pod_identity_delete(ctx.azure, namespace, owner)
            elif plural == "azurepodidentityexceptions" and (namespace, name) in arm_exceptions:
                step = fix.pod_identity_exception_delete(ctx.azure, namespace, name)
            else:
                by_namespace[(resource, namespace)].append(name)
                continue
            if step not in through_arm:
                through_arm.append(step)
    evidence = {"objects": present, "counts": {kind: len(names) for kind, names in present.items()}}
    leftovers = []
    if present:
        steps: list[Step] = [advice("first move every workload to Workload ID (the coverage table): a deleted "
                                    "binding stops its pods' tokens")]
        intercepting = _nmi_intercepting(ctx)
        exceptions: list[Step] = []
        arm_exceptions = [s for s in through_arm if _is_exception_delete(s)]
        through_arm = [s for s in through_arm if s not in arm_exceptions]
        if intercepting:  # an exception is what lets its pods reach IMDS past NMI: it goes after NMI
            exceptions, arm_exceptions = arm_exceptions, []
        if through_arm or arm_exceptions:
            steps += [fix.aks_preview_extension(), *through_arm, *arm_exceptions]
        for (resource, namespace), names in sorted(by_namespace.items(), key=lambda kv: _order(kv[0])):
            if resource == "azureassignedidentity":
                steps += _finalizer_steps(ctx, namespace, names)
            step = fix.delete_objects(resource, namespace, names)
            (exceptions if intercepting and resource == "azurepodidentityexception" else steps).append(step)
        steps += _password_steps(ctx)
        if exceptions:
            labels = sorted({f"{k}={v}" for e in ctx.facts.azure_pod_identity_exceptions.items
                             for k, v in ((e.get("spec") or {}).get("podLabels") or {}).items()})
            shown = ", ".join(labels[:6]) + (", ..." if len(labels) > 6 else "")
            steps.append(advice("the AzurePodIdentityExceptions only once NMI is gone (components_removed): while "
                                "NMI intercepts IMDS, an exception is what passes the IMDS token requests of the pods "
                                f"it names ({shown or 'its podLabels'}: AKS add-ons, agents) through; deleted "
                                "first, NMI refuses those requests, as it does for any pod with no identity"))
            if any(_is_exception_delete(s) for s in exceptions) and fix.aks_preview_extension() not in steps:
                steps.append(fix.aks_preview_extension())
            steps += exceptions
        summary = ", ".join(f"{len(names)} {kind}" for kind, names in present.items())
        passwords = sum(1 for i in ctx.facts.azure_identities.items if (i.get("spec") or {}).get("clientPassword"))
        summary += f" (and the {values.counted(passwords, 'Secret')} their clientPassword names)" if passwords else ""
        leftovers.append(_finding(ctx, "POD_IDENTITY_OBJECTS_PRESENT", f"aad-pod-identity objects remain: {summary}",
                                  evidence, steps))
    found = [listed for listed in ctx.lists().values() if listed.served]
    total = sum(len(names) for names in present.values())
    return _judge(ctx, found, leftovers, f"{total} aad-pod-identity objects remain", evidence,
                  "no AzureIdentity, AzureIdentityBinding, AzurePodIdentityException or AzureAssignedIdentity")


def _nmi_intercepting(ctx: MigrationContext) -> bool:
    """Whether NMI may still be intercepting IMDS: an NMI DaemonSet or Deployment that schedules pods, or the
    components could not be listed. A pod an AzurePodIdentityException selects is answered by NMI straight from
    IMDS (pkg/nmi/server/server.go: IsPodExcepted, then getTokenForExceptedPod); without the exception, NMI looks
    for the pod's AzureAssignedIdentity and, finding none, answers with an error. Once NMI is gone the exceptions
    select nothing that matters."""
    listed = ctx.facts.components
    if listed.error is not None:
        return True
    return any(c.get("component") == "nmi" and (c.get("kind") != "DaemonSet" or c.get("desired"))
               for c in listed.items)


def _is_exception_delete(step: Step) -> bool:
    """``az aks pod-identity exception delete ...``"""
    return isinstance(step, Command) and step.argv[1:5] == ("aks", "pod-identity", "exception", "delete")


def _password_steps(ctx: MigrationContext) -> list[Step]:
    """A service principal AzureIdentity (type 1, or 2 with a certificate) names the Secret holding its app's client
    secret (clientPassword: NMI reads its first value, or certificate and password, pkg/nmi/standard.go); deleting the AzureIdentity leaves the Secret, and the app keeps
    the password. Workload ID needs neither. The harness reads no Secrets: the delete tolerates one already gone."""
    found = [(str((i["spec"].get("clientPassword") or {}).get("namespace") or i["namespace"]),
              str(i["spec"]["clientPassword"]["name"]), _text(i["spec"].get("clientID")))
             for i in ctx.facts.azure_identities.items if (i.get("spec") or {}).get("clientPassword")]
    if not found:
        return []
    clients = sorted({str(client) for _, _, client in found})
    apps = f"{values.in_number(len(clients), 'app')} {', '.join(clients)}"
    return [advice(f"clientPassword Secrets hold the client secret (or certificate) of {apps}, which "
                   "Workload ID does not use: delete them, and that credential on the app (az ad app credential "
                   "list, then az ad app credential delete --id APP_ID --key-id KEY_ID)"),
            *(fix.delete_secret(ns, name) for ns, name, _ in found)]


ASSIGNED_FINALIZER = "azureassignedidentity.finalizers.aadpodidentity.k8s.io"  # pkg/crd/crd.go


def _finalizer_steps(ctx: MigrationContext, namespace: str, names: list[str]) -> list[Step]:
    """AzureAssignedIdentities carry MIC's finalizer (aad-pod-identity 1.6.1 and later); MIC removes it once the
    identity is off the node. With no MIC left to do so, kubectl delete waits for ever (the Troubleshooting page:
    set the finalizers to null first)."""
    if ctx.facts.components.error is not None or any(
            c.get("component") == "mic" for c in ctx.facts.components.items):
        return []
    held = [item["name"] for item in ctx.facts.azure_assigned_identities.items
            if item["namespace"] == namespace and item["name"] in names
            and ASSIGNED_FINALIZER in (item.get("finalizers") or [])]
    if not held:
        return []
    return [advice("no MIC is left to remove the AzureAssignedIdentities' finalizer, so a delete would wait for "
                   "ever: drop it first (the identity may still be on the node's VMSS: az vmss identity show)"),
            *(fix.remove_finalizers("azureassignedidentity", namespace, name) for name in held)]


def _order(key: tuple[str, str]) -> tuple[int, str]:
    """Bindings before identities (a binding names its identity), exceptions, then assigned identities."""
    rank = ["azureidentitybinding", "azureidentity", "azurepodidentityexception", "azureassignedidentity"]
    return rank.index(key[0]) if key[0] in rank else len(rank), key[1]


def _release(component: dict[str, Any]) -> str | None:
    annotations, labels = component.get("annotations") or {}, component.get("labels") or {}
    if annotations.get("meta.helm.sh/release-name"):
        return str(annotations["meta.helm.sh/release-name"])
    if labels.get("app.kubernetes.io/managed-by") == "Helm" and labels.get("app.kubernetes.io/instance"):
        return str(labels["app.kubernetes.io/instance"])
    return None


def components_removed(ctx: MigrationContext) -> Outcome:
    listed = ctx.facts.components
    leftovers = []
    evidence: dict[str, Any] = {"components": [
        {k: c.get(k) for k in ("kind", "namespace", "name", "component", "desired", "ready", "images")}
        | {"release": _release(c)} for c in listed.items]}
    for component, code, what in (("nmi", "POD_IDENTITY_NMI_INSTALLED", "NMI (intercepts IMDS on every node)"),
                                  ("mic", "POD_IDENTITY_MIC_INSTALLED", "MIC (assigns identities to nodes)")):
        found = [c for c in listed.items if c.get("component") == component]
        if not found:
            continue
        steps: list[Step] = []
        for item in found:
            release = _release(item)
            if release:
                step = fix.helm_uninstall(release, item["namespace"])
            elif (item.get("labels") or {}).get("kubernetes.azure.com/managedby") == "aks":  # unverified label
                step = fix.disable_pod_identity(ctx.azure)
                # az 2.91 without aks-preview: "ERROR: unrecognized arguments: --disable-pod-identity" (run by hand)
                if fix.aks_preview_extension() not in steps:
                    steps.append(fix.aks_preview_extension())
            else:
                step = fix.delete_objects(str(item["kind"]).lower(), item["namespace"], [item["name"]])
            if step not in steps:
                steps.append(step)
        where = ", ".join(f"{c['kind']} {c['namespace']}/{c['name']} ({c['ready']}/{c['desired']} ready)"
                          for c in found)
        gone = (component == "nmi" and not ctx.facts.azure_pod_identity_exceptions.served
                and ctx.facts.azure_pod_identity_exceptions.error is None
                and not ctx.facts.azure_identity_bindings.served and ctx.facts.azure_identity_bindings.error is None)
        # NMI answers a pod from its AzurePodIdentityExceptions and AzureAssignedIdentities (pkg/nmi/server/server.go):
        # with the CRDs deleted there are none, so it can give no intercepted pod a token, AKS add-ons included
        where += ("; its CRDs are deleted, so it finds no exception and no assigned identity for any pod: every IMDS "
                  "token request it intercepts but MIC's fails, the AKS add-ons' too, until it is uninstalled") if gone else ""
        leftovers.append(_finding(ctx, code, f"aad-pod-identity's {what} is still deployed: {where}",
                                  {"components": [e for e in evidence["components"] if e["component"] == component]},
                                  steps))
    names = ", ".join(f"{c['namespace']}/{c['name']}" for c in listed.items)
    outcome = _judge(ctx, [listed], leftovers, f"aad-pod-identity's NMI/MIC still run: {names}", evidence,
                     "no aad-pod-identity NMI DaemonSet or MIC Deployment")
    early = _removed_early(ctx)
    if early is None:
        return outcome
    return failed(early.message, {**evidence, "depending_pods": early.evidence["pods"]}, early, *outcome.findings)


def _removed_early(ctx: MigrationContext) -> Finding | None:
    """NMI gone while pods still depend on pod identity: pods labelled aadpodidbinding with the selector of an
    AzureIdentityBinding, to which the webhook has not given a Workload ID token. NMI is what answers their IMDS
    token requests (aad-pod-identity docs/concepts/nmi: IMDS traffic on port 80 is redirected to NMI, which finds
    the pod's AzureAssignedIdentity); without it they reach the node's IMDS, which knows no binding: any identity
    assigned to the node, or none (GHSA-p82q-rxpm-hjpc: a request that bypasses NMI "would be sent to IMDS allowing
    a pod in the cluster to access identities that it shouldn't have access to"). An error whether or not the
    migration is declared complete: those workloads have lost the identity they ran with, and none replaces it.
    MIC gone alone is not judged: the pods it already assigned keep their identity."""
    listed, pods = ctx.facts.components, ctx.facts.legacy_pods
    if listed.error is not None or pods.error is not None or ctx.facts.azure_identity_bindings.error is not None:
        return None
    nmi = [item for item in listed.items if item.get("component") == "nmi"]
    # a DaemonSet that schedules no pod (desiredNumberScheduled 0: a nodeSelector no node matches, the usual way
    # to "scale it to 0") runs no NMI: an NMI pod that stops deletes its iptables chain (pkg/nmi/server/server.go
    # handleTermination: iptables.DeleteCustomChain on SIGTERM), so IMDS requests reach the node's IMDS again
    idle = [item for item in nmi if item.get("kind") == "DaemonSet" and not item.get("desired")]
    if len(idle) < len(nmi):
        return _unassigned(ctx, nmi)
    depending = _bound_not_moved(ctx, pods.items)
    if not depending:
        return None
    refs = [f"{p['namespace']}/{p['name']}" for p in depending]
    steps: list[Step] = [advice("move these workloads to Workload ID now (or put aad-pod-identity's NMI back until "
                                "they are moved):"), *_depending_steps(ctx, depending)]
    why = ("" if not idle else " (" + ", ".join(f"DaemonSet {c['namespace']}/{c['name']}" for c in idle)
           + " schedules no pod: desiredNumberScheduled 0, its nodeSelector or node affinity matches no node)")
    return Finding(
        "POD_IDENTITY_REMOVED_EARLY", ERROR, LAYER,
        f"aad-pod-identity's NMI is not running{why}, yet {len(refs)} pods still depend on pod identity with no Workload ID "
        f"token: {', '.join(refs)}: their IMDS token requests reach the node's IMDS, which knows no binding",
        {"pods": refs}, steps)


def _unbound(ctx: MigrationContext) -> list[dict[str, Any]]:
    """Pods labelled aadpodidbinding whose value is no AzureIdentityBinding's selector, to which the webhook gave no
    Workload ID token: they get no token at all. MIC matches the label to a selector exactly (pkg/mic/mic.go
    createDesiredAssignedIdentityList: ``allBinding.Spec.Selector == crdPodLabelVal``), and NMI answers a pod MIC
    assigned nothing with an error. Their binding deleted (or its selector edited) before they moved, or a label
    that never matched; an AzureIdentity of their namespace that no binding names is the likely identity."""
    facts = ctx.facts
    if facts.azure_identity_bindings.error is not None or facts.legacy_pods.error is not None:
        return []
    bindings = facts.azure_identity_bindings.items
    selectors = {str((b.get("spec") or {}).get("selector")) for b in bindings}
    named = {(b["namespace"], str((b.get("spec") or {}).get("azureIdentity") or "")) for b in bindings}
    issuer = ctx.cluster.issuer_url or "<issuer>"
    out = []
    for p in facts.legacy_pods.items:
        labels = p.get("labels") or {}
        value = str(labels.get(POD_IDENTITY_LABEL))
        if value in selectors or (labels.get(USE_LABEL) == "true"
                                  and TOKEN_AUDIENCE in (p.get("token_audiences") or [])):
            continue
        ref, namespace, account = f"{p['namespace']}/{p['name']}", p["namespace"], str(p.get("service_account"))
        if not facts.azure_identity_bindings.served:
            out.append(_crds_gone(ctx, p, value))
            continue
        near = sorted(f"{b['namespace']}/{b['name']}" for b in bindings
                      if str((b.get("spec") or {}).get("selector")).strip().lower() == value.strip().lower())
        why = (f"{ref}'s {POD_IDENTITY_LABEL}={value!r} matches no AzureIdentityBinding's selector"
               + (f" (it differs from {', '.join(near)}'s only in case or spaces: MIC matches exactly)" if near else "")
               + " and it has no Workload ID token: it gets no token at all")
        client_ids = {str(sa.get("client_id")).lower() for sa in facts.service_accounts.items
                      if (sa["namespace"], sa["name"]) == (namespace, account)}
        by_identity = sorted(f"{b['namespace']}/{b['name']} (selector {str((b.get('spec') or {}).get('selector'))!r})"
                             for b in bindings for i in facts.azure_identities.items
                             if (i["namespace"], i["name"]) == (b["namespace"], str((b.get("spec") or {}).get(
                                 "azureIdentity") or ""))
                             and str((i.get("spec") or {}).get("clientID")).lower() in client_ids)
        if by_identity and not near:
            why += (f"; its ServiceAccount {namespace}/{account} names the identity of {', '.join(by_identity)}: that "
                    "selector, or this label, edited?")
        orphans = [i for i in facts.azure_identities.items
                   if i["namespace"] == namespace and (namespace, i["name"]) not in named]
        steps: list[Step] = []
        if len(orphans) == 1 and facts.azure_identities.error is None:
            spec = orphans[0].get("spec") or {}
            client_id = _text(spec.get("clientID"))
            why += (f"; AzureIdentity {namespace}/{orphans[0]['name']} (client id {client_id}) is named by no "
                    "binding: its binding deleted before the workload moved?")
            steps.append(advice(f"{ref} has no identity now; if {namespace}/{orphans[0]['name']} was its identity, "
                                "move it to Workload ID with it:"))
            if not any((sa["namespace"], sa["name"]) == (namespace, account)
                       and str(sa.get("client_id")).lower() == str(client_id).lower()
                       for sa in facts.service_accounts.items):
                steps.append(fix.annotate_sa(namespace, account, client_id))
            subject = f"system:serviceaccount:{namespace}:{account}"
            credentials = _credentials(facts.identities.get(str(client_id).lower()))
            if not any(c.get("issuer") == ctx.cluster.issuer_url and c.get("subject") == subject
                       for c in credentials or []):
                steps.append(fix.app_federated_credential("create", client_id, fix.fic_name(namespace, account),
                                                          issuer, subject) if spec.get("type") == 1 else
                             fix.federated_credential("create", _text(spec.get("resourceID")),
                                                      fix.fic_name(namespace, account), issuer, subject))
            kind, name = str(p.get("owner_kind")), str(p.get("owner_name"))
            if kind == "Pod":
                steps.append(advice(f"recreate pod {ref} labelled {USE_LABEL}: \"true\""))
            else:
                steps += _use_label_steps(kind, namespace, name, restart=True)
        out.append({"pod": ref, "why": why, "steps": steps})
    return out


def _crds_gone(ctx: MigrationContext, p: dict[str, Any], value: str) -> dict[str, Any]:
    """A pod labelled aadpodidbinding, with no Workload ID token, in a cluster that no longer serves the
    AzureIdentityBinding kind: its CRDs were deleted (kubectl delete crd, or the whole chart's manifests), and every
    AzureIdentity and binding went with them, so no binding can match it and its identity's client id is nowhere in
    the cluster. "Drop the label" alone repairs nothing: the workload has to move to Workload ID, with the client id
    the AKS add-on still lists for its selector (ARM podIdentityProfile) or the one its manifests named."""
    ref, namespace, account = f"{p['namespace']}/{p['name']}", p["namespace"], str(p.get("service_account"))
    nmi = any(c.get("component") == "nmi" for c in ctx.facts.components.items)
    why = (f"{ref} is labelled {POD_IDENTITY_LABEL}={value!r} and has no Workload ID token, but the "
           "aadpodidentity.k8s.io CRDs are deleted, every AzureIdentity and AzureIdentityBinding with them: no binding "
           "gives it an identity now" + (" (NMI still answers its IMDS token requests, with an error)" if nmi else ""))
    kind, name = str(p.get("owner_kind")), str(p.get("owner_name"))
    what = f"pod {ref}" if kind == "Pod" else f"{kind} {namespace}/{name}"
    found = [i for i in _arm_identities(pod_identity_profile(ctx.cluster))
             if i["namespace"] == namespace and str(i["binding_selector"]) == value and values.is_guid(
                 str(i["client_id"] or ""))]
    steps: list[Step] = []
    if len(found) == 1:
        client_id, resource_id = str(found[0]["client_id"]), _text(found[0]["resource_id"])
        why += (f"; the AKS add-on still lists pod identity {namespace}/{found[0]['name']} for this selector "
                f"(client id {client_id})")
        subject = f"system:serviceaccount:{namespace}:{account}"
        steps += [advice(f"move {what} to Workload ID with the identity the add-on lists for "
                         f"{POD_IDENTITY_LABEL}={value}:"),
                  fix.annotate_sa(namespace, account, client_id),
                  fix.federated_credential("create", resource_id, fix.fic_name(namespace, account),
                                           ctx.cluster.issuer_url or "<issuer>", subject)]
    else:
        steps.append(advice(f"{what}'s identity went with its AzureIdentity: take its client id from the manifests or "
                            "Helm values it came from, then move the workload to Workload ID: annotate ServiceAccount "
                            f"{namespace}/{account} with it, create its federated credential for this issuer and "
                            f"subject system:serviceaccount:{namespace}:{account}, and label the pod template:"))
    if kind == "Pod":
        steps.append(advice(f"recreate pod {ref} labelled {USE_LABEL}: \"true\""))
    else:
        steps += _use_label_steps(kind, namespace, name, restart=True)
    return {"pod": ref, "why": why, "steps": steps}


def _depending_steps(ctx: MigrationContext, depending: list[dict[str, Any]]) -> list[Step]:
    """The coverage fixes of the bindings these pods depend on (a row with a pod not moved lacks labelled_pods);
    for a pod whose binding's row lacks nothing (what could not be told), its owner's template labelled for
    Workload ID; a CronJob's Job made before deleted."""
    refs = {f"{p['namespace']}/{p['name']}" for p in depending}
    rows = [row for row in coverage_rows(ctx.facts, ctx.cluster.issuer_url) if set(row["legacy_pods"]) & refs]
    steps = [step for row in rows if row["missing"] for step in _coverage_steps(ctx, row)]
    behind = {ref for row in rows if row["missing"] for ref in row["legacy_pods"]}
    for p in depending:
        kind, name = str(p.get("owner_kind")), str(p.get("owner_name"))
        if f"{p['namespace']}/{p['name']}" in behind:  # its template is in the binding's steps; not its Job
            more = []
        else:
            more = ([advice(f"recreate pod {p['namespace']}/{name} labelled {USE_LABEL}: \"true\"")] if kind == "Pod"
                    else _use_label_steps(kind, p["namespace"], name, restart=True))
        if kind == "CronJob" and p.get("job"):  # the Job made before runs on without an identity
            more += [advice(f"Job {p['namespace']}/{p['job']}, made before, runs without an identity: delete it (its "
                            "pods go too); the CronJob's next Job runs with the identity"),
                     fix.delete_job(p["namespace"], str(p["job"]))]
        steps += [step for step in more if step not in steps]
    return steps


def _use_label_steps(kind: str, namespace: str, name: str, restart: bool) -> list[Step]:
    """The use label onto what makes the pods. A Job's pod template cannot change once it started (the API server:
    "spec.template: ... field is immutable"): a CronJob's jobTemplate takes it for its next Jobs; a Job of its own
    is made again. Deployments, StatefulSets, DaemonSets: the template, then new pods."""
    if kind == "CronJob":
        return [fix.patch_cronjob_template_labels(namespace, name, {USE_LABEL: "true"}),
                advice(f"its next Job gets the identity (or now: kubectl create job -n {namespace} --from="
                       f"cronjob/{name} <job-name>)")]
    if kind == "Job":
        return [advice(f"Job {namespace}/{name}'s pod template cannot change: make it again from its manifest with "
                       f"{USE_LABEL}: \"true\" (and without {POD_IDENTITY_LABEL}) on its pod template")]
    return [fix.patch_template_labels(kind, namespace, name, {USE_LABEL: "true"}),
            *([fix.rollout_restart(kind, namespace, name)] if restart else [])]


def _drop_label_step(pod: dict[str, Any]) -> Step:
    kind, name, namespace = str(pod.get("owner_kind")), str(pod.get("owner_name")), pod["namespace"]
    if kind == "Pod":
        return fix.remove_pod_label(namespace, pod["name"], POD_IDENTITY_LABEL)
    if kind == "CronJob":  # its jobTemplate's pod template; its running Jobs keep the label until they end
        return fix.remove_cronjob_template_label(namespace, name, POD_IDENTITY_LABEL)
    if kind == "Job":
        return advice(f"Job {namespace}/{name}'s pod template cannot change: its pods keep {POD_IDENTITY_LABEL} "
                      "until they end; make it again without it if it runs again")
    if pod.get("template_labelled") is False:
        # labelled on the pod alone (kubectl label pod): the JSON patch's remove of a template label that is not
        # there is refused ("unable to remove nonexistent key: aadpodidbinding: missing value", run by hand);
        # the pod's own label goes, and the ReplicaSet keeps the pod (its selector does not name the label)
        return fix.remove_pod_label(namespace, pod["name"], POD_IDENTITY_LABEL)
    if pod.get("owner_selects_label"):
        return fix.remake_without_selector_label(kind, namespace, name, POD_IDENTITY_LABEL)
    return fix.remove_template_label(kind, namespace, name, POD_IDENTITY_LABEL)


def _idle_templates(ctx: MigrationContext) -> list[dict[str, Any]]:
    """Deployments and DaemonSets whose pod template is labelled aadpodidbinding while no pod of theirs is (scaled
    to 0, a DaemonSet whose nodeSelector matches no node, or the label taken off the running pods by hand): no pod
    shows the label now, but every pod they make from the template carries it, and, without a binding or NMI,
    runs with no identity."""
    running = {(str(p.get("owner_kind")), p["namespace"], str(p.get("owner_name"))) for p in ctx.facts.legacy_pods.items}
    return [t for t in ctx.facts.legacy_templates.items if (t["kind"], t["namespace"], t["name"]) not in running]


def _bound_not_moved(ctx: MigrationContext, pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pods labelled with an AzureIdentityBinding's selector (they get their token from NMI) that do not yet
    run with Workload ID (the use label and a projected token of its audience)."""
    selectors = {str((b.get("spec") or {}).get("selector")) for b in ctx.facts.azure_identity_bindings.items}
    return [p for p in pods if (p.get("labels") or {}).get(POD_IDENTITY_LABEL) in selectors
            and not ((p.get("labels") or {}).get(USE_LABEL) == "true"
                     and TOKEN_AUDIENCE in (p.get("token_audiences") or []))]


def _unassigned(ctx: MigrationContext, nmi: list[dict[str, Any]]) -> Finding | None:
    """NMI running in standard mode with MIC gone: NMI answers a pod only from the AzureAssignedIdentities MIC made
    for it (pkg/nmi/standard.go listPodIDsWithRetry: "getting assigned identities for pod ... in CREATED state
    failed ... Check MIC pod logs"), so a bound pod created since MIC went (a rollout, a restart) has no identity;
    those assigned before keep theirs. Managed mode (--operation-mode=managed) runs without MIC."""
    facts = ctx.facts
    if (any(c.get("component") == "mic" for c in facts.components.items)
            or any(c.get("operation_mode", "standard") != "standard" for c in nmi)
            or facts.azure_assigned_identities.error is not None or not facts.azure_assigned_identities.served):
        return None
    assigned = {(str(a.get("podNamespace")), str(a.get("pod"))) for a in facts.azure_assigned_identities.items}
    depending = [p for p in _bound_not_moved(ctx, facts.legacy_pods.items) if (p["namespace"], p["name"]) not in assigned]
    if not depending:
        return None
    refs = [f"{p['namespace']}/{p['name']}" for p in depending]
    steps: list[Step] = [advice("move these workloads to Workload ID now (or put aad-pod-identity's MIC back until "
                                "they are moved):"), *_depending_steps(ctx, depending)]
    return Finding(
        "POD_IDENTITY_REMOVED_EARLY", ERROR, LAYER,
        f"aad-pod-identity's MIC is not running, yet {len(refs)} pods labelled with a binding's selector have no "
        f"AzureAssignedIdentity and no Workload ID token: {', '.join(refs)}: NMI answers a pod only from the "
        "assigned identities MIC makes, so they get no token (created since MIC went)",
        {"pods": refs}, steps)


def pods_unlabelled(ctx: MigrationContext) -> Outcome:
    listed = ctx.facts.legacy_pods
    pods = [
        {"pod": f"{p['namespace']}/{p['name']}", "selector": (p.get("labels") or {}).get(POD_IDENTITY_LABEL),
         "service_account": p.get("service_account"), "owner": f"{p.get('owner_kind')}/{p.get('owner_name')}"}
        for p in listed.items
    ]
    evidence: dict[str, Any] = {"pods": pods}
    leftovers = []
    unbound = _unbound(ctx)
    if unbound:
        evidence["unbound"] = [u["pod"] for u in unbound]
    idle = _idle_templates(ctx) if ctx.facts.legacy_pods.error is None else []
    if idle:
        evidence["templates"] = [{k: t.get(k) for k in ("kind", "namespace", "name", "selector", "replicas")}
                                 for t in idle]
    pod_only = [f"{p['namespace']}/{p['name']}" for p in listed.items if p.get("template_labelled") is False]
    if pods or idle:
        steps: list[Step] = []
        for step in (step for u in unbound for step in u["steps"]):
            if step not in steps:  # a Deployment's pods: one fix for its template
                steps.append(step)
        steps.append(advice("once the workload uses Workload ID (the coverage table), drop the label from what "
                            "creates the pods:"))
        for pod in listed.items:
            step = _drop_label_step(pod)
            if step not in steps:
                steps.append(step)
        for t in idle:
            step = (fix.remake_without_selector_label(t["kind"], t["namespace"], t["name"], POD_IDENTITY_LABEL)
                    if t.get("selects_label") else
                    fix.remove_template_label(t["kind"], t["namespace"], t["name"], POD_IDENTITY_LABEL))
            if step not in steps:
                steps.append(step)
        shown = [f"{t['kind']} {t['namespace']}/{t['name']} ({POD_IDENTITY_LABEL}={t['selector']}, "
                 + (f"{t['replicas']} wanted" if t.get("replicas") else "scaled to 0") + ")" for t in idle]
        message = (f"{len(pods)} pods still carry the {POD_IDENTITY_LABEL} label: " + ", ".join(p["pod"] for p in pods)
                   if pods else f"no pod carries the {POD_IDENTITY_LABEL} label now")
        message += (f" (on the pod only, not in its owner's pod template: {', '.join(pod_only)})" if pod_only else "")
        message += (f"; {values.counted(len(idle), 'pod template')} still labelled with it while no pod of theirs "
                    f"is: {', '.join(shown)}: the pods made from them next (a scale-up, a restart) carry it again"
                    if idle else "")
        message += "".join(f"; {u['why']}" for u in unbound)
        leftovers.append(_finding(ctx, "POD_IDENTITY_PODS_LABELLED", message, evidence, steps))
    summary = (f"{len(pods)} pods still labelled {POD_IDENTITY_LABEL}"
               + (f", {values.counted(len(idle), 'pod template')} too" if idle else ""))
    templates = ctx.facts.legacy_templates
    clean = (f"no pod or pod template is labelled {POD_IDENTITY_LABEL}" if templates.error is None else
             f"no pod is labelled {POD_IDENTITY_LABEL} (pod templates not read: could not list {templates.resource}, "
             "migration.components_removed names why)")
    return _judge(ctx, [listed], leftovers, summary, evidence, clean)


# ---------------------------------------------------------------- coverage: each binding and its replacement


def _credentials(identity: IdentityFacts | None) -> list[dict[str, Any]] | None:
    """The identity's federated credentials as {name, issuer, subject} (ARM and Graph shapes alike)."""
    if identity is None or identity.federated_credentials is None:
        return None
    out = []
    for credential in identity.federated_credentials:
        body = credential.get("properties") if isinstance(credential.get("properties"), dict) else credential
        out.append({"name": credential.get("name"), "issuer": body.get("issuer"), "subject": body.get("subject")})
    return out


def _identity_name(identity: IdentityFacts) -> str | None:
    if identity.kind == "managed_identity":
        return (identity.identity or {}).get("name") or (identity.resource_id or "").rsplit("/", 1)[-1] or None
    if identity.kind == "application":
        return (identity.application or {}).get("displayName")
    return None


def _lookup_state(identity: IdentityFacts | None) -> str:
    if identity is None or not identity.configured:
        return "not_looked_up"
    if identity.kind:
        return "found" if identity.error is None else "unreadable"
    return "error" if identity.error is not None else "not_visible"


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _injected_with(pod: dict[str, Any], client_id: Any) -> bool:
    """Whether the webhook gave this labelled pod the binding's identity: a projected token for
    api://AzureADTokenExchange and AZURE_CLIENT_ID = its client id. The webhook mutates pods on CREATE only
    (its MutatingWebhookConfiguration's rule: operations [CREATE], resources [pods]): a pod labelled with kubectl
    label afterwards, or created before its ServiceAccount was annotated, has neither or no client id. Pods whose
    spec was not looked at (no token_audiences or client_ids) count as injected."""
    audiences, client_ids = pod.get("token_audiences"), pod.get("client_ids")
    if audiences is None and client_ids is None:
        return True
    return TOKEN_AUDIENCE in (audiences or []) and bool(client_id) and str(client_id).lower() in {
        str(c).lower() for c in client_ids or []}


def _moved_to(facts: MigrationFacts, bound: list[dict[str, Any]], client_id: Any) -> list[str]:
    """NS/SA=CLIENT_ID for each ServiceAccount the binding's pods (labelled aadpodidbinding with its selector) run
    as that names another identity's client id: the team moved that workload to another identity under Workload ID,
    and annotating it with the binding's client id (--overwrite) would take that identity away."""
    runs_as = {(p["namespace"], str(p.get("service_account"))) for p in bound}
    return sorted(
        f"{sa['namespace']}/{sa['name']}={sa['client_id']}" for sa in facts.service_accounts.items
        if (sa["namespace"], sa["name"]) in runs_as and values.is_guid(str(sa.get("client_id") or ""))
        and str(sa["client_id"]).lower() != str(client_id or "").lower())


def _other_workloads(accounts: list[str], moved_to: list[str], bound: list[dict[str, Any]]) -> list[str]:
    """The ServiceAccounts annotated with a binding's client id when none of them is one its own pods (labelled
    with its selector) run as, and those run as ServiceAccounts naming other identities: another workload's (one
    identity shared by two workloads, or two bindings with one selector, whose pods held both identities and
    under Workload ID get one). They replace nothing for this binding's pods."""
    runs_as = {f"{p['namespace']}/{p.get('service_account')}" for p in bound}
    return accounts if accounts and moved_to and runs_as and not runs_as & set(accounts) else []


def _still_bound(bound: list[dict[str, Any]]) -> list[str]:
    """NS/NAME of the binding's own pods (labelled with its selector) the webhook gave no Workload ID token."""
    return sorted(f"{p['namespace']}/{p['name']}" for p in bound if not _has_wi_token(p))


def _has_wi_token(pod: dict[str, Any]) -> bool:
    return ((pod.get("labels") or {}).get(USE_LABEL) == "true"
            and TOKEN_AUDIENCE in (pod.get("token_audiences") or []))


def _stragglers(accounts: list[str], moved_to: list[str], bound: list[dict[str, Any]]) -> list[str]:
    """NS/SA of the binding's own pods (labelled with its selector) that still run on pod identity (no Workload ID
    token) as a ServiceAccount that names no client id, while another ServiceAccount is annotated with the
    binding's: a half-moved namespace (one Deployment moved, another on the same selector not). Deleting the
    binding takes their identity away."""
    moved = {ref.split("=", 1)[0] for ref in moved_to}
    return sorted({f"{p['namespace']}/{p.get('service_account')}" for p in bound if not _has_wi_token(p)}
                  - set(accounts) - moved)


def _row_stragglers(ctx: MigrationContext, row: dict[str, Any]) -> list[str]:
    bound = [p for p in ctx.facts.legacy_pods.items if f"{p['namespace']}/{p['name']}" in row["legacy_pods"]]
    if not row["service_accounts"] or _other_workloads(row["service_accounts"], row.get("moved_to") or [], bound):
        return []
    return _stragglers(row["service_accounts"], row.get("moved_to") or [], bound)


def _row_still_bound(ctx: MigrationContext, row: dict[str, Any]) -> list[str]:
    return _still_bound([p for p in ctx.facts.legacy_pods.items if f"{p['namespace']}/{p['name']}" in row["legacy_pods"]])


def _resource_elsewhere(ctx: MigrationContext, row: dict[str, Any]) -> str | None:
    """The managed identity an MSI AzureIdentity's resourceID names when it is not the one holding its clientID:
    MIC assigns the resourceID's identity to the nodes (pkg/mic/mic.go appendToAddListForNode(id.Spec.ResourceID)),
    while NMI asks IMDS for the clientID's token (pkg/nmi/standard.go GetTokens: azureID.Spec.ClientID), so its pods
    had the clientID's identity only on nodes where another binding had assigned it. None when they agree."""
    if row["identity_type"] == 1 or row["azure_identity"] is None:
        return None
    spec = next((i.get("spec") or {} for i in ctx.facts.azure_identities.items
                 if f"{i['namespace']}/{i['name']}" == row["azure_identity"]), {})
    named = str(spec.get("resourceID") or "")
    looked = ctx.facts.identities.get(str(row["client_id"]).lower())
    if (looked is None or looked.kind != "managed_identity" or not looked.resource_id
            or "/userassignedidentities/" not in named.lower()
            or named.rstrip("/").lower() == looked.resource_id.rstrip("/").lower()):
        return None
    return named.rstrip("/").rsplit("/", 1)[-1]


def _row_other_workloads(ctx: MigrationContext, row: dict[str, Any]) -> list[str]:
    bound = [p for p in ctx.facts.legacy_pods.items if f"{p['namespace']}/{p['name']}" in row["legacy_pods"]]
    return _other_workloads(row["service_accounts"], row.get("moved_to") or [], bound)


def _principal_id(identity: IdentityFacts | None) -> str | None:
    """The object id role assignments name: a managed identity's principalId, an application's service principal."""
    if identity is None:
        return None
    if identity.kind == "application":
        return _text((identity.service_principal or {}).get("id"))
    return _text(((identity.identity or {}).get("properties") or {}).get("principalId"))


def _covers(scope: str, within: str) -> bool:
    """Whether a role assignment at ``scope`` grants at ``within`` too (ARM scopes inherit downward)."""
    scope, within = scope.lower().rstrip("/"), within.lower().rstrip("/")
    return within == scope or within.startswith(scope + "/")


def roles_not_moved(facts: MigrationFacts, old: Any, new: str) -> list[tuple[str, str]] | None:
    """(role name, scope) of each role assignment the old identity holds that the new one holds at no scope covering
    it (the same role definition there or above); None when either's assignments could not be read."""
    was, now = facts.identities.get(str(old).lower()), facts.identities.get(new.lower())
    if was is None or now is None or was.role_assignments is None or now.role_assignments is None:
        return None
    held = [((a.get("properties") or {}).get("roleDefinitionId", ""), (a.get("properties") or {}).get("scope", ""))
            for a in now.role_assignments]
    lacking = []
    for assignment in was.role_assignments:
        properties = assignment.get("properties") or {}
        definition, scope = str(properties.get("roleDefinitionId") or ""), str(properties.get("scope") or "")
        if not definition or not scope or any(
                str(d).lower().rsplit("/", 1)[-1] == definition.lower().rsplit("/", 1)[-1] and _covers(str(s), scope)
                for d, s in held):
            continue
        role = was.role_names.get(definition.lower()) or definition.rsplit("/", 1)[-1]
        if (role, scope) not in lacking:
            lacking.append((role, scope))
    return lacking


def coverage_rows(facts: MigrationFacts, issuer: str | None) -> list[dict[str, Any]]:
    """One row per AzureIdentityBinding (by namespace, name): what replaces it under Workload ID."""
    identities = {(i["namespace"], i["name"]): i for i in facts.azure_identities.items}
    rows = []
    for binding in sorted(facts.azure_identity_bindings.items, key=lambda b: (b["namespace"], b["name"])):
        namespace, spec = binding["namespace"], binding.get("spec") or {}
        selector = spec.get("selector")
        azure_identity = identities.get((namespace, str(spec.get("azureIdentity") or "")))
        identity_spec = (azure_identity or {}).get("spec") or {}
        client_id = identity_spec.get("clientID")
        looked_up = facts.identities.get(str(client_id).lower()) if client_id else None
        accounts = sorted(
            f"{sa['namespace']}/{sa['name']}" for sa in facts.service_accounts.items
            if client_id and str(sa.get("client_id", "")).lower() == str(client_id).lower()
        )
        subjects = {f"system:serviceaccount:{ref.replace('/', ':', 1)}" for ref in accounts}
        credentials = _credentials(looked_up)
        trusting = [c for c in credentials or [] if issuer and c.get("issuer") == issuer]
        under = [p for p in facts.labelled_pods.items if f"{p['namespace']}/{p['service_account']}" in accounts]
        labelled = sorted(f"{p['namespace']}/{p['name']}" for p in under if _injected_with(p, client_id))
        uninjected = sorted(f"{p['namespace']}/{p['name']}" for p in under if not _injected_with(p, client_id))
        bound = [p for p in facts.legacy_pods.items
                 if selector is not None and (p.get("labels") or {}).get(POD_IDENTITY_LABEL) == selector]
        legacy = sorted(f"{p['namespace']}/{p['name']}" for p in bound)
        moved_to = _moved_to(facts, bound, client_id)
        missing, unknown = [], []
        # the client id unknown (its AzureIdentity could not be read), or the ServiceAccounts: nothing follows
        blind = azure_identity is None and facts.azure_identities.error is not None
        accounts_known = facts.service_accounts.error is None and not blind
        # the binding's own pods run as ServiceAccounts naming other identities, none of them one annotated with
        # this client id: the annotated ones are another workload's (one identity, two workloads; or two bindings
        # with one selector, whose pods held both identities): nothing here replaces this binding for its pods
        elsewhere = bool(_other_workloads(accounts, moved_to, bound))
        behind = _stragglers(accounts, moved_to, bound) if accounts and not elsewhere else []
        if not accounts_known:
            unknown.append(MISSING_SERVICE_ACCOUNT)
        elif not accounts or elsewhere or behind:
            missing.append(MISSING_SERVICE_ACCOUNT)
        # with annotated ServiceAccounts, a credential must trust one of them; without, any for this issuer counts;
        # the ServiceAccounts of its pods still on pod identity need one each
        covered = any(c.get("subject") in subjects for c in trusting) if accounts else bool(trusting)
        covered = covered and all(f"system:serviceaccount:{ref.replace('/', ':', 1)}" in
                                  {c.get("subject") for c in trusting} for ref in behind)
        if credentials is None or not issuer or blind:
            unknown.append(MISSING_CREDENTIAL)
        elif not covered:
            missing.append(MISSING_CREDENTIAL)
        if facts.labelled_pods.error is not None or not accounts_known:
            unknown.append(MISSING_PODS)
        elif not labelled or uninjected or behind or _still_bound(bound):
            # one Deployment moved does not move another on the same selector and ServiceAccount: each pod NMI
            # still answers loses its identity with the binding
            missing.append(MISSING_PODS)
        kind = identity_spec.get("type")
        rows.append({
            "binding": f"{namespace}/{binding['name']}",
            "selector": _text(selector),
            "azure_identity": f"{namespace}/{azure_identity['name']}" if azure_identity else None,
            "identity_type": kind if isinstance(kind, int) and not isinstance(kind, bool) else None,
            "client_id": _text(client_id),
            "identity": _identity_name(looked_up) if looked_up else None,
            "identity_kind": looked_up.kind if looked_up else None,
            "identity_lookup": _lookup_state(looked_up),
            "service_accounts": accounts,
            "federated": None if credentials is None or not issuer else bool(trusting),
            "federated_subjects": sorted(str(c.get("subject")) for c in trusting),
            "labelled_pods": labelled,
            "uninjected_pods": uninjected,
            "legacy_pods": legacy,
            "moved_to": moved_to,
            "migrated": not missing and not unknown,
            "missing": missing,
            "unknown": unknown,
        })
    return rows


def _deleted(ctx: MigrationContext, row: dict[str, Any]) -> bool:
    """The collector's GET of the row's AzureIdentity resourceID answered 404 (harness/collect/migration.py
    RESOURCE_GONE): its managed identity is deleted, not merely out of the harness's sight."""
    looked = ctx.facts.identities.get(str(row["client_id"]).lower())
    return looked is not None and looked.resolved_by == "resource_id_gone" and not looked.kind


def _roleless(ctx: MigrationContext, row: dict[str, Any]) -> bool:
    """The old identity's role assignments were read and there are none: an access gap in the making (its roles
    taken away before the new identity was granted them) compares as 'every role moved'."""
    was = ctx.facts.identities.get(str(row["client_id"]).lower())
    return was is not None and was.role_assignments == []


def _moved_text(ctx: MigrationContext, row: dict[str, Any], moved: str) -> str:
    ref, other = moved.split("=", 1)
    lacking = roles_not_moved(ctx.facts, row["client_id"], other)
    access = ("whether it may reach what this one could was not read" if lacking is None else
              "this one holds no role now (taken away before the move?): nothing to compare, the workload's access "
              "checks say what it reaches" if _roleless(ctx, row) else
              "it holds every role this one holds" if not lacking else
              "it lacks " + ", ".join(f"{role} on {scope}" for role, scope in lacking) + ", which this one holds")
    return f" (its pods run as {ref}, which names another identity's client id {other}: the workload moved to it; " \
           f"{access})"


def bindings_migrated(ctx: MigrationContext) -> Outcome:
    rows = coverage_rows(ctx.facts, ctx.cluster.issuer_url)
    bindings = ctx.facts.azure_identity_bindings
    evidence: dict[str, Any] = {"issuer": ctx.cluster.issuer_url, "rows": len(rows),
                                "migrated": sum(1 for r in rows if r["migrated"])}
    behind = [r for r in rows if r["missing"]]
    doubtful = [r for r in rows if not r["missing"] and r["unknown"]]
    leftovers = []
    if behind:
        steps = [step for row in behind for step in _coverage_steps(ctx, row)]
        text = "; ".join(f"{r['binding']} lacks {', '.join(r['missing'])}"
                         + "".join(_moved_text(ctx, r, m) for m in r.get("moved_to") or [])
                         + (f" (its AzureIdentity's resourceID names {_resource_elsewhere(ctx, r)}, not {r['identity']}, "
                            "which holds its clientID: MIC assigned the first to the nodes, NMI asked IMDS for the "
                            "second, so its pods had it only where another binding assigned it; the fix uses the "
                            "clientID's)" if _resource_elsewhere(ctx, r) else "")
                         + (f" ({', '.join(_row_stragglers(ctx, r))}, which its pods still on pod identity run "
                            f"as, names no client id; only {', '.join(r['service_accounts'])} moved)"
                            if _row_stragglers(ctx, r) else "")
                         + (f" (its client id is annotated on {', '.join(_row_other_workloads(ctx, r))}, "
                            "which another workload's pods run as, not its own)" if _row_other_workloads(ctx, r) else "")
                         + (" (its managed identity is deleted: its AzureIdentity's resourceID is not there, or holds "
                            "another client id)"
                            if _deleted(ctx, r) else "")
                         + (f" (cannot tell {', '.join(r['unknown'])})" if r["unknown"] else "")
                         + (f" ({', '.join(_row_still_bound(ctx, r))}, labelled {POD_IDENTITY_LABEL}={r['selector']}, "
                            "still run on pod identity with no Workload ID token, though "
                            f"{', '.join(r['labelled_pods'])} moved)"
                            if r["labelled_pods"] and _row_still_bound(ctx, r) and not _row_stragglers(ctx, r)
                            and MISSING_PODS in r["missing"] else "")
                         + (f" ({', '.join(r['uninjected_pods'])} labelled {USE_LABEL} but run without its identity: "
                            "created before the label or the annotation; the webhook acts on pod CREATE only)"
                            if r["uninjected_pods"] and MISSING_PODS in r["missing"] else "") for r in behind)
        leftovers.append(_finding(ctx, "POD_IDENTITY_BINDING_NOT_MIGRATED",
                                  f"{len(behind)} of {len(rows)} AzureIdentityBindings have no complete Workload ID "
                                  f"replacement: {text}", {"bindings": behind}, steps))
    notes = []
    if doubtful:
        text = "; ".join(f"{r['binding']}: {', '.join(r['unknown'])}" for r in doubtful)
        notes.append(Finding("POD_IDENTITY_COVERAGE_UNKNOWN", WARNING, LAYER,
                             f"the harness could not tell whether these bindings are covered: {text}",
                             {"bindings": doubtful},
                             [fix.find_identity_anywhere(r["client_id"])[0] for r in doubtful]))
    if not bindings.served and bindings.error is None:
        stranded = [f"{p['namespace']}/{p['name']}" for p in ctx.facts.legacy_pods.items
                    if not ((p.get("labels") or {}).get(USE_LABEL) == "true"
                            and TOKEN_AUDIENCE in (p.get("token_audiences") or []))]
        if stranded:  # the CRDs deleted before these pods moved: nothing left to compare them with
            return warned(f"no AzureIdentityBinding is served (its CRD is deleted), yet {len(stranded)} pods labelled "
                          f"{POD_IDENTITY_LABEL} have no Workload ID token: {', '.join(stranded[:10])} (see "
                          "migration.pods_unlabelled)", {**evidence, "stranded_pods": stranded})
        return passed("no AzureIdentityBinding (the kind is not served): nothing to migrate", evidence)
    outcome = _judge(ctx, [bindings, ctx.facts.azure_identities], leftovers, f"{len(behind)} of {len(rows)} AzureIdentityBindings are not "
                     "migrated", evidence, f"every AzureIdentityBinding ({len(rows)}) has its Workload ID replacement"
                     if rows else "no AzureIdentityBinding: nothing to migrate")
    if notes and outcome.status == "pass":
        return warned(f"{len(doubtful)} of {len(rows)} bindings could not be judged", evidence, *notes)
    outcome.findings += notes
    return outcome


def _coverage_steps(ctx: MigrationContext, row: dict[str, Any]) -> list[Step]:
    """The work left for one binding, in order: the ServiceAccount annotated (with the tenant too when its
    AzureIdentity is a service principal of another tenant: the webhook injects the cluster's tenant otherwise),
    the federated credential (listed first when the harness could not read the identity's; on the app registration
    for a service principal, on the managed identity named by resourceID for an MSI), then the pods labelled, once
    the credential exists: a labelled pod exchanges its token with Entra at its next start."""
    namespace = row["binding"].split("/", 1)[0]
    legacy = [p for p in ctx.facts.legacy_pods.items if f"{p['namespace']}/{p['name']}" in row["legacy_pods"]]
    if not legacy and row["selector"] is not None:
        # pods whose label differs from the selector only in case or spaces (MIC matches exactly: they never had
        # this identity, but they are the workload the binding was written for)
        wanted = str(row["selector"]).strip().lower()
        legacy = [p for p in ctx.facts.legacy_pods.items
                  if str((p.get("labels") or {}).get(POD_IDENTITY_LABEL)).strip().lower() == wanted]
    accounts = [tuple(ref.split("/", 1)) for ref in _row_stragglers(ctx, row) or row["service_accounts"]] or sorted(
        {(p["namespace"], p["service_account"]) for p in legacy}) or [(namespace, "<service-account>")]
    binding = next((b for b in ctx.facts.azure_identity_bindings.items
                    if f"{b['namespace']}/{b['name']}" == row["binding"]), {})
    if row["azure_identity"] is None and ctx.facts.azure_identities.error is None:
        # MIC looks the binding's identity up in the binding's own namespace and, without it, assigns nothing
        # (pkg/mic/mic.go: "%s identity not found when using %s/%s binding"): no workload ever had an identity
        # through it, so there is nothing to move, and annotating a ServiceAccount would need a client id it has not
        named = str((binding.get("spec") or {}).get("azureIdentity") or "")
        return [advice(f"{row['binding']} names AzureIdentity {named or '(none)'}, which {namespace} does not have: "
                       "MIC never assigned an identity through it, so its pods had none; delete it (or, if a "
                       "workload needs an identity, give it one under Workload ID from the start)"),
                fix.delete_objects("azureidentitybinding", namespace, [row["binding"].split("/", 1)[1]])]
    selector = row["selector"]
    shown = selector if selector and str(selector) == str(selector).strip() else repr(selector)  # "payments "
    steps: list[Step] = [advice(f"{row['binding']} (selector {shown}, client id {row['client_id']}):")]
    resource_id = _text(next((i.get("spec") or {} for i in ctx.facts.azure_identities.items
                              if f"{i['namespace']}/{i['name']}" == row["azure_identity"]), {}).get("resourceID"))
    deleted = _deleted(ctx, row)
    unused = (not legacy and not row["service_accounts"] and not row["labelled_pods"]
              and not row.get("uninjected_pods") and ctx.facts.legacy_pods.error is None
              and ctx.facts.service_accounts.error is None)
    if deleted and unused:  # nothing uses it and its identity is gone: nothing to move
        return [*steps,
                advice(f"its managed identity is deleted and no pod is labelled {POD_IDENTITY_LABEL}={row['selector']}: "
                       "nothing to move; delete the binding and its AzureIdentity"),
                fix.delete_objects("azureidentitybinding", namespace, [row["binding"].split("/", 1)[1]]),
                fix.delete_objects("azureidentity", namespace, [str(row["azure_identity"]).split("/", 1)[1]])]
    if deleted and row["identity_type"] != 1 and resource_id and not row.get("moved_to"):
        # the AzureIdentity's managed identity is found nowhere the harness looked (deleted: az identity show and
        # federated-credential commands answer "(NotFound) The parent user-assigned identity doesn't exist."):
        # annotating its client id or creating a credential on it cannot work; MIC assigned nothing through it
        gone = fix.identity_gone(resource_id)
        name, group = fix.identity_name_rg(resource_id)
        return [*steps,
                advice(f"its AzureIdentity {row['azure_identity']} names managed identity {name} (resource group "
                       f"{group}), which is deleted (ARM answers 404 for its resourceID, or it holds another client id): MIC "
                       "assigns nothing through a missing identity, so these pods have had none. What that resource "
                       "group holds:"),
                gone[0],
                advice("make it again (a new client id and principal id, no federated credential, no role), "
                       "annotate the ServiceAccount with its new client id, grant it what the workload needs, and run "
                       "the harness again: the workload's checks print its federated credential:"),
                gone[-1]]
    if unused:
        # nothing links the binding to a workload now: one moved to another identity is done (its ServiceAccount
        # names that identity; annotating it with this client id would take it away), one between runs is not
        steps.append(advice(f"no pod is labelled {POD_IDENTITY_LABEL}={row['selector']} and no ServiceAccount names "
                            "this client id: if its workload moved to another identity under Workload ID, leave its "
                            "ServiceAccount as it is and only delete this binding (objects_removed); if it is scaled "
                            "to zero or a CronJob between runs, move it to this identity:"))
    spec = next((i.get("spec") or {} for i in ctx.facts.azure_identities.items
                 if f"{i['namespace']}/{i['name']}" == row["azure_identity"]), {})
    identity = ctx.facts.identities.get(str(row["client_id"]).lower())
    application = identity.kind == "application" if identity is not None and identity.kind else (
        row["identity_type"] == 1)
    tenant, home = str(spec.get("tenantID") or ""), ctx.azure.tenant_id if ctx.azure else None
    other_tenant = application and values.is_guid(tenant) and bool(home) and tenant.lower() != str(home).lower()
    moved = dict(ref.split("=", 1) for ref in row.get("moved_to") or [])
    if moved and MISSING_SERVICE_ACCOUNT in row["missing"]:
        # the ServiceAccount names another identity: whoever moved it chose that identity, and what the old one may
        # reach (Key Vault, storage ...) only moves with it if its roles were granted to the new one too
        for ref, other in moved.items():
            lacking = roles_not_moved(ctx.facts, row["client_id"], other)
            gone = deleted
            steps.append(advice(f"its pods run as {ref}, which names client id {other}: they moved to that "
                                "identity, so leave the annotation; "
                                + ("the old identity is deleted, its roles with it: grant the new one what the "
                                   "workload needs" if gone else
                                   "before this binding goes, grant it each role the old identity holds that they "
                                   "need:" if lacking is None else
                                   "the old identity holds no role now (taken away before the move?): grant the "
                                   "new one what the workload needs" if _roleless(ctx, row) else
                                   "it holds every role the old identity holds" if not lacking else
                                   f"it lacks {values.counted(len(lacking), 'role')} the old identity holds: grant "
                                   "those they need "
                                   "before this binding goes:")))
            if lacking is None:
                if not gone and fix.list_roles(row["client_id"]) not in steps:
                    steps.append(fix.list_roles(row["client_id"]))
                continue
            principal = _principal_id(ctx.facts.identities.get(other.lower()))
            steps += [fix.grant_role(principal, role, scope) for role, scope in lacking]
        # its pods that the webhook has not yet given that identity: the template labelled, new pods
        for p in legacy:
            other = moved.get(f"{p['namespace']}/{p.get('service_account')}")
            if other is None or _injected_with(p, other) and (p.get("labels") or {}).get(USE_LABEL) == "true":
                continue
            kind, name = str(p.get("owner_kind")), str(p.get("owner_name"))
            if kind == "Pod":
                step: Step = advice(f"recreate pod {p['namespace']}/{name} labelled {USE_LABEL}: \"true\"")
                if step not in steps:
                    steps.append(step)
                continue
            for step in _use_label_steps(kind, p["namespace"], name, restart=True):
                if step not in steps:
                    steps.append(step)
        accounts = [(ns, sa) for ns, sa in accounts
                    if f"{ns}/{sa}" not in moved and f"{ns}/{sa}" not in _row_other_workloads(ctx, row)]
        if not accounts:
            return steps
    if MISSING_SERVICE_ACCOUNT in row["missing"]:
        steps += [fix.annotate_sa(ns, sa, row["client_id"]) for ns, sa in accounts]
        if other_tenant:
            steps += [advice(f"its AzureIdentity is a service principal of tenant {tenant}, not this cluster's "
                             f"{home}: the ServiceAccount names that tenant, or the webhook injects the cluster's")]
            steps += [fix.annotate_sa_tenant(ns, sa, tenant) for ns, sa in accounts]
    credential_unknown = MISSING_CREDENTIAL in row["unknown"] and row["azure_identity"] is not None
    if MISSING_CREDENTIAL in row["missing"] or credential_unknown:
        issuer = ctx.cluster.issuer_url or "<issuer>"
        resource_id = (identity.resource_id if identity is not None else None) or (
            None if application else _text(spec.get("resourceID")))
        if credential_unknown:
            steps.append(advice("the harness could not read this identity's federated credentials: list them, "
                                + ("in its tenant (az login --tenant " + tenant + "), " if other_tenant else "")
                                + "and create one for each ServiceAccount below that none trusts:"))
            steps.append(fix.app_credential_list(row["client_id"]) if application
                         else fix.identity_credential_list(resource_id))
        for ns, sa in accounts:
            subject = f"system:serviceaccount:{ns}:{sa}"
            if application:
                steps.append(fix.app_federated_credential("create", row["client_id"], fix.fic_name(ns, sa), issuer,
                                                          subject))
            else:
                steps.append(fix.federated_credential("create", resource_id, fix.fic_name(ns, sa), issuer, subject))
    if MISSING_PODS in row["missing"]:
        on_account = sorted(f"{sa['namespace']}/{sa['name']}" for sa in ctx.facts.service_accounts.items
                            if sa.get("use_label") and (sa["namespace"], sa["name"]) in set(accounts))
        if on_account:
            steps.append(advice(f"{', '.join(on_account)} carries the {USE_LABEL} label, which the webhook does not "
                                "read there (since v1.0 its objectSelector matches pods' own labels): it belongs on "
                                "the pod template"))
        if MISSING_CREDENTIAL in row["missing"] or credential_unknown:
            steps.append(advice("then, once the credential exists (a labelled pod exchanges its token with Entra "
                                "from its next start):"))
        uninjected = [p for p in ctx.facts.labelled_pods.items
                      if f"{p['namespace']}/{p['name']}" in row.get("uninjected_pods", [])]
        stale = {(p["namespace"], str(p.get("owner_kind")), str(p.get("owner_name"))) for p in uninjected}
        # pods running as its ServiceAccounts whose aadpodidbinding value is not this selector (the binding's
        # selector edited, or the label): theirs are the templates to label too
        runs_as = [p for p in ctx.facts.legacy_pods.items
                   if (p["namespace"], str(p.get("service_account"))) in set(accounts) and p not in legacy]
        owners = sorted({(p["namespace"], str(p.get("owner_kind")), str(p.get("owner_name")))
                         for p in [*legacy, *runs_as] if not _has_wi_token(p)} | stale)
        for ns, kind, name in owners:
            if kind == "Pod":
                steps.append(advice(f"recreate pod {ns}/{name} labelled {USE_LABEL}: \"true\", without "
                                    f"{POD_IDENTITY_LABEL}"))
            else:
                # the template labelled (a no-op where it already is), then new pods: a label put on a running
                # pod, or an annotation made after it started, reaches no pod until the webhook sees it created
                steps += _use_label_steps(kind, ns, name, restart=(ns, kind, name) in stale)
        idle = [t for t in _idle_templates(ctx) if t["namespace"] == namespace and t["selector"] == row["selector"]]
        for t in idle if not owners else []:  # scaled to 0: its template names the selector, no pod runs it now
            steps += [s for s in _use_label_steps(t["kind"], t["namespace"], t["name"], restart=False) if s not in steps]
        if not owners and not idle:
            steps.append(advice(f"label the pod template of each workload running as "
                                f"{', '.join(f'{ns}/{sa}' for ns, sa in accounts)} with {USE_LABEL}: \"true\""))
    return steps


# ---------------------------------------------------------------- the run.json sections


def leftovers_section(facts: MigrationFacts, cluster: ClusterFacts, expect: ExpectConfig) -> dict[str, Any]:
    """What remains of pod-managed identity, one flat table per kind (run.json ``leftovers``)."""
    profile = pod_identity_profile(cluster)
    lists = {"azureidentities": facts.azure_identities, "azureidentitybindings": facts.azure_identity_bindings,
             "azurepodidentityexceptions": facts.azure_pod_identity_exceptions,
             "azureassignedidentities": facts.azure_assigned_identities}
    objects = []
    for plural in POD_IDENTITY_PLURALS:
        kind = SINGULAR[plural][0]
        for item in lists[plural].items:
            spec = item.get("spec") or {}
            detail = {
                "azureidentities": f"type {spec.get('type')}, client id {spec.get('clientID')}",
                "azureidentitybindings": f"identity {spec.get('azureIdentity')}, selector {spec.get('selector')}",
                "azurepodidentityexceptions": ", ".join(f"{k}={v}" for k, v in (spec.get("podLabels") or {}).items()),
                "azureassignedidentities": f"pod {item.get('podNamespace')}/{item.get('pod')} on "
                                           f"{item.get('nodename')}, {item.get('status')}",
            }[plural]
            objects.append({"kind": kind, "namespace": item["namespace"], "name": item["name"], "detail": detail})
    found = [facts.crds, *lists.values(), facts.components, facts.legacy_pods, facts.labelled_pods,
             facts.service_accounts]
    return {
        "migration_complete": expect.migration_complete,
        "addon_enabled": None if profile is None else bool(profile.get("enabled")),
        "addon_identities": _arm_identities(profile),
        "addon_exceptions": _arm_exceptions(profile),
        "crds": [str(c.get("name")) for c in facts.crds.items],
        "objects": objects,
        "components": [
            {k: c.get(k) for k in ("kind", "namespace", "name", "component", "ready", "desired", "images")}
            | {"release": _release(c)} for c in facts.components.items
        ],
        "labelled_pods": [
            {"namespace": p["namespace"], "name": p["name"],
             "selector": (p.get("labels") or {}).get(POD_IDENTITY_LABEL), "service_account": p.get("service_account"),
             "owner": f"{p.get('owner_kind')}/{p.get('owner_name')}"}
            for p in facts.legacy_pods.items
        ],
        "unreadable": [_describe(listed) for listed in found if listed.error is not None],
    }


# In the order of the work: move each binding's workload, drop the labels, delete the objects, uninstall NMI and
# MIC, delete the CRDs, turn the add-on off. None depends on another: each says what it sees.
MIGRATION_CHECKS: list[CheckSpec[MigrationContext]] = [
    CheckSpec("migration.bindings_migrated", "every AzureIdentityBinding has a Workload ID replacement",
              bindings_migrated),
    CheckSpec("migration.pods_unlabelled", f"no pod labelled {POD_IDENTITY_LABEL}", pods_unlabelled),
    CheckSpec("migration.objects_removed", "no aad-pod-identity objects", objects_removed),
    CheckSpec("migration.components_removed", "no NMI DaemonSet or MIC Deployment", components_removed),
    CheckSpec("migration.crds_removed", "no aadpodidentity.k8s.io CRDs", crds_removed),
    CheckSpec("migration.addon_disabled", "AKS pod identity add-on off (ARM podIdentityProfile)", addon_disabled),
]
MIGRATION_CHECK_IDS = [spec.id for spec in MIGRATION_CHECKS]


def run_migration_checks(
    facts: MigrationFacts, cluster: ClusterFacts, azure: AzureConfig | None, expect: ExpectConfig | None = None
) -> list[CheckResult]:
    return run_chain(MIGRATION_CHECKS, MigrationContext(facts, cluster, azure, expect or ExpectConfig()))
