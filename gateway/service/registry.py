"""The adapter registry: which adapter serves each delivery method (only the worker role loads it).

The one place that imports every adapter, so the intake process never loads zeep or the national
client. Adding a delivery method means: an adapter under ``adapters/`` implementing
``adapters.base.Adapter``, a ``DeliveryMethod`` member, and one line here.
"""

from __future__ import annotations

from adapters.base import Adapter
from adapters.http_push import HttpPushAdapter
from adapters.mailbox import MailboxAdapter
from adapters.national.adapter import NationalAdapter
from adapters.soap import SoapAdapter
from adapters.soap_routes import load_routes
from gateway.core.settings import Settings
from gateway.delivery.handler import LogMailbox
from gateway.national.connection import national_client
from gateway.service.components import gateway_identity


def build_adapters(settings: Settings, *, push_timeout_s: float = 30.0) -> dict[str, Adapter]:
    """One adapter per delivery method this process can serve (the caller closes them)."""
    identity = gateway_identity(settings)
    adapters: dict[str, Adapter] = {
        "push": HttpPushAdapter(
            identity.key,
            identity.certificate,
            timeout_s=push_timeout_s,
            allow_private_hosts=settings.push.allow_private_hosts,
        ),
        "mailbox": MailboxAdapter(LogMailbox()),
        "soap": SoapAdapter(
            load_routes(settings.soap.routes_path) if settings.soap.routes_path else {}
        ),
    }
    # Keep in step with components.delivery_methods: intake refuses routes to other methods.
    if settings.national.enabled:
        adapters["national"] = NationalAdapter(national_client(settings.national))
    return adapters
