"""The Go types of the built-in API objects (the fields the lab reads) and the type errors the API
server's JSON decoder reports when a body does not fit them.

The real API server decodes a request body into its Go struct before defaulting, validation or
admission, so ``{"spec": {"containers": [{"env": "x"}]}}`` never reaches them: it answers 400
``Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal string into Go struct field
Container.spec.containers.env of type []v1.EnvVar``. :func:`check_object` gives the lab the same
guarantee, so everything after decoding may rely on the shapes declared here. JSON ``null`` fits any
field (Go leaves the zero value); fields not declared here are not checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from lab.kube import codec, errors
from lab.kube.store import Obj, ResourceType


@dataclass(frozen=True)
class Scalar:
    go: str  # string, bool, int32, int64


@dataclass(frozen=True)
class Struct:
    name: str
    fields: dict[str, GoType] = field(default_factory=dict)

    @property
    def go(self) -> str:
        return f"v1.{self.name}"  # every struct the lab checks lives in a package named v1


@dataclass(frozen=True)
class Slice:
    elem: GoType

    @property
    def go(self) -> str:
        return "[]" + self.elem.go


@dataclass(frozen=True)
class Map:
    elem: GoType

    @property
    def go(self) -> str:
        return "map[string]" + self.elem.go


GoType = Scalar | Struct | Slice | Map

STRING, BOOL, INT32, INT64 = Scalar("string"), Scalar("bool"), Scalar("int32"), Scalar("int64")
BYTES = Scalar("[]uint8")  # []byte: a base64 string on the wire
STRINGS = Slice(STRING)
STRING_MAP = Map(STRING)
BASE64_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
_WELL_FORMED_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}


def _struct(type_name: str, /, **fields: GoType) -> Struct:
    return Struct(type_name, fields)


# ---------------------------------------------------------------- meta/v1 and core/v1

OWNER_REFERENCE = _struct("OwnerReference", apiVersion=STRING, kind=STRING, name=STRING, uid=STRING,
                          controller=BOOL, blockOwnerDeletion=BOOL)
OBJECT_META = _struct(
    "ObjectMeta", name=STRING, generateName=STRING, namespace=STRING, uid=STRING, resourceVersion=STRING,
    generation=INT64, deletionGracePeriodSeconds=INT64, labels=STRING_MAP, annotations=STRING_MAP,
    finalizers=STRINGS, ownerReferences=Slice(OWNER_REFERENCE),
)
LOCAL_OBJECT_REFERENCE = _struct("LocalObjectReference", name=STRING)
OBJECT_REFERENCE = _struct("ObjectReference", kind=STRING, namespace=STRING, name=STRING, uid=STRING,
                           apiVersion=STRING, resourceVersion=STRING, fieldPath=STRING)
KEY_TO_PATH = _struct("KeyToPath", key=STRING, path=STRING, mode=INT32)
OBJECT_FIELD_SELECTOR = _struct("ObjectFieldSelector", apiVersion=STRING, fieldPath=STRING)
RESOURCE_FIELD_SELECTOR = _struct("ResourceFieldSelector", containerName=STRING, resource=STRING)
KEY_SELECTOR_FIELDS = {"name": STRING, "key": STRING, "optional": BOOL}
ENV_VAR_SOURCE = _struct(
    "EnvVarSource", fieldRef=OBJECT_FIELD_SELECTOR, resourceFieldRef=RESOURCE_FIELD_SELECTOR,
    configMapKeyRef=Struct("ConfigMapKeySelector", KEY_SELECTOR_FIELDS),
    secretKeyRef=Struct("SecretKeySelector", KEY_SELECTOR_FIELDS),
)
ENV_FROM_SOURCE = _struct(
    "EnvFromSource", prefix=STRING,
    configMapRef=_struct("ConfigMapEnvSource", name=STRING, optional=BOOL),
    secretRef=_struct("SecretEnvSource", name=STRING, optional=BOOL),
)
SE_LINUX_OPTIONS = _struct("SELinuxOptions", user=STRING, role=STRING, type=STRING, level=STRING)
WINDOWS_OPTIONS = _struct("WindowsSecurityContextOptions", gmsaCredentialSpecName=STRING,
                          gmsaCredentialSpec=STRING, runAsUserName=STRING, hostProcess=BOOL)
SECCOMP_PROFILE = _struct("SeccompProfile", type=STRING, localhostProfile=STRING)
APP_ARMOR_PROFILE = _struct("AppArmorProfile", type=STRING, localhostProfile=STRING)
SECURITY_CONTEXT = _struct(
    "SecurityContext", capabilities=_struct("Capabilities", add=STRINGS, drop=STRINGS), privileged=BOOL,
    seLinuxOptions=SE_LINUX_OPTIONS, windowsOptions=WINDOWS_OPTIONS, runAsUser=INT64, runAsGroup=INT64,
    runAsNonRoot=BOOL, readOnlyRootFilesystem=BOOL, allowPrivilegeEscalation=BOOL, procMount=STRING,
    seccompProfile=SECCOMP_PROFILE, appArmorProfile=APP_ARMOR_PROFILE,
)
POD_SECURITY_CONTEXT = _struct(
    "PodSecurityContext", seLinuxOptions=SE_LINUX_OPTIONS, windowsOptions=WINDOWS_OPTIONS, runAsUser=INT64,
    runAsGroup=INT64, runAsNonRoot=BOOL, supplementalGroups=Slice(INT64), fsGroup=INT64,
    sysctls=Slice(_struct("Sysctl", name=STRING, value=STRING)), fsGroupChangePolicy=STRING,
    seccompProfile=SECCOMP_PROFILE, appArmorProfile=APP_ARMOR_PROFILE,
)
HANDLER_FIELDS: dict[str, GoType] = {
    "exec": _struct("ExecAction", command=STRINGS),
    "httpGet": _struct("HTTPGetAction", path=STRING, host=STRING, scheme=STRING),
    "tcpSocket": _struct("TCPSocketAction", host=STRING),
}
PROBE = Struct("Probe", {**HANDLER_FIELDS, "initialDelaySeconds": INT32, "timeoutSeconds": INT32,
                         "periodSeconds": INT32, "successThreshold": INT32, "failureThreshold": INT32,
                         "terminationGracePeriodSeconds": INT64})
LIFECYCLE_HANDLER = Struct("LifecycleHandler", HANDLER_FIELDS)
CONTAINER_FIELDS: dict[str, GoType] = {
    "name": STRING, "image": STRING, "command": STRINGS, "args": STRINGS, "workingDir": STRING,
    "ports": Slice(_struct("ContainerPort", name=STRING, hostPort=INT32, containerPort=INT32,
                           protocol=STRING, hostIP=STRING)),
    "envFrom": Slice(ENV_FROM_SOURCE),
    "env": Slice(_struct("EnvVar", name=STRING, value=STRING, valueFrom=ENV_VAR_SOURCE)),
    "resources": _struct("ResourceRequirements", limits=Map(Scalar("resource.Quantity")),
                         requests=Map(Scalar("resource.Quantity"))),
    "volumeMounts": Slice(_struct("VolumeMount", name=STRING, readOnly=BOOL, mountPath=STRING, subPath=STRING,
                                  mountPropagation=STRING, subPathExpr=STRING)),
    "livenessProbe": PROBE, "readinessProbe": PROBE, "startupProbe": PROBE,
    "lifecycle": _struct("Lifecycle", postStart=LIFECYCLE_HANDLER, preStop=LIFECYCLE_HANDLER),
    "terminationMessagePath": STRING, "terminationMessagePolicy": STRING, "imagePullPolicy": STRING,
    "securityContext": SECURITY_CONTEXT, "restartPolicy": STRING, "stdin": BOOL, "stdinOnce": BOOL, "tty": BOOL,
}
CONFIG_SOURCE_FIELDS: dict[str, GoType] = {"items": Slice(KEY_TO_PATH), "optional": BOOL}
DOWNWARD_API_FILES = Slice(_struct("DownwardAPIVolumeFile", path=STRING, fieldRef=OBJECT_FIELD_SELECTOR,
                                   resourceFieldRef=RESOURCE_FIELD_SELECTOR, mode=INT32))
VOLUME_PROJECTION = _struct(
    "VolumeProjection",
    secret=Struct("SecretProjection", {"name": STRING, **CONFIG_SOURCE_FIELDS}),
    configMap=Struct("ConfigMapProjection", {"name": STRING, **CONFIG_SOURCE_FIELDS}),
    downwardAPI=_struct("DownwardAPIProjection", items=DOWNWARD_API_FILES),
    serviceAccountToken=_struct("ServiceAccountTokenProjection", audience=STRING, expirationSeconds=INT64,
                                path=STRING),
)
VOLUME = _struct(
    "Volume", name=STRING,
    hostPath=_struct("HostPathVolumeSource", path=STRING, type=STRING),
    emptyDir=_struct("EmptyDirVolumeSource", medium=STRING),
    secret=Struct("SecretVolumeSource", {"secretName": STRING, "defaultMode": INT32, **CONFIG_SOURCE_FIELDS}),
    configMap=Struct("ConfigMapVolumeSource", {"name": STRING, "defaultMode": INT32, **CONFIG_SOURCE_FIELDS}),
    downwardAPI=_struct("DownwardAPIVolumeSource", items=DOWNWARD_API_FILES, defaultMode=INT32),
    projected=_struct("ProjectedVolumeSource", sources=Slice(VOLUME_PROJECTION), defaultMode=INT32),
)
POD_SPEC = _struct(
    "PodSpec", volumes=Slice(VOLUME), initContainers=Slice(Struct("Container", CONTAINER_FIELDS)),
    containers=Slice(Struct("Container", CONTAINER_FIELDS)),
    ephemeralContainers=Slice(Struct("EphemeralContainer", CONTAINER_FIELDS)),
    restartPolicy=STRING, terminationGracePeriodSeconds=INT64, activeDeadlineSeconds=INT64, dnsPolicy=STRING,
    nodeSelector=STRING_MAP, serviceAccountName=STRING, serviceAccount=STRING,
    automountServiceAccountToken=BOOL, nodeName=STRING, hostNetwork=BOOL, hostPID=BOOL, hostIPC=BOOL,
    shareProcessNamespace=BOOL, securityContext=POD_SECURITY_CONTEXT, imagePullSecrets=Slice(LOCAL_OBJECT_REFERENCE),
    hostname=STRING, subdomain=STRING, schedulerName=STRING, priorityClassName=STRING, priority=INT32,
    tolerations=Slice(_struct("Toleration", key=STRING, operator=STRING, value=STRING, effect=STRING,
                              tolerationSeconds=INT64)),
    os=_struct("PodOS", name=STRING), hostUsers=BOOL,
)
POD_TEMPLATE_SPEC = _struct("PodTemplateSpec", metadata=OBJECT_META, spec=POD_SPEC)


def _kind(kind: str, /, **fields: GoType) -> Struct:
    return Struct(kind, {"metadata": OBJECT_META, **fields})


WORKLOAD_SPEC_FIELDS: dict[str, GoType] = {"replicas": INT32, "template": POD_TEMPLATE_SPEC}
POLICY_RULE = _struct("PolicyRule", verbs=STRINGS, apiGroups=STRINGS, resources=STRINGS,
                      resourceNames=STRINGS, nonResourceURLs=STRINGS)
SUBJECTS = Slice(_struct("Subject", kind=STRING, apiGroup=STRING, name=STRING, namespace=STRING))
ROLE_REF = _struct("RoleRef", apiGroup=STRING, kind=STRING, name=STRING)

KINDS: dict[tuple[str, str], Struct] = {
    ("", "pods"): _kind("Pod", spec=POD_SPEC),
    ("", "serviceaccounts"): _kind("ServiceAccount", secrets=Slice(OBJECT_REFERENCE),
                                   imagePullSecrets=Slice(LOCAL_OBJECT_REFERENCE),
                                   automountServiceAccountToken=BOOL),
    ("", "configmaps"): _kind("ConfigMap", data=STRING_MAP, binaryData=Map(BYTES), immutable=BOOL),
    ("", "secrets"): _kind("Secret", data=Map(BYTES), stringData=STRING_MAP, type=STRING, immutable=BOOL),
    ("", "namespaces"): _kind("Namespace", spec=_struct("NamespaceSpec", finalizers=STRINGS)),
    ("apps", "deployments"): _kind("Deployment", spec=Struct("DeploymentSpec", WORKLOAD_SPEC_FIELDS)),
    ("apps", "replicasets"): _kind("ReplicaSet", spec=Struct("ReplicaSetSpec", WORKLOAD_SPEC_FIELDS)),
    ("apps", "daemonsets"): _kind("DaemonSet", spec=_struct("DaemonSetSpec", template=POD_TEMPLATE_SPEC)),
    ("batch", "jobs"): _kind("Job", spec=_struct("JobSpec", template=POD_TEMPLATE_SPEC)),
    ("rbac.authorization.k8s.io", "roles"): _kind("Role", rules=Slice(POLICY_RULE)),
    ("rbac.authorization.k8s.io", "clusterroles"): _kind("ClusterRole", rules=Slice(POLICY_RULE)),
    ("rbac.authorization.k8s.io", "rolebindings"): _kind("RoleBinding", subjects=SUBJECTS, roleRef=ROLE_REF),
    ("rbac.authorization.k8s.io", "clusterrolebindings"): _kind("ClusterRoleBinding", subjects=SUBJECTS,
                                                               roleRef=ROLE_REF),
    ("apiextensions.k8s.io", "customresourcedefinitions"): _kind(
        "CustomResourceDefinition",
        spec=_struct(
            "CustomResourceDefinitionSpec", group=STRING, scope=STRING,
            names=_struct("CustomResourceDefinitionNames", plural=STRING, singular=STRING, kind=STRING,
                          listKind=STRING, shortNames=STRINGS, categories=STRINGS),
            versions=Slice(_struct("CustomResourceDefinitionVersion", name=STRING, served=BOOL, storage=BOOL)),
        ),
    ),
}
# Request bodies that are not stored objects.
TOKEN_REQUEST = _kind("TokenRequest", spec=_struct(
    "TokenRequestSpec", audiences=STRINGS, expirationSeconds=INT64,
    boundObjectRef=_struct("BoundObjectReference", kind=STRING, apiVersion=STRING, name=STRING, uid=STRING),
))
REVIEWS: dict[str, Struct] = {
    "selfsubjectaccessreviews": _kind("SelfSubjectAccessReview", spec=_struct(
        "SelfSubjectAccessReviewSpec",
        resourceAttributes=_struct("ResourceAttributes", namespace=STRING, verb=STRING, group=STRING,
                                   version=STRING, resource=STRING, subresource=STRING, name=STRING),
        nonResourceAttributes=_struct("NonResourceAttributes", path=STRING, verb=STRING),
    )),
    "selfsubjectrulesreviews": _kind("SelfSubjectRulesReview",
                                     spec=_struct("SelfSubjectRulesReviewSpec", namespace=STRING)),
    "tokenreviews": _kind("TokenReview", spec=_struct("TokenReviewSpec", token=STRING, audiences=STRINGS)),
    "subjectaccessreviews": _kind("SubjectAccessReview", spec=_struct(
        "SubjectAccessReviewSpec",
        resourceAttributes=_struct("ResourceAttributes", namespace=STRING, verb=STRING, group=STRING,
                                   version=STRING, resource=STRING, subresource=STRING, name=STRING),
        nonResourceAttributes=_struct("NonResourceAttributes", path=STRING, verb=STRING),
        user=STRING, groups=STRINGS, uid=STRING,
    )),
}
DELETE_OPTIONS = _struct(
    "DeleteOptions", gracePeriodSeconds=INT64, orphanDependents=BOOL, propagationPolicy=STRING,
    dryRun=STRINGS, preconditions=_struct("Preconditions", uid=STRING, resourceVersion=STRING),
)


# ---------------------------------------------------------------- checking


def _fits(go: str, value: Any) -> bool:
    if go == "string":
        return isinstance(value, str)
    if go == "bool":
        return isinstance(value, bool)
    if go in INT_RANGES:
        low, high = INT_RANGES[go]
        return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
    return True  # types with their own JSON decoding (resource.Quantity, ...) are not checked here


def _unmarshal_error(value: Any, struct: str, path: list[str], go: str) -> str:
    found = codec.go_json_type(value)
    if found == "number" and go in INT_RANGES:
        found = f"number {codec.go_number(value)}"
    return f"json: cannot unmarshal {found} into Go struct field {struct}.{'.'.join(path)} of type {go}"


def type_error(go_type: Struct, obj: Any) -> str | None:
    """Go's message for the first value in ``obj`` that does not fit ``go_type``, or None."""
    return _check_struct(go_type, obj, []) if isinstance(obj, dict) else None


def _check_struct(struct: Struct, obj: dict[str, Any], path: list[str]) -> str | None:
    for key, value in obj.items():
        expected = struct.fields.get(key)
        if expected is not None and value is not None:
            problem = _check_value(expected, value, struct.name, [*path, key])
            if problem:
                return problem
    return None


def _base64_error(text: str) -> str | None:
    """encoding/base64's complaint about a []byte value, which encoding/json passes on as it is."""
    if len(text) % 4 == 0 and _WELL_FORMED_BASE64.fullmatch(text):
        return None  # the common case, without a character-by-character walk (a probe ConfigMap's pycs: 180 KB)
    for index, char in enumerate(text):
        if char not in BASE64_ALPHABET and not (char == "=" and index >= len(text) - 2):
            return f"illegal base64 data at input byte {index}"
    return None if len(text) % 4 == 0 else f"illegal base64 data at input byte {len(text)}"


def _check_value(expected: GoType, value: Any, owner: str, path: list[str]) -> str | None:
    """``owner`` and ``path`` name the struct field being decoded, as Go's error does."""
    if expected is BYTES and isinstance(value, str):
        return _base64_error(value)
    if isinstance(expected, Scalar):
        return None if _fits(expected.go, value) else _unmarshal_error(value, owner, path, expected.go)
    if isinstance(expected, Struct):
        if not isinstance(value, dict):
            return _unmarshal_error(value, owner, path, expected.go)
        return _check_struct(expected, value, path)
    if isinstance(expected, Slice):
        if not isinstance(value, list):
            return _unmarshal_error(value, owner, path, expected.go)
        items: list[Any] = value
    else:
        if not isinstance(value, dict):
            return _unmarshal_error(value, owner, path, expected.go)
        items = list(value.values())
    for item in items:
        if item is not None:
            problem = _check_value(expected.elem, item, owner, path)
            if problem:
                return problem
    return None


def check_object(rt: ResourceType, obj: Obj, go_type: Struct | None = None) -> None:
    """400 as the API server's decoder answers when ``obj`` does not fit its kind's Go struct
    (``go_type``, by default the stored kind's; custom resources have their metadata checked)."""
    go_type = go_type or KINDS.get(rt.group_resource) or _kind(rt.kind)
    problem = type_error(go_type, obj)
    if problem:
        kind = go_type.name
        raise errors.bad_request(f'{kind} in version "{rt.version}" cannot be handled as a {kind}: {problem}')


def check_delete_options(options: Obj) -> None:
    problem = type_error(DELETE_OPTIONS, options)
    if problem:
        raise errors.bad_request(problem)
