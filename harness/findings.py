"""The findings catalogue: every finding code the harness produces, with its layer, severity, what it means,
how it is fixed, and the fault that reproduces it.

``docs/findings.md`` is generated from it (``python -m harness findings --format md > docs/findings.md``), and
tests/harness/test_findings_catalogue.py fails when that file drifts from this module, when a code used in
harness/ is missing here, when this lists a code nothing produces, and when a reproduction named here does not
exist or does not name the code.

A reproduction is one of:

- ``scenario:NAME``: the lab scenario NAME (``pytest suites --lab --lab-scenario NAME``), in the fault matrix
  (tests/harness/test_fault_matrix.py SCENARIOS), which asserts the exact set of error codes it gives;
- ``fault:NAME``: a fault the fault matrix makes in a running lab through its public APIs (FAULTS), with the
  exact set of error codes too;
- ``test:PATH::NAME``: a lab test that makes the fault by hand and asserts the code;
- ``unit:PATH::NAME``: only a test on fake facts (no lab fault yet); ``no_lab_fault`` says why.
"""

from __future__ import annotations

from dataclasses import dataclass

LAB_KINDS = ("scenario", "fault", "test")  # reproductions that break a running lab
FAULT_MATRIX = "tests/harness/test_fault_matrix.py"


@dataclass(frozen=True)
class Entry:
    code: str
    layer: str
    severity: str  # error | warning | info, or "error|warning" where configuration decides
    meaning: str
    fix: str
    reproduced_by: tuple[str, ...] = ()
    no_lab_fault: str = ""  # why no lab fault reproduces it yet (when reproduced_by holds no lab kind)
    # why no command repairs it (the fix is advice: wait, a clock, a person's policy), so the remediation
    # test (tests/harness/test_remediation_repairs_lab.py) has nothing to run for it
    advice_only: str = ""

    @property
    def severities(self) -> tuple[str, ...]:
        return tuple(self.severity.split("|"))

    @property
    def lab_reproduced(self) -> bool:
        return any(ref.split(":", 1)[0] in LAB_KINDS for ref in self.reproduced_by)


def _e(code: str, layer: str, severity: str, meaning: str, fix: str, *reproduced_by: str,
       no_lab_fault: str = "", advice_only: str = "") -> Entry:
    return Entry(code, layer, severity, meaning, fix, reproduced_by, no_lab_fault, advice_only)

CATALOGUE: tuple[Entry, ...] = (
    # ------------------------------------------------------------------ cluster
    _e(
        "OIDC_ISSUER_DISABLED", "cluster", "error",
        "The cluster's OIDC issuer is off: no token it issues can be exchanged.",
        "`az aks update --enable-oidc-issuer`, then restart the workloads.",
        "fault:oidc-issuer-disabled",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "OIDC_ISSUER_UNKNOWN", "cluster", "error",
        "Neither ARM nor the API server's discovery document names the cluster's issuer URL.",
        "Read the issuer with az aks show --query oidcIssuerProfile.issuerUrl; enable the issuer if it "
        "has none.",
        no_lab_fault="the lab's API server always serves its discovery document",
    ),
    _e(
        "CLUSTER_NOT_FOUND", "cluster", "error",
        "ARM has no managed cluster by the configured name and resource group.",
        "Fix azure.cluster_name / azure.resource_group in harness.yaml (az aks list -o table).",
        no_lab_fault="the lab's harness.yaml always names its one cluster; a wrong name is a harness.yaml"
                     " typo",
    ),
    _e(
        "WORKLOAD_IDENTITY_DISABLED", "cluster", "error",
        "Workload identity (the AKS add-on) is off on the cluster.",
        "`az aks update --enable-workload-identity`.",
        "scenario:webhook-absent",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "CLUSTER_IDENTITY_UNEXPECTED", "cluster", "error|warning",
        "The cluster's own identity is not of the type expect.cluster_identity names (the migration "
        "runbook expects user-assigned).",
        "`az aks update --assign-identity` with a user-assigned identity, or set expect.cluster_identity.",
        "fault:cluster-identity-unexpected",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "ISSUER_DISCOVERY_UNREACHABLE", "cluster", "error",
        "The issuer's /.well-known/openid-configuration cannot be fetched over HTTPS (Entra must fetch it"
        " too).",
        "`curl` the discovery URL; check the issuer's storage or network path.",
        "fault:issuer-unreachable",
        advice_only="an issuer that answers no one is repaired where it is hosted: an AKS-managed issuer is Microsoft's (an outage no command of the cluster's owner ends), a self-hosted one is the owner's storage or network; the printed curl and az aks show only locate the break",
    ),
    _e(
        "ISSUER_DISCOVERY_INVALID", "cluster", "error",
        "The discovery document is not JSON or has no jwks_uri.",
        "Repair the published discovery document (an AKS-managed issuer: az aks update "
        "--enable-oidc-issuer).",
        no_lab_fault="the lab's issuer always serves a well-formed document",
    ),
    _e(
        "ISSUER_DISCOVERY_MISMATCH", "cluster", "error",
        "The discovery document's issuer differs from the cluster's issuer URL (often only by the "
        "trailing slash).",
        "Publish a document whose issuer is exactly the cluster's issuer URL.",
        no_lab_fault="the lab serves its own issuer's document; a self-hosted issuer is not emulated",
    ),
    _e(
        "ISSUER_JWKS_UNREACHABLE", "cluster", "error",
        "The issuer's JWKS (jwks_uri) cannot be fetched.",
        "`curl` the jwks_uri; fix the issuer's hosting.",
        no_lab_fault="lab ctl issuer --unreachable stops the discovery document first, so the JWKS is "
                     "skipped",
    ),
    _e(
        "ISSUER_JWKS_INVALID", "cluster", "error",
        "The JWKS is not a key set Entra can use (Entra: AADSTS900612).",
        "Republish the JWKS from the API server's keys (kubectl get --raw /openid/v1/jwks).",
        no_lab_fault="the lab's issuer always publishes its keys",
    ),
    _e(
        "ISSUER_UNREACHABLE_FROM_ENTRA", "cluster", "error",
        "Entra could not fetch the issuer's metadata (AADSTS50166/501661/90061).",
        "Make the issuer reachable from the internet (public storage, no firewall).",
        "fault:issuer-unreachable",
        advice_only="Entra fetches the issuer from the internet: an AKS-managed issuer's outage is Microsoft's to end, a self-hosted issuer's firewall or storage access is its owner's; no command the harness can print makes Entra reach it",
    ),
    _e(
        "ISSUER_KEY_NOT_FOUND", "cluster", "error",
        "The token's signing key (kid) is not in the JWKS the issuer publishes (AADSTS7000272).",
        "Publish the API server's current keys; for an AKS-managed issuer az aks oidc-issuer "
        "rotate-signing-keys.",
        "fault:issuer-key-unpublished",
        "unit:tests/harness/test_issuer_keys_and_retries.py::test_a_key_the_aks_issuer_does_not_publish_i"
        "s_not_found_and_rotation_is_offered",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "ISSUER_KEYS_NOT_YET_SEEN", "entra", "warning",
        "AADSTS7000272 although the issuer publishes the token's key: Entra still holds an older copy of "
        "the JWKS (a recent rotation or a new issuer).",
        "Wait for Entra's metadata cache to expire (minutes); do not rotate again.",
        "test:tests/harness/test_transient_lab.py::test_a_key_rotation_entra_has_not_seen_is_named_as_such",
        advice_only="the keys are right: only Entra's cache expiring repairs it, and a rotation starts the wait "
                    "over",
    ),
    # ------------------------------------------------------------------ webhook
    _e(
        "WEBHOOK_NOT_INSTALLED", "webhook", "error",
        "No workload identity mutating webhook: labelled pods are admitted unmutated.",
        "`az aks update --enable-workload-identity` (or install the Helm chart).",
        "scenario:webhook-absent",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "WEBHOOK_FAILURE_POLICY_IGNORE", "webhook", "error",
        "The webhook's failurePolicy is Ignore: when it is down pods start silently without identity.",
        "`kubectl patch` the MutatingWebhookConfiguration to failurePolicy Fail.",
        "fault:failure-policy-ignore",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "WEBHOOK_REINVOCATION_NEVER", "webhook", "warning",
        "The webhook's reinvocationPolicy is Never (or unset, which is Never) where the chart and the add-on ship "
        "IfNeeded (since v1.0.0): containers a later mutating webhook adds (a sidecar injector) get no AZURE_* env "
        "nor token mount.",
        "`kubectl patch` the MutatingWebhookConfiguration to reinvocationPolicy IfNeeded (a test of the webhook's "
        "name at its index first).",
        "unit:tests/harness/test_checks.py::test_a_webhook_not_reinvoked_is_a_warning_with_the_patch_that_puts_it_"
        "back",
        no_lab_fault="the lab runs no other mutating webhook that adds containers, so no pod shows the difference",
    ),
    _e(
        "WEBHOOK_OBJECT_SELECTOR_MISSING", "webhook", "error",
        "The webhook has no objectSelector on the use label: it is called for every pod of the cluster.",
        "Restore objectSelector azure.workload.identity/use: \"true\" (reinstall the add-on or chart).",
        "fault:object-selector-removed",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "WEBHOOK_NOT_READY", "webhook", "error",
        "The webhook Deployment has no ready replica (or is missing).",
        "`kubectl -n kube-system get deploy,pods -l azure-workload-identity.io/system=true`; scale it back up "
        "(scaled to zero) or restart its pods; pods no node takes (a node cordoned by a drain or an upgrade, a "
        "taint) are named with the scheduler's reason, and uncordoning is a person's call, not a restart; an "
        "azure-wi-webhook-config the manager refuses (no AZURE_TENANT_ID, an unknown AZURE_ENVIRONMENT) is named "
        "and patched (or set through the chart's values), then the pods restarted.",
        "scenario:webhook-down",
        "unit:tests/harness/test_checks.py::test_a_webhook_whose_pods_no_node_takes_names_the_scheduler_not_a_restart",
        "unit:tests/harness/test_checks.py::test_a_webhook_config_map_the_manager_refuses_is_named_and_put_right",
        "fault:webhook-down-and-role-missing",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "WEBHOOK_DEGRADED", "webhook", "warning",
        "Some webhook replicas are not ready, or its rollout does not complete (new pods crash, or the API server "
        "refuses them: a quota, Pod Security, a policy), or its certificate Secret was deleted under running pods "
        "(they serve from the mounted files, but nothing renews them and the next pod cannot start).",
        "Look at the webhook's pods (kubectl describe); it still answers. A refusal names what to change; a deleted "
        "certificate Secret is made again, empty, for the webhook's rotator to fill.",
        "test:tests/harness/test_webhook_refused_lab.py::test_a_quota_refusing_the_webhooks_rollout_is_named_not_a_"
        "crash",
    ),
    _e(
        "WEBHOOK_DUPLICATE", "webhook", "error",
        "Both the AKS add-on and the Helm chart install the webhook.",
        "Keep one: helm uninstall the chart, or az aks update --disable-workload-identity.",
        "test:tests/harness/test_real_cluster_cases_lab.py::test_the_chart_alone_passes_and_the_chart_wit"
        "h_the_add_on_is_a_duplicate",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "WEBHOOK_UNAVAILABLE", "webhook", "error",
        "The API server could not call the webhook (failurePolicy Fail): labelled pods are refused.",
        "Bring the webhook's pods back (kubectl -n kube-system scale, or rollout restart); pods ready but no "
        "endpoint: the Service selects none of them, put back by the install that owns it; a dial refused on "
        "another port than 9443: the Service's targetPort put back; a serving certificate the API server does not "
        "trust (x509, caBundle): with cert-controller on, a restart (it injects caBundle at start), with "
        "--disable-cert-rotation, the Secret's ca.crt copied into caBundle, or the flag taken off; calls out of time "
        "(context deadline exceeded) under a timeoutSeconds shortened by hand: the configuration patched back to 10; "
        "out of time with the pods ready and the Service right: a NetworkPolicy isolating the webhook's pods for "
        "ingress, given a rule that lets the API server reach port 9443.",
        "scenario:webhook-down",
        "fault:webhook-down-and-role-missing",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
        "test:tests/harness/test_real_cluster_cases_lab.py::test_a_webhook_service_whose_selector_was_edited_is_"
        "named_not_restarted",
        "test:tests/harness/test_real_cluster_cases_lab.py::test_a_ca_bundle_the_webhook_does_not_keep_is_named_and_"
        "the_printed_copy_repairs_it",
        "test:tests/harness/test_webhook_ingress_lab.py::test_an_ingress_policy_over_the_webhook_is_named_and_the_"
        "printed_rule_lets_the_calls_in",
        "unit:tests/harness/test_webhook_configuration_edits.py::test_a_refusal_for_a_call_out_of_time_names_a_"
        "timeout_shortened_by_hand",
        "unit:tests/harness/test_checks.py::test_a_webhook_certificate_the_api_server_does_not_trust_gets_what_puts_"
        "ca_bundle_back",
        "unit:tests/harness/test_checks.py::test_a_refused_dial_to_another_port_than_the_managers_puts_the_services_"
        "target_port_back",
    ),
    _e(
        "POD_REJECTED_BY_WEBHOOK", "webhook", "error",
        "The workload identity webhook denied the pod (e.g. an invalid annotation value): the probe pod, or "
        "every new pod of a Deployment that runs under the ServiceAccount (its ReplicaFailure condition).",
        "Fix what the denial names on the ServiceAccount or pod template.",
        "test:tests/harness/test_hand_breakages_lab.py::test_a_deployment_whose_new_pods_the_webhook_denies_fails"
        "_and_the_printed_patch_rolls_it_out",
        "unit:tests/harness/test_checks.py::test_a_policy_engine_refusal_is_named_and_not_blamed_on_workl"
        "oad_identity",
    ),
    _e(
        "AUTHORITY_HOST_MISMATCH", "webhook", "error|warning",
        "The webhook injects another cloud's AZURE_AUTHORITY_HOST (a warning on pod.mutated); the probe pod's "
        "AZURE_AUTHORITY_HOST is not the configured cloud's authority host, or not https, so the probe does not "
        "send its ServiceAccount token there (an error on exchange.succeeds).",
        "Configure the webhook's cloud (AZURE_ENVIRONMENT) to the cluster's.",
        "unit:tests/harness/test_access_targets.py::test_the_probe_exchanges_the_token_at_the_clouds_authority_only",
        no_lab_fault="the lab's webhook injects the lab's own authority",
    ),
    # ------------------------------------------------------------------ serviceaccount
    _e(
        "NAMESPACE_NOT_FOUND", "serviceaccount", "error",
        "The workload's namespace does not exist.",
        "Fix the namespace in harness.yaml or --workload; or create it (`kubectl create namespace`), with the "
        "ServiceAccount, annotated with the client id harness.yaml names.",
        "fault:namespace-missing",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "SA_NOT_FOUND", "serviceaccount", "error",
        "The ServiceAccount does not exist in its namespace.",
        "`kubectl create serviceaccount`, annotated with the identity's client id.",
        "fault:service-account-missing",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "SA_CHANGED_DURING_RUN", "serviceaccount", "error",
        "The ServiceAccount's client-id annotation changed while the run ran: the webhook injected into the probe "
        "pod another client id than the harness had read a moment before (or another mutating webhook sets "
        "AZURE_CLIENT_ID). The checks after it would mix the two identities, so none is blamed.",
        "Look at the ServiceAccount now (kubectl get serviceaccount -o yaml: its managedFields say who changed it) "
        "and run again once it is settled.",
        "unit:tests/harness/test_midrun_checks.py::test_an_annotation_changed_mid_run_is_named_not_a_preset_env",
        no_lab_fault="made by hand (ARM latency to widen the window, kubectl annotate --overwrite after the "
                     "harness's read); a lab test cannot time it reliably",
        advice_only="a change someone makes during the run is over by the next run",
    ),
    _e(
        "SA_NOT_ANNOTATED", "serviceaccount", "error",
        "The ServiceAccount has no azure.workload.identity/client-id annotation: the webhook injects no "
        "AZURE_CLIENT_ID.",
        "`kubectl annotate serviceaccount ... azure.workload.identity/client-id=<client id>`, then "
        "restart the pods.",
        "fault:annotation-removed",
        "unit:tests/harness/test_checks.py::test_an_annotation_on_the_deployment_instead_of_the_service_a"
        "ccount_is_named",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "SA_ANNOTATION_MISSPELLED", "serviceaccount", "error",
        "A key close to the client-id annotation (client_id, clientId, another prefix), or the annotation"
        " on the Deployment or pod instead of the ServiceAccount.",
        "Annotate the ServiceAccount with the right key and the value found; remove the wrong one.",
        "scenario:sa-not-annotated",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "SA_CLIENT_ID_MALFORMED", "serviceaccount", "error",
        "The client-id annotation is not a GUID.",
        "Annotate with the identity's client id (az identity show --query clientId).",
        "fault:client-id-malformed",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "SA_CLIENT_ID_MISMATCH", "serviceaccount", "error",
        "The annotation's client id differs from the one harness.yaml expects (another workload's, say); the "
        "message says what Entra answered the pod as that identity, and the exchange is skipped because of it.",
        "Annotate with the expected client id, or fix harness.yaml.",
        "fault:client-id-of-another-identity",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
        "unit:tests/harness/test_wrong_identity_checks.py::test_the_annotation_is_the_cause_and_the_exchange_as_the_"
        "other_identity_is_skipped_for_it",
    ),
    _e(
        "SA_TENANT_ID_MALFORMED", "serviceaccount", "error|warning",
        "The tenant-id annotation is not a GUID (a warning: a domain names a tenant too), or is empty (an error: the "
        "webhook takes the annotation whenever it is there, and the pods get no AZURE_TENANT_ID).",
        "Annotate with the tenant's GUID, or remove the annotation; then restart the pods.",
        "fault:tenant-id-malformed",
        "unit:tests/harness/test_hand_broken_links.py::test_an_empty_tenant_id_annotation_is_an_error_removed_and_the_"
        "pods_restarted",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "SA_ANNOTATION_IS_PRINCIPAL_ID", "serviceaccount", "error",
        "The client-id annotation holds the identity's principal (object) id, or its app registration's object "
        "id, not its client id (Entra: AADSTS700016, no application with that identifier).",
        "Annotate with the identity's clientId (an app registration's appId).",
        "fault:principal-id-annotated",
        "test:tests/harness/test_app_registration_lab.py::test_the_app_registrations_object_id_annotated_is_name"
        "d_with_its_app_id",
        "unit:tests/harness/test_identity_checks.py::test_a_principal_id_in_the_annotation_is_named_with_"
        "the_client_id_to_use",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    # ------------------------------------------------------------------ pod
    _e(
        "POD_NOT_FOUND", "pod", "error",
        "--pod names a pod that does not exist.",
        "`kubectl get pods -n NS`; pass an existing pod.",
        no_lab_fault="a --pod typo, not a lab fault",
    ),
    _e(
        "POD_NOT_A_WORKLOAD", "pod", "error",
        "--pod names the Workload ID webhook's own pod (azure-workload-identity.io/system=true), not a workload that "
        "uses Workload ID; no probe pod is run in its namespace.",
        "Pass --pod NS/POD of the workload to check (kubectl get pods -A -l azure.workload.identity/use=true).",
        "unit:tests/harness/test_hand_broken_links.py::test_pod_naming_the_webhooks_own_pod_says_so_in_one_line",
        no_lab_fault="a --pod mistake, not a lab fault",
    ),
    _e(
        "POD_NOT_LABELLED", "pod", "error",
        "The pod (or the workload's pod template) lacks the label azure.workload.identity/use: \"true\": "
        "the webhook skips it.",
        "Add the label to the pod template.",
        "test:tests/harness/test_real_cluster_cases_lab.py::test_a_deployment_whose_template_lost_the_lab"
        "el_fails_a_default_run",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "POD_NOT_MUTATED", "pod", "error",
        "A labelled pod has no injected env or projected token (the webhook was down, or its calls ran out of a "
        "timeoutSeconds shortened by hand, under failurePolicy Ignore too, or its namespaceSelector excludes the "
        "namespace, e.g. a control-plane: \"true\" label or a requirement added to the selector by hand; or the "
        "label was put on the running pod by hand).",
        "Recreate the pod once the webhook works (kubectl rollout restart); remove the namespace label the "
        "selector excludes, or the requirement edited into the selector (or label the namespace to meet it); "
        "timeoutSeconds back to 10; a label put on a running pod by hand goes on its pod template (kubectl patch).",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
        "test:tests/harness/test_hand_breakages_lab.py::test_a_pod_labelled_by_hand_is_labelled_on_its_template_by_"
        "the_printed_fix",
        "test:tests/harness/test_hand_breakages_lab.py::test_a_namespace_labelled_control_plane_is_excluded_by_the_"
        "webhook_and_the_printed_fix_unlabels_it",
        "unit:tests/harness/test_checks.py::test_broken_mutations",
        "unit:tests/harness/test_webhook_configuration_edits.py::test_a_namespace_selector_edited_by_hand_is_named_"
        "with_its_restore_and_the_label",
    ),
    _e(
        "POD_MISSING_CLIENT_ID", "pod", "error",
        "The pod got everything but AZURE_CLIENT_ID: the ServiceAccount was annotated after the pod was "
        "created.",
        "Restart the pods.",
        "test:tests/harness/test_hand_breakages_lab.py::test_a_pod_created_before_its_service_account_was_annotated_"
        "is_restarted_by_its_own_deployments_name",
    ),
    _e(
        "POD_ENV_CONFLICT", "pod", "error",
        "The pod sets AZURE_* itself, in any of its containers or init containers; the webhook never overwrites "
        "it.",
        "Remove the explicit env from the pod template.",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
        "unit:tests/harness/test_checks.py::test_preset_client_id_conflicting_with_the_annotation",
        "unit:tests/harness/test_live_pods.py::test_an_init_container_that_sets_an_azure_variable_itself_is_a_"
        "conflict_for_pod_and_workload",
    ),
    _e(
        "POD_STALE_CLIENT_ID", "pod", "error|warning",
        "A running pod carries an AZURE_CLIENT_ID other than the annotation's (made before it changed); not "
        "when the pod carries the client id harness.yaml expects and the annotation is the wrong one.",
        "`kubectl rollout restart` the workload.",
        "unit:tests/harness/test_live_pods.py::test_a_pod_created_before_the_client_id_changed_needs_a_re"
        "start",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "POD_TOKEN_PREDATES_ISSUER", "pod", "warning",
        "A running pod made before the managed cluster's last update, within its token's lifetime, when the update "
        "may have been the issuer's: the identity's first federated credential for the issuer was made after it, or "
        "the pod's containers restarted, crash-loop or turned unready since it (an update alone, of tags or node "
        "counts, is not enough; nor is a pod made after a credential naming the issuer, which cannot exist before "
        "it). If that update enabled or changed the OIDC issuer, the pod's projected token still carries the earlier "
        "iss (the kubelet replaces it at 80% of its lifetime), so its exchange fails until then.",
        "Restart the workload (`kubectl rollout restart`) so its pods get a token from the issuer now.",
        "unit:tests/harness/test_live_pods.py::test_a_pod_made_before_the_oidc_issuer_was_enabled_is_told_to_restart",
        "unit:tests/harness/test_live_pods.py::test_pods_in_trouble_since_the_update_are_warned_without_a_credential_"
        "time",
        "test:tests/harness/test_issuer_enabled_late_lab.py::test_pods_made_before_the_oidc_issuer_was_enabled_are_told_"
        "to_restart",
    ),
    _e(
        "POD_CONTAINER_SKIPPED", "pod", "error|warning",
        "A container (or init container) is in the skip-containers annotation: it gets no AZURE_* env. An error "
        "when every container of the pod is (nothing in it can use the identity), or when a skipped one keeps "
        "failing (CrashLoopBackOff, a non-zero exit: as one that needs the identity does; its log says).",
        "Remove it from azure.workload.identity/skip-containers if it needs the identity (every container skipped: "
        "kubectl patch removes the annotation from the pod template).",
        "test:tests/harness/test_hand_breakages_lab.py::test_skip_containers_naming_the_apps_only_container_fails_"
        "and_the_printed_patch_removes_it",
        "unit:tests/harness/test_live_pods.py::test_a_skipped_container_is_a_warning",
        "unit:tests/harness/test_checks.py::test_an_app_container_the_annotation_skips_is_named_not_blamed_on_the_"
        "webhook",
    ),
    _e(
        "POD_WRONG_SERVICE_ACCOUNT", "pod", "error|warning",
        "No pod runs under the workload's ServiceAccount, while labelled pods of its namespace run under one that "
        "names no identity (no AZURE_CLIENT_ID): their serviceAccountName is likely left out or wrong (a warning; "
        "an error when their Deployment ran under the workload's ServiceAccount before, as an old ReplicaSet's "
        "template shows: the app lost its identity). An error when the Deployment that runs the workload's pods now "
        "names a ServiceAccount that does not exist: the API server refuses its new pods. When the controller of "
        "the workload's live pods has a pod template naming another ServiceAccount not rolled out yet (a paused "
        "Deployment, a rollout in progress), none of its pods will run under the workload's once it is: an error "
        "when that one names no identity or does not exist, a warning when it names an identity of its own.",
        "Set the pod template's serviceAccountName to the workload's ServiceAccount (kubectl patch).",
        "test:tests/harness/test_hand_breakages_lab.py::test_a_deployment_moved_to_the_default_service_account_fails"
        "_the_workload_and_the_printed_patch_moves_it_back",
        "test:tests/harness/test_hand_breakages_lab.py::test_a_paused_rollout_to_an_unannotated_service_account_fails"
        "_and_rollout_undo_takes_up_the_first_replicaset",
        "test:tests/harness/test_hand_breakages_lab.py::test_a_template_naming_a_service_account_that_does_not_"
        "exist_fails_and_the_printed_patch_puts_it_back",
    ),
    _e(
        "PROXY_SIDECAR_NOT_INJECTED", "pod", "warning",
        "A controller asks for the migration proxy (azure.workload.identity/inject-proxy-sidecar) on its own "
        "metadata, or its running pods were annotated by hand, but its pod template does not: the webhook reads the "
        "annotations of the pod it admits, on CREATE, so its pods run without azwi-proxy and an app that still asks "
        "IMDS gets no token.",
        "Put the annotation (and proxy-sidecar-port) in the pod template (`kubectl patch --type merge` of "
        "spec.template.metadata.annotations), which rolls the pods out.",
        "test:tests/harness/test_hand_breakages_lab.py::test_a_migration_proxy_asked_for_on_the_deployment_not_its_"
        "template_is_named_and_the_printed_patch_injects_it",
    ),
    _e(
        "PROXY_SIDECAR_PORT_CLASH", "pod", "error",
        "The migration proxy listens on a port (proxy-sidecar-port, 8000 by default) that an app container of the "
        "pod declares too: one of them cannot listen on it, and azwi-proxy-init sends the pod's IMDS traffic there.",
        "Set proxy-sidecar-port in the pod template to a port no container declares (the printed merge patch "
        "names the first free one from 8000).",
        "unit:tests/harness/test_proxy_sidecar.py::test_a_migration_proxy_on_a_port_an_app_container_declares_is_a_clash",
        no_lab_fault="the lab's containers are emulated processes that do not listen on their declared ports, so "
                     "two listeners on one port cannot collide there",
    ),
    _e(
        "POD_NOT_ADMITTED", "pod", "error|warning",
        "The API server refused the probe pod for another reason, or refuses a Deployment's pods once the webhook "
        "has mutated them (a template volume named like the webhook's, or projecting a token at its path "
        "azure-identity-token; Pod Security refusing the migration proxy that inject-proxy-sidecar asks for; a "
        "proxy-sidecar-port outside 1-65535, which the webhook makes the proxy's containerPort). A "
        "warning when the workload's pods are refused for a reason the harness does not name.",
        "Read the refusal; fix what it names (rename the template's volume or its token projection's path; remove "
        "inject-proxy-sidecar, or the proxy-sidecar-port that is no port).",
        "test:tests/harness/test_hand_breakages_lab.py::test_a_template_volume_named_like_the_webhooks_fails_the_"
        "workload_until_renamed",
        "test:tests/harness/test_hand_breakages_lab.py::test_a_migration_proxy_asked_for_in_a_restricted_namespace_"
        "fails_and_the_printed_patch_drops_it",
        "unit:tests/harness/test_live_pods.py::test_a_proxy_port_out_of_range_the_api_server_refuses_after_the_"
        "webhook_is_named_and_removed",
    ),
    _e(
        "POD_SECURITY_REJECTED", "pod", "error",
        "Pod Security admission refused the probe pod.",
        "Adapt probe.* settings to the namespace's level, or the namespace's labels.",
        no_lab_fault="the probe meets \"restricted\", the strictest level",
    ),
    _e(
        "POD_REJECTED_BY_POLICY", "pod", "error",
        "A policy engine (Azure Policy, Gatekeeper, Kyverno) or a ValidatingAdmissionPolicy (the API server's own "
        "CEL policies, named with its binding; a 422 or the 403 its validation asks for, not RBAC) refused the probe "
        "pod.",
        "Add an exemption for the harness's pods, or adapt probe.* to the policy (the fix prints the probe.labels, "
        "probe.resources or probe.image a known policy asks for).",
        "test:tests/harness/test_admission_cases_lab.py::test_a_gatekeeper_denial_is_a_policy_rejection_n"
        "aming_the_webhook",
        "test:tests/harness/test_admission_cases_lab.py::test_a_required_labels_policy_is_met_by_the_probe_labels_"
        "the_fix_prints",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
        "unit:tests/harness/test_checks.py::test_a_validating_admission_policy_refusal_is_the_policy_not_rbac_nor_a_"
        "credential",
    ),
    _e(
        "POD_REJECTED_BY_QUOTA", "pod", "error",
        "A ResourceQuota or LimitRange refused the probe pod.",
        "Free quota or raise it in that namespace, or set probe.resources within its LimitRange.",
        "test:tests/harness/test_admission_cases_lab.py::test_a_used_up_pod_quota_is_a_quota_rejection",
        "test:tests/harness/test_limit_range_lab.py::test_a_limit_range_below_the_probe_names_the_probe_resources_"
        "that_meet_it",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "NAMESPACE_TERMINATING", "serviceaccount|pod", "error",
        "The workload's namespace is being deleted (Terminating): its content, the ServiceAccount among it, is gone "
        "and the API server refuses anything new in it; what remains holds it there (finalizers).",
        "Let the finalizers' controller finish, or remove finalizers it will never remove (whether the namespace "
        "was meant to go, and whether a finalizer may be removed by hand, its controller's cleanup skipped, is the "
        "owner's call; the printed commands show what holds it); then create the namespace and the workload again.",
        "test:tests/harness/test_namespace_terminating_lab.py::test_a_namespace_stuck_terminating_is_named_not_"
        "a_missing_service_account",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "OTHER_WEBHOOK_UNAVAILABLE", "pod", "error",
        "The API server cannot call another admission webhook (a mesh's sidecar injector, a policy engine; not "
        "Workload ID's) whose failurePolicy is Fail: it refuses every pod that webhook matches, the probe among "
        "them.",
        "Bring back the pods behind that webhook's Service, or delete the configuration an uninstalled product "
        "left behind; a person decides which.",
        "test:tests/harness/test_admission_cases_lab.py::test_another_vendors_webhook_that_cannot_be_called_is_"
        "named_not_workload_identity",
        "test:tests/harness/test_admission_cases_lab.py::test_a_validating_policy_webhook_left_without_its_service_"
        "is_named_not_workload_identity",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "WORKLOAD_PODS_REFUSED", "pod", "warning",
        "A Deployment, StatefulSet, DaemonSet or Job under the workload's ServiceAccount cannot create its pods for "
        "a reason that is not Workload ID (Pod Security admission, a policy engine, a ResourceQuota or LimitRange, "
        "another webhook that cannot be called): its current pod template does not run.",
        "Change what the refusal names (the pod template, the namespace's Pod Security level, the policy or the "
        "quota: the workload owner decides which); its controller creates the pods once they are admitted.",
        "test:tests/harness/test_admission_cases_lab.py::test_a_deployment_refused_by_pod_security_is_named_for_"
        "the_workload",
        "test:tests/harness/test_admission_cases_lab.py::test_a_statefulset_refused_by_pod_security_is_named_from_"
        "its_event",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    # ------------------------------------------------------------------ probe
    _e(
        "PROBE_IMAGE_PULL_FAILED", "probe", "error",
        "The probe image cannot be pulled.",
        "Use an image the nodes can pull (probe.image, a mirror in your registry): an ACR without it gets the "
        "stock image imported, an ACR refusing the nodes is attached to the cluster (az aks update --attach-acr), "
        "another private registry needs probe.image_pull_secrets.",
        "test:tests/harness/test_probe_modes_lab.py::test_a_probe_image_no_registry_has_is_err_image_pull",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "PROBE_NOT_STARTED", "probe", "error",
        "The probe container did not start (waiting with another reason).",
        "`kubectl describe pod`; fix the reason it names.",
        no_lab_fault="the lab's kubelet has no other waiting reason to give",
    ),
    _e(
        "PROBE_UNSCHEDULABLE", "probe", "error",
        "No node accepts the probe pod (taints, selectors, resources).",
        "Set probe.tolerations for the taint every node has, or the one the workload's pods tolerate when node "
        "pools differ (printed from the scheduler's message), or probe.node_selector / resources for the workload's "
        "node pool (on AKS a node pool's taints change only through the AKS API); a node-condition taint (not-ready, "
        "pressure) or full nodes are the nodes' to repair, never tolerated.",
        "test:tests/harness/test_admission_cases_lab.py::test_a_tainted_node_leaves_the_probe_unschedulab"
        "le",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "PROBE_TIMEOUT", "probe", "error",
        "The probe pod did not finish in probe.timeout_seconds.",
        "Raise probe.timeout_seconds; look at why the pod is slow.",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "PROBE_POD_DELETED", "probe", "error",
        "Someone else deleted the probe pod before the probe printed its report (kubectl delete, an eviction or a "
        "node drain, a cleanup job): nothing after its admission was verified. An eviction is named by the pod's "
        "DisruptionTarget condition; a namespace deleted under the run is NAMESPACE_NOT_FOUND or "
        "NAMESPACE_TERMINATING instead.",
        "Read the pod's events (kubectl get events --field-selector involvedObject.name=POD: they outlive it) and "
        "run again once the drain, upgrade or cleanup is over.",
        "test:tests/harness/test_cleanup_lab.py::test_a_probe_pod_deleted_or_evicted_mid_run_is_named_as_such",
        advice_only="a deletion by someone else is over by the time it is reported: running again is the repair",
    ),
    _e(
        "SERVICE_TIMEOUT", "entra|access", "error",
        "Entra, Key Vault or Storage took the probe's request and did not answer within "
        "probe.request_timeout_seconds, through the probe's retries (a read timeout or a reset after the request "
        "went out): the service is slow or failing, which no network rule explains (EGRESS_BLOCKED is a connection "
        "that could not be made).",
        "Look at the service's health (Azure status, Resource Health, throttling metrics) and run again; raise "
        "probe.request_timeout_seconds if it is this slow by design.",
        "test:tests/harness/test_reliability_lab.py::test_a_service_slower_than_the_probes_timeout_is_named_slow"
        "_not_blocked",
        advice_only="a slow service recovers by itself or by its owner's hand; running again shows it",
    ),
    _e(
        "SERVICE_UNAVAILABLE", "entra|access|harness", "error",
        "Entra, Key Vault or Storage kept answering 429 or 5xx (Entra's AADSTS90033 \"A transient error has "
        "occurred\", a front door's 503) through the probe's retries: the service was failing or throttling for the "
        "whole of probe.retry_seconds, which no configuration of the workload explains. Also Entra failing the "
        "harness's own token request through azure-identity's retries (not HARNESS_CREDENTIAL_FAILED: no new "
        "secret helps).",
        "Look at the service's health (Azure status, Resource Health, throttling metrics) and run again; for "
        "throttling that lasts longer, raise probe.retry_seconds.",
        "unit:tests/harness/test_midrun_checks.py::test_a_service_answering_503_through_the_retries_is_named_not"
        "_the_configuration",
        no_lab_fault="made by hand with lab ctl fault keyvault --rate-503 1 (or entra), but each run waits out "
                     "probe.retry_seconds: no lab test yet",
        advice_only="a failing service recovers by itself or by its owner's hand; running again shows it",
    ),
    _e(
        "PROBE_OUTPUT_INVALID", "probe", "error",
        "The probe printed no parsable document.",
        "Read the pod's log (kubectl logs); the image must run python3 -m probe.",
        no_lab_fault="the lab runs the real probe",
    ),
    _e(
        "PROBE_CONFIG_INVALID", "probe", "error",
        "The probe refused its WI_PROBE_CONFIG (a harness bug or version skew between harness and probe "
        "image).",
        "Use the probe image of the same harness version.",
        "unit:tests/harness/test_probe_mode_checks.py::test_a_missing_ca_configmap_is_named_by_the_probe_"
        "not_a_timeout",
        no_lab_fault="harness and probe come from the same tree in the lab",
    ),
    _e(
        "ENV_MISMATCH", "pod", "error",
        "The container's AZURE_* env differs from the admitted pod spec.",
        "Look for an entrypoint or sidecar that changes them.",
        no_lab_fault="the lab's kubelet runs the admitted spec as is",
    ),
    # ------------------------------------------------------------------ token
    _e(
        "TOKEN_FILE_MISSING", "token", "error",
        "AZURE_FEDERATED_TOKEN_FILE names a file that is not there.",
        "`kubectl describe pod`: is the projected volume mounted?",
        no_lab_fault="the lab's kubelet always projects",
    ),
    _e(
        "TOKEN_FILE_UNREADABLE", "token", "error",
        "The token file exists but the container may not read it.",
        "Set securityContext.fsGroup on the pod.",
        no_lab_fault="the lab's kubelet projects readable files",
    ),
    _e(
        "TOKEN_UNREADABLE", "token", "error",
        "The token could not be read for another reason.",
        "`kubectl exec` into the pod and read the file.",
        no_lab_fault="no lab fault breaks the projected file",
    ),
    _e(
        "TOKEN_MALFORMED", "token", "error",
        "The token is not a JWT (Entra: AADSTS50027).",
        "Recreate the pod; check what writes the token file.",
        no_lab_fault="the lab's API server issues well-formed tokens",
    ),
    _e(
        "TOKEN_SUBJECT_MISMATCH", "token", "error",
        "The token's sub is not system:serviceaccount:NS:SA.",
        "Run the pod under the right ServiceAccount.",
        no_lab_fault="the lab's API server signs the pod's own ServiceAccount",
    ),
    _e(
        "TOKEN_AUDIENCE_MISMATCH", "token", "error",
        "The token's aud lacks api://AzureADTokenExchange.",
        "Fix the webhook's audience (azure.workload.identity/service-account-token-audience).",
        no_lab_fault="the lab's webhook always asks for the exchange audience",
    ),
    _e(
        "ISSUER_MISMATCH", "token", "error",
        "The token's iss differs from the cluster's issuer URL.",
        "Find which issuer the API server signs with (--service-account-issuer); federate that one.",
        "unit:tests/harness/test_checks.py::test_token_issuer_missing_trailing_slash_is_a_mismatch",
        no_lab_fault="the lab's API server signs with its one issuer",
    ),
    _e(
        "TOKEN_EXPIRED", "token", "error",
        "The projected token has expired (the kubelet stopped refreshing it).",
        "Restart the pod; look at the kubelet.",
        no_lab_fault="the lab's kubelet refreshes tokens",
    ),
    _e(
        "TOKEN_TIME_INVALID", "token", "error",
        "The token has no exp, or Entra found it outside its validity window (clock skew; AADSTS700024).",
        "Sync the node's and Entra's clocks (NTP); recreate the pod.",
        "fault:entra-clock-skew",
        advice_only="a clock is repaired by its time sync (chrony, systemd-timesyncd), not by a command the "
                    "harness can print; the printed kubectl debug only reads the node's time",
    ),
    _e(
        "TOKEN_LIFETIME_UNEXPECTED", "token", "warning",
        "The token's lifetime is not the one the service-account-token-expiration annotation asks for.",
        "Fix the annotation (3600-86400 seconds).",
        no_lab_fault="no lab fault changes the lifetime the webhook asks for yet",
    ),
    _e(
        "ASSERTION_SIGNATURE_INVALID", "token", "error",
        "Entra could not verify the token's signature with the issuer's keys (AADSTS700027).",
        "Republish the JWKS the API server signs with.",
        "unit:tests/harness/test_checks.py::test_a_bad_assertion_signature_points_at_the_issuer_keys",
        no_lab_fault="the lab's Entra verifies with the keys the issuer publishes",
    ),
    # ------------------------------------------------------------------ identity and federation
    _e(
        "IDENTITY_NOT_FOUND", "identity", "error",
        "No managed identity or application has the annotated client id (Entra: AADSTS700016); an application "
        "deleted within 30 days is named with its deletion. An identity whose name or client id is a few "
        "characters off is named as the typo; harness.yaml's identity_resource_id gone from a group that is there "
        "is a deletion or a typo, said in one line.",
        "Annotate with an existing identity's client id (az identity show), or the near one named; a deleted "
        "application: restore it and its service principal (az rest POST "
        "<graph>/v1.0/directory/deletedItems/<object-id>/restore); a deleted identity: the printed lines make it "
        "again with its federated credential, read roles and the annotation of its new client id.",
        "fault:principal-id-annotated",
        "test:tests/harness/test_app_registration_lab.py::test_a_deleted_application_is_restored_with_its_creden"
        "tials_and_service_principal",
        "fault:unknown-client-id",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "IDENTITY_NOT_VISIBLE", "harness", "warning",
        "The harness may not read where the identity lives; the workload is judged by its exchange alone.",
        "Grant the harness Reader there (and Graph Application.Read.All, an app role assignment made through "
        "Graph: az ad app permission admin-consent works in the public cloud only).",
        "test:tests/harness/test_identities_lab.py::test_an_identity_the_harness_may_not_read_is_a_warnin"
        "g_and_the_workload_passes",
        "test:tests/harness/test_app_registration_lab.py::test_the_harness_without_application_read_all_says_so_"
        "once_per_scope_and_its_grant_works_on_any_cloud",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "IDENTITY_CLIENT_ID_MISMATCH", "identity", "error",
        "The configured identity_resource_id has another client id than the annotation.",
        "Fix harness.yaml's identity_resource_id or the annotation.",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "IDENTITY_RESOURCE_ID_STALE", "identity", "warning",
        "harness.yaml's identity_resource_id names no identity (ARM: 404), but the managed identity with the "
        "workload's client id is elsewhere: moved (az resource move keeps its client id and principal id) or a typo; "
        "the harness judged that one.",
        "Set identity_resource_id in harness.yaml to the id the finding names.",
        "unit:tests/harness/test_identity_checks.py::test_an_identity_moved_to_another_group_is_found_by_its_client_i"
        "d_and_harness_yaml_named",
        no_lab_fault="the lab's ARM has no moveResources (az resource move answers InvalidRequestUri); by hand, "
                     "harness.yaml naming the identity under a group it is not in gives it",
        advice_only="harness.yaml is the person's file: the finding names the id to put there",
    ),
    _e(
        "IDENTITY_TENANT_MISMATCH", "identity", "warning",
        "The identity lives in another tenant than expected (the exchange at the tenant the pods are given: "
        "AADSTS700016, the application is not in that directory, or AADSTS90002 for a tenant that does not "
        "exist).",
        "Annotate azure.workload.identity/tenant-id with the identity's tenant.",
        no_lab_fault="the lab has one tenant",
    ),
    _e(
        "SERVICE_PRINCIPAL_MISSING", "identity", "error",
        "The application has no service principal in the tenant (AADSTS7000229).",
        "Restore the deleted one (az rest POST <graph>/v1.0/directory/deletedItems/<object-id>/restore: its object "
        "id, and so its role assignments, come back); else `az ad sp create --id <appId>` and grant its roles again.",
        "test:tests/harness/test_app_registration_lab.py::test_a_deleted_service_principal_is_restored_not_made_ag"
        "ain",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
        "unit:tests/harness/test_identity_checks.py::test_an_application_without_a_service_principal_gets"
        "_one",
    ),
    _e(
        "APPLICATION_DISABLED", "identity", "error",
        "The application's service principal is disabled (AADSTS7000112).",
        "`az ad sp update --id <appId> --set accountEnabled=true`.",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
        "unit:tests/harness/test_checks.py::test_conditional_access_and_a_disabled_application_get_their_"
        "own_codes",
    ),
    _e(
        "FIC_MISSING", "federation", "error",
        "The identity has no federated credential for this issuer and subject (AADSTS70021/70025).",
        "`az identity federated-credential create` with the cluster's issuer and the ServiceAccount's "
        "subject (an app registration: `az ad app federated-credential create --id <appId>`).",
        "fault:fic-deleted",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "FIC_ISSUER_MISMATCH", "federation", "error",
        "A credential for the subject names another issuer, often without the trailing slash "
        "(AADSTS700211).",
        "`az identity federated-credential update --issuer <exact issuer URL>` (an app registration: "
        "`az ad app federated-credential update --id <appId> --federated-credential-id <name> --parameters "
        "<its JSON>`).",
        "scenario:issuer-without-slash",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "FIC_SUBJECT_MISMATCH", "federation", "error",
        "No credential names system:serviceaccount:NS:SA (AADSTS700213); the nearest configured subject "
        "is named.",
        "Create a credential for the subject.",
        "scenario:wrong-subject",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "FIC_SUBJECT_CASE_MISMATCH", "federation", "error",
        "A credential's subject equals the token's only ignoring case (AADSTS7002138): matching is "
        "case-sensitive.",
        "Update that credential's subject to the exact case.",
        "fault:fic-subject-case",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "FIC_AUDIENCE_MISMATCH", "federation", "error",
        "The credential's audience is not api://AzureADTokenExchange (AADSTS700212).",
        "`az identity federated-credential update --audiences api://AzureADTokenExchange` (an app "
        "registration: `az ad app federated-credential update --id <appId> --federated-credential-id <name> "
        "--parameters <its JSON>`).",
        "fault:fic-audience",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "FIC_LIMIT_REACHED", "federation", "warning",
        "The identity is at the limit of 20 federated credentials.",
        "Delete unused credentials, or use another identity.",
        "fault:twenty-credentials",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "FIC_PROPAGATION_PENDING", "federation", "warning",
        "The matching credential is new and Entra has not seen it yet (after the probe's bounded retries): "
        "only for a credential on the identity the pod exchanged as, written less than 10 minutes ago (or of "
        "unknown age).",
        "Wait (seconds to minutes) and run again.",
        "unit:tests/harness/test_issuer_keys_and_retries.py::test_propagation_pending_only_with_a_matchin"
        "g_credential_and_with_the_attempts",
        "unit:tests/harness/test_wrong_identity_checks.py::test_without_the_annotations_fault_a_matching_young_"
        "credential_is_still_propagation",
        "test:tests/harness/test_transient_lab.py::test_a_credential_still_propagating_after_the_retries_is_named_"
        "propagation_pending",
        advice_only="the credential is right: only time repairs it",
    ),
    # ------------------------------------------------------------------ entra (the exchange)
    _e(
        "EXCHANGE_FAILED", "entra", "error",
        "The exchange failed with an answer the harness has no finer name for.",
        "Read the AADSTS code in the evidence.",
        no_lab_fault="every answer the lab's Entra gives has a finer code",
        advice_only="an answer the harness has no name for has no known repair",
    ),
    _e(
        "EGRESS_BLOCKED", "entra", "error",
        "The pod cannot open a connection to Entra or the resource (network policy, firewall, proxy); the "
        "NetworkPolicies isolating the probe pod are named when the harness may list them (and those that select "
        "none of the workload's pods said to block only the probe). Also when the probe got through but the "
        "workload's own pods cannot: NetworkPolicies that select them and not the probe pod allow no connection "
        "to Entra's port. A certificate the pod could not verify (tls_verify) is no blocked path: the service "
        "answered, through a proxy re-signing TLS.",
        "Allow egress to the authority host and the resource hosts (an egress rule in the policy named, or "
        "`kubectl delete networkpolicy` if nothing else needs it).",
        "scenario:egress-blocked",
        "fault:keyvault-egress-blocked",
        "test:tests/harness/test_network_policy_lab.py::test_a_policy_denying_egress_to_entra_fails_the_run_and_"
        "deleting_it_repairs_it",
        "test:tests/harness/test_network_policy_lab.py::test_a_policy_for_the_apps_labels_fails_the_run_though_the_"
        "probe_gets_through",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "WORKLOAD_EGRESS_UNPROVEN", "entra", "warning",
        "The probe reached Entra, but NetworkPolicies restrict the egress of the workload's own pods and not the "
        "probe pod's alike, with rules the harness cannot judge (an ipBlock against a host name): the probe's "
        "success does not show the workload's pods get through.",
        "Check that the named policies' egress rules allow the authority host and the resource hosts (and DNS); "
        "whether an address block holds their addresses is for a person who knows the network.",
        "unit:tests/harness/test_network_policies.py::test_a_policy_the_harness_cannot_judge_for_the_apps_pods_is_"
        "a_warning",
        "test:tests/harness/test_network_policy_lab.py::test_a_policy_for_the_apps_labels_the_harness_cannot_judge_"
        "is_a_warning",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "TENANT_NOT_FOUND", "entra", "error",
        "The tenant does not exist (AADSTS90002): wrong AZURE_TENANT_ID or cloud.",
        "Fix the tenant-id annotation (or the webhook's tenant).",
        "fault:tenant-unknown",
        "fault:tenant-id-malformed",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "RESOURCE_NOT_IN_TENANT", "entra", "error",
        "The scope asked for has no service principal in the tenant (AADSTS500011): often another cloud's"
        " scope.",
        "Set the access entry's scope for the cloud.",
        "unit:tests/harness/test_checks.py::test_a_scope_of_another_cloud_is_named_with_the_resource_entr"
        "a_did_not_find",
        no_lab_fault="the lab's Entra knows every scope it is asked for",
    ),
    _e(
        "CONDITIONAL_ACCESS_BLOCKED", "entra", "error",
        "A Conditional Access policy for workload identities blocked the sign-in (AADSTS53003).",
        "Exempt the identity or meet the policy.",
        "unit:tests/harness/test_checks.py::test_conditional_access_and_a_disabled_application_get_their_"
        "own_codes",
        no_lab_fault="the lab's Entra has no Conditional Access",
        advice_only="whether a security policy excludes the workload is its owner's decision; the printed az rest "
                    "lists the enabled policies",
    ),
    _e(
        "EXCHANGE_WRONG_IDENTITY", "entra", "error",
        "The access token is for another identity or tenant than expected.",
        "Check the annotation and AZURE_CLIENT_ID in the pod.",
        no_lab_fault="the lab's Entra issues tokens for the client id asked",
    ),
    _e(
        "SDK_DISAGREES", "entra", "warning",
        "The raw exchange works but azure-identity's WorkloadIdentityCredential does not.",
        "Upgrade azure-identity in the workload's image.",
        no_lab_fault="the lab's image carries a working azure-identity",
    ),
    # ------------------------------------------------------------------ access
    _e(
        "ROLE_ASSIGNMENT_MISSING", "access", "error",
        "The identity holds no role that allows the read.",
        "`az role assignment create --role 'Key Vault Secrets User'` (or Storage Blob Data Reader) at the"
        " resource.",
        "scenario:missing-role",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "ROLE_WRONG_SCOPE", "access", "error",
        "The identity holds a fitting role, but on another vault, account or group.",
        "Assign the role at the target's scope.",
        "test:tests/harness/test_access_verdicts_lab.py::test_why_a_read_is_refused_is_told_apart_by_the_"
        "identitys_roles",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "ROLE_INSUFFICIENT", "access", "error",
        "A role at the right scope lacks the data action (Key Vault Reader, Contributor).",
        "Assign a data role (Key Vault Secrets User, Storage Blob Data Reader).",
        "test:tests/harness/test_access_verdicts_lab.py::test_why_a_read_is_refused_is_told_apart_by_the_"
        "identitys_roles",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "ROLE_PROPAGATION_PENDING", "access", "error",
        "A fitting assignment is younger than RBAC's propagation window.",
        "Wait a few minutes and run again.",
        "test:tests/harness/test_access_verdicts_lab.py::test_why_a_read_is_refused_is_told_apart_by_the_"
        "identitys_roles",
        advice_only="the assignment is right: only time repairs it",
    ),
    _e(
        "ACCESS_DENIED_UNEXPECTEDLY", "access", "error",
        "The read was refused and the roles do not tell why (the harness could not read them, or the resource is "
        "in another subscription, whose role assignments it does not read).",
        "Grant the read role at the resource.",
        "test:tests/harness/test_access_verdicts_lab.py::test_network_rules_never_prove_a_deny_and_are_na"
        "med_on_allow_targets",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "ACCESS_ALLOWED_UNEXPECTEDLY", "access", "error",
        "A read expected to be denied was allowed, or only the resource's network access refused it while the "
        "identity's role or access policy grants it: least privilege is broken.",
        "Remove the assignment that grants it (on a vault under access policies, take get out of the identity's "
        "policy).",
        "fault:deny-target-granted",
        "unit:tests/harness/test_deny_behind_network.py::test_a_role_that_grants_a_deny_target_behind_a_firewall_is_"
        "least_privilege_violated_and_revoked",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "DENY_NOT_PROVEN", "access", "warning",
        "A deny target refused for a reason other than authorization (network rules), and no role or access policy "
        "the harness read grants it: least privilege is not proven.",
        "Run from a network the resource admits.",
        "test:tests/harness/test_access_verdicts_lab.py::test_network_rules_never_prove_a_deny_and_are_na"
        "med_on_allow_targets",
        advice_only="the deny is unproven because the resource's network rules refused first: proving it needs a run from a network the rules admit (a person's choice of where the harness runs); opening the firewall to prove it would weaken the resource, so no printed command is the repair (the printed az role assignment list reads the rights instead)",
    ),
    _e(
        "KEYVAULT_FIREWALL", "access", "error",
        "The vault's firewall refused the pod's network (ForbiddenByFirewall).",
        "Add the cluster's network to the vault's rules (or a private endpoint).",
        "test:tests/harness/test_access_verdicts_lab.py::test_network_rules_never_prove_a_deny_and_are_na"
        "med_on_allow_targets",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "STORAGE_FIREWALL", "access", "error",
        "The storage account's network rules refused the pod.",
        "Add the cluster's network to the account's rules.",
        "test:tests/harness/test_access_verdicts_lab.py::test_network_rules_never_prove_a_deny_and_are_na"
        "med_on_allow_targets",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "KEYVAULT_ACCESS_POLICY_MISSING", "access", "error",
        "The vault uses access policies and none lets the identity get secrets.",
        "`az keyvault set-policy --secret-permissions get` (a role would not help).",
        "test:tests/harness/test_access_verdicts_lab.py::test_an_access_policy_vault_is_fixed_with_set_po"
        "licy",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "SECRET_NOT_FOUND", "access", "error",
        "The identity may read, but the secret does not exist (a wrong name, or a secret deleted: Key Vault keeps a "
        "deleted secret, and refuses its name, until it is recovered or purged).",
        "Recover it if az keyvault secret list-deleted names it, unless it was moved to another vault (then point "
        "vault_url in harness.yaml at that vault); else fix the secret's name in harness.yaml, or create it.",
        "test:tests/harness/test_access_verdicts_lab.py::test_why_a_read_is_refused_is_told_apart_by_the_"
        "identitys_roles",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "BLOB_NOT_FOUND", "access", "error",
        "The identity may read, but the blob, or its container, does not exist (Storage answers BlobNotFound or "
        "ContainerNotFound only to a caller it lets read there; on a deny target that answer is "
        "ACCESS_ALLOWED_UNEXPECTEDLY).",
        "Fix the blob's or the container's name in harness.yaml (the fix lists the container's blobs, or the "
        "account's containers), or upload it; a blob deleted under blob soft delete is listed with --include d and "
        "brought back with its undelete.",
        "test:tests/harness/test_access_verdicts_lab.py::test_a_blob_deleted_through_the_storage_api_is_blob_not_f"
        "ound",
        "unit:tests/harness/test_checks.py::test_only_authorization_refusals_prove_a_deny",
        "unit:tests/harness/test_checks.py::test_a_missing_blob_is_looked_for_among_the_soft_deleted_before_harness_"
        "yaml_is_blamed",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "SECRET_DISABLED", "access", "error",
        "The secret exists but is disabled.",
        "`az keyvault secret set-attributes --enabled true`.",
        "fault:secret-disabled",
        "unit:tests/harness/test_checks.py::test_only_authorization_refusals_prove_a_deny",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "VAULT_DELETED", "access", "error",
        "The vault the workload reads was deleted (az keyvault delete, or its resource group): ARM lists it under "
        "deletedVaults only, soft-deleted until its scheduled purge date.",
        "`az keyvault recover`, then grant the read role again: recovery does not restore the vault's role "
        "assignments.",
        "unit:tests/harness/test_keyvault_state_checks.py::test_a_soft_deleted_vault_is_named_and_recovered_whatever_"
        "its_host_answered",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "VAULT_NOT_FOUND", "access", "error",
        "The vault URL's host did not resolve and no subscription the harness reads has a vault of that name, live "
        "or soft-deleted: the URL is wrong (a typo) or the vault was purged.",
        "Set vault_url in harness.yaml to the vault's own URL (az keyvault list); a purged vault is made again.",
        "unit:tests/harness/test_keyvault_state_checks.py::test_a_vault_name_that_resolves_nowhere_and_is_no_vault_is"
        "_vault_not_found",
        no_lab_fault="the lab's vaults are reached by address, so no vault name fails to resolve",
    ),
    _e(
        "STORAGE_ACCOUNT_NOT_FOUND", "access", "error",
        "The account URL's host did not resolve and no subscription the harness reads has a storage account of that "
        "name: the URL is wrong (a typo) or the account was deleted.",
        "Set account_url in harness.yaml to the account's blob endpoint (az storage account list); a deleted account "
        "is recovered (14 days) or made again.",
        "unit:tests/harness/test_blob_answers.py::test_an_account_name_that_resolves_nowhere_and_is_no_account_is_"
        "storage_account_not_found",
        no_lab_fault="the lab's storage accounts are reached by address, so no account name fails to resolve",
    ),
    _e(
        "SECRET_EXPIRED", "access", "warning",
        "The workload read the secret, but its expiry date (exp) has passed: Key Vault serves an expired secret "
        "(it does not enforce exp), so the value is one its owner meant to have rotated.",
        "Rotate the secret (a new version), or move its expiry (`az keyvault secret set-attributes --expires`).",
        "unit:tests/harness/test_checks.py::test_an_expired_secret_read_is_a_warning",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "SECRET_NOT_YET_VALID", "access", "warning",
        "The workload read the secret, but its activation date (nbf) is still ahead: Key Vault serves it anyway (it "
        "does not enforce nbf), so the workload reads a version its owner meant for later (a rotation staged early).",
        "Move its activation date to now if the value is good now (`az keyvault secret set-attributes --not-before`); "
        "else set the value in use again.",
        "unit:tests/harness/test_keyvault_state_checks.py::test_a_secret_read_before_its_activation_date_is_a_warning",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "ACCESS_TARGET_NOT_TRUSTED", "access", "error",
        "The probe kept the token: the host is not the cloud's, or the vault's challenge named another "
        "resource.",
        "Set the access entry's URL to the resource's own.",
        "unit:tests/harness/test_access_targets.py::test_a_vault_that_does_not_prove_itself_gets_no_token"
        "_and_a_finding",
        no_lab_fault="the lab's vaults answer their own challenge",
    ),
    _e(
        "ACCESS_TOKEN_FAILED", "access", "error",
        "No token for the access check's scope.",
        "Set scope: on the access entry for the resource's cloud.",
        "unit:tests/harness/test_checks.py::test_access_errors_that_are_not_denials_say_what_to_look_at",
        no_lab_fault="the lab's Entra issues a token for every scope",
    ),
    _e(
        "ACCESS_UNAUTHENTICATED", "access", "error",
        "The service refused the token (401): wrong audience or tenant.",
        "Set scope: for the resource's cloud; the tenant-id annotation for another tenant.",
        "unit:tests/harness/test_checks.py::test_an_unaccepted_token_on_an_allow_target_is_not_a_missing_"
        "role",
        no_lab_fault="the lab's services accept the tokens its Entra issues for them",
    ),
    _e(
        "ACCESS_CHECK_ERROR", "access", "error",
        "The access check failed with an answer that is not a verdict.",
        "Read the evidence.",
        no_lab_fault="every lab answer is a verdict",
    ),
    # ------------------------------------------------------------------ the harness itself
    _e(
        "HARNESS_CREDENTIAL_FAILED", "harness", "error",
        "The harness's own Azure identity got no token.",
        "Fix azure.credential in harness.yaml (or az login).",
        "fault:harness-secret-wrong",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "AZURE_UNREACHABLE", "harness", "error",
        "The harness could not reach Entra, ARM or Graph (DNS, a refused or timed-out connection), or one "
        "answered with a TLS certificate it could not verify (a proxy re-signing TLS, a CA azure.ca_file lacks).",
        "Fix the network path or azure.ca_file.",
        "unit:tests/harness/test_adversarial_inputs.py::test_dns_failure_for_the_authority_is_azure_unrea"
        "chable_not_a_credential_failure",
        no_lab_fault="no lab fault cuts the harness (not the pods) from ARM yet",
    ),
    _e(
        "ARM_QUERY_FAILED", "harness|inventory", "error",
        "An ARM or Graph read failed (throttling, 5xx, refusal).",
        "Read the evidence; grant Reader where refused.",
        "unit:tests/harness/test_checks.py::test_cluster_checks_on_bare_facts",
        no_lab_fault="lab ctl fault arm is retried through by the harness",
    ),
    _e(
        "KUBE_UNAUTHORIZED", "harness", "error",
        "The API server refused the harness's credentials (401); named when ARM says the cluster's local accounts "
        "are disabled (disableLocalAccounts) and the kubeconfig signs in as one.",
        "Refresh the kubeconfig's credentials; with local accounts disabled, Entra credentials (az aks "
        "get-credentials without --admin, kubelogin) or az aks update --enable-local-accounts.",
        "unit:tests/harness/test_harness_wording.py::test_a_refused_local_account_on_a_cluster_with_local_accounts"
        "_disabled_says_so",
        no_lab_fault="the run stops before any check when the kubeconfig is refused",
    ),
    _e(
        "KUBE_FORBIDDEN", "harness", "error",
        "The harness may not read what a check needs (403).",
        "Apply the rendered manifests/harness-rbac.yaml.j2.",
        "unit:tests/harness/test_checks.py::test_an_unreachable_api_server_is_named_as_such_not_as_missin"
        "g_rights",
        no_lab_fault="the migration and inventory suites warn instead (POD_IDENTITY_UNREADABLE)",
    ),
    _e(
        "PROBE_FORBIDDEN", "harness", "error",
        "The harness may not create its probe pod (or the probe's source ConfigMap) in the workload's namespace "
        "(RBAC 403); the other workloads still run.",
        "Grant the harness's identity what manifests/harness-rbac.yaml.j2's wi-harness-probe Role grants in that "
        "namespace (the printed kubectl create role/rolebinding, one per rule; for the Job: manifests render and "
        "apply), then kubectl auth can-i create pods -n NS --as ... answers yes.",
        "test:tests/harness/test_reliability_lab.py::test_without_pod_create_in_one_namespace_that_workload_is_pro"
        "be_forbidden",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "KUBE_UNREACHABLE", "harness", "error",
        "The API server did not answer (refused, timed out, unresolved), or answered with a TLS certificate the "
        "kubeconfig's certificate-authority does not sign (its CA rotated, another cluster's CA, a proxy).",
        "Check the network path to it; for a certificate, write the kubeconfig again (az aks get-credentials "
        "--file) or exempt the API server from the TLS-inspecting proxy. When ARM answers 404 for the cluster (its "
        "group deleted, az aks delete) it says the cluster is deleted and lists the subscription's clusters.",
        "unit:tests/harness/test_checks.py::test_an_unreachable_api_server_is_named_as_such_not_as_missin"
        "g_rights",
        no_lab_fault="not in the fault matrix yet (lab ctl outage kube --down makes it, by hand)",
    ),
    _e(
        "KUBE_API_ERROR", "harness", "error",
        "The API server answered an error the harness has no finer name for.",
        "Read the status in the evidence.",
        no_lab_fault="the lab's API server answers only known errors",
    ),
    _e(
        "HARNESS_INTERNAL_ERROR", "harness", "error",
        "A check raised an exception (a harness bug): the other checks still ran.",
        "Report it with run.json.",
        no_lab_fault="a bug, not a fault",
        advice_only="a bug in the harness",
    ),
    # ------------------------------------------------------------------ inventory suite
    _e(
        "SA_WITHOUT_FIC", "inventory", "error",
        "An annotated ServiceAccount's identity has no credential for this cluster's issuer and subject.",
        "`az identity federated-credential create` (an app registration: `az ad app federated-credential "
        "create --id <appId>`).",
        "test:tests/harness/test_inventory_lab.py::test_a_service_account_without_a_credential",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "SA_ANNOTATION_WRONG_IDENTITY", "inventory", "error",
        "An annotated ServiceAccount's identity has no credential for it, while another identity has one that "
        "lets it in: the annotation names the wrong identity (another workload's client id, copied by hand).",
        "`kubectl annotate serviceaccount ... azure.workload.identity/client-id=<the identity that trusts it> "
        "--overwrite`, then restart what runs under it (not a new credential: that would let it act as the other "
        "identity).",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
        "unit:tests/harness/test_wrong_identity_checks.py::test_the_inventory_names_the_identity_that_trusts_the_"
        "service_account_and_sets_the_annotation",
    ),
    _e(
        "SA_CLIENT_ID_UNKNOWN", "inventory", "error|warning",
        "An annotated client id belongs to no identity the harness can see (Entra: AADSTS700016 when none "
        "exists).",
        "Annotate with an existing identity's client id.",
        "unit:tests/harness/test_inventory_checks.py::test_an_unknown_client_id",
        no_lab_fault="not yet in the inventory's lab tests",
    ),
    _e(
        "FIC_ORPHANED", "inventory", "warning",
        "A credential for this issuer names a ServiceAccount that does not exist.",
        "Delete the credential.",
        "test:tests/harness/test_inventory_lab.py::test_an_orphaned_credential",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "FIC_OLD_ISSUER", "inventory", "error|warning",
        "A credential names an issuer other than this cluster's (an old cluster, or the trailing-slash "
        "twin).",
        "Delete it where a working one is beside it; where it is the ServiceAccount's only one, update it to "
        "the current issuer in place (twin or older issuer), or create one beside another cluster's.",
        "test:tests/harness/test_inventory_lab.py::test_a_trailing_slash_twin",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "FIC_LIMIT_NEAR", "inventory", "warning",
        "An identity has 18 or more of its 20 federated credentials.",
        "Consolidate identities or credentials.",
        "test:tests/harness/test_inventory_lab.py::test_an_identity_at_19_credentials",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "ROLE_OVERLY_BROAD", "inventory", "error|warning",
        "A workload identity holds Owner, Contributor, User Access Administrator, Role Based Access Control "
        "Administrator or Key Vault Data Access Administrator (it may assign itself roles), Key Vault Contributor (it "
        "may grant itself a vault's secrets through access policies), Storage Account Contributor (it may list the "
        "account keys), a role at subscription or group scope, or, where harness.yaml declares only reads, a data "
        "role that writes (Key Vault Administrator, Key Vault Secrets Officer, Storage Blob Data Owner or "
        "Contributor).",
        "Replace it with a read role at the resource (Key Vault Secrets User, Storage Blob Data Reader): grant that "
        "first, then delete the broad assignment.",
        "test:tests/harness/test_inventory_lab.py::test_owner_on_a_workload_identity",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "INVENTORY_INCOMPLETE", "inventory", "warning",
        "Some lookups were refused: the inventory may miss identities.",
        "Grant the harness Reader (and Graph Application.Read.All).",
        "unit:tests/harness/test_inventory_checks.py::test_an_unknown_client_id",
        no_lab_fault="not yet in the inventory's lab tests",
    ),
    # ------------------------------------------------------------------ migration suite
    _e(
        "POD_IDENTITY_ADDON_ENABLED", "migration", "error|warning",
        "The AKS pod identity add-on is still on.",
        "`az aks update --disable-pod-identity`.",
        "test:tests/harness/test_migration_lab.py::test_the_migration_scenario_reports_its_leftovers_and_"
        "a_coverage_table_right_row_by_row",
        advice_only="its commands (az aks pod-identity delete, az aks update --disable-pod-identity) come from the aks-preview extension, which az installs from the network (core azure-cli has neither): the test cannot run them without leaving the machine; the lab's ARM takes the podIdentityProfile they send (lab/azure/arm.py _put_pod_identity_profile)",
    ),
    _e(
        "POD_IDENTITY_CRDS_PRESENT", "migration", "error|warning",
        "The aadpodidentity.k8s.io CRDs remain.",
        "`kubectl delete crd` for each.",
        "test:tests/harness/test_migration_lab.py::test_the_migration_scenario_reports_its_leftovers_and_"
        "a_coverage_table_right_row_by_row",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "POD_IDENTITY_OBJECTS_PRESENT", "migration", "error|warning",
        "AzureIdentity, binding, exception or assigned-identity objects remain.",
        "`kubectl delete` them (az aks pod-identity delete for ARM-made ones).",
        "test:tests/harness/test_migration_lab.py::test_the_migration_scenario_reports_its_leftovers_and_"
        "a_coverage_table_right_row_by_row",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "POD_IDENTITY_NMI_INSTALLED", "migration", "error|warning",
        "NMI still intercepts IMDS on every node.",
        "`helm uninstall` the aad-pod-identity release; `kubectl delete` it where it was applied from "
        "manifests.",
        "test:tests/harness/test_migration_lab.py::test_the_migration_scenario_reports_its_leftovers_and_"
        "a_coverage_table_right_row_by_row",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "POD_IDENTITY_MIC_INSTALLED", "migration", "error|warning",
        "MIC still assigns identities to nodes.",
        "`helm uninstall` the aad-pod-identity release; `kubectl delete` it where it was applied from "
        "manifests.",
        "test:tests/harness/test_migration_lab.py::test_the_migration_scenario_reports_its_leftovers_and_"
        "a_coverage_table_right_row_by_row",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "POD_IDENTITY_REMOVED_EARLY", "migration", "error",
        "NMI is not running (or its DaemonSet schedules no pod) while pods labelled aadpodidbinding with a binding's "
        "selector have no Workload ID token: their IMDS token requests reach the node's IMDS, which knows no binding; "
        "or MIC is gone while NMI runs in standard mode and such pods have no AzureAssignedIdentity: NMI gives them "
        "no token (an error even before the migration is declared complete).",
        "Move those workloads to Workload ID now (the coverage fixes it prints), or put NMI (MIC) back until they "
        "are moved.",
        "test:tests/harness/test_migration_lab.py::test_nmi_removed_before_the_workloads_moved_is_an_error_and_"
        "moving_them_as_printed_clears_it",
    ),
    _e(
        "POD_IDENTITY_PODS_LABELLED", "migration", "error|warning",
        "Pods still carry the aadpodidbinding label, or a Deployment's or DaemonSet's pod template does while none "
        "of its pods is (scaled to 0, or the label taken off the running pods by hand): its next pods carry it.",
        "Move them to Workload ID and remove the label: from the pod template, or from the pod alone where only the "
        "pod carries it (kubectl label pod ... aadpodidbinding-).",
        "test:tests/harness/test_migration_lab.py::test_the_migration_scenario_reports_its_leftovers_and_"
        "a_coverage_table_right_row_by_row",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
        "unit:tests/harness/test_migration_checks.py::test_a_pod_labelled_by_hand_loses_its_own_label_and_a_"
        "template_whose_pods_are_gone_is_still_a_leftover",
    ),
    _e(
        "POD_IDENTITY_BINDING_NOT_MIGRATED", "migration", "error|warning",
        "An AzureIdentityBinding has no complete Workload ID replacement (annotated SA, credential, "
        "labelled pods).",
        "Do what the coverage row says it lacks.",
        "test:tests/harness/test_migration_lab.py::test_the_migration_scenario_reports_its_leftovers_and_"
        "a_coverage_table_right_row_by_row",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
    _e(
        "POD_IDENTITY_COVERAGE_UNKNOWN", "migration", "warning",
        "The harness could not tell whether a binding is covered (its identity could not be looked up).",
        "Grant the harness Reader where the identity lives.",
        "unit:tests/harness/test_migration_checks.py::test_an_identity_the_harness_cannot_see_leaves_the_"
        "credential_unknown",
        no_lab_fault="not yet in the migration lab tests",
    ),
    _e(
        "POD_IDENTITY_UNREADABLE", "migration", "warning",
        "The harness may not list the pod identity kinds.",
        "Grant the harness list on them (the printed kubectl create clusterrole/clusterrolebinding; for the Job: the "
        "rendered harness RBAC).",
        "test:tests/harness/test_migration_lab.py::test_a_harness_that_may_not_list_the_pod_identity_kind"
        "s_warns_and_does_not_fail",
        "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab",
    ),
)

BY_CODE = {entry.code: entry for entry in CATALOGUE}


def lab_reproduced() -> list[Entry]:
    return [entry for entry in CATALOGUE if entry.lab_reproduced]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _reproduction(ref: str) -> str:
    kind, _, what = ref.partition(":")
    if kind == "scenario":
        return f"lab scenario `{what}`"
    if kind == "fault":
        return f"fault matrix `{what}`"
    path, _, test = what.partition("::")
    return f"{'lab test' if kind == 'test' else 'unit test'} `{path.rsplit('/', 1)[-1]}::{test}`"


def render_markdown() -> str:
    """docs/findings.md: one table row per code, in catalogue order (grouped by layer)."""
    covered = lab_reproduced()
    untested = [entry.code for entry in CATALOGUE if not entry.reproduced_by]
    lines = [
        "# Finding codes",
        "",
        "Generated from `harness/findings.py` by",
        "`python -m harness findings --format md > docs/findings.md`; a test fails when this file and the",
        "code differ. Codes are stable; messages are for people.",
        "",
        f"{len(CATALOGUE)} codes. {len(covered)} are reproduced by a fault in the lab: a lab scenario or a "
        f"fault of the fault matrix (`{FAULT_MATRIX}`, which asserts the exact set of error codes of "
        "each), or a lab test that makes the fault by hand. The others name the unit test that makes them "
        f"from facts, if any, and why no lab fault does yet; {len(untested)} are made by no test yet.",
        "",
        "| Code | Layer | Severity | Meaning | Fix | Reproduced by |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for entry in CATALOGUE:
        reproduced = "; ".join(_reproduction(ref) for ref in entry.reproduced_by) or "no test yet"
        if entry.no_lab_fault:
            reproduced += f" (no lab fault: {entry.no_lab_fault})"
        severity = entry.severity.replace("|", " or ")
        fix = f"Advice only, no command repairs it ({entry.advice_only}): {entry.fix}" if entry.advice_only \
            else entry.fix
        cells = [f"`{entry.code}`", entry.layer, severity, entry.meaning, fix, reproduced]
        lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def render_text() -> str:
    return "".join(f"{e.code:<34} {e.layer:<15} {e.severity:<14} {e.meaning}\n" for e in CATALOGUE)
