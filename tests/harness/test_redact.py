"""Redaction: no raw token or secret value survives into anything the harness prints or writes."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import jwt
from fakeworld import SECRET_VALUES, World

from harness.redact import REDACTED, REDACTED_JWT, Redactor, contains_secret, fingerprint
from harness.report.run_json import build_run_from_results, rfc3339

TOKEN = jwt.encode({"sub": "system:serviceaccount:a:b"}, "k" * 32, algorithm="HS256")


def test_fingerprint_is_short_and_stable() -> None:
    assert fingerprint("abc") == fingerprint(b"abc") == "ba7816bf8f01"


def test_jwts_and_registered_secrets_are_scrubbed_deeply() -> None:
    redact = Redactor(["client-secret-value", "short"])
    value = {"a": [f"token {TOKEN} end", {"b": "client-secret-value!"}], "n": 3, "t": ("x", "short")}
    out = redact(value)
    assert out == {"a": [f"token {REDACTED_JWT} end", {"b": f"{REDACTED}!"}], "n": 3, "t": ["x", "short"]}
    assert contains_secret(json.dumps(out), ["client-secret-value"]) == []
    assert contains_secret(f"x {TOKEN}", []) == ["jwt"]


def test_a_whole_run_report_holds_no_token_and_no_secret(run_world: Callable[..., Any]) -> None:
    results, config = run_world(World.healthy())
    doc = build_run_from_results("r", rfc3339(), rfc3339(), results)
    text = json.dumps(doc)
    assert contains_secret(text, [*SECRET_VALUES.values(), *config.secrets()]) == []
    assert "eyJ" not in text
    finance = {c["id"]: c for c in doc["workloads"][0]["checks"]}
    assert len(finance["token.readable"]["evidence"]["fingerprint"]) == 12
    assert finance["token.subject"]["evidence"]["sub"] == "system:serviceaccount:finance:backend-sa"
    assert finance["access.keyvault:finance-kv/db-password"]["evidence"]["value_present"] is True


def test_text_skips_the_patterns_only_where_they_cannot_match() -> None:
    """The substring tests before each regular expression change no answer: every pattern applied to every string
    gives the same text."""
    from harness.redact import _JWT_RE, mask_userinfo

    secrets = ["client-secret-value", "pass@word-1234"]
    redact = Redactor(secrets)
    samples = [
        "", "plain", f"{TOKEN}", f"Bearer {TOKEN}.", "eyJ.x.y", "aeyJb.c.d e", "eyJonly", "x@y", "a://b",
        "HTTPS://User:Pw@host/p", "git+ssh://u@h:22/r", "mailto:someone@example.com", "https://h/a@b",
        "https://u:client-secret-value@h/", "prefix pass@word-1234 suffix", "ftp://a@b://c@d", "://@",
        f"https://x:{TOKEN}@h/",
    ]

    def every_pattern(value: str) -> str:
        for secret in sorted(secrets, key=len, reverse=True):
            value = value.replace(secret, REDACTED)
        return mask_userinfo(_JWT_RE.sub(REDACTED_JWT, value))

    for sample in samples:
        assert redact.text(sample) == every_pattern(sample), sample


def test_mask_userinfo_scans_for_its_hint_only_to_skip_text_without_a_match() -> None:
    from harness.redact import _USERINFO_RE, mask_userinfo

    samples = ["", "x@y", "a://b", "HTTPS://User:Pw@host/p", "git+ssh://u@h:22/r", "https://h/a@b", "https://h?q=a@b",
               "https://h#a@b", "a://b c@d", "a://b\t@c", "ftp://a@b://c@d", "://@", "1a://u@h", "é://u@h",
               "see https://u:p@h/ and http://v@w", "https://u:p@ss@h/"]
    for sample in samples:
        assert mask_userinfo(sample) == _USERINFO_RE.sub(lambda m: f"{m.group(1)}{REDACTED}@", sample), sample
