"""``hil identify BENCH.toml [--emulate] [--timeout S]``: who is on the bench?

Opens every instrument of the bench file concurrently, asks each who it is (vendor, model,
serial, firmware — the EZA-2500 and the APIS BMS, which have no identity command, must
answer a read first) and prints one table. Exits 0 when every instrument answered, 1 naming
each that did not (a missing lab instrument costs one ``--timeout``, not one per
instrument), 2 when the bench file is wrong or the emulator cannot be started.

``--emulate`` starts the bench's emulated twin (``instruments.emulation.process.
start_emulator``) and identifies its instruments instead of the file's resources.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

from hil.config.bench import BenchConfig
from hil.config.benchfile import load_bench_file
from hil.controller import InstrumentIdentity
from hil.errors import HilError
from hil.units import EMULATOR_DRIVER_OPTIONS, open_instrument
from hil.units.bench import InstrumentOpener, open_instruments

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 2.0
EMULATOR_MODULE = "instruments.emulation.process"


class EmulatorHandle(Protocol):
    """What ``start_emulator`` returns: the emulator's resources, and a way to stop it."""

    @property
    def resources(self) -> Mapping[str, str]: ...

    def stop(self) -> object: ...


@dataclass(frozen=True)
class IdentifyResult:
    """The identities of the instruments that answered, and why the others did not
    (keyed ``<unit>.<instrument>``, in bench-file order)."""

    identities: list[InstrumentIdentity] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)


def identify_instruments(
    config: BenchConfig,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    driver_options: Mapping[str, Mapping[str, Any]] | None = None,
    opener: InstrumentOpener | None = None,
) -> IdentifyResult:
    """Open and identify every instrument of ``config`` concurrently, then close them.

    Never raises for an instrument: its failure (including a resource that is still the
    ``"emulated"`` placeholder, or a driver without adapter) goes into ``missing``.
    """
    if not timeout > 0:
        raise ValueError(f"timeout must be > 0 s, got {timeout!r}")
    if opener is None:
        opener = functools.partial(open_instrument, timeout=timeout, extra=driver_options)
    opened = open_instruments(config, opener, identify=True)
    opened.close()
    return IdentifyResult(
        identities=[
            opened.identities[inst.key]
            for inst in config.instruments()
            if inst.key in opened.identities
        ],
        missing=dict(opened.failures),
    )


def format_table(identities: Sequence[InstrumentIdentity]) -> str:
    """The identities as an aligned text table."""
    header = ("UNIT", "INSTRUMENT", "DRIVER", "RESOURCE", "VENDOR", "MODEL", "SERIAL", "FIRMWARE")
    rows = [header] + [
        (
            i.unit,
            i.instrument,
            i.driver,
            i.resource,
            i.vendor,
            i.model,
            i.serial or "-",
            i.firmware or "-",
        )
        for i in identities
    ]
    widths = [max(len(row[col]) for row in rows) for col in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _start_emulator(path: Path) -> EmulatorHandle:
    """Start the emulated twin of the bench at ``path`` (``HilError`` if unavailable)."""
    try:
        module = importlib.import_module(EMULATOR_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != EMULATOR_MODULE:
            raise
        raise HilError(
            f"--emulate needs {EMULATOR_MODULE}.start_emulator, which this installation does "
            "not have yet; start the emulator with `hil emulate` and pass its resources"
        ) from None
    start = getattr(module, "start_emulator", None)
    if start is None:
        raise HilError(f"{EMULATOR_MODULE} has no start_emulator()")
    return cast(EmulatorHandle, start(path))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bench", type=Path, help="bench file (TOML)")
    parser.add_argument(
        "--emulate",
        action="store_true",
        help="start the bench's emulated twin and identify its instruments",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="S",
        help=f"seconds to wait for each instrument (default {DEFAULT_TIMEOUT_S:g})",
    )


def run(args: argparse.Namespace) -> int:
    path: Path = args.bench
    timeout: float = args.timeout
    if not timeout > 0:
        print(f"hil identify: --timeout must be > 0, got {timeout:g}", file=sys.stderr)
        return 2
    try:
        config = load_bench_file(path)
    except (HilError, OSError) as exc:
        print(f"hil identify: {exc}", file=sys.stderr)
        return 2
    handle: EmulatorHandle | None = None
    options: Mapping[str, Mapping[str, Any]] | None = None
    try:
        if args.emulate:
            try:
                handle = _start_emulator(path)
                config = config.with_resources(dict(handle.resources))
            except HilError as exc:
                print(f"hil identify: {exc}", file=sys.stderr)
                return 2
            options = EMULATOR_DRIVER_OPTIONS
        result = identify_instruments(config, timeout=timeout, driver_options=options)
    finally:
        if handle is not None:
            handle.stop()
    total = len(result.identities) + len(result.missing)
    print(f"bench {config.name} ({path}): {len(result.identities)} of {total} instruments answered")
    if result.identities:
        print(format_table(result.identities))
    if not result.missing:
        return 0
    by_key = {inst.key: inst for inst in config.instruments()}
    print(
        f"hil identify: {len(result.missing)} instrument(s) did not answer: "
        + ", ".join(result.missing),
        file=sys.stderr,
    )
    for key, why in result.missing.items():
        inst = by_key[key]
        print(f"  {key} ({inst.driver} at {inst.resource}): {why}", file=sys.stderr)
    return 1
