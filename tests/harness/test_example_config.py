"""The example config in the repository root is valid as shipped (with its secret's variable set)."""

from __future__ import annotations

from pathlib import Path

import yaml

from harness.config import parse_config

EXAMPLE = Path(__file__).resolve().parents[2] / "harness.example.yaml"


def test_the_example_config_is_valid() -> None:
    config = parse_config(yaml.safe_load(EXAMPLE.read_text()), source=str(EXAMPLE), base_dir=EXAMPLE.parent,
                          environ={"WI_HARNESS_CLIENT_SECRET": "not-a-real-secret"})
    assert [f"{w.namespace}/{w.service_account}" for w in config.workloads] == ["finance/backend-sa",
                                                                                 "orders/orders-sa"]
    assert config.azure is not None and config.azure.cloud.name == "AzureCloud"
    assert "not-a-real-secret" not in repr(config)
