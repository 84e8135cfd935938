"""The lab's one node: schedules and runs pods from the store, writing status and Events as the kubelet does.

Lifecycle of a pod (each step a status write through the store, so watchers see MODIFIED events):

1. *Scheduling* (the default-scheduler's part): ``spec.nodeName`` set to the node, ``PodScheduled`` True,
   Event ``Scheduled`` ``Successfully assigned ns/pod to <node>``. A pod bound to another node is left alone
   (Pending forever, as with a node that does not exist). A pod the node does not fit (an untolerated taint,
   cordon, nodeSelector; :mod:`lab.kube.scheduler`) stays Pending with ``PodScheduled`` False/Unschedulable and
   a ``FailedScheduling`` event, and is tried again when the node or the pod changes.
2. *Sandbox*: ``startTime``, ``hostIP``; volumes written under ``<pods dir>/<ns>/<pod>/volumes/`` (a tmpfs
   directory linked from ``<state-dir>/pods``: :mod:`lab.kube.poddirs`)
   (``FailedMount`` events and retries while a ConfigMap/Secret/ServiceAccount is missing); then ``podIP``
   and ``PodReadyToStartContainers``. Both IPs are 127.0.0.1: pods share the host network here.
3. After ``KubeCluster.pod_start_latency_seconds`` (read at run time): init containers one by one, then the
   containers in order, each: image pull (``Pulling``/``Pulled``, or ``ErrImagePull`` -> ``ImagePullBackOff``
   with back-off), ``Created``, ``Started``; exit -> ``terminated`` (Completed/Error); restartPolicy
   Never/OnFailure/Always: the first exit restarted at once, later ones after a ``CrashLoopBackOff`` back-off
   (10 s doubling). Native sidecars (init containers with
   ``restartPolicy: Always``) start and keep running; they are stopped once the main containers finish.
4. ``activeDeadlineSeconds`` (from ``startTime``): everything is killed, phase Failed, reason
   ``DeadlineExceeded``. Deletion: SIGTERM, then SIGKILL after the grace period (capped at
   :attr:`Kubelet.kill_grace_seconds`), the pod directory and logs removed; a graceful delete (the object still
   there with ``deletionTimestamp``) is finished by the kubelet deleting the object, as the real one does.

Images (:mod:`lab.kube.images`): the tag/digest is stripped and the name looked up in
``KubeCluster.runnable_images`` (name -> the image's entrypoint argv) and ``idle_images``, then among the stock
public images the lab knows (Python images run a stdlib-only Python of the host, ``busybox``/``alpine`` the host's
shell). As in Kubernetes, a container ``command`` replaces the entrypoint and CMD (``args`` follow it), while
``args`` alone replace CMD (a lab image has no CMD). An idle image runs no process and stays Running and ready; as
a (non-sidecar) init container it completes at once with exit code 0. Any other image fails to pull with
containerd's NotFound text.

Processes: see :mod:`lab.kube.podsandbox` (a private mount namespace per container; files at the exact
mountPaths; nothing written to the host's ``/var/run``). The environment is exactly the container's
admitted ``env``/``envFrom`` (:mod:`lab.kube.podenv`) over the image defaults (PATH, HOME, LANG, PYTHONPATH
= the repository root so the ``probe`` package imports), ``HOSTNAME`` and the ``kubernetes`` service
variables aimed at the lab API server. Emulation detail: lab pods must trust the lab CA as AKS nodes trust
public CAs, so the pod's view of ``/etc/ssl/certs/ca-certificates.crt`` is the lab CA: the root every lab
service chains to, standing in for the public roots of a node's bundle (the host's public roots sign nothing
a lab pod can reach; parsing them cost every probe ~21 ms of CPU, see docs/performance.md), and
SSL_CERT_FILE / REQUESTS_CA_BUNDLE point at it unless the container sets them; the harness never relies
on these being in a pod spec. Identity: when the lab runs as root, a container's (or pod's)
``securityContext.runAsUser``/``runAsGroup`` and the pod's ``fsGroup``/``supplementalGroups`` are applied
(the process really is that uid); otherwise (user-namespace or fallback mode) it runs as the lab's user.
``runAsNonRoot`` is not enforced: lab images carry no USER to check it against. Readiness/liveness probes,
resource limits and ``readOnlyRootFilesystem`` are not enforced either.

Fallback: when no mount namespace can be made (checked once at start by a trial run), each container gets a
per-container root ``pods/<ns>/<pod>/rootfs/<container>/`` with symlinks at the mountPaths, env values that
name a path under a mountPath are rewritten to it, and the pod gets a Warning Event ``LabSandboxFallback``.

stdout and stderr are appended to ``KubeCluster.pod_logs[(ns, pod, container)]`` as the process writes
them (the current run of the container only, as ``kubectl logs`` shows). A container with ``stdin: true``
keeps its stdin open for ``kubectl attach``; one with ``tty: true`` runs on a terminal whose output is its log.
Ephemeral containers (:mod:`lab.kube.ephemeral`) start when a running pod gains them. Exec, attach and
port-forward: :mod:`lab.kube.podstreams`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import stat
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from lab import tasks
from lab.clock import rfc3339
from lab.kube import ephemeral, errors, podenv, podsandbox, podstreams, scheduler, tokens, volumes
from lab.kube.containerlogs import ContainerLog
from lab.kube.events import EventRecorder
from lab.kube.images import (
    LAB_RUNTIME,
    PYTHON_RUNTIME,
    ImageConfig,
    default_pull_policy,
    emulated_runner,
    go_duration,
    not_found_message,
    parse_image,
    resolve_image,
    stdlib_python,
)
from lab.kube.node import HOST_IP, NODE_NAME, NodeLease, node_object
from lab.kube.poddirs import PodDirs
from lab.kube.resources import core_type
from lab.kube.store import ResourceType, Store

if TYPE_CHECKING:
    from lab.runtime import Lab

log = logging.getLogger("lab.kubelet")

Obj = dict[str, Any]

POD_IP = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parents[2]
POD_CA_PATH = "/etc/ssl/certs/ca-certificates.crt"
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"
# kubetypes.PodConditionByKubelet: the conditions the kubelet writes; any other type on a pod is someone else's
KUBELET_CONDITIONS = ("PodScheduled", "Ready", "Initialized", "ContainersReady", "PodReadyToStartContainers")

class PodGone(Exception):
    """The pod (this uid) is no longer in the store."""


def spawn(coro: Any, name: str | None = None) -> asyncio.Task:
    """A kubelet task: its failure is logged, except the pod having gone, which ends a pod's tasks normally."""
    return tasks.spawn(coro, name=name, expected=(PodGone,))


# ---------------------------------------------------------------- pods: small helpers


def qos_class(spec: Obj) -> str:
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    any_set = False
    guaranteed = True
    for container in containers:
        resources = container.get("resources") or {}
        limits = resources.get("limits") or {}
        requests = {**limits, **(resources.get("requests") or {})}
        if limits or requests:
            any_set = True
        for name in ("cpu", "memory"):
            if name not in limits or str(requests.get(name)) != str(limits.get(name)):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def _signal_group(pid: int, sig: int) -> None:
    """Signal the process group of a container we started (its pid leads its own session)."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def is_path_component(name: Any) -> bool:
    """A name the kubelet may join to a directory: one component, not ``.``/``..``, no NUL."""
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\0" not in name


def subpath_of(mount: Obj, env: dict[str, str]) -> str:
    """subPath, or subPathExpr expanded with the container's environment (ExpandContainerVolumeMounts:
    a reference to a variable that is unset or empty is an error)."""
    if not mount.get("subPathExpr"):
        return mount.get("subPath") or ""
    missing: set[str] = set()

    def lookup(name: str) -> str:
        if not env.get(name):
            missing.add(name)
        return env.get(name, "")

    expanded = podenv.expand(mount["subPathExpr"], lookup)
    if missing:
        raise podenv.ConfigError(f"missing value for {', '.join(sorted(missing))}")
    return expanded


def resolve_subpath(volume_root: Path, sub: str, create: bool, mount: str, container: str) -> str:
    """The host path a subPath mount binds (kubelet makeMounts + the subpather): refuses absolute paths and
    ``..``, creates a missing directory one component at a time without following symlinks (SafeMakeDir), and
    refuses a path whose symlinks lead outside the volume (PrepareSafeSubpath). Raises ConfigError with the
    kubelet's texts (the details it keeps out of user-visible messages go to the lab log)."""
    if sub.startswith("/"):
        raise podenv.ConfigError(f"error SubPath `{sub}` must not be an absolute path")
    if ".." in sub.split("/"):
        raise podenv.ConfigError(f"unable to provision SubPath `{sub}`: must not contain '..'")
    root = os.path.realpath(volume_root)
    candidate = os.path.join(root, sub)
    if create and not os.path.lexists(candidate):
        current = root
        for part in [p for p in sub.split("/") if p not in ("", ".")]:
            current = os.path.join(current, part)
            if os.path.islink(current) or (os.path.lexists(current) and not os.path.isdir(current)):
                log.warning("kubelet: subPath %r of volumeMount %r of container %r: %s is not a directory",
                            sub, mount, container, current)
                raise podenv.ConfigError(
                    f'failed to create subPath directory for volumeMount "{mount}" of container "{container}"')
            if not os.path.lexists(current):
                try:
                    os.mkdir(current, stat.S_IMODE(os.stat(root).st_mode))
                except OSError as exc:
                    log.warning("kubelet: subPath %r of volumeMount %r of container %r: %s", sub, mount, container,
                                exc)
                    raise podenv.ConfigError(f'failed to create subPath directory for volumeMount "{mount}" of '
                                             f'container "{container}"') from None
    real = os.path.realpath(candidate)
    if not podsandbox._under(real, root):
        log.warning("kubelet: subPath %r of volumeMount %r of container %r resolves outside its volume (%s)",
                    sub, mount, container, real)
        raise podenv.ConfigError(f'failed to prepare subPath for volumeMount "{mount}" of container "{container}"')
    return real


# ---------------------------------------------------------------- containers


@dataclass
class ContainerState:
    spec: Obj
    init: bool
    state: Obj
    last_state: Obj = field(default_factory=dict)
    ready: bool = False
    started: bool = False
    restart_count: int = 0
    container_id: str | None = None
    image: str = ""
    image_id: str = ""
    created: bool = False
    idle: bool = False
    done: bool = False  # finished for good (no restart will follow)
    ephemeral: bool = False  # from spec.ephemeralContainers (lab.kube.ephemeral)

    @property
    def name(self) -> str:
        return self.spec.get("name", "")

    @property
    def sidecar(self) -> bool:
        return self.init and self.spec.get("restartPolicy") == "Always"

    @property
    def field_path(self) -> str:
        kind = "ephemeralContainers" if self.ephemeral else "initContainers" if self.init else "containers"
        return f"spec.{kind}{{{self.name}}}"

    def entry(self) -> Obj:
        out: Obj = {"name": self.name, "state": self.state, "lastState": self.last_state, "ready": self.ready,
                    "restartCount": self.restart_count, "image": self.image or self.spec.get("image", ""),
                    "imageID": self.image_id}
        if self.container_id:
            out["containerID"] = self.container_id
        out["started"] = self.started
        if self.created:
            mounts = []
            for mount in self.spec.get("volumeMounts") or []:
                item = {"name": mount.get("name"), "mountPath": mount.get("mountPath")}
                if mount.get("readOnly"):
                    item.update(readOnly=True, recursiveReadOnly="Disabled")
                mounts.append(item)
            if mounts:
                out["volumeMounts"] = mounts
        return out


def _init_complete(cs: ContainerState) -> bool:
    if cs.sidecar:
        return cs.started
    if "running" in cs.state:
        return False
    term = cs.state.get("terminated") or cs.last_state.get("terminated")
    return bool(term) and term.get("exitCode") == 0


@dataclass
class LaunchSpec:
    argv: list[str]
    env: dict[str, str]
    cwd: str
    mounts: list[Obj]
    user: Obj | None
    traverse: list[str]
    # host directories that make up the emulated image (the interpreter's prefixes, the lab's code): a volume
    # mounted over an ancestor of one (an emptyDir at /tmp, with the lab checked out under /tmp) must not hide it,
    # as a real image's files are never under the host's /tmp
    image_paths: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- one pod


class PodWorker:
    def __init__(self, kubelet: Kubelet, pod: Obj, predecessor: PodWorker | None) -> None:
        self.kubelet = kubelet
        self.lab = kubelet.lab
        meta = pod["metadata"]
        self.uid: str = meta["uid"]
        self.namespace: str = meta.get("namespace", "default")
        self.name: str = meta["name"]
        self.pod = pod
        self.spec: Obj = pod.get("spec") or {}
        self.predecessor = predecessor
        self.dir = kubelet.pods_dir / self.namespace / self.name
        has_init = bool(self.spec.get("initContainers"))
        first = "PodInitializing" if has_init else "ContainerCreating"
        self.init_states = [ContainerState(c, True, {"waiting": {"reason": first}})
                            for c in self.spec.get("initContainers") or []]
        self.main_states = [ContainerState(c, False, {"waiting": {"reason": first}})
                            for c in self.spec.get("containers") or []]
        self.ephemeral_states: list[ContainerState] = []
        self.procs: dict[str, asyncio.subprocess.Process] = {}
        self.ttys: dict[str, int] = {}  # container -> its terminal's master side (containers with tty: true)
        self.pumps: dict[str, list[asyncio.Task]] = {}
        self.transitions: dict[str, tuple[str, str]] = {}
        self.forced_phase: str | None = None
        self.reason: str | None = None
        self.message: str | None = None
        self.began = False
        self.start_ts: float | None = None
        self.start_time: str | None = None
        self.sandbox_ready = False
        self.pod_ip_set = False
        self.builder: volumes.VolumeBuilder | None = None
        self.main_task: asyncio.Task | None = None
        self.side_tasks: list[asyncio.Task] = []
        self.container_tasks: list[asyncio.Task] = []
        self.stopped = asyncio.Event()
        self.removed = False
        self.terminated = False
        self._stop_task: asyncio.Task | None = None
        self._cleaned = False
        self.unscheduled = False  # waiting for the scheduler to find it a place

    # -------------------------------------------------- store access
    @property
    def store(self) -> Store:
        return self.kubelet.store

    @property
    def restart_policy(self) -> str:
        return self.spec.get("restartPolicy") or "Always"

    def fetch(self) -> Obj:
        pod = self.store.find(self.kubelet.pod_type, self.namespace, self.name)
        if pod is None or pod["metadata"].get("uid") != self.uid:
            raise PodGone()
        self.pod = pod
        return pod

    def write(self, pod: Obj) -> None:
        try:
            self.pod = self.store.replace(self.kubelet.pod_type, pod, check_version=False)
        except errors.ApiError as exc:
            if exc.code == 404:
                raise PodGone() from None
            raise

    def event(self, reason: str, message: str, type_: str = "Normal", field_path: str | None = None,
              component: str = "kubelet") -> None:
        try:
            self.kubelet.events.record(self.pod, reason, message, type_, field_path, component)
        except errors.ApiError as exc:  # an event is best effort, as in client-go
            log.debug("event %s for %s/%s not recorded: %s", reason, self.namespace, self.name, exc.message)

    def lookup(self, kind: str, namespace: str, name: str) -> Obj | None:
        obj = self.store.find(core_type(self.store, kind), namespace, name)
        if obj is None and kind == "configmaps" and name == "kube-root-ca.crt" and hasattr(self.lab, "tls"):
            # kube-controller-manager's root-ca-cert-publisher puts this in every namespace; stand in for it.
            obj = {"data": {"ca.crt": self.lab.tls.ca_pem.decode()}}
        return obj

    # -------------------------------------------------- status
    def _condition(self, type_: str, status: str, reason: str | None = None, message: str | None = None) -> Obj:
        previous = self.transitions.get(type_)
        if previous is None or previous[0] != status:
            previous = (status, rfc3339())
            self.transitions[type_] = previous
        cond: Obj = {"type": type_, "status": status, "lastProbeTime": None, "lastTransitionTime": previous[1]}
        if reason:
            cond["reason"] = reason
        if message:
            cond["message"] = message
        return cond

    def phase(self) -> str:
        """kubelet getPhase (pkg/kubelet/kubelet_pods.go), sidecar-aware."""
        if self.forced_phase:
            return self.forced_phase
        if not self.began:
            return "Pending"
        pending_init = failed_init = 0
        for cs in self.init_states:
            if cs.sidecar:
                pending_init += 0 if cs.started else 1
                continue
            term = cs.state.get("terminated")
            last = cs.last_state.get("terminated")
            if term is not None:
                if term.get("exitCode") == 0:
                    continue
                if self.restart_policy == "Never":
                    failed_init += 1
                else:
                    pending_init += 1
            elif "waiting" in cs.state and last is not None and last.get("exitCode") == 0:
                continue
            else:
                pending_init += 1
        if failed_init:
            return "Failed"
        if pending_init:
            return "Pending"
        running = waiting = stopped = succeeded = 0
        for cs in self.main_states:
            if "running" in cs.state:
                running += 1
            elif "terminated" in cs.state:
                stopped += 1
                succeeded += cs.state["terminated"].get("exitCode") == 0
            elif cs.last_state.get("terminated") is not None:
                stopped += 1
            else:
                waiting += 1
        if waiting:
            return "Pending"
        if running:
            return "Running"
        if stopped:
            if self.restart_policy == "Always":
                return "Running"
            if stopped == succeeded:
                return "Succeeded"
            return "Failed" if self.restart_policy == "Never" else "Running"
        return "Pending"

    def conditions(self, phase: str) -> list[Obj]:
        terminal = phase in ("Succeeded", "Failed")
        incomplete = [cs.name for cs in self.init_states if not _init_complete(cs)]
        unready = [cs.name for cs in [*[s for s in self.init_states if s.sidecar], *self.main_states] if not cs.ready]
        if phase == "Succeeded":
            initialized = self._condition("Initialized", "True", "PodCompleted")
        elif incomplete:
            initialized = self._condition("Initialized", "False", "ContainersNotInitialized",
                                          f"containers with incomplete status: [{' '.join(incomplete)}]")
        else:
            initialized = self._condition("Initialized", "True")
        if terminal:
            why = "PodCompleted" if phase == "Succeeded" else "PodFailed"
            ready = [self._condition(t, "False", why) for t in ("Ready", "ContainersReady")]
        elif unready:
            message = f"containers with unready status: [{' '.join(unready)}]"
            ready = [self._condition(t, "False", "ContainersNotReady", message) for t in ("Ready", "ContainersReady")]
        else:
            ready = [self._condition(t, "True") for t in ("Ready", "ContainersReady")]
        sandbox = self._condition("PodReadyToStartContainers", "True" if self.sandbox_ready and not terminal else "False")
        return [sandbox, initialized, *ready, self._condition("PodScheduled", "True")]

    def build_status(self) -> Obj:
        phase = self.phase()
        status: Obj = {"phase": phase, "conditions": self.conditions(phase)}
        if self.message:
            status["message"] = self.message
        if self.reason:
            status["reason"] = self.reason
        status["hostIP"] = HOST_IP
        status["hostIPs"] = [{"ip": HOST_IP}]
        if self.pod_ip_set:
            status["podIP"] = POD_IP
            status["podIPs"] = [{"ip": POD_IP}]
        status["startTime"] = self.start_time
        if self.init_states:
            status["initContainerStatuses"] = [cs.entry() for cs in self.init_states]
        status["containerStatuses"] = [cs.entry() for cs in self.main_states]
        if self.ephemeral_states:
            status["ephemeralContainerStatuses"] = [cs.entry() for cs in self.ephemeral_states]
        status["qosClass"] = qos_class(self.spec)
        return status

    def publish(self) -> None:
        pod = self.fetch()
        status = dict(pod.get("status") or {})
        for key in ("reason", "message", "podIP", "podIPs"):
            status.pop(key, None)
        # the status manager's mergePodStatus (pkg/kubelet/status/status_manager.go): conditions the kubelet does
        # not own (the API server's DisruptionTarget on an eviction, readiness gates' types) are kept
        kept = [c for c in status.get("conditions") or [] if c.get("type") not in KUBELET_CONDITIONS]
        status.update(self.build_status())
        status["conditions"] = [*kept, *status["conditions"]]
        pod["status"] = status
        self.write(pod)

    # -------------------------------------------------- lifecycle
    def start(self) -> None:
        self.main_task = spawn(self.run(), name=f"pod {self.namespace}/{self.name}")

    async def run(self) -> None:
        try:
            if self.predecessor is not None:
                await self.predecessor.stopped.wait()
            if not await self.schedule():
                return
            if not (is_path_component(self.namespace) and is_path_component(self.name)):
                # The API server refuses such names; the kubelet never builds a directory from one.
                self.event("FailedCreatePodSandBox", "lab: the pod's namespace or name is not a single path "
                           "component; no sandbox is made for it", "Warning")
                return
            self.begin()
            await self.prepare_volumes()
            self.sandbox_ready = self.pod_ip_set = True
            self.publish()
            self.side_tasks.append(spawn(self.volume_loop()))
            latency = float(getattr(self.lab.kube, "pod_start_latency_seconds", 0) or 0)
            if latency > 0:
                await asyncio.sleep(latency)
            if await self.run_init_containers():
                await self.run_main_containers()
            await self.finish()
        except PodGone:
            pass
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("kubelet: pod %s/%s failed in the lab", self.namespace, self.name)

    async def schedule(self) -> bool:
        reported = None
        while True:
            pod = self.fetch()
            node = (pod.get("spec") or {}).get("nodeName")
            if node:
                return self.bind(pod) if node == self.kubelet.node_name else False
            hint = self.kubelet.scheduling_hint
            own_node = self.kubelet.node()
            message = scheduler.unschedulable_message(pod, [own_node]) if own_node is not None else None
            if message is None:
                return self.bind(pod)
            self.unscheduled = True
            self.not_scheduled(pod, message, record=message != reported)
            reported = message
            # Unschedulable pods wait for a node or pod change (the scheduling queue's hints), at most 5 minutes.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(hint.wait(), scheduler.UNSCHEDULABLE_RETRY_SECONDS)
            if not hint.is_set():
                reported = None  # the periodic flush tries again, and says so again

    def not_scheduled(self, pod: Obj, message: str, record: bool) -> None:
        status = pod.setdefault("status", {})
        status["phase"] = "Pending"
        others = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        status["conditions"] = [*others, self._condition("PodScheduled", "False", "Unschedulable", message)]
        status["qosClass"] = qos_class(pod.get("spec") or {})
        self.write(pod)
        if record:
            self.event("FailedScheduling", message, "Warning", component="default-scheduler")

    def bind(self, pod: Obj) -> bool:
        self.unscheduled = False
        spec = pod.setdefault("spec", {})
        if not spec.get("nodeName"):
            spec["nodeName"] = self.kubelet.node_name
            status = pod.setdefault("status", {})
            status["phase"] = "Pending"
            status["conditions"] = [self._condition("PodScheduled", "True")]
            status["qosClass"] = qos_class(spec)
            self.write(pod)
            self.event("Scheduled", f"Successfully assigned {self.namespace}/{self.name} to {self.kubelet.node_name}",
                       component="default-scheduler")
        self.spec = self.pod.get("spec") or {}
        return True

    def begin(self) -> None:
        self.began = True
        self.start_ts = time.time()
        self.start_time = rfc3339(self.start_ts)
        self.publish()
        deadline = self.spec.get("activeDeadlineSeconds")
        if isinstance(deadline, int) and not isinstance(deadline, bool):
            self.side_tasks.append(spawn(self.deadline_watch(deadline)))

    # -------------------------------------------------- volumes
    def _issue(self, service_account: Obj, audiences: list[str], expiration: int | None) -> tuple[str, int]:
        return tokens.issue_service_account_token(self.lab, self.namespace, service_account, audiences, expiration,
                                                  self.pod)

    def volume_dir(self, name: str) -> Path:
        return self.dir / "volumes" / name

    def setup_volumes(self, now: float | None = None) -> None:
        """Write every volume's files (first time and on resync); raises VolumeError."""
        audiences = self.kubelet.default_audiences()
        if self.builder is None:
            self.builder = volumes.VolumeBuilder(self.pod, self.lookup, self._issue, audiences)
        self.builder.pod = self.pod
        group = volumes.fs_group(self.pod)
        for volume in self.spec.get("volumes") or []:
            name = volume.get("name", "")
            if not is_path_component(name):
                # The API server refuses such names (DNS-1123 label); the kubelet never builds a path from one.
                raise volumes.VolumeError(name, f"lab: volume name {name!r} is not a single path component")
            target = self.volume_dir(name)
            if "emptyDir" in volume:
                if not target.exists():
                    target.mkdir(parents=True)
                    os.chmod(target, 0o2777 if group is not None else 0o777)
                    if group is not None and os.geteuid() == 0:
                        os.chown(target, -1, group)
            elif "hostPath" in volume:
                path = (volume["hostPath"] or {}).get("path", "")
                if not os.path.exists(path):
                    raise volumes.VolumeError(name, f"hostPath type check failed: {path} does not exist")
            elif volumes.is_atomic(volume):
                payload = self.builder.payload(volume, now)
                try:
                    volumes.write_atomic(target, payload)
                except (volumes.PayloadError, OSError) as exc:  # AtomicWriter.Write's error, as SetUp reports it
                    raise volumes.VolumeError(name, str(exc)) from None
            else:
                raise volumes.VolumeError(name, "lab: volume type not supported")

    def write_ca_bundle(self) -> Path:
        path = self.dir / "etc" / "ca-certificates.crt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.lab.tls.ca_pem if hasattr(self.lab, "tls") else b"")
        os.chmod(path, 0o644)
        return path

    async def prepare_volumes(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        self.write_ca_bundle()
        if not self.kubelet.sandbox.isolated:
            self.event("LabSandboxFallback",
                       f"lab: no private mount namespace for this pod ({self.kubelet.sandbox.reason}); volumes are "
                       f"under {self.dir}/rootfs/<container> and env vars naming mounted paths point there",
                       "Warning")
        while True:
            try:
                self.fetch()
                self.setup_volumes()
                return
            except volumes.VolumeError as exc:
                self.event("FailedMount", f'MountVolume.SetUp failed for volume "{exc.volume}" : {exc.message}',
                           "Warning")
                await asyncio.sleep(self.kubelet.retry_seconds)

    def sync_volumes(self, now: float | None = None) -> None:
        """Resync volume contents; tokens are re-issued once past 80% of their lifetime (``now`` overrides)."""
        self.fetch()
        self.setup_volumes(now)

    async def volume_loop(self) -> None:
        while True:
            now = time.time()
            wake = now + self.kubelet.volume_resync_seconds
            refresh = self.builder.next_refresh() if self.builder else None
            if refresh is not None:
                wake = min(wake, refresh)
            await asyncio.sleep(max(0.05, wake - now))
            try:
                self.sync_volumes()
            except PodGone:
                return
            except volumes.VolumeError as exc:
                self.event("FailedMount", f'MountVolume.SetUp failed for volume "{exc.volume}" : {exc.message}',
                           "Warning")

    # -------------------------------------------------- containers
    async def run_init_containers(self) -> bool:
        for cs in self.init_states:
            if cs.sidecar:
                started = asyncio.Event()
                task = spawn(self._sidecar(cs, started))
                self.container_tasks.append(task)
                while not cs.started:
                    await asyncio.sleep(0.05)
                continue
            policy = "OnFailure" if self.restart_policy == "Always" else self.restart_policy
            code = await self.run_container(cs, policy, asyncio.Event())
            if code != 0:
                self.publish()
                return False
        for cs in self.main_states:
            if "waiting" in cs.state and cs.state["waiting"].get("reason") == "PodInitializing":
                cs.state = {"waiting": {"reason": "ContainerCreating"}}
        self.publish()
        return True

    async def _sidecar(self, cs: ContainerState, started: asyncio.Event) -> None:
        with contextlib.suppress(PodGone):
            await self.run_container(cs, "Always", started)

    async def run_main_containers(self) -> None:
        tasks = []
        for cs in self.main_states:
            attempted = asyncio.Event()
            tasks.append(spawn(self.run_container(cs, self.restart_policy, attempted)))
            waiter = spawn(attempted.wait())
            await asyncio.wait([tasks[-1], waiter], return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
        self.container_tasks.extend(tasks)
        for outcome in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(outcome, BaseException):
                raise outcome

    async def pull(self, cs: ContainerState, attempted: asyncio.Event) -> tuple[str, ImageConfig | None]:
        image = cs.spec.get("image", "")
        ref = parse_image(image)
        policy = cs.spec.get("imagePullPolicy") or default_pull_policy(ref)
        attempt = 0
        while True:
            kind, entry = resolve_image(self.lab.kube, ref)
            if policy == "Never" or (policy == "IfNotPresent" and kind != "missing"
                                     and ref.reference in self.kubelet.pulled):
                if kind != "missing":
                    self.event("Pulled", f'Container image "{image}" already present on machine',
                               field_path=cs.field_path)
                    return kind, entry
                message = f'Container image "{image}" is not present with pull policy of Never'
                cs.state = {"waiting": {"reason": "ErrImageNeverPull", "message": message}}
                self.event("ErrImageNeverPull", message, "Warning", cs.field_path)
                self.publish()
                attempted.set()
                await asyncio.sleep(self.kubelet.retry_seconds)
                continue
            self.event("Pulling", f'Pulling image "{image}"', field_path=cs.field_path)
            if kind != "missing":
                self.kubelet.pulled.add(ref.reference)
                took = go_duration(ref.pull_seconds)
                self.event("Pulled", f'Successfully pulled image "{image}" in {took} ({took} including waiting). '
                           f"Image size: {ref.size} bytes.", field_path=cs.field_path)
                return kind, entry
            error = not_found_message(ref)
            cs.state = {"waiting": {"reason": "ErrImagePull", "message": error}}
            self.event("Failed", f'Failed to pull image "{image}": {error}', "Warning", cs.field_path)
            self.event("Failed", "Error: ErrImagePull", "Warning", cs.field_path)
            self.publish()
            attempted.set()
            await asyncio.sleep(self.kubelet.image_pull_error_seconds)
            cs.state = {"waiting": {"reason": "ImagePullBackOff",
                                    "message": f'Back-off pulling image "{image}": ErrImagePull: {error}'}}
            self.event("BackOff", f'Back-off pulling image "{image}"', field_path=cs.field_path)
            self.event("Failed", "Error: ImagePullBackOff", "Warning", cs.field_path)
            self.publish()
            base, cap = self.kubelet.image_backoff
            await asyncio.sleep(min(base * 2 ** attempt, cap))
            attempt += 1

    def _user(self, container: Obj) -> Obj | None:
        if self.kubelet.sandbox.kind != "root":
            return None  # user namespace or fallback: the process runs as the lab's own user
        pod_sc = self.spec.get("securityContext") or {}
        uid = volumes._effective(self.pod, container, "runAsUser")
        if not isinstance(uid, int):
            return None
        gid = volumes._effective(self.pod, container, "runAsGroup")
        gid = gid if isinstance(gid, int) else 0
        groups = [g for g in [pod_sc.get("fsGroup"), *(pod_sc.get("supplementalGroups") or [])] if isinstance(g, int)]
        return {"uid": uid, "gid": gid, "groups": groups}

    def launch_spec(self, cs: ContainerState, image: ImageConfig) -> LaunchSpec:
        pod = self.fetch()
        container = cs.spec
        env = podenv.container_env(pod, container, self.lookup, self.kubelet.service_env())
        command = container.get("command")
        args = podenv.expand_argv(container.get("args") or [], env)
        argv = image.argv(podenv.expand_argv(command, env) if command else None, args)
        user = self._user(container)
        runs_as_root = (user["uid"] if user else os.geteuid()) == 0
        image_env = {"PATH": IMAGE_PATH, "HOME": "/root" if runs_as_root else "/", "LANG": "C.UTF-8"}
        traverse: list[str] = []
        image_paths: list[str] = []
        if image.runtime == LAB_RUNTIME:
            image_env.update(PATH=f"{os.path.dirname(sys.executable)}:{IMAGE_PATH}", PYTHONPATH=str(REPO_ROOT))
            traverse.append(str(REPO_ROOT))
            image_paths += [sys.prefix, sys.base_prefix, str(REPO_ROOT)]
        elif image.runtime == PYTHON_RUNTIME:
            python_bin = self.kubelet.stdlib_python()
            image_env["PATH"] = f"{python_bin}:{IMAGE_PATH}"
            traverse.append(str(python_bin.parent))
            image_paths += [str(python_bin.parent), sys.base_prefix]
        hostname = (self.spec.get("hostname") or self.name)[:63]
        final = {**image_env, "HOSTNAME": hostname, **env}
        mounts = []
        for mount in container.get("volumeMounts") or []:
            volume = next((v for v in self.spec.get("volumes") or [] if v.get("name") == mount.get("name")), None)
            if volume is None:
                continue
            if "hostPath" in volume:
                source = Path((volume["hostPath"] or {}).get("path", "/"))
            else:
                source = self.volume_dir(volume["name"])
            # a relative mountPath is made absolute (volumeutil.MakeAbsolutePath), so it can never climb out
            item: Obj = {"target": os.path.normpath("/" + mount.get("mountPath", "/").lstrip("/")),
                         # configMap, secret, downwardAPI and projected volumes are always mounted read-only
                         # (the kubelet's mustMountRO), whatever the mount says
                         "readonly": bool(mount.get("readOnly")) or volumes.is_atomic(volume)}
            sub = subpath_of(mount, env)
            if sub:
                source = Path(resolve_subpath(source, sub, create="emptyDir" in volume, mount=mount.get("name", ""),
                                              container=cs.name))
                item["verify"] = True  # the launcher re-opens it without following symlinks before binding
            mounts.append({"source": str(source), **item})
        ca_file = str(self.dir / "etc" / "ca-certificates.crt")
        if not any(podsandbox._under(POD_CA_PATH, m["target"]) for m in mounts):
            mounts.append({"source": ca_file, "target": POD_CA_PATH, "readonly": True})
        for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
            final.setdefault(name, POD_CA_PATH)
        # unverified: the runtime's answer to a relative workingDir; the lab roots it, so it cannot climb out
        cwd = os.path.normpath("/" + (container.get("workingDir") or "/").lstrip("/"))
        return LaunchSpec(argv=argv, env=final, cwd=cwd, mounts=mounts, user=user, traverse=traverse,
                          image_paths=list(dict.fromkeys(image_paths)))

    def _fallback_paths(self, cs: ContainerState, launch: LaunchSpec) -> None:
        """No mount namespace: symlinks under a per-container root, env values rewritten to point there."""
        root = self.dir / "rootfs" / cs.name
        if root.exists():
            shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        targets = sorted(launch.mounts, key=lambda m: len(m["target"]), reverse=True)
        for mount in sorted(launch.mounts, key=lambda m: m["target"].count("/")):
            link = root / mount["target"].lstrip("/")
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists() and not link.is_symlink():
                link.symlink_to(mount["source"])

        def rewrite(value: str) -> str:
            for mount in targets:
                if mount["target"] != "/" and podsandbox._under(value, mount["target"]):
                    return str(root) + value
            return value

        launch.env = {key: rewrite(value) for key, value in launch.env.items()}
        launch.argv = [rewrite(arg) for arg in launch.argv]
        cwd = rewrite(launch.cwd)
        if not os.path.isdir(cwd):
            cwd = str(root / launch.cwd.lstrip("/"))
            os.makedirs(cwd, exist_ok=True)
        launch.cwd = cwd
        launch.mounts = []
        launch.user = None

    async def _pump(self, stream: asyncio.StreamReader | None, sink: bytearray) -> None:
        if stream is None:
            return
        while True:
            chunk = await stream.read(65536)
            if not chunk:
                return
            sink.extend(chunk)

    async def spawn(self, cs: ContainerState, launch: LaunchSpec) -> str | None:
        """Start the container process; None once exec succeeded, else containerd's StartError message."""
        if not is_path_component(cs.name):  # the API server refuses such names (DNS-1123 label)
            return podsandbox.START_ERROR_PREFIX + f"lab: container name {cs.name!r} is not a path component: unknown"
        cdir = self.dir / "containers" / cs.name
        stage = cdir / "stage"
        stage.mkdir(parents=True, exist_ok=True)
        if not self.kubelet.sandbox.isolated:
            self._fallback_paths(cs, launch)
        read_fd, write_fd = os.pipe()
        spec = {"argv": launch.argv, "env": launch.env, "cwd": launch.cwd, "mounts": launch.mounts,
                "user": launch.user, "traverse": launch.traverse, "image_paths": launch.image_paths,
                "status_fd": write_fd,
                "sandbox": self.kubelet.sandbox.isolated, "stage": str(stage),
                "hostname": launch.env.get("HOSTNAME", self.name), "tty": bool(cs.spec.get("tty"))}
        manifests = getattr(self.lab, "pod_manifests", None)  # stand-in labs in tests serve no unix sockets
        if self.kubelet.sandbox.network and manifests is not None:
            spec["network"] = {"manifest": str(manifests.path(self.pod))}
        spec_path = cdir / f"launch-{cs.restart_count}.spec"
        podsandbox.write_spec(str(spec_path), spec)
        logs = self.new_log(cs)
        # stdin: true keeps stdin open for ``kubectl attach -i`` / ``run -i``; tty: true gives the container a
        # terminal (lab.kube.podstreams writes to and resizes it)
        stdin = asyncio.subprocess.PIPE if cs.spec.get("stdin") else asyncio.subprocess.DEVNULL
        stdio: dict[str, Any] = {"stdin": stdin, "stdout": asyncio.subprocess.PIPE,
                                 "stderr": asyncio.subprocess.PIPE}
        master = slave = None
        if cs.spec.get("tty"):
            master, slave = os.openpty()
            os.set_blocking(master, False)
            stdio = {"stdin": slave if cs.spec.get("stdin") else asyncio.subprocess.DEVNULL, "stdout": slave,
                     "stderr": slave}
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.kubelet.sandbox.argv(str(spec_path)), **stdio, pass_fds=(write_fd,),
                start_new_session=True, env={"PATH": os.environ.get("PATH", os.defpath)},
            )
        except OSError as exc:
            os.close(read_fd)
            if master is not None:
                os.close(master)
            return podsandbox.START_ERROR_PREFIX + f"{exc}: unknown"
        finally:
            os.close(write_fd)
            if slave is not None:
                os.close(slave)
        self.procs[cs.name] = proc
        if master is not None:
            self.ttys[cs.name] = master
            self.pumps[cs.name] = [spawn(self._pump_tty(master, logs))]
        else:
            self.pumps[cs.name] = [spawn(self._pump(proc.stdout, logs)), spawn(self._pump(proc.stderr, logs))]
        report = await self._read_status(read_fd)
        if report:
            await proc.wait()
            await self._drain(cs.name)
            kind, _, message = report.partition("\t")
            return podsandbox.START_ERROR_PREFIX + message.strip()
        return None

    def new_log(self, cs: ContainerState) -> ContainerLog:
        """This instance's log; the one before it stays reachable for ``kubectl logs --previous``."""
        key = (self.namespace, self.name, cs.name)
        earlier = self.lab.kube.pod_logs.get(key)
        logs = ContainerLog(cs.container_id or "", earlier if isinstance(earlier, ContainerLog) else None)
        self.lab.kube.pod_logs[key] = logs
        return logs

    async def run_emulated(self, cs: ContainerState, ref: Any, attempted: asyncio.Event) -> int:
        """A container the lab itself plays (an add-on's manager): a coroutine writing to the instance's log."""
        run = emulated_runner(self.lab.kube, ref)
        logs = self.new_log(cs)
        cs.idle = True  # no process: stopping the pod ends it by cancelling its task
        self.event("Started", f"Started container {cs.name}", field_path=cs.field_path)
        cs.state = {"running": {"startedAt": rfc3339()}}
        cs.started, cs.ready = True, not cs.init or cs.sidecar
        self.publish()
        attempted.set()
        assert run is not None
        code = await run(self.lab, self.fetch(), cs.name, logs)
        self._terminated(cs, code)
        self.publish()
        return code

    async def _read_status(self, read_fd: int) -> str:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader),
                                                    os.fdopen(read_fd, "rb", buffering=0))
        try:
            return (await reader.read()).decode(errors="replace")
        finally:
            transport.close()

    async def _drain(self, name: str, timeout: float = 2.0) -> None:
        pumps = self.pumps.pop(name, [])
        if pumps:
            _, pending = await asyncio.wait(pumps, timeout=timeout)
            for task in pending:
                task.cancel()
        master = self.ttys.pop(name, None)
        if master is not None:
            os.close(master)

    async def _pump_tty(self, master: int, sink: bytearray) -> None:
        async for chunk in podstreams.pty_chunks(master):
            sink.extend(chunk)

    async def wait_exit(self, cs: ContainerState) -> int:
        proc = self.procs[cs.name]
        code = _exit_code(await proc.wait())
        _signal_group(proc.pid, signal.SIGKILL)  # the container's other processes die with its init
        await self._drain(cs.name)
        self.procs.pop(cs.name, None)
        return code

    def _terminated(self, cs: ContainerState, code: int, reason: str | None = None, message: str | None = None,
                    started_at: str | None = None) -> None:
        term: Obj = {"exitCode": code, "reason": reason or ("Completed" if code == 0 else "Error")}
        if message:
            term["message"] = message
        term["startedAt"] = started_at or (cs.state.get("running") or {}).get("startedAt") or rfc3339()
        term["finishedAt"] = rfc3339()
        if cs.container_id:
            term["containerID"] = cs.container_id
        cs.state = {"terminated": term}
        cs.ready = False
        cs.started = False

    async def run_container(self, cs: ContainerState, policy: str, attempted: asyncio.Event) -> int:
        """Pull, create, start, wait, restart per policy; returns the final exit code."""
        while True:
            kind, image = await self.pull(cs, attempted)
            ref = parse_image(cs.spec.get("image", ""))
            try:
                launch = self.launch_spec(cs, image or ImageConfig()) if kind == "run" else None
            except podenv.ConfigError as exc:
                cs.state = {"waiting": {"reason": "CreateContainerConfigError", "message": str(exc)}}
                self.event("Failed", f"Error: {exc}", "Warning", cs.field_path)
                self.publish()
                attempted.set()
                await asyncio.sleep(self.kubelet.retry_seconds)
                continue
            cs.container_id = f"containerd://{uuid.uuid4().hex}{uuid.uuid4().hex}"
            cs.image, cs.image_id, cs.created, cs.idle = ref.reference, ref.image_id, True, kind == "idle"
            self.event("Created", f"Created container: {cs.name}", field_path=cs.field_path)
            if kind == "idle":
                self.event("Started", f"Started container {cs.name}", field_path=cs.field_path)
                cs.state = {"running": {"startedAt": rfc3339()}}
                cs.started = True
                cs.ready = not cs.init or cs.sidecar
                if cs.init and not cs.sidecar:
                    self._terminated(cs, 0)
                    cs.done = True
                    self.publish()
                    attempted.set()
                    return 0
                self.publish()
                attempted.set()
                await asyncio.Future()  # runs until the pod stops
            assert launch is not None or kind == "emulated"
            failure = None if launch is None else await self.spawn(cs, launch)
            if kind == "emulated":
                code = await self.run_emulated(cs, ref, attempted)
            elif failure:
                self._terminated(cs, 128, "StartError", failure, started_at="1970-01-01T00:00:00Z")
                self.event("Failed", f"Error: {failure}", "Warning", cs.field_path)
                self.publish()
                attempted.set()
                code = 128
            else:
                self.event("Started", f"Started container {cs.name}", field_path=cs.field_path)
                cs.state = {"running": {"startedAt": rfc3339()}}
                cs.started = True
                cs.ready = not cs.init or cs.sidecar
                self.publish()
                attempted.set()
                code = await self.wait_exit(cs)
                self._terminated(cs, code)
                self.publish()
            if not (policy == "Always" or (policy == "OnFailure" and code != 0)):
                cs.done = True
                return code
            cs.last_state = cs.state
            if cs.restart_count == 0:
                # the first exit is restarted at once: the kubelet's doBackOff finds no back-off entry for the
                # container yet (flowcontrol.Backoff.IsInBackOffSince is false) and Next makes one of the initial
                # 10 s, which the second exit meets (kuberuntime_manager.go; kubernetes.io pod-lifecycle: "Initial
                # crash: Kubernetes attempts an immediate restart ... After the initial crash ... exponential
                # backoff")
                cs.restart_count += 1
                continue
            base, cap = self.kubelet.crash_backoff
            delay = min(base * 2 ** (cs.restart_count - 1), cap)
            pod_ref = f"{self.name}_{self.namespace}({self.uid})"
            cs.state = {"waiting": {"reason": "CrashLoopBackOff", "message":
                                    f"back-off {go_duration(delay)} restarting failed container={cs.name} "
                                    f"pod={pod_ref}"}}
            self.event("BackOff", f"Back-off restarting failed container {cs.name} in pod {pod_ref}", "Warning",
                       cs.field_path)
            self.publish()
            await asyncio.sleep(delay)
            cs.restart_count += 1

    # -------------------------------------------------- ending
    async def finish(self) -> None:
        """Main containers are done for good: stop sidecars, freeze the phase, tear the sandbox down."""
        phase = self.phase()
        for cs in self.init_states:
            if cs.sidecar and cs.name in self.procs:
                await self.kill_container(cs, self.kubelet.kill_grace_seconds)
        for task in self.container_tasks:
            task.cancel()
        for cs in self.init_states:
            if cs.sidecar and "running" in cs.state:
                self._terminated(cs, 0 if cs.idle else 137)
        self.forced_phase = phase if phase in ("Succeeded", "Failed") else self.phase()
        self.sandbox_ready = False
        self._cancel_side_tasks()
        self.publish()

    def _cancel_side_tasks(self) -> None:
        current = asyncio.current_task()
        for task in self.side_tasks:
            if task is not current:
                task.cancel()

    async def kill_container(self, cs: ContainerState, grace: float) -> int | None:
        proc = self.procs.get(cs.name)
        if proc is None:
            return None
        if proc.returncode is None:
            self.event("Killing", f"Stopping container {cs.name}", field_path=cs.field_path)
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(proc.wait()), grace)
            except TimeoutError:
                _signal_group(proc.pid, signal.SIGKILL)
        code = _exit_code(await proc.wait())
        _signal_group(proc.pid, signal.SIGKILL)
        await self._drain(cs.name)
        self.procs.pop(cs.name, None)
        return code

    async def terminate(self, grace: float) -> None:
        """Stop everything this pod runs (idempotent): tasks first, then processes (SIGTERM, SIGKILL)."""
        if self.terminated:
            return
        self.terminated = True
        current = asyncio.current_task()
        tasks = [t for t in [self.main_task, *self.container_tasks] if t is not None and t is not current]
        for task in tasks:
            task.cancel()
        self._cancel_side_tasks()
        await asyncio.gather(*tasks, return_exceptions=True)
        states = [*self.init_states, *self.main_states, *self.ephemeral_states]
        codes = await asyncio.gather(*(self.kill_container(cs, grace) for cs in states), return_exceptions=True)
        for cs, code in zip(states, codes, strict=True):
            if "running" not in cs.state:
                continue
            if isinstance(code, int):
                self._terminated(cs, code)
            elif cs.idle:
                self.event("Killing", f"Stopping container {cs.name}", field_path=cs.field_path)
                self._terminated(cs, 137)
        self.sandbox_ready = False

    async def deadline_watch(self, deadline: int) -> None:
        assert self.start_ts is not None
        await asyncio.sleep(max(0.0, self.start_ts + deadline - time.time()))
        if self.forced_phase in ("Succeeded", "Failed"):
            return
        self.event("DeadlineExceeded", DEADLINE_MESSAGE, "Warning")
        await self.terminate(self.kubelet.kill_grace_seconds)
        self.forced_phase = "Failed"
        self.reason, self.message = "DeadlineExceeded", DEADLINE_MESSAGE
        with contextlib.suppress(PodGone):
            self.publish()

    def request_stop(self, removed: bool) -> None:
        if removed:
            self.removed = True
        if self._stop_task is None or self._stop_task.done():
            self._stop_task = spawn(self._stop())

    def _grace(self) -> float:
        meta = self.pod.get("metadata") or {}
        grace = meta.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = self.spec.get("terminationGracePeriodSeconds", 30)
        return float(min(max(grace or 0, 0), self.kubelet.kill_grace_seconds))

    async def _stop(self) -> None:
        try:
            await self.terminate(self._grace())
            if not self.removed:
                with contextlib.suppress(PodGone):
                    self.publish()
                    finalizers = (self.pod.get("metadata") or {}).get("finalizers")
                    if not finalizers:
                        with contextlib.suppress(errors.ApiError):
                            self.store.delete(self.kubelet.pod_type, self.namespace, self.name)
                        self.removed = True
                if not self.removed:
                    return  # finalizers still hold the object: the DELETED event finishes the job
            await self.cleanup()
        except Exception:
            log.exception("kubelet: stopping pod %s/%s", self.namespace, self.name)
            await self.cleanup()

    async def cleanup(self) -> None:
        if self._cleaned:
            return
        self._cleaned = True
        # in a thread: removing the directories the container's mount namespace had mounts on takes the kernel
        # milliseconds each (tens of ms a pod), which would stall every other request of the lab
        await asyncio.to_thread(shutil.rmtree, self.dir, True)
        for key in [k for k in self.lab.kube.pod_logs if k[:2] == (self.namespace, self.name)]:
            del self.lab.kube.pod_logs[key]
        self.kubelet.events.forget(self.uid)
        self.kubelet.forget(self)
        self.stopped.set()

    async def shutdown(self, grace: float) -> None:
        await self.terminate(grace)
        if self.main_task is not None:
            self.main_task.cancel()
        shutil.rmtree(self.dir, ignore_errors=True)
        self.stopped.set()


# ---------------------------------------------------------------- the node


class Kubelet:
    """Runs the lab's pods. ``sandbox="none"`` (or LAB_POD_SANDBOX=none) forces the no-namespace fallback."""

    def __init__(self, lab: Lab, sandbox: str | None = None) -> None:
        self.lab = lab
        self.node_name = NODE_NAME
        self.sandbox_request = sandbox if sandbox is not None else os.environ.get("LAB_POD_SANDBOX")
        self.sandbox = podsandbox.SandboxMode("none", reason="kubelet not started")
        self.workers: dict[str, PodWorker] = {}  # pod uid -> worker (kept until the pod is deleted)
        self.latest: dict[tuple[str, str], PodWorker] = {}  # (namespace, name) -> newest worker
        self.pulled: set[str] = set()
        self.events = EventRecorder(self)
        self.kill_grace_seconds = 2.0  # cap on terminationGracePeriodSeconds
        self.retry_seconds = 2.0  # FailedMount / CreateContainerConfigError / ErrImageNeverPull resync
        self.image_pull_error_seconds = 1.0  # ErrImagePull shows this long before ImagePullBackOff
        self.image_backoff = (10.0, 300.0)  # base, cap
        self.crash_backoff = (10.0, 300.0)
        self.volume_resync_seconds = 10.0
        self.pod_dirs = PodDirs(Path(lab.state_dir))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped = False
        self._service_env: dict[str, str] | None = None
        self.scheduling_hint = asyncio.Event()  # set (and replaced) when a node or an unscheduled pod changes
        self.lease: NodeLease | None = None

    @property
    def store(self) -> Store:
        return self.lab.kube.store

    @property
    def pods_dir(self) -> Path:
        """Each pod's directory is ``<pods_dir>/<namespace>/<name>`` (on a tmpfs when there is one: lab.kube.poddirs)."""
        return self.pod_dirs.path

    @property
    def pod_type(self) -> ResourceType:
        return core_type(self.store, "pods")

    def stdlib_python(self) -> Path:
        """The bin directory of the interpreter stock Python images run (made on first use)."""
        return stdlib_python(Path(self.lab.state_dir) / "images" / "python")

    def service_env(self) -> dict[str, str]:
        if self._service_env is None:
            url = getattr(self.lab, "endpoints", {}).get("kube")
            parts = urlsplit(url) if url else None
            self._service_env = (podenv.kubernetes_service_env(parts.hostname or HOST_IP, parts.port or 443)
                                 if parts else {})
        return self._service_env

    def default_audiences(self) -> list[str]:
        """A serviceAccountToken source without ``audience`` gets the API server's own (--api-audiences)."""
        try:
            from lab.kube.reviews import default_audiences
        except ImportError:  # a store-only lab without the API server
            return [getattr(self.lab, "endpoints", {}).get("kube") or self.lab.issuer_url]
        return list(default_audiences(self.lab))

    def worker(self, namespace: str, name: str) -> PodWorker | None:
        return self.latest.get((namespace, name))

    def forget(self, worker: PodWorker) -> None:
        self.workers.pop(worker.uid, None)
        key = (worker.namespace, worker.name)
        if self.latest.get(key) is worker:
            del self.latest[key]

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = False
        self.pod_dirs.open()
        self.sandbox = await podsandbox.detect(self.sandbox_request)
        if not self.sandbox.isolated:
            log.warning("kubelet: containers run without a mount namespace: %s", self.sandbox.reason)
        self._register_node()
        self.lease = NodeLease(self.store, self.node_name)
        self.lease.start()
        self.store.listeners.append(self._listener)
        pods, _ = self.store.list(self.pod_type)
        for pod in pods:
            self._on_pod("ADDED", pod)

    async def stop(self) -> None:
        self._stopped = True
        if self.lease is not None:
            self.lease.stop()
        if self._listener in self.store.listeners:
            self.store.listeners.remove(self._listener)
        workers = list(self.workers.values())
        self.workers.clear()
        self.latest.clear()
        await asyncio.gather(*(w.shutdown(0.5) for w in workers), return_exceptions=True)
        await asyncio.to_thread(self.pod_dirs.close)

    def _register_node(self) -> None:
        node_type = self.store.type_for("", "nodes")
        if node_type is None:
            return  # the API server does not serve nodes: nothing to register
        nodes, _ = self.store.list(node_type)
        if any(n["metadata"].get("name") == self.node_name for n in nodes):
            return
        if nodes:  # a scenario registered the node(s): run as the first
            self.node_name = nodes[0]["metadata"]["name"]
            return
        self.store.create(node_type, node_object(self.lab, self.node_name))

    def _listener(self, event: Any) -> None:
        if event.resource not in (("", "pods"), ("", "nodes")) or self._loop is None or self._loop.is_closed():
            return
        try:
            same_loop = asyncio.get_running_loop() is self._loop
        except RuntimeError:
            same_loop = False
        call = self._loop.call_soon if same_loop else self._loop.call_soon_threadsafe
        if event.resource == ("", "nodes"):
            call(self.wake_scheduler)
        else:
            call(self._on_pod, event.type, event.object)

    def node(self) -> Obj | None:
        """This node's Node object (None when the API does not serve nodes: nothing to filter on)."""
        node_type = self.store.type_for("", "nodes")
        return self.store.find(node_type, "", self.node_name) if node_type is not None else None

    def wake_scheduler(self) -> None:
        """A node or a pending pod changed: unschedulable pods are tried again."""
        hint, self.scheduling_hint = self.scheduling_hint, asyncio.Event()
        hint.set()

    def _on_pod(self, type_: str, pod: Obj) -> None:
        if self._stopped:
            return
        meta = pod.get("metadata") or {}
        uid = meta.get("uid")
        worker = self.workers.get(uid)
        if type_ == "DELETED":
            if worker is not None:
                worker.request_stop(removed=True)
            return
        if worker is not None:
            if meta.get("deletionTimestamp"):
                worker.request_stop(removed=False)
            elif worker.unscheduled:
                self.wake_scheduler()
            else:
                ephemeral.sync(worker, pod)
            return
        if meta.get("deletionTimestamp"):
            # Nothing of ours runs for it (finished before we started, or never scheduled): finish the delete.
            if not meta.get("finalizers"):
                with contextlib.suppress(errors.ApiError):
                    self.store.delete(self.pod_type, meta.get("namespace", "default"), meta.get("name", ""))
            return
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return
        node = (pod.get("spec") or {}).get("nodeName")
        if node and node != self.node_name:
            return
        key = (meta.get("namespace", "default"), meta.get("name", ""))
        worker = PodWorker(self, pod, self.latest.get(key))
        self.workers[uid] = worker
        self.latest[key] = worker
        worker.start()
