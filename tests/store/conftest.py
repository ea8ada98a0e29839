"""Fixtures of the delivery-log tests: every test runs against SQLite and PostgreSQL."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.edxml.model import PackageKind
from gateway.package_formats import PackageFormat
from gateway.store import DeliveryLog, NewDocument

# The `test` database is only used to create and drop one fresh database per test.
PG_ADMIN_URL = os.environ.get(
    "LGSP_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(params=["sqlite", "postgresql"])
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty store: a file under tmp_path, or a fresh PostgreSQL database dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/log.db"
        return
    name = f"lgsp_test_{secrets.token_hex(6)}"
    admin = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


@pytest.fixture
async def log(store_url: str) -> AsyncIterator[DeliveryLog]:
    opened = await DeliveryLog.open(store_url)
    try:
        yield opened
    finally:
        await opened.aclose()


def new_document(**overrides: Any) -> NewDocument:
    """A plausible intake record of a new document; override any field."""
    fields: dict[str, Any] = {
        "dedup_key": f"000.00.00.H56|{secrets.token_hex(4)}|0",
        "kind": PackageKind.DOCUMENT,
        "sender": "000.00.00.H56",
        "document_id": "000.00.00.H56,2024/05/02,123/UBND-VP",
        "format": PackageFormat.XML,
        "signer_fingerprint": "ab" * 32,
        "signer_subject": "CN=UBND tỉnh Thanh Hóa",
        "algorithm": "rsa-sha256",
        "caller": "client:000.00.00.H56",
        "received_at": datetime.now(UTC),
        "subject": "Công văn về việc triển khai",
    }
    fields.update(overrides)
    return NewDocument(**fields)


@pytest.fixture
def make_document() -> Callable[..., NewDocument]:
    return new_document
