"""Orchestration: config, env, token, exchange, access steps in order, with the skip chain."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from probe.access import access_step
from probe.config import ConfigError, load_raw, parse, resolve_trust, ssl_context
from probe.report import StepLog, StepOutcome, document, failed, passed
from probe.steps import TOKEN_FILE_ENV, Context, env_step, exchange_step, token_step
from probe.transport import http_transport

TYPE_CHECKING = False  # typing is not imported when the probe runs (probe/__init__.py)
if TYPE_CHECKING:
    from typing import Any

    from probe.sdk import SdkCheck
    from probe.transport import Transport


class ConfigSource:
    __slots__ = ("config_json", "config_file", "error")

    def __init__(self, config_json: str | None = None, config_file: str | None = None,
                 error: ConfigError | None = None) -> None:
        self.config_json = config_json
        self.config_file = config_file
        self.error = error  # a command-line problem found before the run


class RunResult:
    __slots__ = ("doc", "sensitive", "config_error")

    def __init__(self, doc: dict[str, Any], sensitive: set[str] | None = None,
                 config_error: ConfigError | None = None) -> None:
        self.doc = doc
        self.sensitive = set() if sensitive is None else sensitive
        self.config_error = config_error


def run_probe(
    source: ConfigSource,
    environ: Mapping[str, str],
    transport: Transport | None = None,
    sdk_check: SdkCheck | None = None,
    clock: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> RunResult:
    """Run every step and return the document (not yet rendered) plus what must be scrubbed from it."""
    started = clock()
    log = StepLog(monotonic)
    ctx = Context(environ=environ, transport=transport or _no_transport, clock=clock, sdk_check=sdk_check,
                  monotonic=monotonic, sleep=sleep)
    errors: list[ConfigError] = []
    log.run("config", lambda: _config_step(ctx, source, transport is None, errors))
    log.run("env", lambda: env_step(ctx))
    if ctx.env(TOKEN_FILE_ENV):
        log.run("token", lambda: token_step(ctx))
    else:
        log.skip("token", "because env failed")
    log.run("exchange", lambda: exchange_step(ctx), deps=("config", "env", "token"))
    for index, check in enumerate(ctx.config.checks if ctx.config else ()):
        extra = {"index": index, "kind": check.kind, "target": check.target(), "expect": check.expect,
                 "outcome": None}
        log.run("access", lambda check=check: access_step(ctx, check), deps=("exchange",), extra=extra)
    doc = document(log, environ, started, clock())
    return RunResult(doc, ctx.sensitive, errors[0] if errors else None)


def _config_step(ctx: Context, source: ConfigSource, build_transport: bool, errors: list[ConfigError]) -> StepOutcome:
    try:
        if source.error is not None:
            raise source.error
        raw, label = load_raw(source.config_json, source.config_file, ctx.environ)
        config = parse(raw, label)
        trust = resolve_trust(config, ctx.environ)
        context = ssl_context(trust)
    except ConfigError as exc:
        errors.append(exc)
        return failed({}, exc.to_dict())
    ctx.config, ctx.trust = config, trust
    if build_transport:
        ctx.transport = http_transport(context)
    evidence = {
        "source": config.source,
        "scope": config.scope,
        "timeout_seconds": config.timeout_seconds,
        "sdk_cross_check": config.sdk_cross_check,
        "retry_seconds": config.retry_seconds,
        "retry_aadsts": list(config.retry_aadsts),
        "checks": len(config.checks),
        "tls_trust": trust.to_dict(),
    }
    return passed(evidence)


def _no_transport(*_: object) -> Any:
    raise RuntimeError("no transport configured")
