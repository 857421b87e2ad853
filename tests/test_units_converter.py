"""ConverterUnit (EZA-2500 + APIS BMS, or + Sony's supply/load battery): scripted bytes."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hil.clock import SimClock
from hil.controller import CurrentController, Mode
from hil.envelope import UnitEnvelope
from hil.errors import (
    CapabilityError,
    CommunicationError,
    ConfigError,
    EnvelopeError,
    SafetyTrip,
)
from hil.units import ConverterUnit, Part, SupplyLoadBattery, node_levels
from instruments.apis_bms import ApisBms
from instruments.base import Rating
from instruments.chroma63200a import Chroma63200A
from instruments.connection import ModbusConnection, ScpiConnection, SerialConnection
from instruments.eza2500 import Eza2500
from instruments.n5700 import N5700
from instruments.scripted import (
    ModbusStep,
    ScriptedModbusClient,
    ScriptedSerialPort,
    ScriptedVisaResource,
    SerialStep,
    VisaStep,
    modbus,
    query,
    write,
)
from instruments.wire.eza2500 import Command, build_read, build_reply, build_write, encode_payload
from instruments.wire.eza2500 import Mode as EzaMode

PORT = "socket://127.0.0.1:5701"
LIMITS = {"cib": 20.0, "dig": 0.0, "ubv": 40.0, "ugv": 300.0, "obv": 58.0, "ogv": 380.0}
ARMED = {"cib": 30.9375, "dig": 0.0, "ubv": 32.0, "ugv": 300 / 1.05, "obv": 58.4, "ogv": 399.0}


def read_step(cmd: int, values: dict[str, float]) -> SerialStep:
    return SerialStep(build_read(cmd), build_reply(cmd, encode_payload(cmd, values, write=False)))


def write_step(cmd: int, values: dict[str, float]) -> SerialStep:
    return SerialStep(build_write(cmd, values), build_reply(cmd, encode_payload(cmd, values)))


def mode_read(mode: EzaMode) -> SerialStep:
    return read_step(Command.MODE, {"mode": int(mode)})


def set_mode(mode: EzaMode) -> list[SerialStep]:
    return [write_step(Command.MODE, {"mode": int(mode)}), mode_read(mode)]


def bms_read(soc_tenths: int, *, allowed: bool = True) -> ModbusStep:
    """The BMS's one read: SoC (30030) and status (30031) at wire 29, count 2."""
    return modbus("read_input_registers", 29, 2, reply=[soc_tenths, 0 if allowed else 1])


def envelope(
    unit_id: str = "E003", battery: tuple[float, float] = (32.0, 58.4), soc: bool = True
) -> UnitEnvelope:
    return UnitEnvelope(
        unit_id,
        voltage_min=300.0,
        voltage_max=380.0,
        current_source_max=2.3,
        current_sink_max=2.3,
        power_max=900.0,
        slew_max=10.0,
        soc_min=0.2 if soc else None,
        soc_max=0.95 if soc else None,
        battery_voltage_min=battery[0],
        battery_voltage_max=battery[1],
    )


def refusing_opener(port: ScriptedSerialPort) -> Callable[[], ScriptedSerialPort]:
    opened: list[int] = []

    def opener() -> ScriptedSerialPort:
        opened.append(1)
        if len(opened) > 1:
            raise CommunicationError("cannot open serial line: refused", resource=PORT)
        return port

    return opener


def make_converter(*steps: SerialStep) -> tuple[Eza2500, ScriptedSerialPort]:
    port = ScriptedSerialPort.of(*steps)
    connection = SerialConnection(PORT, timeout=0.05, opener=refusing_opener(port))
    converter = Eza2500(
        connection,
        rating=Rating(380.0, 7.8125, 2500.0),
        pacing=0.0,
        clock=SimClock(lambda s: s),
        name="E003.converter",
    )
    return converter, port


class HookedClient(ScriptedModbusClient):
    """A scripted client that runs ``hook`` before answering a read (a race in one thread)."""

    def __init__(self, steps: list[ModbusStep], hook: Callable[[], None] | None = None) -> None:
        super().__init__(steps)
        self.hook = hook

    def read_input_registers(self, address: int, *, count: int = 1, device_id: int = 1) -> Any:
        if self.hook is not None:
            self.hook()
        return super().read_input_registers(address, count=count, device_id=device_id)


def make(
    *steps: SerialStep, bms: list[ModbusStep] | None = None
) -> tuple[ConverterUnit, ScriptedSerialPort, HookedClient]:
    converter, port = make_converter(*steps)
    client = HookedClient(bms or [])
    bms_driver = ApisBms(ModbusConnection(PORT, client_factory=lambda: client), name="E003.battery")
    unit = ConverterUnit(
        "E003", converter, envelope(), SimClock(lambda s: s, start=7.0), bms=bms_driver
    )
    return unit, port, client


def test_capabilities_of_an_apis_unit() -> None:
    unit, _, _ = make()
    assert isinstance(unit, CurrentController)
    caps = unit.capabilities
    assert caps.can_source and caps.can_sink and caps.can_hold_voltage and caps.has_battery
    assert caps.source_current_max == 7.8125
    assert not caps.hardware_watchdog


def test_discharge_from_wait_follows_apis_order_then_ramps_with_one_frame() -> None:
    unit, port, client = make(
        *set_mode(EzaMode.WAIT),
        write_step(Command.LIMITS, ARMED),
        mode_read(EzaMode.WAIT),
        read_step(Command.LIMITS, ARMED),
        write_step(Command.LIMITS, {**ARMED, "dig": 1.0}),
        *set_mode(EzaMode.DISCHARGE),
        write_step(Command.LIMITS, {**ARMED, "dig": 1.5}),
        bms=[bms_read(500), bms_read(500)],
    )
    unit.arm()
    unit.set_current(1.0)
    unit.set_current(1.5)
    port.assert_done()
    client.assert_done()
    assert unit.commanded_mode is Mode.CURRENT


def test_charge_uses_the_magnitude_and_zero_goes_to_wait() -> None:
    unit, port, _ = make(
        mode_read(EzaMode.WAIT),
        read_step(Command.LIMITS, LIMITS),
        write_step(Command.LIMITS, {**LIMITS, "dig": 2.0}),
        *set_mode(EzaMode.CHARGE),
        *set_mode(EzaMode.WAIT),
        read_step(Command.LIMITS, {**LIMITS, "dig": 2.0}),
        write_step(Command.LIMITS, LIMITS),
        bms=[bms_read(500)],
    )
    unit.set_current(-2.0)
    unit.set_current(0.0)
    port.assert_done()
    assert unit.commanded_mode is Mode.IDLE


def test_a_direction_the_battery_forbids_is_refused_naming_the_permission() -> None:
    unit, port, client = make(bms=[bms_read(500, allowed=False)])
    with pytest.raises(CapabilityError, match=r"E003.*charge.*NONE.*30031"):
        unit.set_current(-1.0)
    assert port.written == []
    assert [call for call, *_ in client.log] == ["read_input_registers"]


def test_discharging_below_the_soc_window_is_refused() -> None:
    unit, port, _ = make(bms=[bms_read(150)])
    with pytest.raises(EnvelopeError, match=r"E003.*0\.15.*soc_min"):
        unit.set_current(1.0)
    assert port.written == []


def test_voltage_reference_sends_voltage_limits_then_mode() -> None:
    unit, port, _ = make(
        mode_read(EzaMode.WAIT),
        write_step(Command.VOLTAGE_REFERENCE, {"dvg": 350.0, "drg": 0.0}),
        read_step(Command.LIMITS, LIMITS),
        write_step(Command.LIMITS, {**LIMITS, "dig": 2.3}),
        *set_mode(EzaMode.VOLTAGE_REFERENCE),
        write_step(Command.VOLTAGE_REFERENCE, {"dvg": 360.0, "drg": 0.039}),
        read_step(Command.LIMITS, {**LIMITS, "dig": 2.3}),
        write_step(Command.LIMITS, {**LIMITS, "dig": 2.3}),
        bms=[bms_read(500), bms_read(500)],
    )
    unit.hold_voltage(350.0, 2.3)
    unit.hold_voltage(360.0, 2.3, droop=0.039)  # already the reference: no mode frames
    port.assert_done()
    assert unit.commanded_mode is Mode.VOLTAGE_REFERENCE


def test_voltage_reference_outside_the_window_sends_nothing() -> None:
    unit, port, client = make()
    with pytest.raises(EnvelopeError, match=r"E003.*390 V.*380 V"):
        unit.hold_voltage(390.0, 2.0)
    with pytest.raises(EnvelopeError, match="droop"):
        unit.hold_voltage(350.0, 2.0, droop=-0.1)
    assert port.written == [] and client.log == []


def test_read_turns_apis_signs_into_bus_convention_and_flags() -> None:
    meters = {
        "vg": 350.0,
        "ig": 1.0,
        "vb": 50.0,
        "ib": 7.0,
        "wg": 350.0,
        "wb": 350.0,
        "ic": 0,
        "tmp": 30.0,
    }
    unit, port, _ = make(
        read_step(Command.METERS, meters),
        mode_read(EzaMode.CHARGE),
        read_step(Command.STATUS, {"cst": (1 << 2) | 1, "ext": 0}),
        bms=[bms_read(500, allowed=False)],
    )
    reading = unit.read()
    port.assert_done()
    assert reading.t == 7.0
    assert reading.bus_current == pytest.approx(-1.0, abs=1e-3)
    assert reading.bus_voltage == pytest.approx(350.0, abs=0.05)
    assert reading.battery_current == pytest.approx(-7.0, abs=1e-2)
    assert reading.battery_voltage == pytest.approx(50.0, abs=0.01)
    assert reading.mode is Mode.CURRENT
    assert reading.flags == {"ALARM", "NO_CHARGE", "NO_DISCHARGE"}
    assert reading.soc == 0.5 and reading.temperature == pytest.approx(30.0)


def test_a_heavy_alarm_reads_as_fault() -> None:
    meters = dict.fromkeys(("vg", "ig", "vb", "ib", "wg", "wb", "ic", "tmp"), 0.0)
    unit, _, _ = make(
        read_step(Command.METERS, meters),
        mode_read(EzaMode.WAIT),
        read_step(Command.STATUS, {"cst": 2 << 2, "ext": 0}),
        bms=[bms_read(500)],
    )
    reading = unit.read()
    assert reading.mode is Mode.FAULT and "HEAVY_ALARM" in reading.flags


def test_safe_off_with_a_dead_converter_reports_and_never_raises() -> None:
    unit, _, _ = make(
        SerialStep(build_write(Command.MODE, {"mode": 0}), OSError("device disconnected"))
    )
    failures = unit.safe_off()
    assert len(failures) == 1
    assert failures[0].startswith("E003: eza2500 E003.converter could not be sent WAIT")


def test_safe_off_that_races_a_set_point_wins() -> None:
    unit, port, client = make(*set_mode(EzaMode.WAIT), bms=[bms_read(500)])
    outcome: list[list[str]] = []
    client.hook = lambda: outcome.append(unit.safe_off())
    with pytest.raises(SafetyTrip, match=r"safe_off\(\) ran while set_current\(\+1 A\)"):
        unit.set_current(1.0)
    assert outcome == [[]]
    port.assert_done()  # only safe_off's WAIT reached the converter


# -- Sony's rig: a supply + a load as the battery ----------------------------------------


def make_rig(
    converter_steps: list[SerialStep], supply_steps: list[VisaStep], load_steps: list[VisaStep]
) -> tuple[ConverterUnit, ScriptedSerialPort, ScriptedVisaResource, ScriptedVisaResource]:
    converter, port = make_converter(*converter_steps)
    supply_res = ScriptedVisaResource(supply_steps)
    load_res = ScriptedVisaResource(load_steps)
    psu = N5700(
        ScpiConnection("TCPIP0::127.0.0.1::5025::SOCKET", opener=lambda: supply_res),
        rating=Rating(60.0, 25.0, 1500.0),
        name="E005.supply",
    )
    load = Chroma63200A(
        ScpiConnection("TCPIP0::127.0.0.1::2101::SOCKET", opener=lambda: load_res),
        rating=Rating(150.0, 240.0, 1500.0),
        name="E005.load",
    )
    env = envelope("E005", battery=(44.0, 54.0), soc=False)
    levels = node_levels(
        env,
        {"hold_voltage": 48.0, "current_limit": 22.0},
        25.0,
        load_settings={},
        load_current_rating=240.0,
    )
    assert levels.hold_voltage == 48.0 and levels.cv_voltage == 48.5
    assert levels.current_limit == 22.0 and levels.cv_current_limit == pytest.approx(22.5)
    battery = SupplyLoadBattery(
        env,
        Part("E005", "supply", "n5700", psu),
        Part("E005", "load", "chroma63200a", load),
        levels,
    )
    unit = ConverterUnit("E005", converter, env, SimClock(lambda s: s), battery=battery)
    return unit, port, supply_res, load_res


def test_rig_energizes_the_battery_node_before_the_converter_leaves_wait() -> None:
    # the converter reads its battery node up (48 V) before it leaves WAIT
    node_up = {"vg": 350.0, "ig": 0, "vb": 48.0, "ib": 0, "wg": 0, "wb": 0, "ic": 0, "tmp": 25.0}
    unit, port, supply, load = make_rig(
        [
            read_step(Command.METERS, node_up),
            mode_read(EzaMode.WAIT),
            read_step(Command.LIMITS, LIMITS),
            write_step(Command.LIMITS, {**LIMITS, "dig": 1.0}),
            *set_mode(EzaMode.DISCHARGE),
            write_step(Command.MODE, {"mode": 0}),
            mode_read(EzaMode.WAIT),
        ],
        [write("VOLT 48"), write("CURR 22"), write("OUTP ON"), write("OUTP OFF")],
        [
            write("MODE CVH"),
            write("VOLT:STAT:ILIM 22.5"),
            write("VOLT:STAT:L1 48.5"),
            write("LOAD ON"),
            write("LOAD OFF"),
        ],
    )
    assert not unit.capabilities.has_battery
    unit.set_current(1.0)
    assert unit.safe_off() == []  # converter WAIT first, then supply and load off
    for script in (port, supply, load):
        script.assert_done()


def test_rig_arm_programmes_battery_protections_and_converter_limits() -> None:
    rig_limits = {
        "cib": 22.5,
        "dig": 0.0,
        "ubv": 44.0,
        "ugv": 300 / 1.05,
        "obv": 54.0,
        "ogv": 399.0,
    }
    unit, port, supply, load = make_rig(
        [*set_mode(EzaMode.WAIT), write_step(Command.LIMITS, rig_limits)],
        [
            write("OUTP OFF"),
            write("CURR:PROT:STAT OFF"),
            write("VOLT 48"),
            query("VOLT?", "+4.8E+01"),
            write("VOLT:PROT:LEV 56.7"),
            query("VOLT?", "+4.8E+01"),
            write("VOLT:LIM:LOW 44"),
            write("CURR 22"),
            query("OUTP?;:STAT:QUES:COND?", "0;0"),
        ],
        [
            write("LOAD OFF"),
            write("MODE CVH"),
            write("VOLT:STAT:ILIM 22.5"),
            write("VOLT:STAT:L1 48.5"),
            query("LOAD?;:STAT:CHAN:COND?", "0;2"),
        ],
    )
    unit.arm()
    assert unit.battery is not None
    assert unit.battery.flags() == {"load.OVP"}  # off is expected while not energized
    for script in (port, supply, load):
        script.assert_done()


def test_rig_load_cv_must_sit_above_the_supply() -> None:
    with pytest.raises(ConfigError, match="above the supply"):
        node_levels(
            envelope("E005", battery=(44.0, 54.0)),
            {"hold_voltage": 48.0},
            25.0,
            load_settings={"cv_voltage": 47.0},
            load_current_rating=240.0,
        )


@settings(max_examples=60, deadline=None)
@given(
    st.one_of(
        st.floats(min_value=2.3000001, allow_nan=False),
        st.floats(max_value=-2.3000001, allow_nan=False),
        st.just(math.nan),
        st.just(-math.inf),
    )
)
def test_set_points_outside_the_envelope_never_reach_any_wire(amps: float) -> None:
    unit, port, client = make()
    with pytest.raises(EnvelopeError):
        unit.set_current(amps)
    assert port.written == [] and client.log == []
