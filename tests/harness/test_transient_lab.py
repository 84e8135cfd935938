"""End to end against one lab: transient answers, made as on Azure and then verified with ``pytest suites``.

- Entra holds an older copy of the issuer's keys: with Entra's metadata cache at 90 s (``lab ctl entra``), an
  exchange makes it keep the issuer's JWKS, ``lab ctl issuer --rotate-keys`` rotates the signing key, and the run
  reports ISSUER_KEYS_NOT_YET_SEEN (not ISSUER_KEY_NOT_FOUND): the probe's token carries the new kid, which the
  issuer already publishes; the probe waited within its bound before the harness said so.
- A federated credential created through ARM just before the run, with Entra's propagation at 20 s
  (``lab ctl propagation --fic-seconds``): the probe's exchange is refused at first, retried, and passes; its
  evidence counts the attempts. 20 s rather than a few: the run needs about 5 s before its first exchange, so a
  shorter delay could be over before the probe asks, and there would be no retry to see.
- The same credential with propagation outlasting the probe's retries (120 s against probe.retry_seconds 4): the
  run reports FIC_PROPAGATION_PENDING, a warning naming the credential and its age, not a missing or wrong one.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from test_e2e_lab import checks_of, run_suites
from test_identities_lab import Person

from lab.bootstrap import RunningLab

pytestmark = pytest.mark.slow
EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"
FIC_API = "2023-01-31"
WORKLOAD = "finance/backend-sa"


@pytest.fixture(scope="module")
def person(running_lab: RunningLab) -> Person:
    return Person(running_lab.info(), str(running_lab.state_dir / "ca.pem"))


def ctl(running_lab: RunningLab, *args: str) -> dict[str, Any]:
    result = subprocess.run([sys.executable, "-m", "lab", "ctl", "--state-dir", str(running_lab.state_dir), *args],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def finance_identity(person: Person) -> dict[str, Any]:
    identities = person.arm("GET", f"/subscriptions/{person.info['subscription_id']}/providers/"
                                   "Microsoft.ManagedIdentity/userAssignedIdentities", "2023-01-31")
    return next(i for i in identities["value"] if i["name"] == "myWorkloadId")


def exchange_now(running_lab: RunningLab, client_id: str) -> requests.Response:
    """What any workload pod does: a projected token for finance/backend-sa (TokenRequest), exchanged at Entra."""
    api = k8s.CoreV1Api(k8s_config.new_client_from_config(config_file=str(running_lab.state_dir / "kubeconfig")))
    request = k8s.AuthenticationV1TokenRequest(spec=k8s.V1TokenRequestSpec(audiences=[EXCHANGE_AUDIENCE],
                                                                          expiration_seconds=3600))
    token = api.create_namespaced_service_account_token("backend-sa", "finance", request).status.token
    info = running_lab.info()
    return requests.post(f"{info['authority_host'].rstrip('/')}/{info['tenant_id']}/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": client_id, "scope": "https://vault.azure.net/.default",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": token}, verify=str(running_lab.state_dir / "ca.pem"), timeout=30)


def config_with(running_lab: RunningLab, path: Path, **probe: Any) -> Path:
    config = yaml.safe_load(running_lab.harness_config.read_text())
    config.setdefault("probe", {}).update(probe)
    path.write_text(yaml.safe_dump(config))
    return path


def finding_codes(document: dict[str, Any], workload_id: str) -> dict[str, dict[str, Any]]:
    workload = next(w for w in document["workloads"] if w["id"] == workload_id)
    return {f["code"]: f for f in workload["findings"]}


def test_a_key_rotation_entra_has_not_seen_is_named_as_such(
    running_lab: RunningLab, person: Person, tmp_path: Path
) -> None:
    client_id = finance_identity(person)["properties"]["clientId"]
    config = config_with(running_lab, tmp_path / "harness.yaml", retry_seconds=4)
    ctl(running_lab, "entra", "--metadata-cache-seconds", "90")
    try:
        assert exchange_now(running_lab, client_id).status_code == 200  # Entra now keeps the issuer's keys
        kids = ctl(running_lab, "issuer", "--rotate-keys")["kids"]
        new_kid = kids[0]
        result, document = run_suites(tmp_path / "run", "--config", str(config), "--workload", WORKLOAD)
    finally:
        ctl(running_lab, "entra", "--metadata-cache-seconds", "0")  # forget the old copy for the next tests
    assert result.returncode == 1, result.stdout[-3000:]
    codes = finding_codes(document, WORKLOAD)
    assert "ISSUER_KEYS_NOT_YET_SEEN" in codes and "ISSUER_KEY_NOT_FOUND" not in codes, codes
    found = codes["ISSUER_KEYS_NOT_YET_SEEN"]
    assert found["severity"] == "warning" and new_kid in found["message"]
    assert found["evidence"]["token_kid"] == new_kid and new_kid in found["evidence"]["published_kids"]
    retries = found["evidence"]["retries"]
    assert retries["exhausted"] and retries["attempts"] >= 2 and set(retries["answers"]) == {"AADSTS7000272"}
    assert retries["bound_seconds"] == 4
    assert found["remediation"][0] == f"curl -sS {found['evidence']['jwks_uri']}"
    assert not any("rotate-signing-keys" in line for line in found["remediation"])
    assert exchange_now(running_lab, client_id).status_code == 200  # with the cache emptied: the new key is seen


def recreate_the_workloads_credential(person: Person) -> dict[str, Any]:
    """finance/backend-sa's federated credential deleted and made again through ARM (as new to Entra): returns it."""
    identity = finance_identity(person)
    credentials = person.arm("GET", f"{identity['id']}/federatedIdentityCredentials", FIC_API)["value"]
    (credential,) = [c for c in credentials if c["properties"]["subject"] == "system:serviceaccount:finance:backend-sa"]
    person.arm("DELETE", credential["id"], FIC_API)
    person.arm("PUT", credential["id"], FIC_API, {"properties": credential["properties"]})
    return credential


def test_a_credential_created_just_before_the_run_passes_thanks_to_the_retries(
    running_lab: RunningLab, person: Person, tmp_path: Path
) -> None:
    ctl(running_lab, "propagation", "--fic-seconds", "20")
    try:
        recreate_the_workloads_credential(person)
        created = time.monotonic()
        result, document = run_suites(tmp_path, "--config", str(running_lab.harness_config), "--workload", WORKLOAD)
    finally:
        ctl(running_lab, "propagation", "--fic-seconds", "0")
    assert result.returncode == 0, result.stdout[-3000:]
    exchange = checks_of(document, WORKLOAD)["exchange.succeeds"]
    assert exchange["status"] == "pass"
    retries = exchange["evidence"]["retries"]
    assert retries["attempts"] >= 2 and retries["answers"][-1] == "HTTP 200" and not retries["exhausted"]
    assert set(retries["answers"][:-1]) <= {"AADSTS700211", "AADSTS700213"}, retries
    assert retries["waited_seconds"] > 0 and time.monotonic() - created >= 20


def test_a_credential_still_propagating_after_the_retries_is_named_propagation_pending(
    running_lab: RunningLab, person: Person, tmp_path: Path
) -> None:
    config = config_with(running_lab, tmp_path / "harness.yaml", retry_seconds=4)
    ctl(running_lab, "propagation", "--fic-seconds", "120")
    try:
        credential = recreate_the_workloads_credential(person)
        result, document = run_suites(tmp_path / "run", "--config", str(config), "--workload", WORKLOAD)
    finally:
        ctl(running_lab, "propagation", "--fic-seconds", "0")
    assert result.returncode == 1, result.stdout[-3000:]
    codes = finding_codes(document, WORKLOAD)
    assert set(codes) == {"FIC_PROPAGATION_PENDING"}, codes
    found = codes["FIC_PROPAGATION_PENDING"]
    assert found["severity"] == "warning" and credential["name"] in found["message"] and "s ago" in found["message"]
    retries = found["evidence"]["retries"]
    assert retries["exhausted"] and retries["attempts"] >= 2 and retries["bound_seconds"] == 4, retries
    assert checks_of(document, WORKLOAD)["exchange.succeeds"]["status"] == "fail"
