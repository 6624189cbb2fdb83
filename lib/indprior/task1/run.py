"""Task 1 end to end: train the GAN on the train split's boxes, segment the test split, then the optional
stages of ours (GrabCut refinement, self-training), each reported as its own row of metrics.json.

`run_task1` reads as its stages: `load_data` -> `train_gan` -> `TestSplit.segment` (the paper's method) ->
`refine_stage` -> `self_train_stage`. Inference: S(window) pasted back into the image at the box ->
threshold 0.5 -> binary mask. metrics.json is written last: a folder holding it is complete.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..baselines import grabcut_box, grabcut_refine, map_threads
from ..core import config as C
from ..core import dist
from ..core.files import atomic_write_bytes, prepare_out_dir, remove, write_json
from ..core.restarts import fit_with_restarts, loop_seconds
from ..core.runtime import autocast_enabled, provenance, resolve_device, seed_everything, warn_if_cpu_busy
from ..data.cub import Sample
from ..data.datasets import open_dataset, split_off
from ..data.windows import PastedMasks, WindowSet, prepare_windows, save_masks
from ..metrics import foreground_scores, foreground_summary
from .config import Task1Config
from .infer import ColourCueAlone, evaluate, full_masks
from .method import IndependencePriorTask1, Task1Batches, background_bank, collapse_reason, sample_composites
from .selftrain import pseudo_labels, self_train


@dataclass
class Task1Data:
    """Everything training and evaluation read: both splits, their box windows, the background patches."""

    train_ds: Sequence[Sample]
    test_ds: Sequence[Sample]
    train: WindowSet
    test: WindowSet
    bank: torch.Tensor
    val_ds: Sequence[Sample] | None = None  # val_fraction of the train images, held out of training
    val: WindowSet | None = None


def load_data(cfg: Task1Config, cache_dir: str | Path, progress: bool) -> Task1Data:
    """Resolve the dataset spec (rank 0 first under torchrun: it may generate the synthetic set), cut windows."""
    if not dist.is_main():
        dist.barrier()  # rank 0 generates/validates the data set first
    train_ds, val_ds = split_off(open_dataset(cfg.dataset, "train", cache_dir), cfg.val_fraction)
    if dist.is_main():
        dist.barrier()
    test_ds = open_dataset(cfg.dataset, "test", cache_dir)
    train = prepare_windows(train_ds, cfg.image_size, cfg.window_scale, keep_gt=False, progress=progress)
    test = prepare_windows(test_ds, cfg.image_size, cfg.window_scale, progress=progress)
    val = None if val_ds is None else prepare_windows(val_ds, cfg.image_size, cfg.window_scale, progress=progress)
    bank = background_bank(train_ds, cfg.image_size, cfg.bg_per_image, np.random.default_rng(cfg.seed), progress)
    return Task1Data(train_ds, test_ds, train, test, bank, val_ds, val)


def train_gan(cfg: Task1Config, data: Task1Data, out_dir: Path, device: torch.device, resume: bool,
              progress: bool) -> tuple[IndependencePriorTask1, list[dict[str, Any]]]:
    """The GAN with collapse restarts; monitored test IoU goes to the log (nothing is selected by it)."""
    batches = Task1Batches(data.train, data.bank, cfg.batch_size, device, rows=dist.shard(len(data.train)))

    def monitor(method: IndependencePriorTask1, step: int) -> dict[str, float]:  # val split when there is one
        scores = evaluate(method.ema.module, data.val if data.val is not None else data.test, device, views=cfg.views)
        return {"val/iou": scores.get("iou_mean", float("nan")), "val/acc": scores.get("acc_mean", float("nan"))}

    def samples(method: IndependencePriorTask1, step: int, folder: Path) -> None:  # composites with their masks
        from ..viz import composite_figure, save_figure  # lazy: matplotlib only when figures are made
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):  # keep the training's RNG stream
            out = sample_composites(method, data.train, data.bank, n=4)
        save_figure(composite_figure(out["fake"], out["visible"], background=out["background"], n=4),
                    folder / "samples" / f"composites_{step:06d}.png")

    return fit_with_restarts(
        lambda seed: IndependencePriorTask1(cfg, device), out_dir, C.to_dict(cfg), batches, cfg.steps, seed=cfg.seed,
        collapse_reason=lambda history: collapse_reason(cfg, history), check_every=cfg.collapse_check_every,
        check_until=cfg.collapse_until, max_restarts=cfg.max_restarts, resume=resume, name="task 1",
        eval_fn=monitor, sample_fn=samples, log_every=cfg.log_every, ckpt_every=cfg.ckpt_every,
        eval_every=cfg.eval_every, sample_every=cfg.sample_every, progress=progress,
        may_change=Task1Config.RESUME_MAY_CHANGE)


class EvalSplit:
    """A split's windows and GT: scores a stage's masks (images without GT skipped) and, when `out_dir` is
    given, writes them (0/255 PNGs mirroring images/)."""

    def __init__(self, ds: Sequence[Sample], ws: WindowSet, out_dir: Path | None, device: torch.device,
                 progress: bool, views: int = 1):
        self.ds, self.ws, self.out_dir, self.device, self.progress = ds, ws, out_dir, device, progress
        self.views = views  # infer.predict_window_masks
        self.has_gt = [g is not None for g in ws.gt]
        self.gts = [g for g in ws.gt if g is not None]
        self.rows = [i for i, ok in enumerate(self.has_gt) if ok]

    def _save(self, folder: str, masks: Sequence[np.ndarray]) -> None:
        if self.out_dir is not None:
            save_masks(self.out_dir / folder, self.ws.names, masks)

    def segment(self, provider: torch.nn.Module, folder: str) -> tuple[PastedMasks, dict[str, float]]:
        """A provider's soft masks of every image (saved thresholded under out_dir/folder) and their scores."""
        probs = full_masks(provider, self.ws, self.device, self.views)
        self._save(folder, probs)
        return probs, (foreground_summary(probs.where(self.rows, 0.5), self.gts) if self.gts else {})

    def refine(self, probs: PastedMasks, folder: str) -> dict[str, float]:
        """GrabCut started from each soft mask (OpenCV, on a thread pool), saved under out_dir/folder; scores."""
        ws, ds = self.ws, self.ds
        refined = map_threads(lambda i: grabcut_refine(ds[i].image, tuple(ws.image_boxes[i]), probs[i]),
                              len(ws), desc="grabcut refine", progress=self.progress)
        self._save(folder, refined)
        return foreground_summary([m for m, ok in zip(refined, self.has_gt) if ok], self.gts) if self.gts else {}

    def grabcut_box(self) -> dict[str, float]:
        """The classical answer beside every run: GrabCut initialised with each box (OpenCV, 5 iterations)."""
        ws, ds = self.ws, self.ds
        masks = map_threads(lambda i: grabcut_box(ds[i].image, tuple(ws.image_boxes[i])), len(ws),
                            desc="grabcut from the box", progress=self.progress)
        return foreground_summary([m for m, ok in zip(masks, self.has_gt) if ok], self.gts) if self.gts else {}

    def colour_cue_box(self, levels: int) -> dict[str, float]:
        """The colour cue alone, no learning (infer.ColourCueAlone), through the same views as every stage."""
        probs = full_masks(ColourCueAlone(levels or 8), self.ws, self.device, self.views)
        return foreground_summary(probs.where(self.rows, 0.5), self.gts) if self.gts else {}

    def whole_box_iou(self) -> float:
        """IoU of the box itself as the mask (a read-only view: no n x s x s array of ones)."""
        side = self.ws.windows.shape[-2:]
        ones = np.broadcast_to(np.ones((1, *side), np.float32), (len(self.ws), *side))
        return foreground_scores(PastedMasks(ones, self.ws, 0.5, self.rows), self.gts)["iou_mean"]

    def stages(self, gan: torch.nn.Module, student: torch.nn.Module | None, grabcut: bool) -> dict[str, dict]:
        """Every stage's scores (the keys of metrics.json): GAN, + GrabCut, self-trained, + GrabCut."""
        probs, rows = self.segment(gan, "masks")
        out = {"gan": rows}
        if grabcut:
            out["refined_grabcut"] = self.refine(probs, "masks_refined")
        if student is not None:
            s_probs, out["self_trained"] = self.segment(student, "masks_self_trained")
            if grabcut:
                out["self_trained_grabcut"] = self.refine(s_probs, "masks_self_trained_refined")
        return out


def self_trained(cfg: Task1Config, provider: torch.nn.Module, train: WindowSet, train_ds: Sequence[Sample],
                 device: torch.device, out_dir: Path, backgrounds: torch.Tensor | None = None,
                 progress: bool = False) -> torch.nn.Module:
    """selftrain.py's stage: GrabCut pseudo-labels on the training images, then a trained copy of `provider`;
    `cfg.self_train_rounds` times, each round teaching from the last round's student (saved as
    out_dir/self_trained.pt: {"state", "steps", "rounds"}). Uses boxes only, like the GAN. `backgrounds`: the
    GAN's background bank (n 3 s s), onto which `cfg.self_train_paste` of the windows are pasted."""
    teacher, bf16 = provider, autocast_enabled(device, cfg.amp, cfg.amp_cpu)  # as the GAN's forward pass
    for k in range(cfg.self_train_rounds):
        targets = pseudo_labels(full_masks(teacher, train, device, cfg.views), train_ds, train.rects, train.image_boxes,
                                cfg.image_size, progress)
        teacher = self_train(teacher, train.windows, train.boxes, targets, steps=cfg.self_train_steps,
                             lr=cfg.self_train_lr, batch_size=cfg.batch_size, seed=cfg.seed + k, device=device,
                             augmented=cfg.self_train_augment, bf16=bf16, backgrounds=backgrounds,
                             paste=cfg.self_train_paste, progress=progress)
    atomic_write_bytes(out_dir / "self_trained.pt", lambda f: torch.save(
        {"state": teacher.state_dict(), "steps": cfg.self_train_steps, "rounds": cfg.self_train_rounds}, f))
    return teacher


def stage_outputs(cfg: Task1Config) -> dict[str, bool]:
    """Every output a finished run_task1 folder may hold -> whether `cfg` makes it (its stages switched on)."""
    grabcut, self_train_on = cfg.refine == "grabcut", cfg.self_train_steps > 0
    return {"checkpoint.pt": True, "masks": True, "masks_refined": grabcut, "masks_self_trained": self_train_on,
            "self_trained.pt": self_train_on, "masks_self_trained_refined": grabcut and self_train_on}


def _stage_switches(cfg: Task1Config, out_dir: Path) -> tuple[bool, bool]:
    """(GrabCut rows on, self-training on); removes what an earlier run with a stage on left behind."""
    for name, on in stage_outputs(cfg).items():
        if not on:
            remove(out_dir / name)
    return cfg.refine == "grabcut", cfg.self_train_steps > 0


def run_task1(cfg: Task1Config, out_dir: str | Path, *, resume: bool = True, progress: bool = True,
              cache_dir: str | Path = ".cache/data") -> dict[str, Any]:
    """Train on the train split using boxes only, segment the test split, write masks + metrics.json."""
    t0 = time.perf_counter()
    out_dir = prepare_out_dir(out_dir)
    device = dist.device_for_rank(resolve_device(cfg.device))
    seed_everything(cfg.seed)
    busy = warn_if_cpu_busy(device)
    data = load_data(cfg, cache_dir, progress)
    t_fit = time.perf_counter()
    method, restarts = train_gan(cfg, data, out_dir, device, resume, progress)
    train_seconds = (t_fit - t0) + loop_seconds(out_dir)  # this call's data preparation + every training loop
    rank = dist.rank()
    dist.leave()  # training was the only collective work
    if rank != 0:  # rank 0 segments the test split and writes every output
        return {"rank": rank, "restarts": len(restarts)}
    (out_dir / "metrics.json").unlink(missing_ok=True)  # metrics.json is written last: it marks complete outputs
    metrics: dict[str, Any] = {"task": "foreground", "split": "test", "n_images": len(data.test), "profile": cfg.profile,
                               "dataset": cfg.dataset, "seed": cfg.seed, "device": str(device), "steps": cfg.steps,
                               "model": "EMA provider at the last step (no checkpoint selection)",
                               "restarts": len(restarts), "collapses": restarts,
                               "averaging": "iou_mean/acc: per-image mean; *_pooled: pooled over all test pixels"}
    if busy:
        metrics["cpu_busy_at_start"] = busy  # so its seconds are read as what they are
    grabcut, self_train_on = _stage_switches(cfg, out_dir)
    student = None
    if self_train_on:  # second stage (not in the paper): a copy of the provider on GrabCut pseudo-labels
        t_self = time.perf_counter()
        student = self_trained(cfg, method.ema.module, data.train, data.train_ds, device, out_dir, data.bank, progress)
        metrics["self_train_seconds"] = round(time.perf_counter() - t_self, 1)  # pseudo-labels + training
    test = EvalSplit(data.test_ds, data.test, out_dir, device, progress, cfg.views)
    rows = test.stages(method.ema.module, student, grabcut)
    metrics.update(rows.pop("gan"))
    if test.gts:
        metrics["whole_box_iou_mean"] = test.whole_box_iou()
        metrics["grabcut_box"] = test.grabcut_box()
        metrics["colour_cue_box"] = test.colour_cue_box(cfg.colour_cue)
    metrics.update({k: v for k, v in rows.items() if v})
    if data.val is not None:  # the validation split of the train images: GT used here, for choosing only
        val = EvalSplit(data.val_ds, data.val, None, device, progress, cfg.views)
        metrics["val"] = {k: v.get("iou_mean") for k, v in val.stages(method.ema.module, student, grabcut).items()}
        metrics["val"]["whole_box"], metrics["val"]["n_images"] = val.whole_box_iou(), len(data.val)
        metrics["val"]["grabcut_box"] = val.grabcut_box().get("iou_mean")
        metrics["val"]["colour_cue_box"] = val.colour_cue_box(cfg.colour_cue).get("iou_mean")
    metrics["seconds"] = round(time.perf_counter() - t0, 1)
    metrics["train_seconds"] = round(train_seconds, 1)
    metrics["provenance"] = provenance()
    write_json(out_dir / "metrics.json", metrics)
    return metrics
