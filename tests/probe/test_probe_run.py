"""The probe end to end in-process: ``probe.cli.main`` with a fake transport, a temp token file and a fixed clock."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from probe_testkit import (
    ACCOUNT_URL,
    BLOB_DENIED,
    CLIENT_ID,
    ENTRA_700213,
    ISSUER,
    KV_FORBIDDEN,
    NOW,
    SECRET_VALUE,
    TENANT,
    TOKEN_URL,
    VAULT_URL,
    FakeTransport,
    Handler,
    Run,
    config_json,
    json_response,
    keyvault,
    refuse,
    sa_claims,
)

from probe.sdk import SdkRequest
from probe.transport import Response

RunProbe = Callable[..., Run]
STEP_KEYS = {"name", "status", "duration_ms", "evidence", "error"}


def kv_check(expect: str, vault_url: str = VAULT_URL, secret: str = "db-pass") -> dict[str, str]:
    return {"kind": "keyvault_secret", "vault_url": vault_url, "secret": secret, "expect": expect}


def blob_check(expect: str) -> dict[str, str]:
    return {"kind": "blob", "account_url": ACCOUNT_URL, "container": "data", "blob": "report.csv", "expect": expect}


def kv_secret_ok(*_: Any) -> Response:
    return json_response(200, {
        "value": SECRET_VALUE,
        "id": f"{VAULT_URL}/secrets/db-pass/4387e9f3d6e14c459867679a90fd0f79",
        "attributes": {"enabled": True, "created": 1493938410, "updated": 1493938410,
                       "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90},
        "tags": {},
    })


def kv_forbidden(*_: Any) -> Response:
    return json_response(403, KV_FORBIDDEN)


def blob_denied(*_: Any) -> Response:
    return Response(403, {"content-type": "application/xml", "x-ms-error-code": "AuthorizationPermissionMismatch"},
                    BLOB_DENIED)


def blob_ok(*_: Any) -> Response:  # the answer to HEAD: the blob's properties, no bytes
    return Response(200, {"content-type": "text/csv", "etag": '"0x8D"', "content-length": "8"}, b"")


def entra_fail(*_: Any) -> Response:
    return json_response(401, ENTRA_700213)


def statuses(run: Run) -> list[tuple[str, str]]:
    return [(s["name"], s["status"]) for s in run.doc["steps"]]


# ---------------------------------------------------------------- document shape


def test_document_shape_and_success(run_probe: RunProbe, environ: dict[str, str], entra_ok: Handler) -> None:
    transport = FakeTransport({TOKEN_URL: entra_ok})
    run = run_probe([], environ, transport)
    assert run.code == 0, run.stdout
    doc = run.doc
    assert doc["schema"] == "wi-probe/v1"
    assert doc["probe_version"]
    assert doc["started_at"].endswith("Z") and doc["finished_at"].endswith("Z")
    assert doc["pod"] == {"name": "backend-0", "namespace": "finance", "service_account": "backend-sa"}
    assert doc["ok"] is True
    assert statuses(run) == [("config", "pass"), ("env", "pass"), ("token", "pass"), ("exchange", "pass")]
    for step in doc["steps"]:
        assert set(step) >= STEP_KEYS
        assert step["error"] is None
    assert run.stderr == ""


def test_pod_fields_are_null_when_unset(run_probe: RunProbe, environ: dict[str, str], entra_ok: Handler) -> None:
    env = {k: v for k, v in environ.items() if not k.startswith("POD_")}
    run = run_probe([], env, FakeTransport({TOKEN_URL: entra_ok}))
    assert run.doc["pod"] == {"name": None, "namespace": None, "service_account": None}


# ---------------------------------------------------------------- env


def test_env_all_missing_skips_the_chain(run_probe: RunProbe) -> None:
    run = run_probe(config_json(checks=[kv_check("allow")]), {})
    assert run.code == 1
    assert run.doc["ok"] is False
    env = run.step("env")
    assert env["status"] == "fail"
    assert env["evidence"]["missing"] == ["AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE",
                                          "AZURE_AUTHORITY_HOST"]
    assert env["error"]["kind"] == "missing_env"
    for name in ("token", "exchange", "access"):
        step = run.step(name)
        assert step["status"] == "skip"
        assert step["reason"] == "because env failed"
    assert run.step("access")["expect"] == "allow"


def test_env_partial_still_reads_token(run_probe: RunProbe, environ: dict[str, str]) -> None:
    env = dict(environ, AZURE_CLIENT_ID="")
    run = run_probe([], env)
    assert statuses(run) == [("config", "pass"), ("env", "fail"), ("token", "pass"), ("exchange", "skip")]
    assert run.step("env")["evidence"]["missing"] == ["AZURE_CLIENT_ID"]
    assert run.step("env")["evidence"]["vars"]["AZURE_TENANT_ID"] == TENANT
    assert run.step("exchange")["reason"] == "because env failed"


@pytest.mark.parametrize("path, layout", [
    ("/var/run/secrets/azure/tokens/azure-identity-token", "webhook v1.0-v1.5"),
    ("/var/run/secrets/azure/wi/token/azure-identity-token", "webhook v1.6+"),
    ("/var/run/secrets/azure/wi/0123456789abcdef0123456789abcd/token/azure-identity-token",
     "webhook PR #1749 (per-pod mount path)"),
    ("/var/run/secrets/azure/wi/not-a-hash/token/azure-identity-token", "custom"),
])
def test_env_names_the_token_path_layout(run_probe: RunProbe, environ: dict[str, str], path: str,
                                         layout: str) -> None:
    run = run_probe([], dict(environ, AZURE_FEDERATED_TOKEN_FILE=path))
    assert run.step("env")["evidence"]["token_path_layout"] == layout


def test_env_reports_values_layout_and_azure_kubernetes_vars(
    run_probe: RunProbe, environ: dict[str, str], entra_ok: Handler
) -> None:
    env = dict(environ, AZURE_KUBERNETES_TOKEN_PROXY="https://10.0.0.1:443", AZURE_KUBERNETES_SNI_NAME="sni.x",
               AZURE_KUBERNETES_CA_DATA="-----BEGIN CERTIFICATE-----" + "A" * 600)
    run = run_probe([], env, FakeTransport({TOKEN_URL: entra_ok}))
    evidence = run.step("env")["evidence"]
    assert evidence["vars"] == {"AZURE_CLIENT_ID": CLIENT_ID, "AZURE_TENANT_ID": TENANT,
                                "AZURE_FEDERATED_TOKEN_FILE": environ["AZURE_FEDERATED_TOKEN_FILE"],
                                "AZURE_AUTHORITY_HOST": "https://login.microsoftonline.com/"}
    assert evidence["missing"] == []
    assert evidence["authority_host_trailing_slash"] is True
    assert evidence["token_path_layout"] == "custom"
    extra = evidence["azure_kubernetes"]
    assert extra["AZURE_KUBERNETES_TOKEN_PROXY"] == "https://10.0.0.1:443"
    assert extra["AZURE_KUBERNETES_SNI_NAME"] == "sni.x"
    assert "chars, sha256" in extra["AZURE_KUBERNETES_CA_DATA"]


def test_no_azure_kubernetes_key_when_absent(run_probe: RunProbe, environ: dict[str, str], entra_ok: Handler) -> None:
    run = run_probe([], environ, FakeTransport({TOKEN_URL: entra_ok}))
    assert "azure_kubernetes" not in run.step("env")["evidence"]


# ---------------------------------------------------------------- token


def test_token_decoded_without_verification(
    run_probe: RunProbe, environ: dict[str, str], token_file: tuple[Path, str], entra_ok: Handler
) -> None:
    path, token = token_file
    run = run_probe([], environ, FakeTransport({TOKEN_URL: entra_ok}))
    step = run.step("token")
    assert step["status"] == "pass"
    ev = step["evidence"]
    assert ev["path"] == str(path)
    assert ev["mode"] == "0644"
    assert ev["size"] == len(token)
    assert ev["fingerprint"] == __import__("hashlib").sha256(token.encode()).hexdigest()[:12]
    assert ev["header"] == {"alg": "RS256", "kid": "key-1", "typ": "JWT"}
    claims = ev["claims"]
    assert claims["iss"] == ISSUER
    assert claims["sub"] == "system:serviceaccount:finance:backend-sa"
    assert claims["aud"] == ["api://AzureADTokenExchange"]
    assert set(claims) == {"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "kubernetes.io"}
    assert claims["kubernetes.io"]["serviceaccount"]["name"] == "backend-sa"
    assert ev["lifetime"] == {"remaining_seconds": 3000, "total_seconds": 3600}
    assert ev["audience_is_default"] is True


def test_token_mode_reported_as_octal(
    run_probe: RunProbe, environ: dict[str, str], token_file: tuple[Path, str], entra_ok: Handler
) -> None:
    os.chmod(token_file[0], 0o600)
    run = run_probe([], environ, FakeTransport({TOKEN_URL: entra_ok}))
    assert run.step("token")["evidence"]["mode"] == "0600"


def test_token_path_comes_from_env(
    run_probe: RunProbe, environ: dict[str, str], tmp_path: Path, make_jwt: Callable[..., str], entra_ok: Handler
) -> None:
    other = tmp_path / "wi" / "token" / "azure-identity-token"
    other.parent.mkdir(parents=True)
    other.write_text(make_jwt(sa_claims(sub="system:serviceaccount:other:sa")))
    run = run_probe([], dict(environ, AZURE_FEDERATED_TOKEN_FILE=str(other)), FakeTransport({TOKEN_URL: entra_ok}))
    assert run.step("token")["evidence"]["claims"]["sub"] == "system:serviceaccount:other:sa"


def test_token_file_missing(run_probe: RunProbe, environ: dict[str, str], tmp_path: Path) -> None:
    run = run_probe([], dict(environ, AZURE_FEDERATED_TOKEN_FILE=str(tmp_path / "absent")))
    assert run.step("token")["status"] == "fail"
    assert run.step("token")["error"]["kind"] == "file_not_found"
    assert run.step("exchange") | {"duration_ms": 0} == {
        "name": "exchange", "status": "skip", "duration_ms": 0, "reason": "because token failed",
        "evidence": {}, "error": None}
    assert run.code == 1


def test_token_malformed(run_probe: RunProbe, environ: dict[str, str], token_file: tuple[Path, str]) -> None:
    token_file[0].write_text("not-a-jwt")
    run = run_probe([], environ)
    assert run.step("token")["error"]["kind"] == "malformed"
    assert run.step("exchange")["reason"] == "because token failed"


def test_token_expired_fails(
    run_probe: RunProbe, environ: dict[str, str], token_file: tuple[Path, str], make_jwt: Callable[..., str]
) -> None:
    token_file[0].write_text(make_jwt(sa_claims(exp=int(NOW) - 5)))
    run = run_probe([], environ)
    step = run.step("token")
    assert step["status"] == "fail"
    assert step["error"]["kind"] == "expired"
    assert step["evidence"]["lifetime"]["remaining_seconds"] == -5


# ---------------------------------------------------------------- exchange


def test_exchange_request_and_success_evidence(
    run_probe: RunProbe, environ: dict[str, str], token_file: tuple[Path, str], entra_ok: Handler
) -> None:
    transport = FakeTransport({TOKEN_URL: entra_ok})
    run = run_probe(config_json(timeout_seconds=3), environ, transport)
    [call] = transport.calls
    assert call["method"] == "POST"
    assert call["url"] == TOKEN_URL
    assert call["timeout"] == 3.0
    assert call["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    form = {k: v[0] for k, v in parse_qs(call["body"].decode()).items()}
    assert form == {
        "grant_type": "client_credentials",
        "client_id": CLIENT_ID,
        "scope": "https://vault.azure.net/.default",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": token_file[1],
    }
    ev = run.step("exchange")["evidence"]
    assert ev["http_status"] == 200
    assert ev["expires_in"] == 3599
    assert len(ev["fingerprint"]) == 12
    assert ev["claims"] == {"aud": "https://vault.azure.net", "iss": f"https://sts.windows.net/{TENANT}/",
                            "tid": TENANT, "appid": CLIENT_ID, "oid": "9f0c", "sub": "9f0c", "idtyp": "app",
                            "ver": "1.0"}
    assert ev["token_url"] == TOKEN_URL
    assert ev["sdk"] == {"available": ev["sdk"]["available"], "enabled": False}


def test_exchange_authority_without_trailing_slash(
    run_probe: RunProbe, environ: dict[str, str], entra_ok: Handler
) -> None:
    transport = FakeTransport({TOKEN_URL: entra_ok})
    run = run_probe([], dict(environ, AZURE_AUTHORITY_HOST="https://login.microsoftonline.com"), transport)
    assert transport.calls[0]["url"] == TOKEN_URL
    assert run.step("env")["evidence"]["authority_host_trailing_slash"] is False
    assert run.code == 0


def test_exchange_custom_scope(run_probe: RunProbe, environ: dict[str, str], entra_ok: Handler) -> None:
    transport = FakeTransport({TOKEN_URL: entra_ok})
    run = run_probe(config_json(scope="https://management.azure.com/.default"), environ, transport)
    assert parse_qs(transport.calls[0]["body"].decode())["scope"] == ["https://management.azure.com/.default"]
    assert run.step("exchange")["evidence"]["claims"]["aud"] == "https://management.azure.com"


def test_exchange_aadsts_failure(run_probe: RunProbe, environ: dict[str, str]) -> None:
    run = run_probe(config_json(checks=[kv_check("allow"), blob_check("deny")]), environ,
                    FakeTransport({TOKEN_URL: entra_fail}))
    assert run.code == 1
    step = run.step("exchange")
    assert step["status"] == "fail"
    error = step["error"]
    assert error["kind"] == "entra_error"
    assert error["http_status"] == 401
    assert error["error"] == "invalid_client"
    assert error["error_codes"] == [700213]
    assert error["aadsts"] == "AADSTS700213"
    assert error["error_description"].startswith("AADSTS700213: No matching federated identity record")
    assert error["trace_id"] == ENTRA_700213["trace_id"]
    assert error["correlation_id"] == ENTRA_700213["correlation_id"]
    access = [s for s in run.doc["steps"] if s["name"] == "access"]
    assert [(s["status"], s["reason"], s["kind"], s["expect"]) for s in access] == [
        ("skip", "because exchange failed", "keyvault_secret", "allow"),
        ("skip", "because exchange failed", "blob", "deny"),
    ]


def test_exchange_connection_refused(run_probe: RunProbe, environ: dict[str, str]) -> None:
    run = run_probe([], environ, FakeTransport({TOKEN_URL: refuse}))
    step = run.step("exchange")
    assert step["status"] == "fail"
    assert step["error"]["kind"] == "connection_refused"
    assert step["error"]["url"] == TOKEN_URL


def test_exchange_200_without_access_token(run_probe: RunProbe, environ: dict[str, str]) -> None:
    transport = FakeTransport({TOKEN_URL: lambda *_: json_response(200, {"token_type": "Bearer"})})
    run = run_probe([], environ, transport)
    assert run.step("exchange")["error"]["kind"] == "unexpected_response"
    assert run.step("exchange")["error"]["keys"] == ["token_type"]


def test_exchange_200_with_a_proxys_html_page_names_it(run_probe: RunProbe, environ: dict[str, str]) -> None:
    """A proxy (or captive portal) answering the token request with its own 200 HTML page: the message says the
    body is not Entra's and shows its start, so EXCHANGE_FAILED's evidence is one clear line."""
    page = b"<html><head><title>Access Denied</title></head><body>Blocked by proxy policy</body></html>"
    transport = FakeTransport({TOKEN_URL: lambda *_: Response(200, {"content-type": "text/html"}, page)})
    error = run_probe([], environ, transport).step("exchange")["error"]
    assert error["kind"] == "unexpected_response" and error["body_excerpt"] == page.decode()
    assert error["message"] == ("HTTP 200 without an access_token: the body is not JSON ('<html><head><title>Access "
                                "Denied</title></head><body>Blocked by proxy policy</bo'): something between the "
                                "pod and Entra answered (a proxy, a gateway, a captive portal)")


def test_exchange_opaque_access_token(run_probe: RunProbe, environ: dict[str, str]) -> None:
    transport = FakeTransport({TOKEN_URL: lambda *_: json_response(200, {"access_token": "opaque", "expires_in": 1})})
    run = run_probe([], environ, transport)
    assert run.step("exchange")["status"] == "pass"
    assert run.step("exchange")["evidence"]["claims"] is None


# ---------------------------------------------------------------- SDK cross-check


def test_sdk_agrees_when_both_succeed(run_probe: RunProbe, environ: dict[str, str], entra_ok: Handler) -> None:
    seen: list[SdkRequest] = []

    def sdk(req: SdkRequest) -> dict[str, Any]:
        seen.append(req)
        return {"available": True, "succeeded": True, "error": None}

    run = run_probe([], environ, FakeTransport({TOKEN_URL: entra_ok}), sdk_check=sdk)
    assert run.step("exchange")["evidence"]["sdk"] == {"available": True, "succeeded": True, "agrees": True,
                                                       "error": None}
    assert seen[0].token_file == environ["AZURE_FEDERATED_TOKEN_FILE"]
    assert seen[0].authority_host == "https://login.microsoftonline.com/"
    assert (seen[0].tenant_id, seen[0].client_id, seen[0].scope) == (TENANT, CLIENT_ID,
                                                                     "https://vault.azure.net/.default")


def test_sdk_disagreement_reported(run_probe: RunProbe, environ: dict[str, str], entra_ok: Handler) -> None:
    def sdk(_: SdkRequest) -> dict[str, Any]:
        return {"available": True, "succeeded": False, "error": "ClientAuthenticationError: boom"}

    run = run_probe([], environ, FakeTransport({TOKEN_URL: entra_ok}), sdk_check=sdk)
    assert run.step("exchange")["evidence"]["sdk"]["agrees"] is False
    assert run.step("exchange")["status"] == "pass"


def test_a_transient_answer_to_the_sdk_is_tried_again_not_a_disagreement(
    run_probe: RunProbe, environ: dict[str, str], entra_ok: Handler
) -> None:
    """The cross-check runs WorkloadIdentityCredential without retries of its own: a 503 or 429 Entra gave it,
    once, was SDK_DISAGREES though the raw exchange (which retried) worked. It is tried again within the run's
    retry budget; a permanent failure is not."""
    answers = [{"available": True, "succeeded": False, "error": "ClientAuthenticationError: HTTP 503",
                "transient": True}] * 2 + [{"available": True, "succeeded": True, "error": None}]

    def sdk(_: SdkRequest) -> dict[str, Any]:
        return answers.pop(0)

    run = run_probe([], environ, FakeTransport({TOKEN_URL: entra_ok}), sdk_check=sdk)
    assert run.step("exchange")["evidence"]["sdk"] == {"available": True, "succeeded": True, "agrees": True,
                                                       "error": None, "attempts": 3}
    calls: list[SdkRequest] = []

    def refused(request: SdkRequest) -> dict[str, Any]:
        calls.append(request)
        return {"available": True, "succeeded": False, "error": "ClientAuthenticationError: AADSTS700213",
                "transient": False}

    run = run_probe([], environ, FakeTransport({TOKEN_URL: entra_ok}), sdk_check=refused)
    assert run.step("exchange")["evidence"]["sdk"]["agrees"] is False and len(calls) == 1


def test_the_real_sdk_check_says_which_failures_are_transient(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("azure.identity")
    import azure.identity
    from azure.core.exceptions import ClientAuthenticationError, ServiceResponseError

    from probe.sdk import azure_identity_check

    class Answered:
        def __init__(self, status: int) -> None:
            self.status_code = status

    failures: list[Exception] = []
    for status in (503, 429, 400):
        failure = ClientAuthenticationError("No response content from Microsoft Entra ID")
        failure.response = Answered(status)  # type: ignore[assignment]
        failures.append(failure)
    failures.append(ServiceResponseError("Connection aborted."))

    class Failing:
        def __init__(self, **kwargs: Any) -> None:
            pass

        def get_token(self, scope: str) -> Any:
            raise failures.pop(0)

        def close(self) -> None:
            pass

    monkeypatch.setattr(azure.identity, "WorkloadIdentityCredential", Failing)
    request = SdkRequest(TENANT, CLIENT_ID, "/nowhere", "https://login.microsoftonline.com/", "scope", 5.0, None)
    assert [azure_identity_check(request)["transient"] for _ in range(4)] == [True, True, False, True]


def test_sdk_agrees_when_both_fail(run_probe: RunProbe, environ: dict[str, str]) -> None:
    def sdk(_: SdkRequest) -> dict[str, Any]:
        return {"available": True, "succeeded": False, "error": "ClientAuthenticationError: AADSTS700213"}

    run = run_probe([], environ, FakeTransport({TOKEN_URL: entra_fail}), sdk_check=sdk)
    assert run.step("exchange")["evidence"]["sdk"]["agrees"] is True


def test_sdk_unavailable(run_probe: RunProbe, environ: dict[str, str], entra_ok: Handler) -> None:
    run = run_probe([], environ, FakeTransport({TOKEN_URL: entra_ok}), sdk_check=lambda _: {"available": False})
    assert run.step("exchange")["evidence"]["sdk"] == {"available": False}


def test_sdk_disabled_by_config(run_probe: RunProbe, environ: dict[str, str], entra_ok: Handler) -> None:
    def sdk(_: SdkRequest) -> dict[str, Any]:
        raise AssertionError("must not be called")

    run = run_probe(config_json(sdk_cross_check=False), environ, FakeTransport({TOKEN_URL: entra_ok}),
                    sdk_check=sdk)
    assert run.step("exchange")["evidence"]["sdk"]["enabled"] is False


def test_real_sdk_error_is_redacted(
    run_probe: RunProbe, environ: dict[str, str], token_file: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real cross-check function, with WorkloadIdentityCredential replaced by one that leaks the token."""
    pytest.importorskip("azure.identity")
    import azure.identity

    from probe.sdk import azure_identity_check

    token = token_file[1]

    class Leaky:
        def __init__(self, **kwargs: Any) -> None:
            self.kwargs = kwargs

        def get_token(self, scope: str) -> Any:
            raise RuntimeError(f"bad assertion {token} for {scope}")

        def close(self) -> None:
            pass

    monkeypatch.setattr(azure.identity, "WorkloadIdentityCredential", Leaky)
    run = run_probe([], environ, FakeTransport({TOKEN_URL: entra_fail}), sdk_check=azure_identity_check)
    sdk = run.step("exchange")["evidence"]["sdk"]
    assert sdk["available"] is True and sdk["agrees"] is True
    assert "[REDACTED-JWT]" in sdk["error"]
    assert token not in run.stdout


# ---------------------------------------------------------------- access: Key Vault


def _kv_transport(entra_ok: Handler, kv: Handler, prefix: str = VAULT_URL) -> FakeTransport:
    return FakeTransport({TOKEN_URL: entra_ok, prefix: keyvault(kv)})


def test_keyvault_allow_as_expected(run_probe: RunProbe, environ: dict[str, str], entra_ok: Handler) -> None:
    transport = _kv_transport(entra_ok, kv_secret_ok)
    run = run_probe(config_json(checks=[kv_check("allow")]), environ, transport)
    assert run.code == 0, run.stdout
    step = run.step("access")
    assert (step["status"], step["kind"], step["expect"], step["outcome"]) == ("pass", "keyvault_secret", "allow",
                                                                              "allow")
    assert step["target"] == f"{VAULT_URL}/secrets/db-pass?api-version=7.4"
    ev = step["evidence"]
    assert ev["id"] == f"{VAULT_URL}/secrets/db-pass/4387e9f3d6e14c459867679a90fd0f79"
    assert ev["version"] == "4387e9f3d6e14c459867679a90fd0f79"
    assert ev["attributes"]["enabled"] is True
    assert ev["value_present"] is True
    assert "value" not in ev
    challenge_call, kv_call = transport.to(VAULT_URL)
    assert "Authorization" not in challenge_call["headers"]  # the challenge first, to the same URL
    assert challenge_call["url"] == kv_call["url"] == f"{VAULT_URL}/secrets/db-pass?api-version=7.4"
    assert kv_call["headers"]["Authorization"].startswith("Bearer eyJ")
    assert ev["challenge"]["resource"] == "https://vault.azure.net"
    assert ev["challenge"]["resource_domain"] == "vault.azure.net"
    # the vault scope was already exchanged by the exchange step: one token request in total
    assert len(transport.to(TOKEN_URL)) == 1
    assert ev["token"]["cached"] is True and ev["token"]["aud"] == "https://vault.azure.net"


def test_keyvault_deny_when_allow_expected(run_probe: RunProbe, environ: dict[str, str], entra_ok: Handler) -> None:
    run = run_probe(config_json(checks=[kv_check("allow")]), environ, _kv_transport(entra_ok, kv_forbidden))
    assert run.code == 1
    step = run.step("access")
    assert (step["status"], step["outcome"]) == ("fail", "deny")
    ev = step["evidence"]
    assert (ev["http_status"], ev["code"], ev["innererror"]) == (403, "Forbidden", "ForbiddenByRbac")
    assert "getSecret/action" in ev["message"]
    assert step["error"]["kind"] == "expectation_mismatch"
    assert step["error"]["message"] == "expected allow, got deny (HTTP 403 Forbidden/ForbiddenByRbac)"


def test_keyvault_deny_as_expected(run_probe: RunProbe, environ: dict[str, str], entra_ok: Handler) -> None:
    run = run_probe(config_json(checks=[kv_check("deny")]), environ, _kv_transport(entra_ok, kv_forbidden))
    assert run.code == 0
    step = run.step("access")
    assert (step["status"], step["outcome"], step["error"]) == ("pass", "deny", None)
    assert step["evidence"]["innererror"] == "ForbiddenByRbac"


def test_keyvault_allow_when_deny_expected(run_probe: RunProbe, environ: dict[str, str], entra_ok: Handler) -> None:
    run = run_probe(config_json(checks=[kv_check("deny")]), environ, _kv_transport(entra_ok, kv_secret_ok))
    step = run.step("access")
    assert (step["status"], step["outcome"]) == ("fail", "allow")
    assert step["error"]["message"].startswith("expected deny, got allow")
    assert SECRET_VALUE not in run.stdout


def test_keyvault_not_found_is_an_error_either_way(
    run_probe: RunProbe, environ: dict[str, str], entra_ok: Handler
) -> None:
    def not_found(*_: Any) -> Response:
        return json_response(404, {"error": {"code": "SecretNotFound", "message": "A secret with (name/id) x"}})

    for expect in ("allow", "deny"):
        run = run_probe(config_json(checks=[kv_check(expect)]), environ, _kv_transport(entra_ok, not_found))
        step = run.step("access")
        assert (step["status"], step["outcome"]) == ("fail", "error")
        assert step["error"]["kind"] == "http_error" and step["error"]["code"] == "SecretNotFound"


def test_keyvault_200_that_is_no_secret_proves_no_read_either_way(
    run_probe: RunProbe, environ: dict[str, str], entra_ok: Handler
) -> None:
    """A proxy's 200 HTML page, or a secret bundle cut short, answering the authorized read: no allow (it was a
    PASS for an allow target and ACCESS_ALLOWED_UNEXPECTEDLY for a deny one), and its text never printed (a cut
    bundle starts with the value)."""
    cut = ('{"value": "' + SECRET_VALUE + '", "id": "https://kv1.vault.azure.net/secr').encode()
    for body, kind in ((b"<html><body>Session expired</body></html>", "text/html"), (cut, "application/json")):
        for expect in ("allow", "deny"):
            run = run_probe(config_json(checks=[kv_check(expect)]), environ, _kv_transport(
                entra_ok, lambda *_, b=body, k=kind: Response(200, {"content-type": k}, b)))
            step = run.step("access")
            assert (step["status"], step["outcome"]) == ("fail", "error"), step
            assert step["error"]["message"] == (
                f"expected {expect}, got HTTP 200: the body is no Key Vault secret: not a JSON object ({kind}): a "
                "proxy or gateway answered in the vault's place, or the answer was cut short")
            assert SECRET_VALUE not in run.stdout


def test_keyvault_vault_url_with_path_prefix(run_probe: RunProbe, environ: dict[str, str], entra_ok: Handler) -> None:
    lab_vault = "https://127.0.0.1:8443/vaults/kv1/"
    transport = _kv_transport(entra_ok, kv_secret_ok, prefix="https://127.0.0.1:8443/")
    check = dict(kv_check("allow", vault_url=lab_vault), allowed_hosts=["127.0.0.1:8443"],
                 challenge_resource="https://vault.azure.net")
    run = run_probe(config_json(checks=[check]), environ, transport)
    assert transport.calls[-1]["url"] == "https://127.0.0.1:8443/vaults/kv1/secrets/db-pass?api-version=7.4"
    assert run.code == 0


def test_access_connection_error(run_probe: RunProbe, environ: dict[str, str], entra_ok: Handler) -> None:
    run = run_probe(config_json(checks=[kv_check("deny")]), environ, _kv_transport(entra_ok, refuse))
    step = run.step("access")
    assert (step["status"], step["outcome"]) == ("fail", "error")
    assert step["error"]["kind"] == "connection_refused"


# ---------------------------------------------------------------- access: blob


def test_blob_deny_xml_parsed(run_probe: RunProbe, environ: dict[str, str], entra_ok: Handler) -> None:
    transport = FakeTransport({TOKEN_URL: entra_ok, ACCOUNT_URL: blob_denied})
    run = run_probe(config_json(checks=[blob_check("deny")]), environ, transport)
    assert run.code == 0, run.stdout
    step = run.step("access")
    assert (step["status"], step["outcome"]) == ("pass", "deny")
    ev = step["evidence"]
    assert (ev["http_status"], ev["code"]) == (403, "AuthorizationPermissionMismatch")
    assert ev["message"] == "This request is not authorized to perform this operation using this permission."
    [call] = transport.to(ACCOUNT_URL)
    assert call["url"] == f"{ACCOUNT_URL}/data/report.csv"
    assert call["headers"]["x-ms-version"] == "2023-11-03"
    assert call["headers"]["x-ms-date"].endswith("GMT")
    # the storage scope needs its own token
    scopes = [parse_qs(c["body"].decode())["scope"][0] for c in transport.to(TOKEN_URL)]
    assert scopes == ["https://vault.azure.net/.default", "https://storage.azure.com/.default"]
    assert ev["token"] == {"scope": "https://storage.azure.com/.default", "cached": False,
                           "fingerprint": ev["token"]["fingerprint"], "aud": "https://storage.azure.com"}


def test_blob_allow_reads_properties_with_head_never_the_bytes(
    run_probe: RunProbe, environ: dict[str, str], entra_ok: Handler
) -> None:
    transport = FakeTransport({TOKEN_URL: entra_ok, ACCOUNT_URL: blob_ok})
    run = run_probe(config_json(checks=[blob_check("allow")]), environ, transport)
    ev = run.step("access")["evidence"]
    assert (ev["content_length"], ev["etag"], ev["outcome"]) == (8, '"0x8D"', "allow")
    [call] = transport.to(ACCOUNT_URL)
    assert call["method"] == "HEAD"


def test_blob_allow_when_deny_expected(run_probe: RunProbe, environ: dict[str, str], entra_ok: Handler) -> None:
    transport = FakeTransport({TOKEN_URL: entra_ok, ACCOUNT_URL: blob_ok})
    run = run_probe(config_json(checks=[blob_check("deny")]), environ, transport)
    assert run.step("access")["status"] == "fail"
    assert run.code == 1


def test_tokens_cached_per_scope(run_probe: RunProbe, environ: dict[str, str], entra_ok: Handler) -> None:
    transport = FakeTransport({TOKEN_URL: entra_ok, VAULT_URL: keyvault(kv_secret_ok), ACCOUNT_URL: blob_denied})
    checks = [kv_check("allow"), blob_check("deny"), kv_check("allow", secret="other"), blob_check("deny")]
    run = run_probe(config_json(checks=checks), environ, transport)
    assert run.code == 0, run.stdout
    assert len(transport.to(TOKEN_URL)) == 2
    assert [s["index"] for s in run.doc["steps"] if s["name"] == "access"] == [0, 1, 2, 3]


def test_access_token_failure_for_its_scope(run_probe: RunProbe, environ: dict[str, str], entra_ok: Handler) -> None:
    def entra(method: str, url: str, headers: Mapping[str, str], body: bytes | None, timeout: float) -> Response:
        if b"storage.azure.com" in (body or b""):
            return json_response(400, {"error": "invalid_resource",
                                       "error_description": "AADSTS500011: The resource principal named x",
                                       "error_codes": [500011]})
        return entra_ok(method, url, headers, body, timeout)

    run = run_probe(config_json(checks=[blob_check("deny")]), environ, FakeTransport({TOKEN_URL: entra}))
    step = run.step("access")
    assert (step["status"], step["outcome"]) == ("fail", "error")
    assert step["error"]["kind"] == "token_exchange"
    assert step["error"]["detail"]["aadsts"] == "AADSTS500011"


# ---------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("argv", "env_config", "field"),
    [
        (["--config-json", "{bad"], None, "--config-json"),
        (config_json(checks=[{"kind": "keyvault_secret", "vault_url": VAULT_URL, "expect": "allow"}]), None,
         "checks[0].secret"),
        ([], '{"timeout_seconds": -1}', "timeout_seconds"),
        (["--config", "/nonexistent/probe.json"], None, "--config"),
        (["--bogus"], None, "command line"),
        (config_json(ca_file="/nonexistent/ca.pem"), None, "ca_file"),
    ],
)
def test_bad_config(
    run_probe: RunProbe, environ: dict[str, str], argv: list[str], env_config: str | None, field: str
) -> None:
    env = dict(environ, **({"WI_PROBE_CONFIG": env_config} if env_config else {}))
    run = run_probe(argv, env)
    assert run.code == 1
    lines = run.stderr.splitlines()
    assert len(lines) == 1 and field in lines[0]
    assert "Traceback" not in run.stderr
    config = run.step("config")
    assert config["status"] == "fail"
    assert config["error"]["kind"] == "invalid_config" and config["error"]["field"] == field
    assert run.step("exchange")["reason"] == "because config failed"
    assert run.doc["ok"] is False


def test_config_from_file_and_env(
    run_probe: RunProbe, environ: dict[str, str], tmp_path: Path, entra_ok: Handler
) -> None:
    path = tmp_path / "probe.json"
    path.write_text(json.dumps({"checks": [kv_check("allow")]}))
    transport = FakeTransport({TOKEN_URL: entra_ok, VAULT_URL: keyvault(kv_secret_ok)})
    run = run_probe(["--config", str(path)], environ, transport)
    assert run.step("config")["evidence"]["source"] == f"--config {path}"
    assert run.step("config")["evidence"]["checks"] == 1
    run = run_probe([], dict(environ, WI_PROBE_CONFIG=json.dumps({"checks": [kv_check("allow")]})), transport)
    assert run.step("config")["evidence"]["source"] == "WI_PROBE_CONFIG"
    assert run.code == 0


def test_tls_trust_reported(run_probe: RunProbe, environ: dict[str, str], tmp_path: Path, entra_ok: Handler) -> None:
    run = run_probe([], dict(environ, REQUESTS_CA_BUNDLE="", SSL_CERT_FILE=""), FakeTransport({TOKEN_URL: entra_ok}))
    assert run.step("config")["evidence"]["tls_trust"] == {"source": "system", "path": None}


# ---------------------------------------------------------------- robustness and secrecy


def test_unexpected_exception_becomes_a_failed_step(run_probe: RunProbe, environ: dict[str, str]) -> None:
    def broken(*_: Any) -> Response:
        raise RuntimeError("bug")

    run = run_probe([], environ, FakeTransport({TOKEN_URL: broken}))
    assert run.step("exchange")["error"] == {"kind": "internal", "message": "RuntimeError: bug"}
    assert run.code == 1


def test_raw_tokens_and_secret_value_never_printed(
    run_probe: RunProbe, environ: dict[str, str], token_file: tuple[Path, str], make_jwt: Callable[..., str]
) -> None:
    issued: list[str] = []

    def entra(method: str, url: str, headers: Mapping[str, str], body: bytes | None, timeout: float) -> Response:
        scope = parse_qs((body or b"").decode())["scope"][0]
        token = make_jwt({"aud": scope.removesuffix("/.default"), "tid": TENANT})
        issued.append(token)
        return json_response(200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    def kv_echo(method: str, url: str, headers: Mapping[str, str], body: bytes | None, timeout: float) -> Response:
        # a misbehaving server that echoes the bearer token and the secret into an error message
        if url.endswith("other?api-version=7.4"):
            return json_response(403, {"error": {"code": "Forbidden", "message": f"{headers['Authorization']} "
                                                 f"{SECRET_VALUE}", "innererror": {"code": "ForbiddenByRbac"}}})
        return kv_secret_ok()

    def sdk(_: SdkRequest) -> dict[str, Any]:
        return {"available": True, "succeeded": False, "error": f"assertion {token_file[1]} rejected"}

    transport = FakeTransport({TOKEN_URL: entra, VAULT_URL: keyvault(kv_echo), ACCOUNT_URL: blob_denied})
    checks = [kv_check("allow"), kv_check("deny", secret="other"), blob_check("deny")]
    run = run_probe(config_json(checks=checks), environ, transport, sdk_check=sdk)
    assert run.code == 0, run.stdout
    assert issued and token_file[1] not in run.stdout
    for token in issued:
        assert token not in run.stdout
        for segment in token.split(".")[1:]:
            assert segment not in run.stdout
    assert SECRET_VALUE not in run.stdout and SECRET_VALUE not in run.stderr
    assert "eyJ" not in run.stdout


# ---------------------------------------------------------------- the token goes to the cloud's authority only


@pytest.mark.parametrize(("authority", "reason"), [
    ("https://login.microsoftonline.com.attacker.example/", "names login.microsoftonline.com.attacker.example, not "
                                                             "the cloud's authority host (login.microsoftonline.com)"),
    ("https://login.microsoftonline.com:8443/", "names login.microsoftonline.com:8443, not the cloud's"),
    ("http://login.microsoftonline.com/", "must be an absolute https URL"),
    ("https://user@login.microsoftonline.com/", "must not contain a user name or password"),
])
def test_the_token_is_never_sent_to_an_authority_that_is_not_the_clouds(
    run_probe: RunProbe, environ: dict[str, str], entra_ok: Handler, authority: str, reason: str
) -> None:
    """AZURE_AUTHORITY_HOST comes from the webhook (its cloud), or from a mutating webhook or a template that sets
    it first (the webhook never overwrites an env var): the probe exchanged the ServiceAccount token wherever it
    pointed. With ``authority_hosts`` (the harness gives its cloud's), another host, or an authority that is not
    https, gets no request at all, neither from the raw exchange nor from the SDK cross-check; the run says why."""
    transport = FakeTransport({TOKEN_URL: entra_ok})
    sdk_calls: list[SdkRequest] = []
    run = run_probe(config_json(authority_hosts=["login.microsoftonline.com"]),
                    dict(environ, AZURE_AUTHORITY_HOST=authority), transport,
                    sdk_check=lambda request: sdk_calls.append(request) or {"available": True})
    exchange = run.step("exchange")
    assert exchange["status"] == "fail" and exchange["error"]["kind"] == "untrusted_authority"
    assert reason in exchange["error"]["message"] and "the ServiceAccount token was not sent" in \
        exchange["error"]["message"]
    assert transport.calls == [] and sdk_calls == []
    # the configured authority itself is used as before
    same = run_probe(config_json(authority_hosts=["login.microsoftonline.com"]), environ,
                     FakeTransport({TOKEN_URL: entra_ok}))
    assert same.step("exchange")["status"] == "pass"


def test_authority_hosts_is_validated_like_allowed_hosts(run_probe: RunProbe, environ: dict[str, str]) -> None:
    run = run_probe(config_json(authority_hosts=["https://login.microsoftonline.com/"]), environ)
    assert run.code != 0 and "authority_hosts[0]" in run.stdout + run.stderr
