"""Emulated V2H charger/discharger: ECHONET Lite class 0x027E on a plant converter + EV battery.

The unit is a DC/DC converter between the DC bus and a vehicle battery (plant ports: a
converter on the bus whose battery side is the node ``<unit>.vehicle``, and a battery there:
the car). It answers ECHONET Lite over unicast UDP (:mod:`instruments.emulation.echonet_node`
for the services; property table and codes in :mod:`instruments.wire.echonet`).

Facts from the Appendix (class 0x027E) and pychonet's table: the properties and their
units; charge 0x42 / discharge 0x43 / standby 0x44 (and 0x47 idle, a later release) in
0xDA; 0xC7 connection codes; 0xDC/0xDD method 0x04 "designated current" with the current
in 0xED/0xEE (0.1 A) and the amount in 0xE7/0xEA (Wh); INF on a change of 0x80, 0xDA
(status-change announcement properties) and 0xC7.

Assumed (no public V2H on a DC bus was found to check against):

- the designated current is the current on the unit's DC-bus port (the converter regulates
  its bus side, as a DC-grid V2H in the Open Energy System does), and 0xD3/0xD4/0xD5 measure
  that port, positive while the car charges (0xD3's sign in the Appendix);
- 0xC7 is known only after a controller set 0xCD = 0x10 since the car was plugged in:
  before, Get 0xC7 is refused (PDC 0 in Get_SNA). Unplugging is seen at once: the unit stops
  (standby) and announces 0xC7 = 0x30 and 0xDA = standby;
- charge / discharge is refused (SetC_SNA) unless the operation status is on, the
  connection was confirmed and allows that direction, and the method is designated current;
  a current above the maximum of 0xCA / 0xCB is refused;
- a non-zero charging / discharging amount makes the run stop by itself (standby, INF) once
  that much energy went through the bus port since the mode was entered; 0 means no limit;
  the unit also stops charging at 98 % and discharging at 5 % state of charge;
- the car: 40 kWh unless ``battery_capacity`` says otherwise, open-circuit voltage 320 V
  empty to 400 V full (a CHAdeMO-class pack), battery window from the ratings file.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any, ClassVar

from instruments.emulation.battery import OcvCurve
from instruments.emulation.echonet_node import EchonetNode, NodeIdentity
from instruments.emulation.models.base import BUS_NODE, InstrumentModel, ModelContext, Wire
from instruments.emulation.plant import NodeSpec, Plant
from instruments.emulation.plant_specs import (
    AnyPortSpec,
    BatterySpec,
    ConverterLosses,
    ConverterMode,
    ConverterSpec,
)
from instruments.emulation.transport import SessionFactory
from instruments.emulation.udp import DatagramHandler
from instruments.errors import ConfigError
from instruments.wire import echonet as el
from instruments.wire.echonet import Connection, Eoj, Method, OperationMode, OperationStatus

log = logging.getLogger(__name__)

EOJ = Eoj(0x02, 0x7E, 0x01)
#: Maker code of the emulated unit: 0xFFFFFF is no assigned maker (assumed unused).
MAKER = b"\xff\xff\xff"
PRODUCT = "PP2P-V2H-EMU"
DEFAULT_CAPACITY_WH = 40_000.0
DEFAULT_SOC = 0.6
DEFAULT_RESISTANCE_OHM = 0.1
EV_OCV = OcvCurve(((0.0, 320.0), (0.1, 350.0), (0.9, 390.0), (1.0, 400.0)))
CHARGE_STOP_SOC = 0.98
DISCHARGE_STOP_SOC = 0.05
#: The unit looks at its energy and SoC at least this often while it runs (sim seconds).
CHECK_PERIOD_S = 60.0
ANNOUNCED = (0x80, 0xDA, 0xC7)
_RUNNING = {
    OperationMode.CHARGE: ConverterMode.CHARGE,
    OperationMode.DISCHARGE: ConverterMode.DISCHARGE,
}


class V2hObject:
    """The EV charger/discharger object 0x027E01 and its state (an ``EchonetObject``)."""

    def __init__(self, model: EchonetV2hModel) -> None:
        self.model = model
        rating = model.ctx.instrument.rating
        self.max_charge_a = rating.current_sink_max
        self.max_discharge_a = rating.current_source_max
        self.rated_power_w = rating.power_max
        self.on = True
        self.mode = OperationMode.STANDBY
        self.plugged = True
        self.confirmed = False
        self.charge_method = Method.DESIGNATED_CURRENT
        self.discharge_method = Method.DESIGNATED_CURRENT
        self.charge_current = 0.0
        self.discharge_current = 0.0
        self.charge_amount_wh = 0
        self.discharge_amount_wh = 0
        self.run_start_j = 0.0
        self.charged_j = 0.0
        self.discharged_j = 0.0
        self._last_j = 0.0

    @property
    def eoj(self) -> Eoj:
        return EOJ

    @property
    def table(self) -> Mapping[int, el.PropertySpec]:
        return el.EV_TABLE

    @property
    def connection(self) -> Connection:
        if not self.plugged:
            return Connection.NOT_CONNECTED
        soc = self.model.battery.soc
        charge = soc < CHARGE_STOP_SOC
        discharge = soc > DISCHARGE_STOP_SOC
        if charge and discharge:
            return Connection.BOTH
        return Connection.CHARGEABLE if charge else Connection.DISCHARGEABLE

    # ---- energy -------------------------------------------------------------------------
    def account(self) -> None:
        """Add the bus-port energy since the last look to the cumulative counters."""
        now = self.model.converter.state().energy_j
        delta, self._last_j = now - self._last_j, now
        if delta > 0:
            self.discharged_j += delta
        else:
            self.charged_j -= delta

    def run_energy_wh(self) -> float:
        """Energy through the bus port since the current mode was entered (Wh)."""
        counter = self.charged_j if self.mode is OperationMode.CHARGE else self.discharged_j
        return (counter - self.run_start_j) / 3600.0

    # ---- properties ---------------------------------------------------------------------
    def get(self, epc: int) -> bytes | None:
        if epc == 0xC7 and self.plugged and not self.confirmed:
            return None
        value = self._value(epc)
        if value is None:
            return None
        return el.EV_TABLE[epc].encode_value(value)

    def _value(self, epc: int) -> el.PhysicalValue | None:
        model = self.model
        if epc in (0x80, 0xDA, 0xC7, 0xDC, 0xDD, 0xE7, 0xEA, 0xED, 0xEE):
            return self._setting(epc)
        if epc in (0xD3, 0xD4, 0xD5, 0xD6, 0xD8):
            return self._meter(epc)
        capacity = model.capacity_wh
        soc = model.battery.soc
        percent = max(0, min(100, round(100 * soc)))
        values: dict[int, el.PhysicalValue] = {
            0x81: 0x00,
            0x82: b"\x00\x00J\x00",
            0x83: b"\xfe" + MAKER + model.serial.encode("ascii").ljust(13, b"\x00")[:13],
            0x88: 0x42,
            0x8A: MAKER,
            0x8C: PRODUCT,
            0x8D: model.serial,
            0x9D: el.property_map(ANNOUNCED),
            0x9E: el.property_map(e for e, s in el.EV_TABLE.items() if s.writable),
            0x9F: el.property_map(e for e, s in el.EV_TABLE.items() if s.readable),
            0xC0: round(capacity * (1 - DISCHARGE_STOP_SOC)),
            0xC2: round(capacity * max(0.0, soc - DISCHARGE_STOP_SOC)),
            0xC4: percent,
            0xC5: round(self.rated_power_w),
            0xC6: round(self.rated_power_w),
            0xCA: (0.0, self.max_charge_a),
            0xCB: (0.0, self.max_discharge_a),
            0xE2: round(capacity * soc),
            0xE4: percent,
        }
        return values.get(epc)

    def _setting(self, epc: int) -> el.PhysicalValue:
        values: dict[int, el.PhysicalValue] = {
            0x80: OperationStatus.ON if self.on else OperationStatus.OFF,
            0xDA: self.mode,
            0xC7: self.connection,
            0xDC: self.charge_method,
            0xDD: self.discharge_method,
            0xE7: self.charge_amount_wh,
            0xEA: self.discharge_amount_wh,
            0xED: self.charge_current,
            0xEE: self.discharge_current,
        }
        return values[epc]

    def _meter(self, epc: int) -> el.PhysicalValue:
        self.account()
        if epc == 0xD6:
            return self.discharged_j / 3.6e6
        if epc == 0xD8:
            return self.charged_j / 3.6e6
        m = self.model.measure()
        current = -m.current  # plant: + into the bus; ECHONET: + while the car charges
        if epc == 0xD3:
            return round(m.voltage * current)
        if epc == 0xD4:
            return round(current, 1)
        return round(m.voltage)

    def set(self, epc: int, edt: bytes) -> bool:
        value = el.EV_TABLE[epc].decode_value(edt)
        assert isinstance(value, int | float)
        changed = self._apply(epc, value)
        if changed is None:
            return False
        self.model.reschedule()
        self.model.announce(changed)
        return True

    def _apply(self, epc: int, value: float) -> list[int] | None:
        """Apply one checked write; the EPCs to announce, or None when refused now."""
        if epc == 0x80:
            on = value == OperationStatus.ON
            changed = [0x80] if on != self.on else []
            self.on = on
            if not on and self.mode in _RUNNING:
                self.enter(OperationMode.STANDBY)
                changed.append(0xDA)
            return changed
        if epc == 0xCD:
            was = self.confirmed
            self.confirmed = True
            return [] if was else [0xC7]
        if epc == 0xDA:
            return self._set_mode(OperationMode(int(value)))
        if epc in (0xDC, 0xDD):
            if epc == 0xDC:
                self.charge_method = Method(int(value))
            else:
                self.discharge_method = Method(int(value))
            return []
        if epc in (0xE7, 0xEA):
            if epc == 0xE7:
                self.charge_amount_wh = int(value)
            else:
                self.discharge_amount_wh = int(value)
            return []
        return self._set_current(epc, float(value))

    def _set_current(self, epc: int, amps: float) -> list[int] | None:
        limit = self.max_charge_a if epc == 0xED else self.max_discharge_a
        if amps > limit + 1e-9:
            log.info("%s: 0x%02X %.1f A above its maximum %.1f A", self.model.key, epc, amps, limit)
            return None
        if epc == 0xED:
            self.charge_current = amps
        else:
            self.discharge_current = amps
        running = (epc == 0xED and self.mode is OperationMode.CHARGE) or (
            epc == 0xEE and self.mode is OperationMode.DISCHARGE
        )
        if running:
            self.model.converter.set_grid_current(amps)
        return []

    def _set_mode(self, mode: OperationMode) -> list[int] | None:
        if mode in (OperationMode.STANDBY, OperationMode.IDLE):
            changed = self.enter(mode)
            return [0xDA] if changed else []
        if mode not in _RUNNING:
            return None
        connection = self.connection
        charge = mode is OperationMode.CHARGE
        method = self.charge_method if charge else self.discharge_method
        allowed = connection.may_charge if charge else connection.may_discharge
        if not (self.on and self.confirmed and allowed and method is Method.DESIGNATED_CURRENT):
            log.info(
                "%s: %s refused (operation %s, connection %s%s, method %s)",
                self.model.key,
                mode.name,
                "on" if self.on else "off",
                connection.name,
                "" if self.confirmed else " unconfirmed",
                method.name,
            )
            return None
        return [0xDA] if self.enter(mode) else []

    def enter(self, mode: OperationMode) -> bool:
        """Drive the converter for ``mode``; True if the mode changed."""
        self.account()
        changed = mode is not self.mode
        converter = self.model.converter
        running = _RUNNING.get(mode)
        if running is None:
            converter.set_mode(ConverterMode.WAIT)
            converter.set_grid_current(0.0)
        else:
            amps = self.charge_current if mode is OperationMode.CHARGE else self.discharge_current
            if changed or converter.effective_mode is not running:
                converter.set_mode(ConverterMode.WAIT)
                converter.set_grid_current(amps)
                converter.set_mode(running)
            else:
                converter.set_grid_current(amps)
        if changed:
            self.mode = mode
            self.run_start_j = self.charged_j if mode is OperationMode.CHARGE else self.discharged_j
        self.model.reschedule()
        return changed


class EchonetV2hModel(InstrumentModel):
    """One emulated V2H unit (driver ``echonet_v2h``): ECHONET Lite over UDP, a converter, a car.

    Control channel: ``set`` ``plugged`` (true/false) and ``soc`` (0..1, the car's); fault
    ``unplug`` (the car drives away: as ``set plugged false``).
    """

    driver: ClassVar[str] = "echonet_v2h"
    wire: ClassVar[Wire] = Wire.ECHONET_UDP
    extra_faults: ClassVar[tuple[str, ...]] = ("unplug",)

    def __init__(self, ctx: ModelContext, plant: Plant) -> None:
        super().__init__(ctx, plant)
        self.converter = plant.converter(ctx.key)
        self.battery = plant.battery(vehicle_port(ctx))
        self.capacity_wh = _capacity(ctx)
        self.serial = ctx.serial_number()
        self.device = V2hObject(self)
        identity = NodeIdentity(maker=MAKER, product=PRODUCT, serial=self.serial)
        self.node = EchonetNode(ctx.key, identity, [self.device])
        self._deadline: float | None = None

    @classmethod
    def node_specs(cls, ctx: ModelContext) -> list[NodeSpec]:
        return [NodeSpec(name=vehicle_node(ctx))]

    @classmethod
    def port_specs(cls, ctx: ModelContext) -> list[AnyPortSpec]:
        rating = ctx.instrument.rating
        port = ctx.port
        low = rating.battery_voltage_min or EV_OCV.points[0][1] * 0.8
        high = rating.battery_voltage_max or EV_OCV.points[-1][1] * 1.1
        converter = ConverterSpec(
            name=ctx.key,
            node=BUS_NODE,
            battery_node=vehicle_node(ctx),
            line_ohm=ctx.line_ohm,
            sensors=ctx.sensors(),
            losses=ConverterLosses(),
            max_grid_current_a=max(rating.current_source_max, rating.current_sink_max),
            max_grid_voltage_v=rating.voltage_max,
            min_battery_v=low,
            max_battery_v=high,
            grid_high_v=rating.voltage_max,
        )
        battery = BatterySpec(
            name=vehicle_port(ctx),
            node=vehicle_node(ctx),
            capacity_wh=_capacity(ctx),
            soc=DEFAULT_SOC if port.soc is None else port.soc,
            r_internal_ohm=(
                DEFAULT_RESISTANCE_OHM
                if port.battery_resistance is None
                else port.battery_resistance
            ),
            ocv=EV_OCV,
        )
        return [converter, battery]

    def session_factory(self) -> SessionFactory:
        raise ConfigError(f"{self.key}: an ECHONET Lite unit is served over UDP, not a stream")

    def datagram_handler(self) -> DatagramHandler:
        return self.node

    @property
    def resource_path(self) -> str:
        return f"/{EOJ}"

    def announce(self, epcs: list[int]) -> None:
        """INF of ``epcs`` (those that are announced) to every controller that asked."""
        announced = [e for e in epcs if e in ANNOUNCED]
        self.node.announce(self.device, announced)

    # ---- time-driven behaviour: fixed amounts, SoC stops ---------------------------------
    def reschedule(self) -> None:
        """A setting or the mode changed: the next look is planned afresh."""
        self._deadline = None

    def next_deadline(self) -> float | None:
        """When the unit next looks at its energy and SoC while it runs (fixed between
        looks, so the emulator stops the plant there)."""
        dev = self.device
        if dev.mode not in _RUNNING:
            self._deadline = None
        elif self._deadline is None:
            self._deadline = self.plant.time + self._check_in()
        return self._deadline

    def _check_in(self) -> float:
        """Seconds until the fixed amount is due at the designated current (at most
        ``CHECK_PERIOD_S``)."""
        dev = self.device
        charge = dev.mode is OperationMode.CHARGE
        amount = dev.charge_amount_wh if charge else dev.discharge_amount_wh
        amps = dev.charge_current if charge else dev.discharge_current
        power = amps * max(self.converter.state().voltage, 1.0)
        wait = CHECK_PERIOD_S
        if amount and power > 0:
            left = amount - dev.run_energy_wh()
            wait = min(wait, max(left * 3600.0 / power, 1e-3))
        return wait

    def on_time(self, now: float) -> None:
        self._deadline = None
        dev = self.device
        if dev.mode not in _RUNNING:
            return
        dev.account()
        charge = dev.mode is OperationMode.CHARGE
        amount = dev.charge_amount_wh if charge else dev.discharge_amount_wh
        soc = self.battery.soc
        done = amount and dev.run_energy_wh() >= amount - 1e-6
        full = soc >= CHARGE_STOP_SOC if charge else soc <= DISCHARGE_STOP_SOC
        if done or full or self.converter.trips:
            why = "amount reached" if done else "state of charge limit" if full else "trip"
            log.info("%s: %s stops (%s)", self.key, dev.mode.name, why)
            dev.enter(OperationMode.STANDBY)
            self.announce([0xDA])

    # ---- control channel ----------------------------------------------------------------
    def plug(self, plugged: bool) -> None:
        """The car arrives (needs a new confirmation, 0xCD) or leaves (stop at once)."""
        dev = self.device
        if plugged == dev.plugged:
            return
        dev.plugged = plugged
        dev.confirmed = False
        changed = [0xC7] if not plugged else []
        if not plugged and dev.enter(OperationMode.STANDBY):
            changed.append(0xDA)
        log.info("%s: vehicle %s", self.key, "plugged in" if plugged else "unplugged")
        self.announce(changed)

    def fault(self, kind: str, params: Mapping[str, Any]) -> None:
        if kind == "unplug":
            self.plug(False)
        else:
            super().fault(kind, params)

    def set_value(self, field: str, value: Any) -> bool:
        if field == "plugged":
            if not isinstance(value, bool):
                raise ConfigError(f"{self.key}: plugged = {value!r} must be true or false")
            self.plug(value)
            return True
        if field == "soc":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{self.key}: soc = {value!r} must be a number 0..1")
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise ConfigError(f"{self.key}: soc = {value!r} must be within 0..1")
            self.battery.soc = float(value)
            return True
        return False

    def after_make_safe(self) -> None:
        super().after_make_safe()
        if self.device.enter(OperationMode.STANDBY):
            self.announce([0xDA])

    def status(self) -> dict[str, Any]:
        dev = self.device
        return {
            **super().status(),
            "operation": "on" if dev.on else "off",
            "mode": dev.mode.name,
            "plugged": dev.plugged,
            "confirmed": dev.confirmed,
            "soc": self.battery.soc,
            "charged_kwh": dev.charged_j / 3.6e6,
            "discharged_kwh": dev.discharged_j / 3.6e6,
            "peers": [f"{h}:{p}" for h, p in self.node.peers],
        }


def vehicle_node(ctx: ModelContext) -> str:
    """The node of the unit's vehicle battery (``<unit>.vehicle``)."""
    return f"{ctx.unit.id}.vehicle"


def vehicle_port(ctx: ModelContext) -> str:
    """The plant port of the car's battery (``<unit>.car``)."""
    return f"{ctx.unit.id}.car"


def _capacity(ctx: ModelContext) -> float:
    capacity = ctx.port.battery_capacity
    return DEFAULT_CAPACITY_WH if capacity is None else capacity
