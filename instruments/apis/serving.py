"""Serve ASGI apps with uvicorn from one background thread (the toolkit's one HTTP stack).

:class:`HttpServers` binds every socket in the caller's thread — so a port in use or a bad
host fails at once, and the URLs are known before anything is served — then runs one
uvicorn server per app in a daemon thread with its own event loop. :meth:`HttpServers.stop`
asks every server to exit and joins the thread. uvicorn installs no signal handlers outside
the main thread, so the process's own SIGINT/SIGTERM handling is untouched.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp

log = logging.getLogger(__name__)

#: How long :meth:`HttpServers.start` waits for the servers to accept, and stop for them.
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Served:
    """One app and where it is served."""

    name: str
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


class HttpServers:
    """Several ASGI apps, each on its own port, served from one background thread."""

    def __init__(self, apps: Sequence[tuple[str, ASGIApp, int]], *, host: str) -> None:
        """``apps``: (name, app, port; 0 for any free port), bound on ``host``."""
        self._sockets: list[socket.socket] = []
        self.served: list[Served] = []
        self._servers: list[uvicorn.Server] = []
        try:
            for name, app, port in apps:
                sock = _bind(host, port)
                self._sockets.append(sock)
                bound = sock.getsockname()
                self.served.append(Served(name, host, int(bound[1])))
                config = uvicorn.Config(
                    app,
                    log_level="warning",
                    access_log=False,
                    lifespan="off",
                    timeout_keep_alive=30,
                )
                self._servers.append(uvicorn.Server(config))
        except BaseException:
            self._close_sockets()
            raise
        self._started = threading.Event()
        self._failure: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, name="apis-http", daemon=True)

    def start(self) -> HttpServers:
        """Serve every app; ``RuntimeError`` if they are not accepting within the timeout."""
        self._thread.start()
        if not self._started.wait(START_TIMEOUT_S) or self._failure:
            self.stop()
            cause = self._failure[0] if self._failure else None
            raise RuntimeError(f"HTTP servers did not start: {cause!r}") from cause
        return self

    def url(self, name: str) -> str:
        return next(s.url for s in self.served if s.name == name)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to start(); the thread ends
            self._failure.append(exc)
            self._started.set()
            log.error("HTTP servers stopped: %r", exc)

    async def _serve(self) -> None:
        tasks = [
            asyncio.create_task(server.serve(sockets=[sock]))
            for server, sock in zip(self._servers, self._sockets, strict=True)
        ]
        while not all(server.started for server in self._servers):
            if any(task.done() for task in tasks):
                break
            await asyncio.sleep(0.01)
        self._started.set()
        await asyncio.gather(*tasks)

    def stop(self) -> None:
        """Ask every server to exit, wait for the thread, close the sockets (idempotent)."""
        for server in self._servers:
            server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(STOP_TIMEOUT_S)
            if self._thread.is_alive():
                for server in self._servers:
                    server.force_exit = True
                self._thread.join(STOP_TIMEOUT_S)
        self._close_sockets()

    def _close_sockets(self) -> None:
        for sock in self._sockets:
            sock.close()

    def __enter__(self) -> HttpServers:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say so, and
    # without it a response written in two parts waits for the client's delayed ACK (40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock
