"""A unidirectional DC supply on the bus (Keysight N5700): source only.

How it maps the controller onto the supply:

- ``set_current(a)``, ``a ≥ 0``: a current source with a *compliance voltage* ``Vc``. The
  supply is programmed ``CURR a`` and ``VOLT Vc`` with the output on; while the bus voltage
  reference holds the bus below ``Vc`` the supply runs in CC and pushes ``a`` amps in. ``Vc``
  is the top of the unit's voltage window (``envelope.voltage_max``) unless given: if the
  bus ever rose to it the supply would stop adding current, never push it further.
  A negative ``a`` is a ``CapabilityError`` before anything is sent.
- ``hold_voltage(v, limit)``: ``CURR limit``, ``VOLT v``, output on (CV; no droop).
- ``idle()``: ``OUTP OFF`` then ``CURR 0``.
- ``arm()``: ``OUTP OFF``, ``CURR:PROT:STAT OFF`` (foldback would trip the output exactly when
  it does its job, in CC), ``VOLT Vc``, OVP ``VOLT:PROT:LEV`` at 1.05 x the window's top
  (the N5700 requires at least 1.05 x the voltage setting; clipped to its OVP table) and
  the under-voltage setting limit ``VOLT:LIM:LOW`` at the window's bottom (at most 0.95 x
  the voltage setting), then ``CURR 0``: the unit is left idle. The N5700 has no
  communication watchdog.
- ``read()``: one compound query ``MEAS:VOLT?;:MEAS:CURR?;:OUTP?;:STAT:OPER:COND?;
  :STAT:QUES:COND?``. The supply's current is already in bus convention (it only sources).
"""

from __future__ import annotations

import functools
import logging

from hil.clock import Clock
from hil.controller import Capabilities, Mode, Reading
from hil.envelope import UnitEnvelope
from hil.errors import ConfigError
from instruments.n5700 import N5700, UV_LIMIT_FACTOR, Operation, Questionable, ovp_range
from instruments.scpi import parse_bool, parse_number

from .base import (
    SAFE_OFF_TIMEOUT_S,
    VOLTAGE_TRIP_FACTOR,
    Part,
    SafeStep,
    UnitBase,
    query_fields,
)

log = logging.getLogger(__name__)

READ_QUERIES = ("MEAS:VOLT?", "MEAS:CURR?", "OUTP?", "STAT:OPER:COND?", "STAT:QUES:COND?")
READ_COMMAND = ";:".join(READ_QUERIES)
STATUS_QUERIES = ("OUTP?", "STAT:QUES:COND?")

_QUESTIONABLE_FLAGS = {
    Questionable.OV: "OVP",
    Questionable.OC: "OCP",
    Questionable.PF: "PF",
    Questionable.OT: "OTP",
    Questionable.INH: "INH",
    Questionable.UNR: "UNR",
}
_TRIPS = int(
    Questionable.OV | Questionable.OC | Questionable.PF | Questionable.OT | Questionable.INH
)
_CC, _CV = int(Operation.CC), int(Operation.CV)


def n5700_flags(questionable: Questionable | int, prefix: str = "") -> frozenset[str]:
    """Flag names of the questionable condition bits (``OVP``, ``OCP``, ``OTP`` …)."""
    return _flag_names(int(questionable), prefix)


@functools.lru_cache(maxsize=256)
def _flag_names(bits: int, prefix: str) -> frozenset[str]:
    return frozenset(prefix + name for bit, name in _QUESTIONABLE_FLAGS.items() if bits & bit)


def n5700_status(psu: N5700) -> tuple[bool, Questionable]:
    """Output state and questionable condition in one round trip."""
    output, ques = query_fields(psu, STATUS_QUERIES)
    command = ";:".join(STATUS_QUERIES)
    on = parse_bool(output, resource=psu.resource, command=command)
    return on, Questionable(_int(ques, psu, command))


def _int(text: str, psu: N5700, command: str) -> int:
    return int(parse_number(text, resource=psu.resource, command=command))


def n5700_protection_levels(
    psu: N5700, voltage_setting: float, voltage_min: float, voltage_max: float
) -> tuple[float, float]:
    """(OVP, under-voltage limit) for a supply set to ``voltage_setting`` whose node must
    stay inside ``voltage_min``-``voltage_max``; ``ConfigError`` if the N5700 cannot."""
    low, high = ovp_range(psu.rating.voltage)
    ovp = min(max(VOLTAGE_TRIP_FACTOR * voltage_max, low), high)
    if ovp < VOLTAGE_TRIP_FACTOR * voltage_setting:
        raise ConfigError(
            f"{psu.name}: OVP would have to be ≥ {VOLTAGE_TRIP_FACTOR * voltage_setting:g} V "
            f"(1.05 x {voltage_setting:g} V) but the {psu.rating.voltage:g} V model allows at "
            f"most {high:g} V"
        )
    uvl = min(voltage_min, UV_LIMIT_FACTOR * voltage_setting, UV_LIMIT_FACTOR * psu.rating.voltage)
    return ovp, uvl


def n5700_arm(psu: N5700, voltage_setting: float, voltage_min: float, voltage_max: float) -> None:
    """Output off; no foldback; ``VOLT`` at the setting, then OVP and the UV limit."""
    ovp, uvl = n5700_protection_levels(psu, voltage_setting, voltage_min, voltage_max)
    with psu.locked():
        psu.output = False
        psu.foldback = False
        psu.voltage = voltage_setting
        psu.ovp = ovp
        psu.undervoltage_limit = uvl


class SupplyUnit(UnitBase):
    """An N5700 on the bus, as a source-only constant-current unit."""

    kind = "supply"

    def __init__(
        self,
        unit_id: str,
        psu: N5700,
        envelope: UnitEnvelope,
        clock: Clock,
        *,
        name: str = "supply",
        driver_name: str = "n5700",
        compliance_voltage: float | None = None,
        safe_off_timeout: float = SAFE_OFF_TIMEOUT_S,
    ) -> None:
        rating = psu.rating
        capabilities = Capabilities(
            can_source=True,
            can_sink=False,
            can_hold_voltage=True,
            source_current_max=rating.current,
            sink_current_max=0.0,
            voltage_max=rating.voltage,
            power_max=rating.power,
            has_battery=False,
            hardware_watchdog=False,
        )
        super().__init__(
            unit_id,
            envelope,
            clock,
            [Part(unit_id, name, driver_name, psu)],
            capabilities,
            safe_off_timeout=safe_off_timeout,
        )
        self.psu = psu
        self.compliance_voltage = envelope.check_voltage(
            envelope.voltage_max if compliance_voltage is None else compliance_voltage
        )

    def set_current(self, amps: float) -> None:
        amps = self._check_current(amps)
        with self._sending() as generation, self.psu.locked():
            self._still_allowed(generation, f"set_current({amps:+g} A)")
            primed = self._primed and self._commanded is Mode.CURRENT
            self.psu.current = amps
            if not primed:
                self.psu.voltage = self.compliance_voltage
                self.psu.output = True
            self._commit(Mode.CURRENT, amps)

    def hold_voltage(self, volts: float, current_limit: float, droop: float = 0.0) -> None:
        volts, limit, _ = self._check_hold(volts, current_limit, droop, both_directions=False)
        with self._sending() as generation, self.psu.locked():
            self._still_allowed(generation, f"hold_voltage({volts:g} V)")
            primed = self._primed and self._commanded is Mode.VOLTAGE_REFERENCE
            self.psu.current = limit
            self.psu.voltage = volts
            if not primed:
                self.psu.output = True
            self._commit(Mode.VOLTAGE_REFERENCE, volts)

    def idle(self) -> None:
        with self._sending(), self.psu.locked():
            self.psu.output = False
            self.psu.current = 0.0
            self._commit(Mode.IDLE, None)

    def arm(self) -> None:
        env = self._envelope
        n5700_protection_levels(self.psu, self.compliance_voltage, env.voltage_min, env.voltage_max)
        with self._sending(), self.psu.locked():
            n5700_arm(self.psu, self.compliance_voltage, env.voltage_min, env.voltage_max)
            self.psu.current = 0.0
            self._commit(Mode.IDLE, None)
        log.info("unit %s: armed %s", self._unit_id, self._parts[0].label)

    def read(self) -> Reading:
        t = self._clock.now()
        fields = query_fields(self.psu, READ_QUERIES)
        resource = self.psu.resource
        volts = parse_number(fields[0], resource=resource, command=READ_COMMAND)
        amps = parse_number(fields[1], resource=resource, command=READ_COMMAND)
        output = parse_bool(fields[2], resource=resource, command=READ_COMMAND)
        operation = _int(fields[3], self.psu, READ_COMMAND)
        questionable = _int(fields[4], self.psu, READ_COMMAND)
        if questionable & _TRIPS:
            mode = Mode.FAULT
        elif not output:
            mode = Mode.IDLE
        elif operation & _CC:
            mode = Mode.CURRENT
        elif operation & _CV:
            mode = Mode.VOLTAGE_REFERENCE
        else:
            mode = self._commanded
        return self._reading(
            t, bus_voltage=volts, bus_current=amps, mode=mode, flags=_flag_names(questionable, "")
        )

    def _safe_off_steps(self) -> list[SafeStep]:
        part = self._parts[0]

        def output_off() -> None:
            self.psu.output = False

        def current_zero() -> None:
            self.psu.current = 0.0

        return [SafeStep(part, "OUTP OFF", output_off), SafeStep(part, "CURR 0", current_zero)]
