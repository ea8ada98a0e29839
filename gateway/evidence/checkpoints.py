"""Checkpoints: the chain's head signed by the gateway (a compact JWS, ES256, ``x5c``) and
time-stamped by an RFC 3161 TSA over the JWS, stored in the log and exported as files.

A checkpoint says "entry ``seq`` of store ``store`` had chain hash ``hash``": from it, every entry
up to ``seq`` is fixed (changing one changes the hash), the gateway's signature says who vouched
for it, and the TSA's token says it existed no later than its ``genTime``. The files
``<archive dir>/checkpoints/checkpoint-<seq>.jws`` and ``.tsr`` are checked by anyone with
``openssl ts -verify -data …jws -in …tsr -CAfile TSA-CA.pem``; the gateway certificates that ever
signed one are kept in ``<archive dir>/trust/`` for checking them later, with the anchors (the
province's root CA, the TSA's CA): the directory ``lgsp archive verify-bundle --trust`` takes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import Connection, insert, select

from gateway.core.errors import ConflictError, LgspError, SignatureError
from gateway.evidence.tsa import TimeStamp, TsaClient, check_token
from gateway.signatures.identity import Identity
from gateway.signatures.jws import sign_jws, verify_jws
from gateway.signatures.truststore import TrustStore
from gateway.store.chain import CHAIN_VERSION, read_head
from gateway.store.engine import Engines, transaction
from gateway.store.tables import chain_checkpoints, events

log = structlog.get_logger(__name__)

CHECKPOINT_TYPE = "lgsp-checkpoint+jwt"
CHECKPOINTS_DIR = "checkpoints"
TRUST_DIR = "trust"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    seq: int
    hash: str
    store_id: str
    signed_at: datetime
    statement: str  # the compact JWS
    tsa: TimeStamp | None

    def row(self) -> dict[str, object]:
        return {
            "seq": self.seq,
            "hash": self.hash,
            "signed_at": self.signed_at,
            "statement": self.statement,
            "tsa_response": self.tsa.response if self.tsa else None,
            "tsa_time": self.tsa.gen_time if self.tsa else None,
        }


def fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def statement_claims(store_id: str, seq: int, chain_hash: str, at: datetime) -> dict[str, object]:
    return {
        "typ": CHECKPOINT_TYPE,
        "chain": CHAIN_VERSION,
        "store": store_id,
        "seq": seq,
        "hash": chain_hash,
        "signed_at": at.isoformat(),
    }


class Checkpointer:
    """Signs (and time-stamps) the chain's head; ``out_dir`` receives the exported files."""

    def __init__(
        self,
        engines: Engines,
        identity: Identity,
        tsa: TsaClient | None,
        out_dir: Path,
        anchors: Iterable[x509.Certificate] = (),
    ) -> None:
        self._engines = engines
        self._identity = identity
        self._tsa = tsa
        self._out_dir = out_dir
        self._anchors = tuple(anchors)  # exported beside the gateway's certificate

    async def checkpoint(self, *, min_age_s: float = 0.0) -> Checkpoint | None:
        """A new checkpoint of the head; None when the head is checkpointed already, or when
        another process made one less than ``min_age_s`` ago (the periodic loop's case)."""
        async with transaction(self._engines.reader) as conn:
            head, latest = await conn.run_sync(_head_and_latest)
        now = datetime.now(UTC)
        if latest is not None and (
            latest["seq"] >= head.last_id
            or now - latest["signed_at"] < timedelta(seconds=min_age_s)
        ):
            return None
        claims = statement_claims(head.store_id, head.last_id, head.hash, now)
        payload = json.dumps(claims, separators=(",", ":"), sort_keys=True).encode()
        statement = sign_jws(
            payload, self._identity.key, self._identity.chain, alg=self._identity.jws_algorithm
        )
        stamp = await self._tsa.stamp(statement.encode()) if self._tsa is not None else None
        made = Checkpoint(head.last_id, head.hash, head.store_id, now, statement, stamp)
        try:
            async with transaction(self._engines.writer) as conn:
                await conn.execute(insert(chain_checkpoints).values(**made.row()))
        except ConflictError:  # another process checkpointed this head meanwhile
            return None
        self.export(made)
        log.info("checkpoint", seq=made.seq, time_stamped=stamp is not None)
        return made

    def export(self, made: Checkpoint) -> None:
        """Write the checkpoint's files (and the signing certificate, once)."""
        where = self._out_dir / CHECKPOINTS_DIR
        where.mkdir(parents=True, exist_ok=True)
        name = where / f"checkpoint-{made.seq:012d}"
        name.with_suffix(".jws").write_text(made.statement, encoding="ascii")  # as stamped
        if made.tsa is not None:
            name.with_suffix(".tsr").write_bytes(made.tsa.response)
        trust = self._out_dir / TRUST_DIR
        trust.mkdir(parents=True, exist_ok=True)
        kept = [("gateway", self._identity.certificate)] + [("ca", c) for c in self._anchors]
        for kind, cert in kept:
            path = trust / f"{kind}-{fingerprint(cert)[:16]}.pem"
            if not path.exists():
                path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _head_and_latest(sync: Connection) -> tuple[Any, dict[str, Any] | None]:
    head = read_head(sync)
    if head.last_id:  # the head row agrees with the last entry (else refuse to sign it)
        stored = sync.scalar(select(events.c.chain_hash).where(events.c.id == head.last_id))
        if stored != head.hash:
            raise SignatureError(
                f"the chain head ({head.last_id}) does not match its entry: not signed; run "
                "lgsp archive verify",
                code="evidence.head_mismatch",
            )
    latest = sync.execute(
        select(chain_checkpoints.c.seq, chain_checkpoints.c.signed_at)
        .order_by(chain_checkpoints.c.seq.desc())
        .limit(1)
    ).first()
    return head, latest._asdict() if latest is not None else None


class CheckpointChecker:
    """Checks a stored checkpoint: its JWS by a pinned gateway certificate that chains to the
    trust store (at signing time), its claims against the row, its TSA token (if any)."""

    def __init__(
        self,
        trust: TrustStore,
        gateway_certs: Iterable[x509.Certificate],
        tsa_roots: tuple[x509.Certificate, ...],
    ) -> None:
        self._trust = trust
        self._pinned = {fingerprint(c) for c in gateway_certs}
        self._tsa_roots = tsa_roots

    def __call__(self, row: dict[str, Any], store_id: str) -> str | None:
        try:
            self.check(row, store_id)
        except LgspError as exc:
            return str(exc)
        return None

    def check(self, row: dict[str, Any], store_id: str) -> None:
        checked = verify_jws(row["statement"])
        if fingerprint(checked.signer_certificate) not in self._pinned:
            raise SignatureError(
                "signed by a certificate that is not the gateway's", code="evidence.signer"
            )
        self._trust.validate(
            checked.signer_certificate, checked.certificates[1:], at=row["signed_at"]
        )
        claims = json.loads(checked.payload)
        expected = statement_claims(store_id, row["seq"], row["hash"], row["signed_at"])
        if claims != expected:
            raise SignatureError(
                "the signed statement does not match the row", code="evidence.statement"
            )
        if row["tsa_response"] is not None:
            at = check_token(bytes(row["tsa_response"]), row["statement"].encode(), self._tsa_roots)
            if row["tsa_time"] is not None and at != row["tsa_time"]:
                raise SignatureError(
                    "the time-stamp's time differs from the row's", code="evidence.statement"
                )


def pinned_gateway_certs(archive_dir: Path, identity: Identity | None) -> list[x509.Certificate]:
    """The gateway certificates checkpoints may be signed with: the current identity's and
    those kept in ``<archive dir>/trust/`` (earlier identities)."""
    certs = [identity.certificate] if identity is not None else []
    trust = archive_dir / TRUST_DIR
    for path in sorted(trust.glob("gateway-*.pem")) if trust.is_dir() else ():
        certs.extend(x509.load_pem_x509_certificates(path.read_bytes()))
    return certs
