"""Fault injection shared by every lab service: latency and transient 429/503 answers (and the kube API
server's watches expiring or dropped).

Each service installs :func:`fault_middleware` with its own name and a function that renders its
throttling/unavailable body the way the real service does. ``python -m lab ctl fault`` changes
the settings of a running lab.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field

from aiohttp import web

SERVICES = ("kube", "issuer", "entra", "arm", "graph", "keyvault", "storage")

ErrorRenderer = Callable[[int, int], web.Response]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


@dataclass
class ServiceFaults:
    latency_ms: int = 0
    rate_429: float = 0.0
    rate_503: float = 0.0
    retry_after_seconds: int = 1

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class WatchFaults:
    """The kube API server's watches ending before their time, as real ones do: ``expire`` watches that resume from a
    resourceVersion get one ERROR event carrying a 410 Expired Status and the stream's end (the watch cache has moved
    past that version); ``drop`` watch streams are cut after their initial events (the connection closed without the
    chunked body's end: a load balancer's idle timeout, an API server restarting). Each is a count of the next
    watches it takes, so a rehearsal or a test knows how many."""

    expire: int = 0
    drop: int = 0

    def take(self, kind: str) -> bool:
        left = getattr(self, kind)
        if left <= 0:
            return False
        setattr(self, kind, left - 1)
        return True


@dataclass
class Faults:
    services: dict[str, ServiceFaults] = field(default_factory=lambda: {name: ServiceFaults() for name in SERVICES})
    # The cluster issuer as Entra sees it: unreachable means Entra's discovery fetch fails (AADSTS50166/90061).
    issuer_unreachable: bool = False
    # Services whose connections lab pods cannot open (egress blocked): e.g. {"entra", "keyvault"}.
    egress_blocked: set[str] = field(default_factory=set)
    watch: WatchFaults = field(default_factory=WatchFaults)
    rng: random.Random = field(default_factory=random.Random)

    def snapshot(self) -> dict:
        return {
            "services": {name: f.as_dict() for name, f in self.services.items()},
            "issuer_unreachable": self.issuer_unreachable,
            "egress_blocked": sorted(self.egress_blocked),
            "watch": asdict(self.watch),
        }


def default_error(status: int, retry_after: int) -> web.Response:
    headers = {"Retry-After": str(retry_after)} if status == 429 else {}
    text = "Too Many Requests" if status == 429 else "Service Unavailable"
    return web.json_response({"error": {"code": text.replace(" ", ""), "message": text}}, status=status, headers=headers)


def fault_middleware(faults: Faults, service: str, render: ErrorRenderer = default_error) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        settings = faults.services[service]
        if settings.latency_ms:
            await asyncio.sleep(settings.latency_ms / 1000)
        roll = faults.rng.random()
        if roll < settings.rate_429:
            return render(429, settings.retry_after_seconds)
        if roll < settings.rate_429 + settings.rate_503:
            return render(503, settings.retry_after_seconds)
        return await handler(request)

    return middleware
