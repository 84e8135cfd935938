"""CustomResourceDefinitions through the real kubectl, as apiextensions-apiserver treats them: a non-structural
schema is refused, custom resources are validated against their version's openAPIV3Schema (422 Invalid with
kube-openapi's texts), unknown fields are pruned, or refused under ``--validate=strict``."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from lab.kube import crdschema

pytestmark = [
    pytest.mark.kubectl,
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed"),
]

Kubectl = Callable[..., Any]
GROUP = "crdtest.example.com"

WIDGET_CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.crdtest.example.com}
spec:
  group: crdtest.example.com
  names: {kind: Widget, listKind: WidgetList, plural: widgets, singular: widget}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        required: [spec]
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: string, enum: [small, large]}
              replicas: {type: integer, minimum: 1, maximum: 10}
              name: {type: string, maxLength: 5, pattern: '^[a-z]+$'}
              port: {x-kubernetes-int-or-string: true}
              note: {type: string, nullable: true}
              tags: {type: array, maxItems: 2, items: {type: string}}
              labels: {type: object, additionalProperties: {type: string}}
              extra: {type: object, x-kubernetes-preserve-unknown-fields: true}
"""


def _widget(name: str, namespace: str, spec: dict[str, Any]) -> str:
    return json.dumps({"apiVersion": f"{GROUP}/v1", "kind": "Widget",
                       "metadata": {"name": name, "namespace": namespace}, "spec": spec})


@pytest.fixture(scope="module")
def namespace(kubectl: Kubectl) -> Iterator[str]:
    name = f"crd-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    kubectl("apply", "-f", "-", input=WIDGET_CRD)
    deadline = time.monotonic() + 10
    while kubectl("get", "widgets", "-n", name, check=False).returncode != 0:
        assert time.monotonic() < deadline, "the Widget CRD was not served"
        time.sleep(0.2)
    yield name
    kubectl("delete", "crd", "widgets.crdtest.example.com", "--wait=false", check=False)
    kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_non_structural_schema_is_refused(kubectl: Kubectl) -> None:
    crd = WIDGET_CRD.replace("widgets", "gadgets").replace("Widget", "Gadget").replace("widget", "gadget")
    crd = crd.replace("        type: object\n        required: [spec]\n", "        required: [spec]\n")
    crd = crd.replace("              tags: {type: array, maxItems: 2, items: {type: string}}",
                      "              tags: {type: array}")
    result = kubectl("create", "-f", "-", input=crd, check=False)
    assert result.returncode == 1
    path = "spec.versions[0].schema.openAPIV3Schema"
    assert result.stderr.strip() == (
        'The CustomResourceDefinition "gadgets.crdtest.example.com" is invalid: \n'
        f"* {path}.properties[spec].properties[tags].items: Required value: must be specified\n"
        f"* {path}.type: Required value: must not be empty at the root"
    )
    missing = crd.replace("    schema:\n      openAPIV3Schema:\n", "    x-schema:\n      openAPIV3Schema:\n")
    result = kubectl("create", "-f", "-", "--validate=false", input=missing, check=False)
    assert result.stderr.strip() == (
        'The CustomResourceDefinition "gadgets.crdtest.example.com" is invalid: '
        f"{path}: Required value: schemas are required"
    )
    assert kubectl("get", "crd", "gadgets.crdtest.example.com", check=False).returncode == 1


def test_custom_resource_values_are_validated(kubectl: Kubectl, namespace: str) -> None:
    bad = _widget("bad", namespace, {"size": "medium", "replicas": "three", "name": "TOOLONGNAME",
                                     "tags": ["a", "b", "c"], "port": 1.5, "labels": {"a": 1}})
    result = kubectl("create", "-f", "-", input=bad, check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        'The Widget "bad" is invalid: \n'
        '* spec.labels.a: Invalid value: "integer": spec.labels.a in body must be of type string: "integer"\n'
        '* spec.name: Too long: may not be more than 5 bytes\n'
        "* spec.name: Invalid value: \"TOOLONGNAME\": spec.name in body should match '^[a-z]+$'\n"
        '* spec.port: Invalid value: "number": spec.port in body must be of type integer,string: "number"\n'
        '* spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"\n'
        '* spec.size: Unsupported value: "medium": supported values: "small", "large"\n'
        "* spec.tags: Too many: 3: must have at most 2 items"
    )
    result = kubectl("create", "-f", "-", input=_widget("low", namespace, {"replicas": 0}), check=False)
    assert result.stderr.strip() == (
        'The Widget "low" is invalid: \n'
        "* spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1\n"
        "* spec.size: Required value"
    )
    good = _widget("good", namespace, {"size": "small", "replicas": 3, "port": "http", "note": None,
                                       "extra": {"anything": [1, {"x": True}]}})
    kubectl("create", "-f", "-", input=good)
    stored = json.loads(kubectl("get", "widget", "good", "-n", namespace, "-o", "json").stdout)
    assert stored["spec"] == {"size": "small", "replicas": 3, "port": "http", "note": None,
                              "extra": {"anything": [1, {"x": True}]}}
    # an update is validated too (kubectl patch sends a merge patch; the patched object is checked)
    result = kubectl("patch", "widget", "good", "-n", namespace, "--type=merge",
                     "-p", '{"spec":{"replicas":11}}', check=False)
    assert result.stderr.strip() == (
        'The Widget "good" is invalid: '
        "spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10"
    )


def test_unknown_fields_are_pruned_or_refused_under_strict(kubectl: Kubectl, namespace: str) -> None:
    body = _widget("pruned", namespace, {"size": "large", "colour": "red", "extra": {"kept": 1}})
    strict = kubectl("create", "-f", "-", input=body, check=False)
    assert strict.returncode == 1
    assert 'strict decoding error: unknown field "spec.colour"' in strict.stderr
    kubectl("create", "-f", "-", "--validate=false", input=body)
    stored = json.loads(kubectl("get", "widget", "pruned", "-n", namespace, "-o", "json").stdout)
    assert stored["spec"] == {"size": "large", "extra": {"kept": 1}}


def test_structural_schema_units() -> None:
    """Errors kubectl's output does not show one by one: nested items, metadata and the extension rules."""
    schema = {"type": "object", "additionalProperties": {"type": "string"}, "properties": {
        "metadata": {"type": "object", "properties": {"labels": {"type": "object"}}},
        "spec": {"type": "object", "properties": {
            "list": {"type": "array", "items": {"properties": {"a": {}}}},
            "ios": {"x-kubernetes-int-or-string": True, "x-kubernetes-preserve-unknown-fields": True},
            "raw": {"x-kubernetes-embedded-resource": True, "x-kubernetes-preserve-unknown-fields": True},
        }}}}
    spec = {"versions": [{"name": "v1", "schema": {"openAPIV3Schema": schema}}]}
    root = "spec.versions[0].schema.openAPIV3Schema"
    assert [f"{field}: {message}" for _, field, message in crdschema.structural_causes(spec)] == [
        f"{root}.additionalProperties: Forbidden: must not be used at the root",
        f"{root}.properties[metadata]: Forbidden: must not specify anything other than name and generateName, "
        "but metadata is implicitly specified",
        f"{root}.properties[spec].properties[ios].x-kubernetes-preserve-unknown-fields: Invalid value: true: "
        "must be false if x-kubernetes-int-or-string is true",
        f"{root}.properties[spec].properties[list].items.properties[a].type: Required value: "
        "must not be empty for specified object fields",
        f"{root}.properties[spec].properties[list].items.type: Required value: "
        "must not be empty for specified array items",
        f"{root}.properties[spec].properties[raw].type: Required value: "
        "must be object if x-kubernetes-embedded-resource is true",
    ]
    value = {"type": "object", "properties": {"n": {"type": "number", "exclusiveMaximum": True, "maximum": 2.5},
                                              "s": {"type": "string", "minLength": 2}}}
    causes = crdschema.value_causes(value, {"metadata": {"name": "x"}, "n": 2.5, "s": "a"})
    assert [f"{field}: {message}" for _, field, message in causes] == [
        "n: Invalid value: 2.5: n in body should be less than 2.5",
        's: Invalid value: "a": s in body should be at least 2 chars long',
    ]


# ---------------------------------------------------------------- TokenReview and SubjectAccessReview

BACKEND_SA = "system:serviceaccount:finance:backend-sa"  # the healthy scenario's workload identity SA


def _create_review(kubectl: Kubectl, review: dict[str, Any], check: bool = True) -> Any:
    # kubectl validates kinds without a PATCH operation client-side from /openapi/v2, which the lab does not serve
    return kubectl("create", "-f", "-", "-o", "json", "--validate=false", input=json.dumps(review), check=check)


def test_token_review(kubectl: Kubectl) -> None:
    token = kubectl("create", "token", "backend-sa", "-n", "finance").stdout.strip()
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
    status = json.loads(_create_review(kubectl, review).stdout)["status"]
    assert status["authenticated"] is True
    assert status["user"]["username"] == BACKEND_SA
    assert status["user"]["groups"] == ["system:serviceaccounts", "system:serviceaccounts:finance",
                                        "system:authenticated"]
    assert status["audiences"]
    # a token for another audience is not one the API server accepts for the audience asked about
    review["spec"]["audiences"] = ["api://AzureADTokenExchange"]
    assert json.loads(_create_review(kubectl, review).stdout)["status"] == {"user": {}}
    review["spec"] = {"token": token[:-4] + "AAAA"}
    assert json.loads(_create_review(kubectl, review).stdout)["status"] == {"user": {}}
    review["spec"] = {}
    empty = _create_review(kubectl, review, check=False)
    assert empty.stderr.strip() == "Error from server (BadRequest): error when creating \"STDIN\": " \
        "token is required for TokenReview in authentication"


def test_subject_access_review(kubectl: Kubectl) -> None:
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {
        "user": BACKEND_SA, "groups": ["system:serviceaccounts", "system:serviceaccounts:finance"],
        "resourceAttributes": {"namespace": "finance", "verb": "create", "resource": "pods"}}}
    assert json.loads(_create_review(kubectl, review).stdout)["status"] == {"allowed": False}
    review["spec"] = {"user": "someone", "groups": ["system:masters"],
                      "resourceAttributes": {"namespace": "finance", "verb": "create", "resource": "pods"}}
    assert json.loads(_create_review(kubectl, review).stdout)["status"] == {"allowed": True}
    review["spec"] = {"user": "someone", "nonResourceAttributes": {"path": "/healthz", "verb": "get"},
                      "groups": ["system:authenticated"]}
    assert json.loads(_create_review(kubectl, review).stdout)["status"] == {"allowed": True}
    review["spec"] = {"resourceAttributes": {"verb": "get", "resource": "pods"}}
    refused = _create_review(kubectl, review, check=False)
    assert refused.stderr.strip() == (
        'The SubjectAccessReview "" is invalid: spec.user: Invalid value: "": '
        "at least one of user or group must be specified"
    )
