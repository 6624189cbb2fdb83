"""The ReDO baseline (Chen, Artières, Denoyer, "Unsupervised Object Segmentation by Redrawing", NeurIPS 2019).

ReDO learns masks without any annotation: the mask net f splits an image into k regions, a generator
redraws one region from noise z, and a discriminator must not tell the redrawn image from a real one.
An encoder delta must recover z from the generated pixels (information conservation, lambda_z = 5),
so a region cannot be redrawn as nothing. One training step, as the reference code (train.py):

    Gmain: m = f(x); h_k = G_k(m_k, z_k) * m_k; fake_k = h_k + (1 - m_k) x   (every region redrawn: b*k fakes)
           loss = hinge_G(D(fake)) + lambda_z * |delta(sum_k h_k) - z|^2   -> update f, G, delta
    Dmain: the same fakes regenerated without grad (after the update) vs another real batch -> update D

Hyper-parameters are the paper's / reference code's: Adam betas (0.0, 0.9); lr 1e-4 for G, D, delta and
1e-5 with weight decay 1e-4 for f; orthogonal init with gain 0.8; z of size 32; k = 2.

Inputs (a choice, for a fair table): ReDO's code feeds whole CUB images (short side resized, centre-
cropped to 128 px; its own 10k/1k/788 split) and never reads the boxes. We feed it the *same box windows
as task 1* (`windows.prepare_windows`, 1.3x the box, official CUB train/test split). That hands ReDO the
box implicitly (the bird is centred and fills most of the window) and is kinder to it than the paper's
setting; whatever ReDO finds is pasted back into the whole window (nothing is cut to the box).

Evaluation: ReDO cannot know which region is the object. Per image we keep the window's region 0 or its
complement, whichever has the higher IoU with the ground truth, as the paper does ("the regions
permutation that matches the ground truth the best"). That peeks at GT, which is acceptable only for an
unsupervised baseline; metrics.json says so. A GT-free polarity (foreground = the region that covers
less of the window border) is reported beside it. Unlike the reference code, nothing is selected by
validation IoU: the final weights are evaluated.

Mode collapse (the paper: empty masks early in training, restarted automatically): `run_redo` trains in
chunks and restarts from seed + 1000 * attempt when the smaller region stays below `collapse_min_area`
of the window for `collapse_patience` steps, at most `max_restarts` times (`train.fit_with_restarts`:
collapsed attempts are kept under out_dir/collapsed/, events in out_dir/restarts.json and metrics.json).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.autograd.profiler import record_function

from . import config as C
from .data import CubDataset, resolve_dataset
from .losses import d_hinge, g_hinge
from .metrics import foreground_scores, mask_iou
from .redo_nets import MaskNet, RegionGenerators, ResCritic, check_size, init_orthogonal
from .train import (atomic_write_text, fit_with_restarts, loop_seconds, prepare_out_dir, resolve_device,
                     seed_everything, sustained)
from .windows import WindowSet, paste_mask, prepare_windows, save_masks, to_float



@dataclass
class ReDOConfig:
    """ReDO on task-1 box windows. Defaults = the `cpu` profile: 64 px, narrow nets, 400 steps, ~10 min on
    2 CPU cores. That is <1% of the paper's 50k iterations with its 1e-5 mask lr: an under-trained ReDO, a
    smoke-scale baseline; the `paper` profile is the comparable one."""

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
        for name in ("steps", "batch_size", "z_dim", "nf_m", "nf_g", "nf_d", "nf_z", "log_every", "collapse_check_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"ReDOConfig.{name}={getattr(self, name)}: expected >= 1")
        if self.n_regions < 2:
            raise ValueError(f"ReDOConfig.n_regions={self.n_regions}: expected >= 2")
        if self.lambda_z < 0 or self.max_restarts < 0:
            raise ValueError(f"ReDOConfig: lambda_z={self.lambda_z} and max_restarts={self.max_restarts} must be >= 0")
        if not 0 <= self.collapse_min_area < 1 / self.n_regions:
            raise ValueError(f"ReDOConfig.collapse_min_area={self.collapse_min_area}: expected in [0, 1/n_regions)")


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


# ----------------------------------------------------------------------------- data
def _random_flip(x: torch.Tensor) -> torch.Tensor:
    return torch.where((torch.rand(x.shape[0], device=x.device) < 0.5)[:, None, None, None], x.flip(3), x)


class ReDOBatches:
    """Two independent batches of random windows with flips, on the device: one redrawn, one real for D."""

    def __init__(self, windows: torch.Tensor, batch_size: int, device: torch.device):
        self.windows, self.batch_size, self.device = windows.to(device), batch_size, device  # n 3 s s uint8

    def __call__(self, step: int) -> dict[str, torch.Tensor]:
        n, b = len(self.windows), self.batch_size
        pick = lambda: _random_flip(to_float(self.windows[torch.randint(n, (b,), device=self.device)]))  # noqa: E731
        return {"image": pick(), "real": pick()}  # b 3 s s each, in [-1, 1]


# ----------------------------------------------------------------------------- the method
class ReDO:
    """Loss/step object for `train.Trainer`: mask net f, region generators G, critic D, z encoder delta."""

    def __init__(self, cfg: ReDOConfig, device: torch.device):
        self.cfg, self.device, k = cfg, device, cfg.n_regions
        self.M = MaskNet(k, cfg.nf_m, cfg.n_res_m, cfg.temperature).to(device)
        self.G = RegionGenerators(k, cfg.image_size, cfg.z_dim, cfg.nf_g, cfg.cond_norm, cfg.self_attention_g).to(device)
        self.D = ResCritic(cfg.image_size, cfg.nf_d, 1, cfg.self_attention_d).to(device)
        self.Z = ResCritic(cfg.image_size, cfg.nf_z, k * cfg.z_dim, False).to(device)
        for net in (self.M, self.G, self.D, self.Z):
            init_orthogonal(net, cfg.init_gain)
        betas = cfg.betas
        self.opt = {"M": torch.optim.Adam(self.M.parameters(), cfg.lr_m, betas, weight_decay=cfg.weight_decay_m),
                    "G": torch.optim.Adam(self.G.parameters(), cfg.lr_g, betas),
                    "D": torch.optim.Adam(self.D.parameters(), cfg.lr_d, betas),
                    "Z": torch.optim.Adam(self.Z.parameters(), cfg.lr_z, betas)}

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"M": self.M, "G": self.G, "D": self.D, "Z": self.Z}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self.opt

    def redraw(self, x: torch.Tensor, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every region of every image redrawn once: masks b k h w, regions b k 3 h w, fakes b k 3 h w."""
        masks = self.M(x)  # b k h w
        regions = self.G(masks, z)  # b k 3 h w, each already * m_k
        fake = regions + (1 - masks[:, :, None]) * x[:, None]  # region k redrawn, the rest kept
        return {"masks": masks, "regions": regions, "fake": fake}

    def train_step(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        cfg, x = self.cfg, batch["image"]
        b, k = x.shape[0], cfg.n_regions
        z = torch.randn(b, k, cfg.z_dim, device=x.device)
        with record_function("Gmain"):
            self.D.requires_grad_(False)
            out = self.redraw(x, z)
            adv = g_hinge(self.D(out["fake"].flatten(0, 1)))
            z_rec = self.Z(out["regions"].sum(1)).view(b, k, cfg.z_dim)  # from the wholly generated image
            loss_z = F.mse_loss(z_rec, z)
            loss_g = adv + cfg.lambda_z * loss_z
            for name in ("M", "G", "Z"):
                self.opt[name].zero_grad(set_to_none=True)
            loss_g.backward()
            for name in ("M", "G", "Z"):
                self.opt[name].step()
        with record_function("Dmain"):
            self.D.requires_grad_(True)
            with torch.no_grad():
                fake = self.redraw(x, z)["fake"].flatten(0, 1)  # b*k 3 h w
            d_real, d_fake = self.D(batch["real"]), self.D(fake)
            loss_d = d_hinge(d_real, d_fake)
            self.opt["D"].zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt["D"].step()
        area = out["masks"].detach().mean((0, 2, 3))  # k: share of the windows each region takes
        return {"loss/D": loss_d.detach(), "loss/G_adv": adv.detach(), "loss/z_rec": loss_z.detach(),
                "mask/mean0": area[0], "mask/min_region": area.min(),
                "D/real": d_real.detach().mean(), "D/fake": d_fake.detach().mean()}

    @torch.no_grad()
    def predict_masks(self, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """Region-0 probability, b 1 h w, for float images b 3 h w in [-1, 1]. Which region is the object
        is unknown: pick the polarity with `best_polarity` (uses GT) or `border_polarity` (does not)."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images: expected b 3 h w in [-1, 1], got shape {tuple(images.shape)}")
        was_training = self.M.training
        self.M.eval()
        out = [self.M(images[s:s + batch_size].to(self.device))[:, :1].cpu() for s in range(0, len(images), batch_size)]
        self.M.train(was_training)
        return torch.cat(out) if out else images.new_zeros(0, 1, *images.shape[2:])


# ----------------------------------------------------------------------------- evaluation
def window_probs(method: ReDO, ws: WindowSet, batch_size: int = 64) -> np.ndarray:
    """Region-0 probability of every window of a split, n s s float32."""
    probs = [method.predict_masks(to_float(ws.windows[s:s + batch_size]))[:, 0] for s in range(0, len(ws), batch_size)]
    return torch.cat(probs).numpy() if probs else np.zeros((0, *ws.windows.shape[-2:]), np.float32)


def paste_window(prob: np.ndarray, rect: tuple[int, int, int, int], image_hw: tuple[int, int]) -> np.ndarray:
    """A window mask back into its image over the *whole* window (ReDO has no box); 0 outside the window."""
    return paste_mask(prob, rect, tuple(float(v) for v in rect), image_hw)


def border_polarity(prob: np.ndarray, width: int = 2) -> bool:
    """GT-free guess that region 0 is the object: it covers less of the window border than region 1."""
    border = np.concatenate([prob[:width].ravel(), prob[-width:].ravel(), prob[:, :width].ravel(), prob[:, -width:].ravel()])
    return float(border.mean()) <= 0.5


def best_polarity(prob: np.ndarray, rect: tuple[int, int, int, int], image_hw: tuple[int, int], gt: np.ndarray) -> bool:
    """True when region 0 (not its complement) matches the GT better. USES GT: unsupervised baselines only.

    Chosen at window level: a full-image complement would also turn everything outside the window into
    foreground, which is not a region ReDO ever proposed.
    """
    return mask_iou(paste_window(prob, rect, image_hw) >= 0.5, gt) >= mask_iou(paste_window(1 - prob, rect, image_hw) >= 0.5, gt)


def score_windows(probs: np.ndarray, ws: WindowSet) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Scores with the GT-chosen polarity (and the border one), and the full-image masks that were scored."""
    masks, best, border, gts = [], [], [], []
    for p, rect, hw, gt in zip(probs, ws.rects, ws.image_sizes, ws.gt):
        guess = border_polarity(p)
        pick = best_polarity(p, rect, hw, gt) if gt is not None else guess
        masks.append(paste_window(p if pick else 1 - p, rect, hw) >= 0.5)
        if gt is not None:
            best.append(masks[-1])
            border.append(paste_window(p if guess else 1 - p, rect, hw) >= 0.5)
            gts.append(gt)
    if not gts:
        return {"n_with_gt": 0}, masks
    s, g = foreground_scores(best, gts), foreground_scores(border, gts)
    return {"acc": s["acc_mean"], "iou_mean": s["iou_mean"], "iou_pooled": s["iou_pooled"], "acc_pooled": s["acc_pooled"],
            "n_with_gt": len(gts), "border_polarity_iou_mean": g["iou_mean"], "border_polarity_acc": g["acc_mean"]}, masks


# ----------------------------------------------------------------------------- collapse and restarts
def collapse_detected(history: list[dict[str, Any]], min_area: float, patience: int, key: str = "mask/min_region") -> bool:
    """True when every logged `key` of the last `patience` steps is below `min_area` (and the run is that old).

    With two regions, min_region < 0.1 is method.md's "mask mean < 0.1 or > 0.9".
    """
    return sustained(history, key, patience, lambda v: v < min_area)


def train_with_restarts(cfg: ReDOConfig, out_dir: Path, batches: ReDOBatches, device: torch.device, eval_fn: Any = None,
                        resume: bool = True, progress: bool = True) -> tuple[ReDO, list[dict[str, Any]]]:
    """Train in out_dir; on collapse archive the attempt and restart from seed + 1000 k (train.fit_with_restarts)."""
    def reason(history: list[dict[str, Any]]) -> str | None:
        if collapse_detected(history, cfg.collapse_min_area, cfg.collapse_patience):
            return f"smaller region < {cfg.collapse_min_area} of the window for {cfg.collapse_patience} steps"
        return None

    return fit_with_restarts(lambda seed: ReDO(cfg, device), out_dir, C.to_dict(cfg), batches, cfg.steps, seed=cfg.seed,
                             collapse_reason=reason, check_every=cfg.collapse_check_every,
                             check_until=cfg.collapse_until, max_restarts=cfg.max_restarts, resume=resume,
                             name="ReDO", eval_fn=eval_fn, log_every=cfg.log_every, ckpt_every=cfg.ckpt_every,
                             eval_every=cfg.eval_every, progress=progress)


# ----------------------------------------------------------------------------- the whole experiment
def run_redo(cfg: ReDOConfig, out_dir: str | Path, *, resume: bool = True, progress: bool = True,
             cache_dir: str | Path = ".cache/data") -> dict[str, Any]:
    """Train ReDO on the train split's box windows, segment the test windows, write masks/ + metrics.json."""
    t0 = time.perf_counter()
    out_dir = prepare_out_dir(out_dir)
    device = resolve_device(cfg.device)
    root = resolve_dataset(cfg.dataset, cache_dir)
    train = prepare_windows(CubDataset(root, "train"), cfg.image_size, cfg.window_scale, keep_gt=False, progress=progress)
    test = prepare_windows(CubDataset(root, "test"), cfg.image_size, cfg.window_scale, progress=progress)

    def monitor(method: ReDO, step: int) -> dict[str, float]:  # monitoring only: nothing is selected by it
        scores, _ = score_windows(window_probs(method, test), test)
        return {"val/iou_best_polarity": scores.get("iou_mean", float("nan")),
                "val/iou_border_polarity": scores.get("border_polarity_iou_mean", float("nan"))}

    batches = ReDOBatches(train.windows, cfg.batch_size, device)
    t_fit = time.perf_counter()
    method, collapses = train_with_restarts(cfg, out_dir, batches, device, monitor, resume, progress)
    train_seconds = (t_fit - t0) + loop_seconds(out_dir)  # this call's data preparation + every training loop

    (out_dir / "metrics.json").unlink(missing_ok=True)  # metrics.json is written last: it marks complete outputs
    scores, masks = score_windows(window_probs(method, test), test)
    save_masks(out_dir / "masks", test.names, masks)
    metrics: dict[str, Any] = {
        "task": "foreground", "method": "redo", "split": "test", "n_images": len(test), **scores,
        "eval": "best of mask or complement (uses GT), chosen per image within the box window",
        "input": f"task-1 box windows ({cfg.window_scale}x box, {cfg.image_size} px); no box inside the window",
        "restarts": len(collapses), "collapses": collapses, "profile": cfg.profile, "dataset": cfg.dataset,
        "device": str(device), "steps": cfg.steps, "seed": cfg.seed}
    metrics["seconds"] = round(time.perf_counter() - t0, 1)
    metrics["train_seconds"] = round(train_seconds, 1)
    atomic_write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2))
    return metrics


def time_iterations(cfg: ReDOConfig, n: int = 5, warmup: int = 1) -> list[float]:
    """Seconds per training iteration on random images at cfg's size and batch (for the cost table)."""
    seed_everything(cfg.seed)
    method = ReDO(cfg, resolve_device(cfg.device))
    s = cfg.image_size
    batch = {key: torch.rand(cfg.batch_size, 3, s, s, device=method.device) * 2 - 1 for key in ("image", "real")}
    times = []
    for i in range(warmup + n):
        t = time.perf_counter()
        method.train_step(batch, i)
        if method.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return times[warmup:]


__all__ = ["ReDOConfig", "ReDO", "ReDOBatches", "run_redo", "collapse_detected", "train_with_restarts", "score_windows",
           "best_polarity", "border_polarity", "paste_window", "window_probs", "time_iterations"]
