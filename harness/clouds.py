"""The Azure clouds a harness config may name, the endpoints each one implies, and the hosts of its data
services (Key Vault, Blob Storage) that may receive the workload's token.

A host pattern is either an exact host (``127.0.0.1``) or a ``.suffix`` (``.vault.azure.net``: any host with at
least one label before the suffix), optionally followed by ``:PORT`` or ``:*``. Without a port a pattern
matches only 443, the https default, so ``kv.vault.azure.net:8443`` is not a Key Vault host.

Sources: azure-cli ``cloud.py`` (``keyvault_dns``, ``mhsm_dns`` and ``storage_endpoint`` suffixes per cloud);
the Key Vault resource per cloud is the suffix's domain (``https://vault.azure.cn``), as the vault's own
challenge names it; azure-storage-blob's ``STORAGE_OAUTH_SCOPE`` is ``https://storage.azure.com/.default`` in
every cloud.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from dataclasses import dataclass, field

STORAGE_RESOURCE = "https://storage.azure.com"
HTTPS_PORT = 443
ANY_PORT = "*"
_LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_PORT_RE = re.compile(r"^[0-9]{1,5}$")


# ---------------------------------------------------------------- URLs


class UrlProblem(ValueError):
    """Why a URL may not receive a token; the message never repeats a user name or password."""


@dataclass(frozen=True)
class HttpsTarget:
    """The parts of a strictly parsed https URL that decide where a request goes."""

    host: str  # lower-cased; an IPv6 address keeps its brackets
    port: int
    path: str

    @property
    def authority(self) -> str:
        return self.host if self.port == HTTPS_PORT else f"{self.host}:{self.port}"


def parse_https_url(url: str) -> HttpsTarget:
    """Parse ``url`` as an https URL whose host every HTTP client reads the same way, or raise UrlProblem.

    Refused: another scheme, a user name or password, backslashes, whitespace or control characters,
    percent-escapes or non-ASCII (IDN) in the host, empty labels, a trailing dot, a bad port, a query
    string or fragment (a SAS token is a secret).
    """
    if not url.lower().startswith("https://"):
        raise UrlProblem("must be an https:// URL")
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise UrlProblem("must not contain whitespace or control characters")
    if "\\" in url:
        raise UrlProblem("must not contain a backslash")
    if "?" in url or "#" in url:
        raise UrlProblem("must be a plain https:// URL, without a query string or fragment")
    rest = url[len("https://"):]
    authority, _, path = rest.partition("/")
    if "@" in authority:
        raise UrlProblem("must not contain a user name or password (user:password@host)")
    host, port = _split_authority(authority)
    return HttpsTarget(host, port, "/" + path)


def _split_authority(authority: str) -> tuple[str, int]:
    if not authority:
        raise UrlProblem("must name a host")
    if not authority.isascii():
        raise UrlProblem("host must be ASCII (write an internationalised name in its xn-- form)")
    if "%" in authority:
        raise UrlProblem("host must not contain percent-escapes")
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise UrlProblem("has an unclosed [IPv6] host")
        host, port_text = authority[: end + 1], authority[end + 1:]
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise UrlProblem(f"host {host} is not an IPv6 address") from None
        if port_text and not port_text.startswith(":"):
            raise UrlProblem("has characters after the [IPv6] host")
        port_text = port_text[1:] if port_text else ""
    else:
        host, colon, port_text = authority.partition(":")
        if colon and not port_text:
            raise UrlProblem("has an empty port")
        host = _hostname(host)
    return host.lower(), _port(port_text)


def _hostname(host: str) -> str:
    host = host.lower()
    if host.endswith("."):
        raise UrlProblem(f"host {host} must not end with a dot")
    labels = host.split(".")
    if not all(_LABEL_RE.fullmatch(label) for label in labels) or len(host) > 253:
        raise UrlProblem(f"host {host} is not a valid host name (letters, digits, '-' and '.')")
    return host


def _port(text: str) -> int:
    if not text:
        return HTTPS_PORT
    if not _PORT_RE.fullmatch(text) or not 0 < int(text) < 65536:
        raise UrlProblem("has an invalid port")
    return int(text)


# ---------------------------------------------------------------- host patterns


@dataclass(frozen=True)
class HostPattern:
    """``.vault.azure.net`` (a suffix), ``127.0.0.1`` (exact), each optionally ``:PORT`` or ``:*``."""

    host: str  # a suffix starts with "."
    port: int | None  # None: any port

    @classmethod
    def parse(cls, text: str) -> HostPattern:
        value = text.strip().lower()
        if not value or not value.isascii() or any(ch in value for ch in "/@\\%?# "):
            raise UrlProblem(f"host pattern {text!r} must be a host or a .suffix, optionally :PORT or :*")
        suffix = value.startswith(".")
        body = value[1:] if suffix else value
        any_port = body.endswith(":" + ANY_PORT)
        target = parse_https_url("https://" + (body[: -len(ANY_PORT) - 1] if any_port else body))
        host, port = target.host, None if any_port else target.port
        if suffix and "." not in host:
            raise UrlProblem(f"host pattern {text!r}: a suffix needs at least two labels (.vault.azure.net)")
        return cls(("." if suffix else "") + host, port)

    def matches(self, target: HttpsTarget) -> bool:
        if self.port is not None and target.port != self.port:
            return False
        if self.host.startswith("."):
            return target.host.endswith(self.host) and len(target.host) > len(self.host)
        return target.host == self.host

    @property
    def text(self) -> str:
        """The pattern as harness.yaml and the probe's config write it (``.vault.azure.net``, ``127.0.0.1:*``)."""
        return self._with_port(self.host)

    def __str__(self) -> str:
        """For people: ``*.vault.azure.net``."""
        return self._with_port("*" + self.host if self.host.startswith(".") else self.host)

    def _with_port(self, host: str) -> str:
        if self.port is None:
            return f"{host}:{ANY_PORT}"
        return host if self.port == HTTPS_PORT else f"{host}:{self.port}"


@dataclass(frozen=True)
class ResourceHosts:
    """The hosts of one data service and the resource (token audience) they all imply."""

    patterns: tuple[HostPattern, ...]
    resource: str  # "https://vault.azure.net": the token scope is this + "/.default"

    @property
    def scope(self) -> str:
        return self.resource.rstrip("/") + "/.default"

    def matches(self, target: HttpsTarget) -> bool:
        return any(pattern.matches(target) for pattern in self.patterns)


def hosts(resource: str, *patterns: str) -> ResourceHosts:
    return ResourceHosts(tuple(HostPattern.parse(p) for p in patterns), resource)


def service_for(services: tuple[ResourceHosts, ...], target: HttpsTarget) -> ResourceHosts | None:
    return next((service for service in services if service.matches(target)), None)


def expected_hosts(services: tuple[ResourceHosts, ...]) -> str:
    """``*.vault.azure.net or *.managedhsm.azure.net``."""
    return " or ".join(str(p) for service in services for p in service.patterns) or "none declared"


def resource_domain(resource: str) -> str:
    """The host[:port] of a resource or scope URL, lower-cased, without the default :443."""
    netloc = urllib.parse.urlsplit(resource).netloc.lower()
    return netloc.removesuffix(f":{HTTPS_PORT}")


# ---------------------------------------------------------------- clouds


@dataclass(frozen=True)
class CloudEndpoints:
    name: str
    authority_host: str  # with the trailing slash the webhook injects
    resource_manager: str  # ARM base URL, trailing slash
    resource_manager_audience: str  # the audience ARM accepts; the token scope is this + ".default"
    keyvault: tuple[ResourceHosts, ...] = field(default=())
    storage: tuple[ResourceHosts, ...] = field(default=())
    # Microsoft Graph's base URL, which is also its resource (az: endpoint_microsoft_graph_resource_id);
    # "" when a custom cloud names none: the harness then cannot look identities up as applications.
    microsoft_graph: str = ""

    @property
    def arm_scope(self) -> str:
        return self.resource_manager_audience.rstrip("/") + "/.default"

    @property
    def graph_scope(self) -> str:
        return self.microsoft_graph.rstrip("/") + "/.default"

    @property
    def known(self) -> bool:
        return self.name in KNOWN_CLOUDS


KNOWN_CLOUDS: dict[str, CloudEndpoints] = {
    cloud.name: cloud
    for cloud in (
        CloudEndpoints(
            "AzureCloud",
            "https://login.microsoftonline.com/",
            "https://management.azure.com/",
            "https://management.azure.com/",
            keyvault=(
                hosts("https://vault.azure.net", ".vault.azure.net"),
                hosts("https://managedhsm.azure.net", ".managedhsm.azure.net"),
            ),
            storage=(hosts(STORAGE_RESOURCE, ".blob.core.windows.net"),),
            microsoft_graph="https://graph.microsoft.com/",
        ),
        CloudEndpoints(
            "AzureChinaCloud",
            "https://login.chinacloudapi.cn/",
            "https://management.chinacloudapi.cn/",
            "https://management.chinacloudapi.cn/",
            keyvault=(
                hosts("https://vault.azure.cn", ".vault.azure.cn"),
                hosts("https://managedhsm.azure.cn", ".managedhsm.azure.cn"),
            ),
            storage=(hosts(STORAGE_RESOURCE, ".blob.core.chinacloudapi.cn"),),
            microsoft_graph="https://microsoftgraph.chinacloudapi.cn/",
        ),
        CloudEndpoints(
            "AzureUSGovernment",
            "https://login.microsoftonline.us/",
            "https://management.usgovcloudapi.net/",
            "https://management.usgovcloudapi.net/",
            keyvault=(
                hosts("https://vault.usgovcloudapi.net", ".vault.usgovcloudapi.net"),
                hosts("https://managedhsm.usgovcloudapi.net", ".managedhsm.usgovcloudapi.net"),
            ),
            storage=(hosts(STORAGE_RESOURCE, ".blob.core.usgovcloudapi.net"),),
            microsoft_graph="https://graph.microsoft.us/",
        ),
    )
}
DEFAULT_ARM_AUDIENCE = "https://management.azure.com/"
