"""Build the gateway's components from settings: directory, verifier, receipts, dispatch, intake."""

from __future__ import annotations

from collections.abc import Callable, Collection

import structlog

from gateway.broker import Broker
from gateway.core.directory import DirectoryHolder
from gateway.core.loops import Loops, supervise
from gateway.core.methods import DeliveryMethod
from gateway.core.metrics import Metrics
from gateway.core.settings import Settings
from gateway.dispatch.publishing import Dispatcher
from gateway.intake.pipeline import Intake
from gateway.intake.receipts import ReceiptSigner
from gateway.signatures.algorithms import DEFAULT_ALLOWED, SignatureAlgorithm
from gateway.signatures.identity import Identity, load_gateway_identity
from gateway.signatures.truststore import TrustStore
from gateway.signatures.verify import Verifier
from gateway.store import DeliveryLog
from gateway.store.participants import StoredDirectory

log = structlog.get_logger(__name__)

DIRECTORY_POLL_S = 1.0
"""How often each process asks the store for its directory version: changes show within 2 s."""
DIRECTORY_MAX_BACKOFF_S = 10.0


def _algorithms_for(holder: DirectoryHolder) -> Callable[[str], frozenset[SignatureAlgorithm]]:
    def algorithms(sender: str) -> frozenset[SignatureAlgorithm]:
        participant = holder.current.get(sender)
        if participant is None:
            return DEFAULT_ALLOWED
        return frozenset(
            SignatureAlgorithm.from_short_name(name) for name in participant.allowed_algorithms
        )

    return algorithms


def _fingerprints_for(holder: DirectoryHolder) -> Callable[[str], frozenset[str]]:
    def fingerprints(sender: str) -> frozenset[str]:
        participant = holder.current.get(sender)
        return frozenset(participant.signing_cert_fingerprints) if participant else frozenset()

    return fingerprints


def build_verifier(settings: Settings, holder: DirectoryHolder) -> Verifier:
    """The verifier over the configured trust store, reading policy from the live directory."""
    return Verifier(
        TrustStore.from_dir(settings.pki.dir),
        limits=settings.limits,
        algorithms_for=_algorithms_for(holder),
        bound_fingerprints=_fingerprints_for(holder),
    )


async def open_directory(settings: Settings, stored: StoredDirectory) -> DirectoryHolder:
    """Load the store's directory into ``stored.holder``, seeding an empty store from the
    configured file (``[directory] path``) first."""
    await stored.open(settings.directory.path)
    return stored.holder


async def watch_directory(
    stored: StoredDirectory, interval_s: float = DIRECTORY_POLL_S, *, loops: Loops | None = None
) -> None:
    """Pick up directory changes made by another process (its admin API, console, agency sync,
    ``lgsp directory import``) within ``interval_s``: one small query per round."""

    async def round_() -> None:
        if await stored.refresh():
            holder = stored.holder
            log.info("directory_reloaded", participants=len(holder.current), version=holder.version)

    await supervise(
        "directory-watch",
        round_,
        interval_s=interval_s,
        max_backoff_s=DIRECTORY_MAX_BACKOFF_S,
        loops=loops,
        first_delay_s=interval_s,
    )


def build_dispatcher(settings: Settings, broker: Broker, delivery_log: DeliveryLog) -> Dispatcher:
    return Dispatcher(
        broker=broker,
        delivery_log=delivery_log,
        claim_check_threshold_bytes=settings.broker.claim_check_threshold_bytes,
    )


def build_intake(
    settings: Settings,
    *,
    directory: DirectoryHolder,
    delivery_log: DeliveryLog,
    dispatcher: Dispatcher,
    metrics: Metrics,
    national_fallback: bool,
    delivery_methods: Collection[DeliveryMethod] | None = None,
) -> Intake:
    """The one way an ``Intake`` is built (the HTTP app and the national poller).

    ``delivery_methods``: the methods the workers serve; routes to others are refused at intake
    (``routing.no_adapter``). None (the national poller, inside a worker): no such check."""
    return Intake(
        verifier=build_verifier(settings, directory),
        directory=directory,
        delivery_log=delivery_log,
        dispatcher=dispatcher,
        receipts=build_receipt_signer(settings),
        metrics=metrics,
        national_fallback=national_fallback,
        delivery_methods=delivery_methods,
    )


def delivery_methods(settings: Settings) -> frozenset[DeliveryMethod]:
    """The delivery methods the workers of these settings serve (the keys of
    ``gateway.service.registry.build_adapters``, without importing the adapters)."""
    methods = {DeliveryMethod.PUSH, DeliveryMethod.MAILBOX, DeliveryMethod.SOAP}
    if settings.national.enabled:
        methods.add(DeliveryMethod.NATIONAL)
    return frozenset(methods)


def gateway_identity(settings: Settings) -> Identity:
    return load_gateway_identity(settings.pki.dir)


def build_receipt_signer(settings: Settings) -> ReceiptSigner:
    return ReceiptSigner(gateway_identity(settings))
