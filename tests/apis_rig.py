"""An emulated bench whose APIS units are served through APIS's device HTTP API.

:func:`served` starts the default emulated bench in-process (simulated time), the APIS
front on its resources (ephemeral loopback ports) and a plain httpx client, and stops them
in reverse order. :class:`ApisClient` makes the calls apis-main makes, with its 5 s
timeout; ``wait`` advances simulated time as apis-main's 100 ms checkpoint wait does.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from hil.config.bench import BenchConfig
from hil.config.benchfile import load_bench_file
from hil.units import EMULATOR_DRIVER_OPTIONS
from hil.units.apis_front import ApisFront
from instruments.emulation.client import ControlClient
from instruments.emulation.process import EmulatorThread
from instruments.wire.dcdc_batt_comm import CHECK_WAIT_S, REQUEST_TIMEOUT_S

ROOT = Path(__file__).resolve().parents[1]
EMULATED_BENCH = ROOT / "fixtures" / "benches" / "emulated.toml"
#: Drivers retry once against the emulator (as the other emulated tests do).
DRIVER_OPTIONS = {**EMULATOR_DRIVER_OPTIONS, "eza2500": {"pacing": 0.0, "retries": 1}}


@dataclass
class ApisClient:
    """A plain HTTP client of the served units, with apis-main's timeout."""

    http: httpx.Client
    urls: Mapping[str, str]
    emulator_url: str
    control: ControlClient

    def get(self, unit: str, path: str, **params: Any) -> httpx.Response:
        return self.http.get(self.urls[unit] + path, params=params or None)

    def ok(self, unit: str, path: str, **params: Any) -> dict[str, Any]:
        """GET; asserts 200 and returns the JSON object."""
        response = self.get(unit, path, **params)
        assert response.status_code == 200, (unit, path, params, response.text)
        body = response.json()
        assert isinstance(body, dict)
        return body

    def wait(self, seconds: float = CHECK_WAIT_S) -> None:
        """Let ``seconds`` of simulated time pass (apis-main's checkpoint wait)."""
        self.control.advance(seconds)


@contextmanager
def served(path: Path = EMULATED_BENCH) -> Iterator[tuple[ApisClient, ApisFront, BenchConfig]]:
    config = load_bench_file(path)
    with EmulatorThread(config) as emulator:
        front = ApisFront.start(config, resources=emulator.resources, driver_options=DRIVER_OPTIONS)
        try:
            with httpx.Client(timeout=REQUEST_TIMEOUT_S, trust_env=False) as http:
                urls = {s.unit: s.url for s in front.served}
                yield ApisClient(http, urls, front.emulator_url, emulator.control), front, config
        finally:
            front.stop()
