"""The ``hil`` command line answers ``--version`` and ``--help`` as a console script."""

from __future__ import annotations

import subprocess
import sys

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
