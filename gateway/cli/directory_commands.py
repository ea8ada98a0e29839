"""``lgsp directory import|export``: the participant directory between the store and TOML files.

The store is the directory every gateway and worker reads (they apply a change within 2 s); a
TOML file is how it is seeded, edited by hand, reviewed and backed up.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from gateway.cli.ops_commands import settings_from
from gateway.cli.subcommands import command_group, configured_command, with_log
from gateway.core.directory import Directory, dump_directory, load_directory, write_directory
from gateway.core.errors import ConfigError
from gateway.store.participants import (
    ImportReport,
    StoredDirectory,
    directory_differences,
    imported,
)

_T = TypeVar("_T")


def register(commands: argparse._SubParsersAction[Any]) -> None:
    sub = command_group(
        commands,
        "directory",
        "the participant directory: import a TOML file into the store, export it",
    )

    export = configured_command(
        sub,
        "export",
        _export,
        help="print the store's directory as TOML (or write it to a file)",
        description="The store's participant directory as a TOML file that `lgsp directory "
        "import` reads back identically (API keys as their hashes only).",
    )
    export.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="write FILE (atomically), not stdout"
    )

    imp = configured_command(
        sub,
        "import",
        _import,
        help="make a TOML file the store's directory (every process applies it within 2 s)",
        description="Replace the store's participant directory with FILE's: participants "
        "missing from FILE are removed (--merge: only add and replace those FILE lists). "
        "Every change is in the audit trail.",
    )
    imp.add_argument(
        "file", type=Path, nargs="?", metavar="FILE", help="default: the settings' directory.path"
    )
    imp.add_argument("--merge", action="store_true", help="keep participants FILE does not list")
    imp.add_argument("--dry-run", action="store_true", help="print the changes, make none")


def _with_directory(
    args: argparse.Namespace, work: Callable[[StoredDirectory], Awaitable[_T]]
) -> _T:
    """Open the store named by the settings (migrated if needed), run ``work``, close it."""
    return with_log(
        settings_from(args).store.url, lambda log: work(StoredDirectory(lambda: log.engines))
    )


def _no_directory() -> ConfigError:
    return ConfigError(
        "the store has no participant directory yet: the first `lgsp run` seeds it from "
        "directory.path, or `lgsp directory import FILE` loads one",
        code="config.directory_missing",
    )


def _export(args: argparse.Namespace) -> int:
    async def work(stored: StoredDirectory) -> tuple[int, Directory] | None:
        return await stored.read()

    found = _with_directory(args, work)
    if found is None:
        raise _no_directory()
    version, directory = found
    if args.output is None:
        sys.stdout.write(dump_directory(directory))
        return 0
    write_directory(args.output, directory)
    print(f"wrote {args.output}: {len(directory)} participants (directory version {version})")
    return 0


def _import(args: argparse.Namespace) -> int:
    path: Path = args.file or settings_from(args).directory.path
    directory = load_directory(path)  # refused as a whole when one entry is wrong
    actor = f"cli:{_user()}"

    async def work(stored: StoredDirectory) -> ImportReport:
        if args.dry_run:
            return await _planned(stored, directory, merge=args.merge)
        return await stored.import_directory(
            directory, actor=actor, source=str(path), merge=args.merge
        )

    report = _with_directory(args, work)
    verb = "would change" if args.dry_run else "imported"
    print(
        f"{verb} {path}: {len(report.added)} added, {len(report.changed)} changed, "
        f"{len(report.removed)} removed, {report.unchanged} unchanged"
        + ("" if args.dry_run else f" (directory version {report.version})")
    )
    for label, ids in (("added", report.added), ("changed", report.changed)):
        for organ_id in ids:
            print(f"  {label} {organ_id}")
    for organ_id in report.removed:
        print(f"  removed {organ_id}")
    if not args.dry_run:
        print("running gateways and workers apply it within 2 s")
    return 0


async def _planned(stored: StoredDirectory, directory: Directory, *, merge: bool) -> ImportReport:
    found = await stored.read()
    current = found[1] if found is not None else Directory()
    new = imported(current, directory, merge=merge)
    added, changed, removed = directory_differences(current, new)
    unchanged = len(new) - len(added) - len(changed)
    return ImportReport(added, changed, removed, unchanged, found[0] if found else 0)


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"
