"""Observability tests reuse the end-to-end fixtures of tests/service (gateway, push receiver)."""

from service.conftest import push_receiver, start_gateway  # noqa: F401 (fixtures)
