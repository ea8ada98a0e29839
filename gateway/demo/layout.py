"""What a demo directory holds: its file names, the demo's fixed ids, and ``DemoSetup``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PORT = 8080
DEFAULT_BROKER_URL = "amqp://guest:guest@127.0.0.1:5672/"
ADMIN_TOKEN_PREFIX = "lgsp_admin_"  # noqa: S105 (a prefix, not a secret)
ADMIN_ENTRY = "_admin"
CONSOLE_ENTRY = "_console"
CONSOLE_USERS = (("viewer", "viewer"), ("operator", "operator"), ("admin", "administrator"))
CONFIG_NAME = "gateway.toml"
DIRECTORY_NAME = "participants.toml"
CREDENTIALS_NAME = "credentials.json"
PKI_NAME = "pki"
STORE_NAME = "var/delivery-log.db"
SYSTEMS_NAME = "national-systems.toml"  # southbound: local systems' protocol secrets
SIM_CONFIG_NAME = "national-sim.toml"  # the national simulator's systems (with their secrets)
SIM_DB_NAME = "var/national-sim.db"
NATIONAL_SECRET_NAME = "national.secret"  # noqa: S105 (a file name: the gateway's national secret)
GATEWAY_SYSTEM_ID = "lgsp-h56"  # the demo gateway's system on the (simulated) national platform
NATIONAL_SYSTEM_ID = "vpcp"  # the simulated national agencies' system (owns 000.00.00.G22)
PROVINCE_PATTERNS = ("*.H56", "*.A56", "0101234567")
NATIONAL_POLL_S = 5.0
SOAP_ROUTES_NAME = "soap-routes.toml"
SOAP_SIM_ENDPOINT = "http://127.0.0.1:8091/DocumentReceivingService"  # lgsp sim soap's default
PROVINCE = "000.00.00.H56"
# Everything ``init_demo`` may create in its directory (``clean_demo`` removes these only).
GENERATED = (
    CONFIG_NAME,
    DIRECTORY_NAME,
    CREDENTIALS_NAME,
    SYSTEMS_NAME,
    SIM_CONFIG_NAME,
    NATIONAL_SECRET_NAME,
    SOAP_ROUTES_NAME,
    PKI_NAME,
    "var",
    "first.edxml",
)
HEADER = "# LGSP demo gateway settings (written by `lgsp demo init`)."


@dataclass(frozen=True, slots=True)
class DemoSetup:
    """Where ``init_demo`` wrote things, and the plaintext secrets it made (only kept here)."""

    dir: Path
    config_path: Path
    directory_path: Path
    credentials_path: Path
    pki_dir: Path
    store_url: str
    broker_url: str
    broker_prefix: str
    port: int
    api_keys: Mapping[str, str]  # OrganId -> plaintext API key
    admin_token: str
    console_passwords: Mapping[str, str] = field(default_factory=dict)  # username -> password
    national_secrets: Mapping[str, str] = field(default_factory=dict)  # system_id = OrganId
    national_port: int | None = None  # the national simulator's port, when the demo uses one

    @property
    def national_endpoint(self) -> str | None:
        """The simulated national platform's URL (None: national delivery is not enabled)."""
        if self.national_port is None:
            return None
        return f"http://127.0.0.1:{self.national_port}/XrdAdapter/adapter"
