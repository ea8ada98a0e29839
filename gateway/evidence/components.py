"""The evidence pieces built from the settings: the TSA client, the checkpointer and its loop,
the checkpoint checker."""

from __future__ import annotations

from cryptography import x509

from gateway.core.errors import ConfigError, NotFoundError
from gateway.core.loops import Loops, supervise
from gateway.core.settings import Settings
from gateway.evidence.bundle import Bundler
from gateway.evidence.checkpoints import CheckpointChecker, Checkpointer, pinned_gateway_certs
from gateway.evidence.retention import Retainer
from gateway.evidence.tsa import TsaClient, load_certificates
from gateway.signatures.identity import Identity, load_gateway_identity
from gateway.signatures.truststore import TrustStore
from gateway.store import DeliveryLog
from gateway.store.engine import Engines

CHECKPOINT_LOOP = "checkpoints"


def tsa_roots(settings: Settings) -> tuple[x509.Certificate, ...]:
    archive = settings.archive
    return load_certificates(archive.tsa_ca) if archive.tsa_ca is not None else ()


def tsa_client(settings: Settings) -> TsaClient | None:
    archive = settings.archive
    if not archive.tsa_url:
        return None
    return TsaClient(archive.tsa_url, tsa_roots(settings), timeout_s=archive.tsa_timeout_s)


def trust_anchors(settings: Settings) -> tuple[x509.Certificate, ...]:
    """What a third party checks evidence against: the PKI's anchors and the TSA's CA."""
    return TrustStore.from_dir(settings.pki.dir).anchors + tsa_roots(settings)


def build_checkpointer(settings: Settings, engines: Engines) -> Checkpointer:
    """Signs with the gateway's identity (``<pki>/gateway``); ConfigError without one."""
    return Checkpointer(
        engines,
        load_gateway_identity(settings.pki.dir),
        tsa_client(settings),
        settings.archive.dir,
        trust_anchors(settings),
    )


def build_bundler(settings: Settings, log: DeliveryLog) -> Bundler:
    """Bundles signed by the gateway, with a checkpoint made first when one is missing."""
    return Bundler(
        log,
        load_gateway_identity(settings.pki.dir),
        build_checkpointer(settings, log.engines),
        trust_anchors(settings),
        settings.archive.dir,
    )


def build_checkpoint_checker(settings: Settings) -> CheckpointChecker:
    """Checks checkpoints against the PKI's trust store, the gateway certificates (current and
    kept in the archive directory) and the TSA's CA."""
    identity: Identity | None
    try:
        identity = load_gateway_identity(settings.pki.dir)
    except NotFoundError:
        identity = None
    certs = pinned_gateway_certs(settings.archive.dir, identity)
    if not certs:
        raise ConfigError(
            "no gateway certificate to check checkpoints against (pki/gateway, archive/trust)",
            code="config.pki",
        )
    return CheckpointChecker(TrustStore.from_dir(settings.pki.dir), certs, tsa_roots(settings))


async def checkpoint_forever(checkpointer: Checkpointer, interval_s: float, loops: Loops) -> None:
    """Sign the chain's head every ``interval_s``, the first time one interval after start (a
    supervised loop; several processes share it: a checkpoint younger than the interval, made
    by any of them, is enough)."""

    async def round_() -> None:
        await checkpointer.checkpoint(min_age_s=interval_s * 0.9)

    await supervise(
        CHECKPOINT_LOOP, round_, interval_s=interval_s, loops=loops, first_delay_s=interval_s
    )


def build_retainer(settings: Settings, log: DeliveryLog) -> Retainer:
    """Archive files under ``[archive] dir``, signed by the gateway."""
    return Retainer(
        log,
        load_gateway_identity(settings.pki.dir),
        build_checkpointer(settings, log.engines),
        settings.archive.dir,
    )
