"""AADSTS7000272 ("the certificate ... could not be found in the metadata of identity provider"), told apart by the
token's ``kid`` (the probe's token step) and the issuer's JWKS (ClusterFacts.issuer_jwks, fetched by the harness):

- ISSUER_KEYS_NOT_YET_SEEN (warning, layer entra): the issuer publishes the key, so Entra holds an older copy of
  its discovery document and JWKS. It caches them; after ``az aks oidc-issuer rotate-signing-keys`` or for a new
  issuer, practitioners report 20-30+ minutes of AADSTS7000272 (reference real-cluster-behaviours §5;
  [unverified], Microsoft documents no value). The fix is to wait, and not to rotate again: a new key starts the
  wait over.
- ISSUER_KEY_NOT_FOUND (error, layer cluster): the issuer does not publish the key the token was signed with. On an
  AKS-managed issuer (ARM names it) the API server signs with a key AKS has not published:
  ``az aks oidc-issuer rotate-signing-keys`` makes AKS issue and publish a new pair (after which Entra's copy lags
  as above); a self-managed issuer must publish the API server's keys at its jwks_uri.
When the kid or the JWKS is unknown, it stays ISSUER_KEY_NOT_FOUND, saying what could not be compared.

Pure: facts in, a Finding out.
"""

from __future__ import annotations

import time
from typing import Any

from harness.checks import remediation as fix
from harness.checks.context import WorkloadContext
from harness.checks.federation import expected_issuer
from harness.checks.model import ERROR, WARNING, Finding
from harness.commands import Step, advice

# Practitioners' reports of how long Entra keeps an issuer's keys ([unverified]); the upper end is used for advice.
ENTRA_METADATA_CACHE_REPORTED = "20-30+ minutes"
ENTRA_METADATA_WAIT_SECONDS = 30 * 60


def token_kid(ctx: WorkloadContext) -> str | None:
    """The ``kid`` in the projected token's header, as the probe decoded it (not secret)."""
    header = ((ctx.step("token") or {}).get("evidence") or {}).get("header") or {}
    kid = header.get("kid")
    return str(kid) if isinstance(kid, str) and kid else None


def published_kids(ctx: WorkloadContext) -> list[str] | None:
    """The key ids in the issuer's JWKS as the harness fetched it; None when it could not read one."""
    fetched = ctx.cluster.issuer_jwks
    if fetched is None or not fetched.ok or not isinstance(fetched.body, dict):
        return None
    keys = fetched.body.get("keys")
    if not isinstance(keys, list):
        return None
    return [str(key["kid"]) for key in keys if isinstance(key, dict) and isinstance(key.get("kid"), str)]


def jwks_uri(ctx: WorkloadContext) -> str:
    if ctx.cluster.issuer_jwks is not None:
        return ctx.cluster.issuer_jwks.url
    discovery = ctx.cluster.issuer_discovery
    body = discovery.body if discovery is not None and isinstance(discovery.body, dict) else {}
    uri = body.get("jwks_uri")
    return str(uri) if isinstance(uri, str) and uri else "<jwks_uri>"


def retry_summary(evidence: dict[str, Any]) -> str:
    """``; the probe tried 5 times over 30 s (its bound 30 s)`` from the exchange's retries evidence."""
    retries = evidence.get("retries")
    if not isinstance(retries, dict):
        return "; the probe did not retry it"
    attempts, waited, bound = retries.get("attempts"), retries.get("waited_seconds"), retries.get("bound_seconds")
    return f"; the probe tried {attempts} times over {_seconds(waited)} (its bound {_seconds(bound)})"


def issuer_key_finding(ctx: WorkloadContext, error: dict[str, Any], evidence: dict[str, Any]) -> Finding:
    """The finding for an exchange refused with AADSTS7000272."""
    kid = token_kid(ctx)
    kids = published_kids(ctx)
    uri = jwks_uri(ctx)
    issuer, _ = expected_issuer(ctx)
    shown = issuer or "the issuer"
    facts = {**evidence, "token_kid": kid, "published_kids": kids, "jwks_uri": uri}
    tried = retry_summary(evidence)
    if kid is not None and kids is not None and kid in kids:
        until = time.strftime("%H:%M UTC", time.gmtime(ctx.now + ENTRA_METADATA_WAIT_SECONDS))
        return Finding(
            "ISSUER_KEYS_NOT_YET_SEEN",
            WARNING,
            "entra",
            f"AADSTS7000272 although {shown} publishes the token's signing key {kid} at {uri}: Entra still holds "
            f"an older copy of the issuer's keys (it caches them; after a key rotation or for a new issuer "
            f"practitioners report {ENTRA_METADATA_CACHE_REPORTED}){tried}",
            facts,
            [
                fix.curl(uri),
                advice(f"the key {kid} is published: wait for Entra to fetch {shown}'s keys again and re-run "
                       f"after {until} (about 30 minutes from this run); do not rotate the keys again meanwhile: "
                       "a new key starts the wait over"),
            ],
        )
    if kid is not None and kids is not None:
        message = (f"the token's signing key {kid} is not among the keys {shown} publishes at {uri} "
                   f"({', '.join(kids) or 'none'}): the API server signs with a key the issuer does not publish")
        return Finding("ISSUER_KEY_NOT_FOUND", ERROR, "cluster", f"AADSTS7000272: {message}{tried}", facts,
                       _unpublished_key_steps(ctx, uri))
    unknown = "the token's kid" if kid is None else f"the issuer's JWKS at {uri}"
    return Finding(
        "ISSUER_KEY_NOT_FOUND",
        ERROR,
        "cluster",
        f"AADSTS7000272: Entra found no key for the token in {shown}'s metadata; the harness could not read "
        f"{unknown}, so it cannot tell an unpublished key from Entra's older copy of the keys{tried}",
        facts,
        [
            fix.curl(uri),
            advice(f"if the token's kid ({kid or 'see the token step'}) is listed there, Entra holds an older copy: "
                   f"wait ({ENTRA_METADATA_CACHE_REPORTED} reported) and re-run; if not, see the API server's keys:"),
            fix.api_server_jwks(),
        ],
    )


def _unpublished_key_steps(ctx: WorkloadContext, uri: str) -> list[Step]:
    steps: list[Step] = [fix.curl(uri), fix.api_server_jwks()]
    if ctx.cluster.issuer_source == "arm":  # AKS publishes the issuer's documents itself
        steps += [
            advice("the keys differ: have AKS issue and publish a new signing key pair (pods get tokens signed "
                   "with it as the kubelet refreshes them; Entra may then answer AADSTS7000272 for a while, "
                   f"{ENTRA_METADATA_CACHE_REPORTED} reported)"),
            fix.rotate_issuer_keys(ctx.azure),
        ]
    else:
        steps.append(advice(f"a self-managed issuer: publish the API server's keys (above) at {uri}"))
    return steps


def _seconds(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:g} s"
    return "? s"
