"""Optional cross-check through azure-identity's WorkloadIdentityCredential.

The only module of the probe that imports a third-party package, and only when it is importable. What it needs
besides (importlib.util, logging) is imported when a check runs, not with the probe: every probe process would
pay for them otherwise.
"""

from __future__ import annotations

from collections import namedtuple

from probe.jwtutil import redact

TYPE_CHECKING = False  # typing is not imported when the probe runs (probe/__init__.py)
if TYPE_CHECKING:
    from typing import Any, Protocol

    class SdkCheck(Protocol):
        """Returns ``{"available": False}`` or ``{"available": True, "succeeded": bool, "error": str | None}``,
        and when it failed ``"transient": bool`` (Entra's 429 or 5xx, or a lost answer: worth another attempt)."""

        def __call__(self, req: SdkRequest) -> dict[str, Any]: ...

_MAX_ERROR = 2000


class SdkRequest(namedtuple("SdkRequest", "tenant_id client_id token_file authority_host scope timeout ca_path")):
    """What the credential is built from: strings, ``timeout`` in seconds, ``ca_path`` None for the system's."""

    __slots__ = ()


def sdk_importable() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("azure.identity") is not None
    except (ImportError, ValueError):
        return False


def azure_identity_check(req: SdkRequest) -> dict[str, Any]:
    """Get a token for ``req.scope`` through WorkloadIdentityCredential; report success or redacted error."""
    try:
        from azure.identity import WorkloadIdentityCredential
    except ImportError:
        return {"available": False}
    _quiet_azure_logging()
    kwargs: dict[str, Any] = {
        "tenant_id": req.tenant_id,
        "client_id": req.client_id,
        "token_file_path": req.token_file,
        "authority": req.authority_host,
        "retry_total": 0,
        "connection_timeout": req.timeout,
        "read_timeout": req.timeout,
    }
    if req.ca_path:
        kwargs["connection_verify"] = req.ca_path
    try:
        credential = WorkloadIdentityCredential(**kwargs)
        try:
            credential.get_token(req.scope)
        finally:
            credential.close()
    except Exception as exc:  # the SDK raises many types; all of them are a failed cross-check
        return {"available": True, "succeeded": False, "error": redact(f"{type(exc).__name__}: {exc}")[:_MAX_ERROR],
                "transient": _transient(exc)}
    return {"available": True, "succeeded": True, "error": None}


def _transient(exc: BaseException) -> bool:
    """Entra answered 429 or a 5xx (azure-core's HttpResponseError and ClientAuthenticationError carry the
    response; the text does not always say the status), or the answer was lost once the request had gone out:
    what the probe's own exchange retries (probe/retry.py), so not a disagreement of the SDK's."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(status, int) and not isinstance(status, bool):
        return status == 429 or 500 <= status <= 599
    return type(exc).__name__ == "ServiceResponseError"


def _quiet_azure_logging() -> None:
    """azure-identity logs failures at WARNING; keep them off stderr (the report carries the error)."""
    import logging

    logger = logging.getLogger("azure")
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
