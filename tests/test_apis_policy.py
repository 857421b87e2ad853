"""The APIS policy fields: declared once, and parsing, rules and docs derived from that."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil.config.apis_policy import (
    ApisPolicy,
    apis_table_markdown,
    deal_number_problem,
    declared_fields,
    read_apis_policy,
)
from hil.config.deal_policy import DealPolicy
from hil.config.toml_source import TomlSource
from hil.envelope import BusEnvelope
from hil.errors import ConfigError

DOCS = Path(__file__).resolve().parents[1] / "docs" / "bench-file.md"
BUS = BusEnvelope(
    voltage_min=300.0,
    voltage_max=400.0,
    balance_allowance_per_unit=0.25,
    exchange_current_sum_max=10.0,
)


def apis(text: str) -> ApisPolicy:
    """``[apis]`` with ``text`` read against a 300-400 V bus at 350 V."""
    table = TomlSource("[apis]\n" + text, "bench.toml").root().table("apis", required=True)
    assert table is not None
    return read_apis_policy(table, BUS, 350.0)


def test_the_docs_table_is_the_declarations() -> None:
    assert apis_table_markdown() in DOCS.read_text(encoding="utf-8")


def test_every_field_has_its_apis_key() -> None:
    assert set(ApisPolicy.APIS_KEYS) == set(apis("").as_dict())
    keys = set(DealPolicy.APIS_KEYS)
    assert keys == {f for f in DealPolicy().as_dict() if f in declared_fields(DealPolicy)}
    assert "unit_battery_wh" not in keys


@pytest.mark.parametrize(
    "name", [n for n, (d, _) in declared_fields(ApisPolicy).items() if d.kind != "bus"]
)
def test_every_settable_key_is_read_and_bounded_as_declared(name: str) -> None:
    declared, default = declared_fields(ApisPolicy)[name]
    assert getattr(apis(""), name) == default
    top = declared.bounds()["maximum"]
    with pytest.raises(ConfigError, match=rf"bench\.toml:2: apis\.{name}: .*out of range"):
        apis(f"{name} = {top * 2 + 1}\n")


@pytest.mark.parametrize(
    ("numbers", "rule"),
    [
        ((200, 100, 50, 1.0, 2.3), ("amount_min", 200, 100)),
        ((50, 100, 150, 1.0, 2.3), ("amount_unit", 150, 100)),
        ((50, 100, 50, 3.0, 2.3), ("deal_current", 3.0, 2.3)),
        ((50, 100, 50, 2.3, 2.3), None),
    ],
)
def test_the_deal_rules_are_one_function(
    numbers: tuple[int, int, int, float, float], rule: tuple[str, float, float] | None
) -> None:
    assert deal_number_problem(*numbers) == rule


@pytest.mark.parametrize(
    ("apis_keys", "policy", "apis_message", "policy_message"),
    [
        (
            "deal_amount_min_wh = 1000000\ndeal_amount_max_wh = 999999\n",
            {"amount_min_wh": 1_000_000, "amount_max_wh": 999_999},
            "apis.deal_amount_min_wh: 1000000 Wh is above deal_amount_max_wh 999999 Wh",
            "amount_min_wh (mediator.deal.amountMinWh): 1000000 Wh is above amount_max_wh "
            "999999 Wh",
        ),
        (
            "deal_amount_unit_wh = 100\n",
            {"amount_unit_wh": 100},
            "apis.deal_amount_unit_wh: 100 Wh is above deal_amount_max_wh 50 Wh, so every "
            "deal would floor to 0 Wh",
            "amount_unit_wh (mediator.deal.amountUnitWh): 100 Wh is above amount_max_wh 50 Wh, "
            "so every deal would floor to 0 Wh",
        ),
        (
            "deal_current = 3.0\n",
            {"deal_current": 3.0},
            "apis.deal_current: 3 A is above unit_current_capacity 2.3 A, so no unit could "
            "make a deal",
            "deal_current (mediator.deal.gridCurrentA): 3 A is above the unit capacity 2.3 A, "
            "so no unit could make a deal",
        ),
    ],
)
def test_each_caller_words_the_shared_rule(
    apis_keys: str, policy: dict[str, object], apis_message: str, policy_message: str
) -> None:
    with pytest.raises(ConfigError) as from_file:
        apis(apis_keys)
    assert apis_message in str(from_file.value)
    with pytest.raises(ConfigError) as from_object:
        DealPolicy(**policy)  # type: ignore[arg-type]
    assert str(from_object.value) == f"deal policy: {policy_message}"
