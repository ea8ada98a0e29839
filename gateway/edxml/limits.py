"""Configurable limits on every package, and their enforcement on a body before it is parsed."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Protocol

from gateway.core.errors import ConfigError, LimitError, PackageError

READ_CHUNK_BYTES = 64 * 1024
"""Bytes ``read_limited`` asks the stream for at a time."""


@dataclass(frozen=True, slots=True)
class ParseLimits:
    """Upper bounds on an incoming package; exceeding any one is a ``LimitError``."""

    max_bytes: int = 64 * 1024 * 1024
    max_depth: int = 64
    max_elements: int = 100_000
    max_attachments: int = 200
    max_attachment_bytes: int = 48 * 1024 * 1024  # decoded size of one attachment

    def __post_init__(self) -> None:
        for limit in fields(self):
            value = getattr(self, limit.name)
            minimum = 0 if limit.name == "max_attachments" else 1
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ConfigError(
                    f"parse limit {limit.name} must be an integer >= {minimum}, not {value!r}",
                    code="config.parse_limits",
                )


DEFAULT_LIMITS = ParseLimits()


class ByteStream(Protocol):
    """What ``read_limited`` needs from a body stream (aiohttp's ``StreamReader`` fits)."""

    async def read(self, n: int) -> bytes:
        """Up to ``n`` bytes; ``b""`` at the end of the stream."""
        ...


def check_size(length: int | None, limits: ParseLimits = DEFAULT_LIMITS) -> None:
    """Refuse a declared body length (e.g. Content-Length) over ``limits.max_bytes``.

    ``None`` (length unknown) passes: ``read_limited`` then enforces the limit while reading.
    """
    if length is None:
        return
    if length < 0:
        raise PackageError(f"invalid declared length {length}", code="edxml.bad_length")
    if length > limits.max_bytes:
        raise _too_large(length, limits)


async def read_limited(
    stream: ByteStream,
    limits: ParseLimits = DEFAULT_LIMITS,
    *,
    declared_length: int | None = None,
    chunk_bytes: int = READ_CHUNK_BYTES,
) -> bytes:
    """Read a whole body, refusing it as soon as it exceeds ``limits.max_bytes``.

    At most ``max_bytes + chunk_bytes`` are ever read, so an endless or huge body costs bounded
    memory and the refusal comes before the rest is received.
    """
    check_size(declared_length, limits)
    chunks: list[bytes] = []
    size = 0
    while chunk := await stream.read(chunk_bytes):
        size += len(chunk)
        if size > limits.max_bytes:
            raise _too_large(size, limits, at_least=True)
        chunks.append(chunk)
    return b"".join(chunks)  # one copy (none for a body read in one chunk)


def _too_large(size: int, limits: ParseLimits, *, at_least: bool = False) -> LimitError:
    more = "more than " if at_least else ""
    return LimitError(
        f"the package is {more}{size} bytes, over the limit of {limits.max_bytes}",
        code="edxml.too_large",
    )
