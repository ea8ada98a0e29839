"""Console tests: the end-to-end gateway, a push receiver, and Chromium (fixtures defined in
``service_kit`` and ``console_kit``)."""

from console_kit import browser, chromium_path, console_clients
from service.service_kit import push_receiver, start_gateway

__all__ = ["browser", "chromium_path", "console_clients", "push_receiver", "start_gateway"]
