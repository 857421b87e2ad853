"""The bench file loader: shipped files load, and every class of mistake is reported with
the file, the line, the key path and what is allowed, before any instrument is touched."""

from __future__ import annotations

import dataclasses
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hil.config import benchfile
from hil.config.benchfile import BenchConfig, load_bench_file, parse_bench_text
from hil.config.ratings import (
    InstrumentRating,
    families,
    find_model,
    model_table,
    parse_model_table,
    resource_problem,
)
from hil.config.toml_source import LineLocator
from hil.errors import CapabilityError, ConfigError, EnvelopeError

BENCHES = Path(__file__).resolve().parent.parent / "fixtures" / "benches"
EMULATED = BENCHES / "emulated.toml"
LAB = BENCHES / "lab-example.toml"
TEXT = EMULATED.read_text(encoding="utf-8")


def line_of(text: str, fragment: str) -> int:
    """1-based line of the first occurrence of ``fragment`` in ``text``."""
    index = text.index(fragment)
    return text.count("\n", 0, index) + 1


def changed(old: str, new: str, text: str = TEXT) -> str:
    assert old in text, f"fixture no longer contains {old!r}"
    return text.replace(old, new, 1)


def config_error(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_bench_text(text, "bench.toml")
    return str(caught.value)


def assert_error(text: str, line_fragment: str, key: str, *parts: str) -> str:
    """The error names bench.toml, the line holding ``line_fragment``, the key path, an
    ``allowed:`` clause and every one of ``parts``."""
    message = config_error(text)
    line = line_of(text, line_fragment)
    assert message.startswith(f"bench.toml:{line}: {key}: "), message
    assert "; allowed: " in message, message
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"
    return message


# -- the shipped bench files ----------------------------------------------------------------


def test_emulated_bench_loads_with_the_promised_units() -> None:
    config = load_bench_file(EMULATED)
    assert config.path == EMULATED
    assert re.fullmatch(r"[0-9a-f]{64}", config.sha256)
    assert config.nominal_voltage == 350.0
    assert config.emulated_only
    assert config.unit_ids == (
        "E001",
        "E002",
        "E003",
        "E004",
        "E005",
        "SUP1",
        "LOAD1",
        "BID1",
        "BID2",
        "BID3",
        "SUP2",
    )
    for unit_id in ("E001", "E002", "E003", "E004"):
        unit = config.unit(unit_id)
        assert unit.kind == "converter" and unit.has_battery
        assert [i.driver for i in unit.instruments] == ["eza2500", "apis_bms"]
        port = config.emulation.ports[unit_id]
        assert port.battery_capacity == 4800.0
    socs = [config.emulation.ports[u].soc for u in ("E001", "E002", "E003", "E004")]
    assert min(s for s in socs if s is not None) == 0.30
    assert max(s for s in socs if s is not None) == 0.90
    sony = config.unit("E005")
    assert not sony.has_battery and sony.envelope.soc_min is None
    assert {i.name: (i.driver, i.node) for i in sony.instruments} == {
        "converter": ("eza2500", "bus"),
        "supply": ("n5700", "battery"),
        "load": ("chroma63200a", "battery"),
    }
    assert sony.instrument("supply").rating.voltage_max == 60.0
    kinds = {u.id: (u.kind, u.bus_instrument.driver) for u in config.units[5:]}
    assert kinds == {
        "SUP1": ("supply", "n5700"),
        "LOAD1": ("load", "chroma63200a"),
        "BID1": ("bidirectional", "it6000c"),
        "BID2": ("bidirectional", "psb10000"),
        "BID3": ("bidirectional", "rp7900"),
        "SUP2": ("supply", "pwr01"),
    }
    assert config.unit("BID3").instrument("bidirectional").settings["watchdog_s"] == 600
    assert config.unit("SUP1").instrument("supply").rating.voltage_max == 600.0
    assert not config.unit("SUP1").can_sink and not config.unit("LOAD1").can_source
    assert config.large_capacity_unit_ids == ("E004", "BID1", "BID2", "BID3")
    assert config.topology is not None and config.topology.branch_of("E003") == "B"
    assert config.envelope.bus.branch_capacity == {"A": 6.0, "B": 6.0, "LAB": 10.0}
    assert config.emulation.seed == 20240601 and config.emulation.serial_transport == "tcp"


@pytest.mark.parametrize("path", [EMULATED, LAB], ids=["emulated", "lab-example"])
def test_every_instrument_is_rated_for_its_node(path: Path) -> None:
    config = load_bench_file(path)
    for unit in config.units:
        env = unit.envelope
        for inst in unit.instruments:
            assert inst.model in model_table()[inst.spec.ratings_table]
            if inst.node == "bus":
                assert inst.rating.voltage_max >= config.envelope.bus.voltage_max
                assert env.current_source_max <= inst.rating.current_source_max
                assert env.current_sink_max <= inst.rating.current_sink_max
                assert env.power_max <= inst.rating.power_max
            else:
                assert env.battery_voltage_max is not None
                assert inst.rating.voltage_max >= env.battery_voltage_max


def test_lab_example_has_real_resources() -> None:
    config = load_bench_file(LAB)
    assert not config.emulated_only
    resources = {i.key: i.resource for i in config.instruments()}
    assert resources["SUP1.supply"] == "TCPIP0::192.168.0.22::5025::SOCKET"
    assert resources["E005.load"] == "ASRL/dev/ttyUSB0::INSTR"
    assert resources["BID2.bidirectional"] == "192.168.0.40:502"
    assert resources["E002.battery"] == "/dev/ttyUSB2"
    assert config.unit("E001").instrument("converter").timeout == 1.0
    assert config.apis.supervisor_period == 1.0
    assert config.apis.checkpoint_retries == 3  # APIS default when [apis] does not say
    assert config.emulation.serial_transport == "pty"
    assert config.emulation.ports["E002"].soc == 0.35
    assert config.emulation.ports["BID1"].soc is None


def test_apis_policy_defaults_and_bus_numbers() -> None:
    minimal = """
name = "tiny"
[bus]
[[units]]
id = "E001"
kind = "converter"
  [[units.instruments]]
  driver = "eza2500"
  model = "EZA-2500-32048SC0"
  resource = "emulated"
  [[units.instruments]]
  driver = "apis_bms"
  model = "APIS-48V-4.8kWh"
  resource = "emulated"
"""
    config = parse_bench_text(minimal, "tiny.toml")
    apis = config.apis
    assert (apis.operation_voltage, apis.voltage_range_min, apis.voltage_range_max) == (
        350.0,
        300.0,
        380.0,
    )
    assert (apis.voltage_separation, apis.voltage_allowance, apis.uvlo_mask) == (10, 4, 10)
    assert (apis.current_step, apis.current_allowance, apis.unit_current_capacity) == (
        1.0,
        0.125,
        2.3,
    )
    assert (apis.compensation_drift_allowance, apis.compensation_trials) == (0.03, 3)
    assert (apis.checkpoint_wait, apis.checkpoint_retries, apis.ramp_up_timeout) == (0.1, 3, 180)
    assert (apis.scram_vr_delay, apis.error_sustaining) == (5.0, 30.0)
    assert (apis.soc_force_stop_discharge, apis.soc_force_stop_charge) == (0.20, 0.95)
    assert apis.balance_allowance_per_unit == 0.125
    assert apis.activation_voltage_max == 320.0 and apis.stop_voltage == 310.0
    assert set(apis.APIS_KEYS) == set(apis.as_dict())
    env = config.unit("E001").envelope
    assert env.current_source_max == env.current_sink_max == 2.3
    assert env.power_max == pytest.approx(2.3 * 380)
    assert env.slew_max == pytest.approx(10.0)
    assert (env.soc_min, env.soc_max) == (0.20, 0.95)
    assert (env.battery_voltage_min, env.battery_voltage_max) == (32.0, 58.4)
    assert not config.emulation.declared
    assert config.emulation.ports["E001"].soc == 0.5
    assert config.topology is None


def test_envelope_from_the_file_refuses_before_sending() -> None:
    config = load_bench_file(EMULATED)
    env = config.envelope
    assert env.check_current("E001", 2.3) == 2.3
    with pytest.raises(EnvelopeError, match=r"unit E001: .*\+2\.4 A exceeds the source limit 2\.3"):
        env.check_current("E001", 2.4)
    with pytest.raises(CapabilityError, match="unit LOAD1"):
        env.check_current("LOAD1", 1.0)
    with pytest.raises(EnvelopeError, match="branch A: current 7 A exceeds its capacity 6 A"):
        env.check_branch("A", 7.0)
    with pytest.raises(EnvelopeError, match="sum of exchange currents 11 A"):
        env.check_exchange_sum(11.0)


# -- every class of error -------------------------------------------------------------------


def test_bad_toml_syntax_names_line_and_column() -> None:
    text = changed('name = "emulated-default"', 'name = "emulated-default')
    message = config_error(text)
    line = line_of(text, 'name = "emulated-default')
    assert re.match(rf"bench\.toml:{line}:\d+: TOML syntax error: ", message), message
    assert "allowed: TOML 1.0 syntax" in message


def test_unknown_key_is_an_error_with_a_suggestion() -> None:
    text = changed("voltage_min = 300.0 ", "voltage_mni = 300.0 ")
    assert_error(
        text,
        "voltage_mni",
        "bus.voltage_mni",
        "unknown key (did you mean 'voltage_min'?)",
        "voltage_max, voltage_min",
    )
    text = changed("[emulation]\n", "[emulation]\nspeed = 3\n")
    assert_error(text, "speed = 3", "emulation.speed", "unknown key", "seed, serial_transport")
    text = changed('  resource = "emulated"\n', '  resorce = "/dev/ttyUSB0"\n')
    assert_error(text, "resorce", "units[0].instruments[0].resorce", "did you mean 'resource'")


def test_unknown_top_level_table_is_an_error() -> None:
    text = TEXT + "\n[emulaton]\nseed = 1\n"
    assert_error(text, "[emulaton]", "emulaton", "did you mean 'emulation'", "units")


def test_wrong_type() -> None:
    text = changed("nominal_voltage = 350.0", 'nominal_voltage = "350"')
    assert_error(
        text, "nominal_voltage", "bus.nominal_voltage", "expected a number, got string '350'"
    )
    text = changed("check_enabled = true", "check_enabled = 1")
    assert_error(text, "check_enabled", "topology.check_enabled", "expected true or false")
    text = changed("seed = 20240601", "seed = 2.5")
    assert_error(text, "seed = 2.5", "emulation.seed", "expected an integer", "an integer ≥ 0")
    text = changed("large_capacity = true", 'large_capacity = "yes"')
    assert_error(text, 'large_capacity = "yes"', "units[3].large_capacity", "true, false")
    text = changed('[[units]]\nid = "E002"', '[units.extra]\nid = "E002"')
    assert "units" in config_error(text)


def test_negative_capacity() -> None:
    text = changed("battery_capacity = 4800.0            # Wh", "battery_capacity = -4800.0")
    assert_error(
        text,
        "battery_capacity = -4800.0",
        "emulation.ports.E001.battery_capacity",
        "-4800 is out of range",
        "> 0",
    )
    text = changed("capacity = 6.0                       # A", "capacity = -6.0")
    assert_error(text, "capacity = -6.0", "topology.branches.A.capacity", "out of range")


@pytest.mark.parametrize("value", ["1.3", "30", "-0.1", "nan", "inf"])
def test_soc_outside_zero_to_one(value: str) -> None:
    text = changed("soc = 0.30", f"soc = {value}")
    assert_error(text, f"soc = {value}", "emulation.ports.E001.soc", "allowed: a finite number ≥ 0")
    text = changed("soc_force_stop_charge = 0.95", f"soc_force_stop_charge = {value}")
    assert_error(text, f"soc_force_stop_charge = {value}", "apis.soc_force_stop_charge", "≤ 1")


def test_unknown_driver() -> None:
    text = changed('driver = "it6000c"', 'driver = "it6000"')
    message = assert_error(
        text,
        'driver = "it6000"',
        "units[7].instruments[0].driver",
        "'it6000' is not accepted (did you mean 'it6000c'?)",
    )
    for name in families():
        assert repr(name) in message


def test_unknown_model_for_driver() -> None:
    text = changed('model = "N5772A"', 'model = "N5799A"')
    assert_error(
        text,
        'model = "N5799A"',
        "units[5].instruments[0].model",
        "unit SUP1: unknown model 'N5799A' for driver n5700",
        "N5767A",
        "N5772A",
    )
    # A real model of another family is unknown for this driver.
    text = changed('model = "N5772A"', 'model = "IT6006C-500-40"')
    assert_error(text, 'model = "IT6006C-500-40"', "units[5].instruments[0].model", "N5772A")


def test_duplicate_unit_id() -> None:
    text = changed('id = "E002"', 'id = "E001"')
    first = line_of(text, 'id = "E001"')
    second = text.index('id = "E001"', text.index('id = "E001"') + 1)
    message = config_error(text)
    assert message.startswith(f"bench.toml:{text.count(chr(10), 0, second) + 1}: units[1].id: ")
    assert f"duplicate unit id 'E001' (first used at units[0], line {first})" in message
    assert "allowed: unit ids unique within the bench file" in message


def test_envelope_wider_than_rating() -> None:
    text = changed(
        'model = "N5772A"\n  resource = "emulated"\n',
        'model = "N5772A"\n  resource = "emulated"\n'
        "  [units.envelope]\n  current_source_max = 3.0\n",
    )
    assert_error(
        text,
        "current_source_max = 3.0",
        "units[5].envelope.current_source_max",
        "unit SUP1: envelope current_source_max = 3",
        "exceeds the rating of SUP1.supply (N5772A): 2.6",
        "allowed: current_source_max ≤ 2.6",
    )
    # Inherited from [default_envelope]: the error points there and names the unit.
    text = changed('model = "N5772A"', 'model = "N5752A"')
    assert_error(
        text,
        "current_source_max = 2.3             # A",
        "default_envelope.current_source_max",
        "unit SUP1",
        "(N5752A): 1.3",
    )
    # Battery side: the supply holding E005's battery cannot deliver the power at 34 V.
    text = changed("battery_voltage_min = 44.0 ", "battery_voltage_min = 34.0 ")
    assert_error(
        text,
        "power_max = 900.0",
        "default_envelope.power_max",
        "unit E005",
        "needs 26.47 A at battery_voltage_min 34 V, above the 25 A rating of E005.supply",
    )
    # Beyond the converter's battery-side rating.
    text = changed("battery_voltage_min = 44.0 ", "battery_voltage_min = 30.0 ")
    assert_error(
        text,
        "battery_voltage_min = 30.0",
        "units[4].envelope.battery_voltage_min",
        "outside the battery-side rating of E005.converter",
        "allowed: 32-58.4 V",
    )


def test_rating_unsuited_to_its_node() -> None:
    text = changed('model = "63202A-600-140"', 'model = "63204A-150-400"')
    assert_error(
        text,
        'model = "63204A-150-400"',
        "units[6].instruments[0].model",
        "63204A-150-400 is rated 150 V, unsuited to the bus, whose window reaches 380 V",
        "63202A-600-140",
        "63208A-1200-320",
    )
    text = changed('model = "PSB 10500-180"', 'model = "PSB 10200-420"')
    assert_error(text, 'model = "PSB 10200-420"', "units[8].instruments[0].model", "200 V")


def test_battery_side_instrument_unsuited_to_its_node(monkeypatch: pytest.MonkeyPatch) -> None:
    real = find_model

    def lower_rated(driver: str, model: str) -> InstrumentRating | None:
        rating = real(driver, model)
        if rating is not None and model == "N5767A":
            return dataclasses.replace(rating, voltage_max=50.0)
        return rating

    monkeypatch.setattr(benchfile, "find_model", lower_rated)
    assert_error(
        TEXT,
        'model = "N5767A"',
        "units[4].instruments[1].model",
        "unit E005: N5767A is rated 0-50 V, unsuited to the battery side, whose window is 44-54 V",
        "or a narrower battery_voltage_min/max",
    )


def test_composition_of_each_kind() -> None:
    text = changed('kind = "load"', 'kind = "supply"')
    supplies = sorted(name for name, f in families().items() if f.function == "supply")
    assert "n5700" in supplies
    assert_error(
        text,
        '[[units.instruments]]\n  driver = "chroma63200a"\n  model = "63202A-600-140"',
        "units[6].instruments",
        "unit LOAD1 (kind supply) has load (chroma63200a",
        f"exactly one supply instrument on the bus ({', '.join(supplies)})",
    )
    # Sony's rig without its load is not a complete battery side.
    start = TEXT.index('  [[units.instruments]]\n  name = "load"')
    end = TEXT.index("  [units.envelope]\n  battery_voltage_min")
    text = TEXT[:start] + TEXT[end:]
    message = config_error(text)
    assert "unit E005: battery side has supply (n5700)" in message
    assert "or a supply + a load" in message


def test_references_between_sections() -> None:
    text = changed('branch = "B"\nlarge', 'branch = "C"\nlarge')
    assert_error(text, 'branch = "C"', "units[3].branch", "unknown branch 'C'", "A, B, LAB")
    text = changed("[emulation.ports.E005]", "[emulation.ports.E009]")
    assert_error(text, "[emulation.ports.E009]", "emulation.ports.E009", "no unit 'E009'")
    text = changed("[emulation.ports.E005]\n", "[emulation.ports.E005]\nsoc = 0.5\n")
    assert_error(text, "soc = 0.5\n", "emulation.ports.E005.soc", "has no battery")
    text = changed("[emulation.ports.E001]\n", "[emulation.ports.SUP1]\nloss_charge = 3.0\n")
    assert_error(text, "loss_charge = 3.0", "emulation.ports.SUP1.loss_charge", "not a converter")
    text = changed("  current_sink_max = 2.3\n\n# ---", "  soc_min = 0.1\n\n# ---")
    assert_error(text, "soc_min = 0.1", "units[8].envelope.soc_min", "has no battery")
    text = changed("[emulation.branches.B]", "[emulation.branches.Q]")
    assert_error(text, "[emulation.branches.Q]", "emulation.branches.Q", "no branch 'Q'")


def test_settings_resources_and_timeouts() -> None:
    text = changed("settings = { device_id = 0 }", "settings = { device_id = 0, unit_id = 2 }")
    assert_error(
        text, "unit_id = 2", "units[8].instruments[0].settings.unit_id", "allowed: device_id"
    )
    text = changed("settings = { device_id = 0 }", "settings = { device_id = 300 }")
    assert_error(text, "device_id = 300", "units[8].instruments[0].settings.device_id", "≤ 247")
    text = changed("settings = { cv_voltage = 48.5 }", "settings = { cv_voltage = 47.5 }")
    assert_error(text, "cv_voltage = 47.5", "units[4].instruments[2].settings.cv_voltage", "> 48")
    text = changed("current_limit = 22.0", "current_limit = 30.0")
    assert_error(text, "current_limit = 30.0", "units[4].instruments[1].settings.current_limit")
    lab = LAB.read_text(encoding="utf-8")
    text = changed('resource = "192.168.0.40:502"', 'resource = "192.168.0.40"', lab)
    assert_error(
        text, 'resource = "192.168.0.40"', "units[6].instruments[0].resource", "<host>:<port>"
    )
    text = changed("TCPIP0::192.168.0.22::5025::SOCKET", "TCPIP0::192.168.0.21::5025::SOCKET", lab)
    second = text.index("192.168.0.21", text.index("192.168.0.21") + 1)
    message = config_error(text)
    assert message.startswith(f"bench.toml:{text.count(chr(10), 0, second) + 1}: units[3]")
    assert "SUP1.supply uses the same resource" in message and "E005.supply" in message
    text = changed("timeout = 1.0                      # s, per request", "timeout = 0", lab)
    assert_error(text, "timeout = 0", "units[0].instruments[0].timeout", "> 0")
    text = changed(
        "settings = { device_id = 0 }", 'settings = { device_id = 0 }\n  node = "battery"'
    )
    assert "kind bidirectional" in config_error(text)


def test_schema_version_and_required_keys() -> None:
    text = changed("schema_version = 1", "schema_version = 2")
    assert_error(text, "schema_version", "schema_version", "newer than this toolkit reads")
    text = changed('name = "emulated-default"\n', "")
    message = config_error(text)
    assert message.startswith("bench.toml: name: required key is missing; allowed:")
    text = changed('  model = "N5772A"\n', "")
    assert_error(
        text,
        '[[units.instruments]]\n  driver = "n5700"\n  resource',
        "units[5].instruments[0].model",
        "required key is missing",
    )


def test_file_problems(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=rf"{re.escape(str(missing))}: cannot read the file"):
        load_bench_file(missing)
    latin = tmp_path / "latin.toml"
    latin.write_bytes(TEXT.replace("emulated-default", "bänch").encode("latin-1"))
    with pytest.raises(ConfigError, match="is not UTF-8"):
        load_bench_file(latin)


def test_with_resources_replaces_and_checks() -> None:
    config = load_bench_file(EMULATED)
    replaced = config.with_resources(
        {
            "E001.converter": "socket://127.0.0.1:40001",
            "E001.battery": "/dev/pts/7",
            "SUP1.supply": "TCPIP0::127.0.0.1::40002::SOCKET",
            "BID2.bidirectional": "127.0.0.1:40003",
        }
    )
    assert replaced.unit("E001").instrument("converter").resource == "socket://127.0.0.1:40001"
    assert replaced.unit("E001").instrument("converter").declared_resource == "emulated"
    assert replaced.unit("E002").instrument("converter").resource == "emulated"
    assert replaced.sha256 == config.sha256
    assert config.unit("SUP1").instrument("supply").resource == "emulated"  # copy, not edit
    with pytest.raises(
        ConfigError, match=r"no instrument E009\.converter .*allowed: E001\.converter"
    ):
        config.with_resources({"E009.converter": "socket://127.0.0.1:1"})
    with pytest.raises(ConfigError, match=r"resource for SUP1\.supply: .*not a VISA resource"):
        config.with_resources({"SUP1.supply": "127.0.0.1:5025"})
    with pytest.raises(ConfigError, match="placeholder"):
        config.with_resources({"SUP1.supply": "emulated"})
    summary = replaced.to_dict()
    assert summary["sha256"] == config.sha256
    assert summary["units"][0]["instruments"][0]["resource"] == "socket://127.0.0.1:40001"


@pytest.mark.parametrize(
    ("transport", "resource", "ok"),
    [
        ("visa", "TCPIP0::192.168.0.5::5025::SOCKET", True),
        ("visa", "TCPIP::10.0.0.2::INSTR", True),
        ("visa", "ASRL/dev/ttyUSB0::INSTR", True),
        ("visa", "USB0::0x2EC7::0x8800::IT8812345678::INSTR", True),
        ("visa", "GPIB0::5::INSTR", True),
        ("visa", "TCPIP0::192.168.0.5::70000::SOCKET", False),
        ("visa", "192.168.0.5:5025", False),
        ("modbus_tcp", "192.168.0.40:502", True),
        ("modbus_tcp", "[::1]:1502", True),
        ("modbus_tcp", "psb.lab.local:502", True),
        ("modbus_tcp", "192.168.0.40", False),
        ("modbus_tcp", "192.168.0.40:0", False),
        ("modbus_tcp", "modbus-tcp://127.0.0.1:15020", True),
        ("modbus_tcp", "modbus-tcp://psb.lab.local", True),
        ("modbus_rtu", "modbus-rtu-tcp://127.0.0.1:15021", True),
        ("modbus_rtu", "modbus-rtu:/dev/pts/5", True),
        ("modbus_rtu", "/dev/ttyUSB2", True),
        ("modbus_rtu", "modbus-rtu-tcp://127.0.0.1", False),
        ("modbus_rtu", "modbus-rtu:ttyUSB2", False),
        ("serial", "/dev/ttyUSB0", True),
        ("serial", "COM3", True),
        ("serial", "socket://127.0.0.1:4000", True),
        ("serial", "ttyUSB0", False),
        ("serial", " /dev/ttyUSB0", False),
        ("serial", "emulated", True),
    ],
)
def test_resource_forms(transport: str, resource: str, ok: bool) -> None:
    assert (resource_problem(transport, resource) is None) == ok  # type: ignore[arg-type]


def test_model_table_is_checked() -> None:
    minimal = parse_model_table(
        '[n5700.N5747A]\ndescription = "d"\nvoltage_max = 60.0\ncurrent_source_max = 12.5\n'
        'current_sink_max = 0.0\npower_max = 750.0\nsource = "test"\n',
        "models.toml",
    )
    assert minimal["n5700"]["N5747A"].can_source and not minimal["n5700"]["N5747A"].can_sink
    assert model_table()["n5700"]["N5772A"].power_max == 1560.0
    assert model_table()["it6000c"]["IT6006C-500-40"].current_sink_max == 40.0
    bad = '[n5700.X]\ndescription = "x"\nvoltage_max = -1.0\n'
    with pytest.raises(ConfigError, match=r"models\.toml:3: n5700\.X\.voltage_max: "):
        parse_model_table(bad, "models.toml")
    with pytest.raises(ConfigError, match="no driver uses this model family"):
        parse_model_table("[chroma.X]\n", "models.toml")
    for spec in families().values():
        assert spec.ratings_table in model_table(), spec.name


def test_line_locator_follows_arrays_and_multiline_values() -> None:
    text = '''a = """
[not.a.table]
b = 1
"""
list = [
  "x = 1",
  2,
]
[[t]]
k = { x = 1, "y.z" = 2 }
[[t]]
k = 3
[t.sub]
q = 4
'''
    locator = LineLocator(text)
    assert locator.line_of(("a",)) == 1
    assert locator.line_of(("not",)) is None
    assert locator.line_of(("list",)) == 5
    assert locator.line_of(("t", 0, "k", "x")) == 10
    assert locator.line_of(("t", 0, "k", "y.z")) == 10
    assert locator.line_of(("t", 1, "k")) == 12
    assert locator.line_of(("t", 1, "sub", "q")) == 14
    assert locator.line_of(("t", 1, "sub", "missing")) == 13


# -- property: mutated files either load or raise ConfigError ------------------------------

_LINES = TEXT.splitlines()
_REPLACEMENTS = st.sampled_from(
    [
        '"x"',
        "-1",
        "0",
        "1e999",
        "nan",
        "-inf",
        "true",
        "[]",
        "{}",
        "1979-05-27",
        "3.5",
        '"emulated"',
    ]
)


@st.composite
def mutated_text(draw: st.DrawFn) -> str:
    lines = list(_LINES)
    for _ in range(draw(st.integers(1, 3))):
        index = draw(st.integers(0, len(lines) - 1))
        operation = draw(st.sampled_from(["delete", "duplicate", "value", "key", "swap", "cut"]))
        line = lines[index]
        if operation == "delete":
            del lines[index]
        elif operation == "duplicate":
            lines.insert(index, line)
        elif operation == "value" and "=" in line:
            key = line.split("=", 1)[0]
            lines[index] = f"{key}= {draw(_REPLACEMENTS)}"
        elif operation == "key" and "=" in line:
            lines[index] = line.replace("_", "", 1) if "_" in line else "x" + line.lstrip()
        elif operation == "swap":
            other = draw(st.integers(0, len(lines) - 1))
            lines[index], lines[other] = lines[other], lines[index]
        elif operation == "cut":
            lines[index] = line[: draw(st.integers(0, len(line)))]
        if not lines:
            break
    return "\n".join(lines) + "\n"


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=mutated_text())
def test_mutated_files_load_or_raise_config_error(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "mutant.toml"
        path.write_text(text, encoding="utf-8")
        try:
            config = load_bench_file(path)
        except ConfigError as exc:
            message = str(exc)
            assert message.startswith(str(path)), message
            assert "allowed:" in message, message
        else:
            assert isinstance(config, BenchConfig)
            assert config.units


@pytest.mark.parametrize(("open_", "close"), [("[", "]"), ("{a = ", "}")])
def test_a_value_nested_500_deep_is_one_located_error(open_: str, close: str) -> None:
    deep = "deep = " + open_ * 500 + ("1" if open_.startswith("{") else "") + close * 500
    text = changed('name = "emulated-default"', 'name = "emulated-default"\n' + deep)
    message = config_error(text)
    line = line_of(text, "deep = ")
    assert message == (
        f"bench.toml:{line}: a value nests arrays or inline tables more than 32 deep; "
        "allowed: at most 32 levels"
    )
