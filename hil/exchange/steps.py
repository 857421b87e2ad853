"""The APIS step sequence of an exchange, as data: one function per step, one table entry.

:data:`START_SEQUENCE` takes an exchange from its plan to running (``activate`` →
``rampUp`` → ``authorize`` on a dead bus, or joining a running one, then ``warmUp`` →
``compensate`` → ``start``); :data:`STOP_SEQUENCE` from running to done (``stop``, then
``deactivate`` or ``handOver``). Each entry is a :class:`Stage`: a condition on the
sequencer and the run, and the step function run when it holds. A new APIS step is one
function ``(seq, run) -> None`` and one entry. Steps command units only through
:class:`~hil.exchange.commands.UnitCommands` and wait only through the engine's ticker, so the
supervisor runs during every step. The steps follow APIS (``docs/exchanges.md``,
``shared/reference/apis-control.md``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any, NamedTuple

from hil.controller import Reading
from hil.errors import ExchangeError, SafetyTrip
from hil.exchange import ExchangePlan, Side, pick_reference, reference_problem
from hil.exchange.bus import EPS_S, EngineContext, ExchangeRun, State, Step, log
from hil.exchange.commands import UnitCommands
from hil.exchange.energy import EnergyAccounting, SeriesSampler


class Sequencer:
    """Runs the step tables for one engine; holds what the steps share beyond the bus."""

    def __init__(
        self,
        ctx: EngineContext,
        commands: UnitCommands,
        accounting: EnergyAccounting,
        sampler: SeriesSampler,
        *,
        authorize: bool,
        reference_side: Side,
        seed: int,
        history: list[ExchangeRun],
    ) -> None:
        self.ctx = ctx
        self.commands = commands
        self.accounting = accounting
        self.sampler = sampler
        self.authorize = authorize
        self.reference_side: Side = reference_side
        self.rng = random.Random(seed)
        self.history = history

    def launch(self, plan: ExchangePlan) -> ExchangeRun:
        """Run :data:`START_SEQUENCE` for ``plan``; the exchange is running after it."""
        run = ExchangeRun(plan)
        self.ctx.bus.runs[plan.name] = run
        for stage in START_SEQUENCE:
            if stage.when(self, run):
                stage.step(self, run)
        return run

    def stop(self, run: ExchangeRun, reason: str) -> None:
        """Run :data:`STOP_SEQUENCE` for ``run``; it is done after it."""
        run.stop_reason = reason
        for stage in STOP_SEQUENCE:
            if stage.when(self, run):
                stage.step(self, run)

    def stop_due(self) -> None:
        """Stop every running exchange the accounting marked due."""
        for run in list(self.ctx.bus.runs.values()):
            if run.state is State.RUNNING and run.due is not None:
                self.stop(run, run.due)


StepFunction = Callable[[Sequencer, ExchangeRun], None]
Condition = Callable[[Sequencer, ExchangeRun], bool]


class Stage(NamedTuple):
    """One entry of a step table: ``step`` runs when ``when`` holds."""

    when: Condition
    step: StepFunction


# -- conditions ----------------------------------------------------------------------------
def always(seq: Sequencer, run: ExchangeRun) -> bool:
    return True


def activates_bus(seq: Sequencer, run: ExchangeRun) -> bool:
    """The exchange starts the bus (no voltage reference yet)."""
    return run.plan.activates_bus


def joins_bus(seq: Sequencer, run: ExchangeRun) -> bool:
    """The exchange joins a running bus."""
    return not run.plan.activates_bus


def authorizes(seq: Sequencer, run: ExchangeRun) -> bool:
    """Authorization is on and the exchange starts the bus."""
    return run.plan.activates_bus and seq.authorize and seq.ctx.policy.authorization_trials > 0


def last_exchange(seq: Sequencer, run: ExchangeRun) -> bool:
    """No exchange runs any more but a reference still holds the bus."""
    return seq.ctx.bus.reference is not None and not seq.ctx.bus.runs


def reference_leaves(seq: Sequencer, run: ExchangeRun) -> bool:
    """The reference was in this exchange and in no other running one."""
    bus = seq.ctx.bus
    vr = bus.reference
    return (
        vr is not None
        and bool(bus.runs)
        and vr in run.plan.legs
        and not any(vr in r.plan.legs for r in bus.runs.values())
    )


# -- the start steps -------------------------------------------------------------------------
def plan(seq: Sequencer, run: ExchangeRun) -> None:
    """Record the checked plan (legs, reference, adjuster, accounting units)."""
    p = run.plan
    seq.ctx.record(
        run,
        Step.PLAN,
        spec=p.exchange.as_dict(),
        legs=dict(p.legs),
        reference=p.reference,
        adjuster=p.adjuster,
        accounting_units=list(p.accounting_units),
    )
    run.state = State.STARTING
    run.t_activate = seq.ctx.clock.now()


def activate(seq: Sequencer, run: ExchangeRun) -> None:
    """Dead-bus check and UVLO mask wait, then the reference holds the bus."""
    ctx, commands = seq.ctx, seq.commands
    ctx.enter(run, Step.ACTIVATE)
    policy, vr = ctx.policy, run.plan.reference
    deadline = ctx.clock.now() + policy.ramp_up_timeout
    low = policy.voltage_range_min - policy.uvlo_mask
    high = policy.voltage_range_min + policy.uvlo_mask
    waited = 0
    while True:
        reading = commands.read(vr)
        vg = reading.bus_voltage
        if vg > policy.activation_voltage_max:
            raise SafetyTrip(
                f"activate: the bus reads {vg:.5g} V at unit {vr} before any reference "
                f"started, above {policy.activation_voltage_max:g} V (min + 2 x "
                "gridVoltageSeparationV): another source holds the bus"
            )
        if not low <= vg <= high:
            break
        if ctx.clock.now() >= deadline:
            raise SafetyTrip(
                f"activate: the bus read by unit {vr} stayed at {vg:.5g} V, inside the "
                f"UVLO mask {low:g}-{high:g} V, for {policy.ramp_up_timeout:g} s"
            )
        waited += 1
        commands.wait(policy.checkpoint_wait)
    dvg = policy.operation_voltage
    top = dvg + 2 * policy.voltage_separation if seq.authorize else dvg
    limit = commands.reference_limit(vr, max(dvg, top))
    bus = ctx.bus
    bus.reference, bus.vr_setpoint, bus.vr_limit = vr, dvg, limit
    bus.bus_settling = True
    commands.hold(vr, dvg, limit)
    ctx.record(
        run,
        Step.ACTIVATE,
        reference=vr,
        bus_voltage_before=vg,
        uvlo_waits=waited,
        dvg=dvg,
        dig=limit,
        drg=0.0,
    )


def ramp_up(seq: Sequencer, run: ExchangeRun) -> None:
    """Poll until the bus is within ``voltage_allowance`` of the operation voltage."""
    ctx, commands = seq.ctx, seq.commands
    ctx.enter(run, Step.RAMP_UP)
    policy, vr = ctx.policy, run.plan.reference
    dvg = policy.operation_voltage
    started = ctx.clock.now()
    while True:
        commands.wait(policy.checkpoint_wait)
        reading = commands.read(vr)
        if reading.bus_voltage >= dvg - policy.voltage_allowance:
            break
        if ctx.clock.now() - started >= policy.ramp_up_timeout:
            raise SafetyTrip(
                f"rampUp: unit {vr} brought the bus only to {reading.bus_voltage:.5g} V in "
                f"{policy.ramp_up_timeout:g} s (needs ≥ {dvg - policy.voltage_allowance:g} V)"
            )
    ctx.record(
        run,
        Step.RAMP_UP,
        reference=vr,
        bus_voltage=reading.bus_voltage,
        duration=ctx.clock.now() - started,
    )


def authorize(seq: Sequencer, run: ExchangeRun) -> None:
    """APIS authorization: random moves of the reference voltage, each confirmed, so a
    second voltage source on the bus shows up before any current flows."""
    ctx, commands, bus = seq.ctx, seq.commands, seq.ctx.bus
    ctx.enter(run, Step.AUTHORIZE)
    policy, vr = ctx.policy, run.plan.reference
    env, window = ctx.units[vr].envelope, ctx.bench.config.envelope.bus
    dvg = policy.operation_voltage
    moves = [dvg + k * policy.voltage_separation for k in (-2, -1, 1, 2)]
    low, high = max(env.voltage_min, window.voltage_min), min(env.voltage_max, window.voltage_max)
    moves = [v for v in moves if low < v < high]
    trace = []
    assert bus.vr_limit is not None
    for volts in (
        [seq.rng.choice(moves) for _ in range(policy.authorization_trials)] if moves else []
    ):
        bus.vr_setpoint = volts
        commands.hold(vr, volts, bus.vr_limit)
        reading = commands.checkpoint_voltage(vr, volts)
        trace.append({"dvg": volts, "read_voltage": reading.bus_voltage, "t": reading.t})
    bus.vr_setpoint = dvg
    commands.hold(vr, dvg, bus.vr_limit)
    reading = commands.checkpoint_voltage(vr, dvg)
    trace.append({"dvg": dvg, "read_voltage": reading.bus_voltage, "t": reading.t})
    ctx.record(run, Step.AUTHORIZE, reference=vr, moves=trace)


def bus_up(seq: Sequencer, run: ExchangeRun) -> None:
    """The bus is up (not an APIS step, no record): the supervisor now checks it, and the
    compensation target is the exchange's own leg of the reference (APIS ±dealGridCurrentA)."""
    seq.ctx.bus.bus_settling = False
    run.vr_target = run.plan.legs.get(run.plan.reference, 0.0)


def join(seq: Sequencer, run: ExchangeRun) -> None:
    """A new exchange on a running bus: the target is the reference's current now."""
    ctx = seq.ctx
    ctx.enter(run, Step.ACTIVATE)
    vr = ctx.bus.reference
    assert vr is not None
    reading = seq.commands.read(vr)
    run.vr_target = reading.bus_current + run.plan.legs.get(vr, 0.0)
    ctx.record(
        run,
        Step.ACTIVATE,
        reference=vr,
        joined=True,
        reference_current_before=reading.bus_current,
        bus_voltage=reading.bus_voltage,
    )


def warm_up(seq: Sequencer, run: ExchangeRun) -> None:
    """Every constant-current unit to its new set-point in ``current_step`` steps.

    Admission counts a unit's planned legs; the compensation rest of the exchanges it is
    already in yields to its envelope when this one joins (as in :func:`compensate`): the
    set-point stops at the limit, this exchange's leg is that much smaller and the
    reference carries the small rest."""
    ctx = seq.ctx
    ctx.enter(run, Step.WARM_UP)
    p, cc = run.plan, ctx.bus.cc
    before = {uid: cc.get(uid, 0.0) for uid in p.cc_units}
    targets: dict[str, float] = {}
    limited: dict[str, float] = {}
    for uid in p.cc_units:
        wanted = before[uid] + p.legs[uid]
        cap = seq.commands.cc_limit(uid, wanted)
        targets[uid] = math.copysign(min(abs(wanted), cap), wanted)
        if targets[uid] != wanted:
            limited[uid] = wanted
            log.warning(
                "exchange %s: unit %s joins at %+.4g A, its envelope's limit, not %+.4g A",
                run.name,
                uid,
                targets[uid],
                wanted,
            )
    trace = seq.commands.ramp(targets)
    run.compensated = {uid: targets[uid] - before[uid] for uid in p.cc_units}
    ctx.record(run, Step.WARM_UP, targets=targets, limited=limited, trace=trace)


def compensate(seq: Sequencer, run: ExchangeRun) -> None:
    """APIS current compensation: move the adjuster's set-point by the reference's
    deviation from ``run.vr_target`` until it is within the drift allowance.

    The adjuster never leaves its envelope: at its limit compensation ends *limited*
    (recorded), the reference carrying the small rest."""
    ctx, commands, bus = seq.ctx, seq.commands, seq.ctx.bus
    ctx.enter(run, Step.COMPENSATE)
    policy, p, target = ctx.policy, run.plan, run.vr_target
    vr, adjuster = bus.reference, p.adjuster
    assert vr is not None and target is not None
    trace: list[dict[str, Any]] = []
    trials = policy.compensation_trials
    limited = False
    for trial in range(trials + 1):
        reading = commands.read(vr)
        drift = reading.bus_current - target
        trace.append({"reference_current": reading.bus_current, "drift": drift, "t": reading.t})
        if abs(drift) <= policy.compensation_drift_allowance or limited:
            break
        if trial == trials:
            raise ExchangeError(
                f"current compensation failed: reference {vr} carries "
                f"{reading.bus_current:+.4g} A after {trials} adjustments of unit "
                f"{adjuster}, target {target:+.4g} A ± "
                f"{policy.compensation_drift_allowance:g} A (driftAllowanceA)"
            )
        old = bus.cc[adjuster]
        new = old + drift
        if new * p.legs[adjuster] <= 0:
            raise ExchangeError(
                f"current compensation would reverse unit {adjuster} (set-point "
                f"{old:+.4g} A, drift {drift:+.4g} A at reference {vr})"
            )
        cap = commands.cc_limit(adjuster, new)
        if abs(new) > cap:
            new, limited = math.copysign(cap, new), True
            log.warning(
                "exchange %s: compensation of unit %s limited to %+.4g A by its envelope",
                run.name,
                adjuster,
                new,
            )
        if new == old:
            break
        bus.settling.add(adjuster)
        commands.set(adjuster, new)
        run.compensated[adjuster] = run.compensated[adjuster] + (new - old)
        commands.wait(policy.checkpoint_wait)
        bus.settling.discard(adjuster)
        trace[-1]["adjuster_setpoint"] = new
    ctx.record(
        run,
        Step.COMPENSATE,
        reference=vr,
        target=target,
        adjuster=adjuster,
        limited=limited,
        compensated=dict(run.compensated),
        trace=trace,
    )


def start(seq: Sequencer, run: ExchangeRun) -> None:
    """Running: energy is counted from now on."""
    ctx = seq.ctx
    run.state = State.RUNNING
    run.t_start = run.last_cumulate = ctx.clock.now()
    ctx.enter(run, Step.START)
    ctx.record(run, Step.START, setpoints=dict(ctx.bus.cc), compensated=dict(run.compensated))


# -- the stop steps --------------------------------------------------------------------------
def stop(seq: Sequencer, run: ExchangeRun) -> None:
    """Count the last energy, step the exchange's legs down, leave the bus."""
    ctx, bus = seq.ctx, seq.ctx.bus
    ctx.enter(run, Step.STOP)
    run.state = State.STOPPING
    p = run.plan
    now = ctx.clock.now()
    # Every unit of the exchange is read (and inspected) before it steps down, so a
    # protection or a battery permission withdrawn at the stop still trips the bench.
    readings: dict[str, Reading] = {uid: seq.commands.read(uid) for uid in p.legs}
    if run.last_cumulate is not None and now > run.last_cumulate + EPS_S:
        seq.accounting.cumulate(run, now, readings)
    run.t_stop = now
    targets = {}
    for uid in reversed(p.cc_units):
        if uid in bus.cc and uid != bus.reference:
            rest = bus.cc[uid] - run.leg(uid)
            targets[uid] = 0.0 if abs(rest) <= 1e-6 else rest
    trace = seq.commands.ramp(targets)
    del bus.runs[run.name]
    ctx.record(
        run,
        Step.STOP,
        reason=run.stop_reason,
        energy_wh=run.energy_wh,
        targets=targets,
        trace=trace,
    )


def deactivate(seq: Sequencer, run: ExchangeRun) -> None:
    """Lower the reference voltage (APIS: to min + separation), then idle it."""
    ctx, commands, bus = seq.ctx, seq.commands, seq.ctx.bus
    ctx.enter(run, Step.DEACTIVATE)
    policy, vr = ctx.policy, bus.reference
    assert vr is not None and bus.vr_limit is not None
    bus.bus_settling = True
    bus.settling.add(vr)
    volts = policy.stop_voltage
    bus.vr_setpoint = volts
    commands.hold(vr, volts, bus.vr_limit)
    lowered: Reading | None = None
    for _ in range(max(1, policy.checkpoint_retries)):
        commands.wait(policy.checkpoint_wait)
        lowered = commands.read(vr)
        if lowered.bus_voltage <= volts + policy.voltage_allowance:
            break
    ctx.units[vr].idle()
    bus.drop_reference()
    reading = commands.checkpoint(vr, 0.0, policy.checkpoint_wait)
    bus.settling.discard(vr)
    bus.bus_settling = False
    ctx.record(
        run,
        Step.DEACTIVATE,
        reference=vr,
        dvg=volts,
        lowered_to=None if lowered is None else lowered.bus_voltage,
        idle_current=reading.bus_current,
    )


def successor(seq: Sequencer) -> str:
    """The unit of the running exchanges that takes over the voltage reference."""
    legs = seq.ctx.bus.compensated_legs()
    chosen, reasons = pick_reference(seq.ctx.bench, legs, seq.reference_side)
    if chosen is None:
        raise ExchangeError(
            "handOver: no unit of the running exchanges can take over the voltage "
            "reference: " + "; ".join(reasons)
        )
    return chosen


def hand_over(seq: Sequencer, run: ExchangeRun) -> None:
    """APIS hand-over: droop on both, the new one takes over, the old one leaves, the
    new one's droop returns to 0."""
    ctx, commands, bus = seq.ctx, seq.commands, seq.ctx.bus
    ctx.enter(run, Step.HAND_OVER)
    policy = ctx.policy
    old, dvg, old_limit = bus.reference, bus.vr_setpoint, bus.vr_limit
    assert old is not None and dvg is not None and old_limit is not None
    new = successor(seq)
    problem = reference_problem(ctx.bench, new, bus.cc.get(new, 0.0))
    if problem is not None:
        raise ExchangeError(f"handOver: {problem}")
    new_limit = commands.reference_limit(new, dvg)
    bus.settling |= {old, new}
    old_droop = commands.hold(old, dvg, old_limit, policy.handover_droop)
    new_droop = commands.hold(new, dvg, new_limit, policy.handover_droop)
    carried = bus.cc.pop(new, 0.0)
    bus.reference, bus.vr_limit = new, new_limit
    commands.wait(policy.checkpoint_wait)
    ctx.units[old].idle()
    old_reading = commands.checkpoint(old, 0.0, policy.checkpoint_wait)
    commands.hold(new, dvg, new_limit)
    new_reading = commands.checkpoint_voltage(new, dvg)
    bus.settling -= {old, new}
    ctx.record(
        run,
        Step.HAND_OVER,
        old_reference=old,
        new_reference=new,
        dvg=dvg,
        droop_old=old_droop,
        droop_new=new_droop,
        carried_current=carried,
        old_current=old_reading.bus_current,
        new_voltage=new_reading.bus_voltage,
    )


def finish(seq: Sequencer, run: ExchangeRun) -> None:
    """Done: into the history, and the series into the record."""
    run.state = State.DONE
    seq.history.append(run)
    seq.sampler.write(run)


#: From the plan to running (``docs/exchanges.md``, "The sequence, step by step").
START_SEQUENCE: tuple[Stage, ...] = (
    Stage(always, plan),
    Stage(activates_bus, activate),
    Stage(activates_bus, ramp_up),
    Stage(authorizes, authorize),
    Stage(activates_bus, bus_up),
    Stage(joins_bus, join),
    Stage(always, warm_up),
    Stage(always, compensate),
    Stage(always, start),
)

#: From running to done; the last exchange deactivates the reference, an exchange whose
#: reference no other running exchange uses hands it over.
STOP_SEQUENCE: tuple[Stage, ...] = (
    Stage(always, stop),
    Stage(last_exchange, deactivate),
    Stage(reference_leaves, hand_over),
    Stage(always, finish),
)
