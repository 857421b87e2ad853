"""APIS's device HTTP service (apis-dcdc_batt_comm) in front of our units' drivers.

:mod:`.service` answers each request through a unit's converter and BMS drivers,
:mod:`.app` maps the HTTP routes of the ``dcdc_v2`` and ``dcdc_emulator`` flavours onto it,
:mod:`.serving` runs the apps with uvicorn. The facts: :mod:`instruments.wire.dcdc_batt_comm`.
"""

from instruments.apis_http import FAMILY as HTTP_FAMILY

from .app import dcdc_emulator_app, dcdc_v2_app
from .service import ANSWER_WITHIN_S, DcdcDevice, ServiceError, UnitService
from .serving import HttpServers, Served

__all__ = [
    "ANSWER_WITHIN_S",
    "HTTP_FAMILY",
    "DcdcDevice",
    "HttpServers",
    "Served",
    "ServiceError",
    "UnitService",
    "dcdc_emulator_app",
    "dcdc_v2_app",
]
