"""Our pytest plugin beside labgrid's: both load, neither's options or fixtures collide
(labgrid 26.0.1 adds ``--lg-*`` and the fixtures ``env``, ``target``, ``strategy``;
``labgrid/pytestplugin/fixtures.py``). Skipped where the labgrid extra is not installed."""

from __future__ import annotations

import pytest

pytest.importorskip("labgrid", reason="the labgrid extra is not installed: pp2p-hil[labgrid]")

pytest_plugins = ["pytester"]

TIMEOUT_S = 300.0


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
