"""The data layer: image files, the CUB layout and dataset specs, synthetic sets, box windows.

    images      load_image / load_label_map (any PNG/JPEG, grey, 16-bit), checks, conversions, ImageCrops (HOC)
    cub         CubDataset (CUB-200-2011 layout), resolve_dataset('synthetic[:seed]' | 'cub:<root>')
    synth       synthetic kites; synth_birds: part-structured birds; synth_cub: either in the CUB layout
    synth_hoc   a synthetic cluster image;  suite/: the HOC development suite (kinds of cluster photo)
    boxes, coco box files (COCO JSON, CSV) in, masks (PNG, COCO RLE) out;  coco_boxes: COCO as a training set
    datasets    open_dataset(spec, split): any dataset spec -> samples
    windows     box windows of a split and masks pasted back into images (task 1, ReDO)
"""
from .cub import CubDataset, Sample, clip_box, resolve_dataset
from .datasets import Subset, open_dataset, split_off
from .images import (
                     COINS_GT,
                     DataError,
                     ImageCrops,
                     border_mean,
                     check_rgb,
                     coins,
                     load_image,
                     load_label_map,
                     save_png_atomic,
                     to_float,
                     to_uint8,
)
from .synth_cub import make_synthetic_cub
from .synth_hoc import make_synthetic_hoc
from .windows import PastedMasks, WindowSet, mask_file, paste_mask, prepare_windows, save_masks, window_rect

__all__ = ["CubDataset", "Sample", "clip_box", "resolve_dataset", "Subset", "open_dataset", "split_off", "COINS_GT", "DataError", "ImageCrops", "border_mean",
           "check_rgb", "coins", "load_image", "load_label_map", "save_png_atomic", "to_float", "to_uint8",
           "make_synthetic_cub", "make_synthetic_hoc", "PastedMasks", "WindowSet", "mask_file", "paste_mask",
           "prepare_windows", "save_masks", "window_rect"]
