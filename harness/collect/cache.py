"""Each ARM or Graph resource read once per run, and many read at a time within a bound.

:class:`RunCache` wraps an :class:`~harness.collect.arm_api.ArmGet`: the first call for a URL (and POST body)
goes out, every later one -- from any thread, even while the first is still waiting -- gets the same answer.
:func:`read_all` runs calls on a small thread pool (``WORKERS`` at a time: enough to hide latency, few enough
that ARM's per-subscription read throttling is not provoked; 429 with Retry-After is retried anyway).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from harness.collect.arm_api import ArmGet
from harness.collect.retrying import LEDGER
from harness.facts import Fetched

# ARM's read bucket is 250 per subscription, principal and region, refilled at 25 a second (learn.microsoft.com,
# "Understand how Azure Resource Manager throttles requests"): a burst of 50 reads is a fifth of it and reads an
# inventory's credential lists of 50 identities in one round trip; a 429 with Retry-After is retried anyway.
# RequestsArm's sessions keep as many connections (harness.collect.retrying.POOL_CONNECTIONS).
WORKERS = 50
KUBE_WORKERS = 8  # the kubernetes client keeps 5 connections per core (Configuration.connection_pool_maxsize)
T = TypeVar("T")
R = TypeVar("R")


class RunCache:
    """An ArmGet that asks each (URL, body) once; thread-safe. Other attributes (``caller_claims``, ...) are
    the wrapped seam's."""

    def __init__(self, api: ArmGet) -> None:
        self._api = api
        self._lock = threading.Lock()
        self._answers: dict[tuple[str, str | None], Future[Fetched]] = {}
        self.sent = 0  # calls that went out (for tests and benchmarks)

    def __call__(self, path_or_url: str, body: dict[str, Any] | None = None) -> Fetched:
        key = (path_or_url, None if body is None else json.dumps(body, sort_keys=True, default=str))
        with self._lock:
            answer = self._answers.get(key)
            first = answer is None
            if answer is None:
                answer = self._answers[key] = Future()
                self.sent += 1
        if first:
            try:
                answer.set_result(self._api(path_or_url, body))
            except BaseException as exc:
                answer.set_exception(exc)
                raise
        fetched = answer.result()
        return dataclasses.replace(
            fetched, body=copy.deepcopy(fetched.body)
        )  # callers may keep and change it

    def prime(self, path_or_url: str, body: dict[str, Any] | None, answer: Fetched) -> None:
        """Answer later calls for (``path_or_url``, ``body``) with ``answer`` (known from a wider read), unless
        that call was already made."""
        key = (path_or_url, None if body is None else json.dumps(body, sort_keys=True, default=str))
        with self._lock:
            if key not in self._answers:
                known: Future[Fetched] = Future()
                known.set_result(answer)
                self._answers[key] = known

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # not set yet (copying): never recurse into ourselves
            raise AttributeError(name)
        return getattr(self._api, name)


def cached(api: ArmGet | None) -> ArmGet | None:
    """``api`` behind a per-run cache (itself when it already is one)."""
    if api is None or isinstance(api, RunCache):
        return api
    return RunCache(api)


def read_all(function: Callable[[T], R], items: Iterable[T], workers: int = WORKERS) -> list[R]:
    """``function`` over ``items`` with at most ``workers`` running at once; results in the items' order.
    An exception in one call is raised here, after the others finished; an interrupt cancels those not
    started and is raised once the running ones ended."""
    listed = list(items)
    if len(listed) <= 1 or workers <= 1:
        return [function(item) for item in listed]
    with ThreadPoolExecutor(max_workers=min(workers, len(listed)), thread_name_prefix="wi-read") as pool:
        counted = LEDGER.carried(function)  # its retries count for the caller's scope (a workload, the inventory)
        futures = [pool.submit(counted, item) for item in listed]
        try:
            return [future.result() for future in futures]
        except (KeyboardInterrupt, SystemExit):  # Ctrl-C, SIGTERM: start nothing more, let the running end
            pool.shutdown(wait=True, cancel_futures=True)
            raise
