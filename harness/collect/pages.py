"""Paged lists of ARM (``nextLink``) and Microsoft Graph (``@odata.nextLink``) through either seam."""

from __future__ import annotations

import urllib.parse
from typing import Any

from harness.collect.arm_api import ArmGet
from harness.facts import Fetched

MAX_PAGES = 50


def list_all(api: ArmGet, path: str) -> tuple[list[dict[str, Any]], Fetched | None]:
    """Every item of a paged list, or the failed page. A next link is followed only on the host that answered,
    so the bearer token never goes to a host a response names."""
    items: list[dict[str, Any]] = []
    url: str | None = path
    for _ in range(MAX_PAGES):
        if url is None:
            break
        page = api(url)
        if not page.ok or not isinstance(page.body, dict):
            return items, page
        items.extend(item for item in page.body.get("value") or [] if isinstance(item, dict))
        url = same_host_link(page.url, page.body.get("nextLink") or page.body.get("@odata.nextLink"))
    return items, None


def same_host_link(current: str, link: Any) -> str | None:
    if not isinstance(link, str) or not link:
        return None
    here, there = urllib.parse.urlsplit(current), urllib.parse.urlsplit(link)
    if here.netloc and (there.scheme != "https" or there.netloc.lower() != here.netloc.lower()):
        return None
    return link
