"""The delivery log store: documents, deliveries and events in SQLite or PostgreSQL."""

from gateway.core.methods import DeliveryMethod
from gateway.store.delivery_log import DeliveryLog
from gateway.store.records import (
    DeliveryItem,
    DeliveryRecord,
    DeliveryState,
    DocumentFilter,
    DocumentRecord,
    DocumentView,
    EventKind,
    EventRecord,
    IntakeResult,
    NewDocument,
)

__all__ = [
    "DeliveryItem",
    "DeliveryLog",
    "DeliveryMethod",
    "DeliveryRecord",
    "DeliveryState",
    "DocumentFilter",
    "DocumentRecord",
    "DocumentView",
    "EventKind",
    "EventRecord",
    "IntakeResult",
    "NewDocument",
]
