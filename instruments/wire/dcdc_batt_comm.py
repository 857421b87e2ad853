"""APIS's device HTTP API (apis-dcdc_batt_comm, "dcdc_v2"; apis-emulator, "dcdc_emulator").

Facts shared by the service that fronts our units (:mod:`instruments.apis.service`) and the
driver that talks to any such service (:mod:`instruments.apis_http`). No I/O here.

Sources (read at SonyCSL/apis-main and SonyCSL/apis-dcdc_batt_comm, 2026-12-07):

- ``apis-main …/controller/util/DDCon.java``: mode codes ``0x0000`` WAIT, ``0x0014``
  VOLTAGE_REFERENCE, ``0x0041`` CHARGE, ``0x0002`` DISCHARGE; ``status.operationMode``
  strings ``Waiting``, ``Grid Autonomy`` (voltage reference), ``Heteronomy CV`` (charge and
  discharge); ``status.alarmState`` strings ``No alarm``, ``Light alarm``, ``Heavy alarm``.
- ``apis-main …/impl/dcdc/DcdcDeviceControlling.java``: after a set with a mode, the
  response's ``status.operationMode`` must be the mode's, else a hardware error.
- ``apis-main …/impl/dcdc/v2/DcdcV2DataAcquisition.java``: ``GET /version/get`` must
  answer ``comm_interface_version`` whose major (before the dot) is ``2``; data from
  ``/all/get`` (``rsoc`` and ``battery_operation_status`` at its top level), status from
  ``/dcdc/get/status``. ``…/v2/DcdcV2DeviceControlling.java``: sets are
  ``/dcdc/set?mode=&dvg=&dig=&drg=``, ``/dcdc/set?dvg=&drg=``, ``/dcdc/set?dig=``.
- ``apis-main …/controller/DeviceControlling.java``: every call is a GET expecting 200 and a
  JSON body, 5 s timeout (``controller.requestTimeoutMsec``), 3 tries
  (``controller.retryLimit``).
- ``apis-main …/device_controlling/Checkpoint.java``: ``retryWaitMsec`` after a set it reads
  the status and requires ``meter.vg`` within ``gridVoltageAllowanceV`` and ``|meter.ig|``
  within ``gridCurrentAllowanceA`` of the target (4 V and 0.125 A in APIS's sample policy).
- ``apis-dcdc_batt_comm drivers/essx_server.py``: the routes and their answers, the
  parameter cache (a set without ``mode``/``dvg``/``dig`` takes the earlier set's; a missing
  ``drg`` is the earlier one or 0), ``{"err": …}`` with HTTP 400, the version answer
  ``{"comm_interface_version": "2.0", "dcdc_batt_comm_version": "1.4"}``.
- ``apis-dcdc_batt_comm drivers/essx/essx_type_oes.py`` and ``essx_util.py``: the JSON
  shapes (``status``, ``meter``, ``vdis``, ``param``), ``status.status`` as ``"0x%04x"``,
  ``runningState`` ``off``/``charge``/``discharge`` from ``cst`` bits 0-1, ``alarm`` as
  three 4-digit hex words (``alm1``, alarm state, running state).
- ``apis-main …/impl/dcdc/emulator/DcdcEmulator*.java``: the dcdc_emulator paths
  (``/get/unit/{id}``, ``/get/dcdc/status/{id}``, ``/set/dcdc/{id}``,
  ``/set/dcdc/voltage/{id}``, ``/set/dcdc/current/{id}``) and ``emu.rsoc`` /
  ``emu.battery_operation_status`` in the unit data. Assumed: the rest of the unit data is
  the dcdc_v2 object under ``dcdc`` (apis-emulator's own code was not read).
- Default ports 4380 (dcdc_v2) and 4390 (dcdc_emulator): APIS's sample ``config.json``
  files, as the issue quotes them (assumed: not re-read).
"""

from __future__ import annotations

import math
from typing import Final

from instruments.wire.eza2500 import Mode

COMM_INTERFACE_VERSION: Final = "2.0"
DCDC_BATT_COMM_VERSION: Final = "1.4"
#: The major interface versions apis-main's dcdc_v2 client accepts.
SUPPORTED_MAJOR_VERSIONS: Final = ("2",)
DCDC_V2_PORT: Final = 4380
DCDC_EMULATOR_PORT: Final = 4390
#: apis-main's per-request timeout and tries (``DeviceControlling.java`` defaults).
REQUEST_TIMEOUT_S: Final = 5.0
REQUEST_TRIES: Final = 3
#: apis-main's checkpoint tolerances (sample policy ``gridVoltageAllowanceV``,
#: hwConfig ``gridCurrentAllowanceA``) and wait (``checkpoint.retryWaitMsec``).
CHECK_VOLTAGE_ALLOWANCE_V: Final = 4.0
CHECK_CURRENT_ALLOWANCE_A: Final = 0.125
CHECK_WAIT_S: Final = 0.1

#: The query parameters of a set.
SET_PARAMETERS: Final = ("mode", "dvg", "dig", "drg")

MODE_CODES: Final = {
    Mode.WAIT: "0x0000",
    Mode.VOLTAGE_REFERENCE: "0x0014",
    Mode.CHARGE: "0x0041",
    Mode.DISCHARGE: "0x0002",
}
OPERATION_MODES: Final = {
    Mode.WAIT: "Waiting",
    Mode.VOLTAGE_REFERENCE: "Grid Autonomy",
    Mode.CHARGE: "Heteronomy CV",
    Mode.DISCHARGE: "Heteronomy CV",
}
#: ``status.alarmState`` by the converter's alarm level (0 none, 1 light, 2 heavy).
ALARM_STATES: Final = ("No alarm", "Light alarm", "Heavy alarm")
#: ``status.runningState`` by ``cst`` bits 0-1.
RUNNING_STATES: Final = ("off", "charge", "discharge")


def mode_code(mode: Mode) -> str:
    """The ``mode`` query value and ``status.status`` of ``mode`` (``0x0014``)."""
    return MODE_CODES[mode]


def parse_mode(text: str) -> Mode:
    """The mode of a ``mode`` query value (``0x0014``, hex as dcdc_batt_comm reads it).

    ``ValueError`` naming the value and the four modes APIS uses otherwise.
    """
    known = ", ".join(f"{code} {mode.name}" for mode, code in MODE_CODES.items())
    if not text.lower().startswith("0x"):
        raise ValueError(f"mode {text!r} is not a 0x… hex code; one of {known}")
    try:
        value = int(text[2:], 16)
    except ValueError:
        raise ValueError(f"mode {text!r} is not a hex number; one of {known}") from None
    for mode in MODE_CODES:
        if int(mode) == value:
            return mode
    raise ValueError(f"mode {text!r} is not one APIS uses; one of {known}")


def parse_number(name: str, text: str) -> float:
    """A finite number from query parameter ``name``; ``ValueError`` saying why not."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name}={text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{name}={text!r} is not a finite number")
    return value


def alarm_text(alm1: int, alarm_state: int, running_state: int) -> str:
    """``status.alarm``: ``alm1``, the alarm state and the running state as 4-digit hex."""
    return f"{alm1 & 0xFFFF:04x} {alarm_state & 0xFFFF:04x} {running_state & 0xFFFF:04x}"
