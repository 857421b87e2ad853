"""The bench file: one TOML file that describes a real bench and its emulated twin.

``load_bench_file(path)`` reads, checks and returns a frozen ``BenchConfig``: the bus and
its envelope, the units with their instruments (driver, model and its ratings, resource,
node, settings, timeouts), every unit's envelope, the APIS policy numbers, an optional
topology and the emulation parameters. Nothing is touched on the wire: every problem that
can be found in the file (unknown key, wrong type, unknown driver or model, duplicate unit
id, an envelope wider than an instrument's rating, an instrument unsuited to its node) is
reported here, as ``ConfigError("file:line: key.path: problem; allowed: …")``.

The schema is documented in ``docs/bench-file.md``. Quantities are in SI units (V, A, W,
s, Ω, A/s); battery capacity in Wh; state of charge as a fraction 0-1.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
from pathlib import Path
from types import MappingProxyType
from typing import Any

from hil.config.apis_policy import ApisPolicy, read_apis_policy
from hil.config.bench import (
    BenchConfig,
    Branch,
    InstrumentConfig,
    Topology,
    UnitConfig,
)
from hil.config.community import read_community
from hil.config.draft import UnitDraft, read_envelope_table
from hil.config.emulation import EmulatedPort, EmulationConfig, SensorErrors, read_emulation
from hil.config.envelopes import UnitEnvelopeBuilder
from hil.config.lab import read_labgrid
from hil.config.rating_check import RatingCheck
from hil.config.ratings import find_model
from hil.config.toml_source import KeyPath, Table, TomlSource
from hil.config.units import ID_PATTERN, ID_TEXT, UnitReader
from hil.envelope import BusEnvelope, Envelope
from hil.errors import ConfigError

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1

__all__ = [
    "SCHEMA_VERSION",
    "ApisPolicy",
    "BenchConfig",
    "Branch",
    "EmulatedPort",
    "EmulationConfig",
    "InstrumentConfig",
    "SensorErrors",
    "Topology",
    "UnitConfig",
    "load_bench_file",
    "parse_bench_text",
]

NAME_PATTERN = re.compile(r"\S(.{0,98}\S)?")


def load_bench_file(path: str | Path) -> BenchConfig:
    """Read and check a bench file; raises ``ConfigError`` naming file, line and key."""
    path = Path(path)
    source, raw = TomlSource.from_path(path)
    config = _BenchReader(source, path, hashlib.sha256(raw).hexdigest()).read()
    logger.info(
        "loaded bench file %s (%s, %d units, sha256 %s)",
        path,
        config.name,
        len(config.units),
        config.sha256[:12],
    )
    return config


def parse_bench_text(text: str, name: str | Path = "<bench file>") -> BenchConfig:
    """Check bench-file text that is not (yet) a file; ``name`` is used in messages."""
    source = TomlSource(text, str(name))
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return _BenchReader(source, Path(name), digest).read()


class _BenchReader:
    """Reads one bench file top to bottom; every check raises a located ``ConfigError``.

    The top-level tables, the bus and the topology are read here; the units by
    :class:`~hil.config.units.UnitReader`, their envelopes by
    :class:`~hil.config.envelopes.UnitEnvelopeBuilder`.
    """

    def __init__(self, source: TomlSource, path: Path, sha256: str) -> None:
        self.source = source
        self.path = path
        self.sha256 = sha256
        self.units = UnitReader(source, find_model)
        self.envelopes = UnitEnvelopeBuilder(source, RatingCheck(source, find_model))

    def error(self, path: KeyPath, problem: str, allowed: str) -> ConfigError:
        return self.source.error(path, problem, allowed)

    # -- top level -------------------------------------------------------------------
    def read(self) -> BenchConfig:
        root = self.source.root()
        version = root.integer("schema_version", SCHEMA_VERSION, minimum=1)
        if version > SCHEMA_VERSION:
            raise root.error(
                "schema_version",
                f"version {version} is newer than this toolkit reads",
                f"schema_version ≤ {SCHEMA_VERSION}",
            )
        name = root.string("name", pattern=NAME_PATTERN, pattern_text="a non-empty name")
        description = root.string("description", "")
        confirm_energise = root.boolean("confirm_energise", True)
        bus, nominal = self._read_bus(root)
        apis = read_apis_policy(root.table("apis"), bus, nominal)
        defaults = read_envelope_table(root.table("default_envelope"))
        topology_table = root.table("topology")
        drafts = [self.units.read_unit(t) for t in root.tables("units", required=True)]
        self.units.check_unique_units(drafts)
        self.units.check_shared_resources(drafts)
        topology = self._read_topology(topology_table, drafts)
        units = tuple(self.envelopes.finish(d, bus, apis, defaults) for d in drafts)
        emulation = read_emulation(root.table("emulation"), units, topology)
        community = read_community(
            root.table("community"),
            self.path,
            [u.id for u in units if u.has_battery],
            [u.id for u in units],
        )
        labgrid = read_labgrid(root.table("labgrid"))
        root.finish()
        envelope = Envelope(
            bus=dataclasses.replace(
                bus,
                branch_capacity={}
                if topology is None
                else {b.id: b.capacity for b in topology.branches.values()},
            ),
            units={u.id: u.envelope for u in units},
        )
        return BenchConfig(
            name=name,
            description=description,
            path=self.path,
            sha256=self.sha256,
            schema_version=version,
            nominal_voltage=apis.operation_voltage,
            envelope=envelope,
            units=units,
            apis=apis,
            topology=topology,
            emulation=emulation,
            community=community,
            labgrid=labgrid,
            confirm_energise=confirm_energise,
        )

    def _read_bus(self, root: Table) -> tuple[BusEnvelope, float]:
        bus = root.table("bus", required=True)
        assert bus is not None
        positive: dict[str, Any] = {"minimum": 0.0, "min_open": True}
        nominal = bus.opt_number("nominal_voltage", 350.0, maximum=1500.0, **positive)
        vmin = bus.opt_number("voltage_min", 300.0, maximum=1500.0, **positive)
        vmax = bus.opt_number("voltage_max", 380.0, maximum=1500.0, **positive)
        balance = bus.opt_number("balance_allowance_per_unit", 0.125, maximum=100.0, **positive)
        sum_max = bus.opt_number("exchange_current_sum_max", 100.0, maximum=1e4, **positive)
        bus.finish()
        if not vmin < nominal < vmax:
            raise bus.error(
                "nominal_voltage",
                f"{nominal:g} V is not inside the window {vmin:g}-{vmax:g} V",
                "voltage_min < nominal_voltage < voltage_max",
            )
        return BusEnvelope(vmin, vmax, balance, sum_max), nominal

    # -- topology ------------------------------------------------------------------------
    def _read_topology(self, table: Table | None, drafts: list[UnitDraft]) -> Topology | None:
        branch_ids = [d.branch for d in drafts if d.branch is not None]
        if table is None:
            if branch_ids:
                first = next(d for d in drafts if d.branch is not None)
                raise self.error(
                    first.branch_path,
                    f"unit {first.id} names branch {first.branch!r} but there is no [topology]",
                    "a branch defined under [topology.branches.<id>]",
                )
            return None
        check = table.boolean("check_enabled", True)
        capacities: dict[str, float] = {}
        for branch_id, branch in table.named_tables("branches"):
            if not ID_PATTERN.fullmatch(branch_id):
                raise branch.error(None, f"branch id {branch_id!r} is not accepted", ID_TEXT)
            capacities[branch_id] = branch.req_number(
                "capacity", minimum=0.0, min_open=True, maximum=1e4
            )
            branch.finish()
        table.finish()
        for draft in drafts:
            if draft.branch is not None and draft.branch not in capacities:
                raise self.error(
                    draft.branch_path,
                    f"unit {draft.id}: unknown branch {draft.branch!r}",
                    ", ".join(capacities) or "no branches are defined",
                )
        branches = {
            bid: Branch(bid, cap, tuple(d.id for d in drafts if d.branch == bid))
            for bid, cap in capacities.items()
        }
        return Topology(check, MappingProxyType(branches))
