"""Instrument timing: how long a real instrument takes to answer, applied by the emulator.

On loopback an emulated instrument answers in microseconds; a real one takes milliseconds:
it processes each command (a figure per model and command kind, from the family's ratings
file, ``instruments.families.CommandTiming``) and, on a serial line, every byte of the
request and of the reply crosses the wire at the baud rate. With ``timing = "real"`` the
emulator holds each reply until the instrument would have sent its last byte.

One :class:`InstrumentTiming` per instrument, shared by all its connections: the instrument
does one thing at a time, so a command waits for the one before it (``busy_until``). For
one chunk of input (as the transport reads it) carrying commands of kinds ``k1..kn`` in
``b_in`` bytes and producing replies of ``b_out`` bytes, the instrument is busy for::

    line(b_in) + latency(k1) + ... + latency(kn) + line(b_out)

from ``max(arrival, busy_until)``, and the replies leave at the end of that span. A
set-only command has no reply but still keeps the instrument busy. ``line(b)`` is 0 on a
LAN and ``(b + gap) * bits_per_char / baud`` on a serial line (:class:`SerialLine`).

The protocol sessions say which commands a chunk held by calling :func:`note` while they
run (one call per command, ``"read"`` or ``"write"``); :meth:`InstrumentTiming.feed`
collects those calls around the session's ``feed``. Outside such a collection :func:`note`
costs one thread-local lookup. Every span is also added to the instrument's account
(:meth:`InstrumentTiming.account`), which the control channel's ``status`` reports: the
*emulated* time the instrument spent, independent of how loaded the host is.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from instruments.emulation.description import TIMING_MODES, TimingMode
from instruments.errors import ConfigError
from instruments.families import COMMAND_KINDS, CommandTiming

__all__ = ["TIMING_MODES", "InstrumentTiming", "SerialLine", "TimingMode", "collecting", "note"]


class _Collecting(threading.local):
    """Per thread (each emulator loop has its own): the commands noted by the session
    running now, or None when nobody collects."""

    kinds: list[str] | None = None


_state = _Collecting()


def collecting() -> bool:
    """True while :meth:`InstrumentTiming.feed` collects (a session may skip classifying
    its commands otherwise)."""
    return _state.kinds is not None


def note(kind: str) -> None:
    """Record that the running session handled one command of ``kind`` (``read``/``write``)."""
    kinds = _state.kinds
    if kinds is not None:
        kinds.append(kind)


@dataclass(frozen=True)
class SerialLine:
    """A serial line's character timing: ``baud`` bits/s, ``bits_per_char`` (start + data +
    parity + stop: 10 for 8N1, 11 for 8E1) and an idle ``gap_chars`` before each frame
    (Modbus RTU: 3.5 characters of silence, "MODBUS over Serial Line" V1.02, 2.5.1.1)."""

    baud: int
    bits_per_char: int = 10
    gap_chars: float = 0.0

    def __post_init__(self) -> None:
        if self.baud <= 0 or self.bits_per_char <= 0 or self.gap_chars < 0:
            raise ConfigError(
                f"serial line timing: baud {self.baud}, {self.bits_per_char} bits per "
                f"character and a gap of {self.gap_chars} characters must be positive"
            )

    def seconds(self, nbytes: int) -> float:
        """Time on the wire of a frame of ``nbytes`` (0 bytes: nothing is sent)."""
        if nbytes <= 0:
            return 0.0
        return (nbytes + self.gap_chars) * self.bits_per_char / self.baud


@dataclass
class TimingAccount:
    """What one instrument did under real timing: busy seconds, commands and bytes."""

    busy_s: float = 0.0
    line_s: float = 0.0
    processing_s: float = 0.0
    bytes_in: int = 0
    bytes_out: int = 0
    commands: Counter[str] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "busy_s": self.busy_s,
            "line_s": self.line_s,
            "processing_s": self.processing_s,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "commands": dict(sorted((self.commands or Counter()).items())),
        }


class InstrumentTiming:
    """The timing of one emulated instrument: when its replies may leave, and its account.

    ``command`` gives the processing time per command kind (None: 0 s, the line alone);
    ``line`` the serial line (None: a LAN, no transmission time).
    """

    def __init__(
        self,
        instrument: str,
        command: CommandTiming | None,
        line: SerialLine | None,
    ) -> None:
        self.instrument = instrument
        self.command = command
        self.line = line
        self.busy_until = -math.inf
        self.account = TimingAccount(commands=Counter())

    def latency(self, kind: str) -> float:
        """Processing time of one command of ``kind`` (0 without a timing table)."""
        if kind not in COMMAND_KINDS:
            raise ValueError(f"{self.instrument}: unknown command kind {kind!r}")
        return 0.0 if self.command is None else self.command.latency(kind)

    def line_seconds(self, nbytes: int) -> float:
        """Time on the wire of ``nbytes`` in one direction (0 on a LAN)."""
        return 0.0 if self.line is None else self.line.seconds(nbytes)

    def feed(
        self, feed: Callable[[bytes], list[bytes]], data: bytes, now: float
    ) -> tuple[list[bytes], float]:
        """Run ``feed(data)`` (a session's), noting its commands; return its replies and the
        time (on the clock of ``now``) at which they may leave."""
        outer = _state.kinds
        kinds: list[str] = []
        _state.kinds = kinds
        try:
            replies = feed(data)
        finally:
            _state.kinds = outer
        return replies, self.serve(kinds, len(data), sum(map(len, replies)), now)

    def serve(self, kinds: list[str], bytes_in: int, bytes_out: int, now: float) -> float:
        """Account for ``kinds`` arriving at ``now`` in ``bytes_in`` and answered in
        ``bytes_out``; returns when the instrument is done (its replies may leave)."""
        processing = sum(self.latency(kind) for kind in kinds)
        line = self.line_seconds(bytes_in) + self.line_seconds(bytes_out)
        span = processing + line
        start = max(now, self.busy_until)
        self.busy_until = start + span
        account = self.account
        account.busy_s += span
        account.line_s += line
        account.processing_s += processing
        account.bytes_in += bytes_in
        account.bytes_out += bytes_out
        assert account.commands is not None
        account.commands.update(kinds)
        return self.busy_until

    def describe(self) -> dict[str, Any]:
        """The account, for ``status`` (times in s)."""
        out = self.account.as_dict()
        out["mode"] = "real"
        out["baud"] = None if self.line is None else self.line.baud
        out["assumed"] = None if self.command is None else self.command.assumed
        return out
