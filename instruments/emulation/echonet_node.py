"""An emulated ECHONET Lite node: the node profile and device objects behind one UDP socket.

:class:`EchonetNode` is a :class:`~instruments.emulation.udp.DatagramHandler`. It answers
the services of ECHONET Lite Part II §3.2.5 for its objects (:class:`EchonetObject`) and
its own node profile (0x0EF001, Part II §6.11):

- Get → Get_Res with every property; if any is unreadable, Get_SNA in which those come
  back with PDC 0 (and the readable ones with their values).
- SetC → Set_Res with every property at PDC 0; if any is refused (unknown or read-only
  EPC, wrong PDC, value out of range, refused by the device now), SetC_SNA in which the
  refused ones come back with the EDT that was sent. SetI is answered only when refused
  (SetI_SNA). SetGet does both, in two lists. INF_REQ → INF (sent to the requester: this
  toolkit never multicasts).
- Silence (the frame is discarded, Part II §3.2.5): a datagram that is not a format-1
  frame, a wrong EHD, a DEOJ the node does not hold, a service that is not a request.

Announcements (INF) of a property change go, unicast, to every address that has sent the
node a valid request (this toolkit never multicasts; a real node would send to 224.0.23.0).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from instruments.emulation.timing import note
from instruments.emulation.udp import Address, Send
from instruments.wire import echonet as el
from instruments.wire.echonet import Eoj, Esv, FieldRangeError, Frame, FrameError, Property

log = logging.getLogger(__name__)

#: The most controllers a node remembers for its announcements (the oldest is forgotten).
MAX_PEERS = 16


class EchonetObject(Protocol):
    """One ECHONET object of a node: its EOJ, property table and values."""

    @property
    def eoj(self) -> Eoj: ...

    @property
    def table(self) -> Mapping[int, el.PropertySpec]: ...

    def get(self, epc: int) -> bytes | None:
        """The EDT of a readable property, or None when it is not available now."""
        ...

    def set(self, epc: int, edt: bytes) -> bool:
        """Apply a write already checked against the table; False if refused now."""
        ...


@dataclass(frozen=True)
class NodeIdentity:
    """What the node profile says about the node (the device's own identity)."""

    maker: bytes
    product: str
    serial: str
    version: bytes = b"\x01\x0d\x01\x00"  # node profile 0x82: Ver 1.13, format 1 (assumed)


class NodeProfile:
    """Node profile object 0x0EF001: identity and the self-node instance list."""

    def __init__(self, identity: NodeIdentity, objects: Sequence[EchonetObject]) -> None:
        self.identity = identity
        self.objects = objects

    @property
    def eoj(self) -> Eoj:
        return el.NODE_PROFILE

    @property
    def table(self) -> Mapping[int, el.PropertySpec]:
        return el.NODE_TABLE

    def get(self, epc: int) -> bytes | None:
        ident = self.identity
        eojs = [o.eoj for o in self.objects]
        classes = sorted({(e.group, e.cls) for e in eojs})
        values: dict[int, bytes] = {
            0x80: bytes((el.OperationStatus.ON,)),
            0x82: ident.version,
            0x83: b"\xfe" + ident.maker + ident.serial.encode("ascii").ljust(13, b"\x00")[:13],
            0x8A: ident.maker,
            0x8C: el.NODE_TABLE[0x8C].encode_value(ident.product),
            0x8D: el.NODE_TABLE[0x8D].encode_value(ident.serial),
            0xD3: len(eojs).to_bytes(3, "big"),
            0xD6: bytes((len(eojs),)) + b"".join(e.to_bytes() for e in eojs),
            0xD7: bytes((len(classes),)) + b"".join(bytes(c) for c in classes),
            0x9D: el.property_map([0x80, 0xD5]),
            0x9E: el.property_map([]),
            0x9F: el.property_map(el.NODE_TABLE),
        }
        return values.get(epc)

    def set(self, epc: int, edt: bytes) -> bool:
        return False


class EchonetNode:
    """The services of one ECHONET Lite node (see the module docstring)."""

    def __init__(self, name: str, identity: NodeIdentity, objects: Sequence[EchonetObject]):
        self.name = name
        self.objects: list[EchonetObject] = [NodeProfile(identity, objects), *objects]
        self.peers: list[Address] = []
        self._send: Send | None = None
        self._tid = 0

    # ---- DatagramHandler ---------------------------------------------------------------
    def attach(self, send: Send) -> None:
        self._send = send

    def handle(self, data: bytes, peer: Address) -> list[tuple[bytes, Address]]:
        try:
            frame = el.decode(data)
        except FrameError as exc:
            log.debug("%s: discarded a datagram from %s:%d: %s", self.name, *peer, exc)
            return []
        replies = []
        for obj in self._addressed(frame.deoj):
            reply = self._serve(obj, frame)
            if reply is not None:
                replies.append((el.encode(reply), peer))
        if replies or frame.esv == Esv.SETI:
            self._remember(peer)
        return replies

    # ---- announcements ----------------------------------------------------------------
    def announce(self, obj: EchonetObject, epcs: Sequence[int]) -> None:
        """Send INF with the current values of ``epcs`` of ``obj`` to every known peer."""
        if self._send is None or not self.peers or not epcs:
            return
        props = []
        for epc in epcs:
            edt = obj.get(epc)
            if edt is not None:
                props.append(Property(epc, edt))
        if not props:
            return
        self._tid = (self._tid + 1) & 0xFFFF
        frame = Frame(self._tid, obj.eoj, el.CONTROLLER, Esv.INF, tuple(props))
        data = el.encode(frame)
        for peer in list(self.peers):
            self._send(data, peer)

    # ---- services -----------------------------------------------------------------------
    def _addressed(self, deoj: Eoj) -> list[EchonetObject]:
        """The objects a DEOJ names (instance 0 names every instance of the class)."""
        return [
            o
            for o in self.objects
            if o.eoj == deoj
            or (deoj.instance == 0 and (o.eoj.group, o.eoj.cls) == (deoj.group, deoj.cls))
        ]

    def _remember(self, peer: Address) -> None:
        if peer in self.peers:
            return
        self.peers.append(peer)
        del self.peers[:-MAX_PEERS]

    def _serve(self, obj: EchonetObject, frame: Frame) -> Frame | None:
        esv = frame.esv
        if esv in el.SNA:
            note("write" if esv in (Esv.SETC, Esv.SETI, Esv.SETGET) else "read")
        if esv in (Esv.GET, Esv.INF_REQ):
            props, ok = self._get_all(obj, frame.props)
            gets: tuple[Property, ...] = ()
        elif esv in (Esv.SETC, Esv.SETI):
            props, ok = self._set_all(obj, frame.props)
            gets = ()
            if esv == Esv.SETI and ok:
                return None
        elif esv == Esv.SETGET:
            props, set_ok = self._set_all(obj, frame.props)
            gets, get_ok = self._get_all(obj, frame.gets)
            ok = set_ok and get_ok
        else:
            return None
        reply_esv = el.RESPONSE.get(Esv(esv)) if ok else el.SNA[Esv(esv)]
        if reply_esv is None:
            return None
        return Frame(frame.tid, obj.eoj, frame.seoj, reply_esv, props, gets)

    @staticmethod
    def _get_all(
        obj: EchonetObject, asked: Sequence[Property]
    ) -> tuple[tuple[Property, ...], bool]:
        out, ok = [], bool(asked)
        for prop in asked:
            spec = obj.table.get(prop.epc)
            edt = obj.get(prop.epc) if spec is not None and spec.readable and not prop.edt else None
            if edt is None:
                ok = False
                out.append(Property(prop.epc))
            else:
                out.append(Property(prop.epc, edt))
        return tuple(out), ok

    def _set_all(
        self, obj: EchonetObject, asked: Sequence[Property]
    ) -> tuple[tuple[Property, ...], bool]:
        out, ok = [], bool(asked)
        for prop in asked:
            if self._set_one(obj, prop):
                out.append(Property(prop.epc))
            else:
                ok = False
                out.append(prop)
        return tuple(out), ok

    def _set_one(self, obj: EchonetObject, prop: Property) -> bool:
        spec = obj.table.get(prop.epc)
        if spec is None or not spec.writable:
            return False
        try:
            spec.decode_value(prop.edt)
        except FieldRangeError as exc:
            log.info("%s: refused %s", self.name, exc)
            return False
        return obj.set(prop.epc, prop.edt)
