"""Task 1's methods in one table: same test split, same metrics, same timing rules (notebook 05).

Rows: the independence prior (EMA U-Net), the prior + GrabCut refinement, GrabCut from the box, the
whole box (trivial), ReDO with the GT-chosen side (how its paper scores it) and ReDO with a GT-free side.
`eval` says how a row's masks were scored: "box-constrained" rows never see GT; ReDO's main row picks,
per image, the mask or its complement by IoU with the GT (allowed for an unsupervised baseline only).
Inference speed counts only the segmentation of already-loaded test images (reading and window cropping
excluded for every method); it is measured here because the runs themselves do not record it.
"""
from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .baselines import grabcut_box, grabcut_refine, otsu_watershed
from .core import config as C
from .core.files import atomic_write_text, write_json
from .core.runtime import cpu_model, hardware, provenance, resolve_device  # noqa: F401 - re-exported
from .core.trainer import CHECKPOINT, load_checkpoint
from .data.cub import CubDataset
from .data.datasets import open_dataset
from .data.images import load_label_map, save_png_atomic
from .data.windows import mask_file, prepare_windows
from .metrics import count_instances, foreground_summary, instance_scores
from .redo import ReDO, ReDOConfig, paste_window, window_probs
from .task1 import full_masks, load_run

COLUMNS = ("method", "eval", "acc", "iou_mean", "iou_pooled", "train_seconds", "infer_images_per_s", "device",
           "profile", "split")
BOX = "box-constrained"
BEST_SIDE = "best of mask or complement (uses GT)"
OPENCV = "cpu (OpenCV)"


def grabcut_run(dataset_spec: str, out_dir: str | Path, cache_dir: str | Path = ".cache/data", *, iters: int = 5,
                resume: bool = True, progress: bool = True) -> dict[str, Any]:
    """GrabCut initialised with each test box (+ the whole-box mask): masks/ and metrics.json in out_dir."""
    out_dir = Path(out_dir)
    ds = open_dataset(dataset_spec, "test", cache_dir)
    done = out_dir / "metrics.json"
    if resume and done.is_file():
        old = json.loads(done.read_text())
        if (old.get("dataset"), old.get("iters"), old.get("n_images")) == (dataset_spec, iters, len(ds)):
            return old
    preds, boxes, gts, seconds = [], [], [], 0.0
    for s in tqdm(ds, total=len(ds), desc="grabcut", disable=not progress, leave=False):
        t = time.perf_counter()
        mask = grabcut_box(s.image, s.box, iters)
        seconds += time.perf_counter() - t
        save_png_atomic(out_dir / "masks" / mask_file(s.name), (mask * 255).astype(np.uint8))
        if s.mask is not None:
            x, y, w, h = (int(round(v)) for v in s.box)
            box = np.zeros(s.mask.shape, bool)
            box[y:y + h, x:x + w] = True
            preds.append(mask), boxes.append(box), gts.append(s.mask)
    metrics: dict[str, Any] = {"task": "foreground", "method": "grabcut", "split": "test", "n_images": len(ds),
                               "dataset": dataset_spec, "iters": iters, "device": OPENCV, "eval": BOX,
                               "infer_seconds": round(seconds, 2), "infer_images_per_s": len(ds) / max(seconds, 1e-9)}
    if gts:
        metrics.update(foreground_summary(preds, gts), whole_box=foreground_summary(boxes, gts))
    metrics["provenance"] = provenance()
    write_json(out_dir / "metrics.json", metrics)
    return metrics


def reusable_run(run_dir: str | Path, profile: str, dataset: str | None = None,
                 need: Sequence[str] = (CHECKPOINT,)) -> dict[str, Any] | None:
    """metrics.json of a finished run made with this profile (and dataset), with the files in `need`; else None."""
    run_dir = Path(run_dir)
    if not (run_dir / "metrics.json").is_file() or not all((run_dir / n).exists() for n in need):
        return None
    m = json.loads((run_dir / "metrics.json").read_text())
    ok = m.get("profile") == profile and (dataset is None or m.get("dataset") == dataset)
    return m if ok else None


def _test_windows(dataset: str, cache_dir: str | Path, size: int, scale: float) -> tuple[CubDataset, Any]:
    ds = open_dataset(dataset, "test", cache_dir)
    return ds, prepare_windows(ds, size, scale, keep_gt=False, progress=False)


def prior_inference_rates(run_dir: str | Path, cache_dir: str | Path = ".cache/data", device: str = "auto",
                          n_refine: int = 32) -> dict[str, float]:
    """Images/s of the EMA provider (full_masks over the test split) and of provider + GrabCut refinement
    (refinement timed on the first `n_refine` test images and added per image)."""
    dev = resolve_device(device)
    cfg, method = load_run(run_dir, dev)
    ds, ws = _test_windows(cfg.dataset, cache_dir, cfg.image_size, cfg.window_scale)
    full_masks(method.ema.module, prepare_windows([ds[0]], cfg.image_size, cfg.window_scale, progress=False), dev,
               cfg.views)
    t = time.perf_counter()
    probs = list(full_masks(method.ema.module, ws, dev, cfg.views))  # list(): the paste-back is part of the timed work
    per_image = (time.perf_counter() - t) / len(ws)
    images = [ds[i].image for i in range(min(n_refine, len(ws)))]  # loaded outside the clock
    t = time.perf_counter()
    for i, image in enumerate(images):
        grabcut_refine(image, tuple(ws.image_boxes[i]), probs[i])
    refine = (time.perf_counter() - t) / len(images)
    return {"prior": 1 / per_image, "refined": 1 / (per_image + refine)}


def load_redo(redo_dir: str | Path, device: str | torch.device = "cpu") -> ReDO:
    """The model run_redo evaluated (collapsed attempts, if any, are archived under collapsed/)."""
    path = Path(redo_dir) / CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(f"{redo_dir}: no {CHECKPOINT}; run redo.run_redo first")
    method = ReDO(C.from_dict(ReDOConfig, load_checkpoint(path)["config"]), torch.device(device))
    load_checkpoint(path, method, map_location=device)
    return method


def redo_inference_rate(redo_dir: str | Path, cache_dir: str | Path = ".cache/data", device: str = "auto") -> float:
    """Images/s of ReDO's mask net on the test windows, pasted back (as run_redo scores them)."""
    method = load_redo(redo_dir, resolve_device(device))
    cfg = method.cfg
    _, ws = _test_windows(cfg.dataset, cache_dir, cfg.image_size, cfg.window_scale)
    window_probs(method, ws, batch_size=8)  # warm-up
    t = time.perf_counter()
    probs = window_probs(method, ws)
    _ = [paste_window(p, r, hw) >= 0.5 for p, r, hw in zip(probs, ws.rects, ws.image_sizes)]
    return len(ws) / (time.perf_counter() - t)


def method_rows(task1: dict | None = None, grabcut: dict | None = None, redo: dict | None = None, *,
                prior_rates: dict[str, float] | None = None, redo_rate: float | None = None) -> list[dict[str, Any]]:
    """Table rows from the runs' metrics.json dicts (each optional) and the measured inference rates."""
    rows, rates = [], prior_rates or {}
    pick = lambda m, **kw: {k: m.get(k) for k in ("acc", "iou_mean", "iou_pooled")} | kw  # noqa: E731
    if task1:
        same = {"train_seconds": task1.get("train_seconds"), "profile": task1.get("profile"), "split": task1.get("split")}
        rows.append(pick(task1, method="independence prior (EMA U-Net)", eval=BOX, infer_images_per_s=rates.get("prior"),
                         device=task1.get("device"), **same))
        if "refined_grabcut" in task1:
            rows.append(pick(task1["refined_grabcut"], method="independence prior + GrabCut refinement", eval=BOX,
                             infer_images_per_s=rates.get("refined"), device=f"{task1.get('device')} + {OPENCV}", **same))
        # the self-trained network has the provider's architecture (same inference rates); its training adds
        self_same = same | {"train_seconds": round((task1.get("train_seconds") or 0) + task1.get("self_train_seconds", 0), 1)}
        if "self_trained" in task1:
            rows.append(pick(task1["self_trained"], method="independence prior + self-training (GrabCut pseudo-labels)",
                             eval=BOX, infer_images_per_s=rates.get("prior"), device=task1.get("device"), **self_same))
        if "self_trained_grabcut" in task1:
            rows.append(pick(task1["self_trained_grabcut"], method="independence prior + self-training + GrabCut refinement",
                             eval=BOX, infer_images_per_s=rates.get("refined"), device=f"{task1.get('device')} + {OPENCV}",
                             **self_same))
        if "colour_cue_box" in task1:  # runs since session 27: what the provider's colour cue gives without learning
            rows.append(pick(task1["colour_cue_box"], method="the colour cue alone (no learning)", eval=BOX,
                             split=task1.get("split")))
    if grabcut:
        rows.append(pick(grabcut, method="GrabCut (box init)", eval=BOX, infer_images_per_s=grabcut.get("infer_images_per_s"),
                         device=OPENCV, split=grabcut.get("split")))
        if "whole_box" in grabcut:
            rows.append(pick(grabcut["whole_box"], method="whole box", eval=BOX, split=grabcut.get("split")))
    if redo:
        same = {"train_seconds": redo.get("train_seconds"), "infer_images_per_s": redo_rate, "device": redo.get("device"),
                "profile": redo.get("profile"), "split": redo.get("split")}
        rows.append(pick(redo, method="ReDO", eval=BEST_SIDE, **same))
        rows.append({"method": "ReDO (GT-free side)", "eval": "side covering less window border (no GT)",
                     "acc": redo.get("border_polarity_acc"), "iou_mean": redo.get("border_polarity_iou_mean"), **same})
    return rows


def _round(key: str, v: Any) -> Any:
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return v
    return round(v, 1) if key == "train_seconds" else float(f"{v:.3g}") if key == "infer_images_per_s" else round(v, 4)


def comparison_table(rows: list[dict]) -> list[dict]:
    """Rows with exactly COLUMNS, in order (missing = None, numbers rounded); one row per method."""
    methods = [r.get("method") for r in rows]
    if None in methods or len(set(methods)) != len(methods):
        raise ValueError(f"rows: every row needs a distinct 'method', got {methods}")
    for r in rows:
        if extra := set(r) - set(COLUMNS):
            raise ValueError(f"row {r['method']!r}: unknown columns {sorted(extra)}; expected {COLUMNS}")
    return [{k: _round(k, r.get(k)) for k in COLUMNS} for r in rows]


def write_csv_atomic(rows: list[dict], path: str | Path) -> Path:
    """CSV with a header; None is written as an empty cell."""
    cols = list(rows[0]) if rows else list(COLUMNS)
    buf = io.StringIO()
    w = csv.DictWriter(buf, cols, lineterminator="\n")
    w.writeheader()
    w.writerows({k: ("" if r.get(k) is None else r[k]) for k in cols} for r in rows)
    atomic_write_text(Path(path), buf.getvalue())
    return Path(path)


def read_csv(path: str | Path) -> list[dict]:
    """Inverse of write_csv_atomic: empty cells -> None, numeric cells -> float."""
    def parse(v: str) -> Any:
        if v == "":
            return None
        try:
            return float(v)
        except ValueError:
            return v
    with open(path, newline="") as f:
        return [{k: parse(v) for k, v in r.items()} for r in csv.DictReader(f)]


def to_markdown(rows: list[dict], columns: Sequence[str] | None = None) -> str:
    """A GitHub-style table: header, separator, one line per row; None -> '–'."""
    cols = list(columns or (rows[0] if rows else COLUMNS))
    def cell(c: str, v: Any) -> str:  # scores with 3 decimals; times and counts as they are
        score = c.startswith(("acc", "iou", "ap", "miou"))
        return "–" if v is None else f"{v:.3f}" if score and isinstance(v, float) else f"{v:g}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(c, r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def read_masks(mask_dir: str | Path, names: Sequence[str]) -> list[np.ndarray]:
    """Binary masks a run wrote (masks mirror the images/ folders)."""
    return [load_label_map(Path(mask_dir) / mask_file(n)) > 0 for n in names]


def hoc_rows(hoc_metrics: dict | None = None, image: np.ndarray | None = None, gt: np.ndarray | None = None) -> list[dict]:
    """Task 2: the prior's and the watershed's rows from run_hoc's metrics.json, else watershed alone on `image`."""
    keys = ("count_pred", "count_gt", "ap50", "ap", "miou_matched", "seconds")
    row = lambda name, m: {"method": name, **{k: _round(k, m.get(k)) for k in keys}}  # noqa: E731
    if hoc_metrics is not None:
        return [row("independence prior (HOC GAN + SISeg)", hoc_metrics),
                row("Otsu + watershed", hoc_metrics["baseline_watershed"])]
    if image is None:
        raise ValueError("hoc_rows: give run_hoc's metrics or an image")
    t = time.perf_counter()
    pred = otsu_watershed(image)
    m = {"count_pred": count_instances(pred), "seconds": time.perf_counter() - t}
    if gt is not None:
        m |= {k: v for k, v in instance_scores(pred, gt).items() if k in keys}
    return [row("Otsu + watershed", m)]


__all__ = ["COLUMNS", "BOX", "BEST_SIDE", "cpu_model", "hardware", "grabcut_run", "reusable_run", "prior_inference_rates", "load_redo",
           "redo_inference_rate", "method_rows", "comparison_table", "write_csv_atomic", "read_csv", "to_markdown",
           "read_masks", "hoc_rows"]
