"""Chroma 63200A DC electronic load, emulated: SCPI on a LAN socket, a plant load port.

One model serves every 63200A: the bench file's model gives the rating (63202A-600-140 on
the 350 V bus, 63202A-150-200 as Sony's battery emulator on E005's battery node). The load
is a :class:`~instruments.emulation.plant.LoadSpec` port; its input switch and levels live in
the plant, so ``LOAD?`` reads the plant (0 after a trip or after the emulator made all safe),
and in CC it draws only while its input is above the turn-on voltage (the plant does that).
``MEAS:CURR?`` is the sunk current as a positive number, as the load reports it.

Confirmed: *63200A Series User Manual* ch. 4 (easymanua.ls): ``*RST`` forces ``ABOR``,
``*CLS`` and ``LOAD:PROT:CLE`` and restores the factory settings; *63200 Series Operation &
Programming Manual*: ``*IDN?`` is ``Chroma,<model>,<serial>,<firmware>`` (``Chroma,63203,
12345678,01.00``), ``*OPC?`` is 1. *63600 Series Operation & Programming Manual* (the same
language; *assumed* identical here): ``LOAD ON|OFF``, ``CURR:STAT:L1``, ``MEAS:VOLT?``,
``MEAS:CURR?``.

Status bits. The *63200A Series Operation & Programming Manual* §5.2.3, Table 5-2
(easymanua.ls, page 131) lists the questionable conditions, "the same as the channel status
conditions (Table 5-1)", in the order over-temperature, over-current, over-power, reverse
voltage, maximum sine-wave current limit. That page is word for word the *63600* manual's
§6.2.3, Table 6-2, whose channel status (§6.2.1 Table 6-1, and ``STAT:CHAN:COND?`` in
§5.3.2.19) is OTP 1, OVP 2, OCP 4, OPP 8, REV 16, SYNC 32, MAX LIM 64, FAN 128. Those weights
are used for ``STAT:CHAN:COND?`` and ``STAT:QUES:COND?``: the order rules out the *63200*
(non-A) manual's questionable layout (§8.3 Table 8-1: OC 1, OV 2, OP 4, RV 8, OT 16, LD 32,
ST 64), but the 63200A's own Table 5-1 weights could not be read (*assumed* from the 63600).

Third-party code driving 63200A loads (``AnnaGiasson/PythonEquipmentDrivers``,
``pythonequipmentdrivers/sink/Chroma_63206A.py`` at commit 1817eb12): ``MODE CCL|CCM|CCH|
CRL..|CPL..|CCDL|CCDM|CCDH`` (mode and range in one word; ``CCD*`` is dynamic CC),
``CURR:STAT:L1|L2``, ``CURR:DYN:L1|L2`` (A), ``CURR:DYN:T1|T2`` (s), ``CURR:DYN:RISE|FALL``
(A/µs), ``CURR:DYN:REP`` (cycles; 0 repeats for ever), ``RES:STAT:L1|L2``,
``VOLT:STAT:L1|L2``, ``VOLT:STAT:ILIM``, ``POW:STAT:L1|L2``, ``LOAD:SHOR``,
``MEAS|FETC:VOLT|CURR|POW?``. ``CONF:VOLT:ON`` (turn-on voltage; a Von above the source
voltage leaves a switched-on load drawing nothing) and ``CONF:REM ON|OFF`` come from the
63600 language (*assumed*; no source says the 63200A needs ``CONF:REM ON`` on LAN or GPIB,
so the load accepts every command without it). The 63200A front panel shows three current
ranges (``I_RANGE = HIGH(2)``) and ``CV_H``.

*Assumed* (datasheet not found): the low and middle ranges span 10 % and 30 % of the high
range (a level above the present range is -222; changing range clamps the levels); CR and
CP modes are not emulated (the plant loads are CC and CV only): ``MODE CR*|CP*`` is -221;
dynamic CC draws the time-weighted mean of ``L1`` for ``T1`` and ``L2`` for ``T2`` (the plant
steps far slower than the load toggles; the repeat count is stored, the load does not stop
by itself); ``T1``/``T2`` span 0.025 ms to 50 s; CV with ``VOLT:STAT:ILIM`` below the
rating is emulated as the plant's CC load with its turn-on voltage at the CV level and its
current at the limit (the same characteristic); ``LOAD:SHOR ON`` sinks the present range's
maximum; the slews ``CURR:STAT|DYN:RISE|FALL`` are stored (the port changes instantly, as
the load does at its default maximum slew); the load's own OVP trips at 105 % of its voltage
rating; ``LOAD ON`` while a protection is latched is -221 until ``LOAD:PROT:CLE``, which
leaves the input off. Replies use plain decimals and ``0,"No error"``. No communication
watchdog was found for the 63200A (none in the 63200A/63600 command sets), so none is
modelled.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from instruments.emulation.models.base import ModelContext, Wire
from instruments.emulation.models.scpi_model import IDENTITY, ScpiModel, meter
from instruments.emulation.plant import LoadHandle, LoadMode, LoadSpec, Protection, TripKind
from instruments.emulation.plant_specs import AnyPortSpec
from instruments.emulation.scpi import (
    PLAIN_ERRORS,
    Boolean,
    Choice,
    Command,
    Number,
    command,
    query,
    setting,
)
from instruments.wire.chroma63200a import ChannelStatus

log = logging.getLogger(__name__)

MODES = (
    "CCL",
    "CCM",
    "CCH",
    "CRL",
    "CRM",
    "CRH",
    "CVL",
    "CVM",
    "CVH",
    "CPL",
    "CPM",
    "CPH",
    "CCDL",
    "CCDM",
    "CCDH",
)
EMULATED = ("CC", "CV")
#: ``CURR:DYN:T1|T2`` (s), *assumed*.
DYNAMIC_T_S = (0.000025, 50.0, 0.001)
RANGE_FRACTION = {"L": 0.1, "M": 0.3, "H": 1.0}
OVP_FACTOR = 1.05
SLEW_A_PER_US = (0.0001, 1000.0)
#: Input voltage below this reads as reversed polarity (REV).
REVERSE_V = -0.1
#: CV current limit at or above this fraction of the rating leaves the plant in plain CV.
UNLIMITED = 1.0 - 1e-9

STAT_OTP = int(ChannelStatus.OTP)
STAT_OVP = int(ChannelStatus.OVP)
STAT_OCP = int(ChannelStatus.OCP)
STAT_OPP = int(ChannelStatus.OPP)
STAT_REV = int(ChannelStatus.REV)
STAT_SYNC = int(ChannelStatus.SYNC)
STAT_MAX_LIM = int(ChannelStatus.MAX_LIM)
STAT_FAN = int(ChannelStatus.FAN)
_TRIP_BITS = {TripKind.OTP: STAT_OTP, TripKind.OVP: STAT_OVP, TripKind.OCP: STAT_OCP}


def _current_range(dev: Chroma63200AModel) -> float:
    """Largest CC level in the present range (the high range while not in CC or CCD)."""
    if dev.mode.startswith("CC"):
        return RANGE_FRACTION[dev.mode[-1]] * dev.rated_current
    return dev.rated_current


def _voltage_range(dev: Chroma63200AModel) -> float:
    """Largest CV level in the present range (the high range while not in CV)."""
    if dev.mode.startswith("CV"):
        return RANGE_FRACTION[dev.mode[2]] * dev.rated_voltage
    return dev.rated_voltage


def _amps(dev: Chroma63200AModel) -> float:
    return dev.rated_current


def _volts(dev: Chroma63200AModel) -> float:
    return dev.rated_voltage


def _watts(dev: Chroma63200AModel) -> float:
    return dev.rated_power


def _set_mode(dev: Chroma63200AModel, word: str) -> None:
    if word[:2] not in EMULATED:
        dev.refuse(f"MODE {word}: CR and CP are not emulated")
    dev.mode = word
    top = _current_range(dev)
    dev.cc_level = min(dev.cc_level, top)
    dev.dyn_l1 = min(dev.dyn_l1, top)
    dev.dyn_l2 = min(dev.dyn_l2, top)
    dev.cv_level = min(dev.cv_level, _voltage_range(dev))
    dev.push()


def _set_load(dev: Chroma63200AModel, on: bool) -> None:
    if on and dev.load.trips:
        dev.refuse("a protection is latched; send LOAD:PROT:CLE first")
    dev.load.set_input(on)


def _push(dev: Chroma63200AModel) -> None:
    dev.push()


def _dynamic() -> list[Command]:
    """``CURR:DYN:L1|L2`` (acted on in ``CCD*``), ``T1|T2``, ``RISE|FALL``, ``REP``."""
    t_low, t_high, t_default = DYNAMIC_T_S
    slew_low, slew_high = SLEW_A_PER_US
    base = "[SOURce:]CURRent:DYNamic"
    return [
        *(
            setting(
                f"{base}:L{n}",
                f"dyn_l{n}",
                Number("A", min=0.0, max=_current_range, default=0.0),
                after=_push,
            )
            for n in (1, 2)
        ),
        *(
            setting(
                f"{base}:T{n}",
                f"dyn_t{n}",
                Number("S", min=t_low, max=t_high, default=t_default),
                after=_push,
            )
            for n in (1, 2)
        ),
        _stored(f"{base}:RISE", "dyn_rise", Number("", slew_low, slew_high, slew_high)),
        _stored(f"{base}:FALL", "dyn_fall", Number("", slew_low, slew_high, slew_high)),
        Command(
            f"{base}:REPeat",
            set=lambda dev, count: setattr(dev, "dyn_repeat", int(count)),
            query=lambda dev: dev.dyn_repeat,
            params=(Number(min=0, max=65535, integer=True),),
            on_reset=lambda dev: setattr(dev, "dyn_repeat", 0),
        ),
    ]


def _stored(pattern: str, attr: str, param: Number) -> Command:
    """A level of an unemulated mode, or a slew: stored and answered, not acted on."""
    return setting(pattern, attr, param)


class Chroma63200AModel(ScpiModel):
    """Chroma 63200A electronic load: CC and CV, turn-on voltage, channel status."""

    driver: ClassVar[str] = "chroma63200a"
    wire: ClassVar[Wire] = Wire.SCPI_LAN
    vendor: ClassVar[str] = "Chroma"
    firmware: ClassVar[str] = "01.00"
    error_format = PLAIN_ERRORS

    mode: str
    cc_level: float
    cv_level: float
    cv_limit: float
    von: float
    short: bool
    dyn_l1: float
    dyn_l2: float
    dyn_t1: float
    dyn_t2: float
    dyn_repeat: int
    remote: bool

    commands = (
        IDENTITY,
        Command(
            "MODE",
            set=_set_mode,
            query=lambda dev: dev.mode,
            params=(Choice(*MODES),),
            on_reset=lambda dev: setattr(dev, "mode", "CCH"),
        ),
        setting(
            "[SOURce:]CURRent:STATic:L1",
            "cc_level",
            Number("A", min=0.0, max=_current_range, default=0.0),
            after=_push,
        ),
        _stored("[SOURce:]CURRent:STATic:L2", "cc_level2", Number("A", 0.0, _amps, 0.0)),
        _stored(
            "[SOURce:]CURRent:STATic:RISE", "cc_rise", Number("", *SLEW_A_PER_US, SLEW_A_PER_US[1])
        ),
        _stored(
            "[SOURce:]CURRent:STATic:FALL", "cc_fall", Number("", *SLEW_A_PER_US, SLEW_A_PER_US[1])
        ),
        setting(
            "[SOURce:]VOLTage:STATic:L1",
            "cv_level",
            Number("V", min=0.0, max=_voltage_range, default=0.0),
            after=_push,
        ),
        _stored("[SOURce:]VOLTage:STATic:L2", "cv_level2", Number("V", 0.0, _volts, 0.0)),
        setting(
            "[SOURce:]VOLTage:STATic:ILIMit",
            "cv_limit",
            Number("A", min=0.0, max=_amps),
            after=_push,
        ),
        *_dynamic(),
        _stored("[SOURce:]POWer:STATic:L1", "cp_level", Number("W", 0.0, _watts, 0.0)),
        _stored("[SOURce:]POWer:STATic:L2", "cp_level2", Number("W", 0.0, _watts, 0.0)),
        _stored("[SOURce:]RESistance:STATic:L1", "cr_level", Number("OHM", 0.0, 1e6, 1e6)),
        _stored("[SOURce:]RESistance:STATic:L2", "cr_level2", Number("OHM", 0.0, 1e6, 1e6)),
        setting(
            "CONFigure:VOLTage:ON",
            "von",
            Number("V", min=0.0, max=_volts, default=0.0),
            after=_push,
        ),
        Command(
            "LOAD[:STATe]",
            set=_set_load,
            query=lambda dev: dev.load.output_on,
            params=(Boolean(),),
        ),
        setting("LOAD:SHORt[:STATe]", "short", Boolean(default=False), after=_push),
        setting("CONFigure:REMote", "remote", Boolean(default=False)),
        command("LOAD:PROTection:CLEar", lambda dev: dev.load.clear_trips()),
        Command(
            "CHANnel[:LOAD]",
            set=lambda dev, channel: None,
            query=lambda dev: 1,
            params=(Number(min=1, max=1, integer=True),),
        ),
        *(
            query(f"{verb}[:SCALar]:VOLTage[:DC]?", meter("voltage"), unit="V")
            for verb in ("MEASure", "FETCh")
        ),
        *(
            query(f"{verb}[:SCALar]:CURRent[:DC]?", lambda dev: dev.sunk_current(), unit="A")
            for verb in ("MEASure", "FETCh")
        ),
        *(
            query(f"{verb}[:SCALar]:POWer[:DC]?", lambda dev: dev.sunk_power(), unit="W")
            for verb in ("MEASure", "FETCh")
        ),
        query("STATus:CHANnel:CONDition?", lambda dev: dev.channel_condition()),
        query("STATus:QUEStionable:CONDition?", lambda dev: dev.channel_condition()),
    )

    @classmethod
    def port_specs(cls, ctx: ModelContext) -> list[AnyPortSpec]:
        rating = ctx.instrument.rating
        return [
            LoadSpec(
                name=ctx.key,
                node=ctx.node,
                max_current_a=rating.current_sink_max,
                max_voltage_v=rating.voltage_max,
                line_ohm=ctx.line_ohm,
                protection=Protection(ovp_v=OVP_FACTOR * rating.voltage_max),
                sensors=ctx.sensors(),
            )
        ]

    def bind(self) -> None:
        rating = self.ctx.instrument.rating
        self.load: LoadHandle = self.plant.load(self.key)
        self.rated_current = rating.current_sink_max
        self.rated_voltage = rating.voltage_max
        self.rated_power = rating.power_max

    def apply_defaults(self) -> None:
        super().apply_defaults()
        self.cv_limit = self.rated_current

    def push(self) -> None:
        """Mode, level and turn-on voltage onto the plant load (see the module docstring)."""
        mode, level, von = LoadMode.CC, self.cc_level, self.von
        if self.mode.startswith("CCD"):
            period = self.dyn_t1 + self.dyn_t2
            level = (self.dyn_l1 * self.dyn_t1 + self.dyn_l2 * self.dyn_t2) / period
        if self.short:
            level, von = _current_range(self), 0.0
        elif self.mode.startswith("CV"):
            if self.cv_limit >= UNLIMITED * self.rated_current:
                mode, level = LoadMode.CV, self.cv_level
            else:
                level, von = self.cv_limit, self.cv_level
        self.load.set_mode(mode)
        self.load.set_level(level)
        self.load.set_von(von)

    def reset(self) -> None:
        """``*RST``: input off, ``*CLS``, ``LOAD:PROT:CLE``, factory settings."""
        self.load.set_input(False)
        self.load.clear_trips()
        self.clear_status()
        super().reset()

    def sunk_current(self) -> float:
        """Measured current into the load, positive (the plant's is negative)."""
        return -self.reading("current")

    def sunk_power(self) -> float:
        reading = self.measure()
        return -reading.voltage * reading.current

    def channel_condition(self) -> int:
        bits = 0
        for kind in self.load.trips:
            bits |= _TRIP_BITS.get(kind, 0)
        if self.load.state().voltage < REVERSE_V:
            bits |= STAT_REV
        return bits

    def status(self) -> dict[str, Any]:
        return {**super().status(), "mode": self.mode, "short": self.short}
