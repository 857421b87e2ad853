"""Every fault the emulator can inject, its fields and its effect — one table, checked.

The control channel's ``fault`` request (``docs/emulator-control.md``, "Faults") is checked
against :data:`FAULTS` before anything changes: a kind the instrument does not take, or a
field the kind does not read, is refused with the full list of what is accepted, so a typo
(``"ofset"``, ``"valeu"``) is never silently ignored. The effects are the emulator's own
(``instruments.emulation.transport.Faults`` for the communication faults, the instrument
models for the others); they model what the manuals describe for a real instrument only
where a kind says so, and are otherwise assumed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FaultKind:
    """One fault kind: the fields it reads, and what it does."""

    name: str
    fields: tuple[str, ...]
    effect: str
    #: Which instruments take it: ``all``, or the model family's extra kind.
    applies_to: str = "all"


FAULTS: tuple[FaultKind, ...] = (
    FaultKind(
        "disconnect",
        ("seconds",),
        "the instrument's connections close and it accepts none for `seconds` (wall time)",
    ),
    FaultKind("delay", ("seconds",), "every reply is held back `seconds` (wall time) until clear"),
    FaultKind("garbage", ("count",), "the next `count` replies (default 1) are corrupted"),
    FaultKind("drop", ("count",), "the next `count` replies (default 1) are never sent"),
    FaultKind(
        "stale",
        ("on",),
        "the meter keeps showing its last reading (`on`, default true) while the plant moves on",
    ),
    FaultKind(
        "offset",
        ("quantity", "value"),
        "the instrument's `quantity` (`current` default, `voltage`, `temperature`) reads "
        "`value` off the truth (a sensor offset); the plant is unchanged",
    ),
    FaultKind(
        "trip",
        ("trip", "what"),
        "the port's protection trips and latches (`trip` or `what`: `OVP` default, `OCP`, "
        "`OTP` …): output off until the trips are cleared",
    ),
    FaultKind(
        "alarm",
        ("level", "alm1", "alm2", "alm3"),
        "the converter raises an alarm (`level` `heavy` default: stops, or `light`); `alm1`-"
        "`alm3` give the alarm words (16-bit), else a documented default set",
        "eza2500",
    ),
    FaultKind(
        "permission",
        ("value",),
        "the BMS withdraws interchange permission (status register bit 0) until clear; "
        "`value` may only be 0 or `none`",
        "apis_bms",
    ),
)
#: The communication faults every instrument takes (served by its transport).
COMMUNICATION = ("disconnect", "delay", "garbage", "drop")
#: The model faults every instrument model takes.
MODEL = ("stale", "offset", "trip")
BY_NAME: dict[str, FaultKind] = {kind.name: kind for kind in FAULTS}


def kinds_for(extra: Iterable[str]) -> list[str]:
    """The kinds an instrument takes: the common ones and its model's ``extra``."""
    return [*COMMUNICATION, *MODEL, *extra]


def fault_problem(
    instrument: str, kind: str, params: Mapping[str, Any], extra: Iterable[str]
) -> str | None:
    """Why ``kind`` with ``params`` cannot be injected into ``instrument`` (None: it can)."""
    known = kinds_for(extra)
    if kind not in known:
        return (
            f"{instrument}: unknown fault kind {kind!r}; this instrument takes: {', '.join(known)}"
        )
    fields = BY_NAME[kind].fields
    unknown = sorted(set(params) - set(fields))
    if unknown:
        return (
            f"{instrument}: fault {kind!r} has no field {', '.join(map(repr, unknown))}; "
            f"its fields: {', '.join(fields)}"
        )
    return None
