"""A bench for the live-page tests (not collected by the suite: its name has no ``test_``).

It starts an exchange, lets bench time pass (readings reach the page), then waits for the
operator: the test that drives it answers on the page or presses Stop while the bus is
energised. ``HIL_LIVE_PROMPTS`` says how many confirmations to ask before the last wait.
"""

from __future__ import annotations

import os

from fixtures.exchanges import ExchangeFactory
from hil.live.prompts import Operator


def test_exchange_waits_for_the_operator(exchange: ExchangeFactory, operator: Operator) -> None:
    exchange.start(discharge={"E001": 1.0}, charge={"E003": 1.0}, amount_wh=500, name="live")
    exchange.wait(5.0)
    for n in range(int(os.environ.get("HIL_LIVE_PROMPTS", "1"))):
        assert operator.confirm(f"Exchange running ({n + 1}): go on?")
        exchange.wait(5.0)
    assert operator.ask("Which unit holds the bus?", ["E001", "E003"]) == "E003"


def test_after_the_wait(exchange: ExchangeFactory) -> None:
    exchange(discharge={"E002": 0.5}, charge={"E004": 0.5}, amount_wh=1, name="after")
