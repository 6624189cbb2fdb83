"""Masks for new photos with a trained task-1 run: boxes in (COCO JSON or CSV), masks out (0/255 PNGs and one
COCO JSON with RLE masks that FiftyOne, CVAT and detectron2 read).

The stage used is the run's best by default ("last"): the self-trained network when the run has one (else the
GAN's EMA provider), followed by GrabCut refinement when the run's config has it on, exactly as run_task1
produced its last rows. Every box is checked before any network runs (a bad line fails at once, named).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ..baselines import grabcut_refine
from ..core.files import prepare_out_dir, save_png_atomic, write_json
from ..core.runtime import resolve_device
from ..data.boxes import read_annotations
from ..data.coco import ann_entry, group_by_image, image_entry, mask_paths, write_coco
from ..data.cub import Sample, clip_box
from ..data.images import load_image
from ..data.windows import prepare_windows
from ..models import SegmentingProvider
from .config import Task1Config
from .infer import full_masks, load_run

STAGES = ("last", "gan", "gan_grabcut", "self_trained", "self_trained_grabcut")


def stage_model(run_dir: str | Path, stage: str, device: torch.device) -> tuple[Task1Config, torch.nn.Module, str]:
    """(config, network, the stage's name) of a run's stage; 'last' is the run's final stage. A name ending
    in '_grabcut' means GrabCut refines the network's masks."""
    if stage not in STAGES:
        raise ValueError(f"stage={stage!r}: expected one of {', '.join(STAGES)}")
    run_dir = Path(run_dir)
    cfg, method = load_run(run_dir, device)
    student = run_dir / "self_trained.pt"
    if stage == "last":
        stage = ("self_trained" if student.is_file() else "gan") + ("_grabcut" if cfg.refine == "grabcut" else "")
    net: torch.nn.Module = method.ema.module
    if stage.startswith("self_trained"):
        if not student.is_file():
            raise FileNotFoundError(f"{student}: missing; this run has no self-trained stage (self_train_steps=0)")
        net = SegmentingProvider(cfg.unet_base, cfg.unet_levels, cfg.colour_cue).to(device)
        net.load_state_dict(torch.load(student, map_location=device, weights_only=True)["state"])
    return cfg, net.eval(), stage


def segment_boxes(run_dir: str | Path, images_dir: str | Path, boxes: str | Path, out_dir: str | Path, *,
                  category: str | None = None, stage: str = "last", device: str = "auto",
                  progress: bool = True) -> dict[str, Any]:
    """One mask per box: out/masks/<image>.png (one box) or out/masks/<image stem>_<ann id>.png (several),
    out/masks.json (COCO, RLE) and out/summary.json. Returns the summary."""
    t0 = time.perf_counter()
    ann = read_annotations(boxes, images_dir, category)  # every box checked up front
    out_dir, dev = prepare_out_dir(out_dir), resolve_device(device)
    cfg, net, stage = stage_model(run_dir, stage, dev)
    grabcut = stage.endswith("_grabcut")
    paths = dict(zip(((r.file, r.ann_id) for r in ann.records), mask_paths(out_dir, ann.records)))
    images, anns = [], []
    for file, recs in tqdm(group_by_image(ann.records).items(), desc="segment", disable=not progress):
        image = load_image(Path(images_dir) / file)
        where = f"{Path(images_dir) / file}"
        samples = [Sample(int(r.ann_id or i), file, image, clip_box(r.box, image.shape[:2], where), None)
                   for i, r in enumerate(recs)]
        ws = prepare_windows(samples, cfg.image_size, cfg.window_scale, keep_gt=False, progress=False)
        probs = full_masks(net, ws, dev, cfg.views)
        for i, r in enumerate(recs):
            mask = grabcut_refine(image, tuple(ws.image_boxes[i]), probs[i]) if grabcut else probs[i] >= 0.5
            save_png_atomic(paths[(r.file, r.ann_id)], mask)
            anns.append(ann_entry(r, mask))
        images.append(image_entry(recs, *image.shape[:2]))
    write_coco(out_dir / "masks.json", images, anns, ann.categories or None)
    summary = {"run": str(Path(run_dir).resolve()), "stage": stage, "images": len(images), "boxes": len(anns),
               "device": str(dev), "seconds": round(time.perf_counter() - t0, 1),
               "boxes_file": str(Path(boxes).resolve()), "images_dir": str(Path(images_dir).resolve())}
    write_json(out_dir / "summary.json", summary)
    return summary

