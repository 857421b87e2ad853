"""The plant's batteries as one bank: EMFs from SoC, SoC step limits and the BMS cut-off.

Every battery is one terminal in a contiguous slice of the network, so the bank works on
arrays: one ``np.interp`` per OCV table per step for the EMFs, one pass for the SoC limits
(``docs/plant.md``, batteries and stepping).
"""

from __future__ import annotations

import math

import numpy as np

from instruments.emulation.battery import OcvCurve
from instruments.emulation.plant_households import HouseholdCoupling
from instruments.emulation.plant_network import EMF, Network
from instruments.emulation.plant_ports import BatteryHandle, PlantContext, PortHandle
from instruments.emulation.plant_specs import BatterySpec, TripKind
from instruments.emulation.plant_stepping import Stepping
from instruments.emulation.plant_tolerances import SOC_BAND, TINY

_OCV_REFRESH = 16
_OCV_DSOC = 1e-6


class _BatteryGroup:
    """Batteries sharing one OCV table: one ``np.interp`` call per step for all of them."""

    def __init__(self, curve: OcvCurve, members: list[int]) -> None:
        self.members = np.array(members, dtype=np.intp)
        self.socs = curve.socs
        self.volts = curve.volts


class BatteryBank:
    """Every battery of a plant: terminals ``bt``, SoC limits as energies, OCV groups.

    ``emin``/``emax`` are the SoC limits (one SoC band inside, in J) at which the BMS
    disconnects a battery still moving past them; ``dsoc_j`` is the largest SoC change one
    step may make (``Stepping.max_dsoc``).
    """

    def __init__(
        self,
        net: Network,
        ctx: PlantContext,
        specs: list[BatterySpec],
        bt: slice,
        stepping: Stepping,
    ) -> None:
        self._net, self._ctx, self._stepping = net, ctx, stepping
        self.n = len(specs)
        self.bt = bt
        cap = ctx.bat_capacity_j
        self.emin = np.array([s.soc_min for s in specs]) * cap + SOC_BAND * cap
        self.emax = np.array([s.soc_max for s in specs]) * cap - SOC_BAND * cap
        self.dsoc_j = stepping.max_dsoc * cap
        groups: dict[OcvCurve, list[int]] = {}
        for b, s in enumerate(specs):
            groups.setdefault(s.ocv, []).append(b)
        self._groups = [_BatteryGroup(curve, members) for curve, members in groups.items()]
        self._ocv_age = 0
        self._ocv_every = 1

    def refresh_ocv(self, dt: float, *, changed: bool) -> None:
        """Set the EMFs for the coming step if they are due (see :meth:`set_ocv`)."""
        self._ocv_age += 1
        if changed or self._ocv_age >= self._ocv_every or dt > self._stepping.fine_step_s:
            self.set_ocv(dt)

    def set_ocv(self, dt: float) -> None:
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
        per_step = speed * self._stepping.fine_step_s
        self._ocv_every = (
            max(1, min(_OCV_REFRESH, int(_OCV_DSOC / per_step))) if per_step else _OCV_REFRESH
        )
        soc = ctx.bat_energy_j + (0.5 * dt) * ctx.bat_soc_rate
        soc /= ctx.bat_capacity_j
        if len(self._groups) == 1:
            g = self._groups[0]
            ocv = np.interp(soc, g.socs, g.volts)
        else:
            ocv = np.empty_like(soc)
            for g in self._groups:
                ocv[g.members] = np.interp(soc[g.members], g.socs, g.volts)
        ctx.bat_ocv = ocv
        net.cur[EMF, self.bt] = ocv

    def horizon(self, houses: HouseholdCoupling | None, time: float) -> float:
        """Longest step that keeps SoC steps small and does not jump a SoC limit."""
        if not self.n:
            return math.inf
        ctx = self._ctx
        rate = ctx.bat_soc_rate
        e = ctx.bat_energy_j
        if houses is None:
            room = np.where(rate < 0, e - self.emin, self.emax - e)
        else:
            # The coming segment's household power, and the household thresholds ahead.
            hb = houses.b
            rate = rate.copy()
            rate[hb] += houses.rate_change(time)
            lower, upper = self.emin.copy(), self.emax.copy()
            eh = e[hb]
            lower[hb] = np.where(eh > houses.res_j, houses.res_j, lower[hb])
            upper[hb] = np.where(eh < houses.full_j, houses.full_j, upper[hb])
            room = np.where(rate < 0, e - lower, upper - e)
        room[rate == 0] = np.inf
        np.minimum(room, self.dsoc_j, out=room)
        np.maximum(room, 0.0, out=room)
        speed = np.abs(rate)
        speed += TINY
        room /= speed
        return float(room.min())

    def check_limits(self, by_terminal: list[PortHandle]) -> None:
        """BMS cut-off: a battery at its SoC limit and still moving past it disconnects."""
        if not self.n:
            return
        ctx = self._ctx
        e = ctx.bat_energy_j
        if not (np.count_nonzero(e <= self.emin) or np.count_nonzero(e >= self.emax)):
            return
        np.minimum(np.maximum(e, 0.0, out=e), ctx.bat_capacity_j, out=e)
        low, high = e <= self.emin, e >= self.emax
        for b in np.flatnonzero(low | high):
            handle = by_terminal[self.bt.start + b]
            assert isinstance(handle, BatteryHandle)
            rate = ctx.bat_soc_rate[b]
            if low[b] and rate < 0 and TripKind.UVLO not in handle.trips:
                handle._latch(TripKind.UVLO, value=handle.soc, level=handle.spec.soc_min)
            elif high[b] and rate > 0 and TripKind.OVP not in handle.trips:
                handle._latch(TripKind.OVP, value=handle.soc, level=handle.spec.soc_max)
