"""AMQP message properties whose content-header encoding skips pamqp's generic walk (same bytes).

pamqp marshals ``Basic.Properties`` property by property through its type tables, and a field
table value by value through ``isinstance`` chains: about 14 µs for a delivery message's five
properties and six ``x-lgsp-*`` headers, on every publish. ``Properties.marshal`` writes the
shape the broker's publisher builds (``content_type``, ``headers``, ``delivery_mode``,
``message_id``, ``timestamp``; header values ``str`` or ``int``) directly, in pamqp's layout
(flags, short strings, the table with its keys sorted, the smallest integer type, seconds since
the epoch); any other shape or value, and pamqp's deprecated-RabbitMQ integer mode, goes to
pamqp's own ``marshal``, which also raises pamqp's errors. ``tests/broker/test_properties.py``
holds the bytes to pamqp's.
"""

from __future__ import annotations

import struct
from datetime import datetime

from pamqp import commands
from pamqp import encode as pamqp_encode

_FLAGS = commands.Basic.Properties.flags
_OUR_FLAGS = struct.pack(
    ">H",
    _FLAGS["content_type"]
    | _FLAGS["headers"]
    | _FLAGS["delivery_mode"]
    | _FLAGS["message_id"]
    | _FLAGS["timestamp"],
)
# the properties this fast path never writes: it leaves a message that sets one to pamqp
_UNSET = (
    "content_encoding",
    "priority",
    "correlation_id",
    "reply_to",
    "expiration",
    "message_type",
    "user_id",
    "app_id",
)
_LONG = struct.Struct(">I")
_TIMESTAMP = struct.Struct(">Q")
_LONGEST = 2**32 - 1  # a long string's length field
# pamqp's ``table_integer``: the smallest type that holds the value, in this order
_INTEGERS = (
    (-128, 127, b"b", struct.Struct(">b")),
    (-32768, 32767, b"s", struct.Struct(">h")),
    (0, 65535, b"u", struct.Struct(">H")),
    (-(2**31), 2**31 - 1, b"I", struct.Struct(">i")),
    (0, 2**32 - 1, b"i", struct.Struct(">I")),
    (-(2**63), 2**63 - 1, b"l", struct.Struct(">q")),
)


def _names(*keys: str) -> dict[str, bytes]:
    return {key: b"%c%b" % (len(key), key.encode("ascii")) for key in keys}


# the publisher's header names, encoded once (any other name is encoded when met)
_NAMES = _names(
    "x-lgsp-document-pk",
    "x-lgsp-recipient",
    "x-lgsp-method",
    "x-lgsp-attempt",
    "x-lgsp-attempts-seen",
    "x-lgsp-claim-check-sha256",
    "x-lgsp-published-at",
    "x-lgsp-dead-reason",
    "x-lgsp-attempts",
    "x-lgsp-dead-at",
)


class Properties(commands.Basic.Properties):
    """``Basic.Properties`` (aiormq's ``spec.Basic.Properties``) with a faster ``marshal`` for
    the broker's own messages; every other use is pamqp's."""

    def marshal(self) -> bytes:
        fast = _marshal(self)
        return fast if fast is not None else super().marshal()


def _short(text: object) -> bytes | None:
    if type(text) is not str or not text:
        return None
    raw = text.encode("utf-8")
    return b"%c%b" % (len(raw), raw) if len(raw) <= 255 else None


def _marshal(p: Properties) -> bytes | None:
    """pamqp's bytes for the publisher's shape, or None for pamqp to marshal."""
    if not (
        p.content_encoding is None
        and p.priority is None
        and p.correlation_id is None
        and p.reply_to is None
        and p.expiration is None
        and p.message_type is None
        and p.user_id is None
        and p.app_id is None
        and p.cluster_id == ""
        and not pamqp_encode.DEPRECATED_RABBITMQ_SUPPORT
    ):
        return None
    content_type = _short(p.content_type)
    message_id = _short(p.message_id)
    table = _table(p.headers)
    mode, at = p.delivery_mode, p.timestamp
    if content_type is None or message_id is None or table is None or mode not in (1, 2):
        return None
    if type(mode) is not int or type(at) is not datetime or at.utcoffset() is None:
        return None
    return b"%b%b%b%b%c%b%b" % (
        _OUR_FLAGS,
        content_type,
        _LONG.pack(len(table)),
        table,
        mode,
        message_id,
        _TIMESTAMP.pack(int(at.timestamp())),
    )


def _table(headers: object) -> bytes | None:
    """A non-empty field table of text and integer values (its keys sorted), or None."""
    if type(headers) is not dict or not headers:
        return None
    try:
        keys = sorted(headers)
    except TypeError:  # keys of several types: pamqp's to refuse
        return None
    parts = []
    for key in keys:
        name = _NAMES.get(key) or _name(key)
        value = headers[key]
        entry: bytes | None = None
        if name is None:
            pass
        elif type(value) is str:
            raw = value.encode("utf-8")
            if len(raw) <= _LONGEST:
                entry = b"%bS%b%b" % (name, _LONG.pack(len(raw)), raw)
        elif type(value) is int:
            encoded = _integer(value)
            if encoded is not None:
                entry = name + encoded
        if entry is None:
            return None
        parts.append(entry)
    return b"".join(parts)


def _name(key: object) -> bytes | None:
    """A field name as a short string (1 to 128 bytes of text), or None."""
    if type(key) is not str:
        return None
    raw = key.encode("utf-8")
    return b"%c%b" % (len(raw), raw) if 0 < len(raw) <= 128 else None


def _integer(value: int) -> bytes | None:
    for low, high, tag, packer in _INTEGERS:
        if low <= value <= high:
            return tag + packer.pack(value)
    return None
