#!/usr/bin/env python
"""Task 2's scale and foreground, read off the photo, against the truth: one row per suite kind and image seed.

    .venv/bin/python bench/hoc_scale.py --image-seeds 10,11,12            # held out (the report)
    .venv/bin/python bench/hoc_scale.py --image-seeds 0,1,2,3,4 --kinds rods,sizes

For each photo: `photo_stats` (no labels) gives the typical object width, length and area-equivalent diameter
and the foreground, and `segment.measured_size` the size a run works at (`size_used`); the GT label map gives
the truth: median over instances of the area-equivalent diameter, and of the width (2 x the largest inscribed
radius). Also the foreground's IoU with the GT's objects, and the seconds it took. Writes JSON lines to --out and
a markdown table (per kind: median and worst ratio) beside it. No training, a few seconds per photo (the large
kind: about a minute).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "lib"))  # this checkout's library, before any installed one

from indprior.data.suite import KINDS, make_hoc  # noqa: E402
from indprior.hoc.config import HOCConfig  # noqa: E402
from indprior.hoc.scale import photo_stats  # noqa: E402
from indprior.hoc.segment import measured_size  # noqa: E402
from indprior.report import scale_summary  # noqa: E402


def truth(gt: np.ndarray) -> dict[str, float]:
    """Median area-equivalent diameter and median width (2 x max inscribed radius) of the GT instances."""
    labels = np.unique(gt[gt > 0])
    area = ndi.sum_labels(np.ones_like(gt), gt, labels)
    radius = []  # per instance: the EDT of its own (visible) mask, inside its bounding box
    for sl, lab in zip(ndi.find_objects(gt), range(1, int(gt.max()) + 1)):
        if sl is None:
            continue
        own = np.pad(gt[sl] == lab, 1)
        radius.append(ndi.distance_transform_edt(own).max())
    return {"diameter": float(np.median(2 * np.sqrt(area / np.pi))), "width": float(2 * np.median(radius)),
            "count": int(len(labels))}


def one(kind: str, seed: int) -> dict:
    img, gt = make_hoc(kind, seed)
    t0 = time.perf_counter()
    s = photo_stats(img)
    seconds = time.perf_counter() - t0
    t = truth(gt)
    used = measured_size(HOCConfig(), s)  # the size a run works at (heaps: x the factor, or the opened diameter past
    # the margin)
    inter, union = np.logical_and(s.fg, gt > 0).sum(), np.logical_or(s.fg, gt > 0).sum()
    return {"kind": kind, "image_seed": seed, "side": int(max(img.shape[:2])), "count_gt": t["count"],
            "diameter_est": round(s.diameter, 2), "diameter_gt": round(t["diameter"], 2),
            "diameter_ratio": round(s.diameter / t["diameter"], 3), "width_est": round(s.width, 2),
            "width_gt": round(t["width"], 2), "width_ratio": round(s.width / t["width"], 3),
            "size_used": round(used, 2), "size_ratio": round(used / t["diameter"], 3), "opened": s.opened,
            "heaped": round(s.heaped, 3), "fg_iou": round(float(inter / max(union, 1)), 3), "seconds": round(seconds, 1)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--image-seeds", default="10,11,12")
    ap.add_argument("--out", default=str(HERE / "hoc_suite" / "scale_heldout.jsonl"))
    args = ap.parse_args(argv)
    rows = []
    for kind in args.kinds.split(","):
        for seed in map(int, args.image_seeds.split(",")):
            rows.append(one(kind, seed))
            print(json.dumps(rows[-1]), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out.with_suffix(".md").write_text(scale_summary(rows) + "\n")
    print(scale_summary(rows))


if __name__ == "__main__":
    main()
