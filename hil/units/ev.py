"""An electric vehicle on the bus through a V2H charger/discharger (role ``EvCharger``).

How it maps the controller onto the charger (the frames each step sends are in the driver's
docstring):

- ``set_current(a)``: ``a > 0`` discharges the car into the bus at ``|a|`` (designated
  current), ``a < 0`` charges it, ``a = 0`` is standby. A ramp step in the same direction
  writes only the designated current (one frame); a change of direction goes through
  standby first. Before the first start: the car's connection is checked (the charger's
  connection check, then its status) and a direction the car does not allow is a
  ``CapabilityError``; the SoC window of the envelope is checked like a BMS battery's.
- A fixed amount (:meth:`EvUnit.set_amount`) is handed to the charger with the next start:
  the charger then stops by itself (standby) after that much energy, whatever the host does.
- ``hold_voltage``: refused (a V2H charger is a current-controlled unit).
- ``idle()`` and ``safe_off()``: standby. ``arm()``: operation on, connection check,
  standby. No communication watchdog (ECHONET Lite has none).
- ``read()``: the charger's meters (bus port), mode, the car's SoC and connection: flags
  ``NOT_CONNECTED``, ``NO_CHARGE`` / ``NO_DISCHARGE`` (what the connection status allows).
  The charger's announcements (mode and connection changes) are kept for the record
  (:meth:`EvUnit.notices`: those since the last call).
"""

from __future__ import annotations

import logging

from hil.clock import Clock
from hil.controller import Capabilities, Mode, Reading
from hil.envelope import UnitEnvelope
from hil.errors import CapabilityError, ConfigError
from instruments.roles import EvCharger, EvConnection, EvMode, EvNotice

from .base import SAFE_OFF_TIMEOUT_S, Part, SafeStep, UnitBase

log = logging.getLogger(__name__)

_REFUSED = "refused before anything was sent to the charger"
#: The designated current's resolution (0xED / 0xEE carry 0.1 A steps).
CURRENT_STEP_A = 0.1
_MODES = {
    EvMode.CHARGE: Mode.CURRENT,
    EvMode.DISCHARGE: Mode.CURRENT,
    EvMode.STANDBY: Mode.IDLE,
    EvMode.IDLE: Mode.IDLE,
}


class EvUnit(UnitBase):
    """A V2H charger/discharger with a car: a battery behind a current-controlled port."""

    kind = "ev"

    def __init__(
        self,
        unit_id: str,
        charger: EvCharger,
        envelope: UnitEnvelope,
        clock: Clock,
        *,
        name: str = "ev",
        driver_name: str = "",
        safe_off_timeout: float = SAFE_OFF_TIMEOUT_S,
    ) -> None:
        rating = charger.rating
        capabilities = Capabilities(
            can_source=envelope.can_source,
            can_sink=envelope.can_sink,
            can_hold_voltage=False,
            source_current_max=rating.current if envelope.can_source else 0.0,
            sink_current_max=rating.current if envelope.can_sink else 0.0,
            voltage_max=rating.voltage,
            power_max=rating.power,
            has_battery=True,
            hardware_watchdog=False,
            current_step=CURRENT_STEP_A,
        )
        part = Part(unit_id, name, driver_name or type(charger).__name__.lower(), charger)
        super().__init__(
            unit_id, envelope, clock, [part], capabilities, safe_off_timeout=safe_off_timeout
        )
        self.charger = charger
        self._direction: bool | None = None  # True charging, False discharging, None standby
        self._connection: EvConnection | None = None
        self._amount_wh = 0

    def _forget(self) -> None:
        super()._forget()
        self._direction = None

    # -- fixed amounts and announcements ------------------------------------------------
    def set_amount(self, wh: float) -> None:
        """The energy after which the charger stops by itself, for the next start (0: none)."""
        if not (isinstance(wh, int | float) and not isinstance(wh, bool) and wh >= 0):
            raise ConfigError(f"unit {self._unit_id}: amount {wh!r} Wh must be a number >= 0")
        self._amount_wh = round(wh)

    def notices(self) -> list[EvNotice]:
        """The announcements (INF) the charger sent since the last call, oldest first."""
        return self.charger.notices()

    # -- set-points ------------------------------------------------------------------------
    def _check_car(self, amps: float, what: str) -> None:
        """Connection (a check when none was made since arm) and SoC, before sending."""
        reading = self.charger.measure()
        connection = reading.connection
        if connection is None:
            connection = self.charger.confirm_connection()
        self._connection = connection
        scope = f"unit {self._unit_id}"
        if connection is EvConnection.NOT_CONNECTED:
            raise CapabilityError(
                f"{scope}: {what} needs the car, but none is plugged in; {_REFUSED}"
            )
        if amps < 0 and not connection.may_charge:
            raise CapabilityError(
                f"{scope}: {what} would charge the car, but its connection status is "
                f"{connection.name} (0xC7); {_REFUSED}"
            )
        if amps > 0 and not connection.may_discharge:
            raise CapabilityError(
                f"{scope}: {what} would discharge the car, but its connection status is "
                f"{connection.name} (0xC7); {_REFUSED}"
            )
        self._envelope.check_soc(reading.soc_percent / 100.0, amps)

    def set_current(self, amps: float) -> None:
        amps = self._check_current(amps)
        what = f"set_current({amps:+g} A)"
        charge = amps < 0
        with self._sending() as generation:
            if amps == 0:
                self.charger.standby()
                self._direction = None
                self._commit(Mode.IDLE, None)
                return
            same = self._primed and self._direction is charge
            if same:
                self._still_allowed(generation, what)
                self.charger.set_level(abs(amps), charge=charge)
            else:
                self._check_car(amps, what)
                if self._direction is not None:
                    self.charger.standby()
                    self._direction = None
                self._still_allowed(generation, what)
                self.charger.start(abs(amps), charge=charge, amount_wh=self._amount_wh)
            self._direction = charge
            self._commit(Mode.CURRENT, amps)

    def hold_voltage(self, volts: float, current_limit: float, droop: float = 0.0) -> None:
        self._check_hold(volts, current_limit, droop, both_directions=True)
        raise CapabilityError(f"unit {self._unit_id}: an EV charger cannot hold the bus voltage")

    def idle(self) -> None:
        with self._sending():
            self.charger.standby()
            self._direction = None
            self._commit(Mode.IDLE, None)

    def arm(self) -> None:
        with self._sending():
            self.charger.power_on()
            self.charger.standby()
            self._connection = self.charger.confirm_connection()
            self._direction = None
            self._commit(Mode.IDLE, None)
        log.info("unit %s: armed, car %s", self._unit_id, self._connection.name)

    # -- reading ---------------------------------------------------------------------------
    def read(self) -> Reading:
        t = self._clock.now()
        reading = self.charger.measure()
        flags: set[str] = set()
        connection = reading.connection or self._connection
        if connection is EvConnection.NOT_CONNECTED:
            flags.add("NOT_CONNECTED")
        if connection is not None and not connection.may_charge:
            flags.add("NO_CHARGE")
        if connection is not None and not connection.may_discharge:
            flags.add("NO_DISCHARGE")
        mode = _MODES.get(reading.mode, Mode.FAULT)
        if mode is Mode.IDLE and self._commanded is Mode.CURRENT:
            log.info("unit %s: the charger is in %s", self._unit_id, reading.mode.name)
        return self._reading(
            t,
            bus_voltage=reading.voltage,
            bus_current=reading.current,
            mode=mode,
            flags=frozenset(flags),
            soc=reading.soc_percent / 100.0,
        )

    def _safe_off_steps(self) -> list[SafeStep]:
        part = self._parts[0]
        return [SafeStep(part, action, run) for action, run in self.charger.safe_off_actions()]
