"""Kikusui PWR-01 regulated DC supply, emulated: SCPI on a serial line, a plant supply.

The supply is a :class:`~instruments.emulation.plant.SupplySpec` port with CV/CC crossover;
the output switch and every level live in the plant, so ``OUTP?`` reads the plant (0 after
a trip or after the emulator made all safe). Served as ``scpi-serial`` (the PWR-01's
RS-232C): ``ASRLsocket://`` on a loopback port or a pty, as the bench chooses.

Confirmed in the *PWR-01 Series Communication Interface Manual* (IB034212, Oct 2019):
LF terminates messages; booleans answer ``1``/``0``; NR3 replies carry five decimals
(``+3.80000E+02``); NR1 zero is ``+0``; the QUEStionable and OPERation bits in
``instruments.wire.pwr01``; ``OUTPut {ON|OFF|1|0}``; IEEE 488.2 error classes in the event
status register.

*Assumed*: ``*IDN?`` is ``KIKUSUI,<model>,<serial>,<firmware>`` (Kikusui's usual shape);
``SYST:ERR?`` answers ``+0,"No error"`` (signed NR1, see above); ``VOLT`` and ``CURR``
program up to the rating; ``VOLT:PROT`` and ``CURR:PROT`` from 10 % to 110 % of the rating
(``*RST`` = 110 %); a ``VOLT`` above the OVP level is refused (-222) rather than tripping;
``OUTP:PROT:CLE`` clears latched trips and the output returns to its programmed state.
The communication monitor (WDOG) is not modelled: its command is not known to us.
Full-scale up-programming in 50 ms (voltage) and 10 ms (current).
"""

from __future__ import annotations

from typing import ClassVar

from instruments.emulation.models.base import ModelContext, Wire
from instruments.emulation.models.scpi_model import IDENTITY, ScpiModel, meter
from instruments.emulation.plant import Protection, SupplyHandle, SupplySpec, TripKind
from instruments.emulation.plant_specs import AnyPortSpec
from instruments.emulation.scpi import (
    KEYSIGHT_ERRORS,
    Boolean,
    Command,
    Nr3Format,
    Number,
    command,
    query,
    setting,
    status_commands,
)
from instruments.wire.pwr01 import Operation, Questionable, protection_range

VOLTAGE_FULL_SCALE_S = 0.05
CURRENT_FULL_SCALE_S = 0.01

OPER_CV = int(Operation.CV)
OPER_CC = int(Operation.CC)
QUES_OV = int(Questionable.OV)
QUES_OC = int(Questionable.OC)
QUES_OT = int(Questionable.OT)
_TRIP_BITS = {TripKind.OVP: QUES_OV, TripKind.OCP: QUES_OC, TripKind.OTP: QUES_OT}


def _volt_max(dev: PWR01Model) -> float:
    return min(dev.rated_voltage, dev.ovp)


def _ovp_min(dev: PWR01Model) -> float:
    return max(dev.ovp_range[0], dev.voltage)


def _set_ovp(dev: PWR01Model, level: float) -> None:
    dev.ovp = level
    dev.push_protection()


def _reset_ovp(dev: PWR01Model) -> None:
    dev.ovp = dev.ovp_range[1]


def _set_ocp(dev: PWR01Model, level: float) -> None:
    dev.ocp = level
    dev.push_protection()


def _reset_ocp(dev: PWR01Model) -> None:
    dev.ocp = dev.ocp_range[1]


def _set_output(dev: PWR01Model, on: bool) -> None:
    dev.output = on
    dev.supply.set_output(on)


def _clear_protection(dev: PWR01Model) -> None:
    """``OUTP:PROT:CLE``: clear latched trips; the output returns to its programmed state."""
    dev.supply.clear_trips()
    if dev.output:
        dev.supply.set_output(True)


class PWR01Model(ScpiModel):
    """Kikusui PWR-01: source-only supply with OVP and OCP levels, on RS-232C."""

    driver: ClassVar[str] = "pwr01"
    wire: ClassVar[Wire] = Wire.SCPI_SERIAL
    vendor: ClassVar[str] = "KIKUSUI"
    firmware: ClassVar[str] = "1.00"
    number_format = Nr3Format(digits=5)
    error_format = KEYSIGHT_ERRORS

    voltage: float
    current: float
    ovp: float
    ocp: float
    output: bool

    commands = (
        IDENTITY,
        setting(
            "[SOURce:]VOLTage[:LEVel][:IMMediate][:AMPLitude]",
            "voltage",
            Number("V", min=0.0, max=_volt_max, default=0.0),
            after=lambda dev: dev.supply.set_voltage(dev.voltage),
        ),
        setting(
            "[SOURce:]CURRent[:LEVel][:IMMediate][:AMPLitude]",
            "current",
            Number("A", min=0.0, max=lambda dev: dev.rated_current, default=0.0),
            after=lambda dev: dev.supply.set_current(dev.current),
        ),
        Command(
            "[SOURce:]VOLTage:PROTection[:LEVel]",
            set=_set_ovp,
            query=lambda dev: dev.ovp,
            params=(Number("V", min=_ovp_min, max=lambda dev: dev.ovp_range[1]),),
            unit="V",
            on_reset=_reset_ovp,
        ),
        Command(
            "[SOURce:]CURRent:PROTection[:LEVel]",
            set=_set_ocp,
            query=lambda dev: dev.ocp,
            params=(
                Number("A", min=lambda dev: dev.ocp_range[0], max=lambda dev: dev.ocp_range[1]),
            ),
            unit="A",
            on_reset=_reset_ocp,
        ),
        Command(
            "OUTPut[:STATe]",
            set=_set_output,
            query=lambda dev: dev.supply.output_on,
            params=(Boolean(),),
        ),
        command("OUTPut:PROTection:CLEar", _clear_protection),
        query("MEASure[:SCALar]:VOLTage[:DC]?", meter("voltage"), unit="V"),
        query("MEASure[:SCALar]:CURRent[:DC]?", meter("current"), unit="A"),
        *status_commands(),
    )

    @classmethod
    def port_specs(cls, ctx: ModelContext) -> list[AnyPortSpec]:
        rating = ctx.instrument.rating
        volts = rating.voltage_max
        amps = rating.current_source_max
        return [
            SupplySpec(
                name=ctx.key,
                node=ctx.node,
                max_voltage_v=volts,
                max_current_a=amps,
                slew_v_per_s=volts / VOLTAGE_FULL_SCALE_S,
                slew_a_per_s=amps / CURRENT_FULL_SCALE_S,
                line_ohm=ctx.line_ohm,
                protection=Protection(ovp_v=protection_range(volts)[1]),
                sensors=ctx.sensors(),
            )
        ]

    def bind(self) -> None:
        rating = self.ctx.instrument.rating
        self.supply: SupplyHandle = self.plant.supply(self.key)
        self.rated_voltage = rating.voltage_max
        self.rated_current = rating.current_source_max
        self.ovp_range = protection_range(rating.voltage_max)
        self.ocp_range = protection_range(rating.current_source_max)
        self.output = False

    def push(self) -> None:
        self.supply.set_output(self.output)
        self.supply.set_voltage(self.voltage)
        self.supply.set_current(self.current)
        self.push_protection()

    def reset(self) -> None:
        self.output = False
        super().reset()

    def push_protection(self) -> None:
        """The OVP and OCP levels as the port's latched trips."""
        self.supply.set_protection(TripKind.OVP, self.ovp)
        self.supply.set_protection(TripKind.OCP, self.ocp)

    def operation_condition(self) -> int:
        mode = self.supply.state().mode
        if mode == "CC":
            return OPER_CC
        if mode == "CV":
            return OPER_CV
        return 0

    def questionable_condition(self) -> int:
        bits = 0
        for kind in self.supply.trips:
            bits |= _TRIP_BITS.get(kind, 0)
        return bits

    def after_make_safe(self) -> None:
        self.output = False
        super().after_make_safe()
