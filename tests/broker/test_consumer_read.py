"""A received message read straight from aiormq (``Received.of``) reads as aio-pika's
``IncomingMessage`` of the same delivery does: the same ``DeliveryMessage``, or the same reason."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aio_pika.message import IncomingMessage
from aiormq.abc import DeliveredMessage
from pamqp import commands, frame
from pamqp.header import ContentHeader

from gateway.broker import DeliveryMessage
from gateway.broker.consumer import Received
from gateway.core.errors import InputError

MakeMessage = Callable[..., DeliveryMessage]


class _Channel:
    is_closed = False


def _delivered(body: bytes, properties: commands.Basic.Properties, tag: int = 7) -> Any:
    """A delivery as aiormq hands it over: the content header as read from the wire."""
    wire = frame.marshal(ContentHeader(0, len(body), properties), 1)
    _, _, header = frame.unmarshal(wire)
    assert isinstance(header, ContentHeader)
    deliver = commands.Basic.Deliver("ctag", tag, True, "", "q")
    return DeliveredMessage(delivery=deliver, header=header, body=body, channel=_Channel())


def _reference(delivered: Any) -> tuple[DeliveryMessage | None, str | None]:
    try:
        return DeliveryMessage.from_amqp(IncomingMessage(delivered, no_ack=False)), None
    except InputError as exc:
        return None, exc.message


def _cases(make_message: MakeMessage) -> list[tuple[bytes, commands.Basic.Properties]]:
    valid = make_message(1)
    claim = make_message(2, body=None, claim_check_sha256="ab" * 32, attempts_seen=3)
    bad_attempt = valid.amqp_properties()
    assert bad_attempt.headers is not None
    bad_attempt.headers["x-lgsp-attempt"] = "one"
    no_recipient = valid.amqp_properties()
    assert no_recipient.headers is not None
    del no_recipient.headers["x-lgsp-recipient"]
    return [
        (valid.body or b"", valid.amqp_properties()),
        (b"", claim.amqp_properties()),
        (valid.body or b"", bad_attempt),
        (valid.body or b"", no_recipient),
        (b"", valid.amqp_properties()),  # neither body nor claim check
        (b"x", commands.Basic.Properties()),  # no headers, id or content type at all
        (b"x", commands.Basic.Properties(message_id="m", content_type="text/plain", headers={})),
    ]


@pytest.mark.parametrize("case", range(7))
def test_a_delivery_reads_as_aio_pika_reads_it(make_message: MakeMessage, case: int) -> None:
    body, properties = _cases(make_message)[case]
    delivered = _delivered(body, properties)

    received = Received.of(delivered)

    assert (received.message, received.malformed_reason) == _reference(delivered)
    assert received.message_id == IncomingMessage(delivered).message_id
    assert received.redelivered is True
    assert (received.raw.delivery_tag, received.raw.body) == (7, body)  # made on first use
    assert received.raw is received.raw


def test_the_cases_cover_good_and_malformed_messages(make_message: MakeMessage) -> None:
    readable = [_reference(_delivered(*case))[0] is not None for case in _cases(make_message)]
    assert readable == [True, True, False, False, False, False, False]
