"""Households in the plant: seeded PV and load profiles, their energy on the battery node,
utility import at the reserve, curtailment when full, and their bench-file keys."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hil.config.benchfile import parse_bench_text
from hil.config.emulation import household_seed
from hil.errors import ConfigError
from instruments.emulation.battery import OcvCurve
from instruments.emulation.emulator import Emulator, build_plant, standalone_day
from instruments.emulation.household import (
    ATTENUATION_BANDS,
    DAY_S,
    WEATHERS,
    HouseholdProfile,
    Weather,
    clear_sky,
    load_profile,
    pv_profile,
)
from instruments.emulation.plant import (
    BatterySpec,
    ConverterMode,
    ConverterSpec,
    HouseholdSpec,
    NodeSpec,
    Plant,
    PortSpec,
    Stepping,
    VoltageReferenceSpec,
)
from instruments.emulation.process import EmulatorThread

SLOW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BENCH = Path(__file__).resolve().parent.parent / "fixtures" / "benches" / "emulated.toml"
TEXT = BENCH.read_text(encoding="utf-8")
CAPACITY_WH = 4800.0
WH = 3600.0


def synthetic(
    pv: float = 3000.0, weather: Weather = "sunny", load: float = 9000.0, seed: int = 7
) -> HouseholdProfile:
    return HouseholdProfile.synthetic(
        pv_peak_w=pv, weather=weather, load_wh_per_day=load, seed=seed
    )


def hours(profile: HouseholdProfile, values: np.ndarray, start: float, end: float) -> float:
    """Mean of per-segment ``values`` over [start, end) hours of the day."""
    per_hour = round(3600.0 / profile.resolution_s)
    return float(values[round(start * per_hour) : round(end * per_hour)].mean())


# -- profiles --------------------------------------------------------------------------------


def test_profiles_are_deterministic_for_a_seed() -> None:
    for weather in WEATHERS:
        a, b = synthetic(weather=weather, seed=11), synthetic(weather=weather, seed=11)
        assert np.array_equal(a.pv_w, b.pv_w) and np.array_equal(a.load_w, b.load_w)
    other = synthetic(weather="cloudy", seed=12)
    same = synthetic(weather="cloudy", seed=11)
    assert not np.array_equal(other.pv_w, same.pv_w)
    assert not np.array_equal(other.load_w, same.load_w)
    assert same.segments == 1440 and same.resolution_s == 60.0
    with pytest.raises(ValueError):
        same.pv_w[0] = 1.0  # read-only: a profile cannot change under the plant


@SLOW
@given(
    st.integers(0, 2**63 - 1),
    st.integers(0, 2**63 - 1),
    st.integers(0, 2**63 - 1),
    st.floats(100.0, 10_000.0),
)
def test_sunny_beats_cloudy_beats_rainy(s1: int, s2: int, s3: int, peak: float) -> None:
    sunny, cloudy, rainy = (
        pv_profile(peak, weather, seed)
        for weather, seed in zip(WEATHERS, (s1, s2, s3), strict=True)
    )
    assert sunny.sum() > cloudy.sum() > rainy.sum() > 0.0
    shape = clear_sky((np.arange(1440, dtype=np.float64) + 0.5) * 60.0)
    day = shape > 0
    for weather, pv in zip(WEATHERS, (sunny, cloudy, rainy), strict=True):
        low, high = ATTENUATION_BANDS[weather]
        ratio = pv[day] / (peak * shape[day])
        assert ratio.min() >= low - 1e-12 and ratio.max() <= high + 1e-12
    assert np.ptp(cloudy[day] / shape[day]) > np.ptp(rainy[day] / shape[day])  # fluctuates


def test_pv_is_zero_at_night_and_peaks_around_noon() -> None:
    profile = synthetic(pv=4000.0, weather="sunny")
    t = (np.arange(profile.segments) + 0.5) * profile.resolution_s
    night = (t < 6 * 3600) | (t > 18 * 3600)
    assert (profile.pv_w[night] == 0.0).all()
    assert (profile.pv_w[~night] > 0.0).all()
    assert 3600.0 <= profile.pv_w.max() <= 4000.0
    assert abs(int(np.argmax(profile.pv_w)) * 60.0 - 12 * 3600) <= 3600
    assert profile.pv_at(3 * 3600) == 0.0 and profile.pv_at(12 * 3600 + DAY_S) > 3000.0


@pytest.mark.parametrize("seed", [0, 1, 99])
def test_load_has_morning_and_evening_peaks_and_its_daily_energy(seed: int) -> None:
    profile = synthetic(load=12_000.0, seed=seed)
    assert profile.load_wh == pytest.approx(12_000.0, rel=1e-12)
    load = profile.load_w
    midday, night = hours(profile, load, 10, 16), hours(profile, load, 0, 5)
    morning, evening = hours(profile, load, 6.5, 8.5), hours(profile, load, 18.5, 21)
    assert morning > 1.5 * midday and morning > 1.5 * night
    assert evening > 1.5 * midday and evening > morning
    assert (load > 0).all()


def test_profile_checks() -> None:
    with pytest.raises(ConfigError, match="must divide a day"):
        HouseholdProfile(np.zeros(10), np.zeros(10), resolution_s=7.0)
    with pytest.raises(ConfigError, match=r"shape \(10,\); must be \(1440,\)"):
        HouseholdProfile(np.zeros(10), np.zeros(1440))
    with pytest.raises(ConfigError, match="finite and >= 0"):
        HouseholdProfile(np.full(1440, -1.0), np.zeros(1440))
    with pytest.raises(ConfigError, match="weather 'foggy'; must be one of sunny, cloudy, rainy"):
        pv_profile(1000.0, "foggy", 1)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="load_wh_per_day = -1"):
        load_profile(-1.0, 1)


# -- the plant -------------------------------------------------------------------------------


def house_plant(
    profile: HouseholdProfile,
    *,
    soc: float,
    reserve: float = 0.10,
    full: float = 0.98,
    start_of_day_s: float = 0.0,
    converter: bool = False,
    stepping: Stepping | None = None,
    soc_min: float = 0.0,
    soc_max: float = 1.0,
    capacity_wh: float = CAPACITY_WH,
    bleed_ohm: float | None = 10_000.0,
) -> Plant:
    """A battery with a household, and optionally a converter to a voltage-referenced bus."""
    nodes = [NodeSpec(name="bus"), NodeSpec(name="b1", bleed_ohm=bleed_ohm)]
    ports: list[PortSpec] = [
        BatterySpec(
            name="B1",
            node="b1",
            capacity_wh=capacity_wh,
            soc=soc,
            soc_min=soc_min,
            soc_max=soc_max,
            household=HouseholdSpec(profile=profile, reserve_soc=reserve, full_soc=full),
        )
    ]
    if converter:
        ports += [
            VoltageReferenceSpec(
                name="vr",
                node="bus",
                max_voltage_v=400.0,
                max_current_a=20.0,
                voltage_v=350.0,
                output_on=True,
            ),
            ConverterSpec(name="E1", node="bus", battery_node="b1", slew_a_per_s=100.0),
        ]
    return Plant(nodes, ports, start_of_day_s=start_of_day_s, stepping=stepping)


def exact_energy_wh(values: np.ndarray, start: float, seconds: float, res: float) -> float:
    """Integral (Wh) of a piecewise-constant day profile over [start, start + seconds)."""
    total, t, end = 0.0, start, start + seconds
    while t < end - 1e-9:
        k = math.floor(t / res + 1e-12)
        edge = min((k + 1) * res, end)
        total += float(values[k % len(values)]) * (edge - t)
        t = edge
    return total / WH


@SLOW
@given(
    soc=st.floats(0.12, 0.96),
    pv=st.floats(0.0, 4000.0),
    load=st.floats(0.0, 20_000.0),
    weather=st.sampled_from(WEATHERS),
    seed=st.integers(0, 1000),
    start=st.floats(0.0, DAY_S - 1.0),
    seconds=st.floats(3600.0, 1.5 * DAY_S),
    amps=st.sampled_from([0.0, -1.5, 2.0]),
)
def test_energy_balances(
    soc: float,
    pv: float,
    load: float,
    weather: Weather,
    seed: int,
    start: float,
    seconds: float,
    amps: float,
) -> None:
    profile = HouseholdProfile.synthetic(
        pv_peak_w=pv, weather=weather, load_wh_per_day=load, seed=seed
    )
    plant = house_plant(profile, soc=soc, start_of_day_s=start, converter=True)
    e1 = plant.converter("E1")
    if amps:
        e1.set_grid_current(abs(amps))
        e1.set_mode(ConverterMode.DISCHARGE if amps > 0 else ConverterMode.CHARGE)
    stored0 = plant.battery("B1").stored_energy_j
    node = plant.node_state("b1")
    cap0 = 0.5 * 1e-3 * node.voltage**2
    plant.advance(seconds)
    house = plant.households()["B1"]
    battery, conv = plant.state("B1"), plant.state("E1")
    # A converter charging a full battery trips its BMS, which clamps the stored energy:
    # the books below hold only while the battery stays connected.
    assume(not battery.trips)
    # Every segment is integrated exactly: the steps break at its edges.
    assert house.pv_wh == pytest.approx(
        exact_energy_wh(profile.pv_w, start, seconds, 60.0), rel=1e-9, abs=1e-9
    )
    assert house.load_wh == pytest.approx(
        exact_energy_wh(profile.load_w, start, seconds, 60.0), rel=1e-9, abs=1e-9
    )
    assert house.pv_wh == pytest.approx(house.pv_used_wh + house.pv_wasted_wh, rel=1e-12, abs=1e-9)
    for value in (house.pv_used_wh, house.pv_wasted_wh, house.utility_wh):
        assert value >= 0.0
    assert house.utility_wh <= house.load_wh + 1e-9
    # What the household delivered into the battery node, from its split:
    throughput = house.pv_wh + house.load_wh
    split = house.pv_used_wh - house.load_wh + house.utility_wh
    assert house.energy_wh == pytest.approx(split, abs=1e-4 * throughput + 1e-3)
    # ... and the battery's books: household + converter battery side - I^2 R - bleed - C.
    assert battery.stored_energy_j is not None and conv.battery_energy_j is not None
    node = plant.node_state("b1")
    cap1 = 0.5 * 1e-3 * node.voltage**2
    heat = plant.battery("B1").heat_energy_j
    d_stored = battery.stored_energy_j - stored0
    books = house.energy_wh * WH + conv.battery_energy_j - heat - (cap1 - cap0)
    bleed_bound = seconds * 60.0**2 / 10_000.0  # the node's 10 kohm bleed, at most
    assert books - bleed_bound - 1.0 <= d_stored <= books + 1.0


def run_in_minutes(plant: Plant, seconds: float) -> list[tuple[float, float, float, float]]:
    """(soc before, soc after, utility Wh, wasted Wh) of every minute."""
    out = []
    house = plant.households()["B1"]
    for _ in range(round(seconds / 60.0)):
        soc0 = plant.battery("B1").soc
        plant.advance(60.0)
        now = plant.households()["B1"]
        out.append(
            (
                soc0,
                plant.battery("B1").soc,
                now.utility_wh - house.utility_wh,
                now.pv_wasted_wh - house.pv_wasted_wh,
            )
        )
        house = now
    return out


@FEW
@given(
    soc=st.floats(0.11, 0.97),
    pv=st.floats(1000.0, 4000.0),
    load=st.floats(4000.0, 25_000.0),
    reserve=st.floats(0.05, 0.4),
    span=st.floats(0.2, 0.55),
    seed=st.integers(0, 1000),
)
def test_utility_only_at_reserve_waste_only_when_full_and_no_trip(
    soc: float, pv: float, load: float, reserve: float, span: float, seed: int
) -> None:
    full = reserve + span
    soc = min(max(soc, reserve), full)
    profile = HouseholdProfile.synthetic(
        pv_peak_w=pv, weather="sunny", load_wh_per_day=load, seed=seed
    )
    # A small battery and tight BMS limits just outside the household's band.
    plant = house_plant(
        profile,
        soc=soc,
        reserve=reserve,
        full=full,
        capacity_wh=2000.0,
        soc_min=reserve - 0.01,
        soc_max=full + 0.01,
        bleed_ohm=None,
    )
    tol = 1.5e-3  # the hold bias (2 mA) over a day, as SoC of 2 kWh
    for soc0, soc1, utility, wasted in run_in_minutes(plant, DAY_S):
        if utility > 1e-9:
            assert min(soc0, soc1) <= reserve + 1e-6
        if wasted > 1e-9:
            assert max(soc0, soc1) >= full - 1e-6
        assert reserve - tol <= soc1 <= full + tol
    assert plant.trip_events == []
    house = plant.households()["B1"]
    assert house.utility_wh > 0.0 or house.pv_wasted_wh > 0.0 or load < 8000


def test_reserve_buys_from_the_utility_and_keeps_the_battery_there() -> None:
    night = HouseholdProfile(np.zeros(1440), np.full(1440, 800.0))
    plant = house_plant(night, soc=0.1005)
    plant.advance(3600.0)
    house = plant.households()["B1"]
    soc = plant.battery("B1").soc
    assert house.mode == "reserve"
    assert 0.0995 < soc <= 0.1000 + 1e-6
    drained = (0.1005 - 0.1) * CAPACITY_WH  # 2.4 Wh came from the battery, the rest bought
    assert house.utility_wh == pytest.approx(800.0 - drained, abs=0.5)
    assert house.pv_wasted_wh == 0.0
    # The household draws nothing; the battery still feeds its node's 10 kohm bleed.
    assert plant.state("B1").current == pytest.approx(plant.node_voltage("b1") / 1e4, rel=0.01)


def test_full_battery_curtails_pv() -> None:
    sun = HouseholdProfile(np.full(1440, 2000.0), np.full(1440, 500.0))
    plant = house_plant(sun, soc=0.979, full=0.98)
    plant.advance(3600.0)
    house = plant.households()["B1"]
    assert house.mode == "full"
    assert plant.battery("B1").soc == pytest.approx(0.98, abs=1e-4)
    stored = (0.98 - 0.979) * CAPACITY_WH
    assert house.pv_wasted_wh == pytest.approx(1500.0 - stored, abs=1.0)
    assert house.pv_used_wh == pytest.approx(500.0 + stored, abs=1.0)
    assert house.utility_wh == 0.0


def test_at_the_reserve_the_load_takes_what_a_converter_brings() -> None:
    night = HouseholdProfile(np.zeros(1440), np.full(1440, 1000.0))
    plant = house_plant(night, soc=0.1, converter=True)
    e1 = plant.converter("E1")
    e1.set_grid_current(1.0)  # about 350 W from the bus, 279 W into the battery node
    e1.set_mode(ConverterMode.CHARGE)
    plant.advance(3600.0)
    house = plant.households()["B1"]
    conv = plant.state("E1")
    assert conv.battery_energy_j is not None
    into_node_wh = conv.battery_energy_j / WH
    assert into_node_wh == pytest.approx(350.0 - 71.0, rel=0.02)
    assert plant.battery("B1").soc == pytest.approx(0.1, abs=2e-4)
    assert house.utility_wh == pytest.approx(1000.0 - into_node_wh, abs=2.0)


def test_a_full_battery_passes_pv_to_a_discharging_converter() -> None:
    sun = HouseholdProfile(np.full(1440, 3000.0), np.full(1440, 500.0))
    plant = house_plant(sun, soc=0.98, converter=True)
    e1 = plant.converter("E1")
    e1.set_grid_current(2.0)
    e1.set_mode(ConverterMode.DISCHARGE)
    plant.advance(3600.0)
    house = plant.households()["B1"]
    conv = plant.state("E1")
    assert conv.battery_energy_j is not None
    drawn_wh = -conv.battery_energy_j / WH  # 700 W onto the bus + 55 W loss
    assert drawn_wh == pytest.approx(755.0, rel=0.02)
    assert plant.battery("B1").soc == pytest.approx(0.98, abs=2e-4)
    assert house.pv_wasted_wh == pytest.approx(2500.0 - drawn_wh, abs=2.0)


def test_disconnected_battery_isolates_the_household() -> None:
    profile = HouseholdProfile(np.full(1440, 300.0), np.full(1440, 1000.0))
    plant = house_plant(profile, soc=0.5)
    plant.battery("B1").set_connected(False)
    plant.advance(1800.0)
    house = plant.households()["B1"]
    assert house.mode == "isolated" and house.power_w == 0.0
    assert house.pv_used_wh == pytest.approx(150.0) and house.utility_wh == pytest.approx(350.0)
    assert plant.battery("B1").soc == 0.5


def test_adaptive_and_fixed_stepping_agree() -> None:
    profile = synthetic(pv=4000.0, weather="cloudy", load=11_000.0, seed=5)
    counters = []
    for stepping in (None, Stepping(fixed_step_s=5.0)):
        plant = house_plant(profile, soc=0.3, start_of_day_s=3 * 3600.0, stepping=stepping)
        plant.advance(DAY_S)
        house = plant.households()["B1"]
        counters.append((house, plant.battery("B1").soc))
    (adaptive, soc_a), (fixed, soc_f) = counters
    assert soc_a == pytest.approx(soc_f, abs=1e-3)
    for key in ("pv_used_wh", "pv_wasted_wh", "utility_wh", "energy_wh"):
        assert getattr(adaptive, key) == pytest.approx(getattr(fixed, key), abs=15.0), key


def test_time_of_day_and_status_entries() -> None:
    profile = synthetic(pv=3000.0, load=8000.0)
    plant = house_plant(profile, soc=0.5, start_of_day_s=11.5 * 3600.0)
    assert plant.time_of_day == 11.5 * 3600.0
    plant.advance(DAY_S)
    assert plant.time_of_day == pytest.approx(11.5 * 3600.0)
    entry = plant.snapshot()["ports"]["B1"]["household"]
    assert set(entry) == {
        "pv_w",
        "load_w",
        "pv_wh",
        "pv_used_wh",
        "pv_wasted_wh",
        "load_wh",
        "utility_wh",
    }
    assert entry["pv_w"] == profile.pv_at(11.5 * 3600.0) > 0.0
    assert entry["pv_wh"] == pytest.approx(profile.pv_wh, rel=1e-9)
    bare = Plant(
        [NodeSpec(name="b")], [BatterySpec(name="B", node="b", capacity_wh=100.0, soc=0.5)]
    )
    assert "household" not in bare.snapshot()["ports"]["B"]


def test_household_spec_checks() -> None:
    profile = synthetic()
    with pytest.raises(ConfigError, match=re.escape("soc_min 0.2 < reserve_soc < full_soc")):
        BatterySpec(
            name="B",
            node="b",
            capacity_wh=1.0,
            soc=0.5,
            soc_min=0.2,
            household=HouseholdSpec(profile=profile, reserve_soc=0.1),
        )
    with pytest.raises(ConfigError, match=re.escape("reserve_soc 0.9 and full_soc 0.5")):
        BatterySpec(
            name="B",
            node="b",
            capacity_wh=1.0,
            soc=0.5,
            household=HouseholdSpec(profile=profile, reserve_soc=0.9, full_soc=0.5),
        )
    two = [
        BatterySpec(
            name=name, node="b", capacity_wh=1.0, soc=0.5, household=HouseholdSpec(profile=profile)
        )
        for name in ("B1", "B2")
    ]
    with pytest.raises(ConfigError, match="already has a household"):
        Plant([NodeSpec(name="b")], two)
    coarse = HouseholdProfile(np.zeros(288), np.zeros(288), resolution_s=300.0)
    mixed = [
        BatterySpec(
            name="B1", node="b1", capacity_wh=1.0, soc=0.5, household=HouseholdSpec(profile=profile)
        ),
        BatterySpec(
            name="B2", node="b2", capacity_wh=1.0, soc=0.5, household=HouseholdSpec(profile=coarse)
        ),
    ]
    with pytest.raises(ConfigError, match="share one profile resolution"):
        Plant([NodeSpec(name="b1"), NodeSpec(name="b2")], mixed)


def test_constant_ocv_household_matches_hand_numbers() -> None:
    """1 kW of net load on a 50 V flat battery for an hour: 1 kWh out, I^2 R on top."""
    profile = HouseholdProfile(np.zeros(1440), np.full(1440, 1000.0))
    spec = BatterySpec(
        name="B1",
        node="b1",
        capacity_wh=CAPACITY_WH,
        soc=0.5,
        ocv=OcvCurve.constant(50.0),
        household=HouseholdSpec(profile=profile),
    )
    plant = Plant([NodeSpec(name="b1", bleed_ohm=None)], [spec])
    plant.advance(3600.0)
    v = plant.node_voltage("b1")
    i = 1000.0 / v
    assert v == pytest.approx(50.0 - 0.05 * i, abs=1e-4)
    used = (0.5 - plant.battery("B1").soc) * CAPACITY_WH
    assert used == pytest.approx(1000.0 + i * i * 0.05, rel=1e-4)


# -- the bench file and the emulator ---------------------------------------------------------


HOUSE = """
  [emulation.ports.E001.household]
  pv_peak_w = 3000.0
  weather = "cloudy"
  load_wh_per_day = 9000.0
"""


def with_emulation(extra: str, *, start: str = "") -> str:
    text = TEXT.replace('serial_transport = "tcp"', f'serial_transport = "tcp"\n{start}', 1)
    anchor = "[emulation.ports.E002]"
    assert anchor in text
    return text.replace(anchor, extra.strip("\n") + "\n\n" + anchor, 1)


def config_error(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_bench_text(text, "bench.toml")
    return str(caught.value)


def line_of(text: str, fragment: str) -> int:
    return text.count("\n", 0, text.index(fragment)) + 1


def test_bench_file_household_and_start_of_day() -> None:
    config = parse_bench_text(with_emulation(HOUSE, start='start_of_day = "06:30"'), "b.toml")
    assert config.emulation.start_of_day == 6.5 * 3600.0
    house = config.emulation.ports["E001"].household
    assert house is not None
    assert (house.pv_peak_w, house.weather, house.load_wh_per_day) == (3000.0, "cloudy", 9000.0)
    assert house.seed == household_seed(config.emulation.seed, "E001")
    assert (house.reserve_soc, house.full_soc) == (0.10, 0.98)
    assert household_seed(config.emulation.seed, "E002") != house.seed
    assert config.emulation.ports["E002"].household is None
    assert config.to_dict()["emulation"]["ports"]["E001"]["household"]["weather"] == "cloudy"
    explicit = HOUSE + "  seed = 5\n  reserve_soc = 0.2\n  full_soc = 0.9\n"
    config = parse_bench_text(with_emulation(explicit, start="start_of_day = 3600"), "b.toml")
    house = config.emulation.ports["E001"].household
    assert house is not None and (house.seed, house.reserve_soc, house.full_soc) == (5, 0.2, 0.9)
    assert config.emulation.start_of_day == 3600.0
    assert parse_bench_text(TEXT, "b.toml").emulation.start_of_day == 0.0
    text = with_emulation("", start='start_of_day = "23:59:59"')
    assert parse_bench_text(text, "b.toml").emulation.start_of_day == DAY_S - 1.0


@pytest.mark.parametrize("value", ['"24:00"', '"6:75"', '"noon"', "86400", "-1", "true", '"6"'])
def test_bad_start_of_day(value: str) -> None:
    text = with_emulation("", start=f"start_of_day = {value}")
    message = config_error(text)
    line = line_of(text, f"start_of_day = {value}")
    assert message.startswith(f"bench.toml:{line}: emulation.start_of_day: "), message
    assert '; allowed: "HH:MM" or "HH:MM:SS"' in message


@pytest.mark.parametrize(
    ("change", "key", "parts"),
    [
        (
            'weather = "cloudy"',
            "weather",
            ["'foggy' is not accepted", "'sunny', 'cloudy', 'rainy'"],
        ),
        ("pv_peak_w = 3000.0", "pv_peak_w", ["-5 is out of range", "≥ 0"]),
        ("load_wh_per_day = 9000.0", "load_wh_per_day", ["expected a number", "finite number"]),
    ],
)
def test_bad_household_values(change: str, key: str, parts: list[str]) -> None:
    bad = {
        "weather": 'weather = "foggy"',
        "pv_peak_w": "pv_peak_w = -5",
        "load_wh_per_day": 'load_wh_per_day = "lots"',
    }[key]
    text = with_emulation(HOUSE.replace(change, bad))
    message = config_error(text)
    assert message.startswith(
        f"bench.toml:{line_of(text, bad)}: emulation.ports.E001.household.{key}: "
    )
    for part in parts:
        assert part in message, message


def test_household_key_errors() -> None:
    typo = with_emulation(HOUSE.replace("pv_peak_w", "pv_peak"))
    message = config_error(typo)
    assert (
        "emulation.ports.E001.household.pv_peak: unknown key (did you mean 'pv_peak_w'?)" in message
    )
    missing = with_emulation(HOUSE.replace('  weather = "cloudy"\n', ""))
    assert "household.weather: required key is missing" in config_error(missing)
    order = with_emulation(HOUSE + "  reserve_soc = 0.5\n  full_soc = 0.4\n")
    message = config_error(order)
    assert message.startswith(f"bench.toml:{line_of(order, 'full_soc = 0.4')}: ")
    assert "household.full_soc: full_soc 0.4 must be above reserve_soc 0.5" in message
    assert "allowed: 0 < reserve_soc < full_soc < 1" in message
    for value in ("0", "1.0"):
        edge = with_emulation(HOUSE + f"  reserve_soc = {value}\n")
        assert "household.reserve_soc" in config_error(edge)


@pytest.mark.parametrize("unit", ["E005", "SUP1"])
def test_household_needs_a_battery(unit: str) -> None:
    text = TEXT + HOUSE.replace("E001", unit)
    message = config_error(text)
    line = line_of(text, f"[emulation.ports.{unit}.household]")
    assert message.startswith(f"bench.toml:{line}: emulation.ports.{unit}.household: "), message
    assert re.search(rf"unit {unit} has no battery \(no BMS\)", message)
    assert "; allowed: " in message


def household_bench(pv: float = 3000.0, load: float = 9000.0, extra: str = "") -> str:
    return with_emulation(
        HOUSE.replace("3000.0", str(pv)).replace("9000.0", str(load)) + extra,
        start='start_of_day = "05:00"',
    )


def test_emulator_status_reports_households() -> None:
    config = parse_bench_text(household_bench(), "b.toml")
    emulator = Emulator(config)
    emulator.advance(12 * 3600.0)
    ports = {p["port"]: p for p in emulator.status()["ports"]}
    entry = ports["E001.battery"]["household"]
    assert entry["pv_wh"] > 0 and entry["load_wh"] > 0
    assert entry["pv_wh"] == pytest.approx(entry["pv_used_wh"] + entry["pv_wasted_wh"])
    assert entry["pv_w"] == emulator.plant.households()["E001.battery"].pv_w
    assert all("household" not in p for name, p in ports.items() if name != "E001.battery")
    assert emulator.plant.time_of_day == 17 * 3600.0


def test_status_over_the_control_channel() -> None:
    config = parse_bench_text(household_bench(), "b.toml")
    with EmulatorThread(config) as emulator:
        emulator.control.request("advance", seconds=7 * 3600.0)
        status = emulator.control.status()
    entry = next(p for p in status["ports"] if p["port"] == "E001.battery")["household"]
    assert entry["pv_w"] > 0.0 and entry["load_wh"] > 0.0 and entry["utility_wh"] >= 0.0


def test_household_must_not_push_the_battery_out_of_its_window() -> None:
    config = parse_bench_text(household_bench(pv=9000.0), "b.toml")
    with pytest.raises(ConfigError) as caught:
        build_plant(config)
    message = str(caught.value)
    assert "emulation.ports.E001.household.pv_peak_w: a PV surplus of" in message
    assert "above its 58.4 V limit; allowed: a PV surplus up to" in message
    heavy = parse_bench_text(household_bench(pv=0.0, load=150_000.0), "b.toml")
    with pytest.raises(ConfigError, match=re.escape("household.load_wh_per_day: a net load of")):
        build_plant(heavy)


def test_standalone_day() -> None:
    config = parse_bench_text(household_bench(), "b.toml")
    alone = standalone_day(config, DAY_S)
    assert set(alone) == {"E001"}
    counters = alone["E001"]
    assert set(counters) == {
        "pv_w",
        "load_w",
        "pv_wh",
        "pv_used_wh",
        "pv_wasted_wh",
        "load_wh",
        "utility_wh",
    }
    house = config.emulation.ports["E001"].household
    assert house is not None
    profile = HouseholdProfile.synthetic(
        pv_peak_w=3000.0, weather="cloudy", load_wh_per_day=9000.0, seed=house.seed
    )
    assert counters["pv_wh"] == pytest.approx(profile.pv_wh, rel=1e-9)
    assert counters["load_wh"] == pytest.approx(9000.0, rel=1e-9)
    assert alone == standalone_day(config, DAY_S)  # deterministic
    # Starting later in the day is the same as a later start_of_day; SoCs can be given.
    later = standalone_day(config, 6 * 3600.0, start_time=3600.0, socs={"E001": 0.11})
    shifted = parse_bench_text(household_bench().replace('"05:00"', '"06:00"'), "b.toml")
    emulator = Emulator(shifted)
    emulator.plant.make_safe()
    emulator.plant.battery("E001.battery").soc = 0.11
    emulator.advance(6 * 3600.0)
    again = emulator.status()
    entry = next(p for p in again["ports"] if p["port"] == "E001.battery")["household"]
    for key, value in later["E001"].items():
        assert value == pytest.approx(entry[key], rel=1e-9, abs=1e-9), key
    with pytest.raises(ConfigError, match="unit 'SUP1' has no battery"):
        standalone_day(config, 60.0, socs={"SUP1": 0.5})
