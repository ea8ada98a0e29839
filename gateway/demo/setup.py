"""``lgsp demo init``: a complete demo setup (settings, directory, PKI, credentials) in a dir."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gateway.console.passwords import hash_password
from gateway.core.directory import (
    Delivery,
    Directory,
    Participant,
    ParticipantKind,
    ParticipantLevel,
    dump_directory,
    generate_api_key,
    hash_api_key,
)
from gateway.core.errors import ConfigError
from gateway.core.methods import DeliveryMethod
from gateway.demo import pki
from gateway.national.local_systems import local_systems_toml
from gateway.signatures.binding import fingerprint

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
NATIONAL_SIM_NAME = "national-sim.toml"  # `lgsp sim national --config`: the simulated platform
NATIONAL_SECRET_NAME = "national-secret.txt"  # noqa: S105 - a file name; the secret is inside
SOAP_ROUTES_NAME = "soap-routes.toml"
NATIONAL_SIM_ENDPOINT = "http://127.0.0.1:8090/XrdAdapter/adapter"  # lgsp sim national's default
SOAP_SIM_ENDPOINT = "http://127.0.0.1:8091/DocumentReceivingService"  # lgsp sim soap's default
PROVINCE = "000.00.00.H56"
_WRITTEN = (CONFIG_NAME, DIRECTORY_NAME, CREDENTIALS_NAME)


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
    platform_secret: str = ""  # this gateway's secret at the (simulated) national platform


def init_demo(
    dir: Path,
    *,
    port: int = DEFAULT_PORT,
    broker_url: str = DEFAULT_BROKER_URL,
    store_url: str | None = None,
    prefix: str | None = None,
    force: bool = False,
) -> DemoSetup:
    """Write ``gateway.toml``, ``participants.toml``, ``pki/`` and ``credentials.json`` in ``dir``.

    Refuses (``config.demo_exists``) when ``dir`` already holds a demo, unless ``force``; then
    the PKI, every key and the admin token are made anew.
    """
    root = dir.resolve()
    existing = [name for name in _WRITTEN if (root / name).exists()]
    if existing and not force:
        raise ConfigError(
            f"{root} already holds a demo ({', '.join(existing)}); use --force to replace it",
            code="config.demo_exists",
            path=str(root / existing[0]),
        )
    (root / "var").mkdir(parents=True, exist_ok=True)
    pki_dir = root / PKI_NAME
    pki.init_pki(pki_dir, force=force)
    api_keys, directory = _demo_directory(pki_dir)
    admin_token = ADMIN_TOKEN_PREFIX + secrets.token_urlsafe(32)
    setup = DemoSetup(
        dir=root,
        config_path=root / CONFIG_NAME,
        directory_path=root / DIRECTORY_NAME,
        credentials_path=root / CREDENTIALS_NAME,
        pki_dir=pki_dir,
        store_url=store_url or f"sqlite+aiosqlite:///{root / STORE_NAME}",
        broker_url=broker_url,
        broker_prefix=prefix or demo_prefix(root),
        port=port,
        api_keys=api_keys,
        admin_token=admin_token,
        console_passwords={name: secrets.token_urlsafe(12) for name, _ in CONSOLE_USERS},
        national_secrets={p.organ_id: secrets.token_urlsafe(32) for p in directory
                          if p.kind is not ParticipantKind.NATIONAL},
        platform_secret=secrets.token_urlsafe(32),
    )
    national = [p.organ_id for p in directory if p.kind is ParticipantKind.NATIONAL]
    local = [p.organ_id for p in directory if p.kind is not ParticipantKind.NATIONAL]
    _write_private(root / NATIONAL_SECRET_NAME, setup.platform_secret + "\n")
    _write_private(root / NATIONAL_SIM_NAME, national_sim_toml(setup, local, national))
    (root / SOAP_ROUTES_NAME).write_text(SOAP_ROUTES_TOML, encoding="utf-8")
    _write_private(root / SYSTEMS_NAME, local_systems_toml(
        (organ_id, secret, organ_id) for organ_id, secret in setup.national_secrets.items()))
    setup.directory_path.write_text(dump_directory(directory), encoding="utf-8")
    setup.config_path.write_text(settings_toml(setup), encoding="utf-8")
    _write_private(setup.credentials_path, credentials_json(setup))
    return setup


def demo_prefix(dir: Path) -> str:
    """A broker prefix of its own for each demo directory, so demos can share one broker."""
    digest = hashlib.sha256(str(dir.resolve()).encode("utf-8")).hexdigest()
    return f"lgsp-demo-{digest[:8]}"


def _demo_directory(pki_dir: Path) -> tuple[dict[str, str], Directory]:
    """One participant per demo identity, each with a fresh API key (only its hash is kept)."""
    api_keys: dict[str, str] = {}
    participants: list[Participant] = []
    for demo in pki.DEMO_PARTICIPANTS:
        plaintext, key_hash = generate_api_key()
        api_keys[demo.organ_id] = plaintext
        cert = pki.load_identity(pki_dir, demo.organ_id).certificate
        kind = ParticipantKind(demo.kind.value)
        national = kind is ParticipantKind.NATIONAL
        method = DeliveryMethod.NATIONAL if national else DeliveryMethod.MAILBOX
        participants.append(
            Participant(
                organ_id=demo.organ_id,
                name=demo.name,
                kind=kind,
                parent=demo.parent,
                level=ParticipantLevel(demo.level.value),
                api_key_hashes=(key_hash,),
                signing_cert_fingerprints=(fingerprint(cert),),
                delivery=Delivery(method=method),
            )
        )
    return api_keys, Directory(participants)


def settings_toml(setup: DemoSetup) -> str:
    """The demo's ``gateway.toml``; paths are relative to the file's directory."""
    admin_hash = hash_api_key(setup.admin_token)
    return "\n".join([
        "# LGSP demo gateway settings (written by `lgsp demo init`).",
        "# The participants' API keys and the admin token are in credentials.json (mode 0600).",
        "",
        "[http]",
        'host = "127.0.0.1"',
        f"port = {setup.port}",
        "",
        "[broker]",
        f"url = {_toml_string(setup.broker_url)}",
        f"prefix = {_toml_string(setup.broker_prefix)}",
        "",
        "[store]",
        f"url = {_toml_string(setup.store_url)}",
        "",
        "[pki]",
        f"dir = {_toml_string(PKI_NAME)}",
        "",
        "[directory]",
        f"path = {_toml_string(DIRECTORY_NAME)}",
        "",
        "[admin]",
        "# SHA-256 of the admin API token.",
        f"api_token_hashes = [{_toml_string(admin_hash)}]",
        "",
        *_console_users_toml(setup),
        "[southbound]  # the national SDK protocol for local systems (secrets: mode 0600)",
        f"systems_path = {_toml_string(SYSTEMS_NAME)}",
        "",
        "[national]",
        "# The national platform, simulated: run",
        f"#   lgsp sim national --config {NATIONAL_SIM_NAME} --db var/national-sim.db",
        "# then set enabled = true: national deliveries go there and the gateway polls it.",
        "enabled = false",
        f"endpoint = {_toml_string(NATIONAL_SIM_ENDPOINT)}",
        f"system_id = {_toml_string(PROVINCE)}",
        f"secret_file = {_toml_string(NATIONAL_SECRET_NAME)}",
        "",
        "[soap]",
        "# SOAP services: a participant whose delivery method is \"soap\" and url",
        "# \"national-documents\" is called through this route",
        f"# (`lgsp sim soap` serves it on {SOAP_SIM_ENDPOINT}).",
        f"routes_path = {_toml_string(SOAP_ROUTES_NAME)}",
        "",
    ])


def national_sim_toml(setup: DemoSetup, local: list[str], national: list[str]) -> str:
    """``lgsp sim national --config``: this gateway (for the province's organs) and the
    national participants, each a system of the simulated platform."""
    lines = ["# Systems of the simulated national platform (`lgsp sim national --config`).", ""]
    systems = [(PROVINCE, setup.platform_secret, local)]
    systems += [(organ, secrets.token_urlsafe(32), [organ]) for organ in national]
    for system_id, secret, organs in systems:
        lines += ["[[system]]", f"system_id = {_toml_string(system_id)}",
                  f"secret = {_toml_string(secret)}",
                  "organ_ids = [" + ", ".join(_toml_string(o) for o in organs) + "]", ""]
    return "\n".join(lines)


SOAP_ROUTES_TOML = f"""# SOAP routes (adapters/soap_routes.py); `lgsp sim soap` answers this one.
[[route]]
name = "national-documents"
wsdl = "document-service.wsdl"
operation = "ReceiveDocument"
endpoint = "{SOAP_SIM_ENDPOINT}"
user_id = "lgsp-thanhhoa"

[route.client]
instance = "VN"
member_class = "GOV"
member_code = "{PROVINCE}"
subsystem = "lgsp"

[route.service]
instance = "VN"
member_class = "GOV"
member_code = "000.00.00.G22"
subsystem = "ndxp"
service_code = "ReceiveDocument"
service_version = "v1"

[route.request]
DocumentId = "header.document_id"
Sender = "sender"
Receiver = "recipient"
Subject = "header.subject"
CodeNumber = "header.code.code_number"
CodeNotation = "header.code.code_notation"
PackageBase64 = "package_base64"
"""


def _console_users_toml(setup: DemoSetup) -> list[str]:
    """``[[admin.user]]`` tables of the web console users (argon2id hashes of their passwords)."""
    lines = ["# Web console users (/admin); their passwords are in credentials.json."]
    for name, role in CONSOLE_USERS:
        password_hash = hash_password(setup.console_passwords[name])
        lines += ["[[admin.user]]", f"username = {_toml_string(name)}",
                  f"password_hash = {_toml_string(password_hash)}",
                  f"role = {_toml_string(role)}", ""]
    return lines


def credentials_json(setup: DemoSetup) -> str:
    """``{OrganId: {"api_key", "name"}, …, "_admin": {"token"},
    "_console": {username: {"password", "role"}}}`` as JSON text."""
    names = {p.organ_id: p.name for p in pki.DEMO_PARTICIPANTS}
    data: dict[str, dict[str, str]] = {
        organ_id: {"api_key": key, "name": names[organ_id]}
        for organ_id, key in setup.api_keys.items()
    }
    for organ_id, secret in setup.national_secrets.items():  # the national SDK's credentials
        data[organ_id] |= {"system_id": organ_id, "secret": secret}
    data[ADMIN_ENTRY] = {"token": setup.admin_token}
    roles = dict(CONSOLE_USERS)
    console = {name: {"password": password, "role": roles[name]}
               for name, password in setup.console_passwords.items()}
    return json.dumps({**data, CONSOLE_ENTRY: console}, ensure_ascii=False, indent=2) + "\n"


def _toml_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by the owner only (0600, also when it existed)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
