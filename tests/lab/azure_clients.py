"""Test helpers shared by the Azure data-plane tests: a throwaway app registration and its credential."""

from __future__ import annotations

import uuid
from typing import Any

from azure.identity import ClientSecretCredential

from lab.azure.world import AppRegistration


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
