"""``lgsp config check`` and the ``--config`` option the admin commands share; registers ops."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from gateway.core.directory import Directory, load_directory
from gateway.core.errors import ConfigError
from gateway.core.settings import Settings, effective_settings_masked, load_settings
from gateway.national.local_systems import LocalSystems
from gateway.signatures.truststore import TrustStore

CONFIG_ENV = "LGSP_CONFIG"
DEFAULT_CONFIG = Path("config") / "gateway.toml"


def register(commands: argparse._SubParsersAction[Any]) -> None:
    from gateway.cli import demo_commands, log_commands  # noqa: PLC0415 (they import this module)

    group = commands.add_parser("config", help="check the gateway configuration")
    sub = group.add_subparsers(dest="config_command", required=True, parser_class=type(group))
    check = sub.add_parser("check", help="validate the configuration and print effective values")
    add_config_option(check)
    check.add_argument("--json", action="store_true", help="print the effective values as JSON")
    check.set_defaults(handler=_check)

    demo_commands.register(commands)
    log_commands.register(commands)


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", type=Path, default=None, metavar="PATH",
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


def check_config(path: Path) -> CheckedConfig:
    """Load the settings, the directory file and the trust store; raise ``ConfigError`` naming
    the bad key (``directory.path``, ``pki.dir``, ``store.url`` or a settings key)."""
    settings = load_settings(path)
    directory = _check_directory(settings.directory.path)
    anchors = _check_trust(settings.pki.dir)
    _check_store(settings.store.url)
    _check_southbound(settings)
    return CheckedConfig(path, settings, directory, anchors)


def _check_southbound(settings: Settings) -> None:
    """The local systems' secrets file loads (its secrets are never printed)."""
    conf = settings.southbound
    try:
        LocalSystems(conf.systems_path, conf.timestamp_window_s)
    except ConfigError as exc:
        raise ConfigError(f"southbound.systems_path: {exc.message}", code=exc.code,
                          path="southbound.systems_path") from exc


def _check_directory(path: Path) -> Directory:
    try:
        return load_directory(path)
    except ConfigError as exc:
        raise ConfigError(f"directory.path: {path}: {exc.message}", code=exc.code,
                          path="directory.path") from exc


def _check_trust(pki_dir: Path) -> int:
    try:
        trust = TrustStore.from_dir(pki_dir, reload_interval_s=None)
    except ConfigError as exc:
        raise ConfigError(f"pki.dir: {exc.message}", code=exc.code, path="pki.dir") from exc
    if not trust.anchors:
        raise ConfigError(f"pki.dir: no trusted CA certificate under {pki_dir / 'trust' / 'ca'}",
                          code="config.trust_missing", path="pki.dir")
    return len(trust.anchors)


def _check_store(url: str) -> None:
    """A SQLite store needs its directory to exist (SQLite creates the file, not the dirs)."""
    parsed = make_url(url)
    db = parsed.database
    if parsed.get_backend_name() != "sqlite" or not db or db == ":memory:":
        return
    if not Path(db).parent.is_dir():
        raise ConfigError(f"store.url: the directory {Path(db).parent} does not exist",
                          code="config.invalid", path="store.url")


def _check(args: argparse.Namespace) -> int:
    checked = check_config(config_path(args.config))
    masked = effective_settings_masked(checked.settings)
    if args.json:
        print(json.dumps(masked, ensure_ascii=False, indent=2))
        return 0
    print(f"OK: {checked.path} is valid ({len(checked.directory)} participants, "
          f"{checked.trust_anchors} trusted CA certificates)")
    for line in setting_lines(masked):
        print(line)
    return 0


def setting_lines(masked: dict[str, dict[str, object]]) -> list[str]:
    """``section.key = value`` lines; strings as they are, other values as JSON."""
    return [
        f"{section}.{key} = {value if isinstance(value, str) else json.dumps(value)}"
        for section, values in masked.items()
        for key, value in values.items()
    ]
