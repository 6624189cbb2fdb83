"""Figures for masks, instances, providers, composites and training logs (base, figures, instances).

Why these choices:
- Every plotting function builds a `matplotlib.figure.Figure` directly and returns it. Nothing goes
  through pyplot, so notebooks and tests never accumulate open figures (no memory leak, no "more than
  20 figures" warning) and a figure is shown only where the caller puts it.
- Inputs are numpy arrays or torch tensors. Float images follow the project convention ([-1, 1],
  CxHxW or HxWxC, converted by `data.to_uint8`); uint8 images are taken as they are.
- Overlays return uint8 arrays, not figures, so they can be saved as PNGs or tiled anywhere.
- Instance colours come from golden-ratio hue steps: consecutive labels (usually neighbours in a
  composite) land ~0.38 of the hue circle apart, whatever the number of instances.
"""
from .base import DPI, GT_COLOR, instance_colors, label_rgb, overlay_instances, overlay_mask, save_figure
from .figures import (
                      composite_figure,
                      iou_histogram,
                      mask_grid,
                      provider_grid,
                      threshold_strip,
                      training_curves,
                      visible_to_labels,
)
from .instances import displacement_figure, instance_crop, instance_gallery, offset_field_rgb

__all__ = ["DPI", "GT_COLOR", "instance_colors", "label_rgb", "overlay_instances", "overlay_mask", "save_figure",
           "composite_figure", "iou_histogram", "mask_grid", "provider_grid", "threshold_strip", "training_curves",
           "visible_to_labels", "displacement_figure", "instance_crop", "instance_gallery", "offset_field_rgb"]
