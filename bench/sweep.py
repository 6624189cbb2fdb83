#!/usr/bin/env python
"""Many task-1 runs side by side on one machine: a config x dataset grid, a pool of worker processes, a deadline.

    .venv/bin/python bench/sweep.py bench/sweeps/example.json --out runs/sweep --workers 6 --deadline 600

One small GPU runs a `cpu`-profile training (batch 16) far below its capacity, so several runs at once cost
little more wall time than one. The grid file is JSON:

    {"datasets": ["synthetic", "synthetic:2", "synthetic:1"],
     "configs": {"shipped": {"profile": "cpu"},
                 "big-critic": {"profile": "cpu", "set": {"d_base": 64}}}}

Each (config, dataset) pair runs `python -m indprior.train --task task1 ...` in its own process, writing to
`<out>/<config>__<dataset>/`. After every run `<out>/summary.json` is rewritten (atomically) with each run's
status ("done", "failed", "timeout", "not started"), its metrics and its monitored-IoU curve, so a sweep killed
half-way still leaves what it finished. Runs still going at the deadline are stopped; their curves are kept.
A table (config rows, dataset columns, final test IoU) is printed at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "lib"))

from indprior.core.files import atomic_write_text  # noqa: E402


def load_grid(path: Path) -> list[dict[str, Any]]:
    """The grid file -> one entry per (config, dataset) pair; a clear error for a malformed file."""
    try:
        grid = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise SystemExit(f"sweep grid {path}: cannot read it as JSON ({err})") from err
    if not isinstance(grid, dict) or not isinstance(grid.get("configs"), dict) or not isinstance(grid.get("datasets"), list):
        raise SystemExit(f"sweep grid {path}: expected {{'datasets': [...], 'configs': {{name: {{'profile', 'set'}}}}}}")
    runs = []
    for dataset in grid["datasets"]:  # dataset-major: with a deadline, every config gets the first dataset first
        for name, cfg in grid["configs"].items():
            if not isinstance(cfg, dict) or set(cfg) - {"profile", "set"}:
                raise SystemExit(f"sweep grid {path}: config {name!r} must be an object with 'profile' and/or 'set'")
            runs.append({"config": name, "dataset": dataset, "profile": cfg.get("profile", "cpu"),
                         "set": dict(cfg.get("set", {})), "status": "not started"})
    return runs


def slug(dataset: str) -> str:
    """A folder name for a dataset spec: 'synthetic:2' -> 'synthetic-2', 'cub:/data/CUB_200_2011' -> 'cub-data-CUB_200_2011'."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", dataset).strip("-")[-48:]


def command(run: dict[str, Any], out: Path) -> list[str]:
    cmd = [sys.executable, "-m", "indprior.train", "--task", "task1", "--profile", run["profile"],
           "--dataset", run["dataset"], "--out", str(out), "--no-progress"]
    for key, value in run["set"].items():
        cmd += ["--set", f"{key}={value if isinstance(value, str) else json.dumps(value)}"]
    return cmd


def curve(out: Path) -> list[list[float]]:
    """[step, seconds, monitored IoU] rows of a run's log (empty if it has none yet)."""
    log = out / "train_log.jsonl"
    if not log.is_file():
        return []
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return [[r["step"], r["time"], round(r["val/iou"], 4)] for r in rows if "val/iou" in r]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("grid", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--deadline", type=float, default=3600, help="seconds from the start; later runs are stopped")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run (OMP_NUM_THREADS)")
    args = p.parse_args(argv)
    runs = load_grid(args.grid)
    args.out.mkdir(parents=True, exist_ok=True)
    t0, summary = time.monotonic(), args.out / "summary.json"
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "lib"), os.environ.get("PYTHONPATH")]))}

    lock = threading.Lock()  # worker threads update `runs` and rewrite the summary one at a time

    def save() -> None:
        with lock:
            text = json.dumps({"grid": str(args.grid), "seconds": round(time.monotonic() - t0, 1), "runs": runs}, indent=1)
        atomic_write_text(summary, text)

    def go(run: dict[str, Any]) -> None:
        left = args.deadline - (time.monotonic() - t0)
        if left < 30:
            return
        out = args.out / f"{run['config']}__{slug(run['dataset'])}"
        with lock:
            run.update(status="running", out=str(out))
        start, result = time.monotonic(), {}
        try:
            res = subprocess.run(command(run, out), env=env, capture_output=True, text=True, timeout=left, cwd=ROOT)
            result["status"] = "done" if res.returncode == 0 else "failed"
            if res.returncode:
                result["error"] = res.stderr[-1500:]
        except subprocess.TimeoutExpired:
            result["status"] = "timeout"
        result.update(wall_s=round(time.monotonic() - start, 1), curve=curve(out))
        if (out / "metrics.json").is_file():
            m = json.loads((out / "metrics.json").read_text())
            result["metrics"] = {k: m.get(k) for k in ("iou_mean", "iou_pooled", "whole_box_iou_mean", "seconds", "device")}
            for key, row in (("refined_iou_mean", "refined_grabcut"), ("self_trained_iou_mean", "self_trained"),
                             ("self_trained_refined_iou_mean", "self_trained_grabcut")):
                result["metrics"][key] = (m.get(row) or {}).get("iou_mean")
        with lock:
            run.update(result)
        save()
        print(f"{run['config']:>20} {run['dataset']:<12} {run['status']:<8} {run.get('metrics', {}).get('iou_mean')}",
              file=sys.stderr, flush=True)

    save()
    with ThreadPoolExecutor(args.workers) as pool:
        list(pool.map(go, runs))
    save()
    datasets = list(dict.fromkeys(r["dataset"] for r in runs))
    print("config".ljust(22) + "".join(d.rjust(14) for d in datasets))
    for name in dict.fromkeys(r["config"] for r in runs):
        cells = []
        for d in datasets:
            r = next(r for r in runs if r["config"] == name and r["dataset"] == d)
            iou = r.get("metrics", {}).get("iou_mean")
            cells.append((f"{iou:.3f}" if iou is not None else r["status"]).rjust(14))
        print(name.ljust(22) + "".join(cells))
    print(f"wrote {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
