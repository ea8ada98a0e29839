"""Routing policy as pure functions over a directory snapshot."""

from __future__ import annotations

import pytest

from gateway.core.directory import Delivery, Directory, Participant, ParticipantKind
from gateway.core.errors import ForbiddenError
from gateway.core.methods import DeliveryMethod
from gateway.intake.routing import (
    Refusal,
    RefusalReason,
    Route,
    acl_allows,
    may_speak_for,
    route,
)

PROVINCE = Participant(
    "000.00.00.H56",
    "UBND tỉnh",
    may_speak_for=("*.H56",),
    delivery=Delivery(DeliveryMethod.PUSH, "https://tinh.example/inbox"),
)
DEPARTMENT = Participant("000.00.04.H56", "Sở Nội vụ")
DISTRICT = Participant(
    "000.00.15.H56",
    "UBND huyện",
    delivery=Delivery(DeliveryMethod.PUSH, "https://huyen.example/inbox"),
)
COMMUNE = Participant("000.01.15.H56", "UBND xã", may_send_to=("*.15.H56", "000.00.00.H56"))
CLOSED = Participant("000.00.99.H56", "Đơn vị đã giải thể", enabled=False)
BUSINESS = Participant("0101234567", "Công ty", kind=ParticipantKind.BUSINESS, may_send_to=())
NATIONAL = Participant(
    "000.00.00.G22",
    "VPCP",
    kind=ParticipantKind.NATIONAL,
    delivery=Delivery(DeliveryMethod.NATIONAL),
)
DIRECTORY = Directory([PROVINCE, DEPARTMENT, DISTRICT, COMMUNE, CLOSED, BUSINESS, NATIONAL])


def test_routes_follow_each_recipients_delivery_method() -> None:
    decision = route(
        DEPARTMENT.organ_id, [DISTRICT.organ_id, COMMUNE.organ_id, NATIONAL.organ_id], DIRECTORY
    )
    assert decision.ok
    assert decision.refusals == ()
    assert decision.routes == (
        Route(DISTRICT.organ_id, DeliveryMethod.PUSH),
        Route(COMMUNE.organ_id, DeliveryMethod.MAILBOX),
        Route(NATIONAL.organ_id, DeliveryMethod.NATIONAL),
    )


def test_duplicate_recipients_are_routed_once_in_first_seen_order() -> None:
    decision = route(
        DEPARTMENT.organ_id, ["000.00.15.H56", "000.00.00.H56", "000.00.15.H56"], DIRECTORY
    )
    assert [r.organ_id for r in decision.routes] == ["000.00.15.H56", "000.00.00.H56"]


def test_every_refused_recipient_is_reported_with_its_reason() -> None:
    recipients = [
        "000.00.15.H56",
        "000.00.77.H56",
        "000.00.99.H56",
        "000.00.04.H56",
        "000.00.78.H56",
    ]
    decision = route(COMMUNE.organ_id, recipients, DIRECTORY)
    assert not decision.ok
    assert decision.routes == (Route("000.00.15.H56", DeliveryMethod.PUSH),)
    assert [(r.organ_id, r.reason) for r in decision.refusals] == [
        ("000.00.77.H56", RefusalReason.UNKNOWN_RECIPIENT),
        ("000.00.99.H56", RefusalReason.ACL_DENIED),  # the commune may not address it at all
        ("000.00.04.H56", RefusalReason.ACL_DENIED),
        ("000.00.78.H56", RefusalReason.UNKNOWN_RECIPIENT),
    ]
    assert decision.refusals[0].code == "acl.unknown_recipient"
    assert "000.01.15.H56" in decision.refusals[2].detail


def test_disabled_recipient_is_refused() -> None:
    decision = route(PROVINCE.organ_id, [CLOSED.organ_id], DIRECTORY)
    assert decision.refusals == (
        Refusal(CLOSED.organ_id, RefusalReason.RECIPIENT_DISABLED, "000.00.99.H56 is disabled"),
    )
    assert decision.refusals[0].code == "acl.recipient_disabled"


def test_empty_acl_refuses_everyone() -> None:
    decision = route(BUSINESS.organ_id, [PROVINCE.organ_id], DIRECTORY)
    assert [r.reason for r in decision.refusals] == [RefusalReason.ACL_DENIED]


def test_unknown_recipient_is_refused_by_default_even_with_a_national_participant() -> None:
    decision = route(PROVINCE.organ_id, ["000.00.00.H41"], DIRECTORY)
    assert [r.reason for r in decision.refusals] == [RefusalReason.UNKNOWN_RECIPIENT]


def test_national_fallback_routes_unknown_recipients_to_the_national_platform() -> None:
    decision = route(
        PROVINCE.organ_id, ["000.00.00.H41", DISTRICT.organ_id], DIRECTORY, national_fallback=True
    )
    assert decision.routes == (
        Route("000.00.00.H41", DeliveryMethod.NATIONAL),
        Route(DISTRICT.organ_id, DeliveryMethod.PUSH),
    )
    # The sender's ACL still applies to recipients outside the directory.
    limited = route(COMMUNE.organ_id, ["000.00.00.H41"], DIRECTORY, national_fallback=True)
    assert [r.reason for r in limited.refusals] == [RefusalReason.ACL_DENIED]


def test_national_fallback_needs_an_enabled_national_participant() -> None:
    without = Directory([PROVINCE, DISTRICT])
    decision = route(PROVINCE.organ_id, ["000.00.00.H41"], without, national_fallback=True)
    assert [r.reason for r in decision.refusals] == [RefusalReason.UNKNOWN_RECIPIENT]
    disabled = Directory(
        [
            PROVINCE,
            Participant("000.00.00.G22", "VPCP", enabled=False, kind=ParticipantKind.NATIONAL),
        ]
    )
    decision = route(PROVINCE.organ_id, ["000.00.00.H41"], disabled, national_fallback=True)
    assert [r.reason for r in decision.refusals] == [RefusalReason.UNKNOWN_RECIPIENT]


def test_no_recipients_gives_an_empty_decision() -> None:
    decision = route(PROVINCE.organ_id, [], DIRECTORY)
    assert decision.routes == ()
    assert decision.ok


@pytest.mark.parametrize(
    ("sender", "code"),
    [("000.00.55.H56", "acl.unknown_sender"), (CLOSED.organ_id, "acl.sender_disabled")],
)
def test_unknown_or_disabled_sender_is_forbidden(sender: str, code: str) -> None:
    with pytest.raises(ForbiddenError) as info:
        route(sender, [PROVINCE.organ_id], DIRECTORY)
    assert info.value.code == code


def test_acl_allows() -> None:
    assert acl_allows(DEPARTMENT, BUSINESS)  # no list: every participant
    assert acl_allows(COMMUNE, DISTRICT)  # pattern *.15.H56
    assert acl_allows(COMMUNE, PROVINCE)  # exact OrganId
    assert not acl_allows(COMMUNE, DEPARTMENT)
    assert not acl_allows(BUSINESS, PROVINCE)


def test_may_speak_for() -> None:
    assert may_speak_for(DEPARTMENT, DEPARTMENT.organ_id)  # always for itself
    assert not may_speak_for(DEPARTMENT, PROVINCE.organ_id)
    assert may_speak_for(PROVINCE, COMMUNE.organ_id)  # the province system for its units
    assert not may_speak_for(PROVINCE, "000.00.00.H41")
    assert not may_speak_for(CLOSED, CLOSED.organ_id)  # a disabled caller speaks for nobody
