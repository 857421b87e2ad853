"""The EZA-2500 codec: frames byte-exact, checksum, NAKs, splitting and fixed-point scaling."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hil.errors import ConfigError, MalformedReply
from instruments.wire import eza2500 as eza
from instruments.wire.eza2500 import (
    COMMANDS,
    FIELDS,
    Command,
    ErrorCode,
    FieldRangeError,
    FrameSplitter,
    Mode,
)

# Frames written out by hand from the reference (AD1 = 0, AD2 = 16).
READ_MODE = bytes.fromhex("05 00 00 10 00 10 00")  # cks = 0x00 + 0x10 + 0x00
WRITE_MODE_VR = bytes.fromhex("05 02 00 10 00 14 00 24 00")  # cks = 0x10 + 0x14
# 0x1A: dvg 350 V -> round(350 * 2^14 / 380) = 15091 = 0x3AF3, drg 0
WRITE_DVG_350 = bytes.fromhex("05 04 00 10 1a f3 3a 00 00 57 01")  # 0x10+0x1A+0xF3+0x3A
NAK_BUSY_VR = bytes.fromhex("02 02 00 10 9a fd ff a6 02")  # 0x10+0x9A+0xFD+0xFF = 0x2A6


def _meters_reply() -> bytes:
    # vg 0x3AF3 (350 V), ig -8192 (-7.8125 A), vb 0x4000 (48 V), rest 0 except tmp 25 °C.
    payload = struct.pack("<8h", 0x3AF3, -8192, 0x4000, 0, 0, 0, 0, 25 * 128)
    body = bytes((0x00, 0x10, 0x09)) + payload
    return bytes((0x02, 16)) + body + struct.pack("<H", sum(body) & 0xFFFF)


def test_read_request_is_byte_exact() -> None:
    assert eza.build_read(Command.MODE) == READ_MODE
    assert eza.build_read(Command.MODE, ad1=0, ad2=16) == READ_MODE


def test_write_requests_are_byte_exact() -> None:
    assert eza.build_write(Command.MODE, {"mode": Mode.VOLTAGE_REFERENCE}) == WRITE_MODE_VR
    assert eza.build_write(Command.VOLTAGE_REFERENCE, {"dvg": 350.0, "drg": 0.0}) == (WRITE_DVG_350)


def test_nak_is_byte_exact_and_parses() -> None:
    assert eza.build_nak(Command.VOLTAGE_REFERENCE, ErrorCode.BUSY) != NAK_BUSY_VR
    assert eza.build_nak(Command.VOLTAGE_REFERENCE, ErrorCode.NOT_ACCEPTED) == NAK_BUSY_VR
    frame = eza.parse_frame(NAK_BUSY_VR)
    assert frame.is_nak and not frame.is_request
    assert frame.command == Command.VOLTAGE_REFERENCE
    assert frame.error_code == 0xFFFD
    assert ErrorCode(frame.error_code).retryable


@pytest.mark.parametrize(
    ("code", "retryable"),
    [(0xFFFD, True), (0xFFFC, True), (0xFFFF, False), (0xFFFE, False), (0xFFFB, False)],
)
def test_error_codes_retryable(code: int, retryable: bool) -> None:
    assert eza.is_retryable(code) is retryable
    assert ErrorCode(code).retryable is retryable


def test_ack_is_not_a_nak() -> None:
    frame = eza.parse_frame(_meters_reply())
    assert not frame.is_nak
    with pytest.raises(MalformedReply):
        _ = frame.error_code


def test_checksum_matches_apis_example() -> None:
    # APIS's own self-test: bytes [2:-2] of b"123456789" sum to 0x33+0x34+0x35+0x36+0x37.
    assert eza.checksum(b"34567") == 0x33 + 0x34 + 0x35 + 0x36 + 0x37
    assert eza.checksum(b"\xff" * 300) == (255 * 300) & 0xFFFF


def test_parse_meters_reply_decodes_signed_scaled_values() -> None:
    frame = eza.parse_frame(_meters_reply())
    values = eza.decode_payload(frame.cmd, frame.payload)
    assert list(values) == ["vg", "ig", "vb", "ib", "wg", "wb", "ic", "tmp"]
    assert values["vg"] == pytest.approx(350.0, abs=380 / 2**14)
    assert values["ig"] == -7.8125
    assert values["vb"] == 48.0
    assert values["tmp"] == 25.0


def test_parse_rejects_bad_checksum_length_and_start() -> None:
    bad = bytearray(WRITE_DVG_350)
    bad[-1] ^= 0x01
    with pytest.raises(MalformedReply, match="checksum"):
        eza.parse_frame(bytes(bad))
    with pytest.raises(MalformedReply, match="LEN"):
        eza.parse_frame(WRITE_DVG_350[:-1])
    with pytest.raises(MalformedReply, match="start"):
        eza.parse_frame(b"\x07" + WRITE_DVG_350[1:])
    with pytest.raises(MalformedReply, match="short"):
        eza.parse_frame(b"\x05\x00")


def test_limits_payload_round_trip_and_order() -> None:
    values = {"cib": 52.0, "dig": 2.3, "ubv": 40.0, "ugv": 300.0, "obv": 59.0, "ogv": 400.0}
    payload = eza.encode_payload(Command.LIMITS, values)
    raws = struct.unpack("<6H", payload)
    assert raws[1] == 2412  # round(2.3 * 8192 / 7.8125) = round(2411.72)
    assert raws == tuple(eza.encode_field(name, v) for name, v in values.items())
    decoded = eza.decode_payload(Command.LIMITS, payload, write=True)
    for name, value in values.items():
        assert decoded[name] == pytest.approx(value, abs=FIELDS[name].lsb / 2)


def test_alarm_clear_uses_two_bytes_and_read_three_words() -> None:
    request = eza.build_write(Command.ALARMS, {"d0": 0, "d1": 0})
    assert request == bytes.fromhex("05 02 00 10 12 00 00 22 00")
    assert COMMANDS[Command.ALARMS].read_length == 6
    assert eza.decode_payload(Command.ALARMS, b"\x01\x00\x02\x00\x03\x00") == {
        "alm1": 1,
        "alm2": 2,
        "alm3": 3,
    }


def test_payload_field_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match="missing drg"):
        eza.encode_payload(Command.VOLTAGE_REFERENCE, {"dvg": 350.0})
    with pytest.raises(ConfigError, match="unexpected dig"):
        eza.encode_payload(Command.VOLTAGE_REFERENCE, {"dvg": 350.0, "drg": 0, "dig": 1})
    with pytest.raises(ConfigError, match="read-only"):
        eza.encode_payload(Command.METERS, {})
    with pytest.raises(FieldRangeError, match="dig"):
        eza.encode_field("dig", -1.0)
    with pytest.raises(ValueError, match="dvg"):
        eza.encode_field("dvg", 2000.0)
    with pytest.raises(ValueError, match="ig"):
        eza.encode_field("ig", float("nan"))
    with pytest.raises(ConfigError, match="nope"):
        eza.encode_field("nope", 1.0)
    with pytest.raises(MalformedReply, match="expected 4"):
        eza.decode_payload(Command.VOLTAGE_REFERENCE, b"\x00")


def test_mode_codes() -> None:
    assert [int(m) for m in Mode] == [0x0000, 0x0002, 0x0014, 0x0041]
    assert Mode(int(eza.decode_payload(Command.MODE, b"\x41\x00")["mode"])) is Mode.CHARGE


def test_splitter_resynchronises_after_garbage_and_partials() -> None:
    splitter = FrameSplitter(eza.START_REQUEST)
    stream = b"\x00\xff\x05\x01" + READ_MODE + b"junk" + WRITE_DVG_350
    frames = []
    for i in range(len(stream)):
        frames += splitter.feed(stream[i : i + 1])
    assert [f.encode() for f in frames] == [READ_MODE, WRITE_DVG_350]
    assert splitter.pending == 0


def test_splitter_discards_bad_checksum_and_keeps_next_frame() -> None:
    bad = bytearray(WRITE_MODE_VR)
    bad[-2] ^= 0x40
    splitter = FrameSplitter(eza.START_REQUEST)
    assert [f.encode() for f in splitter.feed(bytes(bad) + READ_MODE)] == [READ_MODE]
    assert splitter.discarded > 0


def test_splitter_stray_start_with_long_len_does_not_stall() -> None:
    splitter = FrameSplitter(eza.START_REQUEST)
    # 0x05 0x1F claims 31 payload bytes; the real read behind it must still come out.
    assert splitter.feed(b"\x05\x1f\x00") == []
    assert [f.encode() for f in splitter.feed(READ_MODE)] == [READ_MODE]


def test_splitter_ignores_replies_when_splitting_requests() -> None:
    splitter = FrameSplitter(eza.START_REQUEST)
    assert splitter.feed(NAK_BUSY_VR) == []
    replies = FrameSplitter(eza.START_REPLY)
    assert [f.error_code for f in replies.feed(NAK_BUSY_VR)] == [0xFFFD]


@st.composite
def _field_and_value(draw: st.DrawFn) -> tuple[str, float]:
    name = draw(st.sampled_from(sorted(FIELDS)))
    spec = FIELDS[name]
    value = draw(
        st.floats(
            min_value=(spec.raw_min - 0.49) * spec.lsb,
            max_value=(spec.raw_max + 0.49) * spec.lsb,
            allow_nan=False,
        )
    )
    return name, value


@settings(max_examples=100)
@given(_field_and_value())
def test_field_round_trip_within_one_lsb(case: tuple[str, float]) -> None:
    name, value = case
    spec = FIELDS[name]
    raw = eza.encode_field(name, value)
    assert spec.raw_min <= raw <= spec.raw_max
    assert abs(eza.decode_field(name, raw) - value) <= spec.lsb


@settings(max_examples=50)
@given(st.sampled_from(sorted(COMMANDS)), st.data())
def test_payload_round_trip(cmd: int, data: st.DataObject) -> None:
    spec = COMMANDS[cmd]
    names = spec.write_fields or spec.read_fields
    raws = {n: data.draw(st.integers(FIELDS[n].raw_min, FIELDS[n].raw_max)) for n in names}
    values = {n: FIELDS[n].decode(r) for n, r in raws.items()}
    payload = eza.pack_fields(names, values, where="test")
    assert eza.unpack_raw(names, payload, where="test") == raws
    frame = eza.parse_frame(eza.build_reply(cmd, payload, ad1=3, ad2=7))
    assert (frame.ad1, frame.ad2, frame.cmd, frame.payload) == (3, 7, cmd, payload)


@settings(max_examples=50)
@given(st.binary(max_size=64), st.binary(max_size=64))
def test_splitter_finds_a_valid_frame_after_any_garbage(before: bytes, after: bytes) -> None:
    splitter = FrameSplitter(eza.START_REQUEST)
    frames = splitter.feed(before)
    frames += splitter.feed(WRITE_DVG_350)
    assert WRITE_DVG_350 in [f.encode() for f in frames]
    splitter.feed(after)


@settings(max_examples=60)
@given(st.sampled_from(sorted(COMMANDS)), st.booleans(), st.data())
def test_compiled_layout_decodes_exactly_like_each_field(
    cmd: int, write: bool, data: st.DataObject
) -> None:
    spec = COMMANDS[cmd]
    names = spec.write_fields if write and spec.write_fields else spec.read_fields
    raws = [
        data.draw(st.integers(FIELDS[name].raw_min, FIELDS[name].raw_max), label=name)
        for name in names
    ]
    compiled = eza.layout(names)
    payload = compiled.pack_raw(raws)
    assert len(payload) == compiled.size == sum(FIELDS[name].size for name in names)
    decoded = compiled.decode(payload, where="test")
    expected = {name: FIELDS[name].decode(raw) for name, raw in zip(names, raws, strict=True)}
    assert decoded == expected
    assert [type(value) for value in decoded.values()] == [type(v) for v in expected.values()]
    assert compiled.unpack_raw(payload, where="test") == dict(zip(names, raws, strict=True))
    with pytest.raises(MalformedReply, match=f"{len(payload) + 1} bytes, expected"):
        compiled.decode(payload + b"\0", where="test")


def test_saturated_packing_clamps_to_each_field() -> None:
    meters = eza.layout(COMMANDS[Command.METERS].read_fields)
    payload = meters.pack_saturated([1e9, -1e9, 48.0, 0.0, float("inf"), -float("inf"), 3, 25.0])
    assert struct.unpack("<8h", payload) == (32767, -32768, 16384, 0, 32767, -32768, 3, 3200)
    with pytest.raises(ValueError, match="meter ig is NaN"):
        meters.pack_saturated([0.0, float("nan"), 0.0, 0.0, 0.0, 0.0, 0, 0.0])


def test_splitter_fast_path_takes_only_a_whole_valid_frame() -> None:
    splitter = FrameSplitter(eza.START_REQUEST)
    frame = eza.build_read(Command.METERS)
    assert [f.cmd for f in splitter.feed(frame)] == [Command.METERS]
    assert splitter.pending == 0
    spoiled = frame[:-1] + bytes((frame[-1] ^ 1,))
    assert splitter.feed(spoiled) == []
    assert splitter.discarded >= 1
    assert [f.cmd for f in splitter.feed(frame)] == [Command.METERS]
