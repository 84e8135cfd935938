"""``kind: Status`` errors exactly as the Kubernetes API server renders them."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web


class ApiError(Exception):
    """Raised anywhere in the API server; rendered as a Status body by the error middleware."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if not self.reason:  # metav1.Status omits an empty reason (a webhook's denial has none)
            del body["reason"]
        if self.details is not None:
            body["details"] = self.details
        return body

    def response(self) -> web.Response:
        return json_body_response(json.dumps(self.status()), self.code)


def json_body_response(text: str, status: int, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON answer with ``Content-Type: application/json`` exactly, as the API server's responsewriters set it
    (the negotiated serializer's media type, no parameters); aiohttp adds ``; charset=utf-8`` to a text body."""
    return web.Response(body=text.encode(), status=status, content_type="application/json", headers=headers)


def resource_ref(plural: str, group: str) -> str:
    """`pods` for the core group, `customresourcedefinitions.apiextensions.k8s.io` otherwise."""
    return f"{plural}.{group}" if group else plural


def not_found(plural: str, group: str, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{resource_ref(plural, group)} "{name}" not found',
                    {"name": name, "group": group, "kind": plural} if group else {"name": name, "kind": plural})


def already_exists(plural: str, group: str, name: str) -> ApiError:
    details = {"name": name, "kind": plural}
    if group:
        details["group"] = group
    return ApiError(409, "AlreadyExists", f'{resource_ref(plural, group)} "{name}" already exists', details)


def conflict(plural: str, group: str, name: str, why: str) -> ApiError:
    details = {"name": name, "kind": plural}
    if group:
        details["group"] = group
    return ApiError(
        409, "Conflict",
        f'Operation cannot be fulfilled on {resource_ref(plural, group)} "{name}": {why}', details,
    )


def invalid(kind: str, group: str, name: str, causes: list[tuple[str, str, str]]) -> ApiError:
    """422 Invalid. ``causes`` are (reason, field, message), e.g. ("FieldValueInvalid", "metadata.name", "Invalid value: ...")."""
    parts = [f"{field}: {message}" for _, field, message in causes]
    summary = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    details: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "causes": [{"reason": reason, "message": message, "field": field} for reason, field, message in causes],
    }
    if group:
        details["group"] = group
    return ApiError(422, "Invalid", f'{kind} "{name}" is invalid: {summary}', details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def forbidden(message: str, name: str = "", plural: str = "", group: str = "") -> ApiError:
    details: dict[str, Any] = {"kind": plural} if plural else {}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    return ApiError(403, "Forbidden", message, details or None)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")
