"""Files holding packages or keys are the owner's alone (0600), and secrets inside URLs are
masked wherever settings or log lines show them."""

from __future__ import annotations

import io
import json
import os
import stat
from collections.abc import Iterator
from contextlib import redirect_stderr
from pathlib import Path

import pytest
import structlog

from gateway.cli import main
from gateway.core.logs import configure_logging
from gateway.core.redact import mask_url, mask_urls_in
from gateway.core.settings import effective_settings_masked, load_settings
from gateway.demo import pki
from gateway.demo.setup import init_demo
from gateway.store import DeliveryLog


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The most permissive umask, so that only the code's own modes protect the files."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


async def test_a_new_sqlite_delivery_log_and_its_wal_are_created_0600(
    tmp_path: Path, open_umask: None
) -> None:
    db = tmp_path / "log.db"
    log = await DeliveryLog.open(f"sqlite+aiosqlite:///{db}")
    try:
        await log.ping()
        wal = db.with_name("log.db-wal")
        assert mode(db) == 0o600
        assert wal.exists()
        assert mode(wal) == 0o600
    finally:
        await log.aclose()


def test_private_keys_and_demo_secrets_are_0600(tmp_path: Path, open_umask: None) -> None:
    setup = init_demo(tmp_path / "demo")
    keys = sorted(setup.pki_dir.rglob("*key*.pem"))
    assert keys, "the demo PKI wrote no key"
    assert {mode(key) for key in keys} == {0o600}
    assert mode(setup.credentials_path) == 0o600
    assert mode(setup.dir / "national-systems.toml") == 0o600
    assert mode(setup.pki_dir / pki.GATEWAY_ID / "key.pem") == 0o600


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("amqp://guest:guest@127.0.0.1:5672/", "amqp://guest:***@127.0.0.1:5672/"),
        (
            "postgresql+asyncpg://lgsp@db/lgsp?password=s3cret&ssl=require",
            "postgresql+asyncpg://lgsp@db/lgsp?password=***&ssl=require",
        ),
        (
            "https://h/x?access_token=abc&api_key=def&page=2#frag",
            "https://h/x?access_token=***&api_key=***&page=2#frag",
        ),
        (
            "http://user:p%40ss@host:8080/XrdAdapter/adapter",
            "http://user:***@host:8080/XrdAdapter/adapter",
        ),
        ("sqlite+aiosqlite:////var/lib/lgsp/log.db", "sqlite+aiosqlite:////var/lib/lgsp/log.db"),
    ],
)
def test_secret_parts_of_urls_are_masked_and_nothing_else(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_config_check_masks_every_url_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    setup = init_demo(tmp_path / "demo")
    env = {
        "LGSP_STORE__URL": "postgresql+asyncpg://lgsp@db/lgsp?password=pg-secret",
        "LGSP_BROKER__URL": "amqps://gw:amqp-secret@mq/",
        "LGSP_NATIONAL__ENABLED": "true",
        "LGSP_NATIONAL__ENDPOINT": "https://sys:ep-secret@vdxp.example/XrdAdapter/adapter",
        "LGSP_NATIONAL__SYSTEM_ID": "000.00.00.H56",
        "LGSP_NATIONAL__SECRET": "hmac-secret",
        "LGSP_METRICS__TOKEN_HASHES": "a" * 64,
    }
    masked = json.dumps(effective_settings_masked(load_settings(setup.config_path, env=env)))
    for secret in ("pg-secret", "amqp-secret", "ep-secret", "hmac-secret", "a" * 64):
        assert secret not in masked
    assert "https://sys:***@vdxp.example/XrdAdapter/adapter" in masked

    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        code = main(["config", "check", "--config", str(setup.config_path), "--json"])
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    printed = capsys.readouterr().out
    for secret in ("pg-secret", "amqp-secret", "ep-secret", "hmac-secret"):
        assert secret not in printed
    assert code in (0, 2)  # the check may fail to reach the fake hosts: it prints nothing secret


def test_log_lines_mask_urls_in_messages_and_tracebacks() -> None:
    stream = io.StringIO()
    with redirect_stderr(stream):
        configure_logging("info", json=True)
        log = structlog.get_logger("test")
        log.warning("cannot_reach", error="cannot reach https://u:pw-secret@h/in?token=t-secret")
        try:
            raise ConnectionError("amqp://gw:amqp-secret@mq/ refused")
        except ConnectionError:
            log.exception("broker_down")
    structlog.reset_defaults()
    text = stream.getvalue()
    assert "pw-secret" not in text
    assert "t-secret" not in text
    assert "amqp-secret" not in text
    assert "https://u:***@h/in?token=***" in text


def test_mask_urls_in_leaves_plain_text_alone() -> None:
    assert mask_urls_in("no url here: password=x") == "no url here: password=x"
