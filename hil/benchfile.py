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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, cast

from hil.apis_policy import ApisPolicy, read_apis_policy
from hil.bench_community import read_community
from hil.bench_config import (
    KINDS,
    NODES,
    BenchConfig,
    Branch,
    InstrumentConfig,
    Kind,
    Node,
    Topology,
    UnitConfig,
)
from hil.bench_emulation import EmulatedPort, EmulationConfig, SensorErrors, read_emulation
from hil.envelope import BusEnvelope, Envelope, UnitEnvelope
from hil.errors import ConfigError
from hil.ratings import (
    EMULATED,
    RESOURCE_FORMS,
    Family,
    InstrumentRating,
    SettingValue,
    families,
    family,
    find_model,
    known_models,
    resource_problem,
)
from hil.toml_source import KeyPath, Table, TomlSource, format_key_path

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

ID_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}")
ID_TEXT = "a letter, then up to 31 letters, digits, '_' or '-'"
NAME_PATTERN = re.compile(r"\S(.{0,98}\S)?")

#: Default communication timeout (s) and retries: APIS talks to a device with a 5 s timeout
#: and 3 retries.
DEFAULT_TIMEOUT = 5.0
DEFAULT_RETRIES = 3


# =========================================================================================
# Loading
# =========================================================================================


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


@dataclass
class _Limit:
    """An envelope value and where it came from (for error messages)."""

    value: float | None
    origin: KeyPath | None  # the key that set it, or None when derived
    why: str = ""  # how a derived value was computed


@dataclass
class _UnitDraft:
    table_path: KeyPath
    id: str
    kind: Kind
    description: str
    instruments: list[InstrumentConfig]
    instrument_paths: dict[str, KeyPath]
    branch: str | None
    branch_path: KeyPath
    large_capacity: bool
    overrides: dict[str, _Limit]

    @property
    def has_battery(self) -> bool:
        return any(i.function == "bms" for i in self.instruments)


_ENVELOPE_KEYS = UnitEnvelope.LIMIT_FIELDS


def optional_of(limits: Mapping[str, _Limit], key: str) -> float | None:
    limit = limits.get(key)
    return None if limit is None else limit.value


def value_of(limits: Mapping[str, _Limit], key: str) -> float:
    value = optional_of(limits, key)
    assert value is not None, key
    return value


class _BenchReader:
    """Reads one bench file top to bottom; every check raises a located ``ConfigError``."""

    def __init__(self, source: TomlSource, path: Path, sha256: str) -> None:
        self.source = source
        self.path = path
        self.sha256 = sha256

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
        bus, nominal = self._read_bus(root)
        apis = read_apis_policy(root.table("apis"), bus, nominal)
        defaults = self._read_envelope_table(root.table("default_envelope"))
        topology_table = root.table("topology")
        drafts = [self._read_unit(t) for t in root.tables("units", required=True)]
        self._check_unique_units(drafts)
        self._check_shared_resources(drafts)
        topology = self._read_topology(topology_table, drafts)
        units = tuple(self._finish_unit(d, bus, apis, defaults) for d in drafts)
        emulation = read_emulation(root.table("emulation"), units, topology)
        community = read_community(
            root.table("community"),
            self.path,
            [u.id for u in units if u.has_battery],
            [u.id for u in units],
        )
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

    def _read_envelope_table(self, table: Table | None) -> dict[str, _Limit]:
        """Envelope limits given in ``[default_envelope]`` or ``[units.envelope]``."""
        if table is None:
            return {}
        limits: dict[str, _Limit] = {}
        for key in _ENVELOPE_KEYS:
            if key.startswith("soc_"):
                value = table.number(key, None, minimum=0.0, maximum=1.0)
            elif key in ("power_max", "slew_max"):
                value = table.number(key, None, minimum=0.0, min_open=True, maximum=1e7)
            else:
                value = table.number(key, None, minimum=0.0, maximum=1e5)
            if value is not None:
                limits[key] = _Limit(value, table.key_path(key))
        table.finish()
        for low, high in (
            ("voltage_min", "voltage_max"),
            ("soc_min", "soc_max"),
            ("battery_voltage_min", "battery_voltage_max"),
        ):
            lo, hi = limits.get(low), limits.get(high)
            if lo and hi and lo.value is not None and hi.value is not None and lo.value >= hi.value:
                raise table.error(
                    low, f"{lo.value:g} is not below {high} = {hi.value:g}", f"{low} < {high}"
                )
        return limits

    # -- units and instruments -------------------------------------------------------
    def _read_unit(self, table: Table) -> _UnitDraft:
        unit_id = table.string("id", pattern=ID_PATTERN, pattern_text=ID_TEXT)
        kind = cast(Kind, table.string("kind", choices=KINDS))
        description = table.string("description", "")
        branch = table.opt_string("branch")
        large = table.boolean("large_capacity", False)
        instruments: list[InstrumentConfig] = []
        paths: dict[str, KeyPath] = {}
        for inst_table in table.tables("instruments", required=True):
            inst = self._read_instrument(inst_table, unit_id, kind)
            if inst.name in paths:
                raise inst_table.error(
                    "name",
                    f"unit {unit_id} already has an instrument named {inst.name!r}",
                    "a name unique within the unit (set name = … on each instrument)",
                )
            paths[inst.name] = inst_table.path
            instruments.append(inst)
        overrides = self._read_envelope_table(table.table("envelope"))
        table.finish()
        draft = _UnitDraft(
            table_path=table.path,
            id=unit_id,
            kind=kind,
            description=description,
            instruments=instruments,
            instrument_paths=paths,
            branch=branch,
            branch_path=table.key_path("branch"),
            large_capacity=large,
            overrides=overrides,
        )
        self._check_composition(draft)
        return draft

    def _read_instrument(self, table: Table, unit_id: str, kind: Kind) -> InstrumentConfig:
        driver = table.string("driver", choices=sorted(families()))
        spec = family(driver)
        default_name = "battery" if spec.function == "bms" else spec.function
        name = table.string("name", default_name, pattern=ID_PATTERN, pattern_text=ID_TEXT)
        model_name = table.string("model")
        rating = find_model(driver, model_name)
        if rating is None:
            raise table.error(
                "model",
                f"unit {unit_id}: unknown model {model_name!r} for driver {driver}",
                ", ".join(known_models(driver)) + " (instruments/" + family(driver).ratings + ")",
            )
        resource = table.string("resource")
        problem = resource_problem(spec.transport, resource)
        if problem is not None:
            raise table.error(
                "resource", f"unit {unit_id}: {problem}", RESOURCE_FORMS[spec.transport]
            )
        if spec.function == "converter":
            default_node: Node = "bus"
        elif spec.function == "bms" or kind == "converter":
            default_node = "battery"
        else:
            default_node = "bus"
        node = cast(Node, table.string("node", default_node, choices=NODES))
        timeout = table.opt_number(
            "timeout", DEFAULT_TIMEOUT, minimum=0.0, min_open=True, maximum=600.0
        )
        retries = table.integer("retries", DEFAULT_RETRIES, minimum=0, maximum=10)
        settings_table = table.table("settings")
        settings = self._read_settings(settings_table, spec)
        table.finish()
        self._check_settings_against_rating(settings_table, settings, rating, unit_id)
        return InstrumentConfig(
            unit_id=unit_id,
            name=name,
            driver=driver,
            model=rating.model,
            rating=rating,
            resource=resource,
            node=node,
            timeout=timeout,
            retries=retries,
            settings=MappingProxyType(settings),
            declared_resource=resource,
        )

    @staticmethod
    def _read_settings(table: Table | None, spec: Family) -> dict[str, SettingValue]:
        """The driver's settings: given ones checked, absent ones at their defaults."""
        values: dict[str, SettingValue] = {}
        for setting in spec.settings:
            if setting.kind == "int":
                if table is not None and table.has(setting.name):
                    values[setting.name] = table.integer(
                        setting.name,
                        minimum=None if setting.minimum is None else int(setting.minimum),
                        maximum=None if setting.maximum is None else int(setting.maximum),
                        choices=setting.choices,
                    )
                elif setting.default is not None:
                    values[setting.name] = int(setting.default)
            else:
                if table is not None and table.has(setting.name):
                    values[setting.name] = table.req_number(
                        setting.name, minimum=setting.minimum, maximum=setting.maximum
                    )
                elif setting.default is not None:
                    values[setting.name] = float(setting.default)
        if table is not None:
            if not spec.settings:
                for key in table.data:
                    table.forbid(key, f"driver {spec.name} takes no settings")
            table.finish()
        return values

    @staticmethod
    def _check_settings_against_rating(
        table: Table | None,
        settings: Mapping[str, SettingValue],
        rating: InstrumentRating,
        unit_id: str,
    ) -> None:
        limits = {
            "hold_voltage": (rating.voltage_max, "V", "voltage"),
            "cv_voltage": (rating.voltage_max, "V", "voltage"),
            "current_limit": (rating.current_source_max, "A", "current"),
        }
        for key, (limit, unit, what) in limits.items():
            value = settings.get(key)
            if table is not None and value is not None and float(value) > limit:
                raise table.error(
                    key,
                    f"unit {unit_id}: {float(value):g} {unit} exceeds the rated {what} of "
                    f"{rating.model} ({limit:g} {unit})",
                    f"{key} <= {limit:g}",
                )

    def _check_composition(self, unit: _UnitDraft) -> None:
        """Each kind needs a particular set of instruments to act as one CC controller."""
        path = (*unit.table_path, "instruments")
        on_bus = [i for i in unit.instruments if i.node == "bus"]
        on_battery = [i for i in unit.instruments if i.node == "battery"]
        if unit.kind == "converter":
            allowed = (
                "one converter on the bus, and on its battery side: a BMS; "
                "or a supply + a load (+ optional BMS); or a bidirectional supply "
                "(+ optional BMS)"
            )
            if len(on_bus) != 1 or on_bus[0].function != "converter":
                raise self.error(
                    path,
                    f"unit {unit.id} (kind converter) has "
                    f"{', '.join(f'{i.name} ({i.driver})' for i in on_bus) or 'nothing'} "
                    "on the bus",
                    allowed,
                )
            counts = {
                f: sum(1 for i in on_battery if i.function == f)
                for f in ("converter", "supply", "load", "bidirectional", "bms")
            }
            valid = (
                counts["converter"] == 0
                and counts["bms"] <= 1
                and (
                    (counts["supply"], counts["load"], counts["bidirectional"])
                    in ((0, 0, 0), (1, 1, 0), (0, 0, 1))
                )
                and (counts["bms"] + counts["supply"] + counts["bidirectional"]) > 0
            )
            if not valid:
                found = ", ".join(f"{i.name} ({i.driver})" for i in on_battery) or "nothing"
                raise self.error(path, f"unit {unit.id}: battery side has {found}", allowed)
            return
        allowed = (
            f"exactly one {unit.kind} instrument on the bus ("
            + ", ".join(sorted(n for n, s in families().items() if s.function == unit.kind))
            + ")"
        )
        if (
            len(unit.instruments) != 1
            or unit.instruments[0].function != unit.kind
            or unit.instruments[0].node != "bus"
        ):
            found = ", ".join(
                f"{i.name} ({i.driver}, {i.function}, node {i.node})" for i in unit.instruments
            )
            raise self.error(path, f"unit {unit.id} (kind {unit.kind}) has {found}", allowed)

    def _check_unique_units(self, drafts: list[_UnitDraft]) -> None:
        seen: dict[str, _UnitDraft] = {}
        for draft in drafts:
            first = seen.get(draft.id)
            if first is not None:
                line = self.source.locator.line_of((*first.table_path, "id"))
                raise self.error(
                    (*draft.table_path, "id"),
                    f"duplicate unit id {draft.id!r} (first used at "
                    f"{format_key_path(first.table_path)}, line {line})",
                    "unit ids unique within the bench file",
                )
            seen[draft.id] = draft

    def _check_shared_resources(self, drafts: list[_UnitDraft]) -> None:
        """Two instruments may share a resource only on a multi-drop bus, at different
        addresses, with the same driver."""
        seen: dict[str, tuple[InstrumentConfig, KeyPath]] = {}
        for draft in drafts:
            for inst in draft.instruments:
                if inst.resource == EMULATED:
                    continue
                path = (*draft.instrument_paths[inst.name], "resource")
                first = seen.get(inst.resource)
                if first is None:
                    seen[inst.resource] = (inst, path)
                    continue
                other = first[0]
                shared_ok = (
                    inst.transport != "visa"
                    and inst.driver == other.driver
                    and dict(inst.settings) != dict(other.settings)
                )
                if not shared_ok:
                    raise self.error(
                        path,
                        f"{inst.key} uses the same resource {inst.resource!r} as {other.key}",
                        "one instrument per resource, or on a shared Modbus/RS-485 line the "
                        "same driver at different addresses (device_id / ad1, ad2)",
                    )

    # -- topology ------------------------------------------------------------------------
    def _read_topology(self, table: Table | None, drafts: list[_UnitDraft]) -> Topology | None:
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

    # -- envelopes and ratings ---------------------------------------------------------------
    def _finish_unit(
        self,
        draft: _UnitDraft,
        bus: BusEnvelope,
        apis: ApisPolicy,
        defaults: dict[str, _Limit],
    ) -> UnitConfig:
        main = next(i for i in draft.instruments if i.node == "bus")
        battery_side = [i for i in draft.instruments if i.node == "battery"]
        if draft.kind == "converter":
            power_paths = [i for i in battery_side if i.function != "bms"] or battery_side
            can_source = any(i.rating.can_source for i in power_paths)
            can_sink = any(i.rating.can_sink for i in power_paths)
        else:
            can_source = draft.kind in ("supply", "bidirectional")
            can_sink = draft.kind in ("load", "bidirectional")

        capacity = apis.unit_current_capacity
        limits: dict[str, _Limit] = {
            "voltage_min": _Limit(bus.voltage_min, None, "the bus window"),
            "voltage_max": _Limit(bus.voltage_max, None, "the bus window"),
            "current_source_max": _Limit(
                capacity if can_source else 0.0, None, "apis.unit_current_capacity"
            ),
            "current_sink_max": _Limit(
                capacity if can_sink else 0.0, None, "apis.unit_current_capacity"
            ),
            "power_max": _Limit(
                capacity * bus.voltage_max, None, "apis.unit_current_capacity x bus.voltage_max"
            ),
            "slew_max": _Limit(
                apis.current_step / apis.checkpoint_wait,
                None,
                "apis.current_step / apis.checkpoint_wait",
            ),
        }
        if draft.has_battery:
            limits["soc_min"] = _Limit(apis.soc_force_stop_discharge, None, "apis policy")
            limits["soc_max"] = _Limit(apis.soc_force_stop_charge, None, "apis policy")
        if draft.kind == "converter":
            low, high = main.rating.battery_voltage_min, main.rating.battery_voltage_max
            if low is None or high is None:
                raise self.error(
                    (*draft.instrument_paths[main.name], "model"),
                    f"model {main.model} has no battery-side rating",
                    "a converter model with battery_voltage_min/max in the model table",
                )
            limits["battery_voltage_min"] = _Limit(low, None, f"the {main.model} rating")
            limits["battery_voltage_max"] = _Limit(high, None, f"the {main.model} rating")

        for key, limit in defaults.items():
            clamped = (key == "current_source_max" and not can_source) or (
                key == "current_sink_max" and not can_sink
            )
            if key in limits and not clamped:
                limits[key] = limit
        for key, limit in draft.overrides.items():
            if key not in limits:
                reason = (
                    "has no battery, so it has no SoC window"
                    if key.startswith("soc_")
                    else "is not a converter, so it has no battery side"
                )
                raise self.error(
                    cast(KeyPath, limit.origin),
                    f"unit {draft.id} {reason}",
                    ", ".join(k for k in _ENVELOPE_KEYS if k in limits),
                )
            if (key == "current_source_max" and not can_source and (limit.value or 0) > 0) or (
                key == "current_sink_max" and not can_sink and (limit.value or 0) > 0
            ):
                raise self.error(
                    cast(KeyPath, limit.origin),
                    f"unit {draft.id} (kind {draft.kind}) cannot "
                    f"{'source' if key == 'current_source_max' else 'sink'}",
                    "0",
                )
            limits[key] = limit

        self._check_ratings(draft, main, battery_side, bus, limits)
        try:
            envelope = UnitEnvelope(
                draft.id,
                voltage_min=value_of(limits, "voltage_min"),
                voltage_max=value_of(limits, "voltage_max"),
                current_source_max=value_of(limits, "current_source_max"),
                current_sink_max=value_of(limits, "current_sink_max"),
                power_max=value_of(limits, "power_max"),
                slew_max=value_of(limits, "slew_max"),
                soc_min=optional_of(limits, "soc_min"),
                soc_max=optional_of(limits, "soc_max"),
                battery_voltage_min=optional_of(limits, "battery_voltage_min"),
                battery_voltage_max=optional_of(limits, "battery_voltage_max"),
                can_source=can_source,
                can_sink=can_sink,
            )
        except ConfigError as exc:
            raise self.error(
                (*draft.table_path, "envelope"), str(exc), "a consistent envelope"
            ) from None
        return UnitConfig(
            id=draft.id,
            kind=draft.kind,
            description=draft.description,
            instruments=tuple(draft.instruments),
            envelope=envelope,
            branch=draft.branch,
            large_capacity=draft.large_capacity,
        )

    def _limit_error(
        self, draft: _UnitDraft, key: str, limit: _Limit, problem: str, allowed: str
    ) -> ConfigError:
        path = limit.origin or (*draft.table_path, "envelope")
        origin = "" if limit.origin else f" (derived from {limit.why})"
        return self.error(
            path, f"unit {draft.id}: envelope {key} = {limit.value:g}{origin} {problem}", allowed
        )

    def _check_ratings(
        self,
        draft: _UnitDraft,
        main: InstrumentConfig,
        battery_side: list[InstrumentConfig],
        bus: BusEnvelope,
        limits: dict[str, _Limit],
    ) -> None:
        """No envelope wider than a rating; no instrument unsuited to its node."""

        def value(key: str) -> float:
            v = limits[key].value
            assert v is not None
            return v

        main_path = (*draft.instrument_paths[main.name], "model")
        # The bus-side instrument must stand the whole bus window, whatever the envelope.
        if main.rating.voltage_max < bus.voltage_max:
            suitable = [
                m
                for m in known_models(main.driver)
                if (r := find_model(main.driver, m)) is not None
                and r.voltage_max >= bus.voltage_max
            ]
            raise self.error(
                main_path,
                f"unit {draft.id}: {main.model} is rated {main.rating.voltage_max:g} V, "
                f"unsuited to the bus, whose window reaches {bus.voltage_max:g} V",
                f"a model of driver {main.driver} rated ≥ {bus.voltage_max:g} V: "
                + (", ".join(suitable) or "none in the model table"),
            )
        if value("voltage_min") < bus.voltage_min or value("voltage_max") > bus.voltage_max:
            key = "voltage_min" if value("voltage_min") < bus.voltage_min else "voltage_max"
            raise self._limit_error(
                draft,
                key,
                limits[key],
                "lies outside the bus window",
                f"{bus.voltage_min:g}-{bus.voltage_max:g} V",
            )
        for key in ("hold_voltage", "cv_voltage"):
            setting = main.settings.get(key)
            if setting is not None and not value("voltage_min") <= float(setting) <= value(
                "voltage_max"
            ):
                raise self.error(
                    (*draft.instrument_paths[main.name], "settings", key),
                    f"unit {draft.id}: {float(setting):g} V is outside the unit's bus window",
                    f"{value('voltage_min'):g}-{value('voltage_max'):g} V",
                )
        rated = {
            "current_source_max": main.rating.current_source_max,
            "current_sink_max": main.rating.current_sink_max,
            "power_max": main.rating.power_max,
        }
        for key, rating in rated.items():
            if value(key) > rating:
                raise self._limit_error(
                    draft,
                    key,
                    limits[key],
                    f"exceeds the rating of {main.key} ({main.model}): {rating:g}",
                    f"{key} ≤ {rating:g}",
                )
        if draft.kind != "converter":
            return
        low, high = value("battery_voltage_min"), value("battery_voltage_max")
        conv_low = main.rating.battery_voltage_min or 0.0
        conv_high = main.rating.battery_voltage_max or 0.0
        if low < conv_low or high > conv_high:
            key = "battery_voltage_min" if low < conv_low else "battery_voltage_max"
            raise self._limit_error(
                draft,
                key,
                limits[key],
                f"lies outside the battery-side rating of {main.key} ({main.model})",
                f"{conv_low:g}-{conv_high:g} V",
            )
        power = value("power_max")
        for inst in battery_side:
            path = (*draft.instrument_paths[inst.name], "model")
            if high > inst.rating.voltage_max or low < inst.rating.voltage_min:
                raise self.error(
                    path,
                    f"unit {draft.id}: {inst.model} is rated "
                    f"{inst.rating.voltage_min:g}-{inst.rating.voltage_max:g} V, unsuited to "
                    f"the battery side, whose window is {low:g}-{high:g} V",
                    f"a model of driver {inst.driver} rated for {low:g}-{high:g} V, or a "
                    "narrower battery_voltage_min/max",
                )
            if inst.function == "bms":
                continue
            if power > inst.rating.power_max:
                raise self._limit_error(
                    draft,
                    "power_max",
                    limits["power_max"],
                    f"exceeds the rating of {inst.key} ({inst.model}): {inst.rating.power_max:g} W",
                    f"power_max ≤ {inst.rating.power_max:g}",
                )
            current = power / low
            rated_current = (
                inst.rating.current_source_max
                if inst.function == "supply"
                else inst.rating.current_sink_max
                if inst.function == "load"
                else min(inst.rating.current_source_max, inst.rating.current_sink_max)
            )
            if current > rated_current:
                raise self._limit_error(
                    draft,
                    "power_max",
                    limits["power_max"],
                    f"needs {current:.4g} A at battery_voltage_min {low:g} V, above the "
                    f"{rated_current:g} A rating of {inst.key} ({inst.model})",
                    f"power_max ≤ {rated_current * low:.4g} W or a higher battery_voltage_min",
                )
            self._check_battery_setting(draft, inst, low, high)
        holds = [i.settings.get("hold_voltage") for i in battery_side if i.function == "supply"]
        cvs = [i.settings.get("cv_voltage") for i in battery_side if i.function == "load"]
        if holds and cvs and holds[0] is not None and cvs[0] is not None:
            hold, cv = float(holds[0]), float(cvs[0])
            if cv <= hold:
                load = next(i for i in battery_side if i.function == "load")
                raise self.error(
                    (*draft.instrument_paths[load.name], "settings", "cv_voltage"),
                    f"unit {draft.id}: the load's CV level {cv:g} V is not above the supply's "
                    f"hold voltage {hold:g} V, so the load would sink the supply's current",
                    f"cv_voltage > {hold:g}",
                )

    def _check_battery_setting(
        self, draft: _UnitDraft, inst: InstrumentConfig, low: float, high: float
    ) -> None:
        for key in ("hold_voltage", "cv_voltage"):
            setting = inst.settings.get(key)
            if setting is None:
                continue
            volts = float(setting)
            if not low <= volts <= high or volts > inst.rating.voltage_max:
                raise self.error(
                    (*draft.instrument_paths[inst.name], "settings", key),
                    f"unit {draft.id}: {volts:g} V is outside the battery-side window",
                    f"{low:g}-{min(high, inst.rating.voltage_max):g} V",
                )
