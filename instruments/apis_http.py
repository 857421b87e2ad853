"""An APIS unit reached through its device service (apis-dcdc_batt_comm, interface v2, HTTP).

Two families share one service URL (``http://HOST:PORT``, 4380 in APIS's samples): the
converter (``apis_http``, role ``Converter``) and its battery (``apis_http_bms``, role
``Bms``). A bench file names an APIS installation's units by URL and the converter adapter
drives them as it drives an EZA-2500 and its BMS; the service drives the hardware.

Calls, as apis-main makes them (facts and sources: :mod:`instruments.wire.dcdc_batt_comm`):

- ``probe()``: ``GET /version/get``; the major of ``comm_interface_version`` must be ``2``
  (apis-main's negotiation), then ``GET /all/get``.
- ``mode()``: ``GET /dcdc/get`` (``status.status``, a mode code); ``status()`` and
  ``meters()``: ``GET /dcdc/get/status`` (``alarmState``; ``meter``, whose ``ig`` keeps
  APIS's sign, positive while charging; the API carries no ``ic``, reported as 0).
- ``apply(mode=, dvg=, drg=, dig=)`` and ``set_mode``: one ``GET /dcdc/set?mode=&dvg=&dig=
  &drg=`` with every parameter (the driver keeps the last values it set or read, so the
  service's own cache never decides); the answer's ``status.operationMode`` must be the
  mode's string, else :class:`~instruments.errors.InstrumentReportedError` (apis-main's
  hardware error). Without a mode: ``?dvg=&drg=`` and/or ``?dig=``.
- ``set_limits`` / ``set_grid_current``: ``GET /dcdc/set?dig=``. The service writes its own
  configured ``cib``/``ubv``/``ugv``/``obv``/``ogv`` with it (dcdc_batt_comm takes them from
  its ``dcdc_batt_comm.yml``, not from apis-main): the returned :class:`Limits` are the
  service's, not the ones asked for, and the difference is logged.
- ``clear_alarms()``: ``GET /remote/ioctl/clr_alarm`` (dcdc_batt_comm's route).
- The BMS: ``GET /battery/get`` → ``rsoc`` (%) and ``battery_operation_status``
  (:class:`~instruments.roles.Permission`).

Errors: no answer within ``timeout`` → :class:`~instruments.errors.InstrumentTimeout`; a
refused connection or an HTTP 5xx → :class:`~instruments.errors.CommunicationError`; HTTP
400 (the service refused, its ``err`` quoted) →
:class:`~instruments.errors.InstrumentReportedError`; a body that is not the expected JSON →
:class:`~instruments.errors.MalformedReply`. Nothing is retried (apis-main tries 3 times; the
bench's supervisor decides instead). The ranges checked before sending are the EZA-2500's
as APIS accepts them (:mod:`instruments.wire.eza2500`), since dcdc_batt_comm fronts one.
httpx maps httpcore's exceptions to its own, yet once in a full suite run an httpcore
``ReadTimeout`` came through unmapped (cause unknown); both kinds are caught, so no library
exception ever leaves the driver.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from typing import Any, NoReturn

import httpcore
import httpx

from instruments.errors import (
    CommunicationError,
    ConfigError,
    InstrumentReportedError,
    InstrumentTimeout,
    MalformedReply,
)
from instruments.families import Family, register

from .base import Identity, Rating, check_setpoint
from .roles import Alarm, BmsReading, Limits, Meters, Permission
from .wire.dcdc_batt_comm import (
    ALARM_STATES,
    OPERATION_MODES,
    SUPPORTED_MAJOR_VERSIONS,
    mode_code,
    parse_mode,
)
from .wire.eza2500 import FIELDS, Mode

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 5.0
#: An EZA-2500 behind the service (its wire protocol's full scale and 2.5 kW).
DEFAULT_RATING = Rating(voltage=380.0, current=7.8125, power=2500.0)


@dataclass(frozen=True)
class HttpStatus:
    """``status`` of ``/dcdc/get/status``: the alarm level and the running state."""

    alarm: Alarm
    running: str


class ServiceClient:
    """GETs against one dcdc_batt_comm service: JSON answers, errors mapped, one at a time."""

    def __init__(self, resource: str, *, timeout: float, name: str) -> None:
        url = httpx.URL(resource)
        if url.scheme not in ("http", "https") or not url.host:
            raise ConfigError(f"{name or resource}: {resource!r} is not an http://HOST:PORT URL")
        if not (math.isfinite(timeout) and timeout > 0):
            raise ConfigError(f"{name or resource}: timeout must be above 0, got {timeout!r}")
        self.resource = resource
        self.name = name or resource
        self.timeout = timeout
        self._lock = threading.RLock()
        self._client = self._new_client()

    def _new_client(self) -> httpx.Client:
        return httpx.Client(base_url=self.resource, timeout=self.timeout, trust_env=False)

    def get(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        """The JSON object answered to ``GET path?params`` (errors: see the module)."""
        command = f"GET {path}" + (
            "?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else ""
        )
        with self._lock:
            try:
                response = self._client.get(path, params=params)
            except (httpx.TimeoutException, httpcore.TimeoutException):
                raise InstrumentTimeout(
                    f"{self.name}: no answer within {self.timeout:g} s",
                    resource=self.resource,
                    command=command,
                ) from None
            except (httpx.HTTPError, httpcore.NetworkError, httpcore.ProtocolError) as exc:
                raise CommunicationError(
                    f"{self.name}: {exc!r}", resource=self.resource, command=command
                ) from None
        body = self._body(response, command)
        if response.status_code == 400:
            raise InstrumentReportedError(
                f"{self.name} (resource {self.resource}): {command} refused: "
                f"{body.get('err', body)}"
            )
        if response.status_code != 200:
            raise CommunicationError(
                f"{self.name}: HTTP {response.status_code}: {body.get('err', body)}",
                resource=self.resource,
                command=command,
            )
        return body

    def _body(self, response: httpx.Response, command: str) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            self.malformed(command, f"HTTP {response.status_code} with a body that is not JSON")
        if not isinstance(body, dict):
            self.malformed(command, f"HTTP {response.status_code} with JSON that is no object")
        return body

    def malformed(self, command: str, what: str) -> NoReturn:
        """Raise :class:`MalformedReply` for ``command``: ``what`` is wrong with its answer."""
        raise MalformedReply(f"{self.name}: {what}", resource=self.resource, command=command)

    def field(self, body: dict[str, Any], command: str, *path: str) -> Any:
        """``body[path[0]][path[1]]…``; ``MalformedReply`` naming the missing key."""
        value: Any = body
        for key in path:
            if not isinstance(value, dict) or key not in value:
                self.malformed(command, f"no {'.'.join(path)} in {body}")
            value = value[key]
        return value

    def number(self, body: dict[str, Any], command: str, *path: str) -> float:
        value = self.field(body, command, *path)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.malformed(command, f"{'.'.join(path)} is {value!r}, not a number")
        return float(value)

    def reopen(self) -> None:
        with self._lock:
            self._client.close()
            self._client = self._new_client()

    def close(self) -> None:
        with self._lock:
            self._client.close()


class ApisHttp:
    """The converter of one APIS unit, through its dcdc_batt_comm service (v2)."""

    def __init__(self, client: ServiceClient, *, rating: Rating = DEFAULT_RATING) -> None:
        self.client = client
        self.name = client.name
        self.rating = rating
        self._dvg: float | None = None
        self._dig: float | None = None
        self._drg: float | None = None
        self._version = ""

    @classmethod
    def open(
        cls,
        resource: str,
        *,
        rating: Rating = DEFAULT_RATING,
        timeout: float = DEFAULT_TIMEOUT_S,
        name: str = "",
    ) -> ApisHttp:
        """A client of the service at ``resource`` (``http://HOST:PORT``); no request yet."""
        return cls(ServiceClient(resource, timeout=timeout, name=name), rating=rating)

    @property
    def resource(self) -> str:
        return self.client.resource

    def __repr__(self) -> str:
        return f"ApisHttp({self.name!r}, resource={self.resource!r})"

    # -- identity --------------------------------------------------------------------------
    def negotiate(self) -> str:
        """``/version/get``: the interface version, refused unless its major is supported."""
        body = self.client.get("/version/get")
        version = str(self.client.field(body, "GET /version/get", "comm_interface_version"))
        major = version.split(".", 1)[0]
        if "." not in version or major not in SUPPORTED_MAJOR_VERSIONS:
            raise InstrumentReportedError(
                f"{self.name} (resource {self.resource}): comm_interface_version {version!r}; "
                f"this driver speaks major {', '.join(SUPPORTED_MAJOR_VERSIONS)}"
            )
        self._version = str(body.get("dcdc_batt_comm_version", ""))
        return version

    def probe(self) -> Identity:
        self.negotiate()
        self._remember(self.client.get("/all/get"), "GET /all/get")
        return self.identify()

    def identify(self) -> Identity:
        return Identity("Sony CSL", "apis-dcdc_batt_comm (EZA-2500)", "", self._version)

    # -- reading ---------------------------------------------------------------------------
    def mode(self) -> Mode:
        body = self.client.get("/dcdc/get")
        self._remember(body, "GET /dcdc/get")
        return self._mode_of(body, "GET /dcdc/get")

    def status(self) -> HttpStatus:
        body = self.client.get("/dcdc/get/status")
        state = self.client.field(body, "GET /dcdc/get/status", "status", "alarmState")
        if state not in ALARM_STATES:
            self.client.malformed("GET /dcdc/get/status", f"unknown alarmState {state!r}")
        running = str(body["status"].get("runningState", ""))
        return HttpStatus(Alarm(ALARM_STATES.index(state)), running)

    def meters(self) -> Meters:
        body = self.client.get("/dcdc/get/status")
        return self._meters(body, "GET /dcdc/get/status")

    @property
    def battery_current_rating(self) -> float:
        return FIELDS["cib"].rating

    def field_range(self, name: str) -> tuple[float, float]:
        """APIS's accepted range of ``name`` (the EZA-2500's; unbounded sides infinite)."""
        return FIELDS[name].accepted

    # -- setting ---------------------------------------------------------------------------
    def set_mode(self, mode: Mode) -> None:
        self.apply(mode=mode)

    def set_limits(self, limits: Limits) -> Limits:
        """Only ``dig`` travels (``/dcdc/set?dig=``); the rest is the service's own."""
        echo = self.set_grid_current(limits.dig)
        if echo != limits:
            log.info("%s: the service keeps its own limits %s (asked %s)", self.name, echo, limits)
        return echo

    def set_grid_current(self, dig: float) -> Limits:
        params = {"dig": _number(self._check("dig", dig, self.rating.current))}
        body = self.client.get("/dcdc/set", params)
        self._dig = float(params["dig"])
        return self._limits(body, "GET /dcdc/set?dig")

    def apply(
        self,
        *,
        mode: Mode | None = None,
        dvg: float | None = None,
        drg: float | None = None,
        dig: float | None = None,
    ) -> None:
        """One ``/dcdc/set``: with a mode every parameter travels (the last known ones
        where not given), and the answer's ``operationMode`` must be the mode's."""
        if dig is not None:
            dig = self._check("dig", dig, self.rating.current)
        if dvg is not None:
            dvg = self._check("dvg", dvg, self.rating.voltage)
        if drg is not None:
            drg = self._check("drg", drg, math.inf)
        if mode is None:
            if dvg is not None or drg is not None:
                self._set_voltage(dvg, drg)
            if dig is not None:
                self.set_grid_current(dig)
            return
        if None in (dvg if dvg is not None else self._dvg, dig if dig is not None else self._dig):
            self.mode()  # learns the service's present dvg, drg and dig
        params = {
            "mode": mode_code(mode),
            "dvg": _number(dvg if dvg is not None else self._dvg),
            "dig": _number(dig if dig is not None else self._dig),
            "drg": _number(drg if drg is not None else self._drg or 0.0),
        }
        body = self.client.get("/dcdc/set", params)
        command = "GET /dcdc/set?mode"
        got = self.client.field(body, command, "status", "operationMode")
        if got != OPERATION_MODES[mode]:
            raise InstrumentReportedError(
                f"{self.name} (resource {self.resource}): {mode.name} ({mode_code(mode)}) set, "
                f"but the service answers operationMode {got!r}, not {OPERATION_MODES[mode]!r}"
            )
        self._dvg, self._dig, self._drg = (float(params[k]) for k in ("dvg", "dig", "drg"))

    def _set_voltage(self, dvg: float | None, drg: float | None) -> None:
        if dvg is None:
            if self._dvg is None:
                self.mode()
            dvg = self._dvg
        params = {"dvg": _number(dvg), "drg": _number(drg if drg is not None else self._drg or 0)}
        self.client.get("/dcdc/set", params)
        self._dvg, self._drg = float(params["dvg"]), float(params["drg"])

    def clear_alarms(self) -> None:
        self.client.get("/remote/ioctl/clr_alarm")

    # -- plumbing --------------------------------------------------------------------------
    def _check(self, field: str, value: float, maximum: float) -> float:
        low, high = self.field_range(field)
        return check_setpoint(self.name, field, value, low, min(high, maximum), "")

    def _mode_of(self, body: dict[str, Any], command: str) -> Mode:
        code = self.client.field(body, command, "status", "status")
        try:
            return parse_mode(str(code))
        except ValueError as exc:
            self.client.malformed(command, str(exc))

    def _meters(self, body: dict[str, Any], command: str) -> Meters:
        values = {
            key: self.client.number(body, command, "meter", key)
            for key in ("vg", "ig", "vb", "ib", "wg", "wb", "tmp")
        }
        return Meters(ic=0.0, **values)

    def _limits(self, body: dict[str, Any], command: str) -> Limits:
        values = {
            key: self.client.number(body, command, "param", key)
            for key in ("cib", "dig", "ubv", "ugv", "obv", "ogv")
        }
        return Limits(**values)

    def _remember(self, body: dict[str, Any], command: str) -> None:
        """Keep the service's present ``dvg``/``drg``/``dig`` for later full sets."""
        self._dvg = self.client.number(body, command, "vdis", "dvg")
        self._drg = self.client.number(body, command, "vdis", "drg")
        self._dig = self.client.number(body, command, "param", "dig")

    def reconnect(self) -> None:
        self.client.reopen()

    def close(self) -> None:
        self.client.close()


class ApisHttpBms:
    """The battery of one APIS unit, through its dcdc_batt_comm service (``/battery/get``)."""

    def __init__(self, client: ServiceClient) -> None:
        self.client = client
        self.name = client.name

    @classmethod
    def open(
        cls, resource: str, *, timeout: float = DEFAULT_TIMEOUT_S, name: str = ""
    ) -> ApisHttpBms:
        return cls(ServiceClient(resource, timeout=timeout, name=name))

    @property
    def resource(self) -> str:
        return self.client.resource

    def read(self) -> BmsReading:
        command = "GET /battery/get"
        body = self.client.get("/battery/get")
        soc = self.client.number(body, command, "rsoc")
        status = self.client.number(body, command, "battery_operation_status")
        try:
            permission = Permission(int(status))
        except ValueError:
            self.client.malformed(command, f"battery_operation_status {status!r} is not 0-3")
        return BmsReading(soc_percent=soc, permission=permission)

    def probe(self) -> Identity:
        self.read()
        return self.identify()

    def identify(self) -> Identity:
        return Identity("Sony CSL", "apis-dcdc_batt_comm battery", "", "")

    def reconnect(self) -> None:
        self.client.reopen()

    def close(self) -> None:
        self.client.close()


def _number(value: float | None) -> str:
    assert value is not None
    return format(float(value) + 0.0, ".10g")


_NO_MODEL = (
    "its instrument is a running dcdc_batt_comm service, not a protocol to emulate: "
    "`hil emulate BENCH --apis` serves one in front of emulated units"
)

#: A bench file's ``driver = "apis_http"``: an APIS unit's converter behind its service.
FAMILY = register(
    Family(
        name="apis_http",
        function="converter",
        transport="http",
        description="APIS unit's converter through apis-dcdc_batt_comm's HTTP API (v2)",
        opener=ApisHttp.open,
        ratings="apis_http.toml",
        open_keywords=frozenset({"rating"}),
        no_emulator_model=_NO_MODEL,
    )
)
#: ``driver = "apis_http_bms"``: the same unit's battery (same URL).
BMS_FAMILY = register(
    Family(
        name="apis_http_bms",
        function="bms",
        transport="http",
        description="APIS unit's battery through apis-dcdc_batt_comm's HTTP API (v2)",
        opener=ApisHttpBms.open,
        ratings="apis_http.toml",
        no_emulator_model=_NO_MODEL,
    )
)
