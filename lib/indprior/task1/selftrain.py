"""Task 1's optional second stage (ours, NOT in the paper): self-training on GrabCut pseudo-labels.

The GAN's provider is good at *where* the object is and poor at its exact extent (docs/method.md: masks
settle at the area hinge, parts get cut). GrabCut started from its soft masks on the **training** images
(boxes only, no GT anywhere) gives better masks; a copy of the provider trained on them with binary
cross-entropy (plus horizontal flips) learns the correction and applies it to new images in one forward pass.
It is the classical self-training / distillation step of weakly supervised segmentation. The student sees
each window under a random pose and colour jitter (`augment`, as a "noisy student"): 180 windows are few.
It runs `self_train_rounds` times (task1/run.py): each round's labels are GrabCut from the last round's student.
The student fits its labels (IoU 0.95 on its own training windows) far better than it does new images: it
learns the training images' backgrounds as well as the objects. So its windows (a chance `paste`, by default
every one) show the pseudo-labelled object alpha-blended onto a background patch of another image (the GAN's
background bank): copy-paste augmentation, the composition module's own operation, applied to the student's data.
Reported as its own rows; `self_train_steps=0` turns it off. What it gained is in docs/method.md.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..baselines import grabcut_refine, map_threads
from ..data.cub import Sample
from ..data.images import to_float
from ..losses import colour_jitter
from ..models import pose_to_theta


def window_target(full_mask: np.ndarray, rect: tuple[int, int, int, int], size: int) -> np.ndarray:
    """A full-image mask cut to its window and resized like the window's pixels: size x size float32 in [0, 1]."""
    x0, y0, w, h = (int(v) for v in rect)
    crop = np.ascontiguousarray(full_mask[y0:y0 + h, x0:x0 + w], dtype=np.float32)
    if crop.shape != (h, w) or h < 1 or w < 1:
        raise ValueError(f"window {rect} does not lie inside a mask of shape {full_mask.shape}")
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_LINEAR)


def pseudo_labels(full_probs: Sequence[np.ndarray], dataset: Sequence[Sample], rects: Sequence[tuple[int, ...]],
                  boxes: Sequence[tuple[float, ...]], size: int, progress: bool = False) -> torch.Tensor:
    """GrabCut from each soft mask on its own image, cut back to the window: n 1 size size float32 targets.

    full_probs[i]: image i's soft mask (full size); dataset[i].image is loaded one at a time (CUB's train split
    would not fit in memory at once)."""
    if not len(full_probs) == len(dataset) == len(rects) == len(boxes):
        raise ValueError(f"pseudo_labels: {len(full_probs)} masks, {len(dataset)} images, {len(rects)} windows and "
                         f"{len(boxes)} boxes; expected one of each per training image")
    out = map_threads(lambda i: window_target(grabcut_refine(dataset[i].image, tuple(boxes[i]), full_probs[i]),
                                              rects[i], size), len(dataset), desc="pseudo-labels", progress=progress)
    return torch.from_numpy(np.stack(out))[:, None] if out else torch.zeros(0, 1, size, size)


def augment(x: torch.Tensor, box: torch.Tensor, target: torch.Tensor, gen: torch.Generator,
            color: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One random pose per window (flip, scale 0.9-1.1, rotation +-10 deg, shift +-10%), applied alike to the
    window (reflected at its border), its box and its target (zero outside), plus brightness / saturation /
    contrast jitter of the window alone. x: b 3 s s in [-1, 1]; box, target: b 1 s s in [0, 1]. Random numbers
    come from `gen` (CPU), so a run is reproducible on any device."""
    b = x.shape[0]
    u = lambda lo, hi: (torch.rand(b, generator=gen) * (hi - lo) + lo).to(x.device)  # noqa: E731
    pose = {"scale": u(0.9, 1.1), "rotation": u(-10, 10) * (math.pi / 180), "tx": u(-0.1, 0.1), "ty": u(-0.1, 0.1),
            "flip": torch.where(u(0, 1) < 0.5, -1.0, 1.0)}
    grid = F.affine_grid(pose_to_theta(pose).to(x.dtype), list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, padding_mode="reflection", align_corners=False)
    box = (F.grid_sample(box, grid, align_corners=False) > 0.5).to(box.dtype)
    target = F.grid_sample(target, grid, align_corners=False)
    if color:
        x = colour_jitter(x, *(u(0, 1)[:, None, None, None] for _ in range(3)))
    return x, box, target


def paste_onto(x: torch.Tensor, target: torch.Tensor, backgrounds: torch.Tensor, p: float,
               gen: torch.Generator) -> torch.Tensor:
    """Each window of `x` (b 3 s s in [-1, 1]) with chance `p` becomes its object on another background:
    target * x + (1 - target) * patch, the patch drawn from `backgrounds` (n 3 s s, uint8 or float in [-1, 1]) and
    mirrored half the time. The target stays the target: the object is where it was. Random numbers from `gen`."""
    b = x.shape[0]
    pick = torch.randint(0, len(backgrounds), (b,), generator=gen).to(backgrounds.device)
    mirror = (torch.rand(b, generator=gen) < 0.5).to(x.device)[:, None, None, None]
    use = (torch.rand(b, generator=gen) < p).to(x.device)[:, None, None, None]
    bg = backgrounds[pick]
    bg = (to_float(bg) if bg.dtype == torch.uint8 else bg).to(x.device, x.dtype)
    bg = torch.where(mirror, bg.flip(-1), bg)
    return torch.where(use, target * x + (1 - target) * bg, x)


def self_train(provider: torch.nn.Module, windows: torch.Tensor, boxes: torch.Tensor, targets: torch.Tensor, *,
               steps: int, lr: float = 1e-4, batch_size: int = 16, seed: int = 0, device: torch.device | str = "cpu",
               augmented: bool = True, bf16: bool = False, backgrounds: torch.Tensor | None = None,
               paste: float = 0.0, progress: bool = False) -> torch.nn.Module:
    """A copy of `provider` trained `steps` Adam steps on (window, box) -> target with BCE; returns it in eval mode.

    windows: n 3 s s, uint8 (cast per batch, as in training) or float in [-1, 1]; boxes, targets: n 1 s s in
    [0, 1]. augmented: `augment` each batch (else horizontal flips on every other step). bf16: the forward pass
    under bf16 autocast, as the GAN's (Task1Config.amp / amp_cpu): 1.8x faster on an AMX CPU, with the same
    validation IoU to 0.001 on a development run; the loss stays fp32. paste: the chance that a window shows its
    object on a patch of `backgrounds` instead (`paste_onto`, before the pose); 0 draws no random numbers for it,
    so a run without it is the same as before it existed. The provider is left untouched.
    """
    n = len(windows)
    if not n == len(boxes) == len(targets):
        raise ValueError(f"self_train: {n} windows, {len(boxes)} boxes, {len(targets)} targets; expected equal counts")
    if n == 0 or steps < 0 or batch_size < 1:
        raise ValueError(f"self_train: needs windows (got {n}), steps >= 0 (got {steps}), batch_size >= 1 (got {batch_size})")
    if not 0 <= paste <= 1:
        raise ValueError(f"self_train: paste={paste}; expected a chance in [0, 1]")
    if paste > 0 and (backgrounds is None or len(backgrounds) == 0 or backgrounds.shape[1:] != windows.shape[1:]):
        got = "none" if backgrounds is None else f"shape {tuple(backgrounds.shape)}"
        raise ValueError(f"self_train: paste={paste} needs background patches shaped like the windows "
                         f"(n {' '.join(map(str, windows.shape[1:]))}); got {got}")
    device = torch.device(device)
    student = copy.deepcopy(provider).to(device).train().requires_grad_(True)
    opt = torch.optim.Adam(student.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    data = [t.to(device) for t in (windows, boxes, targets)]
    bank = backgrounds.to(device) if paste > 0 and backgrounds is not None else None
    for step in tqdm(range(steps), desc="self-training", disable=not progress, leave=False):
        idx = torch.randint(0, n, (min(batch_size, n),), generator=gen).to(device)
        x, b, y = (t[idx] for t in data)
        x, b = (to_float(x) if x.dtype == torch.uint8 else x), b.float()
        if paste > 0:
            x = paste_onto(x, y, bank, paste, gen)
        if augmented:
            x, b, y = augment(x, b, y, gen)
        elif step % 2:  # horizontal flips: the mask of a mirrored window is the mirrored mask
            x, b, y = x.flip(-1), b.flip(-1), y.flip(-1)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            mask = student(x, b)[1].float()
        loss = F.binary_cross_entropy(mask.clamp(1e-4, 1 - 1e-4), y.clamp(0, 1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return student.eval().requires_grad_(False)
