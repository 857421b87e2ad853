"""Emulated instrument models, one module per family, keyed by the driver name they answer.

Adding an instrument family: write a subclass of
:class:`~instruments.emulation.models.base.InstrumentModel` in its own module and list it
in ``MODELS`` below under the driver name a bench file uses.
"""

from __future__ import annotations

from instruments.emulation.models.apis_bms import ApisBmsModel
from instruments.emulation.models.base import InstrumentModel, ModelContext, Wire
from instruments.emulation.models.chroma63200a import Chroma63200AModel
from instruments.emulation.models.eza2500 import Eza2500Model
from instruments.emulation.models.it6000c import IT6000CModel
from instruments.emulation.models.n5700 import N5700Model
from instruments.emulation.models.psb10000 import Psb10000Model
from instruments.emulation.models.psb10000_scpi import Psb10000ScpiModel

MODELS: dict[str, type[InstrumentModel]] = {
    Eza2500Model.driver: Eza2500Model,
    ApisBmsModel.driver: ApisBmsModel,
    Psb10000Model.driver: Psb10000Model,
    Psb10000ScpiModel.driver: Psb10000ScpiModel,
    N5700Model.driver: N5700Model,
    IT6000CModel.driver: IT6000CModel,
    Chroma63200AModel.driver: Chroma63200AModel,
}

__all__ = ["MODELS", "InstrumentModel", "ModelContext", "Wire"]
