"""Node-failure tests on the session's 3-node RabbitMQ cluster (``cluster_site``, registered in
tests/conftest.py): each test's own names on it, and a push receiver."""

from __future__ import annotations

import secrets

import pytest
from service.service_kit import push_receiver

__all__ = ["push_receiver"]


@pytest.fixture
def cluster_prefix() -> str:
    """Names of the test's own exchange and queues on the cluster (never reused)."""
    return f"lgsp-cluster-{secrets.token_hex(4)}"
