"""``lgsp demo init``: a complete demo setup (settings, directory, PKI, credentials) in a dir."""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

from gateway.core.directory import (
    Delivery,
    Directory,
    Participant,
    ParticipantKind,
    ParticipantLevel,
    dump_directory,
    generate_api_key,
)
from gateway.core.errors import ConfigError
from gateway.core.methods import DeliveryMethod
from gateway.demo import pki
from gateway.demo.file_texts import SOAP_ROUTES_TOML, credentials_json, settings_toml, toml_string
from gateway.demo.layout import (
    ADMIN_TOKEN_PREFIX,
    CONFIG_NAME,
    CONSOLE_USERS,
    CREDENTIALS_NAME,
    DEFAULT_BROKER_URL,
    DEFAULT_PORT,
    DIRECTORY_NAME,
    GATEWAY_SYSTEM_ID,
    NATIONAL_SECRET_NAME,
    NATIONAL_SYSTEM_ID,
    PKI_NAME,
    PROVINCE_PATTERNS,
    SIM_CONFIG_NAME,
    SOAP_ROUTES_NAME,
    STORE_NAME,
    SYSTEMS_NAME,
    DemoSetup,
)
from gateway.national.local_systems import local_systems_toml
from gateway.signatures.binding import fingerprint

_WRITTEN = (CONFIG_NAME, DIRECTORY_NAME, CREDENTIALS_NAME)


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
            f"system_id = {toml_string(system_id)}",
            f"secret = {toml_string(secret)}",
            f"organ_ids = [{', '.join(toml_string(o) for o in organ_ids)}]",
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


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by the owner only (0600, also when it existed)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
