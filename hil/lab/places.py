"""Bench file ↔ labgrid place, without importing labgrid.

A bench's instruments become labgrid resources named after their bench-file key
(``<unit>.<instrument>``). A networked instrument is one :data:`INSTRUMENT_CLASS`
resource (``host``, ``port`` and ``form``, the resource string with ``{host}`` and
``{port}`` left open), so that the coordinator carries exactly what the bench needs to
rebuild its resource string on another PC. A serial device is a labgrid ``RawSerialPort``,
which the exporter serves through ser2net; the client sees a ``NetworkSerialPort`` and the
bench talks to it as ``rfc2217://HOST:PORT?ign_set_control``. An emulated bench adds one
:data:`CONTROL_CLASS` resource: its emulator's control channel.

Sources (labgrid 26.0.1): exporter YAML ``group: {location, name: {cls, …params}}`` and
"unknown classes pass through unchanged" (``labgrid/remote/exporter.py``,
``Exporter.run`` and ``add_resource``: an unknown ``cls`` becomes a plain ``ResourceEntry``,
available at once, its params kept); ``RawSerialPort`` → ``NetworkSerialPort`` with ``host``
and ``port`` (``SerialPortExport``); place tag keys ``[a-z][a-z0-9_]+``
(``labgrid/remote/common.py``, ``TAG_KEY``); ``?ign_set_control`` for ser2net's RFC 2217
(labgrid's ``SerialDriver`` docs). A serial VISA instrument (``ASRL/dev/…::INSTR``) comes
back as ``ASRLrfc2217://…::INSTR`` and a Modbus RTU one as a plain ``rfc2217://`` URL:
assumed to reach them through pyserial's URL handlers as ``socket://`` does against the
emulator (not yet run against ser2net here).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hil.config.bench import BenchConfig, InstrumentConfig
from hil.config.lab import TAG_KEY, TAG_VALUE, LabgridConfig
from hil.errors import ConfigError

#: Our resource class for an instrument at host:port (SCPI socket, Modbus TCP, raw TCP).
INSTRUMENT_CLASS = "HilNetworkInstrument"
#: Our resource class for an emulated bench's control channel.
CONTROL_CLASS = "HilEmulatorControl"
#: The resource name of the control channel on an emulated place.
CONTROL_NAME = "emulator-control"
#: labgrid's serial resource on the exporter side and what clients see of it.
RAW_SERIAL = "RawSerialPort"
NETWORK_SERIAL = "NetworkSerialPort"

# A resource string's host and port, and how to write it again (first match wins).
_NETWORK_FORMS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(TCPIP\d*)::([^:\s]+)::(\d+)::SOCKET", re.I), "{0}::{{host}}::{{port}}::SOCKET"),
    (re.compile(r"(ASRLsocket://)([^:\s/]+):(\d+)(::INSTR)", re.I), "{0}{{host}}:{{port}}{3}"),
    (re.compile(r"((?:modbus-tcp|modbus-rtu-tcp|socket|rfc2217|echonet)://)([^:\s/]+):(\d+)(\S*)",
                re.I),
     "{0}{{host}}:{{port}}{3}"),
    (re.compile(r"()([A-Za-z0-9][A-Za-z0-9.-]*):(\d+)()"), "{{host}}:{{port}}"),
)  # fmt: skip
_SERIAL_DEVICE = re.compile(r"(?:modbus-rtu:|ASRL)?(/dev/[^\s:]+)(?:::INSTR)?", re.I)
#: Modbus TCP without a port means 502 (Modbus Application Protocol over TCP/IP, §4.4.1).
MODBUS_TCP_PORT = 502
#: ECHONET Lite without a port means 3610 (ECHONET Lite specification, Part II, UDP port).
ECHONET_PORT = 3610


LabPlace = LabgridConfig


def parse_tags(pairs: list[str], where: str) -> dict[str, str]:
    """``key=value`` pairs as a dict; a bad pair is one line naming it and ``where``."""
    tags: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not TAG_KEY.fullmatch(key) or not TAG_VALUE.fullmatch(value):
            raise ConfigError(
                f"{where} {pair!r}: expected key=value, the key [a-z][a-z0-9_]+ (labgrid's tag "
                "keys), the value letters, digits, '_', '.', '-'"
            )
        tags[key] = value
    return tags


def check_address(address: str, where: str) -> str:
    """A coordinator address ``HOST:PORT``; else one line naming ``where``."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{where} {address!r}: expected HOST:PORT, e.g. 127.0.0.1:20408")
    return address


@dataclass(frozen=True)
class ExportedResource:
    """One labgrid resource of an exporter: its name, class and parameters."""

    name: str
    cls: str
    params: Mapping[str, Any]


def export_instrument(inst: InstrumentConfig, resource: str | None = None) -> ExportedResource:
    """The labgrid resource that carries ``inst`` (at ``resource``, default its own)."""
    text = inst.resource if resource is None else resource
    serial = _SERIAL_DEVICE.fullmatch(text)
    if serial is not None:
        params: dict[str, Any] = {"port": serial.group(1)}
        baud = inst.settings.get("baudrate")
        if isinstance(baud, int):
            params["speed"] = baud
        return ExportedResource(inst.key, RAW_SERIAL, params)
    if inst.transport == "modbus_tcp" and re.fullmatch(r"modbus-tcp://[^:\s/]+", text, re.I):
        text = f"{text}:{MODBUS_TCP_PORT}"
    bare = re.fullmatch(r"(echonet://[^:\s/]+)(/\S*)?", text, re.I)
    if bare is not None:
        text = f"{bare.group(1)}:{ECHONET_PORT}{bare.group(2) or ''}"
    for pattern, form in _NETWORK_FORMS:
        match = pattern.fullmatch(text)
        if match is not None:
            return ExportedResource(
                inst.key,
                INSTRUMENT_CLASS,
                {
                    "host": match.group(2),
                    "port": int(match.group(3)),
                    "form": form.format(*match.groups()),
                    "transport": inst.transport,
                    "driver": inst.driver,
                },
            )
    raise ConfigError(
        f"{inst.key}: resource {text!r} cannot be exported to labgrid; allowed: a LAN resource "
        "(TCPIP::host::port::SOCKET, host:port, modbus-tcp://, modbus-rtu-tcp://, socket://, "
        "echonet://) "
        "or a serial device /dev/… (served by ser2net)"
    )


def export_bench(
    bench: BenchConfig,
    resources: Mapping[str, str] | None = None,
    control: str | None = None,
) -> list[ExportedResource]:
    """Every instrument of ``bench`` as a labgrid resource (``resources`` replaces theirs,
    e.g. the emulator's), and the emulator's control channel if ``control`` is given."""
    given = resources or {}
    exported = [export_instrument(i, given.get(i.key)) for i in bench.instruments()]
    if control is not None:
        host, _, port = check_address(control, "control").rpartition(":")
        exported.append(
            ExportedResource(CONTROL_NAME, CONTROL_CLASS, {"host": host, "port": int(port)})
        )
    return exported


def exporter_yaml(group: str, location: str, exported: list[ExportedResource]) -> str:
    """The exporter's configuration file (YAML; every scalar written as JSON, which YAML
    reads unchanged)."""
    # labgrid renders the file as a Jinja template whose line comments start with "##"
    # (labgrid/remote/config.py, ResourceConfig); a single "#" starts a statement.
    lines = [f"## labgrid-exporter configuration written by `hil` for group {group}"]
    lines.append(f"{json.dumps(group)}:")
    lines.append(f"  location: {json.dumps(location)}")
    for item in exported:
        lines.append(f"  {json.dumps(item.name)}:")
        lines.append(f"    cls: {json.dumps(item.cls)}")
        for key, value in item.params.items():
            lines.append(f"    {key}: {json.dumps(value)}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class PlaceResources:
    """What a place gives a bench: a resource string per instrument, or (an emulated
    place) the control address of the emulator serving them."""

    resources: Mapping[str, str]
    control: str | None


def resolve_resources(
    bench: BenchConfig, place: str, found: Mapping[str, tuple[str, Mapping[str, Any]]]
) -> PlaceResources:
    """Each instrument's resource string from the place's resources (name → class,
    params); one line naming every instrument the place lacks."""
    control = None
    if CONTROL_NAME in found:
        cls, params = found[CONTROL_NAME]
        if cls == CONTROL_CLASS:
            control = f"{params['host']}:{params['port']}"
    resolved: dict[str, str] = {}
    missing: list[str] = []
    for inst in bench.instruments():
        entry = found.get(inst.key)
        if entry is None:
            missing.append(inst.key)
            continue
        cls, params = entry
        resolved[inst.key] = _resource_string(inst, place, cls, params)
    if missing:
        raise ConfigError(
            f"place {place} lacks the resource(s) {', '.join(missing)} that bench {bench.name} "
            f"needs; it has: {', '.join(sorted(found)) or 'none'}"
        )
    return PlaceResources(resolved, control)


def _resource_string(
    inst: InstrumentConfig, place: str, cls: str, params: Mapping[str, Any]
) -> str:
    host, port = params.get("host"), params.get("port")
    if not isinstance(host, str) or not isinstance(port, int):
        raise ConfigError(
            f"place {place}: resource {inst.key} ({cls}) has no host and port; is its exporter "
            "running (a serial port gets its port once ser2net serves it)?"
        )
    if cls == INSTRUMENT_CLASS:
        return str(params["form"]).format(host=host, port=port)
    if cls == NETWORK_SERIAL:
        url = f"rfc2217://{host}:{port}?ign_set_control"
        return f"ASRL{url}::INSTR" if inst.transport == "visa" else url
    raise ConfigError(
        f"place {place}: resource {inst.key} is a {cls}; allowed: {INSTRUMENT_CLASS}, "
        f"{NETWORK_SERIAL}"
    )
