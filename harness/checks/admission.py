"""What the API server's refusal of a pod says about its cause, read from its message alone (pure): another
admission webhook that denied it or could not be called, a ResourceQuota or LimitRange, Pod Security admission.
Used for the probe pod (pod.admitted) and for the workload's own Deployments whose ReplicaSet cannot create
pods (workload.live_pods), so neither blames Workload ID for what another part of the cluster refused.

The texts are the API server's: a webhook that denied, ``admission webhook "<name>" denied the request: <msg>``
(apiserver webhookerrors.ToStatusErr); one that could not be called under failurePolicy Fail, ``Internal error
occurred: failed calling webhook "<name>": failed to call webhook: Post "https://<service>.<namespace>.svc:<port>
<path>?timeout=<n>s": <cause>`` (webhookutil.ErrCallingWebhook; the URL built from clientConfig.service by
webhookutil's service resolver); ResourceQuota ``exceeded quota`` / ``failed quota`` / ``must specify``
(plugin/pkg/admission/resourcequota); LimitRanger ``maximum cpu usage per Container is ...``; Pod Security
``violates PodSecurity "<level>:<version>": ...`` (k8s.io/pod-security-admission); a ValidatingAdmissionPolicy, the
API server's own CEL policies, ``ValidatingAdmissionPolicy '<policy>' with binding '<binding>' denied request: <msg>``
(apiserver admission/plugin/policy/validating dispatcher.go).
"""

from __future__ import annotations

import math
import re
from typing import Any

from harness import values
from harness.checks import remediation as fix
from harness.commands import Step, advice
from harness.config import DEFAULT_PROBE_REQUESTS
from harness.names import WEBHOOK_NAME

_REFUSING_WEBHOOK_RE = re.compile(
    r'admission webhook "(?P<name>[^"]+)" denied the request(?::\s*(?P<said>.*))?'
    r'|failed (?:calling|to call) webhook "(?P<down>[^"]+)"(?::\s*(?P<cause>.*))?',
    re.DOTALL,
)
_QUOTA_RE = re.compile(
    r"\b(?:exceeded quota|failed quota|must specify (?:limits|requests)\.|"
    r"(?:maximum|minimum) (?:cpu|memory|ephemeral-storage|storage) usage per (?:Container|Pod)|"
    r"max limit to request ratio per (?:Container|Pod))"
)
# the Service URL webhookutil builds from clientConfig.service: https://<name>.<namespace>.svc:<port><path>
_SERVICE_URL_RE = re.compile(r'Post "https://(?P<name>[a-z0-9]([-a-z0-9]*[a-z0-9])?)\.'
                             r'(?P<namespace>[a-z0-9]([-a-z0-9]*[a-z0-9])?)\.svc(?::\d+)?[/?"]')
# gatekeeper-library's allowedrepos Rego: "container <name> has an invalid image repo <image>, allowed repos are
# ["prefix", ...]" (initContainer / ephemeralContainer for those)
_IMAGE_REPO_RE = re.compile(r"\b(?:container|initContainer|ephemeralContainer) <(?P<container>[^<>]+)> has an "
                            r"invalid image repo <(?P<image>[^<>]+)>, allowed repos are (?P<repos>\[[^\]]*\])")
# gatekeeper-library's containerlimits Rego: "container <name> cpu limit <X> is higher than the maximum allowed of
# <Y>" (memory likewise)
_LIMIT_RE = re.compile(r"\bcontainer <(?P<container>[^<>]+)> (?P<resource>cpu|memory) limit <[^<>]*> is higher than "
                       r"the maximum allowed of <(?P<most>[^<>]+)>")
_POST_RE = re.compile(r'^Post "[^"]*": ')  # the URL, which the Service named by webhook_service stands for
_POD_SECURITY_RE = re.compile(r'violates PodSecurity "(?P<level>[^"]+)"')
_WEBHOOK_CONFIGURATIONS = "mutatingwebhookconfigurations,validatingwebhookconfigurations"
# the API server's in-process policies (apiserver admission/plugin/policy/validating dispatcher.go): its message
# names the policy and, when one bound it, the binding; the status is 422 Invalid unless the failed validation sets
# its own reason (403 Forbidden, 401 Unauthorized, 413), so neither a 403 nor a 401 here is RBAC or a credential
_ADMISSION_POLICY_RE = re.compile(r"ValidatingAdmissionPolicy '(?P<policy>[^']+)'(?: with binding "
                                  r"'(?P<binding>[^']+)')? denied request(?::\s*(?P<said>.*))?", re.DOTALL)


def refusing_webhook(message: str) -> tuple[str, str] | None:
    """(webhook name, what it said) when an admission webhook refused a request or could not be called."""
    match = _REFUSING_WEBHOOK_RE.search(message)
    if match is None:
        return None
    if match.group("down"):
        return match.group("down"), "the webhook could not be called (failurePolicy Fail)"
    return match.group("name"), (match.group("said") or "").strip()


def admission_policy(message: str) -> tuple[str, str, str] | None:
    """(policy, binding or "", what its validation said) when a ValidatingAdmissionPolicy denied a request."""
    match = _ADMISSION_POLICY_RE.search(message)
    if match is None:
        return None
    return match.group("policy"), match.group("binding") or "", (match.group("said") or "").strip()


def admission_policy_looks(policy: str, binding: str) -> list[Step]:
    """The ValidatingAdmissionPolicy that denied a pod and the binding that applied it to the pod's namespace."""
    return [
        fix.kubectl("get", "validatingadmissionpolicy", policy, "-o", "yaml",
                    note="its validations (the CEL that refused) and matchConstraints"),
        fix.kubectl("get", "validatingadmissionpolicybinding", binding, "-o", "yaml",
                    note="its matchResources (which namespaces and objects) and validationActions")
        if binding else
        fix.kubectl("get", "validatingadmissionpolicybindings", "-o",
                    "custom-columns=NAME:.metadata.name,POLICY:.spec.policyName,ACTIONS:.spec.validationActions"),
    ]


def unreachable_webhook(message: str) -> tuple[str, str] | None:
    """(webhook name, why the call failed, without the URL) when the API server could not call an admission
    webhook whose failurePolicy is Fail; None for a webhook that answered (a denial) or any other refusal."""
    match = _REFUSING_WEBHOOK_RE.search(message)
    if match is None or not match.group("down"):
        return None
    cause = (match.group("cause") or "").strip().removeprefix("failed to call webhook: ")
    return match.group("down"), _POST_RE.sub("", cause, count=1).strip()


def webhook_service(message: str) -> tuple[str, str] | None:
    """(namespace, name) of the Service the failed webhook call went to, read from its URL; None for a webhook
    called by clientConfig.url."""
    match = _SERVICE_URL_RE.search(message)
    return (match.group("namespace"), match.group("name")) if match else None


def image_repo_refusal(message: str, container: str) -> tuple[str, str] | None:
    """(image, allowed repos as the policy lists them) when an allowed-repositories policy refused ``container``'s
    image, else None."""
    for match in _IMAGE_REPO_RE.finditer(message):
        if match.group("container") == container:
            return match.group("image"), match.group("repos")
    return None


def limit_refusal(message: str, container: str) -> dict[str, str]:
    """{resource: the highest limit allowed} for each limit of ``container`` a container-limits policy found too
    high, else {}."""
    return {m.group("resource"): m.group("most") for m in _LIMIT_RE.finditer(message)
            if m.group("container") == container}


# the LimitRanger's texts (plugin/pkg/admission/limitranger): "maximum cpu usage per Container is 100m, but limit
# is 200m", "minimum memory usage per Container is 64Mi, but request is 32Mi"
# (a type: Pod item's "per Pod" bounds the pod's sum, which for the probe, one container, is the container's)
_LIMIT_RANGE_RE = re.compile(r"\b(?P<bound>maximum|minimum) (?P<resource>cpu|memory) usage per (?:Container|Pod) is "
                             r"(?P<value>[0-9]+(?:\.[0-9]+)?(?:[eE][0-9]+|[A-Za-z]+)?)")


def limit_range_bounds(message: str) -> dict[str, dict[str, str]]:
    """What a LimitRange's refusal asks of a container: {"limits": {resource: its maximum}, "requests":
    {resource: its minimum}}, only the parts the message names."""
    wanted: dict[str, dict[str, str]] = {}
    for match in _LIMIT_RANGE_RE.finditer(message):
        part = "limits" if match.group("bound") == "maximum" else "requests"
        wanted.setdefault(part, {})[match.group("resource")] = match.group("value")
    return wanted


# ResourceQuota admission (plugin/pkg/admission/resourcequota/controller.go): "exceeded quota: <name>, requested:
# <r=q,...>, used: <r=q,...>, limited: <r=q,...>", each masked to the resources the pod would exceed
_EXCEEDED_RE = re.compile(r"exceeded quota: [^,]+, requested: (?P<requested>\S+), used: (?P<used>\S+), "
                          r"limited: (?P<limited>\S+)")
# the compute resources a quota names and where they sit in a container's resources (a bare "cpu" is requests.cpu)
_QUOTA_COMPUTE = {f"{part}.{resource}": (part, resource) for part in ("requests", "limits")
                  for resource in ("cpu", "memory")} | {"cpu": ("requests", "cpu"), "memory": ("requests", "memory")}
_MEBI = 1024 ** 2


def _quota_list(text: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in text.split(",") if "=" in item)


def quota_room(message: str) -> dict[str, dict[str, str]] | None:
    """What a compute ResourceQuota's refusal leaves for the probe: {"limits"|"requests": {resource: limited -
    used}} for each cpu or memory quantity it names (cpu in millicores, memory in Mi, rounded down); {} when one
    has no room left at all; None when the message is no such refusal (an object count, a LimitRange)."""
    match = _EXCEEDED_RE.search(message)
    if match is None:
        return None
    used, limited = _quota_list(match.group("used")), _quota_list(match.group("limited"))
    if not limited or any(name not in _QUOTA_COMPUTE for name in limited):
        return None
    room: dict[str, dict[str, str]] = {}
    for name, (part, resource) in _QUOTA_COMPUTE.items():
        most, spent = values.parse_quantity(limited.get(name, "")), values.parse_quantity(used.get(name, "0"))
        if most is None or spent is None:
            continue
        left = most - spent
        text = f"{int(left * 1000)}m" if resource == "cpu" else f"{int(left / _MEBI)}Mi"
        if text in ("0m", "0Mi") or left <= 0:
            return {}
        room.setdefault(part, {})[resource] = text
    return room


# gatekeeper-library's requiredlabels (and Azure Policy's k8sazurepodenforcelabels): "you must provide labels:
# {"a", "b"}", OPA's rendering of a set of strings
_REQUIRED_LABELS_RE = re.compile(r"you must provide labels: \{(?P<labels>[^{}]*)\}")


# its other text: "Label <key: value> does not satisfy allowed regex: <regex>"
_LABEL_REGEX_RE = re.compile(r"Label <(?P<key>[^:<>]+): [^<>]*> does not satisfy allowed regex: (?P<regex>\S+)")


def required_labels(message: str) -> list[str]:
    """The label keys a required-labels policy found missing, or whose value it refused, in the order it names
    them."""
    match = _REQUIRED_LABELS_RE.search(message)
    missing = re.findall(r'"([^"]+)"', match.group("labels")) if match else []
    return list(dict.fromkeys([*missing, *(m.group("key") for m in _LABEL_REGEX_RE.finditer(message))]))


# gatekeeper-library's disallowedtags ("container <c> uses a disallowed tag <image>; disallowed tags are [...]",
# "container <c> didn't specify an image tag <image>") and imagedigests ("container <c> uses an image without a
# digest <image>")
_IMAGE_PIN_RE = re.compile(r"\bcontainer <(?P<container>[^<>]+)> (?:uses a disallowed tag|didn't specify an image "
                           r"tag|uses an image without a digest) <(?P<image>[^<>]+)>")


def unpinned_image(message: str, container: str) -> str | None:
    """The image of ``container`` a policy refused for its tag (``latest``, none) or for naming no digest."""
    return next((m.group("image") for m in _IMAGE_PIN_RE.finditer(message) if m.group("container") == container),
                None)


# the LimitRanger's maxLimitRequestRatio (limitRequestRatioConstraint): "cpu max limit to request ratio per Container
# is 4, but provided ratio is 20.000000" (or "..., but no request is specified or request is 0")
_RATIO_RE = re.compile(r"\b(?P<resource>cpu|memory) max limit to request ratio per Container is "
                       r"(?P<ratio>[0-9]+(?:\.[0-9]+)?)")


def limit_ratio_advice(message: str, limits: dict[str, str]) -> str | None:
    """probe.resources whose requests keep each limit (``limits``: the probe's defaults) within a LimitRange's
    maxLimitRequestRatio; None for other refusals."""
    wanted = {}
    for match in _RATIO_RE.finditer(message):
        resource, ratio = match.group("resource"), values.parse_quantity(match.group("ratio"))
        limit = values.parse_quantity(limits.get(resource, ""))
        if not ratio or limit is None:
            continue
        least = limit / ratio
        wanted[resource] = f"{math.ceil(least * 1000)}m" if resource == "cpu" else f"{math.ceil(least / _MEBI)}Mi"
    if not wanted:
        return None
    requests = ", ".join(f"{k}: {v}" for k, v in sorted(wanted.items()))
    shown = ", ".join(f"{k} {limits[k]}" for k in sorted(wanted))
    return (f"set probe.resources in harness.yaml so that no limit is more than the LimitRange's ratio times its "
            f"request: {{requests: {{{requests}}}}} with the default limits ({shown}), or lower limits; or change "
            "the LimitRange")


def quota_room_advice(message: str) -> str | None:
    """probe.resources within what a compute ResourceQuota has left, as harness.yaml takes them; what to do when
    it has nothing left; None for other refusals."""
    room = quota_room(message)
    if room is None:
        return None
    if not room:
        return ("the quota has nothing left for the probe: free some (pods of the namespace that hold it) or raise "
                "it (a person decides), then run again")
    return (f"set probe.resources in harness.yaml within what the quota has left: {probe_resources_text(room)} (or "
            "lower; the probe needs little), or free some of the quota or raise it")


def probe_resources_text(bounds: dict[str, dict[str, str]]) -> str:
    """``bounds`` ({"requests": {...}, "limits": {...}}) as harness.yaml's probe.resources takes them, ``{limits:
    {cpu: 200m}, requests: {...}}``; a default probe request above its new limit is lowered to it (harness.yaml
    refuses a request above its limit, and so would the API server). Fills ``bounds``'s requests in place."""
    for resource, most in dict(bounds.get("limits", {})).items():
        request, top = values.parse_quantity(DEFAULT_PROBE_REQUESTS.get(resource, "")), values.parse_quantity(most)
        if request is not None and top is not None and request > top:
            bounds.setdefault("requests", {}).setdefault(resource, most)
    parts = ", ".join(f"{part}: {{" + ", ".join(f"{k}: {v}" for k, v in sorted(found.items())) + "}"
                      for part, found in sorted(bounds.items()))
    return f"{{{parts}}}"


# Kyverno's denial (its webhooks validate.kyverno.svc-fail / mutate.kyverno.svc-fail): "resource Pod/<ns>/<name> was
# blocked due to the following policies\n\n<policy>:\n  <rule>: '<message>'", a policy per unindented line
_KYVERNO_BLOCKED = "was blocked due to the following policies"
_KYVERNO_POLICY_RE = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?):\s*$", re.MULTILINE)


def kyverno_policies(message: str) -> list[str]:
    """The Kyverno (Cluster)Policies a Kyverno denial names, in its order; [] for any other refusal."""
    if _KYVERNO_BLOCKED not in message:
        return []
    return list(dict.fromkeys(m.group(1) for m in _KYVERNO_POLICY_RE.finditer(message.split(_KYVERNO_BLOCKED, 1)[1])))


def kyverno_fixes(policies: list[str], namespace: str) -> list[Step]:
    """The Kyverno policies that refused the probe shown, and what a person decides: the probe made to comply in
    harness.yaml, or a PolicyException for the harness's pods."""
    return [
        *[fix.kubectl("get", "clusterpolicies.kyverno.io,policies.kyverno.io", "-A", "--field-selector",
                      f"metadata.name={name}", "-o", "yaml") for name in policies[:3]],
        advice(f"make the probe comply as the rule says (probe.labels, probe.resources, probe.image in harness.yaml), "
               f"or exempt the harness's pods in {fix.namespace_or(namespace)} with a Kyverno PolicyException matching "
               "the label app.kubernetes.io/managed-by=wi-harness"),
    ]


# gatekeeper-library's psp volumes (k8spspvolumetypes; Azure Policy's 'allowed volume types' alike): "The volume type
# <field> is not allowed, pod: <name>. Allowed volume types: [...]"
_VOLUME_TYPE_RE = re.compile(r"The volume type (?P<kind>[A-Za-z]+) is not allowed, pod: ")
_VOLUME_ADVICE = {
    "projected": "the policy refuses projected volumes, the kind Workload ID's webhook mounts the ServiceAccount token "
                 "in, in every labelled pod (the workload's own too): no Workload ID pod can start under it until "
                 "{kind} is added to the constraint's parameters.volumes",
    "configMap": "the policy refuses configMap volumes, the one probe.mode configmap mounts the probe's source from: "
                 "set probe.mode: image in harness.yaml (an image holding the probe, probe.image), or add {kind} to "
                 "the constraint's parameters.volumes",
}


def refused_volume_types(message: str) -> list[str]:
    """The volume types an allowed-volume-types policy refused, in the order it names them."""
    return list(dict.fromkeys(m.group("kind") for m in _VOLUME_TYPE_RE.finditer(message)))


def probe_policy_advice(said: str, container: str, labels: dict[str, str]) -> list[Step]:
    """What a policy engine's refusal of the probe container asks of harness.yaml: the labels a required-labels
    policy misses, as probe.labels (with the values the workload's own pods carry, ``labels``, which the same
    policy admitted), or an image pinned by digest for a policy against a tag (latest, none) or for digests."""
    missing = required_labels(said)
    if missing:
        entries = ", ".join(f'{key}: "{labels.get(key, "<value>")}"' for key in missing)
        source = (" (the values the workload's pods carry)" if all(key in labels for key in missing) else
                  " (the workload's pods carry no value for some: put one the policy's owner accepts)")
        return [advice(f"set probe.labels in harness.yaml: {{{entries}}}{source}")]
    volumes = refused_volume_types(said)
    if volumes:
        return [advice(_VOLUME_ADVICE.get(kind, f"the policy refuses {kind} volumes, which the probe pod has: add "
                                                "{kind} to the constraint's parameters.volumes").format(kind=kind))
                for kind in volumes]
    image = unpinned_image(said, container)
    if image is not None:
        return [advice(f"set probe.image in harness.yaml to {image.split('@', 1)[0]} pinned by digest "
                       "(REPOSITORY@sha256:...; az acr repository show --name REGISTRY --image REPOSITORY:TAG "
                       "--query digest prints it for an ACR), or remove probe.image: the default image is pinned "
                       "by digest")]
    return []


def quota_refusal(message: str) -> bool:
    """A ResourceQuota (403 'failed quota' / 'exceeded quota') or LimitRange ('maximum cpu usage per Container')
    answer: the namespace's budget, not RBAC."""
    return _QUOTA_RE.search(message) is not None


def pod_security_level(message: str) -> str | None:
    """The ``<level>:<version>`` a Pod Security enforce refusal names, else None."""
    match = _POD_SECURITY_RE.search(message)
    return match.group("level") if match else None


def unreachable_webhook_fixes(webhook: str, message: str) -> list[Step]:
    """Another vendor's webhook (a mesh's sidecar injector, a policy engine) the API server cannot call: which
    configuration holds it and with what failurePolicy, its Service's endpoints and pods; then what a person
    decides, since the harness cannot tell a product that is down from one uninstalled that left its
    configuration behind."""
    steps: list[Step] = [fix.kubectl(
        "get", _WEBHOOK_CONFIGURATIONS, "-o",
        "custom-columns=NAME:.metadata.name,WEBHOOKS:.webhooks[*].name,FAILURE:.webhooks[*].failurePolicy",
        note=f"the configuration holding {webhook}",
    )]
    service = webhook_service(message)
    if service is not None:
        namespace, name = service
        steps += [fix.kubectl("get", "endpoints", "-n", namespace, name, note="no address: no pod serves it"),
                  fix.kubectl("get", "pods", "-n", namespace)]
    steps.append(advice(
        f"a person decides: bring back the pods that serve {webhook} (the product that installed it), or, if "
        "that product was uninstalled and left its configuration behind, kubectl delete the configuration named "
        "above; Workload ID is not involved"))
    return steps


_REMAINING_RE = re.compile(r"([a-z0-9][-a-z0-9.]*?)\.? has \d+ resource instances")
TERMINATING_TEXT = "because it is being terminated"  # NamespaceLifecycle's refusal of new content


def namespace_terminating_fixes(namespace: str, conditions: list[dict[str, Any]]) -> list[Step]:
    """A namespace stuck in Terminating: its conditions, each kind of object the namespace controller says remains
    (with the finalizers that hold it), and the person's call: the finalizers' controller ends them, or they are
    removed by hand; the namespace and the workload are made again once it is gone."""
    ns = fix.namespace_or(namespace)
    steps: list[Step] = [fix.kubectl("describe", "namespace", ns, note="what remains and what holds it")]
    remaining = next((str(c.get("message") or "") for c in conditions if c.get("type") == "NamespaceContentRemaining"
                      and c.get("status") == "True"), "")
    for resource in dict.fromkeys(_REMAINING_RE.findall(remaining)):
        steps.append(fix.kubectl("get", resource, "-n", ns, "-o",
                                 "custom-columns=NAME:.metadata.name,FINALIZERS:.metadata.finalizers"))
    steps.append(advice(
        "a person decides: the controller that owns those finalizers removes them when it runs again; if it is gone "
        f"for good, remove them: kubectl patch <resource> <name> -n {ns} --type merge -p "
        "'{\"metadata\":{\"finalizers\":null}}'. Once the namespace is gone, create it again with the workload "
        "(the next run names what is missing)"))
    return steps


def refusal_looks(message: str, namespace: str) -> list[Step]:
    """The commands that show what refused a pod, by its cause: the quota or LimitRange, the namespace's Pod
    Security labels, an unreachable webhook's configuration and Service, Gatekeeper's constraints."""
    ns = fix.namespace_or(namespace)
    unreachable = unreachable_webhook(message)
    if unreachable is not None:
        return unreachable_webhook_fixes(unreachable[0], message)[:-1]
    policy = admission_policy(message)
    if policy is not None:
        return admission_policy_looks(policy[0], policy[1])
    if pod_security_level(message) is not None:
        return [fix.kubectl("get", "namespace", ns, "--show-labels")]
    if quota_refusal(message):
        return [fix.kubectl("describe", "resourcequota,limitrange", "-n", ns)]
    if "gatekeeper.sh" in message:
        return [fix.kubectl("get", "constraints", "-o", "wide", note="which constraint refused it")]
    return []


def refusal_cause(message: str) -> str | None:
    """One phrase naming what refused a pod when it is not Workload ID, else None (the Workload ID webhook's
    own denial or unreachability, or a refusal this module cannot name)."""
    webhook = refusing_webhook(message)
    if webhook is not None:
        name = webhook[0]
        if name == WEBHOOK_NAME:
            return None
        if unreachable_webhook(message) is not None:
            return f"the admission webhook {name} cannot be called and its failurePolicy is Fail"
        return f"the admission webhook {name} (a policy engine or another product) denied them"
    policy = admission_policy(message)
    if policy is not None:
        bound = f" (binding {policy[1]})" if policy[1] else ""
        return f"the ValidatingAdmissionPolicy {policy[0]}{bound}, a policy of the API server's own, denied them"
    level = pod_security_level(message)
    if level is not None:
        return f'Pod Security admission (the namespace enforces "{level}")'
    if quota_refusal(message):
        return "a ResourceQuota or LimitRange of the namespace"
    return None
