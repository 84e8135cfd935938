"""The cluster's OIDC issuer over HTTPS, as Entra fetches it: discovery document, then the JWKS it names."""

from __future__ import annotations

from harness.collect.http import HttpGet, fetch_json
from harness.facts import Fetched


def discovery_url(issuer_url: str) -> str:
    """``{issuer}/.well-known/openid-configuration`` (OIDC Discovery 1.0, section 4)."""
    return issuer_url.rstrip("/") + "/.well-known/openid-configuration"


def collect_issuer(get: HttpGet, issuer_url: str) -> tuple[Fetched, Fetched | None]:
    """(discovery, jwks); the JWKS is fetched from the discovery document's ``jwks_uri`` when it has one."""
    discovery = fetch_json(get, discovery_url(issuer_url))
    jwks_uri = discovery.body.get("jwks_uri") if discovery.ok and isinstance(discovery.body, dict) else None
    if not isinstance(jwks_uri, str) or not jwks_uri:
        return discovery, None
    return discovery, fetch_json(get, jwks_uri)
