"""Where and how tensors run: the device, seeds and RNG states, bf16 autocast, torch.compile with a fallback."""
from __future__ import annotations

import os
import platform
import random
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch


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


def busy_cores(interval: float = 0.2) -> float | None:
    """How many cores other processes keep busy right now: the CPU time not idle over `interval` seconds, while
    this process sleeps (Linux /proc/stat; None elsewhere). Unlike the load average it does not remember a job
    that ended a minute ago."""
    def sample() -> tuple[float, float]:
        with open("/proc/stat") as f:
            ticks = [float(v) for v in f.readline().split()[1:9]]  # user nice system idle iowait irq softirq steal
        return sum(ticks), ticks[3] + ticks[4]
    try:
        total0, idle0 = sample()
        time.sleep(interval)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    total = total1 - total0
    return None if total <= 0 else (1.0 - (idle1 - idle0) / total) * (os.cpu_count() or 1)


def warn_if_cpu_busy(device: torch.device) -> str | None:
    """Warn (and return the message) when other processes keep the CPU busy as a CPU run starts.

    torch's threads wait for each other at every operation, so a run with 2 threads beside another busy process
    on 2 cores ran ~20x slower here (docs/method.md, session 13), not 2x. Returns None on CUDA, with 1 thread, or
    where `busy_cores` cannot tell."""
    threads = torch.get_num_threads()
    if device.type != "cpu" or threads < 2:
        return None
    busy, cores = busy_cores(), os.cpu_count() or 1
    if busy is None or busy + threads <= cores + 0.5:
        return None
    msg = (f"the CPU is already busy ({busy:.1f} of {cores} cores in use by other work) and torch will run {threads} "
           f"threads: this run may be many times slower than alone, and its times are not speed figures. Let the "
           f"other work finish, or give each job one thread (OMP_NUM_THREADS=1 or torch.set_num_threads(1)).")
    warnings.warn(msg, RuntimeWarning, stacklevel=2)
    return msg


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """Every global RNG's state (Python, NumPy, torch, CUDA): saved in checkpoints so a resume is exact."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


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
                warnings.warn(f"torch.compile failed ({type(err).__name__}: {str(err)[:200]}); running eager",
                              RuntimeWarning, stacklevel=2)
                self.failed = True
        return self.module(*args, **kwargs)


def cpu_model() -> str:
    """'<model name> (<n> logical cores)' from /proc/cpuinfo, else what `platform` knows."""
    names = []
    if os.path.isfile("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
    return f"{names[0]} ({len(names)} logical cores)" if names else (platform.processor() or platform.machine())


def hardware() -> str:
    """CPU model and torch threads (and the GPU, if any): every timing table names its machine."""
    gpu = f"; GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return f"{cpu_model()}, torch {torch.get_num_threads()} threads{gpu}"


def commit() -> str | None:
    """The git commit of the code that runs (with '+dirty' when it has uncommitted changes); None outside git."""
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "."], cwd=here.parent,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if rev.returncode != 0:
        return None
    return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


COMMAND_ENV = "INDPRIOR_COMMAND"  # set by notebook.setup: a kernel's own argv says nothing useful


def provenance() -> dict[str, str | None]:
    """What made a result, for metrics.json: the commit, the command (or notebook), the machine, torch."""
    command = os.environ.get(COMMAND_ENV) or " ".join(["python", *sys.argv]) or None
    return {"commit": commit(), "command": command, "hardware": hardware(), "torch": torch.__version__}
