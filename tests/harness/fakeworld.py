"""An in-memory world for the harness's tests: a fake Kubernetes API (with a fake azure-workload-identity
webhook and a fake kubelet that runs the REAL probe in-process), a fake ARM and a fake OIDC issuer.

Everything is built from a :class:`World` of knobs, so each test states only what it breaks.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import re
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from harness.collect.http import HttpResponse, HttpUnreachable
from harness.collect.kube_api import KubeError
from harness.collect.run import Backend
from harness.facts import Fetched, KubeFailure

AUDIENCE = "api://AzureADTokenExchange"
AUTHORITY = "https://login.example.test/"
ARM = "https://management.example.test/"
GRAPH = "https://graph.example.test/"
ISSUER = "https://oidc.example.test/tenant/cluster-guid/"
# Data hosts the public cloud's way: a config without azure: means AzureCloud, whose hosts alone get tokens.
VAULT = "https://finance-kv.vault.azure.net/"
OTHER_VAULT = "https://platform-kv.vault.azure.net/"
ACCOUNT = "https://ordersdata.blob.core.windows.net/"
KEYVAULT_RESOURCE = "https://vault.azure.net"
_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_KID = "issuer-key-1"
ROLE_DEFINITIONS = "Microsoft.Authorization/roleDefinitions"


def closed_port() -> int:
    """A loopback port nothing listens on: connections to it are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def guid() -> str:
    return str(uuid.uuid4())


@dataclass
class FakeWorkload:
    namespace: str
    service_account: str
    client_id: str = field(default_factory=guid)
    principal_id: str = field(default_factory=guid)
    identity_name: str = ""
    annotate: bool = True  # client-id annotation on the ServiceAccount
    annotation_value: str | None = None  # override the annotated client id
    create_sa: bool = True
    fic_issuer: str | None = None  # default: the world's issuer
    fic_subject: str | None = None  # default: system:serviceaccount:ns:sa
    fic: bool = True
    readable: list[str] = field(default_factory=list)  # vault / blob URLs the identity may read
    kind: str = "managed_identity"  # or "application": an Entra app registration, in Microsoft Graph
    subscription_id: str | None = None  # a managed identity in another subscription (default: the world's)
    service_principal: bool = True  # an application's service principal exists
    application_object_id: str = field(default_factory=guid)
    extra_credentials: list[dict[str, Any]] = field(default_factory=list)  # more {name, issuer, subject}
    sa_labels: dict[str, str] = field(default_factory=dict)  # labels on the ServiceAccount
    deleted: bool = False  # the identity deleted (az identity delete): ARM answers 404, Entra knows no client id
    config_resource_id: bool = False  # harness.yaml names the identity by identity_resource_id too

    @property
    def id(self) -> str:
        return f"{self.namespace}/{self.service_account}"

    @property
    def subject(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"


@dataclass
class World:
    tenant_id: str = field(default_factory=guid)
    subscription_id: str = field(default_factory=guid)
    issuer: str = ISSUER  # what ARM and the discovery document say
    token_issuer: str | None = None  # what the API server puts in tokens (default: issuer)
    layout: str = "v1.6"
    webhook: str = "up"  # up | down | absent
    webhook_namespace: str = (
        "kube-system"  # the AKS add-on's; the OSS chart uses azure-workload-identity-system
    )
    failure_policy: str = "Fail"
    webhook_ready: int = 2
    oidc_enabled: bool = True
    workload_identity_enabled: bool = True
    issuer_reachable: bool = True
    probe_image_pullable: bool = True
    probe_pull_error: str = "not found"  # the kubelet's ErrImagePull message when the image cannot be pulled
    probe_settings: dict[str, Any] = field(default_factory=dict)  # harness.yaml's probe: (timeout_seconds: 30)
    configmaps_forbidden: bool = False  # the harness may not create ConfigMaps (RBAC)
    entra_certificate_untrusted: bool = False  # a TLS-inspecting proxy re-signs Entra's certificate
    probe_never_finishes: bool = False
    # what a vault answers a request without a token: its challenge names this resource (None: no challenge,
    # the secret itself, as a look-alike host that is not Key Vault would)
    keyvault_challenge_resource: str | None = KEYVAULT_RESOURCE
    bearer_sent_to: list[str] = field(default_factory=list)  # every data-plane URL that received a token
    workloads: list[FakeWorkload] = field(default_factory=list)
    resource_graph_refused: bool = False  # the harness may not query Azure Resource Graph (403)
    hidden_subscriptions: set[str] = field(default_factory=set)  # subscriptions the harness cannot read
    graph_refused: bool = False  # Microsoft Graph answers 403 Authorization_RequestDenied
    existing_pods: list[dict[str, Any]] = field(default_factory=list)  # pods already in the cluster
    record_to: str | None = None  # append "ns/name" of every created pod (to count them across processes)
    kube_user: str = "harness@example.test"  # who the API server says the harness is (SelfSubjectReview)
    harness_client_id: str = field(default_factory=guid)  # the harness's own app registration
    # Objects of other resources, by "plural.group" ("serviceaccounts" for the core API): CRDs, aad-pod-identity
    # objects (served only once their CRD is listed), DaemonSets, Deployments beside the webhook's
    kube_objects: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    forbidden_lists: set[str] = field(default_factory=set)  # "plural.group" the harness may not list (403)

    @classmethod
    def healthy(cls, **knobs: Any) -> World:
        world = cls(**knobs)
        if not world.workloads:
            world.workloads = [
                FakeWorkload("finance", "backend-sa", identity_name="myWorkloadId", readable=[VAULT]),
                FakeWorkload("orders", "orders-sa", identity_name="ordersWorkloadId", readable=[ACCOUNT]),
            ]
        return world

    def workload(self, workload_id: str) -> FakeWorkload:
        return next(w for w in self.workloads if w.id == workload_id)

    def identity_id(self, w: FakeWorkload) -> str:
        return (
            f"/subscriptions/{w.subscription_id or self.subscription_id}/resourcegroups/myRg/providers/"
            f"Microsoft.ManagedIdentity/userAssignedIdentities/{w.identity_name or w.service_account + '-id'}"
        )

    def credentials(self, w: FakeWorkload) -> list[dict[str, Any]]:
        """The workload's identity's federated credentials: {name, issuer, subject, audiences}."""
        own = [{"name": f"fic-{w.service_account}", "issuer": w.fic_issuer or self.issuer,
                "subject": w.fic_subject or w.subject, "audiences": [AUDIENCE]}] if w.fic else []
        return own + [{"audiences": [AUDIENCE], **c} for c in w.extra_credentials]

    def managed_identities(self) -> list[FakeWorkload]:
        """The workloads' managed identities the harness can read (not applications, not hidden subscriptions)."""
        return [w for w in self.workloads if w.kind == "managed_identity" and not w.deleted
                and (w.subscription_id or self.subscription_id) not in self.hidden_subscriptions]

    # ---------------------------------------------------------------- the harness.yaml for this world

    def config(self, tmp_path: Path, azure: bool = True) -> dict[str, Any]:
        secret = tmp_path / "harness-secret"
        secret.write_text("s3cr3t-harness-client-secret-value")
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
        data: dict[str, Any] = {
            "cluster": {"kubeconfig": str(kubeconfig), "context": "fake"},
            "probe": {"timeout_seconds": 30, **self.probe_settings},
            "workloads": [self._workload_config(w) for w in self.workloads],
        }
        if azure:
            data["azure"] = {
                "cloud": {
                    "name": "lab",
                    "authority_host": AUTHORITY,
                    "resource_manager": ARM,
                    "keyvault_hosts": [".vault.azure.net"],
                    "keyvault_resource": KEYVAULT_RESOURCE,
                    "storage_hosts": [".blob.core.windows.net"],
                    "microsoft_graph": GRAPH,
                },
                "tenant_id": self.tenant_id,
                "subscription_id": self.subscription_id,
                "resource_group": "dev-rg",
                "cluster_name": "dev-aks",
                "credential": {"client_id": self.harness_client_id, "client_secret_file": str(secret)},
            }
        return data

    def _workload_config(self, w: FakeWorkload) -> dict[str, Any]:
        access: list[dict[str, Any]] = []
        if w.namespace == "finance":
            access = [
                {"kind": "keyvault_secret", "vault_url": VAULT, "secret": "db-password", "expect": "allow"},
                {
                    "kind": "keyvault_secret",
                    "vault_url": OTHER_VAULT,
                    "secret": "admin-api-key",
                    "expect": "deny",
                },
            ]
        elif w.namespace == "orders":
            access = [
                {
                    "kind": "blob",
                    "account_url": ACCOUNT,
                    "container": "reports",
                    "blob": "daily.csv",
                    "expect": "allow",
                },
                {"kind": "keyvault_secret", "vault_url": VAULT, "secret": "db-password", "expect": "deny"},
            ]
        return {
            "namespace": w.namespace,
            "service_account": w.service_account,
            "client_id": w.client_id,
            **({"identity_resource_id": self.identity_id(w)} if w.config_resource_id else {}),
            "access": access,
        }

    def backend(self) -> Backend:
        return Backend(
            kube=FakeKube(self), http=FakeHttp(self), arm=FakeArm(self), graph=FakeGraph(self),
            secrets=["fake-kube-token"],
        )


SECRET_VALUES = {
    "db-password": "p4ssw0rd-value-never-printed",
    "admin-api-key": "admin-key-value-never-printed",
}


# ---------------------------------------------------------------- Kubernetes


class FakeKube:
    context = "fake"
    server = "https://kube.example.test"

    def __init__(self, world: World) -> None:
        self.world = world
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.logs: dict[tuple[str, str], str] = {}
        self.deleted: list[str] = []
        self.created: list[dict[str, Any]] = []
        self.config_maps: dict[tuple[str, str], dict[str, Any]] = {}
        self.deleted_config_maps: list[str] = []
        self.events: list[str] = []  # "create pod NS/NAME", "delete configmap NS/NAME": the order of writes
        self.version = 100
        for pod in world.existing_pods:
            self.pods[(pod["metadata"]["namespace"], pod["metadata"]["name"])] = copy.deepcopy(pod)

    def _sa(self, namespace: str, name: str) -> FakeWorkload | None:
        return next(
            (
                w
                for w in self.world.workloads
                if w.namespace == namespace and w.service_account == name and w.create_sa
            ),
            None,
        )

    def namespace(self, name: str) -> dict[str, Any] | None:
        known = {w.namespace for w in self.world.workloads} | {"default", "kube-system"}
        return {"metadata": {"name": name}} if name in known else None

    def service_account(self, namespace: str, name: str) -> dict[str, Any] | None:
        w = self._sa(namespace, name)
        if w is None:
            return None
        annotations = {}
        if w.annotate:
            annotations["azure.workload.identity/client-id"] = w.annotation_value or w.client_id
        return {"metadata": {"name": name, "namespace": namespace, "annotations": annotations,
                             "labels": dict(w.sa_labels)}}

    def mutating_webhook_configurations(self) -> list[dict[str, Any]]:
        if self.world.webhook == "absent":
            return [{"metadata": {"name": "other-webhook"}, "webhooks": [{"name": "other.example.com"}]}]
        return [
            {
                "metadata": {
                    "name": "azure-wi-webhook-mutating-webhook-configuration",
                    "managedFields": [{}],
                },
                "webhooks": [
                    {
                        "name": "mutation.azure-workload-identity.io",
                        "failurePolicy": self.world.failure_policy,
                        "reinvocationPolicy": "IfNeeded",
                        "objectSelector": {"matchLabels": {"azure.workload.identity/use": "true"}},
                        "clientConfig": {
                            "service": {
                                "name": "azure-wi-webhook-webhook-service",
                                "namespace": self.world.webhook_namespace,
                            }
                        },
                    }
                ],
            }
        ]

    def deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        if self.world.webhook == "absent" or namespace != self.world.webhook_namespace:
            return None
        ready = self.world.webhook_ready if self.world.webhook == "up" else 0
        status = {"replicas": 2, **({"readyReplicas": ready, "availableReplicas": ready} if ready else {})}
        return {"metadata": {"name": name, "namespace": namespace}, "spec": {"replicas": 2}, "status": status}

    def list_deployments(self, namespace: str) -> list[dict[str, Any]]:
        return []  # no workload Deployment of the fake world has a ReplicaFailure

    def list_namespaced(self, group: str, version: str, plural: str, namespace: str,
                        field_selector: str = "") -> list[dict[str, Any]]:
        return []  # no StatefulSet, DaemonSet or Job of the fake world is refused its pods

    def openid_configuration(self) -> Fetched:
        issuer = self.world.token_issuer or self.world.issuer
        return Fetched(
            f"{self.server}/.well-known/openid-configuration",
            200,
            {"issuer": issuer, "jwks_uri": f"{self.server}/openid/v1/jwks"},
        )

    # -- pods

    def create_pod(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        pod = copy.deepcopy(body)
        name = pod["metadata"]["name"]
        sa = self._sa(namespace, pod["spec"].get("serviceAccountName", "default"))
        labelled = pod["metadata"].get("labels", {}).get("azure.workload.identity/use") == "true"
        if labelled and self.world.webhook == "down":
            raise KubeError(
                KubeFailure(
                    500,
                    "InternalError",
                    "Internal error occurred: failed calling webhook "
                    '"mutation.azure-workload-identity.io": connection refused',
                )
            )
        if sa is None:
            raise KubeError(
                KubeFailure(
                    400,
                    "BadRequest",
                    'admission webhook "mutation.azure-workload-identity.io" '
                    f'denied the request: serviceaccounts "{pod["spec"].get("serviceAccountName")}"'
                    " not found",
                )
            )
        if labelled and self.world.webhook == "up":
            mutate(pod, self.world, sa)
        pod["metadata"]["namespace"] = namespace
        pod["metadata"]["uid"] = guid()
        pod["status"] = {"phase": "Pending"}
        self.created.append(copy.deepcopy(pod))
        self.events.append(f"create pod {namespace}/{name}")
        if self.world.record_to:
            with open(self.world.record_to, "a") as record:
                record.write(f"{namespace}/{name}\n")
        self.pods[(namespace, name)] = pod
        self._run(pod, sa)
        return copy.deepcopy({**pod, "status": {"phase": "Pending"}})

    def _run(self, pod: dict[str, Any], sa: FakeWorkload) -> None:
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        if self._missing_config_map(pod):  # the kubelet cannot mount it: FailedMount, the container waits
            pod["status"] = {
                "phase": "Pending",
                "containerStatuses": [{"name": "probe", "state": {"waiting": {"reason": "ContainerCreating"}}}],
            }
            return
        if not self.world.probe_image_pullable:
            pod["status"] = {
                "phase": "Pending",
                "containerStatuses": [
                    {
                        "name": "probe",
                        "state": {"waiting": {"reason": "ErrImagePull",
                                             "message": self.world.probe_pull_error}},
                    }
                ],
            }
            return
        if self.world.probe_never_finishes:
            pod["status"] = {"phase": "Running"}
            return
        doc_text, code = run_real_probe(pod, self.world, sa)
        self.logs[key] = doc_text
        pod["status"] = {
            "phase": "Succeeded" if code == 0 else "Failed",
            "containerStatuses": [{"name": "probe", "state": {"terminated": {"exitCode": code}}}],
        }

    def pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.pods.get((namespace, name))
        return copy.deepcopy(found) if found else None

    def list_pods(
        self, namespace: str | None, label_selector: str
    ) -> tuple[list[dict[str, Any]], str | None]:
        wanted = dict(part.split("=", 1) for part in label_selector.split(",") if "=" in part)
        present = [part for part in label_selector.split(",") if part and "=" not in part]  # "key": key exists
        items = [
            copy.deepcopy(p)
            for (ns, _), p in self.pods.items()
            if (namespace is None or ns == namespace)
            and all(p["metadata"].get("labels", {}).get(k) == v for k, v in wanted.items())
            and all(k in p["metadata"].get("labels", {}) for k in present)
        ]
        return [{**p, "status": {"phase": "Pending"}} for p in items], str(self.version)

    def list_service_accounts(self, namespace: str | None) -> list[dict[str, Any]]:
        return [sa for sa in self.list_objects("", "v1", "serviceaccounts")
                if namespace is None or sa["metadata"].get("namespace") == namespace]

    def list_objects(self, group: str, version: str, plural: str) -> list[dict[str, Any]]:
        resource = f"{plural}.{group}" if group else plural
        if resource in self.world.forbidden_lists:
            raise KubeError(KubeFailure(403, "Forbidden", f'{resource} is forbidden: User "harness" cannot list '
                                        f'resource "{plural}" in API group "{group}" at the cluster scope'))
        crds = self.world.kube_objects.get("customresourcedefinitions.apiextensions.k8s.io", [])
        builtin = {"customresourcedefinitions.apiextensions.k8s.io", "serviceaccounts", "daemonsets.apps",
                   "deployments.apps", "pods"}
        if resource not in builtin and not any(c["metadata"]["name"] == resource for c in crds):
            raise KubeError(KubeFailure(404, "NotFound", "the server could not find the requested resource"))
        items = copy.deepcopy(self.world.kube_objects.get(resource, []))
        if resource == "serviceaccounts":
            items += [self.service_account(w.namespace, w.service_account) for w in self.world.workloads
                      if w.create_sa]
        if resource == "deployments.apps":
            webhook = self.deployment(self.world.webhook_namespace, "azure-wi-webhook-controller-manager")
            items += [webhook] if webhook else []
        if resource == "pods":
            items += [copy.deepcopy(p) for p in self.pods.values()]
        return items

    def watch_pods(
        self, namespace: str, label_selector: str, resource_version: str | None, timeout_seconds: int
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        wanted = dict(part.split("=", 1) for part in label_selector.split(",") if "=" in part)
        for (ns, _), pod in list(self.pods.items()):
            if ns == namespace and all(
                pod["metadata"].get("labels", {}).get(k) == v for k, v in wanted.items()
            ):
                yield "MODIFIED", copy.deepcopy(pod)

    def pod_log(self, namespace: str, name: str, container: str | None = None) -> str:
        if (namespace, name) not in self.logs:
            raise KubeError(KubeFailure(400, "BadRequest", "container not started"))
        return self.logs[(namespace, name)]

    def delete_pod(self, namespace: str, name: str) -> None:
        self.pods.pop((namespace, name), None)
        self.deleted.append(f"{namespace}/{name}")
        self.events.append(f"delete pod {namespace}/{name}")

    # -- ConfigMaps

    def _missing_config_map(self, pod: dict[str, Any]) -> bool:
        namespace = pod["metadata"]["namespace"]
        return any(
            (namespace, volume["configMap"]["name"]) not in self.config_maps
            for volume in pod["spec"].get("volumes") or []
            if "configMap" in volume and not volume["configMap"].get("optional")
        )

    def create_config_map(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        if self.world.configmaps_forbidden:
            raise KubeError(KubeFailure(403, "Forbidden", f'configmaps is forbidden: User "harness" cannot create '
                                        f'resource "configmaps" in API group "" in the namespace "{namespace}"'))
        if (namespace, name) in self.config_maps:
            raise KubeError(KubeFailure(409, "AlreadyExists", f'configmaps "{name}" already exists'))
        self.config_maps[(namespace, name)] = {**copy.deepcopy(body), "metadata": {**body["metadata"],
                                                                                 "namespace": namespace}}
        self.events.append(f"create configmap {namespace}/{name}")
        return copy.deepcopy(self.config_maps[(namespace, name)])

    def list_config_maps(self, namespace: str | None, label_selector: str) -> list[dict[str, Any]]:
        wanted = dict(part.split("=", 1) for part in label_selector.split(",") if "=" in part)
        return [
            copy.deepcopy(c)
            for (ns, _), c in self.config_maps.items()
            if (namespace is None or ns == namespace)
            and all(c["metadata"].get("labels", {}).get(k) == v for k, v in wanted.items())
        ]

    def self_subject_review(self) -> dict[str, Any]:
        user = {"username": self.world.kube_user, "groups": ["system:masters", "system:authenticated"]}
        return {"kind": "SelfSubjectReview", "status": {"userInfo": user}}

    def delete_config_map(self, namespace: str, name: str) -> None:
        if self.config_maps.pop((namespace, name), None) is not None:
            self.deleted_config_maps.append(f"{namespace}/{name}")
            self.events.append(f"delete configmap {namespace}/{name}")


def existing_pod(
    world: World,
    workload: FakeWorkload,
    name: str,
    labelled: bool = True,
    mutated: bool = True,
    **labels: str,
) -> dict[str, Any]:
    """A workload pod as the API server holds it after admission (for --pod and --sweep tests)."""
    pod: dict[str, Any] = {
        "metadata": {
            "name": name,
            "namespace": workload.namespace,
            "labels": {**({"azure.workload.identity/use": "true"} if labelled else {}), **labels},
        },
        "spec": {
            "serviceAccountName": workload.service_account,
            "containers": [{"name": "app", "image": "app:1"}],
        },
        "status": {"phase": "Running"},
    }
    if mutated:
        mutate(pod, world, workload)
    return pod


def mutate(pod: dict[str, Any], world: World, sa: FakeWorkload) -> None:
    """What the webhook does (reference 1.5-1.8), for one of the two layouts."""
    name = pod["metadata"]["name"]
    if world.layout == "v1.5":
        volume, mount_path, token_path = (
            "azure-identity-token",
            "/var/run/secrets/azure/tokens",
            "azure-identity-token",
        )
    else:
        volume = "azure-workload-identity-reserved-" + hashlib.sha256(name.encode()).hexdigest()[:30]
        mount_path, token_path = "/var/run/secrets/azure/wi", "token/azure-identity-token"
    env = [
        ("AZURE_CLIENT_ID", (sa.annotation_value or sa.client_id) if sa.annotate else ""),
        ("AZURE_TENANT_ID", world.tenant_id),
        ("AZURE_FEDERATED_TOKEN_FILE", f"{mount_path}/{token_path}"),
        ("AZURE_AUTHORITY_HOST", AUTHORITY),
    ]
    for container in pod["spec"]["containers"]:
        present = {e["name"] for e in container.get("env", [])}
        container.setdefault("env", []).extend(
            {"name": k, "value": v} for k, v in env if v and k not in present
        )
        container.setdefault("volumeMounts", []).append(
            {"name": volume, "mountPath": mount_path, "readOnly": True}
        )
    pod["spec"].setdefault("volumes", []).append(
        {
            "name": volume,
            "projected": {
                "sources": [
                    {
                        "serviceAccountToken": {
                            "audience": AUDIENCE,
                            "expirationSeconds": 3600,
                            "path": token_path,
                        }
                    }
                ],
                "defaultMode": 420,
            },
        }
    )


def sa_token(world: World, w: FakeWorkload, pod: dict[str, Any], now: float) -> str:
    claims = {
        "iss": world.token_issuer or world.issuer,
        "sub": w.subject,
        "aud": [AUDIENCE],
        "exp": int(now) + 3600,
        "iat": int(now),
        "nbf": int(now),
        "kubernetes.io": {
            "namespace": w.namespace,
            "pod": {"name": pod["metadata"]["name"], "uid": "u"},
            "serviceaccount": {"name": w.service_account, "uid": "s"},
        },
    }
    return jwt.encode(claims, _KEY, algorithm="RS256", headers={"kid": _KID})


class VirtualClock:
    """The probe's monotonic clock and sleep for an in-process run: a retry's wait moves the clock on at once, so a
    fake world whose answers never change ends its retries within their bound without waiting it out."""

    def __init__(self) -> None:
        self.now = time.monotonic()

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def run_real_probe(pod: dict[str, Any], world: World, sa: FakeWorkload) -> tuple[str, int]:
    """Run probe.cli.main in-process with the pod's env; the token file lives in a temp dir standing in for
    the mount (paths are mapped back, as a mount namespace would)."""
    from probe.cli import main

    container = pod["spec"]["containers"][0]
    environ = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    token_file = environ.get("AZURE_FEDERATED_TOKEN_FILE")
    with tempfile.TemporaryDirectory() as tmp:
        if token_file:
            local = Path(tmp) / token_file.lstrip("/")
            local.parent.mkdir(parents=True)
            local.write_text(sa_token(world, sa, pod, time.time()))
            environ["AZURE_FEDERATED_TOKEN_FILE"] = str(local)
        out, err = io.StringIO(), io.StringIO()
        clock = VirtualClock()
        code = main(
            [], environ=environ, transport=FakeAzureData(world), sdk_check=None, stdout=out, stderr=err,
            monotonic=clock.monotonic, sleep=clock.sleep,
        )
        text = err.getvalue() + out.getvalue()
        return text.replace(tmp, ""), code


class FakeAzureData:
    """Entra's token endpoint, Key Vault and Blob, as the probe's Transport sees them."""

    def __init__(self, world: World) -> None:
        self.world = world

    def __call__(self, method: str, url: str, headers: Any, body: bytes | None, timeout: float) -> Any:
        from probe.transport import Response

        if url.startswith(AUTHORITY):
            if self.world.entra_certificate_untrusted:
                from probe.transport import TransportError

                raise TransportError("tls_verify", "SSLCertVerificationError: [SSL: CERTIFICATE_VERIFY_FAILED] "
                                     "certificate verify failed: self-signed certificate in certificate chain")
            return self._token(Response, body or b"")
        auth = dict(headers).get("Authorization", "").removeprefix("Bearer ")
        if auth:
            self.world.bearer_sent_to.append(url)
        challenge = self.world.keyvault_challenge_resource
        if "/secrets/" in url and not auth and challenge:  # Key Vault's challenge, which the probe asks first
            return Response(
                401,
                {
                    "content-type": "application/json",
                    "www-authenticate": f'Bearer authorization="{AUTHORITY}{self.world.tenant_id}", '
                    f'resource="{challenge}"',
                },
                b'{"error":{"code":"Unauthorized","message":"AKV10000: Request is missing a Bearer or PoP token."}}',
            )
        if "/secrets/" in url and not auth:  # no challenge: whatever answers is not Key Vault
            return Response(200, {"content-type": "application/json"}, b'{"value": "look-alike"}')
        claims = jwt.decode(auth, options={"verify_signature": False}) if auth else {}
        reader = next((w for w in self.world.workloads if w.client_id == claims.get("appid")), None)
        allowed = reader is not None and any(url.startswith(base) for base in reader.readable)
        if "/secrets/" in url:
            if not allowed:
                return Response(
                    403,
                    {"content-type": "application/json"},
                    json.dumps(
                        {
                            "error": {
                                "code": "Forbidden",
                                "message": "Caller is not authorized",
                                "innererror": {"code": "ForbiddenByRbac"},
                            }
                        }
                    ).encode(),
                )
            name = urlsplit(url).path.split("/secrets/")[1].split("/")[0]
            return Response(
                200,
                {"content-type": "application/json"},
                json.dumps(
                    {
                        "value": SECRET_VALUES.get(name, "v"),
                        "id": f"{url.split('?')[0]}/0123abcd",
                        "attributes": {"enabled": True},
                    }
                ).encode(),
            )
        if not allowed:
            return Response(
                403,
                {"x-ms-error-code": "AuthorizationPermissionMismatch"},
                b"<Error><Code>AuthorizationPermissionMismatch</Code><Message>no</Message></Error>",
            )
        return Response(200, {"content-type": "text/csv", "etag": '"1"'}, b"order_id,amount\n1,2\n")

    def _token(self, response: Any, body: bytes) -> Any:
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        assertion = jwt.decode(form["client_assertion"], options={"verify_signature": False})
        w = next((x for x in self.world.workloads if x.client_id == form["client_id"] and not x.deleted), None)

        def error(code: str, text: str) -> Any:
            return response(
                401,
                {"content-type": "application/json"},
                json.dumps(
                    {
                        "error": "invalid_client",
                        "error_description": f"{code}: {text}",
                        "error_codes": [int(code[6:])],
                    }
                ).encode(),
            )

        if w is None:
            return error("AADSTS700016", f"Application with identifier '{form['client_id']}' was not found")
        if w.kind == "application" and not w.service_principal:
            return error("AADSTS7000229", f"The client application {w.client_id} is missing service principal "
                                          f"in the tenant {self.world.tenant_id}.")
        fic_issuer = w.fic_issuer or self.world.issuer
        fic_subject = w.fic_subject or w.subject
        if not w.fic:
            return error("AADSTS70025", "The client has no configured federated identity credentials.")
        if assertion["iss"] != fic_issuer:
            return error(
                "AADSTS700211",
                f"No matching federated identity record found for presented assertion "
                f"issuer '{assertion['iss']}'.",
            )
        if assertion["sub"] != fic_subject:
            return error(
                "AADSTS700213",
                f"No matching federated identity record found for presented assertion "
                f"subject '{assertion['sub']}'.",
            )
        resource = form["scope"].removesuffix("/.default")
        now = int(time.time())
        token = jwt.encode(
            {
                "aud": resource,
                "iss": f"https://sts.windows.net/{self.world.tenant_id}/",
                "iat": now,
                "nbf": now,
                "exp": now + 3600,
                "appid": w.client_id,
                "tid": self.world.tenant_id,
                "oid": w.principal_id,
                "idtyp": "app",
                **({"xms_mirid": self.world.identity_id(w)} if w.kind == "managed_identity" else {}),
            },
            _KEY,
            algorithm="RS256",
        )
        return response(
            200,
            {"content-type": "application/json"},
            json.dumps({"token_type": "Bearer", "expires_in": 3599, "access_token": token}).encode(),
        )


# ---------------------------------------------------------------- ARM and the issuer


class FakeArm:
    def __init__(self, world: World) -> None:
        self.world = world
        self.calls: list[str] = []

    def caller_claims(self) -> dict[str, Any]:
        """The identity claims of the harness's own ARM token, as RequestsArm decodes them."""
        return {"appid": self.world.harness_client_id, "oid": "harness-principal-oid", "tid": self.world.tenant_id,
                "idtyp": "app"}

    def __call__(self, path_or_url: str, body: dict[str, Any] | None = None) -> Fetched:
        self.calls.append(path_or_url)
        world = self.world
        path = urlsplit(path_or_url).path.rstrip("/").lower()
        sub = f"/subscriptions/{world.subscription_id}".lower()
        if path == "/providers/microsoft.resourcegraph/resources":
            return self._resource_graph(path_or_url, body or {})
        if path.endswith("/managedclusters/dev-aks"):
            return Fetched(
                path_or_url,
                200,
                {
                    "properties": {
                        "oidcIssuerProfile": {
                            "enabled": world.oidc_enabled,
                            **({"issuerURL": world.issuer} if world.oidc_enabled else {}),
                        },
                        "securityProfile": {"workloadIdentity": {"enabled": world.workload_identity_enabled}},
                    },
                    "identity": {
                        "type": "UserAssigned",
                        "userAssignedIdentities": {
                            f"/subscriptions/{world.subscription_id}/resourceGroups/rg/providers/"
                            "Microsoft.ManagedIdentity/userAssignedIdentities/dev-aks-control-plane": {},
                        },
                    },
                },
            )
        if path == f"{sub}/providers/microsoft.managedidentity/userassignedidentities":
            mine = [w for w in world.managed_identities() if (w.subscription_id or world.subscription_id)
                    == world.subscription_id]
            return Fetched(path_or_url, 200, {"value": [self._identity(w) for w in mine]})
        for w in world.managed_identities():
            identity = world.identity_id(w).lower()
            if path == identity:
                return Fetched(path_or_url, 200, self._identity(w))
            if path == identity + "/federatedidentitycredentials":
                fics = [{"name": c["name"], "properties": {k: v for k, v in c.items() if k != "name"}}
                        for c in world.credentials(w)]
                return Fetched(path_or_url, 200, {"value": fics})
        if path.endswith("/providers/microsoft.authorization/roleassignments"):
            return Fetched(
                path_or_url,
                200,
                {
                    "value": [
                        {
                            "properties": {
                                "roleDefinitionId": f"{sub}/providers/{ROLE_DEFINITIONS}/4633458b",
                                "scope": f"{sub}/resourcegroups/myRg/providers/microsoft.keyvault/vaults/"
                                "finance-kv",
                            }
                        }
                    ]
                },
            )
        if "/roledefinitions/" in path:
            return Fetched(path_or_url, 200, {"properties": {"roleName": "Key Vault Secrets User"}})
        return Fetched(path_or_url, 404, None, "not found", "ResourceNotFound")

    def _resource_graph(self, url: str, body: dict[str, Any]) -> Fetched:
        """Just the harness's query: identities whose clientId or principalId is the GUID it names."""
        if self.world.resource_graph_refused:
            return Fetched(url, 403, None, "Please provide below info when asking for support", "AccessDenied")
        wanted = set(re.findall(r"'([0-9a-fA-F-]{36})'", str(body.get("query", ""))))
        rows = [
            {**self._identity(w), "subscriptionId": w.subscription_id or self.world.subscription_id,
             "resourceGroup": "myrg"}
            for w in self.world.managed_identities()
            if not wanted or {w.client_id, w.principal_id} & wanted  # no GUID: the list of all identities
        ]
        return Fetched(url, 200, {"totalRecords": len(rows), "count": len(rows), "data": rows})

    def _identity(self, w: FakeWorkload) -> dict[str, Any]:
        return {
            "id": self.world.identity_id(w),
            "name": w.identity_name,
            "properties": {
                "clientId": w.client_id,
                "principalId": w.principal_id,
                "tenantId": self.world.tenant_id,
            },
        }


class FakeGraph:
    """Microsoft Graph: the applications behind workloads of kind "application", their federated credentials
    and service principals; managed identities' service principals by object id."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.calls: list[str] = []

    def __call__(self, path_or_url: str, body: dict[str, Any] | None = None) -> Fetched:
        self.calls.append(path_or_url)
        url = GRAPH.rstrip("/") + path_or_url
        if self.world.graph_refused:
            return Fetched(url, 403, None, "Insufficient privileges to complete the operation.",
                           "Authorization_RequestDenied")
        apps = [w for w in self.world.workloads if w.kind == "application"]
        path = urlsplit(path_or_url).path
        if match := re.fullmatch(r"/v1\.0/applications\(appId='([^']+)'\)(/federatedIdentityCredentials)?", path):
            w = next((a for a in apps if a.client_id == match.group(1)), None)
            if w is None:
                return self._not_found(url, match.group(1))
            if match.group(2):
                return Fetched(url, 200, {"value": [{"id": guid(), **c} for c in self.world.credentials(w)]})
            return Fetched(url, 200, {"id": w.application_object_id, "appId": w.client_id,
                                      "displayName": w.identity_name or w.service_account})
        if path == "/v1.0/applications":  # every application, its credentials expanded
            listed = [{"id": a.application_object_id, "appId": a.client_id,
                       "displayName": a.identity_name or a.service_account,
                       "federatedIdentityCredentials": [{"id": guid(), **c}
                                                        for c in self.world.credentials(a)]}
                      for a in apps]
            return Fetched(url, 200, {"value": listed})
        if match := re.fullmatch(r"/v1\.0/servicePrincipals\(appId='([^']+)'\)", path):
            w = next((a for a in apps if a.client_id == match.group(1) and a.service_principal), None)
            if w is None:
                return self._not_found(url, match.group(1))
            return Fetched(url, 200, self._service_principal(w))
        if match := re.fullmatch(r"/v1\.0/servicePrincipals/([^/]+)", path):
            w = next((a for a in self.world.workloads if a.principal_id == match.group(1)
                      and (a.kind == "managed_identity" or a.service_principal)), None)
            if w is None:
                return self._not_found(url, match.group(1))
            return Fetched(url, 200, self._service_principal(w))
        return Fetched(url, 400, None, "Resource not found for the segment", "BadRequest")

    def _service_principal(self, w: FakeWorkload) -> dict[str, Any]:
        managed = w.kind == "managed_identity"
        return {"id": w.principal_id, "appId": w.client_id, "displayName": w.identity_name or w.service_account,
                "servicePrincipalType": "ManagedIdentity" if managed else "Application",
                "alternativeNames": ["isExplicit=True", self.world.identity_id(w)] if managed else []}

    @staticmethod
    def _not_found(url: str, identifier: str) -> Fetched:
        return Fetched(url, 404, None, f"Resource '{identifier}' does not exist or one of its queried "
                                       "reference-property objects are not present.", "Request_ResourceNotFound")


class FakeHttp:
    def __init__(self, world: World) -> None:
        self.world = world

    def __call__(self, url: str, timeout: float) -> HttpResponse:
        if not self.world.issuer_reachable:
            raise HttpUnreachable("ConnectionError: connection refused")
        issuer = self.world.issuer
        base = issuer.rstrip("/")
        if url == base + "/.well-known/openid-configuration":
            return HttpResponse(
                200, json.dumps({"issuer": issuer, "jwks_uri": base + "/openid/v1/jwks"}).encode()
            )
        if url == base + "/openid/v1/jwks":
            return HttpResponse(
                200,
                json.dumps(
                    {
                        "keys": [
                            {"kty": "RSA", "alg": "RS256", "use": "sig", "kid": _KID, "n": "x", "e": "AQAB"}
                        ]
                    }
                ).encode(),
            )
        return HttpResponse(404, b"{}")
