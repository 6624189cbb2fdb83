"""`make report`: one results page built from the runs themselves, so no number in it is typed by hand.

Reads every `metrics.json` under a runs folder (task-1 runs, the GrabCut baseline, HOC runs) and the HOC suite's
result files (bench/hoc_suite/*.jsonl), and writes a markdown page (docs/results.md): per task, a summary over
seeds and every run with its hardware, command and commit; and figures (docs/figures/): a task-1 run's training
curves and its best and worst test masks, a HOC run's instances over its photo.
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from .core.files import atomic_write_text
from .data.images import load_image, load_label_map
from .viz import overlay_instances, save_figure, training_curves

STAGES = (("iou_mean", "GAN"), ("refined_grabcut", "GAN + GrabCut"), ("self_trained", "self-trained"),
          ("self_trained_grabcut", "self-trained + GrabCut"))
SUITE_COLUMNS = ("| kind | runs | F1 mean | F1 worst | AP50 mean | AP@[.5:.95] mean | mean abs count error | failed | "
                 "warned | watershed F1 mean | seconds mean | peak RSS MB |")


def collect(runs: str | Path, skip_profiles: tuple[str, ...] = ("smoke",)) -> list[tuple[Path, dict[str, Any]]]:
    """(run folder, metrics) of every metrics.json under `runs`, sorted by path; unreadable files are skipped, and
    so are runs of `skip_profiles` (the smoke profile's runs check code paths, they are not results)."""
    out = []
    for path in sorted(Path(runs).rglob("metrics.json")):
        try:
            m = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(m, dict) and m.get("profile") not in skip_profiles:
            out.append((path.parent, m))
    return out


def _iou(m: dict[str, Any], key: str) -> float | None:
    v = m.get(key)
    return v.get("iou_mean") if isinstance(v, dict) else v


def _f(v: Any, digits: int = 3) -> str:
    return "–" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _prov(m: dict[str, Any]) -> list[str]:
    p = m.get("provenance") or {}
    return [f"`{p.get('commit') or '?'}`", f"`{(p.get('command') or '?').replace('|', '/')}`", p.get("hardware") or "?"]


def _is_task1(m: dict[str, Any]) -> bool:
    return m.get("task") == "foreground" and m.get("method") not in ("grabcut", "redo")


def task1_summary(runs: list[tuple[Path, dict]]) -> str:
    """Per dataset and profile: each stage's test IoU, mean and worst over the runs (seeds), beside GrabCut."""
    grabcut = {m.get("dataset"): m.get("iou_mean") for _, m in runs if m.get("method") == "grabcut"}
    grabcut.update({m.get("dataset"): _iou(m, "grabcut_box") for _, m in runs if _is_task1(m) and _iou(m, "grabcut_box")})
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for _, m in runs:
        if _is_task1(m):
            groups[(m.get("dataset"), m.get("profile"))].append(m)
    lines = ["| dataset | profile | runs (seeds) | GrabCut from the box | the colour cue alone | "
             + " | ".join(f"{n} mean / worst" for _, n in STAGES) + " | seconds mean |", "|" + "---|" * (6 + len(STAGES))]
    for (dataset, profile), ms in sorted(groups.items(), key=lambda x: str(x[0])):
        cue = [v for v in (_iou(m, "colour_cue_box") for m in ms) if v is not None]  # runs since session 27
        cells = [dataset, profile, f"{len(ms)} ({', '.join(str(m.get('seed', '?')) for m in ms)})", _f(grabcut.get(dataset)),
                 _f(float(np.mean(cue))) if cue else "–"]
        for key, _ in STAGES:
            vals = [v for v in (_iou(m, key) for m in ms) if v is not None]
            cells.append(f"{np.mean(vals):.3f} / {min(vals):.3f}" if vals else "–")
        cells.append(_f(float(np.mean([m.get("seconds", 0) for m in ms])), 0))
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


def task1_runs(runs: list[tuple[Path, dict]], root: Path) -> str:
    """Every task-1 run: its stages' test IoU, the whole box, seconds, and what made it."""
    lines = ["| run | dataset | profile | seed | whole box | GrabCut from the box | the colour cue alone | "
             + " | ".join(n for _, n in STAGES) + " | seconds | commit | command | hardware |", "|" + "---|" * (11 + len(STAGES))]
    for d, m in runs:
        if _is_task1(m):
            cells = [f"`{d.relative_to(root)}`", m.get("dataset"), m.get("profile"), m.get("seed", "?"),
                     _f(m.get("whole_box_iou_mean")), _f(_iou(m, "grabcut_box")), _f(_iou(m, "colour_cue_box")),
                     *(_f(_iou(m, k)) for k, _ in STAGES),
                     _f(m.get("seconds"), 0),
                     *_prov(m)]
            lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


def hoc_runs(runs: list[tuple[Path, dict]], root: Path) -> str:
    """Every HOC run: status, scores against its GT beside the watershed baseline, seconds, what made it."""
    lines = ["| run | photo | profile | provider | seed | status | count (GT) | F1 | AP50 | AP@[.5:.95] | watershed F1 | "
             "seconds | commit | command | hardware |", "|" + "---|" * 15]
    for d, m in runs:
        if m.get("task") == "hoc" and "run" not in m:
            ws = m.get("baseline_watershed", {})
            cells = [f"`{d.relative_to(root)}`", Path(str(m.get("image"))).name, m.get("profile"), m.get("provider"),
                     m.get("seed"), m.get("status"), f"{m.get('count_pred', '–')} ({m.get('count_gt', '–')})",
                     _f(m.get("f1")), _f(m.get("ap50")), _f(m.get("ap")), _f(ws.get("f1")), _f(m.get("seconds"), 0),
                     *_prov(m)]
            lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


def suite_summary(rows: list[dict[str, Any]]) -> str:
    """The HOC suite: per kind, F1 mean and worst over every run (a failed run counts as 0), how many runs failed and
    how many finished with a warning (metrics.json's "warnings": the run says its result may be wrong), the baseline
    beside."""
    mean = lambda rs, k: sum((r.get(k) or 0.0) for r in rs) / len(rs)  # noqa: E731
    lines = [SUITE_COLUMNS, "|" + "---|" * 12]
    for kind in dict.fromkeys(r["kind"] for r in rows):
        rs = [r for r in rows if r["kind"] == kind]
        f1 = [r.get("f1") or 0.0 for r in rs]
        cells = [kind, len(rs), f"{np.mean(f1):.3f}", f"{min(f1):.3f}", f"{mean(rs, 'ap50'):.3f}", f"{mean(rs, 'ap'):.3f}",
                 f"{np.mean([abs(r.get('count_error') or 0) for r in rs]):.1f}", sum(r.get("status") != "ok" for r in rs),
                 sum(bool(r.get("warnings")) for r in rs),
                 f"{mean(rs, 'ws_f1'):.3f}", f"{mean(rs, 'seconds'):.0f}", max(r.get("rss_mb") or 0 for r in rs)]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


def scale_summary(rows: list[dict[str, Any]]) -> str:
    """bench/hoc_scale.py's rows: per kind, the estimate / truth ratios (median and furthest from 1), the size a run
    works at over the truth (rows since session 41), and the foreground IoU."""
    lines = ["| kind | photos | diameter est / GT, median (worst) | width est / GT, median (worst) | "
             "size used / GT, median (worst) | foreground IoU, median (worst) | seconds mean |",
             "|---|---|---|---|---|---|---|"]
    worst = lambda v: v[np.argmax(np.abs(np.log(v)))]  # noqa: E731 - furthest from 1 either way
    for kind in dict.fromkeys(r["kind"] for r in rows):
        rs = [r for r in rows if r["kind"] == kind]
        d, w = np.array([r["diameter_ratio"] for r in rs]), np.array([r["width_ratio"] for r in rs])
        u = np.array([r["size_ratio"] for r in rs if "size_ratio" in r])
        used = f"{np.median(u):.2f} ({worst(u):.2f})" if len(u) else "-"
        f = np.array([r["fg_iou"] for r in rs])
        lines.append(f"| {kind} | {len(rs)} | {np.median(d):.2f} ({worst(d):.2f}) | {np.median(w):.2f} ({worst(w):.2f}) "
                     f"| {used} | {np.median(f):.2f} ({f.min():.2f}) | {np.mean([r['seconds'] for r in rs]):.1f} |")
    return "\n".join(lines)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


# ----------------------------------------------------------------------------- figures
def task1_figures(run_dir: Path, m: dict[str, Any], fig_dir: Path, cache_dir: str | Path, n: int = 3) -> list[str]:
    """training curves, and the last stage's best and worst test masks (by IoU against the GT): file names."""
    from .compare import read_masks
    from .data.datasets import open_dataset
    from .metrics import mask_iou
    from .viz import mask_grid
    names = []
    if (run_dir / "train_log.jsonl").is_file():
        save_figure(training_curves(run_dir), fig_dir / "task1_training_curves.png")
        names.append("task1_training_curves.png")
    folder = next((f for f in ("masks_self_trained_refined", "masks_self_trained", "masks_refined", "masks")
                   if (run_dir / f).is_dir()), None)
    if folder is None:
        return names
    test = open_dataset(m["dataset"], "test", cache_dir)
    if test[0].mask is None:
        return names
    masks = read_masks(run_dir / folder, test.names)
    ious = [mask_iou(p, test[i].mask) for i, p in enumerate(masks)]
    pick = list(np.argsort(ious)[:n]) + list(np.argsort(ious)[-n:])
    fig = mask_grid([test[i].image for i in pick], [masks[i] for i in pick], [test[i].mask for i in pick],
                    ious=[ious[i] for i in pick], titles=["worst"] * n + ["best"] * n, ncols=2 * n)
    save_figure(fig, fig_dir / "task1_best_worst.png")
    return [*names, "task1_best_worst.png"]


def hoc_figure(run_dir: Path, m: dict[str, Any], fig_dir: Path) -> list[str]:
    """The photo, its instances, and (when the run had one) its GT, side by side."""
    from .viz import mask_grid
    img = load_image(run_dir / "image.png")
    labels = load_label_map(run_dir / "instances.png", expected_shape=img.shape[:2])
    panels, titles = [img, overlay_instances(img, labels)], ["photo", f"{m.get('count_pred')} instances"]
    if m.get("gt") and Path(m["gt"]).is_file():
        gt = load_label_map(m["gt"], expected_shape=img.shape[:2])
        panels.append(overlay_instances(img, gt))
        titles.append(f"GT: {m.get('count_gt')} (F1 {m.get('f1', float('nan')):.2f})")
    fig = mask_grid(panels, np.zeros((len(panels), *img.shape[:2])), titles=titles, ncols=len(panels))
    save_figure(fig, fig_dir / "hoc_instances.png")
    return ["hoc_instances.png"]


# ----------------------------------------------------------------------------- the page
def _pick(runs: list[tuple[Path, dict]], prefer: str, ok: Any) -> tuple[Path, dict] | None:
    hits = [(d, m) for d, m in runs if ok(m)]
    return next((x for x in hits if prefer in str(x[0])), hits[0] if hits else None)


def write_report(runs_root: str | Path = "runs", suite_files: list[Path] | None = None,
                 out: str | Path = "docs/results.md", cache_dir: str | Path = ".cache/data",
                 scale_files: list[Path] | None = None) -> Path:
    """Build docs/results.md (and docs/figures/) from the runs under `runs_root`, the HOC suite files and the
    scale-estimate files (bench/hoc_scale.py)."""
    root, out = Path(runs_root), Path(out)
    fig_dir = out.parent / "figures"
    runs = collect(root)
    parts = ["# Results", "", f"Built by `make report` from {len(runs)} runs under `{root}` and the HOC suite files; "
             "every number below comes from a run's metrics.json. Task-1 IoU is the per-image mean over the test "
             "split; HOC F1 and AP are at IoU 0.5 (AP@[.5:.95]: averaged over 0.5:0.95)."]
    t1 = _pick(runs, "notebooks/02_training", _is_task1)
    hoc = _pick(runs, "notebooks/03_hoc_one_shot", lambda m: m.get("task") == "hoc" and m.get("status") == "ok" and "run" not in m)
    figs = (task1_figures(*t1, fig_dir, cache_dir) if t1 else []) + (hoc_figure(*hoc, fig_dir) if hoc else [])
    if figs:
        parts += ["", "## Figures", ""] + [f"![{f}](figures/{f})" for f in figs]
    parts += ["", "## Task 1: foreground masks from boxes", "", "Over seeds:", "", task1_summary(runs), "",
              "Every run:", "", task1_runs(runs, root)]
    for path in suite_files or []:
        rows = read_jsonl(path)
        commits = sorted({r["commit"] for r in rows if r.get("commit")})
        made = f"Runs made at commit {', '.join(commits)}." if commits else "The rows do not record their commit."
        again = sorted({f"{r['segmented_at']} ({' '.join(r.get('segmented_with') or []) or 'as configured'})"
                        for r in rows if r.get("segmented_at")})
        if again:  # bench/hoc_suite.py --resegment: the saved runs segmented again by later code
            made += f" Segmented again (no training) at commit {', '.join(again)}."
        refit = sorted({f"{r['refit_at']} ({' '.join(r.get('refit_with') or []) or 'as configured'})"
                        for r in rows if r.get("refit_at")})
        if refit:  # bench/hoc_suite.py --refit: the saved GANs kept, factory + segmenter run again by later code
            made += (f" {sum(bool(r.get('refit_at')) for r in rows)} of the runs: GAN kept, labelled-data factory and "
                     f"segmenter run again at commit {', '.join(refit)}.")
        parts += ["", f"## Task 2: the HOC suite (`{path}`)", "", made, "", suite_summary(rows)]
    for path in scale_files or []:
        parts += ["", f"## Task 2: object size and foreground read off the photo vs the GT (`{path}`)", "",
                  scale_summary(read_jsonl(path))]
    parts += ["", "## Task 2: every HOC run", "", hoc_runs(runs, root), ""]
    atomic_write_text(out, "\n".join(parts))
    return out
