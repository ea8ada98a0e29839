"""``lgsp config check``: valid settings print masked values; a bad key exits 2 in one line."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.core.directory import hash_api_key
from gateway.core.settings import effective_settings_masked, load_settings
from gateway.demo.layout import DemoSetup
from gateway.demo.setup import init_demo
from gateway.store.delivery_log import DeliveryLog

REPO = Path(__file__).resolve().parents[2]

BROKER_PASSWORD = "s3cret-broker-pw"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoSetup:
    return init_demo(
        tmp_path_factory.mktemp("cfg") / "config",
        broker_url=f"amqp://lgsp:{BROKER_PASSWORD}@127.0.0.1:5672/",
        national_port=8090,
    )


@pytest.fixture(autouse=True)
def _no_env_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LGSP_CONFIG", raising=False)


def _variant(demo: DemoSetup, tmp_path: Path, **replacements: str) -> Path:
    """A copy of the demo settings in ``tmp_path`` with absolute paths and lines replaced."""
    text = demo.config_path.read_text(encoding="utf-8")
    text = text.replace('dir = "pki"', f'dir = "{demo.pki_dir}"')
    text = text.replace('path = "participants.toml"', f'path = "{demo.directory_path}"')
    text = text.replace(
        'systems_path = "national-systems.toml"',
        f'systems_path = "{demo.dir / "national-systems.toml"}"',
    )
    for old, new in replacements.items():
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["config", "check", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_valid_config_prints_masked_effective_values(
    demo: DemoSetup, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _check(capsys, "--config", str(demo.config_path))

    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith(f"OK: {demo.config_path} is valid (7 participants")
    assert "http.port = 8080" in lines
    assert "broker.url = amqp://lgsp:***@127.0.0.1:5672/" in lines
    assert f"pki.dir = {demo.pki_dir}" in lines
    assert 'admin.api_token_hashes = ["***"]' in lines
    assert "limits.max_depth = 64" in lines
    for secret in (BROKER_PASSWORD, demo.admin_token, hash_api_key(demo.admin_token)):
        assert secret not in out


def test_json_output_is_the_masked_settings(
    demo: DemoSetup, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _check(capsys, "--config", str(demo.config_path), "--json")

    assert code == 0
    assert json.loads(out) == effective_settings_masked(load_settings(demo.config_path))
    assert BROKER_PASSWORD not in out


def test_config_found_through_env_and_working_directory(
    demo: DemoSetup,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = _check(capsys)
    assert code == 2
    assert "config/gateway.toml" in err

    monkeypatch.chdir(demo.dir.parent)  # holds config/gateway.toml
    code, out, _ = _check(capsys)
    assert code == 0
    assert out.startswith("OK: config/gateway.toml is valid")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LGSP_CONFIG", str(demo.config_path))
    code, out, _ = _check(capsys)
    assert code == 0
    assert out.startswith(f"OK: {demo.config_path} is valid")


def test_bad_port_exits_2_with_one_line_naming_the_key(
    demo: DemoSetup, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = _variant(demo, tmp_path, **{"port = 8080": "port = 70000"})

    code, out, err = _check(capsys, "--config", str(path))

    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert "http.port" in err


@pytest.mark.parametrize(
    ("break_it", "key"),
    [
        ("no_directory_file", "directory.path"),
        ("bad_directory_entry", "directory.path"),
        ("no_store_dir", "store.url"),
        ("unknown_key", "http.colour"),
    ],
)
def test_broken_config_names_the_bad_key(
    demo: DemoSetup, capsys: pytest.CaptureFixture[str], tmp_path: Path, break_it: str, key: str
) -> None:
    directory_copy = tmp_path / "participants.toml"
    shutil.copy(demo.directory_path, directory_copy)
    replacements = {f'path = "{demo.directory_path}"': f'path = "{directory_copy}"'}
    if break_it == "no_directory_file":
        directory_copy.unlink()
    elif break_it == "bad_directory_entry":
        text = directory_copy.read_text(encoding="utf-8")
        directory_copy.write_text(
            text.replace('kind = "party"', 'kind = "guild"'), encoding="utf-8"
        )
    elif break_it == "no_store_dir":  # a directory that cannot be created: under a file
        (tmp_path / "a-file").write_text("not a directory", encoding="utf-8")
        replacements[demo.store_url] = f"sqlite+aiosqlite:///{tmp_path}/a-file/var/log.db"
    else:
        replacements["port = 8080"] = 'port = 8080\ncolour = "blue"'
    text = _variant(demo, tmp_path).read_text(encoding="utf-8")
    for old, new in replacements.items():
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8")

    code, out, err = _check(capsys, "--config", str(path))

    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert key in err


def test_participants_no_enabled_delivery_reaches_are_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    setup = init_demo(tmp_path / "site")  # national delivery disabled, G22 routed to it

    code, out, err = _check(capsys, "--config", str(setup.config_path))

    assert code == 0
    assert out.startswith(
        f"OK: {setup.config_path} is valid (7 participants, 1 trusted CA certificates, 1 warning)"
    )
    [line] = err.splitlines()
    assert line.startswith(
        "lgsp: warning: routing.no_adapter: participant 000.00.00.G22 is delivered by 'national'"
    )
    assert "[national] enabled = false" in line

    code, _, err = _check(capsys, "--config", str(setup.config_path), "--strict")
    assert code == 2
    assert "routing.no_adapter" in err


def test_tls_files_that_do_not_load_are_named(
    demo: DemoSetup, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "cert.pem").write_text("not a certificate", encoding="utf-8")
    config = _variant(
        demo,
        tmp_path,
        **{
            "[http]\n": (
                f'[http]\ntls_cert = "{tmp_path / "cert.pem"}"\n'
                f'tls_key = "{tmp_path / "cert.pem"}"\n'
            )
        },
    )

    code, out, err = _check(capsys, "--config", str(config), "--json")

    assert code == 2
    assert err.startswith("lgsp: config.tls: http.tls_cert: cannot load")
    assert json.loads(out)["path"] == "http.tls_cert"  # --json: the problem document


def test_no_trusted_ca_is_a_warning_and_with_strict_an_error(
    demo: DemoSetup, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = _variant(demo, tmp_path, **{f'dir = "{demo.pki_dir}"': f'dir = "{tmp_path / "pki"}"'})

    code, out, err = _check(capsys, "--config", str(path))
    assert code == 0
    assert out.startswith(f"OK: {path} is valid (7 participants, 0 trusted CA certificates, ")
    [warning] = [line for line in err.splitlines() if "config.trust_missing" in line]
    assert warning.startswith("lgsp: warning: config.trust_missing: pki.dir: ")
    assert "every signed package is refused" in warning
    assert not (tmp_path / "pki").exists(), "a check creates nothing"

    code, out, err = _check(capsys, "--config", str(path), "--strict")
    assert code == 2
    assert "lgsp: warning: config.trust_missing: pki.dir: " in err


def test_a_missing_store_directory_passes_the_check_and_is_created_at_start(
    demo: DemoSetup, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = _variant(demo, tmp_path, **{demo.store_url: "sqlite+aiosqlite:///var/lgsp.db"})

    code, _, err = _check(capsys, "--config", str(path))
    assert (code, err) == (0, "")
    assert not (tmp_path / "var").exists(), "a check creates nothing"

    async def open_and_close() -> None:
        log = await DeliveryLog.open(load_settings(path).store.url)
        await log.aclose()

    asyncio.run(open_and_close())
    assert (tmp_path / "var" / "lgsp.db").is_file()


@pytest.mark.parametrize("where", ["repository", "fresh clone"])
def test_the_repository_config_passes_from_a_fresh_clone(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, where: str
) -> None:
    """config/gateway.toml: paths relative to the file, nothing it needs outside the clone."""
    config = REPO / "config"
    if where == "fresh clone":  # what a clone has: the two files, no var/ and no pki/
        shutil.copytree(
            config,
            tmp_path / "config",
            ignore=lambda _dir, names: [n for n in names if n in ("var", "pki")],
        )
        config = tmp_path / "config"

    code, out, err = _check(capsys, "--config", str(config / "gateway.toml"))

    assert code == 0, err
    assert out.startswith(f"OK: {config / 'gateway.toml'} is valid")
    settings = load_settings(config / "gateway.toml")
    assert settings.pki.dir == config / "pki"
    assert settings.directory.path == config / "participants.toml"
    assert settings.store.url == f"sqlite+aiosqlite:///{config / 'var' / 'lgsp.db'}"
    assert all(line.startswith("lgsp: warning: ") for line in err.splitlines()), err
