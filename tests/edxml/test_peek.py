"""peek_package: a package's sender and kind from its header alone, as read_package reads them."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from samples import WELL_FORMED_FILES
from strategies import package_strategy

from gateway.core.errors import PackageError
from gateway.edxml.model import Package, PackageKind
from gateway.edxml.peek import Headline, peek_package
from gateway.edxml.xml_codec import parse_package, serialize_package


@pytest.mark.parametrize("path", WELL_FORMED_FILES, ids=lambda p: p.name)
def test_peek_reads_the_sender_and_kind_read_package_reads(path: Path) -> None:
    data = path.read_bytes()
    package = parse_package(data)
    assert peek_package(data) == Headline(package.sender, package.kind)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(package_strategy())
def test_peek_agrees_with_read_package_on_generated_packages(pkg: Package) -> None:
    data = serialize_package(pkg)
    package = parse_package(data)
    assert peek_package(data) == Headline(package.sender, package.kind)


def test_a_comment_inside_the_organ_id_is_skipped_as_read_package_skips_it() -> None:
    data = next(p for p in WELL_FORMED_FILES if p.name == "status_inbox_01.edxml").read_bytes()
    sender = parse_package(data).sender
    at = data.index(sender.encode())
    split = data[: at + 3] + b"<!-- x -->" + data[at + 3 :]
    assert parse_package(split).sender == sender
    assert peek_package(split) == Headline(sender, PackageKind.STATUS)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b'<!DOCTYPE x [<!ENTITY a "b">]><edXML/>', "edxml.dtd_forbidden"),
        (b"\xff\xfe<\x00e\x00", "edxml.bad_encoding"),
        (b"<edXML><unfinished", "edxml.malformed"),
        (b"<edXML xmlns='http://www.mic.gov.vn/TBT/QCVN_102_2016'/>", "edxml.missing_field"),
        (
            b"<MessageHeader><From><OrganId>x</OrganId></From></MessageHeader>",
            "edxml.missing_field",
        ),
    ],
)
def test_what_cannot_be_read_is_refused(data: bytes, code: str) -> None:
    with pytest.raises(PackageError) as refused:
        peek_package(data)
    assert refused.value.code == code


def test_a_large_package_is_read_only_up_to_its_header() -> None:
    data = next(p for p in WELL_FORMED_FILES if p.name == "edoc_new.edxml").read_bytes()
    broken = data[: len(data) // 2]  # cut mid-attachment: read_package would refuse it
    with pytest.raises(PackageError):
        parse_package(broken)
    package = parse_package(data)
    assert peek_package(broken) == Headline(package.sender, PackageKind.DOCUMENT)
