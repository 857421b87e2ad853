"""The live page's event hub: ordering, throttling, replay after a reconnect, the state a
new client starts from. The throttle runs on a clock the test moves (no sleeping)."""

from __future__ import annotations

from typing import Any

import pytest

from hil.controller import Mode, Reading
from hil.live.events import EventHub, summarise_line


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def reading(unit: str, amps: float, volts: float = 350.0, t: float = 0.0) -> Reading:
    return Reading(unit, t, volts, amps, Mode.CURRENT, setpoint=amps, soc=0.5)


def record_line(kind: str, **fields: Any) -> dict[str, Any]:
    return {"schema": "pp2p-hil/records", "version": 1, "type": kind, "wall": 0.0, **fields}


def test_record_lines_keep_their_order_and_ids_increase() -> None:
    hub = EventHub(now=FakeClock())
    kinds = ["test_start", "step", "safety_event", "shutdown", "test_end", "run_end"]
    for kind in kinds:
        hub.record_line(record_line(kind, nodeid="t", step="x", exchange="e", outcome="PASS"))
    events, complete = hub.since(0)
    assert complete
    assert [e.data["type"] for e in events] == kinds
    assert [e.id for e in events] == list(range(1, len(kinds) + 1))
    assert all("schema" not in e.data for e in events)


def test_readings_are_throttled_to_the_rate_and_the_last_value_is_not_held_back() -> None:
    clock = FakeClock()
    hub = EventHub(rate_hz=5.0, now=clock)
    for n in range(6000):  # 6 s of 1 kHz engine ticks
        clock.t = 100.0 + n / 1000
        hub.readings(n / 1000, {"E001": reading("E001", n / 1000)})
    emitted = [e for e in hub.since(0)[0] if e.data["type"] == "readings"]
    assert len(emitted) == 30  # 5 a second
    clock.t += 0.2
    hub.flush_due()
    last = hub.since(emitted[-1].id)[0]
    assert [e.data["units"]["E001"]["current"] for e in last] == [5.999]


def test_partial_readings_merge_and_the_bus_sums_every_unit() -> None:
    clock = FakeClock()
    hub = EventHub(now=clock)
    hub.readings(0.0, {"E001": reading("E001", 1.0), "E003": reading("E003", -0.98)})
    clock.t += 0.05
    hub.readings(0.1, {"E001": reading("E001", 1.01, volts=351.0)})  # pending, merged
    clock.t += 0.2
    hub.flush_due()
    state = hub.state().data
    assert state["units"]["E001"]["current"] == pytest.approx(1.01)
    assert state["units"]["E003"]["current"] == pytest.approx(-0.98)
    assert state["bus"]["residual"] == pytest.approx(0.03)
    assert state["bus"]["voltage"] == pytest.approx(351.0)
    assert state["points"][-1]["E003"] == pytest.approx(-0.98)


def test_discrete_events_flush_a_due_reading_first() -> None:
    clock = FakeClock()
    hub = EventHub(now=clock)
    hub.readings(0.0, {"E001": reading("E001", 1.0)})
    hub.readings(0.1, {"E001": reading("E001", 2.0)})  # not due: pending
    clock.t += 0.3
    hub.record_line(record_line("test_end", nodeid="t", outcome="PASS"))
    kinds = [
        (e.data["type"], e.data.get("units", {}).get("E001", {}).get("current"))
        for e in hub.since(0)[0]
    ]
    assert kinds == [("readings", 1.0), ("readings", 2.0), ("test_end", None)]


def test_a_prompt_brings_out_the_pending_readings_at_once() -> None:
    clock = FakeClock()
    hub = EventHub(now=clock)
    hub.readings(0.0, {"E001": reading("E001", 1.0)})
    hub.readings(0.1, {"E001": reading("E001", 2.0)})  # not due
    hub.publish({"type": "prompt", "id": 1, "text": "go on?"})
    kinds = [e.data["type"] for e in hub.since(0)[0]]
    assert kinds == ["readings", "readings", "prompt"]
    assert hub.state().data["units"]["E001"]["current"] == 2.0


def test_replay_after_an_id_and_a_gap_too_old_to_replay() -> None:
    hub = EventHub(keep=10, now=FakeClock())
    for n in range(25):
        hub.publish({"type": "note", "message": str(n)})
    events, complete = hub.since(20)
    assert complete and [e.data["message"] for e in events] == ["20", "21", "22", "23", "24"]
    assert hub.since(25) == ([], True)
    _, complete = hub.since(3)  # events 4..15 are gone
    assert not complete
    _, complete = hub.since(None)
    assert not complete
    assert hub.state().id == 25


def test_supervisor_cycles_are_coalesced_and_bulky_fields_stay_in_the_record() -> None:
    clock = FakeClock()
    hub = EventHub(now=clock)
    for n in range(50):
        checks = {"balance": "warn" if n == 49 else "pass"}
        hub.record_line(
            record_line("measurement", name="supervisor", t=n, verdict="w", checks=checks)
        )
    clock.t += 1
    hub.flush_due()
    cycles = [e.data for e in hub.since(0)[0]]
    assert [c["type"] for c in cycles] == ["cycle", "cycle"]
    assert cycles[-1]["failing"] == ["balance"]
    start = summarise_line(
        record_line("run_start", run_id="r", bench={"name": "b", "text": "x" * 9999}, software={})
    )
    assert start is not None and "text" not in start["bench"] and "software" not in start
    series = summarise_line(record_line("series", exchange="e", data={"t": [1]}, columns=["t"]))
    assert series is not None and "data" not in series and series["exchange"] == "e"


def test_state_follows_the_run() -> None:
    hub = EventHub(now=FakeClock())
    hub.publish({"type": "progress", "total": 3})
    hub.record_line(record_line("test_start", nodeid="a"))
    hub.record_line(record_line("step", exchange="x1", step="warmUp", t=1.0))
    hub.record_line(record_line("test_end", nodeid="a", outcome="PASS"))
    hub.record_line(record_line("test_start", nodeid="b"))
    state = hub.state().data
    assert state["total"] == 3 and state["running"] == "b"
    assert state["outcomes"] == {"PASS": 1}
    assert state["exchanges"] == [{"exchange": "x1", "step": "warmUp", "t": 1.0}]
    assert [line["type"] for line in state["log"]] == ["test_end"]


def test_a_closed_hub_emits_what_was_pending() -> None:
    clock = FakeClock()
    hub = EventHub(now=clock)
    hub.readings(0.0, {"E001": reading("E001", 1.0)})
    hub.readings(0.1, {"E001": reading("E001", 1.5)})
    hub.close()
    assert hub.closed
    assert hub.state().data["units"]["E001"]["current"] == 1.5


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="rate_hz"):
        EventHub(rate_hz=0)
