"""The broker's AMQP properties marshal to pamqp's bytes, whatever they hold (pamqp: reference)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pamqp import commands, encode, frame
from pamqp.header import ContentHeader

from gateway.broker import DeliveryMessage
from gateway.broker.messages import H_ATTEMPT, H_DOCUMENT_PK, H_METHOD, H_RECIPIENT
from gateway.broker.properties import Properties

SHA = "ab" * 32
UTF8 = st.text(st.characters(codec="utf-8"), max_size=40)
NAMES = st.one_of(
    st.sampled_from([H_DOCUMENT_PK, H_RECIPIENT, H_METHOD, H_ATTEMPT, "x-lgsp-dead-reason"]),
    UTF8,
    st.text(min_size=120, max_size=140),  # around the 128-byte limit of a field name
)
INTEGERS = st.one_of(
    st.integers(-130, 130),
    st.sampled_from(
        [
            -32769,
            -32768,
            32767,
            32768,
            65535,
            65536,
            -(2**31) - 1,
            -(2**31),
            2**31 - 1,
            2**31,
            2**32 - 1,
            2**32,
            -(2**63),
            2**63 - 1,
            2**63,
            -(2**63) - 1,
        ]
    ),
    st.integers(),
)
VALUES = st.one_of(UTF8, INTEGERS, st.booleans(), st.floats(allow_nan=False), st.none())
ZONES = st.sampled_from([UTC, timezone(timedelta(hours=7)), timezone(timedelta(hours=-3)), None])
TIMESTAMPS = st.builds(
    lambda at, zone: at.replace(tzinfo=zone),
    st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1)),
    ZONES,
)


def _outcome(properties: commands.Basic.Properties) -> tuple[str, object]:
    """The marshalled bytes, or the kind of error raised (pamqp's own, from the fallback)."""
    try:
        return "bytes", properties.marshal()
    except Exception as exc:  # any error pamqp raises, compared by kind
        return "error", type(exc)


def _both(**kw: Any) -> tuple[tuple[str, object], tuple[str, object]]:
    return _outcome(Properties(**kw)), _outcome(commands.Basic.Properties(**kw))


@settings(max_examples=400, deadline=None)
@given(
    content_type=st.one_of(st.none(), st.just(""), UTF8, st.text(min_size=250, max_size=260)),
    message_id=st.one_of(st.none(), st.just(""), UTF8),
    headers=st.one_of(st.none(), st.dictionaries(NAMES, VALUES, max_size=8)),
    delivery_mode=st.sampled_from([None, 1, 2]),
    timestamp=st.one_of(st.none(), TIMESTAMPS),
)
def test_any_properties_marshal_as_pamqp_marshals_them(**kw: Any) -> None:
    mine, pamqps = _both(**kw)
    assert mine == pamqps


@settings(max_examples=200, deadline=None)
@given(
    headers=st.dictionaries(NAMES, st.one_of(UTF8, INTEGERS), min_size=1, max_size=8),
    message_id=UTF8.filter(bool),
    timestamp=TIMESTAMPS.filter(lambda at: at.tzinfo is not None),
)
def test_the_publishers_shape_marshals_as_pamqp_marshals_it(
    headers: dict[str, object], message_id: str, timestamp: datetime
) -> None:
    kw: dict[str, Any] = {
        "content_type": "application/xml",
        "delivery_mode": 2,
        "message_id": message_id,
        "timestamp": timestamp,
        "headers": headers,
    }
    mine, pamqps = _both(**kw)
    assert mine == pamqps


@pytest.mark.parametrize(
    "extra",
    [
        {"priority": 3},
        {"correlation_id": "c"},
        {"reply_to": "q"},
        {"expiration": "60000"},
        {"message_type": "t"},
        {"user_id": "guest"},
        {"app_id": "lgsp"},
        {"content_encoding": "gzip"},
        {"headers": {}},
        {"headers": {"x": {"nested": 1}}},
        {"headers": {"x": [1, "a"]}},
        {"headers": {"x": Decimal("1.5")}},
        {"headers": {"x": datetime(2026, 1, 1, tzinfo=UTC)}},
        {"headers": {"x": b"raw"}},
        {"headers": {1: "a", "b": 2}},
        {"timestamp": datetime(2026, 1, 1)},  # naive: pamqp takes it as UTC
        {"delivery_mode": True},
    ],
)
def test_other_shapes_are_pamqps(extra: dict[str, Any]) -> None:
    kw: dict[str, Any] = {
        "content_type": "application/xml",
        "delivery_mode": 2,
        "message_id": "m",
        "timestamp": datetime(2026, 1, 1, tzinfo=UTC),
        "headers": {"a": "b"},
    } | extra
    mine, pamqps = _both(**kw)
    assert mine == pamqps


def test_deprecated_rabbitmq_integers_are_pamqps() -> None:
    kw: dict[str, Any] = {"headers": {"n": 40000, "m": 3_000_000_000}, "message_id": "m"}
    kw |= {"content_type": "a", "delivery_mode": 2, "timestamp": datetime.now(UTC)}
    encode.support_deprecated_rabbitmq(True)
    try:
        mine, pamqps = _both(**kw)
    finally:
        encode.support_deprecated_rabbitmq(False)
    assert mine == pamqps
    assert _both(**kw)[0] != mine  # the mode does change the bytes


@pytest.mark.parametrize("claim", [False, True])
@pytest.mark.parametrize("seen", [None, 0, 300])
def test_a_delivery_messages_content_header_is_pamqps_byte_for_byte(
    claim: bool, seen: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    msg = DeliveryMessage(
        delivery_id="d-1",
        document_pk="doc-1",
        recipient="000.00.01.H56",
        method="push",
        attempt=1000,
        body=None if claim else b"<x/>",
        claim_check_sha256=SHA if claim else None,
        attempts_seen=seen,
        published_at=datetime(2026, 12, 5, 7, 0, 1, 999999, tzinfo=UTC),
    )
    ours = msg.amqp_properties()
    assert type(ours) is Properties
    # what the publisher sent before the fast path: pamqp's own properties, the same values
    reference = commands.Basic.Properties(
        content_type="application/xml",
        delivery_mode=2,
        message_id="d-1",
        timestamp=msg.published_at,
        headers=msg.amqp_headers(),
    )
    assert ours == reference
    header = frame.marshal(ContentHeader(0, 4, reference), 1)
    assert frame.marshal(ContentHeader(0, 4, ours), 1) == header
    # the fast path itself wrote those bytes: pamqp's walk is not reached for this shape
    monkeypatch.setattr(commands.Basic.Properties, "marshal", _refuse)
    assert frame.marshal(ContentHeader(0, 4, ours), 1) == header
    _, _, decoded = frame.unmarshal(header)
    assert isinstance(decoded, ContentHeader)
    assert decoded.properties.headers == msg.amqp_headers()


def _refuse(_self: object) -> bytes:
    raise AssertionError("pamqp's marshal was called")
