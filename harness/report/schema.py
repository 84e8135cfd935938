"""The run.json contract (DESIGN.md), as a strict pydantic model: writing validates against it, tests too."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA = "wi-harness/run/v1"
RFC3339 = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Check(_Strict):
    id: str = Field(min_length=1)
    status: Literal["pass", "fail", "warn", "skip"]
    message: str
    evidence: dict[str, Any]


class Finding(_Strict):
    code: str = Field(pattern=r"^[A-Z][A-Z0-9_]+$")
    severity: Literal["error", "warning", "info"]
    layer: str
    message: str
    evidence: dict[str, Any]
    remediation: list[str]


class RunBy(_Strict):
    """Who ran the harness: Kubernetes' SelfSubjectReview {username, uid, groups}, the Azure identity claims of the
    harness's own token {appid, oid, upn, tid, idtyp}; {error} when it could not be told, null when not asked."""

    kubernetes: dict[str, Any] | None = None
    azure: dict[str, Any] | None = None


class Target(_Strict):
    kind: Literal["lab", "cluster"]
    context: str
    cluster: str
    issuer: str
    subscription_id: str = ""
    resource_group: str = ""
    run_by: RunBy | None = None


class Workload(_Strict):
    id: str = Field(pattern=r"^[^/]+/[^/]+$")
    namespace: str
    service_account: str
    verdict: Literal["pass", "fail"]
    checks: list[Check]
    findings: list[Finding]


class RunReport(_Strict):
    schema_: Literal["wi-harness/run/v1"] = Field(alias="schema")
    run_id: str = Field(min_length=1)
    harness_version: str = ""
    started_at: str = Field(pattern=RFC3339)
    finished_at: str = Field(pattern=RFC3339)
    target: Target
    verdict: Literal["pass", "fail"]
    checks: list[Check]
    findings: list[Finding]
    workloads: list[Workload]


def validate_run(document: dict[str, Any]) -> RunReport:
    """Raise pydantic.ValidationError when ``document`` breaks the contract."""
    return RunReport.model_validate(document)


def json_schema() -> dict[str, Any]:
    return RunReport.model_json_schema(by_alias=True)
