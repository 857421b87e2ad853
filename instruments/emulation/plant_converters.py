"""The converters' battery sides: constant-power terminals solved by a checked fixed point.

A converter's bus side is an ordinary terminal; its battery side draws the grid power plus
the converter's loss from the battery node (``docs/plant.md``, converters). Each step the
battery-side current is predicted, the network solved, and the prediction checked against
``-(P_grid + loss) / V_b``; a miss writes the new current and the step solves again.
"""

from __future__ import annotations

import numpy as np

from instruments.emulation.plant_network import (
    EMF,
    HI,
    LO,
    UNCLAMPED_A,
    BoolArray,
    FloatArray,
    IntArray,
    Network,
)
from instruments.emulation.plant_ports import PlantContext
from instruments.emulation.plant_specs import ConverterSpec
from instruments.emulation.plant_tolerances import INJECTION_RTOL


class ConverterInjection:
    """Battery-side currents of every converter: prediction, check and low-voltage mode.

    ``cb`` are the converters' bus-side terminals, ``cpt`` their battery-side terminals,
    ``bat_node`` the battery node of each, ``vmin`` each one's ``min_battery_v``.
    ``resistive`` marks converters drawing below ``min_battery_v`` (None while there are
    none), whose battery side is then a conductance instead of a current.
    """

    def __init__(
        self,
        net: Network,
        ctx: PlantContext,
        specs: list[ConverterSpec],
        ports: list[int],
        cb: slice,
        cpt: slice,
    ) -> None:
        self._net, self._ctx = net, ctx
        self.n = len(specs)
        self.cb, self.cpt = cb, cpt
        self.bat_node = net.node[cpt].copy()
        self.port: IntArray = np.array(ports, dtype=np.intp)
        self.vmin = np.array([s.min_battery_v for s in specs], dtype=np.float64)
        self._has_fraction = any(
            s.losses.charge_fraction > 0 or s.losses.discharge_fraction > 0 for s in specs
        )
        self.resistive: BoolArray | None = None
        self.now = self._prev = self._prev2 = net.i[cpt]
        self._hist = 0

    def restart_history(self) -> None:
        """Take the present battery-side currents as the last solved ones."""
        self._prev = self.now = self._net.i[self.cpt]

    def predict(self, dt: float, dt_last: float, dt_before: float, *, extrapolate: bool) -> None:
        """Guess each converter's battery-side current for the coming step.

        ``dt_last`` and ``dt_before`` are the last two steps' lengths.

        Speed trick (injection extrapolation): quadratic extrapolation over equal steps,
        linear otherwise; a good guess means the step needs no second solve (the guess is
        checked after the solve either way). Measured by ``benchmarks/plant_tricks.py``:
        without it (last step's value as the guess) 22 % (19-port day) and 40 % (1000 ports)
        more CPU.
        """
        now = self.now
        if not extrapolate:
            self._hist = 0
            guess = now
        elif self._hist >= 2 and dt == dt_last == dt_before:
            guess = now - self._prev
            guess *= 3.0
            guess += self._prev2
        elif self._hist >= 1:
            guess = now - self._prev
            # Each solved value belongs to the middle of its step (midpoint EMFs).
            guess *= min((dt + dt_last) / (dt_last + dt_before), 8.0)
            guess += now
        else:
            guess = now
        self._prev2 = self._prev
        self._prev = now
        self._hist += 1
        res = self.resistive
        if res is None:
            self._net.cur[LO:, self.cpt] = guess
        else:
            self._net.cur[LO, self.cpt] = np.where(res, -UNCLAMPED_A, guess)
            self._net.cur[HI, self.cpt] = np.where(res, UNCLAMPED_A, guess)

    def update(self) -> bool:
        """Battery-side current = -(grid power + loss) / battery voltage; True if it moved.

        Below ``min_battery_v`` a converter drawing power behaves as the conductance
        ``P / min_battery_v**2`` (solved implicitly, so a dead battery node decays stably).
        """
        net, ctx = self._net, self._ctx
        pg = net.vt[self.cb] * net.i[self.cb]
        power = ctx.conv_p0
        if self._has_fraction:
            power = power + ctx.conv_kf * np.abs(pg)
        ctx.conv_loss = power
        power = power + pg
        vb = net.V[self.bat_node]
        low = vb < self.vmin
        if self.resistive is not None or low.any():
            return self._update_resistive(power, vb, low)
        vf = np.maximum(vb, self.vmin)
        inj = power * vb
        inj /= vf * vf
        np.negative(inj, out=inj)
        self.now = inj
        return self._accept(inj, inj, None)

    def _update_resistive(self, power: FloatArray, vb: FloatArray, low: BoolArray) -> bool:
        vmin = self.vmin
        res = low & (power > 0)
        g = np.where(res, power / (vmin * vmin), 0.0)
        vf = np.maximum(vb, vmin)
        inj = np.where(res, -g * vb, -power * vb / (vf * vf))
        self.now = inj
        clamp = np.where(res, UNCLAMPED_A, inj)
        moved = self._accept(inj, clamp, (g, res))
        self.resistive = res if res.any() else None
        return moved

    def _accept(
        self,
        expected: FloatArray,
        clamp: FloatArray,
        resistive: tuple[FloatArray, BoolArray] | None,
    ) -> bool:
        """Write the new battery-side characteristic if it moved beyond the tolerance."""
        net = self._net
        diff = expected - net.i[self.cpt]
        mismatch = max(float(diff.max()), -float(diff.min()))
        if mismatch <= INJECTION_RTOL or mismatch <= INJECTION_RTOL * (
            1.0 + float(np.abs(expected).max())
        ):
            return False
        if resistive is None:
            net.cur[LO:, self.cpt] = clamp
            return True
        g, res = resistive
        net.g[self.cpt] = g
        net.geff[self.cpt] = g
        net.cur[EMF, self.cpt] = 0.0
        net.cur[HI, self.cpt] = clamp
        net.cur[LO, self.cpt] = np.where(res, -UNCLAMPED_A, clamp)
        return True
