"""One generic training loop. It knows nothing about which GAN it runs.

A *method* object (the independence prior, ReDO, ...) owns the phases of a step, as stylegan2-ada's
`Loss` does:

    method.modules()    -> dict[str, nn.Module]        everything saved in a checkpoint
    method.optimizers() -> dict[str, Optimizer]
    method.train_step(batch, step) -> dict[str, Tensor] named scalars (detached); phases inside are
                                                         wrapped in `record_function` ("Dmain", "Gmain")

The Trainer adds what every run needs: device placement, a tqdm bar, one `report` path for statistics
into `train_log.jsonl`, periodic evaluation and sample figures, atomic checkpoints that hold the config
and RNG states, automatic resume, and a clear stop on NaN (the last good checkpoint is kept).
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import random
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from . import dist

CHECKPOINT = "checkpoint.pt"
LOG = "train_log.jsonl"
# fields a resumed run may change: how long and how often, where it runs, and the stages after training
RESUME_MAY_CHANGE = {"steps", "gan_steps", "seg_steps", "device", "eval_every", "sample_every", "ckpt_every", "log_every",
                     "num_workers", "amp", "amp_cpu", "channels_last", "compile", "refine", "self_train_steps",
                     "self_train_lr", "self_train_augment"}


class TrainingError(RuntimeError):
    """Training cannot go on (NaN loss, collapse beyond the restart budget)."""


class Method(Protocol):
    def modules(self) -> dict[str, torch.nn.Module]: ...
    def optimizers(self) -> dict[str, torch.optim.Optimizer]: ...
    def train_step(self, batch: Any, step: int) -> dict[str, torch.Tensor]: ...


def cpu_has_bf16() -> bool:
    """True when oneDNN runs bf16 natively on this CPU (AMX / AVX512-BF16): bf16 autocast is then a speed-up."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast_enabled(device: torch.device, cuda: bool = True, cpu: bool = False) -> bool:
    """bf16 autocast on CUDA when `cuda`; on CPU when `cpu` and the CPU has native bf16."""
    return (device.type == "cuda" and cuda) or (device.type == "cpu" and cpu and cpu_has_bf16())


class CompiledOrEager:
    """`torch.compile(module)` that falls back to the eager module (once, with a warning) if compiling fails."""

    def __init__(self, module: torch.nn.Module, enabled: bool = True):
        self.module, self.failed = module, not enabled
        self.fn = torch.compile(module) if enabled else module

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self.failed:
            try:
                return self.fn(*args, **kwargs)
            except Exception as err:  # noqa: BLE001 - any compiler failure: run eager instead
                import warnings
                warnings.warn(f"torch.compile failed ({type(err).__name__}: {str(err)[:200]}); running eager",
                              RuntimeWarning, stacklevel=2)
                self.failed = True
        return self.module(*args, **kwargs)


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' -> CUDA when there is a GPU, else CPU. 'cuda' without a GPU is a clear error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but no CUDA GPU is available; use 'auto' or 'cpu'")
    try:
        return torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"device={device!r} is not a torch device ('auto', 'cpu', 'cuda', 'cuda:1')") from err


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def prepare_out_dir(out_dir: str | Path) -> Path:
    """Create `out_dir` and prove it is writable before any work starts (a clear error, not one at the end)."""
    path = Path(out_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise PermissionError(f"out_dir={str(path)!r} is not a writable folder ({err.strerror or err}); "
                              "choose another out_dir") from err
    return path


def atomic_write_bytes(path: Path, write: Callable[[Any], None]) -> None:
    """Write through a temp file in the same folder, then rename: a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; outputs are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, lambda f: f.write(text.encode()))


@contextlib.contextmanager
def atomic_dir(path: str | Path):
    """Fill a fresh folder that replaces `path` only when the block ends without error.

        with atomic_dir(out / "masks") as tmp:
            save_png_atomic(tmp / "a.png", ...)

    A crash inside leaves the old `path` (if any) untouched, never a half-written mix of old and new files;
    the temp folder (`.name.tmp-*`) is removed. The swap is two renames: old -> `.name.old-*`, temp -> path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp-"))
    os.chmod(tmp, 0o755)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if path.exists():
        old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.old-"))
        os.replace(path, old / path.name)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, method: Method, step: int, config: dict[str, Any], extra: dict | None = None) -> None:
    state = {
        "step": step,
        "config": config,
        "modules": {k: m.state_dict() for k, m in method.modules().items()},
        "optimizers": {k: o.state_dict() for k, o in method.optimizers().items()},
        "rng": _rng_state(),
        "extra": extra or {},
    }
    atomic_write_bytes(Path(path), lambda f: torch.save(state, f))


def load_checkpoint(path: Path, method: Method | None = None, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint (and restore `method`'s modules and optimizers if given)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # noqa: BLE001 - any unpickling error means the same thing to a user
        raise ValueError(f"checkpoint {path} is unreadable or truncated: {err}") from err
    if method is not None:
        restore(method, state)
    return state


def restore(method: Method, state: dict) -> None:
    """Load a checkpoint's module and optimizer states into `method`."""
    for key, module in method.modules().items():
        module.load_state_dict(state["modules"][key])
    for key, opt in method.optimizers().items():
        opt.load_state_dict(state["optimizers"][key])


class Trainer:
    """Runs `method.train_step` for `steps` steps with logging, evaluation, samples and checkpoints."""

    def __init__(self, method: Method, out_dir: str | Path, config: dict[str, Any], *, log_every: int = 25,
                 ckpt_every: int = 500, eval_every: int = 0, eval_fn: Callable[[int], dict[str, float]] | None = None,
                 sample_every: int = 0, sample_fn: Callable[[int, Path], None] | None = None,
                 progress: bool = True):
        self.method, self.out_dir, self.config = method, Path(out_dir), config
        self.log_every, self.ckpt_every = max(1, log_every), ckpt_every
        self.eval_every, self.eval_fn = eval_every, eval_fn
        self.sample_every, self.sample_fn = sample_every, sample_fn
        self.progress = progress
        self.step = 0
        self.history: list[dict[str, Any]] = []
        self._pending: dict[str, list[torch.Tensor]] = defaultdict(list)
        self.main = dist.is_main()  # rank 0 alone writes files (torchrun; see dist.py)
        if self.main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        self._hooks = dist.sync_optimizers(method.optimizers().values())  # gradient all-reduce when distributed

    # ------------------------------------------------------------------ statistics: one path
    def report(self, name: str, value: torch.Tensor | float) -> None:
        self._pending[name].append(value.detach() if torch.is_tensor(value) else torch.tensor(float(value)))

    def _flush(self, seconds: float) -> dict[str, Any]:
        row: dict[str, Any] = {"step": self.step, "time": round(seconds, 2)}
        names = sorted(self._pending)
        if names:  # one stack, one host sync (and one all-reduce over ranks when distributed)
            means = torch.stack([torch.stack([v.float() for v in self._pending[k]]).mean() for k in names])
            row.update(zip(names, dist.average_scalars(means).cpu().tolist()))
        self._pending.clear()
        bad = [k for k, v in row.items() if isinstance(v, float) and not math.isfinite(v)]
        self._log(row)
        if bad:
            raise TrainingError(
                f"non-finite {', '.join(bad)} at step {self.step}; the last good checkpoint is kept at "
                f"{self.out_dir / CHECKPOINT} (lower the learning rates or turn off AMP)")
        return row

    def _log(self, row: dict[str, Any]) -> None:
        self.history.append(row)
        if not self.main:
            return
        with open(self.out_dir / LOG, "a") as f:
            f.write(json.dumps(row) + "\n")

    # ------------------------------------------------------------------ checkpoints
    def save(self) -> None:
        if self.main:
            save_checkpoint(self.out_dir / CHECKPOINT, self.method, self.step, self.config)

    def try_resume(self) -> bool:
        path = self.out_dir / CHECKPOINT
        if not path.is_file():
            return False
        state = load_checkpoint(path)
        changed = sorted(k for k in set(state["config"]) | set(self.config)
                         if k not in RESUME_MAY_CHANGE and state["config"].get(k) != self.config.get(k))
        if changed:
            diffs = ", ".join(f"{k}: {state['config'].get(k)!r} -> {self.config.get(k)!r}" for k in changed)
            raise ValueError(f"{path} was trained with another config ({diffs}); use another out_dir or resume=False")
        restore(self.method, state)
        _set_rng_state(state["rng"])
        self.step = state["step"]
        log = self.out_dir / LOG
        if log.is_file():  # forget what was logged after the checkpoint: it will be logged again
            rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
            self.history = [r for r in rows if r["step"] <= self.step]
            if self.main:
                atomic_write_text(log, "".join(json.dumps(r) + "\n" for r in self.history))
        return True

    # ------------------------------------------------------------------ the loop
    def fit(self, batches: Callable[[int], Any], steps: int, resume: bool = True) -> list[dict[str, Any]]:
        if resume and self.step == 0:  # a Trainer that already ran in this process is up to date
            self.try_resume()
        elif not resume and self.main:
            (self.out_dir / LOG).unlink(missing_ok=True)
        if dist.is_distributed():  # equal weights everywhere, then a different random stream per rank
            dist.broadcast_modules(self.method.modules().values())
            torch.manual_seed(int(torch.randint(2**31 - 1, (1,))) + 7919 * dist.rank())
        start = time.perf_counter() - (self.history[-1]["time"] if self.history else 0.0)  # log time runs on
        bar = tqdm(total=steps, initial=self.step, disable=not (self.progress and self.main), desc="train",
                   dynamic_ncols=True)
        while self.step < steps:
            stats = self.method.train_step(batches(self.step), self.step)
            self.step += 1
            for name, value in stats.items():
                self.report(name, value)
            if self.step % self.log_every == 0 or self.step == steps:
                row = self._flush(time.perf_counter() - start)
                bar.set_postfix({k: f"{v:.3f}" for k, v in row.items() if k not in ("step", "time")}, refresh=False)
            if self.main and self.eval_fn and self.eval_every and (self.step % self.eval_every == 0 or self.step == steps):
                self._log({"step": self.step, "time": round(time.perf_counter() - start, 2), **self.eval_fn(self.step)})
            if self.main and self.sample_fn and self.sample_every and (self.step % self.sample_every == 0 or self.step == steps):
                self.sample_fn(self.step, self.out_dir)
            if self.ckpt_every and (self.step % self.ckpt_every == 0 or self.step == steps):
                self.save()
            bar.update(1)
        bar.close()
        return self.history


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a run's `train_log.jsonl` (a run folder or the file itself)."""
    path = Path(path)
    if path.is_dir():
        path = path / LOG
    if not path.is_file():
        raise FileNotFoundError(f"no training log at {path}")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def loop_seconds(out_dir: str | Path) -> float:
    """Seconds a run folder's training loops took, summed over resumed calls and collapsed attempts: the last
    `time` of train_log.jsonl and of every collapsed/attempt*/train_log.jsonl (a log's clock runs on when a run
    resumes). 0.0 when nothing was logged."""
    out_dir = Path(out_dir)
    total = 0.0
    for log in [out_dir / LOG, *sorted((out_dir / COLLAPSED).glob(f"attempt*/{LOG}"))]:
        rows = read_log(log) if log.is_file() else []
        total += float(rows[-1]["time"]) if rows else 0.0
    return total


# ----------------------------------------------------------------------------- collapse and restarts
RESTARTS = "restarts.json"  # one event per collapsed attempt, in out_dir
COLLAPSED = "collapsed"  # out_dir/collapsed/attempt{k}/ keeps a collapsed attempt's checkpoint, log and samples


def sustained(history: list[dict[str, Any]], key: str, patience: int, bad: Callable[[float], bool]) -> bool:
    """True when every logged `key` of the last `patience` steps is `bad` (and the run is that old)."""
    rows = [r for r in history if key in r]
    if not rows or rows[-1]["step"] < patience:
        return False
    last = rows[-1]["step"]
    return all(bad(r[key]) for r in rows if r["step"] > last - patience)


def chunk_ends(steps: int, check_every: int, check_until: int) -> list[int]:
    """Train in chunks ending where collapse is checked; after `check_until`, in one go."""
    ends = range(check_every, min(check_until, steps) + 1, check_every) if check_every > 0 else []
    return [e for e in ends if e < steps] + [steps]


def read_restarts(out_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(out_dir) / RESTARTS
    return json.loads(path.read_text()) if path.is_file() else []


def _archive_attempt(out_dir: Path, k: int) -> None:
    """Move a collapsed attempt's files aside. A crash half-way only means attempt k is trained again."""
    dest = out_dir / COLLAPSED / f"attempt{k}"
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for name in (CHECKPOINT, LOG, "samples"):
        if (out_dir / name).exists():
            os.replace(out_dir / name, dest / name)


def fit_with_restarts(make_method: Callable[[int], Method], out_dir: str | Path, config: dict[str, Any],
                      batches: Callable[[int], Any], steps: int, *, seed: int,
                      collapse_reason: Callable[[list[dict[str, Any]]], str | None], check_every: int,
                      check_until: int, max_restarts: int, resume: bool = True, name: str = "training",
                      eval_fn: Callable[[Method, int], dict[str, float]] | None = None,
                      sample_fn: Callable[[Method, int, Path], None] | None = None,
                      **trainer_kwargs: Any) -> tuple[Method, list[dict[str, Any]]]:
    """Train in `out_dir`; when `collapse_reason(history)` names a collapse, archive the attempt under
    `out_dir/collapsed/attempt{k}/`, log the event in `out_dir/restarts.json` and start again from
    seed + 1000 * (k + 1), at most `max_restarts` times (then TrainingError). Collapse is checked every
    `check_every` steps up to `check_until`. Resuming continues the current attempt; the restart
    history survives a crash. Returns the trained method and the list of collapse events."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not resume:
        shutil.rmtree(out_dir / COLLAPSED, ignore_errors=True)
        (out_dir / RESTARTS).unlink(missing_ok=True)
    events = read_restarts(out_dir)
    first_chunk_resume = resume
    while True:
        k = len(events)
        if k > max_restarts:
            raise TrainingError(f"{name} collapsed in all {k} attempts (max_restarts={max_restarts}); see "
                                f"{out_dir / RESTARTS} and {out_dir / COLLAPSED}/. Try another seed or config")
        attempt_seed = seed + 1000 * k
        seed_everything(attempt_seed)
        method = make_method(attempt_seed)
        trainer = Trainer(method, out_dir, {**config, "attempt": k, "attempt_seed": attempt_seed},
                          eval_fn=eval_fn and (lambda step, m=method: eval_fn(m, step)),
                          sample_fn=sample_fn and (lambda step, folder, m=method: sample_fn(m, step, folder)),
                          **trainer_kwargs)
        reason = None
        for i, end in enumerate(chunk_ends(steps, check_every, check_until)):
            trainer.fit(batches, end, resume=first_chunk_resume or i > 0)
            if end <= check_until and (reason := collapse_reason(trainer.history)):
                break
        if reason is None:
            return method, events
        event = {"attempt": k, "seed": attempt_seed, "step": trainer.step, "reason": reason}
        events = events + [event]
        if dist.is_main():
            _archive_attempt(out_dir, k)
            atomic_write_text(out_dir / RESTARTS, json.dumps(events, indent=2))
        dist.barrier()  # no rank may resume the collapsed checkpoint
        tqdm.write(f"{name} collapsed (attempt {k}, step {trainer.step}: {reason}); "
                   f"{'restarting from seed ' + str(seed + 1000 * (k + 1)) if k < max_restarts else 'no restarts left'}")
        first_chunk_resume = True  # nothing is left in out_dir of the collapsed attempt


# ----------------------------------------------------------------------------- command line (and torchrun)
def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """`python -m indprior.train --task task1 --profile cpu --dataset synthetic --out runs/t1 [--set steps=500]`.

    Under `torchrun --nproc_per_node N -m indprior.train ...` it trains data-parallel (see dist.py); rank 0
    writes every file. Prints the metrics as JSON (rank 0).
    """
    import argparse

    from . import config as C

    ap = argparse.ArgumentParser(prog="python -m indprior.train", description=main.__doc__.split("\n")[0])
    ap.add_argument("--task", choices=("task1", "redo", "hoc"), default="task1")
    ap.add_argument("--profile", default=None, help="smoke | cpu | paper (default: paper on CUDA, else cpu)")
    ap.add_argument("--dataset", default=None, help="task1/redo: synthetic, synthetic:<seed> or cub:<root>")
    ap.add_argument("--image", default=None, help="hoc: the photo (default: scikit-image's coins)")
    ap.add_argument("--gt", default=None, help="hoc: optional GT label map, for the metrics only")
    ap.add_argument("--out", required=True, help="output folder (resumed if it holds a checkpoint)")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="config override, repeatable")
    ap.add_argument("--no-resume", action="store_true", help="start again even if --out holds a checkpoint")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    overrides = {}
    for item in args.set:
        if "=" not in item:
            ap.error(f"--set {item!r}: expected FIELD=VALUE")
        key, value = item.split("=", 1)
        overrides[key.strip()] = _value(value)
    dist.init_from_env()
    main_rank = dist.is_main()  # run_task1 leaves the process group when its training is done
    common = dict(resume=not args.no_resume, progress=not args.no_progress)
    if args.task == "hoc":
        from .hoc import HOCConfig, run_hoc
        if dist.is_distributed():
            raise SystemExit("--task hoc runs in one process (one image); start it without torchrun")
        image = args.image
        if image is None:
            import numpy as np
            import skimage.data
            image = np.stack([skimage.data.coins()] * 3, -1)
        metrics = run_hoc(C.make_config(HOCConfig, args.profile, **overrides), image, args.out,
                          gt_instances=args.gt, **common)
    elif args.task == "redo":
        from .redo import ReDOConfig, run_redo
        if dist.is_distributed():
            raise SystemExit("--task redo runs in one process; start it without torchrun")
        metrics = run_redo(C.make_config(ReDOConfig, args.profile, dataset=args.dataset, **overrides), args.out, **common)
    else:
        from .task1 import run_task1
        metrics = run_task1(C.make_config(C.Task1Config, args.profile, dataset=args.dataset, **overrides), args.out,
                            **common)
    if main_rank:
        print(json.dumps(metrics, indent=2))
    dist.leave()  # a no-op where the task already left
    return metrics


if __name__ == "__main__":
    main()
