"""The ECHONET Lite codec: byte-exact frames from the spec, round trips, refusals."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from instruments.wire import echonet as el
from instruments.wire.echonet import Eoj, Esv, FieldRangeError, Frame, FrameError, Property

V2H = Eoj(0x02, 0x7E, 0x01)


def test_get_frame_is_byte_exact() -> None:
    # Part II §3.2: 10 81 | TID | SEOJ 05FF01 | DEOJ 027E01 | ESV 62 | OPC 1 | EPC 80 PDC 0
    frame = Frame(0x0001, el.CONTROLLER, V2H, Esv.GET, (Property(0x80),))
    assert el.encode(frame).hex() == "1081000105ff01027e0162018000"
    assert el.decode(el.encode(frame)) == frame


def test_setget_carries_two_lists() -> None:
    frame = Frame(7, el.CONTROLLER, V2H, Esv.SETGET, (Property(0xDA, b"\x44"),), (Property(0xD3),))
    raw = el.encode(frame)
    assert raw.hex().endswith("6e01da014401d300")
    assert el.decode(raw) == frame


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "shorter"),
        (bytes.fromhex("1082000105ff01027e01620180 00".replace(" ", "")), "EHD"),
        (bytes.fromhex("1081000105ff01027e016202800"[:-1]), "ends"),
        (bytes.fromhex("1081000105ff01027e0162018002aa"), "PDC 2"),
        (bytes.fromhex("1081000105ff01027e016201800000"), "follow"),
    ],
)
def test_bad_frames_are_refused_with_a_reason(data: bytes, why: str) -> None:
    with pytest.raises(FrameError, match=why):
        el.decode(data)


eojs = st.builds(Eoj, st.integers(0, 255), st.integers(0, 255), st.integers(0, 255))
props = st.builds(Property, st.integers(0, 255), st.binary(max_size=40))


@given(
    st.integers(0, 0xFFFF),
    eojs,
    eojs,
    st.sampled_from(list(Esv)),
    st.lists(props, max_size=6),
    st.lists(props, max_size=6),
)
def test_frames_round_trip(
    tid: int, seoj: Eoj, deoj: Eoj, esv: Esv, sets: list[Property], gets: list[Property]
) -> None:
    frame = Frame(tid, seoj, deoj, esv, tuple(sets), tuple(gets) if esv in el.TWO_LISTS else ())
    assert el.decode(el.encode(frame)) == frame


@given(st.binary(max_size=80))
def test_decode_never_fails_otherwise(data: bytes) -> None:
    try:
        frame = el.decode(data)
    except FrameError:
        return
    assert el.encode(frame) == data


@pytest.mark.parametrize(
    ("epc", "value", "edt"),
    [
        (0xD4, -12.5, "ff83"),  # int16, 0.1 A
        (0xD3, -3000, "fffff448"),  # int32 W, signed: discharging in pychonet's sign
        (0xCA, (1.0, 20.0), "000a00c8"),  # two uint16 in 0.1 A
        (0xED, 12.3, "007b"),
        (0xE7, 5000, "00001388"),
        (0xD6, 1.234, "000004d2"),  # 0.001 kWh
        (0xDA, 0x43, "43"),
        (0x8D, "EMU0000001", "454d55303030303030312020"),
    ],
)
def test_property_values_scale_as_the_table_says(epc: int, value: object, edt: str) -> None:
    spec = el.EV_TABLE[epc]
    assert spec.encode_value(value).hex() == edt  # type: ignore[arg-type]
    decoded = spec.decode_value(bytes.fromhex(edt))
    if isinstance(value, float | tuple):
        assert decoded == pytest.approx(value)
    else:
        assert decoded == value


@pytest.mark.parametrize(
    ("epc", "value", "why"),
    [
        (0xDA, 0x99, "not one of"),
        (0xC4, 101, "outside"),
        (0xED, -1.0, "outside"),
        (0xED, float("nan"), "finite"),
        (0xD4, "3", "not a number"),
        (0xCA, 3.0, "minimum, maximum"),
    ],
)
def test_out_of_range_values_name_the_property(epc: int, value: object, why: str) -> None:
    with pytest.raises(FieldRangeError, match=f"0x{epc:02X}.*{why}"):
        el.EV_TABLE[epc].encode_value(value)  # type: ignore[arg-type]


def test_wrong_pdc_is_refused() -> None:
    with pytest.raises(FieldRangeError, match="PDC 1, expected 2"):
        el.EV_TABLE[0xD4].decode_value(b"\x01")


@given(st.sampled_from([s for s in el.EV_TABLE.values() if s.kind in el._STRUCT]), st.data())
def test_numeric_properties_round_trip(spec: el.PropertySpec, data: st.DataObject) -> None:
    if spec.values is not None:
        raw = data.draw(st.sampled_from(sorted(spec.values)))
    else:
        low, high = el._raw_bounds(spec.kind)
        high = high if spec.maximum is None else min(high, spec.maximum)
        raw = data.draw(st.integers(low, high))
    value = raw if spec.values is not None or spec.lsb == 1.0 else raw * spec.lsb
    assert spec.decode_value(spec.encode_value(value)) == pytest.approx(value)


@given(st.sets(st.integers(0x80, 0xFF), max_size=60))
def test_property_maps_round_trip_in_both_forms(epcs: set[int]) -> None:
    edt = el.property_map(epcs)
    assert (len(edt) == 17) == (len(epcs) >= 16)
    assert el.parse_property_map(edt) == epcs


def test_eoj_text() -> None:
    assert Eoj.parse("027E01") == V2H
    assert str(V2H) == "027E01"
    with pytest.raises(FieldRangeError, match="six hex digits"):
        Eoj.parse("027E1")
