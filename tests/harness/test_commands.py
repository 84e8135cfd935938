"""The one command renderer: whatever a value holds, a printed fix is exactly the intended argv when pasted.

Property tests feed arbitrary strings through every remediation builder and check that ``shlex.split`` of the
printed line gives back the intended words; the paste tests run printed fixes in a real bash with stub
``az``/``kubectl``/``docker`` on PATH and check that nothing but the stubs ran, with the literal values.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fakeworld import World
from hypothesis import given, settings
from hypothesis import strategies as st

from harness import values
from harness.checks import remediation as fix
from harness.checks.model import Finding
from harness.commands import Advice, Command, Var, advice, command, intended_words, render
from harness.config import AzureConfig, CloudConfig, CredentialConfig, parse_config

HARNESS = Path(__file__).resolve().parents[2] / "harness"
PROGRAMS = ("az", "kubectl", "docker", "curl", "helm", "kubelogin")

any_text = st.text(max_size=60)
nasty_text = st.one_of(
    any_text,
    st.sampled_from([
        "x'\"; touch P1; echo \"$(touch P2)",
        "`touch P3`",
        "$(touch P4)",
        "a\nb; touch P5",
        "' ; touch P6 #",
        "\\'; touch P7",
        "$'\\x27'; touch P8",
        "-rf /",
        "*",
        "~root",
        "!!",
        "<(touch P9)",
        "a\rb",
        "\x00",
        "",
    ]),
)


def words_of(line: str, step: Command) -> list[str]:
    """Split a rendered command back into words as a shell would: a trailing comment dropped, ``NAME=$(...)``
    unwrapped."""
    words = shlex.split(line, comments=True)
    if step.capture:
        prefix = f"{step.capture}=$("
        assert words[0].startswith(prefix) and words[-1].endswith(")"), line
        words[0] = words[0][len(prefix):]
        words[-1] = words[-1][:-1]
    return words


def assert_round_trips(steps: list[Any]) -> None:
    for step in steps:
        line = render(step)
        if isinstance(step, Advice):
            assert line.startswith("# ") and "\n" not in line and "\r" not in line
            assert shlex.split(line, comments=True) == []
            continue
        assert words_of(line, step) == intended_words(step), line


@given(st.lists(nasty_text, max_size=6), any_text)
def test_any_argv_renders_to_exactly_its_words(argv: list[str], note: str) -> None:
    step = command("prog", *argv, note=note)
    line = render(step)
    assert words_of(line, step) == ["prog", *argv]
    assert "\n" not in line.rsplit("   # ", 1)[-1] if note else True


@given(nasty_text)
def test_advice_is_always_one_comment_line(text: str) -> None:
    line = render(advice(text))
    assert line.startswith("# ") and "\n" not in line and "\r" not in line
    assert shlex.split(line, comments=True) == []


@given(nasty_text)
def test_a_captured_variable_stays_one_word_whatever_follows_it(suffix: str) -> None:
    step = command("az", "role", "assignment", "create", "--scope", Var("SCOPE", suffix))
    assert words_of(render(step), step) == ["az", "role", "assignment", "create", "--scope", "$SCOPE" + suffix]


@given(nasty_text, nasty_text)
def test_a_captured_variable_stays_one_word_between_a_prefix_and_a_suffix(prefix: str, suffix: str) -> None:
    step = command("kubectl", "patch", "-p", Var("CA", suffix, prefix))
    assert words_of(render(step), step) == ["kubectl", "patch", "-p", prefix + "$CA" + suffix]


def test_strings_are_not_fixes() -> None:
    with pytest.raises(TypeError, match="Command or an Advice"):
        render("kubectl get pods")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Var("scope; touch x")
    with pytest.raises(ValueError):
        Command(("az",), capture="$(x)")


def azure_of(draw: st.DrawFn) -> AzureConfig:
    """An Azure section holding arbitrary strings (as if validation had let anything through)."""
    credential = draw(st.one_of(st.none(), st.builds(
        lambda client_id, env: CredentialConfig.model_construct(
            client_id=client_id, client_secret_env=env, client_secret_file=None
        ),
        nasty_text, nasty_text,
    )))
    return AzureConfig.model_construct(
        cloud=CloudConfig(name="AzureCloud"), ca_file=None, tenant_id=draw(nasty_text),
        subscription_id=draw(nasty_text), resource_group=draw(nasty_text), cluster_name=draw(nasty_text),
        credential=credential,
    )


IDENTITY_ID = ("/subscriptions/0b1f6471-1bf0-4dda-aec3-cb9272f09590/resourceGroups/rg/providers/"
               "Microsoft.ManagedIdentity/userAssignedIdentities/id")
VAULT_ID = ("/subscriptions/0b1f6471-1bf0-4dda-aec3-cb9272f09590/resourceGroups/rg/providers/"
            "Microsoft.KeyVault/vaults/kv")
ACCOUNT_ID = VAULT_ID.replace("Microsoft.KeyVault/vaults/kv", "Microsoft.Storage/storageAccounts/sa")
vault_id = st.one_of(st.none(), nasty_text, st.just(VAULT_ID))
# Every builder in harness.checks.remediation, with arbitrary strings for every value it takes.
BUILDERS: dict[str, Callable[[st.DrawFn], Any]] = {
    "annotate_sa": lambda d: fix.annotate_sa(d(nasty_text), d(nasty_text), d(nasty_text)),
    "annotate_sa_tenant": lambda d: fix.annotate_sa_tenant(d(nasty_text), d(nasty_text), d(nasty_text)),
    "remove_sa_annotation": lambda d: fix.remove_sa_annotation(d(nasty_text), d(nasty_text), d(nasty_text)),
    "remove_sa_label": lambda d: fix.remove_sa_label(d(nasty_text), d(nasty_text), d(nasty_text)),
    "node_clock": lambda d: fix.node_clock(d(nasty_text)),
    "restart_pods": lambda d: fix.restart_pods(d(nasty_text)),
    "tolerate_taint": lambda d: fix.tolerate_taint(d(nasty_text), d(nasty_text)),
    "probe_rbac": lambda d: fix.probe_rbac(d(nasty_text), d(nasty_text)),
    "cluster_list_rbac": lambda d: fix.cluster_list_rbac(d(nasty_text), [d(nasty_text)], d(nasty_text)),
    "grant_rbac": lambda d: fix.grant_rbac(d(nasty_text), d(nasty_text), d(nasty_text),
                                           d(st.none() | nasty_text), d(nasty_text)),
    "describe_pod": lambda d: fix.describe_pod(d(nasty_text), d(nasty_text), d(nasty_text)),
    "pod_logs": lambda d: fix.pod_logs(d(nasty_text), d(nasty_text), d(nasty_text)),
    "can_i": lambda d: fix.can_i(d(nasty_text), d(nasty_text), d(nasty_text)),
    "federated_credential": lambda d: fix.federated_credential(
        d(nasty_text), d(nasty_text), d(nasty_text), d(nasty_text), d(nasty_text)
    ),
    "show_identity": lambda d: fix.show_identity(d(nasty_text)),
    "find_identity_by_client_id": lambda d: fix.find_identity_by_client_id(d(nasty_text)),
    "egress_test": lambda d: fix.egress_test(d(nasty_text), d(nasty_text), [d(nasty_text), d(nasty_text)],
                                             fix.egress_rule_added(d(nasty_text), d(nasty_text), d(st.booleans()),
                                                                   [d(st.integers(-5, 70000))], d(st.booleans()))),
    "egress_rule_added": lambda d: fix.egress_rule_added(d(nasty_text), d(nasty_text), d(st.booleans()),
                                                         d(st.lists(st.integers(-5, 70000), max_size=4)),
                                                         d(st.booleans())),
    "grant_role": lambda d: fix.grant_role(d(nasty_text), d(nasty_text), d(nasty_text)),
    "keyvault_id": lambda d: fix.keyvault_id(d(nasty_text)),
    "storage_account_id": lambda d: fix.storage_account_id(d(nasty_text)),
    "container_scope": lambda d: fix.grant_role(d(nasty_text), d(nasty_text), fix.container_scope(d(nasty_text))),
    "list_roles": lambda d: fix.list_roles(d(nasty_text)),
    "show_secret": lambda d: fix.show_secret(d(nasty_text), d(nasty_text)),
    "show_blob": lambda d: fix.show_blob(d(nasty_text), d(nasty_text), d(nasty_text)),
    "build_probe_image": lambda d: fix.build_probe_image(d(nasty_text)),
    "mirror_probe_image": lambda d: fix.mirror_probe_image(d(nasty_text)),
    "mirror_probe_image into an allowed registry": lambda d: fix.mirror_probe_image(d(nasty_text), d(nasty_text)),
    "curl": lambda d: fix.curl(d(nasty_text)),
    "resolve_host": lambda d: fix.resolve_host(d(nasty_text)),
    "https_reachable": lambda d: fix.https_reachable(d(nasty_text), d(st.one_of(st.none(), nasty_text))),
    "show_identity_client_id": lambda d: fix.show_identity_client_id(d(st.one_of(nasty_text, st.just(IDENTITY_ID)))),
    "keyvault_uri": lambda d: fix.keyvault_uri(d(nasty_text), d(vault_id)),
    "storage_blob_endpoint": lambda d: fix.storage_blob_endpoint(
        d(nasty_text), d(st.one_of(st.none(), nasty_text, st.just(ACCOUNT_ID)))),
    "helm_list_webhook": lambda d: fix.helm_list_webhook(),
    "deleted_applications": lambda d: fix.deleted_applications(d(nasty_text), d(nasty_text)),
    "kubectl": lambda d: fix.kubectl(d(nasty_text), d(nasty_text), note=d(nasty_text)),
    "use_kubeconfig": lambda d: fix.use_kubeconfig(d(nasty_text)),
    "use_context": lambda d: fix.use_context(d(nasty_text)),
    "aks_show": lambda d: fix.aks_show(azure_of(d), d(nasty_text), note=d(nasty_text)),
    "aks_update": lambda d: fix.aks_update(azure_of(d), d(nasty_text)),
    "aks_check_acr": lambda d: fix.aks_check_acr(azure_of(d), d(nasty_text)),
    "acr_import": lambda d: fix.acr_import(d(nasty_text), d(nasty_text), d(nasty_text), note=d(nasty_text)),
    "tenant_of_subscription": lambda d: fix.tenant_of_subscription(azure_of(d)),
    "app_client_id": lambda d: fix.app_client_id(d(nasty_text)),
    "show_issuer": lambda d: fix.show_issuer(azure_of(d)),
    "kube_unreachable": lambda d: fix.kube_unreachable(d(nasty_text), azure_of(d)),
    "enable_oidc_issuer": lambda d: fix.enable_oidc_issuer(azure_of(d)),
    "kube_credentials": lambda d: fix.kube_credentials(azure_of(d), d(nasty_text), d(nasty_text)),
    "get_credentials": lambda d: fix.get_credentials(azure_of(d), d(nasty_text), d(nasty_text)),
    "new_service_account_token": lambda d: fix.new_service_account_token(d(nasty_text), d(nasty_text),
                                                                         d(nasty_text), d(nasty_text)),
    "harness_credential": lambda d: fix.harness_credential(azure_of(d)),
    "grant_harness_reader": lambda d: fix.grant_harness_reader(azure_of(d)),
    "delete_role_assignment": lambda d: fix.delete_role_assignment(),
    "delete_role_assignment_id": lambda d: fix.delete_role_assignment_id(d(nasty_text)),
    "orphaned_role_assignments": lambda d: fix.orphaned_role_assignments(),
    "deny_assignments": lambda d: fix.deny_assignments(d(nasty_text)),
    "list_roles_with_groups": lambda d: fix.list_roles_with_groups(d(nasty_text)),
    "enable_secret": lambda d: fix.enable_secret(d(nasty_text), d(nasty_text)),
    "list_secrets": lambda d: fix.list_secrets(d(nasty_text)),
    "show_secret_dates": lambda d: fix.show_secret_dates(d(nasty_text), d(nasty_text)),
    "set_secret_expiry": lambda d: fix.set_secret_expiry(d(nasty_text), d(nasty_text)),
    "set_secret_not_before": lambda d: fix.set_secret_not_before(d(nasty_text), d(nasty_text)),
    "list_secret_versions": lambda d: fix.list_secret_versions(d(nasty_text), d(nasty_text)),
    "keyvault_list_uris": lambda d: fix.keyvault_list_uris(),
    "keyvault_list_deleted": lambda d: fix.keyvault_list_deleted(),
    "keyvault_recover": lambda d: fix.keyvault_recover(d(nasty_text), d(nasty_text), d(nasty_text),
                                                       d(st.none() | nasty_text)),
    "list_deleted_secrets": lambda d: fix.list_deleted_secrets(d(nasty_text)),
    "recover_secret": lambda d: fix.recover_secret(d(nasty_text), d(nasty_text)),
    "list_blobs": lambda d: fix.list_blobs(d(nasty_text), d(nasty_text)),
    "list_containers": lambda d: fix.list_containers(d(nasty_text)),
    "list_deleted_blobs": lambda d: fix.list_deleted_blobs(d(nasty_text), d(nasty_text)),
    "storage_account_list": lambda d: fix.storage_account_list(),
    "rotate_issuer_keys": lambda d: fix.rotate_issuer_keys(azure_of(d)),
    "api_server_jwks": lambda d: fix.api_server_jwks(),
    "helm_upgrade_chart": lambda d: fix.helm_upgrade_chart(d(nasty_text), d(nasty_text)),
    "helm_uninstall": lambda d: fix.helm_uninstall(d(nasty_text), d(nasty_text)),
    "helm_get_values": lambda d: fix.helm_get_values(d(nasty_text), d(nasty_text)),
    "helm_set_chart_environment": lambda d: fix.helm_set_chart_environment(
        d(nasty_text), d(nasty_text), d(st.one_of(nasty_text, st.sampled_from(fix.WEBHOOK_ENVIRONMENTS)))
    ),
    "helm_set_chart_tenant": lambda d: fix.helm_set_chart_tenant(d(nasty_text), d(nasty_text), d(nasty_text)),
    "keyvault_set_secret_policy": lambda d: fix.keyvault_set_secret_policy(d(nasty_text), d(nasty_text),
                                                                           [d(nasty_text)], d(vault_id)),
    "keyvault_revoke_secret_get": lambda d: fix.keyvault_revoke_secret_get(d(nasty_text), d(nasty_text),
                                                                           [d(nasty_text)], d(vault_id)),
    "keyvault_policies": lambda d: fix.keyvault_policies(d(nasty_text), d(vault_id)),
    "keyvault_network_rules": lambda d: fix.keyvault_network_rules(d(nasty_text), d(nasty_text), d(vault_id)),
    "storage_network_rules": lambda d: fix.storage_network_rules(d(nasty_text), d(nasty_text)),
    "rollout_restart": lambda d: fix.rollout_restart(d(nasty_text), d(nasty_text), d(nasty_text)),
    "webhook_ca_bundle": lambda d: fix.webhook_ca_bundle(d(nasty_text), d(nasty_text), d(nasty_text),
                                                         d(st.integers(0, 5))),
    "delete_pod": lambda d: fix.delete_pod(d(nasty_text), d(nasty_text)),
    "restart_controller": lambda d: fix.restart_controller(
        d(st.one_of(nasty_text, st.sampled_from(["Deployment", "StatefulSet", "DaemonSet", "Job", "Pod"]))),
        d(nasty_text), d(nasty_text), [d(nasty_text), d(nasty_text)], on_delete=d(st.booleans()),
        partition=d(st.integers(0, 3)), paused=d(st.booleans())),
    "replace_on_delete_pods": lambda d: fix.replace_on_delete_pods(
        d(nasty_text), d(nasty_text), d(nasty_text), [d(nasty_text)], d(st.one_of(st.none(), st.integers(1, 3)))),
    "principal_of_client_id": lambda d: fix.principal_of_client_id(d(nasty_text)),
    "webhook_pods_back": lambda d: fix.webhook_pods_back(d(nasty_text), d(nasty_text),
                                                         d(st.one_of(st.none(), st.integers(0, 5)))),
    "patch_template_labels": lambda d: fix.patch_template_labels(
        d(nasty_text), d(nasty_text), d(nasty_text), {d(nasty_text): d(nasty_text)}
    ),
    "patch_cronjob_template_labels": lambda d: fix.patch_cronjob_template_labels(
        d(nasty_text), d(nasty_text), {d(nasty_text): d(nasty_text)}
    ),
    "delete_job": lambda d: fix.delete_job(d(nasty_text), d(nasty_text)),
    "remove_cronjob_template_annotation": lambda d: fix.remove_cronjob_template_annotation(
        d(nasty_text), d(nasty_text), d(nasty_text)),
    "patch_cronjob_template_service_account": lambda d: fix.patch_cronjob_template_service_account(
        d(nasty_text), d(nasty_text), d(nasty_text)),
    "unset_env": lambda d: fix.unset_env(d(nasty_text), d(nasty_text), d(nasty_text), d(nasty_text)),
    "find_service_principal": lambda d: fix.find_service_principal(d(nasty_text)),
    "list_conditional_access_policies": lambda d: fix.list_conditional_access_policies(),
    "service_principal_enabled": lambda d: fix.service_principal_enabled(d(nasty_text)),
    "enable_service_principal": lambda d: fix.enable_service_principal(d(nasty_text)),
    "app_federated_credential": lambda d: fix.app_federated_credential(
        d(st.sampled_from(["create", "update"])), d(nasty_text), d(nasty_text), d(nasty_text), d(nasty_text)
    ),
    "create_service_principal": lambda d: fix.create_service_principal(d(nasty_text)),
    "restore_deleted_item": lambda d: fix.restore_deleted_item(d(nasty_text), d(nasty_text), d(nasty_text)),
    "show_application": lambda d: fix.show_application(d(nasty_text)),
    "find_application": lambda d: fix.find_application(d(nasty_text)),
    "show_service_principal": lambda d: fix.show_service_principal(d(nasty_text)),
    "find_identity_anywhere": lambda d: fix.find_identity_anywhere(d(nasty_text)),
    "find_by_object_id": lambda d: fix.find_by_object_id(d(nasty_text)),
    "find_identity_by_name": lambda d: fix.find_identity_by_name(d(nasty_text)),
    "grant_harness_graph_read": lambda d: fix.grant_harness_graph_read(azure_of(d)),
    "grant_harness_reader_at": lambda d: fix.grant_harness_reader_at(azure_of(d), d(nasty_text)),
    "aks_preview_extension": lambda d: fix.aks_preview_extension(),
    "pod_identity_delete": lambda d: fix.pod_identity_delete(azure_of(d), d(nasty_text), d(nasty_text)),
    "pod_identity_exception_delete": lambda d: fix.pod_identity_exception_delete(
        azure_of(d), d(nasty_text), d(nasty_text)
    ),
    "disable_pod_identity": lambda d: fix.disable_pod_identity(azure_of(d)),
    "delete_objects": lambda d: fix.delete_objects(d(nasty_text), d(nasty_text), [d(nasty_text), d(nasty_text)]),
    "delete_crds": lambda d: fix.delete_crds([d(nasty_text), d(nasty_text)]),
    "remove_finalizers": lambda d: fix.remove_finalizers(d(nasty_text), d(nasty_text), d(nasty_text)),
    "remove_pod_label": lambda d: fix.remove_pod_label(d(nasty_text), d(nasty_text), d(nasty_text)),
    "label_pod": lambda d: fix.label_pod(d(nasty_text), d(nasty_text), d(nasty_text), d(nasty_text)),
    "recreate_pod": lambda d: fix.recreate_pod(d(nasty_text), d(nasty_text)),
    "remove_template_label": lambda d: fix.remove_template_label(
        d(nasty_text), d(nasty_text), d(nasty_text), d(nasty_text)
    ),
    "remake_without_selector_label": lambda d: fix.remake_without_selector_label(
        d(nasty_text), d(nasty_text), d(nasty_text), d(nasty_text)
    ),
    "remove_cronjob_template_label": lambda d: fix.remove_cronjob_template_label(
        d(nasty_text), d(nasty_text), d(nasty_text)
    ),
    "delete_secret": lambda d: fix.delete_secret(d(nasty_text), d(nasty_text)),
    "identity_credential_create": lambda d: fix.identity_credential_create(
        d(st.one_of(nasty_text, st.just(IDENTITY_ID))), d(nasty_text), d(nasty_text), d(nasty_text)
    ),
    "identity_credential_delete": lambda d: fix.identity_credential_delete(
        d(st.one_of(nasty_text, st.just(IDENTITY_ID))), d(nasty_text)
    ),
    "identity_credential_list": lambda d: fix.identity_credential_list(
        d(st.one_of(nasty_text, st.just(IDENTITY_ID)))
    ),
    "identity_gone": lambda d: fix.identity_gone(d(st.one_of(nasty_text, st.just(IDENTITY_ID))), d(st.booleans()),
                                                 d(nasty_text)),
    "identity_created": lambda d: fix.identity_created(d(st.one_of(nasty_text, st.just(IDENTITY_ID)))),
    "resource_group_create": lambda d: fix.resource_group_create(d(nasty_text), d(nasty_text), d(nasty_text)),
    "cluster_gone": lambda d: fix.cluster_gone(azure_of(d), d(st.booleans())),
    "app_credential_delete": lambda d: fix.app_credential_delete(d(nasty_text), d(nasty_text)),
    "app_credential_list": lambda d: fix.app_credential_list(d(nasty_text)),
    "login_tenant": lambda d: fix.login_tenant(d(nasty_text)),
    "app_credential_named": lambda d: fix.app_credential_named(d(nasty_text), d(nasty_text), d(nasty_text)),
    "app_credential_audience_set": lambda d: fix.app_credential_audience_set(
        d(nasty_text), d(nasty_text), d(nasty_text)),
    "resource_graph_identities": lambda d: fix.resource_graph_identities(),
    "config_client_id": lambda d: fix.config_client_id(d(nasty_text), d(nasty_text), d(nasty_text)),
    "_helm_set_chart_value": lambda d: fix._helm_set_chart_value(d(nasty_text), d(nasty_text), d(nasty_text)),
    "webhook_manifest_again": lambda d: fix.webhook_manifest_again(d(nasty_text), d(nasty_text)),
    "_webhook_config_value": lambda d: fix._webhook_config_value(d(nasty_text), d(nasty_text), d(nasty_text)),
    "keyvault_delete_policy": lambda d: fix.keyvault_delete_policy(d(nasty_text), d(nasty_text), d(nasty_text),
                                                                   d(vault_id)),
    "keyvault_public_access": lambda d: fix.keyvault_public_access(d(nasty_text), d(vault_id)),
    "storage_public_access": lambda d: fix.storage_public_access(
        d(nasty_text), d(st.one_of(st.none(), nasty_text))
    ),
    "remove_template_annotation": lambda d: fix.remove_template_annotation(
        d(nasty_text), d(nasty_text), d(nasty_text), d(nasty_text)
    ),
    "patch_template_service_account": lambda d: fix.patch_template_service_account(
        d(nasty_text), d(nasty_text), d(nasty_text), d(nasty_text)
    ),
    "identity_name_rg": lambda d: fix.federated_credential(
        "create",
        f"/subscriptions/s/resourceGroups/{d(nasty_text)}/providers/Microsoft.ManagedIdentity/"
        f"userAssignedIdentities/{d(nasty_text)}",
        "n", "i", "s",
    ),
}


def test_every_builder_is_under_the_property_test() -> None:
    returning_steps = {
        name
        for name, function in inspect.getmembers(fix, inspect.isfunction)
        if function.__module__ == fix.__name__
        and any(kind in str(inspect.signature(function).return_annotation) for kind in ("Command", "Step"))
    }
    assert returning_steps - set(BUILDERS) == set()


@pytest.mark.parametrize("name", sorted(BUILDERS))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_every_builder_prints_exactly_its_intended_words(name: str, data: st.DataObject) -> None:
    built = BUILDERS[name](data.draw)
    assert_round_trips(built if isinstance(built, list) else [built])


def names_a_resource_group(words: list[str]) -> bool:
    """--resource-group (or -g) used as an option, followed by its value: a drawn value that reads
    '--resource-group' sits where another option's value goes and is followed by the next option."""
    return any(word in ("--resource-group", "-g") and index + 1 < len(words) and not words[index + 1].startswith("-")
               for index, word in enumerate(words))


@pytest.mark.parametrize("name", sorted(BUILDERS))
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_every_az_fix_that_names_a_resource_group_names_its_subscription(name: str, data: st.DataObject) -> None:
    """az looks a resource group up in the subscription its login made current: a fix for an identity in a
    shared-identities subscription, or a cluster in another one, would miss without --subscription."""
    built = BUILDERS[name](data.draw)
    for step in built if isinstance(built, list) else [built]:
        words = [arg for arg in step.argv if isinstance(arg, str)] if isinstance(step, Command) else []
        if words[:1] != ["az"] or not names_a_resource_group(words):
            continue
        assert "--subscription" in words, words
        subscription = words[words.index("--subscription") + 1]
        assert values.is_guid(subscription) or subscription == "<subscription-id>", words


SUBSCRIPTION = "0b1f6471-1bf0-4dda-aec3-cb9272f09590"


def test_the_subscription_named_is_the_identitys_or_the_configured_one() -> None:
    shared = IDENTITY_ID.replace(SUBSCRIPTION, "5f2b1c3d-0000-4000-8000-00000000abcd")
    created = fix.federated_credential("create", shared, "n", "https://issuer/", "system:serviceaccount:a:b")
    assert created.argv[created.argv.index("--subscription") + 1] == "5f2b1c3d-0000-4000-8000-00000000abcd"
    azure = AzureConfig.model_construct(
        cloud=CloudConfig(name="AzureCloud"), ca_file=None, tenant_id=SUBSCRIPTION, subscription_id=SUBSCRIPTION,
        resource_group="rg", cluster_name="aks", credential=None,
    )
    for step in (fix.aks_update(azure, "--enable-oidc-issuer"), fix.rotate_issuer_keys(azure),
                 fix.pod_identity_delete(azure, "ns", "pi")):
        assert step.argv[step.argv.index("--subscription") + 1] == SUBSCRIPTION
    unknown = fix.federated_credential("update", "not-an-identity-id", "n", "i", "s")
    assert unknown.argv[unknown.argv.index("--subscription") + 1] == "<subscription-id>"


def test_jmespath_literals_cannot_be_closed_by_the_value() -> None:
    assert fix.jmespath_literal("x'] || [?true") == "'x\\'] || [?true'"
    assert fix.jmespath_literal("a\\") == "'a\\\\'"


def test_no_code_outside_the_renderer_builds_a_shell_command_from_strings() -> None:
    offenders = []
    for path in sorted(HARNESS.rglob("*.py")):
        if path.name == "commands.py" and path.parent == HARNESS:
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("quote", "join") and (
                isinstance(node.value, ast.Name) and node.value.id == "shlex"
            ):
                offenders.append(f"{path.name}:{node.lineno} shlex.{node.attr}")
            text = None
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
            elif isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
                text = str(node.values[0].value)
            if text and text.split(" ", 1)[0] in PROGRAMS and " " in text.strip():
                offenders.append(f"{path.name}:{node.lineno} {text[:50]!r}")
    assert offenders == []


def test_checks_build_their_commands_with_remediation_builders() -> None:
    """Every printed fix comes from a builder in harness.checks.remediation (all of them under BUILDERS, the
    hostile-value property test): no other check module calls ``command(`` itself."""
    offenders = []
    for path in sorted((HARNESS / "checks").glob("*.py")):
        if path.name == "remediation.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and (getattr(node.func, "id", None) == "command"
                                               or getattr(node.func, "attr", None) == "command"):
                offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []


def test_every_finding_written_in_the_code_lists_fixes_not_strings() -> None:
    offenders = []
    for path in sorted(HARNESS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Finding":
                given = node.args[5:6] + [k.value for k in node.keywords if k.arg == "remediation"]
                offenders += [
                    f"{path.name}:{item.lineno}"
                    for listed in given if isinstance(listed, ast.List)
                    for item in listed.elts if isinstance(item, ast.Constant | ast.JoinedStr | ast.BinOp)
                ]
    assert offenders == []


# ---------------------------------------------------------------- pasted into a real shell

STUB = """#!{python}
import json, os, sys
with open(os.environ["STUB_LOG"], "a") as log:
    log.write(json.dumps([os.path.basename(sys.argv[0]), *sys.argv[1:]]) + "\\n")
print("/subscriptions/0000/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv")
"""
STUB_OUTPUT = "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv"


@pytest.fixture
def paste(tmp_path: Path) -> Callable[[list[str]], list[list[str]]]:
    """Run lines in bash as a person pasting them would; return the argv every stub received."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    stubs = tmp_path / "bin"
    stubs.mkdir()
    for program in PROGRAMS:
        stub = stubs / program
        stub.write_text(STUB.format(python=sys.executable))
        stub.chmod(0o755)
    log = tmp_path / "stub.log"
    workdir = tmp_path / "cwd"
    workdir.mkdir()

    def run(lines: list[str]) -> list[list[str]]:
        log.write_text("")
        env = {"PATH": f"{stubs}:/usr/bin:/bin", "STUB_LOG": str(log), "HOME": str(workdir)}
        subprocess.run([bash, "-c", "\n".join(lines)], cwd=workdir, env=env, timeout=180, check=False,
                       capture_output=True)
        assert sorted(p.name for p in workdir.iterdir()) == [], "a payload ran in the shell"
        return [json.loads(line) for line in log.read_text().splitlines()]

    return run


def expected_calls(steps: list[Any]) -> list[list[str]]:
    calls = []
    for step in steps:
        if isinstance(step, Command):
            calls.append([
                arg if isinstance(arg, str) else STUB_OUTPUT + arg.suffix for arg in step.argv
            ])
    return calls


ISSUE_PAYLOAD = "x'\"; touch p1; echo \"$(touch p2)"
PAYLOADS = [
    ISSUE_PAYLOAD,
    "`touch p3`",
    "$(touch p4)",
    "a\ntouch p5",
    "' ; touch p6 #",
    "\\'; touch p7",
    "$'\\x27'; touch p8",
    "x; touch p9 &",
    "<(touch p10)",
    "*",
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_pasted_fixes_run_only_the_stub_with_the_literal_value(
    payload: str, paste: Callable[[list[str]], list[list[str]]]
) -> None:
    steps: list[Any] = [
        fix.find_identity_by_client_id(payload),  # the client-id annotation, into a JMESPath query
        *fix.build_probe_image(payload),  # --probe-image, into docker build -t
        fix.storage_account_id("https://ordersdata.blob.core.windows.net/"),
        fix.grant_role(None, "Storage Blob Data Reader", fix.container_scope(payload)),  # a container name
        fix.show_secret("https://finance-kv.vault.azure.net/", payload),
        fix.curl(payload),
        fix.kubectl("get", "pods", "-n", payload, note=payload),
        advice(payload),
    ]
    lines = [render(step) for step in steps]
    calls = paste(lines)
    assert calls == expected_calls(steps)
    assert ["az", "identity", "list", "--query", f"[?clientId=={fix.jmespath_literal(payload)}]", "-o", "table"] \
        in calls
    assert ["docker", "build", "-t", payload, "."] in calls


def test_a_hostile_annotation_travels_through_the_checks_into_safe_fixes(
    run_world: Callable[..., Any], paste: Callable[[list[str]], list[list[str]]]
) -> None:
    world = World.healthy()
    world.workload("finance/backend-sa").annotation_value = ISSUE_PAYLOAD
    results, _ = run_world(world)
    findings: list[Finding] = [
        finding for check in results.workloads["finance/backend-sa"].checks for finding in check.findings
    ]
    assert findings, "a malformed client-id annotation must be a finding"
    lines = [line for finding in findings for line in finding.fix_lines()]
    assert any(line.startswith("kubectl annotate serviceaccount") for line in lines)
    paste(lines)  # asserts that nothing but the stubs ran


def test_a_hostile_probe_image_never_reaches_a_command(tmp_path: Path) -> None:
    world = World.healthy()
    config = world.config(tmp_path)
    config["probe"] = {"image": ISSUE_PAYLOAD}
    with pytest.raises(Exception, match="probe.image"):
        parse_config(config, base_dir=tmp_path)


def test_fix_lines_are_what_run_json_carries() -> None:
    finding = Finding("X", "error", "access", "m", {}, [fix.curl("https://a/"), advice("b")])
    assert finding.to_json()["remediation"] == ["curl -sS https://a/", "# b"]
    assert os.linesep not in "".join(finding.fix_lines())


def test_a_refusal_by_rbac_prints_the_rule_it_names() -> None:
    """By hand in the lab, the rendered RBAC less a rule, run as its ServiceAccount: KUBE_FORBIDDEN printed only
    'kubectl auth can-i get serviceaccounts -n finance' (run by whoever pastes it: their answer, not the
    harness's) and 'render manifests/harness-rbac.yaml.j2 and apply it'. The API server's forbidden message
    names the verb, resource, group and namespace: that rule is printed to paste (pasted as printed for
    serviceaccounts list/get and the webhook Deployment's get in kube-system: the next run passed)."""
    from harness.checks.common import kube_failure_finding
    from harness.facts import ClusterFacts, KubeFailure

    user = "system:serviceaccount:wi-harness:wi-harness"

    def lines(message: str) -> list[str]:
        finding = kube_failure_finding(KubeFailure(403, "Forbidden", message), "serviceaccount", "read it",
                                       fix.can_i("get", "serviceaccounts", "finance"), ClusterFacts(0.0), None)
        assert finding.code == "KUBE_FORBIDDEN"
        return finding.fix_lines()

    assert lines(f'serviceaccounts "backend-sa" is forbidden: User "{user}" cannot get resource "serviceaccounts" in '
                 'API group "" in the namespace "finance"')[:2] == [
        "kubectl create role wi-harness-get-serviceaccounts -n finance --verb=get --resource=serviceaccounts",
        "kubectl create rolebinding wi-harness-get-serviceaccounts -n finance --role=wi-harness-get-serviceaccounts "
        "--serviceaccount=wi-harness:wi-harness"]
    cluster = lines(f'deployments.apps is forbidden: User "{user}" cannot list resource "deployments" in API group '
                    '"apps" at the cluster scope')
    assert cluster[0] == ("kubectl create clusterrole wi-harness-list-deployments-apps --verb=list "
                          "--resource=deployments.apps")
    assert cluster[-1] == (f"# then check: kubectl auth can-i list deployments.apps --as {user} (yes once the gap "
                           "is closed)")
    assert lines(f'pods "p" is forbidden: User "{user}" cannot get resource "pods/log" in API group "" in the '
                 'namespace "orders"')[0] == ("kubectl create role wi-harness-get-pods-log -n orders --verb=get "
                                              "--resource=pods/log")
    # Azure RBAC for Kubernetes authorization, in its own words: the can-i and the manifests, as before
    assert lines('User "u" does not have access to the resource in Azure. Update role assignment to allow '
                 "access.")[0] == "kubectl auth can-i get serviceaccounts -n finance"


def test_a_word_holding_single_quotes_is_double_quoted_when_nothing_in_it_would_expand() -> None:
    """SA_CLIENT_ID_UNKNOWN's look-ups printed --query '[?clientId=='"'"'GUID'"'"']' (shlex.quote's form: valid,
    hard to read). A word with a single quote and none of $ ` \\ " ! (what a shell still reads inside double
    quotes, ! for history) is printed as a person types it; any of those keeps the single-quoted form. Either
    way the shell gives the program the word as built."""
    cases = {
        "[?clientId=='3f2b5c1e-1111-4222-8333-944445555666']":
            "\"[?clientId=='3f2b5c1e-1111-4222-8333-944445555666']\"",
        "appId eq 'x'": "\"appId eq 'x'\"",
        "it's $HOME": "'it'\"'\"'s $HOME'",
        "don't!": "'don'\"'\"'t!'",
        "a'`id`": "'a'\"'\"'`id`'",
        'say "hi" \'x\'': shlex.quote('say "hi" \'x\''),
        "a'\\b": shlex.quote("a'\\b"),
        "plain": "plain",
        "two words": "'two words'",
    }
    for word, shown in cases.items():
        line = render(command("az", "--query", word))
        assert line == f"az --query {shown}", word
        assert shlex.split(line) == ["az", "--query", word]
        printed = subprocess.run(["bash", "-c", f"printf '%s\\n' {shown}"], capture_output=True, text=True)
        assert printed.stdout == word + "\n", word  # what bash hands the program
