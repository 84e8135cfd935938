"""Bounded retries in the probe's exchange (probe/retry.py): transient answers are tried again with capped
exponential backoff inside the run's bound, permanent answers never; every attempt is in the evidence.

The probe's one network seam is the transport (a FakeTransport here) and its waits go to a FakeClock: nothing
sleeps for real.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from probe_testkit import (
    ACCOUNT_URL,
    TOKEN_URL,
    FakeClock,
    FakeTransport,
    Handler,
    Run,
    config_json,
    json_response,
    refuse,
)

from probe.config import ConfigError, parse
from probe.retry import RetryPolicy, classify, retry_after, send_with_retries
from probe.transport import Response, TransportError

RunProbe = Callable[..., Run]


def entra_error(code: int, status: int = 401, error: str = "invalid_client") -> Response:
    return json_response(status, {"error": error, "error_description": f"AADSTS{code}: text. Trace ID: x",
                                  "error_codes": [code]})


def answers(*responses: Response | Handler) -> Handler:
    """A token endpoint giving these answers in turn (the last one from then on)."""
    queue = list(responses)

    def handler(method: str, url: str, headers: Mapping[str, str], body: bytes | None, timeout: float) -> Response:
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        return answer(method, url, headers, body, timeout) if callable(answer) else answer

    return handler


# ---------------------------------------------------------------- decisions


@pytest.mark.parametrize(("response", "label", "transient"), [
    (json_response(429, {}), "HTTP 429", True),
    (json_response(500, {}), "HTTP 500", True),
    (Response(503, {}, b"<html>busy</html>"), "HTTP 503", True),
    (entra_error(90033, 503, "temporarily_unavailable"), "HTTP 503", True),
    (entra_error(70021, 400, "invalid_request"), "AADSTS70021", True),
    (entra_error(700211), "AADSTS700211", True),
    (entra_error(700213), "AADSTS700213", True),
    (entra_error(7000272), "AADSTS7000272", True),
    (entra_error(700212), "AADSTS700212", False),
    (entra_error(7002138), "AADSTS7002138", False),
    (entra_error(70025), "AADSTS70025", False),
    (entra_error(700016, 400, "unauthorized_client"), "AADSTS700016", False),
    (entra_error(50166, 400, "invalid_request"), "AADSTS50166", False),
    (json_response(403, {"error": {"code": "Forbidden"}}), "HTTP 403", False),
    (json_response(404, {}), "HTTP 404", False),
    (json_response(200, {"access_token": "x"}), "HTTP 200", False),
])
def test_what_is_transient(response: Response, label: str, transient: bool) -> None:
    assert classify(response, {70021, 700211, 700213, 7000272}) == (label, transient)


def test_the_harness_can_make_the_credential_codes_permanent() -> None:
    assert classify(entra_error(700213), {7000272}) == ("AADSTS700213", False)
    assert classify(entra_error(7000272), {7000272}) == ("AADSTS7000272", True)


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert retry_after({"retry-after": "7"}, 0) == 7
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"}, 1445412480) == 10
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 1445412490) == 0
    assert retry_after({"retry-after": "soon"}, 0) is None
    assert retry_after({}, 0) is None


def policy(clock: FakeClock, bound: float = 30, codes: frozenset[int] = frozenset({700211, 7000272})) -> RetryPolicy:
    return RetryPolicy(bound, codes, clock.monotonic, clock.sleep)


def sender(*responses: Response | TransportError) -> tuple[Callable[[], Response], list[int]]:
    calls: list[int] = []
    queue = list(responses)

    def send() -> Response:
        calls.append(1)
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, TransportError):
            raise answer
        return answer

    return send, calls


def test_backoff_doubles_to_its_cap_and_stops_at_the_bound() -> None:
    clock = FakeClock()
    send, calls = sender(entra_error(7000272))
    resp, log = send_with_retries(send, policy(clock, bound=30))
    assert clock.waits == [1, 2, 4, 8, 8, 7]  # the last wait is what the bound had left
    assert len(calls) == 7 and log.attempts == 7 and log.answers == ["AADSTS7000272"] * 7
    assert log.exhausted and log.waited_seconds == 30 and clock.now == 30
    assert not isinstance(resp, TransportError) and resp.status == 401


def test_a_transient_answer_then_success_stops_retrying() -> None:
    clock = FakeClock()
    ok = json_response(200, {"access_token": "x"})
    send, calls = sender(json_response(503, {}), entra_error(700211), ok)
    resp, log = send_with_retries(send, policy(clock))
    assert log.answers == ["HTTP 503", "AADSTS700211", "HTTP 200"] and not log.exhausted
    assert clock.waits == [1, 2] and log.to_dict() == {"attempts": 3, "answers": log.answers,
                                                      "waited_seconds": 3.0, "bound_seconds": 30,
                                                      "exhausted": False}


def test_permanent_answers_and_network_errors_are_never_retried() -> None:
    for answer in (entra_error(700212), entra_error(700016, 400), json_response(403, {}),
                   TransportError("dns", "Name or service not known"), TransportError("timeout", "connect timeout")):
        clock = FakeClock()
        send, calls = sender(answer)
        _, log = send_with_retries(send, policy(clock))
        assert len(calls) == 1 and clock.waits == [] and not log.transient_seen


def test_a_refused_connection_is_tried_again_as_azure_core_does() -> None:
    """azure-core's RetryPolicy (under azure-identity and the Azure SDKs) retries a connection error 3 times
    (retry_connect), 0, 1.6 and 3.2 s apart (retry_backoff_factor 0.8): a service restarting for a few seconds."""
    refused = TransportError("connection_refused", "refused")
    clock = FakeClock()
    send, calls = sender(refused, refused, json_response(200, {}))
    resp, log = send_with_retries(send, policy(clock))
    assert isinstance(resp, Response) and resp.status == 200 and clock.waits == [0.0, 1.6]
    assert log.answers == ["connection_refused", "connection_refused", "HTTP 200"] and not log.exhausted
    clock = FakeClock()
    send, calls = sender(refused)
    resp, log = send_with_retries(send, policy(clock))
    assert isinstance(resp, TransportError) and len(calls) == 4 and clock.waits == [0.0, 1.6, 3.2]
    assert log.exhausted and log.transient_seen


def test_retry_after_is_honoured_and_never_cut_short() -> None:
    clock = FakeClock()
    throttled = Response(429, {"retry-after": "5"}, b"{}")
    send, calls = sender(throttled, json_response(200, {}))
    _, log = send_with_retries(send, policy(clock))
    assert clock.waits == [5] and log.answers == ["HTTP 429", "HTTP 200"]

    clock = FakeClock()
    send, calls = sender(Response(429, {"retry-after": "60"}, b"{}"))
    _, log = send_with_retries(send, policy(clock, bound=30))
    assert clock.waits == [] and len(calls) == 1 and log.exhausted  # 60 s is past the bound: stop, do not hammer
    assert log.to_dict()["retry_after_seconds"] == 60  # and the evidence says what it did not wait


def test_no_bound_means_one_attempt_and_says_so() -> None:
    clock = FakeClock()
    send, calls = sender(entra_error(700211))
    _, log = send_with_retries(send, policy(clock, bound=0))
    assert len(calls) == 1 and log.exhausted and log.transient_seen and log.to_dict()["bound_seconds"] == 0


def test_the_bound_is_one_budget_for_the_whole_run() -> None:
    clock = FakeClock()
    shared = policy(clock, bound=10)
    send, _ = sender(entra_error(7000272))
    _, first = send_with_retries(send, shared)
    assert first.exhausted and clock.now == 10
    send, calls = sender(json_response(503, {}))
    _, second = send_with_retries(send, shared)
    assert len(calls) == 1 and second.exhausted


# ---------------------------------------------------------------- the probe end to end


def test_a_propagating_credential_passes_after_retries_counted_in_the_evidence(
    run_probe: RunProbe, environ: dict[str, str], entra_ok: Handler, fake_clock: FakeClock
) -> None:
    transport = FakeTransport({TOKEN_URL: answers(entra_error(700211), entra_error(700213), entra_ok)})
    run = run_probe([], environ, transport)
    step = run.step("exchange")
    assert step["status"] == "pass" and len(transport.calls) == 3
    assert step["evidence"]["retries"] == {"attempts": 3, "answers": ["AADSTS700211", "AADSTS700213", "HTTP 200"],
                                           "waited_seconds": 3.0, "bound_seconds": 30.0, "exhausted": False}
    assert fake_clock.waits == [1, 2]


def test_a_stale_key_copy_fails_after_the_bound_with_every_attempt_counted(
    run_probe: RunProbe, environ: dict[str, str], fake_clock: FakeClock
) -> None:
    transport = FakeTransport({TOKEN_URL: answers(entra_error(7000272))})
    run = run_probe(config_json(retry_seconds=12), environ, transport)
    step = run.step("exchange")
    assert step["status"] == "fail" and step["error"]["aadsts"] == "AADSTS7000272"
    retries = step["evidence"]["retries"]
    assert retries["attempts"] == 5 and retries["exhausted"] and retries["waited_seconds"] == 12
    assert fake_clock.waits == [1, 2, 4, 5]
    config = run.step("config")["evidence"]
    assert config["retry_seconds"] == 12 and config["retry_aadsts"] == [70021, 700211, 700213, 7000272]


def test_credential_codes_the_harness_calls_permanent_are_tried_once(
    run_probe: RunProbe, environ: dict[str, str], fake_clock: FakeClock
) -> None:
    transport = FakeTransport({TOKEN_URL: answers(entra_error(700213))})
    run = run_probe(config_json(retry_aadsts=[7000272]), environ, transport)
    assert len(transport.calls) == 1 and fake_clock.waits == []
    assert "retries" not in run.step("exchange")["evidence"]


def test_a_successful_first_answer_adds_no_retry_evidence(
    run_probe: RunProbe, environ: dict[str, str], entra_ok: Handler
) -> None:
    run = run_probe([], environ, FakeTransport({TOKEN_URL: entra_ok}))
    assert "retries" not in run.step("exchange")["evidence"]


def test_a_refused_connection_is_retried_then_reported(
    run_probe: RunProbe, environ: dict[str, str], fake_clock: FakeClock
) -> None:
    transport = FakeTransport({TOKEN_URL: refuse})
    run = run_probe([], environ, transport)
    assert len(transport.calls) == 4 and run.step("exchange")["error"]["kind"] == "connection_refused"


def test_an_access_checks_own_exchange_shows_its_retries(
    run_probe: RunProbe, environ: dict[str, str], entra_ok: Handler, fake_clock: FakeClock
) -> None:
    throttled = 0

    def entra(method: str, url: str, headers: Mapping[str, str], body: bytes | None, timeout: float) -> Response:
        nonlocal throttled
        if b"storage.azure.com" in (body or b"") and throttled < 1:
            throttled += 1
            return Response(429, {"retry-after": "2"}, b"{}")
        return entra_ok(method, url, headers, body, timeout)

    def blob(*_: Any) -> Response:
        return Response(200, {"content-type": "text/csv", "etag": '"0x8D"'}, b"")

    check = {"kind": "blob", "account_url": ACCOUNT_URL, "container": "data", "blob": "r.csv", "expect": "allow"}
    run = run_probe(config_json(checks=[check]), environ, FakeTransport({TOKEN_URL: entra, ACCOUNT_URL: blob}))
    token = run.step("access")["evidence"]["token"]
    assert token["retries"]["answers"] == ["HTTP 429", "HTTP 200"] and fake_clock.waits == [2]
    assert run.step("access")["status"] == "pass"


# ---------------------------------------------------------------- config


@pytest.mark.parametrize(("raw", "field"), [
    ({"retry_seconds": -1}, "retry_seconds"),
    ({"retry_seconds": 601}, "retry_seconds"),
    ({"retry_seconds": True}, "retry_seconds"),
    ({"retry_seconds": "30"}, "retry_seconds"),
    ({"retry_aadsts": [500011]}, "retry_aadsts"),
    ({"retry_aadsts": 7000272}, "retry_aadsts"),
    ({"retry_aadsts": [7000272.0]}, "retry_aadsts"),
])
def test_bad_retry_settings_name_their_field(raw: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        parse(raw)
    assert excinfo.value.field == field


def test_retry_defaults_and_round_trip() -> None:
    assert parse({}).retry_seconds == 30 and parse({}).retry_aadsts == (70021, 700211, 700213, 7000272)
    config = parse(json.loads('{"retry_seconds": 0, "retry_aadsts": []}'))
    assert config.retry_seconds == 0 and config.retry_aadsts == ()
