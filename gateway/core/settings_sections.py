"""The settings' sections: one frozen dataclass per TOML table, and ``Settings`` holding them."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from yarl import URL

from gateway.core.errors import ConfigError
from gateway.edxml.limits import ParseLimits


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
    batch_wait_ms: float = 5.0  # how long a worker's batch waits for more deliveries (0: never)


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
