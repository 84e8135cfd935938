"""The cluster OIDC issuer over HTTPS: discovery document, JWKS, blob-style 404s, faults and key rotation."""

from __future__ import annotations

import base64
import hashlib
import re
import ssl
from urllib.parse import urlsplit

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization

from lab.kube import issuer, tokens


@pytest.fixture(scope="module")
def ca(lab) -> str:
    return str(lab.state_dir / "ca.pem")


def get(url: str, ca: str, **kwargs) -> requests.Response:
    return requests.get(url, verify=ca, timeout=10, **kwargs)


def test_issuer_url_has_the_aks_shape(lab) -> None:
    parts = urlsplit(lab.issuer_url)
    assert parts.scheme == "https" and lab.issuer_url.endswith("/")
    assert re.fullmatch(r"/eastus/[0-9a-f-]{36}/[0-9a-f-]{36}/", parts.path)


def test_discovery_document(lab, ca: str) -> None:
    response = get(lab.issuer_url + ".well-known/openid-configuration", ca)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {
        "issuer": lab.issuer_url,
        "jwks_uri": lab.issuer_url + "openid/v1/jwks",
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }


def test_jwks_keys_and_kid_derivation(lab, ca: str) -> None:
    response = get(lab.issuer_url + "openid/v1/jwks", ca)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    keys = response.json()["keys"]
    assert keys and all(set(k) == {"use", "kty", "kid", "alg", "n", "e"} for k in keys)
    current = next(k for k in keys if k["kid"] == lab.kube.issuer_keys.current.kid)
    assert (current["use"], current["kty"], current["alg"], current["e"]) == ("sig", "RSA", "RS256", "AQAB")
    der = jwt.PyJWK(current).key.public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    assert current["kid"] == base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


def test_head_is_served(lab, ca: str) -> None:
    response = requests.head(lab.issuer_url + "openid/v1/jwks", verify=ca, timeout=10)
    assert response.status_code == 200 and not response.content


def test_everything_else_is_a_blob_storage_404(lab, ca: str) -> None:
    missing = get(lab.issuer_url + "openid/v1/other", ca)
    assert missing.status_code == 404
    assert missing.headers["Content-Type"].startswith("application/xml")
    assert missing.headers["x-ms-error-code"] == "BlobNotFound"
    assert "<Code>BlobNotFound</Code>" in missing.text
    elsewhere = get(lab.endpoints["issuer"] + "/", ca)
    assert elsewhere.status_code == 404 and "<Code>ResourceNotFound</Code>" in elsewhere.text
    # the issuer without its trailing slash is not the issuer
    assert get(lab.issuer_url.rstrip("/") + ".well-known/openid-configuration", ca).status_code == 404
    write = requests.post(lab.issuer_url + "openid/v1/jwks", data=b"{}", verify=ca, timeout=10)
    assert write.status_code == 404 and "ResourceNotFound" in write.text


def test_unreachable_issuer_drops_connections(lab, ca: str) -> None:
    lab.faults.issuer_unreachable = True
    try:
        with pytest.raises(requests.ConnectionError):
            get(lab.issuer_url + ".well-known/openid-configuration", ca)
    finally:
        lab.faults.issuer_unreachable = False
    assert get(lab.issuer_url + ".well-known/openid-configuration", ca).status_code == 200


def test_injected_503_is_blob_server_busy(lab, ca: str) -> None:
    settings = lab.faults.services["issuer"]
    settings.rate_503 = 1.0
    try:
        response = get(lab.issuer_url + "openid/v1/jwks", ca)
    finally:
        settings.rate_503 = 0.0
    assert response.status_code == 503
    assert response.headers["Retry-After"] == str(settings.retry_after_seconds)
    assert "<Code>ServerBusy</Code>" in response.text


def test_rotation_publishes_both_keys_and_new_tokens_use_the_new_one(lab, lab_thread, ca: str) -> None:
    keys = lab.kube.issuer_keys
    saved = (keys.current, list(keys.retired))
    sa = {"metadata": {"name": "rotation-sa", "uid": "4a1e6d0e-3c55-4f0e-9a5f-0a0d6f7f3b10"}}
    audience = ["api://AzureADTokenExchange"]
    try:
        old_token, _ = lab_thread.call(lambda: tokens.issue_service_account_token(
            lab, "default", sa, audience, None, None)).result(10)
        old_kid = keys.current.kid
        new_key = lab_thread.call(lambda: issuer.rotate_issuer_keys(lab)).result(10)
        assert new_key.kid != old_kid
        kids = [k["kid"] for k in get(lab.issuer_url + "openid/v1/jwks", ca).json()["keys"]]
        assert old_kid in kids and new_key.kid in kids
        new_token, exp = lab_thread.call(lambda: tokens.issue_service_account_token(
            lab, "default", sa, audience, None, None)).result(10)
        assert jwt.get_unverified_header(new_token) == {"alg": "RS256", "kid": new_key.kid}
        context = ssl.create_default_context(cafile=ca)
        discovery = get(lab.issuer_url + ".well-known/openid-configuration", ca).json()
        client = jwt.PyJWKClient(discovery["jwks_uri"], ssl_context=context, cache_jwk_set=False)
        for token in (old_token, new_token):
            key = client.get_signing_key_from_jwt(token)
            claims = jwt.decode(token, key.key, algorithms=["RS256"], audience=audience[0], issuer=lab.issuer_url)
            assert claims["sub"] == "system:serviceaccount:default:rotation-sa"
        claims = jwt.decode(new_token, options={"verify_signature": False})
        assert exp == claims["exp"] == claims["iat"] + 3600 and claims["nbf"] == claims["iat"]
    finally:
        def restore() -> None:
            keys.current, keys.retired = saved[0], saved[1]

        lab_thread.call(restore).result(10)


def test_a_stale_jwks_keeps_publishing_the_old_keys_while_the_api_server_signs_with_a_new_one(
        lab, lab_thread, ca: str) -> None:
    keys = lab.kube.issuer_keys
    saved = (keys.current, list(keys.retired))
    try:
        old_kid = keys.current.kid
        lab_thread.call(lambda: issuer.set_stale_jwks(lab, True)).result(10)
        new_key = lab_thread.call(lambda: issuer.rotate_issuer_keys(lab)).result(10)
        published = [k["kid"] for k in get(lab.issuer_url + "openid/v1/jwks", ca).json()["keys"]]
        assert published == [old_kid]  # the new key signs, the issuer does not publish it
        assert new_key.kid in [k["kid"] for k in issuer.jwks_document(lab)["keys"]]  # the API server's own
        lab_thread.call(lambda: issuer.set_stale_jwks(lab, False)).result(10)
        published = [k["kid"] for k in get(lab.issuer_url + "openid/v1/jwks", ca).json()["keys"]]
        assert new_key.kid in published and old_kid in published
    finally:
        def restore() -> None:
            keys.current, keys.retired = saved[0], saved[1]
            issuer.set_stale_jwks(lab, False)

        lab_thread.call(restore).result(10)
