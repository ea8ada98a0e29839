"""A bounded LRU of trust decisions: a certificate chain validated once is not validated again.

A decision is reused only for the same leaf and the same intermediates offered with it, within
the period in which every certificate of the validated chain is valid, before the earliest
``nextUpdate`` of the CRLs it was checked against (a CRL going stale must be logged, or refused),
and while the trust store holds the same CA and CRL files (the store clears the cache when a
reload finds a change). Refusals are not cached: they take the full path, with its diagnosis.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from dataclasses import dataclass

from cryptography import x509

from gateway.signatures.certificates import certificate_hash

DEFAULT_MAX_ENTRIES = 4096


class ChainKey:
    """A leaf and the intermediates offered with it, hashed once.

    cryptography hashes a ``Certificate`` afresh on every call (~5 µs on a slow core), and a
    cache hit looks its key up twice (``get``, ``move_to_end``); each certificate's hash is
    remembered for the object (``certificate_hash``: the same signer's certificates are the same
    objects, package after package). Equal when the certificates are equal (identical objects
    compare without asking cryptography); equal certificates hash alike, so equal keys do."""

    __slots__ = ("_hash", "parts")

    def __init__(self, leaf: x509.Certificate, offered: tuple[x509.Certificate, ...]) -> None:
        self.parts = (leaf, offered)
        self._hash = hash((certificate_hash(leaf), *map(certificate_hash, offered)))

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ChainKey) and self.parts == other.parts


@dataclass(frozen=True, slots=True)
class TrustDecision:
    """A validated chain (leaf first) and the instants between which it may be reused."""

    chain: tuple[x509.Certificate, ...]
    valid_from: dt.datetime
    valid_until: dt.datetime

    @classmethod
    def of(
        cls, chain: tuple[x509.Certificate, ...], crls_until: dt.datetime | None
    ) -> TrustDecision:
        until = min(c.not_valid_after_utc for c in chain)
        if crls_until is not None:
            until = min(until, crls_until)
        return cls(chain, max(c.not_valid_before_utc for c in chain), until)


@dataclass(frozen=True, slots=True)
class CacheInfo:
    hits: int
    misses: int
    size: int


class TrustCache:
    """Thread-safe (verification of large packages runs in threads); at most ``max_entries``."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[ChainKey, TrustDecision] = OrderedDict()
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0

    def get(self, key: ChainKey, at: dt.datetime) -> tuple[x509.Certificate, ...] | None:
        """The cached chain, if there is one still good ``at``; else None (a miss)."""
        with self._lock:
            decision = self._entries.get(key)
            if decision is None or not decision.valid_from <= at <= decision.valid_until:
                self._misses += 1
                return None
            self._entries.move_to_end(key)
            self._hits += 1
            return decision.chain

    def put(self, key: ChainKey, decision: TrustDecision) -> None:
        with self._lock:
            self._entries[key] = decision
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def info(self) -> CacheInfo:
        with self._lock:
            return CacheInfo(self._hits, self._misses, len(self._entries))
