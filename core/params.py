"""Typed, self-validating step configurations whose fields carry their own form metadata.

A step config is a frozen dataclass whose fields are JSON primitives (bool, int, float, str,
or a list of those). Each field is declared with :func:`param`, which records the label, help,
range, choices and unit the GUI needs to build an editor, and which ``__post_init__`` uses to
validate values. Nothing here imports torch, so the GUI can read every declaration.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, ClassVar

from core.errors import ConfigError, brief, brief_names

_META_KEY = "workbench"


@dataclass(frozen=True)
class ParamMeta:
    """What the editor shows for one field, and the bounds it enforces."""

    label: str
    help: str = ""
    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False
    choices: tuple[Any, ...] | None = None
    unit: str = ""
    sweepable: bool = True  # numeric fields may hold a list of values in a sweep
    model_ref: bool = False  # a text field naming a model (folder, packaged name or hub id), checked as one


def param(
    default: Any,
    *,
    label: str,
    help: str = "",
    min: float | None = None,
    max: float | None = None,
    min_exclusive: bool = False,
    choices: typing.Iterable[Any] | None = None,
    unit: str = "",
    sweepable: bool = True,
    model_ref: bool = False,
) -> Any:
    """Declare a config field with its metadata. Lists need a tuple default (frozen dataclass)."""
    meta = ParamMeta(
        label=label,
        help=help,
        min=min,
        max=max,
        min_exclusive=min_exclusive,
        choices=tuple(choices) if choices is not None else None,
        unit=unit,
        sweepable=sweepable,
        model_ref=model_ref,
    )
    return dataclasses.field(default=default, metadata={_META_KEY: meta})


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    """A config class's resolved annotations, once per class (a sweep builds thousands of configs)."""
    return typing.get_type_hints(cls)


def _base_type(annotation: Any) -> tuple[type, bool, bool]:
    """(element type, is_list, optional) of a field annotation such as ``int``, ``list[str]`` or ``str | None``."""
    optional = False
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(args) != len(typing.get_args(annotation))
        annotation = args[0]
        origin = typing.get_origin(annotation)
    if origin in (list, tuple):
        return typing.get_args(annotation)[0], True, optional
    return annotation, False, optional


@dataclass(frozen=True)
class StepConfig:
    """Base class of every step config. Subclasses are frozen dataclasses using :func:`param`."""

    version: ClassVar[int] = 1

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):  # lists become tuples so the frozen config stays hashable
                object.__setattr__(self, f.name, tuple(value))
                value = getattr(self, f.name)
            self._check_field(f, value)
        self.validate()

    def validate(self) -> None:
        """Cross-field checks; raise :class:`ConfigError` naming the field."""

    # --- metadata -------------------------------------------------------------------------
    @classmethod
    def fields_meta(cls) -> list[tuple[dataclasses.Field, ParamMeta, type, bool]]:
        hints = _type_hints(cls)
        out = []
        for f in dataclasses.fields(cls):
            meta = f.metadata.get(_META_KEY) or ParamMeta(label=f.name.replace("_", " ").capitalize())
            elem, is_list, _ = _base_type(hints[f.name])
            out.append((f, meta, elem, is_list))
        return out

    @classmethod
    def describe(cls) -> list[dict[str, Any]]:
        """JSON-ready description of every field, for form generation."""
        out = []
        for f, meta, elem, is_list in cls.fields_meta():
            default = f.default if f.default is not dataclasses.MISSING else None
            out.append(
                {
                    "name": f.name,
                    "type": elem.__name__,
                    "list": is_list,
                    "default": list(default) if isinstance(default, tuple) else default,
                    **{k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(meta).items()},
                }
            )
        return out

    # --- JSON round trip ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
            for f in dataclasses.fields(self)
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, step: str = "") -> StepConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names, key=str)
        where = f"step '{step}': " if step else ""
        if unknown:
            raise ConfigError(
                f"{where}unknown field(s) {brief_names(unknown)}; expected some of {', '.join(sorted(names))}",
                step=step,
                field=str(unknown[0]),
            )
        try:
            return cls(**data)
        except ConfigError as exc:
            if step and not exc.step:
                exc.step = step
                exc.args = (f"step '{step}': {exc.args[0]}",)
            raise
        except TypeError as exc:  # e.g. a required field missing
            raise ConfigError(f"{where}{exc}", step=step) from exc

    # --- validation -----------------------------------------------------------------------
    def _check_field(self, f: dataclasses.Field, value: Any) -> None:
        hints = _type_hints(type(self))
        elem, is_list, optional = _base_type(hints[f.name])
        meta: ParamMeta | None = f.metadata.get(_META_KEY)
        label = meta.label if meta else f.name
        if value is None:
            if optional:
                return
            raise ConfigError(f"{label} ({f.name}) needs a value", field=f.name)
        values = value if is_list else (value,)
        if is_list and not isinstance(value, tuple):
            raise ConfigError(f"{label} ({f.name}) must be a list of {_PLURAL.get(elem, 'values')}, got {brief(value)}",
                              field=f.name)
        for v in values:
            _check_value(f.name, label, elem, meta, v)


_TYPE_CHECKS: dict[type, typing.Callable[[Any], bool]] = {
    bool: lambda x: isinstance(x, bool),
    int: lambda x: isinstance(x, int) and not isinstance(x, bool),
    float: lambda x: isinstance(x, (int, float)) and not isinstance(x, bool),
    str: lambda x: isinstance(x, str),
}


def _anything(_value: Any) -> bool:
    return True


# What a value must be, in words a user reads (not Python's type names).
_WORDS = {bool: "true or false", int: "a whole number", float: "a number", str: "text"}
_PLURAL = {bool: "true or false values", int: "whole numbers", float: "numbers", str: "texts"}


def _check_value(name: str, label: str, elem: type, meta: ParamMeta | None, v: Any) -> None:
    if not _TYPE_CHECKS.get(elem, _anything)(v):
        what = _WORDS.get(elem, elem.__name__)
        if elem is float and isinstance(v, str) and _reads_as_non_finite(v):
            what = "a finite number"  # 'nan' typed or read as text: say what is wrong with it
        got = f"the text {brief(v)}" if isinstance(v, str) and elem is not str else brief(v)  # '5' quoted in YAML
        raise ConfigError(f"{label} ({name}) must be {what}, got {got}", field=name)
    if elem is float and not _finite(v):  # NaN fails every range check below, so it must be refused here
        raise ConfigError(f"{label} ({name}) must be a finite number, got {brief(v)}", field=name)
    if meta is None:
        return
    if meta.choices is not None and v not in meta.choices:
        raise ConfigError(
            f"{label} ({name}) must be one of {', '.join(map(str, meta.choices))}; got {brief(v)}", field=name
        )
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        unit = f" {meta.unit}" if meta.unit else ""
        if meta.min is not None and (v < meta.min or (meta.min_exclusive and v == meta.min)):
            op = ">" if meta.min_exclusive else ">="
            raise ConfigError(f"{label} ({name}) must be {op} {meta.min}{unit}; got {brief(v)}", field=name)
        if meta.max is not None and v > meta.max:
            raise ConfigError(f"{label} ({name}) must be <= {meta.max}{unit}; got {brief(v)}", field=name)


def _reads_as_non_finite(text: str) -> bool:
    try:
        return not _finite(float(text))
    except ValueError:
        return False


def _finite(v: float) -> bool:
    """Neither NaN nor ±inf, nor a whole number too large for a float (YAML reads 1e400 as inf)."""
    try:
        return math.isfinite(v)
    except OverflowError:
        return False
