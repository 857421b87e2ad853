"""Watching a running emulator on the live page (``hil live --emulator HOST:PORT``).

:class:`EmulatorWatch` reads the emulator's control channel ``status`` (only: it never
advances time, arms the watchdog or injects anything, so it does not disturb the run that
owns the emulator) and turns the plant's true state into the page's unit values. The
plant's sign convention is the toolkit's (``docs/plant.md``: a port current is positive
when the port sources into its node), so a unit's current is the sum of its bus ports'.
A change of ``all_safe``, ``safe_reason`` or of the faults in force becomes a log line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from hil.live.events import EventHub


class StatusSource(Protocol):
    """Anything with the control channel's ``status()`` (``ControlClient``)."""

    def status(self) -> dict[str, Any]: ...


def unit_values(status: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each unit's values from one ``status``: its bus ports' summed current, the bus
    voltage at them, their mode, the SoC of its battery port, latched trips."""
    units: dict[str, dict[str, Any]] = {}
    t = status.get("time")
    for port in status.get("ports", []):
        uid = str(port.get("unit"))
        unit = units.setdefault(
            uid,
            {
                "t": t,
                "mode": None,
                "current": 0.0,
                "voltage": None,
                "setpoint": None,
                "soc": None,
                "flags": [],
            },
        )
        if port.get("soc") is not None:
            unit["soc"] = port["soc"]
        unit["flags"] = sorted({*unit["flags"], *map(str, port.get("trips") or [])})
        if port.get("node") != "bus":
            continue
        unit["current"] += float(port.get("current") or 0.0)
        unit["voltage"] = port.get("voltage")
        mode = str(port.get("mode") or "")
        unit["mode"] = mode if unit["mode"] in (None, "", "off", "WAIT") else unit["mode"]
        if not port.get("output_on", True) and unit["mode"] in (None, ""):
            unit["mode"] = "off"
    return units


def bench_from_status(status: Mapping[str, Any]) -> dict[str, Any]:
    """The page's ``bench`` event when no bench file is given: units and their kinds."""
    kinds: dict[str, str] = {}
    for port in status.get("ports", []):
        if port.get("node") == "bus":
            kinds.setdefault(str(port.get("unit")), str(port.get("kind")))
    return {
        "type": "bench",
        "name": "emulator",
        "emulated": True,
        "units": [
            {"id": uid, "kind": kind, "branch": None, "envelope": {}} for uid, kind in kinds.items()
        ],
        "bus": {},
    }


class EmulatorWatch:
    """Polls ``status`` and feeds the hub; :meth:`poll` once per period."""

    def __init__(self, source: StatusSource, hub: EventHub) -> None:
        self.source = source
        self.hub = hub
        self._safe: tuple[object, object] | None = None
        self._faults: dict[str, Any] = {}
        self.polls = 0

    def poll(self) -> dict[str, Any]:
        """Read ``status`` once; publish the units' values and what changed."""
        status = self.source.status()
        if self.polls == 0 and self.hub.state().data["bench"] is None:
            self.hub.publish(bench_from_status(status))
        self.polls += 1
        t = float(status.get("time") or 0.0)
        self.hub.unit_values(t, unit_values(status))
        safe = (status.get("all_safe"), status.get("safe_reason"))
        if safe != self._safe:
            message = "every output safe" if safe[0] else "outputs on"
            if safe[1]:
                message += f" (made safe: {safe[1]})"
            self.hub.publish({"type": "note", "t": t, "message": f"emulator: {message}"})
            self._safe = safe
        faults = {
            key: inst.get("faults")
            for key, inst in (status.get("instruments") or {}).items()
            if inst.get("faults")
        }
        if faults != self._faults:
            shown = ", ".join(f"{k}: {v}" for k, v in faults.items()) or "none"
            self.hub.publish(
                {
                    "type": "safety_event",
                    "t": t,
                    "level": "warn",
                    "check": "faults",
                    "message": f"emulator faults in force: {shown}",
                }
            )
            self._faults = faults
        return status
