"""Impossible plant parameters raise ConfigError naming the port (or node) and the field."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from hil.errors import ConfigError
from instruments.emulation.battery import OcvCurve
from instruments.emulation.plant import (
    BatterySpec,
    ConverterLosses,
    ConverterSpec,
    CurrentSourceSpec,
    LoadMode,
    LoadSpec,
    NodeSpec,
    Plant,
    Protection,
    Sensors,
    SensorSpec,
    Stepping,
    SupplySpec,
    ThermalSpec,
    VoltageReferenceSpec,
)

BUS = NodeSpec(name="bus")


def supply(**kw: object) -> SupplySpec:
    args: dict[str, object] = {
        "name": "psu1",
        "node": "bus",
        "max_voltage_v": 60.0,
        "max_current_a": 10.0,
    }
    args.update(kw)
    return SupplySpec(**args)  # type: ignore[arg-type]


def battery(**kw: object) -> BatterySpec:
    args: dict[str, object] = {"name": "B7", "node": "bus", "capacity_wh": 4800.0, "soc": 0.5}
    args.update(kw)
    return BatterySpec(**args)  # type: ignore[arg-type]


CASES: list[tuple[str, Callable[[], object], tuple[str, ...]]] = [
    ("negative capacity", lambda: battery(capacity_wh=-1.0), ("'B7'", "capacity_wh")),
    ("soc above one", lambda: battery(soc=1.5), ("'B7'", "soc")),
    ("soc below zero", lambda: battery(soc=-0.01), ("'B7'", "soc")),
    ("nan soc", lambda: battery(soc=math.nan), ("'B7'", "soc", "finite")),
    ("zero internal resistance", lambda: battery(r_internal_ohm=0.0), ("'B7'", "r_internal")),
    ("soc window inverted", lambda: battery(soc_min=0.8, soc_max=0.2), ("'B7'", "soc_min")),
    (
        "ocv not increasing",
        lambda: battery(ocv=OcvCurve(((0.0, 50.0), (1.0, 40.0)))),
        ("'B7'", "ocv"),
    ),
    (
        "ocv nan",
        lambda: battery(ocv=OcvCurve(((0.0, math.nan), (1.0, 40.0)))),
        ("'B7'", "ocv", "finite"),
    ),
    ("negative current rating", lambda: supply(max_current_a=-2.0), ("'psu1'", "max_current_a")),
    ("set-point above rating", lambda: supply(current_a=11.0), ("'psu1'", "current_a")),
    ("infinite voltage", lambda: supply(voltage_v=math.inf), ("'psu1'", "voltage_v")),
    ("negative slew", lambda: supply(slew_a_per_s=-1.0), ("'psu1'", "slew_a_per_s")),
    ("nan line resistance", lambda: supply(line_ohm=math.nan), ("'psu1'", "line_ohm")),
    (
        "nan protection level",
        lambda: supply(protection=Protection(ovp_v=math.nan)),
        ("'psu1'", "protection", "ovp_v"),
    ),
    (
        "negative ocp",
        lambda: supply(protection=Protection(ocp_a=-1.0)),
        ("'psu1'", "ocp_a"),
    ),
    (
        "nan sensor noise",
        lambda: supply(sensors=Sensors(voltage=SensorSpec(noise_sd=math.nan))),
        ("'psu1'", "sensors.voltage", "noise_sd"),
    ),
    (
        "negative resolution",
        lambda: supply(sensors=Sensors(current=SensorSpec(resolution=-0.1))),
        ("'psu1'", "sensors.current", "resolution"),
    ),
    (
        "zero thermal time constant",
        lambda: supply(thermal=ThermalSpec(time_constant_s=0.0)),
        ("'psu1'", "thermal.time_constant_s"),
    ),
    (
        "negative current limit",
        lambda: VoltageReferenceSpec(
            name="vr1", node="bus", max_voltage_v=400, max_current_a=5, current_limit_a=-1.0
        ),
        ("'vr1'", "current_limit_a"),
    ),
    (
        "load level above its rating",
        lambda: LoadSpec(
            name="ld", node="bus", max_current_a=5, max_voltage_v=60, mode=LoadMode.CV, level=70
        ),
        ("'ld'", "level"),
    ),
    (
        "converter on its own battery node",
        lambda: ConverterSpec(name="E9", node="bus", battery_node="bus"),
        ("'E9'", "battery_node"),
    ),
    (
        "negative converter loss",
        lambda: ConverterSpec(
            name="E9", node="bus", battery_node="b", losses=ConverterLosses(charge_w=-1.0)
        ),
        ("'E9'", "losses.charge_w"),
    ),
    (
        "nan grid current",
        lambda: ConverterSpec(name="E9", node="bus", battery_node="b", grid_current_a=math.nan),
        ("'E9'", "grid_current_a"),
    ),
    (
        "impossible efficiency",
        lambda: ConverterLosses.from_efficiency(1.2, 0.9),
        ("charge efficiency",),
    ),
    ("zero node capacitance", lambda: NodeSpec(name="n1", capacitance_f=0.0), ("'n1'", "cap")),
    ("nan bleed", lambda: NodeSpec(name="n1", bleed_ohm=math.nan), ("'n1'", "bleed_ohm")),
    ("zero fine step", lambda: Stepping(fine_step_s=0.0), ("stepping", "fine_step_s")),
    ("empty port name", lambda: supply(name=""), ("port name",)),
]


@pytest.mark.parametrize(
    ("build", "words"), [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES]
)
def test_impossible_parameters_name_port_and_field(
    build: Callable[[], object], words: tuple[str, ...]
) -> None:
    with pytest.raises(ConfigError) as info:
        build()
    for word in words:
        assert word in str(info.value)


def test_plant_layout_errors() -> None:
    with pytest.raises(ConfigError, match="node 'nowhere' does not exist"):
        Plant([BUS], [supply(node="nowhere")])
    with pytest.raises(ConfigError, match="port 'psu1' is defined twice"):
        Plant([BUS], [supply(), supply()])
    with pytest.raises(ConfigError, match="node 'bus' is defined twice"):
        Plant([BUS, BUS], [])
    with pytest.raises(ConfigError, match="battery_node 'b3' does not exist"):
        Plant([BUS], [ConverterSpec(name="E3", node="bus", battery_node="b3")])
    with pytest.raises(ConfigError, match="at least one node"):
        Plant([], [])


def test_setters_refuse_impossible_values_naming_the_field() -> None:
    src = CurrentSourceSpec(name="src", node="bus", max_current_a=5.0, compliance_v=100.0)
    plant = Plant([BUS], [supply(), src])
    with pytest.raises(ConfigError, match=r"'psu1'.*voltage_v"):
        plant.supply("psu1").set_voltage(math.nan)
    with pytest.raises(ConfigError, match=r"'psu1'.*current_a.*>= 0"):
        plant.supply("psu1").set_current(-1.0)
    with pytest.raises(ConfigError, match=r"'src'.*current_a.*<= 5"):
        plant.current_source("src").set_current(6.0)
    with pytest.raises(ConfigError, match=r"'psu1'.*protection.OVP"):
        plant.supply("psu1").set_protection("OVP", math.inf)
    with pytest.raises(ConfigError, match=r"'psu1'.*offset of voltage"):
        plant.supply("psu1").set_sensor_offset("voltage", math.nan)
