"""The shapes ``lgsp GROUP COMMAND`` subcommands share: the group, a command on the store."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from gateway.cli import Handler
from gateway.cli.ops_commands import add_config_option
from gateway.store import DeliveryLog

_T = TypeVar("_T")


def command_group(
    commands: argparse._SubParsersAction[Any], name: str, help_text: str
) -> argparse._SubParsersAction[Any]:
    """``lgsp NAME``, which requires one of the commands added to what this returns (their name
    lands in ``args.NAME_command``)."""
    group: argparse.ArgumentParser = commands.add_parser(name, help=help_text)
    return group.add_subparsers(dest=f"{name}_command", required=True, parser_class=type(group))


def configured_command(
    sub: argparse._SubParsersAction[Any], name: str, handler: Handler, **parser: Any
) -> argparse.ArgumentParser:
    """A command of a group that reads the settings (``--config``) and runs ``handler``;
    ``parser`` are ``add_parser``'s keywords (``help``, ``description``)."""
    command: argparse.ArgumentParser = sub.add_parser(name, **parser)
    add_config_option(command)
    command.set_defaults(handler=handler)
    return command


def with_log(url: str, work: Callable[[DeliveryLog], Awaitable[_T]]) -> _T:
    """Open the store at ``url`` (migrated if needed), run ``work`` on it and close it again."""

    async def run() -> _T:
        log = await DeliveryLog.open(url)
        try:
            return await work(log)
        finally:
            await log.aclose()

    return asyncio.run(run())
