"""Console password hashes: argon2id (argon2-cffi), in the standard PHC string format.

A stored hash reads ``$argon2id$v=19$m=65536,t=3,p=4$<salt>$<hash>``: the parameters travel with
each hash, so raising them later leaves the hashes already written valid (``needs_rehash`` tells
which ones to renew). ``lgsp admin hash-password`` prints a new hash.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from argon2 import PasswordHasher, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from gateway.core.errors import ConfigError

_HASHER = PasswordHasher()  # argon2id with the library's RFC 9106 "low memory" defaults
_DUMMY_PASSWORD = "lgsp: no password matches this hash"  # noqa: S105 - not a credential


@dataclass(frozen=True, slots=True)
class StoredHash:
    """A stored hash, checked for well-formedness when the configuration is read."""

    encoded: str

    def __str__(self) -> str:
        return self.encoded


def hash_password(password: str) -> str:
    """A new stored hash of ``password`` with a fresh salt."""
    if not password:
        raise ConfigError("a console password must not be empty", code="config.empty_password")
    return _HASHER.hash(password)


def parse_hash(stored: str) -> StoredHash:
    """The stored hash, if it is an argon2 PHC string; ``ConfigError`` otherwise."""
    try:
        if not stored.startswith("$argon2"):
            raise InvalidHashError("not an argon2 hash ($argon2id$v=19$m=…,t=…,p=…$salt$hash)")
        extract_parameters(stored)
    except (InvalidHashError, ValueError) as exc:
        raise ConfigError(
            f"admin.user.password_hash: {exc}",
            code="config.password_hash",
            path="admin.user.password_hash",
        ) from exc
    return StoredHash(stored)


def verify_password(password: str, stored: StoredHash) -> bool:
    """Whether ``password`` matches ``stored`` (argon2-cffi compares in constant time)."""
    try:
        return _HASHER.verify(stored.encoded, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@functools.cache
def dummy_hash() -> StoredHash:
    """A hash no real password matches: checked for unknown users, so timing tells nothing.
    Made once per process, on first use (about 0.4 s of argon2: not at import, which every
    ``lgsp`` command pays); the console makes it when it is mounted."""
    return StoredHash(_HASHER.hash(_DUMMY_PASSWORD + str(id(_HASHER))))
