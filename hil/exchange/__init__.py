"""The exchange layer: exchanges and their rules, the engine that runs them, the supervisor,
the ordered shutdown and process-level safety.

An exchange (APIS: a *deal*) and the rules that admit it live in :mod:`hil.exchange.exchange`
and are re-exported here; the engine is :mod:`hil.exchange.engine` (its parts: ``bus``,
``steps``, ``commands``, ``ticks``, ``energy``, ``scram``). See ``docs/exchanges.md``.
"""

from hil.exchange.exchange import (
    BALANCE_TOLERANCE_A,
    SIDES,
    BusLoad,
    Exchange,
    ExchangePlan,
    Rule,
    Side,
    pick_reference,
    plan_exchange,
    reference_problem,
    refusal,
)

__all__ = [
    "BALANCE_TOLERANCE_A",
    "SIDES",
    "BusLoad",
    "Exchange",
    "ExchangePlan",
    "Rule",
    "Side",
    "pick_reference",
    "plan_exchange",
    "reference_problem",
    "refusal",
]
