"""The steps of federated-assertion validation (lab.azure.federation) as pure functions of facts."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field

import pytest
from cryptography.hazmat.primitives import serialization

from lab.azure import federation
from lab.azure.aadsts import AadstsError
from lab.azure.federation import FetchFailed, FetchResult
from lab.azure.metadata_cache import IssuerMetadataCache
from lab.keys import SigningKey

ISSUER = "https://127.0.0.1:9443/eastus/tenant/cluster/"
SUBJECT = "system:serviceaccount:finance:backend-sa"
AUDIENCE = "api://AzureADTokenExchange"
KEY = SigningKey.generate()
OTHER_KEY = SigningKey.generate()


@dataclass
class Fic:
    name: str = "fed-cred-backend"
    issuer: str = ISSUER
    subject: str = SUBJECT
    audiences: list[str] = field(default_factory=lambda: [AUDIENCE])
    created_at: float = 0.0


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**overrides) -> dict:
    now = int(time.time())
    base = {"aud": [AUDIENCE], "exp": now + 3600, "iat": now, "iss": ISSUER, "nbf": now, "sub": SUBJECT}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def mint(key: SigningKey = KEY, **overrides) -> str:
    return key.sign(claims(**overrides))


def unsigned(header: dict, body: dict, signature: bytes = b"") -> str:
    return ".".join([b64(json.dumps(header).encode()), b64(json.dumps(body).encode()), b64(signature)])


def code_of(excinfo: pytest.ExceptionInfo) -> int:
    assert isinstance(excinfo.value, AadstsError)
    return excinfo.value.code


def issuer_fetcher(keys: list[dict] | None = None, *, discovery_status: int = 200, jwks_status: int = 200,
                   discovery_body: bytes | None = None, jwks_body: bytes | None = None,
                   fail: str | None = None, calls: list[str] | None = None):
    jwks = {"keys": keys if keys is not None else [KEY.jwk()]}

    async def fetch(url: str) -> FetchResult:
        if calls is not None:
            calls.append(url)
        if url.endswith("/.well-known/openid-configuration"):
            if fail == "discovery":
                raise FetchFailed("refused")
            body = discovery_body if discovery_body is not None else json.dumps(
                {"issuer": ISSUER, "jwks_uri": ISSUER + "openid/v1/jwks"}).encode()
            return FetchResult(discovery_status, body)
        if fail == "jwks":
            raise FetchFailed("refused")
        return FetchResult(jwks_status, jwks_body if jwks_body is not None else json.dumps(jwks).encode())

    return fetch


def validate(token: str, credentials=None, *, now: float | None = None, wall_now: float | None = None,
             propagation: float = 0.0, fetch=None):
    assertion = federation.precheck_assertion(token)
    return asyncio.run(federation.validate_federated_assertion(
        assertion, client_id="11111111-2222-3333-4444-555555555555", display_name="myWorkloadId",
        credentials=[Fic()] if credentials is None else credentials,
        now=time.time() if now is None else now, wall_now=time.time() if wall_now is None else wall_now,
        propagation_seconds=propagation, fetch=fetch or issuer_fetcher()))


# ------------------------------------------------------------------ parsing and prechecks
def test_valid_assertion_is_accepted() -> None:
    credential = validate(mint())
    assert credential.name == "fed-cred-backend"


@pytest.mark.parametrize("token", [
    "", "abc", "a.b", "a.b.c.d.e", "!!!.???.***", unsigned({"alg": "RS256"}, {}).replace(".", "..", 1),
    b64(b"not json") + "." + b64(b"{}") + ".",
    b64(b"[1,2]") + "." + b64(b"{}") + ".",
    unsigned({"alg": "RS256"}, {"iss": ISSUER, "sub": SUBJECT, "aud": AUDIENCE, "exp": "tomorrow"}),
    unsigned({"alg": "RS256"}, {"iss": 42, "sub": SUBJECT, "aud": AUDIENCE}),
])
def test_malformed_is_50027(token: str) -> None:
    with pytest.raises(AadstsError) as excinfo:
        federation.parse_assertion(token)
    assert code_of(excinfo) == 50027


@pytest.mark.parametrize(("alg", "shown"), [("none", "none"), ("HS256", "HS256"), ("ES256", "ES256"),
                                            (None, "None"), ("rs256", "rs256")])
def test_unsupported_algorithms_are_5002738(alg, shown) -> None:
    header = {"typ": "JWT"} if alg is None else {"alg": alg, "typ": "JWT"}
    with pytest.raises(AadstsError) as excinfo:
        federation.precheck_assertion(unsigned(header, claims()))
    assert code_of(excinfo) == 5002738
    assert f"'{shown}' is not a supported signature algorithm" in excinfo.value.description


def test_hs256_signed_with_the_public_key_is_refused_by_algorithm() -> None:
    public_pem = KEY.private_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    head = b64(json.dumps({"alg": "HS256", "kid": KEY.kid}).encode())
    body = b64(json.dumps(claims()).encode())
    sig = hmac.new(public_pem, f"{head}.{body}".encode(), hashlib.sha256).digest()
    with pytest.raises(AadstsError) as excinfo:
        federation.precheck_assertion(f"{head}.{body}.{b64(sig)}")
    assert code_of(excinfo) == 5002738


@pytest.mark.parametrize("missing", ["iss", "aud", "sub"])
def test_missing_required_claim_is_90014(missing: str) -> None:
    with pytest.raises(AadstsError) as excinfo:
        federation.precheck_assertion(mint(**{missing: None}))
    assert code_of(excinfo) == 90014
    assert f"'{missing}'" in excinfo.value.description


@pytest.mark.parametrize("iss", ["https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/",
                                 "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0",
                                 "https://127.0.0.1:5555/tenant/v2.0"])
def test_entra_issued_tokens_are_700222(iss: str) -> None:
    with pytest.raises(AadstsError) as excinfo:
        federation.precheck_assertion(mint(iss=iss), own_issuer_prefixes=["https://127.0.0.1:5555/"])
    assert code_of(excinfo) == 700222


def test_token_signed_with_entra_keys_is_700222_whatever_its_issuer() -> None:
    with pytest.raises(AadstsError) as excinfo:
        federation.precheck_assertion(mint(OTHER_KEY), own_key_ids=[OTHER_KEY.kid])
    assert code_of(excinfo) == 700222


# ------------------------------------------------------------------ credentials
def test_no_credentials_is_70025_with_app_id_and_name() -> None:
    with pytest.raises(AadstsError) as excinfo:
        validate(mint(), credentials=[])
    assert code_of(excinfo) == 70025
    assert excinfo.value.description == ("AADSTS70025: The client '11111111-2222-3333-4444-555555555555'"
                                         "(myWorkloadId) has no configured federated identity credentials.")


@pytest.mark.parametrize("iss", [ISSUER.rstrip("/"), ISSUER.upper().replace("HTTPS", "https"), " " + ISSUER,
                                 "https://127.0.0.1:9443/eastus/tenant/other-cluster/"])
def test_issuer_mismatch_is_700211_and_nothing_is_fetched(iss: str) -> None:
    calls: list[str] = []
    with pytest.raises(AadstsError) as excinfo:
        validate(mint(iss=iss), fetch=issuer_fetcher(calls=calls))
    assert code_of(excinfo) == 700211
    assert f"issuer '{iss}'" in excinfo.value.description
    assert calls == []


def test_subject_mismatch_is_700213() -> None:
    with pytest.raises(AadstsError) as excinfo:
        validate(mint(sub="system:serviceaccount:finance:other-sa"))
    assert code_of(excinfo) == 700213
    assert "subject 'system:serviceaccount:finance:other-sa'" in excinfo.value.description


def test_subject_differing_only_in_case_is_7002138() -> None:
    with pytest.raises(AadstsError) as excinfo:
        validate(mint(sub="system:serviceaccount:Finance:backend-sa"))
    assert code_of(excinfo) == 7002138


def test_audience_mismatch_is_700212() -> None:
    with pytest.raises(AadstsError) as excinfo:
        validate(mint(aud=["api://SomethingElse"]))
    assert code_of(excinfo) == 700212
    assert "audience 'api://SomethingElse'" in excinfo.value.description


def test_audience_may_be_a_string_or_contain_extra_values() -> None:
    assert validate(mint(aud=AUDIENCE))
    assert validate(mint(aud=["https://kubernetes.default.svc", AUDIENCE]))


def test_matching_picks_the_credential_for_issuer_subject_and_audience() -> None:
    creds = [Fic(name="a", subject="system:serviceaccount:x:y"), Fic(name="b"),
             Fic(name="c", issuer="https://127.0.0.1:1/other/")]
    assert validate(mint(), credentials=creds).name == "b"


def test_young_credentials_do_not_count_yet() -> None:
    wall = 1_000_000.0
    young = Fic(created_at=wall - 5)
    with pytest.raises(AadstsError) as excinfo:
        validate(mint(), credentials=[young], wall_now=wall, propagation=30)
    assert code_of(excinfo) == 700211  # the only credential is not visible yet: no record for this issuer
    old_other_subject = Fic(name="old", subject="system:serviceaccount:finance:old-sa", created_at=wall - 600)
    with pytest.raises(AadstsError) as excinfo:
        validate(mint(), credentials=[young, old_other_subject], wall_now=wall, propagation=30)
    assert code_of(excinfo) == 700213
    assert validate(mint(), credentials=[Fic(created_at=wall - 31)], wall_now=wall, propagation=30)


# ------------------------------------------------------------------ issuer metadata and signature
def test_unreachable_discovery_is_50166() -> None:
    with pytest.raises(AadstsError) as excinfo:
        validate(mint(), fetch=issuer_fetcher(fail="discovery"))
    assert code_of(excinfo) == 50166


@pytest.mark.parametrize(("status", "body"), [
    (404, b"<Error/>"), (500, b"{}"), (200, b"not json"), (200, b"[]"), (200, b"{}"),
    (200, b'{"jwks_uri": "http://127.0.0.1/keys"}'), (200, b'{"jwks_uri": 7}'),
])
def test_bad_discovery_document_is_50166(status: int, body: bytes) -> None:
    with pytest.raises(AadstsError) as excinfo:
        validate(mint(), fetch=issuer_fetcher(discovery_status=status, discovery_body=body))
    assert code_of(excinfo) == 50166


def test_unreachable_or_failing_jwks_is_90061() -> None:
    for fetch in (issuer_fetcher(fail="jwks"), issuer_fetcher(jwks_status=404)):
        with pytest.raises(AadstsError) as excinfo:
            validate(mint(), fetch=fetch)
        assert code_of(excinfo) == 90061


@pytest.mark.parametrize("body", [b"garbage", b"[]", b'{"keys": "x"}', b'{"keys": [1, 2]}', b"{}"])
def test_unparsable_jwks_is_900612(body: bytes) -> None:
    with pytest.raises(AadstsError) as excinfo:
        validate(mint(), fetch=issuer_fetcher(jwks_body=body))
    assert code_of(excinfo) == 900612


def test_jwks_key_with_broken_material_is_900612() -> None:
    broken = {**KEY.jwk(), "n": "%%%"}
    with pytest.raises(AadstsError) as excinfo:
        validate(mint(), fetch=issuer_fetcher([broken]))
    assert code_of(excinfo) == 900612


def test_unknown_kid_is_7000272_naming_kid_and_issuer() -> None:
    with pytest.raises(AadstsError) as excinfo:
        validate(mint(OTHER_KEY))
    assert code_of(excinfo) == 7000272
    assert excinfo.value.description == (
        f"AADSTS7000272: The certificate with identifier {OTHER_KEY.kid} used to sign the federated credential "
        f"could not be found in the metadata of identity provider {ISSUER}. Please validate that your Identity "
        "Provider's metadata exposes the key used to sign the incoming token.")


def test_rotated_jwks_with_both_keys_accepts_either() -> None:
    fetch = issuer_fetcher([OTHER_KEY.jwk(), KEY.jwk()])
    assert validate(mint(KEY), fetch=fetch)
    assert validate(mint(OTHER_KEY), fetch=fetch)


def test_entras_cached_keys_are_used_until_they_expire_then_fetched_again() -> None:
    """lab.azure.metadata_cache: one fetch per issuer while the copy is fresh; a rotation shows only after it
    expires; 0 seconds fetches every time and still keeps the latest copy."""
    now = [0.0]
    cache = IssuerMetadataCache(seconds=60, clock=lambda: now[0])
    calls: list[str] = []
    old_only = issuer_fetcher([KEY.jwk()], calls=calls)
    assert validate_cached(mint(KEY), old_only, cache)
    assert validate_cached(mint(KEY), old_only, cache)
    assert len(calls) == 2  # discovery + JWKS, once
    rotated = issuer_fetcher([OTHER_KEY.jwk(), KEY.jwk()], calls=calls)
    now[0] = 59.9
    with pytest.raises(AadstsError) as excinfo:
        validate_cached(mint(OTHER_KEY), rotated, cache)
    assert code_of(excinfo) == 7000272 and len(calls) == 2
    now[0] = 60.0
    assert validate_cached(mint(OTHER_KEY), rotated, cache)
    assert len(calls) == 4
    cache.seconds = 0
    assert validate_cached(mint(OTHER_KEY), rotated, cache) and len(calls) == 6
    assert [k["kid"] for k in cache.entries[ISSUER].keys] == [OTHER_KEY.kid, KEY.kid]


def test_a_failed_fetch_leaves_nothing_in_the_cache() -> None:
    cache = IssuerMetadataCache(seconds=60, clock=lambda: 0.0)
    with pytest.raises(AadstsError):
        validate_cached(mint(KEY), issuer_fetcher(fail="jwks"), cache)
    assert cache.fresh(ISSUER) is None and ISSUER not in cache.entries


def validate_cached(token: str, fetch, cache: IssuerMetadataCache):
    assertion = federation.precheck_assertion(token)
    return asyncio.run(federation.validate_federated_assertion(
        assertion, client_id="11111111-2222-3333-4444-555555555555", display_name="myWorkloadId",
        credentials=[Fic()], now=time.time(), wall_now=time.time(), propagation_seconds=0, fetch=fetch,
        metadata_cache=cache))


def test_tampered_payload_is_50013() -> None:
    head, _, sig = mint().split(".")
    forged_body = b64(json.dumps(claims(sub="system:serviceaccount:kube-system:admin")).encode())
    with pytest.raises(AadstsError) as excinfo:
        validate(f"{head}.{forged_body}.{sig}")
    assert code_of(excinfo) == 50013


def test_other_key_claiming_the_published_kid_is_50013() -> None:
    token = OTHER_KEY.sign(claims(), headers={"kid": KEY.kid})
    with pytest.raises(AadstsError) as excinfo:
        validate(token)
    assert code_of(excinfo) == 50013
    assert KEY.kid in excinfo.value.description


def test_token_without_kid_is_checked_against_every_key() -> None:
    import jwt

    def no_kid(key: SigningKey) -> str:
        return jwt.encode(claims(), key.private_key, algorithm="RS256")

    assert validate(no_kid(KEY), fetch=issuer_fetcher([OTHER_KEY.jwk(), KEY.jwk()]))
    with pytest.raises(AadstsError) as excinfo:
        validate(no_kid(OTHER_KEY), fetch=issuer_fetcher([KEY.jwk()]))
    assert code_of(excinfo) == 50013


def test_rs384_and_rs512_are_supported() -> None:
    import jwt

    for alg in ("RS384", "RS512"):
        token = jwt.encode(claims(), KEY.private_key, algorithm=alg, headers={"kid": KEY.kid})
        assert validate(token)


def test_signature_is_checked_before_subject_so_forgeries_learn_nothing() -> None:
    token = OTHER_KEY.sign(claims(sub="system:serviceaccount:x:guess"), headers={"kid": KEY.kid})
    with pytest.raises(AadstsError) as excinfo:
        validate(token)
    assert code_of(excinfo) == 50013


# ------------------------------------------------------------------ time
def test_expired_is_700024_with_entra_time_format() -> None:
    now = 1_800_000_000
    token = mint(iat=now - 7200, nbf=now - 7200, exp=now - 3600)
    with pytest.raises(AadstsError) as excinfo:
        validate(token, now=now)
    assert code_of(excinfo) == 700024
    assert excinfo.value.description == (
        "AADSTS700024: Client assertion is not within its valid time range. Current time: "
        "2027-01-15T08:00:00.0000000Z, assertion valid from 2027-01-15T06:00:00.0000000Z, expiry time of "
        "assertion 2027-01-15T07:00:00.0000000Z. Review the documentation at "
        "https://learn.microsoft.com/entra/identity-platform/certificate-credentials .")


def test_not_yet_valid_is_700024() -> None:
    now = 1_800_000_000
    with pytest.raises(AadstsError) as excinfo:
        validate(mint(iat=now + 3600, nbf=now + 3600, exp=now + 7200), now=now)
    assert code_of(excinfo) == 700024


def test_five_minutes_of_skew_are_tolerated() -> None:
    now = 1_800_000_000
    assert validate(mint(iat=now - 3800, nbf=now - 3800, exp=now - 200), now=now)
    assert validate(mint(iat=now + 200, nbf=now + 200, exp=now + 3800), now=now)
    with pytest.raises(AadstsError):
        validate(mint(iat=now - 4000, nbf=now - 4000, exp=now - 400), now=now)


def test_missing_exp_reads_as_1970() -> None:
    with pytest.raises(AadstsError) as excinfo:
        validate(mint(exp=None))
    assert code_of(excinfo) == 700024
    assert "expiry time of assertion 1970-01-01T00:00:00.0000000Z" in excinfo.value.description


def test_lifetime_over_25_hours_is_70023() -> None:
    now = 1_800_000_000
    with pytest.raises(AadstsError) as excinfo:
        validate(mint(iat=now, nbf=now, exp=now + 25 * 3600 + 1), now=now)
    assert code_of(excinfo) == 70023
    assert excinfo.value.description.endswith(f"Token issued at {now}. Token expires on {now + 90001}.")
    assert validate(mint(iat=now, nbf=now, exp=now + 25 * 3600), now=now)
    assert validate(mint(iat=now, nbf=now, exp=now + 86400), now=now)


# ------------------------------------------------------------------ helpers
@pytest.mark.parametrize(("url", "allowed"), [
    ("https://127.0.0.1:8443/x/", True), ("https://127.8.9.10/x", True), ("https://localhost:1/x", True),
    ("http://127.0.0.1/x", False), ("https://10.0.0.1/x", False), ("https://example.com/", False),
    ("https://[::1]/x", False), ("https://0.0.0.0/x", False), ("https://127.0.0.1:99999/x", False),
    ("https://169.254.169.254/metadata", False), ("file:///etc/passwd", False), ("", False),
])
def test_only_loopback_https_may_be_fetched(url: str, allowed: bool) -> None:
    assert federation.is_loopback_https_url(url) is allowed


def test_discovery_url() -> None:
    assert federation.discovery_url(ISSUER) == ISSUER + ".well-known/openid-configuration"
    assert federation.discovery_url("https://token.actions.githubusercontent.com") == \
        "https://token.actions.githubusercontent.com/.well-known/openid-configuration"


def test_log_view_holds_no_token_material() -> None:
    token = mint()
    view = federation.parse_assertion(token).log_view()
    assert view["sub"] == SUBJECT and view["fingerprint"].startswith("sha256:")
    rendered = json.dumps(view)
    for part in token.split("."):
        assert part not in rendered
