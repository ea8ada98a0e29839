"""Fixtures of the national-protocol tests (defined in ``national_kit``)."""

from national_kit import http_session, java_sdk, national_sim

__all__ = ["http_session", "java_sdk", "national_sim"]
