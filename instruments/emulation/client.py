"""A blocking client of the emulator's control channel (JSON lines over TCP).

Used by the pytest plugin, the simulated clock and people at a Python prompt. One request at
a time per client (a lock serialises threads); a reply with ``ok: false`` raises
:class:`EmulatorControlError` carrying the emulator's own message.

Every request carries an ``id`` (the channel echoes it) and the client reads until the
reply with that id: a request cut short on this side (a Ctrl-C between sending and reading)
leaves its reply in the stream, and the next request skips it instead of taking it for
its own.
"""

from __future__ import annotations

import json
import socket
import threading
from typing import Any

from instruments.errors import CommunicationError, HilError


class EmulatorControlError(HilError):
    """The emulator refused a control request; the message is the emulator's."""


class ControlClient:
    """Talks to ``control HOST:PORT`` of a running emulator."""

    def __init__(self, address: str, *, timeout: float = 30.0) -> None:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"control address must be HOST:PORT, got {address!r}")
        self.address = address
        self._lock = threading.Lock()
        try:
            self._sock = socket.create_connection((host, int(port)), timeout=timeout)
        except OSError as exc:
            raise CommunicationError(
                f"cannot reach the emulator's control channel: {exc}", resource=address
            ) from None
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._reader = self._sock.makefile("rb")
        self._next_id = 0

    def request(self, cmd: str, **fields: Any) -> dict[str, Any]:
        """Send one request and return the reply; raises on ``ok: false`` or a dead line."""
        with self._lock:
            self._next_id += 1
            request_id = self._next_id
            line = json.dumps({"cmd": cmd, **fields, "id": request_id}).encode() + b"\n"
            try:
                self._sock.sendall(line)
                reply = self._read_reply(request_id, cmd)
            except OSError as exc:
                raise CommunicationError(
                    f"control channel failed: {exc}", resource=self.address, command=cmd
                ) from None
        if not reply.get("ok"):
            raise EmulatorControlError(f"emulator refused {cmd!r}: {reply.get('error')}")
        return reply

    def _read_reply(self, request_id: int, cmd: str) -> dict[str, Any]:
        """The reply to ``request_id``, skipping replies to requests abandoned earlier."""
        while True:
            raw = self._reader.readline()
            if not raw:
                raise CommunicationError(
                    "the emulator closed its control channel", resource=self.address, command=cmd
                )
            reply: dict[str, Any] = json.loads(raw)
            if reply.pop("id", None) == request_id:
                return reply

    def status(self) -> dict[str, Any]:
        return self.request("status")

    def time(self) -> float:
        return float(self.request("time")["time"])

    def advance(self, seconds: float) -> float:
        """Simulate ``seconds`` more; returns the new simulated time."""
        return float(self.request("advance", seconds=seconds)["time"])

    def fault(self, instrument: str, kind: str, **params: Any) -> None:
        self.request("fault", instrument=instrument, kind=kind, **params)

    def clear(self, instrument: str | None = None) -> None:
        if instrument is None:
            self.request("clear")
        else:
            self.request("clear", instrument=instrument)

    def set(self, unit: str, field: str, value: Any) -> None:
        self.request("set", unit=unit, field=field, value=value)

    def reseed(self, seed: int) -> None:
        """Restart the plant's sensor noise from ``seed`` (reproducible readings)."""
        self.request("reseed", seed=seed)

    def arm_watchdog(self, seconds: float) -> None:
        self.request("arm_watchdog", seconds=seconds)

    def shutdown(self) -> None:
        self.request("shutdown")

    def close(self) -> None:
        try:
            self._reader.close()
        finally:
            self._sock.close()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
