"""Opt-in: the real apis-main runs a community on our emulated units through ``--apis``.

Skipped unless ``APIS_MAIN_JAR`` names apis-main's fat jar (``mvn package`` in
SonyCSL/apis-main builds ``target/apis-main-3.0.0-fat.jar``) and ``java`` is on PATH; see
``docs/apis.md`` ("The end-to-end test"). ``APIS_MAIN_RUN_S`` bounds the wall time given to
the deals (default 600 s).

What it does: ``hil emulate fixtures/benches/emulated.toml --apis --clock wall`` in its own
process; per APIS unit a directory with apis-main's ``config.json`` (``systemType``
``dcdc_v2``, the unit's service port, Hazelcast on tcp-ip 127.0.0.1 via ``cluster.xml``),
``hwConfig.json``, ``policy.json`` (the bench file's ``[apis]`` numbers under APIS's keys)
and ``scenario.json`` (one all-day slot: above 90 % discharge, below 60 % charge); one
apis-main per unit. Then, through the emulator's control channel, once a second: every
sample with active converters keeps the bus inside its window and balanced (|Σ bus current|
≤ the allowance per active unit); it ends when a deal has moved energy (the discharging
battery's SoC down, the charging one's up) and every converter is back at WAIT. The
file layouts follow apis-main's ``exe/`` samples; nothing of them is copied here.

Waiting here is wall-clock polling: apis-main is a separate program on real time.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hil.config.apis_policy import ApisPolicy
from hil.config.bench import BenchConfig
from hil.config.benchfile import load_bench_file
from instruments.emulation.process import EmulatorProcess, start_emulator

ROOT = Path(__file__).resolve().parents[1]
EMULATED_BENCH = ROOT / "fixtures" / "benches" / "emulated.toml"
JAR = os.environ.get("APIS_MAIN_JAR", "")
RUN_S = float(os.environ.get("APIS_MAIN_RUN_S", "600"))
POLL_S = 1.0
#: Units whose SoC says "excess" and "short" under :data:`SCENARIO`.
DISCHARGER, CHARGER = "E004", "E001"
SOCS = {"E001": 0.30, "E002": 0.75, "E003": 0.75, "E004": 0.95}
#: ``[apis]`` numbers apis-main reads from ``hwConfig.json``, not ``policy.json``.
HW_CONFIG_KEYS = frozenset({"gridCurrentCapacityA", "gridCurrentAllowanceA"})

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (JAR and Path(JAR).is_file() and shutil.which("java")),
        reason="opt-in: set APIS_MAIN_JAR to apis-main's fat jar (and have java); see docs/apis.md",
    ),
]

SCENARIO: dict[str, Any] = {
    "refreshingPeriodMsec": 5000,
    "acceptSelection": {"strategy": "pointAndAmount"},
    "00:00:00-24:00:00": {
        "batteryStatus": {
            "4320-": "excess",
            "3600-4320": "sufficient",
            "2880-3600": "scarce",
            "-2880": "short",
        },
        "request": {
            "excess": {"discharge": {"limitWh": 4320, "pointPerWh": 10}},
            "sufficient": {},
            "scarce": {},
            "short": {"charge": {"limitWh": 2880, "pointPerWh": 10}},
        },
        "accept": {
            "excess": {"discharge": {"limitWh": 3600, "pointPerWh": 10}},
            "sufficient": {"discharge": {"limitWh": 3600, "pointPerWh": 10}},
            "scarce": {"charge": {"limitWh": 3600, "pointPerWh": 10}},
            "short": {"charge": {"limitWh": 3600, "pointPerWh": 10}},
        },
    },
}


def _put(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for key in parents:
        tree = tree.setdefault(key, {})
    tree[leaf] = value


def policy_json(config: BenchConfig, members: list[str]) -> dict[str, Any]:
    """apis-main's ``policy.json`` from the bench file: ``[apis]`` under APIS's keys."""
    policy: dict[str, Any] = {
        "refreshingPeriodMsec": 5000,
        "operationMode": "autonomous",
        "memberUnitIds": members,
        "largeCapacityUnitIds": [u for u in config.large_capacity_unit_ids if u in members],
        "gridVoltageDropAllowanceV": 20,
        "heloPeriodMsec": 5000,
        "safety": {"gridTopologyBasedEvaluation": {"enabled": False}},
        "controller": {
            "stopMeTimeoutMsec": 60000,
            "stopMeCheckPeriodMsec": 1000,
            "dataAcquisitionPeriodMsec": 5000,
            "requestTimeoutMsec": 5000,
            "retryLimit": 3,
        },
        "user": {"errorHandlingPeriodMsec": 1000},
        "mediator": {"dealLoggingPeriodMsec": 5000},
        "gridMaster": {
            "voltageReferenceSide": "chargeUnit",
            "voltageReferenceTakeOverDvg": "theoretical",
            "masterDealSelection": {"strategy": "newestDeal"},
            "gridMasterSelection": {"strategy": "voltageReferenceUnit"},
            "gridMasterEnsuring": {"interlockInconsistency": {"retryWaitMsec": 2000}},
            "gridMasterWatching": {"absence": {"ensureWaitMsec": 5000}},
            "deal": {"referenceSide": "chargeUnit"},
            "gridVoltageOptimization": {"enabled": False},
            "heloPeriodMsec": 5000,
            "dataCollectionPeriodMsec": 5000,
            "dataCollectionTimeoutMsec": 2000,
            "errorSustainingMsec": 30000,
        },
    }
    values = config.apis.as_dict()
    for name, key in ApisPolicy.APIS_KEYS.items():
        if " " in key or key in HW_CONFIG_KEYS:
            continue  # the toolkit's own numbers, and hwConfig.json's
        value = values[name]
        if key.endswith("Msec"):
            value = round(value * 1000)
        elif key.endswith("Rsoc"):
            value = round(value * 100)
        # apis-main reads ...authorization.numberOfTrials (VoltageReferenceAuthorization.java)
        _put(policy, key.replace("numberOfTraials", "numberOfTrials"), value)
    return policy


def hw_config_json(config: BenchConfig) -> dict[str, Any]:
    apis = config.apis
    return {
        "refreshingPeriodMsec": 5000,
        "batteryNominalCapacityWh": 4800,
        "gridCurrentCapacityA": apis.unit_current_capacity,
        "gridCurrentAllowanceA": apis.current_allowance,
        "droopRatio": apis.handover_droop,
        "efficientBatteryGridVoltageRatio": 6.5,
        "safety": {
            "range": {
                "dcdc": {
                    "meter": {
                        "tmp": {"min": 0, "max": 45},
                        "vg": {"min": -4, "max": 380},
                        "vb": {"min": 32, "max": 58.4},
                        "ig": {"min": -2.35, "max": 2.35},
                        "ib": {"min": -20, "max": 20},
                    }
                }
            }
        },
    }


def config_json(unit: str, port: int, work: Path) -> dict[str, Any]:
    return {
        "programId": "apis-main",
        "communityId": "pp2p_community",
        "clusterId": "pp2p_cluster",
        "security": {"enabled": False},
        "unitId": unit,
        "unitName": unit,
        "serialNumber": "1",
        "systemType": "dcdc_v2",
        "hwConfigFile": "./hwConfig.json",
        "policyFile": "./policy.json",
        "scenarioFile": "./scenario.json",
        "stateFileFormat": str(work / "state" / "%s"),
        "dealLogDirFormat": f"'{work / 'dealLog'}'",
        "fileSystemExclusiveLockFileFormat": str(work / ".apis.%s.lock"),
        "policyFileReadTimeoutMsec": 60000,
        "connection": {"dcdc_controller": {"host": "127.0.0.1", "port": port}},
        "controlCenter": {"enabled": False},
        "watchdog": {"enabled": False},
        "batteryCapacityManagement": {"enabled": False},
    }


def cluster_xml(group: str) -> str:
    """Hazelcast: no multicast, tcp-ip on 127.0.0.1 only, a group of this run's own."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<hazelcast xmlns="http://www.hazelcast.com/schema/config">
  <group><name>{group}</name><password>{group}</password></group>
  <network>
    <port auto-increment="true" port-count="100">5701</port>
    <join>
      <multicast enabled="false"/>
      <tcp-ip enabled="true"><member>127.0.0.1</member></tcp-ip>
    </join>
    <interfaces enabled="true"><interface>127.0.0.1</interface></interfaces>
  </network>
</hazelcast>
"""


@pytest.fixture
def community(tmp_path: Path) -> Iterator[tuple[EmulatorProcess, list[subprocess.Popen[bytes]]]]:
    config = load_bench_file(EMULATED_BENCH)
    emulator = start_emulator(
        EMULATED_BENCH, clock="wall", apis=True, log_path=tmp_path / "emulator.log"
    )
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for unit, soc in SOCS.items():
            emulator.control.set(unit, "soc", soc)
        services = {s.unit: s.resource for s in emulator.info.services}
        members = sorted(services)
        group = f"pp2p-{os.getpid()}"
        for unit in members:
            work = tmp_path / unit
            work.mkdir()
            port = int(services[unit].rsplit(":", 1)[1])
            files = {
                "config.json": config_json(unit, port, work),
                "hwConfig.json": hw_config_json(config),
                "policy.json": policy_json(config, members),
                "scenario.json": SCENARIO,
            }
            for name, data in files.items():
                (work / name).write_text(json.dumps(data, indent=2), encoding="utf-8")
            (work / "cluster.xml").write_text(cluster_xml(group), encoding="utf-8")
            log = (work / "apis-main.log").open("wb")
            processes.append(
                subprocess.Popen(
                    [
                        "java",
                        "-Djava.net.preferIPv4Stack=true",
                        "-Dvertx.hazelcast.config=./cluster.xml",
                        "-jar",
                        JAR,
                        "-conf",
                        "./config.json",
                        "-cluster",
                        "-cluster-host",
                        "127.0.0.1",
                    ],
                    cwd=work,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
            log.close()
        yield emulator, processes
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        emulator.stop()


def test_apis_main_runs_deals_on_the_emulated_units(
    community: tuple[EmulatorProcess, list[subprocess.Popen[bytes]]],
) -> None:
    emulator, processes = community
    control = emulator.control
    config = load_bench_file(EMULATED_BENCH)
    allowance = config.apis.balance_allowance_per_unit
    low, high = config.apis.voltage_range_min, config.apis.voltage_range_max
    start = _socs(control.status())
    ticker = threading.Event()
    active_samples = 0
    deadline = control.time() + RUN_S
    while control.time() < deadline:
        assert all(p.poll() is None for p in processes), "an apis-main exited"
        status = control.status()
        converters = [p for p in status["ports"] if p["kind"] == "converter"]
        active = [p for p in converters if p["mode"] != "WAIT"]
        if active:
            active_samples += 1
            total = sum(p["current"] for p in active)
            assert abs(total) <= allowance * len(active), (status["time"], active)
            assert low <= status["nodes"]["bus"]["voltage"] <= high + 4.0
        socs = _socs(status)
        moved = socs[DISCHARGER] < start[DISCHARGER] and socs[CHARGER] > start[CHARGER]
        if moved and not active and active_samples:
            break
        ticker.wait(POLL_S)
    else:
        pytest.fail(f"no deal completed within {RUN_S:g} s (SoCs {start} → {_socs(status)})")
    assert status["all_safe"]


def _socs(status: dict[str, Any]) -> dict[str, float]:
    return {p["unit"]: p["soc"] for p in status["ports"] if p["kind"] == "battery"}
