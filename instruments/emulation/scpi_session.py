"""The SCPI line protocol: one :class:`ScpiSession` per connection, over TCP or a pty.

The session splits the byte stream into program messages at ``\\n`` (an optional ``\\r``
before it is dropped), has the shared :class:`~instruments.emulation.scpi_device.ScpiDevice`
execute each one, and returns one reply line per message that contained queries. Bad input
never raises: a message with bytes outside printable ASCII queues -101 "Invalid character";
a message longer than ``max_message`` bytes queues -223 "Too much data" and is discarded up
to its terminator. The same session serves LAN sockets and serial lines (pty or
``ASRLsocket://``), so the serial variant of an instrument is just another server::

    device = MyModel()
    factory = scpi_session_factory(device)
    port = await group.serve_tcp(factory, instrument="PS1", faults=f, terminator=b"\\n")
    path = await group.serve_pty(factory, instrument="PS1", faults=f, terminator=b"\\n")
"""

from __future__ import annotations

from collections.abc import Callable

from instruments.emulation import timing
from instruments.emulation.scpi_device import ScpiDevice
from instruments.emulation.scpi_parser import TOO_MUCH_DATA

MAX_MESSAGE = 64 * 1024


class ScpiSession:
    """Line framing for one connection to a SCPI device (implements the transport Session)."""

    def __init__(
        self,
        device: ScpiDevice,
        *,
        max_message: int = MAX_MESSAGE,
        terminator: bytes = b"\n",
    ) -> None:
        self.device = device
        self.max_message = max_message
        self.terminator = terminator
        self._buffer = bytearray()
        self._discarding = False

    def feed(self, data: bytes) -> list[bytes]:
        """Consume bytes; execute every complete message; return the reply lines."""
        if not self._buffer and not self._discarding:
            line, newline, rest = data.partition(b"\n")
            if newline and not rest and len(line) <= self.max_message:
                # One whole message, as clients send them: run it without buffering (one
                # that is too long takes the general path, which refuses it).
                if line[-1:] == b"\r":
                    line = line[:-1]
                if timing.collecting():
                    note_commands(line)
                text = self.device.execute_line(line)
                return [] if text is None else [text.encode("ascii", "replace") + self.terminator]
        replies: list[bytes] = []
        self._buffer += data
        start = 0
        buffer = self._buffer
        while True:
            end = buffer.find(b"\n", start)
            if end < 0:
                break
            if self._discarding:
                self._discarding = False
            else:
                reply = self._message(bytes(buffer[start:end]))
                if reply is not None:
                    replies.append(reply)
            start = end + 1
        del buffer[:start]
        if len(buffer) > self.max_message:
            if not self._discarding:
                self.device.push_error(TOO_MUCH_DATA, f"message over {self.max_message} bytes")
            self._discarding = True
            buffer.clear()
        return replies

    def _message(self, raw: bytes) -> bytes | None:
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if len(raw) > self.max_message:
            self.device.push_error(TOO_MUCH_DATA, f"message over {self.max_message} bytes")
            return None
        if timing.collecting():
            note_commands(raw)
        reply = self.device.execute_line(raw)
        if reply is None:
            return None
        return reply.encode("ascii", "replace") + self.terminator


def note_commands(message: bytes) -> None:
    """Tell the instrument's timing (:mod:`.timing`) what ``message`` holds: a ``read`` per
    query (a header ending in ``?``), a ``write`` per other command (``;`` separates them;
    a ``;`` inside a quoted string parameter would count one command too many)."""
    for part in message.split(b";"):
        words = part.split(None, 1)
        if words:
            timing.note("read" if words[0].endswith(b"?") else "write")


def scpi_session_factory(
    device: ScpiDevice, *, max_message: int = MAX_MESSAGE, terminator: bytes = b"\n"
) -> Callable[[], ScpiSession]:
    """A zero-argument factory of sessions on ``device``, for the transport servers."""

    def make() -> ScpiSession:
        return ScpiSession(device, max_message=max_message, terminator=terminator)

    return make
