"""Bounded retries of transient answers (standard library only).

Transient, so retried with capped exponential backoff (1, 2, 4, 8, 8 ... s) while the run's retry bound lasts:
- HTTP 429 and any 5xx; a ``Retry-After`` (seconds or an HTTP date) is honoured, and never cut short: when it
  reaches past the bound the probe stops instead;
- Entra answers a short wait can change (the probe config's ``retry_aadsts``): a new federated credential not
  yet propagated, AADSTS70021 (what Entra documents for it) or 700211/700213 (what current tenants and the lab
  answer), and AADSTS7000272 (Entra's older copy of the issuer's keys, after a key rotation or for a new issuer).
- a connection reset or a timeout once the request had gone out (the answer was lost on the way), as the
  harness's policy retries read errors (harness/collect/retrying.py).
- a connection refused, at most CONNECT_RETRIES more times (0, 1.6, 3.2 s apart): what azure-core's RetryPolicy,
  under the Azure SDKs and azure-identity, does by default (retry_connect=3, retry_backoff_factor=0.8, no wait
  before the first retry), so a service restarting for a few seconds fails the probe no more than the workload.
Permanent, never retried: any other 4xx or AADSTS code, and a connection that could not be made otherwise (DNS,
TLS, a connect timeout: in a pod that is a network rule or a proxy, which waiting does not change).

The bound is one budget for the whole probe run, started at the first transient answer: no attempt starts after
it, so the run takes at most the bound plus one request timeout longer. Every answer is logged (the step's
evidence: attempts, answers, waited seconds, whether the bound ran out).
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Callable, Iterable, Mapping

from probe.transport import Response, TransportError

TYPE_CHECKING = False  # typing is not imported when the probe runs (probe/__init__.py)
if TYPE_CHECKING:
    from typing import Any

DEFAULT_RETRY_SECONDS = 30.0
MAX_RETRY_SECONDS = 600.0
FIRST_DELAY_SECONDS = 1.0
MAX_DELAY_SECONDS = 8.0
MAX_ATTEMPTS = 30  # a safety net: the bound ends the attempts long before
FIC_PROPAGATION_AADSTS = (70021, 700211, 700213)
METADATA_CACHE_AADSTS = (7000272,)
TRANSIENT_AADSTS = (*FIC_PROPAGATION_AADSTS, *METADATA_CACHE_AADSTS)
TRANSIENT_TRANSPORT = frozenset({"connection_reset", "timeout"})
REFUSED = "connection_refused"
CONNECT_RETRIES = 3  # azure-core RetryPolicy's retry_connect default
CONNECT_BACKOFF = 0.8  # ... and its retry_backoff_factor: backoff * 2 ** (n - 1) before the n-th, none before the first


class RetryPolicy:
    """The run's retry budget; one instance is shared by every exchange of a probe run."""

    __slots__ = ("bound_seconds", "transient_aadsts", "monotonic", "sleep", "deadline")

    def __init__(self, bound_seconds: float = DEFAULT_RETRY_SECONDS,
                 transient_aadsts: frozenset[int] = frozenset(TRANSIENT_AADSTS),
                 monotonic: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 deadline: float | None = None) -> None:
        self.bound_seconds = bound_seconds
        self.transient_aadsts = transient_aadsts
        self.monotonic = monotonic
        self.sleep = sleep
        self.deadline = deadline  # set at the run's first transient answer

    def delay(self, attempt: int, headers: Mapping[str, str]) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None when the bound does not allow another one."""
        now = self.monotonic()
        if self.deadline is None:
            self.deadline = now + self.bound_seconds
        remaining = self.deadline - now
        if attempt >= MAX_ATTEMPTS or remaining < FIRST_DELAY_SECONDS:
            return None
        wanted = retry_after(headers, time.time())
        if wanted is not None:  # at least what the service asked for (and never less than the first step)
            wait = max(wanted, FIRST_DELAY_SECONDS)
            return wait if wait <= remaining else None
        return min(MAX_DELAY_SECONDS, FIRST_DELAY_SECONDS * 2 ** (attempt - 1), remaining)


class RetryLog:
    """What the step's evidence says about the attempts: every answer, in order."""

    __slots__ = ("bound_seconds", "answers", "waited_seconds", "exhausted", "transient_seen", "retry_after_refused")

    def __init__(self, bound_seconds: float) -> None:
        self.bound_seconds = bound_seconds
        self.answers: list[str] = []
        self.waited_seconds = 0.0
        self.exhausted = False  # the last answer was transient, and the bound allowed no other attempt
        self.transient_seen = False
        # the last answer's Retry-After (seconds) when it reached past the bound, so the probe did not wait it
        self.retry_after_refused: float | None = None

    @property
    def attempts(self) -> int:
        return len(self.answers)

    def to_dict(self) -> dict[str, Any]:
        out = {"attempts": self.attempts, "answers": list(self.answers),
               "waited_seconds": round(self.waited_seconds, 3), "bound_seconds": self.bound_seconds,
               "exhausted": self.exhausted}
        if self.retry_after_refused is not None:
            out["retry_after_seconds"] = round(self.retry_after_refused, 3)
        return out


def send_with_retries(
    send: Callable[[], Response], policy: RetryPolicy | None
) -> tuple[Response | TransportError, RetryLog]:
    """Call ``send`` until its answer is not transient or the bound runs out. A TransportError is returned,
    not raised (retried only when the connection was reset or timed out)."""
    log = RetryLog(policy.bound_seconds if policy else 0.0)
    while True:
        try:
            resp: Response | TransportError = send()
        except TransportError as exc:
            log.answers.append(exc.kind)
            refused = exc.kind == REFUSED and not exc.sent
            if policy is None or not (refused or (exc.kind in TRANSIENT_TRANSPORT and exc.sent)):
                return exc, log
            log.transient_seen = True
            wait = connect_delay(policy, log) if refused else policy.delay(log.attempts, {})
            if wait is None:
                log.exhausted = True
                return exc, log
            policy.sleep(wait)
            log.waited_seconds += wait
            continue
        label, transient = classify(resp, policy.transient_aadsts if policy else frozenset())
        log.answers.append(label)
        if not transient:
            return resp, log
        log.transient_seen = True
        wait = policy.delay(log.attempts, resp.headers) if policy else None
        if wait is None:
            log.exhausted = True
            wanted = retry_after(resp.headers, time.time()) if policy else None
            if policy is not None and wanted is not None and policy.deadline is not None \
                    and wanted > policy.deadline - policy.monotonic():
                log.retry_after_refused = wanted
            return resp, log
        policy.sleep(wait)  # type: ignore[union-attr]  # wait is None without a policy
        log.waited_seconds += wait


def connect_delay(policy: RetryPolicy, log: RetryLog) -> float | None:
    """Seconds before another attempt after ``log``'s latest refused connection, or None: azure-core's backoff
    for its consecutive connection errors (0 s, then 1.6, 3.2), at most CONNECT_RETRIES of them, within the run's
    bound."""
    refused = 0
    for answer in reversed(log.answers):
        if answer != REFUSED:
            break
        refused += 1
    if refused > CONNECT_RETRIES:
        return None
    now = policy.monotonic()
    if policy.deadline is None:
        policy.deadline = now + policy.bound_seconds
    wait = 0.0 if refused <= 1 else CONNECT_BACKOFF * 2 ** (refused - 1)
    return wait if now + wait <= policy.deadline else None


def classify(resp: Response, transient_aadsts: Iterable[int]) -> tuple[str, bool]:
    """A short label of the answer (``HTTP 503``, ``AADSTS700213``) and whether it is transient."""
    if resp.status == 429 or 500 <= resp.status <= 599:
        return f"HTTP {resp.status}", True
    code = aadsts_code(resp.body) if resp.status >= 400 else None
    if code is not None:
        return f"AADSTS{code}", code in set(transient_aadsts)
    return f"HTTP {resp.status}", False


def aadsts_code(body: bytes) -> int | None:
    """The first of Entra's ``error_codes`` in a JSON error body."""
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    codes = payload.get("error_codes") if isinstance(payload, dict) else None
    if isinstance(codes, list) and codes and isinstance(codes[0], int) and not isinstance(codes[0], bool):
        return codes[0]
    return None


def retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """``Retry-After`` as seconds to wait: delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    value = headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment is None or moment.tzinfo is None:
        return None
    return max(0.0, moment.timestamp() - now)
