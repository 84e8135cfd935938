"""The last line of every lab service: an unexpected exception (a lab bug) becomes the real service's own
"internal error" answer, never aiohttp's plain-text 500, and its traceback goes to the lab's log only."""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web

from lab.faults import Handler, Middleware

Renderer = Callable[[web.Request], web.Response]

log = logging.getLogger("lab")


def unexpected_error_middleware(
    service: str, render: Renderer, expected: tuple[type[Exception], ...] = ()
) -> Middleware:
    """``expected``: the service's own error exceptions, which an outer middleware renders."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except (web.HTTPException, *expected):
            raise
        except Exception:
            log.exception("%s: %s %s failed", service, request.method, request.path)
            return render(request)

    return middleware
