#!/usr/bin/env python
"""Speed and memory of the workbook's methods: `make bench` prints a table and writes bench/results.json.

    .venv/bin/python bench/run.py                       # everything (~15 min on 2 CPU cores; time-to-iou, task 1 end to end, ~7 of them)
    .venv/bin/python bench/run.py --quick               # fewer repeats: a smoke check
    .venv/bin/python bench/run.py --only provider-infer,grabcut-infer@160 --out /tmp/r.json

What is timed, all in this one process, with the model sizes of the `cpu` profile (`paper` on CUDA):
  prior-train@64/128   IndependencePriorTask1.train_step (D step + G step + EMA) on random batches of 16, fp32
  prior-train-bf16     the same with bf16 autocast (on a CPU only when it has native bf16: AMX / AVX512-BF16)
  hoc-gan-train@48     CopyPasteGAN.train_step on the coins photo (cpu profile: crops 48, cut-out windows 32, batch 16)
  redo-train@64/128    ReDO.train_step (G/M/Z step + D step; every region redrawn: 32 fakes) on random batches of 16
  provider-infer@128   the segmenting provider (EMA U-Net's architecture) on 64 windows, inference mode, fp32
  provider-infer-bf16  the same with bf16 autocast and channels_last
  grabcut-infer@160/400  OpenCV GrabCut from the box, one synthetic image at a time (160 px: the synthetic set;
                         400 px: about a CUB image)
  time-to-iou          a real cpu-profile task-1 run on the synthetic set (--dataset; 1,000 steps, the GAN's
                         test IoU monitored every 100): seconds until it reaches 0.7 and 0.8 (null: not reached),
                         its best IoU, then every later stage's IoU and the end-to-end seconds ("pipeline": the
                         last stage, self-training + GrabCut in the cpu profile)
Ratios (prior / ReDO training images/s at equal size, same process) are printed and stored under "ratios".
Each number is the median over `repeats` timed calls after warm-up calls. ReDO at 128 px costs ~20 s per
step on 2 cores, so it gets fewer repeats (see `repeats` in the table). Peak memory: ru_maxrss is the
process's peak so far (the jobs run from small to large, so it grows with the first job that needs more);
on CUDA, torch.cuda.max_memory_allocated is reset per job.
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))  # this checkout's library, before any installed one

from indprior.baselines import grabcut_box
from indprior.compare import cpu_model, hardware
from indprior.core import config as C
from indprior.core.files import atomic_write_text
from indprior.core.runtime import autocast_enabled, resolve_device
from indprior.data import coins
from indprior.data.synth import make_kite_image
from indprior.hoc import HOCConfig
from indprior.hoc.run import build_copypaste
from indprior.models import SegmentingProvider
from indprior.redo import ReDO, ReDOConfig
from indprior.task1 import IndependencePriorTask1, Task1Config

HERE = Path(__file__).resolve().parent
TIME_TO_IOU_STEPS = 1000  # cpu profile: ~6 min on 2 idle cores
TRAIN_BATCH, INFER_BATCH = 16, 64  # defaults; --train-batch sets the first (a GPU needs far more than 16 to fill)
# (name, size, repeats, quick repeats): cheap jobs first, so the process's peak RSS is attributable
JOBS = [("provider-infer", 128, 10, 2), ("provider-infer-bf16", 128, 10, 2), ("grabcut-infer", 160, 10, 2),
        ("grabcut-infer", 400, 5, 2), ("prior-train", 64, 10, 2), ("prior-train-bf16", 64, 10, 2), ("prior-train", 128, 7, 2),
        ("prior-train-bf16", 128, 7, 2), ("hoc-gan-train", 48, 10, 2), ("redo-train", 64, 5, 2), ("redo-train", 128, 3, 1),
        ("time-to-iou", 64, 1, 1)]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(fn: Callable[[int], Any], repeats: int, warmup: int, device: torch.device) -> list[float]:
    times = []
    for i in range(warmup + repeats):
        _sync(device)
        t = time.perf_counter()
        fn(i)
        _sync(device)
        times.append(time.perf_counter() - t)
    return times[warmup:]


def _images(b: int, s: int, device: torch.device) -> torch.Tensor:
    return torch.rand(b, 3, s, s, device=device) * 2 - 1  # b 3 s s in [-1, 1]


def job(name: str, size: int, profile: str, device: torch.device,
        train_batch: int = TRAIN_BATCH, dataset: str = "synthetic") -> tuple[Callable[[int], Any], int, str]:
    """(one timed call, images per call, what it is)."""
    torch.manual_seed(0)
    if name in ("prior-train", "prior-train-bf16"):
        bf16 = name.endswith("bf16")
        if bf16 and not autocast_enabled(device, True, True):
            return None, train_batch, "skipped: this CPU has no native bf16"
        cfg = C.make_config(Task1Config, profile, image_size=size, batch_size=train_batch, amp=bf16, amp_cpu=bf16)
        method = IndependencePriorTask1(cfg, device)
        box = torch.zeros(train_batch, 1, size, size, device=device)
        box[..., size // 8: -size // 8, size // 8: -size // 8] = 1
        batch = {"window": _images(train_batch, size, device), "box": box, "box_frac": box.mean((1, 2, 3)),
                 "background": _images(train_batch, size, device), "real": _images(train_batch, size, device)}
        return ((lambda i: method.train_step(batch, i)), train_batch,
                f"independence prior, one training step{' (bf16 autocast)' if bf16 else ' (fp32)'}")
    if name == "hoc-gan-train":  # size: the crop; the coins photo fixes the rest (window 32, ~100 places per batch)
        cfg = C.make_config(HOCConfig, profile, crop=size, device=str(device))
        built = build_copypaste(cfg, coins(), device)
        gan, batches = built["gan"], [built["batches"](i) for i in range(4)]
        return ((lambda i: gan.train_step(batches[i % 4], i)), cfg.batch_size,
                "task 2 copy-paste GAN on the coins photo, one training step (D + G + EMA)")
    if name == "redo-train":
        method = ReDO(C.make_config(ReDOConfig, profile, image_size=size, batch_size=train_batch), device)
        batch = {"image": _images(train_batch, size, device), "real": _images(train_batch, size, device)}
        return (lambda i: method.train_step(batch, i)), train_batch, "ReDO, one training step"
    if name in ("provider-infer", "provider-infer-bf16"):
        bf16 = name.endswith("bf16")
        if bf16 and not autocast_enabled(device, True, True):
            return None, INFER_BATCH, "skipped: this CPU has no native bf16"
        cfg = C.make_config(Task1Config, profile, image_size=size)
        fmt = torch.channels_last if bf16 or device.type == "cuda" else torch.contiguous_format
        provider = SegmentingProvider(cfg.unet_base, cfg.unet_levels).to(device).eval().to(memory_format=fmt)
        x, box = _images(INFER_BATCH, size, device), torch.ones(INFER_BATCH, 1, size, size, device=device)

        def infer(i: int) -> None:
            with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                provider(x, box)
        return infer, INFER_BATCH, f"segmenting provider, inference on a batch of windows{' (bf16)' if bf16 else ' (fp32)'}"
    if name == "time-to-iou":
        return _time_to_iou(profile, device, dataset), 0, "task 1 end to end: seconds until the monitored GAN IoU >= 0.7 / 0.8, then each stage's IoU"
    if name == "grabcut-infer":
        image, mask = make_kite_image(np.random.default_rng(0), size)
        ys, xs = np.nonzero(mask)
        box = (int(xs.min()), int(ys.min()), int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1)
        return (lambda i: grabcut_box(image, box)), 1, "GrabCut from the box (OpenCV, 5 iterations), one image"
    raise ValueError(f"unknown job {name!r}; expected one of {sorted({j[0] for j in JOBS})}")


def _time_to_iou(profile: str, device: torch.device, dataset: str = "synthetic") -> Callable[[int], dict[str, Any]]:
    """Run task 1 end to end on a synthetic draw (monitoring the GAN's IoU every 100 steps): when the GAN's
    monitored IoU first reaches 0.7 / 0.8 (the log's clock), and the IoU of every stage the profile runs after
    training (GrabCut refinement, self-training, both) with the end-to-end seconds."""
    def go(i: int) -> dict[str, Any]:
        import tempfile

        from indprior.core.trainer import read_log
        from indprior.task1 import run_task1
        quick = profile == "smoke"
        cfg = C.make_config(Task1Config, profile, dataset=dataset, eval_every=10 if quick else 100,
                            steps=20 if quick else TIME_TO_IOU_STEPS, sample_every=0)
        with tempfile.TemporaryDirectory() as tmp:
            m = run_task1(cfg, tmp, progress=False, cache_dir=HERE.parent / ".cache" / "data")
            evals = [r for r in read_log(tmp) if "val/iou" in r]
        first = lambda t: next((r["time"] for r in evals if r["val/iou"] >= t), None)  # noqa: E731
        best = max(evals, key=lambda r: r["val/iou"])
        stages = {k: m[k]["iou_mean"] for k in ("refined_grabcut", "self_trained", "self_trained_grabcut") if k in m}
        last = stages.get("self_trained_grabcut", stages.get("refined_grabcut", m["iou_mean"]))
        return {"dataset": dataset, "seconds_to_iou_0.7": first(0.7), "seconds_to_iou_0.8": first(0.8),
                "best_iou": round(best["val/iou"], 3), "best_at_step": best["step"], "steps": cfg.steps,
                "batch": cfg.batch_size, "profile": cfg.profile, "final_gan_iou": round(m["iou_mean"], 3),
                **{f"final_{k}_iou": round(v, 3) for k, v in stages.items()}, "seconds_end_to_end": m["seconds"],
                "pipeline_iou_0.8_in_seconds": m["seconds"] if last >= 0.8 else None}
    return go


def run(jobs: list[tuple[str, int, int]], profile: str, device: torch.device, quick: bool = False,
        train_batch: int = TRAIN_BATCH, dataset: str = "synthetic") -> list[dict[str, Any]]:
    rows = []
    for name, size, repeats in jobs:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        fn, n_images, what = job(name, size, "smoke" if quick and name == "time-to-iou" else profile, device, train_batch,
                                  dataset)
        if fn is None:
            rows.append({"job": f"{name}@{size}", "what": what, "size": size, "batch": n_images, "repeats": 0,
                         "seconds_median": None, "seconds_min": None, "images_per_s": None, "peak_rss_mib": None,
                         "peak_cuda_mib": None})
            continue
        if name == "time-to-iou":  # one training run; its own clock
            t = time.perf_counter()
            extra = fn(0)  # the run trains with its profile's own batch
            rows.append({"job": f"{name}@{size}", "what": what, "size": size, "batch": extra.pop("batch"), "repeats": 1,
                         "seconds_median": round(time.perf_counter() - t, 1), "seconds_min": None, "images_per_s": None,
                         "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                         "peak_cuda_mib": None, **extra})
            print(f"  {rows[-1]['job']:<20} {extra}", file=sys.stderr, flush=True)
            continue
        times = _timed(fn, repeats, warmup=1 if quick or (name == "redo-train" and size >= 128) else 2, device=device)
        med = statistics.median(times)
        rows.append({"job": f"{name}@{size}", "what": what, "size": size, "batch": n_images, "repeats": repeats,
                     "seconds_median": round(med, 5), "seconds_min": round(min(times), 5),
                     "images_per_s": round(n_images / med, 2),
                     "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                     "peak_cuda_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1) if device.type == "cuda" else None})
        print(f"  {rows[-1]['job']:<20} {rows[-1]['images_per_s']:>9.2f} images/s", file=sys.stderr, flush=True)
    return rows


def ratios(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Training images/s of the prior over ReDO's at each size (fp32 vs fp32; bf16 prior vs fp32 ReDO)."""
    rate = {r["job"]: r["images_per_s"] for r in rows if r.get("images_per_s")}
    out = {}
    for size in (64, 128):
        for prior in ("prior-train", "prior-train-bf16"):
            if f"{prior}@{size}" in rate and f"redo-train@{size}" in rate:
                out[f"{prior}@{size} / redo-train@{size}"] = round(rate[f"{prior}@{size}"] / rate[f"redo-train@{size}"], 2)
    return out


def table(rows: list[dict[str, Any]]) -> str:
    cols = ("job", "batch", "repeats", "seconds_median", "images_per_s", "peak_rss_mib", "peak_cuda_mib")
    fmt = lambda v: "-" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    cells = [cols] + [tuple(fmt(r[c]) for c in cols) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(cols))]
    return "\n".join("  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(c, widths))) for c in cells)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer repeats: a smoke check, not a measurement")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:1")
    p.add_argument("--profile", default=None, help="model sizes: cpu (default on CPU) | paper (default on CUDA) | smoke")
    p.add_argument("--only", default=None, help="comma-separated jobs, 'name' or 'name@size' (e.g. provider-infer,redo-train@64)")
    p.add_argument("--train-batch", type=int, default=TRAIN_BATCH, help=f"training batch (default {TRAIN_BATCH})")
    p.add_argument("--dataset", default="synthetic", help="time-to-iou's data: synthetic (seed 0), synthetic:1, cub:<root>")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--out", type=Path, default=HERE / "results.json")
    args = p.parse_args(argv)
    if args.train_batch < 1:
        p.error(f"--train-batch {args.train_batch}: expected a positive integer")
    device = resolve_device(args.device)
    profile = C.check_profile(args.profile or ("paper" if device.type == "cuda" else "cpu"))
    if args.threads:
        torch.set_num_threads(args.threads)
    wanted = None if args.only is None else {w.strip() for w in args.only.split(",") if w.strip()}
    jobs = [(n, s, q if args.quick else r) for n, s, r, q in JOBS if wanted is None or n in wanted or f"{n}@{s}" in wanted]
    if not jobs:
        p.error(f"--only {args.only!r} matches no job; jobs: {', '.join(f'{n}@{s}' for n, s, _, _ in JOBS)}")
    hw = {"summary": hardware(), "cpu": cpu_model(), "torch_threads": torch.get_num_threads(),
          "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None, "torch": torch.__version__,
          "python": platform.python_version(), "device": str(device)}
    print(f"bench: profile {profile}, device {device}, {hw['summary']}{' (quick)' if args.quick else ''}", file=sys.stderr)
    t0 = time.perf_counter()
    rows = run(jobs, profile, device, args.quick, args.train_batch, args.dataset)
    result = {"hardware": hw, "settings": {"profile": profile, "quick": args.quick, "train_batch": args.train_batch,
                                           "dataset": args.dataset,
                                           "infer_batch": INFER_BATCH, "statistic": "median over repeats after warm-up",
                                           "peak_rss": "process peak so far (ru_maxrss), jobs run small to large"},
              "results": rows, "ratios": ratios(rows), "seconds": round(time.perf_counter() - t0, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(result, indent=2))
    extra = "".join(f"\n{k}: {v}" for k, v in result["ratios"].items())
    extra += "".join(f"\n{r['job']}: " + ", ".join(f"{k} {r[k]}" for k in r if k.startswith(("seconds_to", "seconds_end", "best", "final_", "pipeline")))
                     for r in rows if r["job"].startswith("time-to-iou"))
    print(f"\n{hw['summary']}; model sizes: {profile} profile; device {device}\n{table(rows)}{extra}\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
