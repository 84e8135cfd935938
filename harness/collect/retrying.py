"""One retry policy per service the harness calls, applied through urllib3's ``Retry`` (which ``requests`` and the
``kubernetes`` client both run on), with the numbers the probe uses for the same answers (probe/retry.py).

Transient, so retried with capped exponential backoff (1, 2, 4, 8, 8 ... s) within a total bound per call:
HTTP 429 (its ``Retry-After`` honoured, never cut short: when it reaches past the bound the answer is returned
as it is), 500/502/503/504, and a connection reset or a read timeout once the request had gone out. Permanent,
so reported at once: any other 4xx, an AADSTS code, and a connection that could not be opened (refused, DNS,
TLS, a connect timeout: a service that is down or a network rule; the kube client then fails fast).

Every retry is recorded in a :class:`RetryLedger` (service, method, path, the answer that was retried), which
the run keeps as evidence.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from urllib3.exceptions import MaxRetryError, ResponseError
from urllib3.util.retry import Retry

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# The probe's numbers (probe/retry.py FIRST_DELAY_SECONDS, MAX_DELAY_SECONDS, DEFAULT_RETRY_SECONDS).
FIRST_DELAY_SECONDS = 1.0
MAX_DELAY_SECONDS = 8.0
BOUND_SECONDS = 30.0
MAX_RETRIES = 10  # a safety net: the bound ends the attempts first


@dataclass(frozen=True)
class ServicePolicy:
    """How one service's transient answers are retried."""

    service: str
    bound_seconds: float = BOUND_SECONDS
    first_delay: float = FIRST_DELAY_SECONDS
    max_delay: float = MAX_DELAY_SECONDS
    connect_retries: int = 0  # a connection that could not be opened: down, or a network rule
    # POST is retried too: a 429/503 means the API server, ARM or Resource Graph did not act on it, and the
    # creates the harness sends are named, so a retried one that had landed answers 409 (handled by callers).
    methods: frozenset[str] = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"})


# Lab tests that must not wait out the real backoffs scale them down (0 < factor <= 1; the bound is kept).
DELAY_SCALE_ENV = "WI_HARNESS_RETRY_DELAY_SCALE"


def _delay_scale() -> float:
    try:
        factor = float(os.environ.get(DELAY_SCALE_ENV, "1"))
    except ValueError:
        return 1.0
    return factor if 0 < factor <= 1 else 1.0


def policies() -> dict[str, ServicePolicy]:
    scale = _delay_scale()
    return {name: ServicePolicy(name, first_delay=FIRST_DELAY_SECONDS * scale, max_delay=MAX_DELAY_SECONDS * scale)
            for name in ("kube", "issuer", "arm", "graph", "entra", "keyvault")}


@dataclass
class RetryLedger:
    """Every retry of a run, per service: the evidence behind "retried N times". A retry made while a
    :meth:`scope` is open in that thread (a workload's collection) is also counted for that scope."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _local: threading.local = field(default_factory=threading.local, repr=False)

    def record(self, service: str, method: str | None, url: str | None, answer: str) -> None:
        with self._lock:
            self.entries.append({"service": service, "method": method or "", "path": urlsplit(url or "").path,
                                 "answer": answer, "scope": getattr(self._local, "scope", None)})

    @contextmanager
    def scope(self, name: str | None) -> Iterator[None]:
        """Count this thread's retries for ``name`` (None: for none) until the block ends."""
        outer = getattr(self._local, "scope", None)
        self._local.scope = name
        try:
            yield
        finally:
            self._local.scope = outer

    def carried(self, function: Callable[..., Any]) -> Callable[..., Any]:
        """``function`` counting its retries for the scope open in this thread when it is made: what a pool or
        thread started within a scope runs (a thread has its own scope, none at first)."""
        name = getattr(self._local, "scope", None)

        def in_scope(*args: Any, **kwargs: Any) -> Any:
            with self.scope(name):
                return function(*args, **kwargs)

        return in_scope

    def scoped(self, name: str) -> dict[str, int]:
        """``{service: retries}`` made within ``name``'s scopes."""
        with self._lock:
            found: dict[str, int] = {}
            for entry in self.entries:
                if entry.get("scope") == name:
                    found[entry["service"]] = found.get(entry["service"], 0) + 1
            return found

    def counts(self) -> dict[str, int]:
        with self._lock:
            found: dict[str, int] = {}
            for entry in self.entries:
                found[entry["service"]] = found.get(entry["service"], 0) + 1
            return found

    def summary(self) -> dict[str, Any]:
        """``{service: {"retries": n, "answers": {answer: n}}}`` for the run's evidence."""
        with self._lock:
            found: dict[str, Any] = {}
            for entry in self.entries:
                item = found.setdefault(entry["service"], {"retries": 0, "answers": {}})
                item["retries"] += 1
                item["answers"][entry["answer"]] = item["answers"].get(entry["answer"], 0) + 1
            return found


LEDGER = RetryLedger()  # the process's ledger; a run reads it at its end


class BoundedRetry(Retry):
    """urllib3's Retry with the probe's backoff (1 s before the first retry, not 0), a total time bound per
    call (started at the first retry), and every retry written to a ledger."""

    def __init__(self, *args: Any, policy: ServicePolicy | None = None, ledger: RetryLedger | None = None,
                 deadline: float | None = None, monotonic: Callable[[], float] = time.monotonic,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.policy = policy or ServicePolicy("unknown")
        self.ledger = ledger
        self.deadline = deadline
        self.monotonic = monotonic

    def new(self, **kw: Any) -> BoundedRetry:
        made = super().new(**kw)
        made.policy, made.ledger, made.deadline, made.monotonic = (
            self.policy, self.ledger, self.deadline, self.monotonic)
        return made

    def get_backoff_time(self) -> float:
        retries = len(self.history)
        if retries == 0:
            return 0.0
        return float(min(self.policy.max_delay, self.policy.first_delay * 2 ** (retries - 1)))

    def increment(self, method: str | None = None, url: str | None = None, response: Any = None,
                  error: Exception | None = None, _pool: Any = None, _stacktrace: Any = None) -> BoundedRetry:
        made = super().increment(method, url, response, error, _pool, _stacktrace)
        now = self.monotonic()
        if made.deadline is None:
            made.deadline = now + self.policy.bound_seconds
        wait = made.get_backoff_time()
        if response is not None and self.respect_retry_after_header:
            wait = max(wait, self.get_retry_after(response) or 0.0)
        answer = f"HTTP {response.status}" if response is not None and response.status else _error_kind(error)
        if now + wait > made.deadline:  # the bound would be passed: the last answer stands
            raise MaxRetryError(_pool, url or "", error or ResponseError(f"retry bound reached after {answer}"))
        if self.ledger is not None:
            self.ledger.record(self.policy.service, method, url, answer)
        return made

    def sleep(self, response: Any = None) -> None:
        if self.respect_retry_after_header and response is not None:
            wanted = self.get_retry_after(response)
            if wanted is not None:
                time.sleep(max(wanted, self.get_backoff_time()))
                return
        time.sleep(self.get_backoff_time())


def azure_core_retry_policy_class(service: str, ledger: RetryLedger | None = None) -> type:
    """azure-core's RetryPolicy under ``service``'s policy, for what azure-identity sends (the harness's own token
    requests, which go through azure-core's pipeline, not requests' adapter): azure-core honours any Retry-After
    in full, three times by default (Entra answering 429 with ``Retry-After: 120`` held a run for six minutes);
    here a Retry-After reaching past the call's bound ends the retries and the answer stands, as for urllib3 above,
    and each retry is written to the ledger. The counts, methods and answers retried are the service's policy's
    too: azure-core's own (retry_status=3, so four 429/503 in a row ended a token request, 1 in 625 at a 20 %
    fault rate; no POST retried on a 429 without Retry-After, a 502 or a lost answer) let a transient answer
    end a run's Azure reads as SERVICE_UNAVAILABLE. Given as azure-identity's ``retry_policy_class`` (its
    pipeline builder's own keyword, which the IMDS credential uses for its policy)."""
    from azure.core.pipeline.policies import RetryPolicy

    policy = policies().get(service) or ServicePolicy(service)
    written_to = ledger if ledger is not None else LEDGER

    class BoundedAzureCoreRetry(RetryPolicy):
        def configure_retries(self, options: dict[str, Any]) -> dict[str, Any]:
            settings = super().configure_retries(options)
            settings.update(total=MAX_RETRIES, status=MAX_RETRIES, read=MAX_RETRIES,
                            connect=policy.connect_retries, methods=policy.methods,
                            backoff=policy.first_delay, max_backoff=policy.max_delay,
                            deadline=time.monotonic() + policy.bound_seconds)
            return settings

        def is_retry(self, settings: dict[str, Any], response: Any) -> bool:
            if (response.http_response.status_code not in RETRY_STATUSES
                    or response.http_request.method.upper() not in settings["methods"]):
                return False
            wait = self.get_retry_after(response) or 0.0
            return time.monotonic() + wait <= settings["deadline"]

        def sleep(self, settings: dict[str, Any], transport: Any, response: Any = None) -> None:
            if response is not None:
                request = response.http_request
                written_to.record(policy.service, request.method, request.url,
                                  f"HTTP {response.http_response.status_code}")
            else:  # a connection reset or a timeout, retried by azure-core after it raised
                written_to.record(policy.service, None, None, "no answer")
            super().sleep(settings, transport, response=response)

    return BoundedAzureCoreRetry


def _error_kind(error: Exception | None) -> str:
    if error is None:
        return "no answer"
    text = f"{type(error).__name__}: {error}".lower()
    if "reset" in text:
        return "connection reset"
    if "timed out" in text or "timeout" in text:
        return "timeout"
    return type(error).__name__


def retry_for(service: str, ledger: RetryLedger | None = None, policy: ServicePolicy | None = None) -> BoundedRetry:
    """The urllib3 Retry for ``service``'s policy (for ``requests``' HTTPAdapter or the kubernetes client's
    ``Configuration.retries``)."""
    policy = policy or policies().get(service) or ServicePolicy(service)
    return BoundedRetry(
        total=MAX_RETRIES,
        connect=policy.connect_retries,
        read=MAX_RETRIES,
        status=MAX_RETRIES,
        other=0,
        redirect=0,
        raise_on_redirect=False,
        allowed_methods=policy.methods,
        status_forcelist=RETRY_STATUSES,
        backoff_factor=policy.first_delay,
        backoff_max=policy.max_delay,
        raise_on_status=False,
        respect_retry_after_header=True,
        policy=policy,
        ledger=ledger if ledger is not None else LEDGER,
    )


# as many kept connections as harness.collect.cache.WORKERS reads run at once (requests keeps 10)
POOL_CONNECTIONS = 50


def mount_retries(
    session: Any, service: str, ledger: RetryLedger | None = None, policy: ServicePolicy | None = None
) -> Any:
    """``session`` (a requests.Session) with ``service``'s policy on https:// and http://."""
    from requests.adapters import HTTPAdapter

    adapter = HTTPAdapter(max_retries=retry_for(service, ledger, policy), pool_maxsize=POOL_CONNECTIONS)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session
