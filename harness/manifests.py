"""Render the Jinja2 templates in ``manifests/`` into Kubernetes objects."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import yaml
from jinja2 import Environment, FileSystemLoader, StrictUndefined

MANIFESTS_DIR = Path(__file__).resolve().parent.parent / "manifests"
# libyaml's parser when PyYAML was built with it (its wheels are): the same safe constructors, several times faster
# than the pure-Python one (a run renders one probe pod per workload)
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@functools.cache
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
    return [doc for doc in yaml.load_all(render_text(template, **values), Loader=_SAFE_LOADER) if doc]
