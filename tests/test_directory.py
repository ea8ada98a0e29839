"""Participant directory: TOML loading, credential lookups, live snapshots and atomic writes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from gateway.core.directory import (
    Delivery,
    Directory,
    DirectoryHolder,
    Participant,
    ParticipantKind,
    ParticipantLevel,
    generate_api_key,
    hash_api_key,
    load_directory,
    participant_from_mapping,
    participant_to_mapping,
    write_directory,
)
from gateway.core.errors import ConfigError, NotFoundError
from gateway.core.methods import DeliveryMethod
from gateway.demo.pki import DEMO_PARTICIPANTS

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "participants.toml"
FP = "ab" * 32


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "participants.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_generated_api_keys_are_random_and_only_their_hash_is_kept() -> None:
    key, key_hash = generate_api_key()
    other, _ = generate_api_key()
    assert key != other
    assert key.startswith("lgsp_")
    assert len(key) >= 40
    assert key_hash == hashlib.sha256(key.encode()).hexdigest() == hash_api_key(key)
    assert key not in key_hash


def test_example_directory_matches_the_demo_pki() -> None:
    d = load_directory(EXAMPLE)
    assert {p.organ_id for p in d} == {p.organ_id for p in DEMO_PARTICIPANTS}
    for demo in DEMO_PARTICIPANTS:
        p = d.get(demo.organ_id)
        assert p is not None
        assert p.name == demo.name
        assert p.kind.value == demo.kind.value
        assert p.parent == demo.parent
    province = d.get("000.00.00.H56")
    assert province is not None
    assert province.delivery == Delivery(DeliveryMethod.PUSH, "http://127.0.0.1:8101/lgsp/inbox")
    assert province.may_speak_for == ("*.H56",)
    national = d.national()
    assert national is not None
    assert national.organ_id == "000.00.00.G22"


def test_load_reads_every_field(tmp_path: Path) -> None:
    _, key_hash = generate_api_key()
    path = write(
        tmp_path,
        f"""
[[participant]]
organ_id = "000.00.15.H56"
name = "UBND huyện Quảng Xương"
kind = "state"
level = "district"
parent = "000.00.00.H56"
api_key_hashes = ["{key_hash}"]
client_cert_fingerprints = ["{FP.upper()}"]
signing_cert_fingerprints = ["{"cd" * 32}"]
allowed_algorithms = ["rsa-sha256", "rsa-sha1"]
may_send_to = ["*.H56", "000.00.00.G22"]
may_speak_for = ["000.01.15.H56"]
enabled = true

[participant.delivery]
method = "push"
url = "https://qx.example.gov.vn/inbox"
""",
    )
    p = load_directory(path).get("000.00.15.H56")
    assert p == Participant(
        organ_id="000.00.15.H56",
        name="UBND huyện Quảng Xương",
        kind=ParticipantKind.STATE,
        level=ParticipantLevel.DISTRICT,
        parent="000.00.00.H56",
        api_key_hashes=(key_hash,),
        client_cert_fingerprints=(FP,),  # normalised to lowercase
        signing_cert_fingerprints=("cd" * 32,),
        delivery=Delivery(DeliveryMethod.PUSH, "https://qx.example.gov.vn/inbox"),
        allowed_algorithms=("rsa-sha256", "rsa-sha1"),
        may_send_to=("*.H56", "000.00.00.G22"),
        may_speak_for=("000.01.15.H56",),
        enabled=True,
    )


def test_defaults_of_a_minimal_entry(tmp_path: Path) -> None:
    d = load_directory(write(tmp_path, '[[participant]]\norgan_id = "X1"\nname = "X"\n'))
    p = d.get("X1")
    assert p is not None
    assert p.delivery == Delivery(DeliveryMethod.MAILBOX, None)
    assert p.allowed_algorithms == ("rsa-sha256", "ecdsa-sha256")
    assert p.may_send_to is None
    assert p.may_speak_for == ()
    assert p.enabled is True
    assert p.level is None
    assert d.national() is None


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ('[[participant]]\nname = "X"\n', "participant[0].organ_id"),
        ('[[participant]]\norgan_id = "X"\nname = "X"\nkind = "church"\n', "participant[0].kind"),
        (
            '[[participant]]\norgan_id = "X"\nname = "X"\nenabled = "yes"\n',
            "participant[0].enabled",
        ),
        (
            '[[participant]]\norgan_id = "X"\nname = "X"\nmay_send_to = "*"\n',
            "participant[0].may_send_to",
        ),
        (
            '[[participant]]\norgan_id = "X"\nname = "X"\nmay_sendto = ["*"]\n',
            "participant[0].may_sendto",
        ),
        (
            '[[participant]]\norgan_id = "X"\nname = "X"\n[participant.delivery]\nmethod = "fax"\n',
            "participant[0].delivery.method",
        ),
        (
            '[[participant]]\norgan_id = "X"\nname = "X"\n'
            '[participant.delivery]\nmethod = "push"\n',
            "X.delivery.url",
        ),
        (
            '[[participant]]\norgan_id = "X"\nname = "X"\napi_key_hashes = ["lgsp_plaintext"]\n',
            "X.api_key_hashes",
        ),
        (
            '[[participant]]\norgan_id = "X"\nname = "X"\n'
            '[[participant]]\norgan_id = "X"\nname = "Y"\n',
            "X.organ_id",
        ),
        ("[[participants]]\n", None),
    ],
)
def test_invalid_entries_raise_config_error_naming_the_place(
    tmp_path: Path, body: str, where: str | None
) -> None:
    with pytest.raises(ConfigError) as info:
        load_directory(write(tmp_path, body))
    assert info.value.code == "config.invalid"
    if where is not None:
        assert info.value.path == where


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as missing:
        load_directory(tmp_path / "absent.toml")
    assert missing.value.code == "config.unreadable"
    with pytest.raises(ConfigError) as broken:
        load_directory(write(tmp_path, "[[participant]\n"))
    assert broken.value.code == "config.syntax"


def test_credentials_are_unique_across_participants() -> None:
    _, key_hash = generate_api_key()
    a = Participant("A", "A", api_key_hashes=(key_hash,))
    b = Participant("B", "B", api_key_hashes=(key_hash,))
    with pytest.raises(ConfigError) as info:
        Directory([a, b])
    assert info.value.path == "B.api_key_hashes"
    with pytest.raises(ConfigError):
        Directory(
            [
                Participant("A", "A", client_cert_fingerprints=(FP,)),
                Participant("B", "B", client_cert_fingerprints=(FP,)),
            ]
        )


def test_lookup_by_api_key_and_client_certificate() -> None:
    key, key_hash = generate_api_key()
    old_key, old_hash = generate_api_key()
    d = Directory(
        [
            Participant(
                "A", "A", api_key_hashes=(key_hash, old_hash), client_cert_fingerprints=(FP,)
            ),
            Participant("B", "B"),
        ]
    )
    assert d.by_api_key(key) == d.get("A")
    assert d.by_api_key(old_key) == d.get("A")  # key rotation: both keys work
    assert d.by_api_key(key_hash) is None  # the stored hash is not itself a key
    assert d.by_api_key("lgsp_guess") is None
    assert d.by_client_cert(FP) == d.get("A")
    colons = ":".join(FP[i : i + 2] for i in range(0, len(FP), 2)).upper()
    assert d.by_client_cert(colons) == d.get("A")
    assert d.by_client_cert("cd" * 32) is None
    assert d.get("missing") is None
    assert "A" in d
    assert len(d) == 2


def test_disabled_participants_cannot_authenticate_but_stay_listed() -> None:
    key, key_hash = generate_api_key()
    d = Directory(
        [
            Participant(
                "A", "A", api_key_hashes=(key_hash,), client_cert_fingerprints=(FP,), enabled=False
            )
        ]
    )
    assert d.by_api_key(key) is None
    assert d.by_client_cert(FP) is None
    found = d.get("A")
    assert found is not None
    assert found.enabled is False


def test_holder_upsert_and_disable_take_effect_immediately() -> None:
    key, key_hash = generate_api_key()
    holder = DirectoryHolder(Directory([Participant("A", "A")]))
    before = holder.current
    holder.upsert(Participant("B", "B", api_key_hashes=(key_hash,)))
    assert holder.current.by_api_key(key) == holder.current.get("B")
    assert before.get("B") is None  # an old snapshot is never changed under its reader
    holder.upsert(Participant("A", "A renamed"))
    renamed = holder.current.get("A")
    assert renamed is not None
    assert renamed.name == "A renamed"
    assert [p.organ_id for p in holder.current] == ["B", "A"]
    holder.disable("B")
    assert holder.current.by_api_key(key) is None
    with pytest.raises(NotFoundError) as info:
        holder.disable("nobody")
    assert info.value.code == "not_found.participant"


def test_holder_upsert_refuses_an_invalid_participant_and_keeps_the_old_snapshot() -> None:
    holder = DirectoryHolder(Directory([Participant("A", "A")]))
    before = holder.current
    with pytest.raises(ConfigError):
        holder.upsert(Participant("B", "B", delivery=Delivery(DeliveryMethod.PUSH, None)))
    assert holder.current is before


def test_save_round_trips_and_replaces_the_file_atomically(tmp_path: Path) -> None:
    path = tmp_path / "participants.toml"
    path.write_bytes(EXAMPLE.read_bytes())
    path.chmod(0o640)
    holder = DirectoryHolder(load_directory(path))
    key, key_hash = generate_api_key()
    holder.upsert(
        Participant(
            "0109999999",
            'Công ty "Trích dẫn" \\ TNHH',
            kind=ParticipantKind.BUSINESS,
            api_key_hashes=(key_hash,),
            client_cert_fingerprints=(FP,),
            delivery=Delivery(DeliveryMethod.PUSH, "https://dn.example.vn/lgsp?x=1&y=2"),
            may_send_to=(),
            enabled=True,
        )
    )
    holder.disable("000.00.04.H56")
    write_directory(path, holder.current)
    assert path.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["participants.toml"]  # no temporary left

    reloaded = load_directory(path)
    assert reloaded.participants == holder.current.participants
    assert reloaded.by_api_key(key) == holder.current.get("0109999999")
    added = reloaded.get("0109999999")
    assert added is not None
    assert added.may_send_to == ()  # "may send to nobody" survives, distinct from None
    disabled = reloaded.get("000.00.04.H56")
    assert disabled is not None
    assert disabled.enabled is False
    assert key not in path.read_text(encoding="utf-8")


def test_a_participant_survives_the_mapping_round_trip_the_store_uses() -> None:
    for participant in (*load_directory(EXAMPLE), Participant("A", "A", may_send_to=())):
        assert participant_from_mapping(participant_to_mapping(participant), "p") == participant


def test_swap_never_goes_back_to_an_older_version() -> None:
    holder = DirectoryHolder()
    assert holder.swap(Directory([Participant("A", "A")]), 3)
    assert not holder.swap(Directory(), 2)  # a slow reload finishing after a newer change
    assert "A" in holder.current
    assert holder.swap(Directory(), 4)
    assert len(holder.current) == 0
