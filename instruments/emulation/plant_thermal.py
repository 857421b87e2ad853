"""Port temperatures: first-order heating toward ambient plus heat, and the OTP trip.

Each port's heat is a few per-terminal coefficients (``heat_coefficients``: a share of the
power it handles, of the power it sinks, and I²R) plus a converter's losses; its temperature
follows ``ambient + kelvin_per_watt x heat`` with its ``time_constant_s``
(``docs/plant.md``, thermal). Updated every ``Stepping.thermal_period_s``, not every step.
"""

from __future__ import annotations

from typing import cast

import numpy as np

from instruments.emulation.plant_network import FloatArray, IntArray, Network
from instruments.emulation.plant_ports import PlantContext, PortHandle, heat_coefficients
from instruments.emulation.plant_specs import PortSpec, TripKind


class Thermal:
    """Temperatures of every port; ``target`` is where each is heading under the last heat.

    ``conv_port`` and ``conv_loss`` add the converters' losses to their ports' heat;
    ``quiet`` are terminals that heat nothing (households: their heat is the house's).
    """

    def __init__(
        self,
        net: Network,
        ctx: PlantContext,
        specs: list[PortSpec],
        handles: list[PortHandle],
        conv_port: IntArray | None,
        quiet: slice | None,
    ) -> None:
        self._net, self._ctx, self._handles = net, ctx, handles
        self._n_ports = len(specs)
        self._conv_port = conv_port
        thermal = [s.thermal for s in specs]
        self._amb = np.array([th.ambient_c for th in thermal])
        self.tau = np.array([th.time_constant_s for th in thermal])
        self._kpw = np.array([th.kelvin_per_watt for th in thermal])
        coeffs = np.array(
            [heat_coefficients(specs[p]) for p in net.port], dtype=np.float64
        ).reshape(-1, 3)
        self._k_abs, self._k_sink, self._k_i2r = coeffs.T.copy()
        if quiet is not None:
            self._k_abs[quiet] = self._k_sink[quiet] = self._k_i2r[quiet] = 0.0
        ctx.temperature[:] = self._amb
        self.target = self._amb.copy()
        self.elapsed = 0.0

    def update(self, elapsed: float) -> None:
        """First-order temperatures toward ambient + k x heat, exact for constant heat."""
        net, ctx = self._net, self._ctx
        p = net.vt * net.i
        heat_t = self._k_abs * np.abs(p) + self._k_sink * np.maximum(-p, 0.0)
        heat_t += self._k_i2r * net.i * net.i
        heat = cast(FloatArray, np.bincount(net.port, heat_t, self._n_ports))
        if self._conv_port is not None:
            heat[self._conv_port] += ctx.conv_loss
        target = self._amb + self._kpw * heat
        self.target = target
        if elapsed > 0:
            ctx.temperature = target + (ctx.temperature - target) * np.exp(-elapsed / self.tau)
        self.elapsed = 0.0
        hot = ctx.temperature > ctx.otp
        if hot.any():
            for p_idx in np.flatnonzero(hot):
                handle = self._handles[p_idx]
                if TripKind.OTP not in handle.trips:
                    handle._latch(
                        TripKind.OTP,
                        value=float(ctx.temperature[p_idx]),
                        level=float(ctx.otp[p_idx]),
                    )
