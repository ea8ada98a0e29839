"""The participant directory: who the participants are, their credentials, delivery and ACL.

API keys are stored only as SHA-256 hashes. That is enough here, unlike for passwords: the keys
are random 32-byte tokens made by :func:`generate_api_key`, so there is nothing to guess or
brute-force, and a slow hash (scrypt) would only slow down every authenticated request.
Because the input has 256 bits of entropy, looking the hash up in a dict leaks nothing usable
either: the timing reveals at most something about a SHA-256 digest, not about a valid key.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from yarl import URL

from gateway.core.config_files import read_toml
from gateway.core.errors import ConfigError, NotFoundError
from gateway.core.methods import DeliveryMethod

API_KEY_PREFIX = "lgsp_"
DEFAULT_ALGORITHMS = ("rsa-sha256", "ecdsa-sha256")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_E = TypeVar("_E", bound=StrEnum)


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


class DirectoryHolder:
    """The live directory of a running gateway: swap snapshots in without a restart.

    Readers take ``current`` once per request and use that snapshot throughout. Changes build a
    new snapshot and swap the reference, which is atomic on the event loop (no awaits inside).
    """

    __slots__ = ("_current", "_mtime_ns", "path")

    def __init__(self, directory: Directory, path: Path | None = None) -> None:
        self._current = directory
        self.path = path
        self._mtime_ns = self._file_mtime_ns()

    def _file_mtime_ns(self) -> int | None:
        try:
            return self.path.stat().st_mtime_ns if self.path else None
        except OSError:
            return None

    def reload_if_changed(self) -> bool:
        """Reload when the file changed on disk (another gateway or an admin edited it)."""
        mtime_ns = self._file_mtime_ns()
        if mtime_ns is None or mtime_ns == self._mtime_ns:
            return False
        self.reload()
        return True

    @property
    def current(self) -> Directory:
        return self._current

    def replace(self, new: Directory) -> None:
        self._current = new

    def reload(self) -> Directory:
        """Load ``path`` again (e.g. after an edit by hand) and make it current."""
        self._current = load_directory(self._require_path(None))
        self._mtime_ns = self._file_mtime_ns()
        return self._current

    def upsert(self, participant: Participant) -> Directory:
        self._current = self._current.with_participant(participant)
        return self._current

    def disable(self, organ_id: str) -> Directory:
        found = self._current.get(organ_id)
        if found is None:
            raise NotFoundError(f"no participant {organ_id}", code="not_found.participant")
        return self.upsert(replace(found, enabled=False))

    def save(self, path: Path | None = None) -> Path:
        """Write the current snapshot as TOML, atomically (temporary file, fsync, rename)."""
        target = self._require_path(path)
        _write_atomically(target, dump_directory(self._current))
        if target == self.path:
            self._mtime_ns = self._file_mtime_ns()
        return target

    def _require_path(self, path: Path | None) -> Path:
        target = path or self.path
        if target is None:
            raise ConfigError("the directory has no file to use", code="config.directory_path")
        return target


# --- TOML ----------------------------------------------------------------------------------------


def load_directory(path: Path) -> Directory:
    """Read a directory file: ``[[participant]]`` tables (see ``config/participants.toml``)."""
    data = read_toml(path)
    unknown = set(data) - {"participant"}
    if unknown:
        raise ConfigError(f"unknown top-level keys {sorted(unknown)}", path=str(path))
    entries = data.get("participant", [])
    if not isinstance(entries, list):
        raise ConfigError("participant must be an array of tables", path="participant")
    return Directory(
        participant_from_mapping(entry, f"participant[{i}]") for i, entry in enumerate(entries)
    )


def participant_from_mapping(entry: Mapping[str, object], where: str) -> Participant:
    """One participant from a TOML table or a JSON object of the same shape."""
    reader = _EntryReader(entry, where)
    delivery = reader.table("delivery")
    delivery_reader = _EntryReader(delivery, f"{reader.where}.delivery")
    participant = Participant(
        organ_id=reader.text("organ_id", required=True) or "",
        name=reader.text("name", required=True) or "",
        kind=reader.choice("kind", ParticipantKind) or ParticipantKind.STATE,
        parent=reader.text("parent"),
        level=reader.choice("level", ParticipantLevel),
        api_key_hashes=reader.texts("api_key_hashes") or (),
        client_cert_fingerprints=tuple(
            normalize_fingerprint(f) for f in reader.texts("client_cert_fingerprints") or ()
        ),
        signing_cert_fingerprints=tuple(
            normalize_fingerprint(f) for f in reader.texts("signing_cert_fingerprints") or ()
        ),
        delivery=Delivery(
            method=delivery_reader.choice("method", DeliveryMethod) or DeliveryMethod.MAILBOX,
            url=delivery_reader.text("url"),
        ),
        allowed_algorithms=reader.texts("allowed_algorithms") or DEFAULT_ALGORITHMS,
        may_send_to=reader.texts("may_send_to"),
        may_speak_for=reader.texts("may_speak_for") or (),
        enabled=reader.flag("enabled", default=True),
    )
    reader.check_all_read()
    delivery_reader.check_all_read()
    return participant


class _EntryReader:
    """Typed access to one TOML table, remembering which keys were read to refuse typos."""

    def __init__(self, entry: Mapping[str, object], where: str) -> None:
        self.entry = entry
        self.where = where
        self.read: set[str] = set()

    def _get(self, key: str) -> object:
        self.read.add(key)
        return self.entry.get(key)

    def _fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.where}.{key} {message}", path=f"{self.where}.{key}")

    def text(self, key: str, *, required: bool = False) -> str | None:
        value = self._get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value:
            raise self._fail(key, "must be a non-empty string")
        return value

    def texts(self, key: str) -> tuple[str, ...] | None:
        value = self._get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self._fail(key, "must be an array of non-empty strings")
        return tuple(value)

    def choice(self, key: str, enum: type[_E]) -> _E | None:
        value = self.text(key)
        if value is None:
            return None
        try:
            return enum(value)
        except ValueError as exc:
            raise self._fail(key, f"must be one of {', '.join(enum)}") from exc

    def flag(self, key: str, *, default: bool) -> bool:
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self._fail(key, "must be true or false")
        return value

    def table(self, key: str) -> Mapping[str, object]:
        value = self._get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self._fail(key, "must be a table")
        return value

    def check_all_read(self) -> None:
        unknown = sorted(set(self.entry) - self.read)
        if unknown:
            raise self._fail(unknown[0], "is not a known key")


def dump_directory(directory: Directory) -> str:
    """The directory as TOML text that :func:`load_directory` reads back identically."""
    blocks = ["# LGSP participant directory (written by the gateway).\n"]
    blocks.extend(_participant_to_toml(p) for p in directory)
    return "\n".join(blocks)


def _participant_to_toml(p: Participant) -> str:
    items: list[tuple[str, object]] = [
        ("organ_id", p.organ_id),
        ("name", p.name),
        ("kind", p.kind.value),
        ("parent", p.parent),
        ("level", p.level.value if p.level else None),
        ("enabled", p.enabled),
        ("api_key_hashes", p.api_key_hashes),
        ("client_cert_fingerprints", p.client_cert_fingerprints),
        ("signing_cert_fingerprints", p.signing_cert_fingerprints),
        ("allowed_algorithms", p.allowed_algorithms),
        ("may_send_to", p.may_send_to),
        ("may_speak_for", p.may_speak_for),
    ]
    lines = ["[[participant]]"]
    lines += [f"{key} = {_toml_value(value)}" for key, value in items if value is not None]
    lines += ["", "[participant.delivery]", f"method = {_toml_value(p.delivery.method.value)}"]
    if p.delivery.url is not None:
        lines.append(f"url = {_toml_value(p.delivery.url)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: object) -> str:
    # A JSON string (ensure_ascii off) is a valid TOML basic string; booleans are spelled alike.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Sequence):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def _write_atomically(path: Path, text: str) -> None:
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as tmp:
            tmp.write(text)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


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
