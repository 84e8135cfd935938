"""Which of Entra's answers the probe may wait out for one workload: a pure function of the facts collected before
the probe runs (the probe retries them within probe.retry_seconds; probe/retry.py).

- AADSTS7000272 (Entra's older copy of the issuer's keys, after a rotation or for a new issuer): always. What tells
  a stale copy from a key the issuer never published is the token's ``kid``, which only the pod reads.
- AADSTS70021/700211/700213 (no matching federated credential): only when a credential may not have reached Entra
  yet (:func:`pending_credential`): one that matches the cluster's issuer and the workload's subject exactly, on the
  identity the pod exchanges as (the ServiceAccount's client-id annotation, which the webhook injects; not an
  identity harness.yaml expects instead), written less than :data:`FIC_PROPAGATION_SECONDS` ago when ARM says
  when. With the credentials unknown (no Azure access), none matching, or the pod exchanging as another identity,
  the answer is a misconfiguration: waiting on it would cost every misconfigured workload the whole bound.
HTTP 429 and 5xx are the probe's own rule (always transient), not configured here.
"""

from __future__ import annotations

from typing import Any

from harness.checks.federation import match_fic
from harness.checks.roles import created_on
from harness.facts import IdentityFacts

# The same codes as probe.retry's (the probe imports nothing of ours; a test keeps the two equal).
FIC_PROPAGATION_AADSTS = (70021, 700211, 700213)
METADATA_CACHE_AADSTS = (7000272,)
# A new credential "takes a few seconds" to propagate (AKS workload identity overview), "a few minutes" (the
# migration guide); Entra's considerations warn of AADSTS70021 several minutes after it was configured. No SLA is
# published: a credential written longer ago than this has reached Entra, and its refusal is not propagation.
FIC_PROPAGATION_SECONDS = 600


def service_account_subject(namespace: str, service_account: str) -> str:
    return f"system:serviceaccount:{namespace}:{service_account}"


def identity_client_id(identity: IdentityFacts | None) -> str | None:
    """The client id of the identity whose facts were read (a managed identity's clientId, an app's appId)."""
    if identity is None:
        return None
    if identity.kind == "application":
        value = (identity.application or {}).get("appId")
    else:
        value = ((identity.identity or {}).get("properties") or {}).get("clientId")
    return str(value) if value else None


def written_at(credential: dict[str, Any]) -> float | None:
    """When ARM last wrote a federated credential (systemData.lastModifiedAt, else createdAt); None when unknown
    (Microsoft Graph's credentials carry no time)."""
    system = credential.get("systemData") if isinstance(credential.get("systemData"), dict) else {}
    return created_on(system.get("lastModifiedAt")) or created_on(system.get("createdAt"))


def pending_credential(
    identity: IdentityFacts | None, issuer: str | None, subject: str, client_id: str | None, now: float
) -> dict[str, Any] | None:
    """The credential a refusal may be waiting on: it matches ``issuer`` and ``subject`` exactly, it is on the
    identity the pod exchanges as (``client_id``; when either client id is unknown the identity read is taken
    to be it), and it was written less than :data:`FIC_PROPAGATION_SECONDS` before ``now`` (or its age is
    unknown)."""
    credentials = identity.federated_credentials if identity is not None else None
    if not credentials or not issuer:
        return None
    read = identity_client_id(identity)
    if client_id and read and client_id.lower() != read.lower():
        return None
    exact = match_fic(credentials, issuer, subject).exact
    if exact is None:
        return None
    raw = next((c for c in credentials if c.get("name") == exact.get("name")), {})
    written = written_at(raw)
    if written is not None and now - written >= FIC_PROPAGATION_SECONDS:
        return None
    return {**exact, "written_at": written}


def retryable_aadsts(identity: IdentityFacts | None, issuer: str | None, subject: str,
                     client_id: str | None, now: float) -> list[int]:
    """The AADSTS codes the probe may retry for this workload (see the module's docstring); ``client_id`` is
    the one the pod will exchange as (the ServiceAccount's annotation); ``now``: when the identity was read (a
    fact of the collection, as an epoch time: a credential's age is measured to it)."""
    codes = list(METADATA_CACHE_AADSTS)
    if pending_credential(identity, issuer, subject, client_id, now) is not None:
        codes = [*FIC_PROPAGATION_AADSTS, *codes]
    return codes
