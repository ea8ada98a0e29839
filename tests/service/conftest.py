"""Fixtures of the end-to-end tests (defined in ``service_kit``)."""

from service_kit import push_receiver, start_gateway

__all__ = ["push_receiver", "start_gateway"]
