"""What the lab's HTTP servers log.

- One line per request under ``lab.access.<service>`` at INFO (``python -m lab up -v``): method, path,
  query with the values of credential-looking parameters replaced by ``***``, status and duration.
  Headers and bodies are never logged, so bearer tokens, client assertions and secrets stay out.
- A request aiohttp cannot even parse (a bad method, an 8 KiB request line) is one WARNING line under
  ``lab.http`` instead of aiohttp's traceback.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl, urlencode

from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web import BaseRequest, StreamResponse

SENSITIVE_PARTS = ("token", "secret", "assertion", "password", "sig", "code", "key")
REDACTED = "***"


def redacted_query(query_string: str) -> str:
    pairs = parse_qsl(query_string, keep_blank_values=True)
    return urlencode(
        [(key, REDACTED if any(part in key.lower() for part in SENSITIVE_PARTS) else value) for key, value in pairs],
        safe="/:,=()'$ *",
    )


class RequestLogger(AbstractAccessLogger):
    """aiohttp's access logger for the lab (``AppRunner(access_log_class=...)``)."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        query = f"?{redacted_query(request.query_string)}" if request.query_string else ""
        self.logger.info("%s %s%s -> %d (%.0f ms)", request.method, request.path, query, response.status,
                         time * 1000)

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)


class _OneLineForMalformedRequests(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            detail = (error.message or "").strip().splitlines()[0] if error.message else ""
            record.msg, record.args, record.exc_info = "malformed request: %s %s", (error.code, detail), None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def server_logger() -> logging.Logger:
    """The logger for aiohttp's connection-level errors (``AppRunner(logger=...)``)."""
    logger = logging.getLogger("lab.http")
    if not any(isinstance(f, _OneLineForMalformedRequests) for f in logger.filters):
        logger.addFilter(_OneLineForMalformedRequests())
    return logger
