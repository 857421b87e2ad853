"""Hostile input for every kind of emulated server, and the valid probe each must answer.

Used by the fuzz tests (``tests/test_fuzz_servers.py``) and the campaign
(``benchmarks/fuzz_campaign.py``). A :class:`FuzzKind` names the instrument it attacks
(a key of the emulator's resources, or ``control``), makes seeded junk (random bytes, valid
requests mutated, protocol-shaped nonsense, overlong and deeply nested input) and knows a
valid request and how to recognise its answer. A :class:`Link` is a raw byte connection to
a resource (TCP socket or pty slave) that writes while discarding whatever comes back, so a
server that replies to junk can never block the writer.

The junk never asks the control channel to shut down, to advance more than a minute or to
inject faults into a real instrument: those would stop or disturb the servers on purpose.
"""

from __future__ import annotations

import json
import os
import random
import re
import select
import socket
import struct
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass

from instruments.emulation.modbus import crc16, rtu_frame

#: How long a probe waits for its answer (wall seconds); generous for a loaded machine.
PROBE_TIMEOUT_S = 10.0
_CHUNK = 1 << 16

Junk = Callable[[random.Random], bytes]
Answered = Callable[[bytes], bool]


class Link:
    """A raw, non-blocking byte connection to one emulated resource."""

    def __init__(
        self, fd: int, closer: Callable[[], None], what: str, sock: socket.socket | None = None
    ) -> None:
        self.fd = fd
        self._close = closer
        self._sock = sock
        self.what = what
        self.received = bytearray()

    @classmethod
    def open(cls, resource: str) -> Link:
        """Connect to ``resource`` as the emulator prints it (TCP forms, pty paths, or
        ``HOST:PORT`` for the control channel)."""
        path = _pty_path(resource)
        if path is not None:
            fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
            tty.setraw(fd)
            return cls(fd, lambda: os.close(fd), resource)
        host, port = _tcp_address(resource)
        sock = socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S)
        sock.setblocking(False)
        return cls(sock.fileno(), sock.close, resource, sock)

    def send(self, data: bytes, *, keep: bool = False, timeout: float = PROBE_TIMEOUT_S) -> None:
        """Write all of ``data``, reading (and discarding unless ``keep``) meanwhile."""
        view = memoryview(data)
        deadline = time.monotonic() + timeout
        while view:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.what}: could not write {len(view)} bytes in time")
            readable, writable, _ = select.select([self.fd], [self.fd], [], left)
            if readable:
                self._read(keep)
            if writable:
                try:
                    sent = os.write(self.fd, view[:_CHUNK])
                except BlockingIOError:
                    continue
                view = view[sent:]

    def drain(self) -> None:
        """Discard whatever has arrived so far."""
        while select.select([self.fd], [], [], 0)[0]:
            if not self._read(False):
                return

    def ask(self, data: bytes, answered: Callable[[bytes], bool]) -> bool:
        """Send ``data`` and read until ``answered(everything read since)`` or timeout."""
        self.drain()
        self.received.clear()
        self.send(data, keep=True)
        deadline = time.monotonic() + PROBE_TIMEOUT_S
        while not answered(bytes(self.received)):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                return False
            if not self._read(True):
                return answered(bytes(self.received))
        return True

    def _read(self, keep: bool) -> bool:
        try:
            data = os.read(self.fd, _CHUNK)
        except BlockingIOError:
            return True
        except OSError:
            return False  # reset by the server, or the pty went away
        if keep:
            self.received += data
        return bool(data)

    def close(self) -> None:
        """Close; on TCP, first end the sending side and read until the server closes, so
        that every byte sent was consumed (closing with unread data would reset the
        connection and the server could lose input it had not read yet)."""
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_WR)
                deadline = time.monotonic() + PROBE_TIMEOUT_S
                while time.monotonic() < deadline:
                    ready = select.select([self.fd], [], [], deadline - time.monotonic())[0]
                    if ready and not self._read(False):
                        break
            except OSError:
                pass
        self._close()


def _pty_path(resource: str) -> str | None:
    for pattern in (r"ASRL(/dev/[^:]+)::INSTR", r"modbus-rtu:(/dev/.+)", r"(/dev/.+)"):
        match = re.fullmatch(pattern, resource)
        if match:
            return match.group(1)
    return None


def _tcp_address(resource: str) -> tuple[str, int]:
    for pattern in (
        r"TCPIP0::([^:]+)::(\d+)::SOCKET",
        r"ASRLsocket://([^:]+):(\d+)::INSTR",
        r"[a-z-]+://([^:]+):(\d+)",
        r"([^:]+):(\d+)",
    ):
        match = re.fullmatch(pattern, resource)
        if match:
            return match.group(1), int(match.group(2))
    raise ValueError(f"fuzz: cannot tell how to connect to {resource!r}")


# ---- mutation ----------------------------------------------------------------------------


def mutate(rng: random.Random, data: bytes) -> bytes:
    """``data`` with a few random edits: flips, insertions, deletions, cuts, repeats."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        at = rng.randrange(len(out) + 1)
        if op == 0 and out:
            out[min(at, len(out) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:
            out[at:at] = rng.randbytes(rng.randint(1, 8))
        elif op == 2 and out:
            del out[at : at + rng.randint(1, 8)]
        elif op == 3:
            del out[at:]
        elif op == 4:
            out += out[: rng.randint(0, len(out))]
        else:
            out[at:at] = bytes([rng.choice((0, 0xFF, 0x0A, 0x0D, 0x3B, 0x05, 0x01))])
    return bytes(out)


def _random_bytes(rng: random.Random) -> bytes:
    size = rng.choice((1, 2, 8, 64, 300, 1500)) if rng.random() < 0.98 else 70_000
    if rng.random() < 0.2:
        return bytes([rng.randrange(256)]) * size
    return rng.randbytes(rng.randint(1, size))


def _either(rng: random.Random, shaped: Junk, valid: list[bytes]) -> bytes:
    roll = rng.random()
    if roll < 0.25:
        return _random_bytes(rng)
    if roll < 0.6:
        return mutate(rng, rng.choice(valid))
    return shaped(rng)


# ---- SCPI ----------------------------------------------------------------------------------

_SCPI_WORDS = (
    "VOLT", "CURR", "OUTP", "MEAS:VOLT?", "MEAS:CURR?", "*IDN?", "*RST", "*CLS", "*ESR?",
    "*STB?", "SYST:ERR?", "STAT:OPER:COND?", "SOUR", "PROT", "LEV", "IMM", "MODE", "INP",
    "LOAD", "FUNC", ":", ";", ",", "?", " ", "MIN", "MAX", "DEF", "ON", "OFF", "#", '"',
    "'", "1e999", "-1", "NaN", "INF", "0x1F", "12.5mV", "3A", "9" * 300, "A" * 20,
)  # fmt: skip
_SCPI_VALID = [b"*IDN?\n", b"VOLT 1.5\n", b"MEAS:VOLT?\n", b"SYST:ERR?\n", b"*ESR?\n"]


def scpi_junk(rng: random.Random) -> bytes:
    """SCPI-shaped nonsense: known words and separators in random order, mostly one line."""

    def shaped(rng: random.Random) -> bytes:
        words = rng.choices(_SCPI_WORDS, k=rng.randint(1, 12))
        line = "".join(w + rng.choice(("", " ", ":", ";")) for w in words).encode()
        return line + rng.choice((b"\n", b"\r\n", b"", b"\n\n"))

    return _either(rng, shaped, _SCPI_VALID)


def scpi_answered(identity: bytes) -> Callable[[bytes], bool]:
    """The answer to ``*IDN?`` is the identity line seen on a clean connection."""
    return lambda received: identity in received


SCPI_PROBE = b"\n*IDN?\n"


# ---- Modbus TCP ------------------------------------------------------------------------------


def _mbap(tid: int, unit: int, pdu: bytes) -> bytes:
    return struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu


def _pdu(rng: random.Random) -> bytes:
    function = rng.choice((1, 2, 3, 4, 5, 6, 15, 16, 7, 8, 43, 0x41, 0x83, 0))
    body = struct.pack(">HH", rng.randrange(0x10000), rng.choice((0, 1, 2, 125, 2000, 65535)))
    if function in (15, 16):
        body += bytes([rng.randrange(256)]) + rng.randbytes(rng.randint(0, 250))
    return bytes([function]) + body


def modbus_tcp_junk(rng: random.Random) -> bytes:
    """MBAP-shaped nonsense: valid and broken headers around random PDUs."""

    def shaped(rng: random.Random) -> bytes:
        frame = _mbap(rng.randrange(0x10000), rng.randrange(256), _pdu(rng))
        if rng.random() < 0.3:
            frame = frame[:4] + struct.pack(">H", rng.randrange(0x10000)) + frame[6:]
        return frame

    valid = [_mbap(1, 1, struct.pack(">BHH", 3, 0, 1)), _mbap(2, 1, struct.pack(">BHH", 4, 0, 2))]
    return _either(rng, shaped, valid)


MODBUS_TCP_TID = 0x7A5A


def modbus_tcp_probe(unit: int) -> bytes:
    return _mbap(MODBUS_TCP_TID, unit, struct.pack(">BHH", 3, 0, 1))


def modbus_tcp_answered(received: bytes) -> bool:
    return received.startswith(struct.pack(">HH", MODBUS_TCP_TID, 0)) and len(received) >= 9


# ---- Modbus RTU ------------------------------------------------------------------------------


def modbus_rtu_junk(rng: random.Random) -> bytes:
    """RTU-shaped nonsense: CRC-valid frames of random functions, long headers, noise."""

    def shaped(rng: random.Random) -> bytes:
        if rng.random() < 0.002:  # the costly flood: 64 KiB of "unit 1, some function"
            return bytes((1, rng.choice((0x41, 0x10, 0x07, 0x01)))) * (32 << 10)
        unit = rng.choice((0, 1, 1, 1, 2, rng.randrange(256)))
        frame = rtu_frame(unit, _pdu(rng))
        if rng.random() < 0.2:
            return frame[: rng.randint(1, len(frame))]
        return frame * rng.choice((1, 1, 2, 50))

    valid = [rtu_frame(1, struct.pack(">BHH", 3, 0, 1)), rtu_frame(1, struct.pack(">BHH", 4, 0, 2))]
    return _either(rng, shaped, valid)


_RTU_PROBE_COUNT = 3


def modbus_rtu_probe(unit: int) -> bytes:
    return rtu_frame(unit, struct.pack(">BHH", 3, 0, _RTU_PROBE_COUNT))


def modbus_rtu_answered(unit: int) -> Callable[[bytes], bool]:
    """Some CRC-valid reply to the probe: data of three registers or an exception."""

    def answered(received: bytes) -> bool:
        for at in range(len(received) - 4):
            if received[at] != unit:
                continue
            for length in (5, 5 + 2 * _RTU_PROBE_COUNT):
                frame = received[at : at + length]
                valid = len(frame) == length and frame[1] in (3, 0x83)
                if valid and crc16(frame[:-2]) == frame[-2] | frame[-1] << 8:
                    return True
        return False

    return answered


# ---- EZA-2500 --------------------------------------------------------------------------------

EZA_AD1, EZA_AD2 = 0, 16  # the addresses APIS uses (docs/protocols.md)
EZA_PROBE_CMD = 0x09  # read the meters


def eza_frame(start: int, ad1: int, ad2: int, cmd: int, payload: bytes) -> bytes:
    """A frame with its 16-bit checksum over AD1, AD2, CMD and the payload."""
    body = bytes((ad1, ad2, cmd)) + payload
    return bytes((start, len(payload))) + body + struct.pack("<H", sum(body) & 0xFFFF)


def eza_junk(rng: random.Random) -> bytes:
    """EZA-shaped nonsense: checksum-valid frames with random commands and payloads."""

    def shaped(rng: random.Random) -> bytes:
        payload = rng.randbytes(rng.choice((0, 1, 2, 4, 10, 31, 40)))
        ad1, ad2 = rng.choice(((EZA_AD1, EZA_AD2), (rng.randrange(256), rng.randrange(256))))
        frame = eza_frame(rng.choice((5, 5, 2)), ad1, ad2, rng.randrange(256), payload)
        if rng.random() < 0.2:
            frame = frame[:1] + bytes([rng.randrange(256)]) + frame[2:]
        return frame

    valid = [eza_frame(5, EZA_AD1, EZA_AD2, cmd, b"") for cmd in (0x01, 0x09, 0x0A, 0x12)]
    return _either(rng, shaped, valid)


EZA_PROBE = eza_frame(5, EZA_AD1, EZA_AD2, EZA_PROBE_CMD, b"")


def eza_answered(received: bytes) -> bool:
    """A checksum-valid reply (or NAK) to the meters read."""
    for at in (m.start() for m in re.finditer(b"\x02", received)):
        if at + 7 > len(received):
            continue
        length = received[at + 1]
        frame = received[at : at + 7 + length]
        if len(frame) < 7 + length or frame[4] & 0x7F != EZA_PROBE_CMD:
            continue
        if sum(frame[2:-2]) & 0xFFFF == frame[-2] | frame[-1] << 8:
            return True
    return False


# ---- the control channel -------------------------------------------------------------------

_KEYS = ("cmd", "id", "seconds", "instrument", "kind", "unit", "field", "value", "count", "x")
_SAFE_CMDS = ("status", "time", "clear", "set", "fault", "advance", "arm_watchdog", "fly", "")


def _json_value(rng: random.Random, depth: int) -> object:
    roll = rng.randrange(9 if depth < 4 else 6)
    if roll == 0:
        return None
    if roll == 1:
        return rng.choice((True, False))
    if roll == 2:
        return rng.choice((0, -1, 1 << 70, rng.randrange(-(10**6), 10**6)))
    if roll == 3:
        return rng.choice((0.0, -0.5, 1e308, 3.25, -1e-300))
    if roll in (4, 5):
        return rng.choice(("", "E001", "E001.converter", "soc", "x" * rng.randint(0, 50)))
    if roll == 6:
        return [_json_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(_KEYS): _json_value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def _request(rng: random.Random) -> dict[str, object]:
    request = {rng.choice(_KEYS): _json_value(rng, 1) for _ in range(rng.randint(0, 4))}
    request["cmd"] = rng.choice(_SAFE_CMDS)
    if request["cmd"] == "advance":
        request["seconds"] = rng.choice((0, 0.5, 60, -1, "x", None, [1]))
    if request["cmd"] == "fault":
        request["instrument"] = rng.choice(("nope", "", 5, None))
    if request["cmd"] == "arm_watchdog":
        request["seconds"] = rng.choice((0, -1, "x", None, 30))
    return request


def control_junk(rng: random.Random) -> bytes:
    """Lines for the control channel: random requests, broken JSON, constants JSON does not
    allow, deep nesting, huge integers, noise and (rarely) a line over 1 MiB."""
    roll = rng.random()
    if roll < 0.45:
        return json.dumps(_request(rng)).encode() + b"\n"
    if roll < 0.65:
        return mutate(rng, json.dumps(_request(rng)).encode()) + b"\n"
    if roll < 0.75:
        return rng.choice((b"NaN", b"Infinity", b"-Infinity", b"1e999")).join(
            (b'{"cmd": "time", "id": ', b"}\n")
        )
    if roll < 0.8:
        depth = rng.choice((100, 1000, 5000))
        return b"[" * depth + b"]" * depth + b"\n"
    if roll < 0.85:
        return b'{"cmd": "time", "id": ' + b"7" * rng.choice((400, 5000)) + b"}\n"
    if roll < 0.999:
        return _random_bytes(rng).replace(b"\n", b" ")[:2000] + b"\n"
    return b'{"cmd": "time", "x": "' + b"y" * (1 << 20) + b'"}\n'


CONTROL_PROBE = b'{"cmd": "time", "id": "fuzz-probe"}\n'


def control_answered(received: bytes) -> bool:
    for line in received.splitlines():
        try:
            reply = json.loads(line)
        except ValueError:
            continue
        if isinstance(reply, dict) and reply.get("id") == "fuzz-probe" and reply.get("ok"):
            return True
    return False


# ---- the kinds -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FuzzKind:
    """One server kind under attack: where, with what, and the valid request it must answer.

    ``fresh_probe``: probe on a new connection (MBAP has no checksum, so a junk header may
    legitimately swallow what follows on the same connection; docs/protocols.md).
    """

    name: str
    instrument: str
    junk: Junk
    probe: bytes
    fresh_probe: bool = False
    reconnect_every: int = 50


def kinds(unit: int = 1) -> tuple[FuzzKind, ...]:
    """The six kinds against the default bench (``fixtures/benches/emulated.toml``):
    instrument keys there (``unit``: the Modbus unit id of its battery and PSB); ``control``
    is the control channel."""
    return (
        FuzzKind("scpi-tcp", "SUP1.supply", scpi_junk, SCPI_PROBE),
        FuzzKind("modbus-tcp", "BID2.bidirectional", modbus_tcp_junk, modbus_tcp_probe(unit), True),
        FuzzKind("modbus-rtu-tcp", "E001.battery", modbus_rtu_junk, modbus_rtu_probe(unit)),
        FuzzKind("eza2500-tcp", "E001.converter", eza_junk, EZA_PROBE),
        FuzzKind("control", "control", control_junk, CONTROL_PROBE),
        FuzzKind("scpi-pty", "BID1.bidirectional", scpi_junk, SCPI_PROBE, reconnect_every=500),
    )


def identity(resource: str) -> bytes:
    """The ``*IDN?`` line of a SCPI resource, read on a clean connection."""
    link = Link.open(resource)
    try:
        if not link.ask(b"*IDN?\n", lambda received: received.endswith(b"\n")):
            raise TimeoutError(f"{resource}: no answer to *IDN?")
        return bytes(link.received).strip()
    finally:
        link.close()


def answered_by(kind: FuzzKind, identities: dict[str, bytes], unit: int = 1) -> Answered:
    """How to recognise the answer to ``kind``'s probe (``identities``: ``*IDN?`` lines)."""
    if kind.name.startswith("scpi"):
        return scpi_answered(identities[kind.instrument])
    if kind.name == "modbus-tcp":
        return modbus_tcp_answered
    if kind.name == "modbus-rtu-tcp":
        return modbus_rtu_answered(unit)
    if kind.name == "eza2500-tcp":
        return eza_answered
    return control_answered


@dataclass
class Attack:
    """What one attack did: inputs and bytes sent, connections the server dropped (a
    server must not drop a connection over bad input), and whether the probe was answered."""

    inputs: int = 0
    sent: int = 0
    dropped: int = 0
    answered: bool = False


def attack(kind: FuzzKind, resource: str, answered: Answered, *, count: int, seed: int) -> Attack:
    """Send ``count`` seeded junk inputs to ``resource`` (reconnecting every
    ``kind.reconnect_every``), then the probe; report what happened."""
    rng = random.Random(seed)
    result = Attack()
    link = Link.open(resource)
    try:
        for n in range(count):
            if n and n % kind.reconnect_every == 0:
                link.close()
                link = Link.open(resource)
            data = kind.junk(rng)
            try:
                link.send(data)
            except OSError:
                result.dropped += 1
                link.close()
                link = Link.open(resource)
            result.inputs += 1
            result.sent += len(data)
        if kind.fresh_probe:
            link.close()
            link = Link.open(resource)
        result.answered = link.ask(kind.probe, answered)
    finally:
        link.close()
    return result
