"""The example config in the repository root is valid as shipped (with its secret's variable set)."""

from __future__ import annotations

import re
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


def test_the_example_names_no_image_of_ours() -> None:
    """Nothing to build or publish: the default probe runs from a ConfigMap in a stock public image."""
    text = EXAMPLE.read_text()
    config = parse_config(yaml.safe_load(text), source=str(EXAMPLE), base_dir=EXAMPLE.parent,
                          environ={"WI_HARNESS_CLIENT_SECRET": "not-a-real-secret"})
    assert config.probe.mode == "configmap" and config.probe.image is None
    assert "wi-harness/probe" not in text and "ghcr.io" not in text


def test_the_example_s_commented_probe_knobs_are_valid_when_uncommented() -> None:
    lines = []
    for line in EXAMPLE.read_text().splitlines():
        knobs = "image|resources|node_selector|tolerations|labels|annotations|ca_configmap"
        knob = re.match(rf"  # ((?:{knobs}): .*)", line)
        lines.append("  " + knob.group(1) if knob else line)
    config = parse_config(yaml.safe_load("\n".join(lines)), source=str(EXAMPLE), base_dir=EXAMPLE.parent,
                          environ={"WI_HARNESS_CLIENT_SECRET": "not-a-real-secret"})
    probe = config.probe
    assert probe.image and probe.ca_configmap and probe.tolerations and probe.labels and probe.annotations
    assert probe.node_selector and probe.resources.limits == {"cpu": "200m", "memory": "256Mi"}
