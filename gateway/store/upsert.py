"""One upsert (``insert ... on conflict do update``) for either store dialect."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Column, Insert, Table
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
