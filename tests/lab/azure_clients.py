"""Test helpers shared by the Azure data-plane tests: a throwaway app registration and its credential, and a
throwaway vault with a reader."""

from __future__ import annotations

import uuid
from typing import Any

from azure.identity import ClientSecretCredential
from azure.keyvault.secrets import SecretClient

from lab.azure.world import AppRegistration, Vault


def new_app(lab: Any, lab_thread: Any, prefix: str, role: str | None = None,
            scope: str | None = None) -> tuple[AppRegistration, str]:
    """An app registration with a fresh secret and, optionally, one role at ``scope`` (made on the lab's loop)."""

    def make() -> tuple[AppRegistration, str]:
        app = lab.azure.add_app(f"{prefix}-{uuid.uuid4().hex[:6]}")
        secret = app.add_secret()
        if role:
            lab.azure.assign_role(app, role, scope)
        return app, secret

    return lab_thread.call(make).result(30)


def secret_credential(lab: Any, app_and_secret: tuple[AppRegistration, str]) -> ClientSecretCredential:
    """ClientSecretCredential aimed at the lab's Entra (MSAL's instance discovery cannot know the lab's host)."""
    app, secret = app_and_secret
    return ClientSecretCredential(lab.tenant_id, app.client_id, secret, authority=lab.authority_host,
                                  disable_instance_discovery=True)


def vault_with_a_reader(lab: Any, lab_thread: Any, prefix: str) -> tuple[str, Vault, SecretClient]:
    """A vault in a resource group of its own (``<prefix>-...``) holding secret db-password, and a SecretClient
    for an app granted Key Vault Secrets User on it, the read checked: ``(resource group, vault, client)``."""
    group, name = f"{prefix}-{uuid.uuid4().hex[:8]}", f"kv{uuid.uuid4().hex[:10]}"

    def make() -> Vault:
        lab.azure.add_resource_group(group)
        vault = Vault(name=name, subscription_id=lab.subscription_id, resource_group=group, location="eastus",
                      tenant_id=lab.tenant_id)
        vault.set_secret("db-password", "s3cret-value")
        lab.azure.vaults[name] = vault
        return vault

    vault = lab_thread.call(make).result(30)
    reader = new_app(lab, lab_thread, prefix, "Key Vault Secrets User", vault.resource_id)
    client = SecretClient(vault_url=lab.vault_url(name), credential=secret_credential(lab, reader),
                          verify_challenge_resource=False)
    assert client.get_secret("db-password").value == "s3cret-value"
    return group, vault, client
