"""Per development photo of the heaped kinds: the size estimate (`photo_stats`), how heaped it is, the opened
diameter (`scale.opened_diameter`) at three loss levels, and the GT's median area-equivalent diameter; then, per kind,
over the heaped round photos, the size a run works at over the truth without the rim cap (0.8 x the estimate), with
its first version (the smaller of that and the opened diameter at OPEN_LOSS 2.0) and with the adopted one (the opened
diameter only where 0.8 x the estimate exceeds it by more than RIM_MARGIN, 1.1).

    PYTHONPATH=lib .venv/bin/python docs/experiments/session41/opened_sweep.py fruit,sizes,discs > sweep.jsonl
    python docs/experiments/session41/opened_sweep.py --table sweep.jsonl

Session 41's choice came from a first version of this script with its own opening loop, searched up to the whole
first estimate (the library stops at half of it, which changes no size a run uses: the cap only lowers), and with a
variant on the unfilled foreground (dropped: dimples and crowns made holes whose rims the opening ate first, so it
read as low as 0.36 x the truth on development fruit).
"""
import json
import sys

import numpy as np
from scipy import ndimage as ndi

LOSSES = (1.0, 1.5, 2.0)

if sys.argv[1] == "--table":
    rows = [json.loads(x) for x in open(sys.argv[2])]
    q = lambda a: " / ".join(f"{v:.2f}" for v in np.percentile(a, [0, 5, 50, 95, 100]))  # noqa: E731
    print("Over the heaped round photos, min / 5% / median / 95% / max of each size over the GT's median diameter:\n")
    print("| kind | photos | opened, loss " + " | opened, loss ".join(map(str, LOSSES)) + " | 0.8 x estimate | "
          "capped (first version) | capped past the margin (adopted) | photos the adopted cap lowers |")
    print("|---|---|" + "---|" * (len(LOSSES) + 4))
    for kind in dict.fromkeys(r["kind"] for r in rows):
        rs = [r for r in rows if r["kind"] == kind and r["heaped"] >= 0.5 and not r["long"]]
        g = np.array([r["gt"] for r in rs])
        cur = np.array([0.8 * r["D"] for r in rs])
        opened = np.array([r["opened2.0"] for r in rs])
        first = np.minimum(cur, opened)
        adopted = np.where(1.1 * opened < cur, opened, cur)
        low = ", ".join(f"{r['seed']} {c:.2f}->{n:.2f}" for r, c, n in zip(rs, cur / g, adopted / g) if n < c - 1e-9)
        cols = " | ".join(q(np.array([r[f"opened{x}"] for r in rs]) / g) for x in LOSSES)
        print(f"| {kind} | {len(rs)} | {cols} | {q(cur / g)} | {q(first / g)} | {q(adopted / g)} | {low} |")
    sys.exit()

from indprior.data.suite.kinds import make_hoc  # noqa: E402
from indprior.hoc import scale as S  # noqa: E402

seeds = list(range(10)) + list(range(100, 200))
if len(sys.argv) > 2:
    seeds = [int(x) for x in sys.argv[2].split(",")]
for kind in sys.argv[1].split(","):
    for seed in seeds:
        img, gt = make_hoc(kind, seed)
        st = S.photo_stats(img)
        areas = ndi.sum_labels(np.ones_like(gt), gt, np.unique(gt[gt > 0]))
        row = {"kind": kind, "seed": seed, "heaped": round(st.heaped, 3), "long": S.is_elongated(st.length, st.width),
               "D": round(st.diameter, 2), "gt": round(float(np.median(2 * np.sqrt(areas / np.pi))), 2)}
        row.update({f"opened{x}": S.opened_diameter(st.fg, st.diameter, x) for x in LOSSES})
        print(json.dumps(row), flush=True)
