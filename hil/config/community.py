"""The community part of a bench file: the ``[community]`` table.

A bench whose units negotiate deals autonomously (``hil.autonomy.agents``) names here the APIS
``scenario.json`` every unit starts with (a path relative to the bench file and inside its
folder, or an absolute path given on purpose; read unchanged, ``//`` comments included),
the members (APIS ``memberUnitIds``; default: every unit with a battery) and the seed of
the agents' phases. The scenario is loaded and checked with the bench file, so a broken
scenario is reported before any instrument is touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hil.config.scenario import Scenario, load_scenario
from hil.config.toml_source import Table
from hil.errors import ConfigError


@dataclass(frozen=True)
class CommunityConfig:
    """Who negotiates, on which scenario, with which seed."""

    scenario_path: Path
    scenario: Scenario
    members: tuple[str, ...] = ()
    seed: int = 0


def _confined(table: Table, name: str, bench_path: Path) -> Path:
    """``name`` as a path: an absolute one as given (on purpose), a relative one inside the
    bench file's folder. ``..`` or a symbolic link that leads out of the folder is refused,
    so a bench file cannot make the toolkit read, say, ``../../etc/passwd``."""
    path = Path(name)
    if path.is_absolute():
        return path
    folder = bench_path.parent.resolve()
    resolved = (folder / path).resolve()
    if not resolved.is_relative_to(folder):
        raise table.error(
            "scenario",
            f"{name!r} leads out of the bench file's folder {folder} (to {resolved})",
            "a path inside the bench file's folder, or an absolute path given on purpose",
        )
    return resolved


def read_community(
    table: Table | None, bench_path: Path, battery_units: Sequence[str], unit_ids: Sequence[str]
) -> CommunityConfig | None:
    """Read ``[community]`` (absent: None); errors name the key and what is allowed."""
    if table is None:
        return None
    name = table.string("scenario")
    path = _confined(table, name, bench_path)
    if not path.is_file():
        raise table.error(
            "scenario", f"{name!r}: no such file ({path})", "an APIS scenario.json file path"
        )
    try:
        scenario = load_scenario(path)
    except ConfigError as exc:
        raise table.error(
            "scenario", f"{name!r} is not a valid scenario ({exc})", "a valid APIS scenario.json"
        ) from exc
    members = table.string_list("members")
    for uid in members:
        if uid not in unit_ids:
            raise table.error(
                "members", f"{uid!r} is not a unit of this bench", ", ".join(unit_ids)
            )
        if uid not in battery_units:
            raise table.error(
                "members",
                f"unit {uid} has no battery (no BMS), so it has no state of charge",
                "units with a battery: " + ", ".join(battery_units),
            )
    if len(set(members)) != len(members):
        raise table.error("members", "a unit is listed twice", "each unit once")
    seed = table.integer("seed", 0, minimum=0)
    table.finish()
    return CommunityConfig(path, scenario, tuple(members), seed)
