"""``lgsp demo init``: a complete demo setup (settings, directory, PKI, credentials) in a dir."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
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
from gateway.core.errors import ConfigError, UnavailableError
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
_WRITTEN = (CONFIG_NAME, DIRECTORY_NAME, CREDENTIALS_NAME)
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


def init_demo(
    dir: Path,
    *,
    port: int = DEFAULT_PORT,
    broker_url: str = DEFAULT_BROKER_URL,
    store_url: str | None = None,
    prefix: str | None = None,
    force: bool = False,
    national_port: int | None = None,
) -> DemoSetup:
    """Write ``gateway.toml``, ``participants.toml``, ``pki/`` and ``credentials.json`` in ``dir``.

    With ``national_port``, national delivery is enabled against the national simulator on that
    port (``national-sim.toml`` holds its systems: this gateway and the national agencies'),
    so documents to ``000.00.00.G22`` reach it; without, the gateway refuses them
    (``routing.no_adapter``). Refuses (``config.demo_exists``) when ``dir`` already holds a
    demo, unless ``force``; then the PKI, every key and the admin token are made anew, and the
    demo's own SQLite store is removed (its directory and console users would keep the old
    keys and passwords: the store, once seeded, is the directory). A ``store_url`` store is
    not touched: ``lgsp directory import`` loads the new directory into it.
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
    if existing and force and store_url is None:
        for suffix in ("", "-wal", "-shm"):
            (root / f"{STORE_NAME}{suffix}").unlink(missing_ok=True)
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
        national_secrets={
            p.organ_id: secrets.token_urlsafe(32)
            for p in directory
            if p.kind is not ParticipantKind.NATIONAL
        },
        national_port=national_port,
    )
    if national_port is not None:
        _write_national_sim(setup)
    (root / SOAP_ROUTES_NAME).write_text(SOAP_ROUTES_TOML, encoding="utf-8")
    _write_private(
        root / SYSTEMS_NAME,
        local_systems_toml(
            (organ_id, secret, organ_id) for organ_id, secret in setup.national_secrets.items()
        ),
    )
    setup.directory_path.write_text(dump_directory(directory), encoding="utf-8")
    setup.config_path.write_text(settings_toml(setup), encoding="utf-8")
    _write_private(setup.credentials_path, credentials_json(setup))
    return setup


def _write_national_sim(setup: DemoSetup) -> None:
    """The gateway's national secret, and the simulator's systems (both mode 0600)."""
    gateway_secret = secrets.token_urlsafe(32)
    _write_private(setup.dir / NATIONAL_SECRET_NAME, gateway_secret + "\n")
    national = [
        p.organ_id for p in pki.DEMO_PARTICIPANTS if p.kind.value == ParticipantKind.NATIONAL.value
    ]
    systems = (
        (GATEWAY_SYSTEM_ID, gateway_secret, PROVINCE_PATTERNS),
        (NATIONAL_SYSTEM_ID, secrets.token_urlsafe(32), tuple(national)),
    )
    lines = ["# The national platform simulator's systems (lgsp sim national --config THIS).", ""]
    for system_id, secret, organ_ids in systems:
        lines += [
            "[[system]]",
            f"system_id = {_toml_string(system_id)}",
            f"secret = {_toml_string(secret)}",
            f"organ_ids = [{', '.join(_toml_string(o) for o in organ_ids)}]",
            "",
        ]
    _write_private(setup.dir / SIM_CONFIG_NAME, "\n".join(lines))


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
    return "\n".join(
        [
            HEADER,
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
            "[rate_limit]  # per 60 s, shared by all processes; demos and benchmarks send a lot",
            "participant_requests = 100000",
            "",
            "[push]  # push URLs may name these hosts although not public (local receivers)",
            'allow_private_hosts = ["127.0.0.1", "localhost", "::1"]',
            "",
            *_national_toml(setup),
            "[soap]",
            '# SOAP services: a participant whose delivery method is "soap" and url',
            '# "national-documents" is called through this route',
            f"# (`lgsp sim soap` serves it on {SOAP_SIM_ENDPOINT}).",
            f"routes_path = {_toml_string(SOAP_ROUTES_NAME)}",
            "",
        ]
    )


def _national_toml(setup: DemoSetup) -> list[str]:
    """``[national]`` against the simulator, when the demo has one."""
    if setup.national_endpoint is None:
        return [
            "# No [national] section: national delivery is disabled, and documents to the",
            "# national platform (000.00.00.G22) are refused with routing.no_adapter.",
            "",
        ]
    return [
        "[national]  # the national platform: here `lgsp sim national` (scripts/demo starts it)",
        "enabled = true",
        f"endpoint = {_toml_string(setup.national_endpoint)}",
        f"system_id = {_toml_string(GATEWAY_SYSTEM_ID)}",
        f"secret_file = {_toml_string(NATIONAL_SECRET_NAME)}",
        f"poll_interval_s = {NATIONAL_POLL_S}",
        "",
    ]


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
        lines += [
            "[[admin.user]]",
            f"username = {_toml_string(name)}",
            f"password_hash = {_toml_string(password_hash)}",
            f"role = {_toml_string(role)}",
            "",
        ]
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
    console = {
        name: {"password": password, "role": roles[name]}
        for name, password in setup.console_passwords.items()
    }
    return json.dumps({**data, CONSOLE_ENTRY: console}, ensure_ascii=False, indent=2) + "\n"


def _toml_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by the owner only (0600, also when it existed)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)


@dataclass(frozen=True, slots=True)
class Cleaned:
    """What ``clean_demo`` removed."""

    dir: Path
    removed: tuple[str, ...]
    broker_prefix: str | None  # None: the broker was left alone
    dir_removed: bool


def demo_config(dir: Path) -> Path:
    """``dir/gateway.toml`` if ``lgsp demo init`` wrote it; else ``config.not_a_demo``."""
    config = dir.resolve() / CONFIG_NAME
    try:
        first = config.read_text(encoding="utf-8").splitlines()[:1]
    except OSError as exc:
        raise ConfigError(
            f"{dir.resolve()} holds no demo ({config}: {exc.strerror})",
            code="config.not_a_demo",
            path=str(config),
        ) from exc
    if first != [HEADER]:
        raise ConfigError(
            f"{config} was not written by `lgsp demo init`: not touching it",
            code="config.not_a_demo",
            path=str(config),
        )
    return config


async def clean_demo(dir: Path, *, broker: bool = True) -> Cleaned:
    """Delete the demo's broker queues and exchange (its own prefix), then the files and
    directories ``init_demo`` generated in ``dir`` (and ``dir`` itself when left empty)."""
    from gateway.broker import Broker  # noqa: PLC0415 (only this command talks to the broker)
    from gateway.broker.messages import METHODS  # noqa: PLC0415
    from gateway.core.settings import load_settings  # noqa: PLC0415

    config = demo_config(dir)
    root = config.parent
    prefix = None
    if broker:
        conf = load_settings(config).broker
        try:
            connected = await Broker.connect(
                conf.urls,
                prefix=conf.prefix,
                methods=METHODS,
                retry_delays_s=conf.retry_delays_s,
                connect_timeout_s=10,
            )
        except UnavailableError as exc:
            raise UnavailableError(
                f"cannot reach the broker to delete the demo's queues ({exc.message}); start "
                "it, or pass --keep-broker",
                code="unavailable.broker",
            ) from exc
        async with connected:
            await connected.delete_topology()
        prefix = conf.prefix
    removed = []
    for name in GENERATED:
        path = root / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        else:
            continue
        removed.append(name)
    dir_removed = not any(root.iterdir())
    if dir_removed:
        root.rmdir()
    return Cleaned(root, tuple(removed), prefix, dir_removed)
