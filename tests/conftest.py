"""Shared fixtures: the emulated bench for the exchange, supervisor and safety tests.

``rig`` is one emulator (in-process) and a ``Bench`` on it with simulated time, per test
module, so a module's tests share its start-up cost but no module sees another's plant.
After every test that uses it, everything is made safe and reset (faults, alarms, SoC, the
bus left to decay), so tests do not depend on each other's order.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from emulated_rig import Rig

from hil.engine import ExchangeEngine


@pytest.fixture(scope="module")
def rig_session() -> Iterator[Rig]:
    rig = Rig.start()
    try:
        yield rig
    finally:
        rig.stop()


@pytest.fixture
def rig(rig_session: Rig) -> Iterator[Rig]:
    try:
        yield rig_session
    finally:
        rig_session.reset()


@pytest.fixture
def engine(rig: Rig) -> Iterator[ExchangeEngine]:
    """A fresh engine on the emulated bench; shut down in order after the test."""
    eng = rig.engine()
    try:
        yield eng
    finally:
        eng.close()
