"""Saved round-object runs segmented again with `join_round_pieces` on and off: F1, found, GT.

    PYTHONPATH=lib .venv/bin/python docs/experiments/session39/joinoff.py RUN_DIR:KIND:SEED ...
"""
import sys, json, tempfile, torch, numpy as np
torch.set_num_threads(1)
from indprior.hoc import segment as SG
from indprior.hoc.outputs import scores
from indprior.data.suite.kinds import make_hoc
from indprior.data import load_label_map
J = SG.join_round_pieces
for spec in sys.argv[1:]:
    run, k, s = spec.split(":"); img, gt = make_hoc(k, int(s)); row = {"run": spec}
    for name, f in (("join", J), ("nojoin", lambda lab, image, **kw: lab)):
        SG.join_round_pieces = f
        with tempfile.TemporaryDirectory() as d:
            SG.segment_with_run(run, img, d, same_scale=True, device="cpu"); lab = load_label_map(f"{d}/instances.png")
        sc = scores(lab, gt); row[name] = (round(sc["f1"], 3), sc["count_pred"], sc["count_gt"])
    print(json.dumps(row), flush=True)
