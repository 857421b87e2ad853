"""The registered families' model ratings, and the resource strings each transport accepts.

The families themselves are declared by their driver modules (:mod:`instruments.families`);
each names the TOML file of its models' ratings, next to the driver. This module loads and
checks those files (with the bench file's line-numbered errors) so that a bench file can say
``model = "N5772A"`` and the loader knows the instrument's ratings, refuses an envelope wider
than them, and refuses an instrument whose voltage rating does not suit its node.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from functools import cache
from types import MappingProxyType
from typing import Any

from hil.config.toml_source import Table, TomlSource
from instruments.families import (
    CommandTiming,
    Family,
    Function,
    InstrumentRating,
    SettingSpec,
    SettingValue,
    Transport,
    families,
    family,
)

__all__ = [
    "EMULATED",
    "RESOURCE_FORMS",
    "Family",
    "Function",
    "InstrumentRating",
    "SettingSpec",
    "SettingValue",
    "Transport",
    "families",
    "family",
    "find_model",
    "known_models",
    "model_table",
    "parse_model_table",
    "resource_problem",
]

#: The resource string of an instrument that exists only in the emulator.
EMULATED = "emulated"
#: The table of command processing times: ``[timing]`` for every model of the file,
#: ``[<model>.timing]`` for one model (it wins).
TIMING_TABLE = "timing"
#: The longest processing time a ratings file may give one command (ms).
MAX_LATENCY_MS = 10_000.0


@cache
def model_table() -> Mapping[str, Mapping[str, InstrumentRating]]:
    """All known models per ratings table, loaded once from the families' data files."""
    tables: dict[str, Mapping[str, InstrumentRating]] = {}
    for fam in families().values():
        if fam.ratings_table not in tables:
            tables[fam.ratings_table] = parse_ratings(
                fam.ratings_text(), f"instruments/{fam.ratings}", fam.ratings_table
            )
    return MappingProxyType(tables)


def parse_ratings(text: str, name: str, table_name: str) -> Mapping[str, InstrumentRating]:
    """Parse and check one family's ratings file (one table per model); ``ConfigError``."""
    root = TomlSource(text, name).root()
    family_timing = _timing(root.table(TIMING_TABLE), None)
    models: dict[str, InstrumentRating] = {}
    for model in list(root.data):
        if model == TIMING_TABLE:
            continue
        table = root.table(model)
        assert table is not None
        models[model] = _rating(table, table_name, model, family_timing)
    root.finish()
    return MappingProxyType(models)


def parse_model_table(text: str, name: str) -> Mapping[str, Mapping[str, InstrumentRating]]:
    """Parse a combined table, ``[<ratings table>.<model>]`` (tests and tools); ``ConfigError``."""
    root = TomlSource(text, name).root()
    known = {fam.ratings_table for fam in families().values()}
    tables: dict[str, Mapping[str, InstrumentRating]] = {}
    for table_name in list(root.data):
        if table_name not in known:
            root.forbid(table_name, "no driver uses this model family")
            continue
        tables[table_name] = MappingProxyType(
            {
                model: _rating(t, table_name, model, None)
                for model, t in root.named_tables(table_name)
            }
        )
    root.finish()
    return MappingProxyType(tables)


def _timing(table: Table | None, default: CommandTiming | None) -> CommandTiming | None:
    """A ``timing`` table (``read_ms``, ``write_ms``, ``source``, ``assumed``), or
    ``default`` when there is none."""
    if table is None:
        return default
    bounds: dict[str, Any] = {"minimum": 0.0, "maximum": MAX_LATENCY_MS}
    timing = CommandTiming(
        read_s=table.req_number("read_ms", **bounds) / 1000.0,
        write_s=table.req_number("write_ms", **bounds) / 1000.0,
        source=table.string("source"),
        assumed=table.boolean("assumed"),
    )
    table.finish()
    return timing


def _rating(
    table: Table, table_name: str, model: str, family_timing: CommandTiming | None
) -> InstrumentRating:
    positive: dict[str, Any] = {"minimum": 0.0, "min_open": True}
    rating = InstrumentRating(
        family=table_name,
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
        timing=_timing(table.table(TIMING_TABLE), family_timing),
    )
    table.finish()
    if rating.voltage_min >= rating.voltage_max:
        raise table.error("voltage_min", "must be below voltage_max", "< voltage_max")
    return rating


def find_model(driver: str, model: str) -> InstrumentRating | None:
    """The rating of ``model`` for ``driver`` (exact name, else case-insensitive)."""
    table = model_table().get(family(driver).ratings_table, {})
    if model in table:
        return table[model]
    folded = {name.casefold(): rating for name, rating in table.items()}
    return folded.get(model.casefold())


def known_models(driver: str) -> list[str]:
    return sorted(model_table().get(family(driver).ratings_table, {}))


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
        "http": "an HTTP service URL, http://<host>:<port> (e.g. http://127.0.0.1:4380)",
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
    if resource == EMULATED and transport == "http":
        return (
            "an HTTP service has no emulated twin: give its URL (`hil emulate BENCH --apis` "
            "serves one in front of emulated units)"
        )
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
    if transport == "http":
        if lowered.startswith("http://"):
            return _host_port_problem(resource[7:].rstrip("/"), resource)
        return f"{resource!r} is not an http://<host>:<port> URL"
    if transport == "modbus_rtu":
        if lowered.startswith("modbus-rtu-tcp://"):
            return _host_port_problem(resource[17:], resource)
        if lowered.startswith("modbus-rtu:"):
            return _serial_problem(resource[11:], resource)
    return _serial_problem(resource, resource)
