"""Instrument families: each driver module declares its own, here is where they are found.

A *family* is one driver a bench file names (``driver = "n5700"``): what it does for its
unit (``function``), how it is reached (``transport``), which bench-file settings it takes
and their defaults, how to open it, the data file of its models' ratings and what an
emulated bench must pass it. The driver module builds its :class:`Family` and calls
:func:`register`; :func:`families` imports every module of the ``instruments`` package
(``pkgutil``) so that adding a family edits no list here or anywhere else.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from types import MappingProxyType
from typing import Any, Literal

from instruments.base import Instrument, Rating
from instruments.errors import ConfigError

#: What an instrument does for its unit: how the adapters combine instruments.
Function = Literal["converter", "supply", "load", "bidirectional", "bms"]
FUNCTIONS: tuple[Function, ...] = ("converter", "supply", "load", "bidirectional", "bms")
#: How a driver reaches its instrument; decides which resource strings are accepted.
Transport = Literal["visa", "modbus_tcp", "modbus_rtu", "serial", "http"]
#: The facts of the bench file a family's opener may take besides its settings.
OpenKeyword = Literal["rating", "model", "retries"]
SettingValue = int | float | str | bool
#: The serial speeds a bench file may give a serial family.
SERIAL_BAUDS: tuple[int, ...] = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)


@dataclass(frozen=True)
class SettingSpec:
    """One setting a bench file may give under ``[units.instruments.settings]``.

    ``opens``: passed to the driver's ``open`` as a keyword of the same name (with
    ``default`` when the file gives none); otherwise it is read by the unit's adapter
    (e.g. the level a battery-side supply holds).
    """

    name: str
    kind: Literal["int", "float"]
    help: str
    default: int | float | None = None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[int, ...] | None = None
    opens: bool = True


#: Settings every supply family takes for the supply adapter (not for ``open``): what a
#: supply holds when it is a battery emulator's source.
SUPPLY_HOLD_SETTINGS: tuple[SettingSpec, ...] = (
    SettingSpec(
        "hold_voltage",
        "float",
        "V: voltage the supply holds while its unit is active (battery-side supplies)",
        minimum=0.0,
        opens=False,
    ),
    SettingSpec(
        "current_limit", "float", "A: current limit while holding", minimum=0.0, opens=False
    ),
)


#: The kinds of command whose processing time a family's ratings file gives: ``read`` is
#: a query (SCPI ``...?``, a Modbus read, an EZA-2500 read frame), ``write`` a setting.
COMMAND_KINDS: tuple[str, ...] = ("read", "write")


@dataclass(frozen=True)
class CommandTiming:
    """How long an instrument model takes to process one command, per kind (seconds).

    From the ``timing`` table of the family's ratings file (``read_ms``, ``write_ms``);
    ``source`` names the manual or measurement, and ``assumed`` says that no manual
    states the figure (it is our estimate). The emulator adds the serial line's own
    transmission time on top (``instruments.emulation.timing``).
    """

    read_s: float
    write_s: float
    source: str
    assumed: bool

    def latency(self, kind: str) -> float:
        """Processing time of one command of ``kind`` (``read`` or ``write``)."""
        return self.read_s if kind == "read" else self.write_s


@dataclass(frozen=True)
class InstrumentRating:
    """The rated limits of one instrument model (from its family's ratings file)."""

    family: str
    model: str
    description: str
    voltage_max: float
    current_source_max: float
    current_sink_max: float
    power_max: float
    source: str
    voltage_min: float = 0.0
    battery_voltage_min: float | None = None
    battery_voltage_max: float | None = None
    battery_current_max: float | None = None
    timing: CommandTiming | None = None

    @property
    def can_source(self) -> bool:
        return self.current_source_max > 0

    @property
    def can_sink(self) -> bool:
        return self.current_sink_max > 0

    def driver_rating(self) -> Rating:
        """The driver's :class:`~instruments.base.Rating`: voltage, largest current, power."""
        current = max(self.current_source_max, self.current_sink_max)
        return Rating(voltage=self.voltage_max, current=current, power=self.power_max)


@dataclass(frozen=True)
class Family:
    """One driver a bench file may name, declared by its driver module.

    ``ratings`` is the TOML file of its models, next to the driver in the ``instruments``
    package (two families of one instrument, e.g. two transports, may share one).
    ``emulated_options`` are extra ``open`` keywords for benches whose instruments are
    emulated. ``unadapted`` says why no unit adapter can drive the family (empty: one can).
    ``no_emulator_model`` says why no emulator model is registered for it (empty: one is).
    """

    name: str
    function: Function
    transport: Transport
    description: str
    opener: Callable[..., Instrument]
    ratings: str
    settings: tuple[SettingSpec, ...] = ()
    open_keywords: frozenset[OpenKeyword] = frozenset()
    emulated_options: Mapping[str, Any] = field(default_factory=dict)
    unadapted: str = ""
    no_emulator_model: str = ""

    def setting(self, name: str) -> SettingSpec | None:
        return next((s for s in self.settings if s.name == name), None)

    @property
    def ratings_table(self) -> str:
        """The name of the ratings table (the file's stem), e.g. ``psb10000``."""
        return self.ratings.rsplit(".", 1)[0]

    def ratings_text(self) -> str:
        """The ratings file's text (package data of ``instruments``)."""
        return (resources.files("instruments") / self.ratings).read_text(encoding="utf-8")

    def open_options(
        self,
        settings: Mapping[str, SettingValue],
        *,
        name: str,
        timeout: float,
        rating: InstrumentRating,
        model: str,
        retries: int,
    ) -> dict[str, Any]:
        """The keywords of ``opener`` for one bench-file instrument of this family."""
        options: dict[str, Any] = {"name": name, "timeout": timeout}
        given = {"rating": rating.driver_rating(), "model": model, "retries": max(1, retries)}
        options.update((key, given[key]) for key in sorted(self.open_keywords))
        for spec in self.settings:
            if not spec.opens:
                continue
            value = settings.get(spec.name, spec.default)
            if value is None:
                continue
            options[spec.name] = int(value) if spec.kind == "int" else float(value)
        return options


_REGISTRY: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Add ``family`` to the registry (its driver module calls this once, at import)."""
    known = _REGISTRY.get(family.name)
    if known is not None and known != family:
        raise ConfigError(f"instrument family {family.name!r} is registered twice")
    _REGISTRY[family.name] = family
    return family


def families() -> Mapping[str, Family]:
    """Every family, keyed by the driver name a bench file uses (imports every driver)."""
    package = importlib.import_module("instruments")
    for module in pkgutil.iter_modules(package.__path__):
        if not module.ispkg and not module.name.startswith("_"):
            importlib.import_module(f"instruments.{module.name}")
    return MappingProxyType(dict(sorted(_REGISTRY.items())))


def family(name: str) -> Family:
    """The family registered as ``name``; ``ConfigError`` listing the known names otherwise."""
    known = families()
    try:
        return known[name]
    except KeyError:
        raise ConfigError(
            f"unknown driver {name!r}; known drivers: {', '.join(sorted(known))}"
        ) from None
