"""Configurable limits the hardened parser enforces on every package."""

from __future__ import annotations

from dataclasses import dataclass, fields

from gateway.errors import ConfigError


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
