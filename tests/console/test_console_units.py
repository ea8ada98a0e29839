"""Console parts without services: passwords, the catalogue, search fields, the participant
form, reading stored packages, and the ``[[admin.user]]`` settings."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from service.service_kit import DEPARTMENT, DISTRICT, new_document

from gateway.cli import main
from gateway.console.detail import attachment_file, package_detail
from gateway.console.i18n import MESSAGES, Translator, choose_language
from gateway.console.pages_search import search_filter
from gateway.console.participant_form import directory_entry, form_values
from gateway.console.passwords import hash_password, parse_hash, verify_password
from gateway.core.directory import Delivery, Participant, participant_from_mapping
from gateway.core.errors import ConfigError, InputError, NotFoundError
from gateway.core.methods import DeliveryMethod
from gateway.core.settings import ConsoleRole, effective_settings_masked, load_settings
from gateway.demo import pki
from gateway.edxml import json_codec
from gateway.edxml.formats import PackageFormat
from gateway.edxml.limits import DEFAULT_LIMITS
from gateway.edxml.model import StatusCode
from gateway.edxml.xml_codec import serialize_package
from gateway.signatures.binding import fingerprint
from gateway.signatures.jws import sign_jws
from gateway.signatures.xmldsig import sign_xml
from gateway.store import DeliveryState
from gateway.store.records import EventKind

TEMPLATES = Path(__file__).resolve().parents[2] / "gateway" / "console" / "templates"
CONSOLE = TEMPLATES.parent


# -- passwords ------------------------------------------------------------------------------


def test_password_hashes_verify_and_carry_their_parameters() -> None:
    stored = hash_password("mật khẩu đúng")
    assert re.fullmatch(
        r"\$argon2id\$v=19\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+", stored
    )
    parsed = parse_hash(stored)
    assert verify_password("mật khẩu đúng", parsed)
    assert not verify_password("mật khẩu sai", parsed)
    assert hash_password("mật khẩu đúng") != stored  # a fresh salt each time
    other = str(parsed).replace(",t=3,", ",t=2,")  # other parameters: the same key won't match
    assert not verify_password("mật khẩu đúng", parse_hash(other))


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "bcrypt$x",
        "scrypt$15$8$1$c2FsdHNhbHQ=$" + "A" * 44,
        "$argon2id$v=19$m=x$salt$hash",
        "$argon2id$v=19",
        "argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$" + "A" * 43,
    ],
)
def test_malformed_password_hashes_are_configuration_errors(bad: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_hash(bad)
    assert caught.value.code == "config.password_hash"


# -- the catalogue --------------------------------------------------------------------------


def _dynamic_keys() -> set[str]:
    """Keys the templates build from values (``"state." ~ d.state.value`` …)."""
    keys = {f"state.{s.value}" for s in DeliveryState} | {f"event.{e.value}" for e in EventKind}
    keys |= {f"role.{r.value}" for r in ConsoleRole} | {"kind.document", "kind.status"}
    keys |= {f"btype.{n}" for n in "0123"}
    keys |= {f"health.{s}" for s in ("ok", "down", "not_configured", "configured")}
    keys |= {f"error.{n}" for n in (400, 403, 404, 409, 500, 503)}
    return keys


def test_every_string_the_console_uses_is_in_both_languages() -> None:
    sources = [
        p.read_text(encoding="utf-8") for p in [*TEMPLATES.glob("*.html"), *CONSOLE.glob("*.py")]
    ]
    literal = {k for text in sources for k in re.findall(r'\bt\("([a-z0-9_.]+[a-z0-9_])"', text)}
    literal |= {
        k
        for text in sources
        for k in re.findall(r'"([a-z]+\.[a-z0-9_]+)"\)', text)
        if k.split(".")[0] in {"health", "field"}
    }
    used = literal | _dynamic_keys()
    assert len(literal) > 100
    assert sorted(used - MESSAGES.keys()) == []
    for key, (vi, en) in MESSAGES.items():
        assert vi.strip(), key
        assert en.strip(), key


def test_translator_language_statuses_and_times() -> None:
    assert choose_language(None, None) == "vi"
    assert choose_language("en", "vi") == "en"
    assert choose_language("fr", "en") == "en"
    vi, en = Translator("vi"), Translator("en")
    assert vi("dead.done", n=3) == "Đã gửi lại 3 gói tin."
    assert en("dead.done", n=3) == "Replayed 3 deliveries."
    assert vi.status("03") == "03 – Đã tiếp nhận"
    assert en.status("08") == "08 – Reserved code"
    assert vi.dt(datetime(2026, 1, 2, 20, 30, tzinfo=UTC)) == "2026-01-03 03:30:00"


# -- search fields --------------------------------------------------------------------------


def test_search_fields_become_a_filter_with_whole_days_in_vietnam_time() -> None:
    f = search_filter(
        {
            "document_id": " 000.00.04.H56,2026/01/02,1/UBND ",
            "sender": "",
            "state": "dead_lettered",
            "status": "03",
            "since": "2026-01-02",
            "until": "2026-01-03",
            "text": "công văn",
            "page": "3",
        }
    )
    assert f.document_id == "000.00.04.H56,2026/01/02,1/UBND"
    assert f.sender is None
    assert f.state is DeliveryState.DEAD_LETTERED
    assert f.business_status is StatusCode.ACCEPTANCE
    assert f.since == datetime(2026, 1, 1, 17, tzinfo=UTC)  # midnight in UTC+7
    assert f.until == datetime(2026, 1, 3, 17, tzinfo=UTC)  # the 3rd included
    assert f.text == "công văn"
    assert (f.limit, f.offset) == (50, 100)


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({"since": "02/01/2026"}, "console.bad_date"),
        ({"state": "lost"}, "console.bad_choice"),
        ({"status": "99"}, "console.bad_choice"),
        ({"page": "0"}, "console.bad_page"),
        ({"page": "x"}, "console.bad_page"),
        ({"until": "9999-12-31"}, "console.bad_date"),
        ({"since": "0001-01-01"}, "console.bad_date"),
        ({"since_h": "99999999999"}, "console.bad_date"),
    ],
)
def test_bad_search_fields_are_input_errors(query: dict[str, str], code: str) -> None:
    with pytest.raises(InputError) as caught:
        search_filter(query)
    assert caught.value.code == code


# -- the participant form -------------------------------------------------------------------


def test_the_participant_form_round_trips_and_keeps_the_api_key_hashes() -> None:
    original = Participant(
        organ_id=DISTRICT,
        name="UBND huyện Quảng Xương",
        parent="000.00.00.H56",
        api_key_hashes=("a" * 64,),
        signing_cert_fingerprints=("b" * 64,),
        delivery=Delivery(DeliveryMethod.PUSH, "https://qx.example/inbox"),
        may_send_to=("*.H56",),
        may_speak_for=("000.01.15.H56",),
    )
    values = form_values(original)
    assert "a" * 64 not in str(values)  # the form never shows key hashes
    assert participant_from_mapping(directory_entry(values, original), "form") == original
    new = participant_from_mapping(
        directory_entry(form_values(None) | {"organ_id": "000.02.15.H56", "name": "UBND xã"}, None),
        "form",
    )
    assert (new.delivery.method, new.may_send_to, new.api_key_hashes) == (
        DeliveryMethod.MAILBOX,
        None,
        (),
    )


# -- stored packages ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def identity(tmp_path_factory: pytest.TempPathFactory) -> pki.Identity:
    sender = next(p for p in pki.DEMO_PARTICIPANTS if p.organ_id == DEPARTMENT)
    pki_dir = tmp_path_factory.mktemp("pki")
    pki.init_pki(pki_dir, key_type="ec", participants=[sender])
    return pki.load_identity(pki_dir, DEPARTMENT)


@pytest.mark.parametrize("fmt", [PackageFormat.XML, PackageFormat.JWS])
def test_a_stored_package_shows_its_header_attachments_and_chain(
    identity: pki.Identity, fmt: PackageFormat
) -> None:
    document = new_document(DEPARTMENT, [DISTRICT], attachment_bytes=300)
    if fmt is PackageFormat.XML:
        stored = sign_xml(serialize_package(document), identity.key, identity.chain)
    else:
        stored = sign_jws(json_codec.dumps(document), identity.key, identity.chain).encode()

    detail = package_detail(stored, fmt, DEFAULT_LIMITS)

    assert detail.error is None
    assert detail.package is not None
    assert detail.package.document_id == document.document_id
    assert [c.fingerprint for c in detail.chain] == [fingerprint(c) for c in identity.chain]
    assert "Sở Nội vụ" in detail.chain[0].subject
    [attachment] = detail.attachments
    assert (attachment.name, attachment.size_bytes) == ("cong-van.pdf", 300)
    name, data = attachment_file(stored, fmt, 0, DEFAULT_LIMITS)
    assert (name, data) == ("cong-van.pdf", document.attachments[0].data())
    with pytest.raises(NotFoundError):
        attachment_file(stored, fmt, 1, DEFAULT_LIMITS)


def test_an_unreadable_stored_package_is_reported_not_raised() -> None:
    detail = package_detail(b"<edXML", PackageFormat.XML, DEFAULT_LIMITS)
    assert detail.package is None
    assert detail.error is not None
    assert detail.error.startswith("edxml.")


# -- settings -------------------------------------------------------------------------------


def test_console_users_come_from_admin_user_tables(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(
        '[[admin.user]]\nusername = "an"\npassword_hash = "scrypt$x"\n'
        'role = "operator"\n\n[[admin.user]]\nusername = "binh"\n'
        'password_hash = "scrypt$y"\n',
        encoding="utf-8",
    )
    settings = load_settings(path, env={})
    assert [(u.username, u.role) for u in settings.admin.user] == [
        ("an", ConsoleRole.OPERATOR),
        ("binh", ConsoleRole.VIEWER),
    ]
    assert effective_settings_masked(settings)["admin"]["user"] == [
        {"username": "an", "role": "operator", "password_hash": "***"},
        {"username": "binh", "role": "viewer", "password_hash": "***"},
    ]


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ('[[admin.user]]\nusername = "a"\npassword_hash = "h"\nrole = "boss"\n', "admin.user.role"),
        ('[[admin.user]]\nusername = "a"\n', "admin.user"),
        (
            '[[admin.user]]\nusername = "a"\npassword_hash = "h"\npassword = "p"\n',
            "admin.user.password",
        ),
        (
            '[[admin.user]]\nusername = "a"\npassword_hash = "h"\n[[admin.user]]\nusername = "a"\n'
            'password_hash = "h"\n',
            "admin.user.username",
        ),
    ],
)
def test_bad_console_users_name_the_key(tmp_path: Path, toml: str, key: str) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})
    assert caught.value.path == key
    with pytest.raises(ConfigError):
        load_settings(None, env={"LGSP_ADMIN__USER": "a"})


def test_cli_hashes_a_password_read_from_standard_input(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("mật khẩu mới\n"))
    assert main(["admin", "hash-password"]) == 0
    printed = capsys.readouterr().out.strip()
    assert verify_password("mật khẩu mới", parse_hash(printed))
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["admin", "hash-password"]) == 2
    assert "config.empty_password" in capsys.readouterr().err
