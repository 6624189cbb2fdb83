"""Task 2: instances from ONE photo of a homogeneous object cluster (coins, berries, cells).

    config    HOCConfig and its profiles
    scale     the typical instance size and foreground fraction, read off the photo
    method    the GAN: K shared-weight generative providers -> layout -> composition, vs a critic
    siseg     the SISeg-style instance segmenter trained on the GAN's labelled composites
    grouping  from the segmenter's heads to an instance label map
    run       run_hoc: the stages end to end, with outputs and metrics
"""
from ..data.images import COINS_GT
from .config import HOCConfig
from .method import HOCGAN, HOCGenerator, composite_batches
from .run import Scale, fill_instance_holes, load_segmenter, measure_scale, run_hoc, segment_rescaled, upsample_labels
from .scale import cluster_stats, estimate_instance_size

__all__ = ["COINS_GT", "HOCConfig", "HOCGAN", "HOCGenerator", "composite_batches", "fill_instance_holes",
           "load_segmenter", "Scale", "measure_scale", "run_hoc", "segment_rescaled", "upsample_labels", "cluster_stats",
           "estimate_instance_size"]
