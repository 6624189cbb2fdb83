"""A task-1 run's headline, computed from its metrics.json (notebook 02 opens with it; the report uses it)."""
from __future__ import annotations

from typing import Any

ROWS = (("GAN (EMA provider)", None), ("+ GrabCut refinement", "refined_grabcut"),
        ("self-trained (one forward pass)", "self_trained"), ("self-trained + GrabCut (last stage)", "self_trained_grabcut"),
        ("GrabCut from the box (classical)", "grabcut_box"),
        ("the colour cue alone (no learning; what the provider starts from)", "colour_cue_box"))


def stage_iou(metrics: dict[str, Any], key: str | None) -> float | None:
    """Test IoU (per-image mean) of a stage: None = the GAN's (top level), else metrics[key]["iou_mean"]."""
    row = metrics if key is None else metrics.get(key)
    return row.get("iou_mean") if isinstance(row, dict) else None


def summary_markdown(metrics: dict[str, Any]) -> str:
    """Markdown: every stage's test IoU beside GrabCut from the box and the whole box, with time and machine."""
    if "iou_mean" not in metrics:
        return f"**{metrics.get('n_images')} test images without GT masks**: masks written, nothing to score."
    gc = stage_iou(metrics, "grabcut_box")
    lines = ["| stage | test IoU (per-image mean) | vs GrabCut from the box |", "|---|---|---|"]
    for name, key in ROWS:
        v = stage_iou(metrics, key)
        if v is not None:
            lines.append(f"| {name} | {v:.3f} | {'' if gc is None or key == 'grabcut_box' else f'{v - gc:+.3f}'} |")
    lines.append(f"| whole box (trivial) | {metrics.get('whole_box_iou_mean', float('nan')):.3f} | |")
    prov = metrics.get("provenance") or {}
    head = (f"**{metrics['dataset']}**, {metrics['n_images']} test images, `{metrics['profile']}` profile, seed "
            f"{metrics.get('seed', '?')}, {metrics.get('restarts', 0)} restart(s); {metrics.get('seconds', 0):.0f} s end to "
            f"end on {prov.get('hardware', metrics.get('device'))}.")
    if "val" in metrics:
        head += f" Validation split ({metrics['val'].get('n_images')} train images held out): last stage " \
                f"{metrics['val'].get('self_trained_grabcut') or metrics['val'].get('gan'):.3f}."
    return head + "\n\n" + "\n".join(lines)
