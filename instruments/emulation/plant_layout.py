"""How a plant's specs become a network: validation, terminal order and port handles.

Terminal order is ``[converter bus sides, other slewed ports | batteries | converter battery
sides | households]``, so every per-step kernel works on contiguous slices (views), not
gathers (``docs/plant.md``, network and solver).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import numpy as np

from instruments.emulation.plant_network import Network, TerminalRow
from instruments.emulation.plant_ports import (
    HANDLE_TYPES,
    BatteryHandle,
    ConverterHandle,
    PlantContext,
    PortHandle,
)
from instruments.emulation.plant_specs import (
    BatterySpec,
    ConverterSpec,
    HouseholdSpec,
    NodeSpec,
    PortSpec,
)
from instruments.errors import ConfigError


class PlantLayout:
    """The validated specs of a plant laid out as one network with a handle per port.

    ``convs``/``bats`` are the port indices of converters and batteries; ``houses`` the
    battery indices (within ``bats``) that carry a household. ``cb``, ``bt`` and ``cpt`` are
    the terminal slices of the converter bus sides, the batteries and the converter battery
    sides; households start at terminal ``house_start``.
    """

    def __init__(
        self,
        nodes: Sequence[NodeSpec],
        ports: Sequence[PortSpec],
        *,
        seed: int,
        start_of_day_s: float,
    ) -> None:
        self.node_specs = list(nodes)
        self.port_specs = specs = list(ports)
        self._validate()
        node_index = {n.name: k for k, n in enumerate(self.node_specs)}
        convs = [p for p, s in enumerate(specs) if isinstance(s, ConverterSpec)]
        bats = [p for p, s in enumerate(specs) if isinstance(s, BatterySpec)]
        others = [p for p, s in enumerate(specs) if not isinstance(s, ConverterSpec | BatterySpec)]
        order = convs + others + bats
        n_slewed = len(convs) + len(others)
        terminal_of = {p: t for t, p in enumerate(order)}
        rows = [_row(specs[p], p, node_index[specs[p].node]) for p in order]
        for p in convs:
            spec = specs[p]
            assert isinstance(spec, ConverterSpec)
            rows.append(
                TerminalRow(node_index[spec.battery_node], p, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
            )
        bat_specs = [cast(BatterySpec, specs[p]) for p in bats]
        houses = [b for b, s in enumerate(bat_specs) if s.household is not None]
        _check_households(bat_specs, houses)
        for b in houses:
            rows.append(
                TerminalRow(
                    node_index[bat_specs[b].node], bats[b], 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
                )
            )
        n_conv, n_bat, n_house = len(convs), len(bats), len(houses)
        base = n_slewed + n_bat
        self.net = net = Network(
            capacitance=np.array([n.capacitance_f for n in self.node_specs]),
            bleed_conductance=np.array(
                [0.0 if n.bleed_ohm is None else 1.0 / n.bleed_ohm for n in self.node_specs]
            ),
            voltage=np.array([n.voltage_v or 0.0 for n in self.node_specs]),
            rows=rows,
            n_slewed=n_slewed,
        )
        self.ctx = ctx = PlantContext(
            net,
            [n.name for n in self.node_specs],
            len(specs),
            n_conv,
            n_bat,
            np.random.default_rng(seed),
            n_households=n_house,
            start_of_day_s=start_of_day_s,
        )
        house_of = {b: h for h, b in enumerate(houses)}
        self.handles: list[PortHandle] = []
        for p, spec in enumerate(specs):
            t = terminal_of[p]
            handle: PortHandle
            if isinstance(spec, ConverterSpec):
                k = convs.index(p)
                handle = ConverterHandle(ctx, spec, p, t, base + k, k)
            elif isinstance(spec, BatterySpec):
                b = t - n_slewed
                house = house_of.get(b)
                household = None if house is None else (house, base + n_conv + house)
                handle = BatteryHandle(ctx, spec, p, t, b, household)
            else:
                handle = HANDLE_TYPES[type(spec)](ctx, spec, p, t)
            self.handles.append(handle)
        self.by_terminal = [self.handles[p] for p in net.port]
        self.convs, self.bats, self.houses = convs, bats, houses
        self.conv_specs = [s for s in specs if isinstance(s, ConverterSpec)]
        self.bat_specs = bat_specs
        self.house_specs: list[HouseholdSpec] = [
            s.household for s in bat_specs if s.household is not None
        ]
        self.n_slewed = n_slewed
        self.cb = slice(0, n_conv)
        self.bt = slice(n_slewed, n_slewed + n_bat)
        self.cpt = slice(base, base + n_conv)
        self.house_start = base + n_conv

    def _validate(self) -> None:
        names: set[str] = set()
        for n in self.node_specs:
            if not isinstance(n, NodeSpec):
                raise ConfigError(f"nodes must be NodeSpec objects, got {type(n).__name__}")
            if n.name in names:
                raise ConfigError(f"node {n.name!r} is defined twice")
            names.add(n.name)
        if not names:
            raise ConfigError("a plant needs at least one node")
        seen: set[str] = set()
        for s in self.port_specs:
            if not isinstance(s, PortSpec) or type(s) is PortSpec:
                raise ConfigError(f"ports must be concrete port specs, got {type(s).__name__}")
            if s.name in seen:
                raise ConfigError(f"port {s.name!r} is defined twice")
            seen.add(s.name)
            if s.node not in names:
                raise ConfigError(f"{s.where}: node {s.node!r} does not exist")
            if isinstance(s, ConverterSpec) and s.battery_node not in names:
                raise ConfigError(f"{s.where}: battery_node {s.battery_node!r} does not exist")


def _row(spec: PortSpec, port: int, node: int) -> TerminalRow:
    """A port's terminal row before its handle applies its settings (batteries never slew)."""
    fixed = isinstance(spec, BatterySpec)
    return TerminalRow(
        node=node,
        port=port,
        conductance=0.0,
        line_ohm=spec.line_ohm,
        emf=0.0,
        lo=0.0,
        hi=0.0,
        slew_v=math.inf if fixed else spec.slew_v_per_s,
        slew_a=math.inf if fixed else spec.slew_a_per_s,
    )


def _check_households(bat_specs: list[BatterySpec], houses: list[int]) -> None:
    """At most one household per node (each one's limit is solved on its own node)."""
    seen: dict[str, str] = {}
    for b in houses:
        spec = bat_specs[b]
        other = seen.setdefault(spec.node, spec.name)
        if other != spec.name:
            raise ConfigError(
                f"{spec.where}: node {spec.node!r} already has a household (on battery "
                f"{other!r}); allowed: one household per node"
            )
