"""The probe's steps: env, token, exchange. Each returns a StepOutcome; the runner orders and times them."""

from __future__ import annotations

import os
import re
import stat
import time
from collections.abc import Callable, Mapping

from probe.config import ProbeConfig, TlsTrust
from probe.exchange import Exchanger, token_url
from probe.jwtutil import JwtDecodeError, decode_unverified, fingerprint, pick, redact
from probe.report import StepOutcome, failed, passed
from probe.retry import RetryPolicy
from probe.sdk import SdkRequest, sdk_importable
from probe.targets import HostPattern, UrlProblem, parse_https_url

TYPE_CHECKING = False  # typing is not imported when the probe runs (probe/__init__.py)
if TYPE_CHECKING:
    from typing import Any

    from probe.sdk import SdkCheck
    from probe.transport import Transport

REQUIRED_ENV = ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST")
TOKEN_FILE_ENV = "AZURE_FEDERATED_TOKEN_FILE"
TOKEN_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "nbf", "jti", "kubernetes.io")
DEFAULT_AUDIENCE = "api://AzureADTokenExchange"
_TOKEN_PATH_LAYOUTS = {
    "/var/run/secrets/azure/tokens/azure-identity-token": "webhook v1.0-v1.5",
    "/var/run/secrets/azure/wi/token/azure-identity-token": "webhook v1.6+",
}
# Azure/azure-workload-identity PR #1749: the mount path carries the pod's hash segment
_HASHED_TOKEN_PATH = re.compile(r"/var/run/secrets/azure/wi/[0-9a-f]{30}/token/azure-identity-token")
_MAX_TOKEN_BYTES = 1 << 20
_MAX_ENV_VALUE = 200


class Context:
    """Everything the steps share. Raw secrets live here, never in evidence."""

    __slots__ = ("environ", "transport", "clock", "sdk_check", "monotonic", "sleep", "config", "trust",
                 "sensitive", "token", "exchanger", "retry")

    def __init__(self, environ: Mapping[str, str], transport: Transport, clock: Callable[[], float],
                 sdk_check: SdkCheck | None, monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.environ = environ
        self.transport = transport
        self.clock = clock
        self.sdk_check = sdk_check
        self.monotonic = monotonic
        self.sleep = sleep
        self.config: ProbeConfig | None = None
        self.trust: TlsTrust | None = None
        self.sensitive: set[str] = set()
        self.token: str | None = None  # the raw projected token: never in a repr, evidence or output
        self.exchanger: Exchanger | None = None
        self.retry: RetryPolicy | None = None  # the run's one retry budget (exchanges and access reads)

    def env(self, name: str) -> str | None:
        value = self.environ.get(name)
        return value if value and value.strip() else None


# ---------------------------------------------------------------- env


def env_step(ctx: Context) -> StepOutcome:
    """The webhook-injected variables as the container sees them."""
    values = {name: ctx.env(name) for name in REQUIRED_ENV}
    missing = [name for name, value in values.items() if value is None]
    evidence: dict[str, Any] = {"vars": values, "missing": missing}
    extra = {k: _env_value(v) for k, v in sorted(ctx.environ.items()) if k.startswith("AZURE_KUBERNETES_")}
    if extra:
        evidence["azure_kubernetes"] = extra
    authority = values["AZURE_AUTHORITY_HOST"]
    if authority:
        evidence["authority_host_trailing_slash"] = authority.endswith("/")
    path = values[TOKEN_FILE_ENV]
    if path:
        evidence["token_path_layout"] = _TOKEN_PATH_LAYOUTS.get(path) or (
            "webhook PR #1749 (per-pod mount path)" if _HASHED_TOKEN_PATH.fullmatch(path) else "custom")
    if missing:
        message = f"missing environment variables: {', '.join(missing)}"
        if len(missing) == len(REQUIRED_ENV):
            message += (" (none injected: is the pod labelled azure.workload.identity/use=true"
                        " and was it created after the webhook was ready?)")
        return failed(evidence, {"kind": "missing_env", "missing": missing, "message": message})
    return passed(evidence)


def _env_value(value: str) -> str:
    if len(value) <= _MAX_ENV_VALUE:
        return value
    return f"{value[:64]}... ({len(value)} chars, sha256 {fingerprint(value)})"


# ---------------------------------------------------------------- token


def token_step(ctx: Context) -> StepOutcome:
    """Read the projected token from AZURE_FEDERATED_TOKEN_FILE and decode it without verification."""
    path = ctx.env(TOKEN_FILE_ENV)
    assert path is not None  # the runner skips this step otherwise
    evidence: dict[str, Any] = {"path": path}
    try:
        evidence.update(_file_facts(path))
        with open(path, "rb") as fh:
            raw = fh.read(_MAX_TOKEN_BYTES)
    except FileNotFoundError:
        return failed(evidence, {"kind": "file_not_found", "message": f"{path} does not exist"})
    except PermissionError:
        message = f"permission denied reading {path} (token file mode vs. container user; fsGroup?)"
        return failed(evidence, {"kind": "permission_denied", "message": message})
    except OSError as exc:
        return failed(evidence, {"kind": "read_error", "message": f"{type(exc).__name__}: {exc.strerror or exc}"})
    token = raw.decode("utf-8", "replace").strip()
    if not token:
        return failed(evidence, {"kind": "empty", "message": f"{path} is empty"})
    ctx.sensitive.add(token)
    evidence["fingerprint"] = fingerprint(token)
    try:
        header, claims = decode_unverified(token)
    except JwtDecodeError as exc:
        return failed(evidence, {"kind": "malformed", "message": f"not a JWT: {exc}"})
    ctx.token = token
    evidence["header"] = pick(header, ("alg", "kid", "typ"))
    evidence["claims"] = pick(claims, TOKEN_CLAIMS)
    evidence["audience_is_default"] = DEFAULT_AUDIENCE in _as_list(claims.get("aud"))
    evidence["lifetime"] = _lifetime(claims, ctx.clock())
    remaining = evidence["lifetime"]["remaining_seconds"]
    if remaining is not None and remaining <= 0:
        message = f"token expired {-remaining} s ago (kubelet not refreshing it, or clock skew)"
        return failed(evidence, {"kind": "expired", "message": message})
    return passed(evidence)


def _file_facts(path: str) -> dict[str, Any]:
    st = os.stat(path)
    facts: dict[str, Any] = {
        "mode": f"{stat.S_IMODE(st.st_mode):04o}",
        "size": st.st_size,
        "owner_uid": st.st_uid,
        "owner_gid": st.st_gid,
    }
    if hasattr(os, "getuid"):
        facts["process_uid"] = os.getuid()
    return facts


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _lifetime(claims: Mapping[str, Any], now: float) -> dict[str, int | None]:
    exp, iat = _number(claims.get("exp")), _number(claims.get("iat"))
    return {
        "remaining_seconds": int(exp - now) if exp is not None else None,
        "total_seconds": int(exp - iat) if exp is not None and iat is not None else None,
    }


# ---------------------------------------------------------------- exchange


def exchange_step(ctx: Context) -> StepOutcome:
    """Exchange the projected token at Entra for the configured scope; cross-check with the SDK."""
    assert ctx.config is not None and ctx.token is not None  # the runner skips this step otherwise
    client_id = ctx.env("AZURE_CLIENT_ID") or ""
    tenant_id = ctx.env("AZURE_TENANT_ID") or ""
    authority = ctx.env("AZURE_AUTHORITY_HOST") or ""
    url = token_url(authority, tenant_id)
    refused = untrusted_authority(url, ctx.config.authority_hosts)
    if refused is not None:  # the token is never sent: no exchange, no SDK cross-check
        return failed({"token_url": url, "client_id": client_id, "tenant_id": tenant_id},
                      {"kind": "untrusted_authority", "message": refused})
    retry = RetryPolicy(ctx.config.retry_seconds, frozenset(ctx.config.retry_aadsts), ctx.monotonic, ctx.sleep)
    ctx.retry = retry
    ctx.exchanger = Exchanger(ctx.transport, url, client_id, ctx.token, ctx.config.timeout_seconds, ctx.sensitive,
                              retry)
    result, _ = ctx.exchanger.get(ctx.config.scope)
    evidence: dict[str, Any] = {"token_url": url, "client_id": client_id, "tenant_id": tenant_id, **result.evidence}
    request = SdkRequest(
        tenant_id=tenant_id,
        client_id=client_id,
        token_file=ctx.env(TOKEN_FILE_ENV) or "",
        authority_host=authority,
        scope=ctx.config.scope,
        timeout=ctx.config.timeout_seconds,
        ca_path=ctx.trust.path if ctx.trust else None,
    )
    evidence["sdk"] = _sdk_summary(ctx, request, result.ok)
    if result.ok:
        return passed(evidence)
    assert result.error is not None
    return failed(evidence, result.error)


def untrusted_authority(url: str, allowed: tuple[HostPattern, ...]) -> str | None:
    """Why the ServiceAccount token must not be sent to ``url`` (from AZURE_AUTHORITY_HOST), or None: it must be
    https, and on one of ``allowed`` when the config names them (the harness names its cloud's authority host)."""
    try:
        target = parse_https_url(url)
    except UrlProblem as exc:
        return f"the token endpoint {url} from AZURE_AUTHORITY_HOST {exc}: the ServiceAccount token was not sent"
    if allowed and not any(pattern.matches(target) for pattern in allowed):
        named = ", ".join(pattern.text for pattern in allowed)
        return (f"AZURE_AUTHORITY_HOST names {target.authority}, not the cloud's authority host ({named}): the "
                "ServiceAccount token was not sent there")
    return None


def _sdk_summary(ctx: Context, request: SdkRequest, raw_ok: bool) -> dict[str, Any]:
    assert ctx.config is not None
    if ctx.sdk_check is None or not ctx.config.sdk_cross_check:
        return {"available": sdk_importable(), "enabled": False}
    outcome, attempts = ctx.sdk_check(request), 1
    # The SDK runs without retries of its own (its Retry-After is not bounded); a transient answer to it is tried
    # again within the run's retry budget, as the raw exchange was, so that it is not taken for a disagreement.
    while outcome.get("available") and not outcome.get("succeeded") and outcome.get("transient") \
            and ctx.retry is not None:
        wait = ctx.retry.delay(attempts, {})
        if wait is None:
            break
        ctx.retry.sleep(wait)
        outcome, attempts = ctx.sdk_check(request), attempts + 1
    if not outcome.get("available"):
        return {"available": False}
    succeeded = bool(outcome.get("succeeded"))
    error = outcome.get("error")
    summary = {"available": True, "succeeded": succeeded, "agrees": succeeded == raw_ok,
               "error": redact(str(error)) if error else None}
    return {**summary, "attempts": attempts} if attempts > 1 else summary
