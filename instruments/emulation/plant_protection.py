"""Protection trips: OVP, UVLO and OCP per terminal, and how far ahead the next one lies.

Every terminal carries its trip levels in the plant context (infinite when unset). After each
step the terminals past a level latch the matching trip on their port; before each step the
trip horizon holds the step short enough that a drifting voltage, current or temperature
approaches its level in ever smaller steps instead of jumping over it (``docs/plant.md``,
protection).
"""

from __future__ import annotations

import logging
import math

import numpy as np

from instruments.emulation.plant_network import FloatArray, Network
from instruments.emulation.plant_ports import PlantContext, PortHandle
from instruments.emulation.plant_specs import TripKind
from instruments.emulation.plant_thermal import Thermal
from instruments.emulation.plant_tolerances import TINY

log = logging.getLogger("instruments.emulation.plant")
"""The plant's logger, as before the trips had a module of their own (log filters keep working)."""


class TripMonitor:
    """Trip checks over every terminal; ``by_terminal`` is the port handle of each terminal.

    ``note_step_start`` keeps the terminal voltages and currents of the step before, from
    which :meth:`horizon` takes the drift rates.
    """

    def __init__(self, net: Network, ctx: PlantContext, by_terminal: list[PortHandle]) -> None:
        self._net, self._ctx, self._by_terminal = net, ctx, by_terminal
        self._watch_v = self._watch_i = self._watch_t = True
        self._vt_prev, self._i_prev = net.vt, net.i

    def note_step_start(self) -> None:
        """Remember the terminal voltages and currents before the coming solve."""
        self._vt_prev, self._i_prev = self._net.vt, self._net.i

    def horizon(self, dt_last: float, thermal: Thermal) -> float:
        """Time until a drifting voltage, current or temperature would reach its trip level.

        Rates come from the last step (``dt_last`` long); the step is held to half the time
        left, so a trip is approached in ever smaller steps rather than jumped over. A solved
        state stands for the middle of its step (midpoint battery EMFs), so half the last
        change is taken off each margin first.

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
            d += TINY
            margin /= d
            steps = float(margin.min())
        if self._watch_i:
            a = np.abs(net.i)
            d = a - np.abs(self._i_prev)
            margin = np.where(d > 0, self.ocp_levels(net.i) - a, np.inf)
            margin[margin < 0] = np.inf
            np.maximum(d, 0.0, out=d)
            margin -= 0.5 * d
            d += TINY
            margin /= d
            steps = min(steps, float(margin.min()))
        horizon = 0.5 * max(steps, 0.0) * dt_last
        if self._watch_t:
            T, Tt, otp = ctx.temperature, thermal.target, ctx.otp
            rising = (Tt > otp) & (otp >= T)
            if np.count_nonzero(rising):
                gap = (Tt - T)[rising] / (Tt - otp)[rising]
                horizon = min(horizon, float(np.min(thermal.tau[rising] * np.log(gap))))
        return horizon

    def check(self) -> None:
        """Latch every trip whose level the state just solved is past."""
        net, ctx = self._net, self._ctx
        if ctx.levels_changed:
            self._refresh_watch()
        vt, i = net.vt, net.i
        hits = 0
        if self._watch_v:
            hits += int(np.count_nonzero(vt > ctx.ovp)) + int(np.count_nonzero(vt < ctx.uvlo))
        if self._watch_i:
            hits += int(np.count_nonzero(np.abs(i) > self.ocp_levels(i)))
        if hits:
            self._fire()

    def ocp_levels(self, i: FloatArray) -> FloatArray:
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

    def _fire(self) -> None:
        net, ctx = self._net, self._ctx
        vt, i = net.vt, net.i
        over_v = vt > ctx.ovp
        under_v = vt < ctx.uvlo
        ocp = self.ocp_levels(i)
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
