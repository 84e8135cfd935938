"""The state of the emulated AKS cluster that is not API objects: users, webhook, issuer keys, version."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from lab.keys import KeySet
from lab.kube.store import Store
from lab.kube.webhook import WebhookSettings

KUBERNETES_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.6",
    "gitCommit": "0c4b8b5b9d3a1c6f3a8e6f0f3c5c7b3f2b1a0e9d",
    "gitTreeState": "clean",
    "buildDate": "2025-06-17T17:56:10Z",
    "goVersion": "go1.23.10",
    "compiler": "gc",
    "platform": "linux/amd64",
}


@dataclass
class KubeUser:
    name: str
    token: str
    groups: list[str] = field(default_factory=lambda: ["system:authenticated"])


@dataclass
class AccessRule:
    """Allow ``verbs`` on ``resources`` (plural, or "*") in API ``groups`` within ``namespaces`` ("*" = all)."""

    verbs: list[str]
    resources: list[str]
    groups: list[str] = field(default_factory=lambda: ["*"])
    namespaces: list[str] = field(default_factory=lambda: ["*"])

    def allows(self, verb: str, resource: str, group: str, namespace: str) -> bool:
        def hit(values: list[str], value: str) -> bool:
            return "*" in values or value in values

        return (hit(self.verbs, verb) and hit(self.resources, resource) and hit(self.groups, group)
                and hit(self.namespaces, namespace))


@dataclass
class KubeCluster:
    name: str
    issuer_url: str
    webhook: WebhookSettings
    store: Store = field(default_factory=Store)
    users: dict[str, KubeUser] = field(default_factory=dict)  # bearer token -> user
    # username -> rules; a user with no entry may do everything (cluster-admin), like the kubeconfig's admin.
    policy: dict[str, list[AccessRule]] = field(default_factory=dict)
    issuer_keys: KeySet = field(default_factory=KeySet)
    # The JWKS the issuer publishes when it no longer follows the API server's keys (lab ctl issuer --stale-jwks
    # on): what a self-managed issuer serves whose JWKS is not uploaded again after the signing key changes.
    issuer_jwks_frozen: dict[str, Any] | None = None
    # Every issuer the API server has written into a token (lab.kube.issuer.signing_issuer): it accepts them all
    accepted_issuers: set[str] = field(default_factory=set)
    version: dict[str, Any] = field(default_factory=lambda: dict(KUBERNETES_VERSION))
    pod_start_latency_seconds: float = 0.0
    # Images the kubelet can run: image name (without tag) -> command (argv) prepended to the container's args.
    runnable_images: dict[str, list[str]] = field(default_factory=dict)
    # Images that run no process and just stay Running (scenario workloads to inspect).
    idle_images: set[str] = field(default_factory=set)
    # Images the lab plays itself: name -> async (lab, pod, container name, log) -> exit code (the webhook's manager).
    emulated_images: dict[str, Any] = field(default_factory=dict)
    # (namespace, pod, container) -> everything the container wrote to stdout/stderr, for pods/log.
    pod_logs: dict[tuple[str, str, str], bytearray] = field(default_factory=dict)
    # (namespace, pod) -> the azure-wi-webhook-config data a webhook manager read (envFrom) when it started.
    webhook_pod_config: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)

    def add_user(self, name: str, groups: list[str] | None = None, rules: list[AccessRule] | None = None) -> KubeUser:
        user = KubeUser(name=name, token=secrets.token_urlsafe(32),
                        groups=[*(groups or []), "system:authenticated"])
        self.users[user.token] = user
        if rules is not None:
            self.policy[name] = rules
        return user

    def authorize(self, user: KubeUser, verb: str, resource: str, group: str, namespace: str) -> bool:
        rules = self.policy.get(user.name)
        if rules is None:
            return True
        return any(rule.allows(verb, resource, group, namespace) for rule in rules)
