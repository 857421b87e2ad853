"""The exchange engine's energy accounting and series sampling, done on every tick.

:class:`EnergyAccounting` is APIS ``cumulate``: each running exchange's energy from the
battery power of its accounting units, and the stop conditions (amount, duration, SoC
force stop) that mark it due. :class:`SeriesSampler` keeps each exchange's per-period
samples for plots and writes them as a ``series`` record line when it ends.
"""

from __future__ import annotations

from collections.abc import Mapping

from hil.controller import Reading
from hil.exchange.bus import EPS_S, EngineContext, ExchangeRun, State, battery_power, log
from hil.recorder import safe_write


class EnergyAccounting:
    """Counts each running exchange's energy and marks it due when it should stop."""

    def __init__(self, ctx: EngineContext) -> None:
        self.ctx = ctx

    def share(self, run: ExchangeRun, uid: str) -> float:
        """This exchange's share of ``uid``'s current over every running exchange."""
        mine = abs(run.leg(uid))
        runs = self.ctx.bus.runs.values()
        total = sum(abs(r.leg(uid)) for r in runs if uid in r.plan.legs)
        return mine / total if total > 0 else 1.0

    def cumulate(self, run: ExchangeRun, t: float, readings: Mapping[str, Reading]) -> None:
        """APIS ``cumulate``: Wh += P_battery(accounting units) x Δt / 3600, each unit's
        power split by this exchange's share of its current."""
        if run.last_cumulate is None or t <= run.last_cumulate:
            return
        power = 0.0
        for uid in run.plan.accounting_units:
            reading = readings.get(uid)
            if reading is None:
                return
            p = battery_power(reading)
            power += (p if run.plan.legs[uid] > 0 else -p) * self.share(run, uid)
        run.energy_wh += power * (t - run.last_cumulate) / 3600.0
        run.last_power = power
        run.last_cumulate = t

    def due_reason(self, run: ExchangeRun, t: float, readings: Mapping[str, Reading]) -> str | None:
        """Why ``run`` should stop now (amount, duration, SoC force stop), or None."""
        ex, policy = run.exchange, self.ctx.policy
        if ex.amount_wh is not None and run.energy_wh >= ex.amount_wh * (1 - 1e-9):
            return f"amount reached: {run.energy_wh:.6g} Wh of {ex.amount_wh:g} Wh"
        if (
            ex.duration is not None
            and run.t_start is not None
            and t >= run.t_start + ex.duration - EPS_S
        ):
            return f"duration reached: {t - run.t_start:.6g} s of {ex.duration:g} s"
        for uid, leg in run.plan.legs.items():
            soc = readings[uid].soc if uid in readings else None
            if soc is None:
                continue
            if leg > 0 and soc < policy.soc_force_stop_discharge:
                return (
                    f"force stop: discharging unit {uid} at SoC {soc:.4g} < "
                    f"{policy.soc_force_stop_discharge:g} (dischargeUnitLowerLimitRsoc)"
                )
            if leg < 0 and soc > policy.soc_force_stop_charge:
                return (
                    f"force stop: charging unit {uid} at SoC {soc:.4g} > "
                    f"{policy.soc_force_stop_charge:g} (chargeUnitUpperLimitRsoc)"
                )
        return None

    def account(self, t: float, readings: Mapping[str, Reading]) -> None:
        """Count every running exchange's energy up to ``t`` and mark the due ones."""
        for run in self.ctx.bus.runs.values():
            if run.state is not State.RUNNING or run.due is not None:
                continue
            self.cumulate(run, t, readings)
            reason = self.due_reason(run, t, readings)
            if reason is not None:
                run.due = reason
                log.info("exchange %s: %s", run.name, reason)

    def next_end(self, t: float) -> float:
        """The earliest of ``t`` and every running exchange's predicted end (its duration,
        or its amount at the last counted power), so it ends within one reading of it."""
        for run in self.ctx.bus.runs.values():
            if run.state is not State.RUNNING or run.due is not None or run.t_start is None:
                continue
            ex = run.exchange
            if ex.duration is not None:
                t = min(t, run.t_start + ex.duration)
            if ex.amount_wh is not None and run.last_power > 0 and run.last_cumulate is not None:
                remaining = max(ex.amount_wh - run.energy_wh, 0.0)
                t = min(t, run.last_cumulate + remaining / run.last_power * 3600.0)
        return t


class SeriesSampler:
    """Each running exchange's per-tick samples, and its ``series`` record line."""

    def __init__(self, ctx: EngineContext) -> None:
        self.ctx = ctx

    def sample(self, t: float, readings: Mapping[str, Reading]) -> None:
        """One row per running exchange: bus voltage, residual, energy, its units' currents."""
        for run in self.ctx.bus.runs.values():
            self._row(run, t, readings)

    def sample_transition(self, reading: Reading, uid: str) -> None:
        """A reading a step took (ramp-up, warm-up, compensation, stop …) becomes a row of
        each exchange that is starting, or stopping after its stop time: the plot shows
        every step, not only the supervisor's periods. Running exchanges are left alone,
        so their figures (``fixtures.figures``) stay those of the periodic samples."""
        for run in self.ctx.bus.runs.values():
            starting = run.state in (State.PLANNED, State.STARTING)
            stopping = (
                run.state is State.STOPPING
                and run.t_stop is not None
                and reading.t > run.t_stop + EPS_S
            )
            if (starting or stopping) and self._member(run, uid):
                self._row(run, reading.t, {uid: reading})

    def _member(self, run: ExchangeRun, uid: str) -> bool:
        return uid in run.plan.legs or uid == self.ctx.bus.reference

    def _row(self, run: ExchangeRun, t: float, readings: Mapping[str, Reading]) -> None:
        reference = self.ctx.bus.reference
        ref = readings.get(reference) if reference else None
        members = [*run.plan.legs]
        if reference and reference not in members:
            members.append(reference)
        currents = {uid: readings[uid].bus_current for uid in members if uid in readings}
        row: dict[str, float | None] = {
            "t": t,
            "bus_voltage": None if ref is None else ref.bus_voltage,
            "residual": sum(currents.values()) if len(currents) == len(members) else None,
            "energy_wh": run.energy_wh,
            **currents,
        }
        rows = len(run.series.get("t", []))
        for column in set(row) | set(run.series):
            values = run.series.setdefault(column, [None] * rows)
            values.append(row.get(column))

    def write(self, run: ExchangeRun) -> None:
        """The ``series`` record line of an exchange that ended."""
        safe_write(
            self.ctx.recorder,
            "series",
            name=f"exchange {run.name}",
            exchange=run.name,
            state=run.state.value,
            stop_reason=run.stop_reason,
            energy_wh=run.energy_wh,
            columns=list(run.series),
            data=run.series,
        )
