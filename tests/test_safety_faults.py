"""The fault matrix: every fault kind injected at every step of an exchange ends all-safe,
with the fault named in the record.

Each case runs a one-to-one exchange on the emulated bench with the emulator's watchdog
armed (the last resort the engine trips when a shutdown cannot confirm a unit), injects one
fault through the control channel as the chosen step begins, and then checks the plant's
true state: every output safe, and a record line naming the faulted unit.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from emulated_rig import Rig

from hil.engine import ExchangeRun
from hil.errors import HilError
from hil.exchange import Exchange
from hil.recorder import MemoryRecorder
from hil.safety import EmulatorWatchdog

#: (kind, instrument suffix, fault fields): the control channel's fault kinds.
FAULTS: dict[str, tuple[str, dict[str, Any]]] = {
    "disconnect": ("converter", {"seconds": 1.0}),
    "delay": ("converter", {"seconds": 0.3}),
    "garbage": ("converter", {"count": 6}),
    "stale": ("converter", {"on": True}),
    "offset": ("converter", {"value": 0.6}),
    "trip": ("converter", {"trip": "OVP"}),
    "alarm": ("converter", {"level": "heavy"}),
    "permission": ("battery", {"value": 0}),
}
#: The step at which the fault arrives, and the unit it hits: the voltage reference while
#: it acts alone (activation, ramp-up, authorization, deactivation), else the CC unit.
STEPS: dict[str, str] = {
    "activate": "E003",
    "rampUp": "E003",
    "authorize": "E003",
    "warmUp": "E001",
    "compensate": "E001",
    "start": "E001",
    "stop": "E001",
    "deactivate": "E003",
}
WATCHDOG_S = 5.0


@pytest.fixture(scope="module")
def rig_session() -> Iterator[Rig]:
    """This module's bench: short timeouts (a dead line costs 0.1 s) and a 20 s ramp-up
    timeout, so that the 72 cases stay quick."""
    rig = Rig.start(timeout=0.1, policy={"ramp_up_timeout": 20.0})
    try:
        yield rig
    finally:
        rig.stop()


@pytest.fixture
def watchdog(rig: Rig) -> Iterator[EmulatorWatchdog]:
    dog = EmulatorWatchdog.arm(rig.emulator.info.control, WATCHDOG_S)
    try:
        yield dog
    finally:
        dog.close()


def _named(recorder: MemoryRecorder, unit: str) -> bool:
    """A safety event (a supervisor verdict or the scram's reason) names ``unit``, or the
    shutdown lists it as not confirmed."""
    for line in recorder.of_type("safety_event"):
        if unit in str(line.get("message", "")) or unit == line.get("unit"):
            return True
    return any(unit in line.get("unconfirmed", []) for line in recorder.of_type("shutdown"))


@pytest.mark.parametrize("step", list(STEPS))
@pytest.mark.parametrize("kind", list(FAULTS))
def test_fault_at_any_step_ends_all_safe_and_named(
    rig: Rig, watchdog: EmulatorWatchdog, kind: str, step: str
) -> None:
    unit = STEPS[step]
    suffix, fields = FAULTS[kind]
    injected: list[str] = []

    def inject(at: str, run: ExchangeRun) -> None:
        if at == step and not injected:
            rig.control.fault(f"{unit}.{suffix}", kind, **fields)
            injected.append(at)

    recorder = MemoryRecorder()
    engine = rig.engine(recorder=recorder, on_step=inject)
    engine.on_unsafe = lambda report: watchdog.trip(f"unconfirmed {report.unconfirmed}")
    try:
        engine.run(Exchange.between("E001", "E003", 1.5, amount_wh=3), timeout=600)
    except (HilError, OSError) as exc:
        assert engine.last_shutdown is not None, exc
    finally:
        engine.close()
    assert injected == [step]
    rig.clock.sleep(0.1)  # the plant solves its circuit again on its next step
    status = rig.status()
    assert status["all_safe"], [p["port"] for p in status["ports"] if not p["safe"]]
    assert _named(recorder, unit), recorder.text()[-2000:]
