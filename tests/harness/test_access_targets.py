"""Access targets: only the configured cloud's own Key Vault / Blob hosts may receive a workload's token.

- harness.yaml refuses an access URL outside the cloud's suffixes (look-alikes, other clouds, ports, IDN,
  backslashes, percent-escapes, trailing dots), with ONE line naming the field, and any URL with a user name or
  password anywhere in the file, never echoing the password (also through the CLI: exit 4);
- each check's token scope comes from its URL's suffix (a vault in China: vault.azure.cn), scope: wins;
- the probe's config carries the hosts and the challenge resource; a vault whose challenge is missing or names
  another resource gets no token, and the harness reports ACCESS_TARGET_NOT_TRUSTED with a fix;
- the redactor masks URL userinfo wherever it appears.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from fakeworld import VAULT, World

from harness.clouds import KNOWN_CLOUDS, HostPattern, UrlProblem, parse_https_url
from harness.collect.probe_pods import probe_config_for
from harness.config import ConfigError, parse_config
from harness.redact import Redactor

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "hunter2-in-a-url"
KV_HOSTS = "expected *.vault.azure.net or *.managedhsm.azure.net"


def config_with(access: dict[str, Any], cloud: Any = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "workloads": [
            {
                "namespace": "finance",
                "service_account": "backend-sa",
                "access": [
                    {"kind": "keyvault_secret", "vault_url": VAULT, "secret": "db", "expect": "allow"},
                    access,
                ],
            }
        ]
    }
    if cloud is not None:
        data["azure"] = {
            "cloud": cloud,
            "tenant_id": "72f988bf-86f1-41af-91ab-2d7cd011db47",
            "subscription_id": "0b1f6471-1bf0-4dda-aec3-111122223333",
            "resource_group": "rg",
            "cluster_name": "aks",
        }
    return data


def vault(url: str) -> dict[str, Any]:
    return {"kind": "keyvault_secret", "vault_url": url, "secret": "db", "expect": "allow"}


def blob(url: str) -> dict[str, Any]:
    return {"kind": "blob", "account_url": url, "container": "c", "blob": "b", "expect": "allow"}


def problems(data: dict[str, Any], tmp_path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, "harness.yaml", base_dir=tmp_path, environ={})
    return info.value.problems


# ---------------------------------------------------------------- hostile and look-alike URLs


@pytest.mark.parametrize(
    ("access", "expected"),
    [
        (vault("https://finance-kv.vault.azure.net.evil.com/"),
         f"host finance-kv.vault.azure.net.evil.com is not a Key Vault host of cloud AzureCloud ({KV_HOSTS})"),
        (vault("https://evilvault.azure.net/"),
         f"host evilvault.azure.net is not a Key Vault host of cloud AzureCloud ({KV_HOSTS})"),
        (vault("https://vault.azure.net/"), "host vault.azure.net is not a Key Vault host"),
        (vault("https://finance-kv.vault.azure.net:8443/"),
         "host finance-kv.vault.azure.net:8443 is not a Key Vault host"),
        (vault("https://finance-kv.vault.azure.cn/"), "host finance-kv.vault.azure.cn is not a Key Vault host"),
        (vault("https://finance-kv.blob.core.windows.net/"), "is not a Key Vault host"),
        (vault("https://127.0.0.1:8443/"), "host 127.0.0.1:8443 is not a Key Vault host"),
        (vault("https://finance-kv.vault.azure.net@evil.com/"), "must not contain a user name or password"),
        (vault(f"https://user:{PASSWORD}@finance-kv.vault.azure.net/"), "must not contain a user name or password"),
        (vault(f"https://user:{PASSWORD}@@evil.com/"), "must not contain a user name or password"),
        (vault("https://finance-kv.vault.azure.net\\@evil.com/"), "must not contain a backslash"),
        (vault("https://finance-kv.vault.azure.net./"), "must not end with a dot"),
        (vault("https://finance-kv%2evault.azure.net/"), "must not contain percent-escapes"),
        (vault("https://finance-kv.vаult.azure.net/"), "host must be ASCII"),  # Cyrillic a
        (vault("https://finance-kv..vault.azure.net/"), "is not a valid host name"),
        (vault("https://finance-kv.vault.azure.net /"), "must not contain whitespace"),
        (blob("https://ordersdata.blob.core.windows.net.evil.com/"),
         "host ordersdata.blob.core.windows.net.evil.com is not a Blob Storage host of cloud AzureCloud "
         "(expected *.blob.core.windows.net)"),
        (blob("https://ordersdata.vault.azure.net/"), "is not a Blob Storage host"),
    ],
)
def test_a_hostile_access_url_is_one_line_naming_the_field(
    tmp_path: Path, access: dict[str, Any], expected: str
) -> None:
    field = "vault_url" if access["kind"] == "keyvault_secret" else "account_url"
    [line] = problems(config_with(access), tmp_path)
    assert line.startswith(f"workloads[0].access[1].{field}: ")
    assert expected in line
    assert PASSWORD not in line


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        # a secret's id pasted as the vault's URL: read as .../secrets/db-password/secrets/SECRET, a 400 from Key Vault
        ("vault_url", "https://finance-kv.vault.azure.net/secrets/db-password",
         "vault_url: has a path (/secrets/db-password): it is the vault's own URL, https://NAME.vault.azure.net/"),
        ("vault_url", "https://finance-kv.vault.azure.net/secrets/db-password/4387e9f3d6e14c459867679a90fd0f79",
         "the secret's name goes in secret:"),
        ("secret", "db password", "secret: 'db password' is not a Key Vault secret name"),
        ("secret", "db_password", "secret: 'db_password' is not a Key Vault secret name"),
        ("secret", "x" * 128, "is not a Key Vault secret name"),
    ],
)
def test_a_secret_id_or_an_impossible_secret_name_is_one_line(tmp_path: Path, field: str, value: str,
                                                               expected: str) -> None:
    access = vault("https://finance-kv.vault.azure.net/")
    access[field] = value
    [line] = problems(config_with(access), tmp_path)
    assert line.startswith(f"workloads[0].access[1].{field}: ") and expected in line, line


@pytest.mark.parametrize(
    "url",
    [
        "https://FINANCE-KV.VAULT.AZURE.NET/",
        "https://finance-kv.vault.azure.net:443/",
        "https://finance-kv.managedhsm.azure.net/",
        "https://xn--finance-kv-xyz.vault.azure.net/",
    ],
)
def test_real_vault_hosts_are_accepted(tmp_path: Path, url: str) -> None:
    parse_config(config_with(vault(url)), base_dir=tmp_path, environ={})


@pytest.mark.parametrize(
    ("cloud", "field"),
    [
        ({"name": "private", "authority_host": f"https://u:{PASSWORD}@login.example/",
          "resource_manager": "https://arm.example/"}, "azure.cloud.authority_host"),
        ({"name": "private", "authority_host": "https://login.example/",
          "resource_manager": f"https://u:{PASSWORD}@arm.example/"}, "azure.cloud.resource_manager"),
        ({"name": "private", "authority_host": "https://login.example/", "resource_manager": "https://arm.example/",
          "keyvault_hosts": [".vault.example"], "keyvault_resource": f"https://u:{PASSWORD}@vault.example"},
         "azure.cloud.keyvault_resource"),
    ],
)
def test_userinfo_is_refused_in_every_url_of_the_file(tmp_path: Path, cloud: dict[str, Any], field: str) -> None:
    found = problems(config_with(vault(VAULT), cloud=cloud), tmp_path)
    assert any(p.startswith(f"{field}: must not contain a user name or password") for p in found), found
    assert all(PASSWORD not in p for p in found)


def test_userinfo_in_a_scope_is_refused_without_echo(tmp_path: Path) -> None:
    data = config_with(dict(vault(VAULT), scope=f"https://u:{PASSWORD}@vault.azure.net/.default"))
    data["workloads"][0]["scope"] = f"https://u:{PASSWORD}@vault.azure.net/.default"
    found = problems(data, tmp_path)
    assert sorted(p.split(":")[0] for p in found) == ["workloads[0].access[1].scope", "workloads[0].scope"]
    assert all(PASSWORD not in p for p in found)


def test_a_bad_config_through_the_cli_is_exit_4_with_one_line(pytester: pytest.Pytester) -> None:
    suites = pytester.path / "suites"
    suites.mkdir()
    for source in (REPO / "suites").glob("*.py"):
        shutil.copy(source, suites / source.name)
    pytester.makeconftest(f"import sys\nsys.path[:0] = [{str(REPO)!r}]\npytest_plugins = ['harness.plugin']\n")
    (pytester.path / "bad.yaml").write_text(
        yaml.safe_dump(config_with(vault(f"https://admin:{PASSWORD}@finance-kv.vault.azure.net.evil.com/")))
    )
    result = pytester.runpytest("suites", "--config", "bad.yaml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.strip()]
    assert len(errors) == 1, errors
    assert "workloads[0].access[1].vault_url: must not contain a user name or password" in errors[0]
    assert PASSWORD not in result.stdout.str() + result.stderr.str()


# ---------------------------------------------------------------- custom clouds


LAB_CLOUD = {
    "name": "lab",
    "authority_host": "https://127.0.0.1:1/",
    "resource_manager": "https://127.0.0.1:2/",
    "keyvault_hosts": ["127.0.0.1:4", "127.0.0.1:5"],
    "keyvault_resource": "https://vault.azure.net",
    "storage_hosts": ["127.0.0.1:3"],
}


def test_a_custom_cloud_declares_its_hosts_and_the_resource_they_imply(tmp_path: Path) -> None:
    data = config_with(vault("https://127.0.0.1:4/"), cloud=LAB_CLOUD)
    data["workloads"][0]["access"] = [vault("https://127.0.0.1:4/"), blob("https://127.0.0.1:3/ordersdata/")]
    config = parse_config(data, base_dir=tmp_path, environ={})
    kv_check, blob_check = probe_config_for(config.workloads[0], config.probe, config.cloud)["checks"]
    assert kv_check["allowed_hosts"] == ["127.0.0.1:4", "127.0.0.1:5"]
    assert kv_check["challenge_resource"] == "https://vault.azure.net"
    assert kv_check["scope"] == "https://vault.azure.net/.default"
    assert blob_check["scope"] == "https://storage.azure.com/.default"  # the default, as in every cloud
    assert blob_check["allowed_hosts"] == ["127.0.0.1:3"] and "challenge_resource" not in blob_check

    data["workloads"][0]["access"] = [vault("https://127.0.0.1:6/"), blob("https://127.0.0.1:4/x/")]
    assert problems(data, tmp_path) == [
        "workloads[0].access[0].vault_url: host 127.0.0.1:6 is not a Key Vault host of cloud lab "
        "(expected 127.0.0.1:4 or 127.0.0.1:5; if it is one, add it to azure.cloud.keyvault_hosts)",
        "workloads[0].access[1].account_url: host 127.0.0.1:4 is not a Blob Storage host of cloud lab "
        "(expected 127.0.0.1:3; if it is one, add it to azure.cloud.storage_hosts)",
    ]


@pytest.mark.parametrize(
    ("cloud_fields", "expected"),
    [
        ({"keyvault_hosts": [".vault.example"]}, "keyvault_hosts needs keyvault_resource"),
        ({"keyvault_resource": "https://vault.example"}, "keyvault_resource needs keyvault_hosts"),
        ({"keyvault_hosts": ["*.vault.example"], "keyvault_resource": "https://vault.example"},
         "azure.cloud.keyvault_hosts[0]: "),
        ({"storage_hosts": ["https://blob.example/"]}, "azure.cloud.storage_hosts[0]: "),
        ({"storage_hosts": [".example"]}, "a suffix needs at least two labels"),
    ],
)
def test_a_custom_clouds_hosts_are_checked(tmp_path: Path, cloud_fields: dict[str, Any], expected: str) -> None:
    cloud = {"name": "private", "authority_host": "https://login.example/", "resource_manager": "https://arm.example/"}
    data = config_with(vault(VAULT), cloud={**cloud, **cloud_fields})
    data["workloads"] = []
    assert any(expected in p for p in problems(data, tmp_path))


def test_a_known_clouds_hosts_are_built_in(tmp_path: Path) -> None:
    data = config_with(vault(VAULT), cloud={"name": "AzureCloud", "keyvault_hosts": [".evil.com"]})
    assert any("only a custom cloud declares its own" in p for p in problems(data, tmp_path))


def test_a_custom_cloud_without_vault_hosts_says_so(tmp_path: Path) -> None:
    cloud = {"name": "private", "authority_host": "https://login.example/", "resource_manager": "https://arm.example/"}
    [line] = problems(config_with(vault(VAULT), cloud=cloud), tmp_path)[:1]
    assert line.startswith("workloads[0].access[0].vault_url: host finance-kv.vault.azure.net is not a Key Vault "
                           "host of cloud private: it declares none (azure.cloud.keyvault_hosts")


# ---------------------------------------------------------------- scopes per cloud


@pytest.mark.parametrize(
    ("cloud", "url", "scope"),
    [
        ("AzureCloud", "https://kv.vault.azure.net/", "https://vault.azure.net/.default"),
        ("AzureCloud", "https://hsm.managedhsm.azure.net/", "https://managedhsm.azure.net/.default"),
        ("AzureChinaCloud", "https://kv.vault.azure.cn/", "https://vault.azure.cn/.default"),
        ("AzureChinaCloud", "https://hsm.managedhsm.azure.cn/", "https://managedhsm.azure.cn/.default"),
        ("AzureUSGovernment", "https://kv.vault.usgovcloudapi.net/", "https://vault.usgovcloudapi.net/.default"),
        ("AzureChinaCloud", "https://a.blob.core.chinacloudapi.cn/", "https://storage.azure.com/.default"),
        ("AzureUSGovernment", "https://a.blob.core.usgovcloudapi.net/", "https://storage.azure.com/.default"),
    ],
)
def test_the_token_scope_comes_from_the_urls_suffix(tmp_path: Path, cloud: str, url: str, scope: str) -> None:
    access = vault(url) if ".blob." not in url else blob(url)
    data = config_with(access, cloud=cloud)
    data["workloads"][0]["access"] = [access]
    config = parse_config(data, base_dir=tmp_path, environ={})
    [check] = probe_config_for(config.workloads[0], config.probe, config.cloud)["checks"]
    assert check["scope"] == scope
    if access["kind"] == "keyvault_secret":
        assert check["challenge_resource"] == scope.removesuffix("/.default")


@pytest.mark.parametrize(
    ("cloud", "scope"),
    [("AzureCloud", "https://vault.azure.net/.default"), ("AzureChinaCloud", "https://vault.azure.cn/.default"),
     ("AzureUSGovernment", "https://vault.usgovcloudapi.net/.default")],
)
def test_the_exchange_steps_scope_is_one_the_clouds_entra_knows(tmp_path: Path, cloud: str, scope: str) -> None:
    data = config_with(vault(VAULT), cloud=cloud)
    data["workloads"][0]["access"] = []
    config = parse_config(data, base_dir=tmp_path, environ={})
    assert probe_config_for(config.workloads[0], config.probe, config.cloud)["scope"] == scope
    data["workloads"][0]["scope"] = "api://explicit/.default"
    config = parse_config(data, base_dir=tmp_path, environ={})
    assert probe_config_for(config.workloads[0], config.probe, config.cloud)["scope"] == "api://explicit/.default"


def test_an_explicit_scope_wins(tmp_path: Path) -> None:
    access = dict(vault("https://kv.vault.azure.cn/"), scope="api://custom/.default")
    data = config_with(access, cloud="AzureChinaCloud")
    data["workloads"][0]["access"] = [access]
    config = parse_config(data, base_dir=tmp_path, environ={})
    [check] = probe_config_for(config.workloads[0], config.probe, config.cloud)["checks"]
    assert check["scope"] == "api://custom/.default" and check["challenge_resource"] == "https://vault.azure.cn"


def test_the_probe_accepts_what_the_harness_writes(tmp_path: Path) -> None:
    from probe.config import parse

    config = parse_config(config_with(blob("https://a.blob.core.windows.net/")), base_dir=tmp_path, environ={})
    parsed = parse(probe_config_for(config.workloads[0], config.probe, config.cloud))
    assert [p.text for p in parsed.checks[0].allowed_hosts] == [".vault.azure.net"]
    assert parsed.checks[0].challenge_resource == "https://vault.azure.net"
    assert [p.text for p in parsed.checks[1].allowed_hosts] == [".blob.core.windows.net"]


# ---------------------------------------------------------------- host patterns


@pytest.mark.parametrize(
    ("pattern", "url", "matches"),
    [
        (".vault.azure.net", "https://kv.vault.azure.net/", True),
        (".vault.azure.net", "https://KV.Vault.Azure.Net/", True),
        (".vault.azure.net", "https://a.b.vault.azure.net/", True),
        (".vault.azure.net", "https://vault.azure.net/", False),
        (".vault.azure.net", "https://evilvault.azure.net/", False),
        (".vault.azure.net", "https://kv.vault.azure.net:8443/", False),
        (".vault.azure.net:8443", "https://kv.vault.azure.net:8443/", True),
        ("127.0.0.1:*", "https://127.0.0.1:1234/", True),
        ("127.0.0.1", "https://127.0.0.1:1234/", False),
        ("127.0.0.1:1234", "https://127.0.0.10:1234/", False),
    ],
)
def test_host_patterns(pattern: str, url: str, matches: bool) -> None:
    assert HostPattern.parse(pattern).matches(parse_https_url(url)) is matches


def test_urls_with_userinfo_never_parse() -> None:
    with pytest.raises(UrlProblem) as info:
        parse_https_url(f"https://user:{PASSWORD}@kv.vault.azure.net/")
    assert PASSWORD not in str(info.value)


# ---------------------------------------------------------------- the flow, through the real probe


@pytest.mark.parametrize("challenge_resource", ["https://attacker.example", None])
def test_a_vault_that_does_not_prove_itself_gets_no_token_and_a_finding(
    run_world: Any, challenge_resource: str | None
) -> None:
    world = World.healthy(keyvault_challenge_resource=challenge_resource)
    results, _ = run_world(world)
    check = results.workloads["finance/backend-sa"].check("access.keyvault:finance-kv/db-password")
    [finding] = check.findings
    assert finding.code == "ACCESS_TARGET_NOT_TRUSTED" and finding.severity == "error" and finding.layer == "access"
    assert "no token was sent" in finding.message
    assert finding.fix_lines()[0] == "az keyvault show --name finance-kv --query properties.vaultUri -o tsv"
    assert finding.fix_lines()[1].startswith("# set the access entry's URL in harness.yaml")
    assert not [url for url in world.bearer_sent_to if url.startswith(VAULT)]
    assert results.workloads["orders/orders-sa"].check("access.blob:ordersdata/reports/daily.csv").status == "pass"  # blob: suffix check only


def test_a_vault_that_proves_itself_gets_the_token(run_world: Any) -> None:
    world = World.healthy()
    results, _ = run_world(world)
    assert results.workloads["finance/backend-sa"].check("access.keyvault:finance-kv/db-password").status == "pass"
    assert [url for url in world.bearer_sent_to if url.startswith(VAULT)]


# ---------------------------------------------------------------- redaction


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"GET https://user:{PASSWORD}@host.example/x failed", "GET https://[REDACTED]@host.example/x failed"),
        (f"https://u:p@{PASSWORD}@host/", "https://[REDACTED]@host/"),
        ("https://host/path@x and mail me@example.com", "https://host/path@x and mail me@example.com"),
        (f"{{'url': 'HTTPS://admin:{PASSWORD}@kv.vault.azure.net'}}", "{'url': 'HTTPS://[REDACTED]@kv.vault.azure.net'}"),
    ],
)
def test_the_redactor_masks_url_userinfo(text: str, expected: str) -> None:
    assert Redactor()(text) == expected
    assert Redactor()({"nested": [text]}) == {"nested": [expected]}


def test_the_probe_masks_url_userinfo_too() -> None:
    from probe.jwtutil import redact

    assert redact(f"see https://user:{PASSWORD}@host/") == "see https://[REDACTED]@host/"


def test_known_clouds_list_their_data_hosts() -> None:
    china = KNOWN_CLOUDS["AzureChinaCloud"]
    assert [str(p) for s in china.keyvault for p in s.patterns] == ["*.vault.azure.cn", "*.managedhsm.azure.cn"]
    assert [s.resource for s in china.keyvault] == ["https://vault.azure.cn", "https://managedhsm.azure.cn"]
    assert [p.text for s in china.storage for p in s.patterns] == [".blob.core.chinacloudapi.cn"]
    assert {s.resource for c in KNOWN_CLOUDS.values() for s in c.storage} == {"https://storage.azure.com"}


# ---------------------------------------------------------------- the exchange's own host


@pytest.mark.parametrize(("cloud", "authority"), [
    ("AzureCloud", "login.microsoftonline.com"), ("AzureChinaCloud", "login.chinacloudapi.cn"),
    ("AzureUSGovernment", "login.microsoftonline.us"),
    ({"name": "lab", "authority_host": "https://127.0.0.1:8443/", "resource_manager": "https://127.0.0.1:8444/"},
     "127.0.0.1:8443"),
])
def test_the_probe_exchanges_the_token_at_the_clouds_authority_only(
    tmp_path: Path, cloud: Any, authority: str
) -> None:
    """The probe's config names the configured cloud's authority host, so a probe pod whose AZURE_AUTHORITY_HOST
    names another (the webhook of another cloud: a real host the lab's token would reach, a mutating webhook or a
    template that sets it first) keeps its ServiceAccount token; the harness names that AUTHORITY_HOST_MISMATCH,
    an error on exchange.succeeds, with the webhook's cloud to look at."""
    from test_checks import context_for

    from harness.checks.exchange import exchange_succeeds

    data = config_with(vault(VAULT), cloud=cloud)
    data["workloads"][0]["access"] = []
    config = parse_config(data, base_dir=tmp_path, environ={})
    assert probe_config_for(config.workloads[0], config.probe, config.cloud)["authority_hosts"] == [authority]

    ctx = context_for()
    assert ctx.facts.pod is not None
    error = {"kind": "untrusted_authority", "message": "AZURE_AUTHORITY_HOST names login.chinacloudapi.cn, not the "
             "cloud's authority host (login.microsoftonline.com): the ServiceAccount token was not sent there"}
    ctx.facts.pod.probe = {"steps": [{"name": "exchange", "status": "fail", "evidence": {}, "error": error}]}
    outcome = exchange_succeeds(ctx)
    assert outcome.status == "fail" and [(f.code, f.severity) for f in outcome.findings] == [
        ("AUTHORITY_HOST_MISMATCH", "error")]
    assert outcome.findings[0].message.startswith("the probe did not exchange the token: AZURE_AUTHORITY_HOST names "
                                                  "login.chinacloudapi.cn, not the cloud's authority host")
    assert outcome.findings[0].fix_lines()[0] == "kubectl -n kube-system get configmap azure-wi-webhook-config -o yaml"
