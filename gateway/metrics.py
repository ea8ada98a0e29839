"""Prometheus metrics of one gateway process, in a registry of its own (no module globals)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


@dataclass
class Metrics:
    """The metrics the gateway and its workers export on ``/metrics``."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.accepted = Counter(
            "lgsp_documents_accepted", "Packages accepted at intake", ["kind"], registry=r
        )
        self.rejected = Counter(
            "lgsp_documents_rejected", "Packages rejected at intake", ["code"], registry=r
        )
        self.deliveries = Counter(
            "lgsp_deliveries", "Delivery attempts by adapter and outcome", ["adapter", "outcome"],
            registry=r,
        )
        self.accept_latency_s = Histogram(
            "lgsp_accept_latency_seconds", "Intake request to 202", buckets=_LATENCY_BUCKETS_S,
            registry=r,
        )
        self.delivery_latency_s = Histogram(
            "lgsp_delivery_latency_seconds", "Acceptance to delivered", ["adapter"],
            buckets=_LATENCY_BUCKETS_S, registry=r,
        )
        self.verify_latency_s = Histogram(
            "lgsp_signature_verify_seconds", "Signature verification time", ["format"],
            buckets=_LATENCY_BUCKETS_S, registry=r,
        )
        self.queue_depth = Gauge(
            "lgsp_queue_depth", "Messages waiting per queue", ["queue"], registry=r
        )
        self.national_poll_lag_s = Gauge(
            "lgsp_national_poll_lag_seconds", "Age of the last successful national poll",
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
