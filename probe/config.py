"""Probe configuration: parsing and validation (standard library only).

Sources, first match wins: ``--config-json '<json>'``, ``--config FILE``, env ``WI_PROBE_CONFIG``;
none means the defaults (default scope, no access checks).

    {"scope": "https://vault.azure.net/.default", "timeout_seconds": 10, "ca_file": "/path/ca.pem",
     "sdk_cross_check": true, "retry_seconds": 30, "retry_aadsts": [70021, 700211, 700213, 7000272],
     "checks": [{"kind": "keyvault_secret", "vault_url": "...", "secret": "name", "expect": "allow"},
                {"kind": "blob", "account_url": "...", "container": "c", "blob": "b", "expect": "deny"}]}

Every check may also carry:
- ``"scope"``: the token scope of its resource (default: the one its host's suffix implies in a known cloud,
  e.g. https://vault.azure.cn/.default for a vault in China; else ``challenge_resource``; else the public one);
- ``"allowed_hosts"``: the only hosts the token may go to, as ``.suffix`` or ``host``, each optionally
  ``:PORT`` or ``:*`` (default: the Azure clouds' own Key Vault or Blob suffixes; see probe/targets.py);
- ``"challenge_resource"`` (Key Vault): the resource the vault's 401 challenge must name (default: the SDK's
  rule, the vault's host must end with "." + the challenge resource's domain).
No URL may carry a user name or password.

``retry_seconds`` bounds the retries of transient answers in the whole run (0: none; probe/retry.py);
``retry_aadsts`` names which of Entra's wait-and-see answers count as transient (default: all four; the harness
leaves the federated-credential codes out when it knows no credential matches, so a misconfiguration is never
waited on).

``authority_hosts`` names the only hosts the ServiceAccount token may be exchanged at (``host`` or ``host:PORT``,
as ``allowed_hosts``): the harness gives its cloud's authority host, so a pod whose AZURE_AUTHORITY_HOST names
another host (another cloud's webhook, another mutating webhook, a value copied from elsewhere) never sends its
token there. Absent: any https host. An authority that is not https is never used.
"""

from __future__ import annotations

import json
import math
import os
import ssl
import urllib.parse
from collections import namedtuple
from collections.abc import Mapping

from probe.retry import DEFAULT_RETRY_SECONDS, MAX_RETRY_SECONDS, TRANSIENT_AADSTS
from probe.targets import HostPattern, UrlProblem, default_patterns, known_resource, parse_https_url

TYPE_CHECKING = False  # typing is not imported when the probe runs (probe/__init__.py)
if TYPE_CHECKING:
    from typing import Any

DEFAULT_SCOPE = "https://vault.azure.net/.default"
DEFAULT_TIMEOUT = 10.0
KEYVAULT_SCOPE = "https://vault.azure.net/.default"
STORAGE_SCOPE = "https://storage.azure.com/.default"
ENV_VAR = "WI_PROBE_CONFIG"

_TOP_FIELDS = {"scope", "timeout_seconds", "ca_file", "sdk_cross_check", "checks", "retry_seconds", "retry_aadsts",
               "authority_hosts"}
_CHECK_FIELDS = {
    "keyvault_secret": ({"vault_url", "secret"}, KEYVAULT_SCOPE),
    "blob": ({"account_url", "container", "blob"}, STORAGE_SCOPE),
}
_COMMON_CHECK_FIELDS = {"kind", "expect", "scope", "allowed_hosts"}
_KIND_ONLY_FIELDS = {"keyvault_secret": {"challenge_resource"}, "blob": set()}
_URL_FIELDS = {"keyvault_secret": "vault_url", "blob": "account_url"}


class ConfigError(ValueError):
    """Invalid configuration; ``field`` names the offending field (or source)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"invalid probe config: {field}: {message}")
        self.field = field
        self.message = message

    def to_dict(self) -> dict[str, str]:
        return {"kind": "invalid_config", "field": self.field, "message": self.message}


class Check(namedtuple("Check", "kind expect scope params allowed_hosts challenge_resource", defaults=((), None))):
    """One access check: ``kind``, ``expect`` and ``scope`` strings, ``params`` the kind's fields (a dict of strings),
    ``allowed_hosts`` a tuple of HostPatterns, ``challenge_resource`` what a Key Vault's challenge must name (or
    None)."""

    __slots__ = ()

    @property
    def base_url(self) -> str:
        return self.params[_URL_FIELDS[self.kind]]

    def target(self) -> str:
        """A human-readable URL of what the check reads (no credentials in it)."""
        if self.kind == "keyvault_secret":
            return keyvault_secret_url(self.params["vault_url"], self.params["secret"])
        return blob_url(self.params["account_url"], self.params["container"], self.params["blob"])


class ProbeConfig(namedtuple(
    "ProbeConfig",
    "scope timeout_seconds ca_file sdk_cross_check checks source retry_seconds retry_aadsts authority_hosts",
    defaults=(DEFAULT_SCOPE, DEFAULT_TIMEOUT, None, True, (), "defaults", DEFAULT_RETRY_SECONDS, TRANSIENT_AADSTS, ()),
)):
    """The parsed config; ``checks`` a tuple of Checks, ``retry_aadsts`` of ints, ``authority_hosts`` of HostPatterns
    (where the token may be exchanged; empty: any https host)."""

    __slots__ = ()


class TlsTrust(namedtuple("TlsTrust", "source path")):
    """``source``: "ca_file" | "REQUESTS_CA_BUNDLE" | "SSL_CERT_FILE" | "system"; ``path`` None for the system's."""

    __slots__ = ()

    def to_dict(self) -> dict[str, str | None]:
        return {"source": self.source, "path": self.path}


def keyvault_secret_url(vault_url: str, secret: str) -> str:
    return f"{vault_url.rstrip('/')}/secrets/{urllib.parse.quote(secret, safe='')}?api-version=7.4"


def blob_url(account_url: str, container: str, blob: str) -> str:
    path = f"{urllib.parse.quote(container, safe='')}/{urllib.parse.quote(blob.lstrip('/'), safe='/')}"
    return f"{account_url.rstrip('/')}/{path}"


def load_raw(config_json: str | None, config_file: str | None, environ: Mapping[str, str]) -> tuple[Any, str]:
    """Return (parsed JSON, source label) from the first configured source."""
    if config_json is not None:
        return _parse_json(config_json, "--config-json"), "--config-json"
    if config_file is not None:
        try:
            with open(config_file, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as exc:
            raise ConfigError("--config", f"cannot read {config_file}: {exc.strerror or exc}") from None
        return _parse_json(text, "--config"), f"--config {config_file}"
    text = environ.get(ENV_VAR)
    if text is not None and text.strip():
        return _parse_json(text, ENV_VAR), ENV_VAR
    return {}, "defaults"


def _parse_json(text: str, source: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(source, f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None


def parse(raw: Any, source: str = "defaults") -> ProbeConfig:
    """Validate a parsed JSON value into a ProbeConfig; raise ConfigError naming the field."""
    if not isinstance(raw, dict):
        raise ConfigError("(root)", f"must be a JSON object, got {_type(raw)}")
    _reject_unknown(raw, _TOP_FIELDS, "")
    checks_raw = raw.get("checks", [])
    if not isinstance(checks_raw, list):
        raise ConfigError("checks", f"must be a list, got {_type(checks_raw)}")
    return ProbeConfig(
        scope=_scope(raw.get("scope", DEFAULT_SCOPE), "scope"),
        timeout_seconds=_timeout(raw.get("timeout_seconds", DEFAULT_TIMEOUT)),
        ca_file=_optional_str(raw.get("ca_file"), "ca_file"),
        sdk_cross_check=_bool(raw.get("sdk_cross_check", True), "sdk_cross_check"),
        checks=tuple(_check(item, f"checks[{i}]") for i, item in enumerate(checks_raw)),
        source=source,
        retry_seconds=_retry_seconds(raw.get("retry_seconds", DEFAULT_RETRY_SECONDS)),
        retry_aadsts=_retry_aadsts(raw.get("retry_aadsts", list(TRANSIENT_AADSTS))),
        authority_hosts=()
        if raw.get("authority_hosts") is None
        else _host_patterns(raw["authority_hosts"], "authority", "authority_hosts"),
    )


def _check(raw: Any, where: str) -> Check:
    if not isinstance(raw, dict):
        raise ConfigError(where, f"must be a JSON object, got {_type(raw)}")
    kind = raw.get("kind")
    if kind not in _CHECK_FIELDS:
        raise ConfigError(f"{where}.kind", f"must be one of {sorted(_CHECK_FIELDS)}, got {kind!r}")
    required, public_scope = _CHECK_FIELDS[kind]
    _reject_unknown(raw, required | _COMMON_CHECK_FIELDS | _KIND_ONLY_FIELDS[kind], f"{where}.")
    expect = raw.get("expect")
    if expect not in ("allow", "deny"):
        raise ConfigError(f"{where}.expect", f"must be 'allow' or 'deny', got {expect!r}")
    params = {name: _required_str(raw.get(name), f"{where}.{name}") for name in sorted(required)}
    url_field = _URL_FIELDS[kind]
    _url(params[url_field], f"{where}.{url_field}")
    challenge_resource = _optional_str(raw.get("challenge_resource"), f"{where}.challenge_resource")
    if challenge_resource is not None:
        _url(challenge_resource, f"{where}.challenge_resource")
    implied = known_resource(kind, parse_https_url(params[url_field])) or challenge_resource
    default_scope = implied.rstrip("/") + "/.default" if implied else public_scope
    scope = _scope(raw.get("scope", default_scope), f"{where}.scope")
    allowed = _host_patterns(raw.get("allowed_hosts"), kind, f"{where}.allowed_hosts")
    return Check(kind=kind, expect=expect, scope=scope, params=params, allowed_hosts=allowed,
                 challenge_resource=challenge_resource)


def _host_patterns(value: Any, kind: str, where: str) -> tuple[HostPattern, ...]:
    if value is None:
        return default_patterns(kind)
    if not isinstance(value, list) or not value:
        raise ConfigError(where, f"must be a non-empty list of host patterns, got {_type(value)}")
    patterns = []
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise ConfigError(f"{where}[{index}]", f"must be a string, got {_type(item)}")
        try:
            patterns.append(HostPattern.parse(item))
        except UrlProblem as exc:
            raise ConfigError(f"{where}[{index}]", str(exc)) from None
    return tuple(patterns)


def _reject_unknown(raw: dict[str, Any], allowed: set[str], prefix: str) -> None:
    for key in raw:
        if key not in allowed:
            raise ConfigError(f"{prefix}{key}", f"unknown field (allowed: {', '.join(sorted(allowed))})")


def _type(value: Any) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _required_str(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(where, f"required non-empty string, got {_type(value)}")
    return value.strip()


def _optional_str(value: Any, where: str) -> str | None:
    return None if value is None else _required_str(value, where)


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(where, f"must be true or false, got {_type(value)}")
    return value


def _timeout(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError("timeout_seconds", f"must be a positive number, got {value!r}")
    return float(value)


def _retry_seconds(value: Any) -> float:
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or not 0 <= value <= MAX_RETRY_SECONDS):
        raise ConfigError("retry_seconds", f"must be a number from 0 to {MAX_RETRY_SECONDS:g}, got {value!r}")
    return float(value)


def _retry_aadsts(value: Any) -> tuple[int, ...]:
    known = ", ".join(str(code) for code in TRANSIENT_AADSTS)
    if not isinstance(value, list) or any(type(v) is not int or v not in TRANSIENT_AADSTS for v in value):
        raise ConfigError("retry_aadsts", f"must be a list of these transient AADSTS codes: {known}; got {value!r}")
    return tuple(dict.fromkeys(value))


def _scope(value: Any, where: str) -> str:
    scope = _required_str(value, where)
    if any(ch.isspace() for ch in scope):
        raise ConfigError(where, "must be a single scope (no whitespace)")
    if "@" in scope.split("/.default", 1)[0]:
        raise ConfigError(where, "must not contain a user name or password (user:password@host)")
    return scope


def _url(value: str, where: str) -> None:
    """An https URL whose host every client reads alike: the probe sends a bearer token there. Never echoed
    whole: a query may be a SAS token and the part before an "@" a password."""
    try:
        parse_https_url(value)
    except UrlProblem as exc:
        if str(exc) == "must be an absolute https URL" and "@" not in value:
            shown = value.split("?", 1)[0].split("#", 1)[0]
            raise ConfigError(where, f"{exc}, got {shown!r}") from None
        raise ConfigError(where, str(exc)) from None


def resolve_trust(config: ProbeConfig, environ: Mapping[str, str]) -> TlsTrust:
    """ca_file, else REQUESTS_CA_BUNDLE, else SSL_CERT_FILE, else the system default."""
    if config.ca_file:
        return _existing(TlsTrust("ca_file", config.ca_file), "ca_file")
    for name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        path = environ.get(name)
        if path:
            return _existing(TlsTrust(name, path), name)
    return TlsTrust("system", None)


def _existing(trust: TlsTrust, where: str) -> TlsTrust:
    assert trust.path is not None
    if not os.path.exists(trust.path):
        raise ConfigError(where, f"CA file {trust.path} does not exist")
    return trust


def ssl_context(trust: TlsTrust) -> ssl.SSLContext:
    """A verifying TLS context for the trust source; a bad CA file is a ConfigError."""
    try:
        if trust.path is None:
            return ssl.create_default_context()
        if os.path.isdir(trust.path):
            return ssl.create_default_context(capath=trust.path)
        return ssl.create_default_context(cafile=trust.path)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(trust.source, f"cannot load CA certificates from {trust.path}: {exc}") from None
