"""Talking to a labgrid coordinator: places, tags, reservations, locks (needs the extra).

Only :mod:`hil.lab` imports labgrid, and only here and in :mod:`hil.lab.resources`; the
rest of the toolkit reaches it through :func:`hil.lab.connect`, which imports this module
when asked, so the base install never needs labgrid.

:class:`LabSession` is asynchronous (``hil emulate`` runs it in its own event loop);
:class:`LabClient` runs one on a private loop for synchronous callers (the pytest plugin,
``hil lab``). Every request goes through labgrid's own ``ClientSession`` and its gRPC stub.

Sources (labgrid 26.0.1, ``labgrid/remote/client.py`` and ``coordinator.py``): the client
names itself ``HOST/USER`` (``LG_HOSTNAME``/``LG_USERNAME`` override) and that name is the
lock owner; ``AcquirePlaceRequest`` fails with FAILED_PRECONDITION on a locked place and
PERMISSION_DENIED on a place reserved for another owner; a reservation (tag filters)
moves waiting → allocated → acquired and expires 60 s after its last poll unless acquired;
``ReleasePlaceRequest(fromuser=…)`` releases only if that owner holds the lock
(``release-from``); ``get_target_resources`` maps ``(name, cls)`` to each resource.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from labgrid.remote.client import ClientSession, Error
from labgrid.remote.common import Reservation, ReservationState
from labgrid.remote.generated import labgrid_coordinator_pb2 as pb2
from labgrid.remote.generated.labgrid_coordinator_pb2_grpc import CoordinatorStub

from hil.errors import HilError

log = logging.getLogger(__name__)

#: labgrid's client keepalive settings (``ClientSession.__attrs_post_init__``) plus a
#: subchannel pool of this channel's own: gRPC otherwise shares one TCP connection among
#: the channels of a process, and the coordinator refuses a second session on a peer
#: address it already serves (``Coordinator.ClientStream``: ``assert peer not in clients``).
CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 7500),
    ("grpc.keepalive_timeout_ms", 10000),
    ("grpc.http2.ping_timeout_ms", 10000),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.use_local_subchannel_pool", 1),
]
#: Seconds one request (or one sync) may take before the coordinator counts as gone.
CALL_TIMEOUT_S = 30.0
#: Seconds to reach the coordinator before saying it is unreachable.
CONNECT_TIMEOUT_S = 10.0
#: Seconds between two looks at a locked place or a waiting reservation (labgrid's own
#: client polls reservations once a second; a reservation lives 60 s after a poll).
POLL_S = 0.5


class LabError(HilError):
    """The coordinator refused or could not be reached; the message names which and why."""


@dataclass(frozen=True)
class Lease:
    """A place this client holds: its name, the lock owner, the reservation (if any)."""

    coordinator: str
    place: str
    owner: str
    token: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "coordinator": self.coordinator,
            "place": self.place,
            "owner": self.owner,
            "reservation": self.token,
        }


class LabSession:
    """One connection to a coordinator, for use inside a running event loop."""

    def __init__(self, address: str, session: ClientSession) -> None:
        self.address = address
        self._session = session

    @classmethod
    async def connect(cls, address: str, timeout: float = CONNECT_TIMEOUT_S) -> LabSession:
        """Connect and load every place and resource; :class:`LabError` naming the address
        when it does not answer within ``timeout``."""
        loop = asyncio.get_running_loop()
        if not isinstance(loop, asyncio.BaseEventLoop):  # labgrid's ClientSession insists
            raise LabError(f"coordinator {address}: needs a standard asyncio event loop")
        session = ClientSession(address, loop)
        await session.channel.close()  # not yet connected: replaced by one of our own
        session.channel = grpc.aio.insecure_channel(target=address, options=CHANNEL_OPTIONS)
        session.stub = CoordinatorStub(session.channel)
        try:
            await asyncio.wait_for(session.start(), timeout)
        except (TimeoutError, Error, grpc.aio.AioRpcError) as exc:
            await _stop_quietly(session)
            why = str(exc.args[0]) if exc.args else f"no answer within {timeout:g} s"
            raise LabError(
                f"coordinator {address} is unreachable ({why}); is labgrid-coordinator "
                "running there?"
            ) from None
        return cls(address, session)

    @property
    def owner(self) -> str:
        """The lock owner this client shows (``HOST/USER``)."""
        return f"{self._session.gethostname()}/{self._session.getuser()}"

    async def close(self) -> None:
        await _stop_quietly(self._session)

    # -- places ------------------------------------------------------------------------
    async def sync(self) -> None:
        """Wait until the coordinator has sent every update up to now (bounded: a dead
        connection would otherwise wait forever)."""
        try:
            await asyncio.wait_for(self._session.sync_with_coordinator(), CALL_TIMEOUT_S)
        except TimeoutError:
            raise LabError(
                f"coordinator {self.address} did not answer within {CALL_TIMEOUT_S:g} s"
            ) from None

    def places(self) -> dict[str, Any]:
        """Place name → labgrid's ``Place`` (tags, acquired, matches)."""
        return dict(self._session.places)

    def holder(self, place: str) -> str | None:
        """Who holds ``place`` (``HOST/USER``) or None; :class:`LabError` if unknown."""
        return self._place(place).acquired  # type: ignore[no-any-return]

    def _place(self, name: str) -> Any:
        try:
            return self._session.places[name]
        except KeyError:
            known = ", ".join(sorted(self._session.places)) or "none"
            raise LabError(
                f"coordinator {self.address} has no place {name!r}; places: {known}"
            ) from None

    async def _call(self, what: str, method: str, request: Any) -> Any:
        try:
            response = await getattr(self._session.stub, method)(request, timeout=CALL_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            raise LabError(f"coordinator {self.address}: {what}: {exc.details()}") from None
        await self.sync()
        return response

    async def add_place(
        self, name: str, tags: Mapping[str, str], matches: list[str], comment: str = ""
    ) -> None:
        """Create ``name`` (or update it), tag it and match the given resource patterns
        (``exporter/group/cls[/name]``)."""
        if name not in self._session.places:
            await self._call(f"add place {name}", "AddPlace", pb2.AddPlaceRequest(name=name))
        await self._call(
            f"tag place {name}",
            "SetPlaceTags",
            pb2.SetPlaceTagsRequest(placename=name, tags=dict(tags)),
        )
        if comment:
            await self._call(
                f"comment place {name}",
                "SetPlaceComment",
                pb2.SetPlaceCommentRequest(placename=name, comment=comment),
            )
        have = {repr(m) for m in self._place(name).matches}
        for pattern in matches:
            if any(pattern in text for text in have):
                continue
            await self._call(
                f"match {pattern} to place {name}",
                "AddPlaceMatch",
                pb2.AddPlaceMatchRequest(placename=name, pattern=pattern),
            )

    async def wait_for_exporter(
        self, exporter: str, names: set[str], timeout: float, alive: Any = None
    ) -> None:
        """Wait until ``exporter`` has published every resource in ``names`` (``alive``:
        a callable saying the exporter process still runs)."""
        deadline = time.monotonic() + timeout
        while True:
            await self.sync()
            groups = self._session.resources.get(exporter, {})
            have = {name for group in groups.values() for name in group}
            if names <= have:
                return
            if alive is not None and not alive():
                raise LabError(f"labgrid-exporter {exporter} ended before publishing its place")
            if time.monotonic() >= deadline:
                raise LabError(
                    f"labgrid-exporter {exporter} published {len(have)} of {len(names)} "
                    f"resources within {timeout:g} s (missing: {', '.join(sorted(names - have))})"
                )
            await asyncio.sleep(POLL_S)

    async def delete_place(self, name: str) -> None:
        await self._call(f"delete place {name}", "DeletePlace", pb2.DeletePlaceRequest(name=name))

    # -- locks -------------------------------------------------------------------------
    async def acquire(
        self, place: str, timeout: float, waiting: Callable[[str], None] | None = None
    ) -> Lease:
        """Lock ``place``, waiting up to ``timeout`` seconds while another owner holds it
        (``waiting`` is told the holder once, when the wait begins)."""
        deadline = time.monotonic() + timeout
        told = False
        while True:
            holder = self.holder(place)
            if holder is None:
                try:
                    await self._call(
                        f"acquire place {place}",
                        "AcquirePlace",
                        pb2.AcquirePlaceRequest(placename=place),
                    )
                    return Lease(self.address, place, self.owner, None)
                except LabError:  # locked meanwhile? this client's view may lag: look again
                    await self.sync()
                    holder = self.holder(place)
                    if holder is None:
                        raise
            if not told and waiting is not None:
                told = True
                waiting(holder)
            if time.monotonic() >= deadline:
                raise LabError(
                    f"place {place} is locked by {holder} past the {timeout:g} s timeout; wait, "
                    f"or ask them (or: labgrid-client -p {place} release-from {holder})"
                )
            await asyncio.sleep(POLL_S)
            await self.sync()

    async def reserve(self, tags: Mapping[str, str], timeout: float) -> Lease:
        """Reserve any place whose tags match, wait for it (up to ``timeout``), lock it."""
        filters = {"main": pb2.Reservation.Filter(filter=dict(tags))}
        response = await self._call(
            "reserve", "CreateReservation", pb2.CreateReservationRequest(filters=filters, prio=0.0)
        )
        token = Reservation.from_pb2(response.reservation).token
        wanted = ", ".join(f"{k}={v}" for k, v in sorted(tags.items()))
        deadline = time.monotonic() + timeout
        try:
            while True:
                poll = await self._call(
                    "poll reservation", "PollReservation", pb2.PollReservationRequest(token=token)
                )
                res = Reservation.from_pb2(poll.reservation)
                if res.state is ReservationState.allocated:
                    place = res.allocations["main"][0]
                    lease = await self.acquire(place, max(deadline - time.monotonic(), 0.0))
                    return Lease(self.address, place, lease.owner, token)
                if res.state is not ReservationState.waiting:
                    raise LabError(f"reservation {wanted}: {res.state.name}")
                if time.monotonic() >= deadline:
                    raise LabError(
                        f"no free place tagged {wanted} on {self.address} within the "
                        f"{timeout:g} s timeout; places: {self._describe_places()}"
                    )
                await asyncio.sleep(POLL_S)
        except BaseException:
            await self._cancel(token)
            raise

    def _describe_places(self) -> str:
        parts = []
        for name, place in sorted(self._session.places.items()):
            tags = ",".join(f"{k}={v}" for k, v in sorted(place.tags.items()))
            state = f"held by {place.acquired}" if place.acquired else "free"
            parts.append(f"{name} [{tags}] {state}")
        return "; ".join(parts) or "none"

    async def _cancel(self, token: str) -> None:
        try:
            await self._call(
                "cancel reservation", "CancelReservation", pb2.CancelReservationRequest(token=token)
            )
        except LabError as exc:
            log.warning("%s", exc)

    async def release(self, lease: Lease) -> None:
        """Unlock the place (and drop its reservation)."""
        try:
            await self._call(
                f"release place {lease.place}",
                "ReleasePlace",
                pb2.ReleasePlaceRequest(placename=lease.place),
            )
        finally:
            if lease.token is not None:
                await self._cancel(lease.token)

    async def release_from(self, place: str, owner: str) -> None:
        """Unlock ``place`` only if ``owner`` holds it (a crashed client's lock)."""
        self._place(place)
        await self._call(
            f"release place {place} from {owner}",
            "ReleasePlace",
            pb2.ReleasePlaceRequest(placename=place, fromuser=owner),
        )

    def exporters(self, place: str) -> list[str]:
        """The exporters whose resources the locked place holds (``acquired_resources``
        are ``(exporter, group, cls, name)`` paths)."""
        return sorted({str(path[0]) for path in self._place(place).acquired_resources})

    def resources(self, place: str) -> dict[str, tuple[str, dict[str, Any]]]:
        """The locked place's resources: name → (class, parameters)."""
        try:
            found = self._session.get_target_resources(self._place(place))
        except Error as exc:
            raise LabError(f"place {place}: {exc}") from None
        return {name: (cls, dict(entry.args)) for (name, cls), entry in found.items()}


async def _stop_quietly(session: ClientSession) -> None:
    try:
        await session.stop()
    except Exception as exc:  # closing a connection that may never have opened
        log.debug("closing the labgrid session: %s", exc)
    await session.close()


class _LoopThread:
    """One event loop for every :class:`LabClient` of the process, run by a daemon thread.

    gRPC's asyncio layer keeps delivering events to the loops it has seen: a loop per
    client, closed after use, drew "Event loop is closed" errors from its poller here. So,
    as labgrid's own ``ensure_event_loop`` keeps one loop, every synchronous client submits
    its coroutines to this one loop, which never closes.
    """

    _loop: asyncio.AbstractEventLoop | None = None
    _lock = threading.Lock()

    @classmethod
    def loop(cls) -> asyncio.AbstractEventLoop:
        with cls._lock:
            if cls._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(
                    target=loop.run_forever, name="labgrid-client", daemon=True
                ).start()
                cls._loop = loop
            return cls._loop


class LabClient:
    """A :class:`LabSession` for synchronous callers (any thread): each call runs on the
    process's labgrid loop and waits for its result."""

    def __init__(self, address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
        self._closed = False
        self.session: LabSession = self.run(LabSession.connect(address, timeout))

    def run(self, coro: Any) -> Any:
        """Run ``coro`` on the labgrid loop; an interruption here (Ctrl-C) cancels it."""
        future = asyncio.run_coroutine_threadsafe(coro, _LoopThread.loop())
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def acquire(
        self, place: str, timeout: float, waiting: Callable[[str], None] | None = None
    ) -> Lease:
        lease: Lease = self.run(self.session.acquire(place, timeout, waiting))
        return lease

    def reserve(self, tags: Mapping[str, str], timeout: float) -> Lease:
        lease: Lease = self.run(self.session.reserve(tags, timeout))
        return lease

    def release(self, lease: Lease) -> None:
        self.run(self.session.release(lease))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.run(self.session.close())
