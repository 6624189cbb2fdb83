"""Where and how tensors run: the device, seeds and RNG states, bf16 autocast, torch.compile with a fallback."""
from __future__ import annotations

import os
import platform
import random
import subprocess
import sys
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
