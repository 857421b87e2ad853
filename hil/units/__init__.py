"""Adapters that make every unit on the bus a :class:`~hil.controller.CurrentController`.

One module per kind of unit: :mod:`~hil.units.supply` (source only),
:mod:`~hil.units.load` (sink only), :mod:`~hil.units.bidirectional` (source and sink),
:mod:`~hil.units.converter` (a DC/DC converter with a BMS battery or a battery emulator,
:mod:`~hil.units.battery`). :func:`build_unit` picks the adapter for a bench-file unit;
:func:`open_instrument` opens one bench-file instrument. See ``docs/controllers.md``.
"""

from hil.units.base import SAFE_OFF_TIMEOUT_S, Part, SafeStep, UnitBase, probe_identity
from hil.units.battery import BidirectionalBattery, NodeLevels, SupplyLoadBattery, node_levels
from hil.units.bidirectional import BidirectionalUnit
from hil.units.converter import ConverterUnit
from hil.units.ev import EvUnit
from hil.units.factory import (
    EMULATOR_DRIVER_OPTIONS,
    build_unit,
    driver_options,
    instrument_problem,
    open_instrument,
)
from hil.units.load import LoadUnit
from hil.units.supply import SupplyUnit

__all__ = [
    "EMULATOR_DRIVER_OPTIONS",
    "SAFE_OFF_TIMEOUT_S",
    "BidirectionalBattery",
    "BidirectionalUnit",
    "ConverterUnit",
    "EvUnit",
    "LoadUnit",
    "NodeLevels",
    "Part",
    "SafeStep",
    "SupplyLoadBattery",
    "SupplyUnit",
    "UnitBase",
    "build_unit",
    "driver_options",
    "instrument_problem",
    "node_levels",
    "open_instrument",
    "probe_identity",
]
