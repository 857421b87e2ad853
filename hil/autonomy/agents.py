"""Autonomous deal making on a bench: one agent per battery unit, the same code everywhere.

A :class:`Community` runs APIS's user and mediator services (``shared/reference/
apis-control.md``, "Autonomous deal making") for every unit with a battery, on the bench
clock, and hands every deal to the :class:`~hil.exchange.engine.ExchangeEngine`, which runs them
concurrently on the one bus with its own rules (priority, capacity, same direction,
supervision, SoC force stop):

- **house-keeping** (every ``house_keeping_period``, each agent at its own seeded phase):
  the agent reads its unit through its controller's ``read()`` (a reading younger than
  ``data_acquisition_period`` — its own or the engine's last supervisor tick's — is
  reused, as APIS's unit-data cache), turns SoC into
  remaining Wh, and asks :mod:`hil.autonomy.negotiation` whether to request;
- **broadcast**: every other agent evaluates the request on its own data and answers or
  not; **selection** ``negotiation_timeout`` later (simulated), by the requester's
  strategy; the deal is checked against both units' interlocks *at that moment* and
  handed to the engine as an :class:`~hil.exchange.Exchange` (discharging unit → charging
  unit, the deal current, the deal amount);
- **deals end** on their amount, on the SoC force-stop limits or on an error — the
  engine's rules; the community stops each exchange the engine marks due;
- **an agent whose unit stops answering** (its own read fails, or the supervisor reports
  it silent while it is in no deal) is excluded from negotiation and from supervision, and
  named in the record (a ``note`` line with ``kind = "agent"``);
- :meth:`Community.push_scenario` is the central operator replacing every unit's
  conditions at once; :meth:`Community.set_mode` puts units in ``manual`` or ``stop``.

Time of day: bench time ``t`` is ``start_of_day + (t - t0)`` seconds into the day, so a
simulated day can start at any hour. Everything is deterministic for a given ``seed``.
"""

from __future__ import annotations

import dataclasses
import functools
import heapq
import itertools
import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from hil.autonomy.negotiation import Conditions, Deal, Mediator, Negotiation, deal_problem
from hil.autonomy.views import Agent, UnitViews
from hil.config.deal_policy import DealPolicy, OperationMode
from hil.config.scenario import DAY_S, Scenario
from hil.errors import ConfigError, ExchangeError, HilError
from hil.exchange import Exchange
from hil.exchange.engine import ExchangeEngine, ExchangeRun, State
from hil.exchange.supervisor import Supervisor
from hil.recorder import Recorder, safe_write

log = logging.getLogger(__name__)

#: Agents wake a little after a predicted amount end, so the engine's tick lands first.
_EPS_S = 1e-6


@dataclass
class DealRecord:
    """One deal: the negotiation that made it and, once handed over, the engine's run."""

    name: str
    negotiation: Negotiation
    deal: Deal
    run: ExchangeRun | None = None
    refused: str | None = None
    failed: str | None = None

    @property
    def state(self) -> str:
        if self.refused is not None:
            return "refused"
        if self.run is None:
            return "failed"
        return self.run.state.value

    def as_dict(self) -> dict[str, Any]:
        run = self.run
        return {
            "name": self.name,
            "deal": self.deal.as_dict(),
            "t_request": self.negotiation.t_request,
            "t_select": self.negotiation.t_select,
            "state": self.state,
            "refused": self.refused,
            "failed": self.failed,
            "t_start": None if run is None else run.t_start,
            "t_stop": None if run is None else run.t_stop,
            "energy_wh": None if run is None else run.energy_wh,
            "stop_reason": None if run is None else run.stop_reason,
        }


@dataclass
class CommunityReport:
    """What a :meth:`Community.run` did."""

    t_start: float
    t_end: float
    negotiations: int = 0
    deals: list[DealRecord] = field(default_factory=list)
    excluded: dict[str, str] = field(default_factory=dict)
    trips: list[str] = field(default_factory=list)

    @property
    def executed(self) -> list[DealRecord]:
        """Deals the engine ran to their end (amount or force stop)."""
        return [d for d in self.deals if d.run is not None and d.run.state is State.DONE]


class Community:
    """Every battery unit's agent on one bench, negotiating and trading through ``engine``.

    ``scenario`` (or ready-made ``conditions``) gives each unit its conditions; ``policy``
    the deal-making numbers (:meth:`DealPolicy.for_bench` is applied, so the unit capacity,
    force-stop limits and battery sizes agree with the bench); ``units`` the agents (default:
    ``policy.member_unit_ids``, else every unit with a battery); ``start_of_day`` the time
    of day (s) at the community's first instant; ``seed`` the agents' phases and the
    arrival order of accepts.
    """

    def __init__(
        self,
        engine: ExchangeEngine,
        scenario: Scenario | Conditions,
        policy: DealPolicy | None = None,
        *,
        units: Iterable[str] | None = None,
        start_of_day: float = 0.0,
        seed: int = 0,
        recorder: Recorder | None = None,
    ) -> None:
        self.engine = engine
        self.bench = engine.bench
        self.clock = engine.clock
        self.policy = (policy or DealPolicy()).for_bench(self.bench.config)
        self.recorder = recorder if recorder is not None else engine.recorder
        unit_ids = self._members(units)
        if isinstance(scenario, Conditions):
            missing = sorted(set(unit_ids) - set(scenario.unit_ids))
            if missing:
                raise ConfigError(f"community: no conditions for unit {', '.join(missing)}")
            self.conditions = scenario
        else:
            self.conditions = Conditions(unit_ids, scenario, mode=self.policy.operation_mode)
        self.mediator = Mediator(self.conditions, self.policy, seed=seed)
        self._rng = random.Random(seed)
        self.t0 = self.clock.now()
        self.start_of_day = float(start_of_day)
        period = self.policy.house_keeping_period
        self.agents: dict[str, Agent] = {
            uid: Agent(uid, self.policy.battery_wh(uid), self.t0 + self._rng.uniform(0.0, period))
            for uid in unit_ids
        }
        #: (next house-keeping, unit) of every agent, earliest first; an excluded agent's
        #: entry is dropped when it comes up (a heap: a 100-house community wakes 70 000
        #: times a day, and looking at every agent each time grew with the houses squared).
        self._house_keeping = [(a.next_house_keeping, uid) for uid, a in self.agents.items()]
        heapq.heapify(self._house_keeping)
        self.unit_views = UnitViews(
            engine, self.policy, self.conditions, self.agents, self._exclude
        )
        self._pending: list[tuple[float, int, Negotiation]] = []
        self._order = itertools.count()
        self._names = itertools.count(1)
        self.deals: list[DealRecord] = []
        self.negotiations = 0
        self.trips: list[str] = []

    @classmethod
    def for_bench(
        cls,
        engine: ExchangeEngine,
        *,
        start_of_day: float = 0.0,
        recorder: Recorder | None = None,
    ) -> Community:
        """The community a bench file describes: its ``[community]`` scenario, members and
        seed, and the deal-making numbers of its ``[apis]`` table."""
        config = engine.bench.config
        if config.community is None:
            raise ConfigError(
                f"bench {config.name} ({config.path}) has no [community] table naming the "
                "scenario its units negotiate on"
            )
        community = cls(
            engine,
            config.community.scenario,
            DealPolicy.from_bench(config),
            start_of_day=start_of_day,
            seed=config.community.seed,
            recorder=recorder,
        )
        for uid, scenario in config.community.unit_scenarios.items():
            community.conditions.set_scenario(uid, scenario)
        return community

    def _members(self, units: Iterable[str] | None) -> tuple[str, ...]:
        config = self.bench.config
        wanted = list(units) if units is not None else list(self.policy.member_unit_ids)
        if not wanted:
            wanted = [u.id for u in config.units if u.has_battery]
        for uid in wanted:
            if uid not in config.unit_ids:
                raise ConfigError(
                    f"community: unit {uid!r} is not on bench {config.name} "
                    f"(units: {', '.join(config.unit_ids)})"
                )
            if not config.unit(uid).has_battery:
                raise ConfigError(
                    f"community: unit {uid} has no battery (no BMS), so it has no state of "
                    "charge to negotiate on"
                )
        if not wanted:
            raise ConfigError(f"community: bench {config.name} has no unit with a battery")
        return tuple(dict.fromkeys(wanted))

    # -- the operator ----------------------------------------------------------------------
    def second_of_day(self, t: float | None = None) -> float:
        """The time of day (s, 0-86400) at bench time ``t`` (default: now)."""
        now = self.clock.now() if t is None else t
        return (self.start_of_day + now - self.t0) % DAY_S

    def push_scenario(self, scenario: Scenario) -> int:
        """The central operator replaces every unit's scenario at once; recorded."""
        version = self.conditions.push_scenario(scenario)
        self._note(
            f"scenario {scenario.source} pushed to every unit (version {version})",
            kind="scenario",
            version=version,
            source=scenario.source,
        )
        return version

    def set_mode(self, mode: OperationMode, units: Iterable[str] | None = None) -> None:
        """Set the operation mode of ``units`` (default: all); recorded."""
        targets = list(self.agents) if units is None else list(units)
        self.conditions.set_mode(mode, targets)
        self._note(
            f"operation mode {mode} for {', '.join(targets)}", kind="mode", mode=mode, units=targets
        )

    @property
    def excluded(self) -> dict[str, str]:
        """Unit → why its agent was excluded from negotiation."""
        return {uid: a.excluded for uid, a in self.agents.items() if a.excluded is not None}

    # -- running ---------------------------------------------------------------------------
    def run(self, duration: float, *, finish: bool = True) -> CommunityReport:
        """Negotiate and trade for ``duration`` seconds of bench time.

        With ``finish`` the deals still running at the end are stopped in order (APIS:
        stop). A safety trip ends the engine's deals (the engine's ordered shutdown ran);
        it is recorded in :attr:`trips` and the community goes on, as APIS does after its
        error-sustaining time."""
        start = self.clock.now()
        end = start + duration
        while True:
            self._stop_due()
            now = self.clock.now()
            self._process(now, end)
            if now >= end:
                break
            self._guarded(lambda: self.engine.wait(self._next_wake(end) - self.clock.now()))
            self._check_supervisor()
        if finish:
            for run in list(self.engine.running):
                if run.state is State.RUNNING:
                    self._guarded(
                        functools.partial(self.engine.stop, run.name, "community run ended")
                    )
        return CommunityReport(
            t_start=start,
            t_end=self.clock.now(),
            negotiations=self.negotiations,
            deals=list(self.deals),
            excluded=self.excluded,
            trips=list(self.trips),
        )

    def _guarded(self, action: Callable[[], object]) -> None:
        """Run an engine operation; a failure has already shut the bench down in order
        (the engine's contract): record it and go on. Signals are not caught."""
        try:
            action()
        except HilError as exc:
            message = f"t = {self.clock.now():.6g} s: {type(exc).__name__}: {exc}"
            self.trips.append(message)
            log.error("community: %s", message)
            self._note(f"the engine stopped the bench: {message}", kind="trip")

    def _next_agent(self) -> Agent | None:
        """The agent whose house-keeping comes next (earliest, then by unit id)."""
        queue = self._house_keeping
        while queue:
            agent = self.agents[queue[0][1]]
            if agent.excluded is None:
                return agent
            heapq.heappop(queue)
        return None

    def _next_wake(self, end: float) -> float:
        now = self.clock.now()
        wake = min(end, now + self.engine.supervisor.period)
        agent = self._next_agent()
        if agent is not None:
            wake = min(wake, agent.next_house_keeping)
        if self._pending:
            wake = min(wake, self._pending[0][0])
        for run in self.engine.running:
            ex = run.exchange
            if (
                run.state is State.RUNNING
                and run.due is None
                and ex.amount_wh is not None
                and run.last_power > 0
                and run.last_cumulate is not None
            ):
                left = max(ex.amount_wh - run.energy_wh, 0.0)
                wake = min(wake, run.last_cumulate + left / run.last_power * 3600.0 + _EPS_S)
        return max(wake, now + _EPS_S)

    def _stop_due(self) -> None:
        for run in list(self.engine.running):
            if run.state is State.RUNNING and run.due is not None:
                self._guarded(functools.partial(self.engine.stop, run.name, run.due))

    def _process(self, now: float, end: float) -> None:
        """Every selection and house-keeping due by ``now``, in time order."""
        while True:
            due_select = self._pending[0][0] if self._pending else None
            agent = self._next_agent()
            due_house = agent.next_house_keeping if agent is not None else None
            if (
                due_select is not None
                and due_select <= now
                and (due_house is None or due_select <= due_house)
            ):
                _, _, negotiation = heapq.heappop(self._pending)
                self._select(negotiation)
                continue
            if agent is not None and due_house is not None and due_house <= now:
                agent.next_house_keeping += self.policy.house_keeping_period
                heapq.heapreplace(self._house_keeping, (agent.next_house_keeping, agent.unit_id))
                if due_house < end:
                    self._house_keep(agent)
                continue
            return

    def _house_keep(self, agent: Agent) -> None:
        if self.conditions.mode(agent.unit_id) != "autonomous":
            return
        if any(n.request.unit_id == agent.unit_id for _, _, n in self._pending):
            return  # its previous negotiation is still open
        view = self.unit_views.view(agent, self.unit_views.deals_of())
        if view is None:
            return
        now = self.clock.now()
        negotiation = self.mediator.request(view, self.second_of_day(now), now)
        if negotiation is None:
            return
        self.negotiations += 1
        self.mediator.collect(negotiation, self.unit_views.views(), self.second_of_day(now))
        at = now + self.policy.negotiation_timeout
        heapq.heappush(self._pending, (at, next(self._order), negotiation))

    def _select(self, negotiation: Negotiation) -> None:
        now = self.clock.now()
        requester = self.agents[negotiation.request.unit_id]
        if requester.excluded is not None:
            negotiation.outcome = "requester excluded"
            return
        deal = self.mediator.select(negotiation, self.second_of_day(now), now)
        if deal is None:
            return
        name = f"deal-{next(self._names):04d}"
        record = DealRecord(name, negotiation, deal)
        self.deals.append(record)
        problem = deal_problem(deal, self.unit_views.views(deal.units), self.policy)
        if problem is not None:
            record.refused = f"interlock: {problem}"
            self._record_refusal(record, deal_exchange(deal, name))
            return
        exchange = deal_exchange(deal, name)
        try:
            self.engine.admit(exchange)
        except ExchangeError as exc:
            record.refused = str(exc)
            self._record_refusal(record, exchange)
            return
        safe_write(
            self.recorder, "step", exchange=name, step="deal", t=now, **negotiation.as_dict()
        )
        try:
            record.run = self.engine.start(exchange)
        except HilError as exc:
            record.failed = f"{type(exc).__name__}: {exc}"
            record.run = next((r for r in self.engine.history if r.name == name), None)
            message = f"t = {self.clock.now():.6g} s: {record.failed}"
            self.trips.append(message)
            self._note(
                f"deal {name} failed to start, the engine stopped the bench: {message}", kind="trip"
            )

    def _record_refusal(self, record: DealRecord, exchange: Exchange) -> None:
        log.info("community: %s refused: %s", record.name, record.refused)
        safe_write(
            self.recorder,
            "step",
            step="refused",
            t=self.clock.now(),
            reason=record.refused,
            exchange=exchange.as_dict(),
            deal=record.deal.as_dict(),
        )

    # -- silent units ------------------------------------------------------------------------
    def _exclude(self, agent: Agent, why: str) -> None:
        if agent.excluded is not None:
            return
        agent.excluded = why
        self._pending = [p for p in self._pending if p[2].request.unit_id != agent.unit_id]
        heapq.heapify(self._pending)
        message = f"unit {agent.unit_id} stopped answering; excluded from negotiation: {why}"
        log.warning("community: %s", message)
        self._note(message, kind="agent", unit=agent.unit_id)
        self._supervise_members()

    def _check_supervisor(self) -> None:
        """Exclude the agents whose unit the supervisor found silent (not in a deal)."""
        if any(a.excluded for a in self.agents.values()):
            self._supervise_members()
        report = self.engine.last_report
        if report is None:
            return
        in_deals = set(self.unit_views.deals_of())
        for verdict in report.failures:
            uid = verdict.unit
            if verdict.check != "comm" or uid not in self.agents or uid in in_deals:
                continue
            self._exclude(self.agents[uid], verdict.message)

    def _supervise_members(self) -> None:
        """Stop supervising excluded units that are in no deal (APIS: the operator takes
        them out of ``memberUnitIds``); a unit in a deal stays supervised, so its failure
        still ends the deal."""
        in_deals = set(self.unit_views.deals_of())
        gone = {uid for uid, a in self.agents.items() if a.excluded and uid not in in_deals}
        old = self.engine.supervisor
        config = self.bench.config
        kept = tuple(u for u in config.units if u.id not in gone)
        if len(kept) == len(old.config.units):
            return
        self.engine.supervisor = Supervisor(
            dataclasses.replace(config, units=kept),
            recorder=old.recorder,
            limits=old.limits,
            record_cycles=old.record_cycles,
        )

    def _note(self, message: str, **fields: Any) -> None:
        safe_write(self.recorder, "note", message=message, t=self.clock.now(), **fields)


def deal_exchange(deal: Deal, name: str) -> Exchange:
    """The exchange that executes ``deal``: its discharging unit pushes the deal current
    into its charging unit until the deal amount is counted (on the charging side)."""
    return Exchange.between(
        deal.discharge_unit_id,
        deal.charge_unit_id,
        deal.current,
        amount_wh=deal.amount_wh,
        name=name,
    )
