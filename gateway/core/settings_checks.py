"""The checks of loaded settings (ranges, URLs, settings that go together), each naming its key."""

from __future__ import annotations

import re

from sqlalchemy.engine import make_url
from yarl import URL

from gateway.core.errors import ConfigError
from gateway.core.settings_sections import (
    BrokerSettings,
    ConsoleUser,
    DeliverySettings,
    HttpSettings,
    MetricsSettings,
    NationalSettings,
    RateLimitSettings,
    Settings,
    StoreSettings,
)

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_PREFIX_RE = re.compile(r"[a-z0-9][a-z0-9_.-]*")


def invalid(key: str, message: str) -> ConfigError:
    """The error for the setting ``key`` (``section.key``): ``config.invalid``, the key as path."""
    return ConfigError(f"{key}: {message}", code="config.invalid", path=key)


def validate(s: Settings) -> None:
    """Raise ``invalid`` for the first setting out of range or at odds with another."""
    _validate_http(s.http)
    _validate_broker(s.broker)
    _validate_store(s.store)
    _validate_delivery(s.delivery)
    for token_hash in s.admin.api_token_hashes:
        if not _SHA256_HEX.fullmatch(token_hash):
            raise invalid("admin.api_token_hashes", "each must be 64 lowercase hex digits")
    _validate_console_users(s.admin.user)
    if s.log.level.upper() not in LOG_LEVELS:
        raise invalid("log.level", f"must be one of {', '.join(LOG_LEVELS)}")
    _validate_metrics(s.metrics)
    _validate_rate_limit(s.rate_limit)
    _validate_national(s.national)


def _validate_metrics(m: MetricsSettings) -> None:
    if m.port is not None and not 0 <= m.port <= 65535:
        raise invalid("metrics.port", "must be between 0 and 65535")
    if not all(_SHA256_HEX.fullmatch(h) for h in m.token_hashes):
        raise invalid("metrics.token_hashes", "each must be 64 lowercase hex digits")
    if m.refresh_s <= 0:
        raise invalid("metrics.refresh_s", "must be positive")


def _validate_rate_limit(r: RateLimitSettings) -> None:
    if r.window_s <= 0:
        raise invalid("rate_limit.window_s", "must be positive")
    for key in ("participant_requests", "failed_auth_per_address"):
        if getattr(r, key) < 0:
            raise invalid(f"rate_limit.{key}", "must not be negative (0 turns it off)")


def _validate_console_users(users: tuple[ConsoleUser, ...]) -> None:
    names = [u.username for u in users]
    if not all(name.strip() and name == name.strip() for name in names):
        raise invalid("admin.user.username", "must be non-empty, without surrounding spaces")
    if len(set(names)) != len(names):
        raise invalid("admin.user.username", "each console user must have a different name")
    if not all(u.password_hash for u in users):
        raise invalid("admin.user.password_hash", "must not be empty")


def _validate_http(h: HttpSettings) -> None:
    if not 0 <= h.port <= 65535:
        raise invalid("http.port", "must be between 0 and 65535")
    if h.max_body_bytes <= 0:
        raise invalid("http.max_body_bytes", "must be positive")
    if (h.tls_cert is None) != (h.tls_key is None):
        raise invalid(
            "http.tls_key" if h.tls_key is None else "http.tls_cert",
            "tls_cert and tls_key go together",
        )
    if h.tls_client_ca is not None and h.tls_cert is None:
        raise invalid("http.tls_client_ca", "client certificates need tls_cert and tls_key")


def _validate_broker(b: BrokerSettings) -> None:
    if not b.urls:
        raise invalid("broker.url", "must name at least one broker node")
    for n, url in enumerate(b.urls, 1):
        if _url_scheme(url) not in ("amqp", "amqps"):
            which = f"node {n} of {len(b.urls)}" if len(b.urls) > 1 else "the URL"
            raise invalid(  # the URL itself is not shown: a badly split one may hold a password
                "broker.url",
                f"{which} is not an amqp:// or amqps:// URL (in the environment several are "
                "separated by commas; write a comma in a password as %2C)",
            )
    if len(set(b.urls)) != len(b.urls):
        raise invalid("broker.url", "names the same node twice")
    if not _PREFIX_RE.fullmatch(b.prefix):
        raise invalid("broker.prefix", "lowercase letters, digits, '_', '.', '-' only")
    if b.prefetch < 1:
        raise invalid("broker.prefetch", "must be at least 1")
    if not b.retry_delays_s or any(d <= 0 for d in b.retry_delays_s):
        raise invalid("broker.retry_delays_s", "must be a non-empty list of positive delays")
    if list(b.retry_delays_s) != sorted(b.retry_delays_s):
        raise invalid("broker.retry_delays_s", "delays must not decrease")
    if b.max_tries < 1:
        raise invalid("broker.max_tries", "must be at least 1")
    if b.claim_check_threshold_bytes < 0:
        raise invalid("broker.claim_check_threshold_bytes", "must not be negative")
    if b.outbox_interval_s <= 0 or b.outbox_age_s <= 0:
        key = "outbox_interval_s" if b.outbox_interval_s <= 0 else "outbox_age_s"
        raise invalid(f"broker.{key}", "must be positive")


def _url_scheme(url: str) -> str | None:
    try:
        return URL(url).scheme
    except ValueError:
        return None


def _validate_store(st: StoreSettings) -> None:
    backend = make_url(st.url).get_backend_name()  # parsed once already by settings._resolve_sqlite
    if backend not in ("sqlite", "postgresql"):
        raise invalid("store.url", "must be a sqlite or postgresql URL")
    if st.batch_max < 1:
        raise invalid("store.batch_max", "must be at least 1")
    if not 0 <= st.batch_wait_ms <= 1000:
        raise invalid("store.batch_wait_ms", "must be 0 to 1000")


def _validate_delivery(d: DeliverySettings) -> None:
    if d.sweep_interval_s < 0:
        raise invalid("delivery.sweep_interval_s", "must not be negative (0 turns the sweep off)")
    if d.sweep_grace_s <= 0:
        raise invalid("delivery.sweep_grace_s", "must be positive")
    if not 0 <= d.batch_wait_ms <= 1000:
        raise invalid("delivery.batch_wait_ms", "must be 0 to 1000")


def _validate_national(n: NationalSettings) -> None:
    if not n.enabled:
        return
    if URL(n.endpoint).scheme not in ("http", "https"):
        raise invalid("national.endpoint", "must be an http:// or https:// URL")
    if not n.system_id:
        raise invalid("national.system_id", "is required when national is enabled")
    if bool(n.secret) == (n.secret_file is not None):
        raise invalid("national.secret", "give exactly one of secret and secret_file")
    for key in ("poll_interval_s", "max_backoff_s", "sync_interval_s", "timeout_s"):
        if getattr(n, key) <= 0:
            raise invalid(f"national.{key}", "must be positive")
    if n.poll_concurrency < 1:
        raise invalid("national.poll_concurrency", "must be at least 1")
