"""Household coupling: rooftop PV and a house load on a battery's node (``docs/plant.md``).

Every household of a plant sits on one battery as a constant-power terminal; its profiles
(:mod:`instruments.emulation.household`) are held as matrices so that a step costs a few numpy
calls for all of them, whatever their number. Steps never cross a profile segment edge.
"""

from __future__ import annotations

import math
from typing import cast

import numpy as np

from instruments.emulation.plant_network import EMF, LO, BoolArray, FloatArray, Network
from instruments.emulation.plant_ports import PlantContext, profile_segment
from instruments.emulation.plant_specs import HouseholdSpec
from instruments.emulation.plant_tolerances import INJECTION_RTOL, SOC_BAND, TINY
from instruments.errors import ConfigError

_HOUSE_HOLD_A = 2e-3
_HOUSE_HOLD_TOL_A = 1e-4
_HOUSE_VFLOOR = 1.0
_HOUSE_EDGE = 1e-9


class HouseholdCoupling:
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
        self.res_j = (np.array([s.reserve_soc for s in specs]) + SOC_BAND) * cap
        self.full_j = (np.array([s.full_soc for s in specs]) - SOC_BAND) * cap
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
            v_star = np.maximum(net.cur[EMF, bt] - self.eps / np.maximum(g_b, TINY), _HOUSE_VFLOOR)
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
            step = (i_b - self.eps) * den / np.maximum(g_b, TINY)
            i_hold = np.clip(i_now + step, i_lo, self.hi / vf)
            i_new = np.where(self.hold, i_hold, i_lo)
            tol = np.where(self.hold, _HOUSE_HOLD_TOL_A, INJECTION_RTOL * (1.0 + np.abs(i_new)))
        else:
            i_new = i_lo
            tol = INJECTION_RTOL * (1.0 + np.abs(i_new))
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
