"""Where the probe may send a workload's token, and Key Vault's challenge (standard library only).

A token for ``https://vault.azure.net`` opens every vault the identity can read, so the probe sends it only
to a host the harness allowed for the check (default: the Azure clouds' own Key Vault / Blob suffixes), and,
for Key Vault, only after the vault's unauthenticated 401 challenge names the expected resource, as
azure-keyvault-secrets' ChallengeAuthPolicy does with ``verify_challenge_resource=True``.

Host patterns: ``.vault.azure.net`` (any host under the suffix) or an exact host, each optionally ``:PORT`` or
``:*``; without a port a pattern matches 443 only. The harness writes the same syntax (harness/clouds.py).
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from collections import namedtuple

TYPE_CHECKING = False  # typing is not imported when the probe runs (probe/__init__.py)
if TYPE_CHECKING:
    from typing import Any

HTTPS_PORT = 443
ANY_PORT = "*"
_LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_PORT_RE = re.compile(r"^[0-9]{1,5}$")

# The known clouds' suffixes and the resource each implies (azure-cli cloud.py keyvault_dns / mhsm_dns /
# storage_endpoint; Storage's resource is https://storage.azure.com in every cloud).
KEYVAULT_SUFFIXES: dict[str, str] = {
    ".vault.azure.net": "https://vault.azure.net",
    ".managedhsm.azure.net": "https://managedhsm.azure.net",
    ".vault.azure.cn": "https://vault.azure.cn",
    ".managedhsm.azure.cn": "https://managedhsm.azure.cn",
    ".vault.usgovcloudapi.net": "https://vault.usgovcloudapi.net",
    ".managedhsm.usgovcloudapi.net": "https://managedhsm.usgovcloudapi.net",
}
STORAGE_RESOURCE = "https://storage.azure.com"
STORAGE_SUFFIXES: dict[str, str] = {
    ".blob.core.windows.net": STORAGE_RESOURCE,
    ".blob.core.chinacloudapi.cn": STORAGE_RESOURCE,
    ".blob.core.usgovcloudapi.net": STORAGE_RESOURCE,
}
KNOWN_SUFFIXES = {"keyvault_secret": KEYVAULT_SUFFIXES, "blob": STORAGE_SUFFIXES}


class UrlProblem(ValueError):
    """Why a URL may not receive a token; the message never repeats a user name or password."""


class HttpsTarget(namedtuple("HttpsTarget", "host port")):
    """``host`` lower-cased (an IPv6 address keeps its brackets), ``port`` an int."""

    __slots__ = ()

    @property
    def authority(self) -> str:
        return self.host if self.port == HTTPS_PORT else f"{self.host}:{self.port}"


def parse_https_url(url: str) -> HttpsTarget:
    """The host and port of an https URL that every HTTP client reads alike, or UrlProblem.

    Refused: another scheme, user:password@, backslashes, whitespace or control characters, percent-escapes or
    non-ASCII in the host, empty labels, a trailing dot, a bad port, a query or fragment.
    """
    if not url.lower().startswith("https://"):
        raise UrlProblem("must be an absolute https URL")
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise UrlProblem("must not contain whitespace or control characters")
    if "\\" in url:
        raise UrlProblem("must not contain a backslash")
    if "?" in url or "#" in url:
        raise UrlProblem("must not contain a query or fragment")
    authority = url[len("https://"):].split("/", 1)[0]
    if "@" in authority:
        raise UrlProblem("must not contain a user name or password (user:password@host)")
    if not authority:
        raise UrlProblem("must name a host")
    if not authority.isascii():
        raise UrlProblem("host must be ASCII (an internationalised name in its xn-- form)")
    if "%" in authority:
        raise UrlProblem("host must not contain percent-escapes")
    if authority.startswith("["):
        end = authority.find("]")
        host, port_text = authority[: end + 1], authority[end + 1:]
        if end < 0 or (port_text and not port_text.startswith(":")):
            raise UrlProblem("has a malformed [IPv6] host")
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise UrlProblem(f"host {host} is not an IPv6 address") from None
        port_text = port_text[1:]
    else:
        host, colon, port_text = authority.partition(":")
        if colon and not port_text:
            raise UrlProblem("has an empty port")
        host = _hostname(host)
    return HttpsTarget(host.lower(), _port(port_text))


def _hostname(host: str) -> str:
    host = host.lower()
    if host.endswith("."):
        raise UrlProblem(f"host {host} must not end with a dot")
    if len(host) > 253 or not all(_LABEL_RE.match(label) for label in host.split(".")):
        raise UrlProblem(f"host {host} is not a valid host name")
    return host


def _port(text: str) -> int:
    if not text:
        return HTTPS_PORT
    if not _PORT_RE.match(text) or not 0 < int(text) < 65536:
        raise UrlProblem("has an invalid port")
    return int(text)


class HostPattern(namedtuple("HostPattern", "host port")):
    """``host`` (a suffix starts with "."), ``port`` an int or None (any port)."""

    __slots__ = ()

    @classmethod
    def parse(cls, text: str) -> HostPattern:
        value = text.strip().lower()
        if not value or any(ch in value for ch in "/@\\%?# "):
            raise UrlProblem(f"host pattern {text!r} must be a host or a .suffix, optionally :PORT or :*")
        suffix = value.startswith(".")
        body = value[1:] if suffix else value
        any_port = body.endswith(":" + ANY_PORT)
        target = parse_https_url("https://" + (body[: -len(ANY_PORT) - 1] if any_port else body))
        if suffix and "." not in target.host:
            raise UrlProblem(f"host pattern {text!r}: a suffix needs at least two labels")
        return cls(("." if suffix else "") + target.host, None if any_port else target.port)

    def matches(self, target: HttpsTarget) -> bool:
        if self.port is not None and target.port != self.port:
            return False
        if self.host.startswith("."):
            return target.host.endswith(self.host) and len(target.host) > len(self.host)
        return target.host == self.host

    @property
    def text(self) -> str:
        if self.port is None:
            return f"{self.host}:{ANY_PORT}"
        return self.host if self.port == HTTPS_PORT else f"{self.host}:{self.port}"


def default_patterns(kind: str) -> tuple[HostPattern, ...]:
    return tuple(HostPattern.parse(suffix) for suffix in KNOWN_SUFFIXES[kind])


def known_resource(kind: str, target: HttpsTarget) -> str | None:
    """The resource a known cloud's suffix implies for this host (a vault in China: https://vault.azure.cn)."""
    if target.port != HTTPS_PORT:
        return None
    for suffix, resource in KNOWN_SUFFIXES[kind].items():
        if HostPattern(suffix, HTTPS_PORT).matches(target):
            return resource
    return None


# ---------------------------------------------------------------- Key Vault's challenge


class ChallengeError(Exception):
    """No token may be sent: ``kind`` is challenge_missing (no usable challenge) or challenge_mismatch."""

    def __init__(self, kind: str, message: str, evidence: dict[str, Any]) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.evidence = evidence


def parse_bearer_challenge(header: str) -> dict[str, str]:
    """``Bearer authorization="https://login/tenant", resource="https://vault.azure.net"`` -> its parameters.

    As azure-keyvault-secrets' HttpChallenge: the scheme, then comma-separated ``key=value`` pairs with optional
    quotes; ``authorization`` or ``authorization_uri`` is required. Raises ValueError.
    """
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise ValueError("not a Bearer challenge")
    parameters: dict[str, str] = {}
    for item in rest.split(","):
        key, equals, value = item.partition("=")
        key, value = key.strip(' "'), value.strip(' "')
        if equals and key:
            parameters[key] = value
    if "authorization" not in parameters and "authorization_uri" not in parameters:
        raise ValueError("the challenge names no authorization server")
    return parameters


def resource_domain(resource_or_scope: str) -> str:
    """host[:port] of a resource or scope URL, lower-cased, without the default :443."""
    netloc = urllib.parse.urlsplit(resource_or_scope).netloc.lower()
    suffix = f":{HTTPS_PORT}"
    return netloc[: -len(suffix)] if netloc.endswith(suffix) else netloc


def verify_challenge(
    status: int, header: str | None, target: HttpsTarget, expected_resource: str | None
) -> dict[str, Any]:
    """Evidence of a challenge that allows sending the token to ``target``, or ChallengeError.

    The resource (or scope) the vault names must be ``expected_resource`` when the harness configured one (a
    custom cloud: 127.0.0.1 cannot end with ".vault.azure.net"); otherwise the SDK's rule applies: the vault's
    host must end with "." + the resource's domain.
    """
    evidence: dict[str, Any] = {"http_status": status, "expected_resource": expected_resource}
    if status != 401:
        raise ChallengeError(
            "challenge_missing",
            f"the vault answered HTTP {status} to a request without a token instead of a 401 challenge",
            evidence,
        )
    if not header:
        raise ChallengeError("challenge_missing", "the vault's 401 carries no WWW-Authenticate challenge", evidence)
    evidence["www_authenticate"] = header[:500]
    try:
        parameters = parse_bearer_challenge(header)
    except ValueError as exc:
        message = f"the vault's challenge is not usable: {exc}"
        raise ChallengeError("challenge_missing", message, evidence) from None
    named = parameters.get("scope") or (parameters.get("resource", "") + "/.default")
    domain = resource_domain(named)
    authorization = parameters.get("authorization") or parameters.get("authorization_uri") or ""
    evidence.update({"resource": parameters.get("resource"), "scope": parameters.get("scope"),
                     "authorization": authorization, "resource_domain": domain})
    if not domain:
        raise ChallengeError("challenge_missing", "the vault's challenge names no resource or scope", evidence)
    if expected_resource:
        evidence["rule"] = "the resource the harness configured for this host"
        if domain != resource_domain(expected_resource):
            raise ChallengeError(
                "challenge_mismatch",
                f"the challenge names resource {domain}, not {expected_resource}: the token is not sent",
                evidence,
            )
        return evidence
    evidence["rule"] = "the vault's host is under the resource's domain"
    if not _under(target, domain):
        raise ChallengeError(
            "challenge_mismatch",
            f"the challenge resource {domain} does not match the vault's host {target.authority}: "
            "the token is not sent",
            evidence,
        )
    return evidence


def _under(target: HttpsTarget, domain: str) -> bool:
    """The SDK's rule: the request's host[:port] ends with "." + domain, :443 or not."""
    with_port = f"{target.host}:{target.port}"
    return with_port.endswith("." + domain) or target.authority.endswith("." + domain)
