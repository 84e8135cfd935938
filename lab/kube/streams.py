"""Long-lived responses: watches (one ``{"type","object"}`` JSON document per line, chunked) and pod logs
(``text/plain``, optionally followed until the container ends).

Watch semantics (kubectl-and-client-wire.md §4.6, §6.2):
- no resourceVersion (or "0"): ADDED for every current object, then changes
- ``sendInitialEvents=true``: the same, then a BOOKMARK annotated ``k8s.io/initial-events-end: "true"``
  (kubectl delete/wait waits for it)
- a resourceVersion: changes after it; too old -> one ERROR event carrying a 410 Expired Status
- ``timeoutSeconds`` ends the stream cleanly; every event line ends with ``\\n``; no blank keep-alives
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from lab.faults import WatchFaults
from lab.kube import containerlogs, errors
from lab.kube.store import Obj, ResourceType, Store

log = logging.getLogger("lab.kube.streams")

DEFAULT_WATCH_SECONDS = 1800.0
INITIAL_EVENTS_END = "k8s.io/initial-events-end"
LOG_POLL_SECONDS = 0.1
TERMINATED_PHASES = ("Succeeded", "Failed")
STREAMS_KEY = web.AppKey("kube_streams", set)


def track_stream(request: web.Request) -> Callable[[], None]:
    """Remember the handler task so app shutdown can end it; returns the function that forgets it."""
    streams: set[asyncio.Task] = request.app[STREAMS_KEY]
    task = asyncio.current_task()
    if task is None:
        return lambda: None
    streams.add(task)
    return lambda: streams.discard(task)


async def end_streams(app: web.Application) -> None:
    for task in list(app[STREAMS_KEY]):
        task.cancel()


# ---------------------------------------------------------------- watch


@dataclass
class WatchRequest:
    resource_version: str
    timeout_seconds: float
    send_initial_events: bool
    label_selector: str | None
    field_selector: str | None

    @classmethod
    def from_query(cls, query: Any) -> WatchRequest:
        send_initial = query.get("sendInitialEvents", "").lower() in ("true", "1")
        if send_initial and query.get("resourceVersionMatch") != "NotOlderThan":
            raise errors.ApiError(
                422,
                "Invalid",
                'ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: '
                "Forbidden: sendInitialEvents requires setting resourceVersionMatch to "
                "NotOlderThan",
                {"kind": "ListOptions", "group": "meta.k8s.io"},
            )
        try:
            timeout = float(query.get("timeoutSeconds") or DEFAULT_WATCH_SECONDS)
        except ValueError as exc:
            raise errors.bad_request(f"invalid timeoutSeconds: {query.get('timeoutSeconds')}") from exc
        resource_version = query.get("resourceVersion", "")
        if resource_version not in ("", "0") and not resource_version.isdigit():
            raise errors.bad_request(
                f'Invalid value: "{resource_version}": resourceVersion must be an integer'
            )
        return cls(
            resource_version, timeout, send_initial, query.get("labelSelector"), query.get("fieldSelector")
        )


def _line(event_type: str, obj: Obj) -> bytes:
    return (json.dumps({"type": event_type, "object": obj}, separators=(",", ":")) + "\n").encode()


def initial_events_bookmark(rt: ResourceType, resource_version: str) -> Obj:
    return {
        "kind": rt.kind,
        "apiVersion": rt.api_version,
        "metadata": {"resourceVersion": resource_version, "annotations": {INITIAL_EVENTS_END: "true"}},
    }


async def serve_watch(
    request: web.Request,
    store: Store,
    rt: ResourceType,
    namespace: str | None,
    render: Callable[[Obj], Obj],
    faults: WatchFaults | None = None,
) -> web.StreamResponse:
    watch = WatchRequest.from_query(request.query)
    store.list(rt, namespace, watch.label_selector, watch.field_selector)  # selector errors answer 400 here
    response = web.StreamResponse(
        status=200, headers={"Content-Type": "application/json", "Cache-Control": "no-cache, private"}
    )
    response.enable_chunked_encoding()
    await response.prepare(request)
    resumes = watch.resource_version.isdigit() and watch.resource_version != "0" and not watch.send_initial_events
    if faults is not None and resumes and faults.take("expire"):
        # the watch cache's answer to a version it no longer holds, as an event after the 200 (apiserver's
        # cacher.Watch: "other errors must fail with a watch event of type ERROR, rather than a directly returned
        # error"): errors.NewResourceExpired(fmt.Sprintf("too old resource version: %d (%d)", resourceVersion,
        # oldest-1)), a Status with reason Expired and code 410 (watch_cache.go, apimachinery errors.go); the oldest
        # version kept is taken to be the current one, as after a compaction
        expired = errors.ApiError(410, "Expired",
                                  f"too old resource version: {watch.resource_version} "
                                  f"({max(store.resource_version, int(watch.resource_version) + 1)})")
        with contextlib.suppress(ConnectionError):
            await response.write(_line("ERROR", expired.status()))
            await response.write_eof()
        return response
    forget = track_stream(request)
    try:
        if faults is not None and faults.take("drop"):
            await _cut_after_initial_events(request, response, store, rt, namespace, watch, render)
            return response
        async with asyncio.timeout(watch.timeout_seconds):
            await _stream_events(response, store, rt, namespace, watch, render)
    except TimeoutError:
        pass
    except (ConnectionError, asyncio.CancelledError):
        return response
    finally:
        forget()
    with contextlib.suppress(ConnectionError):
        await response.write_eof()
    return response


async def _initial_events(
    response: web.StreamResponse,
    store: Store,
    rt: ResourceType,
    namespace: str | None,
    watch: WatchRequest,
    render: Callable[[Obj], Obj],
) -> str | None:
    """An ADDED event for each object there now, for a watch from no resourceVersion (or "0") or one asking for
    initial events; the list's resourceVersion, None when the watch starts from its own."""
    if watch.resource_version not in ("", "0") and not watch.send_initial_events:
        return None
    items, since = store.list(rt, namespace, watch.label_selector, watch.field_selector)
    for obj in items:
        await response.write(_line("ADDED", render(obj)))
    return since


async def _cut_after_initial_events(
    request: web.Request,
    response: web.StreamResponse,
    store: Store,
    rt: ResourceType,
    namespace: str | None,
    watch: WatchRequest,
    render: Callable[[Obj], Obj],
) -> None:
    """The stream's initial events (none for a watch from a resourceVersion), then the connection closed with the
    chunked body unfinished: the client reads a broken stream (urllib3's ProtocolError), not a clean end."""
    await _initial_events(response, store, rt, namespace, watch, render)
    if request.transport is not None:
        request.transport.close()


async def _stream_events(
    response: web.StreamResponse,
    store: Store,
    rt: ResourceType,
    namespace: str | None,
    watch: WatchRequest,
    render: Callable[[Obj], Obj],
) -> None:
    since = await _initial_events(response, store, rt, namespace, watch, render)
    if since is None:
        since = watch.resource_version
    elif watch.send_initial_events:
        await response.write(_line("BOOKMARK", initial_events_bookmark(rt, since)))
    events = store.watch(rt, namespace, int(since), watch.label_selector, watch.field_selector)
    try:
        async for event in events:
            await response.write(_line(event.type, render(event.object)))
    except errors.ApiError as exc:
        await response.write(_line("ERROR", exc.status()))
    finally:
        await events.aclose()


# ---------------------------------------------------------------- logs


@dataclass
class LogRequest:
    container: str
    follow: bool
    tail_lines: int | None
    timestamps: bool
    limit_bytes: int | None
    previous: bool = False
    since_ns: int | None = None  # sinceSeconds / sinceTime as a time in ns

    @classmethod
    def from_query(cls, query: Any, pod: Obj) -> LogRequest:
        since_seconds, since_time = _int_param(query, "sinceSeconds"), query.get("sinceTime")
        if since_seconds is not None and since_time:
            raise errors.bad_request("at most one of `sinceTime` or `sinceSeconds` may be specified")
        if since_seconds is not None and since_seconds < 1:
            raise errors.bad_request("sinceSeconds: Invalid value: 0: must be greater than 0")
        since_ns = None
        if since_seconds is not None:
            since_ns = time.time_ns() - since_seconds * 1_000_000_000
        elif since_time:
            since_ns = containerlogs.parse_since_time(since_time)
        return cls(
            container=choose_container(pod, query.get("container", "")),
            follow=query.get("follow", "").lower() in ("true", "1"),
            tail_lines=_int_param(query, "tailLines"),
            timestamps=query.get("timestamps", "").lower() in ("true", "1"),
            limit_bytes=_int_param(query, "limitBytes"),
            previous=query.get("previous", "").lower() in ("true", "1"),
            since_ns=since_ns,
        )

    def window(self, whole: bool = True) -> containerlogs.Window:
        return containerlogs.Window(self.since_ns, self.timestamps,
                                    self.tail_lines if whole else None, self.limit_bytes if whole else None)


def _int_param(query: Any, name: str) -> int | None:
    value = query.get(name)
    if value in (None, ""):
        return None
    try:
        return max(int(value), 0)
    except ValueError as exc:
        raise errors.bad_request(f'invalid {name}: "{value}"') from exc


def _go_list(names: list[str]) -> str:
    return "[" + " ".join(names) + "]"


def choose_container(pod: Obj, requested: str) -> str:
    spec, name = pod.get("spec") or {}, pod["metadata"]["name"]
    containers = [c.get("name", "") for c in spec.get("containers") or []]
    init_containers = [c.get("name", "") for c in spec.get("initContainers") or []]
    ephemeral = [c.get("name", "") for c in spec.get("ephemeralContainers") or []]
    if requested:
        if requested not in containers + init_containers + ephemeral:
            raise errors.bad_request(f"container {requested} is not valid for pod {name}")
        return requested
    if len(containers) == 1:
        return containers[0]
    if not containers:
        raise errors.bad_request(f"a container name must be specified for pod {name}")
    message = f"a container name must be specified for pod {name}, choose one of: {_go_list(containers)}"
    if init_containers:
        message += f" or one of the init containers: {_go_list(init_containers)}"
    raise errors.bad_request(message)


def _container_status(pod: Obj, container: str) -> dict[str, Any] | None:
    status = pod.get("status") or {}
    for entry in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or []),
                  *(status.get("ephemeralContainerStatuses") or [])]:
        if entry.get("name") == container:
            return entry
    return None


def check_container_started(pod: Obj, container: str, has_logs: bool) -> None:
    """A container that has not started has no logs: 400 ``... is waiting to start: <reason>``."""
    if has_logs:
        return
    state = (_container_status(pod, container) or {}).get("state") or {}
    if "running" in state or "terminated" in state:
        return
    if state.get("waiting") or (pod.get("status") or {}).get("phase", "Pending") == "Pending":
        reason = (state.get("waiting") or {}).get("reason") or "ContainerCreating"
        # the kubelet's validateContainerLogStatus (pkg/kubelet/kubelet_pods.go) words the two pull failures
        reason = PULL_FAILURE_WORDS.get(reason, reason)
        raise errors.bad_request(
            f'container "{container}" in pod "{pod["metadata"]["name"]}" is waiting to start: {reason}'
        )


PULL_FAILURE_WORDS = {"ErrImagePull": "image can't be pulled", "ImagePullBackOff": "trying and failing to pull image"}


def container_finished(pod: Obj | None, container: str) -> bool:
    if pod is None or (pod.get("status") or {}).get("phase") in TERMINATED_PHASES:
        return True
    state = (_container_status(pod, container) or {}).get("state") or {}
    return "terminated" in state


def format_log(data: bytes | bytearray, request: LogRequest) -> bytes:
    """The lines a request wants, each with the time it was written when ``timestamps`` (containerlogs)."""
    return request.window().render(data)


async def serve_log(
    request: web.Request,
    pod: Obj,
    log_request: LogRequest,
    read_log: Callable[[], bytes | bytearray | None],
    read_pod: Callable[[], Obj | None],
) -> web.StreamResponse:
    data = read_log()
    if log_request.previous:
        data = containerlogs.previous_instance(pod, log_request.container, data)
    else:
        check_container_started(pod, log_request.container, data is not None)
    data = data if data is not None else b""
    if not log_request.follow or log_request.previous:
        return web.Response(body=format_log(data, log_request), content_type="text/plain", charset="utf-8")
    response = web.StreamResponse(status=200, headers={"Content-Type": "text/plain; charset=utf-8"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    forget = track_stream(request)
    try:
        await response.write(format_log(data, log_request))
        if isinstance(data, containerlogs.ContainerLog):
            await _follow_instance(response, log_request, data, read_pod)
        else:
            await _follow(response, log_request, len(data), read_log, read_pod)
        await response.write_eof()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        forget()
    return response


async def _follow_instance(
    response: web.StreamResponse,
    log_request: LogRequest,
    instance: containerlogs.ContainerLog,
    read_pod: Callable[[], Obj | None],
) -> None:
    """Send what this container instance writes while it runs; its exit (or a restart) ends the stream."""
    offset = len(instance)
    window = log_request.window(whole=False)
    while True:
        running = containerlogs.running_instance_id(read_pod(), log_request.container) == instance.container_id
        if len(instance) > offset:
            await response.write(window.render(instance, offset))
            offset = len(instance)
        if not running:
            return
        await asyncio.sleep(LOG_POLL_SECONDS)


async def _follow(
    response: web.StreamResponse,
    log_request: LogRequest,
    offset: int,
    read_log: Callable[[], bytes | None],
    read_pod: Callable[[], Obj | None],
) -> None:
    """Send what the container writes until it (or its pod) is gone."""
    as_written = LogRequest(log_request.container, True, None, log_request.timestamps, None,
                            since_ns=log_request.since_ns)
    while True:
        finished = container_finished(read_pod(), log_request.container)
        data = read_log() or b""
        if len(data) > offset:
            await response.write(format_log(data[offset:], as_written))
            offset = len(data)
        if finished:
            return
        await asyncio.sleep(LOG_POLL_SECONDS)
