"""``lgsp log list|show|tail``: search the delivery log, show a document's trail, follow events."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from gateway.cli.ops_commands import settings_from
from gateway.cli.subcommands import command_group, configured_command, with_log
from gateway.core.errors import ConfigError
from gateway.edxml.model import StatusCode
from gateway.national.received import ReceivedLog
from gateway.store import (
    DeliveryLog,
    DeliveryRecord,
    DeliveryState,
    DocumentFilter,
    DocumentView,
    EventRecord,
)
from gateway.store.queries import COUNT_CAP

SUBJECT_WIDTH = 48
TAIL_PAGE = 1000


def register(commands: argparse._SubParsersAction[Any]) -> None:
    sub = command_group(commands, "log", "the delivery log: documents, deliveries, events")

    listing = configured_command(sub, "list", _list, help="documents, newest first, one line each")
    listing.add_argument("--sender", metavar="ID", help="sent by this OrganId")
    listing.add_argument("--recipient", metavar="ID", help="with a delivery to this OrganId")
    listing.add_argument("--document-id", metavar="ID", help="the edXML DocumentId")
    listing.add_argument(
        "--state", choices=[s.value for s in DeliveryState], help="a delivery in this state"
    )
    listing.add_argument("--status", metavar="CODE", help="a delivery with this business status")
    listing.add_argument("--since", metavar="ISO", help="received at or after (naive = UTC)")
    listing.add_argument("--until", metavar="ISO", help="received before (naive = UTC)")
    listing.add_argument("--text", metavar="T", help="in the subject (ignoring case and accents)")
    listing.add_argument(
        "--limit", type=int, default=50, metavar="N", help="documents per page (default 50)"
    )
    listing.add_argument(
        "--offset",
        type=int,
        default=0,
        metavar="N",
        help="skip the first N matches (the next page)",
    )
    listing.add_argument("--json", action="store_true", help="print the documents as JSON")

    show = configured_command(
        sub, "show", _show, help="one document: deliveries, business status and trail"
    )
    show.add_argument(
        "id",
        metavar="ID",
        help="the gateway's document id (from log list or send), or the edXML "
        "DocumentId (e.g. 000.00.04.H56,2025/01/02,12/UBND-VP)",
    )
    show.add_argument("--json", action="store_true", help="print the document as JSON")

    tail = configured_command(
        sub, "tail", _tail, help="the latest events; --follow keeps printing new ones"
    )
    tail.add_argument("--limit", type=int, default=20, metavar="N", help="events shown first")
    tail.add_argument("--follow", "-f", action="store_true", help="poll until Ctrl-C")
    tail.add_argument(
        "--interval",
        type=float,
        default=1.0,
        metavar="S",
        help="seconds between polls with --follow",
    )


# --- list ----------------------------------------------------------------------------------------


def _list(args: argparse.Namespace) -> int:
    flt = _filter(args)

    async def work(log: DeliveryLog) -> tuple[list[DocumentView], int]:
        views = []
        for record in await log.list_documents(flt):
            view = await log.get_document(record.id)
            if view is not None:
                views.append(view)
        return views, await log.count_documents(flt)

    views, total = with_log(settings_from(args).store.url, work)
    if args.json:
        print(_dumps([_view_dict(v, events=False) for v in views]))
        return 0
    for view in views:
        print(_document_line(view))
    if views:
        print(f"({flt.offset + 1}-{flt.offset + len(views)} of {_total(total)} documents)")
    else:
        print(f"(none of {_total(total)} documents)" if total else "(no documents)")
    return 0


def _total(count: int) -> str:
    """count_documents stops counting at COUNT_CAP: that many reads "or more"."""
    return f"{count}+" if count >= COUNT_CAP else str(count)


def _filter(args: argparse.Namespace) -> DocumentFilter:
    return DocumentFilter(
        sender=args.sender,
        recipient=args.recipient,
        document_id=args.document_id,
        state=DeliveryState(args.state) if args.state else None,
        business_status=_status(args.status) if args.status else None,
        since=_instant(args.since, "--since") if args.since else None,
        until=_instant(args.until, "--until") if args.until else None,
        text=args.text,
        limit=args.limit,
        offset=args.offset,
    )


def _status(text: str) -> StatusCode:
    try:
        return StatusCode(text.zfill(2))
    except ValueError as exc:
        raise ConfigError(
            f"--status {text!r} is not a StatusCode 01-16", code="config.bad_argument"
        ) from exc


def _instant(text: str, option: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(
            f"{option} {text!r} is not an ISO 8601 date or time", code="config.bad_argument"
        ) from exc
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _document_line(view: DocumentView) -> str:
    doc = view.document
    recipients = ", ".join(_delivery_brief(d) for d in view.deliveries) or "(no recipients)"
    subject = doc.subject or ""
    if len(subject) > SUBJECT_WIDTH:
        subject = subject[: SUBJECT_WIDTH - 1] + "…"
    return (
        f"{_time(doc.received_at)}  {doc.id}  {doc.kind.value:<8} {doc.sender} -> "
        f"{recipients}  {doc.document_id or '-'}  {subject}"
    )


def _delivery_brief(d: DeliveryRecord) -> str:
    status = f"/{d.business_status.value}" if d.business_status else ""
    return f"{d.recipient}[{d.state.value}{status}]"


# --- show ----------------------------------------------------------------------------------------


def _show(args: argparse.Namespace) -> int:
    async def work(log: DeliveryLog) -> tuple[DocumentView, list[str]]:
        view = await log.find_view(args.id)
        return view, await ReceivedLog(log.engines).doc_ids_of(view.document.id)

    view, national_doc_ids = with_log(settings_from(args).store.url, work)
    if args.json:
        print(_dumps({**_view_dict(view, events=True), "national_doc_ids": national_doc_ids}))
    else:
        print("\n".join(show_lines(view, national_doc_ids)))
    return 0


def show_lines(view: DocumentView, national_doc_ids: Sequence[str] = ()) -> list[str]:
    """A document, its deliveries (state and business status) and its trail, for reading."""
    doc = view.document
    lines = [
        f"document     {doc.id}",
        f"  kind       {doc.kind.value}"
        + (f" (type {doc.business_doc_type.value})" if doc.business_doc_type else "")
        + (f" (status {doc.status_code.value})" if doc.status_code else ""),
        f"  sender     {doc.sender}",
        f"  DocumentId {doc.document_id or '-'}",
        f"  subject    {doc.subject or '-'}",
        f"  received   {_time(doc.received_at)} from {doc.caller} ({doc.format.value}, "
        f"{doc.size_bytes} bytes, sha256:{doc.package_sha256})",
        f"  signer     {doc.signer_subject} ({doc.algorithm}, sha256:{doc.signer_fingerprint})",
    ]
    if national_doc_ids:
        lines.append(f"  national   docId {', '.join(national_doc_ids)}")
    if doc.in_reply_to:
        lines.append(f"  reply to   {doc.in_reply_to}")
    lines.append("deliveries")
    lines.extend(_delivery_line(d) for d in view.deliveries)
    if not view.deliveries:
        lines.append("  (none)")
    recipients = {d.id: d.recipient for d in view.deliveries}
    lines.append("trail")
    lines.extend(_event_line(e, recipients) for e in view.events)
    return lines


def _delivery_line(d: DeliveryRecord) -> str:
    status = "-"
    if d.business_status is not None:
        at = f" at {_time(d.business_status_at)}" if d.business_status_at else ""
        status = f"{d.business_status.value}{at}"
    line = (
        f"  {d.recipient:<16} {d.method.value:<8} {d.state.value:<13} "
        f"attempts {d.attempts}  business status {status}  (delivery {d.id})"
    )
    return line + (f"\n    last error: {d.last_error}" if d.last_error else "")


def _event_line(e: EventRecord, recipients: Mapping[str, str]) -> str:
    target = recipients.get(e.delivery, e.delivery) if e.delivery else "-"
    detail = json.dumps(dict(e.detail), ensure_ascii=False, default=str, sort_keys=True)
    return f"  {_time(e.at)}  {e.kind.value:<16} {e.outcome:<10} {target:<16} {e.actor}  {detail}"


# --- tail ----------------------------------------------------------------------------------------


def _tail(args: argparse.Namespace) -> int:
    if args.interval <= 0 or args.limit < 0:
        raise ConfigError(
            "--interval must be positive and --limit not negative", code="config.bad_argument"
        )

    async def work(log: DeliveryLog) -> None:
        last_id = 0
        for event in await _latest_events(log, args.limit):
            print(tail_line(event), flush=True)
            last_id = event.id
        while args.follow:
            await asyncio.sleep(args.interval)
            for event in await log.tail(after_event_id=last_id, limit=TAIL_PAGE):
                print(tail_line(event), flush=True)
                last_id = event.id

    try:
        with_log(settings_from(args).store.url, work)
    except KeyboardInterrupt:
        return 0  # Ctrl-C is how --follow ends
    return 0


async def _latest_events(log: DeliveryLog, limit: int) -> Sequence[EventRecord]:
    """The last ``limit`` events, oldest first (read backwards by id, not the whole log)."""
    return await log.latest_events(limit)


def tail_line(e: EventRecord) -> str:
    """One event of the whole log: time, document, delivery, kind, outcome, actor."""
    delivery = f" delivery {e.delivery}" if e.delivery else ""
    detail = json.dumps(dict(e.detail), ensure_ascii=False, default=str, sort_keys=True)
    return (
        f"{_time(e.at)}  #{e.id}  {e.kind.value:<16} {e.outcome:<10} document {e.document}"
        f"{delivery}  by {e.actor}  {detail}"
    )


# --- shared --------------------------------------------------------------------------------------


def _time(at: datetime | None) -> str:
    return at.astimezone(UTC).isoformat(timespec="seconds") if at is not None else "-"


def _view_dict(view: DocumentView, *, events: bool) -> dict[str, object]:
    out: dict[str, object] = {
        "document": asdict(view.document),
        "deliveries": [asdict(d) for d in view.deliveries],
    }
    if events:
        out["events"] = [asdict(e) for e in view.events]
    return out


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, default=_json_default)


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"not JSON serialisable: {value!r}")
