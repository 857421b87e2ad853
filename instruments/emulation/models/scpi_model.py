"""The shared shape of an emulated SCPI instrument: the SCPI engine's device on plant ports.

A SCPI model is both an :class:`~instruments.emulation.models.base.InstrumentModel` (plant
ports, faults, make-safe) and a :class:`~instruments.emulation.scpi.ScpiDevice` (its command
table, error queue and status registers), so a handler reaches the plant directly through
``device``. A family module declares its command table and implements :meth:`bind` (take
the plant handles) and :meth:`push` (write every setting to the plant); this class does the
two-phase construction, ``*RST`` and the identity. Every connection shares the one device,
as every interface of a real instrument shares its state.
"""

from __future__ import annotations

import operator
from abc import abstractmethod
from collections.abc import Mapping
from typing import ClassVar

from instruments.emulation.models.base import InstrumentModel, ModelContext
from instruments.emulation.plant import Plant
from instruments.emulation.scpi import Command, ScpiDevice, query, scpi_session_factory
from instruments.emulation.scpi_device import Handler
from instruments.emulation.transport import SessionFactory


class ScpiModel(InstrumentModel, ScpiDevice):
    """Base of the SCPI instrument models. Subclasses set ``vendor`` and ``firmware``."""

    vendor: ClassVar[str]
    firmware: ClassVar[str]
    #: Messages for codes the engine does not name, e.g. ``{-201: "Invalid while in local"}``.
    error_messages: ClassVar[Mapping[int, str]] = {}

    def __init__(self, ctx: ModelContext, plant: Plant) -> None:
        InstrumentModel.__init__(self, ctx, plant)
        self.bind()
        ScpiDevice.__init__(self)
        self.push()

    @abstractmethod
    def bind(self) -> None:
        """Take the plant handles and the rating (runs before the ``*RST`` defaults)."""

    @abstractmethod
    def push(self) -> None:
        """Write every setting to the plant (after construction and after ``*RST``)."""

    def identification(self) -> str:
        """``*IDN?``: vendor, the bench file's model, a stable serial and the firmware."""
        model = self.ctx.instrument.model
        return f"{self.vendor},{model},{self.ctx.serial_number()},{self.firmware}"

    def reset(self) -> None:
        """``*RST``: every setting to its default, then the plant follows."""
        super().reset()
        self.push()

    def push_error(self, code: int, detail: str = "") -> None:
        """Queue an error; a code in ``error_messages`` gets the model's own message."""
        super().push_error(code, detail)
        text = self.error_messages.get(code)
        if text is not None and self.errors and self.errors[-1][0] == code:
            self.errors[-1] = (code, text)

    def session_factory(self) -> SessionFactory:
        return scpi_session_factory(self)


IDENTITY: Command = query("*IDN?", lambda device: device.identification())
"""Put first in a model's ``commands``: answers ``*IDN?`` from the bench file's model."""


def meter(quantity: str) -> Handler:
    """The handler of a measurement query: ``device.reading(quantity)`` on the main port.

    A C-level method call rather than a lambda: measurement queries are what clients poll,
    and one Python frame fewer per query shows in the round trip.
    """
    return operator.methodcaller("reading", quantity)
