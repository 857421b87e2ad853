"""``hil bench generate --houses N``: community benches copied from the 19-house one."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from hil.cli import main
from hil.cli.bench import TEMPLATE, branch_name, branch_sizes, write_community
from hil.config.bench import BenchConfig, UnitConfig
from hil.config.benchfile import load_bench_file


def _without_description(config: BenchConfig) -> list[UnitConfig]:
    return [dataclasses.replace(u, description="") for u in config.units]


def test_19_houses_give_back_the_template(tmp_path: Path) -> None:
    bench_path, scenario_path = write_community(19, tmp_path / "c19.toml")
    template = load_bench_file(TEMPLATE)
    made = load_bench_file(bench_path)
    assert _without_description(made) == _without_description(template)
    assert made.emulation == template.emulation
    assert made.topology == template.topology
    assert made.apis == template.apis
    assert made.envelope == template.envelope
    assert made.community is not None and template.community is not None
    assert made.community.seed == template.community.seed
    assert scenario_path.read_text() == template.community.scenario_path.read_text()


def test_100_houses_repeat_the_mix_in_more_branches(tmp_path: Path) -> None:
    template = load_bench_file(TEMPLATE)
    made = load_bench_file(write_community(100, tmp_path / "c100.toml")[0])
    assert len(made.units) == 100
    assert made.topology is not None
    branches = made.topology.branches
    assert len(branches) == 15 == len(branch_sizes(100, 7))
    assert max(len(b.unit_ids) for b in branches.values()) == 7
    assert made.envelope.bus.exchange_current_sum_max == pytest.approx(8.0 * 15)
    ports, tports = made.emulation.ports, template.emulation.ports
    for i, unit in enumerate(made.units):
        source = template.units[i % 19].id
        assert ports[unit.id].soc == tports[source].soc
        house, thouse = ports[unit.id].household, tports[source].household
        assert house is not None and thouse is not None
        assert (house.pv_peak_w, house.load_wh_per_day) == (
            thouse.pv_peak_w,
            thouse.load_wh_per_day,
        )
    seeds = {p.household.seed for p in ports.values() if p.household is not None}
    assert len(seeds) == 100  # every house its own profile


def test_branch_helpers() -> None:
    assert branch_sizes(19, 7) == [7, 6, 6]
    assert branch_sizes(7, 7) == [7]
    assert sum(branch_sizes(50, 7)) == 50
    assert [branch_name(i) for i in (0, 25, 26, 27)] == ["A", "Z", "AA", "AB"]


def test_cli_refuses_bad_counts_and_overwrites(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "c.toml"
    assert main(["bench", "generate", "--houses", "0", "--out", str(out)]) == 2
    assert "--houses 0" in capsys.readouterr().err
    assert main(["bench", "generate", "--houses", "5", "--out", str(out)]) == 0
    assert load_bench_file(out).unit_ids == ("H01", "H02", "H03", "H04", "H05")
    assert main(["bench", "generate", "--houses", "5", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "exists" in err and "--force" in err and "\n" not in err
    assert main(["bench", "generate", "--houses", "5", "--out", str(out), "--force"]) == 0
