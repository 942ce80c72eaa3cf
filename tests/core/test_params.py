"""Step configs validate themselves, describe their fields and round-trip through JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from core.errors import ConfigError
from core.params import StepConfig, param


@dataclass(frozen=True)
class _Example(StepConfig):
    amount: float = param(0.3, label="Amount", min=0.0, max=0.95, unit="fraction")
    temperature: float = param(1.0, label="Temperature", min=0.0, min_exclusive=True)
    mode: str = param("a", label="Mode", choices=("a", "b"))
    groups: tuple[str, ...] = param(("query",), label="Groups", choices=("query", "key"))
    layers: int | None = param(None, label="Layers", min=1)


def test_defaults_are_valid_and_round_trip() -> None:
    cfg = _Example()
    again = _Example.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("amount", 1.5, "amount.*<= 0.95"),
        ("temperature", 0.0, "temperature.*> 0.0"),
        ("mode", "c", "mode.*one of a, b"),
        ("groups", ["query", "nope"], "groups.*one of"),
        ("amount", "x", "amount.*float"),
        ("layers", 0, "layers.*>= 1"),
    ],
)
def test_invalid_values_name_the_field(field: str, value: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        _Example.from_dict({field: value}, step="demo")
    assert info.value.field == field
    assert info.value.step == "demo"


def test_unknown_field_lists_known_ones() -> None:
    with pytest.raises(ConfigError, match="unknown field.*amount"):
        _Example.from_dict({"amout": 0.1})


def test_describe_carries_form_metadata() -> None:
    by_name = {d["name"]: d for d in _Example.describe()}
    assert by_name["amount"]["max"] == 0.95 and by_name["amount"]["unit"] == "fraction"
    assert by_name["groups"]["list"] is True and by_name["groups"]["choices"] == ["query", "key"]
    json.dumps(_Example.describe())
