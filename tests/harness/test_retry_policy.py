"""The harness's retry policy (harness/collect/retrying.py) through a real ``requests`` session against a
loopback server: which answers are retried, how long it waits, the bound, and the ledger kept as evidence."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from harness.collect import retrying
from harness.collect.retrying import RetryLedger, ServicePolicy, mount_retries
from harness.facts import SLOW_ERROR
from probe import retry as probe_retry

FAST = ServicePolicy("arm", bound_seconds=5.0, first_delay=0.05, max_delay=0.2)


class Script(BaseHTTPRequestHandler):
    answers: list[tuple[int, dict[str, str]] | str] = []
    seen: list[str] = []

    def _answer(self) -> None:
        type(self).seen.append(self.command)
        answer = type(self).answers.pop(0) if type(self).answers else (200, {})
        if answer == "slow":  # took the request, and no answer before the client's read timeout (it has gone)
            time.sleep(0.6)
            return
        if answer == "reset":  # the connection dies before any answer
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            self.connection.close()
            return
        assert isinstance(answer, tuple)
        status, headers = answer
        body = b'{"ok": true}' if status == 200 else b'{"error": {"code": "x", "message": "y"}}'
        self.send_response(status)
        for key, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Script)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    Script.seen = []
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def session(ledger: RetryLedger, policy: ServicePolicy = FAST) -> requests.Session:
    return mount_retries(requests.Session(), policy.service, ledger, policy)


def test_the_harness_uses_the_probes_numbers() -> None:
    assert retrying.FIRST_DELAY_SECONDS == probe_retry.FIRST_DELAY_SECONDS
    assert retrying.MAX_DELAY_SECONDS == probe_retry.MAX_DELAY_SECONDS
    assert retrying.BOUND_SECONDS == probe_retry.DEFAULT_RETRY_SECONDS
    assert {429, 500, 502, 503, 504} <= retrying.RETRY_STATUSES


def test_throttling_and_unavailable_are_retried_and_counted(server: str) -> None:
    Script.answers = [(429, {"Retry-After": "1"}), (503, {}), (200, {})]
    ledger = RetryLedger()
    started = time.monotonic()
    response = session(ledger).post(f"{server}/query", json={"q": 1}, timeout=5)
    assert response.status_code == 200 and Script.seen == ["POST"] * 3
    assert time.monotonic() - started >= 1.0  # Retry-After honoured
    assert [e["answer"] for e in ledger.entries] == ["HTTP 429", "HTTP 503"]
    assert ledger.summary() == {"arm": {"retries": 2, "answers": {"HTTP 429": 1, "HTTP 503": 1}}}


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409])
def test_permanent_answers_are_not_retried(server: str, status: int) -> None:
    Script.answers = [(status, {"Retry-After": "1"}), (200, {})]
    ledger = RetryLedger()
    assert session(ledger).get(f"{server}/x", timeout=5).status_code == status
    assert Script.seen == ["GET"] and ledger.entries == []


def test_a_retry_after_past_the_bound_returns_the_answer_at_once(server: str) -> None:
    Script.answers = [(429, {"Retry-After": "60"}), (200, {})]
    ledger = RetryLedger()
    started = time.monotonic()
    assert session(ledger).get(f"{server}/x", timeout=5).status_code == 429
    assert time.monotonic() - started < 2 and Script.seen == ["GET"] and ledger.entries == []


def test_the_bound_ends_the_retries(server: str) -> None:
    Script.answers = [(503, {})] * 50
    ledger = RetryLedger()
    policy = ServicePolicy("kube", bound_seconds=0.5, first_delay=0.1, max_delay=0.2)
    started = time.monotonic()
    assert session(ledger, policy).get(f"{server}/x", timeout=5).status_code == 503
    assert time.monotonic() - started < 1.5
    assert 2 <= len(ledger.entries) == len(Script.seen) - 1 < 8


def test_a_connection_reset_is_retried(server: str) -> None:
    Script.answers = ["reset", (200, {})]
    ledger = RetryLedger()
    assert session(ledger).get(f"{server}/x", timeout=5).status_code == 200
    assert len(Script.seen) == 2 and ledger.entries[0]["answer"] in {"connection reset", "RemoteDisconnected",
                                                                      "ProtocolError"}


def test_a_closed_port_is_reported_at_once() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ledger = RetryLedger()
    with pytest.raises(requests.ConnectionError):
        session(ledger).get(f"http://127.0.0.1:{port}/x", timeout=2)
    assert ledger.entries == []


def test_the_kube_client_gets_the_kube_policy(tmp_path: object) -> None:
    from kubernetes import client

    retry = retrying.retry_for("kube")
    configuration = client.Configuration()
    configuration.retries = retry
    pool = client.ApiClient(configuration).rest_client.pool_manager
    assert pool.connection_pool_kw["retries"].policy.service == "kube"


def test_retries_made_for_a_workload_are_counted_for_it_and_in_its_checks_evidence() -> None:
    from harness.checks.model import CheckResult
    from harness.checks.workload import with_harness_retries

    ledger = RetryLedger()
    with ledger.scope("run-1 finance/backend-sa"):
        ledger.record("kube", "GET", "https://kube/api/v1/namespaces/finance/serviceaccounts/backend-sa", "HTTP 503")
        ledger.record("arm", "GET", "https://arm/subscriptions/s/identity", "HTTP 429")
        ledger.record("arm", "GET", "https://arm/subscriptions/s/identity/fics", "HTTP 429")
        other = threading.Thread(target=ledger.record, args=("arm", "GET", "https://arm/x", "HTTP 429"))
        other.start()
        other.join()  # another thread: not this workload's
    ledger.record("kube", "GET", "https://kube/api/v1/pods", "HTTP 503")  # outside any workload
    counted = ledger.scoped("run-1 finance/backend-sa")
    assert counted == {"kube": 1, "arm": 2} and ledger.counts() == {"kube": 2, "arm": 3}
    checks = [CheckResult(check_id, "pass", "") for check_id in
              ("sa.exists", "identity.matches", "token.subject", "access.keyvault:finance-kv/db-password")]
    evidence = {c.id: c.evidence.get("harness_retries") for c in with_harness_retries(checks, counted)}
    assert evidence == {"sa.exists": {"kube": 1}, "identity.matches": {"arm": 2}, "token.subject": None,
                        "access.keyvault:finance-kv/db-password": {"arm": 2}}


def test_retries_in_a_pool_or_thread_started_within_a_scope_count_for_it() -> None:
    """The inventory reads identities in a pool (collect/cache.py read_all) and Graph's applications in a thread:
    their retries were counted for no section (a thread has its own scope, none at first). Carried, they count for
    the scope open where the pool or thread was started."""
    from harness.collect.cache import read_all
    from harness.collect.retrying import LEDGER

    ledger = RetryLedger()
    with ledger.scope("run-1 inventory"):
        read_all(ledger.carried(lambda n: ledger.record("arm", "GET", f"https://arm/{n}", "HTTP 503")), [1, 2, 3])
        thread = threading.Thread(target=ledger.carried(ledger.record), args=("graph", "GET", "https://g/", "HTTP 429"))
        thread.start()
        thread.join()
    assert ledger.scoped("run-1 inventory") == {"arm": 3, "graph": 1}
    with LEDGER.scope("run-2 inventory"):  # the run's pool carries its caller's scope by itself
        read_all(lambda n: LEDGER.record("graph", "GET", f"https://graph/{n}", "HTTP 429"), [1, 2])
    assert LEDGER.scoped("run-2 inventory") == {"graph": 2}


def test_an_arm_slower_than_its_read_timeout_is_named_slow_and_not_asked_again(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """By hand (lab ctl fault arm --latency-ms 31000, one workload): every ARM read was AZURE_UNREACHABLE 'could
    not reach ...: the connection timed out' with curl and proxy advice, and each waited the 30 s read timeout
    twice (a retry), so the run took 5 minutes. A read timeout is the service, and the next calls answer at once."""
    from test_caller import Credential, azure

    from harness.collect import arm_api

    monkeypatch.setattr(arm_api, "TIMEOUT", 0.2)
    Script.answers = ["slow", "slow", "slow", "slow"]
    client = arm_api.RequestsArm(azure(), credential=Credential())
    client.base_url = server
    client._session = session(RetryLedger(), ServicePolicy("arm", bound_seconds=0.5, first_delay=0.05,
                                                           max_delay=0.1))
    first = client("/subscriptions/x")
    assert first.code == SLOW_ERROR and first.status is None, first  # not NETWORK_ERROR: no AZURE_UNREACHABLE
    assert first.describe() == first.error  # the reason, not 'no response from <url>' before it
    assert first.error == ("ARM at " + server.removeprefix("http://") + " took the request and did not answer "
                           "within 0.2 s, through the harness's retries: the service is slow or failing")
    asked = len(Script.seen)
    assert asked >= 2  # retried once at least
    started = time.monotonic()
    second = client("/subscriptions/y")
    assert time.monotonic() - started < 0.1 and len(Script.seen) == asked
    assert second.error == first.error + " (not asked again this run)"


def test_an_api_server_slower_than_its_read_timeout_is_not_asked_again() -> None:
    """By hand (lab ctl fault kube --latency-ms 31000, one workload): each Kubernetes call waited its 30 s read
    timeout and a retry, the run passed 4 minutes unfinished and its SIGTERM clean-up took 3 more. A read timeout
    through the retries is remembered, as a connection never made already was: later calls fail at once."""
    from urllib3.exceptions import MaxRetryError, ReadTimeoutError

    from harness.collect.kube_api import KubeError, OfficialKubeApi

    api = OfficialKubeApi.__new__(OfficialKubeApi)
    api._unreachable, api.server = None, "https://127.0.0.1:6443"
    failure = api._no_answer(MaxRetryError(None, "/api/v1/namespaces", ReadTimeoutError(None, "/", "read timed out")))
    assert failure.message == ("the API server https://127.0.0.1:6443 took the request and did not answer within "
                               "30 s, through the harness's retries: it is overloaded or failing (not asked again "
                               "this run)")
    with pytest.raises(KubeError) as raised:
        api._fail_fast()
    assert raised.value.failure is failure
