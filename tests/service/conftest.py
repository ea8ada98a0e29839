"""Fixtures of the end-to-end tests (defined in ``service_kit`` and ``process_kit``)."""

from process_kit import lgsp_processes
from service_kit import lgsp_run, push_receiver, start_gateway

__all__ = ["lgsp_processes", "lgsp_run", "push_receiver", "start_gateway"]
