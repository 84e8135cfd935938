"""The steps Entra takes to accept a federated client assertion (workload identity federation), as pure
functions of facts. Each step raises :class:`lab.azure.aadsts.AadstsError` with the code Entra answers.

Order used by the lab (``precheck_assertion`` then ``validate_federated_assertion``):

1. parse the compact JWT ............................................. AADSTS50027
2. ``alg`` must be RS256/RS384/RS512 (``none``, ``HS256`` ...) ......... AADSTS5002738
3. ``iss``/``sub``/``aud`` present ..................................... AADSTS90014
4. not an Entra-issued token ........................................... AADSTS700222
   (the caller then finds the principal by client_id: AADSTS700016)
5. the principal has federated credentials at all ...................... AADSTS70025
6. some credential trusts the token's issuer (exact, case-sensitive) ... AADSTS700211
7. fetch ``<iss>/.well-known/openid-configuration`` .................... AADSTS50166
   (or use Entra's cached copy: lab.azure.metadata_cache)
   and its ``jwks_uri`` ................................................ AADSTS90061
   parse the JWKS ...................................................... AADSTS900612
   find the signing key by ``kid`` ..................................... AADSTS7000272
   verify the signature ................................................ AADSTS50013 [unverified]
8. subject match (exact; 7002138 when only the case differs) ........... AADSTS700213 / 7002138
9. audience match ...................................................... AADSTS700212
10. time window with 5 minutes of skew tolerance ....................... AADSTS700024
    lifetime exp - iat <= 1.01:00:00 ................................... AADSTS70023

Why the issuer is matched *before* anything is fetched (step 6 before 7): Entra only fetches metadata of
issuers a credential trusts; fetching whatever URL an unauthenticated token names would let anyone make
Entra issue requests. Subject/audience/time are checked after the signature, so claims of a forged or
tampered token are never reported back as "matching" facts. The exact order inside real Entra is not
documented (reference §1.5 marks it [UNV]); this order reproduces every observed answer.

The discovery/JWKS download is an injected ``fetch(url) -> FetchResult`` coroutine, so this module has no
I/O and the steps are unit-testable without servers.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import ipaddress
import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from jwt.algorithms import RSAAlgorithm

from lab import bodies
from lab.azure.aadsts import aadsts, precise_time
from lab.azure.metadata_cache import IssuerMetadataCache

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SUPPORTED_ALGORITHMS = ("RS256", "RS384", "RS512")
CLOCK_SKEW_SECONDS = 300  # [unverified] Entra's tolerance; 5 minutes is the usual Microsoft identity default
MAX_LIFETIME_SECONDS = 25 * 3600  # "1.01:00:00" in AADSTS70023
MAX_SIGNING_KEYS = 100  # "Entra keeps only the first 100 signing keys" (DOC)
MAX_DOCUMENT_BYTES = 256 * 1024

# Hosts whose tokens are Entra's own (v1 and v2 issuers, all public-cloud aliases).
ENTRA_ISSUER_PREFIXES = (
    "https://sts.windows.net/",
    "https://login.microsoftonline.com/",
    "https://login.windows.net/",
    "https://login.microsoft.com/",
)

_HASHES = {"RS256": RSAAlgorithm.SHA256, "RS384": RSAAlgorithm.SHA384, "RS512": RSAAlgorithm.SHA512}


class Credential(Protocol):
    """What a federated identity credential looks like here (lab.azure.world.FederatedCredential)."""

    name: str
    issuer: str
    subject: str
    audiences: list[str]
    created_at: float


def fingerprint(value: str | bytes) -> str:
    """A short, non-reversible tag for a secret or an assertion, safe for logs and reports."""
    data = value.encode() if isinstance(value, str) else value
    return "sha256:" + hashlib.sha256(data).hexdigest()[:12]


# ---------------------------------------------------------------------------------------------- parsing
@dataclass(frozen=True)
class Assertion:
    """A parsed (not yet trusted) client assertion. Never log ``signing_input``/``signature``."""

    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes
    fingerprint: str

    @property
    def alg(self) -> str:
        return str(self.header.get("alg"))

    @property
    def kid(self) -> str:
        return str(self.header.get("kid") or "")

    @property
    def x5t(self) -> str:
        return str(self.header.get("x5t") or "")

    @property
    def iss(self) -> str:
        return str(self.claims.get("iss", ""))

    @property
    def sub(self) -> str:
        return str(self.claims.get("sub", ""))

    @property
    def audiences(self) -> list[str]:
        aud = self.claims.get("aud")
        if isinstance(aud, str):
            return [aud]
        return [a for a in aud if isinstance(a, str)] if isinstance(aud, list) else []

    @property
    def audience_text(self) -> str:
        return ",".join(self.audiences)

    def log_view(self) -> dict[str, Any]:
        """Decoded facts only: what logs and reports may show of an assertion."""
        view: dict[str, Any] = {"fingerprint": self.fingerprint, "alg": self.header.get("alg"),
                                "kid": self.header.get("kid")}
        for name in ("iss", "sub", "aud", "iat", "nbf", "exp"):
            if name in self.claims:
                view[name] = self.claims[name]
        return view


def _b64url_decode(segment: str) -> bytes:
    if not segment:
        return b""
    padded = segment + "=" * (-len(segment) % 4)
    return base64.b64decode(padded.translate(str.maketrans("-_", "+/")), validate=True)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse_assertion(token: str) -> Assertion:
    """Split and decode a compact JWS; anything else (JWE, garbage, non-JSON, wrong claim types) is 50027."""
    parts = token.strip().split(".")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise aadsts(50027)
    try:
        header = bodies.bounded_loads(_b64url_decode(parts[0]))
        claims = bodies.bounded_loads(_b64url_decode(parts[1]))
        signature = _b64url_decode(parts[2])
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise aadsts(50027) from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise aadsts(50027)
    for name in ("iss", "sub"):
        if name in claims and not isinstance(claims[name], str):
            raise aadsts(50027)
    aud = claims.get("aud")
    if aud is not None and not (isinstance(aud, str) or (isinstance(aud, list)
                                                          and all(isinstance(a, str) for a in aud))):
        raise aadsts(50027)
    for name in ("exp", "nbf", "iat"):
        if name in claims and not _is_number(claims[name]):
            raise aadsts(50027)
    return Assertion(header=header, claims=claims, signing_input=f"{parts[0]}.{parts[1]}".encode("ascii"),
                     signature=signature, fingerprint=fingerprint(token.strip()))


def check_algorithm(assertion: Assertion) -> None:
    if assertion.header.get("alg") not in SUPPORTED_ALGORITHMS:
        raise aadsts(5002738, alg=assertion.alg)


def check_required_claims(assertion: Assertion) -> None:
    # 'iss' and 'aud' are observed with this text; 'sub' uses the same message [unverified].
    for name in ("iss", "aud", "sub"):
        if not assertion.claims.get(name):
            raise aadsts(90014, field=name)


def is_entra_issued(assertion: Assertion, own_issuer_prefixes: Iterable[str] = (),
                    own_key_ids: Iterable[str] = ()) -> bool:
    """True for tokens Entra itself issued: a Microsoft issuer, the lab Entra's own issuer, or its keys."""
    prefixes = (*ENTRA_ISSUER_PREFIXES, *own_issuer_prefixes)
    if any(assertion.iss.lower().startswith(p.lower()) for p in prefixes if p):
        return True
    own = {k for k in own_key_ids if k}
    return bool(own) and (assertion.kid in own or assertion.x5t in own)


def precheck_assertion(token: str, own_issuer_prefixes: Iterable[str] = (),
                       own_key_ids: Iterable[str] = ()) -> Assertion:
    """Steps 1-4: what Entra can tell from the assertion alone, before looking up the client."""
    assertion = parse_assertion(token)
    check_algorithm(assertion)
    check_required_claims(assertion)
    if is_entra_issued(assertion, own_issuer_prefixes, own_key_ids):
        raise aadsts(700222)
    return assertion


# ---------------------------------------------------------------------------------------------- matching
def check_has_credentials(client_id: str, display_name: str, credentials: Sequence[Credential]) -> None:
    if not credentials:
        raise aadsts(70025, client_id=client_id, display_name=display_name)


def propagated(credentials: Iterable[Credential], wall_now: float, propagation_seconds: float) -> list[Credential]:
    """Credentials old enough to have reached Entra's replicas.

    A younger credential does not count yet. Real Entra documents AADSTS70021 for this window; the lab
    answers the modern per-field codes (700211/700213) instead, which is what current tenants return for
    "no matching record", so the harness sees the same code whether the credential is wrong or just new.
    """
    return [c for c in credentials if wall_now - c.created_at >= propagation_seconds]


def credentials_for_issuer(assertion: Assertion, credentials: Iterable[Credential]) -> list[Credential]:
    matching = [c for c in credentials if c.issuer == assertion.iss]  # exact: case, whitespace, trailing '/'
    if not matching:
        raise aadsts(700211, iss=assertion.iss)
    return matching


def credentials_for_subject(assertion: Assertion, credentials: Iterable[Credential]) -> list[Credential]:
    candidates = list(credentials)
    matching = [c for c in candidates if c.subject == assertion.sub]
    if matching:
        return matching
    if any(c.subject.lower() == assertion.sub.lower() for c in candidates):
        raise aadsts(7002138, sub=assertion.sub)
    raise aadsts(700213, sub=assertion.sub)


def credential_for_audience(assertion: Assertion, credentials: Iterable[Credential]) -> Credential:
    audiences = set(assertion.audiences)
    for credential in credentials:
        if any(a in audiences for a in credential.audiences):
            return credential
    raise aadsts(700212, aud=assertion.audience_text)


def check_times(assertion: Assertion, now: float, skew: float = CLOCK_SKEW_SECONDS,
                max_lifetime: float = MAX_LIFETIME_SECONDS) -> None:
    """``now`` is Entra's clock. A missing ``exp`` reads as 1970 (as in the observed 700024 sample)."""
    claims = assertion.claims
    exp = float(claims.get("exp", 0))
    iat = float(claims["iat"]) if "iat" in claims else None
    nbf = float(claims["nbf"]) if "nbf" in claims else (iat if iat is not None else 0.0)
    if now > exp + skew or now + skew < nbf:
        raise aadsts(700024, now=precise_time(now), nbf=precise_time(nbf), exp=precise_time(exp))
    issued = iat if iat is not None else nbf
    if exp - issued > max_lifetime:
        raise aadsts(70023, iat=int(issued), exp=int(exp))


# ---------------------------------------------------------------------------------------------- issuer keys
@dataclass(frozen=True)
class FetchResult:
    status: int
    body: bytes


class FetchFailed(Exception):
    """The issuer could not be reached (refused, timeout, TLS failure, not allowed)."""


Fetcher = Callable[[str], Awaitable[FetchResult]]


def discovery_url(issuer: str) -> str:
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


def is_loopback_https_url(url: str) -> bool:
    """Only https URLs on 127.0.0.0/8 (or ``localhost``) may be fetched by the lab's Entra."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        _ = parts.port  # raises on a malformed port
    except ValueError:
        return False
    if parts.scheme != "https" or not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host) in ipaddress.ip_network("127.0.0.0/8")
    except ValueError:
        return False


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        doc = bodies.bounded_loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def jwks_uri_from_discovery(result: FetchResult) -> str:
    """The discovery document must answer 200 with a JSON object naming an https ``jwks_uri``.

    Whether Entra also compares the document's ``issuer`` with the token's ``iss`` is [unverified]; the
    lab does not, so a document with a stale ``issuer`` still works, as it does for most OIDC consumers.
    """
    if result.status != 200:
        raise aadsts(50166)
    doc = _json_object(result.body)
    jwks_uri = doc.get("jwks_uri") if doc else None
    if not isinstance(jwks_uri, str) or not jwks_uri.startswith("https://"):
        raise aadsts(50166)
    return jwks_uri


def signing_keys_from_jwks(result: FetchResult) -> list[dict[str, Any]]:
    """The JWKS must answer 200 (else 90061, same text as 50166) and parse as ``{"keys": [...]}`` (else 900612)."""
    if result.status != 200:
        raise aadsts(90061)
    doc = _json_object(result.body)
    keys = doc.get("keys") if doc else None
    if not isinstance(keys, list) or not all(isinstance(k, dict) for k in keys):
        raise aadsts(900612)
    return keys[:MAX_SIGNING_KEYS]


async def fetch_signing_keys(issuer: str, fetch: Fetcher) -> list[dict[str, Any]]:
    """Discovery document, then JWKS. A failed discovery answers 50166, a failed JWKS download 90061.

    Both codes carry the same text ("Request to External OIDC endpoint failed."); the reference
    (§1.4) files them together. Splitting them by step keeps the lab's answer informative: 50166 says
    the issuer itself is unreachable, 90061 that its jwks_uri is.
    """
    try:
        discovery = await fetch(discovery_url(issuer))
    except FetchFailed:
        raise aadsts(50166) from None
    jwks_uri = jwks_uri_from_discovery(discovery)
    try:
        jwks = await fetch(jwks_uri)
    except FetchFailed:
        raise aadsts(90061) from None
    return signing_keys_from_jwks(jwks)


async def issuer_signing_keys(issuer: str, fetch: Fetcher,
                              cache: IssuerMetadataCache | None = None) -> list[dict[str, Any]]:
    """The issuer's keys as Entra holds them: its cached copy while fresh, else fetched (and then kept).

    With the cache on, exchanges that find no fresh copy while a fetch of the same issuer is under way wait for
    that fetch and share its outcome (keys or AADSTS code) instead of each fetching again: a run's probes all
    exchange within seconds, and a cache that answers them with one fetch is what makes it a cache (fifty
    simultaneous fetches of one issuer, in a lab that serves the issuer too, ran into the fetch timeout)."""
    if cache is None or cache.seconds <= 0:  # no cache: every exchange fetches (the copy is still kept)
        keys = await fetch_signing_keys(issuer, fetch)
        if cache is not None:
            cache.store(issuer, keys)
        return keys
    cached = cache.fresh(issuer)
    if cached is not None:
        return cached
    pending = cache.pending.get(issuer)
    if pending is None:
        pending = cache.pending[issuer] = asyncio.ensure_future(_fetch_and_keep(issuer, fetch, cache))
    return list(await asyncio.shield(pending))  # one exchange given up (its client gone) leaves the rest theirs


async def _fetch_and_keep(issuer: str, fetch: Fetcher, cache: IssuerMetadataCache) -> list[dict[str, Any]]:
    try:
        keys = await fetch_signing_keys(issuer, fetch)
        cache.store(issuer, keys)
        return keys
    finally:
        cache.pending.pop(issuer, None)


def candidate_keys(assertion: Assertion, keys: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The RSA keys the assertion names by ``kid`` (or ``x5t``); every RSA key when it names none."""
    rsa_keys = [k for k in keys if k.get("kty") == "RSA" and k.get("use", "sig") == "sig"]
    if assertion.kid:
        return [k for k in rsa_keys if k.get("kid") == assertion.kid]
    if assertion.x5t:
        return [k for k in rsa_keys if k.get("x5t") == assertion.x5t]
    return rsa_keys


def verify_signature(assertion: Assertion, keys: Sequence[dict[str, Any]], issuer: str) -> dict[str, Any]:
    """Returns the JWK that verifies the assertion.

    Unknown key: AADSTS7000272 naming the key identifier. Real captures show a hex thumbprint there, and an
    empty identifier for a Kubernetes token (which has a ``kid`` but no ``x5t``); the lab prints the ``kid``
    (or ``x5t``) so the answer points at the key to look for in the JWKS.
    Bad signature with a known key: AADSTS50013 [unverified for federated assertions; observed for
    certificate assertions].
    """
    identifier = assertion.kid or assertion.x5t
    candidates = candidate_keys(assertion, keys)
    if not candidates:
        raise aadsts(7000272, thumbprint=identifier, issuer=issuer)
    algorithm = RSAAlgorithm(_HASHES[assertion.alg])
    for jwk in candidates:
        try:
            public_key = RSAAlgorithm.from_jwk(json.dumps(jwk))
        except Exception:  # noqa: BLE001 - any malformed key material is "failed to parse"
            raise aadsts(900612) from None
        if not hasattr(public_key, "verify"):  # a private JWK was published; use its public half
            public_key = public_key.public_key()
        if algorithm.verify(assertion.signing_input, public_key, assertion.signature):
            return jwk
    raise aadsts(50013, thumbprint=identifier)


# ---------------------------------------------------------------------------------------------- the whole
async def validate_federated_assertion(
    assertion: Assertion,
    *,
    client_id: str,
    display_name: str,
    credentials: Sequence[Credential],
    now: float,
    wall_now: float,
    propagation_seconds: float,
    fetch: Fetcher,
    metadata_cache: IssuerMetadataCache | None = None,
) -> Credential:
    """Steps 5-10 for one principal; returns the federated credential that accepted the assertion.

    ``now`` is Entra's (possibly skewed) clock for the token's time window; ``wall_now`` is the clock the
    credentials' ``created_at`` was stamped with, for the propagation delay. ``metadata_cache`` is Entra's
    copy of issuers' keys (None: fetch every time).
    """
    check_has_credentials(client_id, display_name, credentials)
    live = propagated(credentials, wall_now, propagation_seconds)
    by_issuer = credentials_for_issuer(assertion, live)
    keys = await issuer_signing_keys(assertion.iss, fetch, metadata_cache)
    verify_signature(assertion, keys, assertion.iss)
    by_subject = credentials_for_subject(assertion, by_issuer)
    credential = credential_for_audience(assertion, by_subject)
    check_times(assertion, now)
    return credential
