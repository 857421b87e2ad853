"""The ``hil`` command line answers ``--version`` and ``--help`` as a console script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hil import __version__
from hil.cli import main


def test_version_flag_prints_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"hil {__version__}"


def test_console_script_help_lists_usage() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hil.cli", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert "usage: hil" in result.stdout


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: hil" in capsys.readouterr().out


@pytest.mark.parametrize("where", ["/proc/x/y", "file/sub"])
def test_run_dir_that_cannot_be_written_is_one_line(
    where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("not a folder", encoding="utf-8")
    run_dir = Path(where) if where.startswith("/") else tmp_path / where
    assert main(["run", "--run-dir", str(run_dir)]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert captured.err.startswith(f"hil run: --run-dir {run_dir} cannot hold the run record: ")
    assert "collected" not in captured.out  # nothing started
