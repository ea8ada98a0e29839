"""``lgsp sim …``: simulators of the platforms the gateway talks to (``lgsp sim national``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from pathlib import Path
from typing import Any

DEFAULT_NATIONAL_PORT = 8090
DEFAULT_SOAP_PORT = 8091


def register(commands: argparse._SubParsersAction[Any]) -> None:
    group = commands.add_parser("sim", help="run a simulator of a national platform")
    sims = group.add_subparsers(dest="sim_command", required=True, parser_class=type(group))
    _register_national(sims)
    _register_soap(sims)


def _register_national(sims: argparse._SubParsersAction[Any]) -> None:
    national = sims.add_parser(
        "national",
        help="the national document exchange platform (VDXP REST, HMAC headers)",
        description="Serve the national platform's protocol under /XrdAdapter/adapter/ with its "
        "state in SQLite. Systems come from --config (TOML [[system]] tables: "
        "system_id, secret, organ_ids, timestamp_window_s) and/or --system flags.",
    )
    national.add_argument(
        "--host", default="127.0.0.1", help="listen on this address (default 127.0.0.1)"
    )
    national.add_argument(
        "--port",
        type=int,
        default=DEFAULT_NATIONAL_PORT,
        help=f"HTTP port (default {DEFAULT_NATIONAL_PORT})",
    )
    national.add_argument(
        "--db",
        type=Path,
        default=Path("national-sim.db"),
        metavar="PATH",
        help="SQLite file of queues and agencies (default ./national-sim.db)",
    )
    national.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="TOML",
        help="the connected systems: [[system]] tables (system_id, secret, "
        "organ_ids), e.g. the demo's national-sim.toml",
    )
    national.add_argument(
        "--system",
        action="append",
        default=[],
        metavar="ID:SECRET:ORGAN[,ORGAN…]",
        help="a connected system and the OrganIds (or patterns like *.H41) it owns; repeatable",
    )
    national.set_defaults(handler=_national)


def _national(args: argparse.Namespace) -> int:
    from gateway.core.errors import ConfigError  # noqa: PLC0415 (keeps --help fast)
    from gateway.national.simulator import load_sim_config, serve  # noqa: PLC0415

    config = load_sim_config(args.config, args.system)
    if not config.systems:
        raise ConfigError(
            "no systems: give --config TOML or --system ID:SECRET:ORGANS", code="config.sim_system"
        )
    db = args.db.resolve()
    db.parent.mkdir(parents=True, exist_ok=True)
    print(
        f"national simulator on http://{args.host}:{args.port}/XrdAdapter/adapter "
        f"({len(config.systems)} systems, state in {db})",
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(config, db, args.host, args.port))
    return 0


def _register_soap(sims: argparse._SubParsersAction[Any]) -> None:
    soap = sims.add_parser(
        "soap",
        help="a sample national SOAP service (X-Road headers), served from its WSDL",
        description="Serve the WSDL's service: GET <path>?wsdl, POST SOAP calls. Behaviour per "
        "DocumentId via POST /_sim/script {document_id, behaviours}, default via "
        "POST /_sim/default {behaviour}; GET /_sim/calls lists the calls.",
    )
    soap.add_argument(
        "--host", default="127.0.0.1", help="listen on this address (default 127.0.0.1)"
    )
    soap.add_argument(
        "--port",
        type=int,
        default=DEFAULT_SOAP_PORT,
        help=f"HTTP port (default {DEFAULT_SOAP_PORT})",
    )
    soap.add_argument(
        "--wsdl",
        type=Path,
        default=None,
        metavar="PATH",
        help="the service's WSDL (default schemas/wsdl/document-service.wsdl)",
    )
    soap.add_argument(
        "--behaviour",
        default="ok",
        choices=["ok", "server_fault", "client_fault", "unavailable", "slow"],
        help="the answer when no script applies (default ok)",
    )
    soap.add_argument(
        "--slow-s", type=float, default=30.0, help="how long a 'slow' answer takes (default 30)"
    )
    soap.set_defaults(handler=_soap)


def _soap(args: argparse.Namespace) -> int:
    from gateway.demo import soap_sim  # noqa: PLC0415 (keeps --help fast)

    def ready(url: str) -> None:
        print(f"SOAP simulator on {url} (WSDL at {url}?wsdl)", flush=True)

    wsdl = args.wsdl.resolve() if args.wsdl else soap_sim.default_wsdl()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            soap_sim.serve(
                args.host,
                args.port,
                wsdl=wsdl,
                default=soap_sim.Behaviour(args.behaviour),
                slow_s=args.slow_s,
                ready=ready,
            )
        )
    return 0
