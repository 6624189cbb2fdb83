"""Tried, not adopted: split the instances of saved round runs that look like several objects (at least BIG x the
median instance area, two peaks of their own distance transform at least REL x its height apart by a neck, each part
at least 0.4 x the median area), scored against the suite GT before and after.

    PYTHONPATH=lib .venv/bin/python docs/experiments/session42/split_merged.py check_runs_saved.jsonl > rows.jsonl

Each row: the run, its F1 as saved, and per "BIG/REL" the F1 after splitting and how many instances were split.
"""
import json
import re
import sys

import numpy as np
from PIL import Image
from scipy import ndimage as ndi
from skimage.measure import regionprops
from skimage.morphology import h_maxima
from skimage.segmentation import watershed

from indprior.data import COINS_GT, load_label_map
from indprior.data.suite import make_hoc
from indprior.metrics import instance_scores


def split(labels: np.ndarray, big: float, rel: float, keep: float = 0.4) -> tuple[np.ndarray, int]:
    props = [p for p in regionprops(labels) if p.area >= 9]
    med = np.median([p.area for p in props])
    out, new, n = labels.copy(), int(labels.max()) + 1, 0
    for p in props:
        if p.area < big * med:
            continue
        m = np.pad(p.image, 1)
        d = ndi.distance_transform_edt(m)
        peaks, k = ndi.label(h_maxima(d, max(1.0, rel * d.max())))
        if k < 2:
            continue
        parts = watershed(-d, peaks, mask=m)[1:-1, 1:-1]
        if np.bincount(parts.ravel())[1:].min() < keep * med:
            continue
        sub = out[p.slice]
        for j in range(2, k + 1):
            sub[(parts == j) & p.image] = new
            new += 1
        n += 1
    return out, n


for line in open(sys.argv[1]):
    row = json.loads(line)
    name = re.match(r"([a-z_]+?)(\d+)_t\d+$", row["run"].rstrip("/").split("/")[-1])
    if row["elongated"] or not name:
        continue
    kind, seed = name.group(1), int(name.group(2))
    gt = load_label_map(COINS_GT) if kind == "coins" else make_hoc(kind, seed)[1]
    labels = np.asarray(Image.open(row["run"] + "/instances.png")).astype(np.int32)
    res = {"run": row["run"], "f1": round(instance_scores(labels, gt)["f1"], 3)}
    for big in (1.5, 1.7, 2.0):
        for rel in (0.15, 0.2, 0.3):
            parted, n = split(labels, big, rel)
            res[f"{big}/{rel}"] = (round(instance_scores(parted, gt)["f1"], 3), n)
    print(json.dumps(res), flush=True)
