"""The units and instruments of a bench file: each ``[[units]]`` table read and checked.

:class:`UnitReader` reads one unit's instruments (driver, model and its ratings, resource,
node, settings, timeouts) into a :class:`~hil.config.draft.UnitDraft`, and checks what one
unit, or the units together, must satisfy: a known driver and model, a resource of the
driver's transport, settings within the model's rating, the set of instruments each kind
needs to act as one constant-current controller, unique unit ids and no resource used
twice (except at different addresses on one multi-drop line). Every problem is a
``ConfigError`` located at its line (``docs/bench-file.md``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import cast

from hil.config.bench import KINDS, NODES, InstrumentConfig, Kind, Node
from hil.config.draft import UnitDraft, read_envelope_table
from hil.config.ratings import (
    EMULATED,
    RESOURCE_FORMS,
    Family,
    InstrumentRating,
    SettingValue,
    families,
    family,
    known_models,
    resource_problem,
)
from hil.config.toml_source import KeyPath, Table, TomlSource, format_key_path
from hil.errors import ConfigError

ID_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}")
ID_TEXT = "a letter, then up to 31 letters, digits, '_' or '-'"

#: Default communication timeout (s) and retries: APIS talks to a device with a 5 s timeout
#: and 3 retries.
DEFAULT_TIMEOUT = 5.0
DEFAULT_RETRIES = 3

#: Looks up a driver's model in the model table: ``(driver, model) -> rating or None``.
ModelLookup = Callable[[str, str], InstrumentRating | None]


class UnitReader:
    """Reads and checks the ``[[units]]`` tables of one bench file.

    ``find_model`` is the model table's lookup (:func:`hil.config.ratings.find_model`),
    passed in by the loader so that a test can narrow a model's rating.
    """

    def __init__(self, source: TomlSource, find_model: ModelLookup) -> None:
        self.source = source
        self.find_model = find_model

    def error(self, path: KeyPath, problem: str, allowed: str) -> ConfigError:
        return self.source.error(path, problem, allowed)

    def read_unit(self, table: Table) -> UnitDraft:
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
        overrides = read_envelope_table(table.table("envelope"))
        table.finish()
        draft = UnitDraft(
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
        rating = self.find_model(driver, model_name)
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
        calibration_due = table.opt_date("calibration_due")
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
            calibration_due=calibration_due,
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

    def _check_composition(self, unit: UnitDraft) -> None:
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

    def check_unique_units(self, drafts: list[UnitDraft]) -> None:
        seen: dict[str, UnitDraft] = {}
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

    def check_shared_resources(self, drafts: list[UnitDraft]) -> None:
        """Two instruments may share a resource only on a multi-drop bus, at different
        addresses, with the same driver, or as one unit's HTTP service (an APIS unit's
        dcdc_batt_comm answers for its converter and its battery)."""
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
                ) or (inst.transport == other.transport == "http" and inst.unit_id == other.unit_id)
                if not shared_ok:
                    raise self.error(
                        path,
                        f"{inst.key} uses the same resource {inst.resource!r} as {other.key}",
                        "one instrument per resource, or on a shared Modbus/RS-485 line the "
                        "same driver at different addresses (device_id / ad1, ad2)",
                    )
