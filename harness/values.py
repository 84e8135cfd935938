"""What a value read from a cluster or a config must look like before it is used: one validator per kind.

Every pattern is matched whole (``fullmatch``): ``$`` alone would accept a trailing newline, and a newline in a
value that reaches a printed command or a file name is how injection starts.
"""

from __future__ import annotations

import re
import urllib.parse
from decimal import Decimal

GUID_PATTERN = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_GUID_RE = re.compile(GUID_PATTERN)
_DNS_LABEL_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Key Vault object names: 1-127 characters, letters, digits and dashes (learn.microsoft.com, "Key Vault naming").
_KEYVAULT_OBJECT_RE = re.compile(r"[0-9A-Za-z-]{1,127}")
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

# Label keys and values, ConfigMap keys, resource quantities: k8s.io/apimachinery/pkg/util/validation
# (IsQualifiedName, IsValidLabelValue, IsConfigMapKey) and pkg/api/resource (Quantity).
_QUALIFIED_NAME_PART_RE = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_VALUE_RE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_CONFIGMAP_KEY_RE = re.compile(r"[-._a-zA-Z0-9]+")
_QUANTITY_RE = re.compile(
    r"\+?(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][-+]?[0-9]+)?"
)
_BINARY_SUFFIXES = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}

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


def counted(number: int, noun: str, plural: str | None = None) -> str:
    """``1 attempt``, ``3 attempts``: a count a person reads, with the noun in its number."""
    return f"{number} {in_number(number, noun, plural)}"


def in_number(number: int, noun: str, plural: str | None = None) -> str:
    """``noun`` for one, its plural (``noun`` + s unless given) for any other number."""
    return noun if number == 1 else plural or noun + "s"


def shorten(value: str, limit: int = DEFAULT_SHOWN) -> str:
    """``value`` cut to ``limit`` characters with a marker, so a 5 MB annotation is never echoed whole."""
    if len(value) <= limit:
        return value
    return value[:limit] + TRUNCATION_MARKER + f" ({len(value)} characters)"


# What a terminal, a pager or a Markdown viewer acts on rather than shows: C0 and C1 control characters (ESC starts
# the sequences that clear a screen, set a title, or write the clipboard: OSC 52), DEL, and the invisible and
# direction-changing format characters (zero-width, line/paragraph separators, bidi embeddings and isolates, BOM).
_CONTROL_RE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
_NEWLINE_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def visible(text: str, newlines: bool = False) -> str:
    """``text`` with each control or invisible format character shown as its escape (``\\x1b``, ``\\u202e``),
    so printing it (a terminal, ``cat signoff.md``, a browser) shows what it holds and runs nothing; newlines kept
    only when ``newlines``."""
    pattern = _CONTROL_RE if newlines else _NEWLINE_CONTROL_RE
    return pattern.sub(lambda m: repr(m.group(0))[1:-1], text)


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


def qualified_name_problem(value: str) -> str | None:
    """Why ``value`` is not a label key (or annotation key): ``[prefix/]name``, the prefix a DNS-1123 subdomain,
    the name at most 63 alphanumerics, '-', '_' or '.' starting and ending alphanumeric. None when it is one."""
    prefix, slash, name = value.rpartition("/")
    if slash and not (prefix and len(prefix) <= 253 and _DNS_SUBDOMAIN_RE.fullmatch(prefix)):
        return "the prefix before '/' must be a DNS-1123 subdomain (lower-case, e.g. example.com)"
    if not name or len(name) > 63 or _QUALIFIED_NAME_PART_RE.fullmatch(name) is None:
        return ("must be [prefix/]name: a name of at most 63 letters, digits, '-', '_' or '.', "
                "starting and ending with a letter or digit")
    return None


def label_value_problem(value: str) -> str | None:
    if len(value) > 63 or _LABEL_VALUE_RE.fullmatch(value) is None:
        return ("must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit "
                "(or empty)")
    return None


def is_configmap_key(value: object) -> bool:
    return (isinstance(value, str) and len(value) <= 253 and value not in (".", "..")
            and _CONFIGMAP_KEY_RE.fullmatch(value) is not None)


def parse_quantity(value: str) -> Decimal | None:
    """A Kubernetes resource quantity (``200m``, ``128Mi``, ``1.5``, ``1e3``) as a number, or None when the
    API server would refuse it. Negative quantities are refused: no resource request or limit may be one."""
    match = _QUANTITY_RE.fullmatch(value)
    if match is None:
        return None
    number, suffix = Decimal(match.group("number")), match.group("suffix") or ""
    if suffix in _BINARY_SUFFIXES:
        return number * (1024 ** _BINARY_SUFFIXES[suffix])
    if suffix in _DECIMAL_SUFFIXES:
        return number.scaleb(_DECIMAL_SUFFIXES[suffix])
    return number.scaleb(int(suffix[1:]))


def endpoint_key(url: str) -> str:
    """One spelling per service endpoint (a vault's or account's URL): lower-case scheme and host, no trailing
    slash."""
    parts = urllib.parse.urlsplit(url.strip())
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path.rstrip('/')}"
