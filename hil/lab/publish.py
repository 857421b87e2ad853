"""An emulated bench published as a labgrid place (``hil emulate BENCH --labgrid ADDR``).

Writes the exporter configuration for the emulator's loopback resources and its control
channel, starts a ``labgrid-exporter`` for them, waits until the coordinator lists every
resource, then creates (or updates) the place: matched to that exporter, tagged
``kind=emulated`` and ``bench=<name>`` plus the caller's tags. :meth:`withdraw` deletes
the place and stops the exporter, on every path out of ``hil emulate``.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from hil.config.bench import BenchConfig
from hil.lab.coordinator import LabError, LabSession
from hil.lab.exporter import ExporterProcess
from hil.lab.places import export_bench, exporter_yaml

log = logging.getLogger(__name__)

#: Seconds the exporter has to publish every resource.
PUBLISH_TIMEOUT_S = 30.0
GROUP = "bench"


class EmulatedPlace:
    """A place whose resources are one emulator's, and the exporter publishing them."""

    def __init__(
        self, session: LabSession, place: str, exporter: ExporterProcess, folder: Path
    ) -> None:
        self.session = session
        self.place = place
        self.exporter = exporter
        self.folder = folder

    @classmethod
    async def publish(
        cls,
        address: str,
        bench: BenchConfig,
        resources: Mapping[str, str],
        control: str,
        place: str,
        tags: Mapping[str, str],
    ) -> EmulatedPlace:
        exported = export_bench(bench, resources, control)
        folder = Path(tempfile.mkdtemp(prefix=f"hil-exporter-{place}-"))
        config = folder / "exporter.yaml"
        config.write_text(exporter_yaml(GROUP, f"emulated bench {bench.name}", exported))
        exporter = ExporterProcess.start(  # before any gRPC thread of ours exists
            address, place, config, "127.0.0.1", folder / "exporter.log"
        )
        try:
            session = await LabSession.connect(address)
        except BaseException:
            exporter.stop()
            shutil.rmtree(folder, ignore_errors=True)
            raise
        try:
            await session.wait_for_exporter(
                place, {r.name for r in exported}, PUBLISH_TIMEOUT_S, exporter.running
            )
            all_tags = {"kind": "emulated", "bench": bench.name.lower()} | dict(tags)
            await session.add_place(
                place, all_tags, [f"{place}/{GROUP}/*"], comment=f"hil emulate {bench.path}"
            )
        except BaseException as exc:
            if isinstance(exc, LabError):
                exc.args = (f"{exc}; {exporter.why()}",)
            exporter.stop()
            shutil.rmtree(folder, ignore_errors=True)
            await session.close()
            raise
        return cls(session, place, exporter, folder)

    async def withdraw(self) -> None:
        """Delete the place, stop the exporter, close the connection (best effort)."""
        try:
            await self.session.delete_place(self.place)
        except LabError as exc:
            log.warning("%s", exc)
        finally:
            self.exporter.stop()
            shutil.rmtree(self.folder, ignore_errors=True)
            await self.session.close()
