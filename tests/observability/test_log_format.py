"""``configure_logging``'s JSON lines agree with structlog's own JSON renderer, secrets masked."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr
from typing import Any

import structlog

from gateway.core.logs import _mask_secrets, configure_logging


class _Opaque:
    def __repr__(self) -> str:
        return "<opaque>"


class _Own:
    def __structlog__(self) -> str:
        return "own rendering"


def _reference(method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """The line structlog's stock processors and ``JSONRenderer`` write for ``event_dict``."""
    chain: list[Any] = [
        structlog.processors.add_log_level,
        structlog.processors.format_exc_info,
        lambda _l, _m, d: _mask_secrets(d),
        structlog.processors.JSONRenderer(ensure_ascii=False),
    ]
    value: Any = dict(event_dict)
    for processor in chain:
        value = processor(None, method, value)
    parsed: dict[str, Any] = json.loads(value)
    return parsed


@contextmanager
def _configured(level: str) -> Iterator[io.StringIO]:
    stream = io.StringIO()
    try:
        with redirect_stderr(stream):
            configure_logging(level, json=True)
            yield stream
    finally:
        structlog.reset_defaults()
        structlog.contextvars.clear_contextvars()


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_lines_are_what_structlogs_json_renderer_writes() -> None:
    cases: list[tuple[str, dict[str, Any]]] = [
        ("info", {"event": "request", "method": "POST", "status": 202, "duration_ms": 3.2}),
        ("info", {"event": "thử nghiệm", "sender": "000.00.01.H56", "n": None, "ok": True}),
        ("warning", {"event": "cannot_reach", "error": "at https://u:pw-secret@h/?token=t1"}),
        ("info", {"event": "bound", "token": "tok-secret", "password": "pw2", "x": [1, "a"]}),
        ("error", {"event": "odd", "value": _Opaque(), "own": _Own()}),
    ]
    with _configured("info") as stream:
        structlog.contextvars.bind_contextvars(request_id="r-1", document="d-1")
        log = structlog.get_logger("test.format")
        for method, kw in cases:
            getattr(log, method)(**kw)
    written = _lines(stream)
    assert len(written) == len(cases)
    for (method, kw), line in zip(cases, written, strict=True):
        assert line.pop("timestamp").endswith("Z")
        assert (line.pop("request_id"), line.pop("document")) == ("r-1", "d-1")
        assert line == _reference(method, kw)
    text = stream.getvalue()
    for secret in ("pw-secret", "t1", "tok-secret", "pw2"):
        assert secret not in text
    assert "https://u:***@h/?token=***" in text
    # a value JSON cannot encode is written as its repr, or its own ``__structlog__``
    assert written[4]["value"] == "<opaque>"
    assert written[4]["own"] == "own rendering"


def test_a_traceback_is_text_with_its_urls_masked() -> None:
    with _configured("info") as stream:
        log = structlog.get_logger("test.format")
        try:
            raise ConnectionError("amqp://gw:amqp-secret@mq/ refused")
        except ConnectionError:
            log.exception("broker_down")
    [line] = _lines(stream)
    assert line["level"] == "error"
    assert "ConnectionError: amqp://gw:***@mq/ refused" in line["exception"]
    assert "amqp-secret" not in stream.getvalue()


def test_the_level_filters_lines() -> None:
    with _configured("warning") as stream:
        log = structlog.get_logger("test.format")
        log.info("hidden")
        log.warning("shown")
    assert [line["event"] for line in _lines(stream)] == ["shown"]
