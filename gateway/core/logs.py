"""structlog configuration: JSON lines, request/delivery ids bound through contextvars."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import structlog

from gateway.core.redact import mask_urls_in

# Keys that must never reach a log line, whatever a caller binds by mistake.
_SECRET_KEYS = frozenset({"api_key", "authorization", "password", "secret", "token", "package"})


def _mask_secrets(event_dict: structlog.types.EventDict) -> structlog.types.EventDict:
    """Secret keys become ``***``; in every text value, URLs lose their passwords and secret
    query values (a connection error that quotes its URL, an endpoint in a message)."""
    _mask_secret_keys(event_dict)
    for key, value in event_dict.items():
        if isinstance(value, str) and "://" in value:
            event_dict[key] = mask_urls_in(value)
    return event_dict


def _mask_secret_keys(event_dict: structlog.types.EventDict) -> None:
    if not _SECRET_KEYS.isdisjoint(event_dict):
        for key in _SECRET_KEYS & event_dict.keys():
            event_dict[key] = "***"


def _drop_secrets(
    _logger: object, _method: str, event_dict: structlog.types.EventDict
) -> structlog.types.EventDict:
    """``_mask_secrets`` as a processor (before the console renderer)."""
    return _mask_secrets(event_dict)


def _format_exc_info(
    logger: object, method: str, event_dict: structlog.types.EventDict
) -> structlog.types.EventDict:
    """structlog's ``format_exc_info``, called only for the lines that carry ``exc_info``."""
    if "exc_info" in event_dict:
        return structlog.processors.format_exc_info(logger, method, event_dict)
    return event_dict


def _json_fallback(obj: Any) -> Any:
    """What structlog's JSON renderer makes of a value ``json`` cannot encode."""
    try:
        return obj.__structlog__()
    except AttributeError:
        return repr(obj)


# One encoder for every line (``json.dumps`` with arguments builds a new one per call).
_ENCODER = json.JSONEncoder(ensure_ascii=False, default=_json_fallback)


def _render_json(_logger: object, _method: str, event_dict: structlog.types.EventDict) -> str:
    """The line as ``structlog.processors.JSONRenderer(ensure_ascii=False)`` writes it, with
    its secrets masked as ``_drop_secrets`` masks them. A text value holding a URL holds
    ``://``, which JSON writes as is: a line without it has no URL to mask, and only a line
    with it is masked value by value and rendered again."""
    _mask_secret_keys(event_dict)
    line = _ENCODER.encode(event_dict)
    if "://" not in line:
        return line
    return _ENCODER.encode(_mask_secrets(event_dict))


def configure_logging(level: str = "info", *, json: bool = True) -> None:
    """Configure structlog once per process; every line carries the bound contextvars.

    Loggers are cached on first use (a bound logger is not rebuilt for every line), so a
    later ``configure_logging`` reaches only the loggers not used yet: configure at start-up.
    """
    renderer: structlog.types.Processor = (
        _render_json if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _format_exc_info,
            # secrets are masked after the traceback is text (it may quote a URL too): by the
            # JSON renderer itself, or by ``_drop_secrets`` before the console one
            *(() if json else (_drop_secrets,)),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),  # one write per line
        cache_logger_on_first_use=True,
    )
