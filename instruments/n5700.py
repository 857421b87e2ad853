"""Keysight (Agilent) N5700 / N8700 system DC power supplies: source only, SCPI over LAN.

Resource: ``TCPIP0::<host>::5025::SOCKET`` (raw socket, ``\\n`` terminated).

Wire format (pinned by ``tests/test_driver_n5700.py``): short headers without a leading
colon and values without units — ``VOLT 12.5``, ``CURR 2``, ``OUTP ON``, ``VOLT?``,
``MEAS:VOLT?``.

Confirmed in the *Series N5700 User's Guide* (Language Reference, as published on
easymanua.ls / manualsbrain) and the *Series N8700 User's Guide*:

- ``[SOUR:]VOLT:PROT:LEV``: minimum is the larger of the table minimum and 1.05 x the
  voltage setting; maximum from the table; a trip disables the output and sets OV in the
  questionable register; ``OUTP:PROT:CLE`` clears it. Table (rating → min/max):
  6 V 0.5/7.5, 8 V 0.5/10, 12.5 V 1/15, 20 V 1/24, 30 V 2/36, 40 V 2/44, 60 V 5/66,
  80 V 5/88, 100 V 5/110, 150 V 5/165, 300 V 5/330, 600 V 5/660.
- ``[SOUR:]VOLT:LIM:LOW``: at most the smaller of the table value (0.95 x rating) and
  0.95 x the voltage setting.
- Questionable bits OV=1, OC=2, PF=4, OT=16, INH=512, UNR=1024; operation bits CV=256,
  CC=1024 (WTG=32).
- ``CURR:PROT:STAT ON|OFF`` (foldback: trip the output when it enters CC).

Assumed (from Keysight's public model list, not re-checked here): the model table below
(N5741A-N5752A are 750 W, N5761A-N5772A 1500 W). A rating passed in overrides it.

How the supply adapter (role ``SourceSupply``) drives it: ``set_current`` sends ``CURR a``
and, unless already in current mode, ``VOLT Vc`` and ``OUTP ON``; ``hold_voltage`` sends
``CURR limit``, ``VOLT v``, ``OUTP ON``; ``idle`` ``OUTP OFF`` then ``CURR 0``; ``arm_source``
sends ``OUTP OFF``, ``CURR:PROT:STAT OFF`` (foldback would trip the output exactly when it
does its job, in CC), ``VOLT``, ``VOLT:PROT:LEV`` (clipped to the OVP table, at least 1.05 x
the voltage setting) and ``VOLT:LIM:LOW`` (at most 0.95 x the setting). ``measure`` is one
compound query ``MEAS:VOLT?;:MEAS:CURR?;:OUTP?;:STAT:OPER:COND?;:STAT:QUES:COND?``. The
N5700 has no communication watchdog.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

from instruments.errors import ConfigError, RatingError
from instruments.families import SUPPLY_HOLD_SETTINGS, Family, register

from .base import Rating, check_setpoint
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
from .wire.n5700 import (
    OVP_FACTOR,
    UV_LIMIT_FACTOR,
    Operation,
    Questionable,
    ovp_range,
)

log = logging.getLogger(__name__)

#: OVP range per voltage rating (User's Guide table): rating -> (minimum, maximum).
#: Model -> (volts, amps); power is 750 W (N574x/N575x) or 1500 W (N576x/N577x).
MODELS: dict[str, tuple[float, float]] = {
    "N5741A": (6.0, 100.0),
    "N5742A": (8.0, 90.0),
    "N5743A": (12.5, 60.0),
    "N5744A": (20.0, 38.0),
    "N5745A": (30.0, 25.0),
    "N5746A": (40.0, 19.0),
    "N5747A": (60.0, 12.5),
    "N5748A": (80.0, 9.5),
    "N5749A": (100.0, 7.5),
    "N5750A": (150.0, 5.0),
    "N5751A": (300.0, 2.5),
    "N5752A": (600.0, 1.3),
    "N5761A": (6.0, 180.0),
    "N5762A": (8.0, 165.0),
    "N5763A": (12.5, 120.0),
    "N5764A": (20.0, 76.0),
    "N5765A": (30.0, 50.0),
    "N5766A": (40.0, 38.0),
    "N5767A": (60.0, 25.0),
    "N5768A": (80.0, 19.0),
    "N5769A": (100.0, 15.0),
    "N5770A": (150.0, 10.0),
    "N5771A": (300.0, 5.0),
    "N5772A": (600.0, 2.6),
}


def model_rating(model: str) -> Rating:
    """Rating of an N5700 model from the model table (``ConfigError`` if unknown)."""
    key = model.strip().upper()
    if key not in MODELS:
        raise ConfigError(
            f"unknown N5700 model {model!r}; known: {', '.join(sorted(MODELS))} "
            "(or give the rating explicitly)"
        )
    volts, amps = MODELS[key]
    power = 1500.0 if key[:4] in ("N576", "N577") else 750.0
    return Rating(voltage=volts, current=amps, power=power)


@dataclass(frozen=True)
class SupplyReading:
    """One read of the supply's output."""

    voltage: float
    current: float
    output_on: bool
    operation: Operation
    questionable: Questionable

    @property
    def in_cv(self) -> bool:
        return Operation.CV in self.operation

    @property
    def in_cc(self) -> bool:
        return Operation.CC in self.operation

    @property
    def tripped(self) -> bool:
        """A protection (OV, OC, PF, OT, INH) has switched the output off."""
        trips = Questionable.OV | Questionable.OC | Questionable.PF | Questionable.OT
        return bool(self.questionable & (trips | Questionable.INH))


def _check_ovp(psu: N5700, value: float) -> None:
    minimum = OVP_FACTOR * psu.voltage
    if value < minimum:
        raise RatingError(
            f"{psu.name}: OVP {value:g} V is below 1.05 x the voltage setting "
            f"({minimum:g} V); the N5700 would refuse it; nothing sent"
        )


def _check_uv_limit(psu: N5700, value: float) -> None:
    maximum = UV_LIMIT_FACTOR * psu.voltage
    if value > maximum:
        raise RatingError(
            f"{psu.name}: under-voltage limit {value:g} V is above 0.95 x the voltage setting "
            f"({maximum:g} V); the N5700 would refuse it; nothing sent"
        )


READ_QUERIES = ("MEAS:VOLT?", "MEAS:CURR?", "OUTP?", "STAT:OPER:COND?", "STAT:QUES:COND?")
READ_COMMAND = compound(READ_QUERIES)
STATUS_QUERIES = ("OUTP?", "STAT:QUES:COND?")
STATUS_COMMAND = compound(STATUS_QUERIES)

_QUESTIONABLE_FLAGS = {
    Questionable.OV: "OVP",
    Questionable.OC: "OCP",
    Questionable.PF: "PF",
    Questionable.OT: "OTP",
    Questionable.INH: "INH",
    Questionable.UNR: "UNR",
}
#: Questionable bits after which the output is off.
_TRIPS = int(
    Questionable.OV | Questionable.OC | Questionable.PF | Questionable.OT | Questionable.INH
)
_CC, _CV = int(Operation.CC), int(Operation.CV)


@functools.lru_cache(maxsize=256)
def flag_names(bits: int) -> frozenset[str]:
    """Flag names of the questionable condition bits (``OVP``, ``OCP``, ``OTP`` …)."""
    return frozenset(name for bit, name in _QUESTIONABLE_FLAGS.items() if bits & bit)


class N5700(RatedScpiInstrument):
    """Keysight N5700 supply. Set-points are checked against ``rating`` before sending."""

    family = "N5700"
    model_rating = staticmethod(model_rating)

    output = ScpiSwitch("OUTP", doc="``OUTP ON|OFF``: the DC output.")
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
        "VOLT:PROT:LEV",
        unit="V",
        limits=lambda psu: ovp_range(psu.rating.voltage),
        validate=_check_ovp,
        doc="``VOLT:PROT:LEV``: over-voltage trip level (>= 1.05 x the voltage setting).",
    )
    undervoltage_limit = ScpiNumber(
        "VOLT:LIM:LOW",
        unit="V",
        limits=lambda psu: (0.0, UV_LIMIT_FACTOR * psu.rating.voltage),
        validate=_check_uv_limit,
        doc="``VOLT:LIM:LOW``: lowest voltage the supply accepts as a setting.",
    )
    foldback = ScpiSwitch(
        "CURR:PROT:STAT", doc="``CURR:PROT:STAT``: trip the output when it enters CC."
    )
    measured_voltage = ScpiMeasurement("MEAS:VOLT?", unit="V")
    measured_current = ScpiMeasurement("MEAS:CURR?", unit="A")

    def clear_protection(self) -> None:
        """``OUTP:PROT:CLE``: clear a latched OV/OC trip (after its cause is gone)."""
        self.write_setting("OUTP:PROT:CLE")

    def operation_condition(self) -> Operation:
        """``STAT:OPER:COND?`` (CV, CC, waiting for trigger)."""
        return Operation(self.query_int("STAT:OPER:COND?"))

    def questionable_condition(self) -> Questionable:
        """``STAT:QUES:COND?`` (OV, OC, PF, OT, INH, UNR)."""
        return Questionable(self.query_int("STAT:QUES:COND?"))

    def program(self, voltage: float, current: float) -> None:
        """Set voltage and current together; both are checked before either is sent."""
        with self.locked():
            volts = check_setpoint(self.name, "voltage", voltage, 0.0, self.rating.voltage, "V")
            amps = check_setpoint(self.name, "current", current, 0.0, self.rating.current, "A")
            self.voltage = volts
            self.current = amps

    def read(self) -> SupplyReading:
        """Measured voltage and current, output state and status conditions."""
        with self.locked():
            return SupplyReading(
                voltage=self.measured_voltage,
                current=self.measured_current,
                output_on=self.output,
                operation=self.operation_condition(),
                questionable=self.questionable_condition(),
            )

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
        """``OUTP OFF``, then ``CURR 0``."""
        return [
            ("OUTP OFF", lambda: self.set_output(False)),
            ("CURR 0", lambda: self.set_current(0.0)),
        ]

    def check_source_protection(
        self, voltage_setting: float, ovp: float, undervoltage_limit: float
    ) -> tuple[float, float]:
        """(OVP, UV limit) for a supply set to ``voltage_setting``: ``ovp`` clipped to the
        OVP table, which must leave it at least 1.05 x the setting; the UV limit at most
        0.95 x the setting and the rating (User's Guide, see the module docstring)."""
        low, high = ovp_range(self.rating.voltage)
        level = min(max(ovp, low), high)
        if level < OVP_FACTOR * voltage_setting:
            raise ConfigError(
                f"{self.name}: OVP would have to be ≥ {OVP_FACTOR * voltage_setting:g} V "
                f"(1.05 x {voltage_setting:g} V) but the {self.rating.voltage:g} V model allows "
                f"at most {high:g} V"
            )
        uvl = min(
            undervoltage_limit,
            UV_LIMIT_FACTOR * voltage_setting,
            UV_LIMIT_FACTOR * self.rating.voltage,
        )
        return level, uvl

    def arm_source(self, voltage_setting: float, ovp: float, undervoltage_limit: float) -> None:
        """``OUTP OFF``, ``CURR:PROT:STAT OFF``, ``VOLT``, ``VOLT:PROT:LEV``, ``VOLT:LIM:LOW``."""
        level, uvl = self.check_source_protection(voltage_setting, ovp, undervoltage_limit)
        with self.locked():
            self.output = False
            self.foldback = False
            self.voltage = voltage_setting
            self.ovp = level
            self.undervoltage_limit = uvl

    def set_output(self, on: bool) -> None:
        self.output = on

    def set_voltage(self, volts: float) -> None:
        self.voltage = volts

    def set_current(self, amps: float) -> None:
        self.current = amps


#: The family a bench file names ``driver = "n5700"`` (ratings: ``instruments/n5700.toml``).
FAMILY = register(
    Family(
        name="n5700",
        function="supply",
        transport="visa",
        description="Keysight N5700 system DC supply (SCPI)",
        opener=N5700.open,
        ratings="n5700.toml",
        settings=SUPPLY_HOLD_SETTINGS,
        open_keywords=frozenset({"rating"}),
    )
)
