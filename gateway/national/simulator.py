"""The national platform simulator: a real aiohttp server speaking the protocol, state in SQLite.

It holds several provinces' systems (``system_id``, ``secret``, the OrganIds each owns: exact ids
or shell patterns such as ``*.H41``), verifies every call's HMAC, routes a sent package to the
system owning each ``to`` OrganId (registered agencies first, then exact ids, then patterns) and
keeps one queue per system. Stopping and starting it again (same database) loses nothing.

Config TOML::

    [[system]]
    system_id = "lgsp-h56"
    secret = "…"
    organ_ids = ["*.H56"]
    timestamp_window_s = 3600   # optional; 0 accepts any timestamp
"""

from __future__ import annotations

import asyncio
import base64
import fnmatch
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from adapters.national.protocol import (
    DEFAULT_TIMESTAMP_WINDOW_S,
    AckStatus,
    Operation,
    Param,
    SignedRequest,
    SystemCredentials,
    ok_answer,
    parse_to,
)
from adapters.national.records import Agency, ReceivedItem, SentItem
from gateway.core.config_files import read_toml
from gateway.core.errors import ConfigError, InputError, NotFoundError
from gateway.edxml.xml_codec import parse_package
from gateway.national.authentication import HeaderAuthenticator
from gateway.national.serving import (
    OPERATION_ROUTE,
    answer,
    message_type,
    protocol_handler,
    read_file_doc,
    required,
)
from gateway.national.sim_store import QueueEntry, SimStore

MAX_BODY_BYTES = 64 * 1024 * 1024 + 64 * 1024
LIST_LIMIT = 500
_STORE = web.AppKey("sim_store", SimStore)


@dataclass(frozen=True, slots=True)
class SimSystem:
    """One connected system (a province's LGSP, a ministry…) and the OrganIds it owns."""

    credentials: SystemCredentials
    organ_ids: tuple[str, ...] = ()

    @property
    def system_id(self) -> str:
        return self.credentials.system_id


@dataclass(frozen=True, slots=True)
class SimConfig:
    systems: tuple[SimSystem, ...] = field(default_factory=tuple)

    def credentials(self, system_id: str) -> SystemCredentials | None:
        return next((s.credentials for s in self.systems if s.system_id == system_id), None)


def system_from_flag(text: str) -> SimSystem:
    """``SYSTEM_ID:SECRET:ORGAN[,ORGAN…]`` (the command line's ``--system``)."""
    system_id, _, rest = text.partition(":")
    secret, _, organs = rest.partition(":")
    if not system_id or not secret:
        raise ConfigError(
            f"--system {text!r}: expected SYSTEM_ID:SECRET:ORGAN[,ORGAN…]", code="config.sim_system"
        )
    organ_ids = tuple(o.strip() for o in organs.split(",") if o.strip())
    return SimSystem(SystemCredentials(system_id, secret), organ_ids)


def load_sim_config(path: Path | None, flags: Sequence[str] = ()) -> SimConfig:
    """Systems from a TOML file (optional) plus ``--system`` flags; ids must be unique."""
    systems = _systems_from_toml(path) if path is not None else []
    systems += [system_from_flag(flag) for flag in flags]
    seen: set[str] = set()
    for system in systems:
        if system.system_id in seen:
            raise ConfigError(
                f"system {system.system_id} is listed twice", code="config.sim_system"
            )
        seen.add(system.system_id)
    return SimConfig(tuple(systems))


def _systems_from_toml(path: Path) -> list[SimSystem]:
    data = read_toml(path)
    entries = data.get("system", [])
    if not isinstance(entries, list) or set(data) - {"system"}:
        raise ConfigError(f"{path}: expected [[system]] tables only", code="config.sim_system")
    return [_system_from_table(entry, f"system[{i}]") for i, entry in enumerate(entries)]


def _system_from_table(entry: Mapping[str, object], where: str) -> SimSystem:
    system_id, secret = entry.get("system_id"), entry.get("secret")
    organ_ids = entry.get("organ_ids", [])
    window = entry.get("timestamp_window_s", DEFAULT_TIMESTAMP_WINDOW_S)
    unknown = set(entry) - {"system_id", "secret", "organ_ids", "timestamp_window_s"}
    if (
        not isinstance(system_id, str)
        or not system_id
        or not isinstance(secret, str)
        or not secret
        or not isinstance(organ_ids, list)
        or unknown
        or not all(isinstance(o, str) for o in organ_ids)
        or not isinstance(window, int | float)
        or window < 0
    ):
        raise ConfigError(
            f"{where}: needs system_id, secret (strings), organ_ids (strings), "
            "optional timestamp_window_s >= 0, nothing else",
            code="config.sim_system",
            path=where,
        )
    credentials = SystemCredentials(system_id, secret, float(window) or None)
    return SimSystem(credentials, tuple(organ_ids))


class NationalSimulator:
    """The simulator: ``await start()`` serves it, ``await stop()`` ends it; the db keeps state."""

    def __init__(self, config: SimConfig, db_path: Path) -> None:
        self.config = config
        self.db_path = db_path
        self._auth = HeaderAuthenticator(config.credentials)
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.cleanup_ctx.append(self._store_ctx)
        app.router.add_post(OPERATION_ROUTE, protocol_handler(frozenset(Operation), self._handle))
        return app

    async def _store_ctx(self, app: web.Application) -> AsyncIterator[None]:
        app[_STORE] = await SimStore.open(self.db_path)
        yield
        await app[_STORE].aclose()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0: any free port); returns the endpoint URL for clients."""
        self._runner = web.AppRunner(self.make_app())
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return f"http://{host}:{self.port}/XrdAdapter/adapter"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- operations ------------------------------------------------------------------------------

    async def _handle(self, request: web.Request, operation: Operation) -> web.Response:
        signed = await self._auth.authenticate(request.headers, operation)
        store = request.app[_STORE]
        if operation is Operation.SEND_EDOC:
            return answer(ok_answer(DocId=await self._send(request, signed, store)))
        if operation is Operation.REGISTER_AGENCY:
            await store.register(signed.system_id, await _agency_body(request))
            return answer(ok_answer())
        return answer(await self._answer_read(operation, signed, store))

    async def _answer_read(
        self, operation: Operation, signed: SignedRequest, store: SimStore
    ) -> dict[str, object]:
        if operation is Operation.GET_RECEIVED_EDOC_LIST:
            pending = await store.pending(signed.system_id, message_type(signed), LIST_LIMIT)
            return ok_answer(data=[_received(e).to_json() for e in pending])
        if operation is Operation.GET_SENT_EDOC_LIST:
            sent = await store.sent(signed.system_id, message_type(signed), LIST_LIMIT)
            return ok_answer(data=[_sent(e).to_json() for e in sent])
        if operation is Operation.GET_EDOC:
            doc_id = required(signed, Param.DOC_ID.value)
            data = await store.package_for(signed.system_id, doc_id)
            if data is None:
                raise NotFoundError(f"no document {doc_id} for you", code="national.no_such_doc")
            return ok_answer(data=base64.b64encode(data).decode("ascii"))
        if operation is Operation.UPDATE_STATUS:
            await self._update_status(signed, store)
            return ok_answer()
        return ok_answer(data=[a.to_json() for a in await self._agencies(store)])

    async def _send(self, request: web.Request, signed: SignedRequest, store: SimStore) -> str:
        data = await read_file_doc(request, signed)
        kind = message_type(signed)
        to = parse_to(signed.get(Param.TO.value))
        from_code = signed.get(Param.FROM.value) or ""
        if not to or not from_code:
            package = parse_package(data)
            to = to or package.recipients
            from_code = from_code or package.sender
        registered = {a.code: system for a, system in await store.agencies()}
        receivers = [(self._owner(organ_id, registered), organ_id) for organ_id in to]
        if not receivers:
            raise InputError("the package has no recipients", code="national.no_recipients")
        return await store.record_send(signed.system_id, from_code, kind.value, data, receivers)

    def _owner(self, organ_id: str, registered: Mapping[str, str]) -> str:
        if organ_id in registered:
            return registered[organ_id]
        for system in self.config.systems:
            if organ_id in system.organ_ids:
                return system.system_id
        for system in self.config.systems:
            if any(fnmatch.fnmatchcase(organ_id, p) for p in system.organ_ids):
                return system.system_id
        raise InputError(f"no connected system owns {organ_id}", code="national.unknown_recipient")

    async def _update_status(self, signed: SignedRequest, store: SimStore) -> None:
        doc_id = required(signed, Param.ACK_DOC_ID.value)
        status = required(signed, Param.STATUS.value)
        try:
            ack = AckStatus(status.strip().lower())
        except ValueError as exc:
            raise InputError(
                f"status must be done or fail, not {status!r}", code="national.bad_status"
            ) from exc
        if not await store.set_status(signed.system_id, doc_id, ack.value):
            raise NotFoundError(f"no document {doc_id} for you", code="national.no_such_doc")

    async def _agencies(self, store: SimStore) -> list[Agency]:
        registered = [agency for agency, _ in await store.agencies()]
        known = {a.code for a in registered}
        configured = [
            Agency(code=organ_id, name=organ_id)
            for system in self.config.systems
            for organ_id in system.organ_ids
            if not _is_pattern(organ_id) and organ_id not in known
        ]
        return registered + configured


def _is_pattern(organ_id: str) -> bool:
    return any(c in organ_id for c in "*?[")


async def _agency_body(request: web.Request) -> Agency:
    try:
        body = json.loads(await request.read() or b"{}")
    except ValueError as exc:
        raise InputError("registerAgency needs a JSON body", code="national.bad_agency") from exc
    agency = Agency.from_json(body) if isinstance(body, dict) else None
    if agency is None or not agency.code or not agency.name:
        raise InputError("registerAgency needs code and name", code="national.bad_agency")
    return agency


def _received(entry: QueueEntry) -> ReceivedItem:
    return ReceivedItem(
        doc_id=entry.doc_id,
        message_type=entry.message_type,
        from_=entry.from_code,
        to=entry.to_code,
        created_time=entry.created_at,
        updated_time=entry.updated_at,
        status=entry.status,
        status_desc=entry.status,
    )


def _sent(entry: QueueEntry) -> SentItem:
    return SentItem(
        sender_doc_id=entry.message,
        receiver_doc_id=entry.doc_id,
        from_code=entry.from_code,
        to_code=entry.to_code,
        message_type=entry.message_type,
        send_status="sent",
        receive_status=entry.status,
        sent_time=entry.created_at,
        received_time=entry.updated_at if entry.status != "pending" else "",
    )


async def serve(config: SimConfig, db_path: Path, host: str, port: int) -> None:
    """Run until cancelled (``lgsp sim national``)."""
    simulator = NationalSimulator(config, db_path)
    await simulator.start(host, port)
    try:
        await _forever()
    finally:
        await simulator.stop()


async def _forever() -> None:
    await asyncio.Event().wait()
