"""Keysight (Agilent) N5700 system DC supply, emulated: SCPI on a LAN socket, a plant supply.

The supply is a :class:`~instruments.emulation.plant.SupplySpec` port on its unit's node
(the bus for a lab supply, the battery node for Sony's rig) with CV/CC crossover; the plant
decides what it measures. Settings live here; the output switch and every level live in the
plant, so ``OUTP?`` reads the plant (0 after a trip or after the emulator made all safe).

Confirmed in the *Series N5700 User's Guide*, Language Reference (easymanua.ls, N5741A
manual p. 72; manualsbrain p. 70):

- ``[SOUR:]VOLT:PROT:LEV``: minimum is the larger of the table minimum and 1.05 x the
  voltage setting, maximum the table value; ``*RST`` = maximum; above it the output is
  disabled and OV set in the questionable condition; ``OUTP:PROT:CLE`` clears it once the
  cause is gone. Table (rating: min/max) 6 V 0.5/7.5 ... 60 V 5/66 ... 600 V 5/660.
- ``[SOUR:]VOLT:LIM:LOW``: at most the smaller of 0.95 x rating and 0.95 x the voltage
  setting, at least 0; with ``VOLT`` at its ``*RST`` minimum (0) the limit is 0.
- Status bits: questionable OV 1, OC 2, PF 4, OT 16, INH 512, UNR 1024; operation CV 256,
  CC 1024 (the project reference and the N5700 status model).

Confirmed in the *Series N8700 User's Guide* (Keysight's sister family, same language,
pp. 73-76) and *assumed* identical on the N5700: ``VOLT`` and ``CURR`` program up to 105 %
of the rating, ``*RST`` = minimum; the ``VOLT`` range is coupled with the protection and
the low limit (its maximum is the smaller of the table and OVP / 1.05, hence a ``VOLT``
above OVP / 1.05 is refused like any out-of-range value: -222, and symmetrically its
minimum is the low limit / 0.95); ``CURR:PROT:STAT ON`` disables the output and sets OC
when the output goes into CC (``*RST`` OFF), cleared by ``OUTP:PROT:CLE``.

Keysight convention (N6900, 66xx, N3300 guides), *assumed* for the N5700: after
``OUTP:PROT:CLE`` the output returns to its programmed state. Identity: third-party code
that talks to real N5700 units matches ``Agilent Technologies,N5771A,US13L1509M,A.05.05``,
so the emulator answers ``Agilent Technologies,<model>,<serial>,A.05.05``.

Watchdog: the N5700 has no communication watchdog (no ``OUTP:PROT:WDOG`` in its command
set and no watchdog bit in its questionable register, unlike the N6700/N6900, which have
both), so none is modelled. *Assumed*: full-scale up-programming in 100 ms for voltage and
10 ms for current (the port's slews); PF, INH and OT never assert (no mains, inhibit input
or heat model for this port).
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
    BoundQuery,
    Command,
    Nr3Format,
    Number,
    command,
    query,
    setting,
    status_commands,
)
from instruments.wire.n5700 import (
    OVP_FACTOR,
    UV_LIMIT_FACTOR,
    Operation,
    Questionable,
    ovp_range,
)

PROGRAMMING_HEADROOM = 1.05
VOLTAGE_FULL_SCALE_S = 0.1
CURRENT_FULL_SCALE_S = 0.01
#: Coupled limits are compared at 1 uV / 1 uA: 1.05 x 380 must admit an OVP of 399.
BOUND_DECIMALS = 6
#: CC detection for ``CURR:PROT:STAT``: the output trips once it sources this close to CURR.
FOLDBACK_MARGIN = 1e-6
#: The output is unregulated when its terminal sits this far above the voltage setting.
UNREGULATED_V = 1e-3

OPER_CV = int(Operation.CV)
OPER_CC = int(Operation.CC)
QUES_OV = int(Questionable.OV)
QUES_OC = int(Questionable.OC)
QUES_PF = int(Questionable.PF)
QUES_OT = int(Questionable.OT)
QUES_INH = int(Questionable.INH)
QUES_UNR = int(Questionable.UNR)
_TRIP_BITS = {TripKind.OVP: QUES_OV, TripKind.OCP: QUES_OC, TripKind.OTP: QUES_OT}


def _bound(value: float) -> float:
    return round(value, BOUND_DECIMALS)


def _volt_min(dev: N5700Model) -> float:
    return _bound(dev.uv_limit / UV_LIMIT_FACTOR)


def _volt_max(dev: N5700Model) -> float:
    return _bound(min(dev.voltage_top, dev.ovp / OVP_FACTOR))


def _curr_max(dev: N5700Model) -> float:
    return dev.current_top


def _ovp_min(dev: N5700Model) -> float:
    return _bound(max(dev.ovp_table[0], OVP_FACTOR * dev.voltage))


def _ovp_max(dev: N5700Model) -> float:
    return dev.ovp_table[1]


def _uvl_max(dev: N5700Model) -> float:
    return _bound(UV_LIMIT_FACTOR * min(dev.rated_voltage, dev.voltage))


def _set_ovp(dev: N5700Model, level: float) -> None:
    dev.ovp = level
    dev.push_protection()


def _reset_ovp(dev: N5700Model) -> None:
    dev.ovp = dev.ovp_table[1]


def _get_ovp(dev: N5700Model, which: str | None = None) -> float:
    if which is None:
        return dev.ovp
    return _OVP_PARAM.bound(which, dev)


def _set_output(dev: N5700Model, on: bool) -> None:
    dev.output = on
    dev.supply.set_output(on)
    dev.push_protection()


def _clear_protection(dev: N5700Model) -> None:
    """``OUTP:PROT:CLE``: clear latched OV/OC; the output returns to its programmed state."""
    dev.supply.clear_trips()
    if dev.output:
        dev.supply.set_output(True)


_OVP_PARAM = Number("V", min=_ovp_min, max=_ovp_max)


class N5700Model(ScpiModel):
    """Keysight N5700: source-only supply with the OVP/UV coupling and CC foldback."""

    driver: ClassVar[str] = "n5700"
    wire: ClassVar[Wire] = Wire.SCPI_LAN
    vendor: ClassVar[str] = "Agilent Technologies"
    firmware: ClassVar[str] = "A.05.05"
    number_format = Nr3Format()
    error_format = KEYSIGHT_ERRORS

    voltage: float
    current: float
    uv_limit: float
    foldback: bool
    ovp: float
    output: bool

    commands = (
        IDENTITY,
        setting(
            "[SOURce:]VOLTage[:LEVel][:IMMediate][:AMPLitude]",
            "voltage",
            Number("V", min=_volt_min, max=_volt_max, default=0.0),
            after=lambda dev: dev.supply.set_voltage(dev.voltage),
        ),
        setting(
            "[SOURce:]CURRent[:LEVel][:IMMediate][:AMPLitude]",
            "current",
            Number("A", min=0.0, max=_curr_max, default=0.0),
            after=lambda dev: dev.push_current(),
        ),
        Command(
            "[SOURce:]VOLTage:PROTection:LEVel",
            set=_set_ovp,
            query=_get_ovp,
            params=(_OVP_PARAM,),
            query_params=(BoundQuery(),),
            unit="V",
            on_reset=_reset_ovp,
        ),
        setting(
            "[SOURce:]VOLTage:LIMit:LOW",
            "uv_limit",
            Number("V", min=0.0, max=_uvl_max, default=0.0),
        ),
        setting(
            "[SOURce:]CURRent:PROTection:STATe",
            "foldback",
            Boolean(default=False),
            after=lambda dev: dev.push_protection(),
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
        volts = PROGRAMMING_HEADROOM * rating.voltage_max
        amps = PROGRAMMING_HEADROOM * rating.current_source_max
        return [
            SupplySpec(
                name=ctx.key,
                node=ctx.node,
                max_voltage_v=volts,
                max_current_a=amps,
                slew_v_per_s=volts / VOLTAGE_FULL_SCALE_S,
                slew_a_per_s=amps / CURRENT_FULL_SCALE_S,
                line_ohm=ctx.line_ohm,
                protection=Protection(ovp_v=ovp_range(rating.voltage_max)[1]),
                sensors=ctx.sensors(),
            )
        ]

    def bind(self) -> None:
        rating = self.ctx.instrument.rating
        self.supply: SupplyHandle = self.plant.supply(self.key)
        self.rated_voltage = rating.voltage_max
        self.voltage_top = PROGRAMMING_HEADROOM * rating.voltage_max
        self.current_top = PROGRAMMING_HEADROOM * rating.current_source_max
        self.ovp_table = ovp_range(rating.voltage_max)
        self.output = False

    def push(self) -> None:
        self.supply.set_output(self.output)
        self.supply.set_voltage(self.voltage)
        self.push_current()

    def reset(self) -> None:
        self.output = False
        super().reset()

    def push_current(self) -> None:
        self.supply.set_current(self.current)
        self.push_protection()

    def push_protection(self) -> None:
        """OVP level, and CC foldback as an over-current trip just below the CURR setting."""
        self.supply.set_protection(TripKind.OVP, self.ovp)
        foldback = None
        if self.foldback and self.output:
            foldback = max(self.current * (1.0 - FOLDBACK_MARGIN), 0.0)
        self.supply.set_protection(TripKind.OCP, foldback)

    def unregulated(self) -> bool:
        """On, sourcing nothing, and held above its setting by something else on the node."""
        state = self.supply.state()
        return (
            state.output_on
            and state.mode == "CV"
            and state.voltage > self.supply.voltage_v + UNREGULATED_V
        )

    def operation_condition(self) -> int:
        mode = self.supply.state().mode
        if mode == "CC":
            return OPER_CC
        if mode == "CV" and not self.unregulated():
            return OPER_CV
        return 0

    def questionable_condition(self) -> int:
        bits = 0
        for kind in self.supply.trips:
            bits |= _TRIP_BITS.get(kind, 0)
        if self.unregulated():
            bits |= QUES_UNR
        return bits

    def after_make_safe(self) -> None:
        self.output = False
        self.push_protection()
        super().after_make_safe()
