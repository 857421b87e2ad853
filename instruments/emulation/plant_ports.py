"""Typed handles onto the plant's ports: what an instrument model can do to its port.

A handle keeps the instrument's *settings* (output on, set-points, mode) and turns them into
the terminal characteristic ``(E, g, lo, hi)`` the network solves (see
:mod:`instruments.emulation.plant_network`). Kind-specific logic runs only when a setting
changes; the per-step kernel never sees it.

When the regulation regime changes (output toggled, mode changed, a bidirectional current
changing sign) the current clamps restart from the present current and slew from there, so
a port's current is continuous and rate-limited through every change; a protection trip is
the one exception (the output drops to zero at once).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from dataclasses import asdict, dataclass, replace
from typing import Any, ClassVar, NamedTuple

import numpy as np

from instruments.emulation.plant_network import EMF, HI, LO, UNCLAMPED_A, Network
from instruments.emulation.plant_specs import (
    BatterySpec,
    BidirectionalMode,
    BidirectionalSpec,
    ConverterMode,
    ConverterSpec,
    CurrentSinkSpec,
    CurrentSourceSpec,
    LoadMode,
    LoadSpec,
    PortSpec,
    Protection,
    SupplySpec,
    TripKind,
    VoltageReferenceSpec,
    check_number,
)
from instruments.emulation.sensors import QUANTITIES, SensorSpec
from instruments.errors import ConfigError

SetPoints = dict[str, float | str | bool | None]


@dataclass(frozen=True)
class Characteristic:
    """Target terminal characteristic: ``i = clip(g (E - v), lo, hi)``; ``emf=None`` keeps E."""

    emf: float | None
    conductance: float
    lo: float
    hi: float


@dataclass(frozen=True)
class TripEvent:
    """A protection trip that fired (or was forced) at simulated ``time``."""

    time: float
    port: str
    kind: TripKind
    value: float | None
    level: float | None
    forced: bool = False

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return asdict(self)


class Measurement(NamedTuple):
    """What the port's meters read (measured, not true). ``None`` where not measured.

    A named tuple rather than a frozen dataclass: instruments measure on every query, and
    a tuple is built several times faster.
    """

    voltage: float
    current: float
    temperature: float
    battery_voltage: float | None = None
    battery_current: float | None = None
    soc: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return self._asdict()


@dataclass(frozen=True)
class PortState:
    """True state of a port (plant sign convention: current + = into the node).

    ``voltage``/``current``/``power`` are at the port's (bus-side) terminal; ``energy_j`` is
    the energy it has delivered into its node. Converters add their battery side
    (``battery_current`` + = into the battery node, so negative while discharging) and
    ``loss_w``; batteries add ``soc``, ``ocv`` and ``stored_energy_j``; ``loss_energy_j`` is
    converter loss or battery I^2 R heat integrated over time.
    """

    name: str
    kind: str
    node: str
    voltage: float
    current: float
    power: float
    temperature: float
    output_on: bool
    mode: str
    setpoints: SetPoints
    trips: tuple[str, ...]
    energy_j: float
    loss_w: float = 0.0
    loss_energy_j: float = 0.0
    battery_node: str | None = None
    battery_voltage: float | None = None
    battery_current: float | None = None
    battery_energy_j: float | None = None
    soc: float | None = None
    ocv: float | None = None
    stored_energy_j: float | None = None
    household: dict[str, float] | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (``household`` only for a battery that has one)."""
        out = asdict(self)
        if out["household"] is None:
            del out["household"]
        return out


HOUSEHOLD_MODES = ("normal", "reserve", "full", "isolated")
"""What a household is doing, by the code the plant keeps per household (0..3)."""


@dataclass(frozen=True)
class HouseholdState:
    """A household's power now and its energy counters (Wh) since the plant was built.

    ``mode``: ``normal`` (net PV - load flows into the battery), ``reserve`` (battery at or
    below its reserve: the load it cannot carry is bought from the utility), ``full``
    (battery at or above full: surplus PV is curtailed), ``isolated`` (battery disconnected:
    PV serves the load directly, the utility the rest). ``power_w`` and ``energy_wh`` are
    what the household delivered into the battery node (+ = charging it), exactly as the
    plant integrated it. ``pv_wh = pv_used_wh + pv_wasted_wh`` exactly, and
    ``energy_wh = pv_used_wh - load_wh + utility_wh`` up to the constant-power solve's
    tolerance (about 1e-5 of the household's throughput).
    """

    mode: str
    pv_w: float
    load_w: float
    power_w: float
    pv_wh: float
    pv_used_wh: float
    pv_wasted_wh: float
    load_wh: float
    utility_wh: float
    energy_wh: float

    def counters(self) -> dict[str, float]:
        """The control channel's ``household`` entry: powers now and energy counters."""
        return {
            "pv_w": self.pv_w,
            "load_w": self.load_w,
            "pv_wh": self.pv_wh,
            "pv_used_wh": self.pv_used_wh,
            "pv_wasted_wh": self.pv_wasted_wh,
            "load_wh": self.load_wh,
            "utility_wh": self.utility_wh,
        }

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return asdict(self)


class PlantContext:
    """State the handles share with the plant: arrays, time, random generator, trips.

    The plant's stepping kernel fills the arrays; handles read them for ``state()`` and
    write settings into the network.
    """

    def __init__(
        self,
        network: Network,
        node_names: list[str],
        n_ports: int,
        n_converters: int,
        n_batteries: int,
        rng: np.random.Generator,
        n_households: int = 0,
        start_of_day_s: float = 0.0,
    ) -> None:
        n_t = len(network.g)
        self.network = network
        self.node_names = node_names
        self.rng = rng
        self.time = 0.0
        self.start_of_day_s = start_of_day_s
        self.changed = True
        self.ovp = np.full(n_t, np.inf)
        self.uvlo = np.full(n_t, -np.inf)
        self.ocp = np.full(n_t, np.inf)
        self.ocp_sink = np.full(n_t, np.inf)
        self.otp = np.full(n_ports, np.inf)
        self.levels_changed = True
        self.temperature = np.zeros(n_ports)
        self.energy_j = np.zeros(n_t)
        self.conv_p0 = np.zeros(n_converters)
        self.conv_kf = np.zeros(n_converters)
        self.conv_loss = np.zeros(n_converters)
        self.conv_loss_j = np.zeros(n_converters)
        self.bat_energy_j = np.zeros(n_batteries)
        self.bat_capacity_j = np.ones(n_batteries)
        self.bat_i2t = np.zeros(n_batteries)
        self.bat_r = np.ones(n_batteries)
        self.bat_ocv = np.zeros(n_batteries)
        self.bat_soc_rate = np.zeros(n_batteries)
        self.bat_on = np.ones(n_batteries, dtype=np.bool_)
        self.house_pv_j = np.zeros(n_households)
        self.house_load_j = np.zeros(n_households)
        self.house_used_j = np.zeros(n_households)
        self.house_wasted_j = np.zeros(n_households)
        self.house_utility_j = np.zeros(n_households)
        self.house_mode = np.zeros(n_households, dtype=np.int8)
        self.trip_events: list[TripEvent] = []
        self.listeners: list[Callable[[TripEvent], None]] = []

    def record_trip(self, event: TripEvent) -> None:
        """Store a trip event and tell every listener."""
        self.trip_events.append(event)
        for listener in list(self.listeners):
            listener(event)


class PortHandle:
    """Base of every port handle: trips, protection, sensors, state and measurement."""

    kind: ClassVar[str] = "port"

    def __init__(self, ctx: PlantContext, spec: PortSpec, index: int, terminal: int) -> None:
        self._ctx = ctx
        self.spec = spec
        self.index = index
        self._t = terminal
        self._trips: set[TripKind] = set()
        self._protection = spec.protection
        self._offsets: dict[str, float] = {}
        self._regime: Hashable = None

    # -- identity -------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The port's name (the instrument it stands for)."""
        return self.spec.name

    @property
    def where(self) -> str:
        """How error messages name this port."""
        return self.spec.where

    @property
    def trips(self) -> frozenset[TripKind]:
        """Latched trips (empty when healthy)."""
        return frozenset(self._trips)

    @property
    def output_on(self) -> bool:
        """True when the output really delivers: switched on and not tripped."""
        return self._requested_on() and not self._trips

    # -- what subclasses define -----------------------------------------------------------

    def _requested_on(self) -> bool:
        raise NotImplementedError

    def _switch_off(self) -> None:
        """Turn the settings off (output off, input off, converter WAIT)."""
        raise NotImplementedError

    def _characteristic(self) -> Characteristic:
        """The characteristic while on (not called while off or tripped)."""
        raise NotImplementedError

    def _regime_key(self) -> Hashable:
        """Changes whenever the kind of regulation changes (mode, sign)."""
        return None

    def _mode_name(self) -> str:
        return "ON" if self.output_on else "OFF"

    def _setpoints(self) -> SetPoints:
        raise NotImplementedError

    # -- applying settings ----------------------------------------------------------------

    def _apply(self, *, instant: bool = False) -> None:
        """Push the settings into the network targets; continuous current on regime change.

        While a trip is latched the port stays off: a request to switch it on is dropped.
        """
        net, t = self._ctx.network, self._t
        if self._trips:
            self._switch_off()
        on = self.output_on
        ch = self._characteristic() if on else None
        if ch is None:
            net.tgt[LO, t] = 0.0
            net.tgt[HI, t] = 0.0
        else:
            # "+ 0.0" turns -0.0 into 0.0: the slew's done-test compares bytes.
            if ch.emf is not None:
                net.tgt[EMF, t] = ch.emf + 0.0
            net.tgt[LO, t] = ch.lo + 0.0
            net.tgt[HI, t] = ch.hi + 0.0
        regime: Hashable = (True, self._regime_key()) if on else (False,)
        if regime != self._regime or instant:
            i0 = float(net.i[t])
            net.cur[LO, t] = net.cur[HI, t] = i0
            if ch is not None:
                net.set_conductance(t, ch.conductance)
                if ch.emf is not None:
                    soft = math.isfinite(self.spec.slew_v_per_s) and not instant
                    net.cur[EMF, t] = float(net.vt[t]) if soft else ch.emf
            self._regime = regime
        if instant or t >= net.n_slewed:
            net.cur[LO:, t] = net.tgt[LO:, t]
            if ch is not None and ch.emf is not None:
                net.cur[EMF, t] = ch.emf
        self._arm()
        self._ctx.changed = True

    def _arm(self) -> None:
        """Write this port's trip levels into the plant arrays (UVLO only while active)."""
        self._arm_terminal(self._t, self._protection)
        otp = self._protection.otp_c
        self._ctx.otp[self.index] = math.inf if otp is None else otp
        self._ctx.levels_changed = True

    def _arm_terminal(
        self,
        t: int,
        prot: Protection,
        uvlo_floor: float | None = None,
        ovp_ceiling: float = math.inf,
    ) -> None:
        ctx = self._ctx
        ctx.ovp[t] = min(ovp_ceiling, math.inf if prot.ovp_v is None else prot.ovp_v)
        ctx.ocp[t] = math.inf if prot.ocp_a is None else prot.ocp_a
        ctx.ocp_sink[t] = ctx.ocp[t] if prot.ocp_sink_a is None else prot.ocp_sink_a
        levels = [v for v in (prot.uvlo_v, uvlo_floor) if v is not None]
        ctx.uvlo[t] = max(levels) if (levels and self._active()) else -math.inf

    def _active(self) -> bool:
        """Whether under-voltage lock-out is armed (the port is operating)."""
        return self.output_on

    # -- trips ----------------------------------------------------------------------------

    def trip(self, kind: TripKind | str) -> None:
        """Force a latched trip of ``kind`` (fault injection)."""
        self._latch(_trip_kind(kind, self.where), value=None, level=None, forced=True)

    def _latch(
        self, kind: TripKind, *, value: float | None, level: float | None, forced: bool = False
    ) -> None:
        """Latch ``kind``: the output drops to zero at once and stays off until cleared."""
        self._trips.add(kind)
        self._switch_off()
        self._regime = None
        net, t = self._ctx.network, self._t
        net.cur[LO, t] = net.cur[HI, t] = 0.0
        self._apply()
        net.cur[LO, t] = net.cur[HI, t] = 0.0
        event = TripEvent(self._ctx.time, self.name, kind, value, level, forced)
        self._ctx.record_trip(event)

    def clear_trips(self) -> None:
        """Clear every latched trip; the output stays off until switched on again."""
        if self._trips:
            self._trips.clear()
            self._apply()

    def set_protection(self, kind: TripKind | str, level: float | None) -> None:
        """Set (or with ``None`` disable) the trip level of ``kind`` on this port."""
        k = _trip_kind(kind, self.where)
        if level is not None:
            level = check_number(self.where, f"protection.{k.value}", level, minimum=None)
        self._protection = self._protection.with_level(k, level)
        self._protection.validate(f"{self.where}: protection")
        self._arm()

    def set_sink_ocp(self, level: float | None) -> None:
        """Set the sink-direction over-current level (``None``: the same as the OCP level)."""
        if level is not None:
            level = check_number(self.where, "protection.ocp_sink_a", level, minimum=None)
        self._protection = replace(self._protection, ocp_sink_a=level)
        self._protection.validate(f"{self.where}: protection")
        self._arm()

    @property
    def protection(self) -> Protection:
        """The trip levels in force."""
        return self._protection

    # -- sensors --------------------------------------------------------------------------

    def set_sensor_offset(self, quantity: str, value: float) -> None:
        """Add a runtime offset to one measured quantity (the emulator's ``offset`` fault)."""
        if quantity not in QUANTITIES:
            raise ConfigError(f"{self.where}: unknown quantity {quantity!r}; one of {QUANTITIES}")
        self._offsets[quantity] = check_number(self.where, f"offset of {quantity}", value)

    def _read(self, quantity: str, true_value: float) -> float:
        spec = self.spec.sensors.spec(quantity)
        return spec.apply(true_value, self._ctx.rng, self._offsets.get(quantity, 0.0))

    def measure(self) -> Measurement:
        """Measured voltage, current and temperature (plant sign convention).

        Reads the plant's arrays directly rather than through :meth:`state`: instruments
        measure on every query, so this is the emulator's hot path.
        """
        ctx, t, offsets = self._ctx, self._t, self._offsets
        net, rng, sensors = ctx.network, ctx.rng, self.spec.sensors
        return Measurement(
            sensors.voltage.apply(net.vt.item(t), rng, offsets.get("voltage", 0.0)),
            sensors.current.apply(net.i.item(t), rng, offsets.get("current", 0.0)),
            sensors.temperature.apply(
                ctx.temperature.item(self.index), rng, offsets.get("temperature", 0.0)
            ),
        )

    def read(self, quantity: str) -> float:
        """One measured quantity alone, as :meth:`measure` reports it (``MEAS:VOLT?``).

        The terminal's voltage, current and temperature come straight from the plant's
        arrays with their own sensor model; any other quantity from :meth:`measure`.
        """
        ctx = self._ctx
        if quantity == "voltage":
            true_value = ctx.network.vt.item(self._t)
        elif quantity == "current":
            true_value = ctx.network.i.item(self._t)
        elif quantity == "temperature":
            true_value = ctx.temperature.item(self.index)
        else:
            value = getattr(self.measure(), quantity, None)
            if not isinstance(value, float):
                raise ConfigError(f"{self.where}: a {self.kind} port does not measure {quantity!r}")
            return value
        sensor: SensorSpec = getattr(self.spec.sensors, quantity)
        return sensor.apply(true_value, ctx.rng, self._offsets.get(quantity, 0.0))

    # -- state ----------------------------------------------------------------------------

    def state(self) -> PortState:
        """True values now."""
        net, t = self._ctx.network, self._t
        v, i = float(net.vt[t]), float(net.i[t])
        return PortState(
            name=self.name,
            kind=self.kind,
            node=self.spec.node,
            voltage=v,
            current=i,
            power=v * i,
            temperature=float(self._ctx.temperature[self.index]),
            output_on=self.output_on,
            mode=self._mode_name(),
            setpoints=self._setpoints(),
            trips=tuple(sorted(k.value for k in self._trips)),
            energy_j=float(self._ctx.energy_j[t]),
        )

    def make_safe(self) -> None:
        """Output off (load input off, converter WAIT); slews down like a normal switch-off."""
        self._switch_off()
        self._apply()

    def _check(self, field: str, value: float, minimum: float, maximum: float) -> float:
        return check_number(self.where, field, value, minimum=minimum, maximum=maximum)


def _trip_kind(kind: TripKind | str, where: str) -> TripKind:
    try:
        return TripKind(kind)
    except ValueError:
        names = ", ".join(k.value for k in TripKind)
        raise ConfigError(f"{where}: unknown trip kind {kind!r}; one of {names}") from None


def _conductance(ohm: float) -> float:
    return 1.0 / ohm


class _SwitchedHandle(PortHandle):
    """A port with an output switch (every kind but loads, converters and batteries)."""

    def __init__(self, ctx: PlantContext, spec: PortSpec, index: int, terminal: int) -> None:
        super().__init__(ctx, spec, index, terminal)
        self._on = bool(getattr(spec, "output_on", False))

    def _requested_on(self) -> bool:
        return self._on

    def _switch_off(self) -> None:
        self._on = False

    def set_output(self, on: bool) -> None:
        """Switch the output on or off ('on' is ignored while a trip is latched)."""
        self._on = bool(on)
        self._apply()


class CurrentSourceHandle(_SwitchedHandle):
    """Constant-current source: ``set_output``, ``set_current``."""

    kind = "current_source"
    spec: CurrentSourceSpec

    def __init__(
        self, ctx: PlantContext, spec: CurrentSourceSpec, index: int, terminal: int
    ) -> None:
        super().__init__(ctx, spec, index, terminal)
        self.current_a = spec.current_a

    def set_current(self, amps: float) -> None:
        """Current to push (A, 0..max)."""
        self.current_a = self._check("current_a", amps, 0.0, self.spec.max_current_a)
        self._apply()

    def _characteristic(self) -> Characteristic:
        s = self.spec
        return Characteristic(s.compliance_v, _conductance(s.output_ohm), 0.0, self.current_a)

    def _setpoints(self) -> SetPoints:
        return {"current_a": self.current_a, "compliance_v": self.spec.compliance_v}


class CurrentSinkHandle(_SwitchedHandle):
    """Constant-current sink: ``set_output``, ``set_current`` (a magnitude)."""

    kind = "current_sink"
    spec: CurrentSinkSpec

    def __init__(self, ctx: PlantContext, spec: CurrentSinkSpec, index: int, terminal: int) -> None:
        super().__init__(ctx, spec, index, terminal)
        self.current_a = spec.current_a

    def set_current(self, amps: float) -> None:
        """Current to draw (A, a magnitude, 0..max)."""
        self.current_a = self._check("current_a", amps, 0.0, self.spec.max_current_a)
        self._apply()

    def _characteristic(self) -> Characteristic:
        s = self.spec
        return Characteristic(s.min_voltage_v, _conductance(s.output_ohm), -self.current_a, 0.0)

    def _setpoints(self) -> SetPoints:
        return {"current_a": self.current_a, "min_voltage_v": self.spec.min_voltage_v}


class VoltageReferenceHandle(_SwitchedHandle):
    """Voltage reference: ``set_output``, ``set_voltage``, ``set_current_limit``, ``set_droop``."""

    kind = "voltage_reference"
    spec: VoltageReferenceSpec

    def __init__(
        self, ctx: PlantContext, spec: VoltageReferenceSpec, index: int, terminal: int
    ) -> None:
        super().__init__(ctx, spec, index, terminal)
        self.voltage_v = spec.voltage_v
        limit = spec.current_limit_a
        self.current_limit_a = spec.max_current_a if limit is None else limit
        self.droop_ohm = spec.droop_ohm

    def set_voltage(self, volts: float) -> None:
        """Voltage to hold at zero current (V)."""
        self.voltage_v = self._check("voltage_v", volts, 0.0, self.spec.max_voltage_v)
        self._apply()

    def set_current_limit(self, amps: float) -> None:
        """Symmetric current limit (A, source and sink)."""
        self.current_limit_a = self._check("current_limit_a", amps, 0.0, self.spec.max_current_a)
        self._apply()

    def set_droop(self, ohm: float) -> None:
        """Droop: the held voltage falls ``ohm`` volts per ampere sourced."""
        self.droop_ohm = self._check("droop_ohm", ohm, 0.0, math.inf)
        self._apply()

    def _characteristic(self) -> Characteristic:
        lim = self.current_limit_a
        g = _conductance(self.droop_ohm + self.spec.output_ohm)
        return Characteristic(self.voltage_v, g, -lim, lim)

    def _regime_key(self) -> Hashable:
        return self.droop_ohm

    def _setpoints(self) -> SetPoints:
        return {
            "voltage_v": self.voltage_v,
            "current_limit_a": self.current_limit_a,
            "droop_ohm": self.droop_ohm,
        }


class SupplyHandle(_SwitchedHandle):
    """Programmable supply (CV/CC crossover): ``set_output``, ``set_voltage``, ``set_current``."""

    kind = "supply"
    spec: SupplySpec

    def __init__(self, ctx: PlantContext, spec: SupplySpec, index: int, terminal: int) -> None:
        super().__init__(ctx, spec, index, terminal)
        self.voltage_v = spec.voltage_v
        self.current_a = spec.current_a

    def set_voltage(self, volts: float) -> None:
        """Voltage setting (V): held while the load takes less than the current setting."""
        self.voltage_v = self._check("voltage_v", volts, 0.0, self.spec.max_voltage_v)
        self._apply()

    def set_current(self, amps: float) -> None:
        """Current setting (A): the most it sources (CC once reached)."""
        self.current_a = self._check("current_a", amps, 0.0, self.spec.max_current_a)
        self._apply()

    def _characteristic(self) -> Characteristic:
        return Characteristic(
            self.voltage_v, _conductance(self.spec.output_ohm), 0.0, self.current_a
        )

    def _mode_name(self) -> str:
        if not self.output_on:
            return "OFF"
        net, t = self._ctx.network, self._t
        return "CC" if (not net.act[t] and not net.at_lo[t] and net.i[t] > 0) else "CV"

    def _setpoints(self) -> SetPoints:
        return {"voltage_v": self.voltage_v, "current_a": self.current_a}


class LoadHandle(PortHandle):
    """Electronic load: ``set_input``, ``set_mode`` ("CC"/"CV"), ``set_level``, ``set_von``."""

    kind = "load"
    spec: LoadSpec

    def __init__(self, ctx: PlantContext, spec: LoadSpec, index: int, terminal: int) -> None:
        super().__init__(ctx, spec, index, terminal)
        self._input = spec.input_on
        self.mode = spec.mode
        self.level = spec.level
        self.von_v = spec.von_v

    def _requested_on(self) -> bool:
        return self._input

    def _switch_off(self) -> None:
        self._input = False

    def set_input(self, on: bool) -> None:
        """Switch the load's input on or off."""
        self._input = bool(on)
        self._apply()

    def set_mode(self, mode: LoadMode | str) -> None:
        """CC (``level`` in A) or CV (``level`` in V); the level is kept if it fits the mode."""
        try:
            new = LoadMode(mode)
        except ValueError:
            raise ConfigError(f"{self.where}: mode {mode!r}; must be one of CC, CV") from None
        top = self.spec.max_current_a if new is LoadMode.CC else self.spec.max_voltage_v
        self.mode = new
        self.level = min(self.level, top)
        self._apply()

    def set_level(self, value: float) -> None:
        """Current to draw (CC, A) or voltage to hold (CV, V)."""
        top = self.spec.max_current_a if self.mode is LoadMode.CC else self.spec.max_voltage_v
        self.level = self._check("level", value, 0.0, top)
        self._apply()

    def set_von(self, volts: float) -> None:
        """Turn-on voltage: in CC the load draws only above it."""
        self.von_v = self._check("von_v", volts, 0.0, self.spec.max_voltage_v)
        self._apply()

    def _characteristic(self) -> Characteristic:
        g = _conductance(self.spec.output_ohm)
        if self.mode is LoadMode.CC:
            return Characteristic(self.von_v, g, -self.level, 0.0)
        return Characteristic(self.level, g, -self.spec.max_current_a, 0.0)

    def _regime_key(self) -> Hashable:
        return self.mode

    def _mode_name(self) -> str:
        return self.mode.value if self.output_on else "OFF"

    def _setpoints(self) -> SetPoints:
        return {"mode": self.mode.value, "level": self.level, "von_v": self.von_v}


class BidirectionalHandle(_SwitchedHandle):
    """Bidirectional supply.

    CV: ``set_voltage`` with ``set_current_limits(source_a, sink_a)``. CC: ``set_current``
    (signed, + = sourcing) with ``set_voltage_limits(low_v, high_v)``.
    """

    kind = "bidirectional"
    spec: BidirectionalSpec

    def __init__(
        self, ctx: PlantContext, spec: BidirectionalSpec, index: int, terminal: int
    ) -> None:
        super().__init__(ctx, spec, index, terminal)
        self.mode = spec.mode
        self.voltage_v = spec.voltage_v
        self.source_limit_a = spec.source_limit_a
        self.sink_limit_a = spec.sink_limit_a
        self.current_a = spec.current_a
        self.low_voltage_v = spec.low_voltage_v
        high = spec.high_voltage_v
        self.high_voltage_v = spec.max_voltage_v if high is None else high

    def set_mode(self, mode: BidirectionalMode | str) -> None:
        """CV or CC."""
        try:
            self.mode = BidirectionalMode(mode)
        except ValueError:
            raise ConfigError(f"{self.where}: mode {mode!r}; must be one of CV, CC") from None
        self._apply()

    def set_voltage(self, volts: float) -> None:
        """CV voltage (V)."""
        self.voltage_v = self._check("voltage_v", volts, 0.0, self.spec.max_voltage_v)
        self._apply()

    def set_current_limits(self, source_a: float, sink_a: float) -> None:
        """CV current limits (A, magnitudes)."""
        self.source_limit_a = self._check("source_limit_a", source_a, 0.0, self.spec.max_source_a)
        self.sink_limit_a = self._check("sink_limit_a", sink_a, 0.0, self.spec.max_sink_a)
        self._apply()

    def set_current(self, amps: float) -> None:
        """CC current (A, signed: + sources into the node, - sinks)."""
        self.current_a = self._check(
            "current_a", amps, -self.spec.max_sink_a, self.spec.max_source_a
        )
        self._apply()

    def set_voltage_limits(self, low_v: float, high_v: float) -> None:
        """CC voltage window: sourcing stops at ``high_v``, sinking at ``low_v``."""
        self.low_voltage_v = self._check("low_voltage_v", low_v, 0.0, self.spec.max_voltage_v)
        self.high_voltage_v = self._check("high_voltage_v", high_v, 0.0, self.spec.max_voltage_v)
        self._apply()

    def _characteristic(self) -> Characteristic:
        g = _conductance(self.spec.output_ohm)
        if self.mode is BidirectionalMode.CV:
            return Characteristic(self.voltage_v, g, -self.sink_limit_a, self.source_limit_a)
        if self.current_a >= 0:
            return Characteristic(self.high_voltage_v, g, 0.0, self.current_a)
        return Characteristic(self.low_voltage_v, g, self.current_a, 0.0)

    def _regime_key(self) -> Hashable:
        if self.mode is BidirectionalMode.CV:
            return self.mode
        return (self.mode, self.current_a >= 0)

    def _mode_name(self) -> str:
        return self.mode.value if self.output_on else "OFF"

    def _setpoints(self) -> SetPoints:
        return {
            "mode": self.mode.value,
            "voltage_v": self.voltage_v,
            "source_limit_a": self.source_limit_a,
            "sink_limit_a": self.sink_limit_a,
            "current_a": self.current_a,
            "low_voltage_v": self.low_voltage_v,
            "high_voltage_v": self.high_voltage_v,
        }


class ConverterHandle(PortHandle):
    """DC/DC converter (APIS modes): ``set_mode``, ``set_voltage_reference``,
    ``set_grid_current``, ``set_grid_voltage_limits``.

    Its bus side is the port's terminal; its battery side is a second terminal on
    ``spec.battery_node`` that draws ``grid power + loss`` (the plant solves it each step).
    """

    kind = "converter"
    spec: ConverterSpec

    def __init__(
        self,
        ctx: PlantContext,
        spec: ConverterSpec,
        index: int,
        terminal: int,
        battery_terminal: int,
        converter_index: int,
    ) -> None:
        super().__init__(ctx, spec, index, terminal)
        self._bt = battery_terminal
        self._k = converter_index
        self._battery_protection = spec.battery_protection
        self.mode = spec.mode
        self.voltage_v = spec.voltage_v
        self.droop_ohm = spec.droop_ohm
        self.grid_current_a = spec.grid_current_a
        self.grid_low_v = spec.grid_low_v
        high = spec.grid_high_v
        self.grid_high_v = spec.max_grid_voltage_v if high is None else high

    @property
    def effective_mode(self) -> ConverterMode:
        """The mode really running (WAIT while a trip is latched)."""
        return self.mode if not self._trips else ConverterMode.WAIT

    def _requested_on(self) -> bool:
        return self.mode is not ConverterMode.WAIT

    def _switch_off(self) -> None:
        self.mode = ConverterMode.WAIT

    def set_mode(self, mode: ConverterMode | str | int) -> None:
        """WAIT, VOLTAGE_REFERENCE, CHARGE or DISCHARGE (name or EZA-2500 code)."""
        if isinstance(mode, str):
            try:
                self.mode = ConverterMode(mode)
            except ValueError:
                names = ", ".join(m.value for m in ConverterMode)
                raise ConfigError(f"{self.where}: mode {mode!r}; must be one of {names}") from None
        elif isinstance(mode, int) and not isinstance(mode, bool):
            self.mode = ConverterMode.from_code(mode)
        else:
            raise ConfigError(f"{self.where}: mode {mode!r} is neither a mode name nor a code")
        self._apply()

    def set_voltage_reference(self, voltage_v: float, droop_ohm: float = 0.0) -> None:
        """Bus voltage held in VOLTAGE_REFERENCE (``dvg``) and its droop in V/A.

        APIS's ``drg`` is a dimensionless droop ratio; the instrument model converts it
        (for example ``drg x dvg / rated current``) before calling this.
        """
        self.voltage_v = self._check("voltage_v", voltage_v, 0.0, self.spec.max_grid_voltage_v)
        self.droop_ohm = self._check("droop_ohm", droop_ohm, 0.0, math.inf)
        self._apply()

    def set_grid_current(self, amps: float) -> None:
        """``dig``: the CC set-point in CHARGE/DISCHARGE and the current limit as VR (A)."""
        self.grid_current_a = self._check("grid_current_a", amps, 0.0, self.spec.max_grid_current_a)
        self._apply()

    def set_grid_voltage_limits(self, low_v: float, high_v: float) -> None:
        """CHARGE draws only while the bus is above ``low_v``; DISCHARGE stops at ``high_v``."""
        vmax = self.spec.max_grid_voltage_v
        self.grid_low_v = self._check("grid_low_v", low_v, 0.0, vmax)
        self.grid_high_v = self._check("grid_high_v", high_v, 0.0, vmax)
        self._apply()

    def set_protection(
        self, kind: TripKind | str, level: float | None, *, battery_side: bool = False
    ) -> None:
        """Set a trip level on the bus side or, with ``battery_side``, the battery side."""
        if not battery_side:
            super().set_protection(kind, level)
            return
        k = _trip_kind(kind, self.where)
        if level is not None:
            level = check_number(self.where, f"battery_protection.{k.value}", level)
        self._battery_protection = self._battery_protection.with_level(k, level)
        self._battery_protection.validate(f"{self.where}: battery_protection")
        self._arm()

    def _characteristic(self) -> Characteristic:
        g = _conductance(self.spec.output_ohm)
        dig = self.grid_current_a
        if self.mode is ConverterMode.VOLTAGE_REFERENCE:
            g = _conductance(self.droop_ohm + self.spec.output_ohm)
            return Characteristic(self.voltage_v, g, -dig, dig)
        if self.mode is ConverterMode.DISCHARGE:
            return Characteristic(self.grid_high_v, g, 0.0, dig)
        return Characteristic(self.grid_low_v, g, -dig, 0.0)

    def _regime_key(self) -> Hashable:
        return (self.mode, self.droop_ohm if self.mode is ConverterMode.VOLTAGE_REFERENCE else 0)

    def _apply(self, *, instant: bool = False) -> None:
        super()._apply(instant=instant)
        p0, kf = self.spec.losses.coefficients(self.effective_mode)
        self._ctx.conv_p0[self._k] = p0
        self._ctx.conv_kf[self._k] = kf

    def _arm(self) -> None:
        super()._arm()
        spec = self.spec
        self._arm_terminal(
            self._bt, self._battery_protection, spec.min_battery_v, spec.max_battery_v
        )

    def _mode_name(self) -> str:
        return self.effective_mode.value

    def _setpoints(self) -> SetPoints:
        return {
            "mode": self.mode.value,
            "voltage_v": self.voltage_v,
            "droop_ohm": self.droop_ohm,
            "grid_current_a": self.grid_current_a,
            "grid_low_v": self.grid_low_v,
            "grid_high_v": self.grid_high_v,
        }

    @property
    def battery_terminal(self) -> int:
        """Index of the battery-side terminal in the network arrays."""
        return self._bt

    def state(self) -> PortState:
        """True values of both sides now."""
        base = super().state()
        net, ctx, bt = self._ctx.network, self._ctx, self._bt
        return PortState(
            **{
                **base.__dict__,
                "loss_w": float(ctx.conv_loss[self._k]),
                "loss_energy_j": float(ctx.conv_loss_j[self._k]),
                "battery_node": self.spec.battery_node,
                "battery_voltage": float(net.vt[bt]),
                "battery_current": float(net.i[bt]),
                "battery_energy_j": float(ctx.energy_j[bt]),
            }
        )

    def measure(self) -> Measurement:
        """Measured bus side, battery side and temperature (from the arrays, as the base)."""
        net, bt = self._ctx.network, self._bt
        return (
            super()
            .measure()
            ._replace(
                battery_voltage=self._read("battery_voltage", net.vt.item(bt)),
                battery_current=self._read("battery_current", net.i.item(bt)),
            )
        )


class BatteryHandle(PortHandle):
    """Battery: ``soc`` (get/set), ``set_connected`` (its contactor)."""

    kind = "battery"
    spec: BatterySpec

    def __init__(
        self,
        ctx: PlantContext,
        spec: BatterySpec,
        index: int,
        terminal: int,
        battery_index: int,
        household: tuple[int, int] | None = None,
    ) -> None:
        super().__init__(ctx, spec, index, terminal)
        self._b = battery_index
        self._house = household
        self._connected = spec.connected
        cap = spec.capacity_wh * 3600.0
        ctx.bat_capacity_j[battery_index] = cap
        ctx.bat_energy_j[battery_index] = spec.soc * cap
        ctx.bat_ocv[battery_index] = spec.ocv(spec.soc)
        ctx.bat_r[battery_index] = spec.r_internal_ohm

    @property
    def soc(self) -> float:
        """State of charge, 0..1."""
        ctx = self._ctx
        return float(ctx.bat_energy_j[self._b] / ctx.bat_capacity_j[self._b])

    @soc.setter
    def soc(self, value: float) -> None:
        soc = self._check("soc", value, 0.0, 1.0)
        ctx = self._ctx
        ctx.bat_energy_j[self._b] = soc * ctx.bat_capacity_j[self._b]
        ctx.bat_soc_rate[self._b] = 0.0
        ctx.changed = True

    @property
    def stored_energy_j(self) -> float:
        """SoC x capacity, in joules."""
        return float(self._ctx.bat_energy_j[self._b])

    @property
    def heat_energy_j(self) -> float:
        """I^2 R heat dissipated inside the battery so far (J)."""
        ctx = self._ctx
        return float(ctx.bat_i2t[self._b] * ctx.bat_r[self._b])

    def _requested_on(self) -> bool:
        return self._connected

    def _switch_off(self) -> None:
        self._connected = False

    def set_connected(self, on: bool) -> None:
        """Close (True) or open (False) the battery's contactor."""
        self._connected = bool(on)
        self._apply()

    def _apply(self, *, instant: bool = False) -> None:
        super()._apply(instant=instant)
        self._ctx.bat_on[self._b] = self.output_on

    def household_state(self) -> HouseholdState | None:
        """The household on this battery's node now (``None`` if it has none)."""
        if self._house is None:
            return None
        h, t = self._house
        ctx = self._ctx
        net = ctx.network
        assert self.spec.household is not None
        profile = self.spec.household.profile
        k = profile_segment(ctx.start_of_day_s + ctx.time, profile.resolution_s, profile.segments)
        wh = 1.0 / 3600.0
        return HouseholdState(
            mode=HOUSEHOLD_MODES[int(ctx.house_mode[h])],
            pv_w=float(profile.pv_w[k]),
            load_w=float(profile.load_w[k]),
            power_w=float(net.vt[t] * net.i[t]),
            pv_wh=float(ctx.house_pv_j[h]) * wh,
            pv_used_wh=float(ctx.house_used_j[h]) * wh,
            pv_wasted_wh=float(ctx.house_wasted_j[h]) * wh,
            load_wh=float(ctx.house_load_j[h]) * wh,
            utility_wh=float(ctx.house_utility_j[h]) * wh,
            energy_wh=float(ctx.energy_j[t]) * wh,
        )

    def _characteristic(self) -> Characteristic:
        g = _conductance(self.spec.r_internal_ohm)
        return Characteristic(None, g, -UNCLAMPED_A, UNCLAMPED_A)

    def make_safe(self) -> None:
        """A battery has no output to make safe; its contactor stays as it is."""

    def _setpoints(self) -> SetPoints:
        return {"connected": self._connected}

    def state(self) -> PortState:
        """True values now, with SoC, OCV and stored energy."""
        base = super().state()
        ctx = self._ctx
        house = self.household_state()
        return PortState(
            **{
                **base.__dict__,
                "loss_energy_j": self.heat_energy_j,
                "soc": self.soc,
                "ocv": float(ctx.bat_ocv[self._b]),
                "stored_energy_j": self.stored_energy_j,
                "household": None if house is None else house.counters(),
            }
        )

    def measure(self) -> Measurement:
        """Measured terminal voltage, current, temperature and SoC."""
        return super().measure()._replace(soc=self._read("soc", self.soc))


def profile_segment(time_of_day_s: float, resolution_s: float, segments: int) -> int:
    """Profile segment in force at ``time_of_day_s``; a time within a nanosecond-scale
    rounding error of a segment edge counts as already in the next segment."""
    x = time_of_day_s / resolution_s
    return math.floor(x + 1e-9 * max(1.0, abs(x))) % segments


HANDLE_TYPES: dict[type[PortSpec], type[PortHandle]] = {
    CurrentSourceSpec: CurrentSourceHandle,
    CurrentSinkSpec: CurrentSinkHandle,
    VoltageReferenceSpec: VoltageReferenceHandle,
    SupplySpec: SupplyHandle,
    LoadSpec: LoadHandle,
    BidirectionalSpec: BidirectionalHandle,
}
"""Single-terminal kinds built the same way (converters and batteries need more)."""


def heat_coefficients(spec: PortSpec) -> tuple[float, float, float]:
    """``(k_abs, k_sink, k_i2r)``: heat = k_abs |P| + k_sink max(-P, 0) + k_i2r i^2."""
    if isinstance(spec, LoadSpec | CurrentSinkSpec):
        return 0.0, 1.0, 0.0
    if isinstance(spec, BatterySpec):
        return 0.0, 0.0, spec.r_internal_ohm
    if isinstance(spec, ConverterSpec):
        return 0.0, 0.0, 0.0
    eta = spec.thermal.efficiency
    return (1.0 - eta) / eta, 0.0, 0.0
