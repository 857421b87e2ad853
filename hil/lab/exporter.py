"""A ``labgrid-exporter`` child publishing a bench's instruments (needs the extra).

Used by ``hil emulate --labgrid`` to publish an emulated twin as a place, exactly as a
bench PC publishes its real instruments. The exporter is a child process in its own
process group; :meth:`ExporterProcess.stop` ends it (SIGTERM, then SIGKILL after a grace
period) and is safe to call twice.

Source: ``labgrid-exporter -c HOST:PORT -n NAME --hostname H CONFIG`` (labgrid 26.0.1,
``labgrid/remote/exporter.py``, ``main``); the exporter's resources are addressed
``NAME/group/cls/name`` on the coordinator.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

log = logging.getLogger(__name__)

#: prctl(2) option: the signal a child gets when its parent thread dies.
PR_SET_PDEATHSIG = 1
#: Seconds the exporter has to end after SIGTERM before it is killed.
STOP_GRACE_S = 5.0


def labgrid_command(name: str) -> list[str]:
    """The labgrid console script ``name`` of this interpreter's environment (a venv's
    ``bin/``), else ``python -m`` the module behind it."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return [str(beside)]
    module = {
        "labgrid-exporter": "labgrid.remote.exporter",
        "labgrid-coordinator": "labgrid.remote.coordinator",
        "labgrid-client": "labgrid.remote.client",
    }[name]
    return [sys.executable, "-m", module]


#: Run in a fresh interpreter (``python -c``) that then becomes the exporter (execv): it
#: asks the kernel for SIGTERM when its parent dies (Linux ``prctl(PR_SET_PDEATHSIG)``,
#: prctl(2), kept across execve; labgrid runs on Linux only), so that a killed ``hil
#: emulate`` leaves no exporter publishing a dead bench. Done there rather than in a
#: ``preexec_fn``, which runs Python between fork and exec — unsafe in a process with
#: gRPC's threads (it crashed the child with SIGSEGV here).
_END_WITH_PARENT = (
    "import ctypes, os, signal, sys; "
    "ctypes.CDLL(None, use_errno=True).prctl({option}, signal.SIGTERM); "
    "os.getppid() == {parent} or sys.exit(3); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


class ExporterProcess:
    """One running ``labgrid-exporter``."""

    def __init__(self, process: subprocess.Popen[bytes], name: str, log_path: Path) -> None:
        self.process = process
        self.name = name
        self.log_path = log_path

    @classmethod
    def start(
        cls, coordinator: str, name: str, config: Path, hostname: str, log_path: Path
    ) -> ExporterProcess:
        exporter = labgrid_command("labgrid-exporter")
        exporter += ["-c", coordinator, "-n", name, "--hostname", hostname, str(config)]
        guard = _END_WITH_PARENT.format(option=PR_SET_PDEATHSIG, parent=os.getpid())
        command = [sys.executable, "-c", guard, *exporter]
        with log_path.open("wb") as out:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=config.parent,
                start_new_session=True,
            )
        return cls(process, name, log_path)

    def running(self) -> bool:
        return self.process.poll() is None

    def why(self) -> str:
        """Its exit status and last log lines, for an error message."""
        code = self.process.poll()
        status = "running" if code is None else f"exit status {code}"
        return f"labgrid-exporter {self.name}: {status}; log: {self.tail() or '(empty)'}"

    def tail(self, lines: int = 5) -> str:
        """The last lines of the exporter's log, for an error message."""
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(text[-lines:])

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(STOP_GRACE_S)
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            log.warning("labgrid-exporter %s did not end on SIGTERM; killing it", self.name)
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
