"""``lgsp demo init|info|clean``: a runnable demo setup, its next steps, and its removal."""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

from gateway.core.redact import mask_url
from gateway.core.settings import load_settings
from gateway.demo.clean import clean_demo, demo_config
from gateway.demo.layout import (
    CONSOLE_ENTRY,
    CREDENTIALS_NAME,
    DEFAULT_BROKER_URL,
    DEFAULT_PORT,
    SIM_CONFIG_NAME,
    SIM_DB_NAME,
    DemoSetup,
)
from gateway.demo.setup import init_demo

FIRST_SENDER = "000.00.04.H56"  # Sở Nội vụ
FIRST_RECIPIENT = "000.00.15.H56"  # UBND huyện Quảng Xương
NATIONAL_RECIPIENT = "000.00.00.G22"  # Văn phòng Chính phủ (through the national platform)
NATIONAL_PORT_OFFSET = 10  # the simulator's default port: the gateway's + 10 (8090)


def register(commands: argparse._SubParsersAction[Any]) -> None:
    group = commands.add_parser("demo", help="a demo setup to try the gateway locally")
    sub = group.add_subparsers(dest="demo_command", required=True, parser_class=type(group))

    init = sub.add_parser("init", help="write gateway.toml, participants, PKI and API keys to DIR")
    init.add_argument("dir", type=Path, metavar="DIR", help="the demo directory (created)")
    init.add_argument("--port", type=int, default=DEFAULT_PORT, help="HTTP port (default 8080)")
    init.add_argument(
        "--broker-url",
        default=DEFAULT_BROKER_URL,
        metavar="URL",
        help=f"RabbitMQ URL (default {DEFAULT_BROKER_URL})",
    )
    init.add_argument(
        "--store-url",
        default=None,
        metavar="URL",
        help="delivery log (default: SQLite file DIR/var/delivery-log.db)",
    )
    init.add_argument(
        "--prefix", default=None, help="broker name prefix (default: one of its own for DIR)"
    )
    init.add_argument(
        "--national-port",
        type=int,
        default=None,
        metavar="PORT",
        help="port of the national platform simulator the demo delivers to "
        f"(default: --port + {NATIONAL_PORT_OFFSET})",
    )
    init.add_argument(
        "--no-national",
        action="store_true",
        help="no national delivery: documents to the national platform are refused",
    )
    init.add_argument(
        "--force",
        action="store_true",
        help="replace an existing demo in DIR (new keys; its default SQLite store is removed)",
    )
    init.add_argument(
        "--no-steps",
        action="store_true",
        help="print what was written, not the next steps (`lgsp demo info DIR`)",
    )
    init.set_defaults(handler=_init)

    info = sub.add_parser("info", help="the next steps of the demo in DIR: commands, console users")
    info.add_argument("dir", type=Path, metavar="DIR", help="a directory `lgsp demo init` wrote")
    info.add_argument(
        "--started",
        action="store_true",
        help="say the gateway is starting instead of how to start it",
    )
    info.set_defaults(handler=_info)

    clean = sub.add_parser(
        "clean", help="delete the demo's broker queues and exchange, and DIR's generated files"
    )
    clean.add_argument("dir", type=Path, metavar="DIR", help="a directory `lgsp demo init` wrote")
    clean.add_argument(
        "--keep-broker", action="store_true", help="leave the broker alone (only remove the files)"
    )
    clean.set_defaults(handler=_clean)


def _init(args: argparse.Namespace) -> int:
    national_port = (
        None if args.no_national else (args.national_port or args.port + NATIONAL_PORT_OFFSET)
    )
    setup = init_demo(
        args.dir,
        port=args.port,
        broker_url=args.broker_url,
        store_url=args.store_url,
        prefix=args.prefix,
        force=args.force,
        national_port=national_port,
    )
    _print_created(setup)
    if not args.no_steps:
        print()
        print("\n".join(next_steps(setup.config_path, started=False)))
    return 0


def _print_created(setup: DemoSetup) -> None:
    print(f"demo gateway set up in {setup.dir}")
    print(
        f"  settings      {setup.config_path}  (port {setup.port}, "
        f"broker prefix {setup.broker_prefix})"
    )
    print(f"  participants  {setup.directory_path}  ({len(setup.api_keys)} participants)")
    print(f"  PKI           {setup.pki_dir}")
    print(
        f"  credentials   {setup.credentials_path}  (API keys, admin token and console "
        "passwords, mode 0600)"
    )
    print(f"  delivery log  {mask_url(setup.store_url)}")
    if setup.national_endpoint:
        print(
            f"  national      {setup.national_endpoint}  (the simulator, "
            f"{setup.dir / SIM_CONFIG_NAME})"
        )
    else:
        print("  national      disabled: documents to the national platform are refused")


def _info(args: argparse.Namespace) -> int:
    print("\n".join(next_steps(demo_config(args.dir), started=args.started)))
    return 0


def _clean(args: argparse.Namespace) -> int:
    cleaned = asyncio.run(clean_demo(args.dir, broker=not args.keep_broker))
    if cleaned.broker_prefix:
        print(f"deleted the broker queues and exchange {cleaned.broker_prefix}.*")
    print(
        f"removed {', '.join(cleaned.removed) or 'nothing'} from {cleaned.dir}"
        + (" (and the now empty directory)" if cleaned.dir_removed else "")
    )
    return 0


def lgsp_command() -> str:
    """How to call this ``lgsp`` from anywhere: ``lgsp`` when it is the one on PATH, else its
    absolute path (e.g. ``.venv/bin/lgsp`` when the venv is not activated)."""
    argv0 = Path(sys.argv[0])
    if argv0.name != "lgsp":
        return "lgsp"
    on_path = shutil.which("lgsp")
    if on_path and Path(on_path).resolve() == argv0.resolve():
        return "lgsp"
    return shlex.quote(str(argv0.resolve()))


def next_steps(config: Path, *, started: bool) -> list[str]:
    """The one "next steps" block of a demo: start it, send a first document, follow it, the
    console and its users; every path absolute."""
    settings = load_settings(config)
    root = config.parent
    lgsp = lgsp_command()
    q = shlex.quote
    conf = f"--config {q(str(config))}"
    base = f"http://127.0.0.1:{settings.http.port}"
    national = settings.national.enabled
    first = q(str(root / "first.edxml"))
    sim = (
        f"{lgsp} sim national --config {q(str(root / SIM_CONFIG_NAME))} "
        f"--db {q(str(root / SIM_DB_NAME))} --port {_port(settings.national.endpoint)}"
    )
    lines = ["Next steps (every path is absolute: run them from any directory)"]
    if started:
        with_sim = " with the national platform simulator" if national else ""
        lines += [f"  1. The gateway is starting on {base}{with_sim} (Ctrl-C stops it)."]
    else:
        what = "the national platform simulator and the gateway" if national else "the gateway"
        lines += [f"  1. Start {what} (scripts/demo does this for you):"]
        if national:
            lines += [f"       {sim} &"]
        lines += [f"       {lgsp} run {conf}"]
    lines += [
        "  2. In another terminal, build a first document (a new number each time) and send it:",
        f"       {lgsp} new-document --from {FIRST_SENDER} --to {FIRST_RECIPIENT} -o {first}",
        f"       {lgsp} send {first} {conf} --as {FIRST_SENDER}",
        f"     (add --to {NATIONAL_RECIPIENT} to new-document to reach the national platform"
        + (" simulator)" if national else ": refused here, national delivery is disabled)"),
        "  3. Follow it (ID: the id or the DocumentId that send printed):",
        f"       {lgsp} log list {conf}",
        f"       {lgsp} log show ID {conf}",
        f"  4. The console: {base}/admin/",
        *_console_users(root / CREDENTIALS_NAME),
        f"  The API: {base}/api/v1/openapi.json; API keys: {root / CREDENTIALS_NAME}",
        f"  Done? {lgsp} demo clean {q(str(root))}  (its broker queues and generated files)",
    ]
    return lines


def _port(endpoint: str) -> str:
    from yarl import URL  # noqa: PLC0415

    return str(URL(endpoint).port) if endpoint else "8090"


def _console_users(credentials: Path) -> list[str]:
    """``user / password (role)`` of each demo console user, from ``credentials.json``."""
    try:
        users = json.loads(credentials.read_text(encoding="utf-8")).get(CONSOLE_ENTRY, {})
    except (OSError, json.JSONDecodeError):
        users = {}
    if not users:
        return [f"       users: see {CONSOLE_ENTRY} in {credentials}"]
    return [
        f"       log in as {name} / {entry['password']}  ({entry['role']})"
        for name, entry in users.items()
    ]
