"""What every notebook's first cells need, so the notebooks hold only their story.

    nb = notebook.setup("02_training", profile, out_dir, run_root)   # resolves where outputs go, prints it
    img, gt = notebook.hoc_photo(image, gt_instances)                 # a photo, or coins with its GT
    nb.save(fig, "curves.png")                                         # save into out_dir, return for display

Notebooks run from `notebooks/` (JupyterLab, papermill, nbval): the cache and run folders are the repository's.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .core.config import default_profile
from .core.runtime import COMMAND_ENV, commit
from .data.images import COINS_GT, coins, load_image, load_label_map
from .metrics import count_instances
from .viz import save_figure

RUN_ROOT_ENV = "INDPRIOR_RUN_ROOT"  # make test: nbval runs every notebook into a fresh folder
CACHE_DIR = "../.cache/data"  # the repo-root cache (papermill and nbval run with cwd = notebooks/)


@dataclass
class Notebook:
    """Where a notebook reads and writes, and how chatty it is."""

    name: str
    profile: str
    run_root: Path  # the folder holding every notebook's out_dir (make run-all sets it)
    out_dir: Path
    cache_dir: str = CACHE_DIR

    @property
    def progress(self) -> bool:
        """tqdm bars, except in the seconds-long smoke runs."""
        return self.profile != "smoke"

    def save(self, fig: Any, filename: str) -> Any:
        """Write `fig` atomically into out_dir and return it, so a cell can end with `nb.save(fig, "x.png")`."""
        save_figure(fig, self.out_dir / filename)
        return fig


def setup(name: str, profile: str | None = None, out_dir: str | Path | None = None,
          run_root: str | Path | None = None) -> Notebook:
    """The first cell of every notebook: profile (the parameter, else $INDPRIOR_PROFILE, else paper on CUDA /
    cpu), run_root (the parameter, else $INDPRIOR_RUN_ROOT, else ../runs/interactive/<profile>) and
    out_dir (the parameter, else <run_root>/<name>), created."""
    profile = profile or default_profile()
    root = Path(run_root or os.environ.get(RUN_ROOT_ENV) or f"../runs/interactive/{profile}")
    nb = Notebook(name, profile, root, Path(out_dir or root / name))
    nb.out_dir.mkdir(parents=True, exist_ok=True)
    os.environ[COMMAND_ENV] = f"notebooks/{name}.ipynb (profile {profile})"  # what metrics.json records as the command
    print(f"{name}: profile={profile}, commit {commit() or 'unknown'}; out_dir={nb.out_dir.name}")
    return nb


def hoc_photo(image: str | Path | None = None, gt_instances: str | Path | None = None,
              ) -> tuple[np.ndarray, np.ndarray | None]:
    """(photo uint8 HxWx3, GT label map or None): `image`, else scikit-image's coins with its shipped GT."""
    if image is None:
        img, gt_instances = coins(), gt_instances or COINS_GT
    else:
        img = load_image(image)
    gt = None if gt_instances is None else load_label_map(gt_instances, expected_shape=img.shape[:2])
    return img, gt


def data_summary(dataset: str, train: Sequence[Any], test: Sequence[Any], hoc_img: np.ndarray,
                 hoc_lab: np.ndarray | None) -> str:
    """Notebook 00's headline: the two inputs in numbers, computed from the data themselves."""
    s = test[0] if len(test) else train[0]
    fills = [float(x.mask.sum() / (x.box[2] * x.box[3])) for x in (test[i] for i in range(min(len(test), 60)))
             if x.mask is not None]
    fill = f"objects fill {np.mean(fills):.2f} of their box on average (the whole box's IoU)" if fills else "no GT masks"
    n_hoc = "no GT" if hoc_lab is None else f"{count_instances(hoc_lab)} GT instances"
    return (f"**Task 1**: `{dataset}`: {len(train)} train + {len(test)} test images, e.g. {s.image.shape[1]}x"
            f"{s.image.shape[0]} px, one box each; {fill}.  \n**Task 2**: one photo, {hoc_img.shape[1]}x"
            f"{hoc_img.shape[0]} px, {n_hoc}.")
