"""Task 1 inference: a provider's soft masks for every box window of a split, pasted back into the images;
and rebuilding a finished run from its checkpoint."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..core import config as C
from ..core.runtime import autocast_enabled
from ..core.trainer import CHECKPOINT, load_checkpoint
from ..data.images import to_float
from ..data.windows import PastedMasks, WindowSet
from ..metrics import foreground_scores
from ..models import colour_cue
from .config import VIEW_SCALES, VIEWS, Task1Config
from .method import IndependencePriorTask1


def _zoomed(x: torch.Tensor, scale: float, padding: str = "reflection") -> torch.Tensor:
    """x (b c s s) seen through a window `scale` x its side about its centre (< 1: zoomed in)."""
    theta = torch.tensor([[scale, 0.0, 0.0], [0.0, scale, 0.0]], device=x.device).expand(len(x), 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x.float(), grid, padding_mode=padding, align_corners=False)


def _view_masks(provider: torch.nn.Module, win: torch.Tensor, box: torch.Tensor, views: int) -> torch.Tensor:
    """The provider's masks (b 1 s s, float32) of windows `win` (b 3 s s) with boxes `box`, averaged over
    `views` (Task1Config.views): each view's mask is mapped back onto the window; where a zoomed-out view does
    not reach, the others decide."""
    if views == 1:
        return provider(win, box)[1].float()
    acc, seen = torch.zeros_like(box, dtype=torch.float32), torch.zeros_like(box, dtype=torch.float32)
    for scale in VIEW_SCALES[views]:
        w, b = (win, box) if scale == 1 else (_zoomed(win, scale), (_zoomed(box, scale, padding="zeros") > 0.5).float())
        pair = provider(w, b)[1].float() + provider(w.flip(-1), b.flip(-1))[1].float().flip(-1)  # the view + its mirror
        if scale == 1:
            acc, seen = acc + pair, seen + 2
        else:  # back onto the window (the zoom is linear, so the pair at once): zero where this view did not look
            acc = acc + _zoomed(pair, 1 / scale, padding="zeros")
            seen = seen + 2 * _zoomed(torch.ones_like(pair[:1]), 1 / scale, padding="zeros")  # the same for each window
    return acc / seen.clamp_min(1e-6)


class ColourCueAlone(torch.nn.Module):
    """A baseline with no learning, called like a provider: the mask is `models.colour_cue` of the window over
    `threshold`. 0.8 was the best of 0.5-0.9 on the development draw's validation split (docs/method.md, session
    27). It shows what the colour statistics alone give, beside the provider that starts from them."""

    THRESHOLD = 0.8

    def __init__(self, levels: int = 8, threshold: float = THRESHOLD):
        super().__init__()
        self.levels, self.threshold = levels, threshold

    def forward(self, window: torch.Tensor, box: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return window, (colour_cue(window, box, self.levels) > self.threshold).float() * box


@torch.no_grad()
def predict_window_masks(provider: torch.nn.Module, ws: WindowSet, device: torch.device, batch_size: int = 64,
                         bf16: bool = False, views: int = 1) -> torch.Tensor:
    """Soft masks of all windows (n 1 s s, float32 on the CPU). `bf16`: autocast (CUDA, or a CPU with native
    bf16; about 2x faster on an AMX CPU, masks agree on >99% of pixels - the evaluation uses fp32). `views`: 1
    the window alone; 2 the mean of the window's mask and the mirrored mask of its mirror image (left-right),
    so it does not depend on which way the object faces; 10 those two at 5 zooms, 0.8-1.2 x the window."""
    if views not in VIEWS:
        raise ValueError(f"predict_window_masks: views={views}; expected one of {VIEWS}")
    provider.eval()
    out = []
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16 and autocast_enabled(device, True, True)):
        for s in range(0, len(ws), batch_size):
            win = to_float(ws.windows[s:s + batch_size].to(device))
            box = ws.boxes[s:s + batch_size].to(device).float()
            out.append(_view_masks(provider, win, box, views).cpu())
    return torch.cat(out) if out else torch.zeros(0, 1, 1, 1)  # n 1 s s


def full_masks(provider: torch.nn.Module, ws: WindowSet, device: torch.device, views: int = 1) -> PastedMasks:
    """Soft masks (float32, in [0, 1], zero outside the box) at each test image's full size, pasted lazily;
    `views` as in `predict_window_masks`."""
    return PastedMasks(predict_window_masks(provider, ws, device, views=views)[:, 0].numpy(), ws)


def evaluate(provider: torch.nn.Module, ws: WindowSet, device: torch.device, threshold: float = 0.5,
             views: int = 1) -> dict[str, Any]:
    """Foreground scores of thresholded masks against GT (images without GT are skipped)."""
    rows = [i for i, g in enumerate(ws.gt) if g is not None]
    if not rows:
        return {"n_images": 0}
    return foreground_scores(full_masks(provider, ws, device, views).where(rows, threshold), [ws.gt[i] for i in rows])


def load_run(out_dir: str | Path, device: str | torch.device = "cpu") -> tuple[Task1Config, IndependencePriorTask1]:
    """Rebuild the method of a finished (or interrupted) run from its checkpoint; the config is inside."""
    path = Path(out_dir) / CHECKPOINT
    state = load_checkpoint(path)
    cfg = C.from_dict(Task1Config, state["config"])
    method = IndependencePriorTask1(cfg, torch.device(device))
    load_checkpoint(path, method, map_location=device)
    return cfg, method
