#!/usr/bin/env python
"""Task 2 on the development suite: every kind of photo x image seeds x training seeds, one table.

    .venv/bin/python bench/hoc_suite.py --image-seeds 10,11,12 --train-seeds 0,1,2      # the report (held out)
    .venv/bin/python bench/hoc_suite.py --image-seeds 0,1 --kinds nuclei,fruit --set gan_steps=600   # choosing
    .venv/bin/python bench/hoc_suite.py --summarize bench/hoc_suite/report.jsonl        # the table again
    .venv/bin/python bench/hoc_suite.py --resegment bench/hoc_suite/a.jsonl --out bench/hoc_suite/b.jsonl

Image seeds 0-9 and 100-199 are for choosing; 10-99 are held out for reporting (never looked at while choosing).
Each run is `run_hoc` in its own process with one torch thread, `--jobs` at a time (2 on a 2-core machine).
Every finished run appends one JSON line to --out (resumable: runs already in the file are skipped), with
F1 and AP at IoU 0.5, AP@[.5:.95], count error, seconds, peak RSS, status, and the Otsu + watershed baseline on
the same photo. The summary (per kind: mean and worst F1 over all runs, watershed beside, mean seconds and count
error) is printed as markdown and written next to --out as <name>.md.
--resegment FILE: the runs of FILE's rows (still in --runs, made by those rows: same commit and F1) segmented
again with the current code, no training (a change of inference or grouping measured in minutes); the rows go
to --out with the new scores, the commit that trained them (`commit`) and the one that segmented (`segmented_at`).
--refit FILE --into DIR: the runs of FILE's rows (in --runs, made by those rows) copied to DIR, their trained GAN
kept, the labelled-data factory and the segmenter run again with `--set` over each run's own configuration (a
change of the factory measured without training GANs); the rows go to --out (`refit_at`: the commit that refitted).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
LIB = HERE.parent / "lib"  # this checkout's library, before any installed one: a clone measures its own code
sys.path.insert(0, str(LIB))

from indprior.report import suite_summary  # noqa: E402

KINDS = ("nuclei", "discs", "fruit", "dark_on_light", "rods", "sizes", "large", "coins")
# factory_pool: how many cut-outs the segmenter learned from (copypaste.factory_pool); foreground_left_out and
# warnings: what clearly differs from the backdrop outside the photo's foreground, and the run's warning (scale.left_out);
# foreground_covered: the share of the foreground that the instances cover (run.COVERED); instance_axis_ratio,
# lone_axis_ratio, cut and sizes_tried: whether the instances looked like pieces, and the larger try (run.CUT, GROW);
# size_check: the instances against the photo's lone objects and their own shape (checks.size_check)
FIELDS = ("f1", "ap50", "ap", "count_pred", "count_gt", "count_error", "appearance_match", "restarts",
          "instance_size", "instance_size_estimated", "seconds", "status", "reason", "advice", "elongated",
          "factory_pool", "foreground_left_out", "foreground_covered", "instance_axis_ratio", "lone_axis_ratio", "cut",
          "sizes_tried", "size_check", "warnings")

ONE_RUN = r"""
import json, resource, sys
from indprior import make_config, HOCConfig, run_hoc, coins, COINS_GT
from indprior.core.config import parse_overrides
from indprior.data.suite import make_hoc
kind, img_seed, train_seed, profile, out, sets = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6:]
from pathlib import Path
from indprior.data import save_png_atomic
img, gt = (coins(), COINS_GT) if kind == "coins" else make_hoc(kind, img_seed)
photo = Path(out).parent / "photos" / f"{kind}{img_seed}.png"  # metrics.json names the photo it was made from
photo.parent.mkdir(parents=True, exist_ok=True)
save_png_atomic(photo, img)
cfg = make_config(HOCConfig, profile, seed=train_seed, **parse_overrides(sets))
m = run_hoc(cfg, photo, out, gt, resume=False, progress=False)
m["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
print("RESULT " + json.dumps(m))
"""


def plan(kinds: str, image_seeds: str, train_seeds: str) -> list[tuple[str, int, int]]:
    """(kind, image seed, training seed) of every run, training-seed-major: every kind gets its first seed before
    any gets a second, so a suite stopped early still covers every kind. Coins is one photo: it runs once per
    training seed (its image seed is recorded as the first one given)."""
    seeds = [int(s) for s in image_seeds.split(",")]
    return [(k, s, t) for t in map(int, train_seeds.split(",")) for s in seeds for k in kinds.split(",")
            if k != "coins" or s == seeds[0]]


def _one_thread(script: str, *argv: str) -> tuple[dict | None, list[str]]:
    """`script` in a fresh process with one torch thread: (its RESULT line's dict, []) or (None, stderr's last line)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(LIB), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, env=env)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        return None, done.stderr.strip().splitlines()[-1:] or ["?"]
    return json.loads(lines[-1][len("RESULT "):]), []


def _folder(runs: Path, kind: str, image_seed: int, train_seed: int) -> Path:
    """Where the suite keeps the run of one kind, image seed and training seed."""
    return Path(runs) / f"{kind}{image_seed}_t{train_seed}"


def _made_by(r: dict, run: Path) -> dict | None:
    """The metrics of the folder `run` if it still holds the run that made row `r` (status ok, same commit and F1;
    a refitted row's commit is the refit's, `refit_at`); None otherwise."""
    m = json.loads((run / "metrics.json").read_text()) if (run / "metrics.json").is_file() else {}
    commit = r.get("refit_at") or r.get("commit")
    made = r.get("status") == "ok" and m.get("provenance", {}).get("commit") == commit and m.get("f1") == r.get("f1")
    return m if made else None


def run_one(kind: str, img_seed: int, train_seed: int, args: argparse.Namespace) -> dict:
    out = _folder(args.runs, kind, img_seed, train_seed)
    m, crash = _one_thread(ONE_RUN, kind, str(img_seed), str(train_seed), args.profile, str(out), *args.set)
    row = {"kind": kind, "image_seed": img_seed, "train_seed": train_seed, "profile": args.profile, "set": args.set}
    if m is None:
        return {**row, "status": "crashed", "reason": crash}
    ws = m.get("baseline_watershed", {})
    return {**row, **{k: m.get(k) for k in FIELDS}, "rss_mb": m.get("rss_mb"), "ws_f1": ws.get("f1"),
            "ws_ap50": ws.get("ap50"), "ws_count_error": ws.get("count_error"),
            "commit": m.get("provenance", {}).get("commit")}


REFIT = r"""
import json, resource, shutil, sys
from pathlib import Path
from indprior import HOCConfig, run_hoc, COINS_GT
from indprior.core import config as C
from indprior.data.suite import make_hoc
src, dst, kind, img_seed, sets = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5:]
shutil.rmtree(dst, ignore_errors=True)
shutil.copytree(src, dst, ignore=shutil.ignore_patterns("segmenter*", "metrics.json", "instances.png", "overlay.png"))
saved = json.loads((src / "run.json").read_text())["config"]
cfg = C.from_dict(HOCConfig, {**saved, **C.parse_overrides(sets)})
import torch  # a run made before a field existed behaved as its default: the copied checkpoint says so
ckpt = torch.load(dst / "gan" / "checkpoint.pt", map_location="cpu", weights_only=False)
defaults = C.to_dict(C.from_dict(HOCConfig, saved))
ckpt["config"] = {**{k: v for k, v in defaults.items() if k not in ckpt["config"]}, **ckpt["config"]}
torch.save(ckpt, dst / "gan" / "checkpoint.pt")
image = json.loads((src / "metrics.json").read_text())["image"]
m = run_hoc(cfg, image, dst, COINS_GT if kind == "coins" else make_hoc(kind, img_seed)[1], resume=True, progress=False)
m["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
print("RESULT " + json.dumps(m))
"""


def refit(r: dict, runs: Path, into: Path, sets: list[str]) -> dict:
    """One row's run (GAN kept) with its factory and segmenter run again under `sets`, in `into`; the new row."""
    from indprior.core.runtime import provenance
    src = _folder(runs, r["kind"], r["image_seed"], r["train_seed"])
    if _made_by(r, src) is None:
        return {**r, "status": "skipped", "reason": f"{src}: not ok, or the folder holds another run"}
    new, crash = _one_thread(REFIT, str(src), str(into / src.name), r["kind"], str(r["image_seed"]), *sets)
    if new is None:
        return {**r, "status": "crashed", "reason": crash}
    return {**r, **{k: new.get(k) for k in FIELDS if k != "seconds"}, "refit_seconds": new.get("seconds"),
            "rss_mb": max(r.get("rss_mb") or 0, new["rss_mb"]), "refit_with": sets,
            "refit_at": provenance().get("commit"), "was_f1": r.get("f1")}


def resegment(rows: list[dict], runs: Path, sets: list[str]) -> list[dict]:
    """`rows` (status ok) whose run folders still hold the run that made them, segmented again now, with the
    inference settings `sets` (FIELD=VALUE, e.g. views=1) over each run's own configuration."""
    import dataclasses

    import numpy as np
    import torch

    from indprior.core.config import parse_overrides
    from indprior.core.runtime import provenance
    from indprior.data import COINS_GT, load_image, load_label_map
    from indprior.data.suite import make_hoc
    from indprior.hoc.outputs import scores
    from indprior.hoc.segment import load_hoc_run, segment_at_scale

    torch.set_num_threads(1)
    now, out = provenance().get("commit"), []
    for r in rows:
        run = _folder(runs, r["kind"], r["image_seed"], r["train_seed"])
        m = _made_by(r, run)
        if m is None:
            print(f"skipped {run.name}: not ok, or its folder holds another run", flush=True)
            continue
        cfg, info, seg = load_hoc_run(run)
        cfg = dataclasses.replace(cfg, **parse_overrides(sets))
        img = load_image(m["image"])
        photo, gt = (img, load_label_map(COINS_GT)) if r["kind"] == "coins" else make_hoc(r["kind"], r["image_seed"])
        if not np.array_equal(img, photo):
            raise SystemExit(f"{m['image']}: not the suite's {r['kind']} photo of seed {r['image_seed']}")
        t0 = time.perf_counter()
        labels = segment_at_scale(seg, cfg, img, info["rescale"], info["length"], info.get("width"), "cpu")
        out.append({**r, **scores(labels, gt), "segment_seconds": round(time.perf_counter() - t0, 1),
                    "segmented_at": now, "segmented_with": sets})
        print(json.dumps({k: out[-1][k] for k in ("kind", "image_seed", "train_seed", "f1")} | {"was": r["f1"]}),
              flush=True)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--image-seeds", default="10,11,12")
    ap.add_argument("--train-seeds", default="0,1,2")
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default=str(HERE / "hoc_suite" / "results.jsonl"))
    ap.add_argument("--runs", default=str(HERE.parent / "runs" / "hoc_suite"))
    ap.add_argument("--summarize", default=None, help="only print the summary of this results file")
    ap.add_argument("--resegment", default=None, help="segment the runs of this results file again (no training)")
    ap.add_argument("--refit", default=None, help="run the factory and segmenter of this file's runs again (GAN kept)")
    ap.add_argument("--into", default=None, help="--refit: the folder the refitted runs are written to")
    args = ap.parse_args(argv)
    if args.summarize:
        print(suite_summary([json.loads(x) for x in Path(args.summarize).read_text().splitlines() if x.strip()]))
        return
    out = Path(args.out)
    if args.resegment:
        rows = resegment([json.loads(x) for x in Path(args.resegment).read_text().splitlines() if x.strip()],
                         Path(args.runs), args.set)
        out.write_text("".join(json.dumps(r) + "\n" for r in rows))
        out.with_suffix(".md").write_text(suite_summary(rows) + "\n")
        print(suite_summary(rows))
        return
    if args.refit:
        if not args.into:
            ap.error("--refit needs --into DIR (the saved runs in --runs are left as they are)")
        rows = [json.loads(x) for x in Path(args.refit).read_text().splitlines() if x.strip()]
        new = []
        with ThreadPoolExecutor(args.jobs) as pool:  # each row is printed as soon as it (and those before it) is done
            for r in pool.map(lambda r: refit(r, Path(args.runs), Path(args.into), args.set), rows):
                new.append(r)
                print(json.dumps({k: r.get(k) for k in ("kind", "image_seed", "train_seed", "status", "f1", "was_f1",
                                                        "refit_seconds")}), flush=True)
        out.write_text("".join(json.dumps(r) + "\n" for r in new))
        out.with_suffix(".md").write_text(suite_summary([r for r in new if r["status"] != "skipped"]) + "\n")
        print(suite_summary([r for r in new if r["status"] != "skipped"]))
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    done = [json.loads(x) for x in out.read_text().splitlines() if x.strip()] if out.is_file() else []
    key = lambda r: (r["kind"], r["image_seed"], r["train_seed"], r["profile"], tuple(r["set"]))  # noqa: E731
    seen = {key(r) for r in done}
    todo = [x for x in plan(args.kinds, args.image_seeds, args.train_seeds)
            if (x[0], x[1], x[2], args.profile, tuple(args.set)) not in seen]
    with ThreadPoolExecutor(args.jobs) as pool:
        for row in pool.map(lambda x: run_one(*x, args), todo):
            with open(out, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps({k: row.get(k) for k in ("kind", "image_seed", "train_seed", "status", "f1", "ws_f1",
                                                      "seconds")}), flush=True)
            done.append(row)
    rows = [r for r in done if r["profile"] == args.profile and r["set"] == args.set]
    table = suite_summary(rows)
    out.with_suffix(".md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
