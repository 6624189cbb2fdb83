"""One generic training loop. It knows nothing about which GAN it runs.

A *method* object (the independence prior, ReDO, ...) holds its networks and optimizers and runs the phases
of one step in its own order:

    method.modules()    -> dict[str, nn.Module]        everything saved in a checkpoint
    method.optimizers() -> dict[str, Optimizer]
    method.train_step(batch, step) -> dict[str, Tensor] named scalars (detached); phases inside are
                                                         wrapped in `record_function` ("Dmain", "Gmain")

This differs from stylegan2-ada-pytorch, whose `Loss.accumulate_gradients(phase)` only computes and
backpropagates while the training loop owns the phase list, zeroes gradients and steps the optimizers. Our
methods keep their optimizers because their phase orders differ (ReDO updates the generator before the critic,
the independence prior the critic first); the update itself is written once, in `opt_step`.

The Trainer adds what every run needs: a tqdm bar, one `report` path for statistics into `train_log.jsonl`,
periodic evaluation and sample figures, atomic checkpoints that hold the config and RNG states, automatic
resume, and a clear stop on NaN (the last good checkpoint is kept).
"""
from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

import torch
from tqdm.auto import tqdm

from . import dist
from .files import append_jsonl, atomic_write_bytes, read_jsonl, write_jsonl
from .runtime import rng_state, set_rng_state

CHECKPOINT = "checkpoint.pt"
LOG = "train_log.jsonl"


class TrainingError(RuntimeError):
    """Training cannot go on (NaN loss, collapse beyond the restart budget)."""


class Method(Protocol):
    def modules(self) -> dict[str, torch.nn.Module]: ...
    def optimizers(self) -> dict[str, torch.optim.Optimizer]: ...
    def train_step(self, batch: Any, step: int) -> dict[str, torch.Tensor]: ...


def opt_step(opts: torch.optim.Optimizer | Iterable[torch.optim.Optimizer], loss: torch.Tensor) -> None:
    """One update: zero the gradients of every optimizer in `opts`, backpropagate `loss`, step them all."""
    opts = [opts] if isinstance(opts, torch.optim.Optimizer) else list(opts)
    for opt in opts:
        opt.zero_grad(set_to_none=True)
    loss.backward()
    for opt in opts:
        opt.step()


# ----------------------------------------------------------------------------- checkpoints
def save_checkpoint(path: Path, method: Method, step: int, config: dict[str, Any], extra: dict | None = None) -> None:
    state = {
        "step": step,
        "config": config,
        "modules": {k: m.state_dict() for k, m in method.modules().items()},
        "optimizers": {k: o.state_dict() for k, o in method.optimizers().items()},
        "rng": rng_state(),
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


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a run's `train_log.jsonl` (a run folder or the file itself)."""
    path = Path(path)
    if path.is_dir():
        path = path / LOG
    if not path.is_file():
        raise FileNotFoundError(f"no training log at {path}")
    return read_jsonl(path)


# ----------------------------------------------------------------------------- the loop
class Trainer:
    """Runs `method.train_step` for `steps` steps with logging, evaluation, samples and checkpoints.

    `may_change`: config fields a resumed run may change (the config class's RESUME_MAY_CHANGE); any other
    difference between the checkpoint's config and this one refuses the resume."""

    def __init__(self, method: Method, out_dir: str | Path, config: dict[str, Any], *, log_every: int = 25,
                 ckpt_every: int = 500, eval_every: int = 0, eval_fn: Callable[[int], dict[str, float]] | None = None,
                 sample_every: int = 0, sample_fn: Callable[[int, Path], None] | None = None,
                 progress: bool = True, may_change: Iterable[str] = ()):
        self.method, self.out_dir, self.config = method, Path(out_dir), config
        self.log_every, self.ckpt_every = max(1, log_every), ckpt_every
        self.eval_every, self.eval_fn = eval_every, eval_fn
        self.sample_every, self.sample_fn = sample_every, sample_fn
        self.progress, self.may_change = progress, frozenset(may_change)
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
        if self.main:
            append_jsonl(self.out_dir / LOG, row)

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
                         if k not in self.may_change and state["config"].get(k) != self.config.get(k))
        if changed:
            diffs = ", ".join(f"{k}: {state['config'].get(k)!r} -> {self.config.get(k)!r}" for k in changed)
            raise ValueError(f"{path} was trained with another config ({diffs}); use another out_dir or resume=False")
        restore(self.method, state)
        set_rng_state(state["rng"])
        self.step = state["step"]
        log = self.out_dir / LOG
        if log.is_file():  # forget what was logged after the checkpoint: it will be logged again
            self.history = [r for r in read_jsonl(log) if r["step"] <= self.step]
            if self.main:
                write_jsonl(log, self.history)
        return True

    # ------------------------------------------------------------------ the loop
    def _start(self, resume: bool) -> None:
        if resume and self.step == 0:  # a Trainer that already ran in this process is up to date
            self.try_resume()
        elif not resume and self.main:
            (self.out_dir / LOG).unlink(missing_ok=True)
        if dist.is_distributed():  # equal weights everywhere, then a different random stream per rank
            dist.broadcast_modules(self.method.modules().values())
            torch.manual_seed(int(torch.randint(2**31 - 1, (1,))) + 7919 * dist.rank())

    def _due(self, every: int, steps: int) -> bool:
        return bool(every) and (self.step % every == 0 or self.step == steps)

    def fit(self, batches: Callable[[int], Any], steps: int, resume: bool = True) -> list[dict[str, Any]]:
        self._start(resume)
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
            if self.main and self.eval_fn and self._due(self.eval_every, steps):
                self._log({"step": self.step, "time": round(time.perf_counter() - start, 2), **self.eval_fn(self.step)})
            if self.main and self.sample_fn and self._due(self.sample_every, steps):
                self.sample_fn(self.step, self.out_dir)
            if self._due(self.ckpt_every, steps):
                self.save()
            bar.update(1)
        bar.close()
        return self.history
