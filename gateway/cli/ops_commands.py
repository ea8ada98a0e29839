"""``lgsp config check`` and the ``--config`` option the admin commands share; registers ops."""

from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from gateway.core.directory import Directory, load_directory
from gateway.core.errors import ConfigError
from gateway.core.resources import default_config_text
from gateway.core.settings import Settings, effective_settings_masked, load_settings
from gateway.national.local_systems import LocalSystems
from gateway.signatures.truststore import TrustStore

CONFIG_ENV = "LGSP_CONFIG"
DEFAULT_CONFIG = Path("config") / "gateway.toml"


def register(commands: argparse._SubParsersAction[Any]) -> None:
    from gateway.cli import demo_commands, log_commands  # noqa: PLC0415 (they import this module)

    group = commands.add_parser("config", help="check the gateway configuration")
    sub = group.add_subparsers(dest="config_command", required=True, parser_class=type(group))
    check = sub.add_parser(
        "check",
        help="validate the configuration and print effective values",
        description="Load the settings, the participant directory, the trust store, the TLS "
        "files and the local systems' secrets; report participants no enabled "
        "delivery can reach (routing.no_adapter) as warnings.",
    )
    add_config_option(check)
    check.add_argument(
        "--json", action="store_true", help="print the effective values (or the problem) as JSON"
    )
    check.add_argument(
        "--strict",
        action="store_true",
        help="exit 2 on warnings (no trusted CA yet, unreachable participants)",
    )
    check.set_defaults(handler=_check)
    default = sub.add_parser(
        "default", help="print the annotated default gateway.toml (every key, its default)"
    )
    default.set_defaults(handler=_default)

    demo_commands.register(commands)
    log_commands.register(commands)


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="PATH",
        help=f"settings file (default: ${CONFIG_ENV}, else {DEFAULT_CONFIG})",
    )


def config_path(given: Path | None) -> Path:
    """``--config``, else ``$LGSP_CONFIG``, else ``config/gateway.toml`` of the working dir."""
    if given is not None:
        return given
    from_env = os.environ.get(CONFIG_ENV)
    return Path(from_env) if from_env else DEFAULT_CONFIG


def settings_from(args: argparse.Namespace) -> Settings:
    """The settings named by the command line (``args.config``)."""
    return load_settings(config_path(args.config))


@dataclass(frozen=True, slots=True)
class CheckedConfig:
    """A configuration that passed every check, with what the checks loaded."""

    path: Path
    settings: Settings
    directory: Directory
    trust_anchors: int
    warnings: tuple[ConfigError, ...] = ()  # valid, but not ready to accept documents


def check_config(path: Path) -> CheckedConfig:
    """Load the settings, the directory file and the trust store; raise ``ConfigError`` naming
    the bad key (``directory.path``, ``pki.dir``, ``store.url`` or a settings key). Warnings:
    no trusted CA yet (``config.trust_missing``: every signed package would be refused) and
    participants no delivery reaches. Nothing is created: a missing store directory is created
    at start."""
    from gateway.intake.routing import dead_ends, no_adapter  # noqa: PLC0415
    from gateway.service.components import delivery_methods  # noqa: PLC0415 (keeps --help fast)

    settings = load_settings(path)
    directory = _check_directory(settings.directory.path)
    anchors, trust_warnings = 0, []
    try:
        anchors = _check_trust(settings.pki.dir)
    except ConfigError as exc:
        if exc.code != "config.trust_missing":
            raise
        trust_warnings.append(exc)
    _check_store(settings.store.url)
    _check_tls(settings)
    _check_southbound(settings)
    warnings = (
        *trust_warnings,
        *(
            ConfigError(
                f"participant {refusal.detail}: documents to it are refused",
                code=refusal.code,
                path="directory.path",
            )
            for refusal in (no_adapter(r) for r in dead_ends(directory, delivery_methods(settings)))
        ),
    )
    return CheckedConfig(path, settings, directory, anchors, warnings)


def _check_tls(settings: Settings) -> None:
    """The TLS certificate, key and client CA load as the listener will load them."""
    http = settings.http
    if http.tls_cert is None or http.tls_key is None:
        return
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    key = "http.tls_cert"
    try:
        context.load_cert_chain(http.tls_cert, http.tls_key)
        if http.tls_client_ca is not None:
            key = "http.tls_client_ca"
            context.load_verify_locations(http.tls_client_ca)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"{key}: cannot load: {exc}", code="config.tls", path=key) from exc


def _check_southbound(settings: Settings) -> None:
    """The local systems' secrets file loads (its secrets are never printed)."""
    conf = settings.southbound
    try:
        LocalSystems(conf.systems_path, conf.timestamp_window_s)
    except ConfigError as exc:
        raise ConfigError(
            f"southbound.systems_path: {exc.message}", code=exc.code, path="southbound.systems_path"
        ) from exc


def _check_directory(path: Path) -> Directory:
    try:
        return load_directory(path)
    except ConfigError as exc:
        raise ConfigError(
            f"directory.path: {path}: {exc.message}", code=exc.code, path="directory.path"
        ) from exc


def _check_trust(pki_dir: Path) -> int:
    hint = "every signed package is refused until one is added (a demo PKI: lgsp pki init DIR)"
    try:
        trust = TrustStore.from_dir(pki_dir, reload_interval_s=None)
    except ConfigError as exc:
        more = f": {hint}" if exc.code == "config.trust_missing" else ""
        raise ConfigError(f"pki.dir: {exc.message}{more}", code=exc.code, path="pki.dir") from exc
    if not trust.anchors:
        raise ConfigError(
            f"pki.dir: no trusted CA certificate under {pki_dir / 'trust' / 'ca'}: {hint}",
            code="config.trust_missing",
            path="pki.dir",
        )
    return len(trust.anchors)


def _check_store(url: str) -> None:
    """A SQLite store's directory exists or can be created at start (its nearest existing
    ancestor is a directory this user may write in)."""
    parsed = make_url(url)
    db = parsed.database
    if parsed.get_backend_name() != "sqlite" or not db or db == ":memory:":
        return
    wanted = Path(db).parent
    if wanted.is_dir():
        return
    existing = next(p for p in (wanted, *wanted.parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(
            f"store.url: the directory {wanted} does not exist and cannot be created in {existing}",
            code="config.invalid",
            path="store.url",
        )


def _default(_args: argparse.Namespace) -> int:
    print(default_config_text(), end="")
    return 0


def _check(args: argparse.Namespace) -> int:
    checked = check_config(config_path(args.config))
    for warning in checked.warnings:
        sys.stderr.write(f"lgsp: warning: {warning.code}: {warning.message}\n")
    failed = 2 if args.strict and checked.warnings else 0
    masked = effective_settings_masked(checked.settings)
    if args.json:
        print(json.dumps(masked, ensure_ascii=False, indent=2))
        return failed
    count = len(checked.warnings)
    warned = f", {count} warning{'s' if count > 1 else ''}" if count else ""
    print(
        f"OK: {checked.path} is valid ({len(checked.directory)} participants, "
        f"{checked.trust_anchors} trusted CA certificates{warned})"
    )
    for line in setting_lines(masked):
        print(line)
    return failed


def setting_lines(masked: dict[str, dict[str, object]]) -> list[str]:
    """``section.key = value`` lines; strings as they are, other values as JSON."""
    return [
        f"{section}.{key} = {value if isinstance(value, str) else json.dumps(value)}"
        for section, values in masked.items()
        for key, value in values.items()
    ]
