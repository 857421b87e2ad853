"""ITECH IT6000C bidirectional (regenerative) DC supplies: source and sink, SCPI.

Resources: ``ASRL/dev/ttyUSB0::INSTR`` (USB virtual COM, 115200 8N1),
``ASRLsocket://127.0.0.1:PORT::INSTR`` (the emulator's serial-over-TCP), or
``TCPIP0::<host>::30000::SOCKET`` on LAN; ``\\n`` terminated both ways.

Sign convention here is the instrument's own: ``CURR`` and ``MEAS:CURR?`` are positive
when the supply sources and negative when it sinks (the adapters map it to the bus).

Sources (read, not copied): **OpenBench** (``VlasovLabTech/OpenBench-lab-control`` at
commit 69a28518, ``src/openbench/drivers/itech_it6000c/{protocol,supply,transport}.py``), a
driver validated on a physical IT6054C-800-225 over its USB virtual COM port, and
**pts-itech-m3905d-psu** (PyPI, module ``pts_itech_m3905d_psu``) for the IT-M3900 family,
which shares the command language. ITECH's own programming guide was not found.

- Commands: ``SYST:REM``/``SYST:LOC``; ``OUTP ON|OFF``; ``OUTP:PROT:CLE``; ``FUNC VOLT|CURR``
  (CV or CC priority); ``FUNC:MODE FIXED``; ``VOLT``, ``CURR`` (signed in CC priority);
  limits ``CURR:LIM`` / ``CURR:LIM:NEG`` (negative), ``VOLT:LIM`` / ``VOLT:LIM:NEG``,
  ``POW:LIM`` / ``POW:LIM:NEG`` (negative); slews ``VOLT:SLEW:POS|NEG`` and
  ``CURR:SLEW:POS|NEG``; protections ``VOLT:PROT`` (``:STAT``, ``:DEL``), likewise ``CURR:``
  and ``POW:``; under-voltage/under-current ``VOLT|CURR:UND:PROT`` (``:STAT``, ``:DEL``,
  ``:WARM``); ``OUTP:DEL:RISE|FALL``; watchdog ``OUTP:PROT:WDOG[:STAT]``/``:DEL``;
  ``MEAS:VOLT?``, ``MEAS:CURR?``, ``MEAS:POW?`` (both sources).
- ``FUNC?`` answers ``VOLTage``/``CURRent`` and ``FUNC:MODE?`` ``FIXed``; the short forms
  are accepted too (both sources).
- ``STAT:OPER:COND?``: CC+ 128, CV 256, CP+ 512, CC- 2048, CP- 4096; ``STAT:QUES:COND?``:
  OVP 1, OCP+ 2, OCP- 4, OPP+ 8, OPP- 16, UVP 32, OTP 64, UCP 128, SENSE 256, SHARE 512,
  REVERSE 1024, INHIBIT 2048, POWER-STATE 4096, PROTECTION 8192, INTERNAL 16384 (OpenBench).
  Which bit a watchdog expiry sets is not documented (*assumed*: PROTECTION).
- SCPI maxima: 101 % of the rated voltage and current, 102 % of the rated power (OpenBench's
  IT6054C-800-225 profile: 808 V, 227.25 A, 55 080 W). Protection levels above them are
  refused here before anything is sent; set-points and limits stay within the rating.

The priority rule observed on hardware is enforced *before sending*: ``VOLT:LIM`` and
``VOLT:LIM:NEG`` are writable only in CC priority, ``CURR:LIM`` and ``CURR:LIM:NEG`` only in
CV priority (the driver reads ``FUNC?`` first). Ratings come from the model name
(``IT6006C-500-40``: 6 kW, 500 V, ±40 A) or are passed in.

How the bidirectional adapter (role ``BidirectionalSupply``) drives it —
(SCPI; its current is signed, positive sourcing — already bus convention):

- ``set_current(a)``: CC priority with a signed current and a voltage window: ``FUNC CURR``,
  ``VOLT:LIM <window top>``, ``VOLT:LIM:NEG <window bottom>``, ``CURR <a>``, ``OUTP ON``
  (on a ramp, only ``CURR <a>``). Outside the window it stops pushing / drawing.
- ``hold_voltage(v, limit)``: CV priority: ``FUNC VOLT``, ``CURR:LIM limit``,
  ``CURR:LIM:NEG -limit``, ``VOLT v``, ``OUTP ON``.
- ``arm()``: ``SYST:REM``, ``OUTP OFF``, ``FUNC:MODE FIX``, OVP ``VOLT:PROT`` at 1.05 x the
  window top, OCP ``CURR:PROT`` at 1.1 x the larger current limit, power limits
  ``POW:LIM``/``POW:LIM:NEG`` at ``power_max``, OPP ``POW:PROT`` at 1.1 x ``power_max``, each
  protection switched on; every level capped at the supply's SCPI maximum (101 % of its
  rated voltage and current, 102 % of its power), which it would refuse above.
- ``read()``: one compound query ``MEAS:VOLT?;:MEAS:CURR?;:OUTP?;:FUNC?;:STAT:QUES:COND?``.
  Questionable bits (OpenBench's map, see :mod:`instruments.it6000c`) become flags: OVP,
  OCP (OCP+ or OCP-), OPP (OPP+ or OPP-), OTP, UVLO (UVP), INH (INHIBIT), REV, UCP and PROT
  (PROTECTION, where the emulator reports a watchdog expiry); any of them but REV and UCP
  makes the mode FAULT.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from instruments.errors import CapabilityError
from instruments.families import Family, register

from .base import Rating, check_setpoint
from .connection import DEFAULT_TIMEOUT_S, ScpiConnection, SerialSettings
from .roles import (
    Allowed,
    OutputReading,
    OutputStatus,
    ProtectionLevels,
    Regulation,
    SafeAction,
)
from .scpi import (
    RatedScpiInstrument,
    ScpiChoice,
    ScpiMeasurement,
    ScpiNumber,
    ScpiSwitch,
    compound,
    parse_bool,
    parse_number,
)
from .wire.it6000c import (
    SCPI_CURRENT_MAX,
    SCPI_POWER_MAX,
    SCPI_VOLTAGE_MAX,
    OperationStatus,
    QuestionableStatus,
)

log = logging.getLogger(__name__)

USB_COM_BAUDRATE = 115200


class Priority(Enum):
    """``FUNC``: which loop has priority."""

    VOLTAGE = "VOLT"
    CURRENT = "CURR"


class FunctionMode(Enum):
    """``FUNC:MODE``: fixed output or one of the built-in sequencers."""

    FIXED = "FIX"
    LIST = "LIST"
    BATTERY = "BATT"
    SOLAR = "SOL"
    CAR = "CARP"


_PRIORITY_ALIASES = {"VOLTAGE": Priority.VOLTAGE, "CURRENT": Priority.CURRENT}
_MODE_ALIASES = {
    "FIXED": FunctionMode.FIXED,
    "BATTERY": FunctionMode.BATTERY,
    "SOLAR": FunctionMode.SOLAR,
    "CARPROFILE": FunctionMode.CAR,
}


READ_QUERIES = ("MEAS:VOLT?", "MEAS:CURR?", "OUTP?", "FUNC?", "STAT:QUES:COND?")
READ_COMMAND = compound(READ_QUERIES)
STATUS_QUERIES = ("OUTP?", "STAT:QUES:COND?")
STATUS_COMMAND = compound(STATUS_QUERIES)

_STATUS_FLAGS = {
    QuestionableStatus.OVP: "OVP",
    QuestionableStatus.OCP_POS: "OCP",
    QuestionableStatus.OCP_NEG: "OCP",
    QuestionableStatus.OPP_POS: "OPP",
    QuestionableStatus.OPP_NEG: "OPP",
    QuestionableStatus.OTP: "OTP",
    QuestionableStatus.UVP: "UVLO",
    QuestionableStatus.INHIBIT: "INH",
    QuestionableStatus.REVERSE: "REV",
    QuestionableStatus.UCP: "UCP",
    QuestionableStatus.PROTECTION: "PROT",
}
#: Questionable bits after which the output is off.
TRIPS = (
    QuestionableStatus.OVP
    | QuestionableStatus.OCP_POS
    | QuestionableStatus.OCP_NEG
    | QuestionableStatus.OPP_POS
    | QuestionableStatus.OPP_NEG
    | QuestionableStatus.OTP
    | QuestionableStatus.UVP
    | QuestionableStatus.INHIBIT
    | QuestionableStatus.PROTECTION
)
#: ``FUNC?`` replies: the priority the supply regulates with.
_REGULATION_WORDS: dict[str, Regulation] = {
    "VOLT": "voltage",
    "VOLTAGE": "voltage",
    "CURR": "current",
    "CURRENT": "current",
}


def status_flags(status: QuestionableStatus) -> frozenset[str]:
    """Flag names of the questionable bits (``OVP``, ``OCP``, ``PROT`` …)."""
    return frozenset(name for bit, name in _STATUS_FLAGS.items() if bit in status)


@dataclass(frozen=True)
class BidirectionalReading:
    """One read: voltage, signed current (+ source, - sink) and signed power."""

    voltage: float
    current: float
    power: float
    output_on: bool


def _needs_priority(required: Priority, what: str) -> Callable[[IT6000C, float], None]:
    def check(supply: IT6000C, value: float) -> None:
        actual = supply.priority
        if actual is not required:
            raise CapabilityError(
                f"{supply.name}: {what} is writable only in {required.name} priority "
                f"(FUNC {required.value}), the supply is in {actual.name} priority; nothing sent"
            )

    return check


def _volts(supply: IT6000C) -> tuple[float, float]:
    return (0.0, supply.rating.voltage)


def _amps_signed(supply: IT6000C) -> tuple[float, float]:
    return (-supply.rating.current, supply.rating.current)


def _amps_positive(supply: IT6000C) -> tuple[float, float]:
    return (0.0, supply.rating.current)


def _amps_negative(supply: IT6000C) -> tuple[float, float]:
    return (-supply.rating.current, 0.0)


def _watts_positive(supply: IT6000C) -> tuple[float, float]:
    return (0.0, supply.rating.power)


def _watts_negative(supply: IT6000C) -> tuple[float, float]:
    return (-supply.rating.power, 0.0)


def _protection_volts(supply: IT6000C) -> tuple[float, float]:
    return (0.0, SCPI_VOLTAGE_MAX * supply.rating.voltage)


def _protection_amps(supply: IT6000C) -> tuple[float, float]:
    return (0.0, SCPI_CURRENT_MAX * supply.rating.current)


def _undercurrent_amps(supply: IT6000C) -> tuple[float, float]:
    top = SCPI_CURRENT_MAX * supply.rating.current
    return (-top, top)


def _protection_watts(supply: IT6000C) -> tuple[float, float]:
    return (0.0, SCPI_POWER_MAX * supply.rating.power)


def _seconds(supply: IT6000C) -> tuple[float, float]:
    return (0.0, 60.0)


def _slew(supply: IT6000C) -> tuple[float, float]:
    return (0.0, 1e9)


class IT6000C(RatedScpiInstrument):
    """ITECH IT6000C. Set-points are checked against ``rating`` before sending."""

    family = "IT6000C"

    output = ScpiSwitch("OUTP", doc="``OUTP ON|OFF``: the DC output.")
    priority = ScpiChoice(
        "FUNC", Priority, aliases=_PRIORITY_ALIASES, doc="``FUNC VOLT|CURR``: CV or CC priority."
    )
    function_mode = ScpiChoice(
        "FUNC:MODE",
        FunctionMode,
        aliases=_MODE_ALIASES,
        doc="``FUNC:MODE``: FIXed output or a sequencer.",
    )
    voltage = ScpiNumber("VOLT", unit="V", limits=_volts, doc="``VOLT``: voltage set-point.")
    current = ScpiNumber(
        "CURR",
        unit="A",
        limits=_amps_signed,
        doc="``CURR``: current set-point (signed; negative sinks, in CC priority).",
    )
    current_limit = ScpiNumber(
        "CURR:LIM",
        unit="A",
        limits=_amps_positive,
        validate=_needs_priority(Priority.VOLTAGE, "CURR:LIM"),
        doc="``CURR:LIM``: positive (source) current limit, CV priority only.",
    )
    current_limit_negative = ScpiNumber(
        "CURR:LIM:NEG",
        unit="A",
        limits=_amps_negative,
        validate=_needs_priority(Priority.VOLTAGE, "CURR:LIM:NEG"),
        doc="``CURR:LIM:NEG``: negative (sink) current limit, CV priority only.",
    )
    voltage_limit = ScpiNumber(
        "VOLT:LIM",
        unit="V",
        limits=_volts,
        validate=_needs_priority(Priority.CURRENT, "VOLT:LIM"),
        doc="``VOLT:LIM``: upper voltage limit, CC priority only.",
    )
    voltage_limit_negative = ScpiNumber(
        "VOLT:LIM:NEG",
        unit="V",
        limits=_volts,
        validate=_needs_priority(Priority.CURRENT, "VOLT:LIM:NEG"),
        doc="``VOLT:LIM:NEG``: lower voltage limit, CC priority only.",
    )
    power_limit = ScpiNumber(
        "POW:LIM", unit="W", limits=_watts_positive, doc="``POW:LIM``: source power limit."
    )
    power_limit_negative = ScpiNumber(
        "POW:LIM:NEG",
        unit="W",
        limits=_watts_negative,
        doc="``POW:LIM:NEG``: sink power limit (negative).",
    )
    voltage_slew_positive = ScpiNumber("VOLT:SLEW:POS", unit="s", limits=_slew)
    voltage_slew_negative = ScpiNumber("VOLT:SLEW:NEG", unit="s", limits=_slew)
    current_slew_positive = ScpiNumber("CURR:SLEW:POS", unit="s", limits=_slew)
    current_slew_negative = ScpiNumber("CURR:SLEW:NEG", unit="s", limits=_slew)
    ovp = ScpiNumber(
        "VOLT:PROT",
        unit="V",
        limits=_protection_volts,
        doc="``VOLT:PROT``: over-voltage protection level.",
    )
    ovp_enabled = ScpiSwitch("VOLT:PROT:STAT")
    ovp_delay = ScpiNumber("VOLT:PROT:DEL", unit="s", limits=_seconds)
    ocp = ScpiNumber(
        "CURR:PROT",
        unit="A",
        limits=_protection_amps,
        doc="``CURR:PROT``: over-current protection level.",
    )
    ocp_enabled = ScpiSwitch("CURR:PROT:STAT")
    ocp_delay = ScpiNumber("CURR:PROT:DEL", unit="s", limits=_seconds)
    opp = ScpiNumber(
        "POW:PROT",
        unit="W",
        limits=_protection_watts,
        doc="``POW:PROT``: over-power protection level.",
    )
    opp_enabled = ScpiSwitch("POW:PROT:STAT")
    opp_delay = ScpiNumber("POW:PROT:DEL", unit="s", limits=_seconds)
    uvp = ScpiNumber(
        "VOLT:UND:PROT",
        unit="V",
        limits=_protection_volts,
        doc="``VOLT:UND:PROT``: under-voltage protection level.",
    )
    uvp_enabled = ScpiSwitch("VOLT:UND:PROT:STAT")
    uvp_delay = ScpiNumber("VOLT:UND:PROT:DEL", unit="s", limits=_seconds)
    uvp_warmup = ScpiNumber("VOLT:UND:PROT:WARM", unit="s", limits=_seconds)
    ucp = ScpiNumber(
        "CURR:UND:PROT",
        unit="A",
        limits=_undercurrent_amps,
        doc="``CURR:UND:PROT``: under-current protection level (signed).",
    )
    ucp_enabled = ScpiSwitch("CURR:UND:PROT:STAT")
    ucp_delay = ScpiNumber("CURR:UND:PROT:DEL", unit="s", limits=_seconds)
    ucp_warmup = ScpiNumber("CURR:UND:PROT:WARM", unit="s", limits=_seconds)
    output_rise_delay = ScpiNumber("OUTP:DEL:RISE", unit="s", limits=_seconds)
    output_fall_delay = ScpiNumber("OUTP:DEL:FALL", unit="s", limits=_seconds)
    sink_resistance = ScpiSwitch("SINK:RES:STAT", doc="``SINK:RES:STAT``: sink resistance.")
    voltage_rzero = ScpiSwitch("SYST:VOLT:RZERO", doc="``SYST:VOLT:RZERO``: R-zero state.")
    measured_voltage = ScpiMeasurement("MEAS:VOLT?", unit="V")
    measured_current = ScpiMeasurement("MEAS:CURR?", unit="A")
    measured_power = ScpiMeasurement("MEAS:POW?", unit="W")

    @classmethod
    def open(
        cls,
        resource: str,
        *,
        rating: Rating | None = None,
        model: str = "",
        name: str = "",
        timeout: float = DEFAULT_TIMEOUT_S,
        visa_library: str = "@py",
        baudrate: int = USB_COM_BAUDRATE,
        strict: bool = False,
    ) -> IT6000C:
        """Open ``resource`` (serial resources at ``baudrate`` 8N1) and wrap it."""
        connection = ScpiConnection(
            resource,
            timeout=timeout,
            visa_library=visa_library,
            serial=SerialSettings(baudrate=baudrate),
        )
        return cls(connection, rating=rating, model=model, name=name, strict=strict)

    def remote(self) -> None:
        """``SYST:REM``: take remote control (needed over the serial port)."""
        self.write_setting("SYST:REM")

    def local(self) -> None:
        """``SYST:LOC``: give the front panel back."""
        self.write_setting("SYST:LOC")

    def clear_protection(self) -> None:
        """``OUTP:PROT:CLE``: clear a latched protection."""
        self.write_setting("OUTP:PROT:CLE")

    def protection_maxima(self) -> tuple[float, float, float]:
        """The SCPI maxima of the OVP, OCP and OPP levels (V, A, W)."""
        return (
            _protection_volts(self)[1],
            _protection_amps(self)[1],
            _protection_watts(self)[1],
        )

    def operation_status(self) -> OperationStatus:
        """``STAT:OPER:COND?``: which loop regulates (CC+/CV/CP+/CC-/CP-)."""
        return OperationStatus(self.query_int("STAT:OPER:COND?"))

    def questionable_status(self) -> QuestionableStatus:
        """``STAT:QUES:COND?``: latched protections and faults."""
        return QuestionableStatus(self.query_int("STAT:QUES:COND?"))

    def source_current(self, amps: float, voltage_limit: float) -> None:
        """CC priority at ``amps`` (signed), voltage clamped at ``voltage_limit``.

        Both values are checked before anything is sent; the sequence is ``FUNC CURR``,
        ``VOLT:LIM <v>``, ``CURR <a>``.
        """
        with self.locked():
            check_setpoint(self.name, "current", amps, *_amps_signed(self), "A")
            check_setpoint(self.name, "voltage limit", voltage_limit, *_volts(self), "V")
            self.priority = Priority.CURRENT
            self.voltage_limit = voltage_limit
            self.current = amps

    def hold_voltage(self, volts: float, source_limit: float, sink_limit: float) -> None:
        """CV priority at ``volts``; current limited to ``+source_limit``/``-sink_limit``.

        Sequence: ``FUNC VOLT``, ``CURR:LIM <a>``, ``CURR:LIM:NEG -<a>``, ``VOLT <v>``.
        """
        with self.locked():
            check_setpoint(self.name, "voltage", volts, *_volts(self), "V")
            check_setpoint(
                self.name, "source current limit", source_limit, *_amps_positive(self), "A"
            )
            check_setpoint(self.name, "sink current limit", sink_limit, *_amps_positive(self), "A")
            self.priority = Priority.VOLTAGE
            self.current_limit = source_limit
            self.current_limit_negative = -sink_limit
            self.voltage = volts

    def read(self) -> BidirectionalReading:
        """Measured voltage, signed current and power, and the output state."""
        with self.locked():
            return BidirectionalReading(
                voltage=self.measured_voltage,
                current=self.measured_current,
                power=self.measured_power,
                output_on=self.output,
            )

    # -- the bidirectional role (instruments.roles.BidirectionalSupply) ------------------
    def measure(self) -> OutputReading:
        """One compound query of voltage, signed current, output, priority and status."""
        fields = self.query_fields(READ_QUERIES)
        where = {"resource": self.resource, "command": READ_COMMAND}
        status = QuestionableStatus(int(parse_number(fields[4], **where)))
        return OutputReading(
            voltage=parse_number(fields[0], **where),
            current=parse_number(fields[1], **where),
            on=parse_bool(fields[2], **where),
            regulation=_REGULATION_WORDS.get(fields[3].strip().strip('"').upper()),
            tripped=bool(status & TRIPS),
            flags=status_flags(status),
        )

    def output_status(self) -> OutputStatus:
        """``OUTP?;:STAT:QUES:COND?`` in one round trip."""
        state, status = self.query_fields(STATUS_QUERIES)
        where = {"resource": self.resource, "command": STATUS_COMMAND}
        on = parse_bool(state, **where)
        return OutputStatus(
            on, status_flags(QuestionableStatus(int(parse_number(status, **where))))
        )

    def safe_off_actions(self) -> list[SafeAction]:
        """``OUTP OFF``."""

        def output_off() -> None:
            self.output = False

        return [("OUTP OFF", output_off)]

    def arm_bidirectional(self, levels: ProtectionLevels) -> None:
        """``SYST:REM``, ``OUTP OFF``, fixed mode, then OVP, OCP (the larger direction),
        power limits and OPP, each clipped to its SCPI maximum, and switched on."""
        volts_top, amps_top, watts_top = self.protection_maxima()
        ovp = min(levels.ovp, volts_top)
        ocp = min(max(levels.ocp_source, levels.ocp_sink), amps_top)
        watts = min(levels.power, self.rating.power)
        opp = min(levels.opp, watts_top)
        with self.locked():
            self.remote()
            self.output = False
            self.function_mode = FunctionMode.FIXED
            self.ovp = ovp
            self.ovp_enabled = True
            self.ocp = ocp
            self.ocp_enabled = True
            self.power_limit = watts
            self.power_limit_negative = -watts
            self.opp = opp
            self.opp_enabled = True

    def drive_current(
        self, amps: float, voltage_min: float, voltage_max: float, *, primed: bool, allowed: Allowed
    ) -> None:
        """Unprimed: ``FUNC CURR``, ``VOLT:LIM``, ``VOLT:LIM:NEG``; then ``CURR``; then
        ``OUTP ON`` (unprimed)."""
        with self.locked():
            allowed()
            if not primed:
                self.priority = Priority.CURRENT
                self.voltage_limit = voltage_max
                self.voltage_limit_negative = voltage_min
            self.current = amps
            if not primed:
                self.output = True

    def drive_voltage(
        self, volts: float, current_limit: float, *, primed: bool, allowed: Allowed
    ) -> None:
        """:meth:`hold_voltage` with the same limit both ways, then ``OUTP ON`` (unprimed)."""
        with self.locked():
            allowed()
            self.hold_voltage(volts, current_limit, current_limit)
            if not primed:
                self.output = True

    def stop(self) -> None:
        """``OUTP OFF``."""
        with self.locked():
            self.output = False

    def forget(self) -> None:
        """Nothing to forget: every drive writes what it needs."""


#: The family a bench file names ``driver = "it6000c"`` (ratings: ``instruments/it6000c.toml``).
FAMILY = register(
    Family(
        name="it6000c",
        function="bidirectional",
        transport="visa",
        description="ITECH IT6000C regenerative supply (SCPI)",
        opener=IT6000C.open,
        ratings="it6000c.toml",
        open_keywords=frozenset({"rating"}),
    )
)
