"""Shared fixtures: the emulated bench for the exchange, supervisor and safety tests.

``rig`` is one emulator (in-process) and a ``Bench`` on it with simulated time, per test
module, so a module's tests share its start-up cost but no module sees another's plant.
After every test that uses it, everything is made safe and reset (faults, alarms, SoC, the
bus left to decay), so tests do not depend on each other's order.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import pyvisa
from emulated_rig import Rig

from hil.exchange.engine import ExchangeEngine


@pytest.fixture(autouse=True, scope="session")
def _keep_the_shared_visa_manager_open() -> Iterator[None]:
    """Refuse ``ResourceManager.close()`` in tests: pyvisa hands out one manager per VISA
    library, shared with the drivers of every bench open in this process, so closing it in
    one test breaks another's connections ("Invalid session handle") in some orders only."""
    original = pyvisa.ResourceManager.close

    def refuse(self: Any) -> None:
        raise AssertionError(
            "a test closed pyvisa's shared ResourceManager; close only its own resources"
        )

    pyvisa.ResourceManager.close = refuse  # type: ignore[method-assign]
    try:
        yield
    finally:
        pyvisa.ResourceManager.close = original  # type: ignore[method-assign]


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
