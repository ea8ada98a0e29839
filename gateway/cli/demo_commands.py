"""``lgsp demo init``: write a runnable demo setup (settings, directory, PKI, credentials)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gateway.core.settings import mask_url
from gateway.demo.setup import DEFAULT_BROKER_URL, DEFAULT_PORT, DemoSetup, init_demo


def register(commands: argparse._SubParsersAction[Any]) -> None:
    group = commands.add_parser("demo", help="a demo setup to try the gateway locally")
    sub = group.add_subparsers(dest="demo_command", required=True, parser_class=type(group))

    init = sub.add_parser("init", help="write gateway.toml, participants, PKI and API keys to DIR")
    init.add_argument("dir", type=Path, metavar="DIR")
    init.add_argument("--port", type=int, default=DEFAULT_PORT, help="HTTP port (default 8080)")
    init.add_argument("--broker-url", default=DEFAULT_BROKER_URL, metavar="URL")
    init.add_argument("--store-url", default=None, metavar="URL",
                      help="delivery log (default: SQLite file DIR/var/delivery-log.db)")
    init.add_argument("--prefix", default=None, help="broker name prefix (default: from DIR)")
    init.add_argument("--force", action="store_true", help="replace an existing demo in DIR")
    init.set_defaults(handler=_init)


def _init(args: argparse.Namespace) -> int:
    setup = init_demo(args.dir, port=args.port, broker_url=args.broker_url,
                      store_url=args.store_url, prefix=args.prefix, force=args.force)
    _print_created(setup)
    return 0


def _print_created(setup: DemoSetup) -> None:
    print(f"demo gateway set up in {setup.dir}")
    print(f"  settings      {setup.config_path}  (port {setup.port}, "
          f"broker prefix {setup.broker_prefix})")
    print(f"  participants  {setup.directory_path}  ({len(setup.api_keys)} participants)")
    print(f"  PKI           {setup.pki_dir}")
    print(f"  credentials   {setup.credentials_path}  (API keys and admin token, mode 0600)")
    print(f"  delivery log  {mask_url(setup.store_url)}")
    config = setup.config_path
    sender = next(iter(setup.api_keys))
    print("next steps:")
    print(f"  lgsp config check --config {config}")
    print(f"  lgsp run --config {config}")
    print(f"  lgsp send FILE --config {config} --as {sender}")
    print(f"  lgsp log list --config {config}")
