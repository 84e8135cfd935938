"""Dataclass facts <-> plain JSON, so facts collected once can be shared between xdist workers."""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")


_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})


def to_json(value: Any) -> Any:
    kind = type(value)
    if kind in _JSON_SCALARS:  # most of a run's ~90,000 values: answered before the dataclass test
        return value
    if kind is dict:
        return {k: to_json(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {name: to_json(getattr(value, name)) for name in _field_names(type(value))}
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value


def from_json(cls: type[T], data: Any) -> T:
    return typing.cast(T, _build(cls, data))


def _build(hint: Any, data: Any) -> Any:
    if data is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        dataclass_options = [a for a in options if dataclasses.is_dataclass(a)]
        return _build(dataclass_options[0], data) if dataclass_options and isinstance(data, dict) else data
    if origin is list:
        (item,) = typing.get_args(hint) or (Any,)
        return [_build(item, v) for v in data]
    if origin is dict:
        _, item = typing.get_args(hint) or (Any, Any)
        return {k: _build(item, v) for k, v in data.items()}
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        kwargs = {name: _build(field_hint, data[name]) for name, field_hint in _fields(hint) if name in data}
        return hint(**kwargs)
    return data


@functools.cache
def _fields(cls: type) -> tuple[tuple[str, Any], ...]:
    """(name, resolved type hint) of each field of the dataclass ``cls``: get_type_hints evaluates every string
    annotation again at each call (a run's facts hold hundreds of dataclass instances)."""
    hints = typing.get_type_hints(cls)
    return tuple((f.name, hints[f.name]) for f in dataclasses.fields(cls))


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))
