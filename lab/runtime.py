"""One running lab: binds every service on free loopback ports, applies a scenario, writes the state dir.

Services (each its own HTTPS port, so faults and outages can hit one alone):
    kube      the Kubernetes API server
    issuer    the cluster's OIDC issuer (discovery document + JWKS)
    entra     Entra ID (login.microsoftonline.com)
    arm       Azure Resource Manager (management.azure.com), with Resource Graph
    graph     Microsoft Graph v1.0 (graph.microsoft.com): applications, federated credentials, service principals
    keyvault  Key Vault data plane; each vault has its own port (https://127.0.0.1:PORT/), the way each
              real vault has its own host name, so secret ids are real, routable URLs
    storage   Blob storage; one base URL per account: https://127.0.0.1:PORT/<account-name>
    control   the lab's own control API behind ``python -m lab ctl`` (bearer token in lab.json)
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import shutil
import socket
import tempfile
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from aiohttp import web

from lab import egress, httplog, tasks
from lab.azure.world import AzureWorld
from lab.clock import Clock
from lab.egress import PodManifests
from lab.faults import Faults
from lab.keys import KeySet
from lab.kube.cluster import KubeCluster
from lab.kube.webhook import WebhookSettings
from lab.tls import LabTls

log = logging.getLogger("lab")

SERVICE_NAMES = ("kube", "issuer", "entra", "arm", "graph", "keyvault", "storage", "control")
REGION = "eastus"
# A connection must deliver a complete request head within this many seconds of opening (or of its previous
# answer), else it is closed without an answer: the API server's ReadHeaderTimeout (32 s, apiserver
# secure_serving.go), applied through aiohttp's own knob, keepalive_timeout, which also closes idle keep-alive
# connections after that long (the API server's IdleTimeout is 90 s; clients reconnect). The Azure services'
# bounds are not published: unverified, the same value.
HEADER_TIMEOUT_SECONDS = 32.0


def _bind_loopback() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock



UNIX_PATH_MAX = 107  # sun_path is 108 bytes with its NUL
SOCKET_NAME = "65535.sock"  # the longest name a port's socket gets


def short_socket_dir() -> Path:
    """A new directory for the lab's unix sockets: under TMPDIR when a socket path there fits in sun_path, else under
    /tmp (a deep TMPDIR, as pytest's tmp_path or macOS's /var/folders give, made the lab fail to start with
    "AF_UNIX path too long")."""
    directory = Path(tempfile.mkdtemp(prefix="wi-lab-net-"))
    if len(str(directory / SOCKET_NAME).encode()) <= UNIX_PATH_MAX:
        return directory
    directory.rmdir()
    return Path(tempfile.mkdtemp(prefix="wi-lab-net-", dir="/tmp"))

class Lab:
    """A whole emulated environment. ``await start()`` inside an event loop; see :class:`LabThread`."""

    def __init__(
        self,
        state_dir: Path,
        scenario: str = "healthy",
        webhook_layout: str | None = None,
        tenant_id: str | None = None,
        header_timeout_seconds: float = HEADER_TIMEOUT_SECONDS,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.header_timeout_seconds = header_timeout_seconds
        self.scenario = scenario
        self.tenant_id = tenant_id or str(uuid.uuid4())
        self.subscription_id = str(uuid.uuid4())
        self.cluster_guid = str(uuid.uuid4())
        self.region = REGION
        self.webhook_layout = webhook_layout
        self.tls = LabTls()
        self.faults = Faults()
        self.entra_clock = Clock()
        self.entra_keys = KeySet()  # signs Entra-issued access tokens
        self.control_token = secrets.token_urlsafe(24)
        self.endpoints: dict[str, str] = {}
        self.credentials: dict[str, Any] = {}  # what scenarios publish in lab.json (client ids, secrets)
        self.extra: dict[str, Any] = {}  # scenario facts for lab.json (namespaces, workloads, vault urls)
        self._sockets: dict[str, socket.socket] = {}
        self.vault_sockets: dict[str, socket.socket] = {}  # lower(vault name) -> its listening socket
        self.vault_by_port: dict[int, str] = {}
        self._keyvault_runner: web.AppRunner | None = None
        # Pods live in network namespaces of their own and reach lab services through unix sockets here
        # (see lab.kube.podsandbox); a short path, since unix socket paths are limited to 107 bytes.
        self.net_dir = short_socket_dir()
        self._net_ports: dict[int, str] = {}  # port -> service, for the pods' relay manifest
        self.pod_manifests: PodManifests | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runners: list[web.AppRunner] = []
        self._background: list[Callable[[], Any]] = []  # stop callbacks
        self.kube: KubeCluster
        self.azure: AzureWorld

    # ------------------------------------------------------------------ addresses
    @property
    def issuer_url(self) -> str:
        """AKS-shaped issuer: https://<host>/<region>/<tenant-id>/<cluster-guid>/ (trailing slash included)."""
        return f"{self.endpoints['issuer']}/{self.region}/{self.tenant_id}/{self.cluster_guid}/"

    @property
    def authority_host(self) -> str:
        """AZURE_AUTHORITY_HOST for this lab, with the trailing slash the webhook injects."""
        return self.endpoints["entra"] + "/"

    def vault_url(self, vault_name: str) -> str:
        """The vault's own base URL (its vaultUri). Opens the vault's port on first use.

        The socket listens from the moment it is bound, so a client that connects before the server
        accepts on it just waits in the backlog: no race with vaults created at run time.
        """
        key = vault_name.lower()
        if key not in self.vault_sockets:
            sock = _bind_loopback()
            self.vault_sockets[key] = sock
            self.vault_by_port[sock.getsockname()[1]] = key
            if self._keyvault_runner is not None and self._loop is not None:
                self._loop.call_soon_threadsafe(self._serve_vault, sock)
        return f"https://127.0.0.1:{self.vault_sockets[key].getsockname()[1]}/"

    def _serve_vault(self, sock: socket.socket) -> None:
        assert self._keyvault_runner is not None
        tasks.spawn(self._serve(self._keyvault_runner, "keyvault", sock), name=f"serve vault port {sock.getsockname()[1]}")

    async def _serve(self, runner: web.AppRunner, service: str, sock: socket.socket) -> None:
        """Serve ``runner`` on a loopback socket and on the unix socket lab pods reach that port through."""
        context = self.tls.server_context()
        await web.SockSite(runner, sock, ssl_context=context).start()
        if service == "control":
            return
        port = sock.getsockname()[1]
        await web.UnixSite(runner, str(self.net_dir / f"{port}.sock"), ssl_context=context).start()
        self._net_ports[port] = service
        self.write_network_manifest()

    @property
    def network_manifest(self) -> Path:
        return self.net_dir / "ports.json"

    def write_network_manifest(self) -> None:
        """Every lab port and its unix socket; each pod's relay reads its own copy (``lab.egress``)."""
        manifest = {
            "ports": {str(port): {"service": service, "socket": str(self.net_dir / f"{port}.sock")}
                      for port, service in sorted(self._net_ports.items())},
        }
        if self.pod_manifests is not None:
            self.pod_manifests.refresh()
        temporary = self.net_dir / "ports.json.tmp"
        temporary.write_text(json.dumps(manifest))
        os.replace(temporary, self.network_manifest)

    def blob_url(self, account_name: str) -> str:
        return f"{self.endpoints['storage']}/{account_name}/"

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        from lab import scenarios  # the scenario module builds on every service's model

        self.state_dir.mkdir(parents=True, exist_ok=True)
        for name in SERVICE_NAMES:
            sock = _bind_loopback()
            self._sockets[name] = sock
            self.endpoints[name] = f"https://127.0.0.1:{sock.getsockname()[1]}"

        webhook = WebhookSettings(
            tenant_id=self.tenant_id, authority_host=self.authority_host,
            **({"layout": self.webhook_layout} if self.webhook_layout else {}),
        )
        self.kube = KubeCluster(name="z-dev-kubernetes-01-aks-SGmrd5", issuer_url=self.issuer_url, webhook=webhook)
        self.azure = AzureWorld(tenant_id=self.tenant_id, subscription_id=self.subscription_id)
        self.pod_manifests = PodManifests(self)
        scenarios.apply(self, self.scenario)

        self._loop = asyncio.get_running_loop()
        for vault_name in self.azure.vaults:
            self.vault_url(vault_name)
        for name, app in self._build_apps().items():
            runner = web.AppRunner(app, handle_signals=False, logger=httplog.server_logger(),
                                   access_log=logging.getLogger(f"lab.access.{name}"),
                                   access_log_class=httplog.RequestLogger,
                                   keepalive_timeout=self.header_timeout_seconds)
            await runner.setup()
            sockets = [self._sockets[name]]
            if name == "keyvault":
                self._keyvault_runner = runner
                sockets += list(self.vault_sockets.values())
            for sock in sockets:
                await self._serve(runner, name, sock)
            self._runners.append(runner)

        egress.sync_fault_policies(self)
        self._bootstrap_cluster_objects()
        from lab.kube import webhook_pods
        from lab.kube.kubelet import Kubelet

        self.kubelet = Kubelet(self)
        webhook_pods.register(self)
        await self.kubelet.start()
        self._background.append(self.kubelet.stop)
        if not await webhook_pods.settled(self):
            log.warning("the webhook's pods did not become ready at start")
        self.write_state_files()
        log.info("lab up: %s", json.dumps(self.endpoints))

    def _bootstrap_cluster_objects(self) -> None:
        """What an API server and its controller manager put in every cluster: default RBAC, the kubernetes
        Service, Endpoints/EndpointSlices of Services."""
        from lab.kube import endpoints, eviction, rbac_defaults

        store = self.kube.store
        rbac_defaults.bootstrap(store)
        kube = self.endpoints["kube"].rsplit(":", 1)
        endpoints.ensure_kubernetes_service(store, kube[0].removeprefix("https://"), int(kube[1]))
        endpoints.EndpointsController(store)
        eviction.DisruptionController(store)

    def _build_apps(self) -> dict[str, web.Application]:
        from lab import control
        from lab.azure import arm, entra, graph, keyvault, storage
        from lab.kube import apiserver, issuer

        return {
            "kube": apiserver.build_app(self),
            "issuer": issuer.build_app(self),
            "entra": entra.build_app(self),
            "arm": arm.build_app(self),
            "graph": graph.build_app(self),
            "keyvault": keyvault.build_app(self),
            "storage": storage.build_app(self),
            "control": control.build_app(self),
        }

    async def stop(self) -> None:
        for stop in reversed(self._background):
            result = stop()
            if asyncio.iscoroutine(result):
                await result
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        shutil.rmtree(self.net_dir, ignore_errors=True)

    # ------------------------------------------------------------------ state dir
    def write_state_files(self) -> None:
        from lab import statefiles

        statefiles.write_all(self)


class LabThread:
    """Runs a :class:`Lab` on its own event loop in a daemon thread (tests and the embedded ``--lab``)."""

    def __init__(self, state_dir: Path, **kwargs: Any) -> None:
        self.lab = Lab(state_dir, **kwargs)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="lab", daemon=True)

    def start(self, timeout: float = 60) -> Lab:
        self._thread.start()
        self.call(self.lab.start()).result(timeout)
        return self.lab

    def call(self, coro_or_fn: Any) -> Future:
        """Run a coroutine (or a plain function) on the lab's loop; returns a concurrent Future."""
        if asyncio.iscoroutine(coro_or_fn):
            return asyncio.run_coroutine_threadsafe(coro_or_fn, self.loop)

        async def run() -> Any:
            return coro_or_fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop)

    def stop(self, timeout: float = 30) -> None:
        try:
            self.call(self.lab.stop()).result(timeout)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout)


def env_for_clients(lab: Lab) -> dict[str, str]:
    """The variables DIR/env.sh exports, for kubectl, the SDKs and az."""
    ca = str(lab.state_dir / "ca.pem")
    harness_app = lab.credentials.get("harness", {})
    admin_app = lab.credentials.get("admin", {})
    return {
        "KUBECONFIG": str(lab.state_dir / "kubeconfig"),
        "REQUESTS_CA_BUNDLE": ca,
        "SSL_CERT_FILE": ca,
        "AZURE_AUTHORITY_HOST": lab.authority_host,
        "AZURE_TENANT_ID": lab.tenant_id,
        "AZURE_SUBSCRIPTION_ID": lab.subscription_id,
        "AZURE_CLIENT_ID": harness_app.get("client_id", ""),
        "AZURE_CLIENT_SECRET": harness_app.get("client_secret", ""),
        "LAB_ARM_ENDPOINT": lab.endpoints["arm"] + "/",
        "LAB_GRAPH_ENDPOINT": lab.endpoints["graph"] + "/",
        "LAB_ISSUER_URL": lab.issuer_url,
        "LAB_ADMIN_CLIENT_ID": admin_app.get("client_id", ""),
        "LAB_ADMIN_CLIENT_SECRET": admin_app.get("client_secret", ""),
        "LAB_STATE_DIR": str(lab.state_dir),
    }


