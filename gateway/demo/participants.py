"""Demo participants in documents (their edXML organization) and routed by push to a URL."""

from __future__ import annotations

from dataclasses import replace

from gateway.core.directory import Delivery, load_directory, write_directory
from gateway.core.errors import ConfigError
from gateway.core.methods import DeliveryMethod
from gateway.demo import pki
from gateway.demo.layout import DemoSetup
from gateway.edxml.model import Organization


def organization(organ_id: str) -> Organization:
    """``organ_id`` as a demo document names it: the demo participant's name (else the id) and
    the demo province's contact details."""
    name = next((p.name for p in pki.DEMO_PARTICIPANTS if p.organ_id == organ_id), organ_id)
    return Organization(
        organ_id=organ_id,
        organ_name=name,
        organization_in_charge=name,
        organ_add="Thanh Hóa",
        email="vanthu@thanhhoa.gov.vn",
        telephone="0237 3852 000",
        fax="0237 3852 001",
        website="thanhhoa.gov.vn",
    )


def deliver_by_push(setup: DemoSetup, organ_id: str, url: str) -> None:
    """Rewrite the demo's participant file so that ``organ_id`` takes its deliveries by push at
    ``url``. The file seeds an empty store at the first start; a seeded store keeps its own
    directory (``lgsp directory import`` loads the file into it)."""
    directory = load_directory(setup.directory_path)
    participant = directory.get(organ_id)
    if participant is None:
        raise ConfigError(
            f"the demo directory has no participant {organ_id}",
            code="config.invalid",
            path=str(setup.directory_path),
        )
    pushed = replace(participant, delivery=Delivery(DeliveryMethod.PUSH, url))
    write_directory(setup.directory_path, directory.with_participant(pushed))
