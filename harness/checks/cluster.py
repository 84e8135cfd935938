"""Cluster checks: OIDC issuer (enabled, discovery, JWKS), workload identity, the webhook (installed,
failurePolicy Fail, objectSelector, ready)."""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from harness.checks import remediation as fix
from harness.checks.admission import refusal_cause, refusal_looks
from harness.checks.chain import CheckSpec, run_chain
from harness.checks.common import arm_failure_finding, kube_call_failed
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
from harness.commands import Step, advice, render
from harness.config import AzureConfig, ExpectConfig
from harness.facts import ClusterFacts, Fetched, WebhookPodNotStarted, WebhookPodUnscheduled
from harness.names import (
    USE_LABEL,
    WEBHOOK_CERT_SECRET,
    WEBHOOK_CONFIG_MAP,
    WEBHOOK_DEPLOYMENT,
    WEBHOOK_MWC,
    WEBHOOK_NAME,
    WEBHOOK_NAMESPACES,
    WEBHOOK_SERVICE,
)
from harness.values import counted


@dataclass
class ClusterContext:
    facts: ClusterFacts
    azure: AzureConfig | None
    expect: ExpectConfig = field(default_factory=ExpectConfig)


def _arm_properties(facts: ClusterFacts) -> dict[str, Any]:
    return ((facts.arm_cluster.body if facts.arm_cluster else None) or {}).get("properties") or {}


def _arm_failure(ctx: ClusterContext, fetched: Fetched) -> Outcome:
    return failed(
        f"ARM could not tell: {fetched.describe()}",
        {"arm": fetched.__dict__},
        arm_failure_finding(
            fetched,
            "cluster",
            "the managed cluster could not be read from ARM",
            "CLUSTER_NOT_FOUND",
            fix.aks_show(ctx.azure, "-o", "json"),
            ctx.azure,
            fix.cluster_gone(ctx.azure, fetched.code == "ResourceGroupNotFound"),
        ),
    )


def oidc_issuer_enabled(ctx: ClusterContext) -> Outcome:
    facts = ctx.facts
    if facts.arm_cluster is not None:
        if not facts.arm_cluster.ok:
            return _arm_failure(ctx, facts.arm_cluster)
        profile = _arm_properties(facts).get("oidcIssuerProfile") or {}
        evidence = {"source": "arm", "oidcIssuerProfile": profile}
        if profile.get("enabled") and facts.issuer_url:
            return passed(f"OIDC issuer enabled: {facts.issuer_url}", evidence)
        return failed(
            "the cluster's OIDC issuer is not enabled (oidcIssuerProfile)",
            evidence,
            Finding(
                "OIDC_ISSUER_DISABLED",
                ERROR,
                "cluster",
                "the AKS OIDC issuer is not enabled",
                evidence,
                [fix.enable_oidc_issuer(ctx.azure), fix.show_issuer(ctx.azure)],
            ),
        )
    discovery = facts.kube_discovery
    evidence = {"source": "kube-discovery", "api_server_discovery": discovery.__dict__ if discovery else None}
    if facts.issuer_url:
        return passed(
            f"the API server publishes issuer {facts.issuer_url} (Azure not configured: ARM not asked)",
            evidence,
        )
    return failed(
        "the cluster's service-account issuer is unknown: no Azure access configured and the API "
        f"server's discovery document is unavailable ({discovery.describe() if discovery else 'not read'})",
        evidence,
        Finding(
            "OIDC_ISSUER_UNKNOWN",
            ERROR,
            "cluster",
            "cannot determine the cluster's OIDC issuer URL",
            evidence,
            [fix.kubectl("get", "--raw", "/.well-known/openid-configuration"), fix.show_issuer(ctx.azure)],
        ),
    )


def issuer_discovery(ctx: ClusterContext) -> Outcome:
    facts = ctx.facts
    fetched = facts.issuer_discovery
    issuer = facts.issuer_url or ""
    if fetched is None:
        return skipped("no issuer URL to fetch")
    body = fetched.body if isinstance(fetched.body, dict) else {}
    evidence = {
        "url": fetched.url,
        "status": fetched.status,
        "document": body or None,
        "error": fetched.error,
    }
    remediation = [fix.curl(fetched.url), fix.show_issuer(ctx.azure)]
    if not fetched.ok:
        return failed(
            f"the issuer's discovery document is not reachable: {fetched.describe()} "
            "(Entra answers AADSTS50166/90061 when it cannot fetch it)",
            evidence,
            Finding(
                "ISSUER_DISCOVERY_UNREACHABLE",
                ERROR,
                "cluster",
                f"OIDC discovery document unreachable: {fetched.describe()}",
                evidence,
                remediation,
            ),
        )
    if body.get("issuer") != issuer:
        hint = slash_hint(str(body.get("issuer")), issuer)
        return failed(
            f"the discovery document names issuer {body.get('issuer')!r}, not {issuer!r}{hint}",
            evidence,
            Finding(
                "ISSUER_DISCOVERY_MISMATCH",
                ERROR,
                "cluster",
                f"discovery issuer {body.get('issuer')!r} != cluster issuer {issuer!r}{hint}",
                evidence,
                remediation,
            ),
        )
    if not body.get("jwks_uri"):
        return failed(
            "the discovery document has no jwks_uri",
            evidence,
            Finding(
                "ISSUER_DISCOVERY_INVALID",
                ERROR,
                "cluster",
                "discovery document without jwks_uri",
                evidence,
                remediation,
            ),
        )
    return passed(
        f"discovery document at {fetched.url} names issuer {issuer} and jwks_uri {body['jwks_uri']}", evidence
    )


def issuer_jwks(ctx: ClusterContext) -> Outcome:
    fetched = ctx.facts.issuer_jwks
    if fetched is None:
        return skipped("no jwks_uri to fetch")
    keys = (fetched.body or {}).get("keys") if isinstance(fetched.body, dict) else None
    summary = [
        {k: key.get(k) for k in ("kid", "kty", "alg", "use")} for key in keys or [] if isinstance(key, dict)
    ]
    evidence = {"url": fetched.url, "status": fetched.status, "keys": summary, "error": fetched.error}
    remediation = [fix.curl(fetched.url)]
    if not fetched.ok:
        return failed(
            f"the JWKS is not reachable: {fetched.describe()}",
            evidence,
            Finding(
                "ISSUER_JWKS_UNREACHABLE",
                ERROR,
                "cluster",
                f"JWKS unreachable: {fetched.describe()}",
                evidence,
                remediation,
            ),
        )
    usable = [
        k
        for k in summary
        if k.get("kty") == "RSA" and k.get("alg") in (None, "RS256") and k.get("use") in (None, "sig")
    ]
    if not usable:
        return failed(
            "the JWKS holds no RS256 signing key (Entra supports RS256 issuer tokens only)",
            evidence,
            Finding(
                "ISSUER_JWKS_INVALID",
                ERROR,
                "cluster",
                "JWKS without an RSA/RS256 signing key",
                evidence,
                remediation,
            ),
        )
    return passed(f"JWKS at {fetched.url} holds {counted(len(usable), 'RS256 signing key')}", evidence)


@dataclass(frozen=True)
class WebhookInstall:
    """One running install of the webhook: the AKS add-on (kube-system) or the Helm chart (any other namespace)."""

    kind: str  # addon | chart
    namespace: str
    release: str | None  # the Helm release that owns it (meta.helm.sh/release-name), when it says

    def describe(self) -> str:
        if self.kind == "chart" and not self.release:  # upstream's deployment YAML, or a chart a tool rendered
            return f"the self-managed webhook in {self.namespace} (no Helm release owns it)"
        what = "the AKS add-on" if self.kind == "addon" else "the Helm chart"
        return f"{what} in {self.namespace}" + (f" (release {self.release})" if self.release else "")


def webhook_installs(facts: ClusterFacts) -> list[WebhookInstall]:
    """Who installed the webhook, one entry per namespace its Deployment runs in."""
    installs: dict[str, WebhookInstall] = {}
    for deployment in facts.webhook_deployments:
        meta = deployment.get("metadata") or {}
        namespace = str(meta.get("namespace") or "")
        if not namespace or namespace in installs:
            continue
        release = (meta.get("annotations") or {}).get("meta.helm.sh/release-name")
        kind = "addon" if namespace == WEBHOOK_NAMESPACES[0] else "chart"
        installs[namespace] = WebhookInstall(kind, namespace, str(release) if release else None)
    if not installs:
        # no webhook Deployment (kubectl delete deployment, a half-done helm uninstall): the webhook's
        # configuration still says whose it is, by the Helm release that owns it and the Service it calls
        for configuration in facts.webhook_configurations:
            annotations = (configuration.get("metadata") or {}).get("annotations") or {}
            for hook in configuration.get("webhooks") or []:
                if hook.get("name") != WEBHOOK_NAME:
                    continue
                service = (hook.get("clientConfig") or {}).get("service") or {}
                namespace = str(annotations.get("meta.helm.sh/release-namespace") or service.get("namespace") or "")
                if namespace and namespace not in installs:
                    release = annotations.get("meta.helm.sh/release-name")
                    kind = "addon" if namespace == WEBHOOK_NAMESPACES[0] else "chart"
                    installs[namespace] = WebhookInstall(kind, namespace, str(release) if release else None)
    return list(installs.values())


def chart_install(facts: ClusterFacts) -> WebhookInstall | None:
    """The Helm chart's install when the chart (and not the add-on) provides the webhook."""
    installs = webhook_installs(facts)
    charts = [i for i in installs if i.kind == "chart"]
    return charts[0] if charts and len(installs) == 1 else None


def enable_webhook(facts: ClusterFacts, azure: AzureConfig | None) -> list[Step]:
    """How to (re)install the webhook: through the chart where the chart provides it, never the add-on over it."""
    chart = chart_install(facts)
    if chart is not None and not chart.release:  # upstream's deployment YAML, or a tool that renders the chart
        return fix.webhook_manifest_again(_webhook_version(facts), azure.tenant_id if azure else None)
    if chart is not None:
        return [fix.helm_upgrade_chart(chart.release, chart.namespace)]
    return [fix.aks_update(azure, "--enable-oidc-issuer", "--enable-workload-identity")]


def _webhook_version(facts: ClusterFacts) -> str | None:
    """The release of the webhook's Deployment, read from its manager image's tag (webhook:v1.5.1)."""
    for deployment in facts.webhook_deployments:
        template = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
        for container in template.get("containers") or []:
            tag = str(container.get("image") or "").split("@", 1)[0].rpartition(":")[2]
            if tag.startswith("v"):
                return tag
    return None


def _reinstall_deleted(facts: ClusterFacts, azure: AzureConfig | None) -> list[Step]:
    """The webhook Deployment gone while its configuration stays: the install that owns the configuration made
    again (helm upgrade creates the chart's objects that are missing; the add-on's are AKS's to reconcile)."""
    if not webhook_installs(facts):
        return []
    return [advice("the webhook's configuration is still there: the install that owns it makes its Deployment again"),
            *enable_webhook(facts, azure)]


def workload_identity_enabled(ctx: ClusterContext) -> Outcome:
    facts = ctx.facts
    if facts.arm_cluster is None:
        return skipped("no Azure access configured (azure: in harness.yaml); the webhook checks stand in")
    if not facts.arm_cluster.ok:
        return _arm_failure(ctx, facts.arm_cluster)
    profile = (_arm_properties(facts).get("securityProfile") or {}).get("workloadIdentity") or {}
    evidence: dict[str, Any] = {"securityProfile.workloadIdentity": profile}
    if profile.get("enabled"):
        return passed("workload identity is enabled on the cluster", evidence)
    chart = chart_install(facts)
    if chart is not None:
        evidence["webhook_install"] = chart.__dict__
        return passed(
            f"the AKS workload identity add-on is off and the webhook comes from {chart.describe()}: a valid "
            "setup (do not enable the add-on on top of the chart)",
            evidence,
        )
    return failed(
        "workload identity is not enabled on the cluster (securityProfile.workloadIdentity)",
        evidence,
        Finding(
            "WORKLOAD_IDENTITY_DISABLED",
            ERROR,
            "cluster",
            "the AKS workload identity add-on is off",
            evidence,
            [fix.aks_update(ctx.azure, "--enable-oidc-issuer", "--enable-workload-identity")],
        ),
    )


def cluster_identity_type(ctx: ClusterContext) -> Outcome:
    """The cluster's own (control plane) identity is of the expected type: the runbook expects one user-assigned
    identity (``az aks show --query identity``)."""
    facts, expected = ctx.facts, ctx.expect.cluster_identity
    if facts.arm_cluster is None:
        return skipped("no Azure access configured (azure: in harness.yaml)")
    if not facts.arm_cluster.ok:
        return _arm_failure(ctx, facts.arm_cluster)
    identity = ((facts.arm_cluster.body or {}).get("identity")) or {}
    kind = str(identity.get("type") or "None")
    assigned = sorted((identity.get("userAssignedIdentities") or {}).keys())
    evidence = {"type": kind, "userAssignedIdentities": assigned, "expected": expected}
    if expected == "any":
        return passed(f"cluster identity {kind} (any type accepted: expect.cluster_identity is any)", evidence)
    if kind.lower() != expected.lower():
        return failed(
            f"the cluster's identity is {kind}, expected {expected} (expect.cluster_identity in harness.yaml)",
            evidence,
            Finding(
                "CLUSTER_IDENTITY_UNEXPECTED",
                ERROR,
                "cluster",
                f"the cluster's own identity is {kind}, not {expected}",
                evidence,
                _identity_fix(ctx, expected),
            ),
        )
    if expected == "userAssigned" and len(assigned) != 1:
        return warned(
            f"the cluster has {len(assigned)} user-assigned identities, the runbook expects exactly one",
            evidence,
            Finding("CLUSTER_IDENTITY_UNEXPECTED", WARNING, "cluster",
                    f"{len(assigned)} user-assigned cluster identities", evidence,
                    [fix.aks_show(ctx.azure, "--query", "identity", "-o", "json")]),
        )
    return passed(f"cluster identity {kind}" + (f" ({assigned[0].rsplit('/', 1)[-1]})" if assigned else ""),
                  evidence)


def _identity_fix(ctx: ClusterContext, expected: str) -> list[Step]:
    if expected == "userAssigned":
        return [
            fix.aks_update(ctx.azure, "--enable-managed-identity", "--assign-identity", "<identity-resource-id>",
                           "--yes", note="which user-assigned identity is yours to choose; --yes: az asks before "
                           "it changes the identity, and a pasted line would answer"),
            advice("then: az aks nodepool upgrade --node-image-only for each pool, so nodes use the new identity"),
        ]
    return [fix.aks_update(ctx.azure, "--enable-managed-identity", "--yes",
                           note="--yes: az asks before it changes the identity, and a pasted line would answer")]


def _mwc_summary(mwc: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": (mwc.get("metadata") or {}).get("name"),
        "webhooks": [
            {
                k: hook.get(k)
                for k in ("name", "failurePolicy", "objectSelector", "namespaceSelector", "clientConfig")
            }
            for hook in mwc.get("webhooks") or []
        ],
    }


def _hooks(ctx: ClusterContext) -> list[dict[str, Any]]:
    return [
        hook
        for mwc in ctx.facts.webhook_configurations
        for hook in mwc.get("webhooks") or []
        if hook.get("name") == WEBHOOK_NAME or "azure-workload-identity" in str(hook.get("name"))
    ]


def webhook_service(facts: ClusterFacts) -> tuple[str, str]:
    """(namespace, name) of the Service the API server calls for the webhook, from its configuration; the
    AKS add-on's defaults when no configuration names one."""
    for mwc in facts.webhook_configurations:
        for hook in mwc.get("webhooks") or []:
            service = (hook.get("clientConfig") or {}).get("service") or {}
            if service.get("namespace") and service.get("name"):
                return str(service["namespace"]), str(service["name"])
    return WEBHOOK_NAMESPACES[0], WEBHOOK_SERVICE


def webhook_configuration_name(facts: ClusterFacts) -> str:
    names = [str((m.get("metadata") or {}).get("name") or "") for m in facts.webhook_configurations]
    return next((name for name in names if name), WEBHOOK_MWC)


def webhook_namespace(facts: ClusterFacts) -> str:
    """Where the webhook runs: its Deployment's namespace, else its Service's, else kube-system (AKS)."""
    for deployment in facts.webhook_deployments:
        namespace = (deployment.get("metadata") or {}).get("namespace")
        if namespace:
            return str(namespace)
    return webhook_service(facts)[0]


def webhook_installed(ctx: ClusterContext) -> Outcome:
    facts = ctx.facts
    if facts.webhook_configurations_error is not None:
        return kube_call_failed(
            facts.webhook_configurations_error,
            "cluster",
            "list MutatingWebhookConfigurations",
            fix.can_i("list", "mutatingwebhookconfigurations"),
            facts,
            ctx.azure,
        )
    evidence = {"configurations": [_mwc_summary(m) for m in facts.webhook_configurations]}
    if not _hooks(ctx):
        deployments = [(d.get("metadata") or {}).get("namespace") for d in facts.webhook_deployments]
        evidence["deployments_found_in"] = deployments
        return failed(
            "the azure-workload-identity mutating webhook is not installed: no "
            f"MutatingWebhookConfiguration holds {WEBHOOK_NAME}",
            evidence,
            Finding(
                "WEBHOOK_NOT_INSTALLED",
                ERROR,
                "webhook",
                "no azure-workload-identity mutating webhook: pods get no AZURE_* env and no token",
                evidence,
                [*enable_webhook(facts, ctx.azure), fix.kubectl("get", "mutatingwebhookconfigurations")],
            ),
        )
    installs = webhook_installs(facts)
    evidence["installs"] = [install.__dict__ for install in installs]
    if len(installs) > 1 or len(facts.webhook_configurations) > 1:
        where = ", ".join(install.describe() for install in installs) or (
            f"{len(facts.webhook_configurations)} webhook configurations"
        )
        return failed(
            f"the workload identity webhook is installed more than once ({where}): the installs fight over "
            "the webhook's certificate and objects",
            evidence,
            Finding(
                "WEBHOOK_DUPLICATE",
                ERROR,
                "webhook",
                f"more than one workload identity webhook install: {where}; keep exactly one",
                evidence,
                _remove_duplicate(ctx, installs),
            ),
        )
    names = ", ".join(str(s["name"]) for s in evidence["configurations"])
    return passed(f"webhook {WEBHOOK_NAME} installed ({names})", evidence)


def _remove_duplicate(ctx: ClusterContext, installs: list[WebhookInstall]) -> list[Step]:
    """Keep one install. The two ways (the add-on turned off, the chart uninstalled) each remove a webhook, so only
    one is printed as commands and the other as a comment: pasted as printed, the fix keeps one webhook, never
    none. The add-on off is the printed one: it leaves the chart, a valid setup with ARM's flag false, whereas
    helm uninstall deletes by name the cluster-scoped objects both installs share (the configuration, the
    cluster role: Azure/azure-workload-identity#1295), which the add-on then lacks until AKS puts them back
    (unverified: when AKS reconciles them)."""
    steps: list[Step] = [
        fix.kubectl("get", "deployment", "-A", "-l", "azure-workload-identity.io/system=true"),
        fix.helm_list_webhook(),
    ]
    charts = [fix.helm_uninstall(i.release, i.namespace) for i in installs if i.kind == "chart"]
    if any(i.kind == "addon" for i in installs):
        steps += [advice("keep one install, not both (a person decides); as printed, the add-on is turned off and "
                         "the chart kept:"),
                  fix.aks_update(ctx.azure, "--disable-workload-identity")]
        steps += [advice("or, to keep the add-on instead (AKS manages it), uninstall the chart, not the line "
                         f"above: {render(chart)}") for chart in charts]
        return steps
    return [*steps, *[advice("keep one install, uninstall the others (a person decides which): "
                             + render(chart)) for chart in charts]]


def webhook_failure_policy(ctx: ClusterContext) -> Outcome:
    hooks = _hooks(ctx)
    policies = {str(h.get("name")): h.get("failurePolicy", "Fail") for h in hooks}
    if all(p == "Fail" for p in policies.values()):
        once = _not_reinvoked(ctx)
        if once:
            return once
        return passed(
            "failurePolicy Fail: pods are refused rather than silently started without identity",
            {"failurePolicy": policies},
        )
    shown = ", ".join(f"{policy} on {name}" for name, policy in policies.items() if policy != "Fail")
    return failed(
        f"failurePolicy {shown}: with Ignore, pods start unmutated when the webhook is down",
        {"failurePolicy": policies},
        Finding(
            "WEBHOOK_FAILURE_POLICY_IGNORE",
            ERROR,
            "webhook",
            f"the webhook's failurePolicy is not Fail ({shown})",
            {"failurePolicy": policies},
            [
                advice("the add-on and the chart ship failurePolicy Fail (since v1.0.0): an older webhook, or the "
                       "configuration edited by hand; put Fail back:"),
                *_failure_policy_patches(ctx),
            ],
        ),
    )


def _failure_policy_patches(ctx: ClusterContext) -> list[Step]:
    """failurePolicy Fail set again on each workload identity webhook that has another, by a JSON patch that tests
    the webhook's name at its index first (a configuration changed since the run is refused, not patched in the
    wrong place). Not the install's own command: helm upgrade without --version moves the chart to its latest
    release (helm.sh's helm upgrade page: a chart reference takes its latest version unless --version is given), a
    webhook upgrade nobody asked for, and the chart's template renders failurePolicy Fail as-is, so a patch is what
    the release would render (Azure/azure-workload-identity charts/workload-identity-webhook templates)."""
    steps: list[Step] = []
    for mwc in ctx.facts.webhook_configurations:
        name = str((mwc.get("metadata") or {}).get("name") or "")
        for index, hook in enumerate(mwc.get("webhooks") or []):
            hook_name = str(hook.get("name") or "")
            if hook not in _hooks(ctx) or hook.get("failurePolicy", "Fail") == "Fail":
                continue
            ops = [{"op": "test", "path": f"/webhooks/{index}/name", "value": hook_name},
                   {"op": "replace", "path": f"/webhooks/{index}/failurePolicy", "value": "Fail"}]
            steps.append(fix.kubectl("patch", "mutatingwebhookconfiguration", fix.object_or(name, "<configuration>"),
                                     "--type", "json", "-p", json.dumps(ops, separators=(",", ":"))))
    return steps


def _not_reinvoked(ctx: ClusterContext) -> Outcome | None:
    """A webhook whose reinvocationPolicy is not IfNeeded (Never, the API's default when unset): the chart and the
    add-on ship IfNeeded since v1.0.0 (Azure/azure-workload-identity#794) so that containers a later mutating
    webhook adds (a sidecar injector: Dapr's daprd, another vendor's agent) get the AZURE_* env and the token
    mount too; with Never the API server calls it once, before them. A warning: only pods such an injector also
    changes lose it. The fix puts IfNeeded back, a test of the name at its index first.
    unverified: that the AKS add-on's configuration carries IfNeeded as the chart's does (its templates are not
    public); the lab's does."""
    evidence: dict[str, Any] = {}
    steps: list[Step] = []
    for mwc in ctx.facts.webhook_configurations:
        name = str((mwc.get("metadata") or {}).get("name") or "")
        for index, hook in enumerate(mwc.get("webhooks") or []):
            if hook.get("name") != WEBHOOK_NAME or hook.get("reinvocationPolicy") == "IfNeeded":
                continue
            evidence[str(hook.get("name"))] = hook.get("reinvocationPolicy") or "unset (Never)"
            ops = [{"op": "test", "path": f"/webhooks/{index}/name", "value": WEBHOOK_NAME},
                   {"op": "add", "path": f"/webhooks/{index}/reinvocationPolicy", "value": "IfNeeded"}]
            steps.append(fix.kubectl("patch", "mutatingwebhookconfiguration", fix.object_or(name, "<configuration>"),
                                     "--type", "json", "-p", json.dumps(ops, separators=(",", ":"))))
    if not steps:
        return None
    said = ("failurePolicy Fail, but the webhook's reinvocationPolicy is " + ", ".join(sorted(set(evidence.values())))
            + " (the chart and the add-on ship IfNeeded): containers another mutating webhook adds after it (a "
            "sidecar injector) get no AZURE_* env nor token mount")
    return warned(said, {"reinvocationPolicy": evidence},
                  Finding("WEBHOOK_REINVOCATION_NEVER", WARNING, "webhook", said, {"reinvocationPolicy": evidence},
                          [advice("put IfNeeded back (the API server then calls the webhook again after a later "
                                  "webhook changed the pod); new pods get it:"), *steps]))


def _uses_label(requirement: dict[str, Any]) -> bool:
    return (requirement.get("key") == USE_LABEL and requirement.get("operator") == "In"
            and "true" in (requirement.get("values") or []))


def label_values(values: Any) -> str:
    """A label selector requirement's values as kubectl prints a selector ("team in (finance,payments)"), not as a
    Python list ("['finance', 'payments']")."""
    return "(" + ",".join(str(v) for v in values) + ")" if isinstance(values, list) else str(values)


def _extra_requirements(selector: dict[str, Any] | None) -> list[str]:
    """What an objectSelector requires beside the use label (the chart and add-on ship that label alone): each
    one a labelled pod must also meet, or the API server does not call the webhook for it."""
    selector = selector or {}
    extra = [f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items() if k != USE_LABEL]
    extra += [f"{e.get('key')} {e.get('operator')}" + (f" {label_values(e['values'])}" if e.get("values") else "")
              for e in selector.get("matchExpressions") or [] if isinstance(e, dict) and not _uses_label(e)]
    return extra


def _selects_use(selector: dict[str, Any] | None) -> bool:
    selector = selector or {}
    return ((selector.get("matchLabels") or {}).get(USE_LABEL) == "true"
            or any(_uses_label(e) for e in selector.get("matchExpressions") or [] if isinstance(e, dict)))


def _other_use_values(selectors: dict[str, Any]) -> list[str]:
    """The use label's values other than "true" that the webhooks' objectSelectors ask for (matchLabels, or In),
    edited by hand ("true" -> "enabled"): pods labelled "true", as the docs say, are not selected."""
    wanted: list[str] = []
    for selector in selectors.values():
        selector = selector if isinstance(selector, dict) else {}
        value = (selector.get("matchLabels") or {}).get(USE_LABEL)
        if value is not None and value != "true":
            wanted.append(f"{USE_LABEL}={value}")
        wanted += [f"{USE_LABEL} In {label_values(e.get('values'))}" for e in selector.get("matchExpressions") or []
                   if isinstance(e, dict) and e.get("key") == USE_LABEL and e.get("operator") == "In"
                   and "true" not in (e.get("values") or [])]
    return wanted


def webhook_object_selector(ctx: ClusterContext) -> Outcome:
    selectors = {str(h.get("name")): h.get("objectSelector") for h in _hooks(ctx)}
    good = {name: s for name, s in selectors.items() if _selects_use(s) and not _extra_requirements(s)}
    if len(good) == len(selectors):
        return passed(
            f'objectSelector selects pods labelled {USE_LABEL}: "true"', {"objectSelector": selectors}
        )
    bad = [name for name in selectors if name not in good]
    narrowed = {name: _extra_requirements(selectors[name]) for name in bad if _selects_use(selectors[name])}
    if narrowed and len(narrowed) == len(bad):
        also = "; ".join(f"{name} also requires {', '.join(extra)}" for name, extra in narrowed.items())
        return failed(
            f'objectSelector requires more than {USE_LABEL}: "true" ({also}): a pod with the use label alone is '
            "not mutated",
            {"objectSelector": selectors},
            Finding(
                "WEBHOOK_OBJECT_SELECTOR_MISSING",
                ERROR,
                "webhook",
                f"the webhook selects pods by more than the {USE_LABEL} label: {also}",
                {"objectSelector": selectors},
                [fix.kubectl("get", "mutatingwebhookconfiguration", webhook_configuration_name(ctx.facts), "-o",
                             "yaml"),
                 advice(f"put back the objectSelector the webhook ships with (matchLabels {USE_LABEL}: \"true\" "
                        "alone):"),
                 *object_selector_patches(ctx, set(narrowed))],
            ),
        )
    return failed(
        f"objectSelector does not select on {USE_LABEL}=true: {selectors}",
        {"objectSelector": selectors},
        Finding(
            "WEBHOOK_OBJECT_SELECTOR_MISSING",
            ERROR,
            "webhook",
            f"the webhook selects pods by {', '.join(other)}, not {USE_LABEL}: \"true\" (the add-on's and the "
            "chart's selector, the label the workloads carry)" if (other := _other_use_values(selectors)) else
            f"the webhook does not select pods by the {USE_LABEL} label",
            {"objectSelector": selectors},
            [fix.kubectl("get", "mutatingwebhookconfiguration", webhook_configuration_name(ctx.facts), "-o", "yaml"),
             advice(f"put back the objectSelector the webhook ships with (matchLabels {USE_LABEL}: \"true\"); "
                    "a reinstall (helm upgrade) alone merges its selector into the edited one and keeps the "
                    "labels added by hand:"),
             *object_selector_patches(ctx, set(selectors) - set(good))],
        ),
    )


def object_selector_patches(ctx: ClusterContext, names: set[str]) -> list[Step]:
    """A JSON patch (kubectl's --type json) per webhook whose objectSelector lost the label: a test of the name at
    its index (a configuration changed since the run is refused), then the chart's and add-on's objectSelector."""
    steps: list[Step] = []
    shipped = {"matchLabels": {USE_LABEL: "true"}}
    for mwc in ctx.facts.webhook_configurations:
        name = str((mwc.get("metadata") or {}).get("name") or "")
        for index, hook in enumerate(mwc.get("webhooks") or []):
            if str(hook.get("name")) not in names:
                continue
            ops = [{"op": "test", "path": f"/webhooks/{index}/name", "value": hook.get("name")},
                   {"op": "replace" if "objectSelector" in hook else "add",
                    "path": f"/webhooks/{index}/objectSelector", "value": shipped}]
            steps.append(fix.kubectl("patch", "mutatingwebhookconfiguration", fix.object_or(name, "<configuration>"),
                                     "--type", "json", "-p", json.dumps(ops, separators=(",", ":"))))
    return steps


# autorest/azure environments.go as of autorest v0.11.30 (AWI v1.6.0's go.mod): the AZURE_ENVIRONMENT names
# getAzureAuthorityHost accepts, case-insensitively ("" is the public cloud)
WEBHOOK_CLOUDS = ("AzurePublicCloud", "AzureCloud", "AzureUSGovernmentCloud", "AzureUSGovernment", "AzureChinaCloud",
                  "AzureGermanCloud")


# the webhook's AZURE_ENVIRONMENT names (go-autorest's environments, getAzureAuthorityHost) by authority host
WEBHOOK_ENVIRONMENTS = {
    "https://login.microsoftonline.com/": "AzurePublicCloud",
    "https://login.chinacloudapi.cn/": "AzureChinaCloud",
    "https://login.microsoftonline.us/": "AzureUSGovernmentCloud",
}


def configured_environment(azure: AzureConfig | None) -> str | None:
    """The webhook's AZURE_ENVIRONMENT for harness.yaml's cloud; None without one, or for a custom cloud."""
    if azure is None:
        return None
    return WEBHOOK_ENVIRONMENTS.get(azure.cloud.endpoints.authority_host.rstrip("/") + "/")


def webhook_config_problem(data: dict[str, str] | None) -> tuple[str, str, str] | None:
    """What NewPodMutator refuses in the webhook's ConfigMap, making the manager panic at start-up: (key, what is
    wrong, the value to set, "" when the harness cannot tell). config.ParseConfig requires AZURE_TENANT_ID (an empty
    one is taken as missing: unverified, the lab's reading); getAzureAuthorityHost refuses an AZURE_ENVIRONMENT
    go-autorest has no cloud for ('autorest/azure: There is no cloud environment matching the name ...'). None
    when the ConfigMap was not read."""
    if data is None:
        return None
    if not (data.get("AZURE_TENANT_ID") or "").strip():
        return "AZURE_TENANT_ID", "has no AZURE_TENANT_ID, which the webhook requires", ""
    cloud = data.get("AZURE_ENVIRONMENT") or ""
    if cloud and cloud.upper() not in {name.upper() for name in WEBHOOK_CLOUDS}:
        close = difflib.get_close_matches(cloud.upper(), [name.upper() for name in WEBHOOK_CLOUDS], 1, 0.6)
        wanted = next((name for name in WEBHOOK_CLOUDS if close and name.upper() == close[0]), "")
        return ("AZURE_ENVIRONMENT", f"has AZURE_ENVIRONMENT {json.dumps(cloud)}, which is no Azure cloud the webhook "
                f"knows ({', '.join(WEBHOOK_CLOUDS)})", wanted)
    return None


def _webhook_config_fix(ctx: ClusterContext, namespace: str, problem: tuple[str, str, str]) -> list[Step]:
    """The ConfigMap's value put right, then the webhook's pods made again (they read it at start-up): through the
    chart's values where the chart provides the webhook (helm upgrade would put a hand edit back), else the
    ConfigMap itself."""
    key, _, wanted = problem
    if key == "AZURE_TENANT_ID":
        wanted = (ctx.azure.tenant_id if ctx.azure else None) or ""
    else:  # harness.yaml's cloud decides; else (a custom cloud, no azure:) the known name closest to the typo
        wanted = configured_environment(ctx.azure) or wanted
    chart = chart_install(ctx.facts)
    if chart is not None and chart.namespace == namespace:
        return (fix.helm_set_chart_tenant(chart.release, chart.namespace, wanted or None) if key == "AZURE_TENANT_ID"
                else fix.helm_set_chart_environment(chart.release, chart.namespace, wanted or None))
    ns = fix.namespace_or(namespace)
    placeholder = "<tenant-id>" if key == "AZURE_TENANT_ID" else "<environment>"
    return [
        fix.kubectl("-n", ns, "patch", "configmap", WEBHOOK_CONFIG_MAP, "--type", "merge", "-p",
                    json.dumps({"data": {key: wanted or placeholder}}, separators=(",", ":")),
                    note="the cluster's tenant" if key == "AZURE_TENANT_ID" else "the cluster's cloud"),
        *fix.webhook_pods_back(namespace, WEBHOOK_DEPLOYMENT, None),
    ]


def webhook_ready(ctx: ClusterContext) -> Outcome:
    facts = ctx.facts
    if not facts.webhook_deployments:
        error = facts.webhook_deployment_error
        if error is not None:  # not "absent": the harness could not look
            return kube_call_failed(
                error,
                "webhook",
                f"read the webhook Deployment {WEBHOOK_DEPLOYMENT}",
                fix.can_i("get", "deployments", webhook_namespace(facts)),
                facts,
                ctx.azure,
            )
        return failed(
            f"the webhook Deployment {WEBHOOK_DEPLOYMENT} was not found",
            {"error": None},
            Finding(
                "WEBHOOK_NOT_READY",
                ERROR,
                "webhook",
                "webhook deployment not found",
                {},
                [fix.kubectl("get", "deployment", "-A", "-l", "azure-workload-identity.io/system=true"),
                 *_reinstall_deleted(facts, ctx.azure)],
            ),
        )
    evidence: dict[str, Any] = {"deployments": []}
    ready_any = False
    degraded = False
    stuck: list[str] = []
    refused: list[tuple[str, str, str]] = []  # (namespace, name, the ReplicaSet's refusal)
    for deployment in facts.webhook_deployments:
        meta, status = deployment.get("metadata") or {}, deployment.get("status") or {}
        wanted = (deployment.get("spec") or {}).get("replicas", 1)
        ready = status.get("readyReplicas", 0) or 0
        evidence["deployments"].append(
            {
                "namespace": meta.get("namespace"),
                "name": meta.get("name"),
                "replicas": wanted,
                "readyReplicas": ready,
                "availableReplicas": status.get("availableReplicas", 0) or 0,
            }
        )
        ready_any = ready_any or ready > 0
        degraded = degraded or ready < wanted
        failure = next((str(c.get("message") or "") for c in status.get("conditions") or []
                        if c.get("type") == "ReplicaFailure" and c.get("status") == "True"), None)
        if failure:  # its ReplicaSet cannot create pods (the deployment controller copies the condition)
            evidence["deployments"][-1]["replicaFailure"] = failure
            refused.append((str(meta.get("namespace") or ""), str(meta.get("name") or ""), failure))
        # a rollout whose new pods do not become ready: the old ReplicaSet's pods keep serving (maxUnavailable),
        # so readyReplicas looks whole while status.replicas counts the new, unready pods too
        updated = status.get("updatedReplicas", wanted) or 0  # absent: a status that does not say (older facts)
        unavailable = status.get("unavailableReplicas", 0) or 0
        if ready >= wanted and (unavailable > 0 or updated < wanted):
            evidence["deployments"][-1].update({"updatedReplicas": updated, "unavailableReplicas": unavailable})
            stuck.append(f"{meta.get('namespace')}/{meta.get('name')}: {updated} of {wanted} pods run the current "
                         f"template, {unavailable} unavailable")
    namespace = fix.namespace_or(str(evidence["deployments"][0]["namespace"]))
    first = evidence["deployments"][0]
    remediation = [
        fix.kubectl("-n", namespace, "get", "pods", "-l", "azure-workload-identity.io/system=true"),
        # scaled to zero: no pod has a log (kubectl logs deploy/... waits for one, then fails)
        *([] if first["replicas"] == 0 else
          [fix.kubectl("-n", namespace, "logs", f"deploy/{WEBHOOK_DEPLOYMENT}", note="errors start with E")]),
    ]
    back = fix.webhook_pods_back(namespace, str(first["name"]), first["replicas"])
    if refused:
        return _webhook_pods_refused(refused, evidence, ready_any)
    if facts.webhook_unschedulable and (not ready_any or degraded):
        return _webhook_pods_unschedulable(facts.webhook_unschedulable, namespace, evidence, ready_any)
    if facts.webhook_not_started and (not ready_any or degraded):
        return _webhook_pods_not_started(facts.webhook_not_started, namespace, str(first["name"]), evidence, ready_any)
    config = webhook_config_problem(facts.webhook_config.get(str(first["namespace"]) or "", None))
    config_fix = _webhook_config_fix(ctx, str(first["namespace"] or ""), config) if config else []
    if config:
        evidence["config"] = f"{WEBHOOK_CONFIG_MAP} in {namespace}: {config[1]}"
    if not ready_any:
        ignored = any(h.get("failurePolicy", "Fail") == "Ignore" for h in _hooks(ctx))
        return failed(
            "the webhook has no ready replica: " + (
                "with failurePolicy Ignore, labelled pods are admitted without identity (no AZURE_* env, no token)"
                if ignored else "with failurePolicy Fail, labelled pods are refused"),
            evidence,
            Finding("WEBHOOK_NOT_READY", ERROR, "webhook",
                    f"no ready webhook replica: its {WEBHOOK_CONFIG_MAP} in {namespace} {config[1]}, so the manager "
                    "stops at start-up" if config else "no ready webhook replica" + (
                        f": its Deployment {first['namespace']}/{first['name']} is scaled to 0 replicas"
                        if first["replicas"] == 0 else ""), evidence,
                    [*remediation, *config_fix] if config_fix else [*remediation, *back]),
        )
    if degraded:
        return warned(
            "the webhook is up but not all replicas are ready",
            evidence,
            Finding(
                "WEBHOOK_DEGRADED",
                WARNING,
                "webhook",
                "some webhook replicas are not ready",
                evidence,
                remediation,
            ),
        )
    if stuck:
        return warned(
            "the webhook serves from its previous pods, but its rollout does not complete ("
            + "; ".join(stuck) + "): its new pods are not ready, and once the old ones go (a node drained, "
            "an eviction) nothing serves",
            evidence,
            Finding(
                "WEBHOOK_DEGRADED",
                WARNING,
                "webhook",
                "the webhook's rollout is stuck: " + "; ".join(stuck),
                evidence,
                [fix.kubectl("-n", namespace, "get", "pods", "-l", "azure-workload-identity.io/system=true"),
                 fix.kubectl("-n", namespace, "logs", "-l", "azure-workload-identity.io/system=true", "--prefix",
                             "--tail=5", note="the new pods' last lines say why they stop"),
                 fix.kubectl("-n", namespace, "get", "configmap", "azure-wi-webhook-config", "-o", "yaml",
                             note="read at start-up: AZURE_TENANT_ID is required"),
                 *config_fix,
                 advice("fix what the log names (a crashing pod reads its ConfigMap again when it next restarts), "
                        "or go back to the previous template:"),
                 fix.kubectl("-n", namespace, "rollout", "undo", f"deployment/{fix.object_or(str(first['name']), '<deployment>')}")],
            ),
        )
    if facts.webhook_cert_unmountable:
        return _webhook_cert_secret_gone(facts.webhook_cert_unmountable, namespace, evidence)
    return passed(
        "webhook deployment ready: "
        + ", ".join(
            f"{d['namespace']}/{d['name']} {d['readyReplicas']}/{d['replicas']}"
            for d in evidence["deployments"]
        ),
        evidence,
    )


# the scheduler's filter plugins' reasons (kubernetes pkg/scheduler/framework/plugins): NodeUnschedulable's
# ErrReasonUnschedulable (a cordoned node: kubectl cordon or drain, an upgrade) and TaintToleration's
_CORDONED = "node(s) were unschedulable"
_UNTOLERATED = "had untolerated taint"


def _webhook_pods_unschedulable(pending: list[WebhookPodUnscheduled], namespace: str, evidence: dict[str, Any],
                                ready_any: bool) -> Outcome:
    """The webhook's pods exist but no node takes them (PodScheduled False: a node cordoned for a drain or an
    upgrade, a taint they do not tolerate): restarting them makes more pods that wait the same way, so the fix
    names the scheduler's reason and leaves the node to a person; once a node takes them they run, no restart."""
    evidence = {**evidence, "unschedulable": [f"{p.namespace}/{p.pod}: {p.message}" for p in pending]}
    said = pending[0].message
    grouped: dict[str, list[str]] = {}
    for p in pending:
        grouped.setdefault(p.message, []).append(f"{p.namespace}/{p.pod}")
    shown = "; ".join(f"{pods[0]}{f' and {len(pods) - 1} other' if len(pods) > 1 else ''}: {why}"
                      for why, pods in grouped.items())
    steps: list[Step] = [fix.kubectl("-n", namespace, "get", "pods", "-l", "azure-workload-identity.io/system=true",
                                     "-o", "wide")]
    if _CORDONED in said:
        steps += [fix.kubectl("get", "nodes", note="SchedulingDisabled: cordoned"),
                  advice("a person decides: a cordoned node takes no new pods; once the drain or upgrade that "
                         "cordoned it is over, kubectl uncordon NODE and the webhook's pending pods are scheduled "
                         "(no restart needed)")]
    elif _UNTOLERATED in said:
        steps += [fix.kubectl("get", "nodes", "-o", "custom-columns=NAME:.metadata.name,TAINTS:.spec.taints"),
                  advice("a person decides: the webhook's pods tolerate no such taint; give them a node pool they "
                         "may run on (on AKS a node pool's taints change with az aks nodepool update "
                         "--node-taints); a restart does not help")]
    else:
        steps += [fix.kubectl("-n", namespace, "describe", "pods", "-l", "azure-workload-identity.io/system=true",
                              note="the scheduler's events"),
                  advice("a person decides: give the webhook's pods a node they fit (selectors, resources); a "
                         "restart does not help")]
    message = f"the webhook's pods cannot be scheduled: {shown}"
    return _webhook_replicas_short(message, evidence, steps, ready_any, "the ready ones serve")


# the kubelet's FailedMount for a Secret volume whose Secret is not there (pkg/volume/secret: secret "x" not found)
_SECRET_MISSING_RE = re.compile(r'MountVolume\.SetUp failed for volume "[^"]*" : secret "([^"]+)" not found')


def _webhook_pods_not_started(not_started: list[WebhookPodNotStarted], namespace: str, deployment: str,
                              evidence: dict[str, Any], ready_any: bool) -> Outcome:
    """The webhook's pods are scheduled but their manager never starts: the kubelet cannot mount a volume (its
    certificate Secret deleted: the chart's and the add-on's pods mount azure-wi-webhook-server-cert, not optional)
    or resolve an env source. The container has no log and a restart makes more pods that wait the same way, so
    the fix makes what the kubelet names. cert-controller's rotator fills the certificate Secret but never creates
    it (refreshCertIfNeeded reads it first and fails 'acquiring secret to update certificates'; its reconciler
    returns on NotFound): an empty Secret of that name is enough, the rotator writes a new CA and serving
    certificate into it and the caBundle, and the waiting pods start once the kubelet mounts it."""
    evidence = {**evidence, "not_started": [f"{p.namespace}/{p.pod}: {p.reason}: {p.message}" for p in not_started]}
    said = f"{not_started[0].reason}: {not_started[0].message}"
    pod = f"{not_started[0].namespace}/{not_started[0].pod}"
    shown = pod + (f" and {len(not_started) - 1} other" if len(not_started) > 1 else "") + ": " + said
    missing = _SECRET_MISSING_RE.search(said)
    ns = fix.namespace_or(namespace)
    look = fix.kubectl("-n", ns, "describe", "pods", "-l", "azure-workload-identity.io/system=true",
                       note="Events: what the kubelet waits for")
    if missing and missing.group(1) == WEBHOOK_CERT_SECRET:
        message = (f"the webhook's certificate Secret {namespace}/{WEBHOOK_CERT_SECRET} is gone, so its pods cannot "
                   f"mount it and never start ({counted(len(not_started), 'pod')}: {said}); cert-controller fills that Secret but does not create it, "
                   "and a restart makes more pods that wait the same way")
        steps: list[Step] = [
            advice("make the Secret again, empty: the webhook's rotator writes a new CA and serving certificate into "
                   "it and the caBundle, and the waiting pods start once the kubelet mounts it (about a minute)"),
            # kubectl create refuses a Secret that is there (AlreadyExists): pasted twice, it changes nothing.
            # unverified: that the AKS add-on's reconciler leaves a Secret made so in place (its templates are not
            # public); the chart renders it with no data, as this makes it
            fix.kubectl("-n", ns, "create", "secret", "generic", WEBHOOK_CERT_SECRET),
            fix.kubectl("-n", ns, "rollout", "status", f"deployment/{fix.object_or(deployment, '<deployment>')}",
                        "--timeout=180s"),
        ]
    else:
        message = f"the webhook's pods are scheduled but never start: {shown}"
        steps = [look, advice("a person decides: make what the kubelet names in " + namespace + " (a Secret or "
                              "ConfigMap the webhook's Deployment mounts or reads), or take it off the Deployment; "
                              "a restart does not help")]
    return _webhook_replicas_short(message, evidence, steps, ready_any, "the ready ones serve until they restart")


def _webhook_cert_secret_gone(unmountable: list[WebhookPodNotStarted], namespace: str,
                              evidence: dict[str, Any]) -> Outcome:
    """The webhook's certificate Secret deleted while its pods run: they serve from the certificate files the
    kubelet mounted (a Secret volume's SetUp fails before it writes), so the run passes, but cert-controller's
    rotator only updates that Secret, never creates it (refreshCertIfNeeded: 'acquiring secret to update
    certificates' every 12 hours; its reconciler returns on NotFound), so the serving certificate is not renewed,
    and a webhook pod made next (a node drained or upgraded, an eviction) cannot mount it and never starts; with
    none left, failurePolicy Fail refuses every labelled pod. The empty Secret made again is filled by the rotator
    (a new CA, serving certificate and caBundle), which the running pods' kubelet mounts."""
    pods = [f"{p.namespace}/{p.pod}" for p in unmountable]
    evidence = {**evidence, "cert_unmountable": [f"{p}: {u.reason}: {u.message}" for p, u in zip(pods, unmountable,
                                                                                                  strict=True)]}
    ns = fix.namespace_or(namespace)
    message = (f"the webhook's certificate Secret {namespace}/{WEBHOOK_CERT_SECRET} is gone while its pods run "
               f"({', '.join(pods)}: {unmountable[0].reason}: {unmountable[0].message}): they serve from the "
               "certificate they mounted, but its rotator cannot renew it, and the next webhook pod (a node drained "
               "or upgraded, an eviction) cannot mount it and never starts")
    return warned(message, evidence, Finding(
        "WEBHOOK_DEGRADED", WARNING, "webhook", message, evidence,
        [advice("make the Secret again, empty: the webhook's rotator writes a new CA and serving certificate into it "
                "and the caBundle; the running pods' kubelet mounts it at their next sync"),
         # unverified: that the AKS add-on's reconciler leaves a Secret made so in place (as above)
         fix.kubectl("-n", ns, "create", "secret", "generic", WEBHOOK_CERT_SECRET),
         fix.kubectl("-n", ns, "get", "events", "--field-selector", "reason=FailedMount",
                     note="no new FailedMount for the Secret once it is mounted again")]))


def _webhook_pods_refused(refused: list[tuple[str, str, str]], evidence: dict[str, Any], ready_any: bool) -> Outcome:
    """The webhook's ReplicaSet cannot create pods (ReplicaFailure): the API server refuses them for what its
    message names (a quota, Pod Security, a policy, another webhook), not a crash; pods' logs and the ConfigMap say
    nothing of it. With a ready replica left it is a warning (the old pods serve until they go)."""
    said = "; ".join(f"{ns}/{name}: {failure}" for ns, name, failure in refused)
    namespace, name, failure = refused[0]
    ns = fix.namespace_or(namespace)
    cause = refusal_cause(failure)
    steps: list[Step] = [
        fix.kubectl("-n", ns, "describe", f"deployment/{fix.object_or(name, '<deployment>')}"),
        *refusal_looks(failure, namespace),
        advice("a person decides: change what refuses the webhook's pods (" + (cause or "the refusal above")
               + "); its ReplicaSet creates them once they are admitted"),
    ]
    message = f"the API server refuses the webhook's new pods: {said}"
    return _webhook_replicas_short(message, evidence, steps, ready_any, "the previous pods serve until they go",
                                   no_ready_prefix="")


def _webhook_replicas_short(message: str, evidence: dict[str, Any], steps: list[Step], ready_any: bool,
                            serving: str, no_ready_prefix: str = "no ready webhook replica: ") -> Outcome:
    """The webhook's Deployment is short of pods for the reason ``message`` names: WEBHOOK_NOT_READY when no replica
    is ready (failurePolicy Fail refuses labelled pods), else WEBHOOK_DEGRADED, saying who still ``serving``."""
    if not ready_any:
        return failed(message + ": with failurePolicy Fail, labelled pods are refused", evidence,
                      Finding("WEBHOOK_NOT_READY", ERROR, "webhook", no_ready_prefix + message, evidence, steps))
    return warned(f"{message}; {serving}", evidence,
                  Finding("WEBHOOK_DEGRADED", WARNING, "webhook", message, evidence, steps))


def slash_hint(got: str, want: str) -> str:
    if got != got.strip() and got.strip().rstrip("/") == want.rstrip("/"):
        return " (it has whitespace around it: a line end copied with the URL?)"
    if got.rstrip("/") == want.rstrip("/"):
        return " (they differ only by the trailing slash)"
    if got.lower() == want.lower():
        return " (they differ only by case; matching is case-sensitive)"
    return ""


CLUSTER_CHECKS: list[CheckSpec[ClusterContext]] = [
    CheckSpec("cluster.oidc_issuer_enabled", "OIDC issuer enabled", oidc_issuer_enabled),
    CheckSpec(
        "cluster.issuer_discovery",
        "issuer discovery document reachable",
        issuer_discovery,
        ("cluster.oidc_issuer_enabled",),
    ),
    CheckSpec("cluster.issuer_jwks", "issuer JWKS reachable", issuer_jwks, ("cluster.issuer_discovery",)),
    CheckSpec("cluster.workload_identity_enabled", "workload identity enabled", workload_identity_enabled),
    CheckSpec("cluster.identity_type", "cluster identity type", cluster_identity_type),
    CheckSpec("cluster.webhook_installed", "webhook installed", webhook_installed),
    CheckSpec(
        "cluster.webhook_failure_policy",
        "webhook failurePolicy Fail",
        webhook_failure_policy,
        ("cluster.webhook_installed",),
    ),
    CheckSpec(
        "cluster.webhook_object_selector",
        "webhook objectSelector",
        webhook_object_selector,
        ("cluster.webhook_installed",),
    ),
    CheckSpec(
        "cluster.webhook_ready", "webhook deployment ready", webhook_ready, ("cluster.webhook_installed",)
    ),
]
CLUSTER_CHECK_IDS = [spec.id for spec in CLUSTER_CHECKS]


def run_cluster_checks(
    facts: ClusterFacts, azure: AzureConfig | None, expect: ExpectConfig | None = None
) -> list[CheckResult]:
    return run_chain(CLUSTER_CHECKS, ClusterContext(facts, azure, expect or ExpectConfig()))
