"""A lab service hard down: its listening sockets closed, so every new connection to it is refused (the kernel
answers a SYN to a closed port with a reset) from this machine and from lab pods alike; back up on the same
ports. Connections already open are left to finish, as a crashed front end's in-flight ones would not be, but
an outage set before a run starts is what a run sees.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from lab.runtime import Lab

SERVICES = ("kube", "issuer", "entra", "arm", "graph", "keyvault", "storage")


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
