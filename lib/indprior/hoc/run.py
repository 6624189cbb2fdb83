"""Task 2 end to end on ONE photo: scale -> GAN on its crops -> segmenter on the GAN's composites -> instances.

`run_hoc` is a sequence of named stages (`measure_scale`, `train_gan`, `train_segmenter_on_composites`,
`segment_photo`), each resumable from the files it leaves in `out_dir`. Outputs: instances.png (uint16, the
photo's size, 0 = background), overlay.png, metrics.json (written last: it marks complete outputs),
segmenter.pt, segmenter_log.jsonl and gan/ (checkpoint, log, samples). The Otsu + watershed baseline runs on
the same photo at its original size and sits beside the method in metrics.json.
"""
from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from scipy import ndimage as ndi
from skimage.segmentation import relabel_sequential

from ..baselines import otsu_watershed
from ..core import config as C
from ..core.files import atomic_write_bytes, prepare_out_dir, write_json, write_jsonl
from ..core.runtime import resolve_device, seed_everything
from ..core.trainer import Trainer
from ..data.images import DataError, ImageCrops, check_rgb, load_image, load_label_map, save_png_atomic, to_uint8
from ..metrics import instance_scores
from ..viz import overlay_instances
from .config import HOCConfig
from .method import HOCGAN, composite_batches
from .scale import cluster_stats
from .siseg import InstanceSegmenter, predict_instances, train_segmenter


# ----------------------------------------------------------------------------- post-processing
def fill_instance_holes(labels: np.ndarray) -> np.ndarray:
    """Background enclosed by one instance joins it: instances are compact, and the segmenter's
    foreground head misses dark details inside bright objects (coin reliefs)."""
    out = labels.copy()
    for k, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is not None:
            region = out[sl]
            region[ndi.binary_fill_holes(region == k) & (region == 0)] = k
    return out


def upsample_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Label map to (h, w) with smooth borders: each instance's mask is resized bilinearly and the
    highest one above 0.5 wins (nearest-neighbour resizing leaves 1/rescale-pixel staircases)."""
    h, w = size
    if labels.max() == 0 or int(labels.max()) * h * w > 5e8:  # too many instances x pixels: nearest
        return cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)
    best, out = np.full((h, w), 0.5, np.float32), np.zeros((h, w), labels.dtype)
    for k in np.unique(labels[labels > 0]):
        p = cv2.resize((labels == k).astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
        win = p > best
        out[win], best[win] = k, p[win]
    return out


# ----------------------------------------------------------------------------- inputs
def _photo(image: str | Path | np.ndarray) -> np.ndarray:
    if isinstance(image, (str, Path)):
        return load_image(image)
    return check_rgb(image, "image (array)")


def _gt(gt: str | Path | np.ndarray | None, shape: tuple[int, int]) -> np.ndarray | None:
    if gt is None:
        return None
    if isinstance(gt, (str, Path)):
        return load_label_map(gt, expected_shape=shape)  # DataError names the file and both sizes
    arr = np.asarray(gt)
    if arr.ndim != 2 or arr.shape != tuple(shape) or not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"gt_instances (array): label map is {arr.dtype} {arr.shape}, expected an integer "
                        f"{shape[0]}x{shape[1]} (HxW) map to match the image")
    return arr.astype(np.uint16)


def _scores(pred: np.ndarray, gt: np.ndarray | None, seconds: float) -> dict[str, Any]:
    row: dict[str, Any] = {"count_pred": int(len(np.unique(pred[pred > 0]))), "seconds": round(seconds, 1)}
    if gt is not None:
        s = instance_scores(pred, gt)
        row.update({k: s[k] for k in ("count_gt", "ap50", "ap", "miou_matched")})
    return row


# ----------------------------------------------------------------------------- stages
@dataclass
class Scale:
    """How run_hoc sees a photo: its cluster statistics, the instance size used (given or estimated, input px),
    the rescale factor (one crop spans `crop_instances` sizes) and the crops of the rescaled photo."""

    stats: dict[str, float]
    size: float
    rescale: float
    crops: ImageCrops


def measure_scale(cfg: HOCConfig, img: np.ndarray) -> Scale:
    """The photo's `Scale`. DataError when the rescaled photo is smaller than a crop."""
    stats = cluster_stats(img)
    size = float(cfg.instance_size or stats["diameter"])
    rescale = cfg.crop / cfg.crop_instances / size
    return Scale(stats, size, rescale, ImageCrops(img, cfg.crop, rescale))


def _sampler(gan: HOCGAN) -> Callable[[int, Path], None]:
    def save(step: int, out_dir: Path) -> None:  # 8 composites; below them, their label outlines
        out = gan.generate(8)
        ims = [to_uint8(im) for im in out["image"].cpu()]
        labs = out["labels"].cpu().numpy()
        tiles = [overlay_instances(im, lab, alpha=0.0) for im, lab in zip(ims, labs)]
        grid = np.concatenate([np.concatenate(ims, 1), np.concatenate(tiles, 1)])  # 2s 8s 3
        save_png_atomic(out_dir / f"samples_{step:06d}.png", grid)
    return save


def train_gan(cfg: HOCConfig, crops: ImageCrops, stats: dict[str, float], run_cfg: dict[str, Any], out_dir: Path,
              device: torch.device, resume: bool, progress: bool) -> tuple[HOCGAN, int]:
    """The GAN on crops of the photo, in out_dir/gan (resumed from its checkpoint). Returns it and its step."""
    gan = HOCGAN(cfg, device, fg_frac=stats["fg_frac"])

    def batches(step: int) -> torch.Tensor:  # seeded by step: a resumed run sees the same crops
        return torch.from_numpy(crops.sample(cfg.batch_size, np.random.default_rng([cfg.seed, step]))).to(device)

    trainer = Trainer(gan, out_dir / "gan", run_cfg, log_every=cfg.log_every, ckpt_every=cfg.ckpt_every,
                      sample_every=cfg.sample_every, sample_fn=_sampler(gan), progress=progress,
                      may_change=HOCConfig.RESUME_MAY_CHANGE)
    trainer.fit(batches, cfg.gan_steps, resume=resume)
    fg_gen = float((gan.generate(64)["labels"] > 0).float().mean())
    if cfg.gan_steps >= 200 and fg_gen < 0.05:  # a few smoke steps draw nothing yet, by design
        warnings.warn(f"HOC generator draws almost no instances (foreground {fg_gen:.3f}): mask collapse; "
                      "try another seed", RuntimeWarning, stacklevel=2)
    return gan, trainer.step


def train_segmenter_on_composites(cfg: HOCConfig, gan: HOCGAN, gan_step: int, out_dir: Path, device: torch.device,
                                  resume: bool, progress: bool) -> InstanceSegmenter:
    """The SISeg segmenter trained on the GAN's labelled composites (out_dir/segmenter.pt); a saved one is
    reused only when it was made from this very generator step and architecture."""
    seg = InstanceSegmenter(cfg.seg_base, cfg.seg_levels)
    seg_path = out_dir / "segmenter.pt"
    made_from = {"gan_step": gan_step, "seg_steps": cfg.seg_steps, "seg_base": cfg.seg_base, "seg_levels": cfg.seg_levels}
    saved = torch.load(seg_path, map_location="cpu", weights_only=True) if resume and seg_path.is_file() else None
    if saved is not None and saved.get("made_from") == made_from:
        seg.load_state_dict(saved["state"])
        return seg
    torch.manual_seed(cfg.seed)
    hist = train_segmenter(seg, composite_batches(gan, cfg.seg_batch), cfg.seg_steps, cfg.seg_batch,
                           cfg.seg_lr, device, progress)
    atomic_write_bytes(seg_path, lambda f: torch.save({"state": seg.state_dict(), "made_from": made_from}, f))
    write_jsonl(out_dir / "segmenter_log.jsonl", hist)
    return seg


def segment_rescaled(seg: InstanceSegmenter, image: np.ndarray, cfg: HOCConfig, device: torch.device | str = "cpu"):
    """The trained segmenter on the rescaled photo with run_hoc's grouping settings -> (labels, head maps)."""
    d_px = cfg.crop / cfg.crop_instances  # instance diameter in rescaled px
    return predict_instances(seg, image.copy(), tile=cfg.tile, overlap=cfg.tile // 8, device=device,
                             min_size=max(8, int(cfg.min_visible * math.pi * (d_px / 2) ** 2)),
                             bandwidth=max(1.5, d_px / 10))


def segment_photo(seg: InstanceSegmenter, crops: ImageCrops, cfg: HOCConfig, shape: tuple[int, int],
                  device: torch.device) -> np.ndarray:
    """Instances of the photo at its own size: segment the rescaled photo, upsample, fill holes, renumber."""
    small, _ = segment_rescaled(seg, crops.image, cfg, device)
    return relabel_sequential(fill_instance_holes(upsample_labels(small, shape)))[0].astype(np.uint16)


def load_segmenter(out_dir: str | Path, cfg: HOCConfig) -> InstanceSegmenter:
    """The instance segmenter run_hoc trained (out_dir/segmenter.pt)."""
    path = Path(out_dir) / "segmenter.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; run hoc.run_hoc into {out_dir} first")
    seg = InstanceSegmenter(cfg.seg_base, cfg.seg_levels)
    seg.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["state"])
    return seg


# ----------------------------------------------------------------------------- the whole experiment
def run_hoc(cfg: HOCConfig, image: str | Path | np.ndarray, out_dir: str | Path,
            gt_instances: str | Path | np.ndarray | None = None, *, resume: bool = True,
            progress: bool = True) -> dict[str, Any]:
    """GAN on crops of ONE image -> segmenter on its composites -> instances.png / overlay.png / metrics.json.

    The GT (optional) is read first, so a bad file fails before any training; it is used for the metrics
    only. The watershed baseline runs on the same image at its original size.
    """
    t0 = time.perf_counter()
    out_dir = prepare_out_dir(out_dir)
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    img = _photo(image)
    gt = _gt(gt_instances, img.shape[:2])
    sc = measure_scale(cfg, img)
    run_cfg = {**C.to_dict(cfg), "instance_size_used": sc.size, "rescale": sc.rescale}
    gan, gan_step = train_gan(cfg, sc.crops, sc.stats, run_cfg, out_dir, device, resume, progress)
    t_gan = time.perf_counter() - t0
    seg = train_segmenter_on_composites(cfg, gan, gan_step, out_dir, device, resume, progress)
    (out_dir / "metrics.json").unlink(missing_ok=True)  # metrics.json is written last: it marks complete outputs
    labels = segment_photo(seg, sc.crops, cfg, img.shape[:2], device)
    save_png_atomic(out_dir / "instances.png", labels)
    save_png_atomic(out_dir / "overlay.png", overlay_instances(img, labels, alpha=0.45))
    seconds = time.perf_counter() - t0
    tb = time.perf_counter()
    base = otsu_watershed(img)
    metrics: dict[str, Any] = {"task": "hoc", **_scores(labels, gt, seconds), "instance_size": sc.size,
                               "image": str(Path(image).resolve()) if isinstance(image, (str, Path)) else None,
                               "gt": str(Path(gt_instances).resolve()) if isinstance(gt_instances, (str, Path)) else None,
                               "instance_size_estimated": sc.stats["diameter"], "rescale": sc.rescale,
                               "profile": cfg.profile, "device": str(device), "gan_steps": cfg.gan_steps,
                               "seg_steps": cfg.seg_steps, "gan_seconds": round(t_gan, 1),
                               "baseline_watershed": _scores(base, gt, time.perf_counter() - tb)}
    write_json(out_dir / "metrics.json", metrics)
    return metrics
