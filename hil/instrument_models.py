"""Known instrument drivers, their settings and transports, and the model ratings table.

``DRIVERS`` is the one place that lists the driver names a bench file may use; add a driver
by adding one ``DriverSpec``. Each driver belongs to a model *family*; the rated voltage,
current and power of every model of a family live in ``hil/data/instrument_models.toml``
(data, not code), so that a bench file can say ``model = "N5772A"`` and the loader knows
the instrument's ratings, refuses an envelope wider than them, and refuses an instrument
whose voltage rating does not suit the node it sits on.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any, Literal

from hil.toml_source import TomlSource

#: What an instrument does for its unit: how the adapters combine instruments.
Function = Literal["converter", "supply", "load", "bidirectional", "bms"]
#: How a driver reaches its instrument; decides which resource strings are accepted.
Transport = Literal["visa", "modbus_tcp", "modbus_rtu", "serial"]
SettingValue = int | float | str | bool

#: The resource string of an instrument that exists only in the emulator.
EMULATED = "emulated"


@dataclass(frozen=True)
class SettingSpec:
    """One driver setting a bench file may give under ``[units.instruments.settings]``."""

    name: str
    kind: Literal["int", "float"]
    help: str
    default: int | float | None = None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[int, ...] | None = None


@dataclass(frozen=True)
class DriverSpec:
    """A driver the toolkit knows: its function, transport, model family and settings."""

    name: str
    function: Function
    transport: Transport
    family: str
    description: str
    settings: tuple[SettingSpec, ...] = ()

    def setting(self, name: str) -> SettingSpec | None:
        return next((s for s in self.settings if s.name == name), None)


_SERIAL_BAUDS = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)

#: Every driver name a bench file may use. Extend here (and add its models to the table).
DRIVERS: Mapping[str, DriverSpec] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            DriverSpec(
                "n5700",
                "supply",
                "visa",
                "n5700",
                "Keysight N5700 system DC supply (SCPI)",
                (
                    SettingSpec(
                        "hold_voltage",
                        "float",
                        "V: voltage the supply holds while its unit is active "
                        "(battery-side supplies)",
                        minimum=0.0,
                    ),
                    SettingSpec(
                        "current_limit", "float", "A: current limit while holding", minimum=0.0
                    ),
                ),
            ),
            DriverSpec(
                "it6000c",
                "bidirectional",
                "visa",
                "it6000c",
                "ITECH IT6000C regenerative supply (SCPI)",
            ),
            DriverSpec(
                "chroma63200a",
                "load",
                "visa",
                "chroma63200a",
                "Chroma 63200A DC electronic load (SCPI)",
                (
                    SettingSpec(
                        "cv_voltage",
                        "float",
                        "V: run in constant-voltage mode at this level (battery emulation)",
                        minimum=0.0,
                    ),
                ),
            ),
            DriverSpec(
                "psb10000",
                "bidirectional",
                "modbus_tcp",
                "psb10000",
                "EA PSB 10000 bidirectional supply (ModBus TCP)",
                (SettingSpec("device_id", "int", "Modbus unit id (answers 0 and 1)", 0, 0, 247),),
            ),
            DriverSpec(
                "psb10000-scpi",
                "bidirectional",
                "visa",
                "psb10000",
                "EA PSB 10000 bidirectional supply (SCPI)",
            ),
            DriverSpec(
                "eza2500",
                "converter",
                "serial",
                "eza2500",
                "TDK-Lambda EZA-2500 DC/DC converter (binary frames, RS-485)",
                (
                    SettingSpec("ad1", "int", "frame address byte AD1", 0, 0, 255),
                    SettingSpec("ad2", "int", "frame address byte AD2", 16, 0, 255),
                    SettingSpec("baudrate", "int", "serial speed", 19200, choices=_SERIAL_BAUDS),
                ),
            ),
            DriverSpec(
                "apis_bms",
                "bms",
                "modbus_rtu",
                "apis_bms",
                "APIS battery BMS (Modbus RTU, RS-485)",
                (
                    SettingSpec("device_id", "int", "Modbus unit (device) id", 1, 1, 247),
                    SettingSpec("baudrate", "int", "serial speed", 9600, choices=_SERIAL_BAUDS),
                    SettingSpec(
                        "soc_register",
                        "int",
                        "input register number of the SoC (3xxxx, manual; wire = n - 30001)",
                        30030,
                        30001,
                        39999,
                    ),
                    SettingSpec(
                        "status_register",
                        "int",
                        "input register number of the status (3xxxx; wire = n - 30001)",
                        30031,
                        30001,
                        39999,
                    ),
                ),
            ),
        )
    }
)


@dataclass(frozen=True)
class InstrumentRating:
    """The rated limits of one instrument model (from the model table)."""

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

    @property
    def can_source(self) -> bool:
        return self.current_source_max > 0

    @property
    def can_sink(self) -> bool:
        return self.current_sink_max > 0


MODELS_RESOURCE = "data/instrument_models.toml"


@cache
def model_table() -> Mapping[str, Mapping[str, InstrumentRating]]:
    """All known models per family, loaded once from the package data file."""
    text = (resources.files("hil") / MODELS_RESOURCE).read_text(encoding="utf-8")
    return parse_model_table(text, f"hil/{MODELS_RESOURCE}")


def parse_model_table(text: str, name: str) -> Mapping[str, Mapping[str, InstrumentRating]]:
    """Parse and check a model table (the data file format); raises ``ConfigError``."""
    root = TomlSource(text, name).root()
    families: dict[str, Mapping[str, InstrumentRating]] = {}
    known_families = {spec.family for spec in DRIVERS.values()}
    for family in list(root.data):
        if family not in known_families:
            root.forbid(family, "no driver uses this model family")
            continue
        models: dict[str, InstrumentRating] = {}
        for model, table in root.named_tables(family):
            positive: dict[str, Any] = {"minimum": 0.0, "min_open": True}
            rating = InstrumentRating(
                family=family,
                model=model,
                description=table.string("description"),
                voltage_max=table.req_number("voltage_max", **positive),
                voltage_min=table.opt_number("voltage_min", 0.0, minimum=0.0),
                current_source_max=table.req_number("current_source_max", minimum=0.0),
                current_sink_max=table.req_number("current_sink_max", minimum=0.0),
                power_max=table.req_number("power_max", **positive),
                battery_voltage_min=table.number("battery_voltage_min", None, minimum=0.0),
                battery_voltage_max=table.number("battery_voltage_max", None, **positive),
                battery_current_max=table.number("battery_current_max", None, **positive),
                source=table.string("source"),
            )
            table.finish()
            if rating.voltage_min >= rating.voltage_max:
                raise table.error("voltage_min", "must be below voltage_max", "< voltage_max")
            models[model] = rating
        families[family] = MappingProxyType(models)
    root.finish()
    return MappingProxyType(families)


def find_model(driver: str, model: str) -> InstrumentRating | None:
    """The rating of ``model`` for ``driver`` (exact name, else case-insensitive)."""
    family = model_table().get(DRIVERS[driver].family, {})
    if model in family:
        return family[model]
    folded = {name.casefold(): rating for name, rating in family.items()}
    return folded.get(model.casefold())


def known_models(driver: str) -> list[str]:
    return sorted(model_table().get(DRIVERS[driver].family, {}))


# -- resource strings ---------------------------------------------------------------------

_VISA_FORMS = [
    re.compile(r"TCPIP\d*::(?P<host>[^:\s]+)::(?P<port>\d+)::SOCKET", re.IGNORECASE),
    re.compile(r"TCPIP\d*::[^:\s]+(::[^:\s]+)?::INSTR", re.IGNORECASE),
    re.compile(r"ASRL\S+::INSTR", re.IGNORECASE),
    re.compile(r"USB\d*::\S+::INSTR", re.IGNORECASE),
    re.compile(r"GPIB\d*::\d+(::\d+)?::INSTR", re.IGNORECASE),
]
_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252})?")
_SERIAL_URL = re.compile(r"(socket|rfc2217|loop|spy|alt|hwgrep|cp2110)://\S*")
_SERIAL_DEVICE = re.compile(r"(/dev/\S+|COM\d+|\\\\\.\\COM\d+)")

RESOURCE_FORMS: Mapping[Transport, str] = MappingProxyType(
    {
        "visa": "a VISA resource (TCPIP0::<host>::<port>::SOCKET, TCPIP0::<host>::INSTR, "
        "ASRL<device>::INSTR, USB0::…::INSTR, GPIB0::<n>::INSTR) or 'emulated'",
        "modbus_tcp": "<host>:<port> (e.g. 192.168.0.40:502), modbus-tcp://<host>[:<port>] "
        "or 'emulated'",
        "modbus_rtu": "a serial device (/dev/ttyUSB0, COM3), a pyserial URL (socket://<host>:"
        "<port>), modbus-rtu:<device or URL>, modbus-rtu-tcp://<host>:<port> or 'emulated'",
        "serial": "a serial device (/dev/ttyUSB0, /dev/serial/by-id/…, COM3), a pyserial URL "
        "(socket://<host>:<port>, rfc2217://…) or 'emulated'",
    }
)


def _valid_port(text: str) -> bool:
    return text.isdigit() and 1 <= int(text) <= 65535


def _valid_host(text: str) -> bool:
    if text.startswith("[") and text.endswith("]"):
        try:
            ipaddress.IPv6Address(text[1:-1])
        except ValueError:
            return False
        return True
    return bool(_HOST.fullmatch(text))


def _host_port_problem(text: str, resource: str, *, port_required: bool = True) -> str | None:
    host, sep, port = text.rpartition(":")
    if not sep and not port_required and _valid_host(text):
        return None
    if not sep or not _valid_host(host) or not _valid_port(port):
        return f"{resource!r} is not <host>:<port> with a port in 1-65535"
    return None


def _serial_problem(text: str, resource: str) -> str | None:
    if _SERIAL_DEVICE.fullmatch(text) or _SERIAL_URL.fullmatch(text):
        return None
    return f"{resource!r} is not a serial device path or pyserial URL"


def resource_problem(transport: Transport, resource: str) -> str | None:
    """Why ``resource`` is not acceptable for ``transport``, or None if it is."""
    if resource == EMULATED:
        return None
    if not resource or resource != resource.strip():
        return f"{resource!r} is empty or has surrounding spaces"
    lowered = resource.lower()
    if transport == "visa":
        for form in _VISA_FORMS:
            match = form.fullmatch(resource)
            if match:
                port = match.groupdict().get("port")
                if port is not None and not _valid_port(port):
                    return f"port {port} is outside 1-65535"
                return None
        return f"{resource!r} is not a VISA resource string"
    if transport == "modbus_tcp":
        if lowered.startswith("modbus-tcp://"):
            return _host_port_problem(resource[13:], resource, port_required=False)
        return _host_port_problem(resource, resource)
    if transport == "modbus_rtu":
        if lowered.startswith("modbus-rtu-tcp://"):
            return _host_port_problem(resource[17:], resource)
        if lowered.startswith("modbus-rtu:"):
            return _serial_problem(resource[11:], resource)
    return _serial_problem(resource, resource)
