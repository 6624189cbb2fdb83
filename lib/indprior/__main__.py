"""The command line: `python -m indprior train ...` (and `python -m indprior.train ...`, the same).

    python -m indprior train --task task1 --profile cpu --dataset synthetic --out runs/t1 [--set steps=500]
    python -m indprior train --task hoc --profile cpu --image photo.jpg --out runs/hoc
    python -m indprior segment --run runs/t1 --images photos/ --boxes boxes.json --out masks/
    python -m indprior segment --run runs/hoc --image other.jpg --out runs/hoc_other
    torchrun --nproc_per_node 4 -m indprior train --task task1 --profile paper --dataset cub:/data/CUB --out runs/t1

Under torchrun task 1 trains data-parallel (core/dist.py); rank 0 writes every file. Prints the metrics as JSON;
a run whose metrics say "status": "failed" exits with status 1 and says why.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .core import config as C
from .core import dist


def _train_parser(sub: Any) -> None:
    ap = sub.add_parser("train", help="train one experiment and write its outputs into --out")
    ap.add_argument("--task", choices=("task1", "redo", "hoc"), default="task1")
    ap.add_argument("--profile", default=None, help="smoke | cpu | paper (default: paper on CUDA, else cpu)")
    ap.add_argument("--dataset", default=None, help="task1/redo: synthetic[:<seed>] (kites), birds[:<seed>] (part-structured), "
                    "cub:<root> or coco:<images>:<annotations.json>[:<category>]")
    ap.add_argument("--image", default=None, help="hoc: the photo (default: scikit-image's coins)")
    ap.add_argument("--gt", default=None, help="hoc: optional GT label map, for the metrics only")
    ap.add_argument("--out", required=True, help="output folder (resumed if it holds a checkpoint)")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="config override, repeatable")
    ap.add_argument("--no-resume", action="store_true", help="start again even if --out holds a checkpoint")
    ap.add_argument("--no-progress", action="store_true")


def _segment_parser(sub: Any) -> None:
    ap = sub.add_parser("segment", help="apply a finished run to new photos (task 1: boxes; hoc: one photo)")
    ap.add_argument("--run", required=True, help="a run folder written by `train`")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--images", default=None, help="task 1: the folder the box file's image paths are relative to")
    ap.add_argument("--boxes", default=None, help="task 1: boxes as COCO JSON (bbox [x, y, w, h]) or CSV file,x,y,w,h")
    ap.add_argument("--category", default=None, help="task 1: the COCO category (name or id) when the file has several")
    ap.add_argument("--stage", default="last", help="task 1: last | gan | gan_grabcut | self_trained | self_trained_grabcut")
    ap.add_argument("--image", default=None, help="hoc: the photo to segment")
    ap.add_argument("--same-scale", action="store_true", help="hoc: keep the run's rescale (same magnification)")
    ap.add_argument("--views", type=int, default=None,
                    help="hoc: test-time views averaged: 1, 2, 4 or 8 (1 = fastest; default: the run's own setting)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--no-progress", action="store_true")


def segment(args: argparse.Namespace, ap: argparse.ArgumentParser) -> dict[str, Any]:
    """Apply the run in `args.run` to new data; the kind of run decides which arguments it needs."""
    from pathlib import Path
    run = Path(args.run)
    if (run / "run.json").is_file():  # a HOC run
        if args.image is None:
            ap.error(f"--run {run} is a HOC run: give --image PHOTO")
        from .hoc import segment_with_run
        return segment_with_run(run, args.image, args.out, same_scale=args.same_scale, device=args.device,
                                views=args.views)
    if (run / "checkpoint.pt").is_file():
        if args.images is None or args.boxes is None:
            ap.error(f"--run {run} is a task-1 run: give --images DIR and --boxes FILE")
        from .task1 import segment_boxes
        return segment_boxes(run, args.images, args.boxes, args.out, category=args.category, stage=args.stage,
                             device=args.device, progress=not args.no_progress)
    ap.error(f"--run {run}: neither a task-1 run (checkpoint.pt) nor a HOC run (run.json)")


def _report_parser(sub: Any) -> None:
    ap = sub.add_parser("report", help="build docs/results.md (and docs/figures/) from finished runs")
    ap.add_argument("--runs", default="runs", help="the folder holding the runs (searched for metrics.json)")
    ap.add_argument("--suite", action="append", default=[], help="a bench/hoc_suite.py results file (repeatable)")
    ap.add_argument("--scale", action="append", default=[], help="a bench/hoc_scale.py results file (repeatable)")
    ap.add_argument("--out", default="docs/results.md")


def train(args: argparse.Namespace, overrides: dict[str, Any]) -> dict[str, Any]:
    """Run the experiment `args.task` names; returns its metrics."""
    common = dict(resume=not args.no_resume, progress=not args.no_progress)
    if args.task in ("hoc", "redo") and dist.is_distributed():
        raise SystemExit(f"--task {args.task} runs in one process; start it without torchrun")
    if args.task == "hoc":
        from .data.images import coins
        from .hoc import HOCConfig, run_hoc
        image = args.image if args.image is not None else coins()
        return run_hoc(C.make_config(HOCConfig, args.profile, **overrides), image, args.out, gt_instances=args.gt,
                       **common)
    if args.task == "redo":
        from .redo import ReDOConfig, run_redo
        return run_redo(C.make_config(ReDOConfig, args.profile, dataset=args.dataset, **overrides), args.out, **common)
    from .task1 import Task1Config, run_task1
    return run_task1(C.make_config(Task1Config, args.profile, dataset=args.dataset, **overrides), args.out, **common)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Parse `argv` (default: sys.argv[1:]), run the subcommand, print its metrics as JSON (rank 0)."""
    ap = argparse.ArgumentParser(prog="python -m indprior", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    _segment_parser(sub)
    _report_parser(sub)
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "report":
        from pathlib import Path

        from .report import write_report
        return {"report": str(write_report(args.runs, [Path(p) for p in args.suite], args.out,
                                           scale_files=[Path(p) for p in args.scale]))}
    if args.command == "segment":
        return _finish(segment(args, ap))
    try:
        overrides = C.parse_overrides(args.set)
    except C.ConfigError as err:
        ap.error(f"--set: {err}")
    dist.init_from_env()
    main_rank = dist.is_main()  # run_task1 leaves the process group when its training is done
    metrics = train(args, overrides)
    dist.leave()  # a no-op where the task already left
    return _finish(metrics) if main_rank else metrics


def _finish(result: dict[str, Any]) -> dict[str, Any]:
    """Print the result as JSON; a run whose status is 'failed' exits with status 1 after saying why."""
    print(json.dumps(result, indent=2))
    if result.get("status") == "failed":
        print(f"FAILED: {result.get('reason')}\nadvice: {result.get('advice')}", file=sys.stderr)
        raise SystemExit(1)
    return result


def cli(argv: list[str] | None = None) -> None:
    """`main` for a shell: a bad setting or bad input data (ConfigError, DataError, both naming the parameter or
    file) ends with that one message and exit status 2, not a traceback."""
    from .data.images import DataError
    try:
        main(argv)
    except (C.ConfigError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    cli()
