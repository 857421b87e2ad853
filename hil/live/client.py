"""A small reader of the live page's event stream (tests, benchmarks, scripts).

Parses server-sent events as the WHATWG HTML Standard's "Server-sent events" section
specifies for ``EventSource`` (``field: value`` lines, one space after the colon dropped;
``id`` and ``data`` kept, ``data`` lines joined by newlines; a blank line ends an event; a
line starting with ``:`` is a comment) over an httpx stream, and remembers the last
id so that :meth:`EventStream.reconnect` resumes where it left off (``Last-Event-ID``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import TracebackType
from typing import Any, Self

import httpx

from hil.live.events import LiveEvent


class EventStream:
    """``for event in EventStream(base_url): ...`` — one connection to ``/events``."""

    def __init__(self, base_url: str, *, last_id: int | None = None, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.last_id = last_id
        self._client = httpx.Client(timeout=httpx.Timeout(timeout, connect=timeout))
        self._response: httpx.Response | None = None
        self._lines: Iterator[str] | None = None

    def _open(self) -> Iterator[str]:
        headers = {"Accept": "text/event-stream"}
        if self.last_id is not None:
            headers["Last-Event-ID"] = str(self.last_id)
        request = self._client.build_request("GET", f"{self.base_url}/events", headers=headers)
        self._response = self._client.send(request, stream=True)
        self._response.raise_for_status()
        return self._response.iter_lines()

    def __iter__(self) -> Iterator[LiveEvent]:
        if self._lines is None:
            self._lines = self._open()
        event_id: int | None = None
        data: list[str] = []
        for line in self._lines:
            if not line:
                if data:
                    parsed: dict[str, Any] = json.loads("\n".join(data))
                    number = event_id if event_id is not None else (self.last_id or 0)
                    self.last_id = number
                    yield LiveEvent(number, parsed)
                event_id, data = None, []
            elif line.startswith(":"):
                continue
            else:
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "id" and value.isdigit():
                    event_id = int(value)
                elif name == "data":
                    data.append(value)

    def reconnect(self) -> None:
        """Drop the connection; the next iteration resumes after :attr:`last_id`."""
        if self._response is not None:
            self._response.close()
        self._response, self._lines = None, None

    def close(self) -> None:
        self.reconnect()
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
