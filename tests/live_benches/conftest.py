"""Collect ``live_bench.py`` only for the live-page tests' child runs (``HIL_LIVE_BENCH``
set): its tests wait for an operator, so the suite itself must never collect them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    if file_path.name == "live_bench.py" and os.environ.get("HIL_LIVE_BENCH"):
        module: pytest.Module = pytest.Module.from_parent(parent, path=file_path)
        return module
    return None
