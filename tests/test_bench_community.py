"""The community part of a bench file: ``[community]`` (scenario, members, seed) and the
deal-making numbers of ``[apis]``; every mistake names the file, line, key and rule."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hil.config.benchfile import load_bench_file, parse_bench_text
from hil.config.deal_policy import DealPolicy
from hil.errors import ConfigError

BENCHES = Path(__file__).resolve().parent.parent / "fixtures" / "benches"
COMMUNITY = BENCHES / "community-19.toml"
EMULATED_TEXT = (BENCHES / "emulated.toml").read_text(encoding="utf-8")
SCENARIO = """{"00:00:00-24:00:00": {"batteryStatus": {"-": "any"}}}"""


def bench_with(tmp_path: Path, community: str, apis: str = "") -> Path:
    """The default bench with a ``[community]`` table (and extra ``[apis]`` keys)."""
    (tmp_path / "scenario.json").write_text(SCENARIO, encoding="utf-8")
    text = EMULATED_TEXT.replace("[apis]", "[apis]\n" + apis, 1) + "\n" + community
    path = tmp_path / "bench.toml"
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_bench_file(path)
    return str(caught.value)


def test_the_community_bench_loads_with_its_scenario_and_deal_numbers() -> None:
    config = load_bench_file(COMMUNITY)
    assert len(config.units) == 19 and all(u.has_battery for u in config.units)
    assert config.topology is not None and sorted(config.topology.branches) == ["A", "B", "C"]
    assert config.community is not None
    assert config.community.scenario_path == BENCHES / "community-19.scenario.json"
    assert len(config.community.scenario.slots) == 3
    policy = DealPolicy.from_bench(config)
    assert (policy.deal_current, policy.amount_min_wh, policy.amount_max_wh) == (2.0, 100, 400)
    assert policy.amount_unit_wh == 100 and policy.house_keeping_period == 120.0
    assert policy.deal_interlock_capacity == 1  # 2.3 A capacity, 2 A deals
    assert policy.battery_wh("H01") == 4800.0


def test_a_bench_without_community_has_apis_deal_defaults() -> None:
    config = parse_bench_text(EMULATED_TEXT, "emulated.toml")
    assert config.community is None
    policy = DealPolicy.from_bench(config)
    assert (policy.deal_current, policy.amount_max_wh, policy.negotiation_timeout) == (
        1.0,
        50,
        2.0,
    )
    assert policy.member_unit_ids == ()


def test_members_seed_and_a_relative_scenario_path(tmp_path: Path) -> None:
    path = bench_with(
        tmp_path, '[community]\nscenario = "scenario.json"\nmembers = ["E001", "E003"]\nseed = 7\n'
    )
    config = load_bench_file(path)
    assert config.community is not None
    assert config.community.members == ("E001", "E003") and config.community.seed == 7
    assert DealPolicy.from_bench(config).member_unit_ids == ("E001", "E003")


@pytest.mark.parametrize(
    ("community", "apis", "expected"),
    [
        ('[community]\nscenario = "nowhere.json"\n', "", r"community\.scenario: 'nowhere.json'"),
        ("[community]\nseed = 1\n", "", r"community\.scenario"),
        ('[community]\nscenario = "scenario.json"\nmembers = ["SUP1"]\n', "", r"no battery"),
        ('[community]\nscenario = "scenario.json"\nmembers = ["X9"]\n', "", r"'X9' is not a unit"),
        ('[community]\nscenario = "scenario.json"\nseed = -1\n', "", r"community\.seed"),
        ('[community]\nscenario = "scenario.json"\nsped = 1\n', "", r"community\.sped: unknown"),
        ("", "deal_current = 3.0\n", r"apis\.deal_current: 3 A is above unit_current_capacity"),
        ("", "deal_amount_min_wh = 500\n", r"apis\.deal_amount_min_wh: 500 Wh is above"),
        ("", "deal_amount_unit_wh = 100\n", r"apis\.deal_amount_unit_wh: .*floor to 0 Wh"),
        ("", "deal_amount_max_wh = 0\n", r"apis\.deal_amount_max_wh: 0 is out of range"),
        ("", "negotiation_timeout = 0.0\n", r"apis\.negotiation_timeout"),
    ],
)
def test_mistakes_name_the_key_and_the_rule(
    tmp_path: Path, community: str, apis: str, expected: str
) -> None:
    message = error_of(bench_with(tmp_path, community, apis))
    assert message.startswith(str(tmp_path / "bench.toml") + ":"), message
    assert "allowed:" in message
    assert re.search(expected, message), message


def test_a_broken_scenario_is_reported_with_the_bench_key_and_the_scenario_key(
    tmp_path: Path,
) -> None:
    path = bench_with(tmp_path, '[community]\nscenario = "scenario.json"\n')
    (tmp_path / "scenario.json").write_text(
        '{"00:00:00-24:00:00": {"batteryStatus": {"-": "any"}, "request": {"any": '
        '{"charge": {"limitWh": -5, "pointPerWh": 1}}}}}',
        encoding="utf-8",
    )
    message = error_of(path)
    assert "community.scenario" in message and "limitWh" in message, message


def test_a_relative_scenario_path_cannot_leave_the_bench_folder(tmp_path: Path) -> None:
    outside = tmp_path / "secret.json"
    outside.write_text(SCENARIO, encoding="utf-8")
    folder = tmp_path / "bench"
    folder.mkdir()
    message = error_of(bench_with(folder, '[community]\nscenario = "../secret.json"\n'))
    assert "community.scenario: '../secret.json' leads out of the bench file's folder" in message
    assert "\n" not in message
    (folder / "link.json").symlink_to(outside)
    message = error_of(bench_with(folder, '[community]\nscenario = "link.json"\n'))
    assert "leads out of the bench file's folder" in message, message


def test_an_absolute_scenario_path_is_read_as_given(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "day.json").write_text(SCENARIO, encoding="utf-8")
    folder = tmp_path / "bench"
    folder.mkdir()
    config = load_bench_file(
        bench_with(folder, f'[community]\nscenario = "{elsewhere / "day.json"}"\n')
    )
    assert config.community is not None
    assert config.community.scenario_path == elsewhere / "day.json"
