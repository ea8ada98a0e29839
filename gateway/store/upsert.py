"""``INSERT … ON CONFLICT`` for either store dialect: one upsert, and statements built once per
dialect (``by_dialect``, ``for_dialect``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Column, Connection, Insert, Table
from sqlalchemy.dialects import postgresql, sqlite


def upsert(
    dialect: str,
    table: Table,
    values: Mapping[str, Any],
    key: Sequence[Column[Any]],
    set_: Mapping[str, Any],
) -> Insert:
    """Insert ``values`` into ``table``; where a row with the same ``key`` columns is there
    already, update it with ``set_`` instead. ``dialect`` is ``Engines.dialect``: PostgreSQL's
    statement for ``"postgresql"``, SQLite's otherwise (both spell the clause the same)."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(table).values(values).on_conflict_do_update(index_elements=key, set_=set_)


def by_dialect(build: Callable[[Callable[..., Any]], Any]) -> dict[str, Any]:
    """A statement built once for each dialect's ``INSERT`` (``ON CONFLICT`` is dialect SQL)."""
    return {"postgresql": build(postgresql.insert), "sqlite": build(sqlite.insert)}


def for_dialect(conn: Connection, statements: dict[str, Any]) -> Any:
    """The statement of ``by_dialect`` for ``conn``'s dialect."""
    return statements["postgresql" if conn.dialect.name == "postgresql" else "sqlite"]
