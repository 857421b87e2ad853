"""``hil emulate BENCH --apis`` as a process: the HTTP services are listed with the
instruments, answer apis-main's calls, and on SIGTERM stop with every converter at WAIT."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx

from instruments.emulation.process import start_emulator
from instruments.wire.dcdc_batt_comm import REQUEST_TIMEOUT_S

ROOT = Path(__file__).resolve().parents[1]
EMULATED_BENCH = ROOT / "fixtures" / "benches" / "emulated.toml"
STOP_TIMEOUT_S = 30.0


def test_emulate_apis_lists_and_serves_every_apis_unit(tmp_path: Path) -> None:
    log = tmp_path / "emulator.log"
    emulator = start_emulator(EMULATED_BENCH, apis=True, log_path=log)
    try:
        services = {s.unit: s for s in emulator.info.services}
        assert sorted(services) == ["E001", "E002", "E003", "E004"]  # E005 has no BMS
        assert all(s.resource.startswith("http://127.0.0.1:") for s in services.values())
        assert all(s.driver == "apis_http" for s in services.values())
        assert not any(key.endswith(".apis") for key in emulator.resources)
        with httpx.Client(timeout=REQUEST_TIMEOUT_S, trust_env=False) as http:
            for service in services.values():
                version = http.get(service.resource + "/version/get").json()
                assert version["comm_interface_version"] == "2.0"
            url = services["E001"].resource
            body = http.get(
                url + "/dcdc/set", params={"mode": "0x0014", "dvg": 350, "dig": 2.3, "drg": 0}
            ).json()
            assert body["status"]["operationMode"] == "Grid Autonomy"
        emulator.process.send_signal(signal.SIGTERM)
        assert emulator.process.wait(STOP_TIMEOUT_S) == 0
    finally:
        emulator.stop()
    text = log.read_text(encoding="utf-8")
    assert "APIS front stopped serving; converters of E001, E002, E003, E004 set to WAIT" in text
    assert "NOT safe" not in text


def test_emulate_apis_without_apis_units_is_a_clear_error(tmp_path: Path) -> None:
    text = EMULATED_BENCH.read_text(encoding="utf-8")
    header = text[: text.index("[[units]]")]
    supply = text[text.index('id = "SUP1"') - len("[[units]]\n") :]
    supply = supply[: supply.index("[[units]]", 10)]
    bench = tmp_path / "supply-only.toml"
    bench.write_text(header + supply, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "hil.cli", "emulate", str(bench), "--apis"],
        capture_output=True,
        text=True,
        timeout=STOP_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "no APIS unit (a converter with a BMS) to serve" in done.stderr
