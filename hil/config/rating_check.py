"""Ratings against envelopes: no unit may be allowed more than its instruments stand.

:class:`RatingCheck` compares one unit's settled envelope limits with the ratings of its
instruments (from each family's ratings file, ``instruments/<family>.toml``): the bus-side
instrument must stand the whole bus window and the unit's currents and power, and on a
converter unit every battery-side instrument must stand the battery window and power, and
its hold and CV levels must make sense together. A limit that was derived rather than
written names how it was derived, so the message says which key to change.
"""

from __future__ import annotations

from hil.config.bench import InstrumentConfig
from hil.config.draft import Limit, UnitDraft
from hil.config.ratings import known_models
from hil.config.toml_source import KeyPath, TomlSource
from hil.config.units import ModelLookup
from hil.envelope import BusEnvelope
from hil.errors import ConfigError


class RatingCheck:
    """Checks one unit's envelope limits against its instruments' ratings."""

    def __init__(self, source: TomlSource, find_model: ModelLookup) -> None:
        self.source = source
        self.find_model = find_model

    def error(self, path: KeyPath, problem: str, allowed: str) -> ConfigError:
        return self.source.error(path, problem, allowed)

    def _limit_error(
        self, draft: UnitDraft, key: str, limit: Limit, problem: str, allowed: str
    ) -> ConfigError:
        path = limit.origin or (*draft.table_path, "envelope")
        origin = "" if limit.origin else f" (derived from {limit.why})"
        return self.error(
            path, f"unit {draft.id}: envelope {key} = {limit.value:g}{origin} {problem}", allowed
        )

    def check(
        self,
        draft: UnitDraft,
        main: InstrumentConfig,
        battery_side: list[InstrumentConfig],
        bus: BusEnvelope,
        limits: dict[str, Limit],
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
                if (r := self.find_model(main.driver, m)) is not None
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
        self, draft: UnitDraft, inst: InstrumentConfig, low: float, high: float
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
