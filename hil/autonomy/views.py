"""What each agent knows of its unit when it negotiates: its data and its deals.

An agent reads its unit through its controller's ``read()``; a reading younger than
``data_acquisition_period`` (its own, or the engine's last supervisor tick's) is reused,
as APIS's unit-data cache (``shared/reference/apis-control.md``, "Autonomous deal
making"). :class:`UnitViews` turns that reading, the unit's operation mode and the deals
the engine is running into the :class:`~hil.autonomy.negotiation.UnitView` the negotiation works
on; a unit that does not answer, or answers without a state of charge, has its agent
excluded (through the ``exclude`` callback the community gives).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from hil.autonomy.negotiation import BOTH, Conditions, UnitView, remaining_wh
from hil.config.deal_policy import DealPolicy
from hil.config.scenario import Direction
from hil.controller import Mode, Reading
from hil.errors import HilError
from hil.exchange.engine import ExchangeEngine
from hil.exchange.supervisor import TRIP_FLAGS


@dataclass
class Agent:
    """One unit's agent: its battery, house-keeping phase, cached data and exclusion."""

    unit_id: str
    capacity_wh: float
    next_house_keeping: float
    reading: Reading | None = None
    read_at: float | None = None
    excluded: str | None = None


class UnitViews:
    """The agents' views of their units, read through ``engine``'s bench and cached."""

    def __init__(
        self,
        engine: ExchangeEngine,
        policy: DealPolicy,
        conditions: Conditions,
        agents: Mapping[str, Agent],
        exclude: Callable[[Agent, str], None],
    ) -> None:
        self.engine = engine
        self.bench = engine.bench
        self.clock = engine.clock
        self.policy = policy
        self.conditions = conditions
        self.agents = agents
        self.exclude = exclude

    def data(self, agent: Agent) -> Reading | None:
        """The agent's unit data: a cached reading, or a fresh one; None if it is silent
        (the agent is then excluded)."""
        now = self.clock.now()
        cached = self._cached(agent, now)
        if cached is not None:
            return cached
        self._refresh([agent], now)
        return agent.reading if agent.excluded is None else None

    def _cached(self, agent: Agent, now: float) -> Reading | None:
        """The agent's reading if it is younger than ``data_acquisition_period`` at ``now``
        (its own, or the engine's last tick's, whichever is newer); else None."""
        ticked = self.engine.last_readings.get(agent.unit_id)
        if ticked is not None and (agent.read_at is None or ticked.t > agent.read_at):
            agent.reading, agent.read_at = ticked, ticked.t
        if (
            agent.reading is not None
            and agent.read_at is not None
            and now - agent.read_at < self.policy.data_acquisition_period
        ):
            return agent.reading
        return None

    def _refresh(self, agents: list[Agent], now: float) -> None:
        """Read the units of ``agents`` (at once, as a snapshot does) and cache what they
        answer; an agent whose unit fails with a ``HilError`` is excluded, in agent order."""
        readings, failures = self.bench.read_units(a.unit_id for a in agents)
        for agent in agents:
            failure = failures.get(agent.unit_id)
            if failure is None:
                agent.reading, agent.read_at = readings[agent.unit_id], now
            elif isinstance(failure, HilError):
                self.exclude(agent, f"{type(failure).__name__}: {failure}")
            else:
                raise failure

    def deals_of(self) -> dict[str, tuple[int, Direction | None]]:
        """Unit → (number of running exchanges it is in, their direction)."""
        out: dict[str, tuple[int, Direction | None]] = {}
        for run in self.engine.running:
            for uid, leg in run.plan.legs.items():
                count, _ = out.get(uid, (0, None))
                out[uid] = (count + 1, "discharge" if leg > 0 else "charge")
        return out

    def view(
        self, agent: Agent, deals: Mapping[str, tuple[int, Direction | None]]
    ) -> UnitView | None:
        """What ``agent`` offers the negotiation; None when it has just been excluded."""
        reading = self.data(agent)
        if reading is None:
            return None
        if reading.soc is None:
            self.exclude(agent, "its reading has no state of charge")
            return None
        allowed = set(BOTH)
        if "NO_CHARGE" in reading.flags:
            allowed.discard("charge")
        if "NO_DISCHARGE" in reading.flags:
            allowed.discard("discharge")
        count, direction = deals.get(agent.unit_id, (0, None))
        return UnitView(
            unit_id=agent.unit_id,
            remaining_wh=remaining_wh(reading.soc, agent.capacity_wh),
            capacity_wh=agent.capacity_wh,
            mode=self.conditions.mode(agent.unit_id),
            deal_count=count,
            deal_direction=direction,
            allowed=frozenset(allowed),
            healthy=reading.mode is not Mode.FAULT and not (reading.flags & TRIP_FLAGS),
        )

    def views(self, only: Iterable[str] | None = None) -> dict[str, UnitView]:
        """The views of the agents still in negotiation (of ``only`` these units); the
        units whose data is stale are read together, not one after the other."""
        deals = self.deals_of()
        wanted = set(self.agents) if only is None else set(only)
        agents = [a for a in self.agents.values() if a.excluded is None and a.unit_id in wanted]
        now = self.clock.now()
        stale = [agent for agent in agents if self._cached(agent, now) is None]
        if stale:
            self._refresh(stale, now)
        views = {}
        for agent in agents:
            if agent.excluded is not None:
                continue
            view = self.view(agent, deals)
            if view is not None:
                views[agent.unit_id] = view
        return views
