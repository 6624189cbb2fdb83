"""Experiment configs: one dataclass per experiment, defaults = the quick CPU run, named profiles.

Profiles override fields:
  smoke  seconds; every code path runs (tests, nbval)
  cpu    a real result on a 2-core CPU within minutes
  paper  GPU, full resolution (128 px), paper-scale iterations
The config is saved inside every checkpoint, so a run can always be rebuilt from its checkpoint.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
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
    """Raise ConfigError naming the first bad field: integers >= 1, numbers >= 0, in [0, 1], > 0."""
    name = type(cfg).__name__
    rules = [(at_least_1, lambda v: v >= 1, "an integer >= 1"), (non_negative, lambda v: v >= 0, "a number >= 0"),
             (unit, lambda v: 0 <= v <= 1, "a number in [0, 1]"), (positive, lambda v: v > 0, "a number > 0")]
    for fields, ok, expected in rules:
        for f in fields:
            value = getattr(cfg, f)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok(value):
                raise ConfigError(f"{name}.{f}={value!r}: expected {expected}")
    for f in ("steps", "gan_steps", "seg_steps", "batch_size", "eval_every", "ckpt_every", "sample_every", "log_every"):
        if hasattr(cfg, f) and (isinstance(getattr(cfg, f), bool) or not isinstance(getattr(cfg, f), int)):
            raise ConfigError(f"{name}.{f}={getattr(cfg, f)!r}: expected an integer")
    if hasattr(cfg, "diffaug"):
        known = {"color", "translation", "cutout"}
        bad = [p for p in (q.strip() for q in cfg.diffaug.split(",")) if p and p not in known]
        if bad:
            raise ConfigError(f"{name}.diffaug={cfg.diffaug!r}: unknown {bad}; expected a comma list of {sorted(known)}")


@dataclass
class Task1Config:
    """Task 1: foreground segmentation from box annotations with a segmenting provider."""

    profile: str = "cpu"
    dataset: str = "synthetic"
    seed: int = 0
    device: str = "auto"
    image_size: int = 64  # side of the square window around each box, in pixels, fed to the mask net
    window_scale: float = 1.3  # window side = window_scale * max(box w, box h)
    steps: int = 1000  # seed 0, lambda_edge 10: monitored IoU 0.66 / 0.69 / 0.65 at 500 / 750 / 1000 (then masks shrink)
    batch_size: int = 16
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.0, 0.9)  # torch 2.13 rejects the int 0
    unet_base: int = 16
    unet_levels: int = 3
    d_base: int = 32
    d_box: bool = False  # the critic also sees the box (real: its own; fake: the source box, moved with the instance)
    d_head: str = "sum"  # "sum": sum-pooled critic features; "flatten": a linear layer over the 4x4 map
    lambda_area: float = 0.5  # x (mask area / box area); 1.0 shrank masks below the object (0.58 vs 0.63 IoU at 500 steps)
    area_min: float = 0.4  # the area penalty bites only above this fraction of the box. Masks settle at this
    # hinge (the critic does not resist shrinking), so it acts as a prior on how much of its box an object fills.
    # IoU at 1,000 steps, seeds 0 / 2: 0.3 -> 0.65 / 0.654, 0.4 -> 0.722 / 0.665; 0.5 -> 0.72 (seed 0)
    lambda_bin: float = 0.1
    lambda_edge: float = 10.0  # edge-aware smoothness (losses.edge_aware_smoothness), NOT in the paper; 0 = off.
    # seed 0, monitored IoU at step 500: 0.63 (0), 0.64 (2), 0.66 (10), 0.65 (30)
    lambda_proj: float = 1.0  # box-tightness prior (losses.box_projection, BoxInst), NOT in the paper; 0 = off.
    # with area_min 0.4, IoU at 1,000 steps, seeds 0 / 2: 0 -> 0.722 / 0.665, 1 -> 0.734 / 0.682, 3 -> 0.724 (seed 0)
    edge_sigma: float = 0.15  # colour distance (images in [-1, 1]) at which a mask edge starts to be cheap
    r1_gamma: float = 0.0
    diffaug: str = "translation,cutout"  # with colour jitter (and EMA 0.995) IoU was 0.31 at step 250, without 0.56
    ema_decay: float = 0.99
    pose_scale: tuple[float, float] = (0.9, 1.1)
    pose_rotation_deg: float = 10.0
    pose_translation: float = 0.1
    bg_per_image: int = 4
    eval_every: int = 500
    sample_every: int = 500
    ckpt_every: int = 500
    log_every: int = 25
    amp: bool = True  # bf16 autocast on CUDA
    amp_cpu: bool = True  # bf16 autocast on CPUs with native bf16 (AMX/AVX512-BF16; others stay fp32): 1.8x faster
    # steps; seed 0: monitored IoU 0.61 / 0.66 / 0.66 / 0.65 at 250..1000 steps vs fp32 0.62 / 0.66 / 0.69 / 0.65
    channels_last: bool = True  # NHWC tensors for the convs (CUDA; on CPU only with bf16)
    compile: bool = False  # torch.compile the provider and critic (falls back to eager, with a warning, if it fails)
    self_train_steps: int = 300  # second stage, NOT in the paper (selftrain.py): a copy of the provider trained on
    # GrabCut pseudo-labels of the train images; own rows in metrics.json. Seeds 0 / 2: 0.734 / 0.682 -> 0.777 / 0.760
    self_train_lr: float = 1e-4
    self_train_augment: bool = True  # random pose + colour jitter of the student's windows (selftrain.augment); False:
    # flips only. Seeds 0 / 2: 0.775 / 0.759 without; with GrabCut on top 0.835 / 0.830 without, 0.857 / 0.839 with
    refine: str = "grabcut"  # "grabcut": also report GrabCut initialised from the learned mask (own row); "none"
    # collapse = mask area outside [collapse_low, collapse_high] of the box, or critic hinge loss below
    # collapse_d_loss (D wins outright), for collapse_patience steps; checked up to collapse_until
    collapse_low: float = 0.1
    collapse_high: float = 0.9
    collapse_d_loss: float = 0.05
    collapse_patience: int = 300
    collapse_check_every: int = 250
    collapse_until: int = 1000
    max_restarts: int = 2

    def __post_init__(self) -> None:
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        check_fields(self, at_least_1=("steps", "batch_size", "unet_base", "unet_levels", "d_base", "bg_per_image",
                                       "log_every", "collapse_patience"),
                     non_negative=("self_train_steps", "lambda_area", "lambda_bin", "lambda_edge", "lambda_proj", "r1_gamma", "eval_every", "sample_every", "ckpt_every",
                                   "collapse_check_every", "collapse_until", "max_restarts",
                                   "pose_rotation_deg", "pose_translation", "collapse_d_loss"),
                     unit=("area_min", "ema_decay", "collapse_low", "collapse_high"),
                     positive=("lr_g", "lr_d", "edge_sigma", "self_train_lr"))
        if self.image_size % (2 ** self.unet_levels) or self.image_size < 2 ** (self.unet_levels + 1):
            raise ConfigError(f"Task1Config.image_size={self.image_size}: expected a multiple of 2**unet_levels = "
                              f"{2 ** self.unet_levels}, at least {2 ** (self.unet_levels + 1)}")
        if self.window_scale < 1:
            raise ConfigError(f"Task1Config.window_scale={self.window_scale}: expected >= 1 (the window holds the box)")
        if not self.collapse_low < self.collapse_high:
            raise ConfigError(f"Task1Config: collapse_low={self.collapse_low} must be < collapse_high={self.collapse_high}")
        if not 0 < self.pose_scale[0] <= self.pose_scale[1]:
            raise ConfigError(f"Task1Config.pose_scale={self.pose_scale}: expected (low, high) with 0 < low <= high")
        if self.d_box and "color" in self.diffaug:
            raise ConfigError("Task1Config: d_box with diffaug 'color' would recolour the box channel; drop one")
        if self.d_head not in ("sum", "flatten"):
            raise ConfigError(f"Task1Config.d_head={self.d_head!r}: expected 'sum' or 'flatten'")
        if self.refine not in ("grabcut", "none"):
            raise ConfigError(f"Task1Config.refine={self.refine!r}: expected 'grabcut' or 'none'")


TASK1_PROFILES: dict[str, dict[str, Any]] = {
    "smoke": dict(image_size=32, steps=20, batch_size=4, unet_base=8, unet_levels=2, d_base=8, self_train_steps=4,
                  eval_every=10, sample_every=10, ckpt_every=10, log_every=5, bg_per_image=2,
                  collapse_patience=10, collapse_check_every=10, collapse_until=20),
    "cpu": dict(),
    "paper": dict(image_size=128, steps=30000, batch_size=64, unet_base=32, unet_levels=5, d_base=64,
                  eval_every=2000, sample_every=2000, ckpt_every=2000, log_every=100,
                  collapse_patience=2000, collapse_check_every=1000, collapse_until=10000),
}


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


_PROFILES: dict[type, dict[str, dict[str, Any]]] = {}


def register_profiles(cls: type, profiles: dict[str, dict[str, Any]]) -> None:
    """Every experiment (task 1 below, HOC, ReDO) registers its profile table here."""
    missing = set(PROFILES) - set(profiles)
    if missing:
        raise ConfigError(f"{cls.__name__} profiles lack {sorted(missing)}")
    _PROFILES[cls] = profiles


register_profiles(Task1Config, TASK1_PROFILES)


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def from_dict(cls: type[T], values: dict[str, Any]) -> T:
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kept = {k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items() if k in names}
    return cls(**kept)

