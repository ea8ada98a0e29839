"""Configurable limits the hardened parser enforces on every package."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ParseLimits:
    """Upper bounds on an incoming package; exceeding any one is a ``LimitError``."""

    max_bytes: int = 64 * 1024 * 1024
    max_depth: int = 64
    max_elements: int = 100_000
    max_attachments: int = 200
    max_attachment_bytes: int = 48 * 1024 * 1024  # decoded size of one attachment


DEFAULT_LIMITS = ParseLimits()
