"""Console password hashes: scrypt (hashlib) in one self-describing text format.

Neither argon2-cffi nor bcrypt is a dependency of the gateway, so console passwords use
``hashlib.scrypt`` (RFC 7914, memory-hard) through OpenSSL. A stored hash reads::

    scrypt$<log2 N>$<r>$<p>$<salt, base64>$<derived key, base64>

e.g. ``scrypt$15$8$1$…$…`` for N = 2^15, r = 8, p = 1 (32 MiB and about 0.1 s per check), a
16-byte random salt and a 32-byte key. The parameters travel with each hash, so raising them later
leaves the hashes already written valid. ``lgsp admin hash-password`` prints a new hash.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from gateway.errors import ConfigError

SCHEME = "scrypt"
LOG2_N = 15
BLOCK_SIZE = 8
PARALLELISM = 1
SALT_BYTES = 16
KEY_BYTES = 32
MAX_LOG2_N = 20  # refuse hashes that would need more than 1 GiB to check
_MAXMEM_SLACK = 2


@dataclass(frozen=True, slots=True)
class ScryptHash:
    """A parsed stored hash."""

    log2_n: int
    block_size: int
    parallelism: int
    salt: bytes
    key: bytes

    def __str__(self) -> str:
        salt = base64.b64encode(self.salt).decode("ascii")
        key = base64.b64encode(self.key).decode("ascii")
        return f"{SCHEME}${self.log2_n}${self.block_size}${self.parallelism}${salt}${key}"


def _derive(password: str, *, log2_n: int, block_size: int, parallelism: int, salt: bytes,
            length: int) -> bytes:
    memory = 128 * block_size * (2**log2_n) * _MAXMEM_SLACK + 1024 * 1024
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=2**log2_n, r=block_size, p=parallelism,
        maxmem=memory, dklen=length,
    )


def hash_password(password: str) -> str:
    """A new stored hash of ``password`` with a fresh salt."""
    if not password:
        raise ConfigError("a console password must not be empty", code="config.empty_password")
    salt = secrets.token_bytes(SALT_BYTES)
    key = _derive(password, log2_n=LOG2_N, block_size=BLOCK_SIZE, parallelism=PARALLELISM,
                  salt=salt, length=KEY_BYTES)
    return str(ScryptHash(LOG2_N, BLOCK_SIZE, PARALLELISM, salt, key))


def parse_hash(stored: str) -> ScryptHash:
    """The parts of a stored hash; ``ConfigError`` (``config.password_hash``) if malformed."""
    parts = stored.split("$")
    try:
        if len(parts) != 6 or parts[0] != SCHEME:
            raise ValueError("not scrypt$<log2 N>$<r>$<p>$<salt>$<key>")
        log2_n, block_size, parallelism = int(parts[1]), int(parts[2]), int(parts[3])
        salt = base64.b64decode(parts[4], validate=True)
        key = base64.b64decode(parts[5], validate=True)
        if not (1 <= log2_n <= MAX_LOG2_N and block_size >= 1 and parallelism >= 1):
            raise ValueError("parameters out of range")
        if len(salt) < 8 or len(key) < 16:
            raise ValueError("salt or key too short")
    except (ValueError, binascii.Error) as exc:
        raise ConfigError(f"admin.user.password_hash: {exc}", code="config.password_hash",
                          path="admin.user.password_hash") from exc
    return ScryptHash(log2_n, block_size, parallelism, salt, key)


def verify_password(password: str, stored: ScryptHash) -> bool:
    """Whether ``password`` matches ``stored`` (compared in constant time)."""
    candidate = _derive(password, log2_n=stored.log2_n, block_size=stored.block_size,
                        parallelism=stored.parallelism, salt=stored.salt, length=len(stored.key))
    return hmac.compare_digest(candidate, stored.key)


def dummy_hash() -> ScryptHash:
    """A hash no password matches: checked for unknown users, so timing tells nothing."""
    return ScryptHash(LOG2_N, BLOCK_SIZE, PARALLELISM, secrets.token_bytes(SALT_BYTES),
                      secrets.token_bytes(KEY_BYTES))
