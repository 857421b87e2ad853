"""Bench: opening from a bench file, refusing before touching, concurrent snapshots."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any

import pytest

from hil.clock import SimClock
from hil.config.bench import BenchConfig, InstrumentConfig
from hil.config.benchfile import load_bench_file, parse_bench_text
from hil.controller import Mode
from hil.errors import CommunicationError, ConfigError, HilError
from hil.units import (
    BidirectionalUnit,
    ConverterUnit,
    LoadUnit,
    SupplyUnit,
    UnitBase,
)
from hil.units.bench import Bench, Snapshot, WorkersClosed, _UnitWorkers, open_instruments
from instruments.apis_bms import ApisBms
from instruments.base import Instrument
from instruments.chroma63200a import Chroma63200A
from instruments.connection import ModbusConnection, ScpiConnection, SerialConnection
from instruments.eza2500 import Eza2500
from instruments.it6000c import IT6000C
from instruments.n5700 import N5700
from instruments.psb10000 import Psb10000
from instruments.scripted import (
    ScriptedModbusClient,
    ScriptedSerialPort,
    ScriptedVisaResource,
    SerialStep,
    VisaStep,
    modbus,
    query,
    write,
)
from instruments.wire.eza2500 import (
    Command,
    build_read,
    build_reply,
    encode_payload,
)
from instruments.wire.eza2500 import (
    Mode as EzaMode,
)

BENCH_FILE = "fixtures/benches/emulated.toml"


def closed_port() -> int:
    """A loopback port nobody listens on (connections are refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bench_text(port: int = 5025, *, scpi_only: bool = False, extra: str = "") -> str:
    units = f"""
[[units]]
id = "SUP1"
kind = "supply"
  [[units.instruments]]
  driver = "n5700"
  model = "N5772A"
  resource = "TCPIP0::127.0.0.1::{port}::SOCKET"

[[units]]
id = "LOAD1"
kind = "load"
  [[units.instruments]]
  driver = "chroma63200a"
  model = "63202A-600-140"
  resource = "TCPIP0::127.0.0.1::{port + 1}::SOCKET"

[[units]]
id = "BID1"
kind = "bidirectional"
  [[units.instruments]]
  driver = "it6000c"
  model = "IT6006C-500-40"
  resource = "TCPIP0::127.0.0.1::{port + 2}::SOCKET"
"""
    if not scpi_only:
        units += f"""
[[units]]
id = "BID2"
kind = "bidirectional"
  [[units.instruments]]
  driver = "psb10000"
  model = "PSB 10500-180"
  resource = "127.0.0.1:{port + 3}"
  [units.envelope]
  current_source_max = 2.3
  current_sink_max = 2.3

[[units]]
id = "E001"
kind = "converter"
  [[units.instruments]]
  driver = "eza2500"
  model = "EZA-2500-32048SC0"
  resource = "socket://127.0.0.1:{port + 4}"
  [[units.instruments]]
  driver = "apis_bms"
  model = "APIS-48V-4.8kWh"
  resource = "socket://127.0.0.1:{port + 5}"
"""
    return f"""
schema_version = 1
name = "unit-test-bench"

[bus]
nominal_voltage = 350.0
voltage_min = 300.0
voltage_max = 380.0

[default_envelope]
power_max = 900.0
{units}
{extra}
"""


class Scripts:
    """Scripted transports per instrument key; builds drivers on them (an ``opener``)."""

    def __init__(self, **steps: list[Any]) -> None:
        self.steps = {key.replace("_", "."): value for key, value in steps.items()}
        self.visa: dict[str, ScriptedVisaResource] = {}
        self.serial: dict[str, ScriptedSerialPort] = {}
        self.modbus: dict[str, ScriptedModbusClient] = {}
        self.visa_factory: Callable[[list[VisaStep]], ScriptedVisaResource] = ScriptedVisaResource

    def __call__(self, inst: InstrumentConfig) -> Instrument:
        steps = self.steps.get(inst.key, [])
        rating = inst.rating.driver_rating()
        if inst.driver in ("n5700", "chroma63200a", "it6000c"):
            resource = self.visa_factory(steps)
            self.visa[inst.key] = resource
            scpi = ScpiConnection(inst.resource, opener=lambda: resource)
            cls = {"n5700": N5700, "chroma63200a": Chroma63200A, "it6000c": IT6000C}[inst.driver]
            driver: Instrument = cls(scpi, rating=rating, name=inst.key)
            return driver
        if inst.driver == "eza2500":
            port = ScriptedSerialPort.of(*steps)
            self.serial[inst.key] = port
            serial = SerialConnection(inst.resource, timeout=0.05, opener=lambda: port)
            return Eza2500(serial, rating=rating, pacing=0.0, name=inst.key)
        client = ScriptedModbusClient(steps)
        self.modbus[inst.key] = client
        connection = ModbusConnection(inst.resource, client_factory=lambda: client)
        if inst.driver == "psb10000":
            return Psb10000(connection, device_id=0, rating=rating, name=inst.key)
        return ApisBms(connection, name=inst.key)


def config(text: str | None = None) -> BenchConfig:
    return parse_bench_text(text or bench_text(), "unit-test-bench.toml")


def idn(vendor: str, model: str) -> VisaStep:
    return query("*IDN?", f"{vendor},{model},SN1,1.0")


def eza_read(cmd: int, values: dict[str, float]) -> SerialStep:
    return SerialStep(build_read(cmd), build_reply(cmd, encode_payload(cmd, values, write=False)))


def test_open_builds_one_adapter_per_unit_and_collects_identities() -> None:
    scripts = Scripts(
        SUP1_supply=[idn("Keysight Technologies", "N5772A")],
        LOAD1_load=[idn("Chroma", "63202A-600-140")],
        BID1_bidirectional=[idn("ITECH Electronics", "IT6006C-500-40")],
        BID2_bidirectional=[
            modbus("read_holding_registers", 121, 2, device_id=0, reply=[0x43FA, 0]),
            modbus("read_holding_registers", 123, 2, device_id=0, reply=[0x4334, 0]),
            modbus("read_holding_registers", 125, 2, device_id=0, reply=[0x46EA, 0x6000]),
        ],
        E001_converter=[eza_read(Command.MODE, {"mode": int(EzaMode.WAIT)})],
        E001_battery=[
            modbus("read_input_registers", 29, 2, reply=[500, 0]),
            modbus("read_input_registers", 0, 3, reply=[0x3031, 0x3030, 0x3030]),
            modbus("read_input_registers", 9, 10, reply=[0x4845, *[0] * 9]),
        ],
    )
    with Bench.open(config(), opener=scripts, clock=SimClock(lambda s: s)) as bench:
        assert isinstance(bench.unit("SUP1"), SupplyUnit)
        assert isinstance(bench.unit("LOAD1"), LoadUnit)
        for unit_id, driver in (("BID1", "IT6000C"), ("BID2", "Psb10000")):
            unit = bench.unit(unit_id)
            assert isinstance(unit, BidirectionalUnit)
            assert type(unit.supply).__name__ == driver
        assert isinstance(bench.unit("E001"), ConverterUnit)
        keys = [f"{i.unit}.{i.instrument}" for i in bench.identities]
        assert keys == [
            "SUP1.supply",
            "LOAD1.load",
            "BID1.bidirectional",
            "BID2.bidirectional",
            "E001.converter",
            "E001.battery",
        ]
        assert bench.identities[0].vendor == "Keysight Technologies"
        assert bench.identities[4].model == "EZA-2500"
        assert (bench.identities[5].vendor, bench.identities[5].firmware) == (
            "HE",
            "protocol 010000",
        )
        assert bench.envelope.unit("E001").soc_min == pytest.approx(0.2)
    for resource in scripts.visa.values():
        assert resource.sent == ["*IDN?"]  # identity queries only: no setting was sent


def test_unknown_unit_id_names_the_known_ones() -> None:
    bench = Bench.open(config(), opener=Scripts(), identify=False)
    with bench, pytest.raises(ConfigError, match=r"no unit 'E009'; units: SUP1, LOAD1, BID1"):
        bench.unit("E009")


def test_unreachable_instruments_are_all_named_before_any_setting() -> None:
    text = bench_text(closed_port())
    with pytest.raises(CommunicationError) as info:
        Bench.open(config(text), timeout_s=1.0)
    message = str(info.value)
    assert "6 of 6 instrument(s) did not answer; nothing was sent" in message
    for key in (
        "SUP1.supply",
        "LOAD1.load",
        "BID1.bidirectional",
        "BID2.bidirectional",
        "E001.converter",
        "E001.battery",
    ):
        assert key in message
    assert "refused" in message


def test_emulated_placeholders_are_refused_without_opening_anything() -> None:
    bench = load_bench_file(BENCH_FILE)
    with pytest.raises(ConfigError) as info:
        Bench.open(bench)
    message = str(info.value)
    assert "nothing was touched" in message
    assert "E001.converter (eza2500 at emulated)" in message and "placeholder" in message


def test_a_driver_without_adapter_is_refused_before_opening() -> None:
    extra = """
[[units]]
id = "BID3"
kind = "bidirectional"
  [[units.instruments]]
  driver = "psb10000-scpi"
  model = "PSB 10500-180"
  resource = "TCPIP0::127.0.0.1::5099::SOCKET"
  [units.envelope]
  current_source_max = 2.3
  current_sink_max = 2.3
"""
    text = bench_text(closed_port(), scpi_only=True, extra=extra)
    with pytest.raises(ConfigError, match=r"BID3.bidirectional.*psb10000-scpi.*no unit adapter"):
        Bench.open(config(text))


class BarrierResource(ScriptedVisaResource):
    """Each query waits until every unit is inside a query: only concurrent reads pass."""

    barrier: threading.Barrier

    def query(self, message: str) -> str:
        self.barrier.wait(timeout=30.0)
        return super().query(message)


def read_reply(driver: str) -> VisaStep:
    if driver == "n5700":
        return query(
            "MEAS:VOLT?;:MEAS:CURR?;:OUTP?;:STAT:OPER:COND?;:STAT:QUES:COND?", "350;1;1;1024;0"
        )
    if driver == "chroma63200a":
        return query("MEAS:VOLT?;:MEAS:CURR?;:LOAD?;:STAT:CHAN:COND?;:MODE?", "350;2;1;0;CCH")
    return query("MEAS:VOLT?;:MEAS:CURR?;:OUTP?;:FUNC?;:STAT:QUES:COND?", "350;0.5;1;CURRent;0")


def test_snapshot_reads_every_unit_at_once() -> None:
    barrier = threading.Barrier(3)

    def make_resource(steps: list[VisaStep]) -> ScriptedVisaResource:
        resource = BarrierResource(steps)
        resource.barrier = barrier
        return resource

    scripts = Scripts(
        SUP1_supply=[read_reply("n5700")],
        LOAD1_load=[read_reply("chroma63200a")],
        BID1_bidirectional=[read_reply("it6000c")],
    )
    scripts.visa_factory = make_resource
    clock = SimClock(lambda s: s, start=42.0)
    text = bench_text(scpi_only=True)
    with Bench.open(config(text), opener=scripts, identify=False, clock=clock) as bench:
        assert bench.units_read == 0
        snapshot = bench.snapshot()
        assert bench.units_read == 3
    assert isinstance(snapshot, Snapshot) and snapshot.complete, snapshot.errors
    assert snapshot.t == 42.0
    assert snapshot.readings["SUP1"].bus_current == 1.0
    assert snapshot.readings["LOAD1"].bus_current == -2.0
    assert snapshot.readings["BID1"].bus_current == 0.5
    assert not barrier.broken


def test_one_failing_unit_does_not_spoil_the_snapshot() -> None:
    scripts = Scripts(
        SUP1_supply=[read_reply("n5700")],
        LOAD1_load=[
            VisaStep("query", read_reply("chroma63200a").message, OSError("connection reset"))
        ],
        BID1_bidirectional=[read_reply("it6000c")],
    )
    text = bench_text(scpi_only=True)
    with Bench.open(config(text), opener=scripts, identify=False) as bench:
        snapshot = bench.snapshot()
        assert bench.units_read == 3  # asked of every unit, whether it answered or not
    assert set(snapshot.readings) == {"SUP1", "BID1"}
    assert set(snapshot.errors) == {"LOAD1"}
    assert "CommunicationError" in snapshot.errors["LOAD1"]
    assert "TCPIP0::127.0.0.1::5026::SOCKET" in snapshot.errors["LOAD1"]


class SharedLog(ScriptedVisaResource):
    """Records every message of every instrument in one list, in the order sent."""

    shared: list[str]
    key: str

    def write(self, message: str) -> int:
        with LOCK:
            self.shared.append(f"{self.key} {message}")
        return super().write(message)


LOCK = threading.Lock()


def test_safe_off_all_switches_the_voltage_reference_off_last() -> None:
    shared: list[str] = []
    scripts = Scripts(
        SUP1_supply=[
            write("CURR 2"),
            write("VOLT 350"),
            write("OUTP ON"),
            write("OUTP OFF"),
            write("CURR 0"),
        ],
        LOAD1_load=[
            write("MODE CCH"),
            write("CURR:STAT:L1 1"),
            write("LOAD ON"),
            write("LOAD OFF"),
            write("CURR:STAT:L1 0"),
        ],
        BID1_bidirectional=[write("OUTP OFF")],
    )
    keys = iter(["SUP1", "LOAD1", "BID1"])

    def make_resource(steps: list[VisaStep]) -> ScriptedVisaResource:
        resource = SharedLog(steps)
        resource.shared, resource.key = shared, next(keys)
        return resource

    scripts.visa_factory = make_resource
    with Bench.open(config(bench_text(scpi_only=True)), opener=scripts, identify=False) as bench:
        bench.unit("SUP1").hold_voltage(350.0, 2.0)
        bench.unit("LOAD1").set_current(-1.0)
        del shared[:]
        assert bench.safe_off_all() == {"SUP1": [], "LOAD1": [], "BID1": []}
    assert shared[-2:] == ["SUP1 OUTP OFF", "SUP1 CURR 0"]
    assert set(shared[:-2]) == {"LOAD1 LOAD OFF", "LOAD1 CURR:STAT:L1 0", "BID1 OUTP OFF"}
    for resource in scripts.visa.values():
        resource.assert_done()


def test_safe_off_all_never_raises_on_a_dead_bench() -> None:
    scripts = Scripts(SUP1_supply=[VisaStep("write", "OUTP OFF", OSError("unplugged"))])
    text = bench_text(scpi_only=True)
    with Bench.open(config(text), opener=scripts, identify=False) as bench:
        outcome = bench.safe_off_all()
    assert outcome["SUP1"] and outcome["SUP1"][0].startswith("SUP1: n5700 SUP1.supply")
    assert outcome["LOAD1"] and outcome["BID1"]  # their scripts are empty: they fail too


def test_arm_all_names_every_unit_that_failed() -> None:
    scripts = Scripts(BID1_bidirectional=[write("SYST:REM")])
    text = bench_text(scpi_only=True)
    bench = Bench.open(config(text), opener=scripts, identify=False)
    with bench, pytest.raises(HilError) as info:
        bench.arm_all()
    message = str(info.value)
    assert "3 unit(s) could not be armed" in message
    assert "SUP1" in message and "LOAD1" in message and "BID1" in message


def test_open_instruments_reports_failures_in_bench_order() -> None:
    opened = open_instruments(config(bench_text(closed_port())), Scripts(), identify=True)
    try:
        assert list(opened.failures) == [
            "SUP1.supply",
            "LOAD1.load",
            "BID1.bidirectional",
            "BID2.bidirectional",
            "E001.converter",
            "E001.battery",
        ]
        assert opened.drivers == {}  # a driver that did not identify is closed, not kept
    finally:
        opened.close()


def test_close_is_idempotent_and_a_closed_bench_refuses_snapshots() -> None:
    bench = Bench.open(config(bench_text(scpi_only=True)), opener=Scripts(), identify=False)
    bench.close()
    bench.close()
    with pytest.raises(ConfigError, match="closed"):
        bench.snapshot()
    assert bench.unit("SUP1").capabilities.can_source
    assert bench.unit("BID1").envelope.unit_id == "BID1"
    load = bench.unit("LOAD1")
    assert isinstance(load, UnitBase) and load.commanded_mode is Mode.IDLE


def test_snapshots_reuse_the_unit_threads_and_close_ends_them() -> None:
    reads = 4
    scripts = Scripts(
        SUP1_supply=[read_reply("n5700")] * reads,
        LOAD1_load=[read_reply("chroma63200a")] * reads,
        BID1_bidirectional=[read_reply("it6000c")] * reads,
    )
    before = set(threading.enumerate())
    bench = Bench.open(config(bench_text(scpi_only=True)), opener=scripts, identify=False)
    assert bench.snapshot().complete
    started = set(threading.enumerate()) - before
    assert len(started) == 3  # one per unit
    for _ in range(reads - 1):
        assert bench.snapshot().complete
    assert set(threading.enumerate()) - before == started  # reused, none added
    bench.close()
    assert not any(thread.is_alive() for thread in started)


def test_safe_off_all_still_runs_on_a_closed_bench() -> None:
    scripts = Scripts(SUP1_supply=[write("OUTP OFF"), write("CURR 0")])
    text = bench_text(scpi_only=True)
    bench = Bench.open(config(text), opener=scripts, identify=False)
    bench.close()
    outcome = bench.safe_off_all()
    assert set(outcome) == {"SUP1", "LOAD1", "BID1"}


class Interrupted(BaseException):
    """Stands in for KeyboardInterrupt inside a unit job."""


def test_unit_workers_keep_order_collect_failures_and_reraise_interrupts() -> None:
    workers = _UnitWorkers(3, name="test")
    finished: list[str] = []

    def ok(name: str) -> Callable[[], str]:
        def job() -> str:
            finished.append(name)
            return name.upper()

        return job

    def fail() -> str:
        raise ValueError("no reply")

    def interrupt() -> str:
        raise Interrupted

    try:
        results, failures = workers.run_all({"c": ok("c"), "a": ok("a"), "b": fail})
        assert list(results.items()) == [("c", "C"), ("a", "A")]
        assert list(failures) == ["b"] and isinstance(failures["b"], ValueError)
        with pytest.raises(Interrupted):
            workers.run_all({"x": interrupt, "y": ok("y"), "z": ok("z")})
        assert {"y", "z"} <= set(finished)  # every other job ran to the end first
    finally:
        workers.close()
    with pytest.raises(WorkersClosed):
        workers.run_all({"late": ok("late")})
