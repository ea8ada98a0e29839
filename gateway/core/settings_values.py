"""A setting's value from TOML or the environment, checked against its type and converted."""

from __future__ import annotations

import types
from collections.abc import Callable
from dataclasses import is_dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from gateway.core.settings_checks import invalid

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _alternatives(tp: Any) -> tuple[Any, ...]:
    """The member types of a union such as ``str | tuple[str, ...]`` (not of ``X | None``)."""
    if get_origin(tp) not in (Union, types.UnionType):
        return ()
    members = tuple(a for a in get_args(tp) if a is not type(None))
    return members if len(members) > 1 else ()


def _one_or_many(members: tuple[Any, ...], many: bool) -> Any:
    """Of ``X | tuple[X, ...]``, the tuple type if ``many``, else ``X``."""
    return next(m for m in members if (get_origin(m) is tuple) == many)


def _split_optional(tp: Any) -> tuple[Any, bool]:
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        return args[0], len(args) < len(get_args(tp))
    return tp, False


def coerce(value: object, tp: Any, key: str) -> object:
    """A TOML value checked against, and converted to, the field type ``tp``."""
    if members := _alternatives(tp):  # one value or an array of them
        tp = _one_or_many(members, isinstance(value, list))
    inner, optional = _split_optional(tp)
    if optional and value == "":
        return None
    if get_origin(inner) is tuple:
        if not isinstance(value, list):
            raise invalid(key, "must be an array")
        item_tp = get_args(inner)[0]
        return tuple(coerce(item, item_tp, key) for item in value)
    if isinstance(inner, type) and (is_dataclass(inner) or issubclass(inner, StrEnum)):
        return _coerce_record(value, inner, key)
    if inner is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if inner is Path and isinstance(value, str):
        return Path(value)
    if inner in (str, int, bool) and type(value) is inner:
        return value
    raise invalid(key, f"must be of type {getattr(inner, '__name__', inner)}, got {value!r}")


def _coerce_record(value: object, cls: type[Any], key: str) -> object:
    """A string as the str enum ``cls``, or a TOML table (one ``[[admin.user]]``) as the
    dataclass ``cls``, its keys checked."""
    if issubclass(cls, StrEnum):
        if value not in {m.value for m in cls}:
            raise invalid(key, f"must be one of {', '.join(m.value for m in cls)}")
        return cls(value)
    if not isinstance(value, dict):
        raise invalid(key, "must be an array of tables")
    hints = get_type_hints(cls)
    unknown = sorted(set(value) - set(hints))
    if unknown:
        raise invalid(f"{key}.{unknown[0]}", "unknown setting")
    try:
        return cls(**{k: coerce(v, hints[k], f"{key}.{k}") for k, v in value.items()})
    except TypeError as exc:
        raise invalid(key, f"incomplete entry: {exc}") from exc


def coerce_env(text: str, tp: Any, key: str) -> object:
    """An environment string converted to the field type ``tp`` (arrays are comma-separated)."""
    if members := _alternatives(tp):  # one value, or several separated by commas
        tp = _one_or_many(members, "," in text)
    inner, optional = _split_optional(tp)
    if get_origin(inner) is tuple and is_dataclass(get_args(inner)[0]):
        raise invalid(key, "tables cannot be set in the environment; use the settings file")
    if optional and text.strip() == "":
        return None
    if get_origin(inner) is tuple:
        item_tp = get_args(inner)[0]
        return tuple(
            coerce_env(part.strip(), item_tp, key) for part in text.split(",") if part.strip()
        )
    parsers: dict[Any, Callable[[str], object]] = {
        int: int,
        float: float,
        str: str,
        Path: Path,
        bool: _parse_bool,
    }
    try:
        return parsers[inner](text.strip() if inner is not str else text)
    except ValueError as exc:
        raise invalid(key, f"cannot read {text!r} as {inner.__name__}") from exc


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in _TRUE | _FALSE:
        return lowered in _TRUE
    raise ValueError(text)
