"""An exchange bench run through APIS's device HTTP API: bench → ``apis_http`` driver → HTTP
→ our dcdc_batt_comm front → EZA-2500 and BMS drivers → emulated instruments.

The bench file names three APIS units by URL only (as a lab would name an APIS
installation's units); the exchange engine runs a whole APIS deal on them, and the plant's
true state says that it happened: energy moved, the bus balanced, every output safe after.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from apis_rig import ApisClient, served

from hil.clock import SimClock
from hil.config.benchfile import parse_bench_text
from hil.errors import ConfigError
from hil.exchange import Exchange
from hil.exchange.engine import ExchangeEngine, State
from hil.recorder import MemoryRecorder
from hil.units.bench import Bench

HEADER = """\
schema_version = 1
name = "apis-http"
description = "Three APIS units named by the URL of their dcdc_batt_comm service"
[bus]
nominal_voltage = 350.0
voltage_min = 300.0
voltage_max = 380.0
balance_allowance_per_unit = 0.125
exchange_current_sum_max = 10.0
[default_envelope]
current_source_max = 2.3
current_sink_max = 2.3
power_max = 900.0
slew_max = 10.0
"""
UNIT = """
[[units]]
id = "{id}"
kind = "converter"
description = "APIS unit {unit} through its dcdc_batt_comm service"
  [[units.instruments]]
  name = "converter"
  driver = "apis_http"
  model = "APIS-DCDC-V2"
  resource = "{url}"
  [[units.instruments]]
  name = "battery"
  driver = "apis_http_bms"
  model = "APIS-BATTERY-V2"
  resource = "{url}"
"""
#: Bench unit id → the emulated unit behind the service.
UNITS = {"H1": "E001", "H2": "E002", "H3": "E003"}


@pytest.fixture
def http_bench() -> Iterator[tuple[Bench, ApisClient]]:
    with served() as (apis, _front, _config):
        text = HEADER + "".join(
            UNIT.format(id=uid, unit=unit, url=apis.urls[unit]) for uid, unit in UNITS.items()
        )
        config = parse_bench_text(text, "apis-http.toml")
        control = apis.control
        bench = Bench.open(config, clock=SimClock(control.advance, start=control.time()))
        try:
            bench.arm_all()
            yield bench, apis
        finally:
            bench.safe_off_all()
            bench.close()


def test_the_bench_identifies_the_units_as_apis_services(
    http_bench: tuple[Bench, ApisClient],
) -> None:
    bench, _ = http_bench
    assert set(bench.units) == set(UNITS)
    for unit in bench.units.values():
        reading = unit.read()
        assert reading.soc is not None and 0.0 < reading.soc < 1.0


def test_an_exchange_runs_through_the_http_api(http_bench: tuple[Bench, ApisClient]) -> None:
    bench, apis = http_bench
    engine = ExchangeEngine(bench, recorder=MemoryRecorder())
    try:
        battery = {p["unit"]: p for p in apis.control.status()["ports"] if p["kind"] == "battery"}
        (run,) = engine.run(Exchange.between("H1", "H3", 1.0, amount_wh=5, name="http"))
    finally:
        engine.close()
    assert run.state is State.DONE, run.stop_reason
    assert run.energy_wh >= 5.0 * (1 - 1e-9)
    status = apis.control.status()
    after = {p["unit"]: p for p in status["ports"] if p["kind"] == "battery"}
    assert after["E001"]["soc"] < battery["E001"]["soc"]  # H1 discharged
    assert after["E003"]["soc"] > battery["E003"]["soc"]  # H3 charged
    assert after["E002"]["soc"] == pytest.approx(battery["E002"]["soc"], abs=1e-3)
    assert status["all_safe"], [p["port"] for p in status["ports"] if not p["safe"]]
    for unit in ("E001", "E003"):
        assert apis.ok(unit, "/dcdc/get")["status"]["status"] == "0x0000"


@pytest.mark.parametrize(
    ("urls", "problem"),
    [
        (("emulated",), "an HTTP service has no emulated twin"),
        (("http://127.0.0.1",), "is not <host>:<port>"),
        (("socket://127.0.0.1:4380",), "is not an http://<host>:<port> URL"),
        (("http://127.0.0.1:4380", "http://127.0.0.1:4380"), "uses the same resource"),
    ],
)
def test_bench_files_name_apis_services_by_url(urls: tuple[str, ...], problem: str) -> None:
    text = HEADER + "".join(
        UNIT.format(id=f"H{i}", unit=f"E00{i}", url=url) for i, url in enumerate(urls, 1)
    )
    with pytest.raises(ConfigError, match=re.escape(problem)):
        parse_bench_text(text, "apis-http.toml")
