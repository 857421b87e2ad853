"""The emulator: every instrument of a bench on one plant, served on loopback.

``Emulator(bench)`` builds the plant from each instrument model's ports, then ``start()``
serves every instrument on its real protocol (SCPI over TCP or a serial line, Modbus TCP or
RTU, EZA-2500 binary frames) and the control channel. It is the
:class:`~instruments.emulation.control.ControlTarget`: ``status`` reports the true state of
every port, ``fault``/``clear`` inject faults, ``make_safe`` turns every output off.

With ``clock="sim"`` time moves only on ``advance``; with ``clock="wall"`` a ticker advances
the plant with real time scaled by ``speed``.

Deferred advance (sim clock): an ``advance`` answers with the new time at once and the plant
owes it; the plant steps through what it owes when something next looks at it (an
instrument's request, a control request other than ``advance`` and ``time``), or when it owes
:data:`DEFER_LIMIT_S`. A community's agents wake every few seconds and mostly talk to no
instrument, so their waits cost a round trip and no stepping, and the plant steps the whole
gap at once (longer, fewer steps). What any client sees is the plant at the time it was told.

Households (``[emulation.ports.<unit>.household]``) join their unit's battery in the plant;
``status`` reports their counters per battery port, and :func:`standalone_day` simulates the
same bench with every unit idle, the "same day without interchange" to compare against.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from instruments.emulation.control import ControlServer, RequestError
from instruments.emulation.description import (
    BenchDescription,
    HouseholdConfig,
    UnitDescription,
)
from instruments.emulation.fault_table import fault_problem
from instruments.emulation.household import DAY_S, HouseholdProfile
from instruments.emulation.models import InstrumentModel, ModelContext, Wire, models
from instruments.emulation.models.base import BUS_NODE
from instruments.emulation.plant import NodeSpec, Plant
from instruments.emulation.plant_specs import (
    AnyPortSpec,
    BatterySpec,
    ConverterSpec,
    HouseholdSpec,
)
from instruments.emulation.timing import TIMING_MODES, InstrumentTiming, TimingMode
from instruments.emulation.transport import FAULT_KINDS, ActivityHooks, Faults, ServerGroup
from instruments.emulation.udp import UdpServer
from instruments.errors import ConfigError

log = logging.getLogger(__name__)

ClockMode = Literal["sim", "wall"]
SerialMode = Literal["tcp", "pty"]
#: How a sim-clock emulator steps its plant on ``advance`` (see the module doc).
AdvanceMode = Literal["deferred", "eager"]

#: A port is safe when its output is off (or converter WAIT) and |current| is below this.
SAFE_CURRENT_A = 0.010
#: Bus capacitance and bleed: a bus nobody holds decays with a 20 s time constant.
BUS_CAPACITANCE_F = 2e-3
BUS_BLEED_OHM = 10_000.0
WALL_TICK_S = 0.02
#: Most simulated seconds the plant owes before it steps anyway: a catch-up runs inside an
#: instrument's request, without yielding to the event loop, so it must stay short.
DEFER_LIMIT_S = 60.0
#: The fastest wall clock (``--speed``): 1000 simulated seconds per wall second keeps each
#: 20 ms tick at 20 simulated seconds, well inside one plant step budget, so the servers
#: are never starved by the ticker.
MAX_SPEED = 1000.0


@dataclass(frozen=True)
class EmulatedInstrument:
    """One served instrument, as ``hil emulate`` prints it."""

    unit: str
    id: str
    driver: str
    resource: str

    def as_dict(self) -> dict[str, str]:
        return {"unit": self.unit, "id": self.id, "driver": self.driver, "resource": self.resource}


@dataclass
class EmulatorInfo:
    """Where the emulator serves: the control channel and every instrument's resource."""

    control: str
    instruments: list[EmulatedInstrument] = field(default_factory=list)
    #: HTTP services in front of units (``hil emulate --apis``): not instruments of the
    #: bench file, so not in :attr:`resources`.
    services: list[EmulatedInstrument] = field(default_factory=list)

    @property
    def resources(self) -> dict[str, str]:
        """Instrument key → resource, the form ``hil``'s ``BenchConfig.with_resources`` takes."""
        return {i.id: i.resource for i in self.instruments}

    def as_dict(self) -> dict[str, Any]:
        return {"control": self.control, "instruments": [i.as_dict() for i in self.instruments]}


def build_plant(
    bench: BenchDescription, *, start_of_day_s: float | None = None
) -> tuple[Plant, list[tuple[ModelContext, list[str]]]]:
    """The plant of a bench, and the plant ports each instrument's model owns.

    Nodes: the bus, and a battery-side node for every converter unit. A unit's household
    joins the battery of its BMS. ``start_of_day_s`` overrides the bench's ``start_of_day``.
    """
    owned: list[tuple[ModelContext, list[str]]] = []
    specs: list[AnyPortSpec] = []
    nodes = [NodeSpec(name=BUS_NODE, capacitance_f=BUS_CAPACITANCE_F, bleed_ohm=BUS_BLEED_OHM)]
    for unit in bench.units:
        first = len(specs)
        if unit.kind == "converter":
            nodes.append(NodeSpec(name=f"{unit.id}.battery"))
        for instrument in unit.instruments:
            model = models().get(instrument.driver)
            if model is None:
                known = ", ".join(sorted(models())) or "none"
                raise ConfigError(
                    f"{bench.path}: unit {unit.id}: no emulation for driver "
                    f"{instrument.driver!r}; emulated drivers: {known}"
                )
            ctx = ModelContext(bench=bench, unit=unit, instrument=instrument)
            nodes.extend(model.node_specs(ctx))
            ports = model.port_specs(ctx)
            owned.append((ctx, [spec.name for spec in ports]))
            specs.extend(ports)
        house = bench.emulation.ports[unit.id].household
        if house is not None:
            _add_household(bench, unit, house, specs, first)
    start = bench.emulation.start_of_day if start_of_day_s is None else start_of_day_s
    plant = Plant(nodes, specs, seed=bench.emulation.seed, start_of_day_s=start % DAY_S)
    return plant, owned


def _add_household(
    bench: BenchDescription,
    unit: UnitDescription,
    house: HouseholdConfig,
    specs: list[AnyPortSpec],
    first: int,
) -> None:
    """Put ``house`` on the battery among ``specs[first:]`` (the unit's ports), after
    checking that the household alone keeps the battery voltage inside the unit's battery
    window and below its converter's battery-side trips."""
    where = f"{bench.path}: emulation.ports.{unit.id}.household"
    index = next((k for k in range(first, len(specs)) if isinstance(specs[k], BatterySpec)), None)
    if index is None:
        raise ConfigError(f"{where}: unit {unit.id} has no emulated battery to put it on")
    battery = specs[index]
    assert isinstance(battery, BatterySpec)
    profile = HouseholdProfile.synthetic(
        pv_peak_w=house.pv_peak_w,
        weather=house.weather,
        load_wh_per_day=house.load_wh_per_day,
        seed=house.seed,
    )
    _check_household_swing(where, unit, battery, house, profile, specs[first:])
    household = HouseholdSpec(
        profile=profile, reserve_soc=house.reserve_soc, full_soc=house.full_soc
    )
    specs[index] = dataclasses.replace(battery, household=household)


def _check_household_swing(
    where: str,
    unit: UnitDescription,
    battery: BatterySpec,
    house: HouseholdConfig,
    profile: HouseholdProfile,
    unit_specs: list[AnyPortSpec],
) -> None:
    """The largest PV surplus just below ``full_soc`` and the largest net load just above
    ``reserve_soc``, as constant power through the battery's internal resistance, must keep
    its terminal inside the battery window (envelope, converter battery-side trips)."""
    r = battery.r_internal_ohm
    high, low = math.inf, -math.inf
    env = unit.envelope
    if env.battery_voltage_max is not None:
        high = env.battery_voltage_max
    if env.battery_voltage_min is not None:
        low = env.battery_voltage_min
    for spec in unit_specs:
        if isinstance(spec, ConverterSpec):
            ovp = spec.battery_protection.ovp_v
            high = min(high, spec.max_battery_v, math.inf if ovp is None else ovp)
            uvlo = spec.battery_protection.uvlo_v
            low = max(low, spec.min_battery_v, -math.inf if uvlo is None else uvlo)
    surplus = float((profile.pv_w - profile.load_w).max(initial=0.0))
    deficit = float((profile.load_w - profile.pv_w).max(initial=0.0))
    emf_full, emf_reserve = battery.ocv(house.full_soc), battery.ocv(house.reserve_soc)
    v_high = 0.5 * (emf_full + math.sqrt(emf_full**2 + 4.0 * r * surplus))
    if v_high > high:
        limit = high * (high - emf_full) / r
        raise ConfigError(
            f"{where}.pv_peak_w: a PV surplus of {surplus:.0f} W (pv_peak_w = "
            f"{house.pv_peak_w:g}) would raise battery {battery.name} to {v_high:.2f} V at "
            f"full_soc {house.full_soc:g} through its {r:g} ohm, above its {high:g} V limit; "
            f"allowed: a PV surplus up to {max(limit, 0.0):.0f} W (lower pv_peak_w, or "
            "battery_resistance)"
        )
    disc = emf_reserve**2 - 4.0 * r * deficit
    v_low = 0.5 * (emf_reserve + math.sqrt(disc)) if disc >= 0 else 0.0
    if v_low < low:
        limit = low * (emf_reserve - low) / r
        raise ConfigError(
            f"{where}.load_wh_per_day: a net load of {deficit:.0f} W (load_wh_per_day = "
            f"{house.load_wh_per_day:g}) would pull battery {battery.name} to {v_low:.2f} V "
            f"at reserve_soc {house.reserve_soc:g} through its {r:g} ohm, below its {low:g} V "
            f"limit; allowed: a net load up to {max(limit, 0.0):.0f} W (lower "
            "load_wh_per_day, or battery_resistance, or a higher reserve_soc)"
        )


def standalone_day(
    bench: BenchDescription,
    seconds: float,
    *,
    start_time: float = 0.0,
    socs: Mapping[str, float] | None = None,
) -> dict[str, dict[str, float]]:
    """The households of ``bench`` over ``seconds`` with every unit idle: no interchange.

    Builds the plant from the bench as the emulator does, makes every output safe
    (converters in WAIT, as an idle APIS unit), optionally starts at plant time
    ``start_time`` (time of day ``start_of_day + start_time``) with the unit SoCs ``socs``
    (unit id -> 0..1), advances ``seconds`` and returns each household's counters by unit
    id (the keys of ``status``'s ``household``; energies in Wh over the span).
    """
    if not (math.isfinite(seconds) and seconds >= 0):
        raise ConfigError(f"standalone_day: seconds must be finite and >= 0, got {seconds!r}")
    if not math.isfinite(start_time):
        raise ConfigError(f"standalone_day: start_time must be finite, got {start_time!r}")
    plant, owned = build_plant(bench, start_of_day_s=bench.emulation.start_of_day + start_time)
    plant.make_safe()
    batteries: dict[str, str] = {}
    for ctx, ports in owned:
        for name in ports:
            if plant.port(name).kind == "battery":
                batteries.setdefault(ctx.unit.id, name)
    for unit_id, soc in (socs or {}).items():
        if unit_id not in batteries:
            known = ", ".join(batteries) or "none"
            raise ConfigError(
                f"{bench.path}: standalone_day: unit {unit_id!r} has no battery; "
                f"units with one: {known}"
            )
        if isinstance(soc, float) and math.isnan(soc):
            continue
        plant.battery(batteries[unit_id]).soc = soc
    plant.advance(seconds)
    houses = plant.households()
    return {
        unit_id: houses[name].counters() for unit_id, name in batteries.items() if name in houses
    }


class Emulator:
    """All instruments of one bench, their plant, servers and control channel.

    Instruments bind ``host``; the control channel binds ``control_host`` (loopback unless
    the caller exposes it on purpose: it is unauthenticated).
    """

    def __init__(
        self,
        bench: BenchDescription,
        *,
        clock: ClockMode = "sim",
        speed: float = 1.0,
        host: str = "127.0.0.1",
        control_port: int = 0,
        serial: SerialMode | None = None,
        control_host: str = "127.0.0.1",
        timing: TimingMode | None = None,
        advance: AdvanceMode = "deferred",
    ) -> None:
        if clock not in ("sim", "wall"):
            raise ConfigError(f"clock must be 'sim' or 'wall', got {clock!r}")
        if not (math.isfinite(speed) and 0 < speed <= MAX_SPEED):
            raise ConfigError(
                f"speed must be a number above 0 and at most {MAX_SPEED:g} (simulated seconds "
                f"per wall second), got {speed!r}"
            )
        self.bench = bench
        self.clock: ClockMode = clock
        self.speed = speed
        self.host = host
        self.serial: SerialMode = serial or bench.emulation.serial_transport
        self.plant, owned = build_plant(bench)
        self.models: dict[str, InstrumentModel] = {
            ctx.key: models()[ctx.instrument.driver](ctx, self.plant) for ctx, _ in owned
        }
        self._owner = {port: self.models[ctx.key] for ctx, ports in owned for port in ports}
        self.faults = {key: Faults(key) for key in self.models}
        if timing is not None and timing not in TIMING_MODES:
            raise ConfigError(f"timing must be 'real' or 'none', got {timing!r}")
        #: Each instrument's timing where it is real (the others answer at once).
        self.timings: dict[str, InstrumentTiming] = {
            key: model.timing()
            for key, model in self.models.items()
            if self.timing_mode(model.ctx.unit.id, timing) == "real"
        }
        #: Whether ``advance`` is deferred (sim clock only; see the module doc).
        self.defer_advance = advance == "deferred" and clock == "sim"
        #: Simulated seconds told to clients and not yet stepped by the plant.
        self._owed = 0.0
        self.safe_reason = ""
        self.info: EmulatorInfo | None = None
        self.stopped = asyncio.Event()
        self._group = ServerGroup()
        self._control = ControlServer(
            self,
            on_shutdown=self._request_shutdown,
            host=control_host,
            port=control_port,
            before_advance=self._group.drain_input,
        )
        self._ticker: asyncio.Task[None] | None = None

    def timing_mode(self, unit_id: str, override: TimingMode | None = None) -> TimingMode:
        """The timing of ``unit_id``'s instruments: its port's ``timing``, else
        ``override`` (``hil emulate --timing``), else the bench's ``[emulation] timing``,
        else real under a wall clock and none under a sim clock."""
        emulation = self.bench.emulation
        port = emulation.ports.get(unit_id)
        if port is not None and port.timing is not None:
            return port.timing
        chosen = override or emulation.timing
        if chosen is not None:
            return chosen
        return "real" if self.clock == "wall" else "none"

    # -- serving ---------------------------------------------------------------------
    async def start(self) -> EmulatorInfo:
        """Serve every instrument and the control channel; returns where.

        ``OSError`` (a port in use, a host that does not resolve) after closing whatever
        had started: no client can have driven an output yet.
        """
        served = []
        try:
            for key, model in self.models.items():
                resource = await self._serve(key, model)
                served.append(EmulatedInstrument(model.ctx.unit.id, key, model.driver, resource))
            host, port = await self._control.start()
        except OSError:
            await self._control.stop()
            await self._group.close()
            raise
        if self.clock == "wall":
            self._ticker = asyncio.create_task(self._tick())
        self.info = EmulatorInfo(control=f"{host}:{port}", instruments=served)
        return self.info

    async def _serve(self, key: str, model: InstrumentModel) -> str:
        faults = self.faults[key]
        timing = self.timings.get(key)
        hooks = ActivityHooks(on_receive=self._on_receive) if self.defer_advance else None
        if model.wire is Wire.ECHONET_UDP:
            server = UdpServer(
                model.datagram_handler(),
                instrument=key,
                faults=faults,
                host=self.host,
                timing=timing,
                hooks=hooks,
            )
            port = await server.start()
            self._group.add(server)
            return f"echonet://{self.host}:{port}{model.resource_path}"
        factory = model.session_factory()
        line = model.wire in (Wire.SCPI_LAN, Wire.SCPI_SERIAL)
        terminator = b"\n" if line else None
        serial_line = model.wire is not Wire.SCPI_LAN and model.wire is not Wire.MODBUS_TCP
        if serial_line and self.serial == "pty":
            path = await self._group.serve_pty(
                factory,
                instrument=key,
                faults=faults,
                terminator=terminator,
                timing=timing,
                hooks=hooks,
            )
            return _pty_resource(model.wire, path)
        port = await self._group.serve_tcp(
            factory,
            instrument=key,
            faults=faults,
            host=self.host,
            terminator=terminator,
            timing=timing,
            hooks=hooks,
        )
        return _tcp_resource(model.wire, self.host, port)

    def _on_receive(self, instrument: str, size: int) -> None:
        self.catch_up()

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(WALL_TICK_S)
            now = loop.time()
            self._advance_plant((now - last) * self.speed)
            last = now

    def _request_shutdown(self) -> None:
        self.make_safe("shutdown requested on the control channel")
        self.stopped.set()

    async def stop(self) -> None:
        """Make every output safe, stop serving."""
        if not self.safe_reason:
            self.make_safe("emulator stopped")
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        await self._control.stop()
        await self._group.close()

    # -- control target ------------------------------------------------------------------
    def time(self) -> float:
        return self.plant.time + self._owed

    def advance(self, seconds: float) -> float:
        if self.clock != "sim":
            raise RequestError("'advance' needs --clock sim; this emulator runs on wall time")
        if not self.defer_advance:
            return self._advance_plant(seconds)
        self._owed += seconds
        if self._owed < DEFER_LIMIT_S:
            return self.plant.time + self._owed
        return self.catch_up()

    def catch_up(self) -> float:
        """Step the plant through the simulated time it owes (deferred ``advance``s);
        returns the plant's time."""
        owed, self._owed = self._owed, 0.0
        if owed > 0.0:
            return self._advance_plant(owed)
        return self.plant.time

    def _advance_plant(self, seconds: float) -> float:
        """Advance the plant, stopping at every model deadline (e.g. an instrument's own
        communication watchdog) to run its time-driven behaviour when it is due."""
        plant = self.plant
        end = plant.time + seconds
        while True:
            now = plant.time
            upcoming = []
            for model in self.models.values():
                due = model.next_deadline()
                if due is not None and due <= now:
                    model.on_time(now)
                    due = model.next_deadline()
                if due is not None and due > now:
                    upcoming.append(due)
            if now >= end:
                return now
            plant.advance(min([end, *upcoming]) - now)

    def _model(self, instrument: str) -> InstrumentModel:
        model = self.models.get(instrument)
        if model is None:
            raise RequestError(
                f"no instrument {instrument!r}; instruments: {', '.join(self.models)}"
            )
        return model

    def fault(self, instrument: str, kind: str, params: dict[str, Any]) -> None:
        self.catch_up()
        model = self._model(instrument)
        problem = fault_problem(instrument, kind, params, model.extra_faults)
        if problem is not None:
            raise RequestError(problem)
        try:
            if kind in FAULT_KINDS:
                self.faults[instrument].apply(kind, params)
            else:
                model.fault(kind, params)
        except (ConfigError, ValueError) as exc:
            raise RequestError(str(exc)) from None
        log.info("fault %s on %s: %s", kind, instrument, params)

    def clear(self, instrument: str | None) -> None:
        self.catch_up()
        keys = list(self.models) if instrument is None else [self._model(instrument).key]
        for key in keys:
            self.faults[key].clear()
            self.models[key].clear_faults()
        if instrument is None:
            self.plant.clear_trips()
            self.safe_reason = ""

    def _timing_status(self, key: str) -> dict[str, Any]:
        timing = self.timings.get(key)
        return {"mode": "none"} if timing is None else timing.describe()

    def reseed(self, seed: int) -> None:
        self.catch_up()
        self.plant.reseed(seed)

    def set_value(self, unit: str, field: str, value: Any) -> None:
        self.catch_up()
        models = [m for m in self.models.values() if m.ctx.unit.id == unit]
        if not models:
            units = ", ".join(u.id for u in self.bench.units)
            raise RequestError(f"no unit {unit!r}; units: {units}")
        try:
            if not any(m.set_value(field, value) for m in models):
                raise RequestError(f"unit {unit} has no settable field {field!r}")
        except (ConfigError, ValueError) as exc:
            raise RequestError(f"unit {unit}: {exc}") from None

    def make_safe(self, reason: str) -> None:
        self.catch_up()
        log.warning("making every output safe: %s", reason)
        self.plant.make_safe(at_once=True)
        for model in self.models.values():
            model.after_make_safe()
        self.safe_reason = reason

    def status(self) -> dict[str, Any]:
        self.catch_up()
        snapshot = self.plant.snapshot()
        ports = [
            _port_status(name, state, self._owner.get(name))
            for name, state in snapshot["ports"].items()
        ]
        return {
            "time": snapshot["time"],
            "clock": self.clock,
            "speed": self.speed,
            "nodes": snapshot["nodes"],
            "ports": ports,
            "instruments": {
                key: {
                    **m.status(),
                    "faults": self.faults[key].describe(),
                    "timing": self._timing_status(key),
                }
                for key, m in self.models.items()
            },
            "all_safe": all(p["safe"] for p in ports),
            "safe_reason": self.safe_reason,
            "resources": self.info.resources if self.info is not None else {},
        }


def _port_status(
    name: str, state: Mapping[str, Any], model: InstrumentModel | None
) -> dict[str, Any]:
    """One port's line in ``status``: the plant's true state plus who owns it and ``safe``."""
    kind = state["kind"]
    current = float(state["current"])
    if kind == "battery":
        safe = True  # a battery is not an output; its converter decides
    elif kind == "converter":
        safe = state["mode"] == "WAIT" and abs(current) < SAFE_CURRENT_A
    else:
        safe = not state["output_on"] and abs(current) < SAFE_CURRENT_A
    unit = model.ctx.unit.id if model is not None else name.split(".", 1)[0]
    return {
        "port": name,
        "unit": unit,
        "instrument": model.key if model is not None else None,
        "driver": model.driver if model is not None else None,
        **state,
        "safe": safe,
    }


def _tcp_resource(wire: Wire, host: str, port: int) -> str:
    if wire is Wire.SCPI_LAN:
        return f"TCPIP0::{host}::{port}::SOCKET"
    if wire is Wire.SCPI_SERIAL:
        return f"ASRLsocket://{host}:{port}::INSTR"
    if wire is Wire.MODBUS_TCP:
        return f"modbus-tcp://{host}:{port}"
    if wire is Wire.MODBUS_RTU:
        return f"modbus-rtu-tcp://{host}:{port}"
    return f"socket://{host}:{port}"


def _pty_resource(wire: Wire, path: str) -> str:
    if wire is Wire.SCPI_SERIAL:
        return f"ASRL{path}::INSTR"
    if wire is Wire.MODBUS_RTU:
        return f"modbus-rtu:{path}"
    return path
