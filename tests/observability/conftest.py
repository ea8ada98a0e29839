"""Observability tests reuse the end-to-end kit of tests/service (gateways, lgsp run, push)."""

from process_kit import lgsp_processes
from service.service_kit import lgsp_run, push_receiver, start_gateway

__all__ = ["lgsp_processes", "lgsp_run", "push_receiver", "start_gateway"]
