"""What ``lab up`` writes to its state dir: kubeconfig, ca.pem, lab.json, env.sh, harness.yaml."""

from __future__ import annotations

import base64
import json
import os
import shlex
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from lab.azure.world import KEYVAULT_AUDIENCE, STORAGE_AUDIENCE

if TYPE_CHECKING:
    from lab.runtime import Lab

CONTEXT_NAME = "lab"


def _write_private(path: Path, text: str) -> None:
    """Files holding credentials are readable by their owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def kubeconfig(lab: Lab) -> dict[str, Any]:
    cluster = lab.kube.name
    user = f"clusterUser_{lab.extra.get('cluster', {}).get('resource_group', 'lab')}_{cluster}"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {
            "server": lab.endpoints["kube"],
            "certificate-authority-data": base64.b64encode(lab.tls.ca_pem).decode(),
        }}],
        "users": [{"name": user, "user": {"token": lab.credentials["kube_admin_token"]}}],
        "contexts": [{"name": CONTEXT_NAME, "context": {"cluster": cluster, "user": user}}],
        "current-context": CONTEXT_NAME,
        "preferences": {},
    }


def lab_json(lab: Lab) -> dict[str, Any]:
    return {
        "schema": "wi-lab/v1",
        "pid": os.getpid(),
        "scenario": lab.scenario,
        "endpoints": lab.endpoints,
        "issuer_url": lab.issuer_url,
        "authority_host": lab.authority_host,
        "tenant_id": lab.tenant_id,
        "subscription_id": lab.subscription_id,
        "subscriptions": [{"id": sub.subscription_id, "name": sub.display_name}
                          for sub in lab.azure.subscriptions.values()],
        "region": lab.region,
        "cluster": lab.extra.get("cluster", {}),
        "vaults": {name: lab.vault_url(vault.name) for name, vault in lab.azure.vaults.items()},
        "storage_accounts": {name: lab.blob_url(acct.name) for name, acct in lab.azure.storage_accounts.items()},
        "harness": {"client_id": lab.credentials.get("harness", {}).get("client_id")},
        "admin": {
            "client_id": lab.credentials.get("admin", {}).get("client_id"),
            "client_secret": lab.credentials.get("admin", {}).get("client_secret"),
        },
        "control": {"url": lab.endpoints["control"], "token": lab.control_token},
        "files": {name: str(lab.state_dir / name) for name in ("kubeconfig", "ca.pem", "env.sh", "harness.yaml")},
    }


def harness_config(lab: Lab) -> dict[str, Any]:
    cluster = lab.extra.get("cluster", {})
    return {
        "cluster": {"kubeconfig": str(lab.state_dir / "kubeconfig"), "context": CONTEXT_NAME,
                    "ca_file": str(lab.state_dir / "ca.pem")},  # the issuer's CA, when azure: is left out
        "azure": {
            "cloud": {
                "name": "lab",
                "authority_host": lab.authority_host,
                "resource_manager": lab.endpoints["arm"] + "/",
                "microsoft_graph": lab.endpoints["graph"] + "/",
                **data_hosts(lab),
            },
            "ca_file": str(lab.state_dir / "ca.pem"),
            "tenant_id": lab.tenant_id,
            "subscription_id": lab.subscription_id,
            "resource_group": cluster.get("resource_group"),
            "cluster_name": cluster.get("name"),
            "credential": {
                "client_id": lab.credentials.get("harness", {}).get("client_id"),
                "client_secret_file": str(lab.state_dir / "secrets" / "harness-client-secret"),
            },
        },
        "probe": {**lab.extra.get("probe", {"mode": "configmap"}), "timeout_seconds": 120},
        "workloads": lab.extra.get("workloads", []),
    }


def data_hosts(lab: Lab) -> dict[str, Any]:
    """The only hosts the harness may send a workload's token to: each vault listens on a loopback port of its
    own (its vaultUri), every storage account is a path on the storage service's port. A vault answers the
    challenge with the public cloud's resource, as the tokens it accepts carry that audience."""
    hosts: dict[str, Any] = {
        "storage_hosts": [urllib.parse.urlsplit(lab.endpoints["storage"]).netloc],
        "storage_resource": STORAGE_AUDIENCE,
    }
    vault_hosts = sorted({urllib.parse.urlsplit(lab.vault_url(name)).netloc for name in lab.azure.vaults})
    if vault_hosts:
        hosts.update({"keyvault_hosts": vault_hosts, "keyvault_resource": KEYVAULT_AUDIENCE})
    return hosts


def env_sh(lab: Lab) -> str:
    from lab.runtime import env_for_clients

    lines = ["# source this file: exports for kubectl, az and the Azure SDKs aimed at this lab"]
    lines += [f"export {key}={shlex.quote(value)}" for key, value in env_for_clients(lab).items()]
    return "\n".join(lines) + "\n"


def write_all(lab: Lab) -> None:
    state = lab.state_dir
    lab.tls.write_ca(state / "ca.pem")
    _write_private(state / "kubeconfig", yaml.safe_dump(kubeconfig(lab), sort_keys=False))
    _write_private(state / "secrets" / "harness-client-secret",
                   lab.credentials.get("harness", {}).get("client_secret", ""))
    _write_private(state / "env.sh", env_sh(lab))
    (state / "harness.yaml").write_text(yaml.safe_dump(harness_config(lab), sort_keys=False))
    # lab.json last: its presence tells a waiting process that everything else is in place.
    _write_private(state / "lab.json.tmp", json.dumps(lab_json(lab), indent=2))
    os.replace(state / "lab.json.tmp", state / "lab.json")
