"""Collapse detection and automatic restarts (method.md: ReDO reports mode collapse in about one run in three).

A run is trained in chunks; after each chunk the method's `collapse_reason(history)` may name a collapse.
Then the attempt is archived under out_dir/collapsed/attempt{k}/, logged in out_dir/restarts.json, and
training starts again from seed + 1000 * (k + 1), at most `max_restarts` times.
"""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from . import dist
from .files import write_json
from .runtime import seed_everything
from .trainer import CHECKPOINT, LOG, Method, Trainer, TrainingError, read_log

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


def _archive_attempt(out_dir: Path, k: int) -> None:
    """Move a collapsed attempt's files aside. A crash half-way only means attempt k is trained again."""
    dest = out_dir / COLLAPSED / f"attempt{k}"
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for name in (CHECKPOINT, LOG, "samples"):
        if (out_dir / name).exists():
            os.replace(out_dir / name, dest / name)


def _record_collapse(out_dir: Path, events: list[dict[str, Any]], event: dict[str, Any], name: str,
                     seed: int, max_restarts: int) -> list[dict[str, Any]]:
    """Archive the attempt, append its event to restarts.json (rank 0), tell the user; returns the events."""
    events = events + [event]
    if dist.is_main():
        _archive_attempt(out_dir, event["attempt"])
        write_json(out_dir / RESTARTS, events)
    dist.barrier()  # no rank may resume the collapsed checkpoint
    k = event["attempt"]
    tqdm.write(f"{name} collapsed (attempt {k}, step {event['step']}: {event['reason']}); "
               f"{'restarting from seed ' + str(seed + 1000 * (k + 1)) if k < max_restarts else 'no restarts left'}")
    return events


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
        events = _record_collapse(out_dir, events, event, name, seed, max_restarts)
        first_chunk_resume = True  # nothing is left in out_dir of the collapsed attempt
