"""APIS scenarios and policy numbers: the sample files unchanged, every bad-input rule with
its key path, the comment-tolerant reader, and ``hil scenario check``."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hil.cli import main
from hil.config.apis_json import load_apis_json, read_apis_json, strip_comments
from hil.config.deal_policy import (
    DealPolicy,
    parse_policy_json,
    read_hw_config_json,
    read_policy_json,
)
from hil.config.scenario import (
    DAY_S,
    Scenario,
    format_time_of_day,
    load_scenario,
    load_scenario_text,
    parse_scenario,
)
from hil.errors import ConfigError

#: APIS's sample files, beside the work tree (``../shared/reference/apis-samples``).
SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "reference" / "apis-samples"
needs_samples = pytest.mark.skipif(not SAMPLES.is_dir(), reason="APIS sample files not found")


def slot(
    bands: dict[str, str] | None = None,
    request: dict[str, Any] | None = None,
    accept: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A time slot body in APIS's shape (the OIST-like four statuses by default)."""
    body: dict[str, Any] = {
        "batteryStatus": bands
        if bands is not None
        else {
            "4320-": "excess",
            "3600-4320": "sufficient",
            "2880-3600": "scarce",
            "-2880": "short",
        },
        "request": request
        if request is not None
        else {
            "excess": {"discharge": {"limitWh": 4320, "pointPerWh": 10}},
            "short": {"charge": {"limitWh": 2880, "pointPerWh": 10}},
        },
        "accept": accept
        if accept is not None
        else {
            "excess": {"discharge": {"limitWh": 3600, "pointPerWh": 10}},
            "sufficient": {"discharge": {"limitWh": 3600, "pointPerWh": 10}},
            "scarce": {"charge": {"limitWh": 3600, "pointPerWh": 10}},
            "short": {"charge": {"limitWh": 3600, "pointPerWh": 10}},
        },
    }
    body.update(extra)
    return body


def scenario(**slots: Any) -> dict[str, Any]:
    return {"refreshingPeriodMsec": 5000, "acceptSelection": {"strategy": "amount"}, **slots}


def refused(data: Any) -> str:
    with pytest.raises(ConfigError) as info:
        parse_scenario(data, "s.json")
    return str(info.value)


# -- the sample files, unchanged -----------------------------------------------------------


@needs_samples
def test_sample_scenario_with_japanese_comments_loads_unchanged() -> None:
    sc = load_scenario(SAMPLES / "sample-scenario.json")
    assert [s.key for s in sc.slots] == ["00:00:00-12:00:00", "12:00:00-24:00:00"]
    assert sc.strategy == "pointAndAmount" and sc.refreshing_period_s == 5.0
    morning, evening = sc.slots
    assert morning.strategy == "pointAndAmount" and evening.strategy == "amount"
    assert [b.status for b in morning.bands] == ["short", "scarce", "sufficient", "excess"]
    assert morning.status(2879) == "short" and morning.status(2880) == "scarce"
    assert morning.status(4319) == "sufficient" and morning.status(4320) == "excess"
    request = morning.request_condition("excess")
    assert request is not None and request.direction == "discharge"
    assert (request.limit_wh, request.point_per_wh, request.pair_unit_id) == (4320, 10.0, "E002")
    accept = morning.accept_condition("scarce", "charge")
    assert accept is not None and accept.pair_unit_id == "E003" and accept.limit_wh == 3600
    assert morning.request_condition("sufficient") is None
    assert evening.request_condition("short") is not None
    assert evening.request_condition("short").pair_unit_id is None  # type: ignore[union-attr]
    assert sc.gaps() == [] and morning.band_gaps() == []
    assert sc.slot_at(12 * 3600 - 1) is morning and sc.slot_at(12 * 3600) is evening
    assert sc.slot_at(DAY_S + 5) is morning  # taken modulo one day


@needs_samples
def test_exe_scenario_loads_with_its_hash_comment_keys() -> None:
    sc = load_scenario(SAMPLES / "exe-scenario.json")
    (only,) = sc.slots
    assert (only.start_s, only.end_s) == (0, DAY_S)
    assert only.statuses == ("short", "scarce", "sufficient", "excess")


@needs_samples
def test_policy_samples_give_the_numbers_that_matter() -> None:
    exe = read_policy_json(SAMPLES / "exe-policy.json")
    assert (exe.deal_current, exe.amount_min_wh, exe.amount_max_wh, exe.amount_unit_wh) == (
        1.0,
        50,
        50,
        50,
    )
    assert exe.negotiation_timeout == 2.0 and exe.house_keeping_period == 5.0
    assert (exe.soc_force_stop_discharge, exe.soc_force_stop_charge) == (0.20, 0.95)
    assert exe.operation_mode == "stop"
    assert exe.member_unit_ids == ("E001", "E002", "E003", "E004")
    assert exe.deal_interlock_capacity == 2  # ⌊2.3 A / 1 A⌋
    sample = read_policy_json(SAMPLES / "sample-policy.json")
    assert (sample.deal_current, sample.amount_min_wh, sample.amount_unit_wh) == (2.0, 100, 100)
    assert sample.house_keeping_period == 60.0
    assert sample.deal_interlock_capacity == 1
    hw = read_hw_config_json(SAMPLES / "exe-hwConfig.json", exe)
    assert hw.unit_current_capacity == 2.3 and hw.battery_capacity_wh == 4800.0
    assert hw.deal_current == 1.0  # the policy's numbers are kept


@needs_samples
def test_every_sample_file_parses_as_apis_json() -> None:
    for path in sorted(SAMPLES.glob("*.json")):
        data = read_apis_json(path)
        assert isinstance(data, dict) and data, path


# -- the comment-tolerant reader ------------------------------------------------------------


def test_comments_are_blanked_outside_strings_only() -> None:
    text = '{\n  // a comment with "quotes"\n  "url": "http://x//y", /* block\n  */ "a": 1\n}'
    stripped = strip_comments(text)
    assert stripped.count("\n") == text.count("\n")
    assert load_apis_json(text) == {"url": "http://x//y", "a": 1}
    assert load_apis_json('{"s": "a \\" // not a comment"}') == {"s": 'a " // not a comment'}


def test_json_errors_name_the_line_of_the_original_text() -> None:
    text = '{\n// comment\n/* two\nlines */\n"a": 1,,\n}'
    with pytest.raises(ConfigError, match=r"^f\.json:5:\d+: not valid JSON"):
        load_apis_json(text, "f.json")
    with pytest.raises(ConfigError, match=r"f\.json:2: a /\* comment is never closed"):
        load_apis_json('{"a": 1}\n/* open', "f.json")
    with pytest.raises(ConfigError, match="NaN is not a JSON number"):
        load_apis_json('{"a": NaN}', "f.json")


def test_duplicate_keys_keep_the_last_and_are_remembered() -> None:
    data = load_apis_json('{"#": "x", "a": 1, "#": "end", "a": 2}')
    assert data == {"#": "end", "a": 2}
    assert data.duplicates == ("#", "a")


# -- bad input: each rule with its key path -------------------------------------------------

BAD: list[tuple[str, dict[str, Any], str]] = [
    (
        "slots-overlap",
        scenario(**{"00:00:00-12:00:00": slot(), "11:00:00-24:00:00": slot()}),
        r'^s\.json: "11:00:00-24:00:00": time slot .* overlaps time slot \'00:00:00-12:00:00\' '
        r"\(11:00:00-12:00:00 is in both\)",
    ),
    (
        "bands-overlap",
        scenario(**{"00:00:00-24:00:00": slot({"4000-": "excess", "3600-4320": "ok"})}),
        r'^s\.json: "00:00:00-24:00:00"\.batteryStatus: ranges \'3600-4320\' \(ok\) and \'4000-\'',
    ),
    (
        "non-negative",
        scenario(**{"00:00:00-24:00:00": slot({"-100-200": "low", "200-": "high"}, {}, {})}),
        r'"00:00:00-24:00:00"\.batteryStatus\."-100-200": range .* negative limit',
    ),
    (
        "non-negative",
        scenario(
            **{"00:00:00-24:00:00": slot(request={"short": {"charge": {"limitWh": -5}}}, accept={})}
        ),
        r'"00:00:00-24:00:00"\.request\.short\.charge\.limitWh: limitWh -5 is negative',
    ),
    (
        "non-negative",
        scenario(
            **{
                "00:00:00-24:00:00": slot(
                    request={"short": {"charge": {"limitWh": 5, "pointPerWh": -1}}}, accept={}
                )
            }
        ),
        r"request\.short\.charge\.pointPerWh: -1 is negative",
    ),
    (
        "strategy",
        {"acceptSelection": {"strategy": "cheapest"}, "00:00:00-24:00:00": slot()},
        r"^s\.json: acceptSelection\.strategy: unknown strategy 'cheapest'; allowed: amount, "
        r"pointAndAmount",
    ),
    (
        "strategy",
        scenario(**{"00:00:00-24:00:00": slot(acceptSelection={"strategy": "price"})}),
        r'"00:00:00-24:00:00"\.acceptSelection\.strategy: unknown strategy',
    ),
    (
        "known-status",
        scenario(**{"00:00:00-24:00:00": slot(request={"full": {}})}),
        r'"00:00:00-24:00:00"\.request\.full: unknown status \'full\'; batteryStatus defines '
        r"excess, scarce, short, sufficient",
    ),
    (
        "known-status",
        scenario(**{"00:00:00-24:00:00": slot(accept={"empty": {"charge": {"limitWh": 1}}})}),
        r"\.accept\.empty: unknown status",
    ),
    (
        "direction",
        scenario(**{"00:00:00-24:00:00": slot(request={"short": {"charging": {"limitWh": 1}}})}),
        r"\.request\.short\.charging: unknown direction 'charging'",
    ),
    (
        "slot-key",
        scenario(**{"0:00-12:00": slot()}),
        r'^s\.json: "0:00-12:00": time slot key .* is not HH:MM:SS-HH:MM:SS',
    ),
    (
        "slot-key",
        scenario(**{"00:00:00-25:00:00": slot()}),
        r"the end 25:00:00 is not a time of day",
    ),
    (
        "slot-key",
        scenario(**{"00:61:00-12:00:00": slot()}),
        r"the start 00:61:00 is not a time of day",
    ),
    (
        "slot-order",
        scenario(**{"22:00:00-06:00:00": slot()}),
        r"starts at 22:00:00, not before its end 06:00:00",
    ),
    (
        "range-key",
        scenario(**{"00:00:00-24:00:00": slot({"low": "short"}, {}, {})}),
        r"batteryStatus\.low: range key 'low' is not",
    ),
    (
        "range-order",
        scenario(**{"00:00:00-24:00:00": slot({"300-200": "odd"}, {}, {})}),
        r"range '300-200': lower 300 Wh is not below upper 200 Wh",
    ),
    (
        "required",
        scenario(**{"00:00:00-24:00:00": slot(request={"short": {"charge": {}}})}),
        r"request\.short\.charge: no limitWh",
    ),
    (
        "required",
        scenario(**{"00:00:00-24:00:00": {"request": {}}}),
        r'"00:00:00-24:00:00": no batteryStatus',
    ),
    (
        "whole-number",
        scenario(**{"00:00:00-24:00:00": slot(accept={"short": {"charge": {"limitWh": 2.5}}})}),
        r"accept\.short\.charge\.limitWh: limitWh 2\.5 is not a whole number",
    ),
    (
        "known-key",
        scenario(**{"00:00:00-24:00:00": slot(acceptSelecton={"strategy": "amount"})}),
        r'"00:00:00-24:00:00"\.acceptSelecton: unknown key',
    ),
    (
        "known-key",
        {"refreshingPeriod": 5000, "00:00:00-24:00:00": slot()},
        r"^s\.json: refreshingPeriod: unknown key",
    ),
    ("slots", {"refreshingPeriodMsec": 5000, "#": "end"}, r"no time slot"),
    (
        "status-name",
        scenario(**{"00:00:00-24:00:00": slot({"0-": ""}, {}, {})}),
        r'batteryStatus\."0-": the status of range',
    ),
    (
        "type",
        scenario(**{"00:00:00-24:00:00": slot(request=cast(Any, []))}),
        r'"00:00:00-24:00:00"\.request: request must be a JSON object, not an array',
    ),
    (
        "positive",
        {"refreshingPeriodMsec": 0, "00:00:00-24:00:00": slot()},
        r"refreshingPeriodMsec: 0 ms is not > 0",
    ),
]


@pytest.mark.parametrize(
    ("rule", "data", "pattern"), BAD, ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)]
)
def test_bad_scenarios_are_refused_with_key_path_and_rule(
    rule: str, data: dict[str, Any], pattern: str
) -> None:
    message = refused(data)
    assert re.search(pattern, message), message
    assert message.endswith(f"[rule {rule}]"), message


def test_a_duplicated_time_slot_is_refused_with_its_key() -> None:
    text = (
        '{"00:00:00-24:00:00": {"batteryStatus": {"-": "any"}},\n'
        ' "00:00:00-24:00:00": {"batteryStatus": {"-": "all"}}}'
    )
    with pytest.raises(
        ConfigError,
        match=r'"00:00:00-24:00:00": key .* more than once .*'
        r"\[rule unique-key\]",
    ):
        load_scenario_text(text, "s.json")


def test_gaps_between_slots_and_bands_are_allowed_and_listed() -> None:
    sc = parse_scenario(
        scenario(
            **{
                "06:00:00-12:00:00": slot({"1000-2000": "mid", "3000-": "high"}, {}, {}),
                "13:00:00-20:00:00": slot(),
            }
        )
    )
    assert sc.gaps() == [(0, 6 * 3600), (12 * 3600, 13 * 3600), (20 * 3600, DAY_S)]
    assert sc.slot_at(12.5 * 3600) is None and sc.slot_at(6 * 3600) is sc.slots[0]
    assert sc.slots[0].band_gaps() == [(0, 1000), (2000, 3000)]
    assert sc.slots[0].status(2500) is None


def test_request_condition_prefers_charge_as_apis_does() -> None:
    sc = parse_scenario(
        scenario(
            **{
                "00:00:00-24:00:00": slot(
                    {"-": "any"},
                    {"any": {"discharge": {"limitWh": 10}, "charge": {"limitWh": 20}}},
                    {},
                )
            }
        )
    )
    cond = sc.slots[0].request_condition("any")
    assert cond is not None and cond.direction == "charge" and cond.amount_wh(5) == 15


# -- hypothesis: random slot layouts ---------------------------------------------------------


@st.composite
def layouts(draw: st.DrawFn) -> list[tuple[int, int]]:
    """Slots on a coarse grid (whole hours, some odd seconds), so that slots that touch,
    overlap by one second or leave gaps all come up often."""
    n = draw(st.integers(1, 6))
    spans = []
    for _ in range(n):
        start = draw(st.integers(0, 23)) * 3600 + draw(st.sampled_from([0, 0, 0, 1]))
        end = min(DAY_S, draw(st.integers(start // 3600 + 1, 24)) * 3600)
        spans.append((start, end))
    return spans


def _key(span: tuple[int, int]) -> str:
    return f"{format_time_of_day(span[0])}-{format_time_of_day(span[1])}"


@settings(max_examples=80, deadline=None)
@given(layouts())
@example([(0, 3600), (3600, 7200)])  # touching slots do not overlap
@example([(0, 3601), (3600, 7200)])  # one shared second does
def test_overlap_is_detected_iff_two_slots_overlap(spans: list[tuple[int, int]]) -> None:
    keys = {_key(s) for s in spans}
    if len(keys) < len(spans):  # the same key twice is a JSON duplicate, not a layout
        return
    data = scenario(**{_key(s): slot() for s in spans})
    overlapping = any(
        a[0] < b[1] and b[0] < a[1] for i, a in enumerate(spans) for b in spans[i + 1 :]
    )
    if overlapping:
        assert "[rule slots-overlap]" in refused(data)
        return
    sc: Scenario = parse_scenario(data)
    covered = sorted(spans)
    assert [(s.start_s, s.end_s) for s in sc.slots] == covered
    # the gaps and the slots tile the day exactly
    pieces = sorted([*covered, *sc.gaps()])
    assert pieces[0][0] == 0 and pieces[-1][1] == DAY_S
    assert all(a[1] == b[0] for a, b in itertools.pairwise(pieces))
    for start, end in covered:
        assert sc.slot_at(start) is not None and sc.slot_at(end - 1) is not None


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 12), st.integers(1, 6)), min_size=1, max_size=5))
@example([(0, 1), (1, 1)])  # touching ranges do not overlap
def test_band_overlap_is_detected_iff_two_ranges_overlap(raw: list[tuple[int, int]]) -> None:
    ranges = [(400 * low, 400 * (low + width)) for low, width in raw]  # touching is common
    if len({f"{a}-{b}" for a, b in ranges}) < len(ranges):
        return
    bands = {f"{a}-{b}": f"s{i}" for i, (a, b) in enumerate(ranges)}
    data = scenario(**{"00:00:00-24:00:00": slot(bands, {}, {})})
    overlapping = any(
        a[0] < b[1] and b[0] < a[1] for i, a in enumerate(ranges) for b in ranges[i + 1 :]
    )
    if overlapping:
        assert "[rule bands-overlap]" in refused(data)
    else:
        (only,) = parse_scenario(data).slots
        for i, (a, b) in enumerate(ranges):
            assert only.status(a) == f"s{i}" and only.status(b - 1) == f"s{i}"


# -- the policy reader's own checks ------------------------------------------------------------


def test_policy_numbers_are_checked_with_their_key_path() -> None:
    with pytest.raises(ConfigError, match=r"p\.json: mediator\.deal\.amountUnitWh: 12\.5 is not"):
        parse_policy_json({"mediator": {"deal": {"amountUnitWh": 12.5}}}, "p.json")
    with pytest.raises(ConfigError, match=r"amount_min_wh \(mediator\.deal\.amountMinWh\): 200"):
        parse_policy_json({"mediator": {"deal": {"amountMinWh": 200, "amountMaxWh": 100}}})
    with pytest.raises(ConfigError, match=r"operationMode: 'auto' is not one of"):
        parse_policy_json({"operationMode": "auto"}, "p.json")
    with pytest.raises(ConfigError, match=r"deal_current .*: 3 A is above the unit capacity"):
        DealPolicy(deal_current=3.0)


# -- hil scenario check --------------------------------------------------------------------------


def test_check_prints_slots_bands_and_points_out_gaps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "gappy.json"
    text = json.dumps(scenario(**{"06:00:00-18:00:00": slot()}), indent=1)
    path.write_text("// a day with a night gap\n" + text, encoding="utf-8")
    assert main(["scenario", "check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "1 time slot" in out and "06:00:00-18:00:00  strategy amount" in out
    assert re.search(r"4320- Wh\s+excess\s+request: discharge to 4320 Wh at 10 pt/Wh", out)
    assert "gap 00:00:00-06:00:00: no time slot, units do not negotiate then" in out
    assert "gap 18:00:00-24:00:00" in out


def test_check_reports_one_line_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(scenario(**{"00:00:00-24:00:00": slot(request={"x": {}})})))
    assert main(["scenario", "check", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert f'{path}: "00:00:00-24:00:00".request.x: unknown status' in lines[0]
    assert lines[0].endswith("[rule known-status]")
    assert main(["scenario", "check", str(tmp_path / "missing.json")]) == 2
    assert "cannot read the file" in capsys.readouterr().err
    assert main(["scenario"]) == 2
    assert "usage: hil scenario check FILE" in capsys.readouterr().err


@needs_samples
def test_check_accepts_the_sample_with_comments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenario", "check", str(SAMPLES / "sample-scenario.json")]) == 0
    out = capsys.readouterr().out
    assert "2 time slots" in out and "12:00:00-24:00:00  strategy amount" in out
    assert "(only with E002)" in out and "the time slots cover the whole day" in out


@pytest.mark.parametrize(
    ("policy", "where"),
    [
        ({"mediator": -1}, "mediator: must be an object (a section), not -1"),
        ({"user": 0}, "user: must be an object (a section), not 0"),
        ({"controller": 0.5}, "controller: must be an object (a section), not 0.5"),
        (
            {"gridMaster": {"deal": {"forceStopCondition": "x"}}},
            'gridMaster.deal.forceStopCondition: must be an object (a section), not "x"',
        ),
        (
            {"mediator": {"deal": {"amountMaxWh": None}}},
            "mediator.deal.amountMaxWh: is null; leave the key out to keep the default",
        ),
        ({"mediator": {"deal": [1]}}, "mediator.deal: must be an object (a section), not an array"),
    ],
)
def test_wrong_typed_policy_sections_are_refused(policy: dict[str, Any], where: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_policy_json(policy, "p.json")
    assert str(caught.value) == f"p.json: {where}"


@pytest.mark.parametrize(
    ("section", "value", "kind"), [("request", None, "null"), ("accept", 0, "the number 0")]
)
def test_wrong_typed_scenario_sections_are_refused(section: str, value: Any, kind: str) -> None:
    data = scenario(**{"00:00:00-24:00:00": {**slot(), section: value}})
    with pytest.raises(
        ConfigError, match=rf"\.{section}: {section} must be a JSON object, not {kind}"
    ):
        parse_scenario(data, "s.json")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[" * 5000 + "]" * 5000, "arrays and objects nested more than 64 deep"),
        ('{"a": ' * 5000 + "1" + "}" * 5000, "arrays and objects nested more than 64 deep"),
        ('{"refreshingPeriodMsec": ' + "9" * 5000 + "}", "an integer of 5000 digits"),
        ('{"refreshingPeriodMsec": -' + "9" * 5000 + "}", "an integer of 5000 digits"),
        ('{"refreshingPeriodMsec": 1e999}', "1e999 overflows a float"),
    ],
)
def test_hostile_json_is_one_line_also_via_scenario_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, problem: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(problem)):
        load_apis_json(text, "x.json")
    for name in ("scenario.json", "policy.json"):
        path = tmp_path / name
        path.write_text("// hostile\n" + text, encoding="utf-8")
        with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}:2: {re.escape(problem)}"):
            (load_scenario if name == "scenario.json" else read_policy_json)(path)
    assert main(["scenario", "check", str(tmp_path / "scenario.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and problem in err
