"""Which of `split_side_by_side`'s candidate cuts to keep: the thinnest (the library's rule) or the one whose cut
runs along the darkest line of the photo (object side up, as a share of the instance's contrast with the backdrop).

    PYTHONPATH=lib .venv/bin/python docs/experiments/session39/cutchoice.py RUNS_DIR:SEED ... 

Each argument is a folder holding a saved rods run `rods<SEED>_t0` (`bench/hoc_suite.py --runs`). For every instance
the splitter cuts, with two valid candidates (slices across and along as `_k_lines`' start), it prints the
candidates' summed width, cut brightness and purity against the GT (the share of the instance's GT pixels in their
part's majority object); then the F1 of each photo segmented again with the rule "the darker cut when it is at
least T darker, else the thinnest" for T = off, 0.15, 0.3 (docs/method.md, session 39)."""
import sys
import tempfile

import cv2
import numpy as np
import torch
from scipy import ndimage
from skimage.segmentation import relabel_sequential

from indprior.data import load_label_map
from indprior.data.suite.kinds import make_hoc
from indprior.hoc import grouping as G
from indprior.hoc import segment as SG
from indprior.hoc.outputs import scores

torch.set_num_threads(1)
LIBRARY_SPLIT = G.split_side_by_side


def cut_brightness(gray, ys, xs, assign, sl, labels, k):
    """Mean object-side-up brightness of the pixels on the cut (a 4-neighbour in another part), as a share of the
    instance's contrast with the backdrop 1-3 px outside it: below 1 the cut runs along a darker line."""
    inst = labels[sl] == k
    h, w = inst.shape
    part = np.full((h, w), -1)
    part[ys, xs] = assign
    g = gray[sl]
    ring = ndimage.binary_dilation(inst, iterations=3) & ~inst
    inside = g[inst].mean()
    back = np.median(g[ring]) if ring.any() else inside
    sign, contrast = (1 if inside >= back else -1), abs(inside - back) + 1e-9
    edge = np.zeros((h, w), bool)
    for dy, dx in ((0, 1), (1, 0)):
        a, b = part[:h - dy, :w - dx], part[dy:, dx:]
        e = (a >= 0) & (b >= 0) & (a != b)
        edge[:h - dy, :w - dx] |= e
        edge[dy:, dx:] |= e
    return float(sign * (g[edge].mean() - back) / contrast) if edge.any() else 9.0


def purity(g, assign, parts):
    s = 0
    for j in range(parts):
        gg = g[assign == j]
        gg = gg[gg > 0]
        s += np.bincount(gg).max() if len(gg) else 0
    return s / max(1, (g > 0).sum())


def candidates(p, d, parts, length, width, max_length, max_width, min_size):
    """split_side_by_side's valid candidates for `parts` parts: [(summed minor axes, assignment)]."""
    out = []
    for axis in (np.array([-d[1], d[0]]), d):
        c = p.mean(0)
        proj = (p - c) @ axis
        start = np.searchsorted(np.quantile(proj, np.linspace(0, 1, parts + 1)[1:-1]), proj)
        a = G._k_lines(p, start, parts)
        if a is None:
            continue
        sh = [G._principal(p[a == j]) if (a == j).sum() >= max(min_size, 3) else None for j in range(parts)]
        if all(s is not None and s[2] <= max_length * length and s[3] <= max_width * width for s in sh):
            out.append((sum(s[3] for s in sh), a))
    return out


def make_split(threshold, record=None, gt=None):
    """split_side_by_side with the candidate chosen by `threshold` (None: the thinnest, as the library)."""
    def split(labels, length, width, trigger=1.9, max_length=1.5, max_width=1.5, min_size=20, max_parts=3, image=None):
        out = labels.astype(np.int64)
        nxt = int(out.max()) + 1
        gray = None if image is None else image.astype(np.float64).mean(2)
        gtg = None if gt is None else cv2.resize(gt, labels.shape[::-1], interpolation=cv2.INTER_NEAREST)
        for k, sl in enumerate(ndimage.find_objects(labels), start=1):
            if sl is None:
                continue
            ys, xs = np.nonzero(labels[sl] == k)
            if len(ys) < 2 * min_size:
                continue
            p = np.stack([ys, xs], 1).astype(float)
            _, d, _, minor = G._principal(p)
            smallest = min_size
            if minor <= trigger * width:
                if gray is None or minor <= G.GROOVE_WIDTH * width:
                    continue
                pad = tuple(slice(max(0, s.start - 3), s.stop + 3) for s in sl)
                if G.groove_depth(gray[pad], labels[pad], k) < G.GROOVE:
                    continue
                smallest = max(min_size, G.GROOVE_PART * length * width)
            chosen = None
            for parts in range(2, max_parts + 1):
                cands = [(t, cut_brightness(gray, ys, xs, a, sl, labels, k) if gray is not None else 0.0, a)
                         for t, a in candidates(p, d, parts, length, width, max_length, max_width, min_size)]
                if not cands:
                    continue
                if record is not None and len(cands) == 2:
                    g = gtg[sl][ys, xs].astype(np.int64)
                    record.append([(t, cb, purity(g, a, parts)) for t, cb, a in cands])
                thin, dark = min(cands, key=lambda x: x[0]), min(cands, key=lambda x: x[1])
                chosen = (dark if threshold is not None and thin[1] - dark[1] >= threshold else thin)[2]
                break
            if chosen is not None and smallest > min_size and np.bincount(chosen).min() < smallest:
                chosen = None
            if chosen is not None:
                region = out[sl]
                for j in range(1, int(chosen.max()) + 1):
                    region[ys[chosen == j], xs[chosen == j]] = nxt
                    nxt += 1
        return relabel_sequential(out)[0].astype(np.uint16)
    return split


def f1_with(split, run, img, gt):
    G.split_side_by_side = SG.split_side_by_side = split
    try:
        with tempfile.TemporaryDirectory() as d:
            SG.segment_with_run(run, img, d, same_scale=True, device="cpu")
            return round(scores(load_label_map(f"{d}/instances.png"), gt)["f1"], 3)
    finally:
        G.split_side_by_side = SG.split_side_by_side = LIBRARY_SPLIT


if __name__ == "__main__":
    record, f1 = [], {}
    for spec in sys.argv[1:]:
        folder, seed = spec.rsplit(":", 1)
        img, gt = make_hoc("rods", int(seed))
        run = f"{folder}/rods{seed}_t0"
        f1[seed] = {"library": f1_with(LIBRARY_SPLIT, run, img, gt)}
        f1_with(make_split(None, record, gt), run, img, gt)
        for t in (0.15, 0.3):
            f1[seed][t] = f1_with(make_split(t), run, img, gt)
        print(seed, f1[seed], flush=True)
    decisive = [c for c in record if max(x[2] for x in c) - min(x[2] for x in c) > 0.1]
    best = [max(x[2] for x in c) for c in decisive]
    print(f"instances with two valid cuts: {len(record)}; decisive (purity differs by > 0.1): {len(decisive)}")
    print("the thinner is the purer:", sum(min(c, key=lambda x: x[0])[2] == b for c, b in zip(decisive, best)),
          "| the darker cut is the purer:", sum(min(c, key=lambda x: x[1])[2] == b for c, b in zip(decisive, best)))
