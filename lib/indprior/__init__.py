"""indprior: learn segmentation masks with the independence prior (Dai et al., AAAI 2019).

The public API, in one place (names load lazily, so `import indprior` is instant):

    from indprior import Task1Config, make_config, run_task1
    metrics = run_task1(make_config(Task1Config, "cpu", dataset="synthetic"), "runs/t1")

    configs      Task1Config, HOCConfig, ReDOConfig, make_config (profile + overrides), ConfigError
    experiments  run_task1 (task 1: masks from boxes), run_hoc (task 2: instances from one photo), run_redo
    after        load_run (a finished task-1 run), load_segmenter (a HOC run's segmenter)
    data         load_image, load_label_map, coins, COINS_GT, resolve_dataset, CubDataset, DataError

The package is layered; imports only go down (checked by import-linter, `make lint`):
    core -> data -> models / losses / metrics / baselines / viz -> task1 / hoc / redo -> compare / explore /
    notebook / command line (`python -m indprior`).
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "ConfigError": "core.config", "make_config": "core.config", "DataError": "data.images",
    "Task1Config": "task1", "run_task1": "task1", "load_run": "task1",
    "HOCConfig": "hoc", "run_hoc": "hoc", "load_segmenter": "hoc",
    "ReDOConfig": "redo", "run_redo": "redo",
    "load_image": "data.images", "load_label_map": "data.images", "coins": "data.images", "COINS_GT": "data.images",
    "resolve_dataset": "data.cub", "CubDataset": "data.cub",
}
__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'indprior' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_API[name]}", __name__), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
