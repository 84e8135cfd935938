"""Which of Entra's answers the probe may wait out for one workload: a pure function of the facts collected before
the probe runs (the probe retries them within probe.retry_seconds; probe/retry.py).

- AADSTS7000272 (Entra's older copy of the issuer's keys, after a rotation or for a new issuer): always. What tells
  a stale copy from a key the issuer never published is the token's ``kid``, which only the pod reads.
- AADSTS70021/700211/700213 (no matching federated credential): only when the identity's credentials are known
  and one matches the cluster's issuer and the workload's subject exactly, so the answer can only mean Entra has
  not seen it yet. With the credentials unknown (no Azure access) or none matching, the answer is a
  misconfiguration: waiting on it would cost every misconfigured workload the whole bound.
HTTP 429 and 5xx are the probe's own rule (always transient), not configured here.
"""

from __future__ import annotations

from harness.checks.federation import match_fic
from harness.facts import IdentityFacts

# The same codes as probe.retry's (the probe imports nothing of ours; a test keeps the two equal).
FIC_PROPAGATION_AADSTS = (70021, 700211, 700213)
METADATA_CACHE_AADSTS = (7000272,)


def service_account_subject(namespace: str, service_account: str) -> str:
    return f"system:serviceaccount:{namespace}:{service_account}"


def retryable_aadsts(identity: IdentityFacts | None, issuer: str | None, subject: str) -> list[int]:
    """The AADSTS codes the probe may retry for this workload (see the module's docstring)."""
    codes = list(METADATA_CACHE_AADSTS)
    credentials = identity.federated_credentials if identity is not None else None
    if credentials and issuer and match_fic(credentials, issuer, subject).exact is not None:
        codes = [*FIC_PROPAGATION_AADSTS, *codes]
    return codes
