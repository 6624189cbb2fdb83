"""Applying a trained segmenter to a photo: sliding windows on the rescaled photo, grouping, then back to the
photo's size; and applying a finished run to further photos of the same kind (`segment_with_run`)."""
from __future__ import annotations

import dataclasses
import json
import math
import time
import warnings
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from scipy import ndimage as ndi
from skimage.segmentation import relabel_sequential

from ..core import config as C
from ..core.files import prepare_out_dir, write_json
from ..core.runtime import resolve_device
from ..data.images import DataError, ImageCrops, load_image
from .checks import size_check, size_note
from .config import HOCConfig
from .grouping import (
    join_end_to_end,
    join_round_pieces,
    join_seen_whole,
    split_at_necks,
    split_bimodal_votes,
    split_side_by_side,
)
from .outputs import Failed, finish, write_instances
from .scale import RIM_MARGIN, PhotoStats, is_elongated, photo_stats
from .siseg import InstanceSegmenter, Segmenter, combine, predict_instances


def rescale_for(cfg: HOCConfig, diameter: float, length: float) -> float:
    """The factor that brings a photo's objects to the size the networks work at: a diameter of
    crop / crop_instances px, and elongated objects (rods, grains) further down so their length fits 1.4 of it,
    but no further than a width of `min_width` px (thin side-by-side rods need that many pixels to come apart)."""
    d_target = cfg.crop / cfg.crop_instances
    width = diameter ** 2 / max(length, 1e-6)
    return min(d_target / diameter, max(1.4 * d_target / max(length, 1e-6), cfg.min_width / max(width, 1e-6)))


def measured_size(cfg: HOCConfig, stats: PhotoStats) -> float:
    """The object size (input px) measured on a photo: its estimate, x `estimate_factor` for round objects lying in
    heaps (`scale.HEAPED`): there the estimate runs high, and a size too large merges touching objects
    (docs/method.md, session 33); with `rim_cap`, their diameter read off the heaps' rims (`scale.opened_diameter`)
    where that size exceeds it by more than `scale.RIM_MARGIN` (session 41)."""
    if not stats.round_heap:
        return stats.diameter
    size = stats.diameter * cfg.estimate_factor
    return stats.opened if cfg.rim_cap and 0 < RIM_MARGIN * stats.opened < size else size


def size_for(cfg: HOCConfig, stats: PhotoStats) -> float:
    """The object size (input px) a run works at: `instance_size` when given, else `measured_size`."""
    return float(cfg.instance_size) if cfg.instance_size is not None else measured_size(cfg, stats)


def scaled_geometry(cfg: HOCConfig, stats: PhotoStats, size: float) -> tuple[float, float, float]:
    """(rescale, width, length) for a photo worked at object size `size` (input px): the measured width and length
    scaled with the size, then by the rescale factor (`rescale_for`), in rescaled px."""
    k = size / stats.diameter
    rescale = rescale_for(cfg, size, stats.length * k)
    return rescale, stats.width * k * rescale, stats.length * k * rescale


def fill_instance_holes(labels: np.ndarray) -> np.ndarray:
    """Background enclosed by one instance joins it: instances are compact, and the segmenter's
    foreground head misses dark details inside bright objects (coin reliefs)."""
    out = labels.copy()
    for k, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is not None:
            region = out[sl]
            region[ndi.binary_fill_holes(region == k) & (region == 0)] = k
    return out


RIM_FRAME = 0.25  # instances off the foreground along the photo's edge that together line at least this share of its
# perimeter are a frame, not objects: the segmenter's answer to a vignetted photo's dark rim (development rods 5: 31
# strips lining 0.81 of the rim; one stone cut by the edge and missed by the foreground lines 0.03; docs/method.md,
# session 37)


def drop_rim_frame(labels: np.ndarray, fg: np.ndarray, band: float, share: float = 0.5, rim: float = RIM_FRAME,
                   grow: int = 2) -> tuple[np.ndarray, int]:
    """(labels without a frame along the photo's edge, renumbered 1..n; how many instances were dropped).

    The frame's candidates are instances with at least half their pixels within `band` px of the edge (an object's
    width) and less than `share` of them in the foreground `fg` (H W bool, grown by `grow` px: its rim and the
    instances' upsampled borders need not agree to the pixel). They are dropped only together, when they line at
    least `rim` of the perimeter (each side's positions with a candidate pixel within `band` of it): one object cut
    by the edge that the foreground missed stays."""
    if fg.shape != labels.shape:
        raise ValueError(f"fg: expected shape {labels.shape} (the label map's), got {fg.shape}")
    n, (h, w) = int(labels.max()), labels.shape
    if n == 0:
        return labels, 0
    b = int(min(max(2, round(band)), h // 2, w // 2))
    rows, cols = np.arange(h), np.arange(w)
    near_edge = (np.minimum(rows, h - 1 - rows) < b)[:, None] | (np.minimum(cols, w - 1 - cols) < b)[None, :]
    ids = np.arange(1, n + 1)
    inside = np.nan_to_num(ndi.mean(ndi.binary_dilation(fg, iterations=grow), labels, ids), nan=1.0)
    edgy = np.nan_to_num(ndi.mean(near_edge, labels, ids))
    frame = ids[(inside < share) & (edgy >= 0.5)]
    if len(frame) == 0:
        return labels, 0
    c = np.isin(labels, frame)
    lined = c[:b].any(0).sum() + c[-b:].any(0).sum() + c[:, :b].any(1).sum() + c[:, -b:].any(1).sum()
    if lined < rim * 2 * (h + w):
        return labels, 0
    return relabel_sequential(np.where(c, 0, labels))[0].astype(labels.dtype), len(frame)


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


def _min_size(cfg: HOCConfig) -> int:
    d_px = cfg.crop / cfg.crop_instances  # instance diameter in rescaled px
    return max(8, int(cfg.min_visible * math.pi * (d_px / 2) ** 2))


def anisotropy_for(length: float | None, width: float | None) -> float:
    """The grouping's anisotropy: objects at least 2 widths long are grouped with their aspect ratio (at most 3),
    rounder ones isotropically (group_instances; chosen on the development runs, docs/method.md)."""
    if not is_elongated(length, width):
        return 1.0
    return min(3.0, length / width)


LARGER = "larger"  # a run's second try at a larger size, inside its folder (run._larger_if_cut)
ZOOM_OUT = 0.75  # elongated objects: the photo is grouped a second time at this zoom (join_seen_whole)


def segment_rescaled(seg: Segmenter, image: np.ndarray, cfg: HOCConfig, device: torch.device | str = "cpu",
                     length: float | None = None, bandwidth: float | None = None, *, width: float | None = None):
    """The trained segmenter on the rescaled photo with run_hoc's grouping settings -> (labels, head maps).

    The votes of one object spread with its size, so the grouping bandwidth (rescaled px) is, unless given, a
    fifth of the object's length (`length`; the diameter crop / crop_instances when not given or shorter): on the
    suite's development photos it held touching objects apart and kept long ones whole best (docs/method.md).
    Elongated objects (`length` >= 2 x `width`) are grouped anisotropically (`anisotropy_for`), touching
    pieces that together make one object of their size are joined (`join_end_to_end`), and an instance as wide
    as two objects (or, where a groove runs along it in the photo, 1.6 objects) is cut into objects of their size
    where it can be (`split_side_by_side`); then the photo is grouped again zoomed out by `ZOOM_OUT`, and
    touching pieces that come out as one object there are joined (`join_seen_whole`: rods longer than the
    estimate said). Round objects whose votes form two groups far apart are cut in two (`split_bimodal_votes`),
    and so are those whose boundary crosses a short neck between two parts (`split_at_necks`); touching pieces
    that make one round object of one colour together are joined (`join_round_pieces`: a stone's lit and shaded
    halves)."""
    labels, maps = _group_at(seg, image, cfg, device, length, width, bandwidth, 1.0)
    if is_elongated(length, width):
        h, w = image.shape[:2]
        small = cv2.resize(image, (max(1, round(w * ZOOM_OUT)), max(1, round(h * ZOOM_OUT))),
                           interpolation=cv2.INTER_AREA)
        coarse, _ = _group_at(seg, small, cfg, device, length, width, bandwidth, ZOOM_OUT)
        coarse = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_NEAREST)
        labels = join_seen_whole(labels, coarse, _span(cfg, length), width)
    return labels, maps


def _span(cfg: HOCConfig, length: float | None) -> float:
    """An object's extent in rescaled px: its length, or the diameter crop / crop_instances when longer."""
    d_px = cfg.crop / cfg.crop_instances
    return max(d_px, length or d_px)


def _group_at(seg: Segmenter, image: np.ndarray, cfg: HOCConfig, device: torch.device | str,
              length: float | None, width: float | None, bandwidth: float | None, zoom: float):
    """`segment_rescaled`'s first grouping of `image`, a rescaled photo further zoomed by `zoom` (objects
    `length` x `width` px before the zoom) -> (labels, head maps)."""
    length, width = (length * zoom if length else None), (width * zoom if width else None)
    d_px, min_size = cfg.crop / cfg.crop_instances, max(8, int(_min_size(cfg) * zoom ** 2))
    span, anisotropy = _span(cfg, length), anisotropy_for(length, width)
    labels, maps = predict_instances(seg, image.copy(), tile=cfg.tile, overlap=cfg.tile // 8, device=device,
                                     views=cfg.views, min_size=min_size,
                                     bandwidth=bandwidth * zoom if bandwidth else max(1.5, span / 5),
                                     anisotropy=anisotropy)
    if anisotropy > 1:  # pieces of one long object, end to end, become one (group_instances' anisotropic votes);
        labels = join_end_to_end(labels, span, width)  # objects side by side that came out as one are cut apart
        labels = split_side_by_side(labels, span, width, min_size=min_size, image=image)
    else:  # round objects: an instance whose votes form two groups far apart is cut in two, and so is one
        labels = split_bimodal_votes(labels, maps["offset"], d_px, min_size)  # whose boundary crosses a neck;
        labels = split_at_necks(labels, maps["boundary"], d_px)  # pieces round together, of one colour, are joined
        maps["pieces"] = labels  # (run_hoc's cut check reads the instances before the join: pieces of a size too small)
        labels = join_round_pieces(labels, image)
    return labels, maps


def _at_photo_size(small: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return relabel_sequential(fill_instance_holes(upsample_labels(small, shape)))[0].astype(np.uint16)


def segment_photo(seg: Segmenter, rescaled: np.ndarray, cfg: HOCConfig, shape: tuple[int, int],
                  device: torch.device | str, length: float | None = None, bandwidth: float | None = None, *,
                  width: float | None = None, with_pieces: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Instances of the photo at its own size: segment the rescaled photo, upsample, fill holes, renumber.
    `with_pieces`: (instances, the same before round pieces were joined (`join_round_pieces`)) instead; the
    second is the first itself where no pieces were joined."""
    small, maps = segment_rescaled(seg, rescaled, cfg, device, length, bandwidth, width=width)
    labels = _at_photo_size(small, shape)
    if not with_pieces:
        return labels
    pieces = maps.get("pieces")
    return labels, (labels if pieces is None or np.array_equal(pieces, small) else _at_photo_size(pieces, shape))


def segment_at_scale(seg: Segmenter, cfg: HOCConfig, img: np.ndarray, rescale: float, length: float | None,
                     width: float | None, device: torch.device | str) -> np.ndarray:
    """Instances of `img`, segmented after rescaling it by `rescale` (objects `length` x `width` px there)."""
    return segment_photo(seg, ImageCrops(img, cfg.crop, rescale).image, cfg, img.shape[:2], device, length,
                         width=width)


def segmenter_from_saved(saved: dict[str, Any], cfg: HOCConfig) -> Segmenter:
    """The segmenter of a loaded segmenter.pt: {"state"} (one network) or {"state", "members"} (their mean)."""
    members = []
    for state in [saved["state"], *saved.get("members", [])]:
        seg = InstanceSegmenter(cfg.seg_base, cfg.seg_levels)
        seg.load_state_dict(state)
        members.append(seg)
    return combine(members)


def load_segmenter(out_dir: str | Path, cfg: HOCConfig) -> Segmenter:
    """The instance segmenter run_hoc trained (out_dir/segmenter.pt)."""
    path = Path(out_dir) / "segmenter.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; run hoc.run_hoc into {out_dir} first")
    return segmenter_from_saved(torch.load(path, map_location="cpu", weights_only=True), cfg)


def load_hoc_run(run_dir: str | Path) -> tuple[HOCConfig, dict[str, Any], Segmenter]:
    """(config, run.json, segmenter) of a finished run_hoc folder (of its `larger` folder where the run kept that
    one; run.json then gains "size_factor", the kept size over the estimate); FileNotFoundError names what is
    missing."""
    run_dir = Path(run_dir)
    if not (run_dir / "run.json").is_file():
        raise FileNotFoundError(f"{run_dir / 'run.json'}: missing; --run must be a folder run_hoc wrote")
    info = json.loads((run_dir / "run.json").read_text())
    if info.get("larger"):  # the run kept its second try, at a larger size than the photo's estimate (run_hoc)
        cfg, kept, seg = load_hoc_run(run_dir / LARGER)
        return cfg, {**kept, "size_factor": kept["instance_size"] / info["instance_size"]}, seg
    cfg = C.from_dict(HOCConfig, info["config"])
    return cfg, info, load_segmenter(run_dir, cfg)


def _stats_or_none(img: np.ndarray) -> PhotoStats | None:
    """The photo's measurements, or None where nothing stands out in it (then no rim frame is looked for)."""
    try:
        return photo_stats(img)
    except DataError:
        return None


def segment_with_run(run_dir: str | Path, image: str | Path | np.ndarray, out_dir: str | Path, *,
                     same_scale: bool = False, device: str = "auto", views: int | None = None) -> dict[str, Any]:
    """A finished run's segmenter on another photo of the same kind: instances.png, overlay.png, metrics.json
    (with a status, as run_hoc). The photo is rescaled so that its objects (measured on it) have the size the
    segmenter was trained at; `same_scale` keeps the run's rescale factor instead (same magnification). `views`
    overrides the run's test-time views (1, 2, 4 or 8). A frame of instances along the photo's rim, outside its
    foreground, is dropped (`drop_rim_frame`; metrics.json's "rim_frame_dropped")."""
    t0 = time.perf_counter()
    cfg, info, seg = load_hoc_run(run_dir)
    if views is not None:
        cfg = dataclasses.replace(cfg, views=views)  # HOCConfig checks the value
    out_dir, dev = prepare_out_dir(out_dir), resolve_device(device)
    img = load_image(image) if isinstance(image, (str, Path)) else np.asarray(image)
    (out_dir / "metrics.json").unlink(missing_ok=True)
    facts: dict[str, Any] = {"run": str(Path(run_dir).resolve()), "profile": cfg.profile, "device": str(dev),
                             "image": str(Path(image).resolve()) if isinstance(image, (str, Path)) else "array",
                             "views": cfg.views}
    try:
        if same_scale:
            size, rescale, length, width = info["instance_size"], info["rescale"], info.get("length"), info.get("width")
            stats = _stats_or_none(img)
        else:
            try:
                stats = photo_stats(img)
            except DataError as err:
                raise Failed(str(err), "pass same_scale=True (--same-scale) if the photo has the run's magnification") from err
            # measured as run_hoc measures a photo (the run's own given size is for its own photo), x a kept larger try
            size = measured_size(cfg, stats) * info.get("size_factor", 1.0)
            rescale, width, length = scaled_geometry(cfg, stats, size)
        facts.update(instance_size=size, rescale=rescale)
        labels = segment_at_scale(seg, cfg, img, rescale, length, width, dev)
        if stats is not None:
            labels, facts["rim_frame_dropped"] = drop_rim_frame(labels, stats.fg, stats.width)
            facts["size_check"] = size_check(labels, stats, is_elongated(length, width))
            if note := size_note(facts["size_check"], size):
                facts["warnings"] = [note]
                warnings.warn(note, RuntimeWarning, stacklevel=2)
        status = write_instances(out_dir, img, labels)
    except Failed as failure:
        labels, status = None, failure.as_status()
    metrics = finish(facts, status, labels, None, img, time.perf_counter() - t0)
    write_json(out_dir / "metrics.json", metrics)
    return metrics
