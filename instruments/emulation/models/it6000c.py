"""ITECH IT6000C regenerative supply, emulated: SCPI on a serial line, a plant bidirectional.

The supply is a :class:`~instruments.emulation.plant.BidirectionalSpec` port on the bus:
CV priority holds ``VOLT`` between ``+CURR:LIM`` and ``CURR:LIM:NEG``; CC priority pushes the
signed ``CURR`` (negative sinks) and stops sourcing at ``VOLT:LIM`` and sinking at
``VOLT:LIM:NEG``. The output switch lives in the plant, so ``OUTP?`` reads the plant.

Sources. ITECH's *IT6000C Programming Guide* is not in the search index; what is here comes
from the project reference and a third-party driver validated on a physical IT6054C-800-225
over its USB virtual COM port (dated live-test record and a fake transport built from it):

- Observed on hardware: ``VOLT:LIM`` is writable only in CC priority and ``CURR:LIM`` only
  in CV priority; changing priority copies the active values into the related limits; and
  ``CURR?`` mirrors ``CURR:LIM?`` in CV, ``VOLT?`` mirrors ``VOLT:LIM?`` in CC. Modelled as
  two shared registers (``VOLT`` is ``VOLT:LIM``, ``CURR`` is ``CURR:LIM``) whose meaning
  follows the priority, which explains all three observations at once. Switching from CC
  with a negative current to CV copies it into ``CURR:LIM:NEG`` (as the third-party model
  does) and leaves ``CURR:LIM`` at 0 (*assumed*).
- ``*IDN?`` shape ``ITECH Electronics,<model>,<serial>,000.006.101,640.R,132.R`` (firmware
  with commas), 115200 8N1, ``\\n``; the driver brackets every change with ``SYST:REM`` and
  ``SYST:LOC``. The IT6000C has a communication watchdog, ``OUTP:PROT:WDOG[:STAT]`` and
  ``OUTP:PROT:WDOG:DEL`` (seen OFF, 30 s; accepted 1-6000 s): modelled on plant time, any
  received byte restarts it; on expiry the output goes off and stays latched until
  ``OUTP:PROT:CLE`` (Keysight's watchdog semantics, *assumed* the same here).
- Protections ``VOLT|CURR|POW:PROT[:LEV]``, ``:STAT``, ``:DEL`` (delays 0-60 s); slews
  ``VOLT|CURR:SLEW:POS|NEG`` (0.001-2000); ``CURR:LIM:NEG`` and ``POW:LIM:NEG`` are negative.

Decided from that evidence (*assumed*): at power-on the supply is in local, and a setting
sent in local is refused with SCPI's -201 "Invalid while in local" (queries and IEEE 488.2
commands still work), as ITECH's serial-controlled supplies refuse commands before
``SYST:REM``; a setting that the
priority does not allow is -221; a protection latched (plant trip or watchdog) refuses
``OUTP ON`` with -221 until ``OUTP:PROT:CLE``, which leaves the output off. ``FUNC?`` and
``FUNC:MODE?`` answer the SCPI short form (``VOLT``, ``FIX``); only ``FUNC:MODE FIX`` is
emulated (LIST/BATT/SOL/CARP are -221). Status bits (layout not found, Keysight-style):
questionable OV 1, OC 2, OT 16, watchdog 2048; operation CV 256, CC 1024. The plant has no
power limit, power trip or trip delay, so ``POW:LIM``, ``POW:PROT`` and ``*:PROT:DEL`` are
stored only; slews are stored only (the port slews full scale in 0.1 s).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from instruments.emulation.models.base import ModelContext, Wire
from instruments.emulation.models.scpi_model import IDENTITY, ScpiModel, meter
from instruments.emulation.plant import (
    BidirectionalHandle,
    BidirectionalMode,
    BidirectionalSpec,
    TripKind,
)
from instruments.emulation.plant_specs import AnyPortSpec
from instruments.emulation.scpi import (
    PLAIN_ERRORS,
    Boolean,
    BoundQuery,
    Choice,
    Command,
    Number,
    ScpiError,
    command,
    query,
    setting,
    status_commands,
)
from instruments.emulation.scpi_session import ScpiSession
from instruments.emulation.transport import SessionFactory

log = logging.getLogger(__name__)

INVALID_WHILE_IN_LOCAL = -201
CV = "VOLT"
CC = "CURR"
FIXED = "FIX"
PROTECTION_HEADROOM = 1.1
FULL_SCALE_S = 0.1
WATCHDOG_DELAY_S = (1.0, 6000.0, 30.0)
PROTECTION_DELAY_S = (0.0, 60.0)
SLEW_RANGE = (0.001, 2000.0, 0.1)

OPER_CV = 256
OPER_CC = 1024
QUES_OV = 1
QUES_OC = 2
QUES_OT = 16
QUES_WDOG = 2048
_TRIP_BITS = {TripKind.OVP: QUES_OV, TripKind.OCP: QUES_OC, TripKind.OTP: QUES_OT}

Guard = Callable[[Any, Any], None]


def _remote(dev: IT6000CModel, value: object = None) -> None:
    dev.require_remote()


def _in_priority(priority: str, what: str) -> Guard:
    def guard(dev: IT6000CModel, value: object) -> None:
        dev.require_remote()
        if dev.priority != priority:
            name = "CV (FUNC VOLT)" if priority == CV else "CC (FUNC CURR)"
            dev.refuse(f"{what} is writable only in {name} priority")

    return guard


def _fixed_only(dev: IT6000CModel, value: object) -> None:
    dev.require_remote()
    if value != FIXED:
        dev.refuse(f"FUNC:MODE {value} is not emulated; only FIXed")


def _remote_action(func: Callable[[IT6000CModel], None]) -> Callable[[IT6000CModel], None]:
    def action(dev: IT6000CModel) -> None:
        dev.require_remote()
        func(dev)

    return action


def _volts(dev: IT6000CModel) -> float:
    return dev.rated_voltage


def _curr_min(dev: IT6000CModel) -> float:
    """``CURR`` is the signed set-point in CC; in CV it is ``CURR:LIM``, never negative."""
    return -dev.rated_sink if dev.priority == CC else 0.0


def _source_max(dev: IT6000CModel) -> float:
    return dev.rated_source


def _sink_min(dev: IT6000CModel) -> float:
    return -dev.rated_sink


def _watts(dev: IT6000CModel) -> float:
    return dev.rated_power


def _neg_watts(dev: IT6000CModel) -> float:
    return -dev.rated_power


def _prot_volts(dev: IT6000CModel) -> float:
    return PROTECTION_HEADROOM * dev.rated_voltage


def _prot_amps(dev: IT6000CModel) -> float:
    return PROTECTION_HEADROOM * max(dev.rated_source, dev.rated_sink)


def _prot_watts(dev: IT6000CModel) -> float:
    return PROTECTION_HEADROOM * dev.rated_power


_CURR_PARAM = Number("A", min=_curr_min, max=_source_max)


def _set_current(dev: IT6000CModel, amps: float) -> None:
    dev.require_remote()
    dev.i_reg = amps
    dev.push()


def _get_current(dev: IT6000CModel, which: str | None = None) -> float:
    return dev.i_reg if which is None else _CURR_PARAM.bound(which, dev)


def _set_priority(dev: IT6000CModel, priority: str) -> None:
    """``FUNC``: the shared registers change meaning; a sinking current moves to the NEG limit."""
    dev.require_remote()
    if priority == CV and dev.priority == CC and dev.i_reg < 0:
        dev.ilim_neg = dev.i_reg
        dev.i_reg = 0.0
    dev.priority = priority
    dev.push()


def _set_output(dev: IT6000CModel, on: bool) -> None:
    dev.require_remote()
    if on and dev.latched():
        dev.refuse("a protection is latched; send OUTP:PROT:CLE first")
    dev.port.set_output(on)


def _clear_protection(dev: IT6000CModel) -> None:
    dev.port.clear_trips()
    dev.watchdog_tripped = False


def _set_remote(on: bool) -> Callable[[IT6000CModel], None]:
    def action(dev: IT6000CModel) -> None:
        dev.remote = on

    return action


def _push(dev: IT6000CModel) -> None:
    dev.push()


def _push_protection(dev: IT6000CModel) -> None:
    dev.push_protection()


def _stored(pattern: str, attr: str, param: Number | Boolean, guard: Guard = _remote) -> Command:
    """A setting the plant does not act on (slews, delays, power limits): stored, in remote."""
    return setting(pattern, attr, param, guard=guard)


def _protection(
    kind: str, short: str, level_max: Callable[[IT6000CModel], float], unit: str
) -> list[Command]:
    """``<kind>:PROT[:LEV]``, ``:STAT`` (both acted on by the plant) and ``:DEL`` (stored)."""
    base = f"[SOURce:]{kind}:PROTection"
    low, high = PROTECTION_DELAY_S
    return [
        setting(
            f"{base}[:LEVel]",
            f"{short}_prot",
            Number(unit, min=0.0, max=level_max),
            guard=_remote,
            after=_push_protection,
        ),
        setting(
            f"{base}:STATe",
            f"{short}_prot_on",
            Boolean(default=False),
            guard=_remote,
            after=_push_protection,
        ),
        _stored(f"{base}:DELay", f"{short}_prot_delay", Number("S", min=low, max=high, default=0)),
    ]


def _slews() -> list[Command]:
    low, high, default = SLEW_RANGE
    found = []
    for kind in ("VOLTage", "CURRent"):
        for sign, node in (("pos", "[:POSitive]"), ("neg", ":NEGative")):
            found.append(
                _stored(
                    f"[SOURce:]{kind}:SLEW{node}",
                    f"{kind[:4].lower()}_slew_{sign}",
                    Number(min=low, max=high, default=default),
                )
            )
    return found


class IT6000CModel(ScpiModel):
    """ITECH IT6000C: bidirectional supply with priority modes and a communication watchdog."""

    driver: ClassVar[str] = "it6000c"
    wire: ClassVar[Wire] = Wire.SCPI_SERIAL
    vendor: ClassVar[str] = "ITECH Electronics"
    firmware: ClassVar[str] = "000.006.101,640.R,132.R"
    error_format = PLAIN_ERRORS
    error_messages: ClassVar[Mapping[int, str]] = {INVALID_WHILE_IN_LOCAL: "Invalid while in local"}

    priority: str
    function_mode: str
    v_reg: float
    i_reg: float
    vlim_neg: float
    ilim_neg: float
    pow_lim: float
    pow_lim_neg: float
    volt_prot: float
    volt_prot_on: bool
    curr_prot: float
    curr_prot_on: bool
    pow_prot: float
    pow_prot_on: bool
    watchdog_on: bool
    watchdog_delay: float

    commands = (
        IDENTITY,
        command("SYSTem:REMote", _set_remote(True)),
        command("SYSTem:RWLock", _set_remote(True)),
        command("SYSTem:LOCal", _set_remote(False)),
        Command(
            "[SOURce:]FUNCtion",
            set=_set_priority,
            query=lambda dev: dev.priority,
            params=(Choice("VOLTage", "CURRent"),),
            on_reset=lambda dev: setattr(dev, "priority", CV),
        ),
        setting(
            "[SOURce:]FUNCtion:MODE",
            "function_mode",
            Choice("FIXed", "LIST", "BATTery", "SOLar", "CARProfile", default="FIXed"),
            guard=_fixed_only,
        ),
        setting(
            "[SOURce:]VOLTage[:LEVel][:IMMediate][:AMPLitude]",
            "v_reg",
            Number("V", min=0.0, max=_volts, default=0.0),
            guard=_remote,
            after=_push,
        ),
        Command(
            "[SOURce:]CURRent[:LEVel][:IMMediate][:AMPLitude]",
            set=_set_current,
            query=_get_current,
            params=(_CURR_PARAM,),
            query_params=(BoundQuery(),),
            unit="A",
            on_reset=lambda dev: setattr(dev, "i_reg", 0.0),
        ),
        setting(
            "[SOURce:]VOLTage[:LEVel]:LIMit[:POSitive]",
            "v_reg",
            Number("V", min=0.0, max=_volts),
            guard=_in_priority(CC, "VOLT:LIM"),
            after=_push,
        ),
        setting(
            "[SOURce:]VOLTage[:LEVel]:LIMit:NEGative",
            "vlim_neg",
            Number("V", min=0.0, max=_volts, default=0.0),
            guard=_in_priority(CC, "VOLT:LIM:NEG"),
            after=_push,
        ),
        setting(
            "[SOURce:]CURRent[:LEVel]:LIMit[:POSitive]",
            "i_reg",
            Number("A", min=0.0, max=_source_max),
            guard=_in_priority(CV, "CURR:LIM"),
            after=_push,
        ),
        setting(
            "[SOURce:]CURRent[:LEVel]:LIMit:NEGative",
            "ilim_neg",
            Number("A", min=_sink_min, max=0.0, default=0.0),
            guard=_in_priority(CV, "CURR:LIM:NEG"),
            after=_push,
        ),
        _stored("[SOURce:]POWer[:LEVel]:LIMit[:POSitive]", "pow_lim", Number("W", 0.0, _watts)),
        _stored(
            "[SOURce:]POWer[:LEVel]:LIMit:NEGative", "pow_lim_neg", Number("W", _neg_watts, 0.0)
        ),
        *_slews(),
        *_protection("VOLTage", "volt", _prot_volts, "V"),
        *_protection("CURRent", "curr", _prot_amps, "A"),
        *_protection("POWer", "pow", _prot_watts, "W"),
        Command(
            "OUTPut[:STATe]",
            set=_set_output,
            query=lambda dev: dev.port.output_on,
            params=(Boolean(),),
        ),
        command("OUTPut:PROTection:CLEar", _remote_action(_clear_protection)),
        setting(
            "OUTPut:PROTection:WDOG[:STATe]",
            "watchdog_on",
            Boolean(default=False),
            guard=_remote,
        ),
        _stored(
            "OUTPut:PROTection:WDOG:DELay",
            "watchdog_delay",
            Number("S", min=WATCHDOG_DELAY_S[0], max=WATCHDOG_DELAY_S[1], default=30.0),
        ),
        query("MEASure[:SCALar]:VOLTage[:DC]?", meter("voltage"), unit="V"),
        query("MEASure[:SCALar]:CURRent[:DC]?", meter("current"), unit="A"),
        query("MEASure[:SCALar]:POWer[:DC]?", lambda dev: dev.measured_power(), unit="W"),
        *status_commands(),
    )

    @classmethod
    def port_specs(cls, ctx: ModelContext) -> list[AnyPortSpec]:
        rating = ctx.instrument.rating
        amps = max(rating.current_source_max, rating.current_sink_max)
        return [
            BidirectionalSpec(
                name=ctx.key,
                node=ctx.node,
                max_voltage_v=rating.voltage_max,
                max_source_a=rating.current_source_max,
                max_sink_a=rating.current_sink_max,
                slew_v_per_s=rating.voltage_max / FULL_SCALE_S,
                slew_a_per_s=amps / FULL_SCALE_S,
                line_ohm=ctx.line_ohm,
                sensors=ctx.sensors(),
            )
        ]

    def bind(self) -> None:
        rating = self.ctx.instrument.rating
        self.port: BidirectionalHandle = self.plant.bidirectional(self.key)
        self.rated_voltage = rating.voltage_max
        self.rated_source = rating.current_source_max
        self.rated_sink = rating.current_sink_max
        self.rated_power = rating.power_max
        self.remote = False
        self.watchdog_tripped = False
        self.last_io = self.plant.time

    def apply_defaults(self) -> None:
        """``*RST`` values that depend on the rating: power limits and protection levels."""
        super().apply_defaults()
        self.pow_lim = self.rated_power
        self.pow_lim_neg = -self.rated_power
        self.volt_prot = _prot_volts(self)
        self.curr_prot = _prot_amps(self)
        self.pow_prot = _prot_watts(self)

    def push(self) -> None:
        """The priority and the shared registers onto the plant port."""
        port = self.port
        if self.priority == CV:
            port.set_mode(BidirectionalMode.CV)
            port.set_voltage(self.v_reg)
            port.set_current_limits(self.i_reg, -self.ilim_neg)
        else:
            port.set_mode(BidirectionalMode.CC)
            port.set_current(self.i_reg)
            port.set_voltage_limits(self.vlim_neg, self.v_reg)
        self.push_protection()

    def push_protection(self) -> None:
        self.port.set_protection(TripKind.OVP, self.volt_prot if self.volt_prot_on else None)
        self.port.set_protection(TripKind.OCP, self.curr_prot if self.curr_prot_on else None)

    def reset(self) -> None:
        self.port.set_output(False)
        super().reset()

    def require_remote(self) -> None:
        """Settings need remote control (``SYST:REM``); -201 "Invalid while in local"."""
        if not self.remote:
            raise ScpiError(INVALID_WHILE_IN_LOCAL, "send SYST:REM first")

    def latched(self) -> bool:
        """A protection (plant trip or watchdog) holds the output off."""
        return bool(self.port.trips) or self.watchdog_tripped

    def measured_power(self) -> float:
        reading = self.measure()
        return reading.voltage * reading.current

    # -- communication watchdog --------------------------------------------------------
    def next_deadline(self) -> float | None:
        if not self.watchdog_on or self.watchdog_tripped:
            return None
        return self.last_io + self.watchdog_delay

    def on_time(self, now: float) -> None:
        deadline = self.next_deadline()
        if deadline is not None and now >= deadline:
            log.warning(
                "%s: communication watchdog expired (%g s without I/O); output off",
                self.key,
                self.watchdog_delay,
            )
            self.watchdog_tripped = True
            self.port.set_output(False)

    def note_activity(self) -> None:
        """Bytes arrived: an expiry already due still fires, then the timer restarts."""
        now = self.plant.time
        self.on_time(now)
        self.last_io = now

    def session_factory(self) -> SessionFactory:
        return lambda: _WatchedSession(ScpiSession(self), self)

    # -- status ------------------------------------------------------------------------
    def operation_condition(self) -> int:
        mode = self.port.state().mode
        return {"CV": OPER_CV, "CC": OPER_CC}.get(mode, 0)

    def questionable_condition(self) -> int:
        bits = QUES_WDOG if self.watchdog_tripped else 0
        for kind in self.port.trips:
            bits |= _TRIP_BITS.get(kind, 0)
        return bits

    def status(self) -> dict[str, Any]:
        return {
            **super().status(),
            "remote": self.remote,
            "priority": self.priority,
            "watchdog": {
                "on": self.watchdog_on,
                "delay_s": self.watchdog_delay,
                "tripped": self.watchdog_tripped,
            },
        }


class _WatchedSession:
    """A SCPI session that tells the model about every received byte (its watchdog)."""

    def __init__(self, inner: ScpiSession, model: IT6000CModel) -> None:
        self._inner = inner
        self._model = model

    def feed(self, data: bytes) -> list[bytes]:
        if data:
            self._model.note_activity()
        return self._inner.feed(data)
