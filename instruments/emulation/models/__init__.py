"""Emulated instrument models, one module per family, keyed by the driver name they answer.

Adding an instrument family: write a subclass of
:class:`~instruments.emulation.models.base.InstrumentModel` in its own module of this package
with ``driver`` set to the family's name; defining the class registers it, and
:func:`models` imports every module here, so no list is edited.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping

from instruments.emulation.models.base import (
    InstrumentModel,
    ModelContext,
    Wire,
    registered_models,
)


def models() -> Mapping[str, type[InstrumentModel]]:
    """Every emulated model, keyed by the family (driver) name it answers."""
    for module in pkgutil.iter_modules(__path__):
        if not module.ispkg and not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")
    return registered_models()


__all__ = ["InstrumentModel", "ModelContext", "Wire", "models"]
