"""From the bench file to adapters: open each instrument, then wrap a unit's instruments.

:func:`open_instrument` turns one ``InstrumentConfig`` into an open driver, with the
``open`` keywords its family declares (:mod:`instruments.families`); :func:`build_unit`
turns a ``UnitConfig`` and its open drivers into the adapter registered (:func:`adapter`)
for the *function* of the unit's bus instrument — supply, load, bidirectional or converter
(a converter's battery side: a BMS and/or a battery emulator, a supply + a load or one
bidirectional supply). No family is named here: adding one edits nothing in ``hil``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Protocol, TypeVar

from hil.clock import Clock
from hil.config.bench import InstrumentConfig, UnitConfig
from hil.config.ratings import EMULATED
from hil.envelope import UnitEnvelope
from hil.errors import ConfigError
from instruments.base import Instrument
from instruments.families import Function, families, family

from .base import (
    SAFE_OFF_TIMEOUT_S,
    Part,
    UnitBase,
    as_bidirectional,
    as_bms,
    as_converter,
    as_load,
    as_source_supply,
)
from .battery import BatteryEmulator, BidirectionalBattery, SupplyLoadBattery, node_levels
from .bidirectional import BidirectionalUnit
from .converter import ConverterUnit
from .load import LoadUnit
from .supply import SupplyUnit

#: Extra ``open`` keywords per family for benches whose instruments are emulated (each
#: family declares its own, e.g. the EZA-2500 drops its 62 ms pause between frames).
EMULATOR_DRIVER_OPTIONS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {name: fam.emulated_options for name, fam in families().items() if fam.emulated_options}
)


def instrument_problem(inst: InstrumentConfig) -> str | None:
    """Why ``inst`` cannot be opened by the adapters, or None (no I/O)."""
    fam = family(inst.driver)
    if fam.unadapted:
        adapted = sorted(name for name, f in families().items() if not f.unadapted)
        return (
            f"driver {inst.driver!r} has no unit adapter ({fam.unadapted}); adapted drivers: "
            + ", ".join(adapted)
        )
    if inst.resource == EMULATED:
        return (
            "resource 'emulated' is a placeholder: start the emulator (hil emulate, or "
            "--emulate) and use its resources"
        )
    return None


def driver_options(
    inst: InstrumentConfig,
    *,
    timeout: float | None = None,
    extra: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Keyword arguments for the driver's ``open`` from the bench file's instrument entry."""
    fam = family(inst.driver)
    if fam.unadapted:
        raise ConfigError(f"{inst.key}: {instrument_problem(inst)}")
    options = fam.open_options(
        inst.settings,
        name=inst.key,
        timeout=timeout or inst.timeout,
        rating=inst.rating,
        model=inst.model,
        retries=inst.retries,
    )
    options.update((extra or {}).get(inst.driver, {}))
    return options


def open_instrument(
    inst: InstrumentConfig,
    *,
    timeout: float | None = None,
    extra: Mapping[str, Mapping[str, Any]] | None = None,
) -> Instrument:
    """Open one instrument of the bench file (``ConfigError`` / ``CommunicationError``)."""
    problem = instrument_problem(inst)
    if problem is not None:
        raise ConfigError(f"{inst.key} ({inst.driver}): {problem}")
    opener = family(inst.driver).opener
    return opener(inst.resource, **driver_options(inst, timeout=timeout, extra=extra))


def _part(inst: InstrumentConfig, drivers: Mapping[str, Instrument]) -> Part:
    try:
        driver = drivers[inst.name]
    except KeyError:
        raise ConfigError(f"{inst.key}: no open driver was given for it") from None
    return Part(inst.unit_id, inst.name, inst.driver, driver)


#: Builds the adapter of a unit from its config, its bus instrument, its open drivers, the
#: clock and the safe-off timeout.
Builder = Callable[[UnitConfig, InstrumentConfig, Mapping[str, Instrument], Clock, float], UnitBase]
_ADAPTERS: dict[Function, Builder] = {}
R = TypeVar("R")
R_in = TypeVar("R_in", contravariant=True)
#: Functions adapted as part of another unit, not as a unit of their own: a BMS is the
#: battery side of a converter unit.
BATTERY_SIDE_ONLY: frozenset[Function] = frozenset({"bms"})


def adapter(function: Function) -> Callable[[Builder], Builder]:
    """Register the adapter builder for the units whose bus instrument does ``function``."""

    def register(builder: Builder) -> Builder:
        _ADAPTERS[function] = builder
        return builder

    return register


def adapters() -> Mapping[Function, Builder]:
    """The adapter builders, by the function of a unit's bus instrument."""
    return MappingProxyType(_ADAPTERS)


def build_unit(
    config: UnitConfig,
    drivers: Mapping[str, Instrument],
    clock: Clock,
    *,
    safe_off_timeout: float = SAFE_OFF_TIMEOUT_S,
) -> UnitBase:
    """The adapter for one unit, given its open drivers keyed by instrument name."""
    for inst in config.instruments:
        if family(inst.driver).unadapted:
            raise ConfigError(f"{inst.key}: {instrument_problem(inst)}")
    bus = [i for i in config.instruments if i.node == "bus"]
    if len(bus) != 1:
        raise ConfigError(f"unit {config.id}: needs exactly one instrument on the bus")
    main = bus[0]
    builder = _ADAPTERS.get(main.function)
    if config.kind != main.function or builder is None:
        raise ConfigError(
            f"unit {config.id}: kind {config.kind} cannot be built from {main.key} "
            f"({main.driver}, a {main.function})"
        )
    return builder(config, main, drivers, clock, safe_off_timeout)


class _OneInstrumentUnit(Protocol[R_in]):
    """The constructor of a unit that is one bus instrument in one role."""

    def __call__(
        self,
        unit_id: str,
        instrument: R_in,
        envelope: UnitEnvelope,
        clock: Clock,
        /,
        *,
        name: str,
        driver_name: str,
        safe_off_timeout: float,
    ) -> UnitBase: ...


def one_instrument(role: Callable[[Part], R], unit: _OneInstrumentUnit[R]) -> Builder:
    """The builder of a unit made of its bus instrument alone, driven in ``role``."""

    def build(
        config: UnitConfig,
        main: InstrumentConfig,
        drivers: Mapping[str, Instrument],
        clock: Clock,
        timeout: float,
    ) -> UnitBase:
        instrument = role(_part(main, drivers))
        return unit(
            config.id,
            instrument,
            config.envelope,
            clock,
            name=main.name,
            driver_name=main.driver,
            safe_off_timeout=timeout,
        )

    return build


adapter("supply")(one_instrument(as_source_supply, SupplyUnit))
adapter("load")(one_instrument(as_load, LoadUnit))
adapter("bidirectional")(one_instrument(as_bidirectional, BidirectionalUnit))


@adapter("converter")
def _converter(
    config: UnitConfig,
    main: InstrumentConfig,
    drivers: Mapping[str, Instrument],
    clock: Clock,
    safe_off_timeout: float,
) -> UnitBase:
    env = config.envelope
    side: dict[str, list[InstrumentConfig]] = {}
    for inst in config.battery_side:
        side.setdefault(inst.function, []).append(inst)
    bms_configs = side.pop("bms", [])
    if len(bms_configs) > 1:
        raise ConfigError(f"unit {config.id}: at most one BMS on the battery side")
    bms = as_bms(_part(bms_configs[0], drivers)) if bms_configs else None
    battery: BatteryEmulator | None = None
    supplies, loads = side.pop("supply", []), side.pop("load", [])
    bidirectional = side.pop("bidirectional", [])
    if side or len(supplies) > 1 or len(loads) > 1 or len(bidirectional) > 1:
        raise ConfigError(f"unit {config.id}: unsupported battery side {sorted(side)}")
    if supplies and loads:
        supply, load = supplies[0], loads[0]
        levels = node_levels(
            env,
            supply.settings,
            supply.rating.current_source_max,
            load_settings=load.settings,
            load_current_rating=load.rating.current_sink_max,
        )
        battery = SupplyLoadBattery(env, _part(supply, drivers), _part(load, drivers), levels)
    elif bidirectional and not supplies and not loads:
        inst = bidirectional[0]
        levels = node_levels(env, inst.settings, inst.rating.current_source_max)
        battery = BidirectionalBattery(env, _part(inst, drivers), levels)
    elif supplies or loads:
        raise ConfigError(
            f"unit {config.id}: a battery emulator needs a supply and a load together"
        )
    if bms is None and battery is None:
        raise ConfigError(f"unit {config.id}: a converter needs a BMS or a battery emulator")
    return ConverterUnit(
        config.id,
        as_converter(_part(main, drivers)),
        env,
        clock,
        bms=bms,
        battery=battery,
        name=main.name,
        driver_name=main.driver,
        bms_name=bms_configs[0].name if bms_configs else "battery",
        bms_driver_name=bms_configs[0].driver if bms_configs else "",
        battery_current_max=main.rating.battery_current_max,
        safe_off_timeout=safe_off_timeout,
    )
