"""Experiment configs: one dataclass per experiment, defaults = the quick CPU run, named profiles.

Each task declares its dataclass and registers a profile table here (`register_profiles`):
  smoke  seconds; every code path runs (tests, nbval)
  cpu    a real result on a 2-core CPU within minutes
  paper  GPU, full resolution, paper-scale iterations
A config class also declares `RESUME_MAY_CHANGE`: the fields a resumed run may change (how long, how often,
where it runs). The config is saved inside every checkpoint, so a run can always be rebuilt from it.
This module knows no task: it validates fields by the rules a config passes to `check_fields`.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, TypeVar

PROFILES = ("smoke", "cpu", "paper")

T = TypeVar("T")


class ConfigError(ValueError):
    """A bad profile name, field name or field value."""


def default_profile() -> str:
    """`paper` when CUDA is available, else `cpu`; `INDPRIOR_PROFILE` overrides (used by `make test`)."""
    env = os.environ.get("INDPRIOR_PROFILE")
    if env:
        return check_profile(env)
    import torch

    return "paper" if torch.cuda.is_available() else "cpu"


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise ConfigError(f"profile={profile!r} is unknown; expected one of {', '.join(PROFILES)}")
    return profile


def check_fields(cfg: Any, *, at_least_1: tuple[str, ...] = (), non_negative: tuple[str, ...] = (),
                 unit: tuple[str, ...] = (), positive: tuple[str, ...] = ()) -> None:
    """Raise ConfigError naming the first bad field: integers >= 1, numbers >= 0, in [0, 1], > 0; and every
    field declared `int` must hold an integer (not a float, not a bool)."""
    name = type(cfg).__name__
    rules = [(at_least_1, lambda v: v >= 1, "an integer >= 1"), (non_negative, lambda v: v >= 0, "a number >= 0"),
             (unit, lambda v: 0 <= v <= 1, "a number in [0, 1]"), (positive, lambda v: v > 0, "a number > 0")]
    for fields, ok, expected in rules:
        for f in fields:
            value = getattr(cfg, f)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok(value):
                raise ConfigError(f"{name}.{f}={value!r}: expected {expected}")
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if f.type in ("int", int) and (isinstance(value, bool) or not isinstance(value, int)):
            raise ConfigError(f"{name}.{f.name}={value!r}: expected an integer")


def check_choice(cfg: Any, field: str, choices: tuple[Any, ...]) -> None:
    """ConfigError unless `cfg.<field>` is one of `choices`."""
    value = getattr(cfg, field)
    if value not in choices:
        raise ConfigError(f"{type(cfg).__name__}.{field}={value!r}: expected one of {', '.join(map(repr, choices))}")


def check_range(cfg: Any, field: str) -> None:
    """ConfigError unless `cfg.<field>` is a (low, high) pair with 0 < low <= high."""
    low, high = getattr(cfg, field)
    if not 0 < low <= high:
        raise ConfigError(f"{type(cfg).__name__}.{field}={getattr(cfg, field)}: expected (low, high) with 0 < low <= high")


_PROFILES: dict[type, dict[str, dict[str, Any]]] = {}


def register_profiles(cls: type, profiles: dict[str, dict[str, Any]]) -> None:
    """Every experiment (task 1, HOC, ReDO) registers its profile table here."""
    missing = set(PROFILES) - set(profiles)
    if missing:
        raise ConfigError(f"{cls.__name__} profiles lack {sorted(missing)}")
    _PROFILES[cls] = profiles


def make_config(cls: type[T], profile: str | None = None, **overrides: Any) -> T:
    """Build `cls` for a profile, then apply overrides (None values mean "keep the profile's")."""
    profile = check_profile(profile or default_profile())
    values = dict(_PROFILES.get(cls, {}).get(profile, {}))
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key, value in overrides.items():
        if key not in names:
            raise ConfigError(f"{cls.__name__} has no field {key!r}; fields: {', '.join(sorted(names))}")
        if value is not None:
            values[key] = value
    values["profile"] = profile
    return cls(**values)


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """['steps=500', 'diffaug=""'] -> {'steps': 500, 'diffaug': ''}: values are JSON, else plain strings."""
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected FIELD=VALUE")
        key, text = item.split("=", 1)
        try:
            out[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            out[key.strip()] = text
    return out


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def from_dict(cls: type[T], values: dict[str, Any]) -> T:
    """A config saved by `to_dict` (in a checkpoint). Unknown keys are dropped; a field the saved dict lacks takes
    `cls.SAVED_WITHOUT[field]` when the class names one (what runs saved before the field existed did), else its
    default, so an old run rebuilt from its checkpoint behaves as it did when it ran."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kept = {k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items() if k in names}
    before = {k: v for k, v in getattr(cls, "SAVED_WITHOUT", {}).items() if k not in kept}
    return cls(**before, **kept)
