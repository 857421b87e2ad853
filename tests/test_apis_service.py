"""The dcdc_batt_comm HTTP API in front of the emulated APIS units, checked against what
apis-main expects of it (``instruments/wire/dcdc_batt_comm.py`` lists the sources).

Every test starts its own emulator (simulated time) and front on ephemeral loopback ports,
so the tests share no state and run in any order or in parallel.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from apis_rig import ApisClient, served

from instruments.wire.dcdc_batt_comm import (
    CHECK_CURRENT_ALLOWANCE_A,
    CHECK_VOLTAGE_ALLOWANCE_V,
    SUPPORTED_MAJOR_VERSIONS,
)

UNITS = ("E001", "E002", "E003", "E004")
ALARM = re.compile(r"^[0-9a-f]{4} [0-9a-f]{4} [0-9a-f]{4}$")
METER = ("vg", "ig", "vb", "ib", "wg", "wb", "tmp")
PARAM = ("dig", "cib", "ubv", "ugv", "obv", "ogv")
MODES = {
    "0x0000": "Waiting",
    "0x0014": "Grid Autonomy",
    "0x0041": "Heteronomy CV",
    "0x0002": "Heteronomy CV",
}
#: Simulated seconds of 0.1 s polls a voltage reference may take to bring the bus up
#: (apis-main allows 180 s; the emulated bus needs about 2).
RAMP_UP_POLLS = 100


@pytest.fixture
def apis() -> Iterator[ApisClient]:
    with served() as (client, _front, _config):
        yield client


def numbers(body: dict[str, Any], keys: tuple[str, ...]) -> dict[str, float]:
    assert set(body) == set(keys), body
    for key in keys:
        assert isinstance(body[key], float | int) and not isinstance(body[key], bool), key
    return {k: float(body[k]) for k in keys}


def vr_up(apis: ApisClient, unit: str, dvg: float = 350.0) -> dict[str, Any]:
    """apis-main's VOLTAGE_REFERENCE then ramp-up: set, then poll until vg is at dvg."""
    body = apis.ok(unit, "/dcdc/set", mode="0x0014", dvg=dvg, dig=2.3, drg=0)
    assert body["status"]["operationMode"] == "Grid Autonomy"
    for _ in range(RAMP_UP_POLLS):
        apis.wait()
        status = apis.ok(unit, "/dcdc/get/status")
        if abs(status["meter"]["vg"] - dvg) <= CHECK_VOLTAGE_ALLOWANCE_V:
            return status
    raise AssertionError(f"{unit}: the bus never reached {dvg} V: {status}")


# -- shapes -------------------------------------------------------------------------------


def test_version_negotiates_interface_2(apis: ApisClient) -> None:
    body = apis.ok("E001", "/version/get")
    assert body["comm_interface_version"].split(".")[0] in SUPPORTED_MAJOR_VERSIONS
    assert "." in body["comm_interface_version"]
    assert isinstance(body["dcdc_batt_comm_version"], str)


def test_all_get_has_the_fields_apis_main_reads(apis: ApisClient) -> None:
    for unit in UNITS:
        body = apis.ok(unit, "/all/get")
        assert set(body) == {"rsoc", "battery_operation_status", "meter", "param", "status", "vdis"}
        assert 0.0 <= body["rsoc"] <= 100.0
        assert body["battery_operation_status"] == 3
        numbers(body["meter"], METER)
        numbers(body["param"], PARAM)
        numbers(body["vdis"], ("dvg", "drg"))
        status = body["status"]
        assert status["status"] == "0x0000"
        assert status["operationMode"] == "Waiting"
        assert status["alarmState"] == "No alarm"
        assert status["runningState"] in ("off", "charge", "discharge")
        assert ALARM.match(status["alarm"]), status["alarm"]


def test_status_battery_and_dcdc_get(apis: ApisClient) -> None:
    status = apis.ok("E002", "/dcdc/get/status")
    assert set(status) == {"status", "meter"}
    assert set(status["status"]) == {"alarmState", "runningState", "operationMode"}
    numbers(status["meter"], METER)
    battery = apis.ok("E002", "/battery/get")
    assert set(battery) == {"rsoc", "battery_operation_status"}
    dcdc = apis.ok("E002", "/dcdc/get")
    assert set(dcdc) == {"status", "meter", "vdis", "param"}
    # the rsoc is the emulated battery's, read over Modbus by the BMS driver
    true_soc = _port(apis, "E002.battery")["soc"]
    assert battery["rsoc"] == pytest.approx(100.0 * true_soc, abs=0.1)


@pytest.mark.parametrize("code", sorted(MODES))
def test_a_set_answers_the_mode_code_and_its_operation_mode(apis: ApisClient, code: str) -> None:
    body = apis.ok("E003", "/dcdc/set", mode=code, dvg=350, dig=0, drg=0)
    assert set(body) == {"status", "meter", "vdis", "param"}
    assert body["status"]["status"] == code
    assert body["status"]["operationMode"] == MODES[code]
    assert apis.ok("E003", "/dcdc/get")["status"]["status"] == code
    assert apis.ok("E003", "/dcdc/get/status")["status"]["operationMode"] == MODES[code]


# -- parameter caching --------------------------------------------------------------------


def test_missing_parameters_keep_their_earlier_values(apis: ApisClient) -> None:
    first = apis.get("E001", "/dcdc/set", dig=1)
    assert first.status_code == 400
    assert "No operationMode" in first.json()["err"]
    assert apis.ok("E001", "/dcdc/get")["param"]["dig"] == 0.0  # nothing was sent

    apis.ok("E001", "/dcdc/set", mode="0x0014", dvg=350, dig=2.3, drg=0)
    voltage = apis.ok("E001", "/dcdc/set", dvg=360, drg=0)
    assert set(voltage) == {"meter", "vdis"}
    assert voltage["vdis"]["dvg"] == pytest.approx(360, abs=0.05)
    current = apis.ok("E001", "/dcdc/set", dig=1.5)
    assert set(current) == {"meter", "param"}
    assert current["param"]["dig"] == pytest.approx(1.5, abs=0.01)
    dcdc = apis.ok("E001", "/dcdc/get")
    assert dcdc["status"]["status"] == "0x0014"
    assert dcdc["vdis"]["dvg"] == pytest.approx(360, abs=0.05)

    waiting = apis.ok("E001", "/dcdc/set", mode="0x0000")  # dvg, dig, drg from the cache
    assert waiting["status"]["operationMode"] == "Waiting"
    assert waiting["vdis"]["dvg"] == pytest.approx(360, abs=0.05)
    assert waiting["param"]["dig"] == pytest.approx(1.5, abs=0.01)
    assert waiting["vdis"]["drg"] == 0.0


def test_the_limits_word_carries_the_envelope_configuration(apis: ApisClient) -> None:
    before = apis.ok("E004", "/dcdc/get")["param"]
    after = apis.ok("E004", "/dcdc/set", mode="0x0000", dvg=350, dig=1.25, drg=0)["param"]
    assert after["dig"] == pytest.approx(1.25, abs=0.01)
    for key in ("cib", "ubv", "ugv", "obv", "ogv"):
        assert after[key] == pytest.approx(before[key]), key
    assert before["ugv"] < 300.0 and before["ogv"] > 380.0  # the bus window, widened


# -- apis-main's checkpoints --------------------------------------------------------------


def test_a_plain_client_makes_a_voltage_reference_and_a_discharge(apis: ApisClient) -> None:
    """apis-main's calls for one deal: E001 holds the bus, E002 discharges 1 A into it."""
    for unit in ("E001", "E002"):
        assert apis.ok(unit, "/version/get")["comm_interface_version"].startswith("2.")
        assert apis.ok(unit, "/all/get")["status"]["operationMode"] == "Waiting"
    vr = vr_up(apis, "E001")
    assert abs(vr["meter"]["vg"] - 350.0) <= CHECK_VOLTAGE_ALLOWANCE_V

    body = apis.ok("E002", "/dcdc/set", mode="0x0002", dvg=350, dig=1.0, drg=0)
    assert body["status"]["operationMode"] == "Heteronomy CV"
    apis.wait()  # retryWaitMsec
    cc = apis.ok("E002", "/dcdc/get/status")["meter"]
    assert cc["ig"] < 0  # APIS: negative while discharging
    assert abs(abs(cc["ig"]) - 1.0) <= CHECK_CURRENT_ALLOWANCE_A
    vr = apis.ok("E001", "/dcdc/get/status")["meter"]
    assert abs(vr["vg"] - 350.0) <= CHECK_VOLTAGE_ALLOWANCE_V
    assert abs(vr["ig"] + cc["ig"]) <= 2 * CHECK_CURRENT_ALLOWANCE_A  # the bus balances
    bus = _port(apis, "E002.converter")
    assert bus["kind"] == "converter"

    apis.ok("E002", "/dcdc/set", dig=2.0)  # warm-up step, current only
    apis.wait()
    cc = apis.ok("E002", "/dcdc/get/status")["meter"]
    assert abs(abs(cc["ig"]) - 2.0) <= CHECK_CURRENT_ALLOWANCE_A

    apis.ok("E002", "/dcdc/set", mode="0x0000", dvg=350, dig=0, drg=0)
    apis.ok("E001", "/dcdc/set", dvg=310, drg=0)
    apis.ok("E001", "/dcdc/set", mode="0x0000", dvg=310, dig=0, drg=0)
    for unit in ("E001", "E002"):
        assert apis.ok(unit, "/dcdc/get")["status"]["status"] == "0x0000"


def _port(apis: ApisClient, name: str) -> dict[str, Any]:
    ports = apis.control.status()["ports"]
    return next(p for p in ports if p["port"] == name)


# -- bad input ----------------------------------------------------------------------------

BAD_SETS: dict[str, tuple[list[tuple[str, str]], str]] = {
    "unknown parameter": ([("mode", "0x0014"), ("volts", "350")], "unknown parameter 'volts'"),
    "repeated parameter": ([("dig", "1"), ("dig", "2")], "'dig' is given twice"),
    "not a number": ([("mode", "0x0014"), ("dvg", "abc"), ("dig", "1")], "dvg='abc'"),
    "not finite": ([("mode", "0x0014"), ("dvg", "nan"), ("dig", "1")], "not a finite"),
    "unknown mode": ([("mode", "0x0003"), ("dvg", "350"), ("dig", "1")], "0x0003"),
    "mode not hex": ([("mode", "20"), ("dvg", "350"), ("dig", "1")], "not a 0x"),
    "negative dig": ([("mode", "0x0002"), ("dvg", "350"), ("dig", "-1")], "negative"),
    "dvg over rating": ([("mode", "0x0014"), ("dvg", "500"), ("dig", "1")], "dvg 500"),
    "dig over rating": ([("mode", "0x0002"), ("dvg", "350"), ("dig", "9")], "dig 9"),
    "no parameters": ([], "needs parameters"),
}


@pytest.mark.parametrize("case", sorted(BAD_SETS))
def test_bad_input_is_400_with_err_and_nothing_sent(apis: ApisClient, case: str) -> None:
    items, expected = BAD_SETS[case]
    before = apis.ok("E003", "/dcdc/get")
    response = apis.http.get(apis.urls["E003"] + "/dcdc/set", params=items)
    assert response.status_code == 400, response.text
    err = response.json()["err"]
    assert expected in err and "E003" in err, err
    after = apis.ok("E003", "/dcdc/get")
    assert after["status"] == before["status"]
    assert after["param"] == before["param"]
    assert after["vdis"] == before["vdis"]
    assert apis.ok("E003", "/version/get")  # still serving


def test_a_set_the_battery_forbids_is_400(apis: ApisClient) -> None:
    apis.control.fault("E004.battery", "permission")
    assert apis.ok("E004", "/battery/get")["battery_operation_status"] == 0
    for mode in ("0x0002", "0x0041", "0x0014"):
        response = apis.get("E004", "/dcdc/set", mode=mode, dvg=350, dig=1, drg=0)
        assert response.status_code == 400, response.text
        assert "battery_operation_status is 0" in response.json()["err"]
    assert apis.ok("E004", "/dcdc/get")["status"]["status"] == "0x0000"
    assert apis.ok("E004", "/dcdc/set", mode="0x0000", dvg=350, dig=0, drg=0)  # WAIT is fine
    apis.control.clear("E004.battery")
    assert apis.ok("E004", "/dcdc/set", mode="0x0002", dvg=350, dig=0, drg=0)


def test_unknown_paths_and_methods_answer_json_errors(apis: ApisClient) -> None:
    missing = apis.get("E001", "/dcdc/gte")
    assert missing.status_code == 404 and "/dcdc/gte" in missing.json()["err"]
    post = apis.http.post(apis.urls["E001"] + "/dcdc/set")
    assert post.status_code == 405 and "GET only" in post.json()["err"]


# -- an instrument that stops answering ---------------------------------------------------


def test_a_dead_instrument_is_503_naming_it_and_the_service_recovers(apis: ApisClient) -> None:
    apis.control.fault("E002.converter", "drop", count=1000)

    def poll(path: str) -> Any:
        return apis.get("E002", path)  # apis-main's 5 s timeout: a hang raises here

    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(poll, ["/dcdc/get/status", "/all/get", "/dcdc/get"]))
    for response in answers:
        assert response.status_code == 503, response.text
        err = response.json()["err"]
        assert "E002" in err, err
    assert any("E002.converter" in r.json()["err"] for r in answers)
    assert any("command" in r.json()["err"] for r in answers)
    assert apis.ok("E001", "/dcdc/get/status")  # the other units are served meanwhile
    apis.control.clear("E002.converter")
    assert apis.ok("E002", "/dcdc/get/status")["status"]["operationMode"] == "Waiting"


# -- concurrency --------------------------------------------------------------------------


def test_concurrent_polling_of_every_unit_while_a_deal_runs(apis: ApisClient) -> None:
    vr_up(apis, "E001")
    apis.ok("E003", "/dcdc/set", mode="0x0041", dvg=350, dig=1.0, drg=0)
    calls = [(unit, path) for unit in UNITS for path in ("/all/get", "/dcdc/get/status")] * 6

    def call(item: tuple[str, str]) -> tuple[int, dict[str, Any]]:
        response = apis.get(*item)
        return response.status_code, response.json()

    with ThreadPoolExecutor(8) as pool:
        steps = pool.submit(
            lambda: [apis.ok("E003", "/dcdc/set", dig=amps) for amps in (1.5, 2.0, 1.0)]
        )
        results = list(pool.map(call, calls))
        steps.result()
    assert all(code == 200 for code, _ in results), [r for r in results if r[0] != 200]
    for (unit, path), (_, body) in zip(calls, results, strict=True):
        numbers(body["meter"], METER)
        if path == "/all/get":
            assert body["status"]["status"] == {"E001": "0x0014", "E003": "0x0041"}.get(
                unit, "0x0000"
            )
    apis.wait()
    charging = apis.ok("E003", "/dcdc/get/status")["meter"]
    assert abs(charging["ig"] - 1.0) <= CHECK_CURRENT_ALLOWANCE_A  # positive: charging


# -- the dcdc_emulator flavour ------------------------------------------------------------


def test_the_dcdc_emulator_flavour_serves_every_unit_on_one_port(apis: ApisClient) -> None:
    base = apis.emulator_url
    unit = apis.http.get(f"{base}/get/unit/E002").json()
    assert set(unit) == {"emu", "dcdc"}
    assert set(unit["emu"]) == {"rsoc", "battery_operation_status"}
    assert set(unit["dcdc"]) == {"status", "meter", "vdis", "param"}
    status = apis.http.get(f"{base}/get/dcdc/status/E002").json()
    assert set(status) == {"status", "meter"}

    body = apis.http.get(
        f"{base}/set/dcdc/E002", params={"mode": "0x0014", "dvg": 350, "dig": 2.3, "drg": 0}
    ).json()
    assert body["status"]["operationMode"] == "Grid Autonomy"
    voltage = apis.http.get(f"{base}/set/dcdc/voltage/E002", params={"dvg": 355, "drg": 0})
    assert voltage.status_code == 200 and set(voltage.json()) == {"meter", "vdis"}
    current = apis.http.get(f"{base}/set/dcdc/current/E002", params={"dig": 2.0})
    assert current.status_code == 200 and set(current.json()) == {"meter", "param"}
    assert apis.ok("E002", "/dcdc/get")["vdis"]["dvg"] == pytest.approx(355, abs=0.05)

    wrong = apis.http.get(f"{base}/set/dcdc/current/E002", params={"dvg": 350})
    assert wrong.status_code == 400 and "takes only dig" in wrong.json()["err"]
    unknown = apis.http.get(f"{base}/get/unit/E999")
    assert unknown.status_code == 404 and "E999" in unknown.json()["err"]


# -- fuzz ---------------------------------------------------------------------------------

FUZZ_KEYS = ("mode", "dvg", "dig", "drg", "Mode", "dig[]", "", "x" * 40, "é")
FUZZ_VALUES = (
    "0x0014",
    "0x0041",
    "0x0002",
    "0x0000",
    "0x",
    "0xZZ",
    "-0",
    "1e400",
    "nan",
    "inf",
    "-inf",
    "350",
    "2.3",
    "-1",
    "9999",
    "",
    " ",
    "1,5",
    "٣",
    "0x14\x00",
    "🙂",
)


def test_random_queries_answer_json_200_or_400_and_the_server_keeps_serving(
    apis: ApisClient,
) -> None:
    rng = random.Random(17)
    paths = ["/dcdc/set", "/dcdc/set", "/dcdc/get/status", "/all/get"]
    for _ in range(300):
        params = [
            (rng.choice(FUZZ_KEYS), rng.choice(FUZZ_VALUES)) for _ in range(rng.randint(0, 5))
        ]
        unit = rng.choice(UNITS)
        response = apis.http.get(apis.urls[unit] + rng.choice(paths), params=params)
        assert response.status_code in (200, 400), (params, response.status_code, response.text)
        body = response.json()
        assert isinstance(body, dict)
        if response.status_code == 400:
            assert isinstance(body["err"], str) and unit in body["err"], body
    for unit in UNITS:
        apis.ok(unit, "/dcdc/set", mode="0x0000", dvg=350, dig=0, drg=0)
        assert apis.ok(unit, "/all/get")["status"]["alarmState"] == "No alarm"
