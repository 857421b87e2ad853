"""V2H charger/discharger (EV class 0x027E) over ECHONET Lite: unicast UDP, TID matching.

Resource: ``echonet://HOST[:PORT]/EOJ`` (``echonet://192.168.0.50/027E01``; port 3610 unless
given — the emulator binds an ephemeral one). Frames and the property table are
:mod:`instruments.wire.echonet` (ECHONET Lite Part II §3.2, Appendix class 0x027E; pychonet).

Each request gets a new TID; a reply counts only if it comes from the resource's address
and port with that TID and from the addressed object. No reply within ``timeout`` → the
same frame is sent again, ``retries`` times in all, then ``InstrumentTimeout``. An SNA
reply (SetC_SNA 0x51, Get_SNA 0x52, SetGet_SNA 0x5E) raises ``InstrumentReportedError``
naming each refused property and the value that was sent. INF frames from the unit
(announcements of 0x80, 0xDA, 0xC7) are kept as :class:`~instruments.roles.EvNotice`.

What each role method sends (ECHONET Lite ESV, EPC = value):

- ``power_on``: SetC 0x80 = 0x30.
- ``confirm_connection``: SetC 0xCD = 0x10, then Get 0xC7 (the connection is read only
  after the check, Appendix 0x027E).
- ``measure``: one Get of 0x80, 0xDA, 0xD3, 0xD4, 0xD5, 0xE2, 0xE4 (and 0xC7, which may be
  refused before a check: then it is None). ``current = -0xD4`` (0xD4 is positive while the
  car charges).
- ``start``: SetC of the method 0xDC/0xDD = 0x04 (designated current), the current
  0xED/0xEE, the amount 0xE7/0xEA, then SetC 0xDA = 0x42 (charge) / 0x43 (discharge).
- ``set_level``: SetC 0xED/0xEE. ``standby`` / ``safe_off_actions``: SetC 0xDA = 0x44.
- ``identify``: Get 0x8A (maker code), 0x8C (product code), 0x8D (serial), 0x82 (release).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
import tomllib
from collections.abc import Sequence
from pathlib import Path

from instruments.errors import (
    CommunicationError,
    ConfigError,
    InstrumentReportedError,
    InstrumentTimeout,
    MalformedReply,
)
from instruments.families import Family, register

from .base import Identity, Rating, check_setpoint
from .roles import EvConnection, EvMode, EvNotice, EvReading, SafeAction
from .wire import echonet as el
from .wire.echonet import Esv, FieldRangeError, Frame, FrameError, Method, Property

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 2.0
RATINGS_FILE = Path(__file__).with_name("echonet_v2h.toml")
DEFAULT_MODEL = "V2H-DC-6K"
_SNA = frozenset({Esv.SETI_SNA, Esv.SETC_SNA, Esv.GET_SNA, Esv.INF_SNA, Esv.SETGET_SNA})
_MEASURED = (0x80, 0xDA, 0xD3, 0xD4, 0xD5, 0xE2, 0xE4, 0xC7)


def model_rating(model: str) -> Rating:
    """Rating of a V2H model from ``echonet_v2h.toml`` (``ConfigError`` if unknown)."""
    with RATINGS_FILE.open("rb") as handle:
        tables = tomllib.load(handle)
    row = tables.get(model)
    if row is None:
        raise ConfigError(
            f"echonet_v2h: unknown model {model!r}; known: {', '.join(sorted(tables))}"
        )
    current = max(float(row["current_source_max"]), float(row["current_sink_max"]))
    return Rating(voltage=float(row["voltage_max"]), current=current, power=float(row["power_max"]))


class UdpLink:
    """A UDP socket bound to an ephemeral local port, talking to one endpoint."""

    def __init__(self, endpoint: el.Endpoint, resource: str, timeout: float) -> None:
        if not timeout > 0:
            raise ConfigError(f"{resource}: timeout must be > 0 s, got {timeout!r}")
        self.endpoint = endpoint
        self.resource = resource
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._peer: tuple[str, int] | None = None

    def open(self) -> None:
        try:
            infos = socket.getaddrinfo(
                self.endpoint.host, self.endpoint.port, type=socket.SOCK_DGRAM
            )
            family, _, _, _, address = infos[0]
            sock = socket.socket(family, socket.SOCK_DGRAM)
        except OSError as exc:
            raise CommunicationError(f"cannot open UDP: {exc}", resource=self.resource) from None
        sock.bind(("", 0))
        self._sock = sock
        self._peer = (str(address[0]), int(address[1]))

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def send(self, data: bytes, command: str) -> None:
        if self._sock is None or self._peer is None:
            self.open()
        assert self._sock is not None and self._peer is not None
        try:
            self._sock.sendto(data, self._peer)
        except OSError as exc:
            raise CommunicationError(
                f"send failed: {exc}", resource=self.resource, command=command
            ) from None

    def receive(self, until: float) -> tuple[bytes, tuple[str, int]] | None:
        """One datagram from the endpoint before monotonic ``until``, or None."""
        sock = self._sock
        assert sock is not None
        while (left := until - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data, addr = sock.recvfrom(el.MAX_FRAME_BYTES + 1)
            except TimeoutError:
                return None
            except OSError as exc:
                log.debug("%s: receive: %s", self.resource, exc)
                continue
            if self._peer is not None and (str(addr[0]), int(addr[1])) == self._peer:
                return data, addr
        return None


class EchonetV2h:
    """An EV charger/discharger object over ECHONET Lite. Every call holds the driver's lock."""

    def __init__(
        self,
        resource: str,
        *,
        name: str = "v2h",
        timeout: float = DEFAULT_TIMEOUT_S,
        retries: int = 3,
        rating: Rating | None = None,
        model: str = DEFAULT_MODEL,
    ) -> None:
        try:
            self.endpoint = el.parse_resource(resource)
        except FieldRangeError as exc:
            raise ConfigError(f"{name}: {exc}") from None
        if self.endpoint.eoj.class_code != el.EV_CHARGER_DISCHARGER:
            raise ConfigError(
                f"{name}: {resource} addresses class 0x{self.endpoint.eoj.class_code:04X}, "
                "not an EV charger/discharger (0x027E)"
            )
        self.name = name
        self.rating = rating if rating is not None else model_rating(model)
        self.retries = max(1, int(retries))
        self._resource = resource
        self._link = UdpLink(self.endpoint, resource, timeout)
        self._lock = threading.RLock()
        self._tid = 0
        self._notices: list[EvNotice] = []
        self._ranges: dict[bool, tuple[float, float]] = {}

    @classmethod
    def open(
        cls,
        resource: str,
        *,
        name: str = "v2h",
        timeout: float = DEFAULT_TIMEOUT_S,
        retries: int = 3,
        rating: Rating | None = None,
        model: str = DEFAULT_MODEL,
    ) -> EchonetV2h:
        """Open a UDP socket for ``resource`` (nothing is sent yet)."""
        driver = cls(
            resource, name=name, timeout=timeout, retries=retries, rating=rating, model=model
        )
        driver._link.open()
        return driver

    @property
    def resource(self) -> str:
        return self._resource

    def __repr__(self) -> str:
        return f"EchonetV2h({self.name!r}, resource={self._resource!r})"

    # ---- transactions --------------------------------------------------------------------
    def transact(self, esv: Esv, props: Sequence[Property], gets: Sequence[Property] = ()) -> Frame:
        """Send one request and return its reply (``InstrumentReportedError`` on SNA)."""
        request, reply = self._exchange(esv, props, gets)
        if reply.esv in _SNA:
            raise InstrumentReportedError(f"{self.name}: {_refusal(request, reply)}")
        return reply

    def _exchange(
        self, esv: Esv, props: Sequence[Property], gets: Sequence[Property] = ()
    ) -> tuple[Frame, Frame]:
        """The request sent and its reply, SNA or not (retries, then ``InstrumentTimeout``)."""
        with self._lock:
            self._tid = (self._tid + 1) & 0xFFFF or 1
            request = Frame(
                self._tid, el.CONTROLLER, self.endpoint.eoj, esv, tuple(props), tuple(gets)
            )
            data = el.encode(request)
            command = _describe(request)
            for attempt in range(1, self.retries + 1):
                self._link.send(data, command)
                reply = self._await(request, command)
                if reply is not None:
                    break
                log.info("%s: no reply to %s (attempt %d)", self.name, command, attempt)
            else:
                raise InstrumentTimeout(
                    f"{self.name}: no reply within {self._link.timeout:g} s, "
                    f"{self.retries} attempt(s)",
                    resource=self._resource,
                    command=command,
                )
        return request, reply

    def _await(self, request: Frame, command: str) -> Frame | None:
        until = time.monotonic() + self._link.timeout
        while (got := self._link.receive(until)) is not None:
            try:
                frame = el.decode(got[0])
            except FrameError as exc:
                raise MalformedReply(
                    f"{self.name}: {exc}", resource=self._resource, command=command
                ) from None
            if frame.esv in (Esv.INF, Esv.INFC):
                self._note(frame)
                continue
            if frame.tid == request.tid and frame.seoj == request.deoj:
                return frame
            log.debug("%s: ignored a frame with TID %d", self.name, frame.tid)
        return None

    def _note(self, frame: Frame) -> None:
        now = time.monotonic()
        for prop in frame.props:
            spec = el.EV_TABLE.get(prop.epc)
            if spec is None:
                continue
            try:
                value = spec.decode_value(prop.edt)
            except FieldRangeError:
                continue
            text = (
                spec.values.get(int(value), str(value))
                if spec.values and isinstance(value, int)
                else str(value)
            )
            self._notices.append(EvNotice(now, prop.epc, spec.name, text))

    def get(self, *epcs: int) -> dict[int, el.PhysicalValue | None]:
        """Physical values of ``epcs`` (one Get); an EPC the unit refused maps to None."""
        _, reply = self._exchange(Esv.GET, [Property(epc) for epc in epcs])
        return self._values(reply)

    def _values(self, reply: Frame) -> dict[int, el.PhysicalValue | None]:
        out: dict[int, el.PhysicalValue | None] = {}
        for prop in reply.props:
            spec = el.EV_TABLE.get(prop.epc)
            if spec is None or not prop.edt:
                out[prop.epc] = None
                continue
            try:
                out[prop.epc] = spec.decode_value(prop.edt)
            except FieldRangeError as exc:
                raise MalformedReply(
                    f"{self.name}: {exc}", resource=self._resource, command="Get"
                ) from None
        return out

    def set(self, *values: tuple[int, el.PhysicalValue]) -> None:
        """SetC of (EPC, physical value) pairs; refused values are checked before sending."""
        props = []
        for epc, value in values:
            try:
                props.append(Property(epc, el.EV_TABLE[epc].encode_value(value)))
            except FieldRangeError as exc:
                raise ConfigError(f"{self.name}: {exc}; nothing sent") from None
        self.transact(Esv.SETC, props)

    # ---- Instrument ------------------------------------------------------------------------
    def identify(self) -> Identity:
        """Maker code (0x8A), product code (0x8C), serial (0x8D), Appendix release (0x82)."""
        values = self.get(0x8A, 0x8C, 0x8D, 0x82)
        maker = values.get(0x8A)
        release = values.get(0x82)
        vendor = f"ECHONET maker 0x{maker.hex().upper()}" if isinstance(maker, bytes) else "?"
        firmware = ""
        if isinstance(release, bytes) and len(release) == 4 and 0x41 <= release[2] <= 0x5A:
            firmware = f"Appendix Release {chr(release[2])}"
        return Identity(
            vendor,
            str(values.get(0x8C) or "EV charger/discharger"),
            str(values.get(0x8D) or ""),
            firmware,
        )

    def probe(self) -> Identity:
        self.get(0x80)
        return self.identify()

    def reconnect(self) -> None:
        with self._lock:
            self._link.close()
            self._link.open()

    def close(self) -> None:
        with self._lock:
            self._link.close()

    # ---- EvCharger role --------------------------------------------------------------------
    def current_range(self, charge: bool) -> tuple[float, float]:
        """0xCA (charge) or 0xCB (discharge), read once and kept."""
        if charge not in self._ranges:
            epc = 0xCA if charge else 0xCB
            value = self.get(epc)[epc]
            if not isinstance(value, tuple):
                raise MalformedReply(
                    f"{self.name}: no current range in 0x{epc:02X}", resource=self._resource
                )
            self._ranges[charge] = (float(value[0]), float(value[1]))
        return self._ranges[charge]

    def power_on(self) -> None:
        self.set((0x80, el.OperationStatus.ON))

    def confirm_connection(self) -> EvConnection:
        self.set((0xCD, el.CONNECTION_CHECK))
        value = self.get(0xC7)[0xC7]
        if not isinstance(value, int):
            raise MalformedReply(
                f"{self.name}: 0xC7 unreadable after the connection check", resource=self._resource
            )
        return EvConnection(value)

    def measure(self) -> EvReading:
        v = self.get(*_MEASURED)
        mode, status = v.get(0xDA), v.get(0x80)
        connection = v.get(0xC7)
        if not isinstance(mode, int) or not isinstance(status, int):
            raise MalformedReply(
                f"{self.name}: operation status or mode missing from a Get", resource=self._resource
            )
        return EvReading(
            voltage=_number(v.get(0xD5)),
            current=-_number(v.get(0xD4)) + 0.0,
            power=-_number(v.get(0xD3)) + 0.0,
            soc_percent=_number(v.get(0xE4)),
            remaining_wh=_number(v.get(0xE2)),
            mode=EvMode(mode),
            connection=EvConnection(connection) if isinstance(connection, int) else None,
            on=status == el.OperationStatus.ON,
        )

    def _check_amps(self, amps: float, charge: bool) -> float:
        low, high = self.current_range(charge)
        what = "charging current" if charge else "discharging current"
        return check_setpoint(self.name, what, amps, low, min(high, self.rating.current), "A")

    def start(self, amps: float, *, charge: bool, amount_wh: int = 0) -> None:
        amps = self._check_amps(amps, charge)
        method, current, amount = (0xDC, 0xED, 0xE7) if charge else (0xDD, 0xEE, 0xEA)
        mode = EvMode.CHARGE if charge else EvMode.DISCHARGE
        with self._lock:
            self.set((method, Method.DESIGNATED_CURRENT), (current, amps), (amount, int(amount_wh)))
            self.set((0xDA, mode))

    def set_level(self, amps: float, *, charge: bool) -> None:
        amps = self._check_amps(amps, charge)
        self.set((0xED if charge else 0xEE, amps))

    def standby(self) -> None:
        self.set((0xDA, EvMode.STANDBY))

    def notices(self) -> list[EvNotice]:
        with self._lock:
            out, self._notices = self._notices, []
        return out

    def safe_off_actions(self) -> list[SafeAction]:
        return [("operation mode standby (SetC 0xDA = 0x44)", self.standby)]


def _number(value: el.PhysicalValue | None) -> float:
    return float(value) if isinstance(value, int | float) else float("nan")


def _describe(frame: Frame) -> str:
    names = ", ".join(
        f"0x{p.epc:02X}" + (f"={p.edt.hex().upper()}" if p.edt else "")
        for p in (*frame.props, *frame.gets)
    )
    return f"{Esv(frame.esv).name} {names}"


def _refusal(request: Frame, reply: Frame) -> str:
    """Which properties an SNA refused, with the value that was sent."""
    sent = {p.epc: p for p in (*request.props, *request.gets)}
    refused = []
    for prop in (*reply.props, *reply.gets):
        asked = sent.get(prop.epc)
        is_set = asked is not None and asked.edt and request.esv != Esv.GET
        if (is_set and prop.edt) or (not is_set and not prop.edt):
            spec = el.EV_TABLE.get(prop.epc)
            name = spec.name if spec else "unknown property"
            value = f" = 0x{asked.edt.hex().upper()}" if is_set and asked else ""
            if is_set and spec is not None and asked is not None:
                with contextlib.suppress(FieldRangeError):
                    value = f" = {spec.decode_value(asked.edt)!r}"
            refused.append(f"EPC 0x{prop.epc:02X} ({name}){value}")
    esv = Esv(reply.esv).name
    return f"{esv}: the unit refused {', '.join(refused) or 'the request'}"


#: The family a bench file names ``driver = "echonet_v2h"`` (ratings: ``echonet_v2h.toml``).
FAMILY = register(
    Family(
        name="echonet_v2h",
        function="ev",
        transport="echonet_udp",
        description="V2H EV charger/discharger (ECHONET Lite class 0x027E, unicast UDP)",
        opener=EchonetV2h.open,
        ratings="echonet_v2h.toml",
        open_keywords=frozenset({"rating", "retries", "model"}),
    )
)
