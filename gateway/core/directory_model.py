"""The participant directory's model: participants, their credentials, delivery and ACL, and the
immutable ``Directory`` snapshot that indexes them (files and live state: ``core.directory``).

API keys are stored only as SHA-256 hashes. That is enough here, unlike for passwords: the keys
are random 32-byte tokens made by :func:`generate_api_key`, so there is nothing to guess or
brute-force, and a slow hash (scrypt) would only slow down every authenticated request.
Because the input has 256 bits of entropy, looking the hash up in a dict leaks nothing usable
either: the timing reveals at most something about a SHA-256 digest, not about a valid key.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from yarl import URL

from gateway.core.errors import ConfigError
from gateway.core.methods import DeliveryMethod

API_KEY_PREFIX = "lgsp_"
DEFAULT_ALGORITHMS = ("rsa-sha256", "ecdsa-sha256")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class ParticipantKind(StrEnum):
    """Which bloc a participant belongs to."""

    PARTY = "party"
    STATE = "state"
    MASS = "mass"
    BUSINESS = "business"
    NATIONAL = "national"


class ParticipantLevel(StrEnum):
    """Administrative level of a participant."""

    NATIONAL = "national"
    PROVINCE = "province"
    DISTRICT = "district"
    COMMUNE = "commune"


@dataclass(frozen=True, slots=True)
class Delivery:
    method: DeliveryMethod = DeliveryMethod.MAILBOX
    url: str | None = None  # required for push


@dataclass(frozen=True, slots=True)
class Participant:
    """One agency, business or platform in the directory, keyed by its OrganId (or tax code).

    ``may_send_to``: None = every registered participant; otherwise OrganIds or shell-style
    patterns (``*.H56``). ``may_speak_for``: OrganIds or patterns this participant's credentials
    may submit documents for, in addition to its own (e.g. a provincial system for its units).
    Fingerprints are SHA-256 of the DER certificate, lowercase hex.
    """

    organ_id: str
    name: str
    kind: ParticipantKind = ParticipantKind.STATE
    parent: str | None = None
    level: ParticipantLevel | None = None
    api_key_hashes: tuple[str, ...] = ()
    client_cert_fingerprints: tuple[str, ...] = ()
    signing_cert_fingerprints: tuple[str, ...] = ()
    delivery: Delivery = field(default_factory=Delivery)
    allowed_algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    may_send_to: tuple[str, ...] | None = None
    may_speak_for: tuple[str, ...] = ()
    enabled: bool = True


def hash_api_key(api_key: str) -> str:
    """The stored form of an API key: SHA-256, lowercase hex."""
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


def generate_api_key() -> tuple[str, str]:
    """A new random API key and its hash: ``(plaintext for the participant, hash to store)``."""
    plaintext = API_KEY_PREFIX + secrets.token_urlsafe(32)
    return plaintext, hash_api_key(plaintext)


def normalize_fingerprint(fingerprint: str) -> str:
    """``AB:CD:…`` or ``abcd…`` as lowercase hex without separators."""
    return fingerprint.replace(":", "").strip().lower()


class Directory:
    """An immutable snapshot of the participants, indexed by OrganId and by credential."""

    __slots__ = ("_by_api_key", "_by_cert", "_by_id", "_national")

    def __init__(self, participants: Iterable[Participant] = ()) -> None:
        self._by_id: dict[str, Participant] = {}
        self._by_api_key: dict[str, str] = {}
        self._by_cert: dict[str, str] = {}
        for p in participants:
            self._index(p)
        self._national = next(
            (p for p in self if p.enabled and p.kind is ParticipantKind.NATIONAL), None
        )

    def _index(self, p: Participant) -> None:
        _check_participant(p)
        if p.organ_id in self._by_id:
            raise _invalid(p.organ_id, "organ_id", "is listed twice")
        self._by_id[p.organ_id] = p
        for key_hash in p.api_key_hashes:
            if self._by_api_key.setdefault(key_hash, p.organ_id) != p.organ_id:
                raise _invalid(p.organ_id, "api_key_hashes", "an API key is already in use")
        for fp in p.client_cert_fingerprints:
            if self._by_cert.setdefault(fp, p.organ_id) != p.organ_id:
                raise _invalid(p.organ_id, "client_cert_fingerprints", "certificate already in use")

    @property
    def participants(self) -> tuple[Participant, ...]:
        return tuple(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[Participant]:
        return iter(self._by_id.values())  # never changes after __init__

    def __contains__(self, organ_id: object) -> bool:
        return organ_id in self._by_id

    def get(self, organ_id: str) -> Participant | None:
        """The participant with this OrganId, enabled or not."""
        return self._by_id.get(organ_id)

    def by_api_key(self, api_key: str) -> Participant | None:
        """The enabled participant holding this API key (plaintext, as the caller sent it)."""
        return self._enabled(self._by_api_key.get(hash_api_key(api_key)))

    def by_client_cert(self, fingerprint: str) -> Participant | None:
        """The enabled participant a TLS client certificate (SHA-256 fingerprint) belongs to."""
        return self._enabled(self._by_cert.get(normalize_fingerprint(fingerprint)))

    def _enabled(self, organ_id: str | None) -> Participant | None:
        p = self._by_id.get(organ_id) if organ_id is not None else None
        return p if p is not None and p.enabled else None

    def national(self) -> Participant | None:
        """The enabled national platform participant, if the directory has one."""
        return self._national

    def with_participant(self, participant: Participant) -> Directory:
        """A new snapshot with ``participant`` added, or replacing the one with its OrganId."""
        others = (p for p in self if p.organ_id != participant.organ_id)
        return Directory([*others, participant])


# --- validation ----------------------------------------------------------------------------------


def _invalid(organ_id: str, key: str, message: str) -> ConfigError:
    return ConfigError(f"participant {organ_id}: {key} {message}", path=f"{organ_id}.{key}")


def _check_participant(p: Participant) -> None:
    if not p.organ_id or p.organ_id != p.organ_id.strip():
        raise _invalid(p.organ_id, "organ_id", "must be non-empty, without surrounding spaces")
    for key, values in (
        ("api_key_hashes", p.api_key_hashes),
        ("client_cert_fingerprints", p.client_cert_fingerprints),
        ("signing_cert_fingerprints", p.signing_cert_fingerprints),
    ):
        if not all(_SHA256_HEX.fullmatch(v) for v in values):
            raise _invalid(p.organ_id, key, "must be SHA-256 values in lowercase hex")
    if p.delivery.method is DeliveryMethod.PUSH:
        if not _is_http_url(p.delivery.url):
            raise _invalid(
                p.organ_id,
                "delivery.url",
                "push delivery needs an http(s) URL with a host and a valid port",
            )
    elif p.delivery.method is DeliveryMethod.SOAP:
        if not p.delivery.url:
            raise _invalid(p.organ_id, "delivery.url", "soap delivery needs a SOAP route name")
    elif p.delivery.url is not None:
        raise _invalid(p.organ_id, "delivery.url", f"is not used by {p.delivery.method} delivery")
    if not p.allowed_algorithms:
        raise _invalid(p.organ_id, "allowed_algorithms", "must not be empty")


def _is_http_url(url: str | None) -> bool:
    """An absolute http(s) URL with a host, a valid port and no spaces."""
    if not url or url != url.strip() or any(c.isspace() for c in url):
        return False
    try:
        parsed = URL(url)
        port = parsed.port  # out of range: ValueError
    except (ValueError, TypeError):
        return False
    return parsed.scheme in ("http", "https") and bool(parsed.host) and port is not None


def participant_json(p: Participant) -> dict[str, Any]:
    """A participant as admins see it: credential fingerprints and counts, never secrets."""
    return {
        "organ_id": p.organ_id,
        "name": p.name,
        "kind": p.kind.value,
        "level": p.level.value if p.level else None,
        "parent": p.parent,
        "enabled": p.enabled,
        "api_keys": len(p.api_key_hashes),
        "api_key_fingerprints": [h[:12] for h in p.api_key_hashes],
        "client_cert_fingerprints": list(p.client_cert_fingerprints),
        "signing_cert_fingerprints": list(p.signing_cert_fingerprints),
        "delivery": {"method": p.delivery.method.value, "url": p.delivery.url},
        "allowed_algorithms": list(p.allowed_algorithms),
        "may_send_to": list(p.may_send_to) if p.may_send_to is not None else None,
        "may_speak_for": list(p.may_speak_for),
    }
