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
        ("amount", "x", "amount.*a number"),
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


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), 10**400])
@pytest.mark.parametrize("field", ["amount", "temperature"])
def test_nan_and_infinite_floats_are_refused_naming_the_field(field: str, value: float) -> None:
    """NaN fails every range check (all comparisons are False), so it used to pass and crash the run."""
    with pytest.raises(ConfigError, match=rf"\({field}\) must be a finite number") as info:
        _Example.from_dict({field: value}, step="demo")
    assert info.value.field == field


def test_nan_in_every_float_field_of_every_step_is_refused() -> None:
    from core.steps.base import all_steps

    checked = 0
    for step in all_steps():
        for f, _meta, elem, _is_list in step.config_cls.fields_meta():
            if elem is not float:
                continue
            with pytest.raises(ConfigError, match="finite number") as info:
                step.config_cls.from_dict({f.name: float("nan")}, step=step.id)
            assert info.value.field == f.name
            checked += 1
    assert checked >= 10  # finetune, distill, prune, share_layers, vocab ... all have float fields


def test_huge_values_are_quoted_briefly() -> None:
    with pytest.raises(ConfigError) as info:
        _Example.from_dict({"mode": "x" * 5_000_000})
    message = str(info.value)
    assert len(message) < 300 and "5,000,000 characters" in message
    with pytest.raises(ConfigError) as info:
        _Example.from_dict({"groups": ["query"] * 100_000 + [7]})
    assert len(str(info.value)) < 300
    with pytest.raises(ConfigError) as info:
        _Example.from_dict({"amount": 10**1000})
    assert len(str(info.value)) < 300 and "digits" in str(info.value)
