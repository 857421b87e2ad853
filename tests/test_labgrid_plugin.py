"""Our pytest plugin beside labgrid's: both load, neither's options or fixtures collide
(labgrid 26.0.1 adds ``--lg-*`` and the fixtures ``env``, ``target``, ``strategy``;
``labgrid/pytestplugin/fixtures.py``). Skipped where the labgrid extra is not installed."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("labgrid", reason="the labgrid extra is not installed: pp2p-hil[labgrid]")

pytest_plugins = ["pytester"]

TIMEOUT_S = 300.0
LAB = Path(__file__).resolve().parent.parent / "fixtures" / "benches" / "lab-example.toml"


def test_both_plugins_load_with_their_own_options_and_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_both="""
        def test_one_session_has_both(request):
            assert request.config.pluginmanager.has_plugin("labgrid")
            assert request.config.pluginmanager.has_plugin("pp2p_hil")
        """
    )
    listed = pytester.runpytest_subprocess("--fixtures", timeout=TIMEOUT_S).stdout.str()
    owners = {}
    for line in listed.splitlines():
        name, sep, where = line.partition(" -- ")
        if sep:
            owners[name.split(" [")[0].strip()] = where
    for name in ("env", "target", "strategy"):
        assert "labgrid" in owners[name], owners
    for name in ("bench", "unit", "exchange", "measure", "emulator", "twin"):
        assert "fixtures/plugin.py" in owners[name], owners
    helped = pytester.runpytest_subprocess("--help", timeout=TIMEOUT_S)
    text = helped.stdout.str()
    assert "--lg-env" in text and "--lg-coordinator" in text
    assert "--place=NAME" in text and "--reserve=KEY=VALUE" in text
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:randomly", timeout=TIMEOUT_S
    )
    result.assert_outcomes(passed=1)


def test_our_resource_classes_are_registered_with_labgrid() -> None:
    """A labgrid environment file (``RemotePlace``) can build our resources from exactly
    the parameters the exporter configuration carries."""
    from labgrid.factory import target_factory

    from hil.config.benchfile import load_bench_file
    from hil.lab.places import CONTROL_CLASS, INSTRUMENT_CLASS, export_bench
    from hil.lab.resources import HilEmulatorControl, HilNetworkInstrument

    assert target_factory.resources[INSTRUMENT_CLASS] is HilNetworkInstrument
    assert target_factory.resources[CONTROL_CLASS] is HilEmulatorControl
    lab = load_bench_file(LAB)
    supply = next(r for r in export_bench(lab) if r.name == "E005.supply")
    built = HilNetworkInstrument(None, supply.name, **dict(supply.params))
    assert built.resource == lab.unit("E005").instrument("supply").resource
    assert HilEmulatorControl(None, "c", host="127.0.0.1", port=7400).address == "127.0.0.1:7400"
