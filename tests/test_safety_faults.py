"""The fault x step matrix: every fault kind of the emulator's control channel injected at
every APIS step ends with a scram, every output safe, the faulted unit named in the record
and the verdict the fault deserves.

Two pairs are faulted: an APIS pair of EZA-2500 converters with their BMS (binary frames
and Modbus RTU over TCP) and a pair of bidirectional supplies, the ITECH IT6000C (SCPI over
TCP) and the EA PSB 10000 (Modbus TCP). Each case runs one exchange on the emulated bench
under the simulated clock with the emulator's watchdog armed (the last resort the engine
trips when a shutdown cannot confirm a unit), injects one fault through the control channel
as the chosen step begins, and checks the plant's true state afterwards. ``handOver`` needs
a second exchange: the fault then hits the unit that takes over the voltage reference.

Verdicts: a protection (a latched trip, a heavy converter alarm, a battery permission
withdrawn) is a ``SAFETY TRIP`` at every step; a frozen meter is one whenever the exchange
runs long enough for the supervisor's frozen-meter check (``[apis] stale_periods``), else
its checkpoint fails (``ERROR``); a communication fault or a false reading ends as either,
depending on whether a checkpoint or the supervisor sees it first — never as a pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from emulated_rig import EMULATED_BENCH, Rig

from hil.errors import HilError, SafetyTrip
from hil.exchange import Exchange
from hil.exchange.engine import ExchangeEngine, ExchangeRun
from hil.exchange.safety import EmulatorWatchdog
from hil.recorder import MemoryRecorder

#: kind → fault fields: every fault kind the control channel offers. ``drop`` and
#: ``garbage`` outlast the drivers' retries, ``delay`` the instrument timeout.
FAULTS: dict[str, dict[str, Any]] = {
    "disconnect": {"seconds": 1.0},
    "delay": {"seconds": 1.2},
    "garbage": {"count": 100},
    "drop": {"count": 4},
    "stale": {"on": True},
    "offset": {"value": 0.6},
    "trip": {"trip": "OVP"},
    "alarm": {"level": "heavy"},
    "permission": {"value": 0},
}
#: Faults of the line: the faulted unit's connection is reopened after its case, so that
#: a late reply cannot reach the next case.
LINE_FAULTS = frozenset({"disconnect", "delay", "garbage", "drop"})
#: Faults that are protections: a SAFETY TRIP wherever they strike.
PROTECTIONS = frozenset({"trip", "alarm", "permission"})
STEPS = (
    "activate",
    "rampUp",
    "authorize",
    "warmUp",
    "compensate",
    "start",
    "stop",
    "handOver",
    "deactivate",
)
#: Steps at which the voltage reference acts alone (the fault hits it); at the others
#: the constant-current unit is hit, at ``handOver`` the unit taking over the reference.
REFERENCE_STEPS = frozenset({"activate", "rampUp", "authorize", "deactivate"})
WATCHDOG_S = 5.0
TIMEOUT_S = 0.5


@dataclass(frozen=True)
class Pair:
    """Two units faulted in turn and the exchanges that bring every step about."""

    name: str
    source: str  # discharges, constant current
    reference: str  # charges, holds the bus
    successor: str  # takes over the reference at hand-over (charges in the second exchange)
    other: str  # discharges in the second exchange (hand-over cases)
    feeder: str  # discharges into the reference in the first exchange (hand-over cases)
    kinds: tuple[str, ...]
    instrument: dict[str, str]  # fault kind → instrument suffix (default: the main one)
    main: str

    def target(self, kind: str, step: str) -> str:
        unit = (
            self.successor
            if step == "handOver"
            else self.reference
            if step in REFERENCE_STEPS
            else self.source
        )
        return f"{unit}.{self.instrument.get(kind, self.main)}"

    def exchanges(self, step: str) -> list[tuple[float, Exchange]]:
        ref = self.reference
        if step != "handOver":
            return [(0.0, Exchange.between(self.source, ref, 1.5, amount_wh=6, reference=ref))]
        short = Exchange.between(self.feeder, ref, 1.0, duration=20.0, reference=ref)
        second = Exchange.between(self.other, self.successor, 0.8, duration=60.0)
        return [(0.0, short), (5.0, second)]


EZA = Pair(
    name="eza",
    source="E001",
    reference="E003",
    successor="E002",
    other="E004",
    feeder="E001",
    kinds=tuple(FAULTS),
    instrument={"permission": "battery"},
    main="converter",
)
SCPI_MODBUS = Pair(
    name="scpi+modbus",
    source="BID2",  # EA PSB 10000, Modbus TCP
    reference="BID1",  # ITECH IT6000C, SCPI
    successor="BID2",
    other="E001",
    feeder="E004",
    kinds=tuple(k for k in FAULTS if k not in ("alarm", "permission")),  # no converter, BMS
    instrument={},
    main="bidirectional",
)
PAIRS = {pair.name: pair for pair in (EZA, SCPI_MODBUS)}


#: Sensor noise for the two bidirectional supplies, whose emulated meters are otherwise
#: exact: the frozen-meter check needs meters that move in their last digits, as real ones
#: do (the default bench keeps them exact for the model tests).
LIVE_METERS = """
[emulation.ports.BID1.sensor]
current_noise = 0.01
voltage_noise = 0.05
[emulation.ports.BID2.sensor]
current_noise = 0.01
voltage_noise = 0.05
"""


@pytest.fixture(scope="module")
def rig_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    """This module's bench: the default one with live meters everywhere, the plugin's
    0.5 s instrument timeout, a 20 s ramp-up timeout and the frozen-meter check on."""
    path = tmp_path_factory.mktemp("matrix") / "emulated-live-meters.toml"
    path.write_text(EMULATED_BENCH.read_text(encoding="utf-8") + LIVE_METERS, encoding="utf-8")
    rig = Rig.start(path, timeout=TIMEOUT_S, policy={"ramp_up_timeout": 20.0, "stale_periods": 3})
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
    shutdown lists it as not confirmed or records a failed action on it."""
    for line in recorder.of_type("safety_event"):
        if unit in str(line.get("message", "")) or unit == line.get("unit"):
            return True
    for line in recorder.of_type("shutdown"):
        failed = [s for s in line.get("steps", []) if s.get("unit") == unit and not s.get("ok")]
        if unit in line.get("unconfirmed", []) or failed:
            return True
    return False


def _verdict(exc: BaseException | None) -> str:
    """The verdict the run record would give (``fixtures.record.phase_outcome``)."""
    if exc is None:
        return "PASS"
    return "SAFETY TRIP" if isinstance(exc, SafetyTrip) else "ERROR"


def _run(rig: Rig, engine: ExchangeEngine, pair: Pair, step: str) -> BaseException | None:
    try:
        engine.run_schedule(pair.exchanges(step), timeout=600)
    except HilError as exc:
        return exc
    finally:
        engine.close()
    return None


CASES = [
    pytest.param(pair.name, kind, step, id=f"{pair.name}-{kind}-{step}")
    for pair in PAIRS.values()
    for kind in pair.kinds
    for step in STEPS
]


@pytest.mark.parametrize(("pair_name", "kind", "step"), CASES)
def test_fault_at_any_step_scrams_ends_all_safe_and_named(
    request: pytest.FixtureRequest,
    rig: Rig,
    watchdog: EmulatorWatchdog,
    pair_name: str,
    kind: str,
    step: str,
) -> None:
    pair = PAIRS[pair_name]
    target = pair.target(kind, step)
    unit = target.split(".", 1)[0]
    if kind in LINE_FAULTS:

        def fresh_line() -> None:
            """The fault cleared (a disconnect may still be in force), the line reopened:
            no late reply leaks into the next case."""
            rig.control.clear()
            rig.bench.units[unit].reconnect()

        request.addfinalizer(fresh_line)
    injected: list[str] = []

    def inject(at: str, run: ExchangeRun) -> None:
        if at == step and not injected:
            rig.control.fault(target, kind, **FAULTS[kind])
            injected.append(at)

    recorder = MemoryRecorder()
    watchdog.recorder = recorder
    engine = rig.engine(recorder=recorder, on_step=inject)
    engine.on_unsafe = lambda report: watchdog.trip(f"unconfirmed {report.unconfirmed}")
    exc = _run(rig, engine, pair, step)

    assert injected == [step], exc
    assert engine.last_shutdown is not None, "no scram"
    assert any(line["kind"] == "scram" for line in recorder.of_type("safety_event"))
    verdict = _verdict(exc)
    if kind in PROTECTIONS:
        assert verdict == "SAFETY TRIP", exc
    else:
        assert verdict in ("SAFETY TRIP", "ERROR"), exc
    rig.clock.sleep(0.1)  # the plant solves its circuit again on its next step
    status = rig.status()
    assert status["all_safe"], [p["port"] for p in status["ports"] if not p["safe"]]
    assert _named(recorder, unit), recorder.text()[-2000:]
    tripped = [e for e in recorder.of_type("safety_event") if e["kind"] == "watchdog"]
    assert len(tripped) == int(watchdog.tripped), tripped  # a trip is in the record
