"""Touching pairs of instances of saved round-object runs, at the grid the grouping works on: how round their
union is, how far apart their colours are, and other cues tried (docs/method.md, session 38).

    PYTHONPATH=lib .venv/bin/python docs/experiments/session38/pairfeat.py RUN_DIR ...

A pair is "same" when both instances lie (each with over half its pixels) in one GT object. Prints the pairs
whose union is under 1.7 x as long as wide (two whole discs touching make >= ~1.7)."""
import json
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch
from scipy import ndimage as ndi
from skimage.measure import regionprops

from indprior.data.suite.kinds import make_hoc
from indprior.hoc import grouping as G
from indprior.hoc import segment as SG

torch.set_num_threads(1)
seen = {}
_necks, _predict = SG.split_at_necks, SG.predict_instances


def predict(*a, **k):
    lab, maps = _predict(*a, **k)
    seen.update(img=a[1].copy(), offset=maps["offset"])
    return lab, maps


def necks(labels, boundary, d, *a, **k):
    out = _necks(labels, boundary, d, *a, **k)
    seen.update(labels=out.copy(), boundary=boundary, d=d)
    return out


SG.predict_instances, SG.split_at_necks = predict, necks


def dip(gray, a, b):
    """min(mean brightness 2-5 px inside each piece next to the contact) - mean on the contact."""
    c = (ndi.binary_dilation(a) & b) | (ndi.binary_dilation(b) & a)
    near = ndi.distance_transform_edt(~c) <= 6
    da, db = ndi.distance_transform_edt(~b), ndi.distance_transform_edt(~a)
    ba, bb = a & (da >= 2) & (da <= 5) & near, b & (db >= 2) & (db <= 5) & near
    return (min(gray[ba].mean(), gray[bb].mean()) - gray[c].mean()) if ba.any() and bb.any() else np.nan, c


for run in map(Path, sys.argv[1:]):
    m = json.loads((run / "metrics.json").read_text())
    name = Path(m["image"]).stem
    kind = name.rstrip("0123456789")
    photo, gt = make_hoc(kind, int(name[len(kind):]))
    with tempfile.TemporaryDirectory() as t:
        SG.segment_with_run(run, photo, t, same_scale=True, device="cpu")
    lab, img, d = seen["labels"].astype(np.int64), seen["img"].astype(float), seen["d"]
    gt = cv2.resize(gt.astype(np.uint16), lab.shape[::-1], interpolation=cv2.INTER_NEAREST).astype(np.int64)
    gray = img.mean(2)
    contrast = np.subtract(*np.percentile(gray[lab > 0], [95, 5]))
    chroma = img / np.maximum(img.sum(2, keepdims=True), 1)
    mom = G._moments(lab, int(lab.max()))
    props = {r.label: r for r in regionprops(lab.astype(np.int32))}
    yy, xx = np.indices(lab.shape)
    for p, q in G._touching_pairs(lab):
        major, minor = G._axes(mom[p] + mom[q])
        if major > 1.7 * minor:
            continue
        a, b = lab == p, lab == q
        hp, hq = np.bincount(gt[a]), np.bincount(gt[b])
        gp, gq = hp[1:].argmax() + 1 if len(hp) > 1 else 0, hq[1:].argmax() + 1 if len(hq) > 1 else 0
        same = gp == gq and gp > 0 and hp[gp] > 0.5 * a.sum() and hq[gq] > 0.5 * b.sum()
        colour = np.abs(chroma[a].mean(0) - chroma[b].mean(0)).sum()
        dp, c = dip(gray, a, b)
        arrive = [np.array([np.median(yy[s] + seen["offset"][0][s]), np.median(xx[s] + seen["offset"][1][s])]) for s in (a, b)]
        centroid = [np.array([yy[s].mean(), xx[s].mean()]) for s in (a, b)]
        gap = np.linalg.norm(arrive[0] - arrive[1]) / np.linalg.norm(centroid[0] - centroid[1])
        print(f"{run.name:16s} same={int(same)} ratio={major / minor:.2f} colour={colour:.3f} dip={dp / contrast:+.3f} "
              f"vote_gap={gap:.2f} solidity={props[p].solidity:.2f},{props[q].solidity:.2f} "
              f"boundary_on_contact={seen['boundary'][c].mean():.2f} union/disc={(a.sum() + b.sum()) / (np.pi * d * d / 4):.2f}")
