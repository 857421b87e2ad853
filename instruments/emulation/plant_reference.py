"""A slow, plain, fixed-step reference integrator for the simulated plant.

:class:`ReferencePlant` is a :class:`~instruments.emulation.plant.Plant` (same specs, same port
handles turning settings into terminal characteristics, same initial operating point) whose
:meth:`ReferencePlant.advance` integrates with none of the fast plant's speed tricks: a fixed
small step, every slew, battery EMF, converter and household current recomputed every step,
each node solved on its own by locating the root of its piecewise-linear current balance
between sorted breakpoints (not the fast plant's active-set Newton), the constant-power
terminals by a plain fixed point iterated to convergence, and trips checked every step. It is
written to be read against ``docs/plant.md``; the property test
``tests/test_plant_reference.py`` checks that the fast plant agrees with it.

Physics as in ``docs/plant.md`` (implicit Euler on each node's capacitor). Differences that
only vanish as the reference step shrinks: battery EMFs are taken at the step's starting SoC
(the fast plant uses the midpoint), temperatures are updated every step (the fast plant every
``thermal_period_s``), and trips fire at the end of the first step past their level.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from instruments.emulation.plant import (
    BatteryHandle,
    BatterySpec,
    NodeSpec,
    Plant,
    PortSpec,
    Stepping,
    TripKind,
)
from instruments.emulation.plant_network import EMF, HI, LO, FloatArray
from instruments.emulation.plant_ports import profile_segment

FIXED_POINT_RTOL = 1e-10
"""Converter and household currents are iterated until they move less than this (relative)."""

FIXED_POINT_ROUNDS = 200

HOUSE_BIAS_A = 2e-3
"""A household at its battery's reserve (full) holds the battery at this small discharge
(charge) current, as the fast plant does (``docs/plant.md``, households)."""

HOUSE_VFLOOR = 1.0
"""Constant-power terminals use at least this voltage (V) in ``i = P / V``, as the fast plant."""


@dataclass(frozen=True)
class _HouseStep:
    """Every household over one step: profile powers (W), the limits of the power it delivers
    into its battery node (W) and its mode (0 normal, 1 reserve, 2 full, 3 isolated)."""

    pv: FloatArray
    load: FloatArray
    net_p: FloatArray
    p_lo: FloatArray
    p_hi: FloatArray
    mode: npt.NDArray[np.int_]


class ReferenceDiverged(ArithmeticError):
    """The plain fixed point found no step solution: a converter keeps drawing constant power
    from a battery node nobody holds, so the node collapses within the step. The fast plant
    steps through such a collapse with a bounded number of corrections; the reference does not
    pretend to integrate it."""


class ReferencePlant(Plant):
    """The plant integrated by the plain fixed-step method described in the module docstring.

    ``dt_s`` is the fixed step (s). Everything but :meth:`advance` is the fast plant's.
    """

    def __init__(
        self,
        nodes: Sequence[NodeSpec],
        ports: Sequence[PortSpec],
        *,
        dt_s: float = 1e-3,
        seed: int = 0,
        start_of_day_s: float = 0.0,
    ) -> None:
        super().__init__(
            nodes,
            ports,
            seed=seed,
            stepping=Stepping(fine_step_s=dt_s, max_step_s=dt_s, fixed_step_s=dt_s),
            start_of_day_s=start_of_day_s,
        )
        self.dt_s = dt_s

    def advance(self, seconds: float, *, max_step: float | None = None) -> float:
        """Simulate ``seconds`` more in fixed steps of ``dt_s`` (the last one shorter)."""
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"reference plant: seconds must be finite and >= 0, got {seconds!r}")
        t_end = self._time + seconds
        sliver = 1e-9 * max(1.0, abs(t_end))
        while t_end - self._time > sliver:
            self._reference_step(min(self.dt_s, t_end - self._time))
        self._time = t_end
        self._ctx.time = t_end
        return t_end

    # -- one step -------------------------------------------------------------------------

    def _reference_step(self, dt: float) -> None:
        net = self._net
        self._slew_all(dt)
        self._battery_emfs()
        v_old = net.V.copy()
        E, g, lo, hi = net.cur[EMF].copy(), net.geff.copy(), net.cur[LO].copy(), net.cur[HI].copy()
        house_power = self._household_power(dt)
        inj = net.i.copy()
        for _ in range(FIXED_POINT_ROUNDS):
            self._write_injections(inj, g, lo, hi)
            V = self._solve_nodes(E, g, lo, hi, v_old, dt)
            i = np.clip(g * (E - V[net.node]), lo, hi)
            new = self._injections(i, V, house_power, E, g, lo, hi, v_old, dt)
            settled = np.abs(new - inj) <= FIXED_POINT_RTOL * (1.0 + np.abs(new))
            inj = new
            if settled.all():
                break
        else:
            raise ReferenceDiverged(
                f"reference plant: constant-power currents did not settle at t={self._time:.6g} s "
                "(a converter drawing power from a node its battery no longer holds)"
            )
        self._store(V, E, g, lo, hi)
        self._count_energy(dt, house_power)
        self._time += dt
        self._ctx.time = self._time
        self._steps += 1
        self._check_trips_plainly()
        self._update_thermal(dt)

    def _slew_all(self, dt: float) -> None:
        """Every slewed terminal's (E, lo, hi) moves toward its target by at most rate x dt."""
        net = self._net
        s = slice(0, net.n_slewed)
        step = net.rate[:, s] * dt
        net.cur[:, s] += np.clip(net.tgt[:, s] - net.cur[:, s], -step, step)

    def _battery_emfs(self) -> None:
        """Each connected battery's EMF: its OCV curve at the SoC at the start of the step."""
        ctx, net = self._ctx, self._net
        for handle in self._handle_list:
            if isinstance(handle, BatteryHandle):
                b = handle._b
                spec: BatterySpec = handle.spec
                ocv = spec.ocv(min(max(handle.soc, 0.0), 1.0))
                ctx.bat_ocv[b] = ocv
                net.cur[EMF, self._bt.start + b] = ocv

    # -- the node solve -------------------------------------------------------------------

    def _solve_nodes(
        self,
        E: FloatArray,
        g: FloatArray,
        lo: FloatArray,
        hi: FloatArray,
        v_old: FloatArray,
        dt: float,
    ) -> FloatArray:
        """Each node's voltage: the root of sum_t i_t(V) - C (V - V_old) / dt - gb V = 0."""
        net = self._net
        V = np.empty(net.n_nodes)
        for k in range(net.n_nodes):
            on_k = np.flatnonzero(net.node == k).tolist()
            terminals = [(float(E[t]), float(g[t]), float(lo[t]), float(hi[t])) for t in on_k]
            V[k] = _node_root(terminals, net.cap[k] / dt, net.gb[k], float(v_old[k]))
        return V

    # -- converter battery sides and households (constant power) --------------------------

    def _household_power(self, dt: float) -> _HouseStep | None:
        """Each household's profile powers, power limits and mode for this step, or None."""
        houses = self._houses
        if houses is None:
            return None
        ctx = self._ctx
        k = profile_segment(
            self.start_of_day_s + self._time + 0.5 * dt, houses.res_s, houses.segments
        )
        pv, load = houses.pv[:, k], houses.load[:, k]
        net_p = pv - load
        e, on = ctx.bat_energy_j[houses.b], ctx.bat_on[houses.b]
        reserve = on & (e <= houses.res_j)
        full = on & (e >= houses.full_j) & ~reserve
        lo = np.where(full, np.minimum(net_p, 0.0), net_p)
        hi = np.where(reserve, np.maximum(net_p, 0.0), net_p)
        lo[~on] = hi[~on] = 0.0
        mode = np.select([~on, full, reserve], [3, 2, 1], 0)
        return _HouseStep(pv=pv, load=load, net_p=net_p, p_lo=lo, p_hi=hi, mode=mode)

    def _injections(
        self,
        i: FloatArray,
        V: FloatArray,
        house: _HouseStep | None,
        E: FloatArray,
        g: FloatArray,
        lo: FloatArray,
        hi: FloatArray,
        v_old: FloatArray,
        dt: float,
    ) -> FloatArray:
        """Next guess of every terminal's current; converter battery sides and households
        recomputed from the state just solved, the others as solved."""
        net, ctx = self._net, self._ctx
        new = i.copy()
        if self._n_conv:
            i_cb = i[self._cb]
            pg = (V[net.node[self._cb]] + i_cb * net.r[self._cb]) * i_cb
            loss = ctx.conv_p0 + ctx.conv_kf * np.abs(pg)
            vb = V[self._conv_bat_node]
            # Below min_battery_v a converter drawing power is the conductance P / vmin^2.
            new[self._cpt] = -(pg + loss) * vb / np.maximum(vb, self._conv_vmin) ** 2
        houses = self._houses
        if houses is not None and house is not None:
            p_lo, p_hi, mode = house.p_lo, house.p_hi, house.mode
            ht = houses.ht
            vh = np.maximum(V[houses.node], HOUSE_VFLOOR)
            current = p_lo / vh
            for h in np.flatnonzero((mode == 1) | (mode == 2)):
                if p_hi[h] <= p_lo[h]:
                    continue
                current[h] = self._house_hold_current(int(h), E, g, lo, hi, v_old, dt)
                current[h] = min(max(current[h], p_lo[h] / vh[h]), p_hi[h] / vh[h])
            new[ht] = current
        return new

    def _house_hold_current(
        self,
        h: int,
        E: FloatArray,
        g: FloatArray,
        lo: FloatArray,
        hi: FloatArray,
        v_old: FloatArray,
        dt: float,
    ) -> float:
        """The household current that leaves the battery at its small bias current: the node
        voltage that gives that battery current, and the balance of the other terminals there."""
        houses = self._houses
        assert houses is not None
        net, ctx = self._net, self._ctx
        bt, t_h = int(houses.bt[h]), houses.ht.start + h
        k = int(houses.node[h])
        reserve = ctx.bat_energy_j[houses.b[h]] <= houses.res_j[h]
        bias = HOUSE_BIAS_A if reserve else -HOUSE_BIAS_A
        v_star = max(E[bt] - bias / max(g[bt], 1e-200), HOUSE_VFLOOR)
        others = (net.node == k) & (np.arange(len(g)) != t_h)
        into = float(np.clip(g[others] * (E[others] - v_star), lo[others], hi[others]).sum())
        return float(net.cap[k] / dt * (v_star - v_old[k]) + net.gb[k] * v_star - into)

    def _write_injections(
        self, inj: FloatArray, g: FloatArray, lo: FloatArray, hi: FloatArray
    ) -> None:
        """Constant-power terminals as fixed currents for the next node solve."""
        if self._n_conv:
            g[self._cpt] = 0.0
            lo[self._cpt] = hi[self._cpt] = inj[self._cpt]
        if self._houses is not None:
            ht = self._houses.ht
            g[ht] = 0.0
            lo[ht] = hi[ht] = inj[ht]

    # -- results and bookkeeping ----------------------------------------------------------

    def _store(
        self, V: FloatArray, E: FloatArray, g: FloatArray, lo: FloatArray, hi: FloatArray
    ) -> None:
        net = self._net
        vn = V[net.node]
        u = g * (E - vn)
        i = np.clip(u, lo, hi)
        net.V, net.vn, net.i = V, vn, i
        net.at_lo = u <= lo
        net.act = (u < hi) & ~net.at_lo
        net.vt = vn + i * net.r
        if self._n_conv:
            net.cur[LO, self._cpt] = net.cur[HI, self._cpt] = i[self._cpt]
        if self._houses is not None:
            net.cur[LO, self._houses.ht] = net.cur[HI, self._houses.ht] = i[self._houses.ht]

    def _count_energy(self, dt: float, house: _HouseStep | None) -> None:
        net, ctx = self._net, self._ctx
        ctx.energy_j += net.vt * net.i * dt
        if self._n_conv:
            pg = net.vt[self._cb] * net.i[self._cb]
            ctx.conv_loss = ctx.conv_p0 + ctx.conv_kf * np.abs(pg)
            ctx.conv_loss_j += ctx.conv_loss * dt
        if self._n_bat:
            ib = net.i[self._bt]
            ctx.bat_energy_j -= ctx.bat_ocv * ib * dt
            ctx.bat_i2t += ib * ib * dt
            ctx.bat_soc_rate = -ctx.bat_ocv * ib
        houses = self._houses
        if houses is not None and house is not None:
            pv, load, net_p, mode = house.pv, house.load, house.net_p, house.mode
            p = net.vt[houses.ht] * net.i[houses.ht]
            reserve_like = (mode == 1) | (mode == 3)
            full_like = (mode == 2) | (mode == 3)
            utility = np.where(reserve_like, np.clip(p - net_p, 0.0, np.maximum(-net_p, 0.0)), 0.0)
            wasted = np.where(full_like, np.clip(net_p - p, 0.0, np.maximum(net_p, 0.0)), 0.0)
            ctx.house_pv_j += pv * dt
            ctx.house_load_j += load * dt
            ctx.house_used_j += (pv - wasted) * dt
            ctx.house_wasted_j += wasted * dt
            ctx.house_utility_j += utility * dt
            ctx.house_mode[:] = mode.astype(np.int8)

    def _check_trips_plainly(self) -> None:
        """Every terminal against its levels, every battery against its SoC limits."""
        net, ctx = self._net, self._ctx
        for t, handle in enumerate(self._by_terminal):
            v, i = float(net.vt[t]), float(net.i[t])
            ocp = float(ctx.ocp_sink[t] if i < 0 else ctx.ocp[t])
            for kind, hit, level, value in (
                (TripKind.OVP, v > ctx.ovp[t], ctx.ovp[t], v),
                (TripKind.UVLO, v < ctx.uvlo[t], ctx.uvlo[t], v),
                (TripKind.OCP, abs(i) > ocp, ocp, abs(i)),
            ):
                if hit and kind not in handle.trips:
                    handle._latch(kind, value=value, level=float(level))
        e = ctx.bat_energy_j
        np.clip(e, 0.0, ctx.bat_capacity_j, out=e)
        for b in range(self._n_bat):
            handle = self._by_terminal[self._bt.start + b]
            assert isinstance(handle, BatteryHandle)
            rate = ctx.bat_soc_rate[b]
            if e[b] <= self._bat_emin[b] and rate < 0 and TripKind.UVLO not in handle.trips:
                handle._latch(TripKind.UVLO, value=handle.soc, level=handle.spec.soc_min)
            elif e[b] >= self._bat_emax[b] and rate > 0 and TripKind.OVP not in handle.trips:
                handle._latch(TripKind.OVP, value=handle.soc, level=handle.spec.soc_max)


def _node_root(
    terminals: list[tuple[float, float, float, float]], c_dt: float, gb: float, v_old: float
) -> float:
    """Root of ``f(V) = sum clip(g (E - V), lo, hi) - c_dt (V - v_old) - gb V``.

    ``terminals`` are the node's ``(E, g, lo, hi)``. ``f`` is continuous, piecewise linear and
    strictly decreasing (``c_dt > 0``), with kinks where a terminal reaches a clamp
    (``V = E - hi / g`` or ``E - lo / g``). Evaluate ``f`` at every kink in order, find the two
    neighbours it changes sign between, and solve the straight line there; below the lowest and
    above the highest kink ``f`` is a straight line too.
    """

    def f(v: float) -> float:
        into = sum(min(max(g * (e - v), lo), hi) for e, g, lo, hi in terminals)
        return into - c_dt * (v - v_old) - gb * v

    kinks = sorted(
        {v_old}
        | {e - hi / g for e, g, lo, hi in terminals if g > 0}
        | {e - lo / g for e, g, lo, hi in terminals if g > 0}
    )
    a, fa = kinks[0], f(kinks[0])
    if fa <= 0.0:  # at or below the lowest kink: the line through it and 1 V below
        return a if fa == 0.0 else a - fa / (fa - f(a - 1.0))
    for b in kinks[1:]:
        fb = f(b)
        if fb <= 0.0:  # between kinks a and b
            return a + fa * (b - a) / (fa - fb)
        a, fa = b, fb
    return a + fa / (fa - f(a + 1.0))  # above the highest kink
