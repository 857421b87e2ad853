"""``hil scenario check FILE``: validate an APIS ``scenario.json`` and show what it says.

Prints every time slot with its strategy and status bands (Wh range, status, the request
and the accepts of that status), then the gaps: parts of the day no slot covers (units do
not negotiate then) and Wh ranges a slot gives no status (units there neither request nor
accept). A bad scenario prints one line — file, key path, problem, rule — and exits 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from hil.config.scenario import DIRECTIONS, Scenario, TimeSlot, format_time_of_day, load_scenario
from hil.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="scenario_command", metavar="ACTION")
    check = sub.add_parser(
        "check", help="validate a scenario file and print its time slots and status bands"
    )
    check.add_argument("file", metavar="FILE", help="an APIS scenario.json (// comments allowed)")


def _wh(value: int | None) -> str:
    return "" if value is None else str(value)


def _slot_lines(slot: TimeSlot) -> list[str]:
    lines = [f"{slot.key}  strategy {slot.strategy}"]
    width = max(len(band.status) for band in slot.bands)
    for band in reversed(slot.bands):
        request = slot.request_condition(band.status)
        accepts = [
            c.describe()
            for d in DIRECTIONS
            if (c := slot.accept_condition(band.status, d)) is not None
        ]
        lines.append(
            f"  {band.describe():>14}  {band.status:<{width}}  "
            f"request: {request.describe() if request else 'none'}; "
            f"accept: {', '.join(accepts) or 'none'}"
        )
    for low, high in slot.band_gaps():
        lines.append(
            f"  {_wh(low) + '-' + _wh(high) + ' Wh':>14}  (no status: a unit here neither "
            "requests nor accepts)"
        )
    return lines


def describe(scenario: Scenario) -> list[str]:
    """The report ``hil scenario check`` prints for a valid scenario."""
    n = len(scenario.slots)
    lines = [
        f"{scenario.source}: valid; {n} time slot{'s' if n != 1 else ''}, default strategy "
        f"{scenario.strategy}, refreshed every {scenario.refreshing_period_s:g} s"
    ]
    for slot in scenario.slots:
        lines.extend(_slot_lines(slot))
    gaps = scenario.gaps()
    for start, end in gaps:
        lines.append(
            f"gap {format_time_of_day(start)}-{format_time_of_day(end)}: no time slot, "
            "units do not negotiate then"
        )
    if not gaps:
        lines.append("the time slots cover the whole day")
    return lines


def check(path: str, out: TextIO, err: TextIO) -> int:
    try:
        scenario = load_scenario(path)
    except ConfigError as exc:
        print(f"error: {exc}", file=err)
        return 2
    for line in describe(scenario):
        print(line, file=out)
    return 0


def run(args: argparse.Namespace) -> int:
    if getattr(args, "scenario_command", None) != "check":
        print("usage: hil scenario check FILE", file=sys.stderr)
        return 2
    return check(args.file, sys.stdout, sys.stderr)
