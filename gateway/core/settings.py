"""Frozen gateway settings: defaults < TOML file < ``LGSP_<SECTION>__<KEY>`` environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, get_type_hints

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from gateway.core.config_files import read_toml
from gateway.core.errors import ConfigError
from gateway.core.redact import MASK, mask_url
from gateway.core.settings_checks import invalid, validate
from gateway.core.settings_sections import (
    AdminSettings,
    ArchiveSettings,
    BrokerSettings,
    ConsoleRole,
    ConsoleUser,
    DeliverySettings,
    DirectorySettings,
    HttpSettings,
    LogSettings,
    MetricsSettings,
    NationalSettings,
    PkiSettings,
    PushSettings,
    RateLimitSettings,
    Settings,
    SoapSettings,
    SouthboundSettings,
    StoreSettings,
)
from gateway.core.settings_values import coerce, coerce_env

# The sections are defined in settings_sections; callers import them from here.
__all__ = [
    "ENV_PREFIX",
    "AdminSettings",
    "ArchiveSettings",
    "BrokerSettings",
    "ConsoleRole",
    "ConsoleUser",
    "DeliverySettings",
    "DirectorySettings",
    "HttpSettings",
    "LogSettings",
    "MetricsSettings",
    "NationalSettings",
    "PkiSettings",
    "PushSettings",
    "RateLimitSettings",
    "Settings",
    "SoapSettings",
    "SouthboundSettings",
    "StoreSettings",
    "effective_settings_masked",
    "load_settings",
]

ENV_PREFIX = "LGSP_"


Raw = dict[str, dict[str, object]]
_SECTIONS: dict[str, type[Any]] = get_type_hints(Settings)
_FIELD_TYPES: dict[str, dict[str, Any]] = {n: get_type_hints(c) for n, c in _SECTIONS.items()}


def load_settings(path: Path | None, env: Mapping[str, str] = os.environ) -> Settings:
    """Read ``path`` (optional), apply environment overrides, resolve paths and validate.

    Relative paths (and a relative SQLite database) from the file or the defaults are resolved
    against the TOML file's directory (the working directory without a file); relative paths
    given in the environment are resolved against the working directory.
    """
    base_dir = path.resolve().parent if path is not None else Path.cwd()
    from_file = _read_toml(path) if path is not None else {}
    from_env = _env_overrides(env)
    sections: dict[str, Any] = {}
    for name, cls in _SECTIONS.items():
        types_ = _FIELD_TYPES[name]
        given = from_file.get(name, {})
        values = {k: coerce(v, types_[k], f"{name}.{k}") for k, v in given.items()}
        env_values = from_env.get(name, {})
        for key, text in env_values.items():
            values[key] = coerce_env(str(text), types_[key], f"{name}.{key}")
        bases = {key: Path.cwd() for key in env_values}
        sections[name] = _resolve_paths(_build(cls, values, name), bases, base_dir)
    sections["log"] = replace(sections["log"], level=sections["log"].level.upper())
    settings = Settings(**sections)
    validate(settings)
    return settings


def _build(cls: type[Any], values: Mapping[str, object], name: str) -> Any:
    """``cls(**values)``; a section's own check (e.g. ``ParseLimits``) is reported by key."""
    try:
        return cls(**values)
    except ConfigError as exc:
        for key, value in values.items():
            try:
                cls(**{key: value})
            except ConfigError:
                raise invalid(f"{name}.{key}", exc.message) from exc
        raise invalid(name, exc.message) from exc


def effective_settings_masked(settings: Settings) -> dict[str, dict[str, object]]:
    """The settings as plain data for ``lgsp config check``, with secrets replaced by ``***``."""
    out: dict[str, dict[str, object]] = {}
    for section in fields(settings):
        obj = getattr(settings, section.name)
        out[section.name] = {f.name: _plain(getattr(obj, f.name)) for f in fields(obj)}
        for key, value in out[section.name].items():  # broker, store, national endpoint, …
            if isinstance(value, str) and "://" in value:
                out[section.name][key] = mask_url(value)
            elif isinstance(value, list) and any(isinstance(v, str) for v in value):
                out[section.name][key] = [mask_url(v) if isinstance(v, str) else v for v in value]
    out["admin"]["api_token_hashes"] = [MASK for _ in settings.admin.api_token_hashes]
    out["metrics"]["token_hashes"] = [MASK for _ in settings.metrics.token_hashes]
    out["admin"]["user"] = [
        {"username": u.username, "role": u.role.value, "password_hash": MASK}
        for u in settings.admin.user
    ]
    out["national"]["secret"] = MASK if settings.national.secret else ""
    return out


# --- reading -------------------------------------------------------------------------------------


def _read_toml(path: Path) -> Raw:
    data = read_toml(path)
    raw: Raw = {}
    for name, table in data.items():
        if name not in _SECTIONS:
            raise invalid(name, "unknown section")
        if not isinstance(table, dict):
            raise invalid(name, "must be a table")
        for key in table:
            if key not in _FIELD_TYPES[name]:
                raise invalid(f"{name}.{key}", "unknown setting")
        raw[name] = table
    return raw


def _env_overrides(env: Mapping[str, str]) -> Raw:
    raw: Raw = {}
    for var, text in env.items():
        if not var.startswith(ENV_PREFIX) or "__" not in var:
            continue
        section, _, key = var[len(ENV_PREFIX) :].lower().partition("__")
        if key not in _FIELD_TYPES.get(section, {}):
            raise invalid(f"{section}.{key}", f"unknown setting in environment variable {var}")
        raw.setdefault(section, {})[key] = text
    return raw


# --- paths ---------------------------------------------------------------------------------------


def _resolve_paths(section: Any, bases: Mapping[str, Path], default_base: Path) -> Any:
    """Make relative paths (and a relative SQLite database) absolute; ``bases`` per field."""
    changes: dict[str, object] = {}
    for f in fields(section):
        value = getattr(section, f.name)
        base = bases.get(f.name, default_base)
        if isinstance(value, Path) and not value.is_absolute():
            changes[f.name] = Path(os.path.normpath(base / value))
    if isinstance(section, StoreSettings):
        changes["url"] = _resolve_sqlite(section.url, bases.get("url", default_base))
    return replace(section, **changes)


def _resolve_sqlite(url: str, base_dir: Path) -> str:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise invalid("store.url", f"not a database URL: {exc}") from exc
    db = parsed.database
    if parsed.get_backend_name() != "sqlite" or db in (None, "", ":memory:"):
        return url
    if Path(db).is_absolute():
        return url
    resolved = parsed.set(database=os.path.normpath(base_dir / db))
    return resolved.render_as_string(hide_password=False)


def _plain(value: object) -> object:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value
