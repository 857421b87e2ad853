"""The ``apis_http`` driver families: an APIS unit through its dcdc_batt_comm service.

Against our own ``--apis`` front (the emulated units behind the real HTTP stack), and
against small stand-in servers for what a foreign service may do wrong (an interface
version we do not speak, a body that is not JSON, no answer, no server at all).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from apis_rig import ApisClient, served
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from instruments.apis import HttpServers
from instruments.apis_http import ApisHttp, ApisHttpBms
from instruments.errors import (
    CommunicationError,
    ConfigError,
    InstrumentReportedError,
    InstrumentTimeout,
    MalformedReply,
    RatingError,
)
from instruments.roles import Alarm, ConverterMode, Limits, Permission


@pytest.fixture
def apis() -> Iterator[ApisClient]:
    with served() as (client, _front, _config):
        yield client


def test_probe_negotiates_and_reads_the_unit(apis: ApisClient) -> None:
    driver = ApisHttp.open(apis.urls["E001"], name="E001.converter", timeout=5.0)
    try:
        identity = driver.probe()
        assert identity.vendor == "Sony CSL" and identity.firmware == "1.4"
        assert driver.mode() is ConverterMode.WAIT
        assert driver.status().alarm is Alarm.NONE
        meters = driver.meters()
        assert 40.0 < meters.vb < 58.4 and meters.ic == 0.0
    finally:
        driver.close()


def test_apply_set_grid_current_and_limits_travel_as_apis_main_sends_them(
    apis: ApisClient,
) -> None:
    driver = ApisHttp.open(apis.urls["E002"], name="E002.converter")
    try:
        driver.apply(mode=ConverterMode.VOLTAGE_REFERENCE, dvg=350.0, drg=0.0, dig=2.3)
        assert apis.ok("E002", "/dcdc/get")["status"]["status"] == "0x0014"
        echo = driver.set_grid_current(1.75)
        assert echo.dig == pytest.approx(1.75, abs=0.01)
        asked = Limits(cib=10.0, dig=2.0, ubv=40.0, ugv=290.0, obv=56.0, ogv=390.0)
        kept = driver.set_limits(asked)  # only dig travels; the rest is the service's
        assert kept.dig == pytest.approx(2.0, abs=0.01) and kept.cib != asked.cib
        driver.apply(dvg=340.0)
        assert apis.ok("E002", "/dcdc/get")["vdis"]["dvg"] == pytest.approx(340.0, abs=0.05)
        driver.set_mode(ConverterMode.WAIT)  # full set from what the driver knows
        body = apis.ok("E002", "/dcdc/get")
        assert body["status"]["status"] == "0x0000"
        assert body["vdis"]["dvg"] == pytest.approx(340.0, abs=0.05)
        with pytest.raises(RatingError, match="dig"):
            driver.set_grid_current(-1.0)
    finally:
        driver.close()


def test_the_bms_reads_rsoc_and_permission_and_a_refusal_is_reported(apis: ApisClient) -> None:
    bms = ApisHttpBms.open(apis.urls["E003"], name="E003.battery")
    driver = ApisHttp.open(apis.urls["E003"], name="E003.converter")
    try:
        reading = bms.read()
        assert reading.permission is Permission.BOTH and 0 < reading.soc_percent < 100
        apis.control.fault("E003.battery", "permission")
        assert bms.read().permission is Permission.NONE
        with pytest.raises(InstrumentReportedError, match="battery_operation_status is 0"):
            driver.apply(mode=ConverterMode.DISCHARGE, dvg=350.0, dig=1.0, drg=0.0)
    finally:
        bms.close()
        driver.close()


def test_a_dead_instrument_behind_the_service_is_a_communication_error(
    apis: ApisClient,
) -> None:
    driver = ApisHttp.open(apis.urls["E004"], name="E004.converter")
    try:
        apis.control.fault("E004.converter", "drop", count=1000)
        with pytest.raises(CommunicationError, match=r"HTTP 503.*E004\.converter"):
            driver.meters()
    finally:
        apis.control.clear("E004.converter")
        driver.close()


# -- foreign services ---------------------------------------------------------------------


def _server(routes: list[Route]) -> HttpServers:
    return HttpServers([("stub", Starlette(routes=routes), 0)], host="127.0.0.1")


def _version(version: str) -> Route:
    def answer(request: Request) -> Response:
        return JSONResponse({"comm_interface_version": version})

    return Route("/version/get", answer)


@pytest.mark.parametrize("version", ["1.0", "3.1", "2"])
def test_an_interface_version_we_do_not_speak_is_refused(version: str) -> None:
    with _server([_version(version)]) as servers:
        driver = ApisHttp.open(servers.url("stub"), name="X.converter")
        with pytest.raises(InstrumentReportedError, match=f"comm_interface_version '{version}'"):
            driver.negotiate()
        driver.close()


def test_a_body_that_is_not_the_expected_json_is_malformed() -> None:
    def text(request: Request) -> Response:
        return PlainTextResponse("hello")

    def no_meter(request: Request) -> Response:
        return JSONResponse({"status": {"alarmState": "No alarm"}})

    routes = [Route("/dcdc/get", text), Route("/dcdc/get/status", no_meter)]
    with _server(routes) as servers:
        driver = ApisHttp.open(servers.url("stub"), name="X.converter")
        with pytest.raises(MalformedReply, match="not JSON"):
            driver.mode()
        with pytest.raises(MalformedReply, match=r"meter\.vg"):
            driver.meters()
        driver.close()


def test_no_answer_is_a_timeout_and_no_server_a_communication_error() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # accepts the connection in the kernel, never answers
        port = silent.getsockname()[1]
        driver = ApisHttp.open(f"http://127.0.0.1:{port}", name="X.converter", timeout=0.3)
        with pytest.raises(InstrumentTimeout, match=r"X\.converter: no answer"):
            driver.mode()
        driver.close()
    bms = ApisHttpBms.open(f"http://127.0.0.1:{port}", name="X.battery", timeout=0.3)
    with pytest.raises(CommunicationError, match="GET /battery/get"):
        bms.read()
    bms.close()


def test_a_resource_that_is_not_an_http_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not an http://HOST:PORT URL"):
        ApisHttp.open("socket://127.0.0.1:4380")
