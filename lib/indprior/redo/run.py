"""The ReDO baseline (Chen, Artières, Denoyer, "Unsupervised Object Segmentation by Redrawing", NeurIPS 2019).

ReDO learns masks without any annotation: the mask net f splits an image into k regions, a generator
redraws one region from noise z, and a discriminator must not tell the redrawn image from a real one.
An encoder delta must recover z from the generated pixels (information conservation, lambda_z = 5),
so a region cannot be redrawn as nothing. One training step, as the reference code (train.py): see method.py.

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
of the window for `collapse_patience` steps, at most `max_restarts` times (`core.restarts.fit_with_restarts`:
collapsed attempts are kept under out_dir/collapsed/, events in out_dir/restarts.json and metrics.json).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core import config as C
from ..core.files import prepare_out_dir, write_json
from ..core.restarts import fit_with_restarts, loop_seconds, sustained
from ..core.runtime import provenance, resolve_device
from ..data.datasets import open_dataset
from ..data.images import border_mean, to_float
from ..data.windows import WindowSet, paste_mask, prepare_windows, save_masks
from ..metrics import foreground_scores, foreground_summary, mask_iou
from .config import ReDOConfig
from .method import ReDO, ReDOBatches


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
    return border_mean(prob, width) <= 0.5


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
    g = foreground_scores(border, gts)
    return {**foreground_summary(best, gts), "border_polarity_iou_mean": g["iou_mean"],
            "border_polarity_acc": g["acc_mean"]}, masks


# ----------------------------------------------------------------------------- collapse and restarts
def collapse_detected(history: list[dict[str, Any]], min_area: float, patience: int, key: str = "mask/min_region") -> bool:
    """True when every logged `key` of the last `patience` steps is below `min_area` (and the run is that old).

    With two regions, min_region < 0.1 is method.md's "mask mean < 0.1 or > 0.9".
    """
    return sustained(history, key, patience, lambda v: v < min_area)


def train_with_restarts(cfg: ReDOConfig, out_dir: Path, batches: ReDOBatches, device: torch.device, eval_fn: Any = None,
                        resume: bool = True, progress: bool = True) -> tuple[ReDO, list[dict[str, Any]]]:
    """Train in out_dir; on collapse archive the attempt and restart from seed + 1000 k (core.restarts)."""
    def reason(history: list[dict[str, Any]]) -> str | None:
        if collapse_detected(history, cfg.collapse_min_area, cfg.collapse_patience):
            return f"smaller region < {cfg.collapse_min_area} of the window for {cfg.collapse_patience} steps"
        return None

    return fit_with_restarts(lambda seed: ReDO(cfg, device), out_dir, C.to_dict(cfg), batches, cfg.steps, seed=cfg.seed,
                             collapse_reason=reason, check_every=cfg.collapse_check_every,
                             check_until=cfg.collapse_until, max_restarts=cfg.max_restarts, resume=resume,
                             name="ReDO", eval_fn=eval_fn, log_every=cfg.log_every, ckpt_every=cfg.ckpt_every,
                             eval_every=cfg.eval_every, progress=progress, may_change=ReDOConfig.RESUME_MAY_CHANGE)


# ----------------------------------------------------------------------------- the whole experiment
def run_redo(cfg: ReDOConfig, out_dir: str | Path, *, resume: bool = True, progress: bool = True,
             cache_dir: str | Path = ".cache/data") -> dict[str, Any]:
    """Train ReDO on the train split's box windows, segment the test windows, write masks/ + metrics.json."""
    t0 = time.perf_counter()
    out_dir = prepare_out_dir(out_dir)
    device = resolve_device(cfg.device)
    train = prepare_windows(open_dataset(cfg.dataset, "train", cache_dir), cfg.image_size, cfg.window_scale,
                            keep_gt=False, progress=progress)
    test = prepare_windows(open_dataset(cfg.dataset, "test", cache_dir), cfg.image_size, cfg.window_scale,
                           progress=progress)

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
    metrics["provenance"] = provenance()
    write_json(out_dir / "metrics.json", metrics)
    return metrics
