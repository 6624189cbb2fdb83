"""Segment saved task-2 runs again with the library as it is and save each label map as OUT/<kind><seed>.npy.

    PYTHONPATH=lib .venv/bin/python docs/experiments/session39/reseg.py OUT RUN_DIR:KIND:SEED ...
"""
import sys, json, torch, tempfile, shutil, numpy as np
torch.set_num_threads(1)
from indprior.hoc import segment as SG
from indprior.hoc.outputs import scores
from indprior.data.suite.kinds import make_hoc
from indprior.data import load_label_map
for spec in sys.argv[2:]:
    run, k, s = spec.split(":"); s = int(s)
    img, gt = make_hoc(k, s)
    with tempfile.TemporaryDirectory() as d:
        m = SG.segment_with_run(run, img, d, same_scale=True, device="cpu")
        lab = load_label_map(f"{d}/instances.png")
    np.save(f"{sys.argv[1]}/{k}{s}.npy", lab)
    sc = scores(lab, gt)
    print(json.dumps({"run": f"{k}{s}", "f1": round(sc["f1"], 3), "n": sc["count_pred"], "gt": sc["count_gt"]}), flush=True)
