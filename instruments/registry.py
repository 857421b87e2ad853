"""The one place that maps a bench file's driver name to its class.

Names: ``n5700``, ``it6000c``, ``chroma63200a``, ``psb10000`` (ModBus TCP),
``psb10000-scpi``, ``eza2500``, ``apis_bms``. :func:`open_driver` passes the keyword options
through to the class's ``open`` (``rating``, ``model``, ``timeout``, ``device_id``, …).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hil.errors import ConfigError

from .apis_bms import ApisBms
from .base import Instrument
from .chroma63200a import Chroma63200A
from .eza2500 import Eza2500
from .it6000c import IT6000C
from .n5700 import N5700
from .psb10000 import Psb10000, Psb10000Scpi


@dataclass(frozen=True)
class DriverInfo:
    """A driver family: its class, how it talks, what it is."""

    name: str
    cls: type
    transport: str
    description: str
    opener: Callable[..., Instrument]


def _info(name: str, cls: Any, transport: str, description: str) -> DriverInfo:
    return DriverInfo(name, cls, transport, description, cls.open)


DRIVERS: dict[str, DriverInfo] = {
    info.name: info
    for info in (
        _info("n5700", N5700, "scpi", "Keysight N5700/N8700 DC supply (source only)"),
        _info("it6000c", IT6000C, "scpi", "ITECH IT6000C bidirectional DC supply"),
        _info("chroma63200a", Chroma63200A, "scpi", "Chroma 63200A DC electronic load"),
        _info("psb10000", Psb10000, "modbus", "EA PSB 10000 bidirectional supply (ModBus TCP)"),
        _info("psb10000-scpi", Psb10000Scpi, "scpi", "EA PSB 10000 bidirectional supply (SCPI)"),
        _info("eza2500", Eza2500, "serial", "TDK-Lambda EZA-2500 DC/DC converter"),
        _info("apis_bms", ApisBms, "modbus", "APIS battery BMS (Modbus RTU)"),
    )
}


def driver_info(name: str) -> DriverInfo:
    """The registry entry for ``name``; ``ConfigError`` listing the known names otherwise."""
    try:
        return DRIVERS[name]
    except KeyError:
        raise ConfigError(
            f"unknown driver {name!r}; known drivers: {', '.join(sorted(DRIVERS))}"
        ) from None


def driver_class(name: str) -> type:
    """The driver class registered as ``name``."""
    return driver_info(name).cls


def open_driver(name: str, resource: str, **options: Any) -> Instrument:
    """Open ``resource`` with the driver registered as ``name``."""
    return driver_info(name).opener(resource, **options)
