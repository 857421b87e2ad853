"""The live operator page over HTTP: one static page, a server-sent-events stream, Stop.

Routes (Starlette on uvicorn, in a thread of the process that runs the bench):

- ``GET /`` — the page (``static/live.html``; no build, no CDN: it works offline);
- ``GET /events`` — the stream (``text/event-stream``; the format and ``Last-Event-ID`` are
  those of the WHATWG HTML Standard's "Server-sent events" section, which browsers'
  ``EventSource`` implements, reconnecting by itself after ``retry`` ms): a client
  without ``Last-Event-ID`` first gets a ``state`` event, then every event as it comes; a
  client that reconnects with ``Last-Event-ID`` gets exactly the events after that id (or
  a fresh ``state`` when they are no longer kept). Writes are batched at most
  :data:`~hil.live.events.RATE_HZ` times a second;
- ``GET /state`` — the same state as JSON;
- ``POST /stop`` — ``{"confirm": true, "by": NAME}``: the ordered shutdown, the run ends
  INTERRUPTED (the ``stop`` callable decides how); once only;
- ``GET /prompts``, ``POST /prompts/{id}`` — ``{"answer": ..., "by": NAME}``.

Bad requests get a 4xx with ``{"error": one line naming what and why}``; the server keeps
serving. It binds 127.0.0.1 unless told otherwise (``allow_remote``): the page can stop the
bench and answer its prompts, and it has no authentication.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import socket
import threading
from collections.abc import AsyncIterator, Callable
from importlib import resources
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from hil.errors import ConfigError
from hil.live.events import EventHub, LiveEvent
from hil.live.prompts import PromptDesk

log = logging.getLogger(__name__)

#: Seconds between keep-alive comments on an idle stream (proxies drop silent streams).
KEEPALIVE_S = 15.0
#: Seconds the server thread may take to stop.
STOP_TIMEOUT_S = 5.0
#: ``stop(by) -> None``: run the ordered shutdown and end the run INTERRUPTED.
StopHandler = Callable[[str], None]


def parse_address(
    text: str, *, allow_remote: bool = False, option: str = "--live"
) -> tuple[str, int]:
    """``HOST:PORT`` → (host, port); port 0 picks a free one. A host that is not a loopback
    address needs ``allow_remote``."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"{option} {text}: expected HOST:PORT, e.g. 127.0.0.1:8765")
    if not allow_remote:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback:
            raise ConfigError(
                f"{option} {text}: {host} is not a loopback address; the page can stop the "
                "bench and has no authentication: add --live-allow-remote to serve it there"
            )
    return host, int(port)


def sse(event: LiveEvent) -> str:
    """One server-sent event (W3C EventSource: ``id``, ``data``, blank line)."""
    return f"id: {event.id}\ndata: {json.dumps(event.data, ensure_ascii=False)}\n\n"


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _json_body(request: Request) -> dict[str, Any] | JSONResponse:
    try:
        body = json.loads(await request.body() or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        return _error(400, f"{request.url.path}: the body is not JSON ({exc})")
    if not isinstance(body, dict):
        return _error(400, f"{request.url.path}: the body must be a JSON object")
    return body


def _who(body: dict[str, Any], request: Request) -> str:
    name = str(body.get("by") or "operator")[:80]
    client = request.client.host if request.client is not None else "unknown"
    return f"{name} (page, {client})"


class LiveApp:
    """The Starlette application of one live page: the hub, the prompts and Stop."""

    def __init__(self, hub: EventHub, desk: PromptDesk, stop: StopHandler | None) -> None:
        self.hub = hub
        self.desk = desk
        self.stop_handler = stop
        self.stopped_by: str | None = None
        self._stop_lock = threading.Lock()
        self.app = Starlette(
            routes=[
                Route("/", self.page),
                Route("/events", self.events),
                Route("/state", self.state),
                Route("/stop", self.stop, methods=["POST"]),
                Route("/prompts", self.prompts),
                Route("/prompts/{prompt_id}", self.answer, methods=["POST"]),
            ]
        )

    async def page(self, request: Request) -> Response:
        html = resources.files("hil.live").joinpath("static/live.html").read_text("utf-8")
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    async def state(self, request: Request) -> Response:
        return JSONResponse(self.hub.state().data)

    async def prompts(self, request: Request) -> Response:
        return JSONResponse([p.as_dict() for p in self.desk.pending()])

    async def events(self, request: Request) -> Response:
        header = request.headers.get("last-event-id") or request.query_params.get("last_id")
        last_id: int | None = None
        if header is not None:
            if not header.strip().isdigit():
                return _error(400, f"/events: Last-Event-ID {header!r} is not an event number")
            last_id = int(header)
        return StreamingResponse(
            self._stream(request, last_id),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def _stream(self, request: Request, last_id: int | None) -> AsyncIterator[str]:
        hub = self.hub
        events, complete = hub.since(last_id)
        if not complete:
            state = hub.state()
            yield "retry: 1000\n" + sse(state)
            last_id = state.id
            events, _ = hub.since(last_id)
        idle = 0.0
        while True:
            if events:
                last_id = events[-1].id
                yield "".join(sse(e) for e in events)
                idle = 0.0
            elif idle >= KEEPALIVE_S:
                yield ": keep-alive\n\n"
                idle = 0.0
            if hub.closed and hub.last_id <= (last_id or 0):
                return
            await asyncio.sleep(hub.interval)  # at most RATE_HZ writes a second
            if await request.is_disconnected():
                return
            hub.flush_due()
            events, complete = hub.since(last_id)
            if not complete:  # the client fell too far behind: start it again
                state = hub.state()
                yield sse(state)
                last_id = state.id
                events = []
            idle += hub.interval

    async def stop(self, request: Request) -> Response:
        body = await _json_body(request)
        if isinstance(body, JSONResponse):
            return body
        if body.get("confirm") is not True:
            return _error(400, '/stop: send {"confirm": true} to stop the bench')
        if self.stop_handler is None:
            return _error(409, "/stop: this page only watches; there is no run to stop")
        who = _who(body, request)
        with self._stop_lock:
            if self.stopped_by is not None:
                return _error(409, f"/stop: already stopping (asked by {self.stopped_by})")
            self.stopped_by = who
        self.hub.publish({"type": "stopping", "by": who})
        self.stop_handler(who)
        return JSONResponse({"stopping": True, "by": who}, status_code=202)

    async def answer(self, request: Request) -> Response:
        raw = request.path_params["prompt_id"]
        if not str(raw).isdigit():
            return _error(404, f"/prompts/{raw}: not a prompt number")
        body = await _json_body(request)
        if isinstance(body, JSONResponse):
            return body
        answer = body.get("answer")
        if not isinstance(answer, str) or not answer.strip():
            return _error(400, f"/prompts/{raw}: 'answer' must be a non-empty string")
        try:
            prompt = self.desk.answer(int(raw), answer.strip(), _who(body, request))
        except KeyError:
            return _error(404, f"/prompts/{raw}: no open prompt with that number")
        except ValueError as exc:
            return _error(400, f"/prompts/{raw}: {exc}")
        return JSONResponse({"id": prompt.id, "answer": prompt.answer, "by": prompt.by})


class LiveServer:
    """The page served by uvicorn on a thread of its own; the socket is bound at once, so
    a busy port is one clear error and port 0 is known before anyone connects."""

    def __init__(self, app: LiveApp, host: str, port: int) -> None:
        self.live = app
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise ConfigError(f"--live {host}:{port}: cannot serve there: {exc}") from None
        sock.listen(64)
        self._sock = sock
        self.host, self.port = sock.getsockname()[:2]
        config = uvicorn.Config(
            app.app, log_level="warning", lifespan="off", timeout_graceful_shutdown=2
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="hil-live", daemon=True)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def _run(self) -> None:
        try:
            self._server.run(sockets=[self._sock])
        except Exception:
            log.exception("the live page server stopped")

    def start(self) -> LiveServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the stream (clients get every last event), stop serving, free the port."""
        self.live.hub.close()
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(STOP_TIMEOUT_S)
        self._sock.close()
