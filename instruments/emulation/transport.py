"""Byte servers for every emulated protocol: TCP sockets and ptys, with fault injection.

The transport knows nothing about SCPI, Modbus or binary frames. A protocol is a
:class:`Session` created once per connection: it is fed the raw bytes as they arrive and
returns the complete replies they caused (zero or more byte strings, each one reply as it
would go on the wire, terminator included). Splitting lines or frames is the session's job;
delivering replies, and spoiling them on purpose, is the transport's.

Using it from another protocol (e.g. the EZA-2500 binary frames)::

    faults = Faults("E001-conv")                     # one per instrument, shared by servers
    group = ServerGroup()
    port = await group.serve_tcp(MyFrameSession, instrument="E001-conv", faults=faults)
    path = await group.serve_pty(MyFrameSession, instrument="E001-conv", faults=faults)
    ...
    faults.apply("garbage", {"count": 2})            # from the control channel
    await group.close()

``MyFrameSession`` is any zero-argument callable returning an object with
``feed(data: bytes) -> list[bytes]``; a session that raises is logged and its connection
closed, never the server. A session that bounds its work per call (Modbus framing of a
flood of junk) sets a true ``backlog`` attribute while bytes wait: the server stops reading
that connection and calls ``feed(b"")`` again from the event loop, after every other
connection has had its turn, until the backlog is gone.

Pass ``terminator=b"\\n"`` for line protocols so that a garbled reply keeps its line end
(the client reads a *wrong* line rather than hanging), or ``corrupt=`` to spoil replies your
own way (the default for binary protocols flips the bits of the middle byte, which breaks
any checksum yet keeps the frame length).

Fault semantics (:class:`Faults`), per instrument, shared by all its servers:

- ``disconnect`` *seconds*: close every current connection at once and refuse new ones
  (TCP: accept then reset; pty: the line is dead, input ignored) until the time is up.
- ``delay`` *seconds*: every reply leaves that long after it was produced (order is kept).
- ``garbage`` *count*: the next *count* replies are corrupted.
- ``drop`` *count*: the next *count* replies are swallowed (a reply consumes a pending
  drop before a pending garbage).

An instrument's :class:`~instruments.emulation.timing.InstrumentTiming` (``timing=``,
shared by its servers; ``timing = "real"``) holds each reply until the emulated instrument
would have finished: its processing time per command and its serial line time. Faults act
on top (a delay fault adds to it).

A pty has no connection: the server notices a client opening the slave (``/dev/pts/N``)
by polling the master for hang-up every ``poll_seconds`` (20 ms), and a client closing it
by the hang-up itself; a new session starts for each opening. As on a real serial line,
replies produced while nobody holds the slave are lost, and replies a departed client never
read are flushed (2 ms after it left, and again when the next client is seen). A client
that opens, writes and closes within one poll period is never seen as a client, but its
bytes are still read, by the next session. Mutate :class:`Faults` from the event loop's
thread (the control channel runs there); callbacks from another thread are handed to the
loop safely. :class:`BackgroundLoop` hosts servers for blocking code (tests, tools).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import select
import selectors
import socket
import struct
import termios
import threading
import time
import tty
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from instruments.emulation.timing import InstrumentTiming

log = logging.getLogger(__name__)

FAULT_KINDS = ("disconnect", "delay", "garbage", "drop")
#: Loop turns :meth:`ServerGroup.drain_input` grants at most (a client that keeps sending
#: cannot hold simulated time back for ever).
DRAIN_ROUNDS = 100
PTY_POLL_SECONDS = 0.02
_LEAVE_FLUSH_SECONDS = 0.002
_READ_CHUNK = 65536
_PTY_OUTPUT_LIMIT = 1 << 20
T = TypeVar("T")


class Session(Protocol):
    """One connection's protocol state: bytes in, complete replies out."""

    def feed(self, data: bytes) -> list[bytes]:
        """Consume ``data`` (any fragment of the stream); return the replies it completed."""
        ...


SessionFactory = Callable[[], Session]
Corruptor = Callable[[bytes], bytes]


@dataclass(frozen=True)
class ActivityHooks:
    """Callbacks that let the emulator notice client activity (e.g. for a watchdog).

    Each receives the instrument name first; ``peer`` is ``"host:port"`` for TCP and the
    slave path for a pty. A hook that raises is logged and otherwise ignored.
    """

    on_connect: Callable[[str, str], None] | None = None
    on_disconnect: Callable[[str, str], None] | None = None
    on_receive: Callable[[str, int], None] | None = None


def line_corruptor(terminator: bytes) -> Corruptor:
    """Spoil a line reply but keep its terminator, so a client reads a wrong line."""

    def corrupt(reply: bytes) -> bytes:
        body = reply[: -len(terminator)] if reply.endswith(terminator) else reply
        spoiled = bytes((b ^ 0x5A) or 0x3F for b in body) or b"?"
        for char in set(terminator):
            spoiled = spoiled.replace(bytes([char]), b"?")
        return spoiled + terminator

    return corrupt


def binary_corruptor(reply: bytes) -> bytes:
    """Flip every bit of the middle byte: same length, any checksum now fails."""
    if not reply:
        return reply
    middle = len(reply) // 2
    return reply[:middle] + bytes([reply[middle] ^ 0xFF]) + reply[middle + 1 :]


@dataclass(frozen=True)
class ReplyFate:
    """What the faults do to one reply."""

    send: bool = True
    corrupt: bool = False
    delay: float = 0.0


_CLEAN = ReplyFate()


class Faults:
    """The communication faults injected into one instrument, shared by all its servers."""

    def __init__(self, instrument: str = "", clock: Callable[[], float] = time.monotonic) -> None:
        self.instrument = instrument
        self._clock = clock
        self._lock = threading.Lock()
        self._disconnect_until = 0.0
        self._delay = 0.0
        self._garbage = 0
        self._drop = 0
        self._listeners: list[tuple[asyncio.AbstractEventLoop | None, Callable[[], None]]] = []
        #: True when a reply may be delayed, corrupted or dropped (the slow path). A plain
        #: attribute kept current by every change, as servers read it for every reply.
        self.active = False

    # ---- set by the control channel -------------------------------------------------
    def disconnect(self, seconds: float) -> None:
        """Close every connection now and refuse new ones for ``seconds``."""
        _check_finite(seconds, "disconnect seconds", self.instrument)
        with self._lock:
            self._disconnect_until = self._clock() + seconds
            listeners = list(self._listeners)
        for loop, callback in listeners:
            _call_in_loop(loop, callback)

    def set_delay(self, seconds: float) -> None:
        """Delay every reply by ``seconds`` (0 removes the delay)."""
        _check_finite(seconds, "delay seconds", self.instrument)
        with self._lock:
            self._delay = seconds
            self._refresh()

    def corrupt_next(self, count: int = 1) -> None:
        """Corrupt the next ``count`` replies (adds to any still pending)."""
        _check_count(count, "garbage count", self.instrument)
        with self._lock:
            self._garbage += count
            self._refresh()

    def drop_next(self, count: int = 1) -> None:
        """Swallow the next ``count`` replies (adds to any still pending)."""
        _check_count(count, "drop count", self.instrument)
        with self._lock:
            self._drop += count
            self._refresh()

    def clear(self) -> None:
        """Remove every fault; a disconnect ends at once."""
        with self._lock:
            self._disconnect_until = 0.0
            self._delay = 0.0
            self._garbage = 0
            self._drop = 0
            self.active = False

    def apply(self, kind: str, params: Mapping[str, Any]) -> None:
        """Apply a fault by name, as the control channel receives it.

        ``disconnect`` and ``delay`` take ``seconds``; ``garbage`` and ``drop`` take
        ``count`` (default 1). Raises ``ValueError`` naming the instrument otherwise.
        """
        where = f"instrument {self.instrument!r}" if self.instrument else "this instrument"
        if kind in ("disconnect", "delay"):
            if "seconds" not in params:
                raise ValueError(f"fault {kind!r} on {where} needs 'seconds'")
            seconds = _as_float(params["seconds"], f"{kind} seconds", self.instrument)
            if kind == "disconnect":
                self.disconnect(seconds)
            else:
                self.set_delay(seconds)
        elif kind in ("garbage", "drop"):
            count = params.get("count", 1)
            if isinstance(count, bool) or not isinstance(count, int):
                raise ValueError(f"fault {kind!r} on {where}: 'count' must be an integer")
            if kind == "garbage":
                self.corrupt_next(count)
            else:
                self.drop_next(count)
        else:
            raise ValueError(
                f"unknown communication fault {kind!r} for {where}; known: {', '.join(FAULT_KINDS)}"
            )

    # ---- read by the servers ---------------------------------------------------------
    @property
    def disconnected(self) -> bool:
        """True while a disconnect fault is in force."""
        return self._clock() < self._disconnect_until

    @property
    def delay(self) -> float:
        """Seconds each reply is held back (0 when there is no delay fault)."""
        return self._delay

    def _refresh(self) -> None:
        """Recompute :attr:`active` after a change (the lock is held)."""
        self.active = self._delay > 0 or self._garbage > 0 or self._drop > 0

    def fate(self) -> ReplyFate:
        """Decide what happens to the next reply, consuming one pending drop or garbage."""
        with self._lock:
            if self._drop > 0:
                self._drop -= 1
                self._refresh()
                return ReplyFate(send=False)
            corrupt = self._garbage > 0
            if corrupt:
                self._garbage -= 1
                self._refresh()
            if not corrupt and self._delay <= 0:
                return _CLEAN
            return ReplyFate(corrupt=corrupt, delay=self._delay)

    def subscribe(self, on_disconnect: Callable[[], None]) -> Callable[[], None]:
        """Call ``on_disconnect`` (in the caller's loop) whenever a disconnect starts.

        Returns a function that removes the subscription.
        """
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        entry = (loop, on_disconnect)
        with self._lock:
            self._listeners.append(entry)

        def unsubscribe() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._listeners.remove(entry)

        return unsubscribe

    def describe(self) -> dict[str, Any]:
        """The faults in force, for status output (empty when there are none)."""
        with self._lock:
            out: dict[str, Any] = {}
            remaining = self._disconnect_until - self._clock()
            if remaining > 0:
                out["disconnect"] = round(remaining, 3)
            if self._delay > 0:
                out["delay"] = self._delay
            if self._garbage > 0:
                out["garbage"] = self._garbage
            if self._drop > 0:
                out["drop"] = self._drop
            return out

    def __str__(self) -> str:
        parts = self.describe()
        if not parts:
            return "no faults"
        text = {
            "disconnect": "disconnected for {} s more",
            "delay": "replies delayed {} s",
            "garbage": "next {} replies corrupted",
            "drop": "next {} replies dropped",
        }
        return ", ".join(text[k].format(v) for k, v in parts.items())


def _call_in_loop(loop: asyncio.AbstractEventLoop | None, callback: Callable[[], None]) -> None:
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if loop is None or loop is running:
        callback()
    elif not loop.is_closed():
        loop.call_soon_threadsafe(callback)


def _check_finite(value: float, what: str, instrument: str) -> None:
    if not (value >= 0 and value != float("inf")):
        raise ValueError(
            f"{what} for instrument {instrument!r} must be >= 0 and finite, not {value}"
        )


def _check_count(value: int, what: str, instrument: str) -> None:
    if value < 0:
        raise ValueError(f"{what} for instrument {instrument!r} must be >= 0, not {value}")


def _as_float(value: Any, what: str, instrument: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{what} for instrument {instrument!r} must be a number, not {value!r}")
    return float(value)


def _has_backlog(session: Session) -> bool:
    """True when ``session`` left bytes for another ``feed(b"")`` (see the module doc)."""
    return bool(getattr(session, "backlog", False))


def call_hook(hook: Callable[..., None] | None, *args: Any) -> None:
    if hook is None:
        return
    try:
        hook(*args)
    except Exception:
        log.exception("activity hook %r failed", hook)


class _ReplyPipe:
    """Delivers one connection's replies through the instrument's faults, in order.

    A delayed reply leaves ``delay`` seconds after it was produced, measured with the delay
    in force *now*: clearing the fault releases held replies at once (within 50 ms). A
    reply given a ``due`` time (the instrument's timing, :mod:`.timing`) leaves no earlier.
    """

    _RECHECK = 0.05

    def __init__(self, write: Callable[[bytes], None], faults: Faults, corrupt: Corruptor) -> None:
        self._write = write
        self._faults = faults
        self._corrupt = corrupt
        self._queue: deque[tuple[float, float, bytes]] = deque()
        self._task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        """Replies held back by a delay fault or the instrument's timing."""
        return len(self._queue)

    def send(self, replies: Iterable[bytes], due: float = 0.0) -> None:
        """Send ``replies`` now, or hold them until ``due`` (loop time) and the faults allow."""
        faults = self._faults
        if due <= 0.0 and not faults.active and not self._queue:
            self._write(b"".join(replies))
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        for reply in replies:
            fate = faults.fate()
            if not fate.send:
                continue
            data = self._corrupt(reply) if fate.corrupt else reply
            if fate.delay <= 0 and due <= now and not self._queue:
                self._write(data)
            else:
                self._queue.append((now, due, data))
        if self._queue and self._task is None:
            self._task = loop.create_task(self._drain())

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                produced, due, data = self._queue[0]
                wait = max(produced + self._faults.delay, due) - loop.time()
                if wait > 0:
                    await asyncio.sleep(min(wait, self._RECHECK))
                    continue
                self._queue.popleft()
                self._write(data)
        finally:
            self._task = None

    def close(self) -> None:
        self._queue.clear()
        if self._task is not None:
            self._task.cancel()
            self._task = None


class _ServerBase:
    """What TCP and pty servers share: instrument name, session factory, faults, hooks."""

    def __init__(
        self,
        factory: SessionFactory,
        *,
        instrument: str,
        faults: Faults | None,
        terminator: bytes | None,
        corrupt: Corruptor | None,
        hooks: ActivityHooks | None,
        timing: InstrumentTiming | None = None,
    ) -> None:
        self.factory = factory
        self.instrument = instrument
        #: The instrument's timing (shared by its servers), or None: replies leave at once.
        self.timing = timing
        self.faults = faults if faults is not None else Faults(instrument)
        if corrupt is None:
            corrupt = line_corruptor(terminator) if terminator else binary_corruptor
        self.corrupt = corrupt
        self.hooks = hooks if hooks is not None else ActivityHooks()


class InputWatch:
    """The TCP connections of a server group in a selector of their own.

    :meth:`ServerGroup.drain_input` runs before every ``advance``; asking each connection
    for its descriptor and ``select``-ing them all cost O(connections) each time (a fifth
    of a 100-house emulator's time), while this selector's ``select(0)`` costs O(ready).
    """

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()

    def add(self, fd: int, connection: _TcpConnection) -> None:
        if fd in self._selector.get_map():
            self._selector.unregister(fd)  # a closed connection's descriptor, reused
        self._selector.register(fd, selectors.EVENT_READ, connection)

    def remove(self, fd: int, connection: _TcpConnection) -> None:
        key = self._selector.get_map().get(fd)
        if key is not None and key.data is connection:
            self._selector.unregister(fd)

    def waiting(self) -> bool:
        """True when a connection the loop reads (not paused) has input waiting."""
        return any(key.data.input_fd() >= 0 for key, _ in self._selector.select(0))


class _TcpConnection(asyncio.Protocol):
    """One TCP client: feeds its session, writes replies, obeys flow control."""

    def __init__(self, server: TcpServer) -> None:
        self._server = server
        self._transport: asyncio.Transport | None = None
        self._session: Session | None = None
        self._pipe: _ReplyPipe | None = None
        self._peer = "?"
        self._busy = False  # a backlog is being worked off (reading paused)
        self._write_paused = False
        self._fd = -1

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self._peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        server = self._server
        if server.faults.disconnected:
            log.debug("%s: refusing %s (disconnect fault)", server.instrument, self._peer)
            self.reset()
            return
        try:
            self._session = server.factory()
        except Exception:
            log.exception("%s: cannot create a session for %s", server.instrument, self._peer)
            self.reset()
            return
        with contextlib.suppress(OSError):
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._pipe = _ReplyPipe(transport.write, server.faults, server.corrupt)
        server.connections.add(self)
        self._fd = self.input_fd()
        if server.watch is not None and self._fd >= 0:
            server.watch.add(self._fd, self)
        call_hook(server.hooks.on_connect, server.instrument, self._peer)

    def data_received(self, data: bytes) -> None:
        session = self._session
        if session is None or self._pipe is None:
            return
        server = self._server
        if server.hooks.on_receive is not None:
            call_hook(server.hooks.on_receive, server.instrument, len(data))
        self._feed(session, data)

    def _feed(self, session: Session, data: bytes) -> None:
        """Feed the session, send its replies, and come back later for any backlog."""
        server = self._server
        timing = server.timing
        due = 0.0
        try:
            if timing is None:
                replies = session.feed(data)
            else:
                now = asyncio.get_running_loop().time()
                replies, due = timing.feed(session.feed, data, now)
        except Exception:
            log.exception("%s: session failed on input from %s", server.instrument, self._peer)
            self.reset()
            return
        if replies and self._pipe is not None:
            self._pipe.send(replies, due)
        busy = _has_backlog(session)
        if busy != self._busy and self._transport is not None:
            self._busy = busy
            self._update_reading()
        if busy:
            asyncio.get_running_loop().call_soon(self._work_off, session)

    def _work_off(self, session: Session) -> None:
        if session is self._session and self._transport is not None:
            self._feed(session, b"")

    def _update_reading(self) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if self._busy or self._write_paused:
            transport.pause_reading()
        else:
            transport.resume_reading()

    @property
    def pending(self) -> int:
        return self._pipe.pending if self._pipe is not None else 0

    def input_fd(self) -> int:
        """The socket's descriptor while the loop reads it (-1 when closing or paused)."""
        transport = self._transport
        if transport is None or transport.is_closing() or not transport.is_reading():
            return -1
        sock = transport.get_extra_info("socket")
        return int(sock.fileno()) if sock is not None else -1

    def pause_writing(self) -> None:
        self._write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._update_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        server = self._server
        if server.watch is not None:
            server.watch.remove(self._fd, self)
        if self._pipe is not None:
            self._pipe.close()
        if self in server.connections:
            server.connections.discard(self)
            call_hook(server.hooks.on_disconnect, server.instrument, self._peer)
        self._session = None

    def reset(self) -> None:
        """Drop the connection at once with a TCP reset (what a vanished instrument does)."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        with contextlib.suppress(OSError):
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()


class TcpServer(_ServerBase):
    """Serves one instrument's protocol on a TCP port; one session per connection."""

    def __init__(
        self,
        factory: SessionFactory,
        *,
        instrument: str,
        faults: Faults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        terminator: bytes | None = None,
        corrupt: Corruptor | None = None,
        hooks: ActivityHooks | None = None,
        timing: InstrumentTiming | None = None,
        watch: InputWatch | None = None,
    ) -> None:
        super().__init__(
            factory,
            instrument=instrument,
            faults=faults,
            terminator=terminator,
            corrupt=corrupt,
            hooks=hooks,
            timing=timing,
        )
        self.host = host
        self.port = port
        #: Where the connections register their input (their group's), or None.
        self.watch = watch
        self.connections: set[_TcpConnection] = set()
        self._server: asyncio.Server | None = None
        self._unsubscribe: Callable[[], None] | None = None

    async def start(self) -> int:
        """Bind and listen; returns the bound port (an ephemeral one when ``port`` is 0)."""
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                lambda: _TcpConnection(self), self.host, self.port, reuse_address=True
            )
        except OSError as exc:
            raise OSError(
                exc.errno,
                f"instrument {self.instrument!r}: cannot listen on "
                f"{self.host}:{self.port}: {exc.strerror}",
            ) from exc
        self.port = int(self._server.sockets[0].getsockname()[1])
        self._unsubscribe = self.faults.subscribe(self.drop_connections)
        log.info("%s: serving TCP on %s:%d", self.instrument, self.host, self.port)
        return self.port

    @property
    def pending_replies(self) -> int:
        """Replies held back by a delay fault, over all connections."""
        return sum(connection.pending for connection in self.connections)

    def input_fds(self) -> list[int]:
        """The sockets of connections whose input the loop reads now (not paused)."""
        return [fd for connection in self.connections if (fd := connection.input_fd()) >= 0]

    def drop_connections(self) -> None:
        """Reset every open connection (used by the disconnect fault)."""
        for connection in list(self.connections):
            connection.reset()

    async def close(self) -> None:
        """Stop listening and close every connection."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._server is not None:
            self._server.close()
            self.drop_connections()
            await self._server.wait_closed()
            self._server = None


class PtyServer(_ServerBase):
    """Serves one instrument's protocol on a pseudo-terminal, as a serial line.

    The client opens :attr:`path` (``/dev/pts/N``) like a serial port; each opening is a
    new session. Raw mode is set before the first client, so no echo or line editing.
    """

    def __init__(
        self,
        factory: SessionFactory,
        *,
        instrument: str,
        faults: Faults | None = None,
        terminator: bytes | None = None,
        corrupt: Corruptor | None = None,
        hooks: ActivityHooks | None = None,
        poll_seconds: float = PTY_POLL_SECONDS,
        timing: InstrumentTiming | None = None,
    ) -> None:
        super().__init__(
            factory,
            instrument=instrument,
            faults=faults,
            terminator=terminator,
            corrupt=corrupt,
            hooks=hooks,
            timing=timing,
        )
        self.path = ""
        self.poll_seconds = poll_seconds
        self._master = -1
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: Session | None = None
        self._pipe: _ReplyPipe | None = None
        self._out = bytearray()
        self._writing = False
        self._poll_handle: asyncio.TimerHandle | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._poller: select.poll | None = None

    async def start(self) -> str:
        """Open the pty and start waiting for a client; returns the slave's path."""
        self._loop = asyncio.get_running_loop()
        master, slave = os.openpty()
        try:
            tty.setraw(slave)
            self.path = os.ttyname(slave)
        finally:
            os.close(slave)
        os.set_blocking(master, False)
        self._master = master
        self._unsubscribe = self.faults.subscribe(self._on_disconnect_fault)
        self._schedule_poll(0.0)
        log.info("%s: serving pty on %s", self.instrument, self.path)
        return self.path

    @property
    def connected(self) -> bool:
        """True while a client holds the slave open (as far as the server has noticed)."""
        return self._session is not None

    @property
    def pending_replies(self) -> int:
        """Replies held back by a delay fault."""
        return self._pipe.pending if self._pipe is not None else 0

    def input_fds(self) -> list[int]:
        """The master while a client's session reads it (input before a client is
        noticed waits for the next poll, as on a line nobody listens to yet)."""
        return [self._master] if self._master >= 0 and self._session is not None else []

    # ---- waiting for a client -----------------------------------------------------
    def _schedule_poll(self, delay: float, leaving: bool = False) -> None:
        assert self._loop is not None
        self._poll_handle = self._loop.call_later(delay, self._poll_for_client, leaving)

    def _poll_for_client(self, leaving: bool = False) -> None:
        self._poll_handle = None
        if self._master < 0:
            return
        if leaving:
            self._flush_slave_input()
            call_hook(self.hooks.on_disconnect, self.instrument, self.path)
        if self._slave_closed():
            self._schedule_poll(self.poll_seconds)
            return
        self._client_arrived()

    def _slave_closed(self) -> bool:
        """True when no process holds the slave open (the master reports a hang-up)."""
        if self._poller is None:
            self._poller = select.poll()
            self._poller.register(self._master, select.POLLHUP)
        return any(events & select.POLLHUP for _, events in self._poller.poll(0))

    def _client_arrived(self) -> None:
        assert self._loop is not None
        self._flush_slave_input()
        try:
            self._session = self.factory()
        except Exception:
            log.exception("%s: cannot create a session for %s", self.instrument, self.path)
            self._schedule_poll(self.poll_seconds)
            return
        self._pipe = _ReplyPipe(self._write, self.faults, self.corrupt)
        self._loop.add_reader(self._master, self._on_readable)
        call_hook(self.hooks.on_connect, self.instrument, self.path)

    # ---- serving a client ---------------------------------------------------------
    def _on_readable(self) -> None:
        try:
            data = os.read(self._master, _READ_CHUNK)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno != errno.EIO:
                log.warning("%s: pty read failed: %s", self.instrument, exc)
            self._client_left()
            return
        if not data:
            self._client_left()
            return
        if self.hooks.on_receive is not None:
            call_hook(self.hooks.on_receive, self.instrument, len(data))
        if self.faults.disconnected:
            return
        session = self._session
        if session is None or self._pipe is None:
            return
        self._feed(session, data)

    def _feed(self, session: Session, data: bytes) -> None:
        """Feed the session, send its replies, and come back later for any backlog
        (not reading the line meanwhile)."""
        timing = self.timing
        due = 0.0
        try:
            if timing is None:
                replies = session.feed(data)
            else:
                assert self._loop is not None
                replies, due = timing.feed(session.feed, data, self._loop.time())
        except Exception:
            log.exception("%s: session failed on input from %s", self.instrument, self.path)
            self._session = ShutSession()
            return
        if replies and self._pipe is not None:
            self._pipe.send(replies, due)
        if _has_backlog(session) and self._loop is not None:
            self._loop.remove_reader(self._master)
            self._loop.call_soon(self._work_off, session)

    def _work_off(self, session: Session) -> None:
        if self._master < 0 or self._loop is None:
            return
        if session is self._session:
            self._feed(session, b"")
            if session is self._session and _has_backlog(session):
                return
        if self._session is not None:  # done, failed, or replaced by a disconnect fault
            self._loop.add_reader(self._master, self._on_readable)

    def _client_left(self) -> None:
        """The slave was closed: forget the session, discard stale output, wait again."""
        assert self._loop is not None
        self._loop.remove_reader(self._master)
        self._stop_writing()
        self._out.clear()
        if self._pipe is not None:
            self._pipe.close()
            self._pipe = None
        self._session = None
        self._schedule_poll(_LEAVE_FLUSH_SECONDS, leaving=True)

    def _flush_slave_input(self) -> None:
        """Discard replies a departed client never read, so the next one starts clean.

        Done 2 ms after a client leaves (flushing while the kernel is still releasing
        the slave misses data) and again when the next client arrives.
        """
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError:
            return
        try:
            termios.tcflush(fd, termios.TCIFLUSH)
        except termios.error:
            pass
        finally:
            os.close(fd)

    def _on_disconnect_fault(self) -> None:
        """A disconnect fault: drop the client's session and pending output at once."""
        if self._session is not None and self._loop is not None and self._master >= 0:
            self._out.clear()
            self._stop_writing()
            if self._pipe is not None:
                self._pipe.close()
            self._pipe = _ReplyPipe(self._write, self.faults, self.corrupt)
            try:
                self._session = self.factory()
            except Exception:
                log.exception("%s: cannot create a session for %s", self.instrument, self.path)
                self._session = ShutSession()
            call_hook(self.hooks.on_disconnect, self.instrument, self.path)

    def _write(self, data: bytes) -> None:
        if self._master < 0 or not data or self.faults.disconnected:
            return
        if self._slave_closed():
            # Nobody is listening: a real line loses the reply. Written now, it would
            # wait in the pty for the next client, beyond the reach of a flush.
            return
        if self._out:
            self._queue_output(data)
            return
        try:
            sent = os.write(self._master, data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            log.debug("%s: pty write failed: %s", self.instrument, exc)
            return
        if sent < len(data):
            self._queue_output(data[sent:])

    def _queue_output(self, data: bytes) -> None:
        if len(self._out) + len(data) > _PTY_OUTPUT_LIMIT:
            log.warning(
                "%s: client on %s is not reading; reply discarded", self.instrument, self.path
            )
            return
        self._out += data
        if not self._writing and self._loop is not None:
            self._loop.add_writer(self._master, self._on_writable)
            self._writing = True

    def _on_writable(self) -> None:
        try:
            sent = os.write(self._master, self._out)
        except BlockingIOError:
            return
        except OSError:
            self._out.clear()
            sent = 0
        del self._out[:sent]
        if not self._out:
            self._stop_writing()

    def _stop_writing(self) -> None:
        if self._writing and self._loop is not None:
            self._loop.remove_writer(self._master)
        self._writing = False

    async def close(self) -> None:
        """Stop serving and close the master (a client then reads EOF/EIO)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._poll_handle is not None:
            self._poll_handle.cancel()
            self._poll_handle = None
        if self._master >= 0 and self._loop is not None:
            self._loop.remove_reader(self._master)
            self._stop_writing()
            if self._pipe is not None:
                self._pipe.close()
            os.close(self._master)
            self._master = -1
            self._poller = None
            self._session = None


class ShutSession:
    """A session that ignores everything (stands in after a session has failed)."""

    def feed(self, data: bytes) -> list[bytes]:
        return []


class Server(Protocol):
    """What the group needs of a server (TCP, pty, or a datagram server)."""

    instrument: str

    def input_fds(self) -> list[int]: ...

    async def close(self) -> None: ...


class ServerGroup:
    """All byte servers of one emulator process, started and stopped together."""

    def __init__(self) -> None:
        self.servers: list[Server] = []
        #: Servers whose input is found by asking them (ptys, UDP); TCP ones are watched.
        self._asked: list[Server] = []
        self._watch = InputWatch()

    def add(self, server: Server) -> None:
        """Stop ``server`` with the group, and drain its input before time moves."""
        self.servers.append(server)
        self._asked.append(server)

    async def serve_tcp(
        self,
        factory: SessionFactory,
        *,
        instrument: str,
        faults: Faults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        terminator: bytes | None = None,
        corrupt: Corruptor | None = None,
        hooks: ActivityHooks | None = None,
        timing: InstrumentTiming | None = None,
    ) -> int:
        """Serve ``factory`` sessions on TCP; returns the bound port."""
        server = TcpServer(
            factory,
            instrument=instrument,
            faults=faults,
            host=host,
            port=port,
            terminator=terminator,
            corrupt=corrupt,
            hooks=hooks,
            timing=timing,
            watch=self._watch,
        )
        bound = await server.start()
        self.servers.append(server)
        return bound

    async def serve_pty(
        self,
        factory: SessionFactory,
        *,
        instrument: str,
        faults: Faults | None = None,
        terminator: bytes | None = None,
        corrupt: Corruptor | None = None,
        hooks: ActivityHooks | None = None,
        poll_seconds: float = PTY_POLL_SECONDS,
        timing: InstrumentTiming | None = None,
    ) -> str:
        """Serve ``factory`` sessions on a new pty; returns the slave path for clients.

        ``poll_seconds`` is how often the server looks for a client opening the slave
        (the first bytes of a new client wait at most that long).
        """
        server = PtyServer(
            factory,
            instrument=instrument,
            faults=faults,
            terminator=terminator,
            corrupt=corrupt,
            hooks=hooks,
            timing=timing,
            poll_seconds=poll_seconds,
        )
        path = await server.start()
        self.add(server)
        return path

    async def drain_input(self) -> None:
        """Let the loop read every byte clients have already sent, on every connection.

        Called before simulated time moves (``advance``): a set-point written on an
        instrument's connection just before an ``advance`` on the control channel then acts
        before the plant steps, whatever order the loop would have served them in. Bounded
        by :data:`DRAIN_ROUNDS` loop turns."""
        for _ in range(DRAIN_ROUNDS):
            if not self._watch.waiting():
                fds = [fd for server in self._asked for fd in server.input_fds()]
                if not fds or not select.select(fds, [], [], 0)[0]:
                    return
            await asyncio.sleep(0)

    async def close(self) -> None:
        """Stop every server; safe to call twice."""
        servers, self.servers, self._asked = self.servers, [], []
        for server in servers:
            try:
                await server.close()
            except Exception:
                log.exception("%s: error while closing its server", server.instrument)


class BackgroundLoop:
    """An asyncio loop in a daemon thread, for blocking code that hosts servers in-process.

    Tests and tools that talk to emulated instruments with blocking clients (pyvisa,
    pyserial) start the servers here and stay on their own thread::

        with BackgroundLoop() as bg:
            port = bg.run(group.serve_tcp(factory, instrument="PS1"))
            ...
            bg.run(group.close())
    """

    def __init__(self, name: str = "emulator-loop") -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError(f"background loop {self._name!r} is not running; call start()")
        return self._loop

    def start(self) -> BackgroundLoop:
        """Start the thread and its loop (idempotent)."""
        if self._thread is not None:
            return self
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        self._thread = threading.Thread(target=run, name=self._name, daemon=True)
        self._thread.start()
        ready.wait()
        self._loop = loop
        return self

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run ``coro`` on the loop and wait for its result (raises what it raises)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, func: Callable[[], T], timeout: float = 30.0) -> T:
        """Run a plain function on the loop thread (to touch loop-owned state safely)."""

        async def wrapper() -> T:
            return func()

        return self.run(wrapper(), timeout)

    def stop(self) -> None:
        """Stop the loop, join the thread and close the loop."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        if not thread.is_alive():
            loop.close()
        self._loop = None
        self._thread = None

    def __enter__(self) -> BackgroundLoop:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
