"""What every emulated instrument model is: a protocol front bound to plant ports.

A model is built in two phases, because the plant needs every port before it exists:
``port_specs(ctx)`` says which plant ports the instrument owns (a supply on the bus, a
converter between the bus and its battery node, a battery behind a BMS), then the emulator
builds one :class:`~instruments.emulation.plant.Plant` for the whole bench and constructs
each model with it. The model then answers its protocol (``session_factory``) from the
plant's *measured* values and maps settings onto the plant's port handles.

Vendor quirks (units in replies, priority rules, OVP minimum) live in the model. Faults
that concern the wire (disconnect, delay, garbage, drop) are the transport's; ``stale``,
``offset`` and ``trip`` are handled here for every model; a model adds its own kinds
(converter ``alarm``, battery ``permission``) by overriding :meth:`InstrumentModel.fault`.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

from instruments.emulation.description import (
    BenchDescription,
    EmulatedPort,
    InstrumentDescription,
    UnitDescription,
)
from instruments.emulation.plant import Measurement, Plant, PortHandle, Sensors, SensorSpec
from instruments.emulation.sensors import QUANTITIES
from instruments.emulation.timing import InstrumentTiming, SerialLine
from instruments.emulation.transport import SessionFactory
from instruments.errors import ConfigError

if TYPE_CHECKING:
    from instruments.emulation.plant_specs import AnyPortSpec

BUS_NODE = "bus"


class Wire(StrEnum):
    """How an emulated instrument is reached; the emulator picks the server and resource."""

    SCPI_LAN = "scpi-lan"  # TCPIP0::127.0.0.1::PORT::SOCKET
    SCPI_SERIAL = "scpi-serial"  # ASRLsocket://127.0.0.1:PORT::INSTR or ASRL/dev/pts/N::INSTR
    MODBUS_TCP = "modbus-tcp"  # modbus-tcp://127.0.0.1:PORT
    MODBUS_RTU = "modbus-rtu"  # modbus-rtu-tcp://127.0.0.1:PORT or modbus-rtu:/dev/pts/N
    BINARY_SERIAL = "binary-serial"  # socket://127.0.0.1:PORT or /dev/pts/N


@dataclass(frozen=True)
class ModelContext:
    """Everything a model needs to know about its place on the bench."""

    bench: BenchDescription
    unit: UnitDescription
    instrument: InstrumentDescription

    @property
    def key(self) -> str:
        """The instrument's key, ``<unit>.<name>``; also the name of its main plant port."""
        return self.instrument.key

    @property
    def port(self) -> EmulatedPort:
        """The unit's ``[emulation.ports.<unit>]`` parameters."""
        return self.bench.emulation.ports[self.unit.id]

    @property
    def battery_node(self) -> str:
        """The unit's battery-side node."""
        return f"{self.unit.id}.battery"

    @property
    def node(self) -> str:
        """The node this instrument's terminals sit on."""
        return BUS_NODE if self.instrument.node == "bus" else self.battery_node

    @property
    def line_ohm(self) -> float:
        """Cable resistance to the bus: the branch's plus the unit's own (0 off the bus)."""
        if self.node != BUS_NODE:
            return 0.0
        branch = 0.0
        if self.unit.branch is not None:
            branch = self.bench.emulation.branch_line_resistance.get(self.unit.branch, 0.0)
        return branch + self.port.line_resistance

    def sensors(self) -> Sensors:
        """The plant sensor model from the bench file's ``sensor`` errors."""
        errors = self.port.sensor
        return Sensors(
            voltage=SensorSpec(
                offset=errors.voltage_offset,
                gain_error=errors.voltage_gain,
                noise_sd=errors.voltage_noise,
                resolution=errors.voltage_step,
            ),
            current=SensorSpec(
                offset=errors.current_offset,
                gain_error=errors.current_gain,
                noise_sd=errors.current_noise,
                resolution=errors.current_step,
            ),
        )

    def serial_number(self) -> str:
        """A stable serial number for the emulated instrument (from its bench and key)."""
        digest = hashlib.sha256(f"{self.bench.name}/{self.key}".encode()).hexdigest()
        return f"EMU{int(digest[:8], 16) % 10**7:07d}"

    def setting(self, name: str, default: float) -> float:
        """A numeric ``settings`` value of the instrument, or ``default``."""
        value = self.instrument.settings.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{self.key}: setting {name} = {value!r} must be a number")
        return float(value)


_MODELS: dict[str, type[InstrumentModel]] = {}


def registered_models() -> Mapping[str, type[InstrumentModel]]:
    """The models defined so far, by family name (``models()`` imports them all first)."""
    return MappingProxyType(dict(sorted(_MODELS.items())))


class InstrumentModel(ABC):
    """Base class of every emulated instrument. Subclasses set ``driver`` and ``wire``.

    A subclass that sets ``driver`` in its own body registers itself under that family
    name (a second model for one family is refused).
    """

    driver: ClassVar[str]
    wire: ClassVar[Wire]
    #: Fault kinds the model handles itself, beyond ``stale``, ``offset`` and ``trip``.
    extra_faults: ClassVar[tuple[str, ...]] = ()
    #: On a serial wire: bits per character (start + data + parity + stop; 8N1 is 10), the
    #: silence before each frame in characters, and the baud rate when the instrument's
    #: settings give no ``baudrate`` (see :mod:`instruments.emulation.timing`).
    line_bits_per_char: ClassVar[int] = 10
    line_gap_chars: ClassVar[float] = 0.0
    default_baud: ClassVar[int] = 9600

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("driver")
        if isinstance(name, str):
            known = _MODELS.get(name)
            if known is not None and known.__qualname__ != cls.__qualname__:
                raise TypeError(f"two emulator models for family {name!r}: {known}, {cls}")
            _MODELS[name] = cls

    def __init__(self, ctx: ModelContext, plant: Plant) -> None:
        self.ctx = ctx
        self.plant = plant
        #: The plant port that ``offset`` and ``trip`` faults act on and the meters read.
        self.main_port: PortHandle = plant.port(ctx.key)
        self.stale = False
        #: What the meters last showed, for the ``stale`` fault: each port's last full
        #: reading, and the main port's quantities read alone since its last full reading.
        self._frozen: dict[PortHandle, Measurement] = {}
        self._since: dict[str, float] = {}

    @classmethod
    @abstractmethod
    def port_specs(cls, ctx: ModelContext) -> list[AnyPortSpec]:
        """The plant ports this instrument owns (the first one is its main port)."""

    @abstractmethod
    def session_factory(self) -> SessionFactory:
        """A factory of per-connection protocol sessions (see ``transport.Session``)."""

    @property
    def key(self) -> str:
        return self.ctx.key

    def serial_line(self) -> SerialLine | None:
        """The instrument's serial line for timing (None on a LAN wire): the ``baudrate``
        setting (else :attr:`default_baud`) and the model's character framing."""
        if self.wire in (Wire.SCPI_LAN, Wire.MODBUS_TCP):
            return None
        baud = int(self.ctx.setting("baudrate", self.default_baud))
        return SerialLine(baud, self.line_bits_per_char, self.line_gap_chars)

    def timing(self) -> InstrumentTiming:
        """The instrument's timing under ``timing = "real"``: its model's processing times
        (the ratings file's ``timing`` table) and its serial line."""
        return InstrumentTiming(self.key, self.ctx.instrument.rating.timing, self.serial_line())

    def measure(self, port: PortHandle | None = None) -> Measurement:
        """What the instrument's meters read now; frozen while the ``stale`` fault holds."""
        handle = port or self.main_port
        if self.stale:
            return self._shown(handle)
        reading = handle.measure()
        self._frozen[handle] = reading
        if handle is self.main_port:
            self._since.clear()
        return reading

    def reading(self, quantity: str) -> float:
        """One quantity of :meth:`measure` on the main port, read alone (``MEAS:VOLT?``
        reads the voltage and nothing else); frozen too while ``stale`` holds."""
        if not self.stale:
            value = self._since[quantity] = self.main_port.read(quantity)
            return value
        shown = getattr(self._shown(self.main_port), quantity, None)
        if not isinstance(shown, float):
            raise ConfigError(f"{self.key}: its meters do not read {quantity!r}")
        return shown

    def _shown(self, handle: PortHandle) -> Measurement:
        """What a stale meter keeps showing: the last value of every quantity, whether read
        alone or in a full reading (a port never read is read once, then frozen)."""
        frozen = self._frozen.get(handle)
        if frozen is None:
            frozen = handle.measure()
        if handle is self.main_port and self._since:
            frozen = frozen._replace(**self._since)
            self._since.clear()
        self._frozen[handle] = frozen
        return frozen

    def fault(self, kind: str, params: Mapping[str, Any]) -> None:
        """Inject a model-level fault (``stale``, ``offset``, ``trip`` or an extra kind)."""
        if kind == "stale":
            self.stale = bool(params.get("on", True))
        elif kind == "offset":
            quantity = str(params.get("quantity", "current"))
            value = params.get("value")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{self.key}: 'offset' needs a numeric 'value'")
            self.main_port.set_sensor_offset(quantity, float(value))
        elif kind == "trip":
            self.main_port.trip(str(params.get("trip", params.get("what", "OVP"))))
        else:
            known = ", ".join(("stale", "offset", "trip", *self.extra_faults))
            raise ConfigError(f"{self.key}: fault kind {kind!r} not known here; known: {known}")

    def clear_faults(self) -> None:
        """Undo model-level faults (``stale``, sensor offsets); latched trips stay latched."""
        self.stale = False
        self._frozen.clear()
        self._since.clear()
        for quantity in QUANTITIES:
            self.main_port.set_sensor_offset(quantity, 0.0)

    def set_value(self, field: str, value: Any) -> bool:
        """Change a unit-level value (``set`` on the control channel); False if not ours."""
        return False

    def next_deadline(self) -> float | None:
        """Plant time of the model's next time-driven action (e.g. its communication
        watchdog expiring), or None. The emulator advances the plant no further than this
        before calling :meth:`on_time`, so the action happens when it is due."""
        return None

    def on_time(self, now: float) -> None:
        """Run the time-driven behaviour due at plant time ``now`` (default: none)."""
        return None

    def after_make_safe(self) -> None:
        """Bring protocol-side state in line after the plant made every output safe.

        The plant holds every physical set-point, so most models have nothing to do; a
        model that keeps its own copy of a switch overrides this.
        """
        self._frozen.clear()
        self._since.clear()

    def status(self) -> dict[str, Any]:
        """Protocol-level state for the control channel's ``status`` (beyond the plant's)."""
        return {"stale": self.stale}
