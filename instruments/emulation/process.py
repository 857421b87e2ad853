"""Run ``hil emulate`` as a child process and talk to it.

Emulators run in their own process by default, so that a test process that dies — even by
SIGKILL — leaves a witness: the emulator's watchdog makes every output safe and its
``status`` can say so.

The child's life is owned by its parent, not by the terminal:

- it runs in a session of its own, so a Ctrl-C (SIGINT to the terminal's process group)
  reaches the parent only, which then runs its ordered shutdown while the emulator still
  answers;
- it holds the read end of a *lifeline* pipe whose write end only the parent holds
  (``hil emulate --lifeline FD``): when the parent dies, by any signal, SIGKILL included,
  the kernel closes the write end, the child reads EOF, makes every output safe and exits
  (within a poll of its event loop, well under 2 s);
- its stderr goes straight to a file (the run directory's ``emulator.log``, or an
  anonymous temporary file), never to a pipe that nobody reads: a pipe fills at 64 KiB
  and the child would block in its logging, instruments and watchdog with it.

A person's own ``hil emulate`` has no lifeline and runs until Ctrl-C.
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Literal

from instruments.emulation.client import ControlClient
from instruments.emulation.description import BenchDescription
from instruments.emulation.emulator import AdvanceMode, EmulatedInstrument, Emulator, EmulatorInfo
from instruments.emulation.timing import TimingMode
from instruments.emulation.transport import BackgroundLoop
from instruments.errors import CommunicationError, ConfigError

log = logging.getLogger(__name__)

STARTUP_TIMEOUT_S = 60.0


class EmulatorProcess:
    """A running ``hil emulate --json`` child: its resources, its control channel, the write
    end of its lifeline (``None`` without one) and the file its stderr goes to."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        info: EmulatorInfo,
        *,
        lifeline: int | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.process = process
        self.info = info
        self.control = ControlClient(info.control)
        self.lifeline = lifeline
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def resources(self) -> dict[str, str]:
        return self.info.resources

    def stop(self, timeout: float = 10.0) -> int:
        """Ask the emulator to shut down (outputs safe), then make sure the child is gone."""
        if self.process.poll() is None:
            try:
                self.control.shutdown()
            except Exception as exc:  # a dead channel must not stop the cleanup
                log.warning("emulator shutdown request failed: %s", exc)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
        self.control.close()
        self.cut_lifeline()
        return self.process.returncode

    def cut_lifeline(self) -> None:
        """Close the lifeline's write end: the child makes every output safe and exits."""
        if self.lifeline is not None:
            os.close(self.lifeline)
            self.lifeline = None

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class EmulatorThread:
    """An emulator served from a background thread of this process (quick to start).

    Same interface as :class:`EmulatorProcess`; use it where a witness that outlives the
    test process is not needed (unit and integration tests of the toolkit itself).
    """

    def __init__(
        self,
        bench: BenchDescription,
        *,
        clock: Literal["sim", "wall"] = "sim",
        speed: float = 1.0,
        serial: Literal["tcp", "pty"] | None = None,
        timing: TimingMode | None = None,
        advance: AdvanceMode = "deferred",
    ) -> None:
        self.emulator = Emulator(
            bench, clock=clock, speed=speed, serial=serial, timing=timing, advance=advance
        )
        self._loop = BackgroundLoop(name=f"emulator {bench.name}").start()
        try:
            self.info = self._loop.run(self.emulator.start())
        except BaseException:
            self._loop.stop()
            raise
        self.control = ControlClient(self.info.control)

    @property
    def resources(self) -> dict[str, str]:
        return self.info.resources

    def stop(self) -> None:
        """Make every output safe, stop serving and end the thread (idempotent)."""
        self.control.close()
        try:
            self._loop.run(self.emulator.stop())
        except RuntimeError:
            return  # already stopped
        self._loop.stop()

    def __enter__(self) -> EmulatorThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


#: The resources of the HTTP services ``hil emulate --apis`` lists among its instruments.
HTTP_PREFIX = "http://"


def start_emulator(
    bench: Path,
    *,
    clock: Literal["sim", "wall"] = "sim",
    speed: float = 1.0,
    serial: Literal["tcp", "pty"] | None = None,
    timeout: float = STARTUP_TIMEOUT_S,
    log_path: Path | None = None,
    lifeline: bool = True,
    apis: bool = False,
    timing: TimingMode | None = None,
    advance: AdvanceMode = "deferred",
) -> EmulatorProcess:
    """Start ``hil emulate BENCH --json`` in its own session and wait for its resources line.

    ``log_path``: the file the child's stderr is appended to (default: an anonymous
    temporary file). ``lifeline``: the child exits, outputs safe, when this process dies.
    ``apis``: ``--apis`` too; the HTTP services are then in ``info.services``.
    ``timing``: ``hil emulate --timing`` (None: the bench file's, else by clock).
    ``advance``: ``hil emulate --advance`` (sim clock: deferred or eager plant stepping).
    """
    command = [sys.executable, "-m", "hil.cli", "emulate", str(bench), "--json", "--clock", clock]
    command += ["--speed", str(speed), "--advance", advance]
    if apis:
        command += ["--apis"]
    if serial is not None:
        command += ["--serial", serial]
    if timing is not None:
        command += ["--timing", timing]
    read_end, write_end = os.pipe() if lifeline else (-1, -1)
    if lifeline:
        command += ["--lifeline", str(read_end)]
    log_file = _open_log(log_path)
    try:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log_file,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
            pass_fds=(read_end,) if lifeline else (),
        )
    except BaseException:
        log_file.close()
        if lifeline:
            os.close(write_end)
        raise
    finally:
        if lifeline:
            os.close(read_end)
    try:
        info = _startup(process, bench, timeout, log_file)
    except BaseException:
        if lifeline:
            os.close(write_end)
        raise
    finally:
        log_file.close()  # the child holds its own copy
    return EmulatorProcess(
        process, info, lifeline=write_end if lifeline else None, log_path=log_path
    )


def _open_log(log_path: Path | None) -> IO[bytes]:
    """The file the child's stderr goes to (appended to; an anonymous one by default)."""
    if log_path is None:
        return tempfile.TemporaryFile(prefix="hil-emulator-", suffix=".log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    return log_path.open("a+b")


def _startup(
    process: subprocess.Popen[bytes], bench: Path, timeout: float, log_file: IO[bytes]
) -> EmulatorInfo:
    """The child's first stdout line as :class:`EmulatorInfo`; the child killed on failure."""
    line = _read_line(process, timeout)
    if line is None:
        process.kill()
        process.wait()
        detail = _last_line(log_file) or "no output"
        raise ConfigError(f"emulator for {bench} did not start: {detail}")
    try:
        data = json.loads(line)
        served = [EmulatedInstrument(**item) for item in data["instruments"]]
        return EmulatorInfo(
            control=data["control"],
            instruments=[i for i in served if not i.resource.startswith(HTTP_PREFIX)],
            services=[i for i in served if i.resource.startswith(HTTP_PREFIX)],
        )
    except (ValueError, KeyError, TypeError) as exc:
        process.kill()
        process.wait()
        raise CommunicationError(f"emulator printed an unreadable first line: {exc}") from None


def _last_line(log_file: IO[bytes]) -> str:
    """The last non-empty line the child wrote to its log (its error, when it failed)."""
    try:
        log_file.flush()
        size = log_file.seek(0, os.SEEK_END)
        log_file.seek(max(0, size - 65536))
        lines = log_file.read().decode(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1] if lines else ""


def exit_when_parent_dies() -> None:
    """In a ``multiprocessing`` child serving instruments (the benchmarks' servers): exit
    at once when the parent process dies, SIGKILL included (its sentinel becomes ready)."""
    import multiprocessing
    import multiprocessing.connection
    import threading

    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _read_line(process: subprocess.Popen[bytes], timeout: float) -> bytes | None:
    """The child's first stdout line, or None if it exits or stays silent too long."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while b"\n" not in buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                return None
            chunk = os.read(process.stdout.fileno(), 65536)
            if not chunk:
                return None
            buffer += chunk
    return buffer.split(b"\n", 1)[0]
