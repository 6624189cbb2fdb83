"""Saved round-object runs segmented again: each instance's area / the median instance's, its solidity, and whether it
holds two or more GT objects (>= 0.6 of each inside).

    PYTHONPATH=lib .venv/bin/python docs/experiments/session39/roundmerge.py RUN_DIR ...
"""
import sys, json, tempfile, torch, numpy as np
torch.set_num_threads(1)
from indprior.hoc import segment as SG
from indprior.data.suite.kinds import make_hoc
from indprior.data import load_label_map
from skimage.measure import regionprops
rows = []
for run in sys.argv[1:]:
    m = json.load(open(f"{run}/metrics.json")); name = m["image"].split("/")[-1].split(".")[0]
    kind = name.rstrip("0123456789"); seed = int(name[len(kind):]); img, gt = make_hoc(kind, seed)
    with tempfile.TemporaryDirectory() as d:
        SG.segment_with_run(run, img, d, same_scale=True, device="cpu"); lab = load_label_map(f"{d}/instances.png")
    n, k = int(gt.max()), int(lab.max())
    inter = np.bincount(gt.ravel().astype(np.int64) * (k + 1) + lab.ravel(), minlength=(n + 1) * (k + 1)).reshape(n + 1, k + 1)
    ag = inter.sum(1)
    props = regionprops(lab); med = np.median([p.area for p in props])
    for p in props:
        whole = int(sum(inter[g, p.label] >= 0.6 * ag[g] for g in range(1, n + 1)))
        rows.append((name, p.label, whole, p.area / med, p.solidity))
    print(name, "merged:", [(r[1], round(r[3], 2), round(r[4], 3)) for r in rows if r[0] == name and r[2] >= 2], flush=True)
r = np.array([x[2:] for x in rows], float)
single = r[r[:, 0] <= 1]; merged = r[r[:, 0] >= 2]
print("singles", len(single), "area/med 95/99/max", np.round(np.percentile(single[:, 1], [95, 99, 100]), 2), "solidity 1/5/50", np.round(np.percentile(single[:, 2], [1, 5, 50]), 3))
print("merged", len(merged), np.round(merged[:, 1:], 3).tolist())
big = single[single[:, 1] > 1.6]; print("singles > 1.6 x median area: solidity", np.round(np.sort(big[:, 2]), 3).tolist())
