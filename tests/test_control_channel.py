"""The control channel speaks JSON lines, survives bad requests and runs the watchdog."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from instruments.emulation.control import ControlServer


class RecordingTarget:
    """A control target that records what the channel asked of it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.calls: list[tuple[str, Any]] = []
        self.safe = threading.Event()
        self.safe_reason = ""

    def status(self) -> dict[str, Any]:
        return {"time": self.now, "ports": [], "safe_reason": self.safe_reason}

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now

    def fault(self, instrument: str, kind: str, params: dict[str, Any]) -> None:
        if instrument != "E001.dcdc":
            raise KeyError(f"no instrument {instrument!r}")
        self.calls.append(("fault", (instrument, kind, params)))

    def clear(self, instrument: str | None) -> None:
        self.calls.append(("clear", instrument))

    def set_value(self, unit: str, field: str, value: Any) -> None:
        self.calls.append(("set", (unit, field, value)))

    def reseed(self, seed: int) -> None:
        self.calls.append(("reseed", seed))

    def make_safe(self, reason: str) -> None:
        self.safe_reason = reason
        self.safe.set()


class Channel:
    """A control server on a background loop, and line-oriented client sockets."""

    def __init__(self) -> None:
        self.target = RecordingTarget()
        self.loop = asyncio.new_event_loop()
        self.stopped = threading.Event()
        self.server = ControlServer(self.target, on_shutdown=self.stopped.set)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        host, port = asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(5)
        self.address = (host, port)

    def connect(self) -> socket.socket:
        return socket.create_connection(self.address, timeout=5)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def ask(sock: socket.socket, request: bytes | dict[str, Any]) -> dict[str, Any]:
    data = request if isinstance(request, bytes) else json.dumps(request).encode()
    sock.sendall(data + b"\n")
    reply = b""
    while not reply.endswith(b"\n"):
        chunk = sock.recv(65536)
        assert chunk, "control channel closed the connection"
        reply += chunk
    result: dict[str, Any] = json.loads(reply)
    return result


@pytest.fixture
def channel() -> Iterator[Channel]:
    ch = Channel()
    yield ch
    ch.close()


def test_advance_moves_time_and_echoes_id(channel: Channel) -> None:
    with channel.connect() as sock:
        assert ask(sock, {"cmd": "advance", "seconds": 2.5, "id": 7}) == {
            "ok": True,
            "time": 2.5,
            "id": 7,
        }
        assert ask(sock, {"cmd": "time"})["time"] == 2.5


def test_fault_passes_parameters_and_unknown_instrument_is_an_error(channel: Channel) -> None:
    with channel.connect() as sock:
        assert ask(
            sock, {"cmd": "fault", "instrument": "E001.dcdc", "kind": "delay", "seconds": 0.2}
        )["ok"]
        assert channel.target.calls[-1] == ("fault", ("E001.dcdc", "delay", {"seconds": 0.2}))
        reply = ask(sock, {"cmd": "fault", "instrument": "nope", "kind": "delay"})
        assert reply["ok"] is False and "nope" in reply["error"]


def test_reseed_passes_the_seed(channel: Channel) -> None:
    with channel.connect() as sock:
        assert ask(sock, {"cmd": "reseed", "seed": 7})["ok"]
        assert channel.target.calls[-1] == ("reseed", 7)


@pytest.mark.parametrize(
    ("request_bytes", "fragment"),
    [
        (b"not json", "not a JSON object"),
        (b"[1, 2]", "JSON object"),
        (b'{"cmd": "fly"}', "unknown cmd"),
        (b'{"cmd": "advance", "seconds": -1}', "at least 0"),
        (b'{"cmd": "advance", "seconds": "soon"}', "finite number"),
        (b'{"cmd": "set", "unit": "E001", "field": "soc"}', "value"),
        (b'{"cmd": "reseed", "seed": -1}', "integer >= 0"),
        (b'{"cmd": "reseed", "seed": 1.5}', "integer >= 0"),
        (b"\xff\xfe\x00", "not a JSON object"),
    ],
)
def test_malformed_requests_get_an_error_and_the_connection_stays(
    channel: Channel, request_bytes: bytes, fragment: str
) -> None:
    with channel.connect() as sock:
        reply = ask(sock, request_bytes)
        assert reply["ok"] is False
        assert fragment in reply["error"]
        assert ask(sock, {"cmd": "time"})["ok"] is True


@settings(max_examples=40, deadline=None)
@given(junk=st.binary(min_size=1, max_size=200).filter(lambda b: b"\n" not in b and b.strip()))
def test_random_bytes_never_stop_the_channel(junk: bytes) -> None:
    ch = Channel()
    try:
        with ch.connect() as sock:
            reply = ask(sock, junk)
            assert "ok" in reply
            assert ask(sock, {"cmd": "time"})["ok"] is True
    finally:
        ch.close()


def test_watchdog_trips_when_owner_closes_connection(channel: Channel) -> None:
    with channel.connect() as sock:
        assert ask(sock, {"cmd": "arm_watchdog", "seconds": 30})["watchdog"]["seconds"] == 30
    assert channel.target.safe.wait(5)
    assert "closed" in channel.target.safe_reason


def test_watchdog_trips_when_owner_falls_silent(channel: Channel) -> None:
    with channel.connect() as sock:
        ask(sock, {"cmd": "arm_watchdog", "seconds": 0.2})
        assert channel.target.safe.wait(5)
        assert "silent" in channel.target.safe_reason
        assert ask(sock, {"cmd": "status"})["watchdog"] is None


def test_watchdog_disarmed_with_zero_does_not_trip(channel: Channel) -> None:
    with channel.connect() as sock:
        ask(sock, {"cmd": "arm_watchdog", "seconds": 5})
        assert ask(sock, {"cmd": "arm_watchdog", "seconds": 0})["watchdog"] is None
    with channel.connect() as sock:
        assert ask(sock, {"cmd": "status"})["safe_reason"] == ""
    assert not channel.target.safe.is_set()


def test_blank_lines_are_ignored(channel: Channel) -> None:
    with channel.connect() as sock:
        sock.sendall(b"  \t\n\n")
        assert ask(sock, {"cmd": "time", "id": "after-blanks"})["id"] == "after-blanks"


def test_shutdown_calls_back(channel: Channel) -> None:
    with channel.connect() as sock:
        assert ask(sock, {"cmd": "shutdown"})["shutdown"] is True
    assert channel.stopped.wait(5)
