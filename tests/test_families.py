"""Every instrument family is declared once and complete; the layers above never name one.

A family is found by importing the ``instruments`` package's modules; its ratings file,
its emulator model and the adapter of its function are found the same way, so these
tests are what tells a new family's author that a piece is missing.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from hil.config.ratings import model_table
from hil.errors import ConfigError
from hil.units.factory import BATTERY_SIDE_ONLY, adapters
from instruments.emulation.models import models
from instruments.families import FUNCTIONS, Family, families, family
from instruments.roles import BidirectionalSupply, Bms, Converter, Load, SourceSupply

ROOT = Path(__file__).resolve().parent.parent
ROLES: dict[str, type] = {
    "supply": SourceSupply,
    "load": Load,
    "bidirectional": BidirectionalSupply,
    "converter": Converter,
    "bms": Bms,
}
#: Modules above ``instruments`` that still name a family, and why (empty when none do).
STILL_NAMING: dict[str, str] = {
    "reports/synthetic.py": "synthetic demo records carry the APIS rig's driver names as data",
}


def driver_class(fam: Family) -> type:
    owner = getattr(fam.opener, "__self__", None)
    assert isinstance(owner, type), f"{fam.name}: its opener is not a driver classmethod"
    return owner


def test_the_known_families_are_found_without_a_central_list() -> None:
    assert set(families()) >= {
        "n5700",
        "it6000c",
        "chroma63200a",
        "psb10000",
        "psb10000-scpi",
        "eza2500",
        "apis_bms",
    }
    assert driver_class(family("eza2500")).__name__ == "Eza2500"
    assert family("apis_bms").transport == "modbus_rtu"
    with pytest.raises(ConfigError, match="known drivers: apis_bms"):
        family("it8900")


@pytest.mark.parametrize("name", sorted(families()))
def test_every_family_has_ratings_a_model_and_an_adapter(name: str) -> None:
    fam = family(name)
    assert fam.function in FUNCTIONS
    assert (ROOT / "instruments" / fam.ratings).is_file(), fam.ratings
    assert model_table()[fam.ratings_table], f"{name}: its ratings file lists no model"
    if fam.no_emulator_model:
        assert name not in models(), f"{name}: has a model, yet says it has none"
        assert fam.no_emulator_model.strip(), f"{name}: no emulator model, and no reason given"
    else:
        assert models()[name].driver == name, f"{name}: no emulator model registered"
    if fam.unadapted:
        assert fam.unadapted.strip(), f"{name}: no adapter, and no reason given"
    else:
        assert fam.function in adapters() or fam.function in BATTERY_SIDE_ONLY, name


@pytest.mark.parametrize("name", sorted(families()))
def test_every_driver_has_the_members_of_its_role(name: str) -> None:
    fam = family(name)
    role = ROLES.get(fam.function)
    cls = driver_class(fam)
    for member in ("resource", "identify", "probe", "reconnect", "close"):
        assert hasattr(cls, member), (name, member)
    if role is None or fam.unadapted:
        return
    properties = {"name", "rating"}  # instance attributes on some drivers
    missing = [
        m
        for m in dir(role)
        if not m.startswith("_")
        and m not in properties
        and inspect.getattr_static(cls, m, None) is None
    ]
    assert not missing, f"{name} ({cls.__name__}) lacks {missing} of {role.__name__}"


@pytest.mark.parametrize("name", sorted(families()))
def test_settings_defaults_become_open_keywords(name: str) -> None:
    fam = family(name)
    opener = inspect.signature(fam.opener)
    for spec in fam.settings:
        if spec.opens:
            assert spec.name in opener.parameters, (name, spec.name)
            declared = opener.parameters[spec.name].default
            assert declared == spec.default, (name, spec.name, declared, spec.default)
    for keyword in fam.open_keywords:
        assert keyword in opener.parameters, (name, keyword)


def test_no_module_above_instruments_names_a_family() -> None:
    names = set()
    for fam in families().values():
        names |= {fam.name, driver_class(fam).__name__}
    words = sorted(names, key=len, reverse=True)
    pattern = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, words)) + r")(?![\w-])", re.I)
    found = {}
    for top in ("hil", "fixtures", "reports"):
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            hits = sorted({m.group(0) for m in pattern.finditer(path.read_text(encoding="utf-8"))})
            if hits and rel not in STILL_NAMING:
                found[rel] = hits
    assert not found, f"modules naming an instrument family: {found}"
