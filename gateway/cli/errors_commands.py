"""``lgsp errors``: every stable error code in the source, its HTTP status and where it is raised.

The list is read from the installed modules' source (``ast``): each ``code="…"`` given to an
error class of ``gateway.errors``' tree, and each class's ``default_code``; the status comes from
the class (or the nearest base that sets ``http_status``). The integration guide's table is this
command's ``--markdown`` output (a test keeps the two equal).
"""

from __future__ import annotations

import argparse
import ast
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import adapters.base
import gateway.core.errors

# Codes answered outside the error classes (gateway/api/middleware.py maps aiohttp's own errors).
HTTP_EXTRAS = (("not_found.route", 404), ("http.method_not_allowed", 405))
# The operator's (CLI exit 2) and the console's (HTML pages), not an API caller's.
SKIPPED_PREFIXES = ("config.", "console.")


@dataclass(frozen=True, slots=True)
class ErrorCode:
    code: str
    http_status: int
    retryable: bool
    where: str  # the modules raising it, relative to the package roots


@dataclass(frozen=True, slots=True)
class _Class:
    bases: tuple[str, ...]
    http_status: int | None
    retryable: bool | None
    default_code: str | None
    module: str


def _roots() -> list[Path]:
    # From a module's file: a test runner may see ``adapters`` as a namespace package too.
    return [Path(gateway.core.errors.__file__).parents[1], Path(adapters.base.__file__).parent]


def _modules() -> Iterator[tuple[str, ast.Module]]:
    for root in _roots():
        for path in sorted(root.rglob("*.py")):
            name = str(path.relative_to(root.parent))
            yield name, ast.parse(path.read_text(encoding="utf-8"), filename=name)


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    return node.attr if isinstance(node, ast.Attribute) else None


def _constant(cls: ast.ClassDef, attr: str) -> object:
    for stmt in cls.body:
        target = (
            stmt.targets[0]
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
            else stmt.target
            if isinstance(stmt, ast.AnnAssign)
            else None
        )
        value = stmt.value if isinstance(stmt, ast.Assign | ast.AnnAssign) else None
        if isinstance(target, ast.Name) and target.id == attr and isinstance(value, ast.Constant):
            return value.value
    return None


def _classes(modules: list[tuple[str, ast.Module]]) -> dict[str, _Class]:
    found: dict[str, _Class] = {}
    for module, tree in modules:
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                status, retry, code = (
                    _constant(node, a) for a in ("http_status", "retryable", "default_code")
                )
                found[node.name] = _Class(
                    tuple(n for n in map(_name, node.bases) if n),
                    status if isinstance(status, int) else None,
                    retry if isinstance(retry, bool) else None,
                    code if isinstance(code, str) else None,
                    module,
                )
    return found


def _inherited(classes: dict[str, _Class], name: str, attr: str) -> Any:
    seen = set()
    todo = [name]
    while todo:
        current = todo.pop(0)
        if current in seen or current not in classes:
            continue
        seen.add(current)
        value = getattr(classes[current], attr)
        if value is not None:
            return value
        todo.extend(classes[current].bases)
    return None


def _is_error(classes: dict[str, _Class], name: str, seen: frozenset[str] = frozenset()) -> bool:
    """Whether ``name`` is ``LgspError`` or derives from it."""
    if name == "LgspError":
        return True
    info = classes.get(name)
    if info is None or name in seen:
        return False
    return any(_is_error(classes, base, seen | {name}) for base in info.bases)


def _calls(tree: ast.Module) -> Iterator[tuple[ast.Call, str]]:
    """Every call with the class it constructs: ``Name(...)``, ``mod.Name(...)``, and
    ``super().__init__(...)`` inside a class (that class)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Call) and _is_super_init(inner.func):
                    yield inner, node.name
        elif isinstance(node, ast.Call) and not _is_super_init(node.func):
            name = _name(node.func)
            if name is not None:
                yield node, name


def _is_super_init(func: ast.expr) -> bool:
    return (
        isinstance(func, ast.Attribute)
        and func.attr == "__init__"
        and isinstance(func.value, ast.Call)
        and _name(func.value.func) == "super"
    )


def _strings(node: ast.expr) -> list[str]:
    """The string constants ``node`` may be: a constant, or either branch of ``a if c else b``."""
    if isinstance(node, ast.IfExp):
        return _strings(node.body) + _strings(node.orelse)
    return [node.value] if isinstance(node, ast.Constant) and isinstance(node.value, str) else []


def error_codes() -> list[ErrorCode]:
    """Every code an error class is raised with, sorted; config.* left out."""
    modules = list(_modules())
    classes = _classes(modules)
    raised: dict[str, tuple[str, set[str]]] = {}  # code -> (class, modules)

    def add(code: str, cls: str, module: str) -> None:
        raised.setdefault(code, (cls, set()))[1].add(module)

    for name, info in classes.items():
        if info.default_code and _is_error(classes, name):
            add(info.default_code, name, info.module)
    for module, tree in modules:
        for node, cls in _calls(tree):
            if not _is_error(classes, cls):
                continue
            for kw in node.keywords:
                if kw.arg == "code":
                    for code in _strings(kw.value):
                        add(code, cls, module)
    out = [
        ErrorCode(
            code,
            int(_inherited(classes, cls, "http_status") or 500),
            bool(_inherited(classes, cls, "retryable")),
            ", ".join(sorted(where)),
        )
        for code, (cls, where) in raised.items()
        if not code.startswith(SKIPPED_PREFIXES) and code != "internal"
    ]
    out += [
        ErrorCode(code, status, False, "gateway/api/middleware.py") for code, status in HTTP_EXTRAS
    ]
    return sorted(out, key=lambda e: e.code)


def markdown_table(codes: list[ErrorCode]) -> str:
    lines = ["| code | HTTP | retry |", "|---|---:|:---:|"]
    lines += [f"| `{e.code}` | {e.http_status} | {'yes' if e.retryable else 'no'} |" for e in codes]
    return "\n".join(lines)


def register(commands: argparse._SubParsersAction[Any]) -> None:
    errors = commands.add_parser("errors", help="list the stable error codes and HTTP statuses")
    shape = errors.add_mutually_exclusive_group()
    shape.add_argument("--markdown", action="store_true", help="as a Markdown table")
    shape.add_argument("--json", action="store_true", help="as JSON")
    errors.set_defaults(handler=_errors)


def _errors(args: argparse.Namespace) -> int:
    codes = error_codes()
    if args.markdown:
        print(markdown_table(codes))
    elif args.json:
        print(json.dumps([asdict(e) for e in codes], indent=2))
    else:
        for e in codes:
            print(f"{e.code:<40} {e.http_status}  {'retry' if e.retryable else '-':<5}  {e.where}")
    return 0
