"""The ReDO baseline (Chen, Artieres, Denoyer, NeurIPS 2019) on task 1's box windows.

    config    ReDOConfig and its profiles
    nets      ReDO's four networks (mask net, region generators, critic, z encoder)
    method    one training step
    run       run_redo: training with restarts, evaluation (GT-chosen and GT-free side), outputs
"""
from .config import ReDOConfig
from .method import ReDO, ReDOBatches
from .run import (
                  best_polarity,
                  border_polarity,
                  collapse_detected,
                  paste_window,
                  run_redo,
                  score_windows,
                  train_with_restarts,
                  window_probs,
)

__all__ = ["ReDOConfig", "ReDO", "ReDOBatches", "run_redo", "collapse_detected", "train_with_restarts",
           "score_windows", "best_polarity", "border_polarity", "paste_window", "window_probs"]
