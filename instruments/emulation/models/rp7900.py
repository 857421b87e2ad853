"""Keysight RP7900 regenerative power system, emulated: SCPI on a LAN socket, a plant
bidirectional port.

Voltage priority (``FUNC VOLT``) holds ``VOLT`` with the current between ``CURR:LIM:NEG``
(a negative number) and ``CURR:LIM``; current priority (``FUNC CURR``) pushes the signed
``CURR`` and stops sourcing at ``VOLT:LIM`` and sinking at ``VOLT:LIM:NEG``. The output
switch lives in the plant, so ``OUTP?`` reads the plant.

Source: *Keysight RP7900 Series Operating and Service Guide*, chapter 5 (see
:mod:`instruments.wire.rp7900` for the status bits and the watchdog): the I/O watchdog
(``OUTP:PROT:WDOG``, ``:DEL`` 1-3600 s, ``*RST`` OFF / 60 s) latches the output off after
the delay without SCPI I/O and sets Questionable1 PROT; ``OUTP:PROT:CLE`` clears latched
protections; Keysight's error format (``+0,"No error"``).

*Assumed* (as in the driver's docstring): the ``FUNC``, ``CURR:LIM[:NEG]``,
``VOLT:LIM[:NEG]``, ``POW:LIM[:NEG]`` and ``VOLT:PROT`` forms and that every limit is
writable in either priority; ``FUNC?`` answers ``VOLT``/``CURR``; ``*IDN?`` is
``Keysight Technologies,<model>,<serial>,<firmware>`` as on the N6900/N7900; OVP is always
on; a latched protection refuses ``OUTP ON`` with -221 until ``OUTP:PROT:CLE``, which leaves
the output off. The plant has no power limit or OCP-on-limit, so ``POW:LIM[:NEG]`` and
``CURR:PROT:STAT`` are stored only and the CP+/CP-/OC bits never rise.
"""

from __future__ import annotations

from typing import Any, ClassVar

from instruments.emulation.models.base import ModelContext, Wire
from instruments.emulation.models.io_watchdog import WatchedScpiModel
from instruments.emulation.models.scpi_model import IDENTITY, meter
from instruments.emulation.plant import (
    BidirectionalHandle,
    BidirectionalMode,
    BidirectionalSpec,
    TripKind,
)
from instruments.emulation.plant_specs import AnyPortSpec
from instruments.emulation.scpi import (
    KEYSIGHT_ERRORS,
    Boolean,
    BoundQuery,
    Choice,
    Command,
    Number,
    command,
    query,
    setting,
    status_commands,
)
from instruments.wire.rp7900 import (
    SCPI_PROTECTION_MAX,
    WATCHDOG_DELAY_MAX_S,
    WATCHDOG_DELAY_MIN_S,
    WATCHDOG_DELAY_RESET_S,
    OperationStatus,
    QuestionableStatus,
)

CV = "VOLT"
CC = "CURR"
FULL_SCALE_S = 0.1
_TRIP_BITS = {
    TripKind.OVP: int(QuestionableStatus.OV),
    TripKind.OCP: int(QuestionableStatus.OC),
    TripKind.OTP: int(QuestionableStatus.OT),
}


def _volts(dev: RP7900Model) -> float:
    return dev.rated_voltage


def _amps(dev: RP7900Model) -> float:
    return dev.rated_current


def _neg_amps(dev: RP7900Model) -> float:
    return -dev.rated_current


def _max_volts(dev: RP7900Model) -> float:
    return SCPI_PROTECTION_MAX * dev.rated_voltage


def _max_watts(dev: RP7900Model) -> float:
    return SCPI_PROTECTION_MAX * dev.rated_power


def _min_watts(dev: RP7900Model) -> float:
    return -_max_watts(dev)


def _push(dev: RP7900Model) -> None:
    dev.push()


def _set_output(dev: RP7900Model, on: bool) -> None:
    if on and dev.latched():
        dev.refuse("a protection is latched; send OUTP:PROT:CLE first")
    dev.port.set_output(on)


def _clear_protection(dev: RP7900Model) -> None:
    dev.port.clear_trips()
    dev.watchdog_tripped = False


def _set_watchdog(dev: RP7900Model, on: bool) -> None:
    """``OUTP:PROT:WDOG``: switching it on starts the timer from now."""
    dev.watchdog_on = on
    dev.last_io = dev.plant.time


class RP7900Model(WatchedScpiModel):
    """Keysight RP7900: bidirectional supply with priority modes and an I/O watchdog."""

    driver: ClassVar[str] = "rp7900"
    wire: ClassVar[Wire] = Wire.SCPI_LAN
    vendor: ClassVar[str] = "Keysight Technologies"
    firmware: ClassVar[str] = "B.03.02.1232"
    error_format = KEYSIGHT_ERRORS

    priority: str
    v_set: float
    i_set: float
    v_lim: float
    v_lim_neg: float
    i_lim: float
    i_lim_neg: float
    pow_lim: float
    pow_lim_neg: float
    volt_prot: float
    curr_prot_on: bool
    watchdog_on: bool
    watchdog_delay: float

    commands = (
        IDENTITY,
        setting("[SOURce:]FUNCtion", "priority", Choice("VOLTage", "CURRent"), after=_push),
        setting(
            "[SOURce:]VOLTage[:LEVel][:IMMediate][:AMPLitude]",
            "v_set",
            Number("V", min=0.0, max=_volts, default=0.0),
            after=_push,
        ),
        Command(
            "[SOURce:]CURRent[:LEVel][:IMMediate][:AMPLitude]",
            set=lambda dev, amps: dev.set_current(amps),
            query=lambda dev, which=None: (
                dev.i_set
                if which is None
                else Number("A", min=_neg_amps, max=_amps).bound(which, dev)
            ),
            params=(Number("A", min=_neg_amps, max=_amps),),
            query_params=(BoundQuery(),),
            unit="A",
            on_reset=lambda dev: setattr(dev, "i_set", 0.0),
        ),
        setting(
            "[SOURce:]VOLTage:LIMit[:POSitive]",
            "v_lim",
            Number("V", min=0.0, max=_volts),
            after=_push,
        ),
        setting(
            "[SOURce:]VOLTage:LIMit:NEGative",
            "v_lim_neg",
            Number("V", min=0.0, max=_volts, default=0.0),
            after=_push,
        ),
        setting(
            "[SOURce:]CURRent:LIMit[:POSitive]",
            "i_lim",
            Number("A", min=0.0, max=_amps),
            after=_push,
        ),
        setting(
            "[SOURce:]CURRent:LIMit:NEGative",
            "i_lim_neg",
            Number("A", min=_neg_amps, max=0.0),
            after=_push,
        ),
        setting("[SOURce:]POWer:LIMit[:POSitive]", "pow_lim", Number("W", 0.0, _max_watts)),
        setting("[SOURce:]POWer:LIMit:NEGative", "pow_lim_neg", Number("W", _min_watts, 0.0)),
        setting(
            "[SOURce:]VOLTage:PROTection[:LEVel]",
            "volt_prot",
            Number("V", min=0.0, max=_max_volts),
            after=_push,
        ),
        setting("[SOURce:]CURRent:PROTection:STATe", "curr_prot_on", Boolean(default=False)),
        Command(
            "OUTPut[:STATe]",
            set=_set_output,
            query=lambda dev: dev.port.output_on,
            params=(Boolean(),),
        ),
        command("OUTPut:PROTection:CLEar", _clear_protection),
        Command(
            "OUTPut:PROTection:WDOG[:STATe]",
            set=_set_watchdog,
            query=lambda dev: dev.watchdog_on,
            params=(Boolean(),),
            on_reset=lambda dev: setattr(dev, "watchdog_on", False),
        ),
        setting(
            "OUTPut:PROTection:WDOG:DELay",
            "watchdog_delay",
            Number(
                "S",
                min=WATCHDOG_DELAY_MIN_S,
                max=WATCHDOG_DELAY_MAX_S,
                default=WATCHDOG_DELAY_RESET_S,
            ),
        ),
        query("MEASure[:SCALar]:VOLTage[:DC]?", meter("voltage"), unit="V"),
        query("MEASure[:SCALar]:CURRent[:DC]?", meter("current"), unit="A"),
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
        self.rated_current = min(rating.current_source_max, rating.current_sink_max)
        self.rated_power = rating.power_max
        self.watchdog_tripped = False
        self.last_io = self.plant.time

    def apply_defaults(self) -> None:
        """``*RST`` values that depend on the rating: limits at the rating, OVP at 102 %."""
        super().apply_defaults()
        self.priority = CV
        self.v_lim = self.rated_voltage
        self.i_lim = self.rated_current
        self.i_lim_neg = -self.rated_current
        self.volt_prot = _max_volts(self)
        self.pow_lim = _max_watts(self)
        self.pow_lim_neg = _min_watts(self)

    def set_current(self, amps: float) -> None:
        """``CURR``: the signed set-point of current priority."""
        self.i_set = amps
        self.push()

    def push(self) -> None:
        """The priority, set-point, limits and OVP onto the plant port."""
        port = self.port
        if self.priority == CV:
            port.set_mode(BidirectionalMode.CV)
            port.set_voltage(self.v_set)
            port.set_current_limits(self.i_lim, -self.i_lim_neg)
        else:
            port.set_mode(BidirectionalMode.CC)
            port.set_current(self.i_set)
            port.set_voltage_limits(min(self.v_lim_neg, self.v_lim), self.v_lim)
        port.set_protection(TripKind.OVP, self.volt_prot)

    def reset(self) -> None:
        self.port.set_output(False)
        super().reset()

    def latched(self) -> bool:
        """A protection (plant trip or watchdog) holds the output off."""
        return bool(self.port.trips) or self.watchdog_tripped

    # -- status ----------------------------------------------------------------------
    def operation_condition(self) -> int:
        """CV 1, CC 2, OFF 4 (Operation Status Group)."""
        state = self.port.state()
        bits = 0 if state.output_on else int(OperationStatus.OFF)
        if state.mode == "CV":
            bits |= int(OperationStatus.CV)
        elif state.mode == "CC":
            bits |= int(OperationStatus.CC)
        return bits

    def questionable_condition(self) -> int:
        """Latched trips: OV 1, OC 2, OT 16; the watchdog PROT 2048."""
        bits = int(QuestionableStatus.PROT) if self.watchdog_tripped else 0
        for kind in self.port.trips:
            bits |= _TRIP_BITS.get(kind, 0)
        return bits

    def status(self) -> dict[str, Any]:
        return {
            **super().status(),
            "priority": self.priority,
            "watchdog": {
                "on": self.watchdog_on,
                "delay_s": self.watchdog_delay,
                "tripped": self.watchdog_tripped,
            },
        }
