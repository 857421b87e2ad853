"""Bench file ↔ labgrid place without a coordinator: the ``[labgrid]`` table, the exporter
configuration a bench PC gets, and each instrument's resource string rebuilt from what a
place gives — with one-line errors for what does not fit. Runs without labgrid."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.lab import requested
from hil.cli import main
from hil.config.benchfile import load_bench_file, parse_bench_text
from hil.errors import ConfigError
from hil.lab.places import (
    CONTROL_CLASS,
    CONTROL_NAME,
    INSTRUMENT_CLASS,
    NETWORK_SERIAL,
    RAW_SERIAL,
    export_bench,
    exporter_yaml,
    parse_tags,
    resolve_resources,
)

BENCHES = Path(__file__).resolve().parent.parent / "fixtures" / "benches"
EMULATED = BENCHES / "emulated.toml"
LAB = BENCHES / "lab-example.toml"


def with_table(table: str, path: Path = LAB) -> str:
    return path.read_text(encoding="utf-8") + "\n" + table + "\n"


def test_labgrid_table_names_a_place_or_tags() -> None:
    by_place = parse_bench_text(with_table('[labgrid]\nplace = "bench-3"'), LAB)
    assert by_place.labgrid is not None and by_place.labgrid.place == "bench-3"
    by_tags = parse_bench_text(
        with_table('[labgrid]\ntags = { kind = "lab", units = "4" }\ncoordinator = "lab:20408"'),
        LAB,
    )
    assert by_tags.labgrid is not None
    assert dict(by_tags.labgrid.tags) == {"kind": "lab", "units": "4"}
    assert by_tags.labgrid.coordinator == "lab:20408"
    assert load_bench_file(LAB).labgrid is None


@pytest.mark.parametrize(
    ("table", "fragment"),
    [
        ("[labgrid]", "give place (this bench's place) or tags"),
        ('[labgrid]\ntags = { kind = "a b" }', "labgrid.tags.kind"),
        ('[labgrid]\nplace = "bench 3"', "labgrid.place"),
        ('[labgrid]\ntags = { Kind = "lab" }', "not a labgrid tag key"),
        ('[labgrid]\nplace = "a"\ncoordinator = "nowhere"', "HOST:PORT"),
        ('[labgrid]\nplase = "a"', "did you mean 'place'"),
    ],
)
def test_bad_labgrid_table_is_one_located_line(table: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_bench_text(with_table(table), LAB)
    message = str(info.value)
    assert fragment in message and "\n" not in message
    assert "labgrid" in message


def test_exporter_config_has_one_resource_per_instrument_named_by_its_key() -> None:
    bench = load_bench_file(LAB)
    exported = {r.name: r for r in export_bench(bench)}
    assert set(exported) == {i.key for i in bench.instruments()}
    supply = exported["E005.supply"]
    assert supply.cls == INSTRUMENT_CLASS
    assert dict(supply.params) == {
        "host": "192.168.0.21",
        "port": 5025,
        "form": "TCPIP0::{host}::{port}::SOCKET",
        "transport": "visa",
        "driver": "n5700",
    }
    modbus = exported["BID2.bidirectional"]
    assert (modbus.params["host"], modbus.params["port"]) == ("192.168.0.40", 502)
    converter = exported["E001.converter"]
    assert converter.cls == RAW_SERIAL
    assert converter.params["speed"] == 19200
    assert exported["E005.load"].params == {"port": "/dev/ttyUSB0"}  # ASRL/dev/ttyUSB0::INSTR


def test_exporter_yaml_reads_back_as_labgrid_reads_it() -> None:
    """labgrid renders the file with Jinja (line statements '#', comments '##') and loads
    YAML; the result must be the group of resources we wrote."""
    jinja2 = pytest.importorskip("jinja2")
    yaml = pytest.importorskip("yaml")
    bench = load_bench_file(LAB)
    text = exporter_yaml("bench", "PC 3, rack B", export_bench(bench, control="127.0.0.1:7400"))
    env = jinja2.Environment(line_statement_prefix="#", line_comment_prefix="##")
    data = yaml.safe_load(env.from_string(text).render())
    group = data["bench"]
    assert group.pop("location") == "PC 3, rack B"
    assert group[CONTROL_NAME] == {"cls": CONTROL_CLASS, "host": "127.0.0.1", "port": 7400}
    assert group["E005.supply"]["form"] == "TCPIP0::{host}::{port}::SOCKET"
    assert len(group) == len(list(bench.instruments())) + 1


def test_resources_from_a_place_rebuild_every_resource_string() -> None:
    bench = load_bench_file(LAB)
    found: dict[str, tuple[str, dict[str, object]]] = {}
    for item in export_bench(bench):
        params = dict(item.params)
        if item.cls == RAW_SERIAL:  # what the exporter publishes once ser2net serves it
            found[item.name] = (NETWORK_SERIAL, {"host": "pc3", "port": 4000})
        else:
            found[item.name] = (item.cls, params | {"host": "pc3"})
    got = resolve_resources(bench, "bench-3", found)
    assert got.control is None
    assert got.resources["E005.supply"] == "TCPIP0::pc3::5025::SOCKET"
    assert got.resources["BID2.bidirectional"] == "pc3:502"
    assert got.resources["E001.converter"] == "rfc2217://pc3:4000?ign_set_control"
    assert got.resources["E005.load"] == "ASRLrfc2217://pc3:4000?ign_set_control::INSTR"
    moved = bench.with_resources(got.resources)  # every string passes the bench's own check
    assert moved.unit("SUP1").bus_instrument.resource.startswith("TCPIP0::pc3::")


def test_emulator_resources_export_and_come_back_unchanged() -> None:
    """An emulated place carries the emulator's loopback resources and its control
    channel; a place lacking an instrument is one line naming it."""
    bench = load_bench_file(EMULATED)
    forms = {
        "serial": "socket://127.0.0.1:{}",
        "modbus_rtu": "modbus-rtu-tcp://127.0.0.1:{}",
        "modbus_tcp": "modbus-tcp://127.0.0.1:{}",
        "visa": "TCPIP0::127.0.0.1::{}::SOCKET",
        "echonet_udp": "echonet://127.0.0.1:{}/027E01",
    }
    resources = {
        inst.key: forms[inst.transport].format(4101 + n)
        for n, inst in enumerate(bench.instruments())
    }
    resources["BID1.bidirectional"] = "ASRLsocket://127.0.0.1:4199::INSTR"
    found = {
        r.name: (r.cls, dict(r.params)) for r in export_bench(bench, resources, "127.0.0.1:4100")
    }
    got = resolve_resources(bench, "emu-a", found)
    assert got.control == "127.0.0.1:4100"
    assert dict(got.resources) == resources
    del found["E002.converter"], found["SUP1.supply"]
    with pytest.raises(ConfigError) as info:
        resolve_resources(bench, "emu-a", found)
    assert str(info.value).startswith(
        "place emu-a lacks the resource(s) E002.converter, SUP1.supply that bench "
    )


def test_a_resource_labgrid_cannot_carry_is_named() -> None:
    bench = load_bench_file(LAB)
    key = "SUP1.supply"
    odd = bench.with_resources({key: "TCPIP0::192.168.0.9::inst0::INSTR"})
    with pytest.raises(ConfigError) as info:
        export_bench(odd)
    assert str(info.value).startswith(f"{key}: resource 'TCPIP0::192.168.0.9::inst0::INSTR'")


@pytest.mark.parametrize("pair", ["kind", "Kind=lab", "k=lab", "kind=a b"])
def test_bad_tag_is_one_line(pair: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_tags([pair], "--reserve")
    assert str(info.value).startswith(f"--reserve {pair!r}: expected key=value")


def test_exporter_config_command_writes_the_file(tmp_path: Path) -> None:
    out = tmp_path / "exporter.yaml"
    assert main(["labgrid", "exporter-config", str(LAB), "-o", str(out)]) == 0
    text = out.read_text()
    assert '"E005.supply":' in text and 'cls: "HilNetworkInstrument"' in text


def test_place_options_are_checked_before_anything_starts() -> None:
    """--place and --reserve together, a bad place name, --emulator with a place."""

    class Config:
        def __init__(self, **given: object) -> None:
            self.given = {"place": None, "reserve": [], "coordinator": None, "hil_emulate": None}
            self.given.update(given)

        def getoption(self, name: str) -> object:
            return self.given[name]

    class Options:
        config = load_bench_file(EMULATED)
        emulator_address: str | None = None

    def ask(**given: object) -> str:
        with pytest.raises(pytest.UsageError) as info:
            requested(Config(**given), Options())  # type: ignore[arg-type]
        return str(info.value)

    assert "give one" in ask(place="a", reserve=["kind=lab"])
    assert "letters, digits" in ask(place="a b")
    assert "expected HOST:PORT" in ask(place="a", coordinator="nowhere")
    assert requested(Config(), Options()) is None  # type: ignore[arg-type]
    attached = Options()
    attached.emulator_address = "127.0.0.1:7400"
    with pytest.raises(pytest.UsageError, match="contradicts a place"):
        requested(Config(place="a"), attached)  # type: ignore[arg-type]
