"""``lgsp demo init``: the setup loads, authenticates every participant, is not clobbered."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from directory_kit import directory_in

from gateway.cli import main
from gateway.core.directory import hash_api_key, load_directory
from gateway.core.methods import DeliveryMethod
from gateway.core.settings import load_settings
from gateway.demo import pki
from gateway.demo.layout import PROVINCE, DemoSetup
from gateway.demo.setup import demo_prefix, init_demo
from gateway.signatures.binding import fingerprint

LGSP = Path(sys.executable).with_name("lgsp")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoSetup:
    return init_demo(tmp_path_factory.mktemp("demo") / "site", port=9090)


def test_layout_and_credentials_file_is_private(demo: DemoSetup) -> None:
    root = demo.dir
    for name in (
        "gateway.toml",
        "participants.toml",
        "credentials.json",
        "var",
        "pki/trust/ca/root.pem",
        "pki/trust/crl/root.crl.pem",
        "pki/gateway/cert.pem",
    ):
        assert (root / name).exists(), name
    assert stat.S_IMODE(demo.credentials_path.stat().st_mode) == 0o600

    creds = json.loads(demo.credentials_path.read_text(encoding="utf-8"))
    organ_ids = [p.organ_id for p in pki.DEMO_PARTICIPANTS]
    assert sorted(creds) == sorted([*organ_ids, "_admin", "_console"])
    for p in pki.DEMO_PARTICIPANTS:
        assert creds[p.organ_id]["name"] == p.name
        assert creds[p.organ_id]["api_key"] == demo.api_keys[p.organ_id]
        assert creds[p.organ_id]["api_key"].startswith("lgsp_")
    assert creds["_admin"] == {"token": demo.admin_token}


def test_settings_load_with_the_demo_values(demo: DemoSetup) -> None:
    settings = load_settings(demo.config_path, env={})

    assert settings.http.port == 9090
    assert settings.broker.url == "amqp://guest:guest@127.0.0.1:5672/"
    assert settings.broker.prefix == demo.broker_prefix == demo_prefix(demo.dir)
    assert settings.store.url == f"sqlite+aiosqlite:///{demo.dir}/var/delivery-log.db"
    assert settings.pki.dir == demo.dir / "pki"
    assert settings.directory.path == demo.dir / "participants.toml"
    assert settings.admin.api_token_hashes == (hash_api_key(demo.admin_token),)


def test_directory_has_every_demo_participant_and_keys_authenticate(demo: DemoSetup) -> None:
    directory = load_directory(demo.directory_path)
    creds = json.loads(demo.credentials_path.read_text(encoding="utf-8"))

    assert len(directory) == len(pki.DEMO_PARTICIPANTS)
    for expected in pki.DEMO_PARTICIPANTS:
        found = directory.get(expected.organ_id)
        assert found is not None
        assert (found.name, found.kind.value, found.level, found.parent) == (
            expected.name,
            expected.kind.value,
            expected.level.value,
            expected.parent,
        )
        method = (
            DeliveryMethod.NATIONAL
            if expected.kind is pki.ParticipantKind.NATIONAL
            else DeliveryMethod.MAILBOX
        )
        assert found.delivery.method is method
        cert = pki.load_identity(demo.pki_dir, expected.organ_id).certificate
        assert found.signing_cert_fingerprints == (fingerprint(cert),)
        key = creds[expected.organ_id]["api_key"]
        assert directory.by_api_key(key) == found
    assert directory.by_api_key(creds["_admin"]["token"]) is None
    national = directory.national()
    assert national is not None
    assert national.organ_id == "000.00.00.G22"


def test_no_plaintext_secret_is_written_outside_credentials(demo: DemoSetup) -> None:
    written = demo.config_path.read_text(encoding="utf-8") + demo.directory_path.read_text(
        encoding="utf-8"
    )
    for secret in [*demo.api_keys.values(), demo.admin_token]:
        assert secret not in written


def test_each_demo_dir_gets_its_own_broker_prefix(tmp_path: Path) -> None:
    assert demo_prefix(tmp_path / "a") != demo_prefix(tmp_path / "b")
    assert demo_prefix(tmp_path / "a") == demo_prefix(tmp_path / "x" / ".." / "a")


def test_cli_init_prints_next_steps_and_refuses_to_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = tmp_path / "site"
    store_url = f"sqlite+aiosqlite:///{tmp_path}/elsewhere.db"
    assert (
        main(
            [
                "demo",
                "init",
                str(site),
                "--port",
                "8181",
                "--store-url",
                store_url,
                "--broker-url",
                "amqp://lgsp:pw@127.0.0.1:5672/",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    config = site.resolve() / "gateway.toml"
    assert out.count("Next steps") == 1
    assert f"lgsp run --config {config}" in out
    assert f"lgsp send {site.resolve() / 'first.edxml'} --config {config} --as 000.00.04.H56" in out
    settings = load_settings(config, env={})
    assert (settings.http.port, settings.store.url) == (8181, store_url)
    assert settings.broker.url == "amqp://lgsp:pw@127.0.0.1:5672/"
    assert settings.national.enabled
    assert settings.national.endpoint == "http://127.0.0.1:8191/XrdAdapter/adapter"
    before = (site / "credentials.json").read_text(encoding="utf-8")

    assert main(["demo", "init", str(site)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert "config.demo_exists" in captured.err
    assert "--force" in captured.err
    assert (site / "credentials.json").read_text(encoding="utf-8") == before

    assert main(["demo", "init", str(site), "--force"]) == 0
    after = json.loads((site / "credentials.json").read_text(encoding="utf-8"))
    old = json.loads(before)
    assert after["000.00.00.H56"]["api_key"] != old["000.00.00.H56"]["api_key"]
    assert stat.S_IMODE((site / "credentials.json").stat().st_mode) == 0o600
    directory = load_directory(site / "participants.toml")
    assert directory.by_api_key(old["000.00.00.H56"]["api_key"]) is None
    assert directory.by_api_key(after["000.00.00.H56"]["api_key"]) is not None


def test_console_script_init_then_config_check(tmp_path: Path) -> None:
    site = tmp_path / "site"
    init = subprocess.run(
        [str(LGSP), "demo", "init", str(site)], capture_output=True, text=True, check=False
    )
    assert init.returncode == 0, init.stderr
    assert "Next steps" in init.stdout

    check = subprocess.run(
        [str(LGSP), "config", "check", "--config", str(site / "gateway.toml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    assert "http.port = 8080" in check.stdout
    assert f"broker.prefix = {demo_prefix(site)}" in check.stdout


def test_national_section_points_at_the_simulator_and_a_soap_route_is_written(
    tmp_path: Path,
) -> None:
    from adapters.soap_routes import load_routes  # noqa: PLC0415 (the SOAP stack is heavy)
    from gateway.national.simulator import load_sim_config  # noqa: PLC0415

    demo = init_demo(tmp_path / "site", port=9090, national_port=9100)
    settings = load_settings(demo.config_path, env={})
    national = settings.national
    assert national.enabled is True
    assert national.endpoint == "http://127.0.0.1:9100/XrdAdapter/adapter"
    assert national.secret_file is not None
    assert stat.S_IMODE(national.secret_file.stat().st_mode) == 0o600
    sim = load_sim_config(demo.dir / "national-sim.toml")
    credentials = sim.credentials(national.system_id)
    assert credentials is not None
    assert credentials.secret == national.secret_file.read_text(encoding="utf-8").strip()
    assert "000.00.00.G22" in {o for s in sim.systems for o in s.organ_ids}
    assert settings.soap.routes_path == demo.dir / "soap-routes.toml"
    routes = load_routes(settings.soap.routes_path)
    assert routes["national-documents"].endpoint == "http://127.0.0.1:8091/DocumentReceivingService"


async def test_force_replaces_the_demos_own_store_so_its_new_keys_are_the_directory(
    tmp_path: Path,
) -> None:
    setup = init_demo(tmp_path / "site")
    async with directory_in(setup.store_url) as stored:
        await stored.open(setup.directory_path)  # a first start seeded the store

    again = init_demo(setup.dir, force=True)

    async with directory_in(again.store_url) as stored:
        directory = await stored.open(again.directory_path)
    assert directory.by_api_key(again.api_keys[PROVINCE]) is not None
    assert directory.by_api_key(setup.api_keys[PROVINCE]) is None
