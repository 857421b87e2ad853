"""Emulated TDK-Lambda EZA-2500 DC/DC converter: APIS's binary frames on a plant converter.

The protocol (frames, NAK codes, register echo) is :mod:`instruments.emulation.eza2500_protocol`;
this module is the :class:`~instruments.emulation.eza2500_protocol.ConverterBackend` that maps
it onto the plant's converter port, and the :class:`Eza2500Model` that owns both.

Confirmed from the public APIS sources (search index, SonyCSL/apis-dcdc_batt_comm and
SonyCSL/apis-emulator):

- modes WAIT 0x0000, DISCHARGE 0x0002, VOLTAGE_REFERENCE 0x0014 ("Grid Autonomy"), CHARGE
  0x0041 (``essx_util.operationModeStr``); ``cst`` bits 0-1 running state off / charge /
  discharge, bits 2-3 no / light / heavy alarm (``essx_util``, ``essx_type_oes.remote_get``);
- meter signs (apis-emulator ``core.py``): ``ig`` positive while charging (drawn from the bus),
  ``wg = vg x ig``, ``wb`` and ``ib`` positive while the battery charges, ``vb`` the battery
  voltage;
- 0xFFFD ("valid but not accepted now") is the code APIS retries (``essx_type_oes.run``), so a
  mode the converter cannot enter right now is NAKed with it.

Assumed (no public EZA-2500 manual was found):

- ``drg`` is the fractional bus-voltage drop at full-scale grid current (7.8125 A, the ``ig``
  rating): ``droop_ohm = drg x dvg / 7.8125``. APIS's hand-over droop 0.039 at 350 V is then
  1.75 ohm, 3.5 V at 2 A, inside APIS's 4 V voltage allowance;
- ``ugv``/``ogv`` bound the bus side as limits, not trips: CHARGE draws only while the bus is
  above ``ugv``, DISCHARGE pushes the bus no higher than ``ogv`` (a voltage reference may start
  on a dead bus, so ``ugv`` cannot be an under-voltage trip); ``ubv``/``obv`` are battery-side
  under/over-voltage trips and ``cib`` a battery-side over-current trip;
- a heavy alarm (injected ``alarm`` fault or a latched protection trip) stops the converter
  (WAIT) and every mode but WAIT is NAKed 0xFFFD until alarms are cleared (0x12 write); a light
  alarm is reported only. Alarm word bits: an injected alarm sets ``alm1`` bit 0 unless the
  fault names its words; trips set ``alm2`` bits OVP 0x1, OCP 0x2, UVLO 0x4, OTP 0x8;
- in VOLTAGE_REFERENCE the running state follows the current's direction (charge while the
  reference absorbs current); the converter trips OTP at 85 degC;
- the EZA-2500 has no communication watchdog in APIS's command set, so none is modelled.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from instruments.emulation.eza2500_protocol import (
    DEFAULT_REGISTERS,
    ConverterStatus,
    Eza2500Front,
    Limits,
    Meters,
    Refused,
)
from instruments.emulation.models.base import InstrumentModel, ModelContext, Wire
from instruments.emulation.plant import ConverterHandle, Measurement, Plant
from instruments.emulation.plant_specs import (
    AnyPortSpec,
    ConverterLosses,
    ConverterMode,
    ConverterSpec,
    Protection,
    TripKind,
)
from instruments.emulation.transport import Session, SessionFactory
from instruments.errors import ConfigError
from instruments.wire.eza2500 import APIS_AD1, APIS_AD2, ErrorCode, Mode

log = logging.getLogger(__name__)

FULL_SCALE_CURRENT_A = 7.8125
"""The ``ig``/``dig`` rating; ``drg`` is the relative voltage drop at this current."""
MAX_GRID_CURRENT_A = 8.5162
"""The largest ``dig`` APIS accepts (codec range); the plant port allows every such value."""
MAX_GRID_VOLTAGE_V = 450.0
"""Bus-side set-point ceiling of the plant port (above ``ogv``'s 425 V maximum)."""
OTP_C = 85.0

NO_ALARM, LIGHT_ALARM, HEAVY_ALARM = 0, 1, 2
ALARM_LEVELS = {"light": LIGHT_ALARM, "heavy": HEAVY_ALARM}
INJECTED_ALARM_WORDS = (0x0001, 0x0000, 0x0000)
TRIP_ALARM_BITS = {
    TripKind.OVP: 0x0001,
    TripKind.OCP: 0x0002,
    TripKind.UVLO: 0x0004,
    TripKind.OTP: 0x0008,
}
"""``alm2`` bits reported for latched protection trips (assumed layout)."""


def droop_ohm(dvg: float, drg: float) -> float:
    """The plant droop (V/A) for APIS's dimensionless ``drg`` at reference ``dvg``."""
    return drg * dvg / FULL_SCALE_CURRENT_A


def converter_spec(ctx: ModelContext) -> ConverterSpec:
    """The converter port of ``ctx``: bus side on ``ctx.node``, battery side on its node.

    Set-points and limits start at the front's power-on registers (APIS's default converter
    configuration), so the plant and the registers agree before the first command.
    """
    port = ctx.port
    default = ConverterLosses()
    losses = ConverterLosses(
        standby_w=default.standby_w if port.loss_standby is None else port.loss_standby,
        charge_w=default.charge_w if port.loss_charge is None else port.loss_charge,
        discharge_w=default.discharge_w if port.loss_discharge is None else port.loss_discharge,
    )
    reg = DEFAULT_REGISTERS
    return ConverterSpec(
        name=ctx.key,
        node=ctx.node,
        battery_node=ctx.battery_node,
        line_ohm=ctx.line_ohm,
        sensors=ctx.sensors(),
        protection=Protection(otp_c=OTP_C),
        battery_protection=Protection(ovp_v=reg["obv"], uvlo_v=reg["ubv"], ocp_a=reg["cib"]),
        losses=losses,
        max_grid_current_a=MAX_GRID_CURRENT_A,
        max_grid_voltage_v=MAX_GRID_VOLTAGE_V,
        mode=ConverterMode.WAIT,
        voltage_v=reg["dvg"],
        droop_ohm=droop_ohm(reg["dvg"], reg["drg"]),
        grid_current_a=reg["dig"],
        grid_low_v=reg["ugv"],
        grid_high_v=reg["ogv"],
    )


class PlantConverter:
    """The :class:`ConverterBackend` of one EZA-2500: its plant port and its alarm latch."""

    def __init__(
        self, handle: ConverterHandle, measure: Callable[[], Measurement], name: str
    ) -> None:
        self.handle = handle
        self.name = name
        self._measure = measure
        self.alarm_level = NO_ALARM
        self.alarm_words = (0, 0, 0)

    @property
    def heavy_alarm(self) -> bool:
        """True while an injected heavy alarm or a protection trip is latched."""
        return self.alarm_level >= HEAVY_ALARM or bool(self.handle.trips)

    # ---- ConverterBackend ----------------------------------------------------------
    def apply_mode(self, mode: Mode) -> None:
        if mode is not Mode.WAIT and self.heavy_alarm:
            raise Refused(
                ErrorCode.NOT_ACCEPTED,
                f"{self.name}: heavy alarm latched; clear alarms (0x12) before {mode.name}",
            )
        self.handle.set_mode(int(mode))

    def apply_voltage_reference(self, dvg: float, drg: float) -> None:
        self.handle.set_voltage_reference(dvg, droop_ohm(dvg, drg))

    def apply_limits(self, limits: Limits) -> None:
        if limits.ubv >= limits.obv:
            raise Refused(
                ErrorCode.BAD_PARAMETER,
                f"{self.name}: ubv {limits.ubv:g} V must be below obv {limits.obv:g} V",
            )
        if limits.ugv >= limits.ogv:
            raise Refused(
                ErrorCode.BAD_PARAMETER,
                f"{self.name}: ugv {limits.ugv:g} V must be below ogv {limits.ogv:g} V",
            )
        handle = self.handle
        handle.set_grid_current(min(limits.dig, handle.spec.max_grid_current_a))
        handle.set_grid_voltage_limits(limits.ugv, limits.ogv)
        handle.set_protection(TripKind.UVLO, limits.ubv, battery_side=True)
        handle.set_protection(TripKind.OVP, limits.obv, battery_side=True)
        handle.set_protection(TripKind.OCP, limits.cib, battery_side=True)

    def meters(self) -> Meters:
        m = self._measure()
        vg = m.voltage
        ig = -m.current
        vb = m.battery_voltage if m.battery_voltage is not None else 0.0
        ib = m.battery_current if m.battery_current is not None else 0.0
        return Meters(vg=vg, ig=ig, vb=vb, ib=ib, wg=vg * ig, wb=vb * ib, tmp=m.temperature)

    def status(self) -> ConverterStatus:
        mode = self.handle.effective_mode
        if mode is ConverterMode.WAIT:
            running = 0
        elif mode is ConverterMode.CHARGE:
            running = 1
        elif mode is ConverterMode.DISCHARGE:
            running = 2
        else:
            running = 1 if self.handle.state().current < 0 else 2
        alm1, alm2, alm3 = self.alarm_words
        for kind in self.handle.trips:
            alm2 |= TRIP_ALARM_BITS[kind]
        level = HEAVY_ALARM if self.heavy_alarm else self.alarm_level
        return ConverterStatus(running=running, alarm_level=level, alarms=(alm1, alm2, alm3))

    def clear_alarms(self) -> None:
        self.alarm_level = NO_ALARM
        self.alarm_words = (0, 0, 0)
        self.handle.clear_trips()

    # ---- fault injection -----------------------------------------------------------
    def raise_alarm(self, level: int, words: tuple[int, int, int]) -> None:
        """Latch an alarm; a heavy one stops the converter at once (WAIT)."""
        self.alarm_level = max(self.alarm_level, level)
        old = self.alarm_words
        self.alarm_words = (old[0] | words[0], old[1] | words[1], old[2] | words[2])
        if level >= HEAVY_ALARM:
            log.info("%s: heavy alarm %s, converter to WAIT", self.name, words)
            self.handle.set_mode(ConverterMode.WAIT)


class _SyncedSession:
    """A front session that first brings the mode register in line with the plant."""

    def __init__(self, inner: Session, sync: Callable[[], None]) -> None:
        self._inner = inner
        self._sync = sync

    def feed(self, data: bytes) -> list[bytes]:
        self._sync()
        return self._inner.feed(data)


class Eza2500Model(InstrumentModel):
    """One emulated EZA-2500 (driver ``eza2500``): binary frames on a plant converter port.

    Settings ``ad1``/``ad2`` give the frame addresses (APIS: 0 and 16). The ``alarm`` fault
    takes ``level`` (``"heavy"``, the default, or ``"light"``) and optional ``alm1``..``alm3``.
    """

    driver: ClassVar[str] = "eza2500"
    wire: ClassVar[Wire] = Wire.BINARY_SERIAL
    extra_faults: ClassVar[tuple[str, ...]] = ("alarm",)
    #: RS-485 at 19200 8N1, APIS's line (dcdc_batt_comm's configuration), unless the
    #: instrument's ``baudrate`` setting says otherwise.
    default_baud: ClassVar[int] = 19200

    def __init__(self, ctx: ModelContext, plant: Plant) -> None:
        super().__init__(ctx, plant)
        self.converter = PlantConverter(plant.converter(ctx.key), self.measure, ctx.key)
        self.front = Eza2500Front(
            self.converter,
            instrument=ctx.key,
            ad1=int(ctx.setting("ad1", APIS_AD1)),
            ad2=int(ctx.setting("ad2", APIS_AD2)),
        )

    @classmethod
    def port_specs(cls, ctx: ModelContext) -> list[AnyPortSpec]:
        return [converter_spec(ctx)]

    def session_factory(self) -> SessionFactory:
        return self._new_session

    def _new_session(self) -> _SyncedSession:
        return _SyncedSession(self.front.session(), self.sync_mode)

    def sync_mode(self) -> None:
        """Make the mode register (0x00 read) show the mode the converter really runs.

        Runs before every request, so it writes the register only when the mode changed.
        """
        code = self.converter.handle.effective_mode.code
        if self.front.registers["mode"] != code:
            self.front.set_register("mode", code)

    def fault(self, kind: str, params: Mapping[str, Any]) -> None:
        if kind == "alarm":
            level_name = str(params.get("level", "heavy"))
            level = ALARM_LEVELS.get(level_name)
            if level is None:
                raise ConfigError(
                    f"{self.key}: alarm level {level_name!r}; must be 'heavy' or 'light'"
                )
            given = any(f"alm{k}" in params for k in (1, 2, 3))
            words = tuple(
                _alarm_word(self.key, params, f"alm{k}") if given else INJECTED_ALARM_WORDS[k - 1]
                for k in (1, 2, 3)
            )
            self.converter.raise_alarm(level, (words[0], words[1], words[2]))
        else:
            super().fault(kind, params)
        self.sync_mode()

    def after_make_safe(self) -> None:
        super().after_make_safe()
        self.sync_mode()

    def status(self) -> dict[str, Any]:
        state = self.converter.status()
        return {
            **super().status(),
            "mode": self.converter.handle.effective_mode.value,
            "cst": state.cst,
            "alarms": list(state.alarms),
        }


def _alarm_word(key: str, params: Mapping[str, Any], name: str) -> int:
    value = params.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFFFF:
        raise ConfigError(f"{key}: alarm {name} = {value!r} must be an integer 0 to 0xFFFF")
    return value
