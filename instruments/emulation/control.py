"""The emulator's control channel: JSON lines over TCP, for tests and people.

One request per line, one reply per line. A request is an object with ``cmd`` and the
command's fields; an optional ``id`` is echoed back. Replies are ``{"ok": true, ...}`` or
``{"ok": false, "error": "..."}``; every line gets a reply and a malformed request never
closes the connection: not JSON (``NaN``/``Infinity`` included: they are not JSON), nested
too deep, an integer too long, an ``id`` that is not a string or a finite number, a line
over 1 MiB (the rest of that line is skipped).

``advance`` runs in slices of at most :data:`ADVANCE_SLICE_S` simulated seconds and yields
to the event loop between them, so instruments, the watchdog and signals keep being served
during a long advance; one request may advance at most :data:`MAX_ADVANCE_S`.

The channel also owns the *watchdog*: a client that sends ``arm_watchdog {seconds}`` must
keep talking (any request counts) at least that often and must not close its connection;
otherwise the emulator makes every output safe, as an armed instrument would. The watchdog
belongs to the connection that armed it: only that connection re-arms or disarms it. The
protocol is documented in ``docs/emulator-control.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 1 << 20
#: The most simulated time one ``advance`` request may ask for (31 days).
MAX_ADVANCE_S = 31 * 86_400.0
#: ``advance`` goes in slices of this many simulated seconds (the plant's longest step),
#: yielding to the event loop between slices; fixed in simulated time so that results do
#: not depend on how fast the machine is.
ADVANCE_SLICE_S = 60.0
_READ_CHUNK = 1 << 16


class ControlTarget(Protocol):
    """What the control channel drives: the emulator process."""

    def status(self) -> dict[str, Any]: ...

    def time(self) -> float: ...

    def advance(self, seconds: float) -> float: ...

    def fault(self, instrument: str, kind: str, params: dict[str, Any]) -> None: ...

    def clear(self, instrument: str | None) -> None: ...

    def set_value(self, unit: str, field: str, value: Any) -> None: ...

    def reseed(self, seed: int) -> None: ...

    def make_safe(self, reason: str) -> None: ...


class RequestError(Exception):
    """A control request is malformed or names something that does not exist."""


@dataclass
class _Watchdog:
    """One armed watchdog: the connection that armed it and its period in wall seconds."""

    owner: int
    seconds: float
    last_seen: float


@dataclass
class ControlServer:
    """Serves the control channel for one :class:`ControlTarget` on an asyncio loop."""

    target: ControlTarget
    on_shutdown: Callable[[], Awaitable[None] | None]
    host: str = "127.0.0.1"
    port: int = 0
    #: Awaited before every ``advance``: the emulator reads every byte its instruments'
    #: clients sent before it, so simulated time never overtakes a write (causality).
    before_advance: Callable[[], Awaitable[None]] | None = None
    _server: asyncio.Server | None = None
    _watchdog: _Watchdog | None = None
    _watch_task: asyncio.Task[None] | None = None
    _next_client: int = 0
    _writers: dict[int, asyncio.StreamWriter] = field(default_factory=dict)
    _busy: set[int] = field(default_factory=set)
    _advance_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _stopping: bool = False

    async def start(self) -> tuple[str, int]:
        """Bind and start serving; returns the bound host and port."""
        self._server = await asyncio.start_server(
            self._serve_client, self.host, self.port, limit=MAX_REQUEST_BYTES
        )
        sock = self._server.sockets[0].getsockname()
        self.port = int(sock[1])
        self._watch_task = asyncio.create_task(self._watch())
        return self.host, self.port

    async def stop(self) -> None:
        """Stop serving and close every client connection."""
        self._stopping = True
        if self._watch_task is not None:
            self._watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch_task
        for writer in list(self._writers.values()):
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def watchdog_state(self) -> dict[str, Any] | None:
        """The armed watchdog, for ``status`` (None when disarmed)."""
        if self._watchdog is None:
            return None
        return {"seconds": self._watchdog.seconds, "client": self._watchdog.owner}

    async def _serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        client = self._next_client
        self._next_client += 1
        self._writers[client] = writer
        peer = writer.get_extra_info("peername")
        log.info("control client %d connected from %s", client, peer)
        lines = _LineReader(reader)
        try:
            while True:
                try:
                    line = await lines.next()
                except ConnectionError:
                    break
                self._touch(client)
                if line is None:
                    break
                if isinstance(line, _Overlong):
                    error = f"request longer than {MAX_REQUEST_BYTES} bytes (1 MiB); skipped"
                    await self._reply(writer, {"ok": False, "error": error})
                    continue
                if not line.strip():
                    continue
                self._busy.add(client)
                try:
                    reply = await self._handle_line(client, line)
                finally:
                    self._busy.discard(client)
                    self._touch(client)
                await self._reply(writer, reply)
                if reply.get("shutdown"):
                    break
        finally:
            self._writers.pop(client, None)
            writer.close()
            log.info("control client %d disconnected", client)
            self._client_gone(client)

    async def _reply(self, writer: asyncio.StreamWriter, reply: dict[str, Any]) -> None:
        try:
            text = json.dumps(reply, allow_nan=False)
        except (ValueError, TypeError, RecursionError) as exc:
            log.error("control reply not serialisable (%s): %.200r", exc, reply)
            text = json.dumps({"ok": False, "error": f"reply not serialisable as JSON: {exc}"})
        try:
            writer.write(text.encode() + b"\n")
            await writer.drain()
        except (ConnectionError, RuntimeError):
            log.debug("control reply lost: client went away")

    def _touch(self, client: int) -> None:
        dog = self._watchdog
        if dog is not None and dog.owner == client:
            dog.last_seen = asyncio.get_running_loop().time()

    def _client_gone(self, client: int) -> None:
        dog = self._watchdog
        if dog is not None and dog.owner == client:
            self._watchdog = None
            self.target.make_safe(f"watchdog: client {client} closed its control connection")

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            dog = self._watchdog
            period = 0.05 if dog is None else min(0.05, dog.seconds / 4)
            await asyncio.sleep(period)
            dog = self._watchdog
            if dog is not None and dog.owner in self._busy:
                continue  # the owner is waiting for a reply (e.g. a long advance)
            if dog is not None and loop.time() - dog.last_seen > dog.seconds:
                self._watchdog = None
                self.target.make_safe(
                    f"watchdog: client {dog.owner} silent for more than {dog.seconds:g} s"
                )

    async def _handle_line(self, client: int, line: bytes) -> dict[str, Any]:
        request_id: Any = None
        try:
            request = _parse(line)
            request_id = _request_id(request)
            reply = await self._dispatch(client, request)
        except RequestError as exc:
            reply = {"ok": False, "error": str(exc)}
        except Exception as exc:  # the channel must keep serving; the error goes back
            log.exception("control request failed")
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        if request_id is not None:
            reply["id"] = request_id
        return reply

    async def _advance(self, seconds: float) -> float:
        """Advance in slices of :data:`ADVANCE_SLICE_S`, yielding to the loop between them;
        one advance at a time (a second request waits for the first)."""
        async with self._advance_lock:
            end = self.target.time() + seconds
            now = self.target.advance(min(seconds, ADVANCE_SLICE_S))
            while end - now > 1e-9 * max(1.0, abs(end)):
                await asyncio.sleep(0)
                if self._stopping:
                    raise RequestError(f"emulator stopping; advance interrupted at t={now:g} s")
                now = self.target.advance(min(end - now, ADVANCE_SLICE_S))
            return now

    async def _dispatch(self, client: int, request: dict[str, Any]) -> dict[str, Any]:
        cmd = request.get("cmd")
        target = self.target
        if cmd == "status":
            status = target.status()
            status["watchdog"] = self.watchdog_state()
            return {"ok": True, **status}
        if cmd == "time":
            return {"ok": True, "time": target.time()}
        if cmd == "advance":
            seconds = _number(request, "seconds", minimum=0.0, maximum=MAX_ADVANCE_S)
            if self.before_advance is not None:
                await self.before_advance()
            return {"ok": True, "time": await self._advance(seconds)}
        if cmd == "fault":
            instrument = _text(request, "instrument")
            kind = _text(request, "kind")
            params = {
                k: v for k, v in request.items() if k not in {"cmd", "id", "instrument", "kind"}
            }
            target.fault(instrument, kind, params)
            return {"ok": True}
        if cmd == "clear":
            which = request.get("instrument")
            if which is not None and not isinstance(which, str):
                raise RequestError("'instrument' must be a string when given")
            target.clear(which)
            return {"ok": True}
        if cmd == "set":
            unit = _text(request, "unit")
            name = _text(request, "field")
            if "value" not in request:
                raise RequestError("'set' needs a 'value'")
            target.set_value(unit, name, request["value"])
            return {"ok": True}
        if cmd == "reseed":
            seed = request.get("seed")
            if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
                raise RequestError(f"'seed' must be an integer >= 0, got {seed!r}")
            target.reseed(seed)
            return {"ok": True}
        if cmd == "arm_watchdog":
            seconds = _number(request, "seconds", minimum=0.0)
            owner = self._watchdog.owner if self._watchdog is not None else client
            if owner != client:
                raise RequestError(
                    f"the watchdog is armed by control client {owner}; only that connection "
                    "can re-arm or disarm it (it trips if that connection closes)"
                )
            if seconds == 0:
                self._watchdog = None
                return {"ok": True, "watchdog": None}
            now = asyncio.get_running_loop().time()
            self._watchdog = _Watchdog(owner=client, seconds=seconds, last_seen=now)
            return {"ok": True, "watchdog": self.watchdog_state()}
        if cmd == "shutdown":
            result = self.on_shutdown()
            if result is not None:
                await result
            return {"ok": True, "shutdown": True}
        known = "status, time, advance, fault, clear, set, reseed, arm_watchdog, shutdown"
        raise RequestError(f"unknown cmd {cmd!r}; known: {known}")


def _text(request: dict[str, Any], key: str) -> str:
    value = request.get(key)
    if not isinstance(value, str) or not value:
        raise RequestError(f"'{request.get('cmd')}' needs '{key}' as a non-empty string")
    return value


def _number(
    request: dict[str, Any], key: str, *, minimum: float, maximum: float = math.inf
) -> float:
    value = request.get(key)
    need = f"'{request.get('cmd')}' needs '{key}' as a finite number"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RequestError(need)
    try:
        number = float(value)
    except OverflowError:
        raise RequestError(f"{need}; got an integer of {len(str(value))} digits") from None
    if not math.isfinite(number):
        raise RequestError(need)
    if number < minimum:
        raise RequestError(f"'{key}' must be at least {minimum:g}, got {number:g}")
    if number > maximum:
        raise RequestError(
            f"'{key}' must be at most {maximum:g} per request, got {number:g}; "
            "advance in several requests"
        )
    return number


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _parse(line: bytes) -> dict[str, Any]:
    """The request object on ``line``; :class:`RequestError` for anything else."""
    try:
        request = json.loads(line, parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise RequestError(f"not a JSON object: not UTF-8 text ({exc.reason})") from None
    except RecursionError:
        raise RequestError("not a JSON object: nested too deep") from None
    except ValueError as exc:  # JSONDecodeError, NaN/Infinity, an integer too long
        raise RequestError(f"not a JSON object: {exc}") from None
    if not isinstance(request, dict):
        raise RequestError("a request must be a JSON object with a 'cmd' field")
    return request


def _request_id(request: dict[str, Any]) -> Any:
    """The request's ``id`` if it can be echoed: a string or a finite number (or none)."""
    value = request.get("id")
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    if isinstance(value, int) and abs(value) < 1 << 63:
        return value
    raise RequestError("'id' must be a string or a finite number (integers within 64 bits)")


class _Overlong:
    """Marks a line that exceeded :data:`MAX_REQUEST_BYTES`."""


_OVERLONG: Final = _Overlong()


class _LineReader:
    """Lines of one connection, bounded: a line over :data:`MAX_REQUEST_BYTES` yields
    :data:`_OVERLONG` once and is skipped up to its end, and the connection goes on."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader
        self._buffer = bytearray()
        self._skipping = False

    async def next(self) -> bytes | _Overlong | None:
        """The next line (newline included), :data:`_OVERLONG`, or None at the end."""
        buf = self._buffer
        while True:
            end = buf.find(b"\n")
            if end >= 0:
                line = bytes(buf[: end + 1])
                del buf[: end + 1]
                if self._skipping:
                    self._skipping = False
                    continue
                return _OVERLONG if len(line) > MAX_REQUEST_BYTES else line
            if len(buf) > MAX_REQUEST_BYTES:
                buf.clear()
                if not self._skipping:
                    self._skipping = True
                    return _OVERLONG
            chunk = await self._reader.read(_READ_CHUNK)
            if not chunk:
                return None
            buf += chunk
