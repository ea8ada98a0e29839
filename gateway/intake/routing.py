"""Pure routing policy: from a sender, its recipients and the directory to routes or refusals."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from fnmatch import fnmatchcase

from gateway.core.directory import Directory, Participant
from gateway.core.errors import ForbiddenError
from gateway.core.methods import DeliveryMethod


class RefusalReason(StrEnum):
    UNKNOWN_RECIPIENT = "unknown_recipient"
    RECIPIENT_DISABLED = "recipient_disabled"
    ACL_DENIED = "acl_denied"
    NO_ADAPTER = "no_adapter"  # the recipient's delivery method has no enabled delivery here


@dataclass(frozen=True, slots=True)
class Route:
    organ_id: str
    method: DeliveryMethod


@dataclass(frozen=True, slots=True)
class Refusal:
    organ_id: str
    reason: RefusalReason
    detail: str

    @property
    def code(self) -> str:
        """Stable error code for this refusal, e.g. ``acl.unknown_recipient``,
        ``routing.no_adapter``."""
        if self.reason is RefusalReason.NO_ADAPTER:
            return f"routing.{self.reason.value}"
        return f"acl.{self.reason.value}"


@dataclass(frozen=True, slots=True)
class RoutingDecision:
    """One route per deliverable recipient and one refusal per refused one, in input order."""

    routes: tuple[Route, ...]
    refusals: tuple[Refusal, ...]

    @property
    def ok(self) -> bool:
        """True when no recipient was refused (the package may be accepted)."""
        return not self.refusals


def matches(organ_id: str, patterns: Iterable[str]) -> bool:
    """Whether ``organ_id`` equals, or matches the shell-style pattern (``*.H56``) of, any one."""
    return any(fnmatchcase(organ_id, pattern) for pattern in patterns)


def may_speak_for(caller: Participant, sender: str) -> bool:
    """Whether the authenticated ``caller`` may submit a package whose sender is ``sender``."""
    return caller.enabled and (sender == caller.organ_id or matches(sender, caller.may_speak_for))


def acl_allows(sender: Participant, recipient: Participant) -> bool:
    """Whether ``sender``'s ACL lets it address ``recipient`` (None = every participant)."""
    return _may_address(sender, recipient.organ_id)


def _may_address(sender: Participant, organ_id: str) -> bool:
    return sender.may_send_to is None or matches(organ_id, sender.may_send_to)


def route(
    sender: str,
    recipients: Sequence[str],
    directory: Directory,
    *,
    national_fallback: bool = False,
    methods: Collection[DeliveryMethod] | None = None,
) -> RoutingDecision:
    """Route every recipient (duplicates once) and collect every refusal, not just the first.

    With ``national_fallback``, recipients missing from the directory are routed to the national
    platform when the directory has an enabled national participant; otherwise they are refused.
    ``methods`` are the delivery methods this gateway has an enabled delivery for (None: all);
    a recipient delivered by any other method is refused (``routing.no_adapter``) rather than
    queued where no worker would ever take it. Raises ``ForbiddenError`` when the sender itself
    is unknown or disabled.
    """
    origin = directory.get(sender)
    if origin is None:
        raise ForbiddenError(f"sender {sender} is not in the directory", code="acl.unknown_sender")
    if not origin.enabled:
        raise ForbiddenError(f"sender {sender} is disabled", code="acl.sender_disabled")
    fallback = national_fallback and directory.national() is not None
    routes: list[Route] = []
    refusals: list[Refusal] = []
    for organ_id in dict.fromkeys(recipients):
        outcome = _route_one(origin, organ_id, directory.get(organ_id), fallback=fallback)
        if isinstance(outcome, Route) and methods is not None and outcome.method not in methods:
            outcome = no_adapter(outcome)
        if isinstance(outcome, Route):
            routes.append(outcome)
        else:
            refusals.append(outcome)
    return RoutingDecision(tuple(routes), tuple(refusals))


def _route_one(
    sender: Participant, organ_id: str, recipient: Participant | None, *, fallback: bool
) -> Route | Refusal:
    if recipient is None and not fallback:
        return Refusal(organ_id, RefusalReason.UNKNOWN_RECIPIENT, f"{organ_id} is not registered")
    if not _may_address(sender, organ_id):
        return Refusal(
            organ_id, RefusalReason.ACL_DENIED, f"{sender.organ_id} may not send to {organ_id}"
        )
    if recipient is None:
        return Route(organ_id, DeliveryMethod.NATIONAL)
    if not recipient.enabled:
        return Refusal(organ_id, RefusalReason.RECIPIENT_DISABLED, f"{organ_id} is disabled")
    return Route(organ_id, recipient.delivery.method)


def no_adapter(dead: Route) -> Refusal:
    """The refusal of a route whose delivery method has no enabled delivery on this gateway."""
    method = dead.method.value
    return Refusal(
        dead.organ_id,
        RefusalReason.NO_ADAPTER,
        f"{dead.organ_id} is delivered by '{method}', but this gateway has no enabled {method} "
        f"delivery"
        + (" ([national] enabled = false)" if dead.method is DeliveryMethod.NATIONAL else ""),
    )


def dead_ends(directory: Directory, methods: Collection[DeliveryMethod]) -> list[Route]:
    """The enabled participants whose delivery method is not among ``methods``: documents to
    them would be refused with ``routing.no_adapter`` (``lgsp config check`` reports them)."""
    return [
        Route(p.organ_id, p.delivery.method)
        for p in directory
        if p.enabled and p.delivery.method not in methods
    ]
