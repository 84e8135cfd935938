"""A lab service hard down: its listening sockets closed, so every new connection to it is refused (the kernel
answers a SYN to a closed port with a reset) from this machine and from lab pods alike; back up on the same
ports.

A service going down stands for its server restarting, and a restarting server ends the connections it has open,
not only its listener: the API server's RunServer (k8s.io/apiserver/pkg/server/secure_serving.go) calls Go's
http.Server.Shutdown on stop, which closes the listeners, then every idle keep-alive connection at once, then each
busy one after its answer, bounded by the server's shutdown timeout; the process then exits, which ends whatever is
left (watches). So a client's pooled connection is closed under it (its next request on it meets a closed
connection: RemoteDisconnected, a reset) and its reconnect is refused. aiohttp's own shutdown (pre_shutdown, then
shutdown with a timeout) is that sequence.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from lab.runtime import Lab

SERVICES = ("kube", "issuer", "entra", "arm", "graph", "keyvault", "storage")
# How long an answer under way when the service goes down is given to finish before its connection is cut. The API
# server waits up to its ShutdownTimeout (60 s) before exiting; the lab's answers take milliseconds, so only a
# long-running request (a watch) ever meets this bound. unverified: the Azure services' bounds are not published.
IN_FLIGHT_GRACE_SECONDS = 1.0


class OutageError(ValueError):
    pass


class _ClosedPort:
    """Stands for a vault's closed listening socket: its address still names the vault (lab.vault_url)."""

    def __init__(self, port: int) -> None:
        self.port = port

    def getsockname(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)


def _ports(lab: Lab, service: str) -> list[int]:
    return sorted(port for port, name in lab._net_ports.items() if name == service)


async def _end_connections(runner: web.AppRunner) -> None:
    """What a restarting server does to its open connections: idle ones closed now, busy ones after their answer
    or the grace, whichever comes first (as aiohttp's AppRunner.cleanup does once its sites are stopped)."""
    server = runner.server
    if server is None:
        return
    server.pre_shutdown()
    await server.shutdown(IN_FLIGHT_GRACE_SECONDS)


async def set_down(lab: Lab, service: str, down: bool) -> dict[str, Any]:
    if service not in SERVICES:
        raise OutageError(f"service: must be one of {', '.join(SERVICES)}")
    outages: dict[str, dict[int, web.AppRunner]] = lab.__dict__.setdefault("outages", {})
    if down and service not in outages:
        closed: dict[int, web.AppRunner] = {}
        for port in _ports(lab, service):
            suffix, path = f":{port}", str(lab.net_dir / f"{port}.sock")
            for runner in lab._runners:
                for site in list(runner.sites):
                    if site.name.endswith(suffix) or site.name.endswith(path):
                        await site.stop()
                        closed[port] = runner
            lab._net_ports.pop(port, None)
            vault = lab.vault_by_port.get(port)
            if vault is not None:
                lab.vault_sockets[vault] = _ClosedPort(port)  # type: ignore[assignment]
        outages[service] = closed
        lab.write_network_manifest()  # pods no longer reach it either
        for runner in dict.fromkeys(closed.values()):  # a runner serves one service alone: its connections are its
            await _end_connections(runner)
    elif not down and service in outages:
        for port, runner in outages.pop(service).items():
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
            sock.listen(128)
            sock.setblocking(False)
            vault = lab.vault_by_port.get(port)
            if vault is not None:
                lab.vault_sockets[vault] = sock
            await lab._serve(runner, service, sock)
    return {"down": sorted(outages)}
