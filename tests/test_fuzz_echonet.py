"""Bad input for the ECHONET Lite codec and the emulated V2H unit: never a crash.

Per Part II §3.2.5 a node discards what is not a request it can parse (silence) and
answers a request it cannot fully serve with the SNA of its service; every reply it does
send is a well-formed frame with the request's TID, addressed back to the requester.
"""

from __future__ import annotations

import contextlib
import random
import socket
import struct
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from plant_servers import BENCH_FILE, PlantServers, bus_node, context

from hil.config.benchfile import parse_bench_text
from instruments.emulation.models.echonet_v2h import EchonetV2hModel
from instruments.wire import echonet as el

HOST = "127.0.0.4"
PEER = ("127.0.0.9", 40000)
REQUESTS = {0x60, 0x61, 0x62, 0x63, 0x6E}
VALID_GET = bytes.fromhex("1081000105ff01027e0162018000")


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[PlantServers, EchonetV2hModel, int]]:
    bench = parse_bench_text(BENCH_FILE.read_text(encoding="utf-8"), "fuzz bench")
    ctx = context(bench, "EV1", "echonet_v2h")
    with PlantServers(
        [bus_node(), *EchonetV2hModel.node_specs(ctx)], EchonetV2hModel.port_specs(ctx)
    ) as h:
        model = h.add(EchonetV2hModel, ctx)
        yield h, model, h.serve_udp(model, host=HOST)


def check_replies(data: bytes, replies: list[tuple[bytes, tuple[str, int]]]) -> None:
    """Silence for anything but a parseable request; else well-formed replies to the peer."""
    try:
        request = el.decode(data)
    except el.FrameError:
        assert replies == []
        return
    if request.esv not in REQUESTS:
        assert replies == []
    for reply, to in replies:
        assert to == PEER
        frame = el.decode(reply)
        assert frame.tid == request.tid and frame.deoj == request.seoj
        assert frame.esv in set(el.RESPONSE.values()) | set(el.SNA.values())


def mutate(rng: random.Random, data: bytes) -> bytes:
    raw = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(3)
        if op == 0 and raw:
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        elif op == 1 and raw:
            del raw[rng.randrange(len(raw)) :]
        else:
            raw += bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    return bytes(raw)


frames = st.builds(
    lambda tid, esv, props: el.encode(
        el.Frame(tid, el.CONTROLLER, el.Eoj(2, 0x7E, 1), esv, tuple(props))
    ),
    st.integers(0, 0xFFFF),
    st.sampled_from(sorted(REQUESTS - {0x6E})),
    st.lists(st.builds(el.Property, st.integers(0x80, 0xFF), st.binary(max_size=6)), max_size=5),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.binary(max_size=64), frames, frames.map(lambda f: f[:-1])))
def test_the_node_answers_or_stays_silent(
    served: tuple[PlantServers, EchonetV2hModel, int], data: bytes
) -> None:
    h, model, _ = served
    replies = h.call(lambda: model.node.handle(data, PEER))
    check_replies(data, replies)
    h.call(lambda: model.device.enter(el.OperationMode.STANDBY))


def test_a_flood_of_junk_datagrams_leaves_the_unit_serving(
    served: tuple[PlantServers, EchonetV2hModel, int],
) -> None:
    _, _, port = served
    rng = random.Random(16)
    seeds = [VALID_GET, bytes.fromhex("1081000105ff01027e016101800130")]
    probe = VALID_GET[:2] + struct.pack(">H", 0xBEEF) + VALID_GET[4:]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        for k in range(2000):
            junk = (
                mutate(rng, rng.choice(seeds))
                if k % 2
                else bytes(rng.randrange(256) for _ in range(rng.randint(0, 40)))
            )
            sock.sendto(junk, (HOST, port))
            if k % 50 == 49:  # a client that keeps up: ask once, read whatever came back
                assert answer(sock, port, probe) is not None
        # UDP may drop a datagram under a flood: like any client, ask again when none came
        replies = [answer(sock, port, probe) for _ in range(3)]
        assert any(r is not None and r.esv == el.Esv.GET_RES for r in replies)


def answer(sock: socket.socket, port: int, probe: bytes) -> el.Frame | None:
    """Send ``probe`` and return the reply with its TID, skipping replies to junk."""
    sock.settimeout(10.0)
    sock.sendto(probe, (HOST, port))
    try:
        while True:
            data, _ = sock.recvfrom(2048)
            if data[2:4] == probe[2:4]:
                return el.decode(data)
    except TimeoutError:
        return None


@settings(max_examples=500)
@given(st.binary(max_size=80))
def test_the_codec_refuses_or_round_trips(data: bytes) -> None:
    try:
        frame = el.decode(data)
    except el.FrameError:
        return
    assert el.encode(frame) == data
    for prop in frame.props:
        spec = el.EV_TABLE.get(prop.epc)
        if spec is not None:
            with contextlib.suppress(el.FieldRangeError):
                spec.decode_value(prop.edt)
