"""RabbitMQ for the gateway: topology, confirmed publishing, consuming and dead-letter replay."""

from gateway.broker.consumer import Received, Subscription
from gateway.broker.failures import BROKER_UNAVAILABLE, TOPOLOGY_MISMATCH
from gateway.broker.messages import METHODS, DeliveryMessage
from gateway.broker.publisher import Broker
from gateway.broker.topology import DEFAULT_PREFIX, DEFAULT_RETRY_DELAYS_S, Topology

__all__ = [
    "BROKER_UNAVAILABLE",
    "DEFAULT_PREFIX",
    "DEFAULT_RETRY_DELAYS_S",
    "METHODS",
    "TOPOLOGY_MISMATCH",
    "Broker",
    "DeliveryMessage",
    "Received",
    "Subscription",
    "Topology",
]
