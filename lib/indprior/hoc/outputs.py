"""What a HOC run reports: its status (a failed run says why and what to try), the instance files, and
metrics.json's numbers against the GT (when given) beside the Otsu + watershed baseline."""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..baselines import otsu_watershed
from ..core.runtime import provenance
from ..data.images import save_png_atomic, to_uint8
from ..metrics import count_instances, instance_scores
from ..viz import overlay_instances


class Failed(Exception):
    """A run that cannot give a result: `reason` (what happened) and `advice` (what to try)."""

    def __init__(self, reason: str, advice: str):
        super().__init__(reason)
        self.reason, self.advice = reason, advice

    def as_status(self) -> dict[str, str]:
        return {"status": "failed", "reason": self.reason, "advice": self.advice}


def write_instances(out_dir: Path, img: np.ndarray, labels: np.ndarray) -> dict[str, str]:
    """instances.png and overlay.png; Failed when fewer than two instances were found (no map is written)."""
    n = count_instances(labels)
    if n < 2:
        raise Failed(f"found {n} instance(s): the segmenter learned nothing usable from the composites",
                     "look at gan/samples_*.png; try another seed (--set seed=1) or pass instance_size")
    save_png_atomic(out_dir / "instances.png", labels)
    save_png_atomic(out_dir / "overlay.png", overlay_instances(img, labels, alpha=0.45))
    return {"status": "ok"}


def scores(pred: np.ndarray | None, gt: np.ndarray | None) -> dict[str, Any]:
    """count_pred, and against a GT: count_gt, count_error, f1 (at IoU 0.5), ap50, ap, miou_matched."""
    if pred is None:
        return {}
    row: dict[str, Any] = {"count_pred": count_instances(pred)}
    if gt is not None:
        s = instance_scores(pred, gt)
        row.update({k: s[k] for k in ("count_gt", "f1", "ap50", "ap", "miou_matched")})
        row["count_error"] = row["count_pred"] - row["count_gt"]
    return row


def finish(facts: dict[str, Any], status: dict[str, str], labels: np.ndarray | None, gt: np.ndarray | None,
           img: np.ndarray, seconds: float) -> dict[str, Any]:
    """metrics.json: status first, then the run's facts and scores, and the Otsu + watershed baseline's on the
    same photo (timed here)."""
    t = time.perf_counter()
    baseline = otsu_watershed(img)
    return {"task": "hoc", **status, **facts, **scores(labels, gt), "seconds": round(seconds, 1),
            "baseline_watershed": {**scores(baseline, gt), "seconds": round(time.perf_counter() - t, 1)},
            "provenance": provenance()}


def appearance_match(sampler: Callable[[int], tuple[torch.Tensor, torch.Tensor]], img: np.ndarray,
                     fg: np.ndarray, n_batches: int = 4, bins: int = 8) -> float:
    """Histogram intersection (0..1) of the colours of the composites' instances and of the photo's foreground
    (8 x 8 x 8 RGB bins): 1 when the GAN draws every appearance the photo holds, in its proportions."""
    def hist(pixels: np.ndarray) -> np.ndarray:
        q = (pixels.astype(np.int64) * bins) // 256
        h = np.bincount((q[:, 0] * bins + q[:, 1]) * bins + q[:, 2], minlength=bins**3).astype(np.float64)
        return h / max(h.sum(), 1)
    drawn = []
    for _ in range(n_batches):
        images, labels = sampler(8)
        rgb = np.stack([to_uint8(x) for x in images])  # b h w 3
        drawn.append(rgb[labels.numpy() > 0])
    drawn_px = np.concatenate(drawn) if drawn else np.zeros((0, 3), np.uint8)
    if len(drawn_px) == 0 or not fg.any():
        return 0.0
    return float(np.minimum(hist(drawn_px), hist(img[fg])).sum())
