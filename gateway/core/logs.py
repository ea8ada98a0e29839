"""structlog configuration: JSON lines, request/delivery ids bound through contextvars."""

from __future__ import annotations

import logging
import sys

import structlog

from gateway.core.redact import mask_urls_in

# Keys that must never reach a log line, whatever a caller binds by mistake.
_SECRET_KEYS = frozenset({"api_key", "authorization", "password", "secret", "token", "package"})


def _drop_secrets(
    _logger: object, _method: str, event_dict: structlog.types.EventDict
) -> structlog.types.EventDict:
    """Secret keys become ``***``; in every text value, URLs lose their passwords and secret
    query values (a connection error that quotes its URL, an endpoint in a message)."""
    for key in _SECRET_KEYS & event_dict.keys():
        event_dict[key] = "***"
    for key, value in event_dict.items():
        if isinstance(value, str) and "://" in value:
            event_dict[key] = mask_urls_in(value)
    return event_dict


def configure_logging(level: str = "info", *, json: bool = True) -> None:
    """Configure structlog once per process; every line carries the bound contextvars."""
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _drop_secrets,  # after the traceback is text: it may quote a URL too
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
