"""Render the Jinja2 templates in ``manifests/`` into Kubernetes objects."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from jinja2 import Environment, FileSystemLoader, StrictUndefined

MANIFESTS_DIR = Path(__file__).resolve().parent.parent / "manifests"


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(MANIFESTS_DIR)),
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )
    # Plain JSON (a valid YAML double-quoted scalar), without Jinja's HTML-safe escaping.
    env.filters["tojson"] = lambda value: json.dumps(value)
    return env


def render_text(template: str, **values: Any) -> str:
    return _environment().get_template(template).render(**values)


def render(template: str, **values: Any) -> list[dict[str, Any]]:
    """Every document of the rendered template, parsed."""
    return [doc for doc in yaml.safe_load_all(render_text(template, **values)) if doc]
