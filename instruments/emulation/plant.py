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

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import numpy as np

from instruments.emulation.battery import OcvCurve
from instruments.emulation.household import DAY_S, HouseholdProfile
from instruments.emulation.plant_network import (
    EMF,
    HI,
    LO,
    UNCLAMPED_A,
    BoolArray,
    FloatArray,
    Network,
    TerminalRow,
)
from instruments.emulation.plant_ports import (
    HANDLE_TYPES,
    BatteryHandle,
    BidirectionalHandle,
    Characteristic,
    ConverterHandle,
    CurrentSinkHandle,
    CurrentSourceHandle,
    HouseholdState,
    LoadHandle,
    Measurement,
    PlantContext,
    PortHandle,
    PortState,
    SupplyHandle,
    TripEvent,
    VoltageReferenceHandle,
    heat_coefficients,
    profile_segment,
)
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
from instruments.emulation.sensors import Sensors, SensorSpec
from instruments.errors import ConfigError

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

log = logging.getLogger(__name__)

H = TypeVar("H", bound=PortHandle)

_INJECTION_PASSES = 4
_INJECTION_RTOL = 1e-5
_SOC_BAND = 1e-7
_SETTLE_DT = 1e6
_OCV_REFRESH = 16
_OCV_DSOC = 1e-6
_TINY = 1e-200
_HOUSE_HOLD_A = 2e-3
_HOUSE_HOLD_TOL_A = 1e-4
_HOUSE_VFLOOR = 1.0
_HOUSE_EDGE = 1e-9


@dataclass(frozen=True, kw_only=True)
class Stepping:
    """How :meth:`Plant.advance` chooses its steps.

    Fine steps (``fine_step_s``) while any port slews or a setting just changed; otherwise
    the step grows by ``growth`` each time up to ``max_step_s``, held back so that no node
    voltage moves more than ``max_dv_v`` and no SoC more than ``max_dsoc`` per step, and so
    that a trip level, a SoC limit or an over-temperature is approached in ever smaller
    steps, not jumped over.
    ``fixed_step_s`` (if set) replaces all of that with a constant step.
    """

    fine_step_s: float = 1e-3
    max_step_s: float = 60.0
    max_dv_v: float = 0.5
    max_dsoc: float = 0.005
    thermal_period_s: float = 0.1
    growth: float = 4.0
    fixed_step_s: float | None = None

    def __post_init__(self) -> None:
        w = "stepping"
        check_number(w, "fine_step_s", self.fine_step_s, minimum=0, strict=True)
        check_number(w, "max_step_s", self.max_step_s, minimum=self.fine_step_s)
        check_number(w, "max_dv_v", self.max_dv_v, minimum=0, strict=True)
        check_number(w, "max_dsoc", self.max_dsoc, minimum=0, strict=True)
        check_number(w, "thermal_period_s", self.thermal_period_s, minimum=0, strict=True)
        check_number(w, "growth", self.growth, minimum=1, strict=True)
        if self.fixed_step_s is not None:
            check_number(w, "fixed_step_s", self.fixed_step_s, minimum=0, strict=True)


@dataclass(frozen=True)
class NodeState:
    """True state of a node: voltage and where its net port current goes."""

    name: str
    voltage: float
    port_current: float
    bleed_current: float
    capacitor_current: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return dict(self.__dict__)


class _BatteryGroup:
    """Batteries sharing one OCV table: one ``np.interp`` call per step for all of them."""

    def __init__(self, curve: OcvCurve, members: list[int]) -> None:
        self.members = np.array(members, dtype=np.intp)
        self.socs = curve.socs
        self.volts = curve.volts


class _Households:
    """Every household of a plant: profiles as matrices, per-step modes, constant-power kernel.

    Household ``h`` sits on battery ``b[h]`` (battery terminal ``bt[h]``) as terminal
    ``ht.start + h``, a constant-power terminal (``i = P / V``, solved by a checked fixed
    point like a converter's battery side). Per step, from the battery's energy at its start:
    ``normal`` P = PV - load; ``reserve`` (at or below the reserve) the household draws at
    most what keeps the battery from discharging, the utility the rest; ``full`` (at or
    above full) it feeds at most what keeps the battery from charging, the rest is
    curtailed; ``isolated`` (battery disconnected) P = 0. In ``reserve``/``full`` the limit
    is found by a Newton step on the battery current toward a tiny bias (``_HOUSE_HOLD_A``,
    discharging at the reserve, charging when full), so the SoC stays on its side of the
    threshold instead of chattering across it.
    """

    def __init__(
        self,
        net: Network,
        ctx: PlantContext,
        specs: list[HouseholdSpec],
        batteries: list[int],
        first_battery_terminal: int,
        first_terminal: int,
        start_of_day_s: float,
    ) -> None:
        n = len(specs)
        self.n = n
        self._net, self._ctx = net, ctx
        resolutions = {s.profile.resolution_s for s in specs}
        if len(resolutions) > 1:
            raise ConfigError(
                "households on one plant must share one profile resolution, got "
                + ", ".join(f"{r:g} s" for r in sorted(resolutions))
            )
        self.res_s = resolutions.pop()
        self.segments = specs[0].profile.segments
        self.start = start_of_day_s
        self.pv = np.stack([s.profile.pv_w for s in specs])
        self.load = np.stack([s.profile.load_w for s in specs])
        self.b = np.array(batteries, dtype=np.intp)
        self.bt = self.b + first_battery_terminal
        self.ht = slice(first_terminal, first_terminal + n)
        self.node = net.node[self.ht].copy()
        cap = ctx.bat_capacity_j[self.b]
        self.res_j = (np.array([s.reserve_soc for s in specs]) + _SOC_BAND) * cap
        self.full_j = (np.array([s.full_soc for s in specs]) - _SOC_BAND) * cap
        zeros = np.zeros(n)
        self.pv_now, self.load_now, self.net_p = zeros, zeros.copy(), zeros.copy()
        self.lo, self.hi, self.eps = zeros.copy(), zeros.copy(), zeros.copy()
        self.mode = np.zeros(n, dtype=np.int8)
        self.hold = np.zeros(n, dtype=np.bool_)
        self.any_hold = False
        self.v_ratio = np.ones(net.n_nodes)
        """Per node: voltage before the step / predicted for it (1 off household nodes)."""

    def segment(self, time: float) -> int:
        """The profile segment in force at plant time ``time``."""
        return profile_segment(self.start + time, self.res_s, self.segments)

    def next_edge(self, time: float) -> float:
        """Plant time of the first segment edge after ``time`` (steps end there)."""
        x = (self.start + time) / self.res_s
        k = math.floor(x + _HOUSE_EDGE * max(1.0, abs(x)))
        return (k + 1) * self.res_s - self.start

    def _modes(self) -> tuple[BoolArray, BoolArray, BoolArray]:
        """(reserve, full, isolated) from the batteries' energy now."""
        ctx = self._ctx
        e = ctx.bat_energy_j[self.b]
        on = ctx.bat_on[self.b]
        reserve = on & (e <= self.res_j)
        full = on & (e >= self.full_j) & ~reserve
        return reserve, full, ~on

    def rate_change(self, time: float) -> FloatArray:
        """How much faster (W) each battery will charge in the coming step than in the last
        one, because the profile moved on (households in ``normal`` mode only)."""
        k = self.segment(time)
        net = self._net
        ht = self.ht
        reserve, full, isolated = self._modes()
        p_last = net.vt[ht] * net.i[ht]
        change = self.pv[:, k] - self.load[:, k] - p_last
        change[reserve | full | isolated] = 0.0
        return change

    def begin(self, time: float, dt: float) -> None:
        """Profile values and modes for the step ``[time, time + dt]``; first guess of the
        household currents."""
        k = profile_segment(self.start + time + 0.5 * dt, self.res_s, self.segments)
        pv, load = self.pv[:, k], self.load[:, k]
        net_p = pv - load
        reserve, full, isolated = self._modes()
        lo = net_p.copy()
        hi = net_p.copy()
        np.maximum(hi, 0.0, out=hi, where=reserve)
        np.minimum(lo, 0.0, out=lo, where=full)
        lo[isolated] = 0.0
        hi[isolated] = 0.0
        hold = (reserve | full) & (hi > lo)
        self.pv_now, self.load_now, self.net_p = pv, load, net_p
        self.lo, self.hi, self.hold = lo, hi, hold
        self.any_hold = bool(hold.any())
        self.eps = np.where(reserve, _HOUSE_HOLD_A, -_HOUSE_HOLD_A)
        mode = np.zeros(self.n, dtype=np.int8)
        mode[reserve] = 1
        mode[full] = 2
        mode[isolated] = 3
        self.mode = mode
        net, ht = self._net, self.ht
        # First guess from each household node's balance for the step, with the node's
        # other currents as they were: V = (base + i_h) / den. A good guess (here, and for
        # converters on the node, see ``v_ratio``) spares the step a second solve.
        node, bt = self.node, self.bt
        v_old = net.vn[ht]
        g_b = net.geff[bt]
        cdt = net.cap[node] / dt
        den = g_b + cdt + net.gb[node]
        sums = cast(FloatArray, np.bincount(net.node, net.i, net.n_nodes))[node]
        base = g_b * net.cur[EMF, bt] + sums - net.i[bt] - net.i[ht] + cdt * v_old
        p_guess = np.clip(net.vt[ht] * net.i[ht], lo, hi)
        i_h = p_guess / np.maximum(v_old, _HOUSE_VFLOOR)
        for _ in range(2):  # a contraction by about (P / V^2) / den < 0.01 per round
            i_h = p_guess / np.maximum((base + i_h) / den, _HOUSE_VFLOOR)
        if self.any_hold:  # the current that puts the battery at its bias current
            v_star = np.maximum(net.cur[EMF, bt] - self.eps / np.maximum(g_b, _TINY), _HOUSE_VFLOOR)
            i_hold = np.clip(den * v_star - base, lo / v_star, hi / v_star)
            i_h = np.where(hold, i_hold, i_h)
        net.cur[LO:, ht] = i_h
        v_new = np.maximum((base + i_h) / den, _HOUSE_VFLOOR)
        self.v_ratio[node] = np.where(isolated, 1.0, v_old / v_new)

    def update(self, dt: float) -> bool:
        """Household currents for the state just solved; True if any moved (solve again)."""
        net, ht = self._net, self.ht
        vf = np.maximum(net.vn[ht], _HOUSE_VFLOOR)
        i_now = net.i[ht]
        i_lo = self.lo / vf
        if self.any_hold:
            bt, node = self.bt, self.node
            i_b = net.i[bt]
            g_b = net.geff[bt]
            den = cast(FloatArray, np.bincount(net.node, net.geff * net.act, net.n_nodes))[node]
            den += net.cap[node] / dt + net.gb[node]
            step = (i_b - self.eps) * den / np.maximum(g_b, _TINY)
            i_hold = np.clip(i_now + step, i_lo, self.hi / vf)
            i_new = np.where(self.hold, i_hold, i_lo)
            tol = np.where(self.hold, _HOUSE_HOLD_TOL_A, _INJECTION_RTOL * (1.0 + np.abs(i_new)))
        else:
            i_new = i_lo
            tol = _INJECTION_RTOL * (1.0 + np.abs(i_new))
        if not (np.abs(i_new - i_now) > tol).any():
            return False
        net.cur[LO:, ht] = i_new
        return True

    def count(self, dt: float) -> None:
        """Energy counters for the step just solved, split by what the household did."""
        net, ctx, ht = self._net, self._ctx, self.ht
        p = net.vt[ht] * net.i[ht]
        net_p, mode = self.net_p, self.mode
        reserve_like = (mode == 1) | (mode == 3)
        full_like = (mode == 2) | (mode == 3)
        utility = np.where(reserve_like, np.clip(p - net_p, 0.0, np.maximum(-net_p, 0.0)), 0.0)
        wasted = np.where(full_like, np.clip(net_p - p, 0.0, np.maximum(net_p, 0.0)), 0.0)
        ctx.house_pv_j += self.pv_now * dt
        ctx.house_load_j += self.load_now * dt
        ctx.house_used_j += (self.pv_now - wasted) * dt
        ctx.house_wasted_j += wasted * dt
        ctx.house_utility_j += utility * dt
        ctx.house_mode[:] = mode


class Plant:
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
        self._node_specs = list(nodes)
        self._port_specs = list(ports)
        self._validate_layout()
        node_index = {n.name: k for k, n in enumerate(self._node_specs)}
        specs = self._port_specs
        convs = [p for p, s in enumerate(specs) if isinstance(s, ConverterSpec)]
        bats = [p for p, s in enumerate(specs) if isinstance(s, BatterySpec)]
        others = [p for p, s in enumerate(specs) if not isinstance(s, ConverterSpec | BatterySpec)]
        # Terminal order: [converter bus sides, other slewed ports | batteries | converter
        # battery sides], so the per-step kernel works on slices (views), not gathers.
        order = convs + others + bats
        n_slewed = len(convs) + len(others)
        terminal_of = {p: t for t, p in enumerate(order)}
        rows = [self._row(specs[p], p, node_index[specs[p].node]) for p in order]
        for p in convs:
            spec = specs[p]
            assert isinstance(spec, ConverterSpec)
            rows.append(
                TerminalRow(node_index[spec.battery_node], p, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
            )
        bat_specs = [cast(BatterySpec, specs[p]) for p in bats]
        houses = [b for b, s in enumerate(bat_specs) if s.household is not None]
        self._check_households(bat_specs, houses)
        for b in houses:
            rows.append(
                TerminalRow(
                    node_index[bat_specs[b].node], bats[b], 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
                )
            )
        n_conv, n_bat, n_house = len(convs), len(bats), len(houses)
        base = n_slewed + n_bat
        net = Network(
            capacitance=np.array([n.capacitance_f for n in self._node_specs]),
            bleed_conductance=np.array(
                [0.0 if n.bleed_ohm is None else 1.0 / n.bleed_ohm for n in self._node_specs]
            ),
            voltage=np.array([n.voltage_v or 0.0 for n in self._node_specs]),
            rows=rows,
            n_slewed=n_slewed,
        )
        self._net = net
        self._ctx = ctx = PlantContext(
            net,
            [n.name for n in self._node_specs],
            len(specs),
            n_conv,
            n_bat,
            np.random.default_rng(seed),
            n_households=n_house,
            start_of_day_s=self.start_of_day_s,
        )
        house_of = {b: h for h, b in enumerate(houses)}
        self._handle_list: list[PortHandle] = []
        for p, spec in enumerate(specs):
            t = terminal_of[p]
            handle: PortHandle
            if isinstance(spec, ConverterSpec):
                k = convs.index(p)
                handle = ConverterHandle(ctx, spec, p, t, base + k, k)
            elif isinstance(spec, BatterySpec):
                b = t - n_slewed
                house = house_of.get(b)
                household = None if house is None else (house, base + n_conv + house)
                handle = BatteryHandle(ctx, spec, p, t, b, household)
            else:
                handle = HANDLE_TYPES[type(spec)](ctx, spec, p, t)
            self._handle_list.append(handle)
        self._handles = {h.name: h for h in self._handle_list}
        self._by_terminal = [self._handle_list[p] for p in net.port]
        self._cb = slice(0, n_conv)
        self._bt = slice(n_slewed, n_slewed + n_bat)
        self._cpt = slice(base, base + n_conv)
        self._n_conv, self._n_bat = n_conv, n_bat
        conv_specs = [s for s in specs if isinstance(s, ConverterSpec)]
        self._conv_bat_node = net.node[self._cpt].copy()
        self._conv_port = np.array(convs, dtype=np.intp)
        self._conv_vmin = np.array([s.min_battery_v for s in conv_specs], dtype=np.float64)
        self._conv_has_fraction = any(
            s.losses.charge_fraction > 0 or s.losses.discharge_fraction > 0 for s in conv_specs
        )
        cap = ctx.bat_capacity_j
        self._bat_emin = np.array([s.soc_min for s in bat_specs]) * cap + _SOC_BAND * cap
        self._bat_emax = np.array([s.soc_max for s in bat_specs]) * cap - _SOC_BAND * cap
        self._bat_dsoc_j = self.stepping.max_dsoc * cap
        groups: dict[OcvCurve, list[int]] = {}
        for b, s in enumerate(bat_specs):
            groups.setdefault(s.ocv, []).append(b)
        self._bat_groups = [_BatteryGroup(curve, members) for curve, members in groups.items()]
        self._houses: _Households | None = None
        if houses:
            house_specs = [s.household for s in bat_specs if s.household is not None]
            self._houses = _Households(
                net, ctx, house_specs, houses, n_slewed, base + n_conv, self.start_of_day_s
            )
        self._init_thermal()
        self._time = 0.0
        self._dt = self.stepping.fine_step_s
        self._dv = 0.0
        self._slewing = True
        self._thermal_elapsed = 0.0
        self._steps = 0
        self._resistive: BoolArray | None = None
        self._ocv_age = 0
        self._ocv_every = 1
        self._watch_v = self._watch_i = self._watch_t = True
        self._inj_now = self._inj_prev = self._inj_prev2 = net.i[self._cpt]
        self._inj_hist = 0
        self._dt_prev = self._dt
        for h in self._handle_list:
            h._apply(instant=True)
        self._settle()
        self._inj_prev = self._inj_now = net.i[self._cpt]
        self._vt_prev, self._i_prev = net.vt, net.i
        self._update_thermal(0.0)

    @staticmethod
    def _row(spec: PortSpec, port: int, node: int) -> TerminalRow:
        fixed = isinstance(spec, BatterySpec)
        return TerminalRow(
            node=node,
            port=port,
            conductance=0.0,
            line_ohm=spec.line_ohm,
            emf=0.0,
            lo=0.0,
            hi=0.0,
            slew_v=math.inf if fixed else spec.slew_v_per_s,
            slew_a=math.inf if fixed else spec.slew_a_per_s,
        )

    def _settle(self) -> None:
        """Initial node voltages: the operating point of the initial settings.

        Nodes whose spec gives ``voltage_v`` start at exactly that voltage instead.
        """
        net = self._net
        self._set_ocv(0.0)
        v0 = net.V.copy()
        net.solve(_SETTLE_DT, v0)
        for _ in range(_INJECTION_PASSES * 4):
            if not (self._n_conv and self._update_injection()):
                break
            net.solve(_SETTLE_DT, v0)
        fixed = [k for k, n in enumerate(self._node_specs) if n.voltage_v is not None]
        if fixed:
            V = net.V.copy()
            V[fixed] = v0[fixed]
            net._evaluate(V)
            if self._n_conv:
                self._update_injection()
                net._evaluate(V)
        self._ctx.changed = True

    # -- construction helpers -------------------------------------------------------------

    def _validate_layout(self) -> None:
        names: set[str] = set()
        for n in self._node_specs:
            if not isinstance(n, NodeSpec):
                raise ConfigError(f"nodes must be NodeSpec objects, got {type(n).__name__}")
            if n.name in names:
                raise ConfigError(f"node {n.name!r} is defined twice")
            names.add(n.name)
        if not names:
            raise ConfigError("a plant needs at least one node")
        seen: set[str] = set()
        for s in self._port_specs:
            if not isinstance(s, PortSpec) or type(s) is PortSpec:
                raise ConfigError(f"ports must be concrete port specs, got {type(s).__name__}")
            if s.name in seen:
                raise ConfigError(f"port {s.name!r} is defined twice")
            seen.add(s.name)
            if s.node not in names:
                raise ConfigError(f"{s.where}: node {s.node!r} does not exist")
            if isinstance(s, ConverterSpec) and s.battery_node not in names:
                raise ConfigError(f"{s.where}: battery_node {s.battery_node!r} does not exist")

    @staticmethod
    def _check_households(bat_specs: list[BatterySpec], houses: list[int]) -> None:
        """At most one household per node (each one's limit is solved on its own node)."""
        seen: dict[str, str] = {}
        for b in houses:
            spec = bat_specs[b]
            other = seen.setdefault(spec.node, spec.name)
            if other != spec.name:
                raise ConfigError(
                    f"{spec.where}: node {spec.node!r} already has a household (on battery "
                    f"{other!r}); allowed: one household per node"
                )

    def _init_thermal(self) -> None:
        net = self._net
        thermal = [s.thermal for s in self._port_specs]
        self._amb = np.array([th.ambient_c for th in thermal])
        self._tau = np.array([th.time_constant_s for th in thermal])
        self._kpw = np.array([th.kelvin_per_watt for th in thermal])
        coeffs = np.array(
            [heat_coefficients(self._port_specs[p]) for p in net.port], dtype=np.float64
        ).reshape(-1, 3)
        self._k_abs, self._k_sink, self._k_i2r = coeffs.T.copy()
        if self._houses is not None:  # household terminals heat nothing in the plant
            ht = self._houses.ht
            self._k_abs[ht] = self._k_sink[ht] = self._k_i2r[ht] = 0.0
        self._ctx.temperature[:] = self._amb
        self._t_target = self._amb.copy()

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
    def ports(self) -> dict[str, PortHandle]:
        """Every port handle by name (a copy of the mapping)."""
        return dict(self._handles)

    @property
    def node_names(self) -> list[str]:
        """Every node name, in definition order."""
        return [n.name for n in self._node_specs]

    def port(self, name: str) -> PortHandle:
        """The handle of port ``name``; :class:`ConfigError` if there is none."""
        try:
            return self._handles[name]
        except KeyError:
            known = ", ".join(sorted(self._handles)) or "none"
            raise ConfigError(f"no port named {name!r} in the plant (ports: {known})") from None

    def port_as(self, name: str, kind: type[H]) -> H:
        """The handle of port ``name``, checked to be of handle type ``kind``."""
        handle = self.port(name)
        if not isinstance(handle, kind):
            raise ConfigError(f"port {name!r} is a {handle.kind}, not a {kind.kind}")
        return handle

    def supply(self, name: str) -> SupplyHandle:
        """Typed handle of a supply port."""
        return self.port_as(name, SupplyHandle)

    def load(self, name: str) -> LoadHandle:
        """Typed handle of an electronic-load port."""
        return self.port_as(name, LoadHandle)

    def bidirectional(self, name: str) -> BidirectionalHandle:
        """Typed handle of a bidirectional-supply port."""
        return self.port_as(name, BidirectionalHandle)

    def voltage_reference(self, name: str) -> VoltageReferenceHandle:
        """Typed handle of a voltage-reference port."""
        return self.port_as(name, VoltageReferenceHandle)

    def current_source(self, name: str) -> CurrentSourceHandle:
        """Typed handle of a constant-current source."""
        return self.port_as(name, CurrentSourceHandle)

    def current_sink(self, name: str) -> CurrentSinkHandle:
        """Typed handle of a constant-current sink."""
        return self.port_as(name, CurrentSinkHandle)

    def converter(self, name: str) -> ConverterHandle:
        """Typed handle of a DC/DC converter."""
        return self.port_as(name, ConverterHandle)

    def battery(self, name: str) -> BatteryHandle:
        """Typed handle of a battery."""
        return self.port_as(name, BatteryHandle)

    def __iter__(self) -> Iterator[PortHandle]:
        return iter(self._handles.values())

    def node_voltage(self, name: str) -> float:
        """True voltage of node ``name``."""
        return float(self._net.V[self._node(name)])

    def node_state(self, name: str) -> NodeState:
        """True state of node ``name``: voltage and the currents that balance at it."""
        k = self._node(name)
        net = self._net
        sums = net.node_current_sum()
        v = float(net.V[k])
        bleed = float(net.gb[k] * v)
        return NodeState(
            name=name,
            voltage=v,
            port_current=float(sums[k]),
            bleed_current=bleed,
            capacitor_current=float(sums[k]) - bleed,
        )

    def _node(self, name: str) -> int:
        for k, n in enumerate(self._node_specs):
            if n.name == name:
                return k
        raise ConfigError(f"no node named {name!r} in the plant (nodes: {self.node_names})")

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
                self._update_injection()
                net._evaluate(V)
            self._ctx.changed = True

    def snapshot(self) -> dict[str, Any]:
        """Plain, JSON-serialisable dict of the true state of every node and port."""
        return {
            "time": self._time,
            "nodes": {n: self.node_state(n).as_dict() for n in self.node_names},
            "ports": {name: h.state().as_dict() for name, h in self._handles.items()},
        }

    def state(self, name: str) -> PortState:
        """Shortcut for ``plant.port(name).state()``."""
        return self.port(name).state()

    def measure(self, name: str) -> Measurement:
        """Shortcut for ``plant.port(name).measure()``."""
        return self.port(name).measure()

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
        self._update_thermal(self._thermal_elapsed)
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
            dt = min(dt, self._battery_limit(), self._trip_horizon())
            dt = max(dt, st.fine_step_s)
        if max_step is not None:
            dt = min(dt, max_step)
        if self._houses is not None:  # never step across a profile segment edge
            dt = min(dt, self._houses.next_edge(self._time) - self._time)
        return min(dt, remaining)

    def _battery_limit(self) -> float:
        """Longest step that keeps SoC steps small and does not jump a SoC limit."""
        if not self._n_bat:
            return math.inf
        ctx = self._ctx
        rate = ctx.bat_soc_rate
        e = ctx.bat_energy_j
        houses = self._houses
        if houses is None:
            room = np.where(rate < 0, e - self._bat_emin, self._bat_emax - e)
        else:
            # The coming segment's household power, and the household thresholds ahead.
            hb = houses.b
            rate = rate.copy()
            rate[hb] += houses.rate_change(self._time)
            lower, upper = self._bat_emin.copy(), self._bat_emax.copy()
            eh = e[hb]
            lower[hb] = np.where(eh > houses.res_j, houses.res_j, lower[hb])
            upper[hb] = np.where(eh < houses.full_j, houses.full_j, upper[hb])
            room = np.where(rate < 0, e - lower, upper - e)
        room[rate == 0] = np.inf
        np.minimum(room, self._bat_dsoc_j, out=room)
        np.maximum(room, 0.0, out=room)
        speed = np.abs(rate)
        speed += _TINY
        room /= speed
        return float(room.min())

    def _trip_horizon(self) -> float:
        """Time until a drifting voltage, current or temperature would reach its trip level.

        Rates come from the last step; the step is held to half the time left, so a trip is
        approached in ever smaller steps rather than jumped over. A solved state stands for
        the middle of its step (midpoint battery EMFs), so half the last change is taken off
        each margin first.

        Only levels still ahead count: a level already crossed (the port tripped on it when
        it was crossed) cannot be jumped over. Counting it, a tripped port whose node sits
        past its OVP level while the voltage jitters by one ulp held every step near 1 ms
        (``advance(7200)`` took 33 s in the random set-point property test, seed 5).
        """
        ctx, net = self._ctx, self._net
        if ctx.levels_changed:
            self._refresh_watch()
        steps = math.inf
        vt = net.vt
        if self._watch_v:
            d = vt - self._vt_prev
            margin = np.where(d > 0, ctx.ovp - vt, vt - ctx.uvlo)
            margin[margin < 0] = np.inf
            np.abs(d, out=d)
            margin -= 0.5 * d
            d += _TINY
            margin /= d
            steps = float(margin.min())
        if self._watch_i:
            a = np.abs(net.i)
            d = a - np.abs(self._i_prev)
            margin = np.where(d > 0, self._ocp_levels(net.i) - a, np.inf)
            margin[margin < 0] = np.inf
            np.maximum(d, 0.0, out=d)
            margin -= 0.5 * d
            d += _TINY
            margin /= d
            steps = min(steps, float(margin.min()))
        horizon = 0.5 * max(steps, 0.0) * self._dt
        if self._watch_t:
            T, Tt, otp = ctx.temperature, self._t_target, ctx.otp
            rising = (Tt > otp) & (otp >= T)
            if np.count_nonzero(rising):
                gap = (Tt - T)[rising] / (Tt - otp)[rising]
                horizon = min(horizon, float(np.min(self._tau[rising] * np.log(gap))))
        return horizon

    def _step(self, dt: float) -> None:
        net, ctx = self._net, self._ctx
        changed = ctx.changed
        ctx.changed = False
        if self._slewing or changed:
            self._slewing = net.slew(dt)
        if self._n_bat:
            self._ocv_age += 1
            if changed or self._ocv_age >= self._ocv_every or dt > self.stepping.fine_step_s:
                self._set_ocv(dt)
        n_conv = self._n_conv
        houses = self._houses
        if n_conv:
            self._predict_injection(dt, extrapolate=not changed)
        if houses is not None:
            houses.begin(self._time, dt)
            if n_conv and self._resistive is None:  # constant power at the new voltage
                ratio = houses.v_ratio[self._conv_bat_node]
                guess = np.where(ratio != 1.0, self._inj_now * ratio, net.cur[LO, self._cpt])
                net.cur[LO:, self._cpt] = guess
        v_old = net.V
        self._vt_prev, self._i_prev = net.vt, net.i
        net.solve(dt, v_old)
        if n_conv or houses is not None:
            for _ in range(_INJECTION_PASSES):
                moved = self._update_injection() if n_conv else False
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
        self._check_trips()
        self._thermal_elapsed += dt
        if self._thermal_elapsed >= self.stepping.thermal_period_s:
            self._update_thermal(self._thermal_elapsed)

    def _set_ocv(self, dt: float) -> None:
        """Battery EMFs at the SoC expected half-way through the coming step (midpoint rule).

        Speed trick (OCV refresh skip): during runs of fine steps the EMFs are refreshed only
        every few steps, as long as no SoC moves by more than a millionth in between; the
        energy bookkeeping always uses the EMF the solve used, so it stays exact. Measured by
        ``benchmarks/plant_tricks.py``: without it 4 % (19-port day) to 12 % (household day,
        1000 ports) more CPU.
        """
        ctx, net = self._ctx, self._net
        self._ocv_age = 0
        speed = float(np.max(np.abs(ctx.bat_soc_rate) / ctx.bat_capacity_j, initial=0.0))
        per_step = speed * self.stepping.fine_step_s
        self._ocv_every = (
            max(1, min(_OCV_REFRESH, int(_OCV_DSOC / per_step))) if per_step else _OCV_REFRESH
        )
        soc = ctx.bat_energy_j + (0.5 * dt) * ctx.bat_soc_rate
        soc /= ctx.bat_capacity_j
        if len(self._bat_groups) == 1:
            g = self._bat_groups[0]
            ocv = np.interp(soc, g.socs, g.volts)
        else:
            ocv = np.empty_like(soc)
            for g in self._bat_groups:
                ocv[g.members] = np.interp(soc[g.members], g.socs, g.volts)
        ctx.bat_ocv = ocv
        net.cur[EMF, self._bt] = ocv

    def _predict_injection(self, dt: float, *, extrapolate: bool) -> None:
        """Guess each converter's battery-side current for the coming step.

        Speed trick (injection extrapolation): quadratic extrapolation over equal steps,
        linear otherwise; a good guess means the step needs no second solve (the guess is
        checked after the solve either way). Measured by ``benchmarks/plant_tricks.py``:
        without it (last step's value as the guess) 22 % (19-port day) and 40 % (1000 ports)
        more CPU.
        """
        now = self._inj_now
        if not extrapolate:
            self._inj_hist = 0
            guess = now
        elif self._inj_hist >= 2 and dt == self._dt == self._dt_prev:
            guess = now - self._inj_prev
            guess *= 3.0
            guess += self._inj_prev2
        elif self._inj_hist >= 1:
            guess = now - self._inj_prev
            # Each solved value belongs to the middle of its step (midpoint EMFs).
            guess *= min((dt + self._dt) / (self._dt + self._dt_prev), 8.0)
            guess += now
        else:
            guess = now
        self._inj_prev2 = self._inj_prev
        self._inj_prev = now
        self._inj_hist += 1
        res = self._resistive
        if res is None:
            self._net.cur[LO:, self._cpt] = guess
        else:
            self._net.cur[LO, self._cpt] = np.where(res, -UNCLAMPED_A, guess)
            self._net.cur[HI, self._cpt] = np.where(res, UNCLAMPED_A, guess)

    def _update_injection(self) -> bool:
        """Battery-side current = -(grid power + loss) / battery voltage; True if it moved.

        Below ``min_battery_v`` a converter drawing power behaves as the conductance
        ``P / min_battery_v**2`` (solved implicitly, so a dead battery node decays stably).
        """
        net, ctx = self._net, self._ctx
        pg = net.vt[self._cb] * net.i[self._cb]
        power = ctx.conv_p0
        if self._conv_has_fraction:
            power = power + ctx.conv_kf * np.abs(pg)
        ctx.conv_loss = power
        power = power + pg
        vb = net.V[self._conv_bat_node]
        low = vb < self._conv_vmin
        if self._resistive is not None or low.any():
            return self._update_injection_resistive(power, vb, low)
        vf = np.maximum(vb, self._conv_vmin)
        inj = power * vb
        inj /= vf * vf
        np.negative(inj, out=inj)
        self._inj_now = inj
        return self._accept_injection(inj, inj, None)

    def _update_injection_resistive(
        self, power: FloatArray, vb: FloatArray, low: BoolArray
    ) -> bool:
        vmin = self._conv_vmin
        res = low & (power > 0)
        g = np.where(res, power / (vmin * vmin), 0.0)
        vf = np.maximum(vb, vmin)
        inj = np.where(res, -g * vb, -power * vb / (vf * vf))
        self._inj_now = inj
        clamp = np.where(res, UNCLAMPED_A, inj)
        moved = self._accept_injection(inj, clamp, (g, res))
        self._resistive = res if res.any() else None
        return moved

    def _accept_injection(
        self,
        expected: FloatArray,
        clamp: FloatArray,
        resistive: tuple[FloatArray, BoolArray] | None,
    ) -> bool:
        """Write the new battery-side characteristic if it moved beyond the tolerance."""
        net = self._net
        diff = expected - net.i[self._cpt]
        mismatch = max(float(diff.max()), -float(diff.min()))
        if mismatch <= _INJECTION_RTOL or mismatch <= _INJECTION_RTOL * (
            1.0 + float(np.abs(expected).max())
        ):
            return False
        if resistive is None:
            net.cur[LO:, self._cpt] = clamp
            return True
        g, res = resistive
        net.g[self._cpt] = g
        net.geff[self._cpt] = g
        net.cur[EMF, self._cpt] = 0.0
        net.cur[HI, self._cpt] = clamp
        net.cur[LO, self._cpt] = np.where(res, -UNCLAMPED_A, clamp)
        return True

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

    # -- trips and heat -------------------------------------------------------------------

    def _check_trips(self) -> None:
        net, ctx = self._net, self._ctx
        if ctx.levels_changed:
            self._refresh_watch()
        vt, i = net.vt, net.i
        hits = 0
        if self._watch_v:
            hits += int(np.count_nonzero(vt > ctx.ovp)) + int(np.count_nonzero(vt < ctx.uvlo))
        if self._watch_i:
            hits += int(np.count_nonzero(np.abs(i) > self._ocp_levels(i)))
        if hits:
            self._fire_trips()
        if self._n_bat:
            e = ctx.bat_energy_j
            if np.count_nonzero(e <= self._bat_emin) or np.count_nonzero(e >= self._bat_emax):
                self._battery_limits()

    def _ocp_levels(self, i: FloatArray) -> FloatArray:
        """Each terminal's over-current level for the direction its current flows in."""
        ctx = self._ctx
        return np.where(i < 0, ctx.ocp_sink, ctx.ocp)

    def _refresh_watch(self) -> None:
        """Note which kinds of trip level are set anywhere (skip the checks otherwise).

        Speed trick (watch flags): measured by ``benchmarks/plant_tricks.py``, checking every
        kind every step costs 3 % (the days) to 10 % (1000 ports) more CPU.
        """
        ctx = self._ctx
        ctx.levels_changed = False
        self._watch_v = bool(np.isfinite(ctx.ovp).any() or np.isfinite(ctx.uvlo).any())
        self._watch_i = bool(np.isfinite(ctx.ocp).any() or np.isfinite(ctx.ocp_sink).any())
        self._watch_t = bool(np.isfinite(ctx.otp).any())

    def _fire_trips(self) -> None:
        net, ctx = self._net, self._ctx
        vt, i = net.vt, net.i
        over_v = vt > ctx.ovp
        under_v = vt < ctx.uvlo
        ocp = self._ocp_levels(i)
        over_i = np.abs(i) > ocp
        for t in np.flatnonzero(over_v | under_v | over_i):
            handle = self._by_terminal[t]
            for kind, hit, level, value in (
                (TripKind.OVP, over_v[t], ctx.ovp[t], vt[t]),
                (TripKind.UVLO, under_v[t], ctx.uvlo[t], vt[t]),
                (TripKind.OCP, over_i[t], ocp[t], abs(i[t])),
            ):
                if hit and kind not in handle.trips:
                    log.info("%s: %s trip at %.6g (level %.6g)", handle.name, kind, value, level)
                    handle._latch(kind, value=float(value), level=float(level))

    def _battery_limits(self) -> None:
        """BMS cut-off: a battery at its SoC limit and still moving past it disconnects."""
        ctx = self._ctx
        e = ctx.bat_energy_j
        np.minimum(np.maximum(e, 0.0, out=e), ctx.bat_capacity_j, out=e)
        low, high = e <= self._bat_emin, e >= self._bat_emax
        for b in np.flatnonzero(low | high):
            handle = self._by_terminal[self._bt.start + b]
            assert isinstance(handle, BatteryHandle)
            rate = ctx.bat_soc_rate[b]
            if low[b] and rate < 0 and TripKind.UVLO not in handle.trips:
                handle._latch(TripKind.UVLO, value=handle.soc, level=handle.spec.soc_min)
            elif high[b] and rate > 0 and TripKind.OVP not in handle.trips:
                handle._latch(TripKind.OVP, value=handle.soc, level=handle.spec.soc_max)

    def _update_thermal(self, elapsed: float) -> None:
        """First-order temperatures toward ambient + k x heat, exact for constant heat."""
        net, ctx = self._net, self._ctx
        p = net.vt * net.i
        heat_t = self._k_abs * np.abs(p) + self._k_sink * np.maximum(-p, 0.0)
        heat_t += self._k_i2r * net.i * net.i
        heat = cast(FloatArray, np.bincount(net.port, heat_t, len(self._port_specs)))
        if self._n_conv:
            heat[self._conv_port] += ctx.conv_loss
        target = self._amb + self._kpw * heat
        self._t_target = target
        if elapsed > 0:
            ctx.temperature = target + (ctx.temperature - target) * np.exp(-elapsed / self._tau)
        self._thermal_elapsed = 0.0
        hot = ctx.temperature > ctx.otp
        if hot.any():
            for p_idx in np.flatnonzero(hot):
                handle = self._handle_list[p_idx]
                if TripKind.OTP not in handle.trips:
                    handle._latch(
                        TripKind.OTP,
                        value=float(ctx.temperature[p_idx]),
                        level=float(ctx.otp[p_idx]),
                    )
