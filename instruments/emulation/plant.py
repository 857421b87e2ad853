"""The simulated DC microgrid: true electrical state of a bus, its ports and their batteries.

A :class:`Plant` holds nodes (the shared bus, battery-side nodes) and ports attached to them
(supplies, loads, bidirectional supplies, voltage references, constant-current sources and
sinks, DC/DC converters, batteries). It advances deterministically with :meth:`Plant.advance`:
fine steps while anything slews or changes, steps that grow to tens of seconds while all is
steady, so a day of steady exchanges costs milliseconds. Instrument models drive it through
typed port handles (``plant.supply("psu")`` ...) and read ``state()`` (true) or
``measure()`` (what their meters would say).

A battery may carry a household (rooftop PV and a house load, seeded day profiles from
:mod:`instruments.emulation.household`): a constant-power terminal on its node, limited at
the battery's reserve (the utility takes the rest of the load) and when it is full (the
rest of the PV is curtailed); steps break at the profiles' segment edges.

Sign convention: a port's current is positive when it pushes current INTO its node.
The physics, stepping and energy bookkeeping are described in ``docs/plant.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from instruments.emulation.battery import OcvCurve
from instruments.emulation.household import DAY_S, HouseholdProfile
from instruments.emulation.plant_batteries import BatteryBank
from instruments.emulation.plant_converters import ConverterInjection
from instruments.emulation.plant_directory import NodeState, PlantDirectory
from instruments.emulation.plant_households import HouseholdCoupling
from instruments.emulation.plant_layout import PlantLayout
from instruments.emulation.plant_network import LO
from instruments.emulation.plant_ports import (
    BatteryHandle,
    BidirectionalHandle,
    Characteristic,
    ConverterHandle,
    CurrentSinkHandle,
    CurrentSourceHandle,
    HouseholdState,
    LoadHandle,
    Measurement,
    PortHandle,
    PortState,
    SupplyHandle,
    TripEvent,
    VoltageReferenceHandle,
)
from instruments.emulation.plant_protection import TripMonitor
from instruments.emulation.plant_specs import (
    BatterySpec,
    BidirectionalMode,
    BidirectionalSpec,
    ConverterLosses,
    ConverterMode,
    ConverterSpec,
    CurrentSinkSpec,
    CurrentSourceSpec,
    HouseholdSpec,
    LoadMode,
    LoadSpec,
    NodeSpec,
    PortSpec,
    Protection,
    SupplySpec,
    ThermalSpec,
    TripKind,
    VoltageReferenceSpec,
    check_number,
)
from instruments.emulation.plant_stepping import Stepping
from instruments.emulation.plant_thermal import Thermal
from instruments.emulation.sensors import Sensors, SensorSpec

__all__ = [
    "BatteryHandle",
    "BatterySpec",
    "BidirectionalHandle",
    "BidirectionalMode",
    "BidirectionalSpec",
    "Characteristic",
    "ConverterHandle",
    "ConverterLosses",
    "ConverterMode",
    "ConverterSpec",
    "CurrentSinkHandle",
    "CurrentSinkSpec",
    "CurrentSourceHandle",
    "CurrentSourceSpec",
    "HouseholdProfile",
    "HouseholdSpec",
    "HouseholdState",
    "LoadHandle",
    "LoadMode",
    "LoadSpec",
    "Measurement",
    "NodeSpec",
    "NodeState",
    "OcvCurve",
    "Plant",
    "PortHandle",
    "PortSpec",
    "PortState",
    "Protection",
    "SensorSpec",
    "Sensors",
    "Stepping",
    "SupplyHandle",
    "SupplySpec",
    "ThermalSpec",
    "TripEvent",
    "TripKind",
    "VoltageReferenceHandle",
    "VoltageReferenceSpec",
]


_INJECTION_PASSES = 4
_SETTLE_DT = 1e6


class Plant(PlantDirectory):
    """The simulated plant. See the module docstring and ``docs/plant.md``.

    Parameters
    ----------
    nodes:
        Every node (the bus and each battery-side node).
    ports:
        Every port, attached to those nodes by name.
    seed:
        Seed of the single random generator used for measurement noise.
    stepping:
        Step-size policy (adaptive by default).
    start_of_day_s:
        Time of day (s after midnight) at plant time 0; households read their profiles at
        ``start_of_day_s + time`` (wrapping at 24 h).
    """

    def __init__(
        self,
        nodes: Sequence[NodeSpec],
        ports: Sequence[PortSpec],
        *,
        seed: int = 0,
        stepping: Stepping | None = None,
        start_of_day_s: float = 0.0,
    ) -> None:
        self.stepping = stepping or Stepping()
        self.start_of_day_s = check_number("plant", "start_of_day_s", start_of_day_s, minimum=0)
        lay = PlantLayout(nodes, ports, seed=seed, start_of_day_s=self.start_of_day_s)
        super().__init__(lay.handles, lay.node_specs, lay.net)
        self._port_specs = lay.port_specs
        net, self._ctx = lay.net, lay.ctx
        ctx = self._ctx
        self._by_terminal = lay.by_terminal
        self._cb, self._bt, self._cpt = lay.cb, lay.bt, lay.cpt
        self._n_conv, self._n_bat = len(lay.convs), len(lay.bats)
        self._converters = ConverterInjection(net, ctx, lay.conv_specs, lay.convs, lay.cb, lay.cpt)
        self._batteries = BatteryBank(net, ctx, lay.bat_specs, lay.bt, self.stepping)
        self._houses: HouseholdCoupling | None = None
        if lay.houses:
            self._houses = HouseholdCoupling(
                net,
                ctx,
                lay.house_specs,
                lay.houses,
                lay.n_slewed,
                lay.house_start,
                self.start_of_day_s,
            )
        self._thermal = Thermal(
            net,
            ctx,
            self._port_specs,
            self._handle_list,
            self._converters.port if self._n_conv else None,
            None if self._houses is None else self._houses.ht,
        )
        self._trips = TripMonitor(net, ctx, self._by_terminal)
        self._time = 0.0
        self._dt = self.stepping.fine_step_s
        self._dt_prev = self._dt
        self._dv = 0.0
        self._slewing = True
        self._steps = 0
        for h in self._handle_list:
            h._apply(instant=True)
        self._settle()
        self._converters.restart_history()
        self._trips.note_step_start()
        self._thermal.update(0.0)

    def _settle(self) -> None:
        """Initial node voltages: the operating point of the initial settings.

        Nodes whose spec gives ``voltage_v`` start at exactly that voltage instead.
        """
        net = self._net
        self._batteries.set_ocv(0.0)
        v0 = net.V.copy()
        net.solve(_SETTLE_DT, v0)
        for _ in range(_INJECTION_PASSES * 4):
            if not (self._n_conv and self._converters.update()):
                break
            net.solve(_SETTLE_DT, v0)
        fixed = [k for k, n in enumerate(self._node_specs) if n.voltage_v is not None]
        if fixed:
            V = net.V.copy()
            V[fixed] = v0[fixed]
            net._evaluate(V)
            if self._n_conv:
                self._converters.update()
                net._evaluate(V)
        self._ctx.changed = True

    # -- public API -----------------------------------------------------------------------

    @property
    def time(self) -> float:
        """Simulated seconds since the plant was built."""
        return self._time

    @property
    def time_of_day(self) -> float:
        """Seconds after midnight now: ``start_of_day_s + time``, wrapped at 24 h."""
        return (self.start_of_day_s + self._time) % DAY_S

    def households(self) -> dict[str, HouseholdState]:
        """Every household now, by the name of the battery it sits on."""
        out: dict[str, HouseholdState] = {}
        for h in self._handle_list:
            if isinstance(h, BatteryHandle):
                state = h.household_state()
                if state is not None:
                    out[h.name] = state
        return out

    @property
    def steps_taken(self) -> int:
        """Number of solver steps so far (for benchmarks and diagnostics)."""
        return self._steps

    @property
    def trip_events(self) -> list[TripEvent]:
        """Every trip that fired (or was forced) since the plant was built, oldest first."""
        return list(self._ctx.trip_events)

    def pop_trip_events(self) -> list[TripEvent]:
        """Trip events since the last call (and forget them)."""
        events = list(self._ctx.trip_events)
        self._ctx.trip_events.clear()
        return events

    def add_trip_listener(self, listener: Callable[[TripEvent], None]) -> None:
        """Call ``listener(event)`` whenever a trip fires, as it fires (during ``advance``)."""
        self._ctx.listeners.append(listener)

    def remove_trip_listener(self, listener: Callable[[TripEvent], None]) -> None:
        """Stop calling ``listener``."""
        self._ctx.listeners.remove(listener)

    def reseed(self, seed: int) -> None:
        """Restart the sensor-noise generator from ``seed``: readings from here on are the
        same whatever was read before (the emulator's ``reseed`` control command)."""
        self._ctx.rng = np.random.default_rng(seed)

    def clear_trips(self) -> None:
        """Clear the latched trips of every port (outputs stay off)."""
        for h in self._handles.values():
            h.clear_trips()

    def make_safe(self, *, at_once: bool = False) -> None:
        """Every output off, every load input off, every converter to WAIT.

        Normally the currents slew down like any switch-off. ``at_once`` (the emulator's
        emergency off: watchdog, shutdown, signal) cuts them now, at the present time and
        node voltages, so that the true state is safe without time having to move.
        """
        for h in self._handles.values():
            h.make_safe()
        if at_once:
            net = self._net
            slewed = net.n_slewed
            net.cur[:, :slewed] = net.tgt[:, :slewed]
            self._slewing = False
            V = net.V.copy()
            net._evaluate(V)
            if self._n_conv:
                self._converters.update()
                net._evaluate(V)
            self._ctx.changed = True

    def snapshot(self) -> dict[str, Any]:
        """Plain, JSON-serialisable dict of the true state of every node and port."""
        return {
            "time": self._time,
            "nodes": {n: self.node_state(n).as_dict() for n in self.node_names},
            "ports": {name: h.state().as_dict() for name, h in self._handles.items()},
        }

    def advance(self, seconds: float, *, max_step: float | None = None) -> float:
        """Simulate ``seconds`` more and return the new time (usable by ``SimClock``).

        ``max_step`` caps the step for this call only (e.g. to sample a trajectory).
        """
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"plant.advance: seconds must be finite and >= 0, got {seconds!r}")
        if max_step is not None and not (math.isfinite(max_step) and max_step > 0):
            raise ValueError(f"plant.advance: max_step must be > 0, got {max_step!r}")
        t_end = self._time + seconds
        sliver = 1e-9 * max(1.0, abs(t_end))
        while t_end - self._time > sliver:
            remaining = t_end - self._time
            dt = self._next_dt(remaining, max_step)
            if remaining - dt <= sliver + 1e-3 * self.stepping.fine_step_s:
                dt = remaining
            self._step(dt)
        self._time = t_end
        self._ctx.time = t_end
        self._thermal.update(self._thermal.elapsed)
        return t_end

    # -- stepping -------------------------------------------------------------------------

    def _next_dt(self, remaining: float, max_step: float | None) -> float:
        st = self.stepping
        if st.fixed_step_s is not None:
            dt = st.fixed_step_s
        elif self._ctx.changed or self._slewing:
            dt = st.fine_step_s
        else:
            dt = min(st.growth * self._dt, st.max_step_s)
            if self._dv > 0:
                dt = min(dt, self._dt * st.max_dv_v / self._dv)
            dt = min(
                dt,
                self._batteries.horizon(self._houses, self._time),
                self._trips.horizon(self._dt, self._thermal),
            )
            dt = max(dt, st.fine_step_s)
        if max_step is not None:
            dt = min(dt, max_step)
        if self._houses is not None:  # never step across a profile segment edge
            dt = min(dt, self._houses.next_edge(self._time) - self._time)
        return min(dt, remaining)

    def _step(self, dt: float) -> None:
        net, ctx = self._net, self._ctx
        changed = ctx.changed
        ctx.changed = False
        if self._slewing or changed:
            self._slewing = net.slew(dt)
        if self._n_bat:
            self._batteries.refresh_ocv(dt, changed=changed)
        n_conv = self._n_conv
        houses = self._houses
        conv = self._converters
        if n_conv:
            conv.predict(dt, self._dt, self._dt_prev, extrapolate=not changed)
        if houses is not None:
            houses.begin(self._time, dt)
            if n_conv and conv.resistive is None:  # constant power at the new voltage
                ratio = houses.v_ratio[conv.bat_node]
                guess = np.where(ratio != 1.0, conv.now * ratio, net.cur[LO, self._cpt])
                net.cur[LO:, self._cpt] = guess
        v_old = net.V
        self._trips.note_step_start()
        net.solve(dt, v_old)
        if n_conv or houses is not None:
            for _ in range(_INJECTION_PASSES):
                moved = conv.update() if n_conv else False
                if houses is not None and houses.update(dt):
                    moved = True
                if not moved:
                    break
                net.solve(dt, v_old)
        self._integrate(dt)
        if houses is not None:
            houses.count(dt)
        if self._slewing:
            self._dv = math.inf
        else:
            d = net.V - v_old
            self._dv = max(float(d.max()), -float(d.min()))
        self._dt_prev = self._dt
        self._dt = dt
        self._time += dt
        ctx.time = self._time
        self._steps += 1
        self._trips.check()
        self._batteries.check_limits(self._by_terminal)
        thermal = self._thermal
        thermal.elapsed += dt
        if thermal.elapsed >= self.stepping.thermal_period_s:
            thermal.update(thermal.elapsed)

    def _integrate(self, dt: float) -> None:
        """Energy bookkeeping for the step just solved."""
        net, ctx = self._net, self._ctx
        p = net.vt * net.i
        p *= dt
        ctx.energy_j += p
        if self._n_bat:
            ib = net.i[self._bt]
            de = ctx.bat_ocv * ib
            de *= -dt
            ctx.bat_energy_j += de
            sq = ib * ib
            sq *= dt
            ctx.bat_i2t += sq
            de /= dt
            ctx.bat_soc_rate = de
        if self._n_conv:
            ctx.conv_loss_j += ctx.conv_loss * dt
