"""Settings: defaults < TOML < environment, path resolution, validation errors and masking."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.core.errors import ConfigError
from gateway.core.settings import (
    BrokerSettings,
    Settings,
    effective_settings_masked,
    load_settings,
)
from gateway.edxml.limits import DEFAULT_LIMITS

REPO = Path(__file__).resolve().parent.parent
TOKEN_HASH = "a" * 64


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_file_or_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    s = load_settings(None, {})
    assert s.broker == BrokerSettings()
    assert s.limits == DEFAULT_LIMITS
    assert s.http.port == 8080
    assert s.http.tls_cert is None
    assert s.pki.dir == tmp_path / "pki"
    assert s.store.url == f"sqlite+aiosqlite:///{tmp_path}/var/lgsp.db"


def test_toml_overrides_defaults_and_env_overrides_toml(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[http]
port = 9000
host = "0.0.0.0"
[broker]
url = "amqp://a:b@mq:5672/"
prefetch = 8
retry_delays_s = [1, 2.5]
[limits]
max_depth = 10
[log]
level = "debug"
json = false
""",
    )
    s = load_settings(path, {"LGSP_HTTP__PORT": "9443", "LGSP_BROKER__RETRY_DELAYS_S": "3, 4,5"})
    assert s.http.port == 9443  # env beats TOML
    assert s.http.host == "0.0.0.0"  # TOML beats default
    assert s.broker.prefetch == 8
    assert s.broker.retry_delays_s == (3.0, 4.0, 5.0)
    assert s.broker.max_tries == BrokerSettings().max_tries  # untouched default
    assert s.limits.max_depth == 10
    assert s.limits.max_bytes == DEFAULT_LIMITS.max_bytes
    assert s.log.level == "DEBUG"
    assert s.log.json is False


def test_environment_values_are_coerced_to_field_types(tmp_path: Path) -> None:
    env = {
        "LGSP_LOG__JSON": "off",
        "LGSP_LIMITS__MAX_ATTACHMENTS": "7",
        "LGSP_ADMIN__API_TOKEN_HASHES": f"{TOKEN_HASH},{'b' * 64}",
        "LGSP_BROKER__URL": "amqps://u:p@mq.example:5671/lgsp",
        "LGSP_SHARED_DIR": "/ignored/no/double/underscore",
    }
    s = load_settings(None, env)
    assert s.log.json is False
    assert s.limits.max_attachments == 7
    assert s.admin.api_token_hashes == (TOKEN_HASH, "b" * 64)
    assert s.broker.url == "amqps://u:p@mq.example:5671/lgsp"


def test_relative_paths_resolve_against_the_toml_directory(tmp_path: Path) -> None:
    conf = tmp_path / "etc"
    conf.mkdir()
    path = write(
        conf,
        """
[http]
tls_cert = "tls/cert.pem"
tls_key = "/abs/key.pem"
[pki]
dir = "../pki"
[store]
url = "sqlite+aiosqlite:///data/log.db"
""",
    )
    s = load_settings(path, {})
    assert s.http.tls_cert == conf / "tls" / "cert.pem"
    assert s.http.tls_key == Path("/abs/key.pem")
    assert s.pki.dir == tmp_path / "pki"
    assert s.directory.path == conf / "participants.toml"  # a default, resolved the same way
    assert s.store.url == f"sqlite+aiosqlite:///{conf}/data/log.db"


def test_relative_env_paths_resolve_against_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "etc"
    conf.mkdir()
    cwd = tmp_path / "run"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    s = load_settings(write(conf, ""), {"LGSP_PKI__DIR": "mypki"})
    assert s.pki.dir == cwd / "mypki"


def test_empty_env_value_unsets_an_optional_path(tmp_path: Path) -> None:
    path = write(
        tmp_path, '[http]\ntls_cert = "c.pem"\ntls_key = "k.pem"\ntls_client_ca = "ca.pem"\n'
    )
    s = load_settings(path, {"LGSP_HTTP__TLS_CLIENT_CA": ""})
    assert s.http.tls_client_ca is None
    assert s.http.tls_cert == tmp_path / "c.pem"


def test_postgres_url_is_kept_as_written(tmp_path: Path) -> None:
    url = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    assert load_settings(None, {"LGSP_STORE__URL": url}).store.url == url


@pytest.mark.parametrize(
    ("toml", "env", "key"),
    [
        ("[http]\nport = 70000\n", {}, "http.port"),
        ('[http]\nport = "80"\n', {}, "http.port"),
        ("", {"LGSP_HTTP__PORT": "eighty"}, "http.port"),
        ('[http]\ntls_cert = "c.pem"\n', {}, "http.tls_key"),
        ('[http]\ntls_client_ca = "ca.pem"\n', {}, "http.tls_client_ca"),
        ('[broker]\nurl = "http://mq/"\n', {}, "broker.url"),
        ("[broker]\nprefetch = 0\n", {}, "broker.prefetch"),
        ("[broker]\nretry_delays_s = []\n", {}, "broker.retry_delays_s"),
        ("[broker]\nretry_delays_s = [30, 5]\n", {}, "broker.retry_delays_s"),
        ("", {"LGSP_BROKER__RETRY_DELAYS_S": "5,x"}, "broker.retry_delays_s"),
        ("[broker]\nmax_tries = 0\n", {}, "broker.max_tries"),
        ('[broker]\nprefix = "Bad Prefix"\n', {}, "broker.prefix"),
        ('[store]\nurl = "mysql://x/y"\n', {}, "store.url"),
        ('[store]\nurl = "not a url"\n', {}, "store.url"),
        ("[limits]\nmax_depth = 0\n", {}, "limits.max_depth"),
        ("[limits]\nmax_bytes = 5\nmax_attachment_bytes = -1\n", {}, "limits.max_attachment_bytes"),
        ('[admin]\napi_token_hashes = ["plaintext-token"]\n', {}, "admin.api_token_hashes"),
        ('[log]\nlevel = "chatty"\n', {}, "log.level"),
        ("", {"LGSP_LOG__JSON": "maybe"}, "log.json"),
        ("[http]\nprot = 1\n", {}, "http.prot"),
        ("[htp]\nport = 1\n", {}, "htp"),
        ("", {"LGSP_BROKER__URLL": "amqp://x/"}, "broker.urll"),
    ],
)
def test_bad_values_raise_config_error_naming_the_key(
    tmp_path: Path, toml: str, env: dict[str, str], key: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, toml), env)
    assert info.value.code == "config.invalid"
    assert info.value.path == key


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as missing:
        load_settings(tmp_path / "absent.toml", {})
    assert missing.value.code == "config.unreadable"
    with pytest.raises(ConfigError) as broken:
        load_settings(write(tmp_path, "[http\nport = 1"), {})
    assert broken.value.code == "config.syntax"


def test_masked_view_hides_passwords_and_tokens(tmp_path: Path) -> None:
    env = {
        "LGSP_BROKER__URL": "amqp://lgsp:s3cret@mq:5672/",
        "LGSP_STORE__URL": "postgresql+asyncpg://gw:pg-pass@db:5432/lgsp",
        "LGSP_ADMIN__API_TOKEN_HASHES": TOKEN_HASH,
    }
    masked = effective_settings_masked(load_settings(None, env))
    assert masked["broker"]["url"] == "amqp://lgsp:***@mq:5672/"
    assert masked["store"]["url"] == "postgresql+asyncpg://gw:***@db:5432/lgsp"
    assert masked["admin"]["api_token_hashes"] == ["***"]
    text = repr(masked)
    assert "s3cret" not in text
    assert "pg-pass" not in text
    assert TOKEN_HASH not in text
    assert masked["broker"]["retry_delays_s"] == [5.0, 30.0, 120.0, 600.0, 3600.0]
    assert isinstance(masked["pki"]["dir"], str)


def test_masked_view_leaves_password_free_urls_alone() -> None:
    masked = effective_settings_masked(Settings())
    assert masked["store"]["url"] == Settings().store.url


def test_shipped_config_is_valid_and_documents_the_defaults() -> None:
    shipped = load_settings(REPO / "config" / "gateway.toml", {})
    defaults = Settings()
    assert shipped.http == defaults.http
    assert shipped.broker == defaults.broker
    assert shipped.limits == defaults.limits
    assert shipped.admin == defaults.admin
    assert shipped.log == defaults.log
    assert shipped.southbound == defaults.southbound
    assert (shipped.metrics, shipped.rate_limit, shipped.push) == (
        defaults.metrics,
        defaults.rate_limit,
        defaults.push,
    )
    assert shipped.directory.path == REPO / "config" / "participants.toml"


def test_metrics_rate_limit_and_push_values_are_checked(tmp_path: Path) -> None:
    for body, key in (
        ("[metrics]\nport = 70000", "metrics.port"),
        ('[metrics]\ntoken_hashes = ["not-a-hash"]', "metrics.token_hashes"),
        ("[metrics]\nrefresh_s = 0", "metrics.refresh_s"),
        ("[rate_limit]\nwindow_s = 0", "rate_limit.window_s"),
        ("[rate_limit]\nparticipant_requests = -1", "rate_limit.participant_requests"),
        ("[log]\nmetrics_port = 9101", "log.metrics_port"),
    ):
        with pytest.raises(ConfigError) as bad:
            load_settings(write(tmp_path, body + "\n"), {})
        assert bad.value.path == key
    env = {
        "LGSP_PUSH__ALLOW_PRIVATE_HOSTS": "127.0.0.1, receiver.internal",
        "LGSP_RATE_LIMIT__FAILED_AUTH_PER_ADDRESS": "0",
    }
    settings = load_settings(None, env)
    assert settings.push.allow_private_hosts == ("127.0.0.1", "receiver.internal")
    assert settings.rate_limit.failed_auth_per_address == 0


def test_southbound_defaults_accept_any_timestamp_and_values_are_checked(tmp_path: Path) -> None:
    conf = Settings().southbound
    assert (conf.timestamp_window_s, conf.acked_grace_s) == (0.0, 300.0)
    assert conf.replay_retention_s >= conf.acked_grace_s
    for body, key in (
        ("acked_grace_s = -1", "southbound.acked_grace_s"),
        ("replay_retention_s = 10\nacked_grace_s = 60", "southbound.replay_retention_s"),
    ):
        with pytest.raises(ConfigError) as bad:
            load_settings(write(tmp_path, f"[southbound]\n{body}\n"), {})
        assert bad.value.path == key


def test_national_section_needs_its_connection_and_masks_the_secret(tmp_path: Path) -> None:
    assert load_settings(REPO / "config" / "gateway.toml", {}).national == Settings().national
    with pytest.raises(ConfigError) as missing:
        load_settings(write(tmp_path, '[national]\nenabled = true\nendpoint = "http://n/a"\n'), {})
    assert missing.value.path == "national.system_id"
    path = write(
        tmp_path,
        """
[national]
enabled = true
endpoint = "http://127.0.0.1:8090/XrdAdapter/adapter"
system_id = "lgsp-h56"
secret = "s3cret-hmac-key"
""",
    )
    s = load_settings(path, {"LGSP_NATIONAL__POLL_INTERVAL_S": "2.5"})
    assert (s.national.system_id, s.national.poll_interval_s) == ("lgsp-h56", 2.5)
    masked = effective_settings_masked(s)
    assert masked["national"]["secret"] == "***"
    assert "s3cret-hmac-key" not in str(masked)
    with pytest.raises(ConfigError) as both:
        load_settings(path, {"LGSP_NATIONAL__SECRET_FILE": "key.txt"})
    assert both.value.path == "national.secret"  # secret or secret_file, not both


# --- broker.url: one node, or a cluster's nodes ------------------------------------------------

CLUSTER = ("amqp://gw:pw1@mq1:5672/", "amqp://gw:pw2@mq2:5672/", "amqps://gw:pw3@mq3:5671/")


def test_one_broker_url_stays_a_string(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, '[broker]\nurl = "amqp://gw:pw@mq:5672/"\n'), {})
    assert s.broker.url == "amqp://gw:pw@mq:5672/"
    assert s.broker.urls == ("amqp://gw:pw@mq:5672/",)
    env = load_settings(None, {"LGSP_BROKER__URL": "amqp://gw:pw@mq:5672/"})
    assert env.broker.urls == ("amqp://gw:pw@mq:5672/",)
    assert BrokerSettings().urls == (BrokerSettings().url,)


def test_a_cluster_is_a_toml_array_or_a_comma_separated_environment_value(
    tmp_path: Path,
) -> None:
    array = ", ".join(f'"{u}"' for u in CLUSTER)
    from_file = load_settings(write(tmp_path, f"[broker]\nurl = [{array}]\n"), {})
    assert from_file.broker.urls == CLUSTER
    from_env = load_settings(None, {"LGSP_BROKER__URL": " , ".join(CLUSTER)})
    assert from_env.broker.urls == CLUSTER
    overridden = load_settings(
        write(tmp_path, f"[broker]\nurl = [{array}]\n"), {"LGSP_BROKER__URL": CLUSTER[2]}
    )
    assert overridden.broker.urls == (CLUSTER[2],)


def test_every_cluster_node_is_masked(tmp_path: Path) -> None:
    masked = effective_settings_masked(load_settings(None, {"LGSP_BROKER__URL": ",".join(CLUSTER)}))
    assert masked["broker"]["url"] == [
        "amqp://gw:***@mq1:5672/",
        "amqp://gw:***@mq2:5672/",
        "amqps://gw:***@mq3:5671/",
    ]
    assert not any(secret in repr(masked) for secret in ("pw1", "pw2", "pw3"))


@pytest.mark.parametrize(
    ("toml", "env"),
    [
        ("[broker]\nurl = []\n", {}),
        ('[broker]\nurl = ["amqp://mq1/", "http://mq2/"]\n', {}),
        ('[broker]\nurl = ["amqp://mq1/", "amqp://mq1/"]\n', {}),
        ('[broker]\nurl = ["amqp://mq1/", 5]\n', {}),
        ("", {"LGSP_BROKER__URL": "amqp://mq1/,mq2"}),
        ("", {"LGSP_BROKER__URL": ","}),
        # an unencoded comma in a password splits the URL: refused, and the halves not shown
        ("", {"LGSP_BROKER__URL": "amqp://gw:s3c,r3t9@mq1/"}),
    ],
)
def test_bad_cluster_lists_are_refused(tmp_path: Path, toml: str, env: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, toml), env)
    assert caught.value.code == "config.invalid"
    assert caught.value.path == "broker.url"
    assert "r3t9" not in caught.value.message
