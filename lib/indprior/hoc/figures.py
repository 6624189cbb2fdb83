"""Task 2's own figures and summary: what the photo shows (foreground, centres, plate), and a run's headline."""
from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ..viz import mask_grid, overlay_mask
from .config import HOCConfig
from .cutouts import candidates, plate
from .scale import photo_stats


def scale_figure(img: np.ndarray, cfg: HOCConfig | None = None) -> Figure:
    """Photo | foreground | centres with discs of the measured width | plate | the inverted photo's foreground."""
    st, inv = photo_stats(img), photo_stats(255 - img)
    width = float(cfg.instance_size) * st.width / st.diameter if cfg is not None and cfg.instance_size else st.width
    pts = candidates(st.fg, width, st.length * width / st.width)
    yy, xx = np.mgrid[: img.shape[0], : img.shape[1]]
    discs = np.zeros(img.shape[:2], bool)
    for y, x in pts:
        discs |= (yy - y) ** 2 + (xx - x) ** 2 <= (width / 2) ** 2
    panels = [img, overlay_mask(img, st.fg, alpha=0.4), overlay_mask(img, discs, color=(255, 220, 0), alpha=0.3),
              plate(img, st.fg, 0.15 * width), overlay_mask(255 - img, inv.fg, alpha=0.4)]
    titles = ["photo", f"foreground {st.fg_frac:.0%}", f"{len(pts)} centres, width {width:.0f} px", "plate",
              f"inverted: IoU {(st.fg & inv.fg).sum() / max((st.fg | inv.fg).sum(), 1):.3f}"]
    return mask_grid(panels, np.zeros((5, *img.shape[:2])), titles=titles, ncols=5)


def _size_note(metrics: dict[str, Any]) -> str:
    first = (metrics.get("sizes_tried") or [{}])[0]
    if first and first["instance_size"] != metrics["instance_size"]:  # run_hoc kept its second, larger try
        return (f" (a second try: at {first['instance_size']:.1f} px the instances looked like pieces of "
                f"objects, {first['instance_axis_ratio']:.2f} times as long as wide)")
    size, measured = metrics["instance_size"], metrics["instance_size_estimated"]
    if metrics.get("instance_size_given", abs(size - measured) > 1e-6):  # runs before session 33 had no factor
        return f" (given; measured {measured:.1f})"
    if metrics.get("instance_size_opened") == size:  # the rim cap (session 41)
        return f" (read off the heaps' rims; the measured {measured:.1f} px runs high where objects touch)"
    if abs(size - measured) > 1e-6:
        return f" ({size / measured:.2g} x the measured {measured:.1f} px, which runs high where objects touch)"
    return " (measured)"


def summary_markdown(metrics: dict[str, Any]) -> str:
    """A run's headline in markdown, computed from its metrics.json: status, scores beside the baseline, time,
    and the run's warnings."""
    if metrics.get("status") != "ok":
        return (f"**Status: failed.** {metrics.get('reason')}  \n**Advice:** {metrics.get('advice')}")
    ws = metrics.get("baseline_watershed", {})
    lines = [f"**Status: ok.** {metrics['count_pred']} instances in {metrics['seconds']:.0f} s "
             f"({metrics['profile']} profile, {metrics['provider']} provider, seed {metrics['seed']}, device "
             f"{metrics['device']}); object size {metrics['instance_size']:.1f} px" + _size_note(metrics) + "."]
    if "f1" in metrics:
        lines.append(f"Against the GT ({metrics['count_gt']} instances): **F1 {metrics['f1']:.3f}**, AP50 "
                     f"{metrics['ap50']:.3f}, AP@[.5:.95] {metrics['ap']:.3f}, count error {metrics['count_error']:+d}; "
                     f"Otsu + watershed: F1 {ws.get('f1', float('nan')):.3f}, AP50 {ws.get('ap50', float('nan')):.3f}, "
                     f"count error {ws.get('count_error', 0):+d}.")
    if "appearance_match" in metrics:
        lines.append(f"Colours of the generated instances vs the photo's objects: histogram intersection "
                     f"{metrics['appearance_match']:.2f} (1 = the same distribution).")
    lines += [f"**Warning:** {note}" for note in metrics.get("warnings", [])]
    return "  \n".join(lines)
