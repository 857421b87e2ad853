"""The exchange engine's unit commands: set-points, voltage holds and APIS checkpoints.

:class:`UnitCommands` is the only part of the engine that commands a unit during the
sequence. Every reading it takes is inspected by the supervisor against what the bus
state expects, every command updates that state, and every wait goes through the
engine's ticker, so the supervisor keeps running while a step waits
(``docs/exchanges.md``, "The sequence, step by step").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from hil.controller import Mode, Reading
from hil.errors import CapabilityError, ExchangeError, SafetyTrip
from hil.exchange.bus import ZERO_A, EngineContext, log


class UnitCommands:
    """Reads, set-points, holds and checkpoints of one engine's units.

    ``wait(seconds)`` is the engine's only way to let time pass (it ticks the supervisor)."""

    def __init__(
        self,
        ctx: EngineContext,
        wait: Callable[[float], None],
        on_read: Callable[[Reading, str], None] | None = None,
    ) -> None:
        self.ctx = ctx
        self.wait = wait
        #: Told every reading a step takes (the series sampler: the plot shows every step).
        self.on_read = on_read

    def read(self, uid: str) -> Reading:
        """Read ``uid``; a reading the supervisor finds an error in is a ``SafetyTrip``."""
        reading = self.ctx.units[uid].read()
        if self.on_read is not None:
            self.on_read(reading, uid)
        report = self.ctx.supervisor.inspect(reading, self.ctx.bus.expectation(uid))
        if report.errors:
            raise SafetyTrip(f"at t = {reading.t:.6g} s: {report.describe_errors()}")
        return reading

    def set(self, uid: str, amps: float) -> None:
        """Command a constant-current set-point (0 A: idle)."""
        cc = self.ctx.bus.cc
        if abs(amps) <= ZERO_A:
            self.ctx.units[uid].idle()
            cc.pop(uid, None)
        else:
            self.ctx.units[uid].set_current(amps)
            cc[uid] = amps

    def checkpoint(self, uid: str, amps: float, first_wait: float) -> Reading:
        """APIS checkpoint: wait, read back, |I - set-point| ≤ current_allowance (and idle
        at 0 A), up to ``checkpoint_retries`` tries; ``ExchangeError`` otherwise."""
        policy = self.ctx.policy
        idle = abs(amps) <= ZERO_A
        reading: Reading | None = None
        tries = max(1, policy.checkpoint_retries)
        for attempt in range(tries):
            self.wait(first_wait if attempt == 0 else policy.checkpoint_wait)
            reading = self.read(uid)
            mode_ok = reading.mode is (Mode.IDLE if idle else Mode.CURRENT)
            if mode_ok and abs(reading.bus_current - amps) <= policy.current_allowance:
                return reading
        assert reading is not None
        raise ExchangeError(
            f"checkpoint failed: unit {uid} reads {reading.bus_current:+.4g} A in mode "
            f"{reading.mode.value} after {tries} tries; set to {amps:+.4g} A "
            f"({'idle' if idle else 'current'}) ± {policy.current_allowance:g} A"
        )

    def checkpoint_voltage(self, uid: str, volts: float) -> Reading:
        """APIS checkpoint of a voltage reference: |V - dvg| ≤ voltage_allowance."""
        policy = self.ctx.policy
        reading: Reading | None = None
        tries = max(1, policy.checkpoint_retries)
        for _ in range(tries):
            self.wait(policy.checkpoint_wait)
            reading = self.read(uid)
            if abs(reading.bus_voltage - volts) <= policy.voltage_allowance:
                return reading
        assert reading is not None
        raise ExchangeError(
            f"checkpoint failed: unit {uid} holds the bus at {reading.bus_voltage:.5g} V after "
            f"{tries} tries; set to {volts:.5g} V ± {policy.voltage_allowance:g} V"
        )

    def ramp(self, targets: Mapping[str, float]) -> list[dict[str, Any]]:
        """Move each unit's set-point to its target in ``current_step`` steps, with a
        checkpoint after every step (no faster than ``slew_max``).

        Steps are interleaved so that the voltage reference, which carries what the
        current-controlled units leave (the negative of their set-points' sum), carries as
        little as possible after each one: a deal joining a running bus first moves the side
        that relieves the reference (APIS: the new deal's reference-side unit goes first), so
        the reference never has to pass its ``gridCurrentCapacityA``. Ties keep the order of
        ``targets``. A unit whose target is 0 A goes idle at once (APIS: WAIT), as switching
        a current off is always allowed, even where the envelope forbids a smaller current
        (SoC)."""
        policy, cc, settling = self.ctx.policy, self.ctx.bus.cc, self.ctx.bus.settling
        pending = {uid: t for uid, t in targets.items() if abs(t - cc.get(uid, 0.0)) > ZERO_A}
        order = {uid: k for k, uid in enumerate(targets)}
        trace: list[dict[str, Any]] = []

        def next_setpoint(uid: str) -> float:
            target, now_sp = pending[uid], cc.get(uid, 0.0)
            delta = target - now_sp
            direct = abs(delta) <= policy.current_step + ZERO_A or abs(target) <= ZERO_A
            return target if direct else now_sp + math.copysign(policy.current_step, delta)

        while pending:
            total = sum(cc.values())
            uid = min(
                pending,
                key=lambda u: (abs(total - cc.get(u, 0.0) + next_setpoint(u)), order[u]),
            )
            now_sp, nxt = cc.get(uid, 0.0), next_setpoint(uid)
            slew = self.ctx.units[uid].envelope.slew_max
            dwell = max(policy.checkpoint_wait, abs(nxt - now_sp) / slew)
            settling.add(uid)
            self.set(uid, nxt)
            reading = self.checkpoint(uid, nxt, dwell)
            settling.discard(uid)
            trace.append(
                {
                    "unit": uid,
                    "setpoint": nxt,
                    "read_current": reading.bus_current,
                    "read_voltage": reading.bus_voltage,
                    "t": reading.t,
                }
            )
            if abs(pending[uid] - nxt) <= ZERO_A:
                pending.pop(uid)
        return trace

    def cc_limit(self, uid: str, sign: float) -> float:
        """The largest set-point magnitude ``uid`` may take in direction ``sign``: its
        envelope (current, power at the top of its window) and ``gridCurrentCapacityA``."""
        env = self.ctx.units[uid].envelope
        amps = env.current_source_max if sign > 0 else env.current_sink_max
        return min(amps, self.ctx.policy.unit_current_capacity, env.power_max / env.voltage_max)

    def reference_limit(self, uid: str, volts: float) -> float:
        """The reference's current limit: APIS ``gridCurrentCapacityA`` within its envelope."""
        unit = self.ctx.units[uid]
        env, caps = unit.envelope, unit.capabilities
        limit = self.ctx.policy.unit_current_capacity
        if caps.can_source and env.can_source:
            limit = min(limit, env.current_source_max)
        if caps.can_sink and env.can_sink:
            limit = min(limit, env.current_sink_max)
        return min(limit, env.power_max / volts)

    def hold(self, uid: str, volts: float, limit: float, droop: float = 0.0) -> float:
        """``hold_voltage``; a unit without droop gets none. Returns the droop used."""
        unit = self.ctx.units[uid]
        if droop:
            try:
                unit.hold_voltage(volts, limit, droop)
                return droop
            except CapabilityError as exc:
                log.info("unit %s: no droop (%s); holding without", uid, exc)
        unit.hold_voltage(volts, limit)
        return 0.0
