"""The emulated APIS BMS on a plant battery: the real driver and a plain pymodbus RTU client."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from plant_servers import PlantServers, bus_node, context, emulated_bench, modbus_client

from hil.errors import ConfigError
from instruments.apis_bms import ApisBms, Permission
from instruments.emulation.models.apis_bms import ApisBmsModel
from instruments.emulation.models.base import ModelContext
from instruments.emulation.plant import LoadMode, LoadSpec, NodeSpec

TIMEOUT_S = 5.0
LOAD = "E001.test-load"


@dataclass
class Rig:
    """E001's battery behind its BMS, a test load on the battery node, RTU over TCP."""

    h: PlantServers
    model: ApisBmsModel
    port: int
    bms: ApisBms

    def set(self, field: str, value: object) -> bool:
        return self.h.call(lambda: self.model.set_value(field, value))

    def fault(self, kind: str, **params: object) -> None:
        self.h.call(lambda: self.model.fault(kind, params))


@pytest.fixture
def rig() -> Iterator[Rig]:
    ctx = context(emulated_bench(), "E001", "apis_bms")
    load = LoadSpec(
        name=LOAD,
        node=ctx.battery_node,
        max_current_a=100.0,
        max_voltage_v=150.0,
        mode=LoadMode.CC,
        level=20.0,
    )
    nodes = [bus_node(), NodeSpec(name=ctx.battery_node)]
    with PlantServers(nodes, [*ApisBmsModel.port_specs(ctx), load]) as h:
        model = h.add(ApisBmsModel, ctx)
        port = h.serve_tcp(model)
        bms = ApisBms.open(f"modbus-rtu-tcp://127.0.0.1:{port}", timeout=TIMEOUT_S, name="E001")
        try:
            yield Rig(h, model, port, bms)
        finally:
            bms.close()


def test_reads_soc_and_permission_from_the_bench_file(rig: Rig) -> None:
    reading = rig.bms.read()
    assert reading.soc_percent == pytest.approx(30.0)  # [emulation.ports.E001] soc = 0.30
    assert reading.permission is Permission.BOTH


def test_soc_falls_while_the_battery_discharges(rig: Rig) -> None:
    rig.h.call(lambda: rig.h.plant.load(LOAD).set_input(True))
    before = rig.bms.soc()
    rig.h.advance(600.0)
    after = rig.bms.soc()
    state = rig.h.call(lambda: rig.h.plant.state(rig.model.key))
    delivered_wh = state.energy_j / 3600.0
    assert delivered_wh == pytest.approx(20.0 * 48.0 * 600.0 / 3600.0, rel=0.03)
    # The cells lose what the load took plus the I^2 R heat of the internal resistance.
    spent_wh = delivered_wh + state.loss_energy_j / 3600.0
    # Two readings, each rounded to the register's 0.1 %.
    assert before - after == pytest.approx(100.0 * spent_wh / 4800.0, abs=0.1)


def test_set_soc_and_permission(rig: Rig) -> None:
    assert rig.set("soc", 0.623)
    assert rig.bms.soc() == pytest.approx(62.3)
    assert rig.set("permission", "none")
    assert rig.bms.permission() is Permission.NONE
    assert rig.set("permission", 3)
    assert rig.bms.permission() is Permission.BOTH
    assert not rig.set("mode", 1)
    for one_way in ("charge", "discharge", 1, 2, 4, True):
        with pytest.raises(ConfigError, match="only bit 0"):
            rig.set("permission", one_way)
    with pytest.raises(ConfigError, match="soc"):
        rig.set("soc", "full")
    with pytest.raises(ConfigError, match="soc"):
        rig.set("soc", 1.5)


def test_permission_fault_sets_status_bit_0_until_cleared(rig: Rig) -> None:
    rig.fault("permission")
    assert rig.bms.read().permission is Permission.NONE
    assert rig.bms.read().status == 1
    status = rig.h.call(lambda: rig.model.status())
    assert (status["permission_fault"], status["permission"], status["status_word"]) == (
        True,
        0,
        1,
    )
    rig.h.call(rig.model.clear_faults)
    assert rig.bms.permission() is Permission.BOTH
    rig.fault("permission", value="none")
    assert rig.bms.permission() is Permission.NONE
    with pytest.raises(ConfigError, match="only be 0 or 'none'"):
        rig.fault("permission", value=3)
    with pytest.raises(ConfigError, match="only bit 0"):
        rig.fault("permission", value=1)


def test_open_contactor_reports_no_permission(rig: Rig) -> None:
    rig.fault("trip", trip="UVLO")
    assert rig.bms.permission() is Permission.NONE


def test_bms_cut_off_at_empty_trips_the_battery(rig: Rig) -> None:
    rig.set("soc", 0.001)
    rig.h.call(lambda: rig.h.plant.load(LOAD).set_input(True))
    rig.h.advance(60.0)
    reading = rig.bms.read()
    assert reading.soc_percent == pytest.approx(0.0, abs=0.1)
    assert reading.permission is Permission.NONE
    trips = rig.h.call(lambda: rig.h.plant.port(rig.model.key).trips)
    assert {t.value for t in trips} == {"UVLO"}


def test_soc_offset_fault_skews_the_register(rig: Rig) -> None:
    rig.fault("offset", quantity="soc", value=0.05)
    assert rig.bms.soc() == pytest.approx(35.0)
    rig.h.call(rig.model.clear_faults)
    rig.h.call(lambda: rig.model.main_port.set_sensor_offset("soc", 0.0))
    assert rig.bms.soc() == pytest.approx(30.0)


def test_plain_client_reads_the_3xxxx_block_at_number_minus_30001(rig: Rig) -> None:
    """A plain pymodbus client, as apis-dcdc_batt_comm ``drivers/essx/essx_modbus.py`` reads."""
    with modbus_client(rig.port, rtu=True) as client:
        ok = client.read_input_registers(29, count=2, device_id=1)
        assert not ok.isError() and ok.registers == [300, 0]
        version = client.read_input_registers(0, count=3, device_id=1)
        assert not version.isError() and version.registers == [0x3031, 0x3030, 0x3030]
        block = client.read_input_registers(0, count=31, device_id=1)
        assert not block.isError()
        assert block.registers[30010 - 30001] == ord("H") * 256 + ord("E")
        assert block.registers[30030 - 30001 :] == [300, 0]
        rig.fault("permission")
        withdrawn = client.read_input_registers(29, count=2, device_id=1)
        assert not withdrawn.isError() and withdrawn.registers == [300, 1]
        for response in (
            client.read_input_registers(31, count=1, device_id=1),
            client.read_input_registers(30, count=2, device_id=1),
            client.read_input_registers(30030, count=2, device_id=1),
            client.read_holding_registers(29, count=1, device_id=1),
            client.write_register(29, 500, device_id=1),
            client.read_coils(0, count=1, device_id=1),
        ):
            assert response.isError() and response.exception_code == 2


def test_driver_over_a_pty() -> None:
    ctx = context(emulated_bench(), "E004", "apis_bms")
    nodes = [bus_node(), NodeSpec(name=ctx.battery_node)]
    with PlantServers(nodes, ApisBmsModel.port_specs(ctx)) as h:
        model = h.add(ApisBmsModel, ctx)
        path = h.serve_pty(model)
        bms = ApisBms.open(f"modbus-rtu:{path}", timeout=TIMEOUT_S, name="E004")
        try:
            reading = bms.read()
            assert reading.soc_percent == pytest.approx(90.0)
            assert reading.permission is Permission.BOTH
        finally:
            bms.close()


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(soc=st.floats(min_value=0.0, max_value=1.0), allowed=st.booleans())
def test_registers_follow_any_state(rig: Rig, soc: float, allowed: bool) -> None:
    rig.set("soc", soc)
    rig.set("permission", "both" if allowed else "none")
    reading = rig.bms.read()
    assert reading.soc_percent == pytest.approx(round(soc * 1000) / 10)
    assert reading.permission is (Permission.BOTH if allowed else Permission.NONE)
    assert reading.status == (0 if allowed else 1)


def test_driver_identifies_the_emulated_battery(rig: Rig) -> None:
    identity = rig.bms.identify()
    assert (identity.vendor, identity.firmware) == ("HE", "protocol 010000")


def moved(**settings: int) -> ModelContext:
    """E001's BMS context with extra bench-file settings (register numbers, as the manual)."""
    ctx = context(emulated_bench(), "E001", "apis_bms")
    instrument = dataclasses.replace(
        ctx.instrument, settings={**ctx.instrument.settings, **settings}
    )
    return dataclasses.replace(ctx, instrument=instrument)


def test_register_settings_move_soc_and_status_for_the_model_and_the_driver() -> None:
    ctx = moved(soc_register=30040, status_register=30041)
    nodes = [bus_node(), NodeSpec(name=ctx.battery_node)]
    with PlantServers(nodes, ApisBmsModel.port_specs(ctx)) as h:
        model = h.add(ApisBmsModel, ctx)
        port = h.serve_tcp(model)
        resource = f"modbus-rtu-tcp://127.0.0.1:{port}"
        bms = ApisBms.open(resource, timeout=TIMEOUT_S, soc_register=30040, status_register=30041)
        try:
            assert bms.read().soc_percent == pytest.approx(30.0)
            with modbus_client(port, rtu=True) as client:
                assert client.read_input_registers(39, count=2, device_id=1).registers == [300, 0]
                assert client.read_input_registers(29, count=2, device_id=1).registers == [0, 0]
        finally:
            bms.close()


def test_register_settings_that_collide_are_a_config_error() -> None:
    ctx = moved(soc_register=30001)
    with (
        PlantServers(
            [bus_node(), NodeSpec(name=ctx.battery_node)], ApisBmsModel.port_specs(ctx)
        ) as h,
        pytest.raises(ConfigError, match="soc_register 30001"),
    ):
        h.add(ApisBmsModel, ctx)
