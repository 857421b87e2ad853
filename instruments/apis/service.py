"""APIS's device service (apis-dcdc_batt_comm) in front of one unit's converter and battery.

:class:`UnitService` does what dcdc_batt_comm does for apis-main, through our own drivers'
role protocols (a converter driven as dcdc_batt_comm drives an EZA-2500, and a BMS): every
answer is built from frames actually exchanged with the instruments. The HTTP routes live in
:mod:`instruments.apis.app`; the facts (paths, mode codes and strings, shapes) and their
sources in :mod:`instruments.wire.dcdc_batt_comm`.

As dcdc_batt_comm (``drivers/essx_server.py``, ``drivers/essx/essx_type_oes.py``):

- a set with a mode (or with ``dvg`` and ``dig`` together) takes missing ``mode``/``dvg``/
  ``dig`` from the earlier sets and a missing ``drg`` from them or 0; from WAIT it writes
  the voltage reference, the limits word (the service's ``cib``/``ubv``/``ugv``/``obv``/
  ``ogv`` with the new ``dig``), then the mode; otherwise the mode first;
- ``dig`` alone rewrites the limits word; ``dvg`` (with ``drg``) alone the voltage reference.

Beyond dcdc_batt_comm (the issue's contract; dcdc_batt_comm itself answers 400 to anything):
unknown or repeated parameters, malformed numbers, a mode APIS does not use, a value outside
the converter's range or rating, a negative ``dig``, and a set the battery's permission
forbids are HTTP 400 with nothing sent; an instrument that does not answer (or refuses) is
HTTP 503 naming the instrument and command, within :data:`ANSWER_WITHIN_S` even when
another request holds the unit (requests to one unit are served one at a time).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol, runtime_checkable

from instruments.base import check_setpoint
from instruments.errors import ConfigError, EnvelopeError, InstrumentError
from instruments.roles import Alarm, Bms, Converter, ConverterMode, Limits, Meters
from instruments.wire.dcdc_batt_comm import (
    ALARM_STATES,
    COMM_INTERFACE_VERSION,
    DCDC_BATT_COMM_VERSION,
    OPERATION_MODES,
    REQUEST_TIMEOUT_S,
    RUNNING_STATES,
    SET_PARAMETERS,
    alarm_text,
    mode_code,
    parse_mode,
    parse_number,
)

log = logging.getLogger(__name__)

#: An answer (200, 400 or 503) leaves within this, under apis-main's 5 s request timeout.
ANSWER_WITHIN_S = REQUEST_TIMEOUT_S - 1.0
Json = dict[str, Any]
#: Which parameters a set path takes: all four, or only the current's or the voltage's.
SetKind = Literal["any", "current", "voltage"]
_ONLY: dict[SetKind, tuple[str, ...]] = {
    "any": SET_PARAMETERS,
    "current": ("dig",),
    "voltage": ("dvg", "drg"),
}


class ServiceError(Exception):
    """A request the service answers with an HTTP error and ``{"err": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Reference(Protocol):
    """The converter's voltage reference (EZA-2500 command 0x1A)."""

    @property
    def dvg(self) -> float: ...

    @property
    def drg(self) -> float: ...


class ConverterState(Protocol):
    """The converter's status word (EZA-2500 command 0x01): alarm level and ``cst``."""

    @property
    def alarm(self) -> Alarm: ...

    @property
    def cst(self) -> int: ...


class AlarmWords(Protocol):
    """The converter's alarm words (EZA-2500 command 0x12)."""

    @property
    def alm1(self) -> int: ...


@runtime_checkable
class DcdcDevice(Converter, Protocol):
    """A converter as dcdc_batt_comm drives it: the role, plus the reads it answers from."""

    def status(self) -> ConverterState: ...

    def voltage_reference(self) -> Reference: ...

    def limits(self) -> Limits: ...

    def alarms(self) -> AlarmWords: ...


@dataclass(frozen=True)
class SetRequest:
    """A parsed set: the parameters given (None where absent)."""

    mode: ConverterMode | None = None
    dvg: float | None = None
    dig: float | None = None
    drg: float | None = None

    @classmethod
    def parse(cls, items: Sequence[tuple[str, str]]) -> SetRequest:
        """From query items; ``ServiceError`` 400 on an unknown, repeated or bad parameter."""
        seen: dict[str, str] = {}
        for key, value in items:
            if key not in SET_PARAMETERS:
                raise ServiceError(
                    400, f"unknown parameter {key!r}; a set takes {', '.join(SET_PARAMETERS)}"
                )
            if key in seen:
                raise ServiceError(400, f"parameter {key!r} is given twice")
            seen[key] = value
        try:
            mode = parse_mode(seen["mode"]) if "mode" in seen else None
            numbers = {k: parse_number(k, v) for k, v in seen.items() if k != "mode"}
        except ValueError as exc:
            raise ServiceError(400, str(exc)) from None
        return cls(mode=mode, **numbers)

    @property
    def current_only(self) -> bool:
        return self.dig is not None and self.mode is None and self.dvg is None and self.drg is None

    @property
    def voltage_only(self) -> bool:
        return self.dvg is not None and self.mode is None and self.dig is None


def meter_json(meters: Meters) -> Json:
    """``meter``: the converter's meters (command 0x09, ``ig`` positive while charging)."""
    return {
        "vg": meters.vg,
        "ig": meters.ig,
        "vb": meters.vb,
        "ib": meters.ib,
        "wg": meters.wg,
        "wb": meters.wb,
        "tmp": meters.tmp,
    }


def param_json(limits: Limits) -> Json:
    """``param``: the limits word (command 0x1C) as the converter holds it."""
    return {
        "dig": limits.dig,
        "cib": limits.cib,
        "ubv": limits.ubv,
        "ugv": limits.ugv,
        "obv": limits.obv,
        "ogv": limits.ogv,
    }


def vdis_json(reference: Reference) -> Json:
    return {"dvg": reference.dvg, "drg": reference.drg}


def status_json(mode: ConverterMode, state: ConverterState, alm1: int | None = None) -> Json:
    """``status``: mode code and string, alarm state, running state (and ``alarm``)."""
    alarm = min(int(state.alarm), len(ALARM_STATES) - 1)
    running = state.cst & 0b11
    body: Json = {
        "alarmState": ALARM_STATES[alarm],
        "runningState": RUNNING_STATES[running] if running < len(RUNNING_STATES) else "off",
        "operationMode": OPERATION_MODES[mode],
    }
    if alm1 is not None:
        body = {"status": mode_code(mode), **body, "alarm": alarm_text(alm1, alarm, running)}
    return body


class UnitService:
    """dcdc_batt_comm for one unit: its converter, its BMS and the parameter cache.

    ``limits`` are the service's configuration words (``cib``, ``ubv``, ``ugv``, ``obv``,
    ``ogv``; its ``dig`` is ignored) written with every ``dig``, as dcdc_batt_comm writes
    its ``dcdc_batt_comm.yml`` values; None: those the converter holds at the first set.
    ``io_timeout`` is the drivers' timeout: a request queued behind another waits at most
    ``answer_within - io_timeout`` so that its 503 still leaves within ``answer_within``.
    """

    def __init__(
        self,
        unit_id: str,
        converter: DcdcDevice,
        bms: Bms,
        *,
        limits: Limits | None = None,
        io_timeout: float = 1.0,
        answer_within: float = ANSWER_WITHIN_S,
    ) -> None:
        if not 0 < io_timeout < answer_within:
            raise ConfigError(
                f"unit {unit_id}: the instruments' timeout {io_timeout:g} s leaves no time to "
                f"answer within {answer_within:g} s"
            )
        self.unit_id = unit_id
        self.converter = converter
        self.bms = bms
        #: How long a request waits for another one of the same unit before it answers 503.
        self.queue_wait = answer_within - io_timeout
        self._limits = limits
        self._lock = threading.Lock()
        self._mode: ConverterMode | None = None
        self._dvg: float | None = None
        self._dig: float | None = None
        self._drg: float | None = None

    # -- requests ----------------------------------------------------------------------
    @staticmethod
    def version() -> Json:
        return {
            "comm_interface_version": COMM_INTERFACE_VERSION,
            "dcdc_batt_comm_version": DCDC_BATT_COMM_VERSION,
        }

    def dcdc(self) -> Json:
        """``/dcdc/get``: status (with code and alarm words), meter, vdis, param."""
        with self._serving("read the converter"):
            return self._dcdc()

    def dcdc_status(self) -> Json:
        """``/dcdc/get/status``: status (strings only) and meter."""
        with self._serving("read the converter's status"):
            mode = self.converter.mode()
            state = self.converter.status()
            return {
                "status": status_json(mode, state),
                "meter": meter_json(self.converter.meters()),
            }

    def battery(self) -> Json:
        """``/battery/get``: ``rsoc`` (%) and ``battery_operation_status``."""
        with self._serving("read the battery"):
            return self._battery()

    def all(self) -> Json:
        """``/all/get``: the battery's two fields at the top level, and ``/dcdc/get``'s."""
        with self._serving("read the unit"):
            return {**self._battery(), **self._dcdc()}

    def set(self, items: Sequence[tuple[str, str]], *, only: SetKind = "any") -> Json:
        """``/dcdc/set``: current only, voltage only, or mode with all four (cached).

        ``only``: the dcdc_emulator's ``/set/dcdc/current`` (``dig``) and
        ``/set/dcdc/voltage`` (``dvg``, ``drg``) paths take nothing else.
        """
        request = self._parse(items, only)
        with self._serving(f"set {_describe(items)}"):
            if request.current_only:
                assert request.dig is not None
                return self._set_current(request.dig)
            if request.voltage_only:
                assert request.dvg is not None
                return self._set_voltage(request.dvg, request.drg)
            return self._set_all(request)

    def _parse(self, items: Sequence[tuple[str, str]], only: SetKind) -> SetRequest:
        """The set's parameters; ``ServiceError`` 400 naming the unit and the problem."""
        try:
            if not items:
                raise ServiceError(400, f"a set needs parameters: {', '.join(SET_PARAMETERS)}")
            allowed = _ONLY[only]
            stray = sorted({key for key, _ in items} - set(allowed))
            if only != "any" and stray:
                raise ServiceError(
                    400, f"a {only} set takes only {', '.join(allowed)}, not {stray}"
                )
            request = SetRequest.parse(items)
            if only == "voltage" and request.dvg is None:
                raise ServiceError(400, "No dvg: a voltage set needs dvg")
        except ServiceError as exc:
            raise ServiceError(exc.status, f"unit {self.unit_id}: {exc}; nothing sent") from None
        return request

    # -- the work ------------------------------------------------------------------------
    def _dcdc(self) -> Json:
        mode = self.converter.mode()
        state = self.converter.status()
        alm1 = self.converter.alarms().alm1
        return {
            "status": status_json(mode, state, alm1),
            "meter": meter_json(self.converter.meters()),
            "vdis": vdis_json(self.converter.voltage_reference()),
            "param": param_json(self.converter.limits()),
        }

    def _battery(self) -> Json:
        state = self.bms.read()
        return {"rsoc": state.soc_percent, "battery_operation_status": int(state.permission)}

    def _cached(self, name: str, given: float | None, cached: float | None) -> float:
        value = given if given is not None else cached
        if value is None:
            raise ServiceError(
                400, f"No {name}: give {name} (no earlier set carried one); nothing sent"
            )
        return value

    def _set_all(self, request: SetRequest) -> Json:
        mode = request.mode if request.mode is not None else self._mode
        if mode is None:
            raise ServiceError(
                400, "No operationMode: give mode (no earlier set carried one); nothing sent"
            )
        dig = self._check_dig(self._cached("dig", request.dig, self._dig))
        dvg = self._check("dvg", self._cached("dvg", request.dvg, self._dvg), "V")
        drg = self._check("drg", request.drg if request.drg is not None else self._drg or 0.0)
        self._check_battery(mode, dig)
        limits = replace(self._config_limits(), dig=dig)
        if self.converter.mode() is ConverterMode.WAIT:
            self.converter.apply(dvg=dvg, drg=drg)
            echo = self.converter.set_limits(limits)
            self.converter.set_mode(mode)
        else:
            self.converter.set_mode(mode)
            self.converter.apply(dvg=dvg, drg=drg)
            echo = self.converter.set_limits(limits)
        self._mode, self._dvg, self._dig, self._drg = mode, dvg, dig, drg
        log.info("unit %s: %s dvg %g dig %g drg %g", self.unit_id, mode.name, dvg, dig, drg)
        return {
            "status": status_json(mode, self.converter.status(), self.converter.alarms().alm1),
            "meter": meter_json(self.converter.meters()),
            "vdis": vdis_json(self.converter.voltage_reference()),
            "param": param_json(echo),
        }

    def _set_current(self, dig: float) -> Json:
        if self._mode is None or self._dvg is None:
            raise ServiceError(400, "No operationMode: set mode, dvg and dig first; nothing sent")
        dig = self._check_dig(dig)
        self._check_battery(self._mode, dig)
        echo = self.converter.set_limits(replace(self._config_limits(), dig=dig))
        self._dig = dig
        return {"meter": meter_json(self.converter.meters()), "param": param_json(echo)}

    def _set_voltage(self, dvg: float, drg: float | None) -> Json:
        if self._mode is None or self._dig is None:
            raise ServiceError(400, "No operationMode: set mode, dvg and dig first; nothing sent")
        dvg = self._check("dvg", dvg, "V")
        drg = self._check("drg", drg if drg is not None else self._drg or 0.0)
        self.converter.apply(dvg=dvg, drg=drg)
        self._dvg, self._drg = dvg, drg
        return {
            "meter": meter_json(self.converter.meters()),
            "vdis": vdis_json(self.converter.voltage_reference()),
        }

    def _config_limits(self) -> Limits:
        if self._limits is None:
            self._limits = self.converter.limits()
        return self._limits

    # -- checks (nothing sent yet) ---------------------------------------------------------
    def _check(self, name: str, value: float, unit: str = "") -> float:
        low, high = self.converter.field_range(name)
        if name == "dvg":
            high = min(high, self.converter.rating.voltage)
        return check_setpoint(f"unit {self.unit_id}", name, value, low, high, unit)

    def _check_dig(self, dig: float) -> float:
        if dig < 0:
            raise ServiceError(
                400,
                f"dig={dig:g} is negative: dig is a magnitude (the mode gives the direction); "
                "nothing sent",
            )
        low, high = self.converter.field_range("dig")
        high = min(high, self.converter.rating.current)
        return check_setpoint(f"unit {self.unit_id}", "dig", dig, low, high, "A")

    def _check_battery(self, mode: ConverterMode, dig: float) -> None:
        """Refuse a mode (or current) the battery's ``battery_operation_status`` forbids."""
        if mode is ConverterMode.WAIT:
            return
        permission = self.bms.read().permission
        forbidden = (
            (mode is ConverterMode.CHARGE and dig > 0 and not permission.may_charge)
            or (mode is ConverterMode.DISCHARGE and dig > 0 and not permission.may_discharge)
            or (mode is ConverterMode.VOLTAGE_REFERENCE and int(permission) == 0)
        )
        if forbidden:
            raise ServiceError(
                400,
                f"unit {self.unit_id}: {mode.name} refused: the battery's "
                f"battery_operation_status is {int(permission)} ({permission.name}); "
                "nothing was sent",
            )

    @contextmanager
    def _serving(self, what: str) -> Iterator[None]:
        """One request at a time per unit; errors become 400 or 503 with ``err``."""
        if not self._lock.acquire(timeout=self.queue_wait):
            raise ServiceError(
                503,
                f"unit {self.unit_id}: {what}: busy, an earlier request still waits for its "
                f"instruments after {self.queue_wait:g} s",
            )
        try:
            yield
        except ServiceError as exc:
            if str(exc).startswith(f"unit {self.unit_id}:"):
                raise
            raise ServiceError(exc.status, f"unit {self.unit_id}: {what}: {exc}") from None
        except (EnvelopeError, ConfigError, ValueError) as exc:
            raise ServiceError(400, f"unit {self.unit_id}: {what}: {exc}") from exc
        except InstrumentError as exc:
            log.warning("unit %s: %s failed: %s", self.unit_id, what, exc)
            raise ServiceError(
                503, f"unit {self.unit_id}: {what}: {self._instrument_of(exc)}: {exc}"
            ) from exc
        finally:
            self._lock.release()

    def _instrument_of(self, exc: InstrumentError) -> str:
        """The failing instrument's name (the converter's or the BMS's), from its resource."""
        resource = getattr(exc, "resource", "")
        for instrument in (self.converter, self.bms):
            if resource and instrument.resource == resource:
                return f"instrument {getattr(instrument, 'name', resource)}"
        names = [getattr(i, "name", i.resource) for i in (self.converter, self.bms)]
        return f"instrument {' or '.join(names)}"


def _describe(items: Sequence[tuple[str, str]]) -> str:
    return "&".join(f"{k}={v}" for k, v in items)
