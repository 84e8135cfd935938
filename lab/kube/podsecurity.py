"""Pod Security Admission, as the API server's built-in ``PodSecurity`` plugin evaluates a pod CREATE.

A pure port of ``k8s.io/pod-security-admission`` (``policy/check_*.go``, ``policy/registry.go``,
``admission/admission.go``) for pods. Check IDs, forbidden reasons and details are the upstream strings;
the message order is upstream's: baseline check IDs sorted, then restricted check IDs sorted, with the
baseline checks a restricted check overrides removed (``capabilities_baseline``, ``hostPathVolumes``,
``seccompProfile_baseline``, and ``procMount`` from policy 1.35).

Namespace labels ``pod-security.kubernetes.io/{enforce,audit,warn}[-version]`` select the policy:

* enforce violation: 403 Forbidden ``pods "<name>" is forbidden: violates PodSecurity "<level>:<version>": ...``
  (``apierrors.NewForbidden``; without a name it reads ``pods is forbidden: ...``);
* warn violation: a ``would violate PodSecurity "<level>:<version>": ...`` warning (the API server sends it
  as a ``Warning`` header; kubectl prints ``Warning: would violate ...``). Warnings are only added when the
  request is allowed, and warn defaults to the enforce level when enforce is stricter and warn is unset;
* audit violation: NOT a client warning in the real API server but the audit annotation
  ``pod-security.kubernetes.io/audit-violations``; see :func:`evaluate_pod_security`.

Invalid label values are treated like upstream's parser does: an unknown level means ``restricted``, an
unparsable version means ``latest``. ``latest`` (and any version newer than the server) evaluates at the
server's own minor version (``server_minor``, default 32 like the webhook emulation).

Admission order: in the real API server mutating admission (the azure-workload-identity webhook,
:mod:`lab.kube.webhook`) runs first, in the create handler, before ``generateName`` is resolved. PodSecurity
is a validating admission plugin: it runs after the name is generated, on the mutated pod, so it sees the
injected env/volumes/proxy containers (the webhook's ``azwi-proxy-init`` is privileged and fails baseline).
Call :func:`check_pod_security` with the pod after the webhook and after name generation; the generated
name then appears in the message (``AdmissionToValidateObjectFunc`` re-reads it from the object).

Not emulated: AdmissionConfiguration exemptions, the user-namespace relaxations (off by default upstream),
the ``image`` volume source, and evaluation of pod controllers (Deployments etc. only get warnings upstream).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from lab.kube.errors import ApiError, forbidden, invalid

Obj = dict[str, Any]

LABEL_PREFIX = "pod-security.kubernetes.io/"
MODES = ("enforce", "audit", "warn")
LEVELS = ("privileged", "baseline", "restricted")
AUDIT_VIOLATIONS_ANNOTATION = "pod-security.kubernetes.io/audit-violations"
DEFAULT_SERVER_MINOR = 32

_VERSION = re.compile(r"^v1\.(0|[1-9][0-9]*)$")


# ---------------------------------------------------------------- helpers (policy/helpers.go)


def pluralize(singular: str, plural: str, count: int) -> str:
    return singular if count == 1 else plural


def join_quote(items: list[str]) -> str:
    return '"' + '", "'.join(items) + '"' if items else ""


def containers_phrase(names: list[str]) -> str:
    return f'{pluralize("container", "containers", len(names))} {join_quote(names)}'


def go_quote(text: str) -> str:
    """fmt's %q for plain strings."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def all_containers(spec: Obj) -> Iterator[Obj]:
    """visitContainers: init containers, then containers, then ephemeral containers."""
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from spec.get(key) or []


def security_context(obj: Obj) -> Obj:
    return obj.get("securityContext") or {}


def is_windows(spec: Obj) -> bool:
    return (spec.get("os") or {}).get("name") == "windows"


Violation = tuple[str, str]  # (forbidden reason, forbidden detail)
CheckFn = Callable[[Obj, Obj, int], Violation | None]  # (metadata, spec, policy minor)


# ---------------------------------------------------------------- baseline checks


APPARMOR_ANNOTATION_PREFIX = "container.apparmor.security.beta.kubernetes.io/"


def _apparmor_annotation_allowed(value: str) -> bool:
    return value == "" or value == "runtime/default" or value.startswith("localhost/")


def check_apparmor_profile(meta: Obj, spec: Obj, minor: int) -> Violation | None:
    allowed_types = ("RuntimeDefault", "Localhost")
    setters: list[str] = []
    bad_values: set[str] = set()
    pod_profile = security_context(spec).get("appArmorProfile")
    if pod_profile is not None and pod_profile.get("type") not in allowed_types:
        setters.append("pod")
        bad_values.add(pod_profile.get("type") or "")
    bad_containers = []
    for container in all_containers(spec):
        profile = security_context(container).get("appArmorProfile")
        if profile is not None and profile.get("type") not in allowed_types:
            bad_containers.append(container.get("name", ""))
            bad_values.add(profile.get("type") or "")
    if bad_containers:
        setters.append(containers_phrase(bad_containers))
    bad_annotations = sorted(
        f"{key}={go_quote(value)}" for key, value in (meta.get("annotations") or {}).items()
        if key.startswith(APPARMOR_ANNOTATION_PREFIX) and not _apparmor_annotation_allowed(value)
    )
    if bad_annotations:
        setters.append(pluralize("annotation", "annotations", len(bad_annotations)))
    if not setters:
        return None
    values = sorted(bad_values) + bad_annotations
    return (pluralize("forbidden AppArmor profile", "forbidden AppArmor profiles", len(values)),
            f"{' and '.join(setters)} must not set AppArmor profile type to {join_quote(values)}")


BASELINE_CAPABILITIES = frozenset({
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
    "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
})


def check_capabilities_baseline(meta: Obj, spec: Obj, minor: int) -> Violation | None:
    bad_containers: list[str] = []
    added: set[str] = set()
    for container in all_containers(spec):
        extra = [c for c in (security_context(container).get("capabilities") or {}).get("add") or []
                 if c not in BASELINE_CAPABILITIES]
        if extra:
            bad_containers.append(container.get("name", ""))
            added.update(extra)
    if not bad_containers:
        return None
    return ("non-default capabilities",
            f"{containers_phrase(bad_containers)} must not include {join_quote(sorted(added))} "
            "in securityContext.capabilities.add")


def check_host_namespaces(meta: Obj, spec: Obj, minor: int) -> Violation | None:
    used = [f"{key}=true" for key in ("hostNetwork", "hostPID", "hostIPC") if spec.get(key)]
    return ("host namespaces", ", ".join(used)) if used else None


def check_host_path_volumes(meta: Obj, spec: Obj, minor: int) -> Violation | None:
    names = [v.get("name", "") for v in spec.get("volumes") or [] if v.get("hostPath") is not None]
    if not names:
        return None
    return ("hostPath volumes", f"{pluralize('volume', 'volumes', len(names))} {join_quote(names)}")


def check_host_ports(meta: Obj, spec: Obj, minor: int) -> Violation | None:
    bad_containers: list[str] = []
    ports: set[str] = set()
    for container in all_containers(spec):
        used = [str(p["hostPort"]) for p in container.get("ports") or [] if p.get("hostPort")]
        if used:
            bad_containers.append(container.get("name", ""))
            ports.update(used)
    if not bad_containers:
        return None
    count = len(bad_containers)
    return ("hostPort", f"{containers_phrase(bad_containers)} {pluralize('uses', 'use', count)} "
                        f"{pluralize('hostPort', 'hostPorts', len(ports))} {', '.join(sorted(ports))}")


def _handler_hosts(handler: Obj | None) -> list[str]:
    if not handler:
        return []
    return [h for h in ((handler.get("httpGet") or {}).get("host"), (handler.get("tcpSocket") or {}).get("host")) if h]


def check_host_probes_and_lifecycle(meta: Obj, spec: Obj, minor: int) -> Violation | None:
    bad_containers: set[str] = set()
    hosts: set[str] = set()
    for container in all_containers(spec):
        lifecycle = container.get("lifecycle") or {}
        handlers = [container.get("livenessProbe"), container.get("readinessProbe"), container.get("startupProbe"),
                    lifecycle.get("postStart"), lifecycle.get("preStop")]
        found = [host for handler in handlers for host in _handler_hosts(handler)]
        if found:
            bad_containers.add(container.get("name", ""))
            hosts.update(found)
    if not bad_containers:
        return None
    count = len(bad_containers)
    return ("probe or lifecycle host",
            f"{containers_phrase(sorted(bad_containers))} {pluralize('uses', 'use', count)} "
            f"{pluralize('probe or lifecycle host', 'probe or lifecycle hosts', len(hosts))} "
            f"{join_quote(sorted(hosts))}")


def check_privileged(meta: Obj, spec: Obj, minor: int) -> Violation | None:
    bad = [c.get("name", "") for c in all_containers(spec) if security_context(c).get("privileged") is True]
    if not bad:
        return None
    return ("privileged", f"{containers_phrase(bad)} must not set securityContext.privileged=true")


def _proc_mount_violation(spec: Obj) -> Violation | None:
    bad_containers: list[str] = []
    types: set[str] = set()
    for container in all_containers(spec):
        proc_mount = security_context(container).get("procMount")
        if proc_mount is not None and proc_mount != "Default":
            bad_containers.append(container.get("name", ""))
            types.add(proc_mount)
    if not bad_containers:
        return None
    return ("procMount",
            f"{containers_phrase(bad_containers)} must not set securityContext.procMount to {join_quote(sorted(types))}")


def check_proc_mount_baseline(meta: Obj, spec: Obj, minor: int) -> Violation | None:
    if minor >= 35 and spec.get("hostUsers") is False:  # 1.35: user-namespace pods may unmask /proc
        return None
    return _proc_mount_violation(spec)


def check_proc_mount_restricted(meta: Obj, spec: Obj, minor: int) -> Violation | None:
    return _proc_mount_violation(spec)


SELINUX_TYPES_1_0 = frozenset({"", "container_t", "container_init_t", "container_kvm_t"})
SELINUX_TYPES_1_31 = SELINUX_TYPES_1_0 | {"container_engine_t"}


def check_selinux_options(meta: Obj, spec: Obj, minor: int) -> Violation | None:
    allowed = SELINUX_TYPES_1_31 if minor >= 31 else SELINUX_TYPES_1_0
    bad_types: set[str] = set()
    flags = {"user": False, "role": False}

    def valid(options: Obj) -> bool:
        ok = True
        if (options.get("type") or "") not in allowed:
            bad_types.add(options.get("type") or "")
            ok = False
        for key in ("user", "role"):
            if options.get(key):
                flags[key] = True
                ok = False
        return ok

    setters: list[str] = []
    pod_options = security_context(spec).get("seLinuxOptions")
    if pod_options is not None and not valid(pod_options):
        setters.append("pod")
    bad_containers = [c.get("name", "") for c in all_containers(spec)
                      if security_context(c).get("seLinuxOptions") is not None
                      and not valid(security_context(c)["seLinuxOptions"])]
    if bad_containers:
        setters.append(containers_phrase(bad_containers))
    if not setters:
        return None
    data = []
    if bad_types:
        data.append(f"{pluralize('type', 'types', len(bad_types))} {join_quote(sorted(bad_types))}")
    data += [f"{key} may not be set" for key in ("user", "role") if flags[key]]
    return ("seLinuxOptions",
            f"{' and '.join(setters)} set forbidden securityContext.seLinuxOptions: {'; '.join(data)}")


SECCOMP_POD_ANNOTATION = "seccomp.security.alpha.kubernetes.io/pod"
SECCOMP_CONTAINER_ANNOTATION_PREFIX = "container.seccomp.security.alpha.kubernetes.io/"
VALID_SECCOMP_TYPES = ("RuntimeDefault", "Localhost")


def _seccomp_annotation_allowed(value: str) -> bool:
    return value in ("runtime/default", "docker/default") or value.startswith("localhost/")


def _seccomp_annotations_violation(meta: Obj, spec: Obj) -> Violation | None:
    annotations = meta.get("annotations") or {}
    keys = [SECCOMP_POD_ANNOTATION] + [SECCOMP_CONTAINER_ANNOTATION_PREFIX + c.get("name", "")
                                       for c in all_containers(spec)]
    bad = sorted({f"{key}={go_quote(annotations[key])}" for key in keys
                  if key in annotations and not _seccomp_annotation_allowed(annotations[key])})
    if not bad:
        return None
    return ("seccompProfile", f"forbidden {pluralize('annotation', 'annotations', len(bad))} {', '.join(bad)}")


def _seccomp_fields(spec: Obj) -> tuple[list[str], set[str], list[str]]:
    """(bad setters, bad values, containers with no profile and no valid pod-level one)."""
    setters: list[str] = []
    bad_values: set[str] = set()
    pod_valid = False
    pod_profile = security_context(spec).get("seccompProfile")
    if pod_profile is not None:
        if pod_profile.get("type") in VALID_SECCOMP_TYPES:
            pod_valid = True
        else:
            setters.append("pod")
            bad_values.add(pod_profile.get("type") or "")
    explicit: list[str] = []
    implicit: list[str] = []
    for container in all_containers(spec):
        profile = security_context(container).get("seccompProfile")
        if profile is not None:
            if profile.get("type") not in VALID_SECCOMP_TYPES:
                explicit.append(container.get("name", ""))
                bad_values.add(profile.get("type") or "")
        elif not pod_valid:
            implicit.append(container.get("name", ""))
    if explicit:
        setters.append(containers_phrase(explicit))
    return setters, bad_values, implicit


def _seccomp_explicit_violation(setters: list[str], bad_values: set[str]) -> Violation:
    return ("seccompProfile", f"{' and '.join(setters)} must not set securityContext.seccompProfile.type to "
                              f"{join_quote(sorted(bad_values))}")


def check_seccomp_baseline(meta: Obj, spec: Obj, minor: int) -> Violation | None:
    if minor < 19:
        return _seccomp_annotations_violation(meta, spec)
    setters, bad_values, _ = _seccomp_fields(spec)
    return _seccomp_explicit_violation(setters, bad_values) if setters else None


SYSCTLS_1_0 = frozenset({
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start",
})
SYSCTLS_1_27 = SYSCTLS_1_0 | {"net.ipv4.ip_local_reserved_ports"}
SYSCTLS_1_29 = SYSCTLS_1_27 | {
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
SYSCTLS_1_32 = SYSCTLS_1_29 | {"net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"}


def allowed_sysctls(minor: int) -> frozenset[str]:
    if minor >= 32:
        return SYSCTLS_1_32
    if minor >= 29:
        return SYSCTLS_1_29
    return SYSCTLS_1_27 if minor >= 27 else SYSCTLS_1_0


def check_sysctls(meta: Obj, spec: Obj, minor: int) -> Violation | None:
    allowed = allowed_sysctls(minor)
    bad = [s.get("name", "") for s in security_context(spec).get("sysctls") or [] if s.get("name") not in allowed]
    return ("forbidden sysctls", ", ".join(bad)) if bad else None


def check_windows_host_process(meta: Obj, spec: Obj, minor: int) -> Violation | None:
    def host_process(obj: Obj) -> bool:
        return (security_context(obj).get("windowsOptions") or {}).get("hostProcess") is True

    setters = ["pod"] if host_process(spec) else []
    bad = [c.get("name", "") for c in all_containers(spec) if host_process(c)]
    if bad:
        setters.append(containers_phrase(bad))
    if not setters:
        return None
    return ("hostProcess", f"{' and '.join(setters)} must not set securityContext.windowsOptions.hostProcess=true")


# ---------------------------------------------------------------- restricted checks


def check_allow_privilege_escalation(meta: Obj, spec: Obj, minor: int) -> Violation | None:
    if minor >= 25 and is_windows(spec):
        return None
    bad = [c.get("name", "") for c in all_containers(spec)
           if security_context(c).get("allowPrivilegeEscalation") is not False]
    if not bad:
        return None
    return ("allowPrivilegeEscalation != false",
            f"{containers_phrase(bad)} must set securityContext.allowPrivilegeEscalation=false")


def check_capabilities_restricted(meta: Obj, spec: Obj, minor: int) -> Violation | None:
    if minor >= 25 and is_windows(spec):
        return None
    missing_drop_all: list[str] = []
    adding: list[str] = []
    forbidden_caps: set[str] = set()
    for container in all_containers(spec):
        capabilities = security_context(container).get("capabilities")
        if capabilities is None:
            missing_drop_all.append(container.get("name", ""))
            continue
        if "ALL" not in (capabilities.get("drop") or []):
            missing_drop_all.append(container.get("name", ""))
        extra = [c for c in capabilities.get("add") or [] if c != "NET_BIND_SERVICE"]
        if extra:
            adding.append(container.get("name", ""))
            forbidden_caps.update(extra)
    details = []
    if missing_drop_all:
        details.append(f'{containers_phrase(missing_drop_all)} must set securityContext.capabilities.drop=["ALL"]')
    if adding:
        details.append(f"{containers_phrase(adding)} must not include {join_quote(sorted(forbidden_caps))} "
                       "in securityContext.capabilities.add")
    return ("unrestricted capabilities", "; ".join(details)) if details else None


ALLOWED_RESTRICTED_VOLUMES = ("configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                              "persistentVolumeClaim", "projected", "secret")
RESTRICTED_VOLUME_TYPES = ("hostPath", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "nfs", "iscsi",
                           "glusterfs", "rbd", "flexVolume", "cinder", "cephfs", "flocker", "fc", "azureFile",
                           "vsphereVolume", "quobyte", "azureDisk", "photonPersistentDisk", "portworxVolume",
                           "scaleIO", "storageos")


def check_restricted_volumes(meta: Obj, spec: Obj, minor: int) -> Violation | None:
    bad_volumes: list[str] = []
    bad_types: set[str] = set()
    for volume in spec.get("volumes") or []:
        if any(volume.get(key) is not None for key in ALLOWED_RESTRICTED_VOLUMES):
            continue
        bad_volumes.append(volume.get("name", ""))
        bad_types.add(next((t for t in RESTRICTED_VOLUME_TYPES if volume.get(t) is not None), "unknown"))
    if not bad_volumes:
        return None
    count = len(bad_volumes)
    return ("restricted volume types",
            f"{pluralize('volume', 'volumes', count)} {join_quote(bad_volumes)} {pluralize('uses', 'use', count)} "
            f"{pluralize('restricted volume type', 'restricted volume types', len(bad_types))} "
            f"{join_quote(sorted(bad_types))}")


def check_run_as_non_root(meta: Obj, spec: Obj, minor: int) -> Violation | None:
    pod_value = security_context(spec).get("runAsNonRoot")
    setters = ["pod"] if pod_value is False else []
    explicit = [c.get("name", "") for c in all_containers(spec) if security_context(c).get("runAsNonRoot") is False]
    # containers that set nothing are only covered by a pod-level runAsNonRoot=true
    implicit = [c.get("name", "") for c in all_containers(spec)
                if security_context(c).get("runAsNonRoot") is None and pod_value is not True]
    if explicit:
        setters.append(containers_phrase(explicit))
    if setters:
        return ("runAsNonRoot != true", f"{' and '.join(setters)} must not set securityContext.runAsNonRoot=false")
    if implicit:
        return ("runAsNonRoot != true",
                f"pod or {containers_phrase(implicit)} must set securityContext.runAsNonRoot=true")
    return None


def _is_root(value: object) -> bool:
    return type(value) is int and value == 0


def check_run_as_user(meta: Obj, spec: Obj, minor: int) -> Violation | None:
    setters = ["pod"] if _is_root(security_context(spec).get("runAsUser")) else []
    bad = [c.get("name", "") for c in all_containers(spec) if _is_root(security_context(c).get("runAsUser"))]
    if bad:
        setters.append(containers_phrase(bad))
    return ("runAsUser=0", f"{' and '.join(setters)} must not set runAsUser=0") if setters else None


def check_seccomp_restricted(meta: Obj, spec: Obj, minor: int) -> Violation | None:
    if minor >= 25 and is_windows(spec):
        return None
    setters, bad_values, implicit = _seccomp_fields(spec)
    if setters:
        return _seccomp_explicit_violation(setters, bad_values)
    if implicit:
        return ("seccompProfile", f"pod or {containers_phrase(implicit)} must set securityContext.seccompProfile.type "
                                  'to "RuntimeDefault" or "Localhost"')
    return None


# ---------------------------------------------------------------- the registry (policy/registry.go)


@dataclass(frozen=True)
class Check:
    id: str
    level: str  # baseline | restricted
    min_minor: int
    run: CheckFn
    overrides: tuple[str, ...] = ()


CHECKS: tuple[Check, ...] = (
    Check("appArmorProfile", "baseline", 0, check_apparmor_profile),
    Check("capabilities_baseline", "baseline", 0, check_capabilities_baseline),
    Check("hostNamespaces", "baseline", 0, check_host_namespaces),
    Check("hostPathVolumes", "baseline", 0, check_host_path_volumes),
    Check("hostPorts", "baseline", 0, check_host_ports),
    Check("hostProbesAndHostLifecycle", "baseline", 34, check_host_probes_and_lifecycle),
    Check("privileged", "baseline", 0, check_privileged),
    Check("procMount", "baseline", 0, check_proc_mount_baseline),
    Check("seLinuxOptions", "baseline", 0, check_selinux_options),
    Check("seccompProfile_baseline", "baseline", 0, check_seccomp_baseline),
    Check("sysctls", "baseline", 0, check_sysctls),
    Check("windowsHostProcess", "baseline", 0, check_windows_host_process),
    Check("allowPrivilegeEscalation", "restricted", 8, check_allow_privilege_escalation),
    Check("capabilities_restricted", "restricted", 22, check_capabilities_restricted, ("capabilities_baseline",)),
    Check("procMount_restricted", "restricted", 35, check_proc_mount_restricted, ("procMount",)),
    Check("restrictedVolumes", "restricted", 0, check_restricted_volumes, ("hostPathVolumes",)),
    Check("runAsNonRoot", "restricted", 0, check_run_as_non_root),
    Check("runAsUser", "restricted", 23, check_run_as_user),
    Check("seccompProfile_restricted", "restricted", 19, check_seccomp_restricted, ("seccompProfile_baseline",)),
)


def checks_for(level: str, minor: int) -> list[Check]:
    """Baseline IDs sorted, then restricted IDs sorted; restricted drops the baseline checks it overrides."""
    active = [c for c in CHECKS if c.min_minor <= minor]
    baseline = sorted((c for c in active if c.level == "baseline"), key=lambda c: c.id)
    if level == "baseline":
        return baseline
    restricted = sorted((c for c in active if c.level == "restricted"), key=lambda c: c.id)
    overridden = {o for c in restricted for o in c.overrides}
    return [c for c in baseline if c.id not in overridden] + restricted


def evaluate(pod: Obj, level: str, minor: int) -> list[Violation]:
    if level == "privileged":
        return []
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    return [v for check in checks_for(level, minor) if (v := check.run(meta, spec, minor)) is not None]


def forbidden_detail(violations: list[Violation]) -> str:
    """AggregateCheckResult.ForbiddenDetail: ``reason (detail), reason, ...``."""
    return ", ".join(f"{reason} ({detail})" if detail else reason for reason, detail in violations)


# ---------------------------------------------------------------- namespace policy (api/helpers.go)


@dataclass(frozen=True)
class LevelVersion:
    level: str = "privileged"
    version: str = "latest"  # "latest" or "v1.<minor>"

    def __str__(self) -> str:
        return f"{self.level}:{self.version}"

    def minor(self, server_minor: int) -> int:
        if self.version == "latest":
            return server_minor
        return min(int(self.version.split(".")[1]), server_minor)


@dataclass(frozen=True)
class NamespacePolicy:
    enforce: LevelVersion = field(default_factory=LevelVersion)
    audit: LevelVersion = field(default_factory=LevelVersion)
    warn: LevelVersion = field(default_factory=LevelVersion)


def parse_level(value: str) -> str:
    return value if value in LEVELS else "restricted"  # api.ParseLevel returns restricted with its error


def parse_version(value: str) -> str:
    return value if value == "latest" or _VERSION.match(value) else "latest"


def namespace_policy(namespace_labels: dict[str, str]) -> NamespacePolicy:
    """api.PolicyToEvaluate with the default (privileged:latest) policy."""
    labels = namespace_labels or {}
    modes: dict[str, LevelVersion] = {}
    for mode in MODES:
        level = parse_level(labels[LABEL_PREFIX + mode]) if LABEL_PREFIX + mode in labels else "privileged"
        version_key = f"{LABEL_PREFIX}{mode}-version"
        version = parse_version(labels[version_key]) if version_key in labels else "latest"
        modes[mode] = LevelVersion(level, version)
    enforce_set = labels.get(LABEL_PREFIX + "enforce") in LEVELS
    warn_set = LABEL_PREFIX + "warn" in labels
    if not warn_set and enforce_set and LEVELS.index(modes["enforce"].level) > LEVELS.index(modes["warn"].level):
        warn_version_set = f"{LABEL_PREFIX}warn-version" in labels
        modes["warn"] = LevelVersion(modes["enforce"].level,
                                     modes["warn"].version if warn_version_set else modes["enforce"].version)
    return NamespacePolicy(**modes)


# ---------------------------------------------------------------- admission (admission/admission.go)


@dataclass
class PodSecurityOutcome:
    warnings: list[str] = field(default_factory=list)
    audit_annotations: dict[str, str] = field(default_factory=dict)


def violation_text(verb: str, level_version: LevelVersion, violations: list[Violation]) -> str:
    return f'{verb} PodSecurity "{level_version}": {forbidden_detail(violations)}'


def forbidden_pod(pod: Obj, message: str) -> ApiError:
    name = (pod.get("metadata") or {}).get("name") or ""
    text = f'pods "{name}" is forbidden: {message}' if name else f"pods is forbidden: {message}"
    return forbidden(text, name, "pods")


def evaluate_pod_security(pod: Obj, namespace_labels: dict[str, str],
                          server_minor: int = DEFAULT_SERVER_MINOR) -> PodSecurityOutcome:
    """Enforce (raises 403), then audit (annotation), then warn (warning) for a pod CREATE."""
    policy = namespace_policy(namespace_labels)
    cache: dict[tuple[str, int], list[Violation]] = {}

    def violations(level_version: LevelVersion) -> list[Violation]:
        key = (level_version.level, level_version.minor(server_minor))
        if key not in cache:
            cache[key] = evaluate(pod, *key)
        return cache[key]

    if enforced := violations(policy.enforce):
        raise forbidden_pod(pod, violation_text("violates", policy.enforce, enforced))
    outcome = PodSecurityOutcome()
    if audited := violations(policy.audit):
        outcome.audit_annotations[AUDIT_VIOLATIONS_ANNOTATION] = violation_text("would violate", policy.audit, audited)
    if warned := violations(policy.warn):
        outcome.warnings.append(violation_text("would violate", policy.warn, warned))
    return outcome


def check_pod_security(pod: Obj, namespace_labels: dict[str, str],
                       server_minor: int = DEFAULT_SERVER_MINOR) -> list[str]:
    """The PodSecurity plugin for a pod CREATE: raises 403 Forbidden on an enforce violation, else returns
    the ``warn``-mode warnings (``would violate PodSecurity ...``). Audit violations do not produce
    warnings in the real API server; use :func:`evaluate_pod_security` to get the audit annotation."""
    return evaluate_pod_security(pod, namespace_labels, server_minor).warnings


# ---------------------------------------------------------------- namespaces (admission/admission.go ValidateNamespace)


def label_errors(namespace_labels: dict[str, str]) -> list[tuple[str, str, str]]:
    """api.PolicyToEvaluate's errors, as (reason, field, message) for errors.invalid: a level that is not one of
    privileged, baseline, restricted, a version that is not "latest" or "v1.x"."""
    found = []
    for mode in MODES:
        for key, valid, said in ((f"{LABEL_PREFIX}{mode}", lambda v: v in LEVELS,
                                  "must be one of " + ", ".join(LEVELS)),
                                 (f"{LABEL_PREFIX}{mode}-version", lambda v: v == "latest" or _VERSION.match(v),
                                  'must be "latest" or "v1.x"')):
            if key in namespace_labels and not valid(namespace_labels[key]):
                value = json.dumps(namespace_labels[key])
                found.append(("FieldValueInvalid", f"metadata.labels[{key}]", f"Invalid value: {value}: {said}"))
    return found


def validate_namespace(name: str, old_labels: dict[str, str] | None, new_labels: dict[str, str],
                       pods: list[Obj], server_minor: int = DEFAULT_SERVER_MINOR) -> list[str]:
    """The PodSecurity plugin for a namespace CREATE (old_labels None) or UPDATE: labels that do not parse are
    refused (422, on an update only when they changed); an update that makes enforce stricter, or changes its
    version, dry-runs the namespace's pods and warns (EvaluatePodsInNamespace): "existing pods in namespace %q
    violate the new PodSecurity enforce level %q", then one line per distinct set of forbidden reasons, prefixed
    with the lexically first pod's name and "(and N other pods)"."""
    errors = label_errors(new_labels)
    if errors and (old_labels is None or errors != label_errors(old_labels)):
        raise invalid("Namespace", "", name, errors)
    if old_labels is None:
        return []
    new, old = namespace_policy(new_labels).enforce, namespace_policy(old_labels).enforce
    if new == old or new.level == "privileged":
        return []
    if new.version == old.version and LEVELS.index(new.level) <= LEVELS.index(old.level):
        return []
    counts: dict[str, tuple[str, int]] = {}
    order: list[str] = []
    for pod in pods:
        violations = evaluate(pod, new.level, new.minor(server_minor))
        if not violations:
            continue
        reason = ", ".join(reason for reason, _ in violations)  # AggregateCheckResult.ForbiddenReason
        pod_name = str((pod.get("metadata") or {}).get("name") or "")
        if reason not in counts:
            order.append(reason)
            counts[reason] = (pod_name, 1)
        else:
            first, count = counts[reason]
            counts[reason] = (min(first, pod_name), count + 1)
    if not order:
        return []

    def decorated(reason: str) -> str:
        first, count = counts[reason]
        others = "" if count == 1 else " (and 1 other pod)" if count == 2 else f" (and {count - 1} other pods)"
        return f"{first}{others}: {reason}"

    return [f'existing pods in namespace "{name}" violate the new PodSecurity enforce level "{new}"',
            *sorted(decorated(reason) for reason in order)]


# ---------------------------------------------------------------- pod controllers (ValidatePodController)

# DefaultPodSpecExtractor's resources besides pods, and where each keeps its pod template
_TEMPLATE_PATHS: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "replicationcontrollers"): ("spec", "template"),
    ("", "podtemplates"): ("template",),
    ("apps", "replicasets"): ("spec", "template"),
    ("apps", "deployments"): ("spec", "template"),
    ("apps", "statefulsets"): ("spec", "template"),
    ("apps", "daemonsets"): ("spec", "template"),
    ("batch", "jobs"): ("spec", "template"),
    ("batch", "cronjobs"): ("spec", "jobTemplate", "spec", "template"),
}


def controller_warnings(group_resource: tuple[str, str], obj: Obj, namespace_labels: dict[str, str],
                        server_minor: int = DEFAULT_SERVER_MINOR) -> list[str]:
    """ValidatePodController for a create or update (not a subresource) of a workload resource: never enforced;
    its pod template evaluated at the warn level (``would violate PodSecurity "<level>:<version>": ...``), which
    defaults to the enforce level when no warn label is set (namespace_policy)."""
    path = _TEMPLATE_PATHS.get(group_resource)
    if path is None:
        return []
    template: Any = obj
    for key in path:
        template = template.get(key) if isinstance(template, dict) else None
    if not isinstance(template, dict):
        return []  # an optional pod spec left out: nothing to evaluate
    policy = namespace_policy(namespace_labels)
    if policy.warn.level == "privileged":
        return []
    pod = {"metadata": template.get("metadata") or {}, "spec": template.get("spec") or {}}
    violations = evaluate(pod, policy.warn.level, policy.warn.minor(server_minor))
    return [violation_text("would violate", policy.warn, violations)] if violations else []
