"""This cluster's issuer and the issuers that are, or were, its own: pure string rules, no I/O.

Entra compares a federated credential's issuer with the token's ``iss`` exactly (case and trailing slash
included), and AKS issuers end in ``/``. A credential may still name this cluster under another spelling:

- its **twin**: the same URL but for the trailing slash, for case, or for whitespace around it -- it never
  matches a token;
- an **older** issuer of this cluster: AKS clusters once showed ``https://oidc.prod-aks.azure.com/<guid>/``
  where they now show ``https://<region>.oic.prod-aks.azure.com/<tenant>/<guid>/`` (the same cluster GUID;
  reference azure-workload-identity.md §6, from AWI's troubleshooting.md), or an issuer harness.yaml lists
  under ``expect.previous_issuers`` (a cluster rebuilt, a blue/green pair).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

EXACT, TWIN, OLDER = "exact", "twin", "older"
_AKS_REGIONAL = re.compile(
    r"https://[a-z0-9-]+\.oic\.prod-aks\.azure\.com/[0-9a-fA-F-]{36}/(?P<cluster>[0-9a-fA-F-]{36})/?"
)
AKS_LEGACY_BASE = "https://oidc.prod-aks.azure.com/"


def older_issuers(issuer: str, previous: Iterable[str] = ()) -> list[str]:
    """The issuers this cluster had before ``issuer``: the legacy AKS form of its cluster GUID, then
    ``previous`` (configured), without ``issuer`` itself and without repeats."""
    found: list[str] = []
    match = _AKS_REGIONAL.fullmatch(issuer)
    if match:
        found.append(f"{AKS_LEGACY_BASE}{match.group('cluster')}/")
    found += [str(p) for p in previous]
    own = _key(issuer)
    return list(dict.fromkeys(p for p in found if _key(p) != own))


def _key(url: str) -> str:
    # whitespace around it too: an issuer read with `az aks show ... -o tsv` in Git Bash or WSL keeps the CR of
    # az's CRLF line end (Azure/azure-cli#24140, #33385), which the credential then holds (unverified whether
    # Graph and ARM refuse such an issuer; when they keep it, Entra never matches it)
    return url.strip().rstrip("/").lower()


def issuer_relation(candidate: str | None, issuer: str | None, previous: Iterable[str] = ()) -> str | None:
    """How a credential's issuer ``candidate`` relates to this cluster's ``issuer``: EXACT (it matches
    tokens), TWIN (it differs only by the trailing slash or by case), OLDER (an issuer this cluster had, in
    any spelling), else None (another cluster's, or anything else)."""
    if not candidate or not issuer:
        return None
    if candidate == issuer:
        return EXACT
    if _key(candidate) == _key(issuer):
        return TWIN
    if any(_key(candidate) == _key(old) for old in older_issuers(issuer, previous)):
        return OLDER
    return None


def spelling_difference(candidate: str, issuer: str) -> str:
    """Why a TWIN does not match, in words."""
    if candidate != candidate.strip():
        return "it has whitespace around it (a line end copied with the URL?)"
    if candidate.rstrip("/") == issuer.rstrip("/"):
        return "it differs only by the trailing slash"
    return "it differs only by case (Entra compares issuers case-sensitively)"
