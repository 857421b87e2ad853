"""The HTTP routes of APIS's device service, as ASGI apps (Starlette).

:func:`dcdc_v2_app`: one unit per port, apis-dcdc_batt_comm's paths (``/version/get``,
``/all/get``, ``/dcdc/get``, ``/dcdc/get/status``, ``/dcdc/set``, ``/battery/get``).
:func:`dcdc_emulator_app`: every unit on one port, the paths apis-main's ``dcdc_emulator``
client calls (``/get/unit/{id}``, ``/get/dcdc/status/{id}``, ``/set/dcdc/{id}``,
``/set/dcdc/voltage/{id}``, ``/set/dcdc/current/{id}``). Sources:
:mod:`instruments.wire.dcdc_batt_comm`.

Every answer is JSON. Errors are ``{"err": "…"}``: 400 for bad input (nothing sent), 503 for
an instrument that does not answer, 404 for an unknown path or unit, 405 for a method other
than GET, 500 for a bug (logged; the server keeps serving). The endpoints are plain
functions, so Starlette runs them in its worker threads: the blocking drivers never hold
the event loop, and several units (or several pollers of one unit) are served at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .service import Json, ServiceError, SetKind, UnitService

log = logging.getLogger(__name__)

Endpoint = Callable[[Request], Response]


def _json(call: Callable[[Request], Json]) -> Endpoint:
    def endpoint(request: Request) -> Response:
        return JSONResponse(call(request))

    return endpoint


async def _service_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    return JSONResponse({"err": str(exc)}, status_code=exc.status)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    what = "method not allowed (GET only)" if exc.status_code == 405 else exc.detail
    return JSONResponse(
        {"err": f"{request.method} {request.url.path}: {what}"}, status_code=exc.status_code
    )


async def _bug(request: Request, exc: Exception) -> Response:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"err": f"internal error: {exc!r}"}, status_code=500)


def _app(routes: list[Route]) -> Starlette:
    return Starlette(
        routes=routes,
        exception_handlers={
            ServiceError: _service_error,
            HTTPException: _http_error,
            Exception: _bug,
        },
    )


def dcdc_v2_app(unit: UnitService) -> Starlette:
    """apis-dcdc_batt_comm's API for one unit."""

    def set_(request: Request) -> Json:
        return unit.set(request.query_params.multi_items())

    def version(request: Request) -> Json:
        return unit.version()

    return _app(
        [
            Route("/version/get", _json(version)),
            Route("/all/get", _json(lambda _: unit.all())),
            Route("/dcdc/get", _json(lambda _: unit.dcdc())),
            Route("/dcdc/get/status", _json(lambda _: unit.dcdc_status())),
            Route("/dcdc/set", _json(set_)),
            Route("/battery/get", _json(lambda _: unit.battery())),
        ]
    )


def dcdc_emulator_app(units: Mapping[str, UnitService]) -> Starlette:
    """apis-main's ``dcdc_emulator`` paths for every unit, on one port."""

    def unit_of(request: Request) -> UnitService:
        unit_id = request.path_params["unit"]
        try:
            return units[unit_id]
        except KeyError:
            known = ", ".join(sorted(units)) or "none"
            raise ServiceError(404, f"unknown unit {unit_id!r}; units: {known}") from None

    def unit_data(request: Request) -> Json:
        unit = unit_of(request)
        data = unit.all()
        emu = {key: data.pop(key) for key in ("rsoc", "battery_operation_status")}
        return {"emu": emu, "dcdc": data}

    def setter(only: SetKind) -> Callable[[Request], Json]:
        def set_(request: Request) -> Json:
            return unit_of(request).set(request.query_params.multi_items(), only=only)

        return set_

    return _app(
        [
            Route("/get/unit/{unit}", _json(unit_data)),
            Route("/get/dcdc/status/{unit}", _json(lambda r: unit_of(r).dcdc_status())),
            Route("/set/dcdc/voltage/{unit}", _json(setter("voltage"))),
            Route("/set/dcdc/current/{unit}", _json(setter("current"))),
            Route("/set/dcdc/{unit}", _json(setter("any"))),
        ]
    )
