"""What a value read from a cluster or a config must look like before it is used: one validator per kind.

Every pattern is matched whole (``fullmatch``): ``$`` alone would accept a trailing newline, and a newline in a
value that reaches a printed command or a file name is how injection starts.
"""

from __future__ import annotations

import re

GUID_PATTERN = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_GUID_RE = re.compile(GUID_PATTERN)
_DNS_LABEL_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Key Vault object names: 1-127 characters, letters, digits and dashes (learn.microsoft.com, "Key Vault naming").
_KEYVAULT_OBJECT_RE = re.compile(r"[0-9A-Za-z-]{1,127}")
# Key Vault names: 3-24 characters, start with a letter, end with a letter or digit, no consecutive dashes.
_KEYVAULT_NAME_RE = re.compile(r"(?!.*--)[A-Za-z][0-9A-Za-z-]{1,22}[0-9A-Za-z]")
# Storage accounts: 3-24 lower-case letters and digits; containers: 3-63, lower-case letters, digits, single '-',
# starting and ending with a letter or digit ($root and $web are the two special names).
_STORAGE_ACCOUNT_RE = re.compile(r"[a-z0-9]{3,24}")
_STORAGE_CONTAINER_RE = re.compile(r"(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]|\$root|\$web")
_RESOURCE_GROUP_RE = re.compile(r"[-\w._()]{0,89}[-\w_()]", re.UNICODE)
_AZURE_RESOURCE_NAME_RE = re.compile(r"[A-Za-z0-9][-A-Za-z0-9_.]{0,127}")

# The distribution reference grammar (github.com/distribution/reference, regexp.go): name [":" tag] ["@" digest].
_ALPHANUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALPHANUM}(?:{_SEPARATOR}{_ALPHANUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_HOST = rf"(?:{_DOMAIN_NAME}|{_IPV6})"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_IMAGE_REFERENCE_RE = re.compile(rf"({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?", re.ASCII)
_MAX_IMAGE_NAME = 255

DEFAULT_SHOWN = 200
TRUNCATION_MARKER = "…[truncated]"


def is_guid(value: object) -> bool:
    return isinstance(value, str) and _GUID_RE.fullmatch(value) is not None


def is_dns_label(value: object) -> bool:
    return isinstance(value, str) and len(value) <= 63 and _DNS_LABEL_RE.fullmatch(value) is not None


def is_dns_subdomain(value: object) -> bool:
    return isinstance(value, str) and len(value) <= 253 and _DNS_SUBDOMAIN_RE.fullmatch(value) is not None


def is_namespace(value: object) -> bool:
    return is_dns_label(value)


def is_object_name(value: object) -> bool:
    """A ServiceAccount, pod, deployment, ConfigMap or node name (DNS-1123 subdomain)."""
    return is_dns_subdomain(value)


def is_env_name(value: object) -> bool:
    return isinstance(value, str) and _ENV_NAME_RE.fullmatch(value) is not None


def is_keyvault_object_name(value: object) -> bool:
    return isinstance(value, str) and _KEYVAULT_OBJECT_RE.fullmatch(value) is not None


def is_keyvault_name(value: object) -> bool:
    return isinstance(value, str) and _KEYVAULT_NAME_RE.fullmatch(value) is not None


def is_storage_account_name(value: object) -> bool:
    return isinstance(value, str) and _STORAGE_ACCOUNT_RE.fullmatch(value) is not None


def is_storage_container_name(value: object) -> bool:
    return isinstance(value, str) and _STORAGE_CONTAINER_RE.fullmatch(value) is not None


def is_resource_group_name(value: object) -> bool:
    return isinstance(value, str) and _RESOURCE_GROUP_RE.fullmatch(value) is not None


def is_azure_resource_name(value: object) -> bool:
    """A managed identity, cluster or credential name as ARM accepts them (letters, digits, '-', '_', '.')."""
    return isinstance(value, str) and _AZURE_RESOURCE_NAME_RE.fullmatch(value) is not None


def is_image_reference(value: object) -> bool:
    """A container image reference by the distribution grammar (``registry/path:tag@digest``)."""
    if not isinstance(value, str):
        return False
    match = _IMAGE_REFERENCE_RE.fullmatch(value)
    return match is not None and len(match.group(1)) <= _MAX_IMAGE_NAME


def image_reference_problem(value: str) -> str | None:
    """Why ``value`` is not an image reference (None when it is one)."""
    if is_image_reference(value):
        return None
    if not value:
        return "must not be empty"
    if any(ch.isspace() or ord(ch) < 32 for ch in value):
        return "must not contain whitespace or control characters"
    if is_image_reference(value.lower()):
        return "repository names must be lower-case"
    return "is not an image reference (registry/repository[:tag][@sha256:digest])"


def shorten(value: str, limit: int = DEFAULT_SHOWN) -> str:
    """``value`` cut to ``limit`` characters with a marker, so a 5 MB annotation is never echoed whole."""
    if len(value) <= limit:
        return value
    return value[:limit] + TRUNCATION_MARKER + f" ({len(value)} characters)"


def printable(value: str, limit: int = DEFAULT_SHOWN) -> str:
    """``value`` on one line (control characters shown escaped) and shortened: safe to put in a message."""
    escaped = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in value[:limit])
    if len(value) > limit:
        return escaped + TRUNCATION_MARKER + f" ({len(value)} characters)"
    return escaped


# What the API server requires of the names in a NAMESPACE/NAME reference (--workload, --pod, workloads:).
NAMESPACE_RULE = "must be a DNS-1123 label (lower-case letters, digits and '-', at most 63 characters)"
OBJECT_NAME_RULE = (
    "must be a DNS-1123 subdomain (lower-case letters, digits, '-' and '.' between them, at most 253 characters)"
)


def namespace_problem(value: str) -> str | None:
    return None if is_namespace(value) else NAMESPACE_RULE


def object_name_problem(value: str) -> str | None:
    return None if is_object_name(value) else OBJECT_NAME_RULE


def split_reference(value: str) -> tuple[str, str]:
    """``NAMESPACE/NAME`` -> (namespace, name), each valid as the API server (and harness.yaml's workloads:)
    validates it: the one check behind --workload, --pod and the config, so what one accepts the other does.
    ValueError says what is wrong, without echoing the value."""
    if any(not ch.isprintable() or ch.isspace() for ch in value):
        raise ValueError("contains whitespace or a control character")
    namespace, slash, name = value.partition("/")
    if not slash or not namespace or not name or "/" in name:
        raise ValueError("expected NAMESPACE/NAME (lower-case DNS names), e.g. finance/backend-sa")
    if not is_namespace(namespace):
        raise ValueError(f"the namespace {NAMESPACE_RULE}")
    if not is_object_name(name):
        raise ValueError(f"the name {OBJECT_NAME_RULE}")
    return namespace, name
