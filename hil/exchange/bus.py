"""The exchange engine's state: each exchange as it runs, and the bus they share.

:class:`ExchangeRun` is one exchange (plan, state, compensated currents, energy, record);
:class:`BusState` is what the bus holds now (the running exchanges, the voltage reference
and its set-point, every constant-current set-point, which units are settling) and what the
supervisor should therefore see (:meth:`BusState.expectations`). :class:`EngineContext`
bundles what every part of the engine shares (bench, recorder, supervisor, bus, hooks) and
writes the ``step`` record lines. See ``docs/exchanges.md``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from hil.controller import Mode, Reading
from hil.exchange import BusLoad, Exchange, ExchangePlan
from hil.exchange.supervisor import BusExpectation, Expectation, Supervisor
from hil.recorder import Recorder, safe_write

if TYPE_CHECKING:
    from hil.clock import Clock
    from hil.config.apis_policy import ApisPolicy
    from hil.controller import CurrentController
    from hil.exchange.shutdown import ShutdownReport
    from hil.units.bench import Bench

log = logging.getLogger("hil.exchange.engine")

EPS_S = 1e-9
#: Set-points closer than this to 0 A are 0 A (float residue of sums of legs).
ZERO_A = 1e-9
#: Extra accounting ticks (predicted end of an amount) are at least this far apart.
MIN_TICK_S = 1e-3


class Step(StrEnum):
    """The steps of an exchange, with APIS's names (``docs/exchanges.md``)."""

    PLAN = "plan"
    ACTIVATE = "activate"
    RAMP_UP = "rampUp"
    AUTHORIZE = "authorize"
    WARM_UP = "warmUp"
    COMPENSATE = "compensate"
    START = "start"
    STOP = "stop"
    DEACTIVATE = "deactivate"
    HAND_OVER = "handOver"


class State(StrEnum):
    """Where an exchange is in its life."""

    PLANNED = "planned"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    DONE = "done"
    SCRAMMED = "scrammed"


ACTIVE = frozenset({State.PLANNED, State.STARTING, State.RUNNING, State.STOPPING})


@dataclass(eq=False)
class ExchangeRun:
    """One exchange as it runs: its plan, state, compensated currents, energy and record.

    ``compensated`` holds each constant-current unit's signed current in this exchange
    after compensation (APIS ``…CompensatedGridCurrentA``); ``energy_wh`` the energy
    counted so far (APIS ``cumulateAmountWh``); ``series`` the per-period samples for
    plots (columns ``t``, ``bus_voltage``, ``residual``, ``energy_wh`` and one per unit).
    """

    plan: ExchangePlan
    state: State = State.PLANNED
    compensated: dict[str, float] = field(default_factory=dict)
    vr_target: float | None = None
    energy_wh: float = 0.0
    last_power: float = 0.0
    t_activate: float | None = None
    t_start: float | None = None
    t_stop: float | None = None
    last_cumulate: float | None = None
    stop_reason: str | None = None
    due: str | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    series: dict[str, list[float | None]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.plan.name

    @property
    def exchange(self) -> Exchange:
        return self.plan.exchange

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    def leg(self, unit_id: str) -> float:
        """This exchange's signed current for ``unit_id`` (compensated where it was)."""
        return self.compensated.get(unit_id, self.plan.legs.get(unit_id, 0.0))

    def step(self, name: str) -> dict[str, Any] | None:
        """The last recorded step called ``name``."""
        return next((s for s in reversed(self.steps) if s["step"] == name), None)


StepHook = Callable[[str, ExchangeRun], None]


@dataclass(eq=False)
class BusState:
    """What the one bus holds now: running exchanges, the voltage reference (its
    ``dvg`` set-point and ``dig`` limit), every constant-current set-point and the units
    whose readings are allowed to settle."""

    runs: dict[str, ExchangeRun] = field(default_factory=dict)
    reference: str | None = None
    vr_setpoint: float | None = None
    vr_limit: float | None = None
    bus_settling: bool = False
    cc: dict[str, float] = field(default_factory=dict)
    settling: set[str] = field(default_factory=set)

    def planned_legs(self) -> dict[str, float]:
        """Each unit's planned current summed over the running exchanges."""
        legs: dict[str, float] = {}
        for run in self.runs.values():
            for uid, leg in run.plan.legs.items():
                legs[uid] = legs.get(uid, 0.0) + leg
        return legs

    def compensated_legs(self) -> dict[str, float]:
        """Each unit's current (compensation included) summed over the running exchanges."""
        legs: dict[str, float] = {}
        for run in self.runs.values():
            for uid in run.plan.legs:
                legs[uid] = legs.get(uid, 0.0) + run.leg(uid)
        return legs

    def members(self) -> set[str]:
        """The units in a running exchange."""
        return {uid for run in self.runs.values() for uid in run.plan.legs}

    def bus_load(self, history: list[ExchangeRun]) -> BusLoad:
        """What runs on the bus, as the exchange rules see it: each unit's planned legs.

        Compensation is left out, so that a set of exchanges checked before any starts
        (``ExchangeEngine.run``) is admitted the same way one by one as they join; the
        compensation rest yields to the envelope when an exchange joins (``warm_up``)."""
        return BusLoad(
            legs=self.planned_legs(),
            reference=self.reference,
            current_sum=sum(run.exchange.current for run in self.runs.values()),
            names=frozenset(self.runs) | {run.name for run in history},
        )

    def expectation(self, uid: str) -> Expectation:
        """What unit ``uid`` should be doing now."""
        if uid == self.reference:
            legs = sum(run.leg(uid) for run in self.runs.values())
            return Expectation(
                Mode.VOLTAGE_REFERENCE,
                self.vr_setpoint,
                direction=(legs > 0) - (legs < 0),
                settling=self.bus_settling or uid in self.settling,
            )
        if uid in self.cc:
            sp = self.cc[uid]
            return Expectation(
                Mode.CURRENT, sp, direction=(sp > 0) - (sp < 0), settling=uid in self.settling
            )
        return Expectation(settling=uid in self.settling)

    def expectations(self, unit_ids: list[str]) -> BusExpectation:
        """What every unit and the bus should be doing now (for the supervisor)."""
        return BusExpectation(
            units={uid: self.expectation(uid) for uid in unit_ids},
            in_exchange=frozenset(self.members()),
            reference=self.reference,
            bus_up=self.reference is not None and not self.bus_settling,
        )

    def drop_reference(self) -> None:
        """No unit holds the bus any more."""
        self.reference = self.vr_setpoint = self.vr_limit = None

    def clear(self) -> None:
        """Everything is off (after the ordered shutdown)."""
        self.runs.clear()
        self.cc.clear()
        self.settling.clear()
        self.drop_reference()
        self.bus_settling = False


@dataclass(eq=False)
class EngineContext:
    """What the parts of one engine share. ``supervisor`` and ``on_unsafe`` may be
    replaced while the engine lives (the community and the safety guard do)."""

    bench: Bench
    recorder: Recorder | None
    supervisor: Supervisor
    bus: BusState
    on_step: StepHook | None = None
    on_unsafe: Callable[[ShutdownReport], None] | None = None
    #: ``on_tick(t, readings)`` after every supervisor tick (the live page's readings).
    on_tick: Callable[[float, Mapping[str, Reading]], None] | None = None

    @property
    def clock(self) -> Clock:
        return self.bench.clock

    @property
    def units(self) -> Mapping[str, CurrentController]:
        return self.bench.units

    @property
    def policy(self) -> ApisPolicy:
        return self.bench.config.apis

    def enter(self, run: ExchangeRun, step: Step) -> None:
        """A step begins: log it and call ``on_step`` (tests inject faults there)."""
        log.info("exchange %s: %s", run.name, step.value)
        if self.on_step is not None:
            self.on_step(step.value, run)

    def record(self, run: ExchangeRun, step: Step, **fields: Any) -> None:
        """A step ended: keep it on the run and write its ``step`` record line."""
        entry = {"step": step.value, "t": self.clock.now(), **fields}
        run.steps.append(entry)
        safe_write(self.recorder, "step", exchange=run.name, **entry)


def battery_power(reading: Reading) -> float:
    """Battery power (W), positive while discharging; bus power for units without one."""
    if reading.battery_voltage is not None and reading.battery_current is not None:
        return reading.battery_voltage * reading.battery_current
    return reading.bus_voltage * reading.bus_current
