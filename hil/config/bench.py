"""What a loaded bench file holds: frozen configuration of the bench and its units.

``hil.config.benchfile.load_bench_file`` builds these; the emulator and ``Bench`` read them. A
``BenchConfig`` names its file and the file's SHA-256 for the report, and
``with_resources`` returns a copy whose instruments use other resources (the emulator's).
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from hil.config.apis_policy import ApisPolicy
from hil.config.community import CommunityConfig
from hil.config.emulation import EmulationConfig
from hil.config.lab import LabgridConfig
from hil.config.ratings import (
    EMULATED,
    RESOURCE_FORMS,
    Family,
    Function,
    InstrumentRating,
    SettingValue,
    Transport,
    family,
    resource_problem,
)
from hil.envelope import Envelope, UnitEnvelope
from hil.errors import ConfigError

Kind = Literal["converter", "supply", "load", "bidirectional", "ev"]
Node = Literal["bus", "battery"]
KINDS: tuple[Kind, ...] = ("converter", "supply", "load", "bidirectional", "ev")
#: Functions whose instrument reports a battery's state of charge (a BMS; an EV charger
#: reads the car's).
BATTERY_FUNCTIONS: frozenset[Function] = frozenset({"bms", "ev"})
NODES: tuple[Node, ...] = ("bus", "battery")


@dataclass(frozen=True)
class InstrumentConfig:
    """One instrument of a unit, as the bench file declares it."""

    unit_id: str
    name: str
    driver: str
    model: str
    rating: InstrumentRating
    resource: str
    node: Node
    timeout: float
    retries: int
    settings: Mapping[str, SettingValue]
    #: The resource as written in the file (``resource`` may be replaced by the emulator's).
    declared_resource: str = ""
    #: When the instrument's calibration falls due (``calibration_due``; the report warns
    #: when a run is later), or None.
    calibration_due: datetime.date | None = None

    @property
    def key(self) -> str:
        """``<unit id>.<instrument name>``: how ``BenchConfig.with_resources`` names it."""
        return f"{self.unit_id}.{self.name}"

    @property
    def spec(self) -> Family:
        return family(self.driver)

    @property
    def function(self) -> Function:
        return self.spec.function

    @property
    def transport(self) -> Transport:
        return self.spec.transport

    @property
    def emulated_only(self) -> bool:
        """True while the resource is the placeholder ``"emulated"``."""
        return self.resource == EMULATED

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "driver": self.driver,
            "model": self.model,
            "resource": self.resource,
            "declared_resource": self.declared_resource,
            "node": self.node,
            "timeout": self.timeout,
            "retries": self.retries,
            "calibration_due": None if self.calibration_due is None else str(self.calibration_due),
            "settings": dict(self.settings),
            "rating": {
                "voltage_max": self.rating.voltage_max,
                "current_source_max": self.rating.current_source_max,
                "current_sink_max": self.rating.current_sink_max,
                "power_max": self.rating.power_max,
            },
        }


@dataclass(frozen=True)
class UnitConfig:
    """One unit on the bus: its kind, instruments, envelope and place in the topology.

    Kinds: ``converter`` (a DC/DC converter on the bus whose battery side is an APIS
    battery, or a supply + electronic load, or a bidirectional supply), ``supply`` (source
    only), ``load`` (sink only), ``bidirectional`` (source and sink).
    """

    id: str
    kind: Kind
    description: str
    instruments: tuple[InstrumentConfig, ...]
    envelope: UnitEnvelope
    branch: str | None = None
    large_capacity: bool = False

    def instrument(self, name: str) -> InstrumentConfig:
        for inst in self.instruments:
            if inst.name == name:
                return inst
        names = ", ".join(i.name for i in self.instruments)
        raise KeyError(f"unit {self.id} has no instrument {name!r}; it has: {names}")

    @property
    def bus_instrument(self) -> InstrumentConfig:
        """The instrument whose terminals are on the bus (converter, supply, load, …)."""
        return next(i for i in self.instruments if i.node == "bus")

    @property
    def battery_side(self) -> tuple[InstrumentConfig, ...]:
        """Instruments on the unit's battery-side node (converter units only)."""
        return tuple(i for i in self.instruments if i.node == "battery")

    @property
    def has_battery(self) -> bool:
        """True if a BMS (or an EV charger) reports a state of charge for this unit."""
        return any(i.function in BATTERY_FUNCTIONS for i in self.instruments)

    @property
    def can_source(self) -> bool:
        return self.envelope.can_source

    @property
    def can_sink(self) -> bool:
        return self.envelope.can_sink

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "description": self.description,
            "branch": self.branch,
            "large_capacity": self.large_capacity,
            "instruments": [i.to_dict() for i in self.instruments],
            "envelope": self.envelope.as_dict(),
        }


@dataclass(frozen=True)
class Branch:
    """One branch of the bus wiring: its current capacity (A) and the units on it."""

    id: str
    capacity: float
    unit_ids: tuple[str, ...]


@dataclass(frozen=True)
class Topology:
    """Branches of the bus (APIS ``safety.gridTopologyBasedEvaluation``); units not on a
    branch sit at the hub. ``check_enabled`` is APIS's ``….enabled``."""

    check_enabled: bool
    branches: Mapping[str, Branch]

    def branch_of(self, unit_id: str) -> str | None:
        for branch in self.branches.values():
            if unit_id in branch.unit_ids:
                return branch.id
        return None


@dataclass(frozen=True)
class BenchConfig:
    """A loaded, checked bench file. ``path`` and ``sha256`` identify it in the report."""

    name: str
    description: str
    path: Path
    sha256: str
    schema_version: int
    nominal_voltage: float
    envelope: Envelope
    units: tuple[UnitConfig, ...]
    apis: ApisPolicy
    topology: Topology | None
    emulation: EmulationConfig
    community: CommunityConfig | None = None
    labgrid: LabgridConfig | None = None
    #: On real instruments the operator confirms before the bench is first energised.
    confirm_energise: bool = True

    @property
    def unit_ids(self) -> tuple[str, ...]:
        return tuple(u.id for u in self.units)

    def unit(self, unit_id: str) -> UnitConfig:
        for unit in self.units:
            if unit.id == unit_id:
                return unit
        raise KeyError(f"{self.path}: no unit {unit_id!r}; units: {', '.join(self.unit_ids)}")

    def instruments(self) -> Iterator[InstrumentConfig]:
        for unit in self.units:
            yield from unit.instruments

    @property
    def large_capacity_unit_ids(self) -> tuple[str, ...]:
        return tuple(u.id for u in self.units if u.large_capacity)

    @property
    def emulated_only(self) -> bool:
        """True if any instrument's resource is the placeholder ``"emulated"``."""
        return any(i.emulated_only for i in self.instruments())

    def with_resources(self, resources: Mapping[str, str]) -> BenchConfig:
        """A copy whose instruments use the given resources (keyed ``<unit>.<instrument>``),
        e.g. the emulator's loopback ones; the others keep theirs. Each is checked."""
        by_key = {inst.key: inst for inst in self.instruments()}
        unknown = sorted(set(resources) - set(by_key))
        if unknown:
            raise ConfigError(
                f"{self.path}: no instrument {', '.join(unknown)} to give a resource to; "
                f"allowed: {', '.join(by_key)}"
            )
        for key, resource in resources.items():
            transport = by_key[key].transport
            problem = resource_problem(transport, resource)
            if problem is None and resource == EMULATED:
                problem = "'emulated' is a placeholder, not a resource to connect to"
            if problem is not None:
                raise ConfigError(
                    f"{self.path}: resource for {key}: {problem}; "
                    f"allowed: {RESOURCE_FORMS[transport]}"
                )
        units = tuple(
            dataclasses.replace(
                unit,
                instruments=tuple(
                    dataclasses.replace(i, resource=resources.get(i.key, i.resource))
                    for i in unit.instruments
                ),
            )
            for unit in self.units
        )
        return dataclasses.replace(self, units=units)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary for the run record and the report."""
        return {
            "name": self.name,
            "description": self.description,
            "path": str(self.path),
            "sha256": self.sha256,
            "schema_version": self.schema_version,
            "nominal_voltage": self.nominal_voltage,
            "envelope": self.envelope.as_dict(),
            "units": [u.to_dict() for u in self.units],
            "apis": self.apis.as_dict(),
            "topology": None
            if self.topology is None
            else {
                "check_enabled": self.topology.check_enabled,
                "branches": {
                    b.id: {"capacity": b.capacity, "units": list(b.unit_ids)}
                    for b in self.topology.branches.values()
                },
            },
            "emulation": {
                "declared": self.emulation.declared,
                "seed": self.emulation.seed,
                "serial_transport": self.emulation.serial_transport,
                "start_of_day": self.emulation.start_of_day,
                "ports": {k: dataclasses.asdict(p) for k, p in self.emulation.ports.items()},
                "branch_line_resistance": dict(self.emulation.branch_line_resistance),
            },
            "community": None
            if self.community is None
            else {
                "scenario": str(self.community.scenario_path),
                "members": list(self.community.members),
                "seed": self.community.seed,
            },
        }
