"""An electronic load on the bus (Chroma 63200A): sink only.

How it maps the controller onto the load (the load reports sunk current as a positive
number; the bus convention makes it negative):

- ``set_current(a)``, ``a ≤ 0``: constant current, high range: ``MODE CCH`` (only when the
  load is not already in CC), ``CURR:STAT:L1 |a|``, ``LOAD ON``. A positive ``a`` is a
  ``CapabilityError`` before anything is sent.
- ``hold_voltage``: refused (``CapabilityError``). A load in CV can only clamp the bus from
  above; it cannot bring a dead bus up, so it is not offered as a voltage reference. (Sony's
  battery emulator uses the CV mode on the battery node, see :mod:`hil.units.battery`.)
- ``idle()``: ``LOAD OFF`` then ``CURR:STAT:L1 0``.
- ``arm()``: ``LOAD OFF``, ``MODE CCH``, ``CURR:STAT:L1 0`` and the turn-on voltage
  ``CONF:VOLT:ON`` at the bottom of the unit's voltage window, so the load stops sinking if
  the bus sags out of its window. The 63200A's over-current/power/voltage protections are
  fixed at its rating (no programmable levels in the driver); it has no watchdog.
- ``read()``: one compound query ``MEAS:VOLT?;:MEAS:CURR?;:LOAD?;:STAT:CHAN:COND?;:MODE?``.
  A latched channel bit (OTP, OVP, OCP, OPP, REV) makes the mode FAULT; SYNC, MAX LIM and
  FAN do not (see :mod:`instruments.chroma63200a` for the bit layout and its source).
"""

from __future__ import annotations

import logging

from hil.clock import Clock
from hil.controller import Capabilities, Mode, Reading
from hil.envelope import UnitEnvelope
from hil.errors import MalformedReply
from instruments.chroma63200a import TRIPS, ChannelStatus, Chroma63200A, LoadMode
from instruments.scpi import parse_bool, parse_number

from .base import SAFE_OFF_TIMEOUT_S, Part, SafeStep, UnitBase, query_fields

log = logging.getLogger(__name__)

READ_QUERIES = ("MEAS:VOLT?", "MEAS:CURR?", "LOAD?", "STAT:CHAN:COND?", "MODE?")
STATUS_QUERIES = ("LOAD?", "STAT:CHAN:COND?")

_STATUS_FLAGS = {
    ChannelStatus.OTP: "OTP",
    ChannelStatus.OVP: "OVP",
    ChannelStatus.OCP: "OCP",
    ChannelStatus.OPP: "OPP",
    ChannelStatus.REV: "REV",
}


def chroma_flags(status: ChannelStatus, prefix: str = "") -> frozenset[str]:
    """Flag names of the channel status bits."""
    return frozenset(prefix + name for bit, name in _STATUS_FLAGS.items() if bit in status)


def _int(text: str, load: Chroma63200A, command: str) -> int:
    return int(parse_number(text, resource=load.resource, command=command))


def chroma_status(load: Chroma63200A) -> tuple[bool, ChannelStatus]:
    """Input state and channel status in one round trip."""
    command = ";:".join(STATUS_QUERIES)
    state, status = query_fields(load, STATUS_QUERIES)
    on = parse_bool(state, resource=load.resource, command=command)
    return on, ChannelStatus(_int(status, load, command))


def parse_load_mode(text: str, load: Chroma63200A, command: str) -> LoadMode:
    """``CCH`` (any case, optionally quoted) as a :class:`LoadMode`."""
    word = text.strip().strip('"').upper()
    try:
        return LoadMode(word)
    except ValueError:
        raise MalformedReply(
            f"mode {text!r} is none of {', '.join(m.value for m in LoadMode)}",
            resource=load.resource,
            command=command,
        ) from None


class LoadUnit(UnitBase):
    """A Chroma 63200A on the bus, as a sink-only constant-current unit."""

    kind = "load"

    def __init__(
        self,
        unit_id: str,
        load: Chroma63200A,
        envelope: UnitEnvelope,
        clock: Clock,
        *,
        name: str = "load",
        driver_name: str = "chroma63200a",
        safe_off_timeout: float = SAFE_OFF_TIMEOUT_S,
    ) -> None:
        rating = load.rating
        capabilities = Capabilities(
            can_source=False,
            can_sink=True,
            can_hold_voltage=False,
            source_current_max=0.0,
            sink_current_max=rating.current,
            voltage_max=rating.voltage,
            power_max=rating.power,
            has_battery=False,
            hardware_watchdog=False,
        )
        super().__init__(
            unit_id,
            envelope,
            clock,
            [Part(unit_id, name, driver_name, load)],
            capabilities,
            safe_off_timeout=safe_off_timeout,
        )
        self.load = load

    def set_current(self, amps: float) -> None:
        amps = self._check_current(amps)
        with self._sending() as generation, self.load.locked():
            self._still_allowed(generation, f"set_current({amps:+g} A)")
            primed = self._primed and self._commanded is Mode.CURRENT
            if not primed:
                self.load.mode = LoadMode.CCH
            self.load.current = abs(amps)
            if not primed:
                self.load.load = True
            self._commit(Mode.CURRENT, amps)

    def hold_voltage(self, volts: float, current_limit: float, droop: float = 0.0) -> None:
        """Always refused (``CapabilityError``): see the module docstring."""
        self._check_hold(volts, current_limit, droop, both_directions=False)

    def idle(self) -> None:
        with self._sending(), self.load.locked():
            self.load.load = False
            self.load.current = 0.0
            self._commit(Mode.IDLE, None)

    def arm(self) -> None:
        with self._sending(), self.load.locked():
            self.load.load = False
            self.load.mode = LoadMode.CCH
            self.load.current = 0.0
            self.load.turn_on_voltage = self._envelope.voltage_min
            self._commit(Mode.IDLE, None)
        log.info("unit %s: armed %s", self._unit_id, self._parts[0].label)

    def read(self) -> Reading:
        t = self._clock.now()
        fields = query_fields(self.load, READ_QUERIES)
        command = ";:".join(READ_QUERIES)
        volts = parse_number(fields[0], resource=self.load.resource, command=command)
        sunk = parse_number(fields[1], resource=self.load.resource, command=command)
        on = parse_bool(fields[2], resource=self.load.resource, command=command)
        status = ChannelStatus(_int(fields[3], self.load, command))
        regulation = parse_load_mode(fields[4], self.load, command).regulation
        if status & TRIPS:
            mode = Mode.FAULT
        elif not on:
            mode = Mode.IDLE
        elif regulation == "CV":
            mode = Mode.VOLTAGE_REFERENCE
        else:
            mode = Mode.CURRENT
        return self._reading(
            t, bus_voltage=volts, bus_current=-sunk, mode=mode, flags=chroma_flags(status)
        )

    def _safe_off_steps(self) -> list[SafeStep]:
        part = self._parts[0]

        def load_off() -> None:
            self.load.load = False

        def current_zero() -> None:
            self.load.current = 0.0

        return [
            SafeStep(part, "LOAD OFF", load_off),
            SafeStep(part, "CURR:STAT:L1 0", current_zero),
        ]
