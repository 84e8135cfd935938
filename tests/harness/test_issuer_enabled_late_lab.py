"""A cluster made before its OIDC issuer was enabled, its workload running, then az aks update --enable-oidc-issuer
(an ARM PUT): the running pods keep the token the API server issued before, whose iss is the API server's own
(AKS use-oidc-issuer: "restart the pods"), until the kubelet replaces it at 80% of its lifetime. The identity is
federated with the issuer after it is enabled, as it must be (its URL carries a random GUID it has only then). The
probe's fresh token is right, so every link passed; POD_TOKEN_PREDATES_ISSUER now warns with the restart, and once
the restart is pasted the next run is clean. A module of its own lab."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.identity import ClientSecretCredential
from test_e2e_lab import run_suites

from lab.bootstrap import RunningLab

pytestmark = pytest.mark.slow
WORKLOAD = "finance/backend-sa"
AKS_API = "2024-09-01"


def must(lab: RunningLab, home: Path, line: str) -> str:
    env = {**os.environ, "HOME": str(home), "KUBECONFIG": str(lab.state_dir / "kubeconfig")}
    done = subprocess.run(["bash", "-c", line], env=env, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, (line, done.stdout, done.stderr)
    return done.stdout


def token_issuer(lab: RunningLab, home: Path) -> str:
    pod = must(lab, home, "kubectl get pods -n finance -l app=backend -o jsonpath='{.items[0].metadata.name}'")
    token = must(lab, home, f"kubectl exec -n finance {pod} -- cat /var/run/secrets/azure/tokens/azure-identity-token")
    payload = token.split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["iss"])


def findings(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [*document["findings"], *(f for w in document["workloads"] for f in w["findings"])]


def arm_headers(lab: RunningLab) -> dict[str, str]:
    info, ca = lab.info(), str(lab.state_dir / "ca.pem")
    admin = info["admin"]
    credential = ClientSecretCredential(info["tenant_id"], admin["client_id"], admin["client_secret"],
                                        authority=info["authority_host"], disable_instance_discovery=True,
                                        connection_verify=ca)
    return {"Authorization": f"Bearer {credential.get_token('https://management.azure.com/.default').token}"}


def enable_oidc_issuer(lab: RunningLab) -> None:
    """What az aks update --enable-oidc-issuer sends: the cluster as read, its oidcIssuerProfile enabled, PUT back."""
    info, ca, headers = lab.info(), str(lab.state_dir / "ca.pem"), arm_headers(lab)
    config = (lab.state_dir / "harness.yaml").read_text()
    name = next(line.split(":", 1)[1].strip() for line in config.splitlines() if "cluster_name:" in line)
    group = next(line.split(":", 1)[1].strip() for line in config.splitlines() if "resource_group:" in line)
    url = (f"{info['endpoints']['arm']}/subscriptions/{info['subscription_id']}/resourceGroups/{group}/providers/"
           f"Microsoft.ContainerService/managedClusters/{name}")
    cluster: dict[str, Any] = requests.get(url, params={"api-version": AKS_API}, headers=headers, verify=ca,
                                           timeout=30).json()
    cluster["properties"]["oidcIssuerProfile"] = {"enabled": True}
    answer = requests.put(url, params={"api-version": AKS_API}, json=cluster, headers=headers, verify=ca, timeout=30)
    assert answer.ok, answer.text
    assert answer.json()["systemData"]["lastModifiedAt"]


def federate_with_the_issuer(lab: RunningLab) -> None:
    """What az identity federated-credential delete, then create, send for the backend's credential: made now, after
    the issuer (its systemData.createdAt), as it is when the issuer is enabled late."""
    info, ca, headers = lab.info(), str(lab.state_dir / "ca.pem"), arm_headers(lab)
    api = {"api-version": "2023-01-31"}
    listed = requests.get(f"{info['endpoints']['arm']}/subscriptions/{info['subscription_id']}/providers/"
                          "Microsoft.ManagedIdentity/userAssignedIdentities", params=api, headers=headers, verify=ca,
                          timeout=30)
    assert listed.ok, listed.text
    for identity in listed.json()["value"]:
        base = f"{info['endpoints']['arm']}{identity['id']}/federatedIdentityCredentials"
        for fic in requests.get(base, params=api, headers=headers, verify=ca, timeout=30).json()["value"]:
            if fic["properties"]["subject"] != "system:serviceaccount:finance:backend-sa":
                continue
            url = f"{base}/{fic['name']}"
            assert requests.delete(url, params=api, headers=headers, verify=ca, timeout=30).ok
            made = requests.put(url, params=api, json={"properties": {**fic["properties"],
                                                                      "issuer": info["issuer_url"]}},
                                headers=headers, verify=ca, timeout=30)
            assert made.ok, made.text
            return
    raise AssertionError("no federated credential for finance/backend-sa")


def test_pods_made_before_the_oidc_issuer_was_enabled_are_told_to_restart(running_lab: RunningLab,
                                                                           tmp_path: Path) -> None:
    if subprocess.run(["bash", "-c", "command -v kubectl"], capture_output=True).returncode != 0:
        pytest.skip("kubectl is not installed")
    config = str(running_lab.state_dir / "harness.yaml")
    must(running_lab, tmp_path, f"{sys.executable} -m lab ctl --state-dir {running_lab.state_dir} cluster "
                                "--oidc-issuer off")
    must(running_lab, tmp_path, "kubectl rollout restart deployment/backend -n finance && "
                                "kubectl rollout status deployment/backend -n finance --timeout=60s")
    before = token_issuer(running_lab, tmp_path)
    # a pod's creationTimestamp has whole seconds, so the harness takes a pod of the update's second (or the one
    # before) not to predate it; people enable the issuer long after their pods started: wait out that second here
    made = must(running_lab, tmp_path, "kubectl get pods -n finance -l app=backend "
                                       "-o jsonpath='{.items[*].metadata.creationTimestamp}'")
    made_at = max(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() for stamp in made.split())
    while time.time() < made_at + 2.5:
        time.sleep(0.1)
    enable_oidc_issuer(running_lab)
    federate_with_the_issuer(running_lab)
    assert token_issuer(running_lab, tmp_path) == before  # the running pod keeps its token, and its iss
    assert before != running_lab.info()["issuer_url"]

    result, document = run_suites(tmp_path / "late", "--config", config, "--workload", WORKLOAD)
    assert result.returncode == 0, result.stdout[-3000:]  # a warning: the harness cannot read the pod's token
    (finding,) = [f for f in findings(document) if f["code"] == "POD_TOKEN_PREDATES_ISSUER"]
    assert "before the managed cluster's last update" in finding["message"]
    assert "AADSTS700211" in finding["message"]
    (restart,) = finding["remediation"]
    assert restart.startswith("kubectl rollout restart deployment/backend -n finance")
    must(running_lab, tmp_path, restart)
    must(running_lab, tmp_path, "kubectl rollout status deployment/backend -n finance --timeout=60s")
    assert token_issuer(running_lab, tmp_path) == running_lab.info()["issuer_url"]
    result, document = run_suites(tmp_path / "restarted", "--config", config, "--workload", WORKLOAD)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "POD_TOKEN_PREDATES_ISSUER" not in {f["code"] for f in findings(document)}
