"""ITECH IT6000C regenerative supply, emulated: SCPI on a serial line, a plant bidirectional.

The supply is a :class:`~instruments.emulation.plant.BidirectionalSpec` port on the bus:
CV priority holds ``VOLT`` between ``+CURR:LIM`` and ``CURR:LIM:NEG``; CC priority pushes the
signed ``CURR`` (negative sinks) and stops sourcing at ``VOLT:LIM`` and sinking at
``VOLT:LIM:NEG``. The output switch lives in the plant, so ``OUTP?`` reads the plant.

Sources. ITECH's *IT6000C Programming Guide* is not in the search index. What is here comes
from two independent open-source drivers, read (not copied):

- **OpenBench** (``VlasovLabTech/OpenBench-lab-control`` at commit 69a28518,
  ``src/openbench/drivers/itech_it6000c/{protocol,supply,transport}.py`` and
  ``tests/test_itech_it6000c.py``), validated on a physical IT6054C-800-225 over its USB
  virtual COM port (dated live-test records in the same repository). From it:
  ``*IDN?`` shape ``ITECH Electronics,<model>,<serial>,000.006.101,640.R,132.R``; ``FUNC?``
  answers the long forms ``VOLTage``/``CURRent`` and ``FUNC:MODE?`` ``FIXed``;
  ``STAT:OPER:COND`` bits CC+ 128, CV 256, CP+ 512, CC- 2048, CP- 4096; ``STAT:QUES:COND``
  bits OVP 1, OCP+ 2, OCP- 4, OPP+ 8, OPP- 16, UVP 32, OTP 64, UCP 128, SENSE 256, SHARE 512,
  REVERSE 1024, INHIBIT 2048, POWER-STATE 4096, PROTECTION 8192, INTERNAL 16384; the
  IT6054C-800-225's SCPI maxima 808 V, 227.25 A, 55 080 W (101 % of the rated voltage and
  current, 102 % of the power), which are also its power-limit and OCP values as read live;
  the queries ``VOLT|CURR:UND:PROT[:LEV]|:STAT|:DEL|:WARM?``, ``OUTP:DEL:RISE|FALL?``,
  ``SINK:RES:STAT?``, ``SYST:VOLT:RZERO?`` (live values: RZERO 1, sink resistance 0,
  ``CURR:UND:PROT`` -227.25); delays and warm-ups 0-60 s, slews 0.001-2000, watchdog
  ``OUTP:PROT:WDOG[:STAT]`` and ``:DEL`` 1-6000 s (seen OFF, 30 s). Observed on hardware:
  ``VOLT:LIM`` is writable only in CC priority and ``CURR:LIM`` only in CV priority;
  changing priority copies the active values into the related limits; ``CURR?`` mirrors
  ``CURR:LIM?`` in CV and ``VOLT?`` mirrors ``VOLT:LIM?`` in CC. Modelled as two shared
  registers (``VOLT`` is ``VOLT:LIM``, ``CURR`` is ``CURR:LIM``) whose meaning follows the
  priority. Switching from CC with a negative current to CV copies it into
  ``CURR:LIM:NEG`` (as OpenBench's fake transport does) and leaves ``CURR:LIM`` at 0
  (*assumed*).
- **pts-itech-m3905d-psu** (PyPI, module ``pts_itech_m3905d_psu``), a driver for the
  IT-M3900 family, which shares the command language: ``FUNCtion?`` returns
  ``VOLTage``/``CURRent``; ``SYST:ERR?`` answers ``0,"No error"``; ``SYST:CLE`` clears the
  error queue; ``VOLT:LIM``/``VOLT:LIM:NEG`` in CC and ``CURR:LIM``/``CURR:LIM:NEG`` in CV.

*Assumed* (no source gives it): at power-on the supply is in local, and a setting sent in
local is refused with SCPI's -201 "Invalid while in local" (queries and IEEE 488.2 commands
still work; both drivers send ``SYST:REM`` before every change); a setting the priority does
not allow is -221; a level above the SCPI maximum is -222; a protection latched (plant trip
or watchdog) refuses ``OUTP ON`` with -221 until ``OUTP:PROT:CLE``, which leaves the output
off. Where a watchdog expiry shows is not documented: it is reported as the PROTECTION bit
(8192). An over-current trip sets OCP- when the supply was sinking (CC with a negative
``CURR``, or CV with the bus above ``VOLT``) and OCP+ otherwise. Only ``FUNC:MODE FIX`` is
emulated (LIST/BATT/SOL/CARP are -221). The plant has no power limit, power trip, inhibit
input, under-current trip or trip delay, so ``POW:LIM``, ``POW:PROT``, ``CURR:UND:PROT``,
``*:PROT:DEL``/``:WARM`` and ``OUTP:DEL:*`` are stored only and the OPP/UCP/INHIBIT bits
never rise; ``VOLT:UND:PROT`` (with ``:STAT ON``) is the plant's under-voltage trip (UVP
bit). Set-points (``VOLT``, ``CURR``) stay within the rating; limits and protection levels
go up to the SCPI maxima, and the plant port, built at the rating, is driven with them
clamped to it. Slews are stored only (the port slews full scale in 0.1 s).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from instruments.emulation.models.base import ModelContext, Wire
from instruments.emulation.models.io_watchdog import WatchedScpiModel
from instruments.emulation.models.scpi_model import IDENTITY, meter
from instruments.emulation.plant import (
    BidirectionalHandle,
    BidirectionalMode,
    BidirectionalSpec,
    TripEvent,
    TripKind,
)
from instruments.emulation.plant_specs import AnyPortSpec
from instruments.emulation.scpi import (
    PLAIN_ERRORS,
    Boolean,
    BoundQuery,
    Choice,
    Command,
    Number,
    ScpiError,
    command,
    query,
    setting,
    status_commands,
)
from instruments.emulation.scpi_parser import Bound
from instruments.wire.it6000c import (
    SCPI_CURRENT_MAX,
    SCPI_POWER_MAX,
    SCPI_VOLTAGE_MAX,
    OperationStatus,
    QuestionableStatus,
)

INVALID_WHILE_IN_LOCAL = -201
CV = "VOLT"
CC = "CURR"
FIXED = "FIX"
#: ``FUNC?`` and ``FUNC:MODE?`` answer the long forms (OpenBench, pts-itech-m3905d-psu).
LONG_FORMS = {
    CV: "VOLTage",
    CC: "CURRent",
    FIXED: "FIXed",
    "BATT": "BATTery",
    "SOL": "SOLar",
    "CARP": "CARProfile",
}
#: SCPI maxima as fractions of the rating (IT6054C-800-225: 808 V, 227.25 A, 55 080 W).
FULL_SCALE_S = 0.1
WATCHDOG_DELAY_S = (1.0, 6000.0, 30.0)
PROTECTION_DELAY_S = (0.0, 60.0)
OUTPUT_DELAY_S = (0.0, 60.0)
SLEW_RANGE = (0.001, 2000.0, 0.1)

OPER_CC_POS = int(OperationStatus.CC_POS)
OPER_CV = int(OperationStatus.CV)
OPER_CP_POS = int(OperationStatus.CP_POS)
OPER_CC_NEG = int(OperationStatus.CC_NEG)
OPER_CP_NEG = int(OperationStatus.CP_NEG)

QUES_OVP = int(QuestionableStatus.OVP)
QUES_OCP_POS = int(QuestionableStatus.OCP_POS)
QUES_OCP_NEG = int(QuestionableStatus.OCP_NEG)
QUES_OPP_POS = int(QuestionableStatus.OPP_POS)
QUES_OPP_NEG = int(QuestionableStatus.OPP_NEG)
QUES_UVP = int(QuestionableStatus.UVP)
QUES_OTP = int(QuestionableStatus.OTP)
QUES_UCP = int(QuestionableStatus.UCP)
QUES_INHIBIT = int(QuestionableStatus.INHIBIT)
#: The watchdog's expiry (*assumed*: no source says which bit shows it).
QUES_PROTECTION = int(QuestionableStatus.PROTECTION)
_TRIP_BITS = {TripKind.OVP: QUES_OVP, TripKind.UVLO: QUES_UVP, TripKind.OTP: QUES_OTP}

Guard = Callable[[Any, Any], None]


def _remote(dev: IT6000CModel, value: object = None) -> None:
    dev.require_remote()


def _in_priority(priority: str, what: str) -> Guard:
    def guard(dev: IT6000CModel, value: object) -> None:
        dev.require_remote()
        if dev.priority != priority:
            name = "CV (FUNC VOLT)" if priority == CV else "CC (FUNC CURR)"
            dev.refuse(f"{what} is writable only in {name} priority")

    return guard


def _set_function_mode(dev: IT6000CModel, value: str) -> None:
    """``FUNC:MODE``: only ``FIXed`` is emulated (the sequencers are -221)."""
    dev.require_remote()
    if value != FIXED:
        dev.refuse(f"FUNC:MODE {value} is not emulated; only FIXed")
    dev.function_mode = value


def _remote_action(func: Callable[[IT6000CModel], None]) -> Callable[[IT6000CModel], None]:
    def action(dev: IT6000CModel) -> None:
        dev.require_remote()
        func(dev)

    return action


def _volts(dev: IT6000CModel) -> float:
    return dev.rated_voltage


def _curr_min(dev: IT6000CModel) -> float:
    """``CURR`` is the signed set-point in CC; in CV it is ``CURR:LIM``, never negative."""
    return -dev.rated_sink if dev.priority == CC else 0.0


def _source_max(dev: IT6000CModel) -> float:
    return dev.rated_source


def _max_volts(dev: IT6000CModel) -> float:
    """SCPI maximum of voltage limits and protection levels."""
    return SCPI_VOLTAGE_MAX * dev.rated_voltage


def _max_source(dev: IT6000CModel) -> float:
    return SCPI_CURRENT_MAX * dev.rated_source


def _min_sink(dev: IT6000CModel) -> float:
    return -SCPI_CURRENT_MAX * dev.rated_sink


def _max_amps(dev: IT6000CModel) -> float:
    """SCPI maximum of a current protection level (either direction)."""
    return SCPI_CURRENT_MAX * max(dev.rated_source, dev.rated_sink)


def _min_amps(dev: IT6000CModel) -> float:
    return -_max_amps(dev)


def _max_watts(dev: IT6000CModel) -> float:
    return SCPI_POWER_MAX * dev.rated_power


def _min_watts(dev: IT6000CModel) -> float:
    return -_max_watts(dev)


_CURR_PARAM = Number("A", min=_curr_min, max=_source_max)


def _set_current(dev: IT6000CModel, amps: float) -> None:
    dev.require_remote()
    dev.i_reg = amps
    dev.push()


def _get_current(dev: IT6000CModel, which: str | None = None) -> float:
    return dev.i_reg if which is None else _CURR_PARAM.bound(which, dev)


def _set_priority(dev: IT6000CModel, priority: str) -> None:
    """``FUNC``: the shared registers change meaning; a sinking current moves to the NEG limit."""
    dev.require_remote()
    if priority == CV and dev.priority == CC and dev.i_reg < 0:
        dev.ilim_neg = dev.i_reg
        dev.i_reg = 0.0
    dev.priority = priority
    dev.push()


def _set_output(dev: IT6000CModel, on: bool) -> None:
    dev.require_remote()
    if on and dev.latched():
        dev.refuse("a protection is latched; send OUTP:PROT:CLE first")
    dev.port.set_output(on)


def _clear_protection(dev: IT6000CModel) -> None:
    dev.port.clear_trips()
    dev.watchdog_tripped = False


def _set_remote(on: bool) -> Callable[[IT6000CModel], None]:
    def action(dev: IT6000CModel) -> None:
        dev.remote = on

    return action


def _push(dev: IT6000CModel) -> None:
    dev.push()


def _push_protection(dev: IT6000CModel) -> None:
    dev.push_protection()


def _stored(pattern: str, attr: str, param: Number | Boolean, guard: Guard = _remote) -> Command:
    """A setting the plant does not act on (slews, delays, power limits): stored, in remote."""
    return setting(pattern, attr, param, guard=guard)


def _protection(kind: str, short: str, level_max: Bound, unit: str) -> list[Command]:
    """``<kind>:PROT[:LEV]``, ``:STAT`` (both acted on by the plant) and ``:DEL`` (stored)."""
    base = f"[SOURce:]{kind}:PROTection"
    low, high = PROTECTION_DELAY_S
    return [
        setting(
            f"{base}[:LEVel]",
            f"{short}_prot",
            Number(unit, min=0.0, max=level_max),
            guard=_remote,
            after=_push_protection,
        ),
        setting(
            f"{base}:STATe",
            f"{short}_prot_on",
            Boolean(default=False),
            guard=_remote,
            after=_push_protection,
        ),
        _stored(f"{base}:DELay", f"{short}_prot_delay", Number("S", min=low, max=high, default=0)),
    ]


def _slews() -> list[Command]:
    low, high, default = SLEW_RANGE
    found = []
    for kind in ("VOLTage", "CURRent"):
        for sign, node in (("pos", "[:POSitive]"), ("neg", ":NEGative")):
            found.append(
                _stored(
                    f"[SOURce:]{kind}:SLEW{node}",
                    f"{kind[:4].lower()}_slew_{sign}",
                    Number(min=low, max=high, default=default),
                )
            )
    return found


def _under_protection(
    kind: str, short: str, level: tuple[Bound, Bound, float], push: bool
) -> list[Command]:
    """``<kind>:UNDer:PROT[:LEV]``, ``:STAT``, ``:DEL`` and ``:WARM`` (OpenBench's queries).

    Under-voltage (``push``) is the plant's under-voltage trip; the rest is stored.
    """
    base = f"[SOURce:]{kind}:UNDer:PROTection"
    low, high, default = level
    after = _push_protection if push else None
    delay_low, delay_high = PROTECTION_DELAY_S
    return [
        setting(
            f"{base}[:LEVel]",
            f"{short}_und",
            Number(kind[0], min=low, max=high, default=default),
            guard=_remote,
            after=after,
        ),
        setting(
            f"{base}:STATe", f"{short}_und_on", Boolean(default=False), guard=_remote, after=after
        ),
        _stored(f"{base}:DELay", f"{short}_und_delay", Number("S", delay_low, delay_high, 0.0)),
        _stored(f"{base}:WARMup", f"{short}_und_warm", Number("S", delay_low, delay_high, 0.0)),
    ]


def _output_delays() -> list[Command]:
    """``OUTP:DEL:RISE|FALL``: stored (the plant switches at once)."""
    low, high = OUTPUT_DELAY_S
    return [
        _stored(
            f"OUTPut:DELay:{edge}", f"output_delay_{edge[:4].lower()}", Number("S", low, high, 0.0)
        )
        for edge in ("RISE", "FALL")
    ]


def _long_form(attr: str) -> Callable[[IT6000CModel], str]:
    """A query answering the long form of a stored short form (``VOLT`` → ``VOLTage``)."""

    def answer(dev: IT6000CModel) -> str:
        short: str = getattr(dev, attr)
        return LONG_FORMS.get(short, short)

    return answer


def _clear_errors(dev: IT6000CModel) -> None:
    """``SYST:CLE`` (pts-itech-m3905d-psu): empty the error queue."""
    dev.errors.clear()


class IT6000CModel(WatchedScpiModel):
    """ITECH IT6000C: bidirectional supply with priority modes and a communication watchdog."""

    driver: ClassVar[str] = "it6000c"
    wire: ClassVar[Wire] = Wire.SCPI_SERIAL
    watchdog_name: ClassVar[str] = "communication watchdog"
    #: The USB virtual COM port at 115200 8N1 (instrument-protocols reference, IT6000C).
    default_baud: ClassVar[int] = 115200
    vendor: ClassVar[str] = "ITECH Electronics"
    firmware: ClassVar[str] = "000.006.101,640.R,132.R"
    error_format = PLAIN_ERRORS
    error_messages: ClassVar[Mapping[int, str]] = {INVALID_WHILE_IN_LOCAL: "Invalid while in local"}

    priority: str
    function_mode: str
    v_reg: float
    i_reg: float
    vlim_neg: float
    ilim_neg: float
    pow_lim: float
    pow_lim_neg: float
    volt_prot: float
    volt_prot_on: bool
    curr_prot: float
    curr_prot_on: bool
    pow_prot: float
    pow_prot_on: bool
    watchdog_on: bool
    watchdog_delay: float
    volt_und: float
    volt_und_on: bool
    curr_und: float
    sink_resistance: bool
    rzero: bool

    commands = (
        IDENTITY,
        command("SYSTem:REMote", _set_remote(True)),
        command("SYSTem:RWLock", _set_remote(True)),
        command("SYSTem:LOCal", _set_remote(False)),
        command("SYSTem:CLEar", _clear_errors),
        Command(
            "[SOURce:]FUNCtion",
            set=_set_priority,
            query=_long_form("priority"),
            params=(Choice("VOLTage", "CURRent"),),
            on_reset=lambda dev: setattr(dev, "priority", CV),
        ),
        Command(
            "[SOURce:]FUNCtion:MODE",
            set=_set_function_mode,
            query=_long_form("function_mode"),
            params=(Choice("FIXed", "LIST", "BATTery", "SOLar", "CARProfile"),),
            on_reset=lambda dev: setattr(dev, "function_mode", FIXED),
        ),
        setting(
            "[SOURce:]VOLTage[:LEVel][:IMMediate][:AMPLitude]",
            "v_reg",
            Number("V", min=0.0, max=_volts, default=0.0),
            guard=_remote,
            after=_push,
        ),
        Command(
            "[SOURce:]CURRent[:LEVel][:IMMediate][:AMPLitude]",
            set=_set_current,
            query=_get_current,
            params=(_CURR_PARAM,),
            query_params=(BoundQuery(),),
            unit="A",
            on_reset=lambda dev: setattr(dev, "i_reg", 0.0),
        ),
        setting(
            "[SOURce:]VOLTage[:LEVel]:LIMit[:POSitive]",
            "v_reg",
            Number("V", min=0.0, max=_max_volts),
            guard=_in_priority(CC, "VOLT:LIM"),
            after=_push,
        ),
        setting(
            "[SOURce:]VOLTage[:LEVel]:LIMit:NEGative",
            "vlim_neg",
            Number("V", min=0.0, max=_max_volts, default=0.0),
            guard=_in_priority(CC, "VOLT:LIM:NEG"),
            after=_push,
        ),
        setting(
            "[SOURce:]CURRent[:LEVel]:LIMit[:POSitive]",
            "i_reg",
            Number("A", min=0.0, max=_max_source),
            guard=_in_priority(CV, "CURR:LIM"),
            after=_push,
        ),
        setting(
            "[SOURce:]CURRent[:LEVel]:LIMit:NEGative",
            "ilim_neg",
            Number("A", min=_min_sink, max=0.0, default=0.0),
            guard=_in_priority(CV, "CURR:LIM:NEG"),
            after=_push,
        ),
        _stored("[SOURce:]POWer[:LEVel]:LIMit[:POSitive]", "pow_lim", Number("W", 0.0, _max_watts)),
        _stored(
            "[SOURce:]POWer[:LEVel]:LIMit:NEGative", "pow_lim_neg", Number("W", _min_watts, 0.0)
        ),
        *_slews(),
        *_protection("VOLTage", "volt", _max_volts, "V"),
        *_protection("CURRent", "curr", _max_amps, "A"),
        *_protection("POWer", "pow", _max_watts, "W"),
        *_under_protection("VOLTage", "volt", (0.0, _max_volts, 0.0), push=True),
        *_under_protection("CURRent", "curr", (_min_amps, _max_amps, 0.0), push=False),
        *_output_delays(),
        _stored("SINK:RESistance:STATe", "sink_resistance", Boolean(default=False)),
        _stored("SYSTem:VOLTage:RZERo", "rzero", Boolean(default=True)),
        Command(
            "OUTPut[:STATe]",
            set=_set_output,
            query=lambda dev: dev.port.output_on,
            params=(Boolean(),),
        ),
        command("OUTPut:PROTection:CLEar", _remote_action(_clear_protection)),
        setting(
            "OUTPut:PROTection:WDOG[:STATe]",
            "watchdog_on",
            Boolean(default=False),
            guard=_remote,
        ),
        _stored(
            "OUTPut:PROTection:WDOG:DELay",
            "watchdog_delay",
            Number("S", min=WATCHDOG_DELAY_S[0], max=WATCHDOG_DELAY_S[1], default=30.0),
        ),
        query("MEASure[:SCALar]:VOLTage[:DC]?", meter("voltage"), unit="V"),
        query("MEASure[:SCALar]:CURRent[:DC]?", meter("current"), unit="A"),
        query("MEASure[:SCALar]:POWer[:DC]?", lambda dev: dev.measured_power(), unit="W"),
        *status_commands(),
    )

    @classmethod
    def port_specs(cls, ctx: ModelContext) -> list[AnyPortSpec]:
        rating = ctx.instrument.rating
        amps = max(rating.current_source_max, rating.current_sink_max)
        return [
            BidirectionalSpec(
                name=ctx.key,
                node=ctx.node,
                max_voltage_v=rating.voltage_max,
                max_source_a=rating.current_source_max,
                max_sink_a=rating.current_sink_max,
                slew_v_per_s=rating.voltage_max / FULL_SCALE_S,
                slew_a_per_s=amps / FULL_SCALE_S,
                line_ohm=ctx.line_ohm,
                sensors=ctx.sensors(),
            )
        ]

    def bind(self) -> None:
        rating = self.ctx.instrument.rating
        self.port: BidirectionalHandle = self.plant.bidirectional(self.key)
        self.rated_voltage = rating.voltage_max
        self.rated_source = rating.current_source_max
        self.rated_sink = rating.current_sink_max
        self.rated_power = rating.power_max
        self.remote = False
        self.watchdog_tripped = False
        self.ocp_sinking = False
        self.last_io = self.plant.time
        self.plant.add_trip_listener(self._on_trip)

    def apply_defaults(self) -> None:
        """``*RST`` values that depend on the rating: power limits and protection levels."""
        super().apply_defaults()
        self.pow_lim = _max_watts(self)
        self.pow_lim_neg = _min_watts(self)
        self.volt_prot = _max_volts(self)
        self.curr_prot = _max_amps(self)
        self.pow_prot = _max_watts(self)
        self.curr_und = _min_amps(self)

    def push(self) -> None:
        """The priority and the shared registers onto the plant port.

        Limits may exceed the rating (up to the SCPI maxima); the port, built at the
        rating, gets them clamped to it.
        """
        port = self.port
        volts = min(self.v_reg, self.rated_voltage)
        if self.priority == CV:
            port.set_mode(BidirectionalMode.CV)
            port.set_voltage(volts)
            port.set_current_limits(
                min(self.i_reg, self.rated_source), min(-self.ilim_neg, self.rated_sink)
            )
        else:
            port.set_mode(BidirectionalMode.CC)
            port.set_current(self.i_reg)
            port.set_voltage_limits(min(self.vlim_neg, volts), volts)
        self.push_protection()

    def push_protection(self) -> None:
        """OVP, OCP and UVP (the plant's under-voltage trip) where switched on."""
        port = self.port
        port.set_protection(TripKind.OVP, self.volt_prot if self.volt_prot_on else None)
        port.set_protection(TripKind.OCP, self.curr_prot if self.curr_prot_on else None)
        port.set_protection(TripKind.UVLO, self.volt_und if self.volt_und_on else None)

    def _on_trip(self, event: TripEvent) -> None:
        """Note the direction of an over-current trip of this port (OCP+ or OCP-)."""
        if event.port == self.key and event.kind is TripKind.OCP:
            self.ocp_sinking = self.sinking()

    def sinking(self) -> bool:
        """Whether the supply draws from the bus: a negative ``CURR`` in CC priority, or
        the bus above ``VOLT`` in CV priority."""
        if self.priority == CC:
            return self.i_reg < 0.0
        return self.port.state().voltage > self.v_reg

    def reset(self) -> None:
        self.port.set_output(False)
        super().reset()

    def require_remote(self) -> None:
        """Settings need remote control (``SYST:REM``); -201 "Invalid while in local"."""
        if not self.remote:
            raise ScpiError(INVALID_WHILE_IN_LOCAL, "send SYST:REM first")

    def latched(self) -> bool:
        """A protection (plant trip or watchdog) holds the output off."""
        return bool(self.port.trips) or self.watchdog_tripped

    def measured_power(self) -> float:
        reading = self.measure()
        return reading.voltage * reading.current

    # -- status ------------------------------------------------------------------------
    def operation_condition(self) -> int:
        """CV 256, CC+ 128 (sourcing) or CC- 2048 (sinking); CP never (no power limit)."""
        state = self.port.state()
        if state.mode == "CV":
            return OPER_CV
        if state.mode == "CC":
            return OPER_CC_NEG if state.current < 0.0 else OPER_CC_POS
        return 0

    def questionable_condition(self) -> int:
        """Latched trips: OVP 1, OCP+ 2 / OCP- 4, UVP 32, OTP 64; the watchdog 8192."""
        bits = QUES_PROTECTION if self.watchdog_tripped else 0
        for kind in self.port.trips:
            if kind is TripKind.OCP:
                bits |= QUES_OCP_NEG if self.ocp_sinking else QUES_OCP_POS
            else:
                bits |= _TRIP_BITS.get(kind, 0)
        return bits

    def status(self) -> dict[str, Any]:
        return {
            **super().status(),
            "remote": self.remote,
            "priority": self.priority,
            "watchdog": {
                "on": self.watchdog_on,
                "delay_s": self.watchdog_delay,
                "tripped": self.watchdog_tripped,
            },
        }
