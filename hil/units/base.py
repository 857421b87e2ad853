"""What every unit adapter shares: checks before sending, tracked state, identify, safe_off.

An adapter turns one unit's instruments into a :class:`~hil.controller.CurrentController`.
The rules that make them safe live here, once:

- **Check, then send.** :meth:`UnitBase._check_current` and :meth:`UnitBase._check_hold`
  refuse a set-point the hardware cannot do (``CapabilityError``) or the envelope forbids
  (``EnvelopeError``) before any byte leaves.
- **Send only what changed.** An adapter remembers what it has programmed (``_primed``);
  a ramp step then costs one write. Any failure, reconnect or ``safe_off`` forgets it, so
  the next set-point programmes the instrument in full again.
- **safe_off wins.** ``safe_off`` bumps a generation counter; a set-point that was being
  sent meanwhile stops at its next instrument and raises ``SafetyTrip`` instead of turning an
  output back on. ``safe_off`` itself runs its steps in a worker thread and returns after
  ``safe_off_timeout`` seconds at the latest, with the list of what it could not do.
"""

from __future__ import annotations

import inspect
import logging
import math
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import cast

from hil.clock import Clock
from hil.controller import Capabilities, InstrumentIdentity, Mode, Reading
from hil.envelope import UnitEnvelope
from hil.errors import (
    CapabilityError,
    CommunicationError,
    ConfigError,
    EnvelopeError,
    InstrumentTimeout,
    SafetyTrip,
)
from instruments.base import Identity, Instrument
from instruments.roles import BidirectionalSupply, Bms, Converter, EvCharger, Load, SourceSupply

log = logging.getLogger(__name__)

#: Default bound (s) on one ``safe_off`` call.
SAFE_OFF_TIMEOUT_S = 5.0
#: Over-voltage trips (OVP, converter ``ogv``) sit this factor above the voltage window,
#: under-voltage trips (``ugv``) the same factor below it: normal operation at the window's
#: edge must not trip.
VOLTAGE_TRIP_FACTOR = 1.05
#: Over-current and over-power trips sit this factor above the envelope's limits.
CURRENT_TRIP_FACTOR = 1.1

_REFUSED = "refused before anything was sent"


@dataclass(frozen=True)
class Part:
    """One instrument of a unit: its name in the unit, its driver name and the driver."""

    unit_id: str
    name: str
    driver_name: str
    driver: Instrument

    @property
    def key(self) -> str:
        """``<unit>.<instrument>``, as the bench file names it."""
        return f"{self.unit_id}.{self.name}"

    @property
    def label(self) -> str:
        """``<driver> E003.converter``: how messages name the instrument."""
        return f"{self.driver_name} {self.key}"


@dataclass(frozen=True)
class SafeStep:
    """One best-effort action of ``safe_off`` on one instrument (``OUTP OFF``, ``WAIT``)."""

    part: Part
    action: str
    run: Callable[[], None]


def probe_identity(driver: Instrument) -> Identity:
    """The instrument's identity, after proving that it answers (the driver's ``probe``)."""
    return driver.probe()


_ABSENT = object()


def check_role(part: Part, role: type, what: str) -> None:
    """``ConfigError`` unless ``part``'s driver has every member of the role protocol
    ``role`` (looked up statically: no property is read, nothing is sent)."""
    missing = [
        name
        for name in dir(role)
        if not name.startswith("_")
        and inspect.getattr_static(part.driver, name, _ABSENT) is _ABSENT
    ]
    if missing:
        raise ConfigError(
            f"unit {part.unit_id}: {part.label} is not {what} (its driver "
            f"{type(part.driver).__name__} lacks {', '.join(missing)})"
        )


def as_source_supply(part: Part) -> SourceSupply:
    check_role(part, SourceSupply, "a source supply")
    return cast(SourceSupply, part.driver)


def as_load(part: Part) -> Load:
    check_role(part, Load, "a load")
    return cast(Load, part.driver)


def as_converter(part: Part) -> Converter:
    check_role(part, Converter, "a converter")
    return cast(Converter, part.driver)


def as_bms(part: Part) -> Bms:
    check_role(part, Bms, "a BMS")
    return cast(Bms, part.driver)


def as_ev_charger(part: Part) -> EvCharger:
    check_role(part, EvCharger, "an EV charger/discharger")
    return cast(EvCharger, part.driver)


def as_bidirectional(part: Part) -> BidirectionalSupply:
    check_role(part, BidirectionalSupply, "a bidirectional supply")
    return cast(BidirectionalSupply, part.driver)


def _as_number(value: object) -> float:
    """``value`` as a float for comparisons, NaN if it is not a number (the envelope then
    refuses it with a clear message)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value)


class UnitBase(ABC):
    """Shared machinery of the adapters; subclasses provide the instrument sequences."""

    kind = "unit"

    def __init__(
        self,
        unit_id: str,
        envelope: UnitEnvelope,
        clock: Clock,
        parts: Sequence[Part],
        capabilities: Capabilities,
        *,
        safe_off_timeout: float = SAFE_OFF_TIMEOUT_S,
    ) -> None:
        if envelope.unit_id != unit_id:
            raise ConfigError(f"unit {unit_id}: given the envelope of unit {envelope.unit_id}")
        if not safe_off_timeout > 0:
            raise ConfigError(f"unit {unit_id}: safe_off_timeout must be > 0 s")
        self._unit_id = unit_id
        self._envelope = envelope
        self._clock = clock
        self._parts = tuple(parts)
        self._capabilities = capabilities
        self._safe_off_timeout = float(safe_off_timeout)
        self._lock = threading.RLock()
        self._generation = 0
        self._generation_lock = threading.Lock()
        self._commanded = Mode.IDLE
        self._setpoint: float | None = None
        self._primed = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._unit_id!r})"

    # -- protocol properties ---------------------------------------------------------
    @property
    def unit_id(self) -> str:
        return self._unit_id

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    @property
    def envelope(self) -> UnitEnvelope:
        return self._envelope

    @property
    def commanded_mode(self) -> Mode:
        """What the unit was last told to do (``read()`` says what it actually does)."""
        return self._commanded

    @property
    def parts(self) -> tuple[Part, ...]:
        return self._parts

    # -- checks ------------------------------------------------------------------------
    def _scope(self) -> str:
        return f"unit {self._unit_id}"

    def _check_current(self, amps: float) -> float:
        """Capability first (a load asked to source), then the envelope (worst-case power
        at the top of the unit's voltage window)."""
        number = _as_number(amps)
        caps = self._capabilities
        if number > 0 and not caps.can_source:
            raise CapabilityError(
                f"{self._scope()}: current set-point {number:+g} A asks the {self.kind} to "
                f"source, but it can only sink; {_REFUSED}"
            )
        if number < 0 and not caps.can_sink:
            raise CapabilityError(
                f"{self._scope()}: current set-point {number:+g} A asks the {self.kind} to "
                f"sink, but it can only source; {_REFUSED}"
            )
        # ``+ 0.0`` turns -0.0 into 0.0, so the wire never sees ``CURR -0``.
        return self._envelope.check_current(amps, at_voltage=self._envelope.voltage_max) + 0.0

    def _check_hold(
        self, volts: float, current_limit: float, droop: float, *, both_directions: bool
    ) -> tuple[float, float, float]:
        """Checks of a voltage-reference request; returns (volts, limit, droop)."""
        scope = self._scope()
        if not self._capabilities.can_hold_voltage:
            raise CapabilityError(f"{scope}: a {self.kind} cannot hold the bus voltage; {_REFUSED}")
        droop_value = _as_number(droop)
        if not math.isfinite(droop_value) or droop_value < 0:
            raise EnvelopeError(f"{scope}: droop {droop!r} must be a finite number ≥ 0; {_REFUSED}")
        if droop_value != 0 and not self._supports_droop():
            raise CapabilityError(
                f"{scope}: a {self.kind} has no droop setting (asked for {droop_value:g}); "
                f"{_REFUSED}"
            )
        volts = self._envelope.check_voltage(volts)
        limit = _as_number(current_limit)
        if not math.isfinite(limit) or limit <= 0:
            raise EnvelopeError(
                f"{scope}: current limit {current_limit!r} A of the voltage reference must be "
                f"a finite number > 0; {_REFUSED}"
            )
        self._envelope.check_current(limit, at_voltage=volts)
        if both_directions:
            self._envelope.check_current(-limit, at_voltage=volts)
        return volts, limit, droop_value

    def _supports_droop(self) -> bool:
        return False

    # -- tracked state and the safe_off race --------------------------------------------
    def _forget(self) -> None:
        """The instrument's state is unknown: the next set-point programmes it in full."""
        self._primed = False

    @contextmanager
    def _sending(self) -> Iterator[int]:
        """Hold the unit lock while sending; forget the tracked state on any failure.

        Yields the safe_off generation seen at the start, for :meth:`_still_allowed`.
        """
        with self._lock:
            generation = self._generation
            try:
                yield generation
            except BaseException:
                self._forget()
                raise

    def _still_allowed(self, generation: int, what: str) -> None:
        """Raise ``SafetyTrip`` if ``safe_off`` ran since ``generation`` was read.

        Called inside a driver's lock, just before a sequence of writes: a set-point that
        raced with ``safe_off`` is dropped rather than turning an output back on.
        """
        if self._generation != generation:
            raise SafetyTrip(
                f"{self._scope()}: safe_off() ran while {what} was being sent; the rest of it "
                "was not sent"
            )

    def _commit(self, mode: Mode, setpoint: float | None) -> None:
        self._commanded = mode
        self._setpoint = setpoint
        self._primed = mode is not Mode.IDLE

    # -- identify, reading -----------------------------------------------------------------
    def identify(self) -> list[InstrumentIdentity]:
        """Vendor, model, serial and firmware of every instrument (each is asked)."""
        identities = []
        for part in self._parts:
            ident = probe_identity(part.driver)
            identities.append(
                InstrumentIdentity(
                    unit=self._unit_id,
                    instrument=part.name,
                    driver=part.driver_name,
                    resource=part.driver.resource,
                    vendor=ident.vendor,
                    model=ident.model,
                    serial=ident.serial,
                    firmware=ident.firmware,
                )
            )
        return identities

    def _reading(
        self,
        t: float,
        *,
        bus_voltage: float,
        bus_current: float,
        mode: Mode,
        flags: frozenset[str] = frozenset(),
        battery_voltage: float | None = None,
        battery_current: float | None = None,
        soc: float | None = None,
        temperature: float | None = None,
    ) -> Reading:
        setpoint = self._setpoint if self._commanded is not Mode.IDLE else None
        return Reading(
            unit=self._unit_id,
            t=t,
            bus_voltage=bus_voltage,
            bus_current=bus_current,
            mode=mode,
            setpoint=setpoint,
            flags=flags,
            battery_voltage=battery_voltage,
            battery_current=battery_current,
            soc=soc,
            temperature=temperature,
        )

    # -- what each adapter provides ------------------------------------------------------
    @abstractmethod
    def set_current(self, amps: float) -> None:
        """Constant current, signed (positive pushes into the bus)."""

    @abstractmethod
    def hold_voltage(self, volts: float, current_limit: float, droop: float = 0.0) -> None:
        """Become the bus voltage reference at ``volts``, limited to ``current_limit`` A."""

    @abstractmethod
    def idle(self) -> None:
        """No current, safe standby."""

    @abstractmethod
    def arm(self) -> None:
        """Programme the instruments' protections from the envelope; leaves the unit idle."""

    @abstractmethod
    def read(self) -> Reading:
        """Measure the unit now."""

    @abstractmethod
    def _safe_off_steps(self) -> list[SafeStep]:
        """The best-effort steps of ``safe_off``, most important first."""

    # -- safe_off ------------------------------------------------------------------------

    def safe_off(self) -> list[str]:
        """Make every output safe; best effort, idempotent, bounded, never raises.

        Each step runs even if an earlier one failed, except that an instrument that timed
        out is not asked again (each further step would cost another timeout); a step that
        failed on a dropped line is tried once more (the connection reopens first). Returns
        one message per thing that could not be done, and logs each.
        """
        with self._generation_lock:
            self._generation += 1
        failures: list[str] = []
        guard = threading.Lock()
        finished = threading.Event()
        current = [""]
        try:
            steps = self._safe_off_steps()
        except Exception as exc:  # never raise from safe_off
            steps = []
            failures.append(f"{self._unit_id}: could not plan safe_off: {exc}")

        def note(message: str) -> None:
            with guard:
                failures.append(message)

        def work() -> None:
            silent: set[str] = set()
            for step in steps:
                where = f"{self._unit_id}: {step.part.label}"
                if step.part.key in silent:
                    note(f"{where} was not asked to {step.action}: it did not answer before")
                    continue
                current[0] = f"{step.action} on {step.part.label}"
                for attempt in (1, 2):
                    try:
                        step.run()
                        break
                    except InstrumentTimeout as exc:
                        silent.add(step.part.key)
                        note(f"{where} did not answer to {step.action} ({exc})")
                        break
                    except CommunicationError as exc:
                        if attempt == 2:
                            note(f"{where} could not be sent {step.action} ({exc})")
                    except Exception as exc:
                        note(f"{where} failed to {step.action} ({type(exc).__name__}: {exc})")
                        break
            finished.set()

        worker = threading.Thread(target=work, name=f"safe_off-{self._unit_id}", daemon=True)
        worker.start()
        if not finished.wait(self._safe_off_timeout):
            note(
                f"{self._unit_id}: safe_off did not finish within {self._safe_off_timeout:g} s "
                f"(still waiting for {current[0] or 'the first step'})"
            )
        self._forget()
        self._commanded = Mode.IDLE
        self._setpoint = None
        with guard:
            result = list(failures)
        for message in result:
            log.error("safe_off: %s", message)
        if not result:
            log.info("safe_off: unit %s is safe", self._unit_id)
        return result

    def clear_faults(self) -> None:
        """Clear latched faults the instruments let a controller clear (none by default:
        a supply's or load's latched protection stays until ``arm`` re-programmes it)."""
        return None

    # -- connections ---------------------------------------------------------------------
    def reconnect(self) -> None:
        """Reopen every instrument's connection; the next set-point programmes in full."""
        with self._lock:
            self._forget()
            for part in self._parts:
                part.driver.reconnect()

    def close(self) -> None:
        """Release every connection (outputs unchanged); idempotent, never raises."""
        for part in self._parts:
            try:
                part.driver.close()
            except Exception as exc:
                log.warning("unit %s: closing %s failed: %s", self._unit_id, part.label, exc)
