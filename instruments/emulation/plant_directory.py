"""Ports and nodes of a plant by name: typed port handles, node voltages and balances.

The part of :class:`~instruments.emulation.plant.Plant` that only looks things up; instrument
models, the emulator's control channel and tests reach the plant's ports through it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from instruments.emulation.plant_network import Network
from instruments.emulation.plant_ports import (
    BatteryHandle,
    BidirectionalHandle,
    ConverterHandle,
    CurrentSinkHandle,
    CurrentSourceHandle,
    LoadHandle,
    Measurement,
    PortHandle,
    PortState,
    SupplyHandle,
    VoltageReferenceHandle,
)
from instruments.emulation.plant_specs import NodeSpec
from instruments.errors import ConfigError

H = TypeVar("H", bound=PortHandle)


@dataclass(frozen=True)
class NodeState:
    """True state of a node: voltage and where its net port current goes."""

    name: str
    voltage: float
    port_current: float
    bleed_current: float
    capacitor_current: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return dict(self.__dict__)


class PlantDirectory:
    """Every port handle and node of a plant, found by name."""

    def __init__(self, handles: list[PortHandle], node_specs: list[NodeSpec], net: Network) -> None:
        self._handle_list = handles
        self._handles = {h.name: h for h in handles}
        self._node_specs = node_specs
        self._net = net

    @property
    def ports(self) -> dict[str, PortHandle]:
        """Every port handle by name (a copy of the mapping)."""
        return dict(self._handles)

    @property
    def node_names(self) -> list[str]:
        """Every node name, in definition order."""
        return [n.name for n in self._node_specs]

    def port(self, name: str) -> PortHandle:
        """The handle of port ``name``; :class:`ConfigError` if there is none."""
        try:
            return self._handles[name]
        except KeyError:
            known = ", ".join(sorted(self._handles)) or "none"
            raise ConfigError(f"no port named {name!r} in the plant (ports: {known})") from None

    def port_as(self, name: str, kind: type[H]) -> H:
        """The handle of port ``name``, checked to be of handle type ``kind``."""
        handle = self.port(name)
        if not isinstance(handle, kind):
            raise ConfigError(f"port {name!r} is a {handle.kind}, not a {kind.kind}")
        return handle

    def supply(self, name: str) -> SupplyHandle:
        """Typed handle of a supply port."""
        return self.port_as(name, SupplyHandle)

    def load(self, name: str) -> LoadHandle:
        """Typed handle of an electronic-load port."""
        return self.port_as(name, LoadHandle)

    def bidirectional(self, name: str) -> BidirectionalHandle:
        """Typed handle of a bidirectional-supply port."""
        return self.port_as(name, BidirectionalHandle)

    def voltage_reference(self, name: str) -> VoltageReferenceHandle:
        """Typed handle of a voltage-reference port."""
        return self.port_as(name, VoltageReferenceHandle)

    def current_source(self, name: str) -> CurrentSourceHandle:
        """Typed handle of a constant-current source."""
        return self.port_as(name, CurrentSourceHandle)

    def current_sink(self, name: str) -> CurrentSinkHandle:
        """Typed handle of a constant-current sink."""
        return self.port_as(name, CurrentSinkHandle)

    def converter(self, name: str) -> ConverterHandle:
        """Typed handle of a DC/DC converter."""
        return self.port_as(name, ConverterHandle)

    def battery(self, name: str) -> BatteryHandle:
        """Typed handle of a battery."""
        return self.port_as(name, BatteryHandle)

    def __iter__(self) -> Iterator[PortHandle]:
        return iter(self._handles.values())

    def node_voltage(self, name: str) -> float:
        """True voltage of node ``name``."""
        return float(self._net.V[self._node(name)])

    def node_state(self, name: str) -> NodeState:
        """True state of node ``name``: voltage and the currents that balance at it."""
        k = self._node(name)
        net = self._net
        sums = net.node_current_sum()
        v = float(net.V[k])
        bleed = float(net.gb[k] * v)
        return NodeState(
            name=name,
            voltage=v,
            port_current=float(sums[k]),
            bleed_current=bleed,
            capacitor_current=float(sums[k]) - bleed,
        )

    def _node(self, name: str) -> int:
        for k, n in enumerate(self._node_specs):
            if n.name == name:
                return k
        raise ConfigError(f"no node named {name!r} in the plant (nodes: {self.node_names})")

    def state(self, name: str) -> PortState:
        """Shortcut for ``plant.port(name).state()``."""
        return self.port(name).state()

    def measure(self, name: str) -> Measurement:
        """Shortcut for ``plant.port(name).measure()``."""
        return self.port(name).measure()
