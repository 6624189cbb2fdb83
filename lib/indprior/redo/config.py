"""The ReDO baseline's config: the paper's / reference code's hyper-parameters, with smoke / cpu / paper profiles."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..core import config as C
from .nets import check_size


@dataclass
class ReDOConfig:
    """ReDO on task-1 box windows. Defaults = the `cpu` profile: 64 px, narrow nets, 400 steps, ~10 min on
    2 CPU cores. That is <1% of the paper's 50k iterations with its 1e-5 mask lr: an under-trained ReDO, a
    smoke-scale baseline; the `paper` profile is the comparable one."""

    RESUME_MAY_CHANGE: ClassVar[frozenset[str]] = frozenset({"steps", "device", "eval_every", "log_every", "ckpt_every"})

    profile: str = "cpu"
    dataset: str = "synthetic"
    seed: int = 0
    device: str = "auto"
    image_size: int = 64  # window side in pixels (the paper: 128)
    window_scale: float = 1.3  # as task 1
    steps: int = 400
    batch_size: int = 8  # paper 25
    n_regions: int = 2
    z_dim: int = 32
    lr_m: float = 1e-5  # mask net: 10x smaller than the rest (paper)
    lr_g: float = 1e-4
    lr_d: float = 1e-4
    lr_z: float = 1e-4
    betas: tuple[float, float] = (0.0, 0.9)  # floats: torch 2.13 rejects the int 0
    weight_decay_m: float = 1e-4  # the mask net has weight decay instead of spectral norm
    lambda_z: float = 5.0
    init_gain: float = 0.8
    temperature: float = 1.0
    nf_m: int = 32  # paper 64
    n_res_m: int = 3
    nf_g: int = 8  # paper (CUB) 32
    nf_d: int = 16  # paper 64
    nf_z: int = 16  # paper 64
    cond_norm: str = "instance"  # the reference code's "CBN"; "batch" = the paper's wording
    self_attention_g: bool = True
    self_attention_d: bool = True
    eval_every: int = 100  # monitoring only (test IoU in the log): nothing is selected by it
    log_every: int = 10
    ckpt_every: int = 100
    collapse_min_area: float = 0.1  # smaller region < 10% of the window ...
    collapse_patience: int = 100  # ... for this many steps = collapsed
    collapse_check_every: int = 100
    collapse_until: int = 200  # look for collapse only this early (reference code: 7000 of 50000)
    max_restarts: int = 3

    def __post_init__(self) -> None:
        check_size(self.image_size)
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        C.check_fields(self, at_least_1=("steps", "batch_size", "z_dim", "nf_m", "nf_g", "nf_d", "nf_z", "log_every",
                                         "collapse_check_every"),
                       non_negative=("n_res_m", "lambda_z", "max_restarts", "eval_every", "ckpt_every", "collapse_patience",
                                     "collapse_until", "weight_decay_m", "init_gain"),
                       positive=("lr_m", "lr_g", "lr_d", "lr_z", "temperature"))
        if self.n_regions < 2:
            raise C.ConfigError(f"ReDOConfig.n_regions={self.n_regions}: expected >= 2")
        if not 0 <= self.collapse_min_area < 1 / self.n_regions:
            raise C.ConfigError(f"ReDOConfig.collapse_min_area={self.collapse_min_area}: expected in [0, 1/n_regions)")
        C.check_choice(self, "cond_norm", ("instance", "batch"))


C.register_profiles(ReDOConfig, {
    "smoke": dict(image_size=32, steps=8, batch_size=4, z_dim=8, nf_m=8, n_res_m=1, nf_g=4, nf_d=8, nf_z=8,
                  eval_every=4, log_every=2, ckpt_every=4, collapse_patience=4, collapse_check_every=4,
                  collapse_until=8, max_restarts=2),
    "cpu": dict(),
    # paper: Table 2-4 widths (nf_g = 32 for CUB), the paper's batch 25 (its code: 20), the code's 50k iterations
    "paper": dict(image_size=128, steps=50000, batch_size=25, nf_m=64, nf_g=32, nf_d=64, nf_z=64,
                  eval_every=500, log_every=100, ckpt_every=500, collapse_patience=1000, collapse_check_every=500,
                  collapse_until=7000, max_restarts=5),
})
