"""``lgsp admin hash-password``: the ``password_hash`` of an ``[[admin.user]]`` console user."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from gateway.console.passwords import hash_password
from gateway.core.errors import ConfigError


def register(commands: argparse._SubParsersAction[Any]) -> None:
    group = commands.add_parser("admin", help="the admin web console")
    sub = group.add_subparsers(dest="admin_command", required=True, parser_class=type(group))
    hashing = sub.add_parser(
        "hash-password",
        help="print the password_hash of a console user (the password is read from the "
        "terminal, or from the first line of standard input)",
    )
    hashing.set_defaults(handler=_hash_password)


def _read_password() -> str:
    """Twice from the terminal (never echoed), or one line from a pipe."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise ConfigError("the passwords differ", code="config.password_mismatch")
    return first


def _hash_password(_args: argparse.Namespace) -> int:
    print(hash_password(_read_password()))
    return 0
