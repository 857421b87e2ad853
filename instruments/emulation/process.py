"""Run ``hil emulate`` as a child process and talk to it.

Emulators run in their own process by default, so that a test process that dies — even by
SIGKILL — leaves a witness: the emulator's watchdog makes every output safe and its
``status`` can say so.
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Literal

from instruments.emulation.client import ControlClient
from instruments.emulation.description import BenchDescription
from instruments.emulation.emulator import EmulatedInstrument, Emulator, EmulatorInfo
from instruments.emulation.transport import BackgroundLoop
from instruments.errors import CommunicationError, ConfigError

log = logging.getLogger(__name__)

STARTUP_TIMEOUT_S = 60.0


class EmulatorProcess:
    """A running ``hil emulate --json`` child: its resources and its control channel."""

    def __init__(self, process: subprocess.Popen[bytes], info: EmulatorInfo) -> None:
        self.process = process
        self.info = info
        self.control = ControlClient(info.control)

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
        return self.process.returncode

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
    ) -> None:
        self.emulator = Emulator(bench, clock=clock, speed=speed, serial=serial)
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


def start_emulator(
    bench: Path,
    *,
    clock: Literal["sim", "wall"] = "sim",
    speed: float = 1.0,
    serial: Literal["tcp", "pty"] | None = None,
    timeout: float = STARTUP_TIMEOUT_S,
) -> EmulatorProcess:
    """Start ``hil emulate BENCH --json`` and wait for its resources line."""
    command = [sys.executable, "-m", "hil.cli", "emulate", str(bench), "--json", "--clock", clock]
    command += ["--speed", str(speed)]
    if serial is not None:
        command += ["--serial", serial]
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None and process.stderr is not None
    line = _read_line(process, timeout)
    if line is None:
        process.kill()
        _, err = process.communicate()
        message = err.decode(errors="replace").strip().splitlines()
        detail = message[-1] if message else "no output"
        raise ConfigError(f"emulator for {bench} did not start: {detail}")
    try:
        data = json.loads(line)
        info = EmulatorInfo(
            control=data["control"],
            instruments=[EmulatedInstrument(**item) for item in data["instruments"]],
        )
    except (ValueError, KeyError, TypeError) as exc:
        process.kill()
        raise CommunicationError(f"emulator printed an unreadable first line: {exc}") from None
    return EmulatorProcess(process, info)


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
