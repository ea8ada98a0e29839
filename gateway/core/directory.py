"""The participant directory: its live snapshot in a process, and its TOML files.

The directory's source of truth is the store (``gateway.store.participants``); a TOML file
(``config/participants.toml``) seeds an empty store and is what ``lgsp directory import|export``
read and write. The model itself is in ``core.directory_model`` and re-exported here.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from gateway.core.config_files import read_toml
from gateway.core.directory_model import (
    API_KEY_PREFIX,
    DEFAULT_ALGORITHMS,
    Delivery,
    Directory,
    Participant,
    ParticipantKind,
    ParticipantLevel,
    generate_api_key,
    hash_api_key,
    normalize_fingerprint,
    participant_json,
)
from gateway.core.errors import ConfigError, NotFoundError
from gateway.core.methods import DeliveryMethod

__all__ = [
    "API_KEY_PREFIX",
    "DEFAULT_ALGORITHMS",
    "Delivery",
    "Directory",
    "DirectoryHolder",
    "Participant",
    "ParticipantKind",
    "ParticipantLevel",
    "dump_directory",
    "generate_api_key",
    "hash_api_key",
    "load_directory",
    "normalize_fingerprint",
    "participant_from_mapping",
    "participant_json",
    "participant_to_mapping",
    "write_directory",
]

_E = TypeVar("_E", bound=StrEnum)


class DirectoryHolder:
    """The live directory of a running process: swap snapshots in without a restart.

    Readers take ``current`` once per request and use that snapshot throughout. Changes build a
    new snapshot and swap the reference, which is atomic on the event loop (no awaits inside).
    ``version`` is the store's directory version the snapshot was read at (0: not from the
    store); :meth:`swap` never goes back to an older one.
    """

    __slots__ = ("_current", "version")

    def __init__(self, directory: Directory | None = None, version: int = 0) -> None:
        self._current = directory if directory is not None else Directory()
        self.version = version

    @property
    def current(self) -> Directory:
        return self._current

    def replace(self, new: Directory) -> None:
        self._current = new

    def swap(self, new: Directory, version: int) -> bool:
        """Make ``new`` (read at ``version``) current, unless a newer version already is."""
        if version < self.version:
            return False
        self._current, self.version = new, version
        return True

    def upsert(self, participant: Participant) -> Directory:
        """In this process only (the store's writes go through ``gateway.store.participants``)."""
        self._current = self._current.with_participant(participant)
        return self._current

    def disable(self, organ_id: str) -> Directory:
        found = self._current.get(organ_id)
        if found is None:
            raise NotFoundError(f"no participant {organ_id}", code="not_found.participant")
        return self.upsert(replace(found, enabled=False))


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


def participant_to_mapping(p: Participant) -> dict[str, Any]:
    """A participant as the table :func:`participant_from_mapping` reads back identically
    (defaults and empty values left out; the store keeps it as JSON, files as TOML)."""
    items: list[tuple[str, object]] = [
        ("organ_id", p.organ_id),
        ("name", p.name),
        ("kind", p.kind.value),
        ("parent", p.parent),
        ("level", p.level.value if p.level else None),
        ("enabled", p.enabled),
        ("api_key_hashes", list(p.api_key_hashes)),
        ("client_cert_fingerprints", list(p.client_cert_fingerprints)),
        ("signing_cert_fingerprints", list(p.signing_cert_fingerprints)),
        ("allowed_algorithms", list(p.allowed_algorithms)),
        ("may_send_to", list(p.may_send_to) if p.may_send_to is not None else None),
        ("may_speak_for", list(p.may_speak_for)),
    ]
    entry: dict[str, Any] = {key: value for key, value in items if value is not None}
    entry["delivery"] = {"method": p.delivery.method.value}
    if p.delivery.url is not None:
        entry["delivery"]["url"] = p.delivery.url
    return entry


def dump_directory(directory: Directory) -> str:
    """The directory as TOML text that :func:`load_directory` reads back identically."""
    blocks = ["# LGSP participant directory (written by the gateway).\n"]
    blocks.extend(_participant_to_toml(p) for p in directory)
    return "\n".join(blocks)


def _participant_to_toml(p: Participant) -> str:
    entry = participant_to_mapping(p)
    delivery = entry.pop("delivery")
    lines = ["[[participant]]"]
    lines += [f"{key} = {_toml_value(value)}" for key, value in entry.items()]
    lines += ["", "[participant.delivery]"]
    lines += [f"{key} = {_toml_value(value)}" for key, value in delivery.items()]
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


def write_directory(path: Path, directory: Directory) -> None:
    """Write ``directory`` to ``path`` as TOML, atomically (temporary file, fsync, rename)."""
    _write_atomically(path, dump_directory(directory))


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
