"""A datagram server for emulated instruments reached over UDP (ECHONET Lite).

UDP has no connection, so a protocol here is a :class:`DatagramHandler`: it is given each
datagram with the sender's address and returns the replies, each with the address it goes
to (ECHONET Lite answers the requester's source address and port, Part II §3.1.3). It may
also send on its own (notifications) through the ``send`` function the server attaches.

With the instrument's :class:`~instruments.emulation.timing.InstrumentTiming`
(``timing = "real"``) a reply leaves when the emulated instrument would have finished the
request (the node notes each Get as a ``read`` and each Set as a ``write``).

The instrument's :class:`~instruments.emulation.transport.Faults` apply as on a stream:
while ``disconnect`` holds, datagrams are ignored (the device is silent); ``delay``,
``garbage`` and ``drop`` act on each datagram sent, notifications included. A handler
that raises is logged and the datagram dropped; the server keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from instruments.emulation.timing import InstrumentTiming
from instruments.emulation.transport import ActivityHooks, Faults, binary_corruptor, call_hook

log = logging.getLogger(__name__)

Address = tuple[str, int]
Send = Callable[[bytes, Address], None]


class DatagramHandler(Protocol):
    """One emulated UDP device: answers datagrams, may notify on its own."""

    def attach(self, send: Send) -> None:
        """Keep ``send`` for datagrams the device sends unasked (notifications)."""
        ...

    def handle(self, data: bytes, peer: Address) -> list[tuple[bytes, Address]]:
        """The replies to one datagram from ``peer`` (none for junk)."""
        ...


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, server: UdpServer) -> None:
        self.server = server

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        self.server.received(data, (str(addr[0]), int(str(addr[1]))))

    def error_received(self, exc: Exception) -> None:
        log.debug("%s: %s", self.server.instrument, exc)


class UdpServer:
    """Serves one :class:`DatagramHandler` on a UDP socket (port 0: an ephemeral one)."""

    def __init__(
        self,
        handler: DatagramHandler,
        *,
        instrument: str,
        faults: Faults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        timing: InstrumentTiming | None = None,
        hooks: ActivityHooks | None = None,
    ) -> None:
        self.handler = handler
        self.hooks = hooks if hooks is not None else ActivityHooks()
        #: The instrument's timing (``timing = "real"``), or None: replies leave at once.
        self.timing = timing
        self.instrument = instrument
        self.faults = faults if faults is not None else Faults(instrument)
        self.host = host
        self.port = port
        self._transport: asyncio.DatagramTransport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> int:
        """Bind and serve; returns the bound port (``OSError`` if it is taken)."""
        self._loop = asyncio.get_running_loop()
        transport, _ = await self._loop.create_datagram_endpoint(
            lambda: _Endpoint(self), local_addr=(self.host, self.port)
        )
        self._transport = transport
        self.port = int(transport.get_extra_info("sockname")[1])
        self.handler.attach(self.send)
        return self.port

    def input_fds(self) -> list[int]:
        """The socket, for ``ServerGroup.drain_input`` (datagrams waiting to be read)."""
        if self._transport is None:
            return []
        sock = self._transport.get_extra_info("socket")
        return [] if sock is None else [sock.fileno()]

    def received(self, data: bytes, peer: Address) -> None:
        if self.faults.disconnected:
            return
        if self.hooks.on_receive is not None:
            call_hook(self.hooks.on_receive, self.instrument, len(data))
        answers: list[tuple[bytes, Address]] = []

        def handle(datagram: bytes) -> list[bytes]:
            answers.extend(self.handler.handle(datagram, peer))
            return [reply for reply, _ in answers]

        due = None
        try:
            if self.timing is None or self._loop is None:
                handle(data)
            else:
                _, due = self.timing.feed(handle, data, self._loop.time())
        except Exception:
            log.exception("%s: handling a datagram from %s:%d failed", self.instrument, *peer)
            return
        for reply, to in answers:
            if due is not None and self._loop is not None and due > self._loop.time():
                self._loop.call_at(due, self.send, reply, to)
            else:
                self.send(reply, to)

    def send(self, data: bytes, to: Address) -> None:
        """Send one datagram, through the instrument's faults."""
        transport = self._transport
        if transport is None or transport.is_closing() or self.faults.disconnected:
            return
        fate = self.faults.fate() if self.faults.active else None
        if fate is not None:
            if not fate.send:
                return
            if fate.corrupt:
                data = binary_corruptor(data)
            if fate.delay > 0 and self._loop is not None:
                self._loop.call_later(fate.delay, self._send_now, data, to)
                return
        self._send_now(data, to)

    def _send_now(self, data: bytes, to: Address) -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.sendto(data, to)

    async def close(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()
