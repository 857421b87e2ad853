"""A blocking client of the emulator's control channel (JSON lines over TCP).

Used by the pytest plugin, the simulated clock and people at a Python prompt. One request at
a time per client (a lock serialises threads); a reply with ``ok: false`` raises
:class:`EmulatorControlError` carrying the emulator's own message.
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

    def request(self, cmd: str, **fields: Any) -> dict[str, Any]:
        """Send one request and return the reply; raises on ``ok: false`` or a dead line."""
        line = json.dumps({"cmd": cmd, **fields}).encode() + b"\n"
        with self._lock:
            try:
                self._sock.sendall(line)
                raw = self._reader.readline()
            except OSError as exc:
                raise CommunicationError(
                    f"control channel failed: {exc}", resource=self.address, command=cmd
                ) from None
        if not raw:
            raise CommunicationError(
                "the emulator closed its control channel", resource=self.address, command=cmd
            )
        reply: dict[str, Any] = json.loads(raw)
        if not reply.get("ok"):
            raise EmulatorControlError(f"emulator refused {cmd!r}: {reply.get('error')}")
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
