"""labgrid places for benches: many bench PCs, one coordinator (the ``labgrid`` extra).

:mod:`hil.lab.places` (bench file ↔ exporter configuration and place resources) needs
nothing beyond the toolkit. :mod:`hil.lab.coordinator` and :mod:`hil.lab.resources` import
labgrid, which only ``pip install 'pp2p-hil[labgrid]'`` brings; they are imported here
only when a place is asked for, so the base install works without it.

:class:`PlaceHold` is what a run does with a place: connect, lock it (by name, waiting
while someone else holds it, or by reserving any place with the given tags), read the
resources of every instrument the bench needs, and release it — always, on every path.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from hil.config.bench import BenchConfig
from hil.errors import ConfigError
from hil.lab.places import LabPlace, PlaceResources, resolve_resources

if TYPE_CHECKING:
    from hil.lab.coordinator import LabClient, Lease

#: The coordinator when neither the command line nor the bench file names one (labgrid's
#: own variable, labgrid/remote/client.py).
COORDINATOR_ENV = "LG_COORDINATOR"
#: Seconds to wait for a place by default (locked by someone else, or none free).
DEFAULT_TIMEOUT_S = 60.0


def labgrid_installed() -> bool:
    return importlib.util.find_spec("labgrid") is not None


def need_labgrid(what: str) -> None:
    """One line saying how to get labgrid when ``what`` needs it and it is missing."""
    if not labgrid_installed():
        raise ConfigError(
            f"{what} needs labgrid, which is not installed; install the extra: "
            "pip install 'pp2p-hil[labgrid]'"
        )


def coordinator_address(request: LabPlace) -> str:
    address = request.coordinator or os.environ.get(COORDINATOR_ENV)
    if not address:
        raise ConfigError(
            f"{request.describe()}: no labgrid coordinator given; pass --coordinator HOST:PORT, "
            f"set {COORDINATOR_ENV}, or give coordinator in the bench file's [labgrid] table"
        )
    return address


class PlaceHold:
    """A locked place and what it gives the bench; :meth:`release` (or ``with``) unlocks.

    Everything that can be wrong — coordinator unreachable, place unknown, locked past the
    timeout, a resource missing — raises before any instrument is touched, and a place
    locked on the way is released again first.
    """

    def __init__(
        self, client: LabClient, lease: Lease, found: PlaceResources, exporters: list[str]
    ) -> None:
        self.client = client
        self.lease = lease
        self.found = found
        self.exporters = exporters
        self.released = False

    @classmethod
    def take(
        cls,
        bench: BenchConfig,
        request: LabPlace,
        timeout: float,
        waiting: Callable[[str], None] | None = None,
    ) -> PlaceHold:
        """Connect, lock the place (``waiting`` hears who holds it if it must wait),
        resolve the bench's resources from it."""
        need_labgrid(request.describe())
        from hil.lab.coordinator import LabClient

        client = LabClient(coordinator_address(request))
        lease: Lease | None = None
        try:
            if request.place is not None:
                client.run(client.session.sync())
                client.session.holder(request.place)  # unknown place: one line
                lease = client.acquire(request.place, timeout, waiting)
            else:
                lease = client.reserve(request.tags, timeout)
            found = resolve_resources(bench, lease.place, client.session.resources(lease.place))
            exporters = client.session.exporters(lease.place)
        except BaseException:
            try:
                if lease is not None:
                    client.release(lease)
            finally:
                client.close()
            raise
        return cls(client, lease, found, exporters)

    def as_dict(self) -> dict[str, Any]:
        """For the run record: which coordinator, place, lock owner, exporters, and what
        the place gave."""
        return self.lease.as_dict() | {
            "exporters": list(self.exporters),
            "emulator_control": self.found.control,
            "resources": dict(self.found.resources),
        }

    def release(self) -> None:
        """Unlock the place and close the connection (idempotent)."""
        if self.released:
            return
        self.released = True
        try:
            self.client.release(self.lease)
        finally:
            self.client.close()

    def __enter__(self) -> PlaceHold:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
