"""Task 1: foreground segmentation of category-specific images that have only box annotations.

    config     Task1Config and its profiles
    method     the GAN: segmenting provider -> layout -> composition vs a critic; its batches and backgrounds
    infer      soft masks of a split's windows pasted back into the images; load_run
    selftrain  the optional second stage (ours): self-training on GrabCut pseudo-labels
    run        run_task1: the stages end to end, with outputs and metrics
    summary    summary_markdown: a run's headline from its metrics.json
    segment    segment_boxes: a finished run's masks for new photos and boxes (COCO JSON / CSV in and out)
"""
from .config import Task1Config
from .infer import evaluate, full_masks, load_run, predict_window_masks
from .method import IndependencePriorTask1, Task1Batches, background_bank, collapse_reason, sample_composites
from .run import run_task1, stage_outputs
from .segment import segment_boxes
from .summary import summary_markdown

__all__ = ["Task1Config", "evaluate", "full_masks", "load_run", "predict_window_masks", "IndependencePriorTask1",
           "Task1Batches", "background_bank", "collapse_reason", "sample_composites", "run_task1", "stage_outputs", "segment_boxes", "summary_markdown"]
