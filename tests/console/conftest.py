"""Console tests: the end-to-end gateway (on SQLite: the store has its own tests on both
backends), a push receiver, and Chromium (fixtures defined in ``service_kit``/``console_kit``)."""

from pathlib import Path

import pytest
from console_kit import browser, chromium_path, console_clients
from service.service_kit import push_receiver, start_gateway

__all__ = ["browser", "chromium_path", "console_clients", "push_receiver", "start_gateway"]


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/log.db"
