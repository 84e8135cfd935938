"""Object validation with the API server's field paths and messages (422 Invalid).

Covers what clients of the lab trip over: metadata.name rules per kind, the required fields of a Pod, its
volumes and volume mounts (lab.kube.volume_validation: no path may leave the volume), ConfigMap and Secret
keys, Pod update restrictions, apps selectors (they select their template, and cannot change), and the shape of a
CustomResourceDefinition.
"""

from __future__ import annotations

import json
import re
from typing import Any

from lab.kube import crdschema, errors, netpol, volume_validation
from lab.kube.store import Obj, ResourceType, name_problems

Cause = tuple[str, str, str]  # (reason, field, message)

DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS1035_MESSAGE = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
    "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
    "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
LABEL_NAME_TYPES = {("", "namespaces")}
DNS1035_NAME_TYPES = {("", "services")}
RESTART_POLICIES = ("Always", "OnFailure", "Never")


def qualified_kind(rt: ResourceType) -> str:
    return f"{rt.kind}.{rt.group}" if rt.group else rt.kind


def invalid(rt: ResourceType, name: str, causes: list[Cause]) -> errors.ApiError:
    """422 like apierrors.NewInvalid: details.kind is the Kind; the message names the qualified kind."""
    error = errors.invalid(rt.kind, rt.group, name, causes)
    error.message = error.message.replace(f'{rt.kind} "', f'{qualified_kind(rt)} "', 1)
    return error


def _quote(value: Any) -> str:
    return json.dumps(value)


def required(field: str) -> Cause:
    return ("FieldValueRequired", field, "Required value")


def invalid_value(field: str, value: Any, message: str) -> Cause:
    return ("FieldValueInvalid", field, f"Invalid value: {_quote(value)}: {message}")


# ---------------------------------------------------------------- names


def name_causes(rt: ResourceType, obj: Obj) -> list[Cause]:
    meta = obj.get("metadata") or {}
    name, generate_name = meta.get("name"), meta.get("generateName")
    if not name and not generate_name:
        return [("FieldValueRequired", "metadata.name", "Required value: name or generateName is required")]
    if not name:
        return []
    if not isinstance(name, str):
        return [invalid_value("metadata.name", name, "must be a string")]
    if rt.group_resource in DNS1035_NAME_TYPES:
        if len(name) > 63:
            return [invalid_value("metadata.name", name, "must be no more than 63 characters")]
        return [] if DNS1035_LABEL.match(name) else [invalid_value("metadata.name", name, DNS1035_MESSAGE)]
    if rt.group_resource == ("apiextensions.k8s.io", "customresourcedefinitions"):
        spec = obj.get("spec") or {}
        expected = f"{(spec.get('names') or {}).get('plural', '')}.{spec.get('group', '')}"
        if name != expected:
            return [invalid_value("metadata.name", name, 'must be spec.names.plural+"."+spec.group')]
        return []
    problems = name_problems(name, label_only=rt.group_resource in LABEL_NAME_TYPES)
    return [invalid_value("metadata.name", name, problem) for problem in problems]


def label_causes(obj: Obj) -> list[Cause]:
    causes: list[Cause] = []
    meta = obj.get("metadata") or {}
    for field in ("labels", "annotations"):
        values = meta.get(field)
        if values is None:
            continue
        if not isinstance(values, dict):
            causes.append(invalid_value(f"metadata.{field}", values, "must be a map of strings"))
            continue
        for key, value in values.items():
            if not isinstance(value, str):
                causes.append(invalid_value(f"metadata.{field}.{key}", value, "must be a string"))
    return causes


# ---------------------------------------------------------------- pods


def _container_causes(path: str, container: Any, volume_names: set[str], seen: set[str]) -> list[Cause]:
    if not isinstance(container, dict):
        return [invalid_value(path, container, "must be an object")]
    causes: list[Cause] = []
    name = container.get("name")
    if not name:
        causes.append(required(f"{path}.name"))
    elif name in seen:
        causes.append(("FieldValueDuplicate", f"{path}.name", f"Duplicate value: {_quote(name)}"))
    else:
        seen.add(name)
        problems = name_problems(name, label_only=True)
        causes.extend(invalid_value(f"{path}.name", name, problem) for problem in problems)
    if not container.get("image"):
        causes.append(required(f"{path}.image"))
    causes += port_causes(container.get("ports"), f"{path}.ports")
    for index, env in enumerate(container.get("env") or []):
        if isinstance(env, dict) and not env.get("name"):
            causes.append(required(f"{path}.env[{index}].name"))
    causes += volume_validation.volume_mount_causes(container.get("volumeMounts"), volume_names,
                                                    f"{path}.volumeMounts")
    return causes


PORT_RANGE_MESSAGE = "must be between 1 and 65535, inclusive"  # utilvalidation.IsValidPortNum


def port_causes(ports: Any, path: str) -> list[Cause]:
    """validateContainerPorts (pkg/apis/core/validation): containerPort 0 (or left out) is required, and it and
    a hostPort must be from 1 to 65535; what matters here is a port a webhook puts there (the migration proxy's
    containerPort is azure.workload.identity/proxy-sidecar-port, any int32 the webhook parses). Port names and
    protocols are not checked."""
    causes: list[Cause] = []
    for index, port in enumerate(ports if isinstance(ports, list) else []):
        if not isinstance(port, dict):
            continue
        number = port.get("containerPort")
        if not number:
            causes.append(required(f"{path}[{index}].containerPort"))
        elif isinstance(number, int) and not 1 <= number <= 65535:
            causes.append(invalid_value(f"{path}[{index}].containerPort", number, PORT_RANGE_MESSAGE))
        host = port.get("hostPort")
        if isinstance(host, int) and host and not 1 <= host <= 65535:
            causes.append(invalid_value(f"{path}[{index}].hostPort", host, PORT_RANGE_MESSAGE))
    return causes


def pod_spec_causes(spec: Any, path: str = "spec") -> list[Cause]:
    """ValidatePodSpec's order: volumes, then containers, then init containers (names unique across both)."""
    if not isinstance(spec, dict):
        return [required(path)]
    volume_names, causes = volume_validation.volume_causes(spec.get("volumes"), f"{path}.volumes")
    containers = spec.get("containers")
    if not containers:
        causes.append(required(f"{path}.containers"))
    seen: set[str] = set()
    for field in ("containers", "initContainers"):
        for index, container in enumerate(spec.get(field) or []):
            causes.extend(_container_causes(f"{path}.{field}[{index}]", container, volume_names, seen))
    policy = spec.get("restartPolicy")
    if policy is not None and policy not in RESTART_POLICIES:
        causes.append(
            (
                "FieldValueNotSupported",
                f"{path}.restartPolicy",
                f'Unsupported value: {_quote(policy)}: supported values: "Always", "OnFailure", "Never"',
            )
        )
    return causes


MUTABLE_POD_SPEC_MESSAGE = (
    "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,"
    "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),"
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"
)


def _without_mutable_fields(spec: dict[str, Any]) -> dict[str, Any]:
    stripped = json.loads(json.dumps(spec))
    for field in ("containers", "initContainers"):
        for container in stripped.get(field) or []:
            if isinstance(container, dict):
                container.pop("image", None)
    for field in ("activeDeadlineSeconds", "tolerations"):
        stripped.pop(field, None)
    return stripped


def pod_update_causes(old: Obj, new: Obj) -> list[Cause]:
    causes = pod_spec_causes(new.get("spec"))
    if causes:
        return causes
    if _without_mutable_fields(old.get("spec") or {}) != _without_mutable_fields(new.get("spec") or {}):
        return [("FieldValueForbidden", "spec", f"Forbidden: {MUTABLE_POD_SPEC_MESSAGE}")]
    return []


# ---------------------------------------------------------------- custom resource definitions


def crd_causes(crd: Obj) -> list[Cause]:
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        return [required("spec")]
    causes: list[Cause] = []
    if not spec.get("group"):
        causes.append(required("spec.group"))
    names = spec.get("names") or {}
    for field in ("plural", "kind"):
        if not names.get(field):
            causes.append(required(f"spec.names.{field}"))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        causes.append(
            (
                "FieldValueNotSupported",
                "spec.scope",
                f'Unsupported value: {_quote(spec.get("scope"))}: supported values: "Cluster", "Namespaced"',
            )
        )
    versions = spec.get("versions") or []
    if not versions:
        causes.append(
            (
                "FieldValueInvalid",
                "spec.versions",
                "Invalid value: null: must have exactly one version marked as storage version",
            )
        )
    elif sum(1 for v in versions if v.get("storage")) != 1:
        causes.append(
            invalid_value(
                "spec.versions", versions, "must have exactly one version marked as storage version"
            )
        )
    return causes + crdschema.structural_causes(spec)


# ---------------------------------------------------------------- entry points


WORKLOAD_TYPES = {
    ("apps", "deployments"),
    ("apps", "daemonsets"),
    ("apps", "replicasets"),
    ("apps", "statefulsets"),
    ("batch", "jobs"),
}
CONFIG_KINDS = {("", "configmaps"): "ConfigMap", ("", "secrets"): "Secret"}


def _template_spec(obj: Obj) -> Any:
    template = (obj.get("spec") or {}).get("template")
    return template.get("spec") if isinstance(template, dict) else None


SELECTOR_TYPES = {("apps", "deployments"), ("apps", "replicasets"), ("apps", "statefulsets"), ("apps", "daemonsets")}


def _selects(selector: dict[str, Any], labels: dict[str, Any]) -> bool:
    """metav1.LabelSelectorAsSelector(selector).Matches(labels): every matchLabels pair, every expression."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        if not isinstance(expression, dict):
            continue
        key, operator, values = expression.get("key"), expression.get("operator"), expression.get("values") or []
        present = key in labels
        if (operator == "In" and (not present or labels[key] not in values)
                or operator == "NotIn" and present and labels[key] in values
                or operator == "Exists" and not present or operator == "DoesNotExist" and present):
            return False
    return True


def selector_causes(rt: ResourceType, obj: Obj) -> list[Cause]:
    """A Deployment's, ReplicaSet's, StatefulSet's or DaemonSet's selector must select its own pod template
    (k8s.io/kubernetes pkg/apis/apps/validation ValidateDeploymentSpec, ValidatePodTemplateSpecForReplicaSet,
    ValidateStatefulSetSpec, ValidateDaemonSetSpec: "`selector` does not match template `labels`"), on create
    and update alike: a template label the selector names cannot be removed. Not emulated: an empty or missing
    selector (Required value / empty selector is invalid)."""
    if rt.group_resource not in SELECTOR_TYPES:
        return []
    spec = obj.get("spec") or {}
    selector, template = spec.get("selector"), spec.get("template")
    if not isinstance(selector, dict) or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        return []
    labels = ((template or {}).get("metadata") or {}).get("labels") or {} if isinstance(template, dict) else {}
    if _selects(selector, labels if isinstance(labels, dict) else {}):
        return []
    # unverified: older API servers print the Go map (map[string]string{...}); newer ones JSON, as here
    return [invalid_value("spec.template.metadata.labels", labels, "`selector` does not match template `labels`")]


def selector_update_causes(rt: ResourceType, old: Obj, new: Obj) -> list[Cause]:
    """apps/v1's selectors cannot change (ValidateDeploymentUpdate, ValidateReplicaSetUpdate,
    ValidateStatefulSetUpdate, ValidateDaemonSetUpdate: apivalidation.ValidateImmutableField on spec.selector)."""
    if rt.group_resource not in SELECTOR_TYPES:
        return []
    before, after = (old.get("spec") or {}).get("selector"), (new.get("spec") or {}).get("selector")
    if before is None or before == after:
        return []
    return [invalid_value("spec.selector", after, "field is immutable")]


def _kind_causes(rt: ResourceType, obj: Obj) -> list[Cause]:
    """The checks create and update share (ValidateConfigMap/ValidateSecret run on both, as do the
    workload validators on the pod template and its selector)."""
    if rt.group_resource in WORKLOAD_TYPES:
        return selector_causes(rt, obj) + pod_spec_causes(_template_spec(obj), "spec.template.spec")
    if rt.group_resource in CONFIG_KINDS:
        return volume_validation.config_data_causes(CONFIG_KINDS[rt.group_resource], obj)
    if rt.group_resource == ("apiextensions.k8s.io", "customresourcedefinitions"):
        return crd_causes(obj)
    if rt.group_resource == (netpol.GROUP, netpol.PLURAL):
        return netpol.validation_causes(obj)
    return []


# ---------------------------------------------------------------- admission webhook configurations

WEBHOOK_CONFIGURATION_TYPES = {("admissionregistration.k8s.io", "mutatingwebhookconfigurations"),
                               ("admissionregistration.k8s.io", "validatingwebhookconfigurations")}
# k8s.io/kubernetes pkg/apis/admissionregistration/validation/validation.go: its sets, as .List() sorts them
NO_SIDE_EFFECT_CLASSES = ["None", "NoneOnDryRun"]
SIDE_EFFECT_CLASSES = ["None", "NoneOnDryRun", "Some", "Unknown"]
FAILURE_POLICIES = ["Fail", "Ignore"]
ACCEPTED_REVIEW_VERSIONS = ["v1", "v1beta1", "v1alpha1"]  # AcceptedAdmissionReviewVersions, in its order


def _not_supported(field: str, value: Any, supported: list[str]) -> Cause:
    listed = ", ".join(_quote(v) for v in supported)
    return ("FieldValueNotSupported", field, f"Unsupported value: {_quote(value)}: supported values: {listed}")


def _hooks(obj: Obj | None) -> list[dict[str, Any]]:
    return [h for h in (obj or {}).get("webhooks") or [] if isinstance(h, dict)]


def webhook_configuration_causes(obj: Obj, old: Obj | None = None) -> list[Cause]:
    """What validateMutatingWebhookConfiguration / validateValidatingWebhookConfiguration refuse of each webhook:
    sideEffects missing or not one of the classes without side effects, a failurePolicy other than Fail or Ignore,
    timeoutSeconds outside 1..30, a clientConfig without exactly one of url or service, no admissionReviewVersions
    (or none the API server knows) and a name used twice. On update the old configuration decides, as
    ValidateMutatingWebhookConfigurationUpdate does, whether side effects and unknown review versions are refused.
    Not emulated: the rules', selectors', url's and service's own checks."""
    before = _hooks(old) if old is not None else None
    no_side_effects = before is None or all(h.get("sideEffects") in NO_SIDE_EFFECT_CLASSES for h in before)
    recognized = before is None or all(not h.get("admissionReviewVersions") or any(
        v in ACCEPTED_REVIEW_VERSIONS for v in h["admissionReviewVersions"]) for h in before)
    names = [h.get("name") for h in before or []]
    unique = before is None or len(names) == len(set(names))
    allowed = NO_SIDE_EFFECT_CLASSES if no_side_effects else SIDE_EFFECT_CLASSES
    causes: list[Cause] = []
    seen: set[str] = set()
    for index, hook in enumerate(_hooks(obj)):
        path = f"webhooks[{index}]"
        if "failurePolicy" in hook and hook["failurePolicy"] not in FAILURE_POLICIES:
            causes.append(_not_supported(f"{path}.failurePolicy", hook["failurePolicy"], FAILURE_POLICIES))
        if hook.get("sideEffects") is None:
            causes.append(("FieldValueRequired", f"{path}.sideEffects",
                           f"Required value: must specify one of {', '.join(allowed)}"))
        elif hook["sideEffects"] not in allowed:
            causes.append(_not_supported(f"{path}.sideEffects", hook["sideEffects"], allowed))
        timeout = hook.get("timeoutSeconds")
        if timeout is not None and (not isinstance(timeout, int) or not 1 <= timeout <= 30):
            causes.append(invalid_value(f"{path}.timeoutSeconds", timeout,
                                        "the timeout value must be between 1 and 30 seconds"))
        client = hook.get("clientConfig") if isinstance(hook.get("clientConfig"), dict) else {}
        if (client.get("url") is None) == (client.get("service") is None):
            causes.append(("FieldValueRequired", f"{path}.clientConfig",
                           "Required value: exactly one of url or service is required"))
        versions = hook.get("admissionReviewVersions") or []
        if not versions:
            causes.append(("FieldValueRequired", f"{path}.admissionReviewVersions",
                           f"Required value: must specify one of {', '.join(ACCEPTED_REVIEW_VERSIONS)}"))
        elif recognized and not any(v in ACCEPTED_REVIEW_VERSIONS for v in versions):
            causes.append(invalid_value(f"{path}.admissionReviewVersions", versions,
                                        f"must include at least one of {', '.join(ACCEPTED_REVIEW_VERSIONS)}"))
        name = hook.get("name")
        if unique and name:
            if name in seen:
                causes.append(("FieldValueDuplicate", f"{path}.name", f"Duplicate value: {_quote(name)}"))
            seen.add(name)
    return causes


def validate_create(rt: ResourceType, obj: Obj, schema: dict[str, Any] | None = None) -> None:
    """``schema``: a custom resource's openAPIV3Schema (lab.kube.crdschema.schema_for)."""
    causes = name_causes(rt, obj) + label_causes(obj)
    if rt.group_resource == ("", "pods"):
        causes += pod_spec_causes(obj.get("spec"))
    else:
        causes += _kind_causes(rt, obj)
    if rt.group_resource in WEBHOOK_CONFIGURATION_TYPES:
        causes += webhook_configuration_causes(obj)
    if schema is not None:
        causes += crdschema.value_causes(schema, obj)
    if causes:
        raise invalid(rt, (obj.get("metadata") or {}).get("name") or "", causes)


def _job_template_causes(rt: ResourceType, old: Obj, new: Obj) -> list[Cause]:
    """A Job's pod template cannot change once it may have started (pkg/apis/batch/validation ValidateJobSpecUpdate:
    ValidateImmutableField on spec.template; kubernetes docs, JobMutableNodeSchedulingDirectives: only node
    scheduling directives of a suspended Job that never started may change, which the lab does not emulate)."""
    if rt.group_resource != ("batch", "jobs"):
        return []
    before, after = (old.get("spec") or {}).get("template"), (new.get("spec") or {}).get("template")
    if before == after:
        return []
    # unverified: the API server prints the Go value (core.PodTemplateSpec{ObjectMeta:...}) in full; shortened here
    return [("FieldValueInvalid", "spec.template", "Invalid value: core.PodTemplateSpec{...}: field is immutable")]


def validate_update(rt: ResourceType, old: Obj, new: Obj, schema: dict[str, Any] | None = None) -> None:
    causes = label_causes(new)
    if rt.group_resource == ("", "pods"):
        causes += pod_update_causes(old, new)
    else:
        causes += _kind_causes(rt, new)
    if rt.group_resource in WEBHOOK_CONFIGURATION_TYPES:
        causes += webhook_configuration_causes(new, old)
    if schema is not None:
        causes += crdschema.value_causes(schema, new)
    causes += _job_template_causes(rt, old, new) + selector_update_causes(rt, old, new)
    crd = rt.group_resource == ("apiextensions.k8s.io", "customresourcedefinitions")
    if crd and (new.get("spec") or {}).get("group") != (old.get("spec") or {}).get("group"):
        causes.append(
            (
                "FieldValueInvalid",
                "spec.group",
                f"Invalid value: {_quote(new.get('spec', {}).get('group'))}: field is immutable",
            )
        )
    if causes:
        raise invalid(rt, (new.get("metadata") or {}).get("name") or "", causes)
