"""Delivery methods: how a recipient is reached (one adapter, one work queue each)."""

from __future__ import annotations

from enum import StrEnum


class DeliveryMethod(StrEnum):
    """How documents reach a participant (the name of the adapter and of its queue)."""

    PUSH = "push"  # POSTed to the participant's URL
    MAILBOX = "mailbox"  # kept for the participant to pull
    NATIONAL = "national"  # relayed through the national document exchange platform
    SOAP = "soap"  # a SOAP service call; the delivery url names the route (adapters.soap_routes)
