"""``lgsp sim …``: simulators of the platforms the gateway talks to (``lgsp sim national``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from pathlib import Path
from typing import Any

DEFAULT_NATIONAL_PORT = 8090


def register(commands: argparse._SubParsersAction[Any]) -> None:
    group = commands.add_parser("sim", help="run a simulator of a national platform")
    sims = group.add_subparsers(dest="sim_command", required=True, parser_class=type(group))
    _register_national(sims)


def _register_national(sims: argparse._SubParsersAction[Any]) -> None:
    national = sims.add_parser(
        "national", help="the national document exchange platform (VDXP REST, HMAC headers)",
        description="Serve the national platform's protocol under /XrdAdapter/adapter/ with its "
                    "state in SQLite. Systems come from --config (TOML [[system]] tables: "
                    "system_id, secret, organ_ids, timestamp_window_s) and/or --system flags.",
    )
    national.add_argument("--host", default="127.0.0.1")
    national.add_argument("--port", type=int, default=DEFAULT_NATIONAL_PORT,
                          help=f"HTTP port (default {DEFAULT_NATIONAL_PORT})")
    national.add_argument("--db", type=Path, default=Path("national-sim.db"), metavar="PATH",
                          help="SQLite file of queues and agencies (default ./national-sim.db)")
    national.add_argument("--config", type=Path, default=None, metavar="TOML")
    national.add_argument("--system", action="append", default=[],
                          metavar="ID:SECRET:ORGAN[,ORGAN…]",
                          help="a connected system and the OrganIds (or patterns like *.H41) "
                               "it owns; repeatable")
    national.set_defaults(handler=_national)


def _national(args: argparse.Namespace) -> int:
    from gateway.errors import ConfigError  # noqa: PLC0415 (keeps --help fast)
    from gateway.national.simulator import load_sim_config, serve  # noqa: PLC0415

    config = load_sim_config(args.config, args.system)
    if not config.systems:
        raise ConfigError("no systems: give --config TOML or --system ID:SECRET:ORGANS",
                          code="config.sim_system")
    db = args.db.resolve()
    db.parent.mkdir(parents=True, exist_ok=True)
    print(f"national simulator on http://{args.host}:{args.port}/XrdAdapter/adapter "
          f"({len(config.systems)} systems, state in {db})", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(config, db, args.host, args.port))
    return 0
