"""Frozen gateway settings: defaults < TOML file < ``LGSP_<SECTION>__<KEY>`` environment."""

from __future__ import annotations

import os
import re
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from yarl import URL

from gateway.core.config_files import read_toml
from gateway.core.errors import ConfigError
from gateway.core.redact import MASK, mask_url
from gateway.edxml.limits import ParseLimits

ENV_PREFIX = "LGSP_"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_PREFIX_RE = re.compile(r"[a-z0-9][a-z0-9_.-]*")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """The intake listener. TLS is optional (often terminated by a reverse proxy)."""

    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 64 * 1024 * 1024 + 64 * 1024  # a max-size package plus envelope
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None  # set to request client certificates (mutual TLS)


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    # One node, or a cluster's nodes (a TOML array; comma-separated in the environment): the
    # gateway connects to the first that answers and, after a lost connection, to the next.
    url: str | tuple[str, ...] = "amqp://guest:guest@127.0.0.1:5672/"
    prefix: str = "lgsp"
    prefetch: int = 32
    retry_delays_s: tuple[float, ...] = (5.0, 30.0, 120.0, 600.0, 3600.0)
    max_tries: int = 6
    claim_check_threshold_bytes: int = 256 * 1024  # larger packages travel by sha256 reference
    outbox_interval_s: float = 5.0  # how often the outbox relay looks for unpublished deliveries
    outbox_age_s: float = 15.0  # deliveries still unpublished this long after intake

    @property
    def urls(self) -> tuple[str, ...]:
        """The broker nodes' URLs, in the order they are tried."""
        return (self.url,) if isinstance(self.url, str) else self.url


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    """The workers' sweep: deliveries whose broker message is overdue are published again."""

    sweep_interval_s: float = 30.0  # how often each worker process looks (0: never)
    # A delivery is overdue this long after it was due: queued since, or its retry delay over.
    sweep_grace_s: float = 120.0


@dataclass(frozen=True, slots=True)
class StoreSettings:
    url: str = "sqlite+aiosqlite:///var/lgsp.db"  # a relative SQLite path is resolved like paths
    batch_max: int = 64  # intakes committed together at most (group commit)
    batch_wait_ms: float = 2.0  # how long a batch waits for more intakes (0: never waits)


@dataclass(frozen=True, slots=True)
class PkiSettings:
    dir: Path = Path("pki")  # trust/ca, trust/crl and the gateway's own identity


@dataclass(frozen=True, slots=True)
class DirectorySettings:
    path: Path = Path("participants.toml")


@dataclass(frozen=True, slots=True)
class AdminSettings:
    api_token_hashes: tuple[str, ...] = ()  # SHA-256 hex of admin tokens, never the tokens
    user: tuple[ConsoleUser, ...] = ()  # [[admin.user]]: who may log in to the web console


class ConsoleRole(StrEnum):
    VIEWER = "viewer"  # reads everything, changes nothing
    OPERATOR = "operator"  # may also replay, disable participants and edit the directory
    ADMINISTRATOR = "administrator"  # an operator who also manages the console's users


@dataclass(frozen=True, slots=True)
class ConsoleUser:
    """A web console user; ``password_hash`` as ``lgsp admin hash-password`` prints it."""

    username: str
    password_hash: str
    role: ConsoleRole = ConsoleRole.VIEWER


@dataclass(frozen=True, slots=True)
class LogSettings:
    level: str = "INFO"
    json: bool = True


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    """Prometheus ``/metrics``: on a listener of its own, and on the API port only with a token."""

    host: str = "127.0.0.1"
    port: int | None = None  # GET /metrics on host:port, any role (unset: no such listener)
    token_hashes: tuple[str, ...] = ()  # SHA-256 of Bearer tokens for /metrics on the API port
    refresh_s: float = 15.0  # how often a gateway reads queue depths from the broker


@dataclass(frozen=True, slots=True)
class RateLimitSettings:
    """Limits per fixed window, counted in the store (shared by every process); 0 turns one off."""

    window_s: float = 60.0
    participant_requests: int = 600  # per participant (API key, certificate, southbound system)
    failed_auth_per_address: int = 20  # failed authentications per caller address


@dataclass(frozen=True, slots=True)
class PushSettings:
    """HTTP push delivery. A push URL may not reach loopback, private, link-local (cloud metadata),
    or other non-global addresses, unless its host is named in ``allow_private_hosts``."""

    allow_private_hosts: tuple[str, ...] = ()  # host names or IP literals, exactly as in URLs


@dataclass(frozen=True, slots=True)
class NationalSettings:
    """The national platform (VDXP/X-Road REST adapter); used by the workers when enabled."""

    enabled: bool = False
    endpoint: str = ""  # e.g. http://host:8080/XrdAdapter/adapter
    system_id: str = ""
    secret: str = ""  # or secret_file (read at start-up)
    secret_file: Path | None = None
    poll_interval_s: float = 10.0
    poll_concurrency: int = 16  # documents of a round fetched and submitted at once, at most
    max_backoff_s: float = 300.0
    sync_interval_s: float = 3600.0
    timeout_s: float = 30.0


@dataclass(frozen=True, slots=True)
class SouthboundSettings:
    """The national SDK protocol served to local systems under /XrdAdapter/adapter/."""

    systems_path: Path | None = None  # TOML [[system]] system_id, secret, organ_id (mode 0600)
    # Default per system; 0: any. The SDK's timestamp is set once per object, in the JVM's zone,
    # so by default none is refused: replays are refused by the signed headers' hash instead.
    timestamp_window_s: float = 0.0
    acked_grace_s: float = 300.0  # getEdoc still serves a package this long after updateStatus
    replay_retention_s: float = 30 * 86_400.0  # how long a used hash-header is remembered

    def __post_init__(self) -> None:
        for name in ("timestamp_window_s", "acked_grace_s", "replay_retention_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ConfigError(f"{name} must be a number >= 0", code="config.invalid")
        if self.replay_retention_s < self.acked_grace_s:
            raise ConfigError(
                "replay_retention_s must be at least acked_grace_s", code="config.invalid"
            )


@dataclass(frozen=True, slots=True)
class SoapSettings:
    """SOAP services called for participants whose delivery method is ``soap``."""

    routes_path: Path | None = None  # TOML [[route]] tables (see adapters/soap_routes.py)


@dataclass(frozen=True, slots=True)
class ArchiveSettings:
    """The tamper-evident log (``docs/evidence.md``): checkpoints, their time-stamps, retention."""

    dir: Path = Path("archive")  # checkpoint files and archive files (one per period)
    checkpoint_interval_s: float = 300.0  # how often the chain's head is signed (0: only on demand)
    tsa_url: str = ""  # an RFC 3161 Time-Stamping Authority (unset: checkpoints are only signed)
    tsa_ca: Path | None = None  # PEM certificates the TSA's tokens must chain to
    tsa_timeout_s: float = 30.0
    retain_days: int = 0  # documents older than this move to archive files (0: never)

    def __post_init__(self) -> None:
        for name in ("checkpoint_interval_s", "tsa_timeout_s", "retain_days"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ConfigError(f"{name} must be a number >= 0", code="config.invalid")
        if self.tsa_url and URL(self.tsa_url).scheme not in ("http", "https"):
            raise ConfigError("tsa_url must be an http:// or https:// URL", code="config.invalid")
        if self.tsa_url and self.tsa_ca is None:
            raise ConfigError("tsa_url needs tsa_ca (the TSA's CA)", code="config.invalid")


@dataclass(frozen=True, slots=True)
class Settings:
    http: HttpSettings = field(default_factory=HttpSettings)
    broker: BrokerSettings = field(default_factory=BrokerSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    pki: PkiSettings = field(default_factory=PkiSettings)
    directory: DirectorySettings = field(default_factory=DirectorySettings)
    limits: ParseLimits = field(default_factory=ParseLimits)
    admin: AdminSettings = field(default_factory=AdminSettings)
    log: LogSettings = field(default_factory=LogSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    rate_limit: RateLimitSettings = field(default_factory=RateLimitSettings)
    push: PushSettings = field(default_factory=PushSettings)
    national: NationalSettings = field(default_factory=NationalSettings)
    southbound: SouthboundSettings = field(default_factory=SouthboundSettings)
    soap: SoapSettings = field(default_factory=SoapSettings)
    archive: ArchiveSettings = field(default_factory=ArchiveSettings)


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
        values = {k: _coerce(v, types_[k], f"{name}.{k}") for k, v in given.items()}
        env_values = from_env.get(name, {})
        for key, text in env_values.items():
            values[key] = _coerce_env(str(text), types_[key], f"{name}.{key}")
        bases = {key: Path.cwd() for key in env_values}
        sections[name] = _resolve_paths(_build(cls, values, name), bases, base_dir)
    sections["log"] = replace(sections["log"], level=sections["log"].level.upper())
    settings = Settings(**sections)
    _validate(settings)
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
                raise _invalid(f"{name}.{key}", exc.message) from exc
        raise _invalid(name, exc.message) from exc


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
            raise _invalid(name, "unknown section")
        if not isinstance(table, dict):
            raise _invalid(name, "must be a table")
        for key in table:
            if key not in _FIELD_TYPES[name]:
                raise _invalid(f"{name}.{key}", "unknown setting")
        raw[name] = table
    return raw


def _env_overrides(env: Mapping[str, str]) -> Raw:
    raw: Raw = {}
    for var, text in env.items():
        if not var.startswith(ENV_PREFIX) or "__" not in var:
            continue
        section, _, key = var[len(ENV_PREFIX) :].lower().partition("__")
        if key not in _FIELD_TYPES.get(section, {}):
            raise _invalid(f"{section}.{key}", f"unknown setting in environment variable {var}")
        raw.setdefault(section, {})[key] = text
    return raw


# --- coercion ------------------------------------------------------------------------------------


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


def _coerce(value: object, tp: Any, key: str) -> object:
    """A TOML value checked against, and converted to, the field type ``tp``."""
    if members := _alternatives(tp):  # one value or an array of them
        tp = _one_or_many(members, isinstance(value, list))
    inner, optional = _split_optional(tp)
    if optional and value == "":
        return None
    if get_origin(inner) is tuple:
        if not isinstance(value, list):
            raise _invalid(key, "must be an array")
        item_tp = get_args(inner)[0]
        return tuple(_coerce(item, item_tp, key) for item in value)
    if isinstance(inner, type) and (is_dataclass(inner) or issubclass(inner, StrEnum)):
        return _coerce_record(value, inner, key)
    if inner is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if inner is Path and isinstance(value, str):
        return Path(value)
    if inner in (str, int, bool) and type(value) is inner:
        return value
    raise _invalid(key, f"must be of type {getattr(inner, '__name__', inner)}, got {value!r}")


def _coerce_record(value: object, cls: type[Any], key: str) -> object:
    """A string as the str enum ``cls``, or a TOML table (one ``[[admin.user]]``) as the
    dataclass ``cls``, its keys checked."""
    if issubclass(cls, StrEnum):
        if value not in {m.value for m in cls}:
            raise _invalid(key, f"must be one of {', '.join(m.value for m in cls)}")
        return cls(value)
    if not isinstance(value, dict):
        raise _invalid(key, "must be an array of tables")
    hints = get_type_hints(cls)
    unknown = sorted(set(value) - set(hints))
    if unknown:
        raise _invalid(f"{key}.{unknown[0]}", "unknown setting")
    try:
        return cls(**{k: _coerce(v, hints[k], f"{key}.{k}") for k, v in value.items()})
    except TypeError as exc:
        raise _invalid(key, f"incomplete entry: {exc}") from exc


def _coerce_env(text: str, tp: Any, key: str) -> object:
    """An environment string converted to the field type ``tp`` (arrays are comma-separated)."""
    if members := _alternatives(tp):  # one value, or several separated by commas
        tp = _one_or_many(members, "," in text)
    inner, optional = _split_optional(tp)
    if get_origin(inner) is tuple and is_dataclass(get_args(inner)[0]):
        raise _invalid(key, "tables cannot be set in the environment; use the settings file")
    if optional and text.strip() == "":
        return None
    if get_origin(inner) is tuple:
        item_tp = get_args(inner)[0]
        return tuple(
            _coerce_env(part.strip(), item_tp, key) for part in text.split(",") if part.strip()
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
        raise _invalid(key, f"cannot read {text!r} as {inner.__name__}") from exc


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in _TRUE | _FALSE:
        return lowered in _TRUE
    raise ValueError(text)


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
        raise _invalid("store.url", f"not a database URL: {exc}") from exc
    db = parsed.database
    if parsed.get_backend_name() != "sqlite" or db in (None, "", ":memory:"):
        return url
    if Path(db).is_absolute():
        return url
    resolved = parsed.set(database=os.path.normpath(base_dir / db))
    return resolved.render_as_string(hide_password=False)


# --- validation ----------------------------------------------------------------------------------


def _invalid(key: str, message: str) -> ConfigError:
    return ConfigError(f"{key}: {message}", code="config.invalid", path=key)


def _validate(s: Settings) -> None:
    _validate_http(s.http)
    _validate_broker(s.broker)
    _validate_store(s.store)
    _validate_delivery(s.delivery)
    for token_hash in s.admin.api_token_hashes:
        if not _SHA256_HEX.fullmatch(token_hash):
            raise _invalid("admin.api_token_hashes", "each must be 64 lowercase hex digits")
    _validate_console_users(s.admin.user)
    if s.log.level.upper() not in LOG_LEVELS:
        raise _invalid("log.level", f"must be one of {', '.join(LOG_LEVELS)}")
    _validate_metrics(s.metrics)
    _validate_rate_limit(s.rate_limit)
    _validate_national(s.national)


def _validate_metrics(m: MetricsSettings) -> None:
    if m.port is not None and not 0 <= m.port <= 65535:
        raise _invalid("metrics.port", "must be between 0 and 65535")
    if not all(_SHA256_HEX.fullmatch(h) for h in m.token_hashes):
        raise _invalid("metrics.token_hashes", "each must be 64 lowercase hex digits")
    if m.refresh_s <= 0:
        raise _invalid("metrics.refresh_s", "must be positive")


def _validate_rate_limit(r: RateLimitSettings) -> None:
    if r.window_s <= 0:
        raise _invalid("rate_limit.window_s", "must be positive")
    for key in ("participant_requests", "failed_auth_per_address"):
        if getattr(r, key) < 0:
            raise _invalid(f"rate_limit.{key}", "must not be negative (0 turns it off)")


def _validate_console_users(users: tuple[ConsoleUser, ...]) -> None:
    names = [u.username for u in users]
    if not all(name.strip() and name == name.strip() for name in names):
        raise _invalid("admin.user.username", "must be non-empty, without surrounding spaces")
    if len(set(names)) != len(names):
        raise _invalid("admin.user.username", "each console user must have a different name")
    if not all(u.password_hash for u in users):
        raise _invalid("admin.user.password_hash", "must not be empty")


def _validate_http(h: HttpSettings) -> None:
    if not 0 <= h.port <= 65535:
        raise _invalid("http.port", "must be between 0 and 65535")
    if h.max_body_bytes <= 0:
        raise _invalid("http.max_body_bytes", "must be positive")
    if (h.tls_cert is None) != (h.tls_key is None):
        raise _invalid(
            "http.tls_key" if h.tls_key is None else "http.tls_cert",
            "tls_cert and tls_key go together",
        )
    if h.tls_client_ca is not None and h.tls_cert is None:
        raise _invalid("http.tls_client_ca", "client certificates need tls_cert and tls_key")


def _validate_broker(b: BrokerSettings) -> None:
    if not b.urls:
        raise _invalid("broker.url", "must name at least one broker node")
    for n, url in enumerate(b.urls, 1):
        if _url_scheme(url) not in ("amqp", "amqps"):
            which = f"node {n} of {len(b.urls)}" if len(b.urls) > 1 else "the URL"
            raise _invalid(  # the URL itself is not shown: a badly split one may hold a password
                "broker.url",
                f"{which} is not an amqp:// or amqps:// URL (in the environment several are "
                "separated by commas; write a comma in a password as %2C)",
            )
    if len(set(b.urls)) != len(b.urls):
        raise _invalid("broker.url", "names the same node twice")
    if not _PREFIX_RE.fullmatch(b.prefix):
        raise _invalid("broker.prefix", "lowercase letters, digits, '_', '.', '-' only")
    if b.prefetch < 1:
        raise _invalid("broker.prefetch", "must be at least 1")
    if not b.retry_delays_s or any(d <= 0 for d in b.retry_delays_s):
        raise _invalid("broker.retry_delays_s", "must be a non-empty list of positive delays")
    if list(b.retry_delays_s) != sorted(b.retry_delays_s):
        raise _invalid("broker.retry_delays_s", "delays must not decrease")
    if b.max_tries < 1:
        raise _invalid("broker.max_tries", "must be at least 1")
    if b.claim_check_threshold_bytes < 0:
        raise _invalid("broker.claim_check_threshold_bytes", "must not be negative")
    if b.outbox_interval_s <= 0 or b.outbox_age_s <= 0:
        key = "outbox_interval_s" if b.outbox_interval_s <= 0 else "outbox_age_s"
        raise _invalid(f"broker.{key}", "must be positive")


def _url_scheme(url: str) -> str | None:
    try:
        return URL(url).scheme
    except ValueError:
        return None


def _validate_store(st: StoreSettings) -> None:
    backend = make_url(st.url).get_backend_name()  # parsed once already by _resolve_sqlite
    if backend not in ("sqlite", "postgresql"):
        raise _invalid("store.url", "must be a sqlite or postgresql URL")
    if st.batch_max < 1:
        raise _invalid("store.batch_max", "must be at least 1")
    if not 0 <= st.batch_wait_ms <= 1000:
        raise _invalid("store.batch_wait_ms", "must be 0 to 1000")


def _validate_delivery(d: DeliverySettings) -> None:
    if d.sweep_interval_s < 0:
        raise _invalid("delivery.sweep_interval_s", "must not be negative (0 turns the sweep off)")
    if d.sweep_grace_s <= 0:
        raise _invalid("delivery.sweep_grace_s", "must be positive")


def _validate_national(n: NationalSettings) -> None:
    if not n.enabled:
        return
    if URL(n.endpoint).scheme not in ("http", "https"):
        raise _invalid("national.endpoint", "must be an http:// or https:// URL")
    if not n.system_id:
        raise _invalid("national.system_id", "is required when national is enabled")
    if bool(n.secret) == (n.secret_file is not None):
        raise _invalid("national.secret", "give exactly one of secret and secret_file")
    for key in ("poll_interval_s", "max_backoff_s", "sync_interval_s", "timeout_s"):
        if getattr(n, key) <= 0:
            raise _invalid(f"national.{key}", "must be positive")
    if n.poll_concurrency < 1:
        raise _invalid("national.poll_concurrency", "must be at least 1")


def _plain(value: object) -> object:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value
