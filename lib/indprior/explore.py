"""Look at a run's masks: an ipywidgets explorer, with static figures as the headless fallback.

- Task-1 run dirs (`task1.run_task1`): pick a test image, move the threshold, toggle GT outline (green),
  prediction (yellow tint) and difference (false positives red, false negatives blue); IoU in the title.
  Soft masks are recomputed once from `checkpoint.pt` (EMA provider) and cached per run; they are kept at
  window size and pasted back per image (`windows.PastedMasks`) so a CUB-size test split fits in memory.
- HOC run dirs (`hoc.run_hoc`): pick an instance to highlight it over the photo and show its crop.

Headless: papermill, nbval and the refresh tool have no widget frontend, and a stored widget output
depends on random model ids. With INDPRIOR_HEADLESS=1 (set by `make run-all`, `make test` and
tools/refresh_notebooks.py) `show` displays `static_views` instead, so stored outputs stay deterministic.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import ipywidgets as W
import numpy as np
import torch
from matplotlib.figure import Figure
from skimage.segmentation import find_boundaries

from . import task1
from .data.cub import CubDataset
from .data.datasets import open_dataset
from .data.images import load_image, load_label_map
from .data.windows import PastedMasks, WindowSet, prepare_windows
from .metrics import mask_iou
from .viz import DPI, GT_COLOR, instance_crop, overlay_instances, overlay_mask

HEADLESS_ENV = "INDPRIOR_HEADLESS"
TOP = W.Layout(align_items="flex-start")  # images keep their aspect (an HBox stretches them to the row height)
PRED_COLOR, FP_COLOR, FN_COLOR, PICK_COLOR = (255, 210, 0), (230, 30, 30), (30, 90, 255), (255, 230, 0)


def headless() -> bool:
    """True when $INDPRIOR_HEADLESS is 1 / true / yes: show static figures instead of widgets."""
    return os.environ.get(HEADLESS_ENV, "").strip().lower() in ("1", "true", "yes")


def run_kind(run_dir: str | Path) -> str:
    """'task1' or 'hoc', from metrics.json's "task" or else from the files present; errors name what is missing."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: run folder does not exist")
    task = json.loads((run_dir / "metrics.json").read_text()).get("task") if (run_dir / "metrics.json").is_file() else None
    need = {"foreground": ("task1", "checkpoint.pt"), "hoc": ("hoc", "instances.png")}
    if task is not None and task not in need:
        raise ValueError(f"{run_dir / 'metrics.json'}: task={task!r}; expected 'foreground' (task 1) or 'hoc'")
    for t, (kind, fname) in need.items():
        if task in (t, None) and (run_dir / fname).is_file():
            return kind
    if task is not None:
        raise FileNotFoundError(f"{run_dir / need[task][1]}: missing (metrics.json says task={task!r})")
    raise FileNotFoundError(f"{run_dir}: neither checkpoint.pt (a task-1 run, task1.run_task1) nor instances.png "
                            "(a HOC run, hoc.run_hoc) found")


class Explorer(W.VBox):
    """The explorer's root widget: `controls` by name; `state`, what it displays now (for tests, scripts)."""

    controls: dict[str, W.Widget]
    state: dict[str, Any]


def _blend(img: np.ndarray, where: np.ndarray, color: tuple[int, int, int], alpha: float) -> np.ndarray:
    out = img.copy()
    out[where] = (out[where] * (1 - alpha) + np.asarray(color, np.float32) * alpha + 0.5).astype(np.uint8)
    return out


def _png(rgb: np.ndarray, side: int) -> bytes:
    """PNG bytes, enlarged by an integer factor (nearest) so small images are not blurred by the browser."""
    k = max(1, side // max(rgb.shape[:2]))
    return cv2.imencode(".png", np.ascontiguousarray(np.repeat(np.repeat(rgb, k, 0), k, 1)[..., ::-1]))[1].tobytes()


def _panels(panels: list[tuple[np.ndarray, str]], ncols: int, cell: float = 2.4) -> Figure:
    nrows = -(-len(panels) // ncols)
    fig = Figure(figsize=(cell * ncols, cell * nrows), dpi=DPI, layout="constrained")
    for ax, (rgb, title) in zip(fig.subplots(nrows, ncols, squeeze=False).ravel(), panels):
        ax.imshow(rgb), ax.set_title(title, fontsize=8), ax.set_axis_off()
    return fig


# ----------------------------------------------------------------------------- task 1
@dataclass
class Task1Run:
    """A task-1 run's test split with its soft masks (window size, from the EMA provider)."""

    run_dir: Path
    test: CubDataset
    masks: PastedMasks  # window-size soft masks, pasted into the full image on demand
    ious: np.ndarray  # n: IoU at threshold 0.5 (nan without GT)

    @property
    def windows(self) -> WindowSet:
        return self.masks.ws

    @property
    def probs(self) -> np.ndarray:  # n s s float32
        return self.masks.probs

    def soft(self, i: int) -> np.ndarray:
        return self.masks[i]

    def view(self, i: int, threshold: float = 0.5, gt: bool = True, pred: bool = True, diff: bool = False) -> dict[str, Any]:
        """What the explorer shows for image i: rgb overlay, the binary mask, its area and IoU."""
        img, g, mask = load_image(self.test.image_path(i)), self.windows.gt[i], self.soft(i) >= threshold
        out = overlay_mask(img, mask, PRED_COLOR) if pred else img
        if diff and g is not None:
            out = _blend(_blend(out, mask & ~g, FP_COLOR, 0.7), ~mask & g, FN_COLOR, 0.7)
        if gt and g is not None:
            out = _blend(out, find_boundaries(g, mode="inner") & g, GT_COLOR, 1.0)
        iou = float("nan") if g is None else mask_iou(mask, g)
        return {"rgb": out, "mask": mask, "area": int(mask.sum()), "iou": iou, "name": self.test.names[i]}


_CACHE: dict[tuple, Task1Run] = {}


def load_task1(run_dir: str | Path, *, device: str = "cpu", cache_dir: str | Path = ".cache/data",
               dataset: str | None = None) -> Task1Run:
    """Rebuild the run from checkpoint.pt (`task1.load_run`), segment its test split once, cache the result.

    `dataset` overrides the spec saved in the checkpoint (a CUB folder that moved)."""
    run_dir = Path(run_dir)
    ckpt = run_dir / "checkpoint.pt"
    if not ckpt.is_file():
        raise FileNotFoundError(f"{ckpt}: missing; a task-1 run dir holds what task1.run_task1 writes")
    key = (str(run_dir.resolve()), ckpt.stat().st_mtime_ns, device, dataset, str(Path(cache_dir).resolve()))
    if key not in _CACHE:
        cfg, method = task1.load_run(run_dir, device)
        test = open_dataset(dataset or cfg.dataset, "test", cache_dir)
        ws = prepare_windows(test, cfg.image_size, cfg.window_scale, progress=False)
        masks = task1.full_masks(method.ema.module, ws, torch.device(device), cfg.views)
        run = Task1Run(run_dir, test, masks, np.full(len(ws), np.nan))
        run.ious = np.array([np.nan if g is None else mask_iou(run.soft(i) >= 0.5, g) for i, g in enumerate(ws.gt)])
        _CACHE.pop(next(iter(_CACHE))) if len(_CACHE) >= 4 else None  # soft masks of the last few runs only
        _CACHE[key] = run
    return _CACHE[key]


def _task1_static(run: Task1Run, thresholds: tuple[float, ...], n: int) -> list[Figure]:
    """Rows: the worst, median and best images (IoU at 0.5); columns: thresholds; difference view."""
    order = [i for i in np.argsort(run.ious, kind="stable") if np.isfinite(run.ious[i])] or list(range(len(run.ious)))
    picks = sorted({order[round(j * (len(order) - 1) / max(n - 1, 1))] for j in range(min(n, len(order)))},
                   key=order.index)
    panels = []
    for i in picks:
        for t in thresholds:
            v = run.view(i, t, diff=True)
            panels.append((v["rgb"], f"{Path(v['name']).stem}  t={t:.2f}  IoU {v['iou']:.2f}"))
    return [_panels(panels, len(thresholds), cell=2.0)]


def _task1_widget(run: Task1Run, side: int) -> Explorer:
    order = [int(i) for i in np.argsort(np.nan_to_num(run.ious, nan=-1.0), kind="stable")]  # worst first
    pick = W.Dropdown(options=[(f"{run.test.names[i]}  (IoU@0.5 {run.ious[i]:.2f})", i) for i in order],
                      description="image", layout=W.Layout(width="420px"))
    rank = W.IntSlider(0, min=0, max=len(order) - 1, description="worst→best", continuous_update=False)
    rank.observe(lambda c: setattr(pick, "value", order[c["new"]]), names="value")
    pick.observe(lambda c: setattr(rank, "value", order.index(c["new"])), names="value")
    thr = W.FloatSlider(0.5, min=0.05, max=0.95, step=0.05, description="threshold", continuous_update=False)
    toggles = {k: W.Checkbox(v, description=k, indent=False, layout=W.Layout(width="110px"))
               for k, v in (("GT", True), ("prediction", True), ("difference", False))}
    title, img, soft = W.HTML(), W.Image(format="png"), W.Image(format="png")
    box = Explorer([W.HBox([pick, rank]), W.HBox([thr, *toggles.values()]), title, W.HBox([img, soft], layout=TOP)])
    box.controls = {"image": pick, "rank": rank, "threshold": thr, **toggles}

    def update(_: Any = None) -> None:
        i, t = pick.value, thr.value
        v = run.view(i, t, toggles["GT"].value, toggles["prediction"].value, toggles["difference"].value)
        box.state = {k: v[k] for k in ("name", "mask", "area", "iou")} | {"index": i, "threshold": t}
        iou = "no GT" if np.isnan(v["iou"]) else f"IoU {v['iou']:.3f}"
        title.value = (f"<b>{v['name']}</b> &nbsp; {iou} at threshold {t:.2f} &nbsp; mask {v['area']} px"
                       + (" &nbsp; <span style='color:#e61e1e'>FP</span> / <span style='color:#1e5aff'>FN</span>"
                          if toggles["difference"].value else ""))
        img.value = _png(v["rgb"], side)
        soft.value = _png(np.repeat((run.soft(i)[..., None] * 255).astype(np.uint8), 3, 2), side)

    for w in (pick, thr, *toggles.values()):
        w.observe(update, names="value")
    update()
    return box


def summary_markdown(run: Task1Run, metrics: dict[str, Any]) -> str:
    """Notebook 04's headline: the run's per-image IoU distribution (GAN masks at 0.5), from the masks themselves."""
    ious = run.ious[np.isfinite(run.ious)]
    if not len(ious):
        return f"**{len(run.ious)} test images without GT**: nothing to score."
    box = metrics.get("whole_box_iou_mean")
    below = "" if box is None else f"; {np.mean(ious < box):.0%} of the images score below the whole box ({box:.3f})"
    return (f"**{len(ious)} test images** (the GAN's EMA provider, threshold 0.5): IoU mean {ious.mean():.3f}, median "
            f"{np.median(ious):.3f}, worst {ious.min():.3f}, best {ious.max():.3f}{below}.")


# ----------------------------------------------------------------------------- HOC
@dataclass
class HOCRun:
    """A HOC run's instance map and (when known) the photo it was computed on."""

    run_dir: Path
    labels: np.ndarray  # h w int64
    image: np.ndarray | None  # h w 3 uint8
    metrics: dict[str, Any]

    @property
    def instances(self) -> list[tuple[int, int]]:
        """(id, area) pairs, largest first."""
        ids, areas = np.unique(self.labels[self.labels > 0], return_counts=True)
        return [(int(ids[j]), int(areas[j])) for j in np.argsort(-areas, kind="stable")]

    def view(self, instance: int = 0, pad: int = 4) -> dict[str, Any]:
        """All instances over the photo; with instance > 0 the others dimmed, its outline yellow, its crop."""
        base = self.image if self.image is not None else np.full(self.labels.shape + (3,), 128, np.uint8)
        out = overlay_instances(base, self.labels)
        sel = self.labels == instance
        if instance <= 0 or not sel.any():
            return {"rgb": out, "crop": None, "area": 0}
        out[~sel] = (out[~sel] * 0.35 + 100).astype(np.uint8)
        out[find_boundaries(sel, mode="thick")] = PICK_COLOR
        return {"rgb": out, "crop": instance_crop(base, sel, pad), "area": int(sel.sum())}


def load_hoc(run_dir: str | Path, image: str | Path | np.ndarray | None = None) -> HOCRun:
    """instances.png (+ metrics.json); the photo: `image`, else metrics.json's "image", else run_dir/image.png."""
    run_dir = Path(run_dir)
    if not (run_dir / "instances.png").is_file():
        raise FileNotFoundError(f"{run_dir / 'instances.png'}: missing; a HOC run dir holds what hoc.run_hoc writes")
    labels = load_label_map(run_dir / "instances.png").astype(np.int64)
    metrics = json.loads((run_dir / "metrics.json").read_text()) if (run_dir / "metrics.json").is_file() else {}
    if image is None:  # recorded by the run, else an image.png saved beside its outputs
        recorded = metrics.get("image")
        image = next((Path(p) for p in (recorded, run_dir / "image.png") if p and Path(p).is_file()), None)
    if isinstance(image, (str, Path)):
        image = load_image(image)
    if image is not None and np.asarray(image).shape[:2] != labels.shape:
        raise ValueError(f"image: {np.asarray(image).shape[:2]} does not match {run_dir / 'instances.png'}'s {labels.shape}")
    return HOCRun(run_dir, labels, None if image is None else np.asarray(image, np.uint8), metrics)


def _hoc_static(run: HOCRun) -> list[Figure]:
    inst = run.instances
    panels = [(run.view()["rgb"], f"{len(inst)} instances" + ("" if run.image is not None else " (photo unknown)"))]
    if inst:
        v = run.view(inst[0][0])
        panels += [(v["rgb"], f"largest: #{inst[0][0]}"), (v["crop"], f"#{inst[0][0]}  {v['area']} px")]
    return [_panels(panels, len(panels), cell=3.0)]


def _hoc_widget(run: HOCRun, side: int) -> Explorer:
    pick = W.Dropdown(options=[(f"all ({len(run.instances)})", 0)] + [(f"#{i}  {a} px", i) for i, a in run.instances],
                      description="instance")
    title, img, crop = W.HTML(), W.Image(format="png"), W.Image(format="png")
    box = Explorer([pick, title, W.HBox([img, crop], layout=TOP)])
    box.controls = {"instance": pick}

    def update(_: Any = None) -> None:
        v = run.view(pick.value)
        box.state = {"instance": pick.value, "area": v["area"]}
        note = "" if run.image is not None else " &nbsp; (photo unknown: pass image=...)"
        head = f"#{pick.value}</b> &nbsp; {v['area']} px" if pick.value else f"{len(run.instances)} instances</b>"
        title.value = f"<b>{head}{note}"
        img.value = _png(v["rgb"], side)
        crop.value = _png(v["crop"], side // 2) if v["crop"] is not None else b""
        crop.layout.display = None if v["crop"] is not None else "none"

    pick.observe(update, names="value")
    update()
    return box


# ----------------------------------------------------------------------------- entry points
def static_views(run_dir: str | Path, *, thresholds: tuple[float, ...] = (0.3, 0.5, 0.7), n: int = 3,
                 image: str | Path | np.ndarray | None = None, **load: Any) -> list[Figure]:
    """The explorer as figures: task 1, worst / median / best image x thresholds; HOC, one instance picked."""
    if run_kind(run_dir) == "hoc":
        return _hoc_static(load_hoc(run_dir, image))
    return _task1_static(load_task1(run_dir, **load), tuple(thresholds), n)


def explorer(run_dir: str | Path, *, image: str | Path | np.ndarray | None = None, side: int = 320,
             **load: Any) -> Explorer:
    """An ipywidgets.VBox for a task-1 or HOC run dir. `load`: device, cache_dir, dataset (see load_task1)."""
    if run_kind(run_dir) == "hoc":
        return _hoc_widget(load_hoc(run_dir, image), side)
    return _task1_widget(load_task1(run_dir, **load), side)


def show(run_dir: str | Path, *, image: str | Path | np.ndarray | None = None, **load: Any) -> Any:
    """Display the explorer, or its static figures when `headless()`; returns what was displayed."""
    from IPython.display import display

    shown = static_views(run_dir, image=image, **load) if headless() else [explorer(run_dir, image=image, **load)]
    for x in shown:
        display(x)
    return shown if headless() else shown[0]
