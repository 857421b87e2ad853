"""The plugin's ``--apis``: the emulator it starts also serves the APIS units over HTTP,
and the ``apis_services`` fixture hands a bench their URLs (``docs/apis.md``)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from hil.cli.run import add_arguments, build_pytest_args

pytest_plugins = ["pytester"]

BENCH_USING_HTTP = """
import httpx
import pytest

def test_http(apis_services, unit):
    assert sorted(apis_services) == ["E001", "E002", "E003", "E004"]
    with httpx.Client(timeout=5.0, trust_env=False) as http:
        body = http.get(apis_services["E002"] + "/all/get").json()
    assert body["status"]["operationMode"] == "Waiting"
    assert body["rsoc"] == pytest.approx(100.0 * unit("E002").read().soc, abs=0.2)
"""


def test_apis_serves_the_units_to_a_bench(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(BENCH_USING_HTTP)
    result = pytester.runpytest("-p", "no:cacheprovider", "--no-record", "--apis")
    result.assert_outcomes(passed=1)


def test_without_apis_a_bench_using_the_services_is_skipped(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(BENCH_USING_HTTP)
    result = pytester.runpytest("-p", "no:cacheprovider", "--no-record", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*run an emulated session with --apis*"])


def test_apis_with_an_attached_emulator_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--apis", "--emulator", "127.0.0.1:9")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--apis serves the APIS units of the emulator the plugin*"])


def test_hil_run_passes_apis_through(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--apis", "-k", "exchange"])
    command = build_pytest_args(args, tmp_path)
    assert "--apis" in command and command[command.index("-k") + 1] == "exchange"
