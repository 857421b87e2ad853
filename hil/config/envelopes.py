"""A unit's envelope settled from the bus, the APIS policy, the defaults and the unit.

:class:`UnitEnvelopeBuilder` turns a :class:`~hil.config.draft.UnitDraft` into its
:class:`~hil.config.bench.UnitConfig`: every limit starts derived (the bus window, the
APIS unit current capacity, the APIS current step and checkpoint wait, the SoC force-stop
limits, the converter's battery-side rating), ``[default_envelope]`` then the unit's own
``[units.envelope]`` narrow it, and :class:`~hil.config.rating_check.RatingCheck` refuses a
limit wider than a rating (``docs/bench-file.md``, "Envelopes").
"""

from __future__ import annotations

from typing import cast

from hil.config.apis_policy import ApisPolicy
from hil.config.bench import UnitConfig
from hil.config.draft import ENVELOPE_KEYS, Limit, UnitDraft, optional_of, value_of
from hil.config.rating_check import RatingCheck
from hil.config.toml_source import KeyPath, TomlSource
from hil.envelope import BusEnvelope, UnitEnvelope
from hil.errors import ConfigError


class UnitEnvelopeBuilder:
    """Settles each unit's envelope on one bench and checks it against the ratings."""

    def __init__(self, source: TomlSource, ratings: RatingCheck) -> None:
        self.source = source
        self.ratings = ratings

    def error(self, path: KeyPath, problem: str, allowed: str) -> ConfigError:
        return self.source.error(path, problem, allowed)

    def finish(
        self,
        draft: UnitDraft,
        bus: BusEnvelope,
        apis: ApisPolicy,
        defaults: dict[str, Limit],
    ) -> UnitConfig:
        """The unit's configuration with its settled envelope."""
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
        limits: dict[str, Limit] = {
            "voltage_min": Limit(bus.voltage_min, None, "the bus window"),
            "voltage_max": Limit(bus.voltage_max, None, "the bus window"),
            "current_source_max": Limit(
                capacity if can_source else 0.0, None, "apis.unit_current_capacity"
            ),
            "current_sink_max": Limit(
                capacity if can_sink else 0.0, None, "apis.unit_current_capacity"
            ),
            "power_max": Limit(
                capacity * bus.voltage_max, None, "apis.unit_current_capacity x bus.voltage_max"
            ),
            "slew_max": Limit(
                apis.current_step / apis.checkpoint_wait,
                None,
                "apis.current_step / apis.checkpoint_wait",
            ),
        }
        if draft.has_battery:
            limits["soc_min"] = Limit(apis.soc_force_stop_discharge, None, "apis policy")
            limits["soc_max"] = Limit(apis.soc_force_stop_charge, None, "apis policy")
        if draft.kind == "converter":
            low, high = main.rating.battery_voltage_min, main.rating.battery_voltage_max
            if low is None or high is None:
                raise self.error(
                    (*draft.instrument_paths[main.name], "model"),
                    f"model {main.model} has no battery-side rating",
                    "a converter model with battery_voltage_min/max in the model table",
                )
            limits["battery_voltage_min"] = Limit(low, None, f"the {main.model} rating")
            limits["battery_voltage_max"] = Limit(high, None, f"the {main.model} rating")

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
                    ", ".join(k for k in ENVELOPE_KEYS if k in limits),
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

        self.ratings.check(draft, main, battery_side, bus, limits)
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
