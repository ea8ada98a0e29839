"""The operations kit: ``config/production.example.toml`` passes ``lgsp config check`` once its
files exist, and the systemd units start real ``lgsp`` commands."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import build_parser
from gateway.core.settings import load_settings
from gateway.demo import pki
from gateway.demo.setup import init_demo

ROOT = Path(__file__).resolve().parents[2]
LGSP = Path(sys.executable).with_name("lgsp")
EXAMPLE = ROOT / "config" / "production.example.toml"
UNITS = ROOT / "config" / "systemd"


def _lay_out(tmp_path: Path) -> Path:
    """The example with its /etc/lgsp and /var/lib/lgsp under tmp_path, and the files it names:
    a trust store (the demo root standing in for the national root CA, with its CRL), the gateway
    identity, TLS files, the directory, the local systems' secrets and the national secret."""
    etc, var = tmp_path / "etc" / "lgsp", tmp_path / "var" / "lib" / "lgsp"
    demo = init_demo(tmp_path / "demo")
    shutil.copytree(demo.pki_dir, etc / "pki")
    var.mkdir(parents=True)
    shutil.copy(demo.directory_path, var / "participants.toml")
    shutil.copy(demo.dir / "national-systems.toml", etc / "national-systems.toml")
    (etc / "national.secret").write_text("s3cret\n", encoding="utf-8")
    tls = etc / "tls"
    tls.mkdir()
    server = pki.PkiLayout(etc / "pki").identity_dir(pki.GATEWAY_ID)
    shutil.copy(server / "chain.pem", tls / "gateway.fullchain.pem")
    shutil.copy(server / "key.pem", tls / "gateway.key.pem")
    shutil.copy(pki.PkiLayout(etc / "pki").ca_cert_path, tls / "client-ca.pem")
    text = EXAMPLE.read_text(encoding="utf-8")
    text = text.replace("/etc/lgsp", str(etc)).replace("/var/lib/lgsp", str(var))
    config = etc / "gateway.toml"
    config.write_text(text, encoding="utf-8")
    return config


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("LGSP_")}


def test_the_production_example_passes_config_check(tmp_path: Path) -> None:
    config = _lay_out(tmp_path)

    checked = subprocess.run(
        [str(LGSP), "config", "check", "--config", str(config), "--strict"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert checked.returncode == 0, checked.stderr
    assert checked.stderr == ""  # no warning: every participant's method has a delivery
    assert checked.stdout.startswith(f"OK: {config} is valid (7 participants, 1 trusted CA")
    lines = checked.stdout.splitlines()
    assert "store.url = postgresql+asyncpg://lgsp@db.lgsp.internal:5432/lgsp" in lines
    assert "national.enabled = true" in lines
    assert f"http.tls_client_ca = {config.parent / 'tls' / 'client-ca.pem'}" in lines

    # the secrets come from the environment (lgsp.env), masked when shown
    with_secrets = {**_env(), "LGSP_STORE__URL": "postgresql+asyncpg://lgsp:pw@db:5432/lgsp"}
    shown = subprocess.run(
        [str(LGSP), "config", "check", "--config", str(config)],
        env=with_secrets,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "store.url = postgresql+asyncpg://lgsp:***@db:5432/lgsp" in shown.stdout.splitlines()
    settings = load_settings(config, env={})
    assert settings.http.tls_cert is not None
    assert settings.national.secret_file == config.parent / "national.secret"


def test_the_production_example_names_missing_tls_files(tmp_path: Path) -> None:
    config = _lay_out(tmp_path)
    (config.parent / "tls" / "client-ca.pem").unlink()

    checked = subprocess.run(
        [str(LGSP), "config", "check", "--config", str(config)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert checked.returncode == 2
    assert checked.stderr.startswith("lgsp: config.tls: http.tls_client_ca: cannot load")


@pytest.mark.parametrize(
    ("unit", "role"), [("lgsp-gateway.service", "gateway"), ("lgsp-worker@.service", "worker")]
)
def test_the_systemd_units_run_real_lgsp_commands(unit: str, role: str) -> None:
    service = _section(UNITS / unit, "Service")
    assert service["User"] == ["lgsp"]
    assert "LGSP_CONFIG=/etc/lgsp/gateway.toml" in service["Environment"]
    [start] = service["ExecStart"]
    command = shlex.split(start)
    assert command[0] == "/opt/lgsp/venv/bin/lgsp"
    args = build_parser().parse_args(command[1:])
    assert (args.command, args.role) == ("run", role)
    assert service["KillSignal"] == ["SIGTERM"]
    assert service["ReadWritePaths"] == ["/var/lib/lgsp"]
    if role == "gateway":
        [check] = service["ExecStartPre"]
        assert build_parser().parse_args(shlex.split(check)[1:]).command == "config"


def _section(unit: Path, name: str) -> dict[str, list[str]]:
    """``Key=value`` lines of one ``[name]`` section; a key may repeat (systemd's Environment)."""
    values: dict[str, list[str]] = {}
    current = None
    for line in unit.read_text(encoding="utf-8").splitlines():
        if line.startswith("["):
            current = line.strip("[]")
        elif current == name and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values
