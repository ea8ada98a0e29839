"""Fixtures shared by every test: reference samples, the run's broker names, empty stores, the
session's RabbitMQ cluster (``cluster_site``: the node-failure tests and the soak share it)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from cluster_site import cluster, rabbitmq_cluster
from samples import CONFORMANCE_DIR
from service_sites import PG_ADMIN_URL, BrokerSite
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.store import DeliveryLog

__all__ = ["cluster", "rabbitmq_cluster"]


@pytest.fixture(scope="session")
def conformance_dir() -> Path:
    assert CONFORMANCE_DIR.is_dir(), f"reference samples missing at {CONFORMANCE_DIR}"
    return CONFORMANCE_DIR


# --- RabbitMQ: one name prefix per test session, in the default vhost ------------------------


@pytest.fixture(scope="session")
def test_broker() -> Iterator[BrokerSite]:
    """The run's broker site; at the end (pass or fail) every queue and exchange named under its
    prefix is deleted, whichever test or process declared it. First, the names of runs on this
    machine that were killed before their teardown are swept."""
    site = BrokerSite.for_this_run()
    site.sweep_killed_runs()
    try:
        yield site
    finally:
        site.delete_declared()
        left = (list(site.list_queues()), site.list_exchanges())
        assert left == ([], []), f"broker names left behind by this run: {left}"


# --- Stores: every store test runs on SQLite and on PostgreSQL -----------------------------


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
    """The delivery log on that store, closed after the test."""
    opened = await DeliveryLog.open(store_url)
    try:
        yield opened
    finally:
        await opened.aclose()
