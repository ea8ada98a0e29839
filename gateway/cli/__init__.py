"""The ``lgsp`` command: argument parsing, dispatch, and one-line errors with exit codes 1 or 2.

A refusal is one line on stderr, ``lgsp: CODE: message``; a command given ``--json`` also prints
the full problem document (RFC 9457, as the HTTP API answers it) on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from gateway.core.errors import ConfigError, LgspError
from gateway.core.resources import distribution_version

Handler = Callable[[argparse.Namespace], int]

EXIT_FAILED = 1  # the input was refused (bad package, failed verification, refused request)
EXIT_USAGE = 2  # the command line or the configuration is wrong
DEBUG_ENV = "LGSP_DEBUG"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line, not a usage dump."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"lgsp: error: {message} (see 'lgsp --help')\n")
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    from gateway.cli import (  # noqa: PLC0415 (keeps --help fast)
        archive_commands,
        console_commands,
        directory_commands,
        document_commands,
        errors_commands,
        ops_commands,
        pki_commands,
        push_commands,
        service_commands,
        sim_commands,
    )

    parser = _Parser(prog="lgsp", description="Provincial document exchange gateway (LGSP).")
    parser.add_argument(
        "--version",
        action="version",
        version=f"lgsp {distribution_version()}",
        help="print the installed version and exit",
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    pki_commands.register(commands)
    document_commands.register(commands)
    ops_commands.register(commands)  # config check, demo init, log list|show|tail
    service_commands.register(commands)  # run, send
    push_commands.register(commands)  # verify-push
    errors_commands.register(commands)  # errors
    sim_commands.register(commands)  # sim national
    console_commands.register(commands)  # admin hash-password
    directory_commands.register(commands)  # directory import|export
    archive_commands.register(commands)  # archive verify|checkpoint|bundle|verify-bundle
    return parser


def _report(exc: BaseException) -> int:
    """One line on stderr for an error, and the exit code it deserves."""
    if isinstance(exc, LgspError):
        sys.stderr.write(f"lgsp: {exc}\n")
        return EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_FAILED
    if isinstance(exc, FileNotFoundError):
        sys.stderr.write(f"lgsp: error: no such file: {exc.filename}\n")
        return EXIT_USAGE
    if isinstance(exc, PermissionError):
        sys.stderr.write(f"lgsp: error: permission denied: {exc.filename}\n")
        return EXIT_USAGE
    if isinstance(exc, OSError):
        sys.stderr.write(f"lgsp: error: {exc.strerror or exc}\n")
        return EXIT_FAILED
    if isinstance(exc, KeyboardInterrupt):
        sys.stderr.write("lgsp: interrupted\n")
        return 130
    sys.stderr.write(
        f"lgsp: internal error: {type(exc).__name__}: {exc} (set {DEBUG_ENV}=1 for the traceback)\n"
    )
    return EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # `lgsp … | head`: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that the final flush does not fail again
        return EXIT_FAILED


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except BrokenPipeError:
        raise
    except LgspError as exc:
        if getattr(args, "json", False):
            print(json.dumps(exc.to_problem(), ensure_ascii=False, indent=2))
        return _report(exc)
    except (OSError, KeyboardInterrupt) as exc:
        return _report(exc)
    except Exception as exc:  # a bug: still one line, unless debugging
        if os.environ.get(DEBUG_ENV):
            raise
        return _report(exc)
