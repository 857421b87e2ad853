"""Test helper: several instrument models on one small plant, served on loopback.

Used by the EZA-2500, APIS BMS and PSB 10000 model tests. The servers run on a background
asyncio loop; everything that touches the plant runs in that loop's thread (:meth:`call`), so
the plant moves only when a test calls :meth:`PlantServers.advance`, which honours the
models' ``next_deadline``/``on_time`` contract as the emulator does: the plant is never
advanced past a model's deadline without that model's ``on_time`` running at it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from pymodbus import FramerType
from pymodbus.client import ModbusTcpClient

from hil.config.bench import BenchConfig
from hil.config.benchfile import load_bench_file
from instruments.emulation.models.base import BUS_NODE, InstrumentModel, ModelContext
from instruments.emulation.plant import NodeSpec, Plant
from instruments.emulation.plant_specs import AnyPortSpec
from instruments.emulation.transport import BackgroundLoop, Faults, ServerGroup

T = TypeVar("T")
M = TypeVar("M", bound=InstrumentModel)

BENCH_FILE = Path(__file__).resolve().parents[1] / "fixtures" / "benches" / "emulated.toml"
BUS_CAPACITANCE_F = 2e-3
BUS_BLEED_OHM = 10_000.0


def emulated_bench() -> BenchConfig:
    """The shipped emulated bench file, loaded."""
    return load_bench_file(BENCH_FILE)


def context(bench: BenchConfig, unit_id: str, driver: str) -> ModelContext:
    """The model context of the instrument with ``driver`` in unit ``unit_id``."""
    unit = bench.unit(unit_id)
    instrument = next(i for i in unit.instruments if i.driver == driver)
    return ModelContext(bench=bench, unit=unit, instrument=instrument)


@contextmanager
def modbus_client(port: int, *, rtu: bool = False, timeout: float = 5.0) -> Iterator[Any]:
    """A plain pymodbus TCP client on ``port`` (RTU framing over TCP with ``rtu``), connected.

    Typed ``Any``: pymodbus's sync ``connect``/``close`` are untyped.
    """
    framer = FramerType.RTU if rtu else FramerType.SOCKET
    client: Any = ModbusTcpClient("127.0.0.1", port=port, framer=framer, timeout=timeout)
    assert client.connect(), f"cannot connect to 127.0.0.1:{port}"
    try:
        yield client
    finally:
        client.close()


def bus_node() -> NodeSpec:
    """The bus as the emulator builds it (2 mF, 10 kohm bleed)."""
    return NodeSpec(name=BUS_NODE, capacitance_f=BUS_CAPACITANCE_F, bleed_ohm=BUS_BLEED_OHM)


class PlantServers:
    """A plant, its models and their servers on a background asyncio loop."""

    def __init__(
        self, nodes: Sequence[NodeSpec], specs: Sequence[AnyPortSpec], seed: int = 7
    ) -> None:
        self.plant = Plant(nodes, specs, seed=seed)
        self.models: list[InstrumentModel] = []
        self.faults: dict[str, Faults] = {}
        self._loop = BackgroundLoop("plant-servers")
        self._group = ServerGroup()

    def __enter__(self) -> PlantServers:
        self._loop.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._loop.run(self._group.close())
        self._loop.stop()

    def add(self, model_type: type[M], ctx: ModelContext) -> M:
        """Build a model on the plant (in the loop's thread) and remember it."""
        model = self.call(lambda: model_type(ctx, self.plant))
        self.models.append(model)
        self.faults[model.key] = Faults(model.key)
        return model

    def serve_tcp(self, model: InstrumentModel, *, terminator: bytes | None = None) -> int:
        """Serve ``model`` on a loopback TCP port; returns the port."""
        factory = self.call(model.session_factory)
        return self._loop.run(
            self._group.serve_tcp(
                factory, instrument=model.key, faults=self.faults[model.key], terminator=terminator
            )
        )

    def serve_pty(self, model: InstrumentModel) -> str:
        """Serve ``model`` on a new pty; returns the slave path."""
        factory = self.call(model.session_factory)
        return self._loop.run(
            self._group.serve_pty(factory, instrument=model.key, faults=self.faults[model.key])
        )

    def call(self, func: Callable[[], T]) -> T:
        """Run ``func`` in the loop's thread (where the servers touch the plant)."""
        return self._loop.call(func)

    def advance(self, seconds: float) -> float:
        """Advance the plant ``seconds``, stopping at every model deadline to run ``on_time``."""

        def run() -> float:
            plant = self.plant
            end = plant.time + seconds
            while True:
                now = plant.time
                for model in self.models:
                    due = model.next_deadline()
                    if due is not None and due <= now:
                        model.on_time(now)
                if now >= end:
                    return now
                upcoming = [
                    due
                    for model in self.models
                    if (due := model.next_deadline()) is not None and due > now
                ]
                plant.advance(min([end, *upcoming]) - now)

        return self.call(run)
