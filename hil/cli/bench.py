"""``hil bench generate --houses N``: write a community bench of N houses and its scenario.

The new bench copies a 19-house template (default: the packaged
``fixtures/benches/community-19.toml``) scaled to N houses with the same household mix and
the same rules:

- the template's bus, APIS numbers, default envelope, emulation seed and start of day and
  its ``[community]`` seed, unchanged; its scenario file copied unchanged beside the new
  bench (``<name>.scenario.json``);
- house ``i`` (0-based) is the template's house ``i mod M`` (M houses in the template): the
  same instruments, battery, state of charge, PV and load (its household seed is derived
  from its own id, as for any house that names none);
- the houses fill branches in order, as many per branch as the template's largest branch;
  branch ``j`` takes the capacity and line resistance of the template's branch ``j mod B``,
  the house at position ``k`` of a branch the line resistance of the template's house at
  position ``k`` of that branch (cyclically), and the hub's ``exchange_current_sum_max``
  grows with the number of branches (the template's per branch).

Generating 19 houses from the 19-house template gives back the template's units, plant and
rules (``tests/test_bench_generate.py``). A bad argument or template is one line, exit 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The 19-house community the generated ones copy, beside the ``hil`` package.
TEMPLATE = Path(__file__).resolve().parents[2] / "fixtures" / "benches" / "community-19.toml"
MAX_HOUSES = 1000
#: Tables copied unchanged from the template (``[bus]`` too, its hub limit scaled).
_COPIED_TABLES = ("apis", "default_envelope")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bench_command", metavar="ACTION")
    gen = sub.add_parser(
        "generate",
        help="write a community bench of N houses (and its scenario) from the 19-house one",
    )
    gen.add_argument("--houses", type=int, required=True, help=f"houses, 1..{MAX_HOUSES}")
    gen.add_argument(
        "--out",
        type=Path,
        default=None,
        help="bench file to write (default: community-N.toml here); the scenario goes beside "
        "it as <stem>.scenario.json",
    )
    gen.add_argument(
        "--template", type=Path, default=TEMPLATE, help="community bench to copy (default: 19)"
    )
    gen.add_argument("--force", action="store_true", help="overwrite existing files")


def run(args: argparse.Namespace) -> int:
    if getattr(args, "bench_command", None) != "generate":
        print("hil bench: give an action: generate", file=sys.stderr)
        return 2
    out = args.out or Path(f"community-{args.houses}.toml")
    try:
        bench_path, scenario_path = write_community(
            args.houses, out, template=args.template, force=args.force
        )
    except GenerateError as exc:
        print(f"hil bench generate: {exc}", file=sys.stderr)
        return 2
    print(f"{bench_path}\n{scenario_path}")
    return 0


class GenerateError(Exception):
    """Why a community bench cannot be generated (one line)."""


@dataclass(frozen=True)
class _House:
    """One house of the template: its unit table and its emulated port table."""

    unit: Mapping[str, Any]
    port: Mapping[str, Any]


def write_community(
    houses: int, out: Path, *, template: Path = TEMPLATE, force: bool = False
) -> tuple[Path, Path]:
    """Write the bench of ``houses`` houses to ``out`` and its scenario beside it; returns
    both paths. ``GenerateError`` (nothing written) for a bad count, template or target."""
    if not 1 <= houses <= MAX_HOUSES:
        raise GenerateError(f"--houses {houses}: must be 1..{MAX_HOUSES}")
    data = _read_template(template)
    scenario_source = template.parent / data["community"]["scenario"]
    try:
        scenario_text = scenario_source.read_text(encoding="utf-8")
    except OSError as exc:
        raise GenerateError(
            f"{scenario_source}: cannot read the template's scenario: {exc}"
        ) from None
    scenario_path = out.with_name(f"{out.stem}.scenario.json")
    for path in (out, scenario_path):
        if path.exists() and not force:
            raise GenerateError(f"{path} exists; add --force to overwrite it")
    text = community_text(houses, data, template, scenario_path.name)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        scenario_path.write_text(scenario_text, encoding="utf-8")
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise GenerateError(f"{exc.filename or out}: cannot write: {exc.strerror or exc}") from None
    return out, scenario_path


def _read_template(template: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(template.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise GenerateError(f"{template}: cannot read the template bench: {exc}") from None
    for key in ("units", "community", "emulation", "topology", "bus"):
        if key not in data:
            raise GenerateError(f"{template}: the template bench has no [{key}]")
    ports = data["emulation"].get("ports", {})
    missing = [u["id"] for u in data["units"] if u["id"] not in ports]
    if missing:
        raise GenerateError(
            f"{template}: units {', '.join(missing)} have no [emulation.ports.<id>] to copy"
        )
    return data


def branch_sizes(houses: int, per_branch: int) -> list[int]:
    """Houses per branch: as few branches as hold ``per_branch`` each, filled evenly, the
    first ones taking one more (19 houses, 7 per branch: 7, 6, 6)."""
    count = math.ceil(houses / per_branch)
    base, extra = divmod(houses, count)
    return [base + (1 if j < extra else 0) for j in range(count)]


def branch_name(index: int) -> str:
    """A, B, ..., Z, AA, AB, ... (spreadsheet columns)."""
    name = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        name = chr(ord("A") + rem) + name
    return name


def community_text(houses: int, data: Mapping[str, Any], template: Path, scenario: str) -> str:
    """The bench file of ``houses`` houses copied from the template ``data``."""
    units: Sequence[Mapping[str, Any]] = data["units"]
    ports: Mapping[str, Any] = data["emulation"]["ports"]
    mix = [_House(u, ports[u["id"]]) for u in units]
    template_branches = list(data["topology"]["branches"])
    members = {b: [u["id"] for u in units if u.get("branch") == b] for b in template_branches}
    per_branch = max((len(m) for m in members.values()), default=len(units)) or len(units)
    sizes = branch_sizes(houses, per_branch)
    width = max(2, len(str(houses)))
    bus = dict(data["bus"])
    if "exchange_current_sum_max" in bus and template_branches:
        per = bus["exchange_current_sum_max"] / len(template_branches)
        bus["exchange_current_sum_max"] = per * len(sizes)
    out = [
        f"# A community of {houses} APIS houses generated by `hil bench generate --houses "
        f"{houses}`",
        f"# from {template.name}: the same household mix and rules, {len(sizes)} branches.",
        "",
        "schema_version = 1",
        f"name = {_value(f'community-{houses}')}",
        f"description = {_value(f'{houses} APIS houses in {len(sizes)} branches (generated)')}",
        "",
    ]
    out += _table("bus", bus)
    for key in _COPIED_TABLES:
        if key in data:
            out += _table(key, data[key])
    community = {**data["community"], "scenario": scenario}
    out += _table("community", community)
    topology = data["topology"]
    out += _table("topology", {k: v for k, v in topology.items() if k != "branches"})
    emulation_branches = data["emulation"].get("branches", {})
    plan: list[tuple[str, int, int]] = []  # (unit id, branch index, position in it)
    for j, size in enumerate(sizes):
        name = branch_name(j)
        source = template_branches[j % len(template_branches)]
        out += _table(f"topology.branches.{name}", topology["branches"][source])
        plan += [(f"H{len(plan) + k + 1:0{width}d}", j, k) for k in range(size)]
    for i, (uid, j, _) in enumerate(plan):
        branch = branch_name(j)
        unit = mix[i % len(mix)].unit
        fields = {k: v for k, v in unit.items() if k not in ("id", "branch", "instruments")}
        fields["description"] = f"house {uid[1:]} on branch {branch} (as template {unit['id']})"
        out += ["[[units]]", f"id = {_value(uid)}"]
        out += [f"{k} = {_value(v)}" for k, v in fields.items()]
        out.append(f"branch = {_value(branch)}")
        for inst in unit["instruments"]:
            out += ["  [[units.instruments]]"]
            out += [f"  {k} = {_value(v)}" for k, v in inst.items() if not isinstance(v, dict)]
            for k, v in inst.items():
                if isinstance(v, dict):
                    out += [f"  [units.instruments.{k}]"]
                    out += [f"  {kk} = {_value(vv)}" for kk, vv in v.items()]
        out.append("")
    emulation = {k: v for k, v in data["emulation"].items() if k not in ("branches", "ports")}
    out += _table("emulation", emulation)
    for j in range(len(sizes)):
        source = template_branches[j % len(template_branches)]
        if source in emulation_branches:
            out += _table(f"emulation.branches.{branch_name(j)}", emulation_branches[source])
    for i, (uid, j, k) in enumerate(plan):
        port = dict(mix[i % len(mix)].port)
        source_branch = template_branches[j % len(template_branches)]
        peers = members.get(source_branch) or [h.unit["id"] for h in mix]
        peer_port = ports[peers[k % len(peers)]]
        if "line_resistance" in peer_port:
            port["line_resistance"] = peer_port["line_resistance"]
        port.pop("household", None)
        household = mix[i % len(mix)].port.get("household")
        out += _table(f"emulation.ports.{uid}", port)
        if household is not None:
            house = {k2: v for k2, v in household.items() if k2 != "seed"}
            out += _table(f"emulation.ports.{uid}.household", house)
    return "\n".join(out).rstrip() + "\n"


def _table(name: str, values: Mapping[str, Any]) -> list[str]:
    lines = [f"[{name}]"]
    nested = []
    for key, value in values.items():
        if isinstance(value, dict):
            nested.append((key, value))
        else:
            lines.append(f"{key} = {_value(value)}")
    lines.append("")
    for key, value in nested:
        lines += _table(f"{name}.{key}", value)
    return lines


def _value(value: Any) -> str:
    """A TOML value: strings as basic strings (JSON escapes are TOML's), numbers, booleans
    and arrays of those."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise GenerateError(f"cannot write the number {value!r} to a bench file")
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise GenerateError(f"cannot write {type(value).__name__} {value!r} to a bench file")
