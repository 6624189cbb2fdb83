"""Box windows: what task 1 (and the in-lib ReDO) feed their networks, and how masks go back into images.

A window is the annotated box grown by `window_scale` about its centre (clipped to the image), resized to
size x size; a second channel marks where the box lies in it. A network's window mask is pasted back into
the full image, zero outside the box (`paste_mask`); `PastedMasks` does that lazily for a whole split.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm.auto import tqdm

from ..core.files import atomic_dir, save_png_atomic
from .cub import CubDataset


def window_rect(box: tuple[float, float, float, float], height: int, width: int, scale: float) -> tuple[int, int, int, int]:
    """The box grown by `scale` about its centre, shifted (then clipped) to lie inside the image: x0, y0, w, h."""
    x, y, w, h = box
    ww, wh = min(width, max(2, round(w * scale))), min(height, max(2, round(h * scale)))
    x0 = int(np.clip(round(x + w / 2 - ww / 2), 0, width - ww))
    y0 = int(np.clip(round(y + h / 2 - wh / 2), 0, height - wh))
    return x0, y0, ww, wh


@dataclass
class WindowSet:
    """Box windows of a split, resized to size x size (uint8, kept compact; cast per batch)."""

    windows: torch.Tensor  # n 3 s s uint8
    boxes: torch.Tensor  # n 1 s s uint8 {0, 1}: where the box lies in the window
    rects: np.ndarray  # n 4 int: window x0, y0, w, h in image pixels
    image_boxes: np.ndarray  # n 4 float: the annotated boxes
    image_sizes: np.ndarray  # n 2 int: h, w
    names: list[str]
    gt: list[np.ndarray | None]  # GT masks, evaluation only

    def __len__(self) -> int:
        return len(self.names)


def prepare_windows(dataset: CubDataset, size: int, scale: float, keep_gt: bool = True, progress: bool = True) -> WindowSet:
    windows, boxes, rects, iboxes, sizes, names, gts = [], [], [], [], [], [], []
    for i in tqdm(range(len(dataset)), desc="windows", disable=not progress, leave=False):
        s = dataset[i]
        h, w = s.image.shape[:2]
        x0, y0, ww, wh = window_rect(s.box, h, w, scale)
        crop = cv2.resize(s.image[y0:y0 + wh, x0:x0 + ww], (size, size), interpolation=cv2.INTER_AREA)
        bx, by, bw, bh = s.box
        inside = np.zeros((size, size), np.uint8)
        c0, c1 = int(np.floor((bx - x0) / ww * size)), int(np.ceil((bx + bw - x0) / ww * size))
        r0, r1 = int(np.floor((by - y0) / wh * size)), int(np.ceil((by + bh - y0) / wh * size))
        inside[max(r0, 0):r1, max(c0, 0):c1] = 1
        windows.append(torch.from_numpy(crop).permute(2, 0, 1))
        boxes.append(torch.from_numpy(inside)[None])
        rects.append((x0, y0, ww, wh))
        iboxes.append(s.box)
        sizes.append((h, w))
        names.append(s.name)
        gts.append(s.mask if keep_gt else None)
    return WindowSet(torch.stack(windows), torch.stack(boxes), np.array(rects), np.array(iboxes, float),
                     np.array(sizes), names, gts)


def mask_file(image_name: str) -> str:
    """'001.Kite/kite_0001.jpg' -> '001.Kite/kite_0001.png': masks mirror the images/ folders."""
    return str(Path(image_name).with_suffix(".png"))


def save_masks(folder: Path, names: Sequence[str], masks: Sequence[np.ndarray]) -> None:
    """Masks (bool, or soft in [0, 1]: thresholded at 0.5) as 0/255 PNGs mirroring images/, in an atomic folder
    (a re-run never leaves a mix of old and new masks)."""
    with atomic_dir(folder) as tmp:
        for name, mask in zip(names, masks):
            save_png_atomic(tmp / mask_file(name), ((np.asarray(mask) >= 0.5) * 255).astype(np.uint8))


def paste_mask(prob: np.ndarray, rect: tuple[int, int, int, int], box: tuple[float, ...], image_hw: tuple[int, int]) -> np.ndarray:
    """A window mask (s x s, in [0, 1]) back into the full image; zero outside the box. float32 h w."""
    x0, y0, ww, wh = (int(v) for v in rect)
    full = np.zeros(tuple(int(v) for v in image_hw), np.float32)
    full[y0:y0 + wh, x0:x0 + ww] = cv2.resize(prob.astype(np.float32), (ww, wh), interpolation=cv2.INTER_LINEAR)
    bx, by, bw, bh = box
    inside = np.zeros_like(full, bool)
    inside[int(np.floor(by)):int(np.ceil(by + bh)), int(np.floor(bx)):int(np.ceil(bx + bw))] = True
    return full * inside


class PastedMasks(Sequence):
    """Full-image masks, pasted from the window masks only when asked for (`masks[i]`, iteration).

    Only the small window masks (n x s x s) stay in memory, so a CUB-size test split (5,794 images) does not
    need gigabytes of full-size float masks. `threshold` gives bool masks; `rows` selects images."""

    def __init__(self, probs: np.ndarray, ws: WindowSet, threshold: float | None = None, rows: list[int] | None = None):
        self.probs, self.ws, self.threshold = probs, ws, threshold
        self.rows = list(range(len(probs))) if rows is None else list(rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> np.ndarray:  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]  # type: ignore[return-value]
        k, ws = self.rows[i], self.ws
        full = paste_mask(self.probs[k], ws.rects[k], ws.image_boxes[k], ws.image_sizes[k])
        return full if self.threshold is None else full >= self.threshold

    def where(self, rows: list[int], threshold: float | None = None) -> PastedMasks:
        """The same masks for a subset of images (indices into this sequence), optionally thresholded."""
        return PastedMasks(self.probs, self.ws, self.threshold if threshold is None else threshold,
                           [self.rows[r] for r in rows])
