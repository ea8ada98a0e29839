"""Build the gateway's components from settings: verifier, receipt signer, delivery adapters."""

from __future__ import annotations

from collections.abc import Callable

from adapters.base import Adapter
from adapters.http_push import HttpPushAdapter
from adapters.mailbox import MailboxAdapter
from adapters.national.adapter import NationalAdapter
from adapters.soap import SoapAdapter
from adapters.soap_routes import load_routes
from gateway.broker import Broker
from gateway.core.directory import DirectoryHolder
from gateway.core.metrics import Metrics
from gateway.core.settings import Settings
from gateway.delivery.handler import LogMailbox
from gateway.demo import pki
from gateway.dispatch.publishing import Dispatcher
from gateway.intake.pipeline import Intake
from gateway.intake.receipts import ReceiptSigner
from gateway.national.connection import national_client
from gateway.signatures.algorithms import DEFAULT_ALLOWED, SignatureAlgorithm
from gateway.signatures.truststore import TrustStore
from gateway.signatures.verify import Verifier
from gateway.store import DeliveryLog


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


def build_dispatcher(settings: Settings, broker: Broker, delivery_log: DeliveryLog) -> Dispatcher:
    return Dispatcher(broker=broker, delivery_log=delivery_log,
                      claim_check_threshold_bytes=settings.broker.claim_check_threshold_bytes)


def build_intake(
    settings: Settings,
    *,
    directory: DirectoryHolder,
    delivery_log: DeliveryLog,
    dispatcher: Dispatcher,
    metrics: Metrics,
    national_fallback: bool,
) -> Intake:
    """The one way an ``Intake`` is built (the HTTP app and the national poller)."""
    return Intake(
        verifier=build_verifier(settings, directory),
        directory=directory,
        delivery_log=delivery_log,
        dispatcher=dispatcher,
        receipts=build_receipt_signer(settings),
        metrics=metrics,
        national_fallback=national_fallback,
    )


def gateway_identity(settings: Settings) -> pki.Identity:
    return pki.load_identity(settings.pki.dir, pki.GATEWAY_ID)


def build_receipt_signer(settings: Settings) -> ReceiptSigner:
    return ReceiptSigner(gateway_identity(settings))


def build_adapters(settings: Settings, *, push_timeout_s: float = 30.0) -> dict[str, Adapter]:
    """One adapter per delivery method this process can serve (the caller closes them)."""
    identity = gateway_identity(settings)
    adapters: dict[str, Adapter] = {
        "push": HttpPushAdapter(identity.key, identity.certificate, timeout_s=push_timeout_s),
        "mailbox": MailboxAdapter(LogMailbox()),
        "soap": SoapAdapter(
            load_routes(settings.soap.routes_path) if settings.soap.routes_path else {}),
    }
    if settings.national.enabled:  # else national deliveries wait in their queue
        adapters["national"] = NationalAdapter(national_client(settings.national))
    return adapters
