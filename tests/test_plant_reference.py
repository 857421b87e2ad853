"""The fast plant agrees with the plain fixed-step reference integrator.

Random small plants (a voltage reference on the bus, one or two converters with batteries, a
household on a battery, a supply, an electronic load, a bidirectional supply, a current source
and sink) go through random set-point sequences with trips, in both the fast adaptive
:class:`Plant` and :class:`ReferencePlant` (fixed 1 ms steps, the fast plant's fine step; no
speed tricks). After every operation's span their integrals (energy counters, SoC) and
trips must agree, and after a last 0.5 s without changes (slews done, node capacitors
settled: mid-transient the fast plant's steps are as long as ``max_dv_v`` allows) also
their voltages and currents, within these tolerances:

- node voltages: 2e-3 of the voltage + 50 mV;
- port currents (both sides of a converter): 2e-3 of the current + 20 mA;
- SoC: 1e-4 + 2e-3 of how far it moved; for a battery stopped at a SoC threshold (a
  household's reserve or full level, a BMS limit) + one fine step (1 ms) at the most power
  any battery here moves (4 kW): the threshold is caught at the end of a step in both
  plants, so either may overshoot it by up to one fine step, and the overshoot stays;
- energy counters (every port's delivered energy, converter losses, household counters):
  5e-3 of the port's energy + 0.5 J (a trip is caught at the end of a step in both, but the
  fast plant's steps need not end where the reference's do);
- the same trips latched, and the same nodes left floating (every port on them off);
  a floating node's voltage is not compared (see :func:`floating_nodes`);
- an example in which a converter keeps drawing power from a battery node nobody holds is
  not compared from then on (:class:`ReferenceDiverged`: no step solution exists).

Examples are derandomised (a fixed sequence), so the test never flakes; about 5 s of CPU.
Checked to fail when the fast plant's battery energy integral is off by 1 %.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

from instruments.emulation.household import HouseholdProfile
from instruments.emulation.plant import (
    BatteryHandle,
    BatterySpec,
    BidirectionalMode,
    BidirectionalSpec,
    ConverterMode,
    ConverterSpec,
    CurrentSinkSpec,
    CurrentSourceSpec,
    HouseholdSpec,
    LoadMode,
    LoadSpec,
    NodeSpec,
    Plant,
    PortHandle,
    PortSpec,
    Protection,
    Stepping,
    SupplySpec,
    VoltageReferenceSpec,
)
from instruments.emulation.plant_reference import ReferenceDiverged, ReferencePlant

REFERENCE_DT_S = 1e-3
FINE_STEP_S = Stepping().fine_step_s
BATTERY_POWER_BOUND_W = 4000.0
"""No battery here moves faster: a converter's 7 A at 450 V, a 400 W household, losses."""
AGREE = settings(
    max_examples=6,
    phases=(Phase.explicit, Phase.generate),
    derandomize=True,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)
SPANS_S = [0.05, 0.2, 0.6]
SETTLE_S = 0.5


def build(draw: st.DrawFn) -> tuple[list[NodeSpec], list[PortSpec], float]:
    """Node and port specs of a random small plant, and its start of day."""
    slew = draw(st.sampled_from([50.0, 500.0, math.inf]))
    nodes = [NodeSpec(name="bus", capacitance_f=draw(st.sampled_from([1e-3, 1e-2])))]
    ports: list[PortSpec] = [
        VoltageReferenceSpec(
            name="vr",
            node="bus",
            max_voltage_v=500.0,
            max_current_a=30.0,
            voltage_v=draw(st.floats(300.0, 400.0)),
            current_limit_a=draw(st.floats(5.0, 30.0)),
            droop_ohm=draw(st.sampled_from([0.0, 0.5])),
            output_on=True,
        )
    ]
    for k in range(draw(st.integers(1, 2))):
        nodes.append(NodeSpec(name=f"b{k}", bleed_ohm=None))
        ports.append(
            ConverterSpec(
                name=f"E{k}",
                node="bus",
                battery_node=f"b{k}",
                slew_a_per_s=slew,
                line_ohm=draw(st.sampled_from([0.0, 0.1])),
                protection=Protection(ocp_a=draw(st.sampled_from([None, 6.0]))),
            )
        )
        household = None
        soc = draw(st.floats(0.4, 0.6))
        if k == 0 and draw(st.booleans()):
            rng = np.random.default_rng(draw(st.integers(0, 2**16)))
            profile = HouseholdProfile(
                rng.uniform(0.0, 400.0, 1440), rng.uniform(0.0, 400.0, 1440), resolution_s=60.0
            )
            household = HouseholdSpec(profile=profile, reserve_soc=soc - 0.01, full_soc=soc + 0.01)
        ports.append(
            BatterySpec(
                name=f"B{k}",
                node=f"b{k}",
                capacity_wh=draw(st.sampled_from([0.5, 5.0])),
                soc=soc,
                household=household,
            )
        )
    extras: list[PortSpec] = [
        SupplySpec(
            name="psu",
            node="bus",
            max_voltage_v=450,
            max_current_a=20,
            voltage_v=draw(st.floats(0.0, 450.0)),
            current_a=draw(st.floats(0.0, 5.0)),
            slew_a_per_s=slew,
        ),
        LoadSpec(
            name="load",
            node="bus",
            max_current_a=20,
            max_voltage_v=450,
            level=draw(st.floats(0.0, 5.0)),
            input_on=True,
            slew_a_per_s=slew,
        ),
        BidirectionalSpec(
            name="bidi",
            node="bus",
            max_voltage_v=450,
            max_source_a=10,
            max_sink_a=10,
            slew_a_per_s=slew,
            protection=Protection(ovp_v=draw(st.sampled_from([None, 420.0]))),
        ),
        CurrentSourceSpec(
            name="src", node="bus", max_current_a=10, compliance_v=450, slew_a_per_s=slew
        ),
        CurrentSinkSpec(name="sink", node="bus", max_current_a=10, slew_a_per_s=slew),
    ]
    ports += draw(st.lists(st.sampled_from(extras), unique_by=lambda p: p.name, max_size=3))
    return nodes, ports, draw(st.floats(0.0, 86_000.0))


def operate(plants: tuple[Plant, Plant], draw: st.DrawFn) -> None:
    """One random operation, applied identically to both plants."""
    names = {p.name for p in plants[0]}
    what = draw(st.sampled_from(["conv", "conv", "vr", "extra", "trip", "clear", "safe", "soc"]))
    conv = draw(st.sampled_from(sorted(n for n in names if n.startswith("E"))))
    mode, amps = draw(st.sampled_from(list(ConverterMode))), draw(st.floats(0.0, 7.0))
    volts, level = draw(st.floats(250.0, 420.0)), draw(st.floats(0.0, 8.0))
    extra = draw(st.sampled_from(sorted(names & {"psu", "load", "bidi", "src", "sink"}) or ["-"]))
    on = draw(st.booleans())
    kind = draw(st.sampled_from(["OVP", "OCP", "UVLO", "OTP"]))
    target = draw(st.sampled_from(sorted(names)))
    soc = draw(st.floats(0.3, 0.7))
    for plant in plants:
        if what == "conv":
            handle = plant.converter(conv)
            handle.set_grid_current(amps)
            handle.set_voltage_reference(volts)
            handle.set_mode(mode)
        elif what == "vr":
            plant.voltage_reference("vr").set_voltage(volts)
            plant.voltage_reference("vr").set_output(on)
        elif what == "extra":
            set_extra(plant, extra, on, volts, level)
        elif what == "trip":
            plant.port(target).trip(kind)
        elif what == "clear":
            plant.clear_trips()
        elif what == "safe":
            plant.make_safe()
        else:
            plant.battery("B0").soc = soc


def set_extra(plant: Plant, name: str, on: bool, volts: float, level: float) -> None:
    """Switch and set one of the optional ports (nothing if the plant has none)."""
    if name == "psu":
        plant.supply("psu").set_voltage(volts)
        plant.supply("psu").set_current(level)
        plant.supply("psu").set_output(on)
    elif name == "load":
        plant.load("load").set_mode(LoadMode.CV if volts > 400.0 else LoadMode.CC)
        plant.load("load").set_level(volts if volts > 400.0 else level)
        plant.load("load").set_input(on)
    elif name == "bidi":
        bidi = plant.bidirectional("bidi")
        bidi.set_mode(BidirectionalMode.CC if on else BidirectionalMode.CV)
        bidi.set_current(level - 4.0)
        bidi.set_voltage(volts)
        bidi.set_current_limits(level, level)
        bidi.set_output(True)
    elif name == "src":
        plant.current_source("src").set_current(level)
        plant.current_source("src").set_output(on)
    elif name == "sink":
        plant.current_sink("sink").set_current(level)
        plant.current_sink("sink").set_output(on)


def assert_agree(fast: Plant, ref: Plant, soc0: dict[str, float], *, settled: bool) -> None:
    """Every compared quantity within the module docstring's tolerances."""
    floating = floating_nodes(fast)
    assert floating == floating_nodes(ref)
    for name in set(fast.node_names) - floating if settled else ():
        vf, vr = fast.node_voltage(name), ref.node_voltage(name)
        assert abs(vf - vr) <= 2e-3 * abs(vr) + 0.05, (name, vf, vr)
    for f in fast:
        a, b = f.state(), ref.state(f.name)
        where = (f.name, fast.time)
        assert a.trips == b.trips, where
        if settled:
            assert abs(a.current - b.current) <= 2e-3 * abs(b.current) + 0.02, (where, a, b)
        assert abs(a.energy_j - b.energy_j) <= 5e-3 * abs(b.energy_j) + 0.5, (where, a, b)
        assert abs(a.loss_energy_j - b.loss_energy_j) <= 5e-3 * b.loss_energy_j + 0.5, where
        battery_node = getattr(f.spec, "battery_node", None)
        if settled and a.battery_current is not None and b.battery_current is not None:
            if battery_node in floating:  # a standby loss on a floating node: V-dependent
                continue
            db = abs(a.battery_current - b.battery_current)
            assert db <= 2e-3 * abs(b.battery_current) + 0.02, (where, a, b)
        if a.soc is not None and b.soc is not None:
            moved = abs(b.soc - soc0[f.name])
            capacity_j = getattr(f.spec, "capacity_wh", 1.0) * 3600.0
            late = FINE_STEP_S * BATTERY_POWER_BOUND_W / capacity_j if at_threshold(fast, f) else 0
            assert abs(a.soc - b.soc) <= 1e-4 + 2e-3 * moved + late, (where, a.soc, b.soc)
        if a.household is not None and b.household is not None:
            for key, value in b.household.items():
                tol = 5e-3 * abs(value) + 0.5 / 3600.0 * (1.0 if key.endswith("wh") else 0.0)
                assert abs(a.household[key] - value) <= tol + 1e-9, (where, key, a, b)


def at_threshold(plant: Plant, handle: PortHandle) -> bool:
    """Whether a battery stopped at a SoC threshold: cut off by its BMS, or its household
    holding it at the reserve or full level."""
    house = plant.households().get(handle.name)
    return bool(handle.trips) or (house is not None and house.mode in ("reserve", "full"))


def advanced(ref: ReferencePlant, span: float) -> bool:
    """Advance the reference; False (example not comparable) if it cannot integrate the span."""
    try:
        ref.advance(span)
    except ReferenceDiverged:
        return False
    return True


def floating_nodes(plant: Plant) -> set[str]:
    """Nodes no port holds: every port on them off (a converter counts on both its nodes).

    Such a node keeps the voltage it had when its last port tripped, and that depends on
    exactly where the step ended at the trip (the fast plant's steps are not on the
    reference's grid), so its voltage is not compared.
    """
    held = set()
    for handle in plant:
        if handle.output_on:
            held.add(handle.spec.node)
            held.add(getattr(handle.spec, "battery_node", handle.spec.node))
    return set(plant.node_names) - held


@AGREE
@given(st.data())
def test_fast_plant_agrees_with_the_fixed_step_reference(data: st.DataObject) -> None:
    nodes, ports, start = build(data.draw)
    fast = Plant(nodes, ports, start_of_day_s=start)
    ref = ReferencePlant(nodes, ports, dt_s=REFERENCE_DT_S, start_of_day_s=start)
    for _ in range(data.draw(st.integers(1, 4))):
        operate((fast, ref), data.draw)
        soc0 = {h.name: h.soc for h in fast if isinstance(h, BatteryHandle)}
        span = data.draw(st.sampled_from(SPANS_S))
        fast.advance(span)
        assume(advanced(ref, span))
        assert_agree(fast, ref, soc0, settled=False)
    soc0 = {h.name: h.soc for h in fast if isinstance(h, BatteryHandle)}
    fast.advance(SETTLE_S)
    assume(advanced(ref, SETTLE_S))
    assert_agree(fast, ref, soc0, settled=True)
