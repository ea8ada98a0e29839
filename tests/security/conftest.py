"""Security tests reuse the end-to-end kit of tests/service (gateway, push receiver)."""

from service.service_kit import push_receiver, start_gateway

__all__ = ["push_receiver", "start_gateway"]
