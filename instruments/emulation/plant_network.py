"""The plant's electrical network as numpy arrays, and its vectorised node solver.

Every port is one or two *terminals*; each terminal sits on one node and has the same
characteristic shape, a conductance toward an EMF with current clamps::

    i = clip(geff * (E - V_node), lo, hi)        (current INTO the node, + = sourcing)

with ``geff = g / (1 + g R_line)`` folding the line resistance in. Each node has a capacitance
``C`` and a bleed conductance ``gb``; one implicit-Euler step solves, for every node at once,

    sum_t i_t(V) - C (V - V_old) / dt - gb V = 0,

a piecewise-linear, strictly decreasing function of ``V`` with exactly one root. The fast path
is an active-set Newton iteration (exact once the set of clamped terminals stops changing,
usually after one pass from the previous step's set); if that does not settle, a bracketed
Newton/bisection solve finishes the job. ``E``, ``lo`` and ``hi`` are kept as rows of one
``(3, T)`` array so that slewing toward their targets is a handful of numpy calls.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import cast

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]

UNCLAMPED_A = 1e6
"""Clamp used for 'no clamp' (batteries): finite so that slewing arithmetic never sees inf."""

EMF, LO, HI = 0, 1, 2
"""Rows of :attr:`Network.cur` / :attr:`Network.tgt` / :attr:`Network.rate`."""

_FAST_ITERATIONS = 4
_ROBUST_ITERATIONS = 300


@dataclass
class TerminalRow:
    """One terminal as configured (collected before the arrays are built)."""

    node: int
    port: int
    conductance: float
    line_ohm: float
    emf: float
    lo: float
    hi: float
    slew_v: float
    slew_a: float


class Network:
    """Node and terminal arrays; :meth:`solve` advances node voltages by one step."""

    def __init__(
        self,
        capacitance: FloatArray,
        bleed_conductance: FloatArray,
        voltage: FloatArray,
        rows: list[TerminalRow],
        n_slewed: int,
    ) -> None:
        self.n_nodes = len(capacitance)
        self.cap = np.asarray(capacitance, dtype=np.float64)
        self.gb = np.asarray(bleed_conductance, dtype=np.float64)
        self.V = np.asarray(voltage, dtype=np.float64).copy()
        self.node: IntArray = np.array([r.node for r in rows], dtype=np.intp)
        self.port: IntArray = np.array([r.port for r in rows], dtype=np.intp)
        self.g = np.array([r.conductance for r in rows], dtype=np.float64)
        self.r = np.array([r.line_ohm for r in rows], dtype=np.float64)
        self.geff = self.g / (1.0 + self.g * self.r)
        self.tgt = np.array([[r.emf, r.lo, r.hi] for r in rows], dtype=np.float64).T.copy()
        self.cur = self.tgt.copy()
        rate = [[r.slew_v, r.slew_a, r.slew_a] for r in rows]
        self.rate = np.array(rate, dtype=np.float64).T.copy()
        n = len(rows)
        self.n_slewed = n_slewed
        self._cur_s = self.cur[:, :n_slewed]
        self._tgt_s = self.tgt[:, :n_slewed]
        self._rate_s = self.rate[:, :n_slewed]
        self.i = np.zeros(n)
        self.vn = self.V[self.node]
        self.vt = self.vn.copy()
        self.act: BoolArray = np.zeros(n, dtype=np.bool_)
        self.at_lo: BoolArray = np.ones(n, dtype=np.bool_)
        self.robust_solves = 0
        self._evaluate(self.V)

    # -- settings -------------------------------------------------------------------------

    def set_conductance(self, t: int, g: float) -> None:
        """Change terminal ``t``'s conductance (instantly; only on a mode change)."""
        self.g[t] = g
        self.geff[t] = g / (1.0 + g * self.r[t])

    def slew(self, dt: float) -> bool:
        """Move ``cur`` toward ``tgt`` by at most ``rate x dt``; True while anything still moves.

        Only the first ``n_slewed`` terminals slew; the others (batteries, converter battery
        sides) are written directly by the plant.
        """
        cur, tgt = self._cur_s, self._tgt_s
        step = self._rate_s * dt
        d = tgt - cur
        np.minimum(d, step, out=d)
        np.negative(step, out=step)
        np.maximum(d, step, out=d)
        cur += d
        return bool((cur != tgt).any())  # by value: a target of -0.0 is reached at 0.0

    # -- solving --------------------------------------------------------------------------

    def solve(self, dt: float, v_old: FloatArray) -> None:
        """Node voltages after ``dt`` from ``v_old``; fills ``V``, ``i``, ``vn``, ``vt``.

        Speed trick (active set): one linear solve per pass from the last step's set of
        clamped terminals, exact once that set stops changing; the bracketed solve only when
        it cycles; measured by ``benchmarks/plant_tricks.py``, the bracketed solve on every
        step costs 1.4x (households) to 5.6x (19-port day) the CPU.
        """
        E, lo, hi = self.cur
        geff, node, n = self.geff, self.node, self.n_nodes
        gE = geff * E
        c_dt = self.cap / dt
        base_num = c_dt * v_old
        base_den = c_dt + self.gb
        act, at_lo = self.act, self.at_lo
        a = np.where(act, gE, np.where(at_lo, lo, hi))
        for _ in range(_FAST_ITERATIONS):
            V = cast(FloatArray, np.bincount(node, a, n))
            V += base_num
            V /= np.bincount(node, geff * act, n) + base_den
            vn = V[node]
            u = geff * (E - vn)
            new_lo = u <= lo
            new_act = u < hi
            new_act &= ~new_lo
            i = np.minimum(np.maximum(u, lo), hi)
            if new_act.tobytes() == act.tobytes() and new_lo.tobytes() == at_lo.tobytes():
                self._store(V, vn, i, act, at_lo)
                return
            act, at_lo = new_act, new_lo
            a = np.where(act, gE, i)
        self.robust_solves += 1
        self._solve_bracketed(base_num, base_den, v_old)

    def _store(
        self, V: FloatArray, vn: FloatArray, i: FloatArray, act: BoolArray, at_lo: BoolArray
    ) -> None:
        self.V, self.vn, self.i, self.act, self.at_lo = V, vn, i, act, at_lo
        self.vt = vn + i * self.r

    def _evaluate(self, V: FloatArray) -> None:
        """Currents and clamp states at ``V`` (no solving)."""
        E, lo, hi = self.cur
        vn = V[self.node]
        u = self.geff * (E - vn)
        at_lo = u <= lo
        act = (u < hi) & ~at_lo
        self._store(V, vn, np.minimum(np.maximum(u, lo), hi), act, at_lo)

    def _solve_bracketed(
        self, base_num: FloatArray, base_den: FloatArray, v_old: FloatArray
    ) -> None:
        """Safeguarded Newton on every node: always converges, used when the fast path cycles."""
        E, lo, hi = self.cur
        geff, node, n = self.geff, self.node, self.n_nodes
        live = geff > 0
        # Beyond every breakpoint each terminal sits on a clamp, so the residual is linear there.
        upper = np.full(n, -np.inf)
        lower = np.full(n, np.inf)
        g_safe = np.where(live, geff, 1.0)
        np.maximum.at(upper, node[live], (E - lo / g_safe)[live])
        np.minimum.at(lower, node[live], (E - hi / g_safe)[live])
        const = np.where(live, 0.0, np.minimum(np.maximum(0.0, lo), hi))
        s_lo = np.bincount(node, np.where(live, lo, const), n)
        s_hi = np.bincount(node, np.where(live, hi, const), n)
        upper = np.fmax(upper, (s_lo + base_num) / base_den)
        lower = np.fmin(lower, (s_hi + base_num) / base_den)
        upper = np.fmax(upper, v_old)
        lower = np.fmin(lower, v_old)
        V = np.minimum(np.maximum(self.V, lower), upper)
        for k in range(_ROBUST_ITERATIONS):
            vn = V[node]
            u = geff * (E - vn)
            i = np.minimum(np.maximum(u, lo), hi)
            act = (u > lo) & (u < hi)
            f = np.bincount(node, i, n) + base_num - base_den * V
            slope = np.bincount(node, geff * act, n) + base_den
            scale = np.bincount(node, np.abs(i), n) + np.abs(base_num) + base_den * np.abs(V)
            lower = np.where(f > 0, V, lower)
            upper = np.where(f < 0, V, upper)
            done = (np.abs(f) <= 1e-12 * (1.0 + scale)) | (
                upper - lower <= 1e-13 * (1.0 + np.abs(V))
            )
            if done.all():
                break
            step = V + f / slope
            outside = (step <= lower) | (step >= upper)
            if k % 3 == 2:
                outside[:] = True
            step = np.where(outside, 0.5 * (lower + upper), step)
            V = np.where(done, V, step)
        else:
            log.warning("bracketed node solve stopped after %d iterations", _ROBUST_ITERATIONS)
        self._evaluate(V)

    # -- read-out -------------------------------------------------------------------------

    def node_current_sum(self) -> FloatArray:
        """Sum of terminal currents into each node (KCL residual plus capacitor and bleed)."""
        return cast(FloatArray, np.bincount(self.node, self.i, self.n_nodes))
