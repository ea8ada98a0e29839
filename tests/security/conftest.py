"""Security tests reuse the end-to-end kit of tests/service and the SDK client of tests/national."""

from national.national_kit import http_session, java_sdk
from process_kit import lgsp_processes
from service.service_kit import push_receiver, start_gateway

__all__ = ["http_session", "java_sdk", "lgsp_processes", "push_receiver", "start_gateway"]
