"""The size check (indprior.hoc.checks) on saved HOC runs: each run's instances.png against its image.png, read
with today's `photo_stats`, beside the F1 its metrics.json recorded.

    PYTHONPATH=lib .venv/bin/python docs/experiments/session42/check_runs.py RUN_DIR... > rows.jsonl

A run dir needs metrics.json (with f1: a suite run), image.png and instances.png.
"""
import json
import sys

import numpy as np
from PIL import Image

from indprior.hoc import checks, photo_stats

for run in sys.argv[1:]:
    m = json.load(open(f"{run}/metrics.json"))
    img = np.asarray(Image.open(f"{run}/image.png").convert("RGB"))
    labels = np.asarray(Image.open(f"{run}/instances.png")).astype(np.int32)
    c = checks.size_check(labels, photo_stats(img), bool(m.get("elongated")))
    print(json.dumps({"run": run, "f1": m.get("f1"), "count_pred": m.get("count_pred"), "count_gt": m.get("count_gt"),
                      "elongated": m.get("elongated"), "instance_size": m.get("instance_size"), **c}), flush=True)
