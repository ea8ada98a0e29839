"""The national poller and the agency sync: a real simulator, a real store and broker, real intake.

Thanh Hóa (the demo directory) polls as ``lgsp-thanhhoa``; Nghệ An's system sends to it. Both
provinces' certificates come from the demo root CA.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from directory_kit import stored_directory
from national_kit import H41_SYSTEM, H56_SYSTEM, RunningSimulator
from provinces import H41_PARTICIPANTS, H41_PROVINCE, delete_topology, organization
from service_sites import BrokerSite

from adapters.national.client import NationalClient
from adapters.national.protocol import AckStatus, MessageType
from adapters.national.records import Agency, ReceivedItem
from gateway.broker import Broker
from gateway.core.directory import DirectoryHolder
from gateway.core.errors import UnavailableError
from gateway.core.methods import DeliveryMethod
from gateway.core.metrics import Metrics
from gateway.core.settings import Settings, load_settings
from gateway.demo import pki
from gateway.demo.setup import init_demo
from gateway.edxml import build
from gateway.edxml.formats import PackageFormat
from gateway.edxml.model import DocumentPackage, Package, StatusCode
from gateway.edxml.xml_codec import parse_package, serialize_package
from gateway.intake.pipeline import Intake
from gateway.national.agency_sync import AgencySync
from gateway.national.poller import NationalPoller, SyncHook, inbound_caller
from gateway.national.received import NewProcessedDoc, ProcessedDoc, ReceivedLog
from gateway.service.components import build_dispatcher, build_intake
from gateway.signatures.xmldsig import sign_xml
from gateway.store import DeliveryLog, DocumentFilter
from gateway.store.participants import StoredDirectory
from gateway.store.records import NationalDoc

DEPARTMENT, NATIONAL = "000.00.04.H56", "000.00.00.G22"


@dataclass
class Receiving:
    """Thanh Hóa's side: directory, log, broker, intake; Nghệ An's client to send with."""

    settings: Settings
    stored: StoredDirectory  # the directory in the store; ``directory`` its snapshot here
    log: DeliveryLog
    broker: Broker
    intake: Intake
    client: NationalClient  # Thanh Hóa's system
    sender: NationalClient  # Nghệ An's system
    metrics: Metrics

    @property
    def directory(self) -> DirectoryHolder:
        return self.stored.holder

    async def poller(
        self,
        *,
        client: NationalClient | None = None,
        received: ReceivedLog | None = None,
        on_unknown_sender: SyncHook | None = None,
        concurrency: int = 16,
        interval_s: float = 0.05,
        max_backoff_s: float = 0.4,
    ) -> tuple[NationalPoller, ReceivedLog]:
        """A poller as after a (re)start: its own ``national_inbox`` connection unless
        ``received`` is given; Thanh Hóa's client and agency sync unless others are."""
        received = received or await ReceivedLog.open(self.settings.store.url)
        client = client or self.client
        poller = NationalPoller(
            client=client,
            intake=self.intake,
            directory=self.directory,
            received=received,
            metrics=self.metrics,
            interval_s=interval_s,
            max_backoff_s=max_backoff_s,
            on_unknown_sender=on_unknown_sender or AgencySync(client, self.stored).run_once,
            concurrency=concurrency,
        )
        return poller, received

    def signed(self, package: Package, organ_id: str) -> bytes:
        ident = pki.load_identity(self.settings.pki.dir, organ_id)
        return sign_xml(serialize_package(package), ident.key, ident.chain)

    async def send(self, data: bytes, to: str = DEPARTMENT, messagetype: str = "edoc") -> None:
        await self.sender.send_edoc(data, from_=H41_PROVINCE, to=[to], messagetype=messagetype)

    async def acks(self, messagetype: str = "edoc") -> list[str]:
        """What Thanh Hóa answered, as Nghệ An sees it (one per sent package, in order)."""
        return [item.receive_status for item in await self.sender.get_sent_edoc_list(messagetype)]

    async def documents(self) -> int:
        return await self.log.count_documents(DocumentFilter())


@pytest.fixture
async def receiving(
    tmp_path: Path, test_broker: BrokerSite, national_sim: RunningSimulator
) -> AsyncIterator[Receiving]:
    setup = init_demo(
        tmp_path / "h56",
        broker_url=test_broker.url,
        store_url=f"sqlite+aiosqlite:///{tmp_path}/log.db",
        prefix=test_broker.new_prefix("np"),
    )
    pki.init_pki(setup.pki_dir, participants=H41_PARTICIPANTS)  # Nghệ An's signers, same root
    settings = load_settings(setup.config_path, env={"LGSP_LOG__JSON": "false"})
    log = await DeliveryLog.open(settings.store.url)
    stored = StoredDirectory(lambda: log.engines)
    await stored.open(setup.directory_path)  # seeds the empty store
    directory = stored.holder
    broker = await Broker.connect(
        settings.broker.url,
        prefix=settings.broker.prefix,
        retry_delays_s=settings.broker.retry_delays_s,
    )
    await broker.declare_topology()
    metrics = Metrics()
    intake = build_intake(
        settings,
        directory=directory,
        delivery_log=log,
        dispatcher=build_dispatcher(settings, broker, log),
        metrics=metrics,
        national_fallback=True,
    )
    endpoint, keys = national_sim.endpoint, national_sim.secrets
    side = Receiving(
        settings,
        stored,
        log,
        broker,
        intake,
        NationalClient(endpoint, H56_SYSTEM, keys[H56_SYSTEM], timeout_s=5),
        NationalClient(endpoint, H41_SYSTEM, keys[H41_SYSTEM], timeout_s=5),
        metrics,
    )
    yield side
    await side.client.aclose()
    await side.sender.aclose()
    await broker.aclose()
    await log.aclose()
    await delete_topology(settings)


def document(subject: str = "Gửi Sở Nội vụ", *others: str) -> DocumentPackage:
    recipients = [organization(organ_id) for organ_id in (DEPARTMENT, *others)]
    return build.new_document(
        organization(H41_PROVINCE),
        recipients,
        code_number=str(secrets.randbelow(10**6)),
        code_notation="UBND",
        subject=subject,
    )


async def test_documents_and_statuses_are_injected_once_and_acknowledged(
    receiving: Receiving,
) -> None:
    original = build.new_document(
        organization(DEPARTMENT),
        [organization(H41_PROVINCE)],
        code_number="9",
        code_notation="SNV",
        subject="Đã gửi",
    )
    doc = receiving.signed(document("Gửi Sở và Quảng Nam", "000.00.00.H47"), H41_PROVINCE)
    status = receiving.signed(
        build.status_for(original, organization(H41_PROVINCE), StatusCode.ACCEPTANCE), H41_PROVINCE
    )
    await receiving.send(doc)
    await receiving.send(doc)  # the platform delivers the same package twice (two docIds)
    await receiving.send(status, messagetype="status")
    poller, received = await receiving.poller()

    report = await poller.poll_once()

    assert (len(report.done), report.failed, report.deferred) == (3, [], [])
    assert await receiving.acks("edoc") == ["done", "done"]
    assert await receiving.acks("status") == ["done"]
    assert await receiving.documents() == 2  # the duplicate was recorded once
    found = await receiving.log.find_document(H41_PROVINCE, parse_package(doc).document_id or "")
    assert found is not None
    assert found.caller == NATIONAL
    view = await receiving.log.get_document(found.id)
    assert view is not None
    # only the local recipient: the platform itself brings the package to Quảng Nam
    assert [(d.recipient, d.method.value) for d in view.deliveries] == [(DEPARTMENT, "mailbox")]
    # the unknown sender made the poller sync the agencies once: Nghệ An is now national-routed
    synced = (await stored_directory(receiving.settings.store.url)).get(H41_PROVINCE)
    assert synced is not None
    assert synced.delivery.method is DeliveryMethod.NATIONAL
    assert await received.count() == 3
    assert await poller.poll_once() == type(report)()  # nothing left, nothing repeated
    await received.aclose()


async def test_refused_packages_are_acknowledged_fail_and_not_recorded(
    receiving: Receiving,
) -> None:
    signed = receiving.signed(document("Văn bản gốc"), H41_PROVINCE)
    tampered = signed.replace("Văn bản gốc".encode(), "Văn bản sửa".encode())
    await receiving.send(tampered)
    poller, received = await receiving.poller()

    report = await poller.poll_once()

    assert len(report.failed) == 1
    assert await receiving.acks() == ["fail"]
    assert await receiving.documents() == 0
    row = await received.get(report.failed[0])
    assert row is not None
    assert row.outcome is AckStatus.FAIL
    assert row.detail.startswith("signature.")
    await received.aclose()


async def test_a_polled_package_and_its_doc_id_row_are_recorded_in_one_transaction(
    receiving: Receiving,
) -> None:
    """The ``national_inbox`` row is written with the document, not after it: there is no
    moment where the document is recorded and its docId is not (nor the other way round)."""
    await receiving.send(receiving.signed(document(), H41_PROVINCE))
    [item] = await receiving.client.get_received_edoc_list("edoc")
    await AgencySync(receiving.client, receiving.stored).run_once()
    _, received = await receiving.poller()
    data = await receiving.client.get_edoc(item.doc_id)
    try:
        recorded = await receiving.intake.submit(
            inbound_caller(receiving.directory),
            data,
            PackageFormat.XML,
            national=NationalDoc(item.doc_id, "edoc"),
        )
        row = await received.get(item.doc_id)
        assert row is not None
        assert (row.outcome, row.document, row.detail, row.acked_at) == (
            AckStatus.DONE,
            recorded.document.id,
            "recorded",
            None,
        )
        again = await receiving.intake.submit(
            inbound_caller(receiving.directory),
            data,
            PackageFormat.XML,
            national=NationalDoc("another-doc-id", "edoc"),
        )
        assert not again.created
        other = await received.get("another-doc-id")
        assert other is not None
        assert (other.document, other.detail) == (
            recorded.document.id,
            "duplicate of a recorded document",
        )
        assert await receiving.acks() == ["pending"]  # nothing said to the platform yet
    finally:
        await received.aclose()


async def test_a_restart_before_the_acknowledgement_neither_loses_nor_repeats(
    receiving: Receiving,
) -> None:
    first, second = (receiving.signed(document(), H41_PROVINCE) for _ in range(2))
    await receiving.send(first)
    await receiving.send(second)
    [item1, item2] = await receiving.client.get_received_edoc_list("edoc")
    await AgencySync(receiving.client, receiving.stored).run_once()
    # the previous process: recorded the first package, then died before writing its row …
    caller = inbound_caller(receiving.directory)
    crashed = await receiving.intake.submit(
        caller, await receiving.client.get_edoc(item1.doc_id), PackageFormat.XML
    )
    # … and recorded the second one and its row, then died before acknowledging it
    recorded = await receiving.intake.submit(
        caller, await receiving.client.get_edoc(item2.doc_id), PackageFormat.XML
    )
    _, received_before = await receiving.poller()
    await received_before.record(
        item2.doc_id,
        message_type="edoc",
        outcome=AckStatus.DONE,
        document=recorded.document.id,
        detail="recorded",
    )
    await received_before.aclose()
    assert await receiving.acks() == ["pending", "pending"]

    poller, received = await receiving.poller()  # the restarted process
    report = await poller.poll_once()

    assert sorted(report.done) == sorted([item1.doc_id, item2.doc_id])
    assert await receiving.acks() == ["done", "done"]
    assert await receiving.documents() == 2  # neither injected again
    row1, row2 = await received.get(item1.doc_id), await received.get(item2.doc_id)
    assert row1 is not None
    assert row2 is not None
    assert (row1.document, row2.document) == (crashed.document.id, recorded.document.id)
    assert row1.acked_at is not None
    assert row2.acked_at is not None
    await received.aclose()


async def test_polling_backs_off_while_the_platform_is_down_and_lag_grows(
    receiving: Receiving,
    national_sim: RunningSimulator,
) -> None:
    await national_sim.simulator.stop()
    poller, received = await receiving.poller(max_backoff_s=0.4)
    stop = asyncio.Event()
    task = asyncio.create_task(poller.run(stop))
    try:
        for _ in range(200):
            if poller.failed_rounds >= 4:
                break
            await asyncio.sleep(0.05)
        assert poller.failed_rounds >= 4
        assert poller.next_delay_s() == 0.4  # 0.05 doubled per failed round, capped
        lag_down = lag(receiving.metrics)
        assert lag_down >= 0.05 + 0.1 + 0.2  # at least the first three back-off pauses

        await national_sim.restart()
        for _ in range(200):
            if poller.failed_rounds == 0:
                break
            await asyncio.sleep(0.05)
        assert poller.failed_rounds == 0
        assert lag(receiving.metrics) < lag_down
    finally:
        stop.set()
        await task
        await received.aclose()


def lag(metrics: Metrics) -> float:
    value = metrics.registry.get_sample_value("lgsp_national_poll_lag_seconds")
    assert value is not None
    return value


async def test_agency_sync_registers_local_agencies_and_adds_the_others(
    receiving: Receiving,
) -> None:
    await receiving.sender.register_agency(
        Agency(code="000.00.04.H41", name="Sở Nội vụ Nghệ An", pcode=H41_PROVINCE)
    )
    await receiving.sender.register_agency(Agency(code=DEPARTMENT, name="Not Thanh Hóa's"))
    sync = AgencySync(receiving.client, receiving.stored)
    local_before = receiving.directory.current.get(DEPARTMENT)

    report = await sync.run_once()

    local = {p.organ_id for p in pki.DEMO_PARTICIPANTS if p.organ_id != NATIONAL}
    assert set(report.registered) == local - {DEPARTMENT}
    assert report.refused == (DEPARTMENT,)  # Nghệ An's system holds that code: logged, skipped
    assert set(report.added) == {"000.00.04.H41", H41_PROVINCE}
    listed = {a.code for a in await receiving.sender.get_agencies_list()}
    assert local <= listed
    assert NATIONAL not in listed
    in_store = await stored_directory(receiving.settings.store.url)
    added = in_store.get("000.00.04.H41")
    assert added is not None
    assert (added.delivery.method, added.parent) == (DeliveryMethod.NATIONAL, H41_PROVINCE)
    assert in_store.get(DEPARTMENT) == local_before  # a local agency is never replaced
    version = await receiving.stored.version()

    again = await sync.run_once()

    assert (again.registered, again.added, again.updated) == ((), (), ())
    assert await receiving.stored.version() == version  # not written again


async def test_the_received_log_keeps_the_first_record_of_a_doc_id(store_url: str) -> None:
    log = await DeliveryLog.open(store_url)  # creates the schema, national_inbox included
    await log.aclose()
    received = await ReceivedLog.open(store_url)
    try:
        first = await received.record(
            "n-1",
            message_type="edoc",
            outcome=AckStatus.FAIL,
            document=None,
            detail="signature.invalid: …",
        )
        again = await received.record(
            "n-1", message_type="edoc", outcome=AckStatus.DONE, document=None, detail="recorded"
        )
        assert again == first  # a second processing of the docId changes nothing
        assert first.acked_at is None
        await received.mark_acked("n-1")
        acked = await received.get("n-1")
        assert acked is not None
        assert acked.acked_at is not None
        assert (acked.outcome, await received.get("n-2"), await received.count()) == (
            AckStatus.FAIL,
            None,
            1,
        )
    finally:
        await received.aclose()


class WatchedClient(NationalClient):
    """The real client; notes each ``getEdoc``'s docId and the most open at once, fails the
    ``fail_on``-th one (0: none), and lists at most ``list_limit`` items a call."""

    def __init__(
        self, *args: object, fail_on: int = 0, list_limit: int | None = None, **kwargs: object
    ) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fetched: list[str] = []
        self.open_now = self.most_open = 0
        self._fail_on = fail_on
        self._list_limit = list_limit

    async def get_received_edoc_list(
        self, messagetype: MessageType | str = MessageType.EDOC
    ) -> list[ReceivedItem]:
        return (await super().get_received_edoc_list(messagetype))[: self._list_limit]

    async def get_edoc(self, doc_id: str) -> bytes:
        self.fetched.append(doc_id)
        if len(self.fetched) == self._fail_on:
            raise UnavailableError("the platform dropped the connection", code="unavailable.x")
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            return await super().get_edoc(doc_id)
        finally:
            self.open_now -= 1


def watched(
    sim: RunningSimulator, *, fail_on: int = 0, list_limit: int | None = None
) -> WatchedClient:
    """Thanh Hóa's system, watched."""
    secret = sim.secrets[H56_SYSTEM]
    return WatchedClient(
        sim.endpoint, H56_SYSTEM, secret, timeout_s=5, fail_on=fail_on, list_limit=list_limit
    )


class CountingLog(ReceivedLog):
    """The real ``national_inbox`` log, counting the docIds of each write transaction."""

    def __init__(self, inner: ReceivedLog) -> None:
        super().__init__(inner._engines)  # the same engines, closed by ``inner``
        self.records: list[int] = []
        self.acks: list[int] = []

    async def record_many(self, entries: Sequence[NewProcessedDoc]) -> list[ProcessedDoc]:
        self.records.append(len(entries))
        return await super().record_many(entries)

    async def mark_acked_many(self, doc_ids: Sequence[str]) -> list[None]:
        self.acks.append(len(doc_ids))
        return await super().mark_acked_many(doc_ids)


async def test_concurrent_rounds_inject_and_acknowledge_each_doc_id_once_across_a_failure(
    receiving: Receiving, national_sim: RunningSimulator
) -> None:
    """Up to 8 docIds at once; four packages come twice (under other docIds) and one is
    tampered; the 10th getEdoc fails, which ends the round once those in flight are done."""
    distinct = [receiving.signed(document(f"Văn bản {n}"), H41_PROVINCE) for n in range(12)]
    tampered = distinct[0].replace("Văn bản 0".encode(), "Văn bản X".encode())
    sent = [*distinct, *distinct[:4], tampered]
    sender_ids = [
        await receiving.sender.send_edoc(data, from_=H41_PROVINCE, to=[DEPARTMENT]) for data in sent
    ]
    client = watched(national_sim, fail_on=10)
    syncs = 0

    async def sync() -> None:
        nonlocal syncs
        syncs += 1
        await AgencySync(client, receiving.stored).run_once()

    inner = await ReceivedLog.open(receiving.settings.store.url)
    received = CountingLog(inner)
    poller, _ = await receiving.poller(
        client=client, received=received, on_unknown_sender=sync, concurrency=8
    )
    try:
        with pytest.raises(UnavailableError):
            await poller.poll_once()  # no docId is started after the failed getEdoc
        first_round = list(client.fetched)
        assert len(first_round) == 10
        acked_first = await receiving.acks()
        assert len(acked_first) - acked_first.count("pending") == 9  # those in flight finished

        report = await poller.poll_once()
        again = await poller.poll_once()

        assert 1 < client.most_open <= 8  # fetched several at a time, never more than 8
        assert syncs == 1  # every docId met the unknown sender; one sync served them all
        assert len(report.done + report.failed) == len(sent) - 9
        assert again == type(report)()  # nothing left, nothing repeated
        by_sender_id = {
            item.sender_doc_id: item for item in await receiving.sender.get_sent_edoc_list("edoc")
        }
        items = [by_sender_id[doc_id] for doc_id in sender_ids]  # in the order sent
        assert [item.receive_status for item in items] == ["done"] * 16 + ["fail"]
        assert await receiving.documents() == len(distinct)  # each package recorded once
        assert await received.count() == len(sent)
        rows = [await received.get(item.receiver_doc_id) for item in items]
        assert all(row is not None and row.acked_at is not None for row in rows)
        documents = [row.document if row is not None else None for row in rows]
        assert len(set(documents[:12])) == 12
        assert documents[12:16] == documents[:4]  # a repeated package: the one document
        assert documents[16] is None  # the tampered one was refused
        failed = first_round[-1]
        assert client.fetched.count(failed) == 2  # the failed fetch is tried again …
        others = [d for d in client.fetched if d != failed]
        assert len(others) == len(set(others))  # … and no other docId is fetched twice
        assert received.records == [1]  # the refused one; the others' rows came with intake
        assert received.acks == [9, len(sent) - 9]  # the acknowledged marks: one write a round
    finally:
        await client.aclose()
        await inner.aclose()


async def test_rounds_follow_at_once_while_they_acknowledge_something(
    receiving: Receiving, national_sim: RunningSimulator
) -> None:
    """The platform lists 3 items a call here: the 7 packages take three busy rounds in a row
    (then an empty one), none of them waiting for the poll interval (a minute)."""
    for n in range(7):
        await receiving.send(receiving.signed(document(f"Văn bản {n}"), H41_PROVINCE))
    client = watched(national_sim, list_limit=3)
    poller, received = await receiving.poller(client=client, interval_s=60.0)
    stop = asyncio.Event()
    task = asyncio.create_task(poller.run(stop))
    try:
        for _ in range(400):  # each package is recorded, then acknowledged: wait for both
            if await received.count() == 7 and await receiving.acks() == ["done"] * 7:
                break
            await asyncio.sleep(0.05)
        assert await received.count() == 7
        assert await receiving.acks() == ["done"] * 7
        assert len(client.fetched) == 7
        assert poller.failed_rounds == 0
    finally:
        stop.set()
        await task
        await client.aclose()
        await received.aclose()
