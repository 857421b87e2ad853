"""Keysight RP7900 Series regenerative power systems: bidirectional DC supplies, SCPI on LAN.

Resource: ``TCPIP0::<host>::5025::SOCKET`` (the guide's "SCPI socket" port 5025), ``\\n``
terminated both ways; no remote/local handshake on LAN (the front panel locks itself).

Sign convention is the instrument's own: ``CURR`` in current priority and ``MEAS:CURR?`` are
positive when the supply sources and negative when it sinks (already bus convention).

Source: *Keysight RP7900 Series Operating and Service Guide*, chapter 5 "SCPI Programming
Reference" (read at manualshive.com / easymanua.ls / manualslib.fr; page numbers of that
edition). From it:

- ``OUTP ON|OFF``; ``OUTP:PROT:CLE`` clears a latched protection (p. 225-226).
- ``OUTP:PROT:WDOG[:STAT] ON|OFF`` and ``OUTP:PROT:WDOG:DEL <s>`` (1-3600 s, ``*RST`` OFF and
  60 s): with no SCPI I/O for the delay the output latches off and Questionable1 PROT (2048)
  is set (p. 122, 226).
- Questionable1 bits OV 1, OC 2, PF 4, CP+ 8, OT 16, CP- 32, OV- 64, LIM+ 128, LIM- 256,
  INH 512, UNR 1024, PROT 2048, EDP 4096; Operation bits CV 1, CC 2, OFF 4 (p. 241).
- ``VOLT:PROT:LOW`` levels run 0-102 % of the rating (p. 238).

*Assumed* (the guide's entries for them were not found in the index; the forms follow the
N6900/N7900 guide, whose command set the RP7900's extends): ``FUNC VOLT|CURR`` selects
voltage or current priority and ``FUNC?`` answers ``VOLT``/``CURR``; ``CURR`` is signed in
current priority; ``CURR:LIM`` / ``CURR:LIM:NEG`` (negative number) bound the current in
voltage priority; ``VOLT:LIM`` / ``VOLT:LIM:NEG`` bound the voltage in current priority;
``POW:LIM`` / ``POW:LIM:NEG``; ``VOLT:PROT`` is the over-voltage level (always on); all
limits are accepted in either priority (unlike the IT6000C). Ratings come from
``instruments/rp7900.toml`` (the model names do not encode them).

How the bidirectional adapter (role ``BidirectionalSupply``) drives it:

- ``arm_bidirectional``: ``OUTP OFF``, ``VOLT:PROT <ovp>``, ``POW:LIM <w>``,
  ``POW:LIM:NEG -<w>``, then the watchdog: ``OUTP:PROT:WDOG:DEL <s>`` and
  ``OUTP:PROT:WDOG ON`` when the bench sets ``watchdog_s``, else ``OUTP:PROT:WDOG OFF``.
  Levels are capped at 102 % of the rating.
- ``drive_current(a, vmin, vmax)``: unprimed ``FUNC CURR``, ``VOLT:LIM vmax``,
  ``VOLT:LIM:NEG vmin``; ``CURR a``; unprimed ``OUTP ON``.
- ``drive_voltage(v, limit)``: ``FUNC VOLT``, ``CURR:LIM limit``, ``CURR:LIM:NEG -limit``,
  ``VOLT v``; unprimed ``OUTP ON``.
- ``measure``: ``MEAS:VOLT?;:MEAS:CURR?;:OUTP?;:STAT:OPER:COND?;:STAT:QUES:COND?``; the
  Questionable1 bits OV, OC, OT, CP+/CP- (OPP), INH, PF, OV- (REV), UNR and PROT become flags;
  any but LIM and UNR means the output was latched off (tripped).
"""

from __future__ import annotations

from enum import Enum

from instruments.errors import ConfigError
from instruments.families import Family, SettingSpec, register

from .base import Rating, check_setpoint
from .connection import DEFAULT_TIMEOUT_S, ScpiConnection
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
from .wire.rp7900 import (
    SCPI_PROTECTION_MAX,
    WATCHDOG_DELAY_MAX_S,
    WATCHDOG_DELAY_MIN_S,
    OperationStatus,
    QuestionableStatus,
)


class Priority(Enum):
    """``FUNC``: which loop has priority."""

    VOLTAGE = "VOLT"
    CURRENT = "CURR"


_PRIORITY_ALIASES = {"VOLTAGE": Priority.VOLTAGE, "CURRENT": Priority.CURRENT}

READ_QUERIES = ("MEAS:VOLT?", "MEAS:CURR?", "OUTP?", "STAT:OPER:COND?", "STAT:QUES:COND?")
READ_COMMAND = compound(READ_QUERIES)
STATUS_QUERIES = ("OUTP?", "STAT:QUES:COND?")
STATUS_COMMAND = compound(STATUS_QUERIES)

_STATUS_FLAGS = {
    QuestionableStatus.OV: "OVP",
    QuestionableStatus.OC: "OCP",
    QuestionableStatus.PF: "PF",
    QuestionableStatus.CP_POS: "OPP",
    QuestionableStatus.CP_NEG: "OPP",
    QuestionableStatus.OT: "OTP",
    QuestionableStatus.OV_NEG: "REV",
    QuestionableStatus.INH: "INH",
    QuestionableStatus.UNR: "UNR",
    QuestionableStatus.PROT: "PROT",
}
#: Questionable1 bits whose definition is "Output is disabled by ..." (p. 241).
TRIPS = (
    QuestionableStatus.OV
    | QuestionableStatus.OC
    | QuestionableStatus.PF
    | QuestionableStatus.CP_POS
    | QuestionableStatus.OT
    | QuestionableStatus.CP_NEG
    | QuestionableStatus.OV_NEG
    | QuestionableStatus.INH
    | QuestionableStatus.PROT
    | QuestionableStatus.EDP
)


def status_flags(status: QuestionableStatus) -> frozenset[str]:
    """Flag names of the Questionable1 bits (``OVP``, ``OCP``, ``PROT`` …)."""
    return frozenset(name for bit, name in _STATUS_FLAGS.items() if bit in status)


def regulation(status: OperationStatus) -> Regulation | None:
    """The loop in control from the Operation bits CV 1 / CC 2 (None when neither)."""
    if OperationStatus.CV in status:
        return "voltage"
    if OperationStatus.CC in status:
        return "current"
    return None


def _volts(supply: RP7900) -> tuple[float, float]:
    return (0.0, supply.rating.voltage)


def _amps_signed(supply: RP7900) -> tuple[float, float]:
    return (-supply.rating.current, supply.rating.current)


def _amps_positive(supply: RP7900) -> tuple[float, float]:
    return (0.0, supply.rating.current)


def _amps_negative(supply: RP7900) -> tuple[float, float]:
    return (-supply.rating.current, 0.0)


def _watts_positive(supply: RP7900) -> tuple[float, float]:
    return (0.0, SCPI_PROTECTION_MAX * supply.rating.power)


def _watts_negative(supply: RP7900) -> tuple[float, float]:
    return (-SCPI_PROTECTION_MAX * supply.rating.power, 0.0)


def _protection_volts(supply: RP7900) -> tuple[float, float]:
    return (0.0, SCPI_PROTECTION_MAX * supply.rating.voltage)


def _watchdog_seconds(supply: RP7900) -> tuple[float, float]:
    return (WATCHDOG_DELAY_MIN_S, WATCHDOG_DELAY_MAX_S)


class RP7900(RatedScpiInstrument):
    """Keysight RP7900. Set-points are checked against ``rating`` before sending."""

    family = "RP7900"

    output = ScpiSwitch("OUTP", doc="``OUTP ON|OFF``: the DC output.")
    priority = ScpiChoice(
        "FUNC", Priority, aliases=_PRIORITY_ALIASES, doc="``FUNC VOLT|CURR``: priority mode."
    )
    voltage = ScpiNumber("VOLT", unit="V", limits=_volts, doc="``VOLT``: voltage set-point.")
    current = ScpiNumber(
        "CURR", unit="A", limits=_amps_signed, doc="``CURR``: signed current (current priority)."
    )
    current_limit = ScpiNumber(
        "CURR:LIM", unit="A", limits=_amps_positive, doc="``CURR:LIM``: source current limit."
    )
    current_limit_negative = ScpiNumber(
        "CURR:LIM:NEG",
        unit="A",
        limits=_amps_negative,
        doc="``CURR:LIM:NEG``: sink current limit, a negative number.",
    )
    voltage_limit = ScpiNumber(
        "VOLT:LIM", unit="V", limits=_volts, doc="``VOLT:LIM``: upper voltage limit."
    )
    voltage_limit_negative = ScpiNumber(
        "VOLT:LIM:NEG", unit="V", limits=_volts, doc="``VOLT:LIM:NEG``: lower voltage limit."
    )
    power_limit = ScpiNumber("POW:LIM", unit="W", limits=_watts_positive)
    power_limit_negative = ScpiNumber("POW:LIM:NEG", unit="W", limits=_watts_negative)
    ovp = ScpiNumber(
        "VOLT:PROT", unit="V", limits=_protection_volts, doc="``VOLT:PROT``: OVP level."
    )
    watchdog = ScpiSwitch("OUTP:PROT:WDOG", doc="``OUTP:PROT:WDOG``: the I/O watchdog.")
    watchdog_delay = ScpiNumber(
        "OUTP:PROT:WDOG:DEL",
        unit="s",
        limits=_watchdog_seconds,
        doc="``OUTP:PROT:WDOG:DEL``: seconds without I/O before the output latches off.",
    )
    measured_voltage = ScpiMeasurement("MEAS:VOLT?", unit="V")
    measured_current = ScpiMeasurement("MEAS:CURR?", unit="A")

    def __init__(
        self,
        connection: ScpiConnection,
        *,
        rating: Rating | None = None,
        model: str = "",
        name: str = "",
        strict: bool = False,
        watchdog_s: float = 0.0,
    ) -> None:
        super().__init__(connection, rating=rating, model=model, name=name, strict=strict)
        if watchdog_s and not WATCHDOG_DELAY_MIN_S <= watchdog_s <= WATCHDOG_DELAY_MAX_S:
            raise ConfigError(
                f"RP7900 {self.name}: watchdog_s {watchdog_s:g} is outside "
                f"{WATCHDOG_DELAY_MIN_S:g}-{WATCHDOG_DELAY_MAX_S:g} s (0 = off)"
            )
        self.watchdog_s = watchdog_s

    @staticmethod
    def model_rating(model: str) -> Rating:
        """RP7900 model names do not encode the rating: the bench's ratings file gives it."""
        raise ConfigError(
            f"RP7900 model {model!r}: give the rating (instruments/rp7900.toml lists the models)"
        )

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
        strict: bool = False,
        watchdog_s: float = 0.0,
    ) -> RP7900:
        """Open ``resource`` (a LAN socket) and wrap it."""
        connection = ScpiConnection(resource, timeout=timeout, visa_library=visa_library)
        return cls(
            connection,
            rating=rating,
            model=model,
            name=name,
            strict=strict,
            watchdog_s=watchdog_s,
        )

    def clear_protection(self) -> None:
        """``OUTP:PROT:CLE``: clear a latched protection (the output stays as programmed)."""
        self.write_setting("OUTP:PROT:CLE")

    def operation_status(self) -> OperationStatus:
        """``STAT:OPER:COND?``: CV 1, CC 2, OFF 4."""
        return OperationStatus(self.query_int("STAT:OPER:COND?"))

    def questionable_status(self) -> QuestionableStatus:
        """``STAT:QUES:COND?``: the Questionable1 condition register."""
        return QuestionableStatus(self.query_int("STAT:QUES:COND?"))

    def hold_voltage(self, volts: float, source_limit: float, sink_limit: float) -> None:
        """Voltage priority at ``volts``, current within ``-sink_limit``..``+source_limit``.

        Sequence: ``FUNC VOLT``, ``CURR:LIM <a>``, ``CURR:LIM:NEG -<a>``, ``VOLT <v>``; all
        values are checked before anything is sent.
        """
        with self.locked():
            check_setpoint(self.name, "voltage", volts, *_volts(self), "V")
            check_setpoint(self.name, "source limit", source_limit, *_amps_positive(self), "A")
            check_setpoint(self.name, "sink limit", sink_limit, *_amps_positive(self), "A")
            self.priority = Priority.VOLTAGE
            self.current_limit = source_limit
            self.current_limit_negative = -sink_limit
            self.voltage = volts

    # -- the bidirectional role (instruments.roles.BidirectionalSupply) ------------------
    def measure(self) -> OutputReading:
        """One compound query of voltage, signed current, output and both status registers."""
        fields = self.query_fields(READ_QUERIES)
        where = {"resource": self.resource, "command": READ_COMMAND}
        operation = OperationStatus(int(parse_number(fields[3], **where)))
        status = QuestionableStatus(int(parse_number(fields[4], **where)))
        return OutputReading(
            voltage=parse_number(fields[0], **where),
            current=parse_number(fields[1], **where),
            on=parse_bool(fields[2], **where),
            regulation=regulation(operation),
            tripped=bool(status & TRIPS),
            flags=status_flags(status),
        )

    def output_status(self) -> OutputStatus:
        """``OUTP?;:STAT:QUES:COND?`` in one round trip."""
        state, status = self.query_fields(STATUS_QUERIES)
        where = {"resource": self.resource, "command": STATUS_COMMAND}
        flags = status_flags(QuestionableStatus(int(parse_number(status, **where))))
        return OutputStatus(parse_bool(state, **where), flags)

    def safe_off_actions(self) -> list[SafeAction]:
        """``OUTP OFF``."""

        def output_off() -> None:
            self.output = False

        return [("OUTP OFF", output_off)]

    def arm_bidirectional(self, levels: ProtectionLevels) -> None:
        """``OUTP OFF``, OVP and power limits (capped at 102 % of the rating), the watchdog.

        OCP is the current limits each drive writes (``CURR:LIM``/``CURR:LIM:NEG`` or the
        signed ``CURR``): the RP7900's ``CURR:PROT:STAT`` trips on *any* current limiting,
        which current priority is by design, so it is left off (*assumed* reading of the
        N6900/N7900 guide's OCP entry).
        """
        ovp = min(levels.ovp, _protection_volts(self)[1])
        watts = min(levels.power, self.rating.power)
        with self.locked():
            self.output = False
            self.ovp = ovp
            self.power_limit = watts
            self.power_limit_negative = -watts
            if self.watchdog_s:
                self.watchdog_delay = self.watchdog_s
                self.watchdog = True
            else:
                self.watchdog = False

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


#: The family a bench file names ``driver = "rp7900"`` (ratings: ``instruments/rp7900.toml``).
FAMILY = register(
    Family(
        name="rp7900",
        function="bidirectional",
        transport="visa",
        description="Keysight RP7900 regenerative power system (SCPI on LAN)",
        opener=RP7900.open,
        ratings="rp7900.toml",
        settings=(
            SettingSpec(
                "watchdog_s",
                "float",
                "s: I/O watchdog delay armed with the output (0 = off, 1-3600)",
                0.0,
                0.0,
                WATCHDOG_DELAY_MAX_S,
            ),
        ),
        open_keywords=frozenset({"rating"}),
    )
)
