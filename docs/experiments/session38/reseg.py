"""Saved task-2 runs segmented again (same scale) with `grouping.join_round_pieces` off and on: F1, AP@[.5:.95],
instances / GT (docs/method.md, session 38).

    PYTHONPATH=lib .venv/bin/python docs/experiments/session38/reseg.py RUN_DIR ..."""
import sys, json, numpy as np, tempfile, torch
from pathlib import Path
torch.set_num_threads(int(__import__("os").environ.get("T", "1")))
from indprior.hoc import segment as SG
from indprior.data.suite.kinds import make_hoc
from indprior.data import load_label_map
from indprior.metrics import instance_scores
on = SG.join_round_pieces
rows = []
for run in sys.argv[1:]:
    run = Path(run); m = json.load(open(run / "metrics.json"))
    name = Path(m["image"]).stem; kind = name.rstrip("0123456789"); seed = int(name[len(kind):])
    if kind == "coins":
        from indprior import coins, COINS_GT, load_label_map as L
        img, gt = coins(), L(COINS_GT)
    else:
        img, gt = make_hoc(kind, seed)
    res = {}
    for tag, fn in (("off", lambda lab, image: lab), ("on", on)):
        SG.join_round_pieces = fn
        with tempfile.TemporaryDirectory() as t:
            SG.segment_with_run(run, img, t, same_scale=True, device="cpu"); lab = load_label_map(f"{t}/instances.png")
        s = instance_scores(lab, gt); res[tag] = (round(s["f1"], 3), round(s["ap"], 3), int(lab.max()), int(gt.max()))
    print(f"{kind}{seed} {run.parent.name}/{run.name} saved={m.get('f1', float('nan')):.3f} off={res['off']} on={res['on']}", flush=True)
