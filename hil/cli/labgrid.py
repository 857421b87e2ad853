"""``hil labgrid``: bench files ↔ labgrid (docs/labgrid.md; needs pp2p-hil[labgrid] except
for ``exporter-config``).

- ``exporter-config BENCH.toml [-o FILE]``: the ``labgrid-exporter`` YAML for the bench PC
  that BENCH's instruments hang off (one resource per instrument, named after its key).
- ``sync-places BENCH.toml… --exporter NAME``: create each bench's place (its
  ``[labgrid] place``), match it to that exporter's resources and tag it with the bench's
  tags plus ``bench=<name>`` and ``kind=lab``.
- ``release-from PLACE OWNER``: release a place only if OWNER (``HOST/USER``) holds it —
  the way out when a client crashed holding the lock.

Every problem is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from hil.config.bench import BenchConfig
from hil.config.benchfile import load_bench_file
from hil.config.lab import LabgridConfig
from hil.errors import ConfigError, HilError
from hil.lab import coordinator_address, need_labgrid
from hil.lab.places import check_address, export_bench, exporter_yaml

#: The exporter group every bench's resources go in (``exporter/GROUP/cls/name``).
GROUP = "bench"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="lab_command", metavar="ACTION", required=True)
    export = sub.add_parser("exporter-config", help="write the labgrid-exporter YAML of a bench")
    export.add_argument("bench", type=Path, help="bench file (TOML)")
    export.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    export.add_argument("--location", default="", help="the group's location text")
    sync = sub.add_parser("sync-places", help="create and tag the places of bench files")
    sync.add_argument("benches", type=Path, nargs="+", help="bench files with a [labgrid] place")
    sync.add_argument("--exporter", required=True, help="the exporter's name (-n) on that PC")
    sync.add_argument("--coordinator", metavar="HOST:PORT", help="default: LG_COORDINATOR")
    release = sub.add_parser("release-from", help="release a place held by a crashed client")
    release.add_argument("place")
    release.add_argument("owner", help="the lock owner, HOST/USER")
    release.add_argument("--coordinator", metavar="HOST:PORT", help="default: LG_COORDINATOR")


def run(args: argparse.Namespace) -> int:
    try:
        if args.lab_command == "exporter-config":
            return _exporter_config(args)
        need_labgrid(f"hil labgrid {args.lab_command}")
        if args.coordinator is not None:
            check_address(args.coordinator, "--coordinator")
        if args.lab_command == "sync-places":
            return asyncio.run(_sync_places(args))
        return asyncio.run(_release_from(args))
    except HilError as exc:
        print(f"hil labgrid {args.lab_command}: {exc}", file=sys.stderr)
        return 2


def _exporter_config(args: argparse.Namespace) -> int:
    bench = load_bench_file(args.bench)
    location = args.location or f"bench {bench.name}"
    text = exporter_yaml(GROUP, location, export_bench(bench))
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text)
        print(f"hil labgrid: wrote {args.output} ({len(list(bench.instruments()))} resources)")
    return 0


def _place_of(bench: BenchConfig) -> LabgridConfig:
    lab = bench.labgrid
    if lab is None or lab.place is None:
        raise ConfigError(f'{bench.path}: no [labgrid] place; add e.g. [labgrid] place = "bench-3"')
    return lab


async def _sync_places(args: argparse.Namespace) -> int:
    from hil.lab.coordinator import LabSession

    benches = [load_bench_file(path) for path in args.benches]
    places = [_place_of(bench) for bench in benches]
    address = args.coordinator or coordinator_address(places[0])
    session = await LabSession.connect(address)
    try:
        for bench, lab in zip(benches, places, strict=True):
            assert lab.place is not None
            tags = {"kind": "lab", "bench": bench.name.lower()} | dict(lab.tags)
            await session.add_place(
                lab.place, tags, [f"{args.exporter}/{GROUP}/*"], comment=f"bench {bench.name}"
            )
            shown = ", ".join(f"{k}={v}" for k, v in sorted(tags.items()))
            print(f"place {lab.place}: {args.exporter}/{GROUP}/* tagged {shown}")
    finally:
        await session.close()
    return 0


async def _release_from(args: argparse.Namespace) -> int:
    from hil.lab.coordinator import LabSession

    address = args.coordinator or coordinator_address(LabgridConfig(place=args.place))
    session = await LabSession.connect(address)
    try:
        await session.release_from(args.place, args.owner)
    finally:
        await session.close()
    print(f"released place {args.place} from {args.owner}")
    return 0
