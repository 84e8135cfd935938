"""harness.yaml validation: every bad field is ONE line naming the field path and what is wrong; all problems
are reported together; secrets never show up in reprs or errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme
import yaml

from harness.config import ConfigError, load_config, parse_config

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
SUB = "0b1f6471-1bf0-4dda-aec3-111122223333"
CLIENT = "3b1a6f2e-5c1d-4e2f-9a8b-7c6d5e4f3a2b"


def good(tmp_path: Path) -> dict:
    secret = tmp_path / "secret"
    secret.write_text("hunter2-very-secret-value\n")
    return {
        "cluster": {"context": "aks-dev"},
        "azure": {
            "cloud": "AzureCloud",
            "tenant_id": TENANT,
            "subscription_id": SUB,
            "resource_group": "rg",
            "cluster_name": "aks",
            "credential": {"client_id": CLIENT, "client_secret_file": "secret"},
        },
        "workloads": [
            {
                "namespace": "finance",
                "service_account": "backend-sa",
                "client_id": CLIENT,
                "access": [
                    {
                        "kind": "keyvault_secret",
                        "vault_url": "https://kv.vault.azure.net/",
                        "secret": "db",
                        "expect": "allow",
                    }
                ],
            }
        ],
    }


def problems(data: object, tmp_path: Path, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, "harness.yaml", base_dir=tmp_path, environ=environ or {})
    return info.value.problems


def test_a_good_config_loads_with_relative_paths_and_known_cloud_endpoints(tmp_path: Path) -> None:
    config = parse_config(good(tmp_path), base_dir=tmp_path, environ={})
    assert config.azure is not None
    assert config.azure.credential is not None
    assert config.azure.credential.client_secret_file == tmp_path / "secret"
    assert config.azure.credential.secret() == "hunter2-very-secret-value"
    assert config.azure.cloud.endpoints.authority_host == "https://login.microsoftonline.com/"
    assert config.azure.cloud.endpoints.arm_scope == "https://management.azure.com/.default"
    assert config.workloads[0].id == "finance/backend-sa"
    assert config.probe.mode == "configmap" and config.probe.image is None  # nothing of ours to build or pull
    assert config.probe.resolved_image.startswith("mcr.microsoft.com/azurelinux/base/python:3.12@sha256:")


@pytest.mark.parametrize(
    "cloud, authority, vault_url, scope",
    [
        ("AzureChinaCloud", "https://login.chinacloudapi.cn/", "https://kv.vault.azure.cn/",
         "https://vault.azure.cn/.default"),
        ("AzureUSGovernment", "https://login.microsoftonline.us/", "https://kv.vault.usgovcloudapi.net/",
         "https://vault.usgovcloudapi.net/.default"),
    ],
)
def test_sovereign_clouds_by_name(tmp_path: Path, cloud: str, authority: str, vault_url: str, scope: str) -> None:
    data = good(tmp_path)
    data["azure"]["cloud"] = cloud
    data["workloads"][0]["access"][0]["vault_url"] = vault_url
    config = parse_config(data, base_dir=tmp_path)
    assert config.azure.cloud.endpoints.authority_host == authority
    assert config.workloads[0].access[0].token_scope(config.cloud) == scope  # from the vault's suffix


def test_explicit_endpoints_get_a_trailing_slash_and_default_arm_audience(tmp_path: Path) -> None:
    data = good(tmp_path)
    data["azure"]["cloud"] = {
        "name": "lab",
        "authority_host": "https://127.0.0.1:9/",
        "resource_manager": "https://127.0.0.1:8",
        "keyvault_hosts": [".vault.azure.net"],  # the access entry's vault
        "keyvault_resource": "https://vault.azure.net",
    }
    endpoints = parse_config(data, base_dir=tmp_path).azure.cloud.endpoints
    assert endpoints.resource_manager == "https://127.0.0.1:8/"
    assert endpoints.arm_scope == "https://management.azure.com/.default"
    assert not endpoints.known


def test_the_secret_is_in_no_repr(tmp_path: Path) -> None:
    config = parse_config(good(tmp_path), base_dir=tmp_path)
    for text in (repr(config), str(config), config.model_dump_json(), repr(config.azure.credential)):
        assert "hunter2" not in text
    assert config.secrets() == ["hunter2-very-secret-value"]


def test_client_secret_from_the_environment(tmp_path: Path) -> None:
    data = good(tmp_path)
    data["azure"]["credential"] = {"client_id": CLIENT, "client_secret_env": "WI_SECRET"}
    config = parse_config(data, base_dir=tmp_path, environ={"WI_SECRET": "from-env-secret"})
    assert config.azure.credential.secret() == "from-env-secret"
    assert problems(data, tmp_path) == [
        "azure.credential: client_secret_env: environment variable WI_SECRET is not set"
    ]


def test_every_bad_field_is_one_line_naming_it(tmp_path: Path) -> None:
    data = good(tmp_path)
    data["cluster"]["kubeconfig"] = "missing-kubeconfig"
    data["azure"]["tenant_id"] = "contoso"
    data["azure"]["cloud"] = "AzureGermanCloud"
    del data["azure"]["cluster_name"]
    data["probe"] = {"timeout_seconds": 1}
    workload = data["workloads"][0]
    workload["namespace"] = "Finance"
    workload["client_id"] = "myWorkloadId"
    workload["access"] = [
        {"kind": "keyvault_secret", "vault_url": "http://kv", "secret": "db", "expect": "yes"},
        {"kind": "queue"},
    ]
    workload["colour"] = "blue"
    lines = problems(data, tmp_path)
    expected_prefixes = [
        "cluster.kubeconfig: file not found",
        "azure.cloud: unknown cloud 'AzureGermanCloud'",
        "azure.tenant_id: must be a GUID",
        "azure.cluster_name: required",
        "probe.timeout_seconds: ",
        "workloads[0].namespace: must be a DNS-1123 label",
        "workloads[0].client_id: must be a GUID",
        "workloads[0].access[0].vault_url: must be an https:// URL",
        "workloads[0].access[0].expect: ",
        "workloads[0].access[1]: kind must be one of",
        "workloads[0].colour: unknown field",
    ]
    assert len(lines) == len(expected_prefixes), lines
    for prefix in expected_prefixes:
        assert sum(line.startswith(prefix) for line in lines) == 1, (prefix, lines)
    assert all("\n" not in line for line in lines)


def test_an_inline_secret_is_refused_without_echoing_it(tmp_path: Path) -> None:
    data = good(tmp_path)
    data["azure"]["credential"] = {"client_id": CLIENT, "client_secret": "inline-secret-value"}
    lines = problems(data, tmp_path)
    assert lines == [
        "azure.credential: client_secret must not be written in the file: use client_secret_file "
        "or client_secret_env"
    ]
    assert "inline-secret-value" not in "\n".join(lines)


def test_a_url_with_a_sas_token_is_refused_without_echoing_it(tmp_path: Path) -> None:
    data = good(tmp_path)
    access = data["workloads"][0]["access"]
    access.append(
        {
            "kind": "blob",
            "account_url": "https://acct.blob.core.windows.net/?sv=2022&sig=SAS-SIGNATURE-VALUE",
            "container": "c",
            "blob": "b",
            "expect": "allow",
        }
    )
    access.append(dict(access[1], account_url="http://acct.blob.core.windows.net/?sig=SAS-SIGNATURE-VALUE"))
    lines = problems(data, tmp_path)
    assert lines == [
        "workloads[0].access[1].account_url: must be a plain https:// URL, without a query string or fragment",
        "workloads[0].access[2].account_url: must be an https:// URL",
    ]
    assert "SAS-SIGNATURE-VALUE" not in "\n".join(lines)


def test_an_unknown_field_lists_the_fields_of_its_section(tmp_path: Path) -> None:
    """...and names the optional field it is close to (the required ones: the test below)."""
    data = good(tmp_path)
    data["workloads"][0]["access"][0]["secert"] = "db"
    data["azure"]["credential"]["secret_file"] = "secret"
    data["workloads"][0]["clientid"] = data["workloads"][0].pop("client_id")
    data["prob"] = {}
    data["workloads"][0]["access"][0]["colour"] = "blue"  # near nothing: the section's fields alone
    assert sorted(problems(data, tmp_path)) == sorted([
        "prob: unknown field: did you mean probe? (allowed: azure, cluster, expect, harness, probe, workloads)",
        "azure.credential.secret_file: unknown field: did you mean client_secret_file? (allowed: client_id, "
        "client_secret_env, client_secret_file)",
        "workloads[0].clientid: unknown field: did you mean client_id? (allowed: access, client_id, "
        "identity_resource_id, namespace, scope, service_account, tenant_id)",
        "workloads[0].access[0].secert: unknown field: did you mean secret? (allowed: expect, kind, name, scope, "
        "secret, vault_url)",
        "workloads[0].access[0].colour: unknown field (allowed: expect, kind, name, scope, secret, vault_url)",
    ])


def test_a_misspelt_required_field_is_one_problem_naming_the_field_meant(tmp_path: Path) -> None:
    data = good(tmp_path)
    data["workloads"][0]["servce_account"] = data["workloads"][0].pop("service_account")
    data["azure"]["credential"]["clientid"] = data["azure"]["credential"].pop("client_id")
    data["workloads"][0]["colour"] = "blue"  # near nothing missing: the section's fields, as before
    assert sorted(problems(data, tmp_path)) == [
        "azure.credential.clientid: unknown field: did you mean client_id? (it is required)",
        "workloads[0].colour: unknown field (allowed: access, client_id, identity_resource_id, namespace, scope, "
        "service_account, tenant_id)",
        "workloads[0].servce_account: unknown field: did you mean service_account? (it is required)",
    ]


def test_a_section_that_is_not_a_mapping_is_said_in_yaml_words_not_a_class_name(tmp_path: Path) -> None:
    """``probe:`` with its fields commented out is null; pydantic said "a valid dictionary or instance of
    ProbeSettings"."""
    data = good(tmp_path)
    data["probe"], data["workloads"][0]["access"][0] = None, "db-password"
    assert sorted(problems(data, tmp_path)) == [
        "probe: must be a mapping of fields (key: value lines indented under it), got nothing (an empty section)",
        "workloads[0].access[0]: must be a mapping of fields (key: value lines indented under it), got a string",
    ]


def test_a_value_yaml_typed_where_text_belongs_says_to_quote_it(tmp_path: Path) -> None:
    """client_id: 12345678, service_account: 2024, namespace: yes, client_id: 2024-01-01 unquoted: YAML made a
    number, a boolean, a date of them; pydantic said only 'Input should be a valid string'."""
    data = yaml.safe_load("client_id: 12345678\nservice_account: 2024\nnamespace: yes\ntenant_id: 2024-01-01\n")
    data["access"] = []
    problems_ = problems({"workloads": [data]}, tmp_path)
    quote = "must be text, but YAML read the value as a"
    assert sorted(problems_) == [
        f"workloads[0].client_id: {quote} number: put it in quotes (got 12345678)",
        f"workloads[0].namespace: {quote} boolean: put it in quotes (got True)",
        f"workloads[0].service_account: {quote} number: put it in quotes (got 2024)",
        f"workloads[0].tenant_id: {quote} date: put it in quotes",
    ]


def test_a_workload_written_as_ns_slash_name_says_how_to_write_it(tmp_path: Path) -> None:
    assert problems({"workloads": ["finance/backend-sa"]}, tmp_path) == [
        "workloads[0]: must be a mapping of fields (key: value lines indented under it), got a string "
        "('finance/backend-sa': write namespace: finance and service_account: backend-sa)"]
    assert problems({"workloads": "finance/backend-sa"}, tmp_path) == [
        "workloads: must be a list (one '- ' entry per item, indented under it), not a string "
        "(got 'finance/backend-sa')"]


def test_a_path_with_a_shell_variable_says_it_is_not_expanded(tmp_path: Path) -> None:
    """cluster.kubeconfig: $HOME/.kube/config (as in a shell script) was 'file not found: <dir>/$HOME/...'."""
    (problem,) = problems({"cluster": {"kubeconfig": "$HOME/.kube/config"}}, tmp_path)
    assert problem == (f"cluster.kubeconfig: file not found: {tmp_path.resolve()}/$HOME/.kube/config (harness.yaml "
                       "does not expand $HOME: write the path, or ~ for the home directory)")


def test_a_duration_with_a_unit_says_to_write_a_number_of_seconds(tmp_path: Path) -> None:
    """probe.timeout_seconds: 2m was pydantic's 'Input should be a valid integer, unable to parse string as an
    integer'."""
    assert sorted(problems({"probe": {"timeout_seconds": "2m", "retry_seconds": "30s"}}, tmp_path)) == [
        "probe.retry_seconds: must be a number of seconds, without a unit (got '30s')",
        "probe.timeout_seconds: must be a number of seconds, without a unit (got '2m')",
    ]


def test_a_guid_in_braces_says_to_drop_them(tmp_path: Path) -> None:
    guid = "df588759-bc2b-4a7c-aee9-14fbd5da852b"
    workload = {"namespace": "finance", "service_account": "backend-sa", "client_id": "{" + guid + "}"}
    assert problems({"workloads": [workload]}, tmp_path) == [
        "workloads[0].client_id: must be a GUID like 00000000-0000-0000-0000-000000000000, without the braces "
        f"(got '{{{guid}}}')"]


def test_a_secret_pasted_where_its_variable_name_belongs_is_not_echoed(tmp_path: Path) -> None:
    data = good(tmp_path)
    data["azure"]["credential"] = {"client_id": CLIENT, "client_secret_env": "Q8~pasted.secret-VALUE"}
    lines = problems(data, tmp_path)
    assert lines == [
        "azure.credential.client_secret_env: must be the NAME of an environment variable (letters, digits, _), "
        "not the secret"
    ]


def test_a_kubeconfig_or_a_manifest_given_as_the_config_is_one_line_saying_so(tmp_path: Path) -> None:
    """--config ~/.kube/config: one line, not one 'unknown field' per key (with 'clusters: did you mean
    cluster?' among them)."""
    kubeconfig = {"apiVersion": "v1", "kind": "Config", "clusters": [], "contexts": [], "users": [],
                  "current-context": "aks", "preferences": {}}
    assert problems(kubeconfig, tmp_path) == [
        "(file): is a kubeconfig, not a harness config: name it as cluster.kubeconfig in harness.yaml "
        "(cp harness.example.yaml harness.yaml)"]
    del kubeconfig["kind"]
    assert problems(kubeconfig, tmp_path)[0].startswith("(file): is a kubeconfig, not a harness config")
    assert problems({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {}}, tmp_path) == [
        "(file): is a Kubernetes manifest (kind ServiceAccount), not a harness config: --config takes "
        "harness.yaml (cp harness.example.yaml harness.yaml)"]
    assert len(problems({"kind": "x", "workloads": "y"}, tmp_path)) == 2  # a harness section: its fields' lines


def test_a_run_report_given_as_the_config_is_one_line_saying_so(tmp_path: Path) -> None:
    """By hand: --config reports/latest/run.json (the file a run just wrote, beside the harness.yaml it read)
    printed 17 'unknown field' lines (workloads[0].verdict, .checks ...: run.json has a workloads list too)."""
    run = {"schema": "wi-harness/run/v1", "run_id": "r", "verdict": "pass", "workloads": [{"id": "finance/sa"}]}
    assert problems(run, tmp_path) == [
        "(file): is a run report (wi-harness/run/v1), not a harness config: --config takes harness.yaml; "
        "python -m harness report render renders a run.json"]


def test_duplicate_workloads(tmp_path: Path) -> None:
    data = good(tmp_path)
    data["workloads"].append(dict(data["workloads"][0]))
    assert problems(data, tmp_path) == ["workloads: finance/backend-sa is listed twice"]


def test_identity_resource_id_shape(tmp_path: Path) -> None:
    data = good(tmp_path)
    data["workloads"][0]["identity_resource_id"] = "myWorkloadId"
    (line,) = problems(data, tmp_path)
    assert line.startswith("workloads[0].identity_resource_id: must be a user-assigned identity resource id")


def test_file_level_problems(tmp_path: Path) -> None:
    path = tmp_path / "harness.yaml"
    with pytest.raises(ConfigError, match="file not found"):
        load_config(path)
    path.write_text("workloads: [\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems[0].startswith("(file): not valid YAML at line")
    path.write_text("")
    with pytest.raises(ConfigError, match="is empty"):
        load_config(path)
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(path)


def test_the_message_is_a_header_plus_one_indented_line_per_problem(tmp_path: Path) -> None:
    path = tmp_path / "harness.yaml"
    path.write_text(yaml.safe_dump({"workloads": [{"namespace": "x"}], "extra": 1}))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value).splitlines()
    assert text[0] == f"invalid harness config {path} (2 problems):"
    assert sorted(text[1:]) == [
        "  extra: unknown field (allowed: azure, cluster, expect, harness, probe, workloads)",
        "  workloads[0].service_account: required",
    ]


def test_the_labs_generated_config_shape_is_accepted(tmp_path: Path) -> None:
    """lab/statefiles.harness_config writes this shape; keep them in step."""
    (tmp_path / "kubeconfig").write_text("{}")
    (tmp_path / "ca.pem").write_bytes(trustme.CA().cert_pem.bytes())
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "harness-client-secret").write_text("lab-secret-value")
    data = {
        "cluster": {"kubeconfig": str(tmp_path / "kubeconfig"), "context": "lab"},
        "azure": {
            "cloud": {
                "name": "lab",
                "authority_host": "https://127.0.0.1:1/",
                "resource_manager": "https://127.0.0.1:2/",
                "keyvault_hosts": ["127.0.0.1:4", "127.0.0.1:5"],
                "keyvault_resource": "https://vault.azure.net",
                "storage_hosts": ["127.0.0.1:3"],
                "storage_resource": "https://storage.azure.com",
            },
            "ca_file": str(tmp_path / "ca.pem"),
            "tenant_id": TENANT,
            "subscription_id": SUB,
            "resource_group": "dev-kubernetes-rg",
            "cluster_name": "z-dev",
            "credential": {
                "client_id": CLIENT,
                "client_secret_file": str(tmp_path / "secrets" / "harness-client-secret"),
            },
        },
        "probe": {"image": "ghcr.io/wi-harness/probe:0.1.0", "timeout_seconds": 120},
        "workloads": [
            {
                "namespace": "orders",
                "service_account": "orders-sa",
                "client_id": CLIENT,
                "identity_resource_id": f"/subscriptions/{SUB}/resourcegroups/myRg/providers/"
                "Microsoft.ManagedIdentity/userAssignedIdentities/ordersWorkloadId",
                "access": [
                    {
                        "kind": "blob",
                        "account_url": "https://127.0.0.1:3/ordersdata/",
                        "container": "reports",
                        "blob": "daily.csv",
                        "expect": "allow",
                    }
                ],
            }
        ],
    }
    config = parse_config(data, base_dir=tmp_path)
    assert config.workloads[0].access[0].probe_check(config.cloud) == {
        **data["workloads"][0]["access"][0],
        "scope": "https://storage.azure.com/.default",
        "allowed_hosts": ["127.0.0.1:3"],
    }


@pytest.mark.parametrize(
    "cloud, graph",
    [
        ("AzureCloud", "https://graph.microsoft.com/"),
        ("AzureChinaCloud", "https://microsoftgraph.chinacloudapi.cn/"),
        ("AzureUSGovernment", "https://graph.microsoft.us/"),
    ],
)
def test_each_known_cloud_names_its_microsoft_graph(tmp_path: Path, cloud: str, graph: str) -> None:
    data = good(tmp_path)
    data["azure"]["cloud"] = cloud
    data["workloads"][0]["access"] = []
    endpoints = parse_config(data, base_dir=tmp_path, environ={}).cloud
    assert endpoints.microsoft_graph == graph and endpoints.graph_scope == graph + ".default"


def test_a_custom_cloud_declares_its_graph_or_has_none(tmp_path: Path) -> None:
    data = good(tmp_path)
    data["workloads"][0]["access"] = []
    data["azure"]["cloud"] = {"name": "stack", "authority_host": "https://login.stack.test/",
                              "resource_manager": "https://arm.stack.test/"}
    assert parse_config(data, base_dir=tmp_path, environ={}).cloud.microsoft_graph == ""
    data["azure"]["cloud"]["microsoft_graph"] = "https://graph.stack.test"
    assert parse_config(data, base_dir=tmp_path, environ={}).cloud.microsoft_graph == "https://graph.stack.test/"
    data["azure"]["cloud"]["microsoft_graph"] = "http://graph.stack.test"
    assert any("microsoft_graph" in p for p in problems(data, tmp_path))


def test_what_yaml_typed_or_left_empty_is_said_in_yaml_words(tmp_path: Path) -> None:
    """expect: yes was pydantic's "Input should be 'allow' or 'deny' (got True)"; a key YAML read as a number or
    a boolean was "[123]: Keys should be strings"; an empty value "Input should be a valid string"; workloads:
    with nothing under it "not a NoneType", a mapping under it "not a dict"; a top-level list "got list"."""
    access = {"kind": "blob", "account_url": "https://a.blob.core.windows.net", "container": "c", "blob": "b"}
    workload = {"namespace": "finance", "service_account": "backend-sa", "access": [{**access, "expect": True}]}
    assert problems({"workloads": [workload]}, tmp_path) == [
        "workloads[0].access[0].expect: must be 'allow' or 'deny', but YAML read the value as a boolean (as it "
        "reads yes, no, on, off, true and false): write 'allow' or 'deny'"]
    workload["access"] = [{**access, "expect": "maybe"}]
    assert problems({"workloads": [workload]}, tmp_path) == [
        "workloads[0].access[0].expect: must be 'allow' or 'deny' (got 'maybe')"]
    assert sorted(problems(yaml.safe_load("123: x\nyes: y\n~: z\nprobe: {5: 1}\n"), tmp_path)) == [
        "(file): an empty key (~ or null) is not a field name: field names are text",
        "(file): key 123, which YAML read as a number, is not a field name: field names are text",
        "(file): key True, which YAML read as a boolean, is not a field name: field names are text",
        "probe: key 5, which YAML read as a number, is not a field name: field names are text",
    ]
    assert problems(yaml.safe_load("workloads:\n- namespace:\n  service_account: sa\n"), tmp_path) == [
        "workloads[0].namespace: is empty: write a value after the colon"]
    assert problems({"probe": {"timeout_seconds": -5}}, tmp_path) == [
        "probe.timeout_seconds: must be greater than or equal to 10 (got -5)"]
    list_of = "workloads: must be a list (one '- ' entry per item, indented under it), "
    assert problems({"workloads": None}, tmp_path) == [list_of + "got nothing (an empty section)"]
    assert problems({"workloads": {"namespace": "finance"}}, tmp_path) == [list_of + "not a mapping"]
    sections = "(file): must be a mapping of sections (cluster:, azure:, workloads: ...), got a "
    assert problems(["a"], tmp_path) == [sections + "list"]
    assert problems("hello", tmp_path) == [sections + "string"]


def test_an_empty_config_is_said_to_be_empty_by_manifests_render_too(tmp_path: Path) -> None:
    """python -m harness manifests render --config on an empty harness.yaml (or comments alone) said 'must be a
    mapping of sections, got NoneType'; the suites said 'is empty'. Both say 'is empty' now."""
    from harness.shipping import load_for_render

    path = tmp_path / "harness.yaml"
    for text in ("", "# to do\n"):
        path.write_text(text)
        for load in (load_config, load_for_render):
            with pytest.raises(ConfigError) as info:
                load(path)
            assert str(info.value) == f"invalid harness config {path}: is empty", load


def test_a_second_yaml_document_is_said_to_be_one(tmp_path: Path) -> None:
    path = tmp_path / "harness.yaml"
    path.write_text("workloads: []\n---\nprobe: {}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (f"invalid harness config {path}: not valid YAML at line 2 column 1: but found another "
                               "document (a '---' line starts a second document: the file holds one)")


def test_a_cloud_neither_a_name_nor_a_mapping_says_both_forms(tmp_path: Path) -> None:
    """azure.cloud: 5 or [AzureCloud] said only 'must be a mapping of fields', where a name is the usual form."""
    azure = {"tenant_id": "72f988bf-86f1-41af-91ab-2d7cd011db47", "subscription_id": "00000000-0000-0000-0000-"
             "000000000000", "resource_group": "rg", "cluster_name": "aks"}
    forms = ("azure.cloud: must be a cloud's name (AzureCloud, AzureChinaCloud, AzureUSGovernment) or a mapping "
             "{name, authority_host, resource_manager}, got ")
    assert problems({"azure": {**azure, "cloud": ["AzureCloud"]}}, tmp_path) == [forms + "a list"]
    assert problems({"azure": {**azure, "cloud": None}}, tmp_path) == [forms + "nothing (an empty value)"]
    assert problems({"azure": {**azure, "cloud": 5}}, tmp_path) == [forms + "a number (got 5)"]
