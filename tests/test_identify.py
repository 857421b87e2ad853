"""``hil identify``: a table of who answered, exit 1 naming who did not, fast."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from hil.cli import identify, main
from hil.cli.identify import format_table, identify_instruments
from hil.config.benchfile import parse_bench_text

IDN = "Keysight Technologies,N5772A,US24680,A.02.01"


class _IdnHandler(socketserver.StreamRequestHandler):
    """A one-trick SCPI instrument over a real socket: answers ``*IDN?``."""

    def handle(self) -> None:
        for line in self.rfile:
            if line.strip().upper() == b"*IDN?":
                self.wfile.write(IDN.encode() + b"\n")


@pytest.fixture
def live_port() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _IdnHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bench(supply: str, dead: bool = False) -> str:
    text = f"""
schema_version = 1
name = "identify-test"

[bus]
nominal_voltage = 350.0

[default_envelope]
power_max = 900.0

[[units]]
id = "SUP1"
kind = "supply"
  [[units.instruments]]
  driver = "n5700"
  model = "N5772A"
  resource = "{supply}"
"""
    if dead:
        ports = [closed_port() for _ in range(3)]
        text += f"""
[[units]]
id = "LOAD1"
kind = "load"
  [[units.instruments]]
  driver = "chroma63200a"
  model = "63202A-600-140"
  resource = "TCPIP0::127.0.0.1::{ports[0]}::SOCKET"

[[units]]
id = "E001"
kind = "converter"
  [[units.instruments]]
  driver = "eza2500"
  model = "EZA-2500-32048SC0"
  resource = "socket://127.0.0.1:{ports[1]}"
  [[units.instruments]]
  driver = "apis_bms"
  model = "APIS-48V-4.8kWh"
  resource = "socket://127.0.0.1:{ports[2]}"
  settings = {{ device_id = 2 }}
"""
    return text


def write_bench(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bench.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_every_instrument_answering_exits_zero_with_a_table(
    tmp_path: Path, live_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_bench(tmp_path, bench(f"TCPIP0::127.0.0.1::{live_port}::SOCKET"))
    assert main(["identify", str(path), "--timeout", "2"]) == 0
    out = capsys.readouterr().out
    assert "1 of 1 instruments answered" in out
    row = next(line for line in out.splitlines() if line.startswith("SUP1"))
    assert row.split() == [
        "SUP1",
        "supply",
        "n5700",
        f"TCPIP0::127.0.0.1::{live_port}::SOCKET",
        "Keysight",
        "Technologies",
        "N5772A",
        "US24680",
        "A.02.01",
    ]


def test_missing_instruments_are_each_named_and_exit_one(
    tmp_path: Path, live_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_bench(tmp_path, bench(f"TCPIP0::127.0.0.1::{live_port}::SOCKET", dead=True))
    assert main(["identify", str(path), "--timeout", "1"]) == 1
    captured = capsys.readouterr()
    assert "1 of 4 instruments answered" in captured.out
    assert "US24680" in captured.out
    first = captured.err.splitlines()[0]
    assert first == (
        "hil identify: 3 instrument(s) did not answer: LOAD1.load, E001.converter, E001.battery"
    )
    assert "SUP1.supply" not in captured.err
    assert "refused" in captured.err


def test_identify_instruments_never_raises_for_an_instrument() -> None:
    config = parse_bench_text(bench("emulated", dead=True), "x.toml")
    result = identify_instruments(config, timeout=1.0)
    assert result.identities == []
    assert list(result.missing) == ["SUP1.supply", "LOAD1.load", "E001.converter", "E001.battery"]
    assert "placeholder" in result.missing["SUP1.supply"]


def test_a_bad_bench_file_exits_two(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_bench(tmp_path, "schema_version = 1\nname = 'x'\n")
    assert main(["identify", str(path)]) == 2
    assert "hil identify:" in capsys.readouterr().err
    assert main(["identify", str(tmp_path / "missing.toml")]) == 2


def test_emulate_without_an_emulator_module_exits_two(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(identify, "EMULATOR_MODULE", "instruments.emulation.no_such_module")
    path = write_bench(tmp_path, bench("emulated"))
    assert main(["identify", str(path), "--emulate"]) == 2
    assert "--emulate needs" in capsys.readouterr().err


class FakeEmulator:
    def __init__(self, resources: dict[str, str]) -> None:
        self.resources = resources
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True


def test_emulate_identifies_the_emulators_resources_and_stops_it(
    tmp_path: Path, live_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator = FakeEmulator({"SUP1.supply": f"TCPIP0::127.0.0.1::{live_port}::SOCKET"})
    started: list[Path] = []

    def start(path: Path) -> FakeEmulator:
        started.append(path)
        return emulator

    monkeypatch.setattr(identify, "_start_emulator", start)
    path = write_bench(tmp_path, bench("emulated"))
    assert main(["identify", str(path), "--emulate"]) == 0
    assert started == [path] and emulator.stopped


def test_table_columns_are_aligned() -> None:
    config = parse_bench_text(bench("emulated"), "x.toml")
    assert config.unit("SUP1").kind == "supply"
    table = format_table([])
    assert table.split() == [
        "UNIT",
        "INSTRUMENT",
        "DRIVER",
        "RESOURCE",
        "VENDOR",
        "MODEL",
        "SERIAL",
        "FIRMWARE",
    ]


def test_a_bench_value_nested_500_deep_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_bench(tmp_path, "schema_version = 1\nname = 'x'\nx = " + "[" * 500 + "]" * 500)
    assert main(["identify", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"hil identify: {path}:3: a value nests arrays or inline tables"), err
