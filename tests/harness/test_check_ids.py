"""Access check ids name what they read, stay stable across runs, and are unique within a workload."""

from __future__ import annotations

from typing import Any

from harness.checks.access import access_check_ids
from harness.checks.workload import workload_check_ids
from harness.config import WorkloadConfig


def workload(*access: dict[str, Any]) -> WorkloadConfig:
    return WorkloadConfig.model_validate(
        {"namespace": "finance", "service_account": "backend-sa", "access": list(access)}
    )


def secret(vault: str, name: str, expect: str = "allow") -> dict[str, Any]:
    return {"kind": "keyvault_secret", "vault_url": vault, "secret": name, "expect": expect}


def blob(account: str, container: str, name: str) -> dict[str, Any]:
    return {"kind": "blob", "account_url": account, "container": container, "blob": name, "expect": "allow"}


def test_ids_name_the_vault_and_secret_or_the_account_container_and_blob() -> None:
    config = workload(
        secret("https://finance-kv.vault.azure.net/", "db-password"),
        blob("https://ordersdata.blob.core.windows.net/", "reports", "daily.csv"),
        secret("https://platform-kv.vault.azure.net:443/", "admin-api-key", "deny"),  # an explicit port
    )
    assert access_check_ids(config.access) == [
        "access.keyvault:finance-kv/db-password",
        "access.blob:ordersdata/reports/daily.csv",
        "access.keyvault:platform-kv/admin-api-key",
    ]
    assert workload_check_ids(config)[-3:] == access_check_ids(config.access)


def test_only_a_clash_gets_the_position() -> None:
    config = workload(
        secret("https://finance-kv.vault.azure.net/", "db-password"),
        secret("https://finance-kv.vault.azure.net/", "other"),
        secret("https://finance-kv.vault.azure.net/", "db-password", "deny"),
    )
    assert access_check_ids(config.access) == [
        "access.keyvault:finance-kv/db-password#1",
        "access.keyvault:finance-kv/other",
        "access.keyvault:finance-kv/db-password#3",
    ]


def test_odd_characters_and_long_blob_names_make_a_safe_bounded_id() -> None:
    config = workload(
        blob("https://acct.blob.core.windows.net/", "c", "year 2024/ü[1]::x.csv"),
        blob("https://acct.blob.core.windows.net/", "c", "n" * 1000),
    )
    odd, long = access_check_ids(config.access)
    assert odd == "access.blob:acct/c/year_2024/__1___x.csv"
    assert long.startswith("access.blob:acct/c/nnn") and len(long) <= len("access.blob:") + 100


def test_a_url_that_names_no_resource_takes_the_entrys_name_else_its_host_and_port() -> None:
    named = secret("https://10.1.2.3:8443/", "db-password") | {"name": "finance-kv"}
    config = workload(named, secret("https://10.1.2.3:8443/", "other"))
    assert access_check_ids(config.access) == [
        "access.keyvault:finance-kv/db-password",
        "access.keyvault:10.1.2.3_8443/other",
    ]
