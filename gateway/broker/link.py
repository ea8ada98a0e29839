"""``Link``: one AMQP connection at a time, to a broker node of a list; a lost one fails over.

The first connection goes to the first node of the list that answers. When it is lost (the
node died or was stopped, the network dropped), the link connects to the NEXT node of the list,
then the one after, round and round with a growing pause while none answers (a supervised loop,
``broker-link``). With one URL this is plain reconnection to that node.

Callers fail fast: while no connection is up, ``connection()`` raises ``UnavailableError``
(``unavailable.broker``), so an intake answers 503 and its outbox republishes later. Only
background restorers (a consumer's subscription) wait for the link with ``wait_up``. Channels
never survive their connection: each user opens its own again on the new connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import aio_pika
import aiormq.exceptions as amqp
import structlog
from aio_pika.abc import AbstractChannel, AbstractConnection

from gateway.broker.failures import BROKER_UNAVAILABLE, broker_errors
from gateway.core.errors import ConfigError, UnavailableError
from gateway.core.loops import Loops, supervise
from gateway.core.redact import mask_url, mask_urls_in

log = structlog.get_logger(__name__)

WATCH_S = 5.0  # a healthy link's loop round ends this often (its last success stays fresh)
RECONNECT_S = 0.2  # pause after a failed round, doubling up to ``MAX_BACKOFF_S``
MAX_BACKOFF_S = 5.0


class Link:
    """The broker connection of one ``Broker``: ``await Link.open(urls, ...)``."""

    def __init__(
        self, urls: Sequence[str], *, connect_timeout_s: float, loops: Loops | None = None
    ) -> None:
        if not urls or any(not isinstance(u, str) for u in urls):
            raise ConfigError("a broker link needs at least one URL", code="config.invalid")
        self.urls = tuple(urls)
        self.connect_timeout_s = connect_timeout_s
        self.connections = 0  # connections made so far, the first one included
        self.loops = loops  # where the link's and its subscriptions' loops report
        self._next = 0  # index in ``urls`` of the next node to try
        self._node = ""  # the connected node, masked for messages
        self._connection: AbstractConnection | None = None
        self._lost = asyncio.Event()  # set when the current connection closes (either side)
        self._up = asyncio.Event()
        self._keeper: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls, urls: Sequence[str], *, connect_timeout_s: float, loops: Loops | None = None
    ) -> Link:
        """Connect to the first node that answers (``UnavailableError`` if none does), then
        keep a connection up in the background until ``aclose``."""
        link = cls(urls, connect_timeout_s=connect_timeout_s, loops=loops)
        link._attach(await link._connect_any())
        link._keeper = asyncio.create_task(
            supervise(
                "broker-link",
                link._keep_up,
                interval_s=RECONNECT_S,
                max_backoff_s=MAX_BACKOFF_S,
                loops=loops,
            ),
            name="broker-link",
        )
        return link

    @property
    def node(self) -> str:
        """The node connected to, or last connected to (password masked)."""
        return self._node

    @property
    def is_up(self) -> bool:
        return self._connection is not None and not self._lost.is_set()

    def connection(self, action: str) -> AbstractConnection:
        """The connection, or ``UnavailableError`` at once while there is none."""
        connection = self._connection
        if connection is None or self._lost.is_set():
            raise UnavailableError(
                f"{action}: no broker connection (failing over from {self._node})",
                code=BROKER_UNAVAILABLE,
            )
        return connection

    async def wait_up(self, timeout_s: float) -> AbstractConnection:
        """The connection, once there is one (``UnavailableError`` after ``timeout_s``)."""
        if not self.is_up:
            self._up.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._up.wait(), timeout_s)
        return self.connection("wait for the broker")

    async def channel(self, action: str, *, confirms: bool) -> AbstractChannel:
        """A new channel on the current connection (``UnavailableError`` if there is none)."""
        connection = self.connection(action)
        try:
            with broker_errors(action):
                return await connection.channel(
                    publisher_confirms=confirms, on_return_raises=confirms
                )
        except RuntimeError as exc:  # aio-pika / aiormq on a closing connection
            raise UnavailableError(
                f"{action}: the connection is down ({exc})", code=BROKER_UNAVAILABLE
            ) from exc

    async def aclose(self) -> None:
        """Stop failing over and close the connection."""
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
        connection, self._connection = self._connection, None
        if connection is not None:
            await _close_quietly(connection)

    def _attach(self, connection: AbstractConnection) -> None:
        # aio-pika's ``is_closed`` turns true only after ``close()``; a connection the broker
        # (or the network) closed is told by its close callbacks
        lost = self._lost = asyncio.Event()
        connection.close_callbacks.add(lambda _sender, _exc: lost.set())
        self._connection = connection
        self.connections += 1
        self._up.set()

    async def _connect_any(self) -> AbstractConnection:
        """One round over the list, from the node after the last one tried."""
        failures: list[str] = []
        for _ in self.urls:
            url = self.urls[self._next]
            self._next = (self._next + 1) % len(self.urls)
            node = mask_url(url)
            try:
                connection = await _connect(url, node, self.connect_timeout_s)
            except UnavailableError as exc:
                failures.append(mask_urls_in(exc.message))  # a dependency's text may hold one
                continue
            self._node = node
            return connection
        raise UnavailableError(
            "no broker node answers: " + "; ".join(failures), code=BROKER_UNAVAILABLE
        )

    async def _keep_up(self) -> None:
        """One round: watch the connection for a while; once it is lost, connect to the next
        node (an ``UnavailableError`` if none answers: the loop backs off and tries again)."""
        connection, lost = self._connection, self._lost
        if connection is not None and not lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), WATCH_S)
            if not lost.is_set():
                return
        if connection is not None:
            self._connection = None
            self._up.clear()
            log.warning("broker.connection_lost", node=self._node, failover=len(self.urls) > 1)
            await _close_quietly(connection)
        fresh = await self._connect_any()
        self._attach(fresh)
        log.info("broker.connected", node=self._node, connections=self.connections)


async def _connect(url: str, node: str, timeout_s: float) -> AbstractConnection:
    """``aio_pika.connect``, but an attempt that fails is closed here: aio-pika's
    ``Connection.__del__`` would otherwise schedule ``close()`` on the loop of whichever thread
    the collector frees it on, and on a thread without one that coroutine is never awaited."""
    connection = aio_pika.Connection(aio_pika.connection.make_url(url))
    try:
        with broker_errors(f"connect to {node}"):
            await connection.connect(timeout=timeout_s)
    except BaseException:
        await _close_quietly(connection)
        raise
    return connection


async def _close_quietly(connection: AbstractConnection) -> None:
    """Close a connection (lost or not); a failure to close changes nothing."""
    with contextlib.suppress(amqp.AMQPError, ConnectionError, OSError, RuntimeError):
        if not connection.is_closed:
            await connection.close()
