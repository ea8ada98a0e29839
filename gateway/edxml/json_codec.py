"""JSON codec of edXML packages: the same records as ``xml_codec``, in a second encoding.

The mapping is derived from the dataclasses (``dataclasses.fields`` + type hints), not written out a
second time: a record is an object with one snake_case key per field (``from`` for ``from_``),
tuples are arrays, enums their values, ``None`` is ``null``. Input is validated against
``schemas/edxml.schema.json`` (Draft 2020-12) before any record is built. ``loads`` is the hardened
entry point for untrusted bytes: size and depth limits, no duplicate keys, no NaN/Infinity.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import types
import typing
from collections.abc import Iterable
from enum import Enum
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from gateway.core.errors import LimitError, PackageError
from gateway.core.resources import schema_path
from gateway.edxml.limits import DEFAULT_LIMITS, ParseLimits
from gateway.edxml.model import DocumentPackage, Package, StatusPackage

SCHEMA_NAME = "edxml.schema.json"  # in the packaged schemas/
_PACKAGE_TYPES: dict[str, type[DocumentPackage] | type[StatusPackage]] = {
    "document": DocumentPackage,
    "status": StatusPackage,
}


def to_json_dict(pkg: Package) -> dict[str, Any]:
    """The package as a JSON-ready dict, ``kind`` first."""
    return {"kind": pkg.kind.value, **_encode_record(pkg)}


def from_json_dict(obj: object) -> Package:
    """Records from a decoded JSON value; ``PackageError`` ``json.schema`` (with a JSON pointer as
    ``path``) if it does not match ``schemas/edxml.schema.json``."""
    _check_schema(obj)
    assert isinstance(obj, dict)  # the schema says so
    package: Package = _decode_record(_PACKAGE_TYPES[obj["kind"]], obj)
    return package


def dumps(pkg: Package) -> bytes:
    """Deterministic UTF-8 JSON: sorted keys, no ASCII escaping, no insignificant whitespace."""
    text = json.dumps(to_json_dict(pkg), ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return text.encode("utf-8")


def loads(data: bytes, limits: ParseLimits = DEFAULT_LIMITS) -> Package:
    """A package from untrusted JSON bytes.

    Raises ``LimitError`` ``json.too_large`` / ``json.too_deep`` and ``PackageError``
    ``json.malformed`` (not UTF-8 JSON, NaN/Infinity), ``json.duplicate_key`` or ``json.schema``.
    """
    if len(data) > limits.max_bytes:
        message = f"the JSON document exceeds {limits.max_bytes} bytes"
        raise LimitError(message, code="json.too_large")
    try:
        obj = json.loads(
            data.decode("utf-8"), object_pairs_hook=_unique_keys, parse_constant=_no_constant
        )
    except RecursionError as exc:
        raise LimitError("the JSON document is nested too deeply", code="json.too_deep") from exc
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise PackageError(f"malformed JSON: {exc}", code="json.malformed") from exc
    _check_depth(obj, limits.max_depth)
    return from_json_dict(obj)


# -- records <-> JSON values ----------------------------------------------------------------------


def _json_name(field_name: str) -> str:
    return field_name.rstrip("_")  # from_ -> from


def _encode_record(record: Any) -> dict[str, Any]:
    return {
        _json_name(f.name): _encode(getattr(record, f.name)) for f in dataclasses.fields(record)
    }


def _encode(value: object) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _encode_record(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple):
        return [_encode(item) for item in value]
    return value  # str or None


@functools.cache
def _field_types(cls: Any) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _decode_record(cls: Any, obj: dict[str, Any]) -> Any:
    values = {
        name: _decode(hint, obj[_json_name(name)])
        for name, hint in _field_types(cls).items()
        if _json_name(name) in obj  # an omitted key takes the field's default
    }
    return cls(**values)


def _decode(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        (inner,) = (arg for arg in args if arg is not type(None))
        return _decode(inner, value)
    if origin is tuple:  # tuple[X, ...] or a fixed tuple such as tuple[str, str]
        hints = itertools.repeat(args[0]) if args[-1] is Ellipsis else args
        pairs = zip(hints, value, strict=False)  # the schema fixed the length
        return tuple(_decode(item_hint, item) for item_hint, item in pairs)
    if dataclasses.is_dataclass(hint):
        return _decode_record(hint, value)
    return hint(value) if isinstance(hint, type) and issubclass(hint, Enum) else value


# -- schema and hardening ------------------------------------------------------------------------


@functools.cache
def _validator() -> Any:
    schema = json.loads(schema_path(SCHEMA_NAME).read_bytes())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _check_schema(obj: object) -> None:
    error: ValidationError | None = best_match(_validator().iter_errors(obj))
    if error is not None:
        raise PackageError(error.message, code="json.schema", path=_pointer(error))


def _pointer(error: ValidationError) -> str:
    """RFC 6901 pointer to the offending value; for a missing or unexpected key, to that key."""
    parts = [str(part) for part in error.absolute_path]
    instance = error.instance
    if error.validator == "required" and isinstance(instance, dict):
        parts += [name for name in error.validator_value if name not in instance][:1]
    elif error.validator == "additionalProperties" and isinstance(instance, dict):
        known = error.schema.get("properties", {})
        parts += sorted(name for name in instance if name not in known)[:1]
    return "".join("/" + part.replace("~", "~0").replace("/", "~1") for part in parts)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise PackageError(f"duplicate key {key!r}", code="json.duplicate_key")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise PackageError(f"{name} is not valid JSON", code="json.malformed")


def _check_depth(obj: object, max_depth: int) -> None:
    """Refuse objects/arrays nested more than ``max_depth`` deep (the top level is depth 1)."""
    stack: list[tuple[object, int]] = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Iterable[object] = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > max_depth:
            message = f"the JSON document is nested more than {max_depth} deep"
            raise LimitError(message, code="json.too_deep")
        stack.extend((child, depth + 1) for child in children)
