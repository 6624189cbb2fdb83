#!/usr/bin/env python
"""Re-run the workbook's notebooks and store their outputs, minus the noise (`make notebooks`).

    .venv/bin/python tools/refresh_notebooks.py                                   # every notebook, cpu profile
    .venv/bin/python tools/refresh_notebooks.py --profile smoke                   # seconds: a quick check
    .venv/bin/python tools/refresh_notebooks.py notebooks/02_training.ipynb       # just these
    .venv/bin/python tools/refresh_notebooks.py --keep-runs runs/notebooks --reuse-runs notebooks/04_*.ipynb

Why: the committed notebooks carry the outputs of a real run (the `cpu` profile), so a reader sees what the
method does without running anything; nbval (`make test`, smoke profile) compares the cells marked
`# NBVAL_CHECK_OUTPUT`, whose outputs do not depend on the profile.

Each notebook is executed by papermill (kernel `indprior`, cwd `notebooks/`, INDPRIOR_PROFILE=<profile>,
on the CPU) into a temp file, with `out_dir` / `run_root` inside one fresh temp folder shared by the notebooks
(so 04 and 05 reuse the runs of 02 and 03, as in `make run-all`): a stale run under runs/ must not leak into
the stored outputs. A subset refresh of 04 or 05 alone would then find no run of 02 or 03 (05 trains task 1
again, 04 loses its HOC section); `--reuse-runs` (what `make notebooks` passes) first copies the `--keep-runs`
folders of the notebooks NOT being refreshed into that temp folder. Those were kept by the refresh that made
those notebooks' stored outputs, so what 04 and 05 show matches them. Then the noise is
stripped (papermill metadata, execution timings, the injected-parameters cell, empty tags, widget
state, the Python version), execution counts are renumbered 1..n (nbval skips cells without one), and
the notebook is replaced atomically. A notebook that fails is left as it was; the script goes on with
the others and exits non-zero.
"""
from __future__ import annotations

import argparse
import base64
import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import papermill as pm
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
KERNEL = "indprior"


def merge_streams(outputs: list) -> list:
    """Consecutive stream outputs of one name (stdout / stderr) as one: how often the kernel flushed is noise."""
    merged: list = []
    for out in outputs:
        prev = merged[-1] if merged else None
        if (out.get("output_type") == "stream" and prev is not None and prev.get("output_type") == "stream"
                and prev.get("name") == out.get("name")):
            prev["text"] = "".join(prev["text"]) + "".join(out["text"])
        else:
            merged.append(out)
    return merged


def strip_noise(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Drop everything that changes from run to run without the content changing."""
    nb.cells = [c for c in nb.cells if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    count = 0
    for cell in nb.cells:
        meta = cell.get("metadata", {})
        for key in ("papermill", "execution", "collapsed", "scrolled", "ExecuteTime"):
            meta.pop(key, None)
        if not meta.get("tags"):
            meta.pop("tags", None)
        if cell.cell_type == "code":  # renumbered 1..n: nbval takes a cell without a count as unrun
            count += 1
            cell.execution_count = count
            cell.outputs = merge_streams(cell.outputs)
            for out in cell.outputs:
                if "execution_count" in out:
                    out["execution_count"] = count
    keep = {"kernelspec": nb.metadata.get("kernelspec", {}), "language_info": {"name": "python"}}
    nb.metadata = nbformat.from_dict(keep)
    return nb


def shrink_figures(nb: nbformat.NotebookNode, quality: int = 85, gain: float = 0.6) -> nbformat.NotebookNode:
    """Photo-like figures as JPEG: a PNG output is re-encoded (quality 85, on white) and replaced when the JPEG is
    under `gain` x its size (line plots stay PNG: there JPEG is larger or barely smaller). Keeps each notebook
    under 1.5 MB with the same figures. Idempotent."""
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "image/png" not in data:
                continue
            png = base64.b64decode(data["image/png"])
            img = Image.open(io.BytesIO(png))
            if img.mode in ("RGBA", "LA", "P"):
                img = img.convert("RGBA")
                flat = Image.new("RGB", img.size, "white")
                flat.paste(img, mask=img.split()[-1])
                img = flat
            buf = io.BytesIO()
            img.convert("RGB").save(buf, "JPEG", quality=quality, optimize=True)
            if buf.tell() < gain * len(png):
                del data["image/png"]
                data["image/jpeg"] = base64.b64encode(buf.getvalue()).decode("ascii")
    return nb


def refresh(path: Path, scratch: Path) -> float:
    """Execute `path` into a temp file, strip it, and atomically replace `path`. Returns seconds."""
    name = path.stem
    executed = scratch / f"{name}.executed.ipynb"
    t0 = time.perf_counter()
    pm.execute_notebook(str(path), str(executed), kernel_name=KERNEL, cwd=str(path.parent),
                        parameters={"out_dir": str(scratch / "runs" / name), "run_root": str(scratch / "runs")},
                        progress_bar=False, log_output=False)
    seconds = time.perf_counter() - t0
    nb = shrink_figures(strip_noise(nbformat.read(executed, as_version=4)))
    nbformat.validate(nb)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            nbformat.write(nb, f)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return seconds


def seed_runs(keep: Path, runs: Path, refreshing: list[Path]) -> list[str]:
    """Copy the kept run folders of the notebooks not in `refreshing` (folder name = notebook stem) from `keep`
    into `runs`; a refreshed notebook's old folder is left behind, so its new run cannot mix with it. Returns
    the names copied, sorted."""
    runs.mkdir(parents=True, exist_ok=True)
    if not keep.is_dir():
        return []
    skip = {p.stem for p in refreshing}
    copied = []
    for run in sorted(keep.iterdir()):
        if run.is_dir() and run.name not in skip:
            shutil.copytree(run, runs / run.name)
            copied.append(run.name)
    return copied


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="notebooks to refresh (default: every notebooks/NN_*.ipynb)")
    parser.add_argument("--profile", default="cpu", choices=("smoke", "cpu", "paper"))
    parser.add_argument("--keep-runs", type=Path, default=None, metavar="DIR",
                        help="copy the notebooks' run folders here afterwards (e.g. runs/notebooks, for make report); "
                             "each refreshed notebook's folder replaces its old one")
    parser.add_argument("--reuse-runs", action="store_true",
                        help="start from the --keep-runs folders of the notebooks not refreshed, so 04 and 05 "
                             "refreshed alone still show the kept runs of 02 and 03")
    args = parser.parse_args(argv)
    paths = [p.resolve() for p in args.notebooks] or sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        parser.error(f"no such notebook: {', '.join(missing)}")
    if args.reuse_runs and args.keep_runs is None:
        parser.error("--reuse-runs needs --keep-runs DIR (the folder whose runs it reuses)")
    os.environ["INDPRIOR_PROFILE"] = args.profile  # the kernel inherits it: config.default_profile()
    os.environ["INDPRIOR_HEADLESS"] = "1"  # explore.show(): static figures, no widget state in stored outputs
    os.environ["CUDA_VISIBLE_DEVICES"] = ""  # CPU: the stored outputs must not depend on the refresher's GPU
    show = lambda p: p.relative_to(ROOT) if p.is_relative_to(ROOT) else p
    failed = []
    scratch = Path(tempfile.mkdtemp(prefix="refresh_notebooks."))
    try:
        if args.reuse_runs:
            reused = seed_runs(args.keep_runs.resolve(), scratch / "runs", paths)
            print(f"reusing the kept runs of {', '.join(reused) or 'no notebook'} from {show(args.keep_runs.resolve())}",
                  flush=True)
        for path in paths:
            try:
                seconds = refresh(path, scratch)
                print(f"refreshed {show(path)} in {seconds:.1f} s", flush=True)
            except Exception as err:  # noqa: BLE001 - report it, keep the notebook, go on with the rest
                failed.append(path.name)
                print(f"FAILED {show(path)} (left unchanged): {type(err).__name__}: {err}",
                      file=sys.stderr, flush=True)
        if args.keep_runs is not None and (scratch / "runs").is_dir():
            keep = args.keep_runs.resolve()
            keep.mkdir(parents=True, exist_ok=True)
            for run in (scratch / "runs").iterdir():  # one folder per notebook: refreshed ones replace theirs
                shutil.rmtree(keep / run.name, ignore_errors=True)
                shutil.copytree(run, keep / run.name) if run.is_dir() else shutil.copy2(run, keep / run.name)
            print(f"kept the notebooks' runs in {show(keep)}", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if failed:
        print(f"{len(failed)} notebook(s) failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
