"""Rods lying end to end that came out as one instance: the instances' length (major axis / the run's length estimate),
width (minor / width), the waist (narrowest width in the middle half / median width) and the dip of brightness along
the major axis, for single rods (IoU >= 0.5 with one rod) and pairs (>= 0.6 of two rods inside). Reads the label
maps `reseg.py` saved in LABELS and the runs' metrics.json (length, width).

    PYTHONPATH=lib .venv/bin/python docs/experiments/session39/waist.py LABELS RUN_DIR:SEED ...
"""
import numpy as np, sys, json
from scipy import ndimage
from indprior.data.suite.kinds import make_hoc
from indprior.hoc import grouping as G

def profiles(gray, lab, k):
    inst = lab == k
    ring = ndimage.binary_dilation(inst, iterations=3) & ~ndimage.binary_dilation(inst, iterations=1) & (lab == 0)
    ys, xs = np.nonzero(inst)
    inside, back = gray[ys, xs].mean(), np.median(gray[ring]) if ring.any() else 0
    sign = 1 if inside >= back else -1; contrast = abs(inside - back) + 1e-9
    p = np.stack([ys, xs], 1).astype(float); c, d, major, minor = G._principal(p)
    along = (p - c) @ d
    b = np.rint(along).astype(int); b -= b.min()
    n = np.bincount(b)                       # width per 1-px step along the axis
    val = np.bincount(b, sign * (gray[ys, xs] - back)) / np.maximum(n, 1) / contrast
    m = len(n); lo, hi = int(0.25 * m), int(0.75 * m)
    if hi - lo < 3: return None
    core = n[int(0.15 * m):int(0.85 * m) + 1]
    waist = n[lo:hi + 1].min() / np.median(core)
    # brightness dip: in the middle half, min of smoothed profile below the lower of the maxima on each side
    v = np.convolve(val, np.ones(3) / 3, mode="same")
    dip = 0.0
    for i in range(lo, hi + 1):
        dip = max(dip, min(v[int(0.1 * m):i].max() if i > int(0.1 * m) else -9, v[i + 1:int(0.9 * m) + 1].max() if i + 1 < int(0.9 * m) + 1 else -9) - v[i])
    return major, minor, waist, dip

rows = []
for spec in sys.argv[2:]:
    run, s = spec.rsplit(":", 1); s = int(s)
    m = json.load(open(f"{run}/metrics.json")); L, W = m["length"], m["width"]
    img, gt = make_hoc('rods', s); lab = np.load(f'{sys.argv[1]}/rods{s}.npy'); gray = img.astype(float).mean(2)
    n, k = int(gt.max()), int(lab.max())
    inter = np.bincount(gt.ravel().astype(np.int64) * (k + 1) + lab.ravel(), minlength=(n + 1) * (k + 1)).reshape(n + 1, k + 1)
    ag, ap = inter.sum(1), inter.sum(0); iou = inter / (ag[:, None] + ap[None] - inter + 1e-9)
    for p in range(1, k + 1):
        whole = [g for g in range(1, n + 1) if inter[g, p] >= 0.6 * ag[g]]
        cls = "pair" if len(whole) >= 2 else ("single" if iou[1:, p].max() >= 0.5 else "other")
        pr = profiles(gray, lab, p)
        if pr is None: continue
        ma, mi, wa, dp = pr
        rows.append((s, p, cls, ma / L, mi / W, wa, dp))
for cls in ("single", "pair", "other"):
    r = np.array([x[3:] for x in rows if x[2] == cls], float)
    if len(r) == 0: continue
    print(cls, len(r), "major/L pct 50/95/max", np.round(np.percentile(r[:, 0], [50, 95, 100]), 2),
          "waist pct 1/5/50", np.round(np.percentile(r[:, 2], [1, 5, 50]), 2), "dip pct 50/95/99", np.round(np.percentile(r[:, 3], [50, 95, 99]), 2))
for x in rows:
    if x[2] == "pair": print("pair", x[0], x[1], [round(float(v), 2) for v in x[3:]])
long_singles = [x for x in rows if x[2] == "single" and x[3] > 1.3]
for x in long_singles: print("long single", x[0], x[1], [round(float(v), 2) for v in x[3:]])
