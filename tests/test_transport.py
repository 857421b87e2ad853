"""The byte servers over real TCP sockets and ptys: sessions, hooks and injected faults.

A tiny line session defined here (upper-cases each line) stands in for a protocol, so
these tests exercise only the transport. Nothing waits on wall-clock time: delays are an
hour long and released by clearing the fault; waits are on conditions with a timeout.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from instruments.emulation.transport import (
    ActivityHooks,
    BackgroundLoop,
    Faults,
    PtyServer,
    ServerGroup,
    TcpServer,
    binary_corruptor,
    line_corruptor,
)

TIMEOUT = 10.0


class UpperSession:
    """Replies to each ``\\n`` line with the line upper-cased; ``boom`` makes it raise."""

    def __init__(self) -> None:
        self.buffer = b""

    def feed(self, data: bytes) -> list[bytes]:
        self.buffer += data
        replies = []
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            if line == b"boom":
                raise RuntimeError("session bug")
            replies.append(line.upper() + b"\n")
        return replies


@dataclass
class Recorder:
    """Collects hook calls from the loop thread."""

    events: list[tuple[str, str]] = field(default_factory=list)
    received: int = 0
    changed: threading.Condition = field(default_factory=threading.Condition)

    def hooks(self) -> ActivityHooks:
        return ActivityHooks(
            on_connect=lambda name, peer: self._add("connect", name),
            on_disconnect=lambda name, peer: self._add("disconnect", name),
            on_receive=self._receive,
        )

    def _add(self, kind: str, name: str) -> None:
        with self.changed:
            self.events.append((kind, name))
            self.changed.notify_all()

    def _receive(self, name: str, count: int) -> None:
        with self.changed:
            self.received += count
            self.changed.notify_all()

    def count(self, kind: str) -> int:
        return sum(1 for event in self.events if event[0] == kind)

    def wait_for(self, predicate: Callable[[], bool]) -> None:
        with self.changed:
            assert self.changed.wait_for(predicate, timeout=TIMEOUT), self.events


@dataclass
class Served:
    port: int
    path: str
    faults: Faults
    recorder: Recorder
    group: ServerGroup

    @property
    def tcp(self) -> TcpServer:
        server = self.group.servers[0]
        assert isinstance(server, TcpServer)
        return server

    @property
    def pty(self) -> PtyServer:
        server = self.group.servers[1]
        assert isinstance(server, PtyServer)
        return server


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def bg() -> Iterator[BackgroundLoop]:
    with BackgroundLoop("transport-tests") as loop:
        yield loop


def start(bg: BackgroundLoop, faults: Faults) -> Served:
    recorder = Recorder()
    group = ServerGroup()
    kwargs = dict(instrument="UP1", faults=faults, terminator=b"\n", hooks=recorder.hooks())
    port = bg.run(group.serve_tcp(UpperSession, **kwargs))  # type: ignore[arg-type]
    path = bg.run(group.serve_pty(UpperSession, **kwargs))  # type: ignore[arg-type]
    return Served(port, path, faults, recorder, group)


@pytest.fixture
def served(bg: BackgroundLoop) -> Iterator[Served]:
    served = start(bg, Faults("UP1"))
    yield served
    bg.run(served.group.close())


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    return sock


def readline(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    return data


def wait_until(predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def is_dropped(sock: socket.socket) -> bool:
    """True when the server has closed or reset this connection."""
    try:
        return sock.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True


def is_refused(port: int) -> bool:
    """True when a new connection is refused, reset at once, or closed by the server."""
    try:
        sock = connect(port)
    except (ConnectionRefusedError, ConnectionResetError):
        return True
    with sock:
        return is_dropped(sock)


class PtyClient:
    """A client on the slave side of a pty, raw, with a blocking line read."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)

    def write(self, data: bytes) -> None:
        os.write(self.fd, data)

    def readline(self) -> bytes:
        data = b""
        deadline = time.monotonic() + TIMEOUT
        os.set_blocking(self.fd, False)
        while not data.endswith(b"\n"):
            assert time.monotonic() < deadline, f"no complete line, got {data!r}"
            try:
                data += os.read(self.fd, 1)
            except BlockingIOError:
                time.sleep(0.002)
        return data

    def close(self) -> None:
        os.close(self.fd)


# ---- TCP -------------------------------------------------------------------------------


def test_tcp_round_trip_fragments_and_hooks(served: Served) -> None:
    with connect(served.port) as sock:
        sock.sendall(b"ab")
        sock.sendall(b"c\nxyz\n")
        assert readline(sock) == b"ABC\n"
        assert readline(sock) == b"XYZ\n"
        served.recorder.wait_for(lambda: served.recorder.received == 8)
        assert served.recorder.events == [("connect", "UP1")]
    served.recorder.wait_for(lambda: served.recorder.count("disconnect") == 1)


def test_many_connections_have_their_own_sessions(served: Served) -> None:
    with connect(served.port) as first, connect(served.port) as second:
        first.sendall(b"hal")
        second.sendall(b"b\n")
        first.sendall(b"f\n")
        assert second.recv(16) == b"B\n"
        assert readline(first) == b"HALF\n"


def test_a_failing_session_closes_only_its_connection(served: Served) -> None:
    with connect(served.port) as bad, connect(served.port) as good:
        bad.sendall(b"boom\n")
        assert is_dropped(bad)
        good.sendall(b"still here\n")
        assert readline(good) == b"STILL HERE\n"


def test_delay_holds_replies_in_order_until_cleared(bg: BackgroundLoop, served: Served) -> None:
    served.faults.set_delay(3600)
    with connect(served.port) as sock:
        sock.sendall(b"one\ntwo\n")
        wait_until(lambda: bg.call(lambda: served.tcp.pending_replies) == 2)
        sock.setblocking(False)
        with pytest.raises(BlockingIOError):
            sock.recv(16)
        sock.setblocking(True)
        sock.settimeout(TIMEOUT)
        assert "delay" in served.faults.describe()
        bg.call(served.faults.clear)
        assert readline(sock) == b"ONE\n"
        assert readline(sock) == b"TWO\n"


def test_a_short_delay_still_delivers(served: Served) -> None:
    served.faults.set_delay(0.01)
    with connect(served.port) as sock:
        sock.sendall(b"late\n")
        assert readline(sock) == b"LATE\n"


def test_garbage_corrupts_the_next_replies_but_keeps_line_ends(served: Served) -> None:
    served.faults.corrupt_next(2)
    with connect(served.port) as sock:
        sock.sendall(b"alpha\nbeta\ngamma\n")
        first, second, third = readline(sock), readline(sock), readline(sock)
    assert first != b"ALPHA\n" and len(first) == len(b"ALPHA\n")
    assert second != b"BETA\n" and second.endswith(b"\n")
    assert third == b"GAMMA\n"
    assert served.faults.describe() == {}


def test_drop_swallows_the_next_replies(served: Served) -> None:
    served.faults.drop_next(1)
    with connect(served.port) as sock:
        sock.sendall(b"lost\nkept\n")
        assert readline(sock) == b"KEPT\n"


def test_drop_is_consumed_before_garbage(served: Served) -> None:
    served.faults.drop_next(1)
    served.faults.corrupt_next(1)
    with connect(served.port) as sock:
        sock.sendall(b"a\nb\nc\n")
        assert readline(sock) != b"B\n"
        assert readline(sock) == b"C\n"


def test_disconnect_drops_and_refuses_until_cleared(bg: BackgroundLoop, served: Served) -> None:
    with connect(served.port) as old:
        old.sendall(b"hi\n")
        assert readline(old) == b"HI\n"
        bg.call(lambda: served.faults.disconnect(3600))
        assert is_dropped(old)
    assert is_refused(served.port)
    assert served.faults.disconnected
    bg.call(served.faults.clear)
    with connect(served.port) as fresh:
        fresh.sendall(b"back\n")
        assert readline(fresh) == b"BACK\n"


def test_disconnect_ends_by_itself(bg: BackgroundLoop) -> None:
    clock = FakeClock()
    served = start(bg, Faults("UP1", clock=clock))
    try:
        bg.call(lambda: served.faults.disconnect(5))
        assert is_refused(served.port)
        clock.now += 5.5
        assert not served.faults.disconnected
        with connect(served.port) as sock:
            sock.sendall(b"ok\n")
            assert readline(sock) == b"OK\n"
    finally:
        bg.run(served.group.close())


def test_a_client_that_never_reads_does_not_stop_the_server(served: Served) -> None:
    flood = connect(served.port)
    flood.setblocking(False)
    sent = 0
    with contextlib.suppress(BlockingIOError):
        while sent < 64 << 20:
            sent += flood.send(b"x" * 4095 + b"\n")
    with connect(served.port) as other:
        other.sendall(b"fine\n")
        assert readline(other) == b"FINE\n"
    flood.close()


# ---- pty -------------------------------------------------------------------------------


def test_pty_round_trip_and_reopen(served: Served) -> None:
    assert served.path.startswith("/dev/pts/")
    client = PtyClient(served.path)
    client.write(b"serial\n")
    assert client.readline() == b"SERIAL\n"
    client.close()
    served.recorder.wait_for(lambda: served.recorder.count("disconnect") == 1)
    again = PtyClient(served.path)
    again.write(b"again\n")
    assert again.readline() == b"AGAIN\n"
    again.close()
    assert served.recorder.count("connect") == 2


def test_pty_discards_replies_a_departed_client_never_read(served: Served) -> None:
    client = PtyClient(served.path)
    client.write(b"first\n")
    assert client.readline() == b"FIRST\n"
    client.write(b"stale\n")
    readable, _, _ = select.select([client.fd], [], [], TIMEOUT)
    assert readable, "the reply to 'stale' never arrived"
    client.close()
    served.recorder.wait_for(lambda: served.recorder.count("disconnect") == 1)
    fresh = PtyClient(served.path)
    fresh.write(b"fresh\n")
    assert fresh.readline() == b"FRESH\n"
    fresh.close()


def test_pty_faults(bg: BackgroundLoop, served: Served) -> None:
    client = PtyClient(served.path)
    client.write(b"up\n")
    assert client.readline() == b"UP\n"
    served.faults.corrupt_next(1)
    client.write(b"spoilt\n")
    assert client.readline() != b"SPOILT\n"
    bg.call(lambda: served.faults.disconnect(3600))
    client.write(b"ignored\n")
    served.recorder.wait_for(lambda: served.recorder.received >= len(b"up\nspoilt\nignored\n"))
    bg.call(served.faults.clear)
    client.write(b"heard\n")
    assert client.readline() == b"HEARD\n"
    client.close()


def test_closing_the_group_stops_tcp_and_pty(bg: BackgroundLoop) -> None:
    served = start(bg, Faults("UP1"))
    sock = connect(served.port)
    client = PtyClient(served.path)
    client.write(b"x\n")
    assert client.readline() == b"X\n"
    bg.run(served.group.close())
    assert is_dropped(sock)
    sock.close()
    with pytest.raises(ConnectionRefusedError):
        connect(served.port)
    os.set_blocking(client.fd, True)
    try:
        assert os.read(client.fd, 1) == b""
    except OSError as exc:
        assert exc.errno == errno.EIO
    client.close()
    bg.run(served.group.close())


# ---- fault bookkeeping -----------------------------------------------------------------


def test_faults_apply_describe_and_clear() -> None:
    clock = FakeClock()
    faults = Faults("PS1", clock=clock)
    assert str(faults) == "no faults" and not faults.active
    faults.apply("delay", {"seconds": 0.5})
    faults.apply("garbage", {"count": 2})
    faults.apply("drop", {})
    faults.apply("disconnect", {"seconds": 3})
    assert faults.describe() == {"disconnect": 3.0, "delay": 0.5, "garbage": 2, "drop": 1}
    assert "corrupted" in str(faults) and "dropped" in str(faults)
    assert faults.fate().send is False
    fate = faults.fate()
    assert fate.corrupt and fate.delay == 0.5
    faults.clear()
    assert faults.describe() == {} and not faults.disconnected


@pytest.mark.parametrize(
    ("kind", "params", "match"),
    [
        ("stale", {}, "unknown communication fault 'stale'.*PS1"),
        ("delay", {}, "needs 'seconds'"),
        ("delay", {"seconds": -1}, "must be >= 0"),
        ("disconnect", {"seconds": "long"}, "must be a number"),
        ("garbage", {"count": 1.5}, "integer"),
        ("drop", {"count": -2}, "must be >= 0"),
    ],
)
def test_bad_fault_requests_name_the_instrument(
    kind: str, params: dict[str, object], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        Faults("PS1").apply(kind, params)


def test_corruptors() -> None:
    spoil = line_corruptor(b"\r\n")
    for reply in (b"+1.250000E+01\r\n", b"\r\n", b"x"):
        bad = spoil(reply)
        assert bad != reply and bad.endswith(b"\r\n")
        assert b"\n" not in bad[:-2] and b"\r" not in bad[:-2]
    frame = bytes(range(9))
    flipped = binary_corruptor(frame)
    assert len(flipped) == len(frame) and flipped != frame
    assert sum(a != b for a, b in zip(frame, flipped, strict=True)) == 1
    assert binary_corruptor(b"") == b""
