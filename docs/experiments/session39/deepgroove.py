"""Development rods: F1 of each saved run segmented again as the library is, and with `GROOVE_PART` waived where
the groove is >= D deep.

    PYTHONPATH=lib .venv/bin/python docs/experiments/session39/deepgroove.py D RUN_DIR:SEED ...
"""
import sys, tempfile, torch, numpy as np
torch.set_num_threads(1)
from indprior.hoc import grouping as G, segment as SG
from indprior.hoc.outputs import scores
from indprior.data.suite.kinds import make_hoc
from indprior.data import load_label_map
D = float(sys.argv[1]); orig_depth = G.groove_depth; orig_part = G.GROOVE_PART
def f1(run, img, gt):
    with tempfile.TemporaryDirectory() as d:
        SG.segment_with_run(run, img, d, same_scale=True, device="cpu"); return round(scores(load_label_map(f"{d}/instances.png"), gt)["f1"], 3)
# waive the part-size guard for deep grooves: report depth; set GROOVE_PART small when deep
def depth(gray, labels, k):
    v = orig_depth(gray, labels, k)
    G.GROOVE_PART = 0.0 if v >= D else orig_part
    return v
for spec in sys.argv[2:]:
    run, s = spec.rsplit(":", 1); img, gt = make_hoc("rods", int(s))
    G.groove_depth = orig_depth; G.GROOVE_PART = orig_part; a = f1(run, img, gt)
    G.groove_depth = depth; b = f1(run, img, gt); G.groove_depth = orig_depth; G.GROOVE_PART = orig_part
    print(s, a, b, flush=True)
