"""Issue 13, emulator half: hostile control requests, watchdog ownership, a bounded
``advance``, ``status`` true after a trip, and ``hil emulate`` argument errors in one line."""

from __future__ import annotations

import gc
import json
import logging
import socket
import subprocess
import sys
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from emulated_rig import EMULATED_BENCH
from test_control_channel import Channel, RecordingTarget, ask

from hil.cli import main
from hil.config.benchfile import load_bench_file
from instruments.emulation.control import ADVANCE_SLICE_S, MAX_ADVANCE_S
from instruments.emulation.process import EmulatorThread


class GatedTarget(RecordingTarget):
    """Simulated time stops at one slice until another client asks for ``status``: an
    ``advance`` can only finish if the channel serves other requests meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.released = False
        self.slices: list[float] = []

    def status(self) -> dict[str, Any]:
        self.released = True
        return super().status()

    def advance(self, seconds: float) -> float:
        if self.released or not self.slices:
            self.slices.append(seconds)
            self.now += seconds
        return self.now


@pytest.fixture
def channel() -> Iterator[Channel]:
    ch = Channel()
    yield ch
    ch.close()


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


def test_a_long_advance_yields_to_other_clients_in_slices() -> None:
    ch = Channel()
    target = GatedTarget()
    ch.target = target
    ch.server.target = target
    try:
        with ch.connect() as mover, ch.connect() as other:
            seconds = 10 * 86_400.0
            mover.sendall(json.dumps({"cmd": "advance", "seconds": seconds}).encode() + b"\n")
            assert ask(other, {"cmd": "status"})["ok"] is True
            reply = json.loads(mover.makefile().readline())
            assert reply == {"ok": True, "time": seconds}
            assert max(target.slices) <= ADVANCE_SLICE_S
            assert sum(target.slices) == pytest.approx(seconds)
    finally:
        ch.close()


@pytest.mark.parametrize("seconds", [1e9, MAX_ADVANCE_S * 1.01, 10**400])
def test_advance_beyond_the_maximum_is_one_error(channel: Channel, seconds: float) -> None:
    with channel.connect() as sock:
        sock.sendall(b'{"cmd": "advance", "seconds": %d}\n' % int(seconds))
        reply = json.loads(sock.makefile().readline())
        assert reply["ok"] is False
        assert "seconds" in reply["error"]
        assert channel.target.now == 0.0
        assert ask(sock, {"cmd": "time"})["ok"] is True


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_a_nan_or_infinite_id_gets_an_error_and_the_connection_stays(
    channel: Channel, constant: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    with channel.connect() as sock:
        reply = ask(sock, b'{"cmd": "time", "id": ' + constant + b"}")
        assert reply["ok"] is False and "not valid JSON" in reply["error"]
        assert ask(sock, {"cmd": "time", "id": 3}) == {"ok": True, "time": 0.0, "id": 3}
    assert no_tracebacks(caplog) == []


def test_an_id_that_cannot_be_echoed_is_refused(channel: Channel) -> None:
    with channel.connect() as sock:
        reply = ask(sock, {"cmd": "time", "id": {"nested": [1]}})
        assert reply == {"ok": False, "error": reply["error"]}
        assert "'id'" in reply["error"]


def test_a_request_over_one_mib_gets_an_error_and_the_connection_stays(
    channel: Channel,
) -> None:
    with channel.connect() as sock:
        sock.sendall(b'{"cmd": "time", "pad": "' + b"x" * (3 << 20) + b'"}\n')
        lines = sock.makefile()
        reply = json.loads(lines.readline())
        assert reply["ok"] is False and "1 MiB" in reply["error"]
        sock.sendall(b'{"cmd": "time", "id": "after"}\n')
        assert json.loads(lines.readline()) == {"ok": True, "time": 0.0, "id": "after"}


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested too deep"),
        (b'{"cmd": "time", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nested too deep"),
        (b'{"cmd": "time", "x": ' + b"9" * 5000 + b"}", "digits"),
        (b'{"cmd": "advance", "seconds": ' + b"9" * 400 + b"}", "400 digits"),
    ],
)
def test_deep_json_and_huge_integers_are_one_error_without_traceback(
    channel: Channel, line: bytes, fragment: str, caplog: pytest.LogCaptureFixture
) -> None:
    with channel.connect() as sock:
        reply = ask(sock, line)
        assert reply["ok"] is False and fragment in reply["error"]
        assert ask(sock, {"cmd": "time"})["ok"] is True
    assert no_tracebacks(caplog) == []


def test_only_the_owner_can_disarm_or_replace_the_watchdog(channel: Channel) -> None:
    with channel.connect() as owner, channel.connect() as other:
        assert ask(owner, {"cmd": "arm_watchdog", "seconds": 30})["ok"] is True
        for seconds in (0, 5):
            reply = ask(other, {"cmd": "arm_watchdog", "seconds": seconds})
            assert reply["ok"] is False
            assert "armed by control client" in reply["error"]
        assert ask(other, {"cmd": "status"})["watchdog"]["seconds"] == 30
        assert ask(owner, {"cmd": "arm_watchdog", "seconds": 10})["watchdog"]["seconds"] == 10
        assert ask(owner, {"cmd": "arm_watchdog", "seconds": 0})["watchdog"] is None
        assert ask(other, {"cmd": "arm_watchdog", "seconds": 5})["ok"] is True
    assert channel.target.safe.wait(5)
    assert "closed" in channel.target.safe_reason


def test_status_is_all_safe_right_after_a_watchdog_trip_under_the_sim_clock() -> None:
    emu = EmulatorThread(load_bench_file(EMULATED_BENCH), clock="sim")
    try:
        plant = emu.emulator.plant

        def drive() -> None:
            supply = plant.supply("SUP1.supply")
            supply.set_voltage(20.0)
            supply.set_current(2.5)
            supply.set_output(True)
            load = plant.load("LOAD1.load")
            load.set_mode("CC")
            load.set_level(2.0)
            load.set_input(True)

        emu._loop.call(drive)
        emu.control.advance(5.0)
        assert emu.control.status()["all_safe"] is False
        host, port = emu.info.control.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as owner:
            assert ask(owner, {"cmd": "arm_watchdog", "seconds": 30})["ok"] is True
        status = emu.control.status()
        while not status["safe_reason"]:
            status = emu.control.status()
        assert "closed" in status["safe_reason"]
        assert status["all_safe"] is True, [p for p in status["ports"] if not p["safe"]]
        assert status["time"] == pytest.approx(5.0)
    finally:
        emu.stop()


def emulate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    code = main(["emulate", str(EMULATED_BENCH), *args])
    err = capsys.readouterr().err
    return code, [line for line in err.splitlines() if line.startswith("hil emulate:")]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--control-port", "70000"), "--control-port 70000: a TCP port is 0..65535"),
        (("--control-port", "-1"), "--control-port -1: a TCP port is 0..65535"),
        (("--speed", "1e9"), "--speed 1e+09: must be above 0 and at most 1000"),
        (("--speed", "0"), "--speed 0: must be above 0"),
        (("--busy-poll-us", "-1"), "--busy-poll-us -1: must be 0 (off) to 10000"),
        (("--busy-poll-us", "nan"), "--busy-poll-us nan: must be 0 (off) to 10000"),
        (("--expose-control",), "--expose-control needs --allow-remote"),
        (("--host", "no.such.host", "--allow-remote"), "host does not resolve"),
    ],
)
def test_bad_emulate_arguments_are_one_line(
    capsys: pytest.CaptureFixture[str], args: tuple[str, ...], fragment: str
) -> None:
    code, lines = emulate(capsys, *args)
    assert code == 2
    errors = [line for line in lines if "WARNING" not in line]
    assert len(errors) == 1 and fragment in errors[0], lines


def test_a_control_port_in_use_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, lines = emulate(capsys, "--control-port", str(port))
    assert code == 2
    assert lines == [
        f"hil emulate: cannot serve on 127.0.0.1: error while attempting to bind on address "
        f"('127.0.0.1', {port}): address already in use"
    ]


@pytest.mark.parametrize("expose", [False, True])
def test_allow_remote_exposes_the_control_channel_only_with_its_own_flag(expose: bool) -> None:
    command = [sys.executable, "-m", "hil.cli", "emulate", str(EMULATED_BENCH), "--json"]
    command += ["--host", "127.0.0.2", "--allow-remote"]
    command += ["--expose-control"] if expose else []
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
    ) as child:
        assert child.stdout is not None and child.stderr is not None
        try:
            data = json.loads(child.stdout.readline())
            host, port = data["control"].rsplit(":", 1)
            assert host == ("127.0.0.2" if expose else "127.0.0.1")
            assert all("127.0.0.2" in i["resource"] for i in data["instruments"])
            with socket.create_connection((host, int(port)), timeout=10) as sock:
                assert ask(sock, {"cmd": "shutdown"})["ok"] is True
            assert child.wait(30) == 0
        finally:
            if child.poll() is None:
                child.kill()
        warnings = [line for line in child.stderr.read().decode().splitlines() if "WARN" in line]
    exposed = [line for line in warnings if "control channel" in line and "exposed" in line]
    assert len(exposed) == (1 if expose else 0), warnings


def test_scpi_caches_stay_bounded_by_count_and_bytes() -> None:
    from test_scpi_device import Supply

    from instruments.emulation.scpi_parser import CACHE_BYTES, CACHE_ENTRIES

    device = Supply()
    table = Supply.table
    unit = b"VOLT 1.5;:CURR 2;:MEAS:VOLT?;"
    tracemalloc.start()
    try:
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for i in range(60):
            message = b"*CLS;" + unit * (60_000 // len(unit)) + b"VOLT %d" % (i % 50)
            device.execute_line(message)
            device.execute_line(b"VOLT %d.%d" % (i % 50, i))
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    for cache in (table.plans, table.lines):
        assert len(cache) <= CACHE_ENTRIES and cache.bytes <= CACHE_BYTES
        assert all(len(key) <= 1024 for key in cache)
    assert grown < 8 << 20, f"SCPI caches grew by {grown / 2**20:.0f} MiB"


def test_rtu_junk_is_worked_off_in_bounded_slices_and_the_line_recovers() -> None:
    from instruments.emulation.modbus import FEED_WORK_BUDGET, ModbusBus, ModbusDevice, rtu_frame

    session = ModbusBus([ModbusDevice(1).holding(0, "x", lambda: 5)]).rtu_session()
    junk = bytes((1, 0x41)) * (128 << 10)  # unit 1, an unknown function: the costly case
    request = rtu_frame(1, bytes((3, 0, 0, 0, 1)))
    replies = session.feed(junk + request)
    assert session.backlog, "one feed must not frame 256 KiB of junk at once"
    calls = 1
    while session.backlog:
        replies += session.feed(b"")
        calls += 1
    assert replies == [rtu_frame(1, bytes((3, 2, 0, 5)))]
    assert calls >= len(junk) // FEED_WORK_BUDGET


def test_rtu_over_tcp_answers_after_a_flood_of_junk_and_other_servers_keep_serving() -> None:
    from instruments.emulation.modbus import ModbusBus, ModbusDevice, rtu_frame
    from instruments.emulation.transport import BackgroundLoop, ServerGroup

    bus = ModbusBus([ModbusDevice(1).holding(0, "x", lambda: 5)])
    group = ServerGroup()
    with BackgroundLoop() as loop:
        rtu = loop.run(group.serve_tcp(bus.rtu_session, instrument="rtu"))
        tcp = loop.run(group.serve_tcp(bus.tcp_session, instrument="tcp"))
        try:
            with socket.create_connection(("127.0.0.1", rtu), timeout=30) as flood:
                flood.sendall(
                    bytes((1, 0x41)) * (128 << 10) + rtu_frame(1, b"\x03\x00\x00\x00\x01")
                )
                with socket.create_connection(("127.0.0.1", tcp), timeout=30) as other:
                    other.sendall(bytes.fromhex("0007 0000 0006 01 03 0000 0001"))
                    expected = bytes.fromhex("0007 0000 0005 01 03 02 0005")
                    answer = b""
                    while len(answer) < len(expected):
                        chunk = other.recv(64)
                        assert chunk, "the Modbus TCP server closed the connection"
                        answer += chunk
                    assert answer == expected
                reply = b""
                while len(reply) < 7:
                    chunk = flood.recv(64)
                    assert chunk, "the RTU server closed the connection"
                    reply += chunk
                assert reply == rtu_frame(1, bytes((3, 2, 0, 5)))
        finally:
            loop.run(group.close())
