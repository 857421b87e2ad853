"""Synthetic run records with realistic shape, for the report's tests and benchmark.

:func:`write_synthetic_run` writes, through the real :class:`hil.records.RecordWriter`, a
run of ``tests`` tests on a four-unit bench, each with one APIS-style exchange (activation,
ramp-up, warm-up in 1 A steps, compensation, running, stop) whose currents, bus voltage and
balance residual follow the sequence with seeded measurement noise, plus measurements
against limits. Options make some tests fail, trip the supervisor, or stop the record
before its end as a killed run would, and add a community-day test with its ``community``
line (:mod:`reports.synthetic_community`: 19 units, a day of deals, SoC every 300 s).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hil.records import RecordWriter
from hil.run_header import run_end_fields
from reports.synthetic_community import community_fields

BUS_V = 350.0
UNITS = ("E001", "E002", "E003", "E004")


@dataclass(frozen=True)
class SyntheticOptions:
    """What the synthetic run contains."""

    tests: int = 3
    points: int = 600
    fail_every: int = 0  # every n-th test fails a measurement (0: none)
    trip_test: int | None = None  # index of a test that ends in a safety trip
    stop_after: int | None = None  # stop the record inside this test (no test_end, no run_end)
    unit_names: tuple[str, ...] = UNITS
    bench_text: str = 'schema_version = 1\nname = "synthetic"\n'
    seed: int = 7
    community: bool = False  # a last test: a community day with its ``community`` line
    community_units: int = 19


def _header(options: SyntheticOptions) -> dict[str, Any]:
    units = options.unit_names
    envelope = {
        "unit_id": "",
        "voltage_min": 300.0,
        "voltage_max": 380.0,
        "current_source_max": 2.3,
        "current_sink_max": 2.3,
        "power_max": 900.0,
        "slew_max": 10.0,
        "soc_min": 0.2,
        "soc_max": 0.95,
        "battery_voltage_min": 44.0,
        "battery_voltage_max": 56.0,
        "can_source": True,
        "can_sink": True,
    }
    return {
        "run_id": "synthetic-0001",
        "bench": {
            "name": "synthetic",
            "description": "four APIS units on a 350 V bus (synthetic record)",
            "path": "fixtures/benches/synthetic.toml",
            "sha256": hashlib.sha256(options.bench_text.encode()).hexdigest(),
            "text": options.bench_text,
        },
        "emulated": True,
        "instruments": [
            {
                "unit": uid,
                "instrument": inst,
                "driver": inst,
                "resource": f"TCPIP0::127.0.0.1::{5025 + i}::SOCKET",
                "vendor": "TDK-Lambda" if inst == "eza2500" else "Sony CSL",
                "model": "EZA-2500-32048SC0" if inst == "eza2500" else "APIS-48V-4.8kWh",
                "serial": f"EMU-{uid}-{inst[:3].upper()}",
                "firmware": "1.0 (emulated)",
                "emulated": True,
            }
            for i, (uid, inst) in enumerate((u, n) for u in units for n in ("eza2500", "apis_bms"))
        ],
        "envelopes": {
            "bus": {
                "voltage_min": 300.0,
                "voltage_max": 380.0,
                "balance_allowance_per_unit": 0.125,
                "exchange_current_sum_max": 10.0,
                "branch_capacity": {"A": 6.0, "B": 6.0},
            },
            "units": {uid: envelope | {"unit_id": uid} for uid in units},
        },
        "software": {"toolkit": "0.1.0", "python": "3.11", "numpy": np.__version__},
        "git_revision": "0" * 40,
        "host": "synthetic-host",
        "started_at": "2025-01-31T14:25:01+09:00",
    }


def _exchange(
    writer: RecordWriter, rng: np.random.Generator, test: str, options: SyntheticOptions, trip: bool
) -> float:
    """Write the steps and series of one 2 A exchange; returns the balance residual's max."""
    source, reference, sink = options.unit_names[0], options.unit_names[1], options.unit_names[2]
    steps = [
        (0.0, "activation"),
        (2.0, "ramp-up"),
        (6.0, "warm-up 1 A"),
        (7.0, "warm-up 2 A"),
        (8.0, "compensation"),
        (9.0, "running"),
        (52.0, "stop"),
        (56.0, "deactivation"),
    ]
    for at, label in steps:
        writer.write("step", exchange="deal-1", step=label, t=at, setpoints={source: 2.0})
    t = np.linspace(0.0, 60.0, options.points)
    target = np.interp(t, [0, 6, 6.01, 7, 7.01, 52, 54, 60], [0, 0, 1, 1, 2, 2, 0, 0])
    noise = 0.01
    i_source = target + rng.normal(0.0, noise, t.size)
    i_sink = -target + rng.normal(0.0, noise, t.size)
    i_ref = rng.normal(0.0, noise, t.size)
    if trip:  # the sink's sensor loses gain at 30 s; the supervisor trips, all go to 0 A
        i_sink[t > 30] *= 0.6
        for trace in (i_source, i_sink, i_ref):
            trace[t > 36.2] = rng.normal(0.0, noise, int(np.sum(t > 36.2)))
    volts = np.interp(t, [0, 2, 6, 60], [0, 0, BUS_V, BUS_V]) + rng.normal(0, 0.2, t.size)
    residual = i_source + i_sink + i_ref
    common = {
        "test": test,
        "exchange": "deal-1",
        "t": t,
        "steps": [{"t": a, "label": b} for a, b in steps],
    }
    writer.write(
        "series",
        name="unit currents",
        unit="A",
        columns={source: i_source, reference: i_ref, sink: i_sink},
        **common,
    )
    writer.write("series", name="bus voltage", unit="V", columns={"bus": volts}, **common)
    writer.write(
        "series", name="balance residual", unit="A", columns={"residual": residual}, **common
    )
    return float(np.max(np.abs(residual)))


def write_synthetic_run(run_dir: Path, options: SyntheticOptions | None = None) -> Path:
    """Write a synthetic run record in ``run_dir``; returns the record's path."""
    options = options or SyntheticOptions()
    rng = np.random.default_rng(options.seed)
    writer = RecordWriter(run_dir)
    writer.write("run_start", **_header(options))
    outcomes: list[str] = []
    for index in range(options.tests):
        nodeid = f"test_benches/test_exchange.py::test_deal[{index:02d}]"
        writer.write(
            "test_start", nodeid=nodeid, name=f"test_deal[{index:02d}]", markers=["exchange"]
        )
        trip = options.trip_test == index
        residual = _exchange(writer, rng, nodeid, options, trip)
        failing = options.fail_every > 0 and index % options.fail_every == options.fail_every - 1
        energy = 100.0 + float(rng.normal(0, 0.3)) - (8.0 if failing else 0.0)
        rows = [
            ("energy delivered", energy, "Wh", 98.0, 102.0),
            ("balance residual max", residual, "A", 0.0, 0.5),
            ("bus voltage min", BUS_V - 0.6, "V", 346.0, 354.0),
            ("checkpoint retries", 0, "", 0.0, 3.0),
        ]
        for name, value, unit, low, high in rows:
            verdict = "PASS" if low <= value <= high else "FAIL"
            writer.write(
                "measurement",
                name=name,
                value=value,
                unit=unit,
                low=low,
                high=high,
                verdict=verdict,
            )
        if options.stop_after == index:
            writer.close()
            return writer.path
        if trip:
            writer.write(
                "safety_event",
                kind="supervisor",
                t=31.0,
                key="balance",
                check="balance",
                level="warn",
                unit=None,
                message="Σ currents of 3 units in exchanges is -0.8 A, above ±0.375 A",
            )
            writer.write(
                "safety_event",
                kind="supervisor",
                t=36.0,
                key="balance",
                check="balance",
                level="error",
                unit=None,
                message="Σ currents of 3 units in exchanges is -0.8 A, above ±0.375 A "
                "(failed 2 checks in a row)",
            )
            writer.write(
                "shutdown", event="begin", reason="supervisor: balance", reference="E002", t=36.0
            )
            writer.write(
                "shutdown",
                event="end",
                reason="supervisor: balance",
                reference="E002",
                t=42.1,
                started=36.0,
                finished=42.1,
                unconfirmed=[],
                steps=[
                    {
                        "unit": options.unit_names[0],
                        "action": "set_current(0)",
                        "t": 36.0,
                        "ok": True,
                        "detail": "",
                    },
                    {
                        "unit": options.unit_names[2],
                        "action": "idle",
                        "t": 36.1,
                        "ok": True,
                        "detail": "",
                    },
                    {"unit": "E002", "action": "idle", "t": 41.2, "ok": True, "detail": ""},
                ],
            )
        outcome = "SAFETY TRIP" if trip else "FAIL" if failing else "PASS"
        message = (
            "SafetyTrip: supervisor: balance"
            if trip
            else "energy delivered 92 Wh below 98 Wh"
            if failing
            else ""
        )
        writer.write("test_end", nodeid=nodeid, outcome=outcome, duration_s=0.8, message=message)
        outcomes.append(outcome)
    if options.community:
        outcomes.append(_community_test(writer, options))
    writer.write("run_end", **run_end_fields(outcomes))
    writer.close()
    return writer.path


COMMUNITY_NODEID = "test_benches/test_community_day.py::test_community_day"


def _community_test(writer: RecordWriter, options: SyntheticOptions) -> str:
    """Write a community-day test: its ``community`` line and the checks on it."""
    fields = community_fields(options.community_units, options.seed)
    writer.write("test_start", nodeid=COMMUNITY_NODEID, name="test_community_day", markers=[])
    writer.write("community", test=COMMUNITY_NODEID, **fields)
    soc = np.array(list(fields["soc"].values()))
    with_, without = fields["energy"]["with_interchange"], fields["energy"]["without_interchange"]
    low, high = fields["soc_limits"]
    rows = [
        ("utility import change", with_["utility_wh"] - without["utility_wh"], "Wh", None, 0.0),
        (
            "self-consumption change",
            with_["self_consumption"] - without["self_consumption"],
            "",
            0.0,
            None,
        ),
        ("SoC minimum", float(soc.min()), "", low, None),
        ("SoC maximum", float(soc.max()), "", None, high),
    ]
    for name, value, unit, lo, hi in rows:
        writer.write("measurement", name=name, value=value, unit=unit, low=lo, high=hi)
    writer.write("test_end", nodeid=COMMUNITY_NODEID, outcome="PASS", duration_s=42.0, message="")
    return "PASS"
