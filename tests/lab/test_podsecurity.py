"""Pod Security Admission emulation: upstream check texts, ordering, modes and versions."""

from __future__ import annotations

from typing import Any

import pytest

from lab.kube.errors import ApiError
from lab.kube.podsecurity import (
    AUDIT_VIOLATIONS_ANNOTATION,
    LevelVersion,
    check_pod_security,
    evaluate_pod_security,
    namespace_policy,
)
from lab.kube.webhook import WebhookSettings, admit_pod

Obj = dict[str, Any]

RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted"}
BASELINE = {"pod-security.kubernetes.io/enforce": "baseline"}
HARDENED = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "seccompProfile": {"type": "RuntimeDefault"},
}
BARE_C = (
    'allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), '
    'unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]), '
    'runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), '
    'seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or '
    '"Localhost")'
)


def bare_pod(*names: str, name: str = "p", **spec: Any) -> Obj:
    containers = [{"name": n, "image": "busybox"} for n in names or ("c",)]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "apps"},
            "spec": {"containers": containers, **spec}}


def hardened_pod(name: str = "p") -> Obj:
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "apps"},
        "spec": {
            "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
            "initContainers": [{"name": "init", "image": "busybox", "securityContext": dict(HARDENED)}],
            "containers": [{"name": "app", "image": "busybox", "securityContext": dict(HARDENED),
                            "ports": [{"containerPort": 8080}]}],
            "volumes": [
                {"name": "token", "projected": {"sources": [{"serviceAccountToken": {
                    "path": "token", "audience": "api://AzureADTokenExchange", "expirationSeconds": 3600}}],
                    "defaultMode": 420}},
                {"name": "config", "configMap": {"name": "settings"}},
                {"name": "scratch", "emptyDir": {}},
                {"name": "creds", "secret": {"secretName": "creds"}},
                {"name": "info", "downwardAPI": {"items": []}},
            ],
        },
    }


def forbidden_message(pod: Obj, labels: dict[str, str], **kwargs: Any) -> str:
    with pytest.raises(ApiError) as caught:
        check_pod_security(pod, labels, **kwargs)
    assert (caught.value.code, caught.value.reason) == (403, "Forbidden")
    return caught.value.message


# ---------------------------------------------------------------- restricted


def test_compliant_pod_is_admitted_by_restricted() -> None:
    labels = {**RESTRICTED, "pod-security.kubernetes.io/warn": "restricted", "pod-security.kubernetes.io/audit": "restricted"}
    assert check_pod_security(hardened_pod(), labels) == []


def test_container_level_settings_alone_are_enough() -> None:
    body = bare_pod("c")
    body["spec"]["containers"][0]["securityContext"] = dict(HARDENED)
    assert check_pod_security(body, RESTRICTED) == []


def test_bare_pod_violates_restricted_with_the_real_message() -> None:
    message = forbidden_message(bare_pod("c"), RESTRICTED)
    assert message == f'pods "p" is forbidden: violates PodSecurity "restricted:latest": {BARE_C}'


def test_forbidden_status_details() -> None:
    with pytest.raises(ApiError) as caught:
        check_pod_security(bare_pod("c"), RESTRICTED)
    assert caught.value.status()["details"] == {"name": "p", "kind": "pods"}


def test_plural_container_text() -> None:
    message = forbidden_message(bare_pod("a", "b"), RESTRICTED)
    assert 'allowPrivilegeEscalation != false (containers "a", "b" must set securityContext.allowPrivilegeEscalation=false)' in message
    assert 'runAsNonRoot != true (pod or containers "a", "b" must set securityContext.runAsNonRoot=true)' in message


def test_init_and_ephemeral_containers_are_checked_in_order() -> None:
    body = bare_pod("main")
    body["spec"]["initContainers"] = [{"name": "init", "image": "busybox"}]
    body["spec"]["ephemeralContainers"] = [{"name": "debug", "image": "busybox"}]
    message = forbidden_message(body, RESTRICTED)
    assert '(containers "init", "main", "debug" must set securityContext.allowPrivilegeEscalation=false)' in message


def test_explicit_bad_values() -> None:
    body = hardened_pod()
    body["spec"]["securityContext"] = {"runAsNonRoot": False, "runAsUser": 0, "seccompProfile": {"type": "Unconfined"}}
    app = body["spec"]["containers"][0]["securityContext"]
    app.update(runAsNonRoot=False, allowPrivilegeEscalation=True, capabilities={"drop": ["NET_RAW"], "add": ["SYS_ADMIN", "NET_BIND_SERVICE"]})
    app.pop("seccompProfile")
    message = forbidden_message(body, RESTRICTED)
    # seccompProfile_restricted overrides seccompProfile_baseline: the explicit Unconfined is reported once
    assert message == (
        'pods "p" is forbidden: violates PodSecurity "restricted:latest": '
        'allowPrivilegeEscalation != false (container "app" must set securityContext.allowPrivilegeEscalation=false), '
        'unrestricted capabilities (container "app" must set securityContext.capabilities.drop=["ALL"]; '
        'container "app" must not include "SYS_ADMIN" in securityContext.capabilities.add), '
        'runAsNonRoot != true (pod and container "app" must not set securityContext.runAsNonRoot=false), '
        'runAsUser=0 (pod must not set runAsUser=0), '
        'seccompProfile (pod must not set securityContext.seccompProfile.type to "Unconfined")'
    )


def test_restricted_volume_types_replace_the_hostpath_check() -> None:
    body = hardened_pod()
    body["spec"]["volumes"] += [{"name": "host", "hostPath": {"path": "/"}}, {"name": "share", "nfs": {"server": "x"}}]
    message = forbidden_message(body, RESTRICTED)
    assert message.endswith(': restricted volume types (volumes "host", "share" use restricted volume types '
                            '"hostPath", "nfs")')
    assert "hostPath volumes" not in message


# ---------------------------------------------------------------- baseline


def test_baseline_admits_a_bare_pod() -> None:
    assert check_pod_security(bare_pod("c"), BASELINE) == []


def test_baseline_violations() -> None:
    body = bare_pod("c", hostNetwork=True, hostPID=True, volumes=[{"name": "host", "hostPath": {"path": "/"}}])
    body["spec"]["containers"][0]["securityContext"] = {"privileged": True, "capabilities": {"add": ["NET_RAW"]}}
    body["spec"]["containers"][0]["ports"] = [{"containerPort": 80, "hostPort": 80}]
    message = forbidden_message(body, BASELINE)
    assert message == (
        'pods "p" is forbidden: violates PodSecurity "baseline:latest": '
        'non-default capabilities (container "c" must not include "NET_RAW" in securityContext.capabilities.add), '
        "host namespaces (hostNetwork=true, hostPID=true), "
        'hostPath volumes (volume "host"), '
        'hostPort (container "c" uses hostPort 80), '
        'privileged (container "c" must not set securityContext.privileged=true)'
    )


def test_restricted_includes_baseline_checks_first() -> None:
    body = bare_pod("c", hostIPC=True)
    message = forbidden_message(body, RESTRICTED)
    assert message == f'pods "p" is forbidden: violates PodSecurity "restricted:latest": host namespaces (hostIPC=true), {BARE_C}'


def test_other_baseline_texts() -> None:
    body = bare_pod("a", "b", securityContext={"sysctls": [{"name": "kernel.msgmax", "value": "1"},
                                                           {"name": "net.ipv4.tcp_rmem", "value": "4096"}],
                                               "seLinuxOptions": {"type": "spc_t", "user": "root"}})
    body["spec"]["containers"][0]["ports"] = [{"containerPort": 1, "hostPort": 9090}, {"containerPort": 2, "hostPort": 10}]
    body["spec"]["containers"][1]["ports"] = [{"containerPort": 3, "hostPort": 8080}]
    body["spec"]["containers"][1]["securityContext"] = {"procMount": "Unmasked",
                                                        "windowsOptions": {"hostProcess": True}}
    message = forbidden_message(body, BASELINE)
    assert message == (
        'pods "p" is forbidden: violates PodSecurity "baseline:latest": '
        'hostPort (containers "a", "b" use hostPorts 10, 8080, 9090), '
        'procMount (container "b" must not set securityContext.procMount to "Unmasked"), '
        'seLinuxOptions (pod set forbidden securityContext.seLinuxOptions: type "spc_t"; user may not be set), '
        "forbidden sysctls (kernel.msgmax), "
        'hostProcess (container "b" must not set securityContext.windowsOptions.hostProcess=true)'
    )


def test_sysctl_allow_list_depends_on_the_policy_version() -> None:
    body = bare_pod("c", securityContext={"sysctls": [{"name": "net.ipv4.tcp_rmem", "value": "4096"}]})
    labels = {**BASELINE, "pod-security.kubernetes.io/enforce-version": "v1.31"}
    assert forbidden_message(body, labels).endswith('"baseline:v1.31": forbidden sysctls (net.ipv4.tcp_rmem)')
    assert check_pod_security(body, {**labels, "pod-security.kubernetes.io/enforce-version": "v1.32"}) == []


def test_apparmor_texts() -> None:
    body = bare_pod("c")
    body["metadata"]["annotations"] = {"container.apparmor.security.beta.kubernetes.io/c": "unconfined"}
    body["spec"]["containers"][0]["securityContext"] = {"appArmorProfile": {"type": "Unconfined"}}
    assert forbidden_message(body, BASELINE).endswith(
        ': forbidden AppArmor profiles (container "c" and annotation must not set AppArmor profile type to '
        '"Unconfined", "container.apparmor.security.beta.kubernetes.io/c="unconfined"")')


# ---------------------------------------------------------------- labels, versions, modes


def test_namespace_without_labels_admits_everything() -> None:
    body = bare_pod("c", hostNetwork=True)
    body["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    assert check_pod_security(body, {}) == []
    assert check_pod_security(body, {"kubernetes.io/metadata.name": "apps"}) == []
    assert check_pod_security(body, {"pod-security.kubernetes.io/enforce": "privileged"}) == []


def test_enforce_version_appears_in_the_message() -> None:
    labels = {**RESTRICTED, "pod-security.kubernetes.io/enforce-version": "v1.31"}
    assert forbidden_message(bare_pod("c"), labels) == f'pods "p" is forbidden: violates PodSecurity "restricted:v1.31": {BARE_C}'


def test_old_policy_versions_skip_newer_checks() -> None:
    body = bare_pod("c")
    body["spec"]["securityContext"] = {"runAsNonRoot": True}
    labels = {**RESTRICTED, "pod-security.kubernetes.io/enforce-version": "v1.18"}
    assert forbidden_message(body, labels) == (
        'pods "p" is forbidden: violates PodSecurity "restricted:v1.18": '
        'allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false)')


def test_warn_mode_gives_warnings() -> None:
    labels = {"pod-security.kubernetes.io/warn": "restricted"}
    assert check_pod_security(bare_pod("c"), labels) == [f'would violate PodSecurity "restricted:latest": {BARE_C}']


def test_enforce_baseline_warn_restricted() -> None:
    labels = {**BASELINE, "pod-security.kubernetes.io/warn": "restricted",
              "pod-security.kubernetes.io/warn-version": "v1.32"}
    assert check_pod_security(bare_pod("c"), labels) == [f'would violate PodSecurity "restricted:v1.32": {BARE_C}']


def test_audit_mode_is_an_annotation_not_a_warning() -> None:
    outcome = evaluate_pod_security(bare_pod("c"), {"pod-security.kubernetes.io/audit": "restricted"})
    assert outcome.warnings == []
    assert outcome.audit_annotations == {
        AUDIT_VIOLATIONS_ANNOTATION: f'would violate PodSecurity "restricted:latest": {BARE_C}'}


def test_warn_defaults_to_a_stricter_enforce_level() -> None:
    policy = namespace_policy({**RESTRICTED, "pod-security.kubernetes.io/enforce-version": "v1.30"})
    assert policy.warn == LevelVersion("restricted", "v1.30")
    assert policy.audit == LevelVersion("privileged", "latest")
    policy = namespace_policy({**RESTRICTED, "pod-security.kubernetes.io/warn": "baseline"})
    assert policy.warn == LevelVersion("baseline", "latest")


def test_invalid_labels_fall_back_to_restricted_latest() -> None:
    policy = namespace_policy({"pod-security.kubernetes.io/enforce": "strict",
                               "pod-security.kubernetes.io/enforce-version": "1.30"})
    assert policy.enforce == LevelVersion("restricted", "latest")


def test_generate_name_pods_without_a_name() -> None:
    body = bare_pod("c", name="")
    body["metadata"]["generateName"] = "web-"
    assert forbidden_message(body, RESTRICTED) == f'pods is forbidden: violates PodSecurity "restricted:latest": {BARE_C}'


def test_windows_pods_are_exempt_from_linux_only_checks() -> None:
    body = bare_pod("c", os={"name": "windows"}, securityContext={"runAsNonRoot": True})
    assert check_pod_security(body, RESTRICTED) == []


# ---------------------------------------------------------------- PSA sees the webhook's output


def _labelled(body: Obj) -> Obj:
    body["metadata"]["labels"] = {"azure.workload.identity/use": "true"}
    body["spec"]["serviceAccountName"] = "wi"
    return body


def _webhook(body: Obj) -> Obj:
    account = {"metadata": {"name": "wi", "namespace": "apps",
                            "annotations": {"azure.workload.identity/client-id": "id"}}}
    return admit_pod(body, "apps", WebhookSettings(tenant_id="t", layout="v1.6"),
                     lambda ns, name: account if name == "wi" else None,
                     {})


def test_mutated_compliant_pod_still_passes_restricted() -> None:
    mutated = _webhook(_labelled(hardened_pod()))
    assert any(v["name"].startswith("azure-workload-identity-reserved-") for v in mutated["spec"]["volumes"])
    assert check_pod_security(mutated, RESTRICTED) == []


def test_proxy_init_container_fails_baseline_after_mutation() -> None:
    body = _labelled(hardened_pod())
    body["metadata"]["annotations"] = {"azure.workload.identity/inject-proxy-sidecar": "true"}
    message = forbidden_message(_webhook(body), BASELINE)
    assert message == (
        'pods "p" is forbidden: violates PodSecurity "baseline:latest": '
        'non-default capabilities (container "azwi-proxy-init" must not include "NET_ADMIN" in '
        'securityContext.capabilities.add), '
        'privileged (container "azwi-proxy-init" must not set securityContext.privileged=true)'
    )


# ---------------------------------------------------------------- version-dependent checks


def test_baseline_rejects_explicit_unconfined_seccomp() -> None:
    body = bare_pod("a", "b")
    for c in body["spec"]["containers"]:
        c["securityContext"] = {"seccompProfile": {"type": "Unconfined"}}
    assert forbidden_message(body, BASELINE).endswith(
        ': seccompProfile (containers "a", "b" must not set securityContext.seccompProfile.type to "Unconfined")')


def test_probe_hosts_are_checked_from_policy_134() -> None:
    body = bare_pod("c")
    body["spec"]["containers"][0]["livenessProbe"] = {"httpGet": {"host": "10.0.0.1", "port": 80}}
    assert check_pod_security(body, BASELINE) == [], "not a check before 1.34 (default server 1.32)"
    assert forbidden_message(body, BASELINE, server_minor=34).endswith(
        '"baseline:latest": probe or lifecycle host (container "c" uses probe or lifecycle host "10.0.0.1")')


def test_labelling_a_namespace_stricter_warns_about_its_pods_and_bad_labels_are_invalid() -> None:
    """admission.go ValidateNamespace: a stricter enforce level dry-runs the namespace's pods (one warning per set of
    reasons, the lexically first pod named, the others counted); a relaxed or unchanged level, or privileged,
    does not; labels that do not parse are refused on create, and on update when they changed."""
    from lab.kube.podsecurity import validate_namespace

    pods = [bare_pod(name="web-b"), bare_pod(name="web-a"), bare_pod(name="web-c"), hardened_pod("ok"),
            bare_pod(name="priv", securityContext={"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}})]
    warnings = validate_namespace("apps", {}, RESTRICTED, pods)
    assert warnings == [
        'existing pods in namespace "apps" violate the new PodSecurity enforce level "restricted:latest"',
        "priv: allowPrivilegeEscalation != false, unrestricted capabilities",
        "web-a (and 2 other pods): allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != "
        "true, seccompProfile",
    ]
    assert validate_namespace("apps", RESTRICTED, BASELINE, pods) == []  # relaxed
    assert validate_namespace("apps", RESTRICTED, dict(RESTRICTED), pods) == []  # unchanged
    assert validate_namespace("apps", {}, BASELINE, pods) == []  # every pod meets baseline
    assert validate_namespace("apps", {}, RESTRICTED, [hardened_pod()]) == []
    assert validate_namespace("apps", None, RESTRICTED, pods) == []  # a create dry-runs nothing
    with pytest.raises(ApiError) as bad:
        validate_namespace("apps", {}, {"pod-security.kubernetes.io/enforce": "strict"}, pods)
    assert (bad.value.code, bad.value.message) == (422, 'Namespace "apps" is invalid: metadata.labels'
                                                        '[pod-security.kubernetes.io/enforce]: Invalid value: "strict": '
                                                        "must be one of privileged, baseline, restricted")
    both = {"pod-security.kubernetes.io/warn": "strict", "pod-security.kubernetes.io/warn-version": "1.30"}
    with pytest.raises(ApiError) as two:
        validate_namespace("apps", None, both, [])
    assert two.value.message.endswith('[metadata.labels[pod-security.kubernetes.io/warn]: Invalid value: "strict": '
                                      "must be one of privileged, baseline, restricted, metadata.labels"
                                      '[pod-security.kubernetes.io/warn-version]: Invalid value: "1.30": must be '
                                      '"latest" or "v1.x"]')
    assert validate_namespace("apps", both, {**both, "team": "x"}, []) == []  # unchanged bad labels stay


def test_a_workload_resource_is_never_refused_but_warned_about_at_the_warn_level() -> None:
    """ValidatePodController: the pod template of a Deployment, a CronJob's job template... evaluated at the warn
    level (the enforce level when no warn label is set), a warning only; privileged warns nothing."""
    from lab.kube.podsecurity import controller_warnings

    bare = bare_pod()
    deployment = {"spec": {"template": {"metadata": {}, "spec": bare["spec"]}}}
    assert controller_warnings(("apps", "deployments"), deployment, RESTRICTED) == [
        f'would violate PodSecurity "restricted:latest": {BARE_C}']
    cronjob = {"spec": {"jobTemplate": {"spec": {"template": {"spec": bare["spec"]}}}}}
    warn_only = {"pod-security.kubernetes.io/warn": "restricted", "pod-security.kubernetes.io/warn-version": "v1.30"}
    assert controller_warnings(("batch", "cronjobs"), cronjob, warn_only) == [
        f'would violate PodSecurity "restricted:v1.30": {BARE_C}']
    assert controller_warnings(("apps", "deployments"), deployment, {}) == []
    assert controller_warnings(("apps", "deployments"), deployment, BASELINE) == []
    hardened = {"spec": {"template": {"spec": hardened_pod()["spec"]}}}
    assert controller_warnings(("apps", "deployments"), hardened, RESTRICTED) == []
    assert controller_warnings(("", "configmaps"), {"data": {}}, RESTRICTED) == []
    assert controller_warnings(("apps", "deployments"), {"spec": {}}, RESTRICTED) == []
