"""Typed application keys: everything a handler needs comes from the app, never from globals."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from gateway.broker import Broker
from gateway.core.directory import DirectoryHolder
from gateway.core.metrics import Metrics
from gateway.core.settings import Settings
from gateway.dispatch.publishing import Dispatcher
from gateway.intake.pipeline import Intake
from gateway.store import DeliveryLog
from gateway.store.participants import StoredDirectory
from gateway.web.rate_limits import RateLimits


@dataclass
class Lifecycle:
    """Shutdown state: once draining, intake answers 503 with Retry-After."""

    draining: bool = False
    retry_after_s: int = 5
    in_flight: set[object] = field(default_factory=set)


SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
DIRECTORY = web.AppKey("directory", DirectoryHolder)  # this process's snapshot
STORED_DIRECTORY = web.AppKey("stored_directory", StoredDirectory)  # changes go through it
DELIVERY_LOG = web.AppKey("delivery_log", DeliveryLog)
BROKER = web.AppKey("broker", Broker)
INTAKE = web.AppKey("intake", Intake)
DISPATCHER = web.AppKey("dispatcher", Dispatcher)
RATE_LIMITS = web.AppKey("rate_limits", RateLimits)
