"""Where and how tensors run: the device, seeds and RNG states, bf16 autocast, torch.compile with a fallback."""
from __future__ import annotations

import random
import warnings
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
