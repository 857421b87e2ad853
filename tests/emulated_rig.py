"""The emulated bench as the exchange, supervisor and safety tests use it.

A :class:`Rig` is the default bench file served by an in-process emulator, a ``Bench`` on
its loopback resources with a ``SimClock``, and helpers that read the plant's *true* state
(``control.status()``), so tests check physics, not only what the drivers report.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hil.clock import SimClock
from hil.config.bench import BenchConfig
from hil.config.benchfile import load_bench_file
from hil.errors import HilError
from hil.exchange.engine import ExchangeEngine
from hil.recorder import MemoryRecorder
from hil.units import EMULATOR_DRIVER_OPTIONS, ConverterUnit
from hil.units.bench import Bench
from instruments.emulation.client import ControlClient
from instruments.emulation.process import EmulatorThread

ROOT = Path(__file__).resolve().parents[1]
EMULATED_BENCH = ROOT / "fixtures" / "benches" / "emulated.toml"
#: Short instrument timeouts keep fault tests quick (a dead line costs one timeout), yet
#: long enough for an answer on a loaded 2-core machine (0.2 s was not, with two CPU hogs).
TIMEOUT_S = 1.0
#: Drivers retry once against the emulator (a garbled frame is tried again once).
DRIVER_OPTIONS = {**EMULATOR_DRIVER_OPTIONS, "eza2500": {"pacing": 0.0, "retries": 1}}
#: Simulated seconds that let a bus left at 350 V decay below the activation limit.
BUS_DECAY_S = 30.0


@dataclass
class Rig:
    """An emulator, a bench on it with simulated time, and the true state of the plant."""

    config: BenchConfig
    emulator: EmulatorThread
    bench: Bench
    clock: SimClock

    @classmethod
    def start(
        cls,
        path: Path = EMULATED_BENCH,
        *,
        timeout: float = TIMEOUT_S,
        policy: Mapping[str, Any] | None = None,
    ) -> Rig:
        """Serve ``path`` and open a bench on it; ``policy`` overrides ``[apis]`` numbers."""
        config = load_bench_file(path)
        if policy:
            config = dataclasses.replace(config, apis=dataclasses.replace(config.apis, **policy))
        emulator = EmulatorThread(config)
        try:
            bench = Bench.on_emulator(
                config, emulator, timeout_s=timeout, identify=False, driver_options=DRIVER_OPTIONS
            )
        except BaseException:
            emulator.stop()
            raise
        bench.arm_all()
        assert isinstance(bench.clock, SimClock)
        return cls(config, emulator, bench, bench.clock)

    def stop(self) -> None:
        try:
            self.bench.safe_off_all()
            self.bench.close()
        finally:
            self.emulator.stop()

    @property
    def control(self) -> ControlClient:
        return self.emulator.control

    def engine(self, **options: Any) -> ExchangeEngine:
        """A fresh engine on this bench, recording into memory."""
        options.setdefault("recorder", MemoryRecorder())
        return ExchangeEngine(self.bench, **options)

    # -- true state ----------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return self.control.status()

    def ports(self, status: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
        """Every plant port by name (``E001.converter`` …), true values."""
        status = status or self.status()
        return {p["port"]: p for p in status["ports"]}

    def bus_ports(self, status: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
        """Each unit's port on the bus, by unit id (current + = pushed into the bus)."""
        return {p["unit"]: p for p in self.ports(status).values() if p["node"] == "bus"}

    def battery_ports(self, status: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
        """Each unit's plant battery (units with an APIS battery), by unit id."""
        return {p["unit"]: p for p in self.ports(status).values() if p["kind"] == "battery"}

    # -- between tests ---------------------------------------------------------------------
    def reset(self) -> None:
        """Every fault cleared, everything safe, latched alarms reset, dropped connections
        reopened, SoCs back to the bench file's, the bus left to decay, the sensor noise
        restarted from the bench file's seed — so a test sees the same readings whichever
        tests ran before it (the protections armed at the start stay programmed)."""
        self.control.clear()
        self.bench.safe_off_all()
        for unit in self.bench.units.values():
            try:
                unit.read()
            except HilError:
                unit.reconnect()  # a line a fault dropped (reopening costs time: only then)
            if isinstance(unit, ConverterUnit):
                unit.converter.clear_alarms()
        for uid, port in self.config.emulation.ports.items():
            if port.soc is not None and self.config.unit(uid).has_battery:
                self.control.set(uid, "soc", port.soc)
        self.clock.sleep(BUS_DECAY_S)
        self.control.reseed(self.config.emulation.seed)
