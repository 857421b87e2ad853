"""Kikusui PWR-01 series regulated DC supply (PWR401L … PWR1201H): source only, SCPI.

Resources: ``ASRL/dev/ttyUSB0::INSTR`` (RS-232C, 8N1 at ``baudrate``),
``ASRLsocket://127.0.0.1:PORT::INSTR`` (the emulator's serial-over-TCP) or
``TCPIP0::<host>::5025::SOCKET`` (LAN, SCPI-RAW). ``\\n`` terminated both ways.

Confirmed in the *PWR-01 Series Communication Interface Manual* (IB034212, Oct 2019, read
on manualshive.com / pdfslide.us): LF is the program terminator on RS232C and SCPI-RAW, CR
is not a terminator; boolean replies are ``1``/``0``; the QUEStionable bits (OV, OC, PF,
FOCP, OT, SD, PARA, SENS, WDOG) and OPERation bits (CV 256, CC 1024), see
``instruments.wire.pwr01``; the ``SYST:ERR?`` event classes follow IEEE 488.2 (-100 command,
-200 execution, -300 device, -400 query errors). The command list names ``OUTP``,
``VOLT``, ``CURR``, ``VOLT:PROT``, ``CURR:PROT``, ``MEAS:VOLT?``, ``MEAS:CURR?``.

*Assumed* (not found in the excerpts we read): ``OUTP:PROT:CLE`` clears a latched
protection (Kikusui PWX/PWR-01 share the SCPI tree with Keysight here); the OVP/OCP range
(10 % to 110 % of the rating); the OVP must be at least the voltage setting; the ``*IDN?``
shape ``KIKUSUI,<model>,<serial>,<firmware>``; the PWR-01 has no under-voltage limit, so
``check_source_protection`` returns 0 V for it and nothing is sent. The communication
monitor (WDOG bit) exists but its command is not known to us: it is left as the panel set
it, and a WDOG trip is reported as a trip.

How the supply adapter (role ``SourceSupply``) drives it: ``arm_source`` sends ``OUTP 0``,
``VOLT v`` and ``VOLT:PROT ovp``; ``set_current`` ``CURR a``; ``safe_off_actions`` ``OUTP 0``
then ``CURR 0``; ``measure`` is one compound query
``MEAS:VOLT?;:MEAS:CURR?;:OUTP?;:STAT:OPER:COND?;:STAT:QUES:COND?``.
"""

from __future__ import annotations

import functools
import tomllib
from pathlib import Path

from instruments.errors import ConfigError, RatingError
from instruments.families import (
    SUPPLY_HOLD_SETTINGS,
    TIMING_TABLE,
    Family,
    SettingSpec,
    register,
)

from .base import Rating
from .connection import DEFAULT_TIMEOUT_S, ScpiConnection, SerialSettings
from .roles import OutputReading, OutputStatus, Regulation, SafeAction
from .scpi import (
    RatedScpiInstrument,
    ScpiMeasurement,
    ScpiNumber,
    ScpiSwitch,
    compound,
    parse_bool,
    parse_number,
)
from .wire.pwr01 import TRIPS, Operation, Questionable, protection_range

RATINGS_FILE = Path(__file__).with_name("pwr01.toml")
#: RS-232C default of the PWR-01 (*assumed*: the manual's setup lists 9600 to 115200 bps).
DEFAULT_BAUDRATE = 19200

_FLAGS = {
    Questionable.OV: "OVP",
    Questionable.OC: "OCP",
    Questionable.PF: "PF",
    Questionable.FOCP: "FOCP",
    Questionable.OT: "OTP",
    Questionable.SD: "SD",
    Questionable.PARA: "PARA",
    Questionable.SENS: "SENS",
    Questionable.WDOG: "WDOG",
}
_TRIPS = int(TRIPS)
_CC, _CV = int(Operation.CC), int(Operation.CV)

READ_QUERIES = ("MEAS:VOLT?", "MEAS:CURR?", "OUTP?", "STAT:OPER:COND?", "STAT:QUES:COND?")
READ_COMMAND = compound(READ_QUERIES)
STATUS_QUERIES = ("OUTP?", "STAT:QUES:COND?")
STATUS_COMMAND = compound(STATUS_QUERIES)


@functools.lru_cache(maxsize=1)
def _ratings() -> dict[str, Rating]:
    with RATINGS_FILE.open("rb") as handle:
        tables = tomllib.load(handle)
    return {
        model.upper(): Rating(
            voltage=float(row["voltage_max"]),
            current=float(row["current_source_max"]),
            power=float(row["power_max"]),
        )
        for model, row in tables.items()
        if model != TIMING_TABLE  # the family's command timing, not a model
    }


def model_rating(model: str) -> Rating:
    """Rating of a PWR-01 model from ``pwr01.toml`` (``ConfigError`` if unknown)."""
    table = _ratings()
    key = model.strip().upper()
    if key not in table:
        raise ConfigError(
            f"unknown PWR-01 model {model!r}; known: {', '.join(sorted(table))} "
            "(or give the rating explicitly)"
        )
    return table[key]


@functools.lru_cache(maxsize=256)
def flag_names(bits: int) -> frozenset[str]:
    """Flag names of the questionable condition bits (``OVP``, ``OCP``, ``WDOG`` …)."""
    return frozenset(name for bit, name in _FLAGS.items() if bits & bit)


def _check_ovp(psu: PWR01, value: float) -> None:
    if value < psu.voltage:
        raise RatingError(
            f"{psu.name}: OVP {value:g} V is below the voltage setting ({psu.voltage:g} V); "
            "the PWR-01 would trip at once; nothing sent"
        )


class PWR01(RatedScpiInstrument):
    """Kikusui PWR-01 supply. Set-points are checked against ``rating`` before sending."""

    family = "PWR-01"
    model_rating = staticmethod(model_rating)

    output = ScpiSwitch("OUTP", doc="``OUTP 1|0``: the DC output (replies ``1``/``0``).")
    voltage = ScpiNumber(
        "VOLT",
        unit="V",
        limits=lambda psu: (0.0, psu.rating.voltage),
        doc="``VOLT``: programmed output voltage (CV level).",
    )
    current = ScpiNumber(
        "CURR",
        unit="A",
        limits=lambda psu: (0.0, psu.rating.current),
        doc="``CURR``: programmed output current (CC level).",
    )
    ovp = ScpiNumber(
        "VOLT:PROT",
        unit="V",
        limits=lambda psu: protection_range(psu.rating.voltage),
        validate=_check_ovp,
        doc="``VOLT:PROT``: over-voltage protection level.",
    )
    ocp = ScpiNumber(
        "CURR:PROT",
        unit="A",
        limits=lambda psu: protection_range(psu.rating.current),
        doc="``CURR:PROT``: over-current protection level.",
    )
    measured_voltage = ScpiMeasurement("MEAS:VOLT?", unit="V")
    measured_current = ScpiMeasurement("MEAS:CURR?", unit="A")

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
        baudrate: int = DEFAULT_BAUDRATE,
        strict: bool = False,
    ) -> PWR01:
        """Open ``resource`` (serial resources at ``baudrate`` 8N1, or LAN) and wrap it."""
        connection = ScpiConnection(
            resource,
            timeout=timeout,
            visa_library=visa_library,
            serial=SerialSettings(baudrate=baudrate),
        )
        return cls(connection, rating=rating, model=model, name=name, strict=strict)

    def clear_protection(self) -> None:
        """``OUTP:PROT:CLE``: clear a latched protection (*assumed* command, see above)."""
        self.write_setting("OUTP:PROT:CLE")

    # -- the source-supply role (instruments.roles.SourceSupply) -------------------------
    def measure(self) -> OutputReading:
        """One compound query of voltage, current, output, operation and questionable."""
        fields = self.query_fields(READ_QUERIES)
        where = {"resource": self.resource, "command": READ_COMMAND}
        operation = int(parse_number(fields[3], **where))
        questionable = int(parse_number(fields[4], **where))
        regulation: Regulation | None = None
        if operation & _CC:
            regulation = "current"
        elif operation & _CV:
            regulation = "voltage"
        return OutputReading(
            voltage=parse_number(fields[0], **where),
            current=parse_number(fields[1], **where),
            on=parse_bool(fields[2], **where),
            regulation=regulation,
            tripped=bool(questionable & _TRIPS),
            flags=flag_names(questionable),
        )

    def output_status(self) -> OutputStatus:
        """``OUTP?;:STAT:QUES:COND?`` in one round trip."""
        output, ques = self.query_fields(STATUS_QUERIES)
        where = {"resource": self.resource, "command": STATUS_COMMAND}
        on = parse_bool(output, **where)
        return OutputStatus(on, flag_names(int(parse_number(ques, **where))))

    def safe_off_actions(self) -> list[SafeAction]:
        """``OUTP 0``, then ``CURR 0``."""
        return [
            ("OUTP OFF", lambda: self.set_output(False)),
            ("CURR 0", lambda: self.set_current(0.0)),
        ]

    def check_source_protection(
        self, voltage_setting: float, ovp: float, undervoltage_limit: float
    ) -> tuple[float, float]:
        """(OVP, 0): ``ovp`` clipped to the protection range, which must leave it at or
        above the setting; the PWR-01 has no under-voltage limit (*assumed*), so 0 V."""
        low, high = protection_range(self.rating.voltage)
        level = min(max(ovp, low), high)
        if level < voltage_setting:
            raise ConfigError(
                f"{self.name}: OVP would have to be ≥ {voltage_setting:g} V but the "
                f"{self.rating.voltage:g} V model allows at most {high:g} V"
            )
        return level, 0.0

    def arm_source(self, voltage_setting: float, ovp: float, undervoltage_limit: float) -> None:
        """``OUTP 0``, ``VOLT``, ``VOLT:PROT`` (the OVP after the voltage it must exceed)."""
        level, _ = self.check_source_protection(voltage_setting, ovp, undervoltage_limit)
        with self.locked():
            self.output = False
            self.voltage = voltage_setting
            self.ovp = level

    def set_output(self, on: bool) -> None:
        self.output = on

    def set_voltage(self, volts: float) -> None:
        self.voltage = volts

    def set_current(self, amps: float) -> None:
        self.current = amps


#: The family a bench file names ``driver = "pwr01"`` (ratings: ``instruments/pwr01.toml``).
FAMILY = register(
    Family(
        name="pwr01",
        function="supply",
        transport="visa",
        description="Kikusui PWR-01 regulated DC supply (SCPI over RS-232C or LAN)",
        opener=PWR01.open,
        ratings="pwr01.toml",
        settings=(
            *SUPPLY_HOLD_SETTINGS,
            SettingSpec(
                "baudrate", "int", "bit/s of the RS-232C line", default=DEFAULT_BAUDRATE, minimum=1
            ),
        ),
        open_keywords=frozenset({"rating"}),
    )
)
