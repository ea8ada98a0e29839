"""Fixtures of the end-to-end tests (defined in ``service_kit``)."""

from service_kit import lgsp_processes, lgsp_run, push_receiver, start_gateway

__all__ = ["lgsp_processes", "lgsp_run", "push_receiver", "start_gateway"]
