"""A bench's APIS units behind APIS's device HTTP API: what ``hil emulate --apis`` serves.

An *APIS unit* is a converter unit whose battery side has a BMS (a converter with a battery
emulator is Sony's rig, not a house APIS runs). For each, :class:`ApisFront` opens the
converter and the BMS with the toolkit's own drivers (on the emulator's resources, or the
lab's), arms the converter through its adapter (WAIT, then the limits word from the unit's
envelope: what dcdc_batt_comm's ``dcdc_batt_comm.yml`` would hold), and serves:

- the ``dcdc_v2`` API (apis-dcdc_batt_comm) of each unit on a port of its own;
- the ``dcdc_emulator`` API of every unit on one more port.

:meth:`ApisFront.stop` stops serving first, then makes each converter safe through its
adapter's ``safe_off`` (WAIT; what could not be done is logged and returned) and closes the
drivers. The service itself is :mod:`instruments.apis`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from hil.clock import WallClock
from hil.config.bench import BenchConfig, InstrumentConfig, UnitConfig
from hil.errors import ConfigError
from instruments.apis import (
    HTTP_FAMILY,
    DcdcDevice,
    HttpServers,
    UnitService,
    dcdc_emulator_app,
    dcdc_v2_app,
)
from instruments.base import Instrument

from .base import Part, UnitBase, as_bms
from .factory import build_unit, open_instrument

log = logging.getLogger(__name__)

#: The drivers' timeout behind the service: an instrument that does not answer is a 503
#: well within apis-main's 5 s request timeout.
SERVICE_IO_TIMEOUT_S = 1.0
EMULATOR_FLAVOUR = "dcdc_emulator"


@dataclass(frozen=True)
class ApisUnitConfig:
    """One APIS unit of a bench file: its config, its converter and its BMS."""

    unit: UnitConfig
    converter: InstrumentConfig
    bms: InstrumentConfig


def apis_units(config: BenchConfig) -> list[ApisUnitConfig]:
    """The bench's converter units with a BMS on their battery side, in file order."""
    found = []
    for unit in config.units:
        bus = unit.bus_instrument
        bms = [i for i in unit.battery_side if i.function == "bms"]
        if bus.function == "converter" and len(bms) == 1:
            found.append(ApisUnitConfig(unit, bus, bms[0]))
    return found


@dataclass(frozen=True)
class ServedUnit:
    """A unit served over HTTP: where, and the id and driver a bench file would give it."""

    unit: str
    url: str

    @property
    def id(self) -> str:
        return f"{self.unit}.apis"

    @property
    def driver(self) -> str:
        return HTTP_FAMILY.name

    def as_dict(self) -> dict[str, str]:
        return {"unit": self.unit, "id": self.id, "driver": self.driver, "resource": self.url}


class ApisFront:
    """The APIS units of a bench, each served as apis-dcdc_batt_comm serves a real unit."""

    def __init__(
        self,
        servers: HttpServers,
        units: list[UnitBase],
        services: list[UnitService],
        drivers: list[Instrument],
    ) -> None:
        self.servers = servers
        self.units = units
        self.services = services
        self._drivers = drivers

    @classmethod
    def start(
        cls,
        config: BenchConfig,
        *,
        resources: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        driver_options: Mapping[str, Mapping[str, Any]] | None = None,
        io_timeout: float = SERVICE_IO_TIMEOUT_S,
    ) -> ApisFront:
        """Open, arm and serve every APIS unit of ``config`` (``ConfigError`` if none).

        ``resources`` replaces instrument resources (the emulator's); ``driver_options``
        adds ``open`` keywords per driver name (against the emulator:
        ``EMULATOR_DRIVER_OPTIONS``). Ports are any free ones on ``host``.
        """
        if resources:
            config = config.with_resources(resources)
        chosen = apis_units(config)
        if not chosen:
            raise ConfigError(f"{config.path}: no APIS unit (a converter with a BMS) to serve")
        drivers: list[Instrument] = []
        units: list[UnitBase] = []
        services: list[UnitService] = []
        try:
            for item in chosen:
                unit, service = _open_unit(item, drivers, driver_options, io_timeout)
                units.append(unit)
                services.append(service)
            apps: list[tuple[str, Any, int]] = [(s.unit_id, dcdc_v2_app(s), 0) for s in services]
            by_unit = {s.unit_id: s for s in services}
            apps.append((EMULATOR_FLAVOUR, dcdc_emulator_app(by_unit), 0))
            servers = HttpServers(apps, host=host).start()
        except BaseException:
            _close(units, drivers)
            raise
        front = cls(servers, units, services, drivers)
        for served in front.served:
            log.info("unit %s: dcdc_batt_comm API at %s", served.unit, served.url)
        return front

    @property
    def served(self) -> list[ServedUnit]:
        """Each unit's ``dcdc_v2`` service, in bench-file order."""
        return [ServedUnit(s.unit_id, self.servers.url(s.unit_id)) for s in self.services]

    @property
    def emulator_url(self) -> str:
        """The ``dcdc_emulator`` flavour's URL (every unit, ``/get/unit/{id}`` …)."""
        return self.servers.url(EMULATOR_FLAVOUR)

    def stop(self) -> list[str]:
        """Stop serving, make every converter safe (WAIT), close the drivers.

        Returns what could not be made safe (also logged); never raises.
        """
        try:
            self.servers.stop()
        finally:
            failures = _close(self.units, self._drivers)
            ids = ", ".join(s.unit_id for s in self.services)
            outcome = f"; NOT safe: {'; '.join(failures)}" if failures else ""
            log.warning("APIS front stopped serving; converters of %s set to WAIT%s", ids, outcome)
        return failures


def _open_unit(
    item: ApisUnitConfig,
    drivers: list[Instrument],
    options: Mapping[str, Mapping[str, Any]] | None,
    io_timeout: float,
) -> tuple[UnitBase, UnitService]:
    opened: dict[str, Instrument] = {}
    for inst in (item.converter, item.bms):
        driver = open_instrument(inst, timeout=min(inst.timeout, io_timeout), extra=options)
        drivers.append(driver)
        opened[inst.name] = driver
    converter = opened[item.converter.name]
    if not isinstance(converter, DcdcDevice):
        raise ConfigError(
            f"{item.converter.key} ({item.converter.driver}): this converter's driver cannot "
            "answer dcdc_batt_comm's reads (voltage reference, limits word, alarm words)"
        )
    bms = as_bms(Part(item.unit.id, item.bms.name, item.bms.driver, opened[item.bms.name]))
    unit = build_unit(item.unit, opened, WallClock())
    unit.arm()
    service = UnitService(item.unit.id, converter, bms, io_timeout=io_timeout)
    return unit, service


def _close_driver(driver: Instrument) -> None:
    try:
        driver.close()
    except Exception as exc:  # closing is best effort; the output is already safe
        log.warning("closing %r failed: %s", driver, exc)


def _close(units: list[UnitBase], drivers: list[Instrument]) -> list[str]:
    failures: list[str] = []
    for unit in units:
        failures.extend(unit.safe_off())
    if drivers:  # concurrently: closing a serial line takes pyserial a while
        with ThreadPoolExecutor(len(drivers)) as pool:
            list(pool.map(_close_driver, drivers))
    for failure in failures:
        log.error("APIS front: %s", failure)
    return failures
