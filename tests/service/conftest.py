"""Fixtures of the end-to-end tests (defined in ``service_kit``, ``process_kit``, ``sweep_kit``)."""

from process_kit import lgsp_processes
from service_kit import lgsp_run, push_receiver, start_gateway
from sweep_kit import broker

__all__ = ["broker", "lgsp_processes", "lgsp_run", "push_receiver", "start_gateway"]
