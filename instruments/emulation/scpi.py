"""The SCPI engine in one import: declare a model, serve it, fault it.

See ``docs/scpi-engine.md``. Parsing lives in :mod:`~instruments.emulation.scpi_parser`,
execution and IEEE 488.2 status in :mod:`~instruments.emulation.scpi_device`, line framing
in :mod:`~instruments.emulation.scpi_session`.
"""

from __future__ import annotations

from instruments.emulation.scpi_device import (
    COMMON_COMMANDS,
    KEYSIGHT_ERRORS,
    PLAIN_ERRORS,
    Command,
    CommandTable,
    FixedFormat,
    Nr3Format,
    NumberFormat,
    PlainFormat,
    ScpiDevice,
    StatusRegister,
    command,
    query,
    setting,
    status_commands,
)
from instruments.emulation.scpi_parser import (
    Boolean,
    BoundQuery,
    Choice,
    Number,
    Param,
    Raw,
    ScpiError,
    String,
)
from instruments.emulation.scpi_session import MAX_MESSAGE, ScpiSession, scpi_session_factory

__all__ = [
    "COMMON_COMMANDS",
    "KEYSIGHT_ERRORS",
    "MAX_MESSAGE",
    "PLAIN_ERRORS",
    "Boolean",
    "BoundQuery",
    "Choice",
    "Command",
    "CommandTable",
    "FixedFormat",
    "Nr3Format",
    "Number",
    "NumberFormat",
    "Param",
    "PlainFormat",
    "Raw",
    "ScpiDevice",
    "ScpiError",
    "ScpiSession",
    "StatusRegister",
    "String",
    "command",
    "query",
    "scpi_session_factory",
    "setting",
    "status_commands",
]
