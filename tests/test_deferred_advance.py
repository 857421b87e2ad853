"""Deferred advance and busy polling in the emulator (issue 19, scale).

A deferred ``advance`` is owed by the plant until something looks at it; the eager one,
stepped inside every ``advance``, is the plain reference the deferred one is compared with.
"""

from __future__ import annotations

import selectors
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from emulated_rig import DRIVER_OPTIONS, EMULATED_BENCH, TIMEOUT_S
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hil.config.benchfile import load_bench_file
from hil.controller import Reading
from hil.units.bench import Bench
from instruments.emulation.busy_poll import BusyPollSelector, event_loop_factory
from instruments.emulation.emulator import DEFER_LIMIT_S, AdvanceMode
from instruments.emulation.process import EmulatorThread
from instruments.emulation.transport import InputWatch

#: Units driven in the comparison: E001 holds the bus, E002 discharges into it.
REFERENCE, PUSHER = "E001", "E002"


@contextmanager
def driven(advance: AdvanceMode) -> Iterator[tuple[EmulatorThread, Bench]]:
    """The emulated bench with E001 holding 350 V and E002 pushing 1.5 A."""
    config = load_bench_file(EMULATED_BENCH)
    with EmulatorThread(config, advance=advance) as emulator:
        emulator.control.reseed(7)
        bench = Bench.on_emulator(
            config,
            emulator,
            timeout_s=TIMEOUT_S,
            identify=False,
            driver_options=DRIVER_OPTIONS,
        )
        try:
            for uid in (REFERENCE, PUSHER):
                bench.units[uid].arm()
            bench.units[REFERENCE].hold_voltage(350.0, 2.0)
            bench.clock.sleep(2.0)
            bench.units[PUSHER].set_current(1.5)
            yield emulator, bench
        finally:
            for uid in (PUSHER, REFERENCE):
                bench.units[uid].safe_off()
            bench.close()


def plant_time(emulator: EmulatorThread) -> float:
    """The plant's own time (what it has stepped), read on the loop thread."""
    return emulator._loop.call(lambda: emulator.emulator.plant.time)


def test_an_advance_is_owed_until_an_instrument_is_asked() -> None:
    with driven("deferred") as (emulator, bench):
        control = emulator.control
        start = plant_time(emulator)
        told = control.advance(5.0)
        assert told == pytest.approx(start + 5.0)
        assert control.time() == told
        assert plant_time(emulator) == start
        bench.units[PUSHER].read()
        assert plant_time(emulator) == told


def test_status_and_faults_see_the_plant_at_the_time_told() -> None:
    with driven("deferred") as (emulator, _):
        control = emulator.control
        told = control.advance(7.5)
        assert control.status()["time"] == told
        told = control.advance(2.5)
        control.fault("E002.converter", "delay", seconds=0.0)
        assert plant_time(emulator) == told


def test_the_plant_never_owes_more_than_the_limit() -> None:
    with driven("deferred") as (emulator, _):
        control = emulator.control
        start = plant_time(emulator)
        for _ in range(int(DEFER_LIMIT_S // 10.0) + 1):
            control.advance(10.0)
        assert plant_time(emulator) >= start + DEFER_LIMIT_S
        assert control.time() - plant_time(emulator) < DEFER_LIMIT_S


def test_eager_advance_steps_at_once() -> None:
    with driven("eager") as (emulator, _):
        told = emulator.control.advance(5.0)
        assert plant_time(emulator) == told


def stored_j(emulator: EmulatorThread) -> float:
    """The true energy in the pushing unit's battery (``status``), joules."""
    ports = {port["port"]: port for port in emulator.control.status()["ports"]}
    return float(ports[f"{PUSHER}.battery"]["stored_energy_j"])


def _values(reading: Reading) -> tuple[float, float, float]:
    assert reading.soc is not None
    return reading.bus_voltage, reading.bus_current, reading.soc


@settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(steps=st.lists(st.tuples(st.floats(0.05, 40.0), st.booleans()), min_size=1, max_size=8))
def test_deferred_reads_what_eager_reads(steps: list[tuple[float, bool]]) -> None:
    """The same waits and reads on both emulators read the same: a bus held at 350 V with
    1.5 A pushed into it, read after random waits (some waits read nothing, so the deferred
    plant steps several of them at once); the battery's true energy agrees to 1 ppm."""
    with driven("deferred") as (lazy_emulator, lazy), driven("eager") as (eager_emulator, eager):
        before = stored_j(eager_emulator)
        for seconds, read in steps:
            lazy.clock.sleep(seconds)
            eager.clock.sleep(seconds)
            if not read:
                continue
            assert lazy.clock.now() == pytest.approx(eager.clock.now(), abs=1e-9)
            for uid in (REFERENCE, PUSHER):
                got = _values(lazy.units[uid].read())
                want = _values(eager.units[uid].read())
                assert got == pytest.approx(want, abs=0.02), (uid, seconds)
        after = stored_j(eager_emulator)
        assert stored_j(lazy_emulator) == pytest.approx(after, rel=1e-6)
        assert after < before  # the battery was discharging: the energies compared moved


def test_busy_poll_selector_returns_what_is_ready_and_waits_for_the_timeout() -> None:
    left, right = socket.socketpair()
    selector = BusyPollSelector(200e-6)
    try:
        selector.register(left, selectors.EVENT_READ)
        assert selector.select(0) == []
        assert selector.select(0.001) == []
        right.sendall(b"x")
        ready = selector.select(None)
        assert [key.fileobj for key, _ in ready] == [left]
    finally:
        selector.close()
        left.close()
        right.close()


@pytest.mark.parametrize("window", [-1e-6, float("nan")])
def test_busy_poll_window_must_be_a_time(window: float) -> None:
    with pytest.raises(ValueError, match="busy-poll window"):
        BusyPollSelector(window)


def test_a_zero_window_is_the_plain_loop() -> None:
    plain, polling = event_loop_factory(0.0), event_loop_factory(1e-4)
    try:
        assert not isinstance(plain._selector, BusyPollSelector)  # type: ignore[attr-defined]
        assert isinstance(polling._selector, BusyPollSelector)  # type: ignore[attr-defined]
    finally:
        plain.close()
        polling.close()


class _Reading:
    """A stand-in connection for :class:`InputWatch`: its descriptor, or -1 when paused."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def input_fd(self) -> int:
        return self.fd


def test_input_watch_sees_waiting_input_and_survives_a_reused_descriptor() -> None:
    left, right = socket.socketpair()
    watch = InputWatch()
    try:
        first, second = _Reading(left.fileno()), _Reading(left.fileno())
        watch.add(left.fileno(), first)  # type: ignore[arg-type]
        assert not watch.waiting()
        right.sendall(b"x")
        assert watch.waiting()
        first.fd = -1  # paused: the loop would not read it, so it does not count
        assert not watch.waiting()
        watch.add(left.fileno(), second)  # type: ignore[arg-type]
        watch.remove(left.fileno(), first)  # type: ignore[arg-type]
        assert watch.waiting()  # the newer connection on that descriptor stays watched
        watch.remove(left.fileno(), second)  # type: ignore[arg-type]
        assert not watch.waiting()
    finally:
        left.close()
        right.close()
