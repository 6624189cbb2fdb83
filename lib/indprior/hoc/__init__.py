"""Task 2: instances from ONE photo of a homogeneous object cluster (coins, berries, cells).

    config    HOCConfig and its profiles
    scale     what the photo shows: foreground (either polarity), object width and length, centres
    cutouts   copy-paste data: object candidates, the object-free plate, cut-out windows, layouts
    copypaste the default GAN: a mask net on real cut-outs -> layouts read off the photo -> composition
    method    the paper's variant: K shared-weight generative providers -> layout -> composition
    siseg     the SISeg-style instance segmenter trained on the GAN's labelled composites
    grouping  from the segmenter's heads to an instance label map
    outputs   status (failed runs say why), instance files, metrics
    checks    the instances against the photo's own reading of one object (a warning when they disagree), and the
              median axis ratio the cut check reads
    segment   the segmenter on a photo; segment_with_run: a finished run on further photos
    run       run_hoc: the stages end to end, with outputs and metrics
    figures   what the photo shows (scale_figure) and a run's headline (summary_markdown)
"""
from ..data.images import COINS_GT
from .config import HOCConfig
from .figures import scale_figure, summary_markdown
from .method import HOCGAN, HOCGenerator, composite_batches
from .run import Scale, measure_scale, rebuild_gan, run_hoc
from .scale import cluster_stats, estimate_instance_size, foreground, photo_stats
from .segment import fill_instance_holes, load_segmenter, segment_rescaled, segment_with_run, upsample_labels

__all__ = ["COINS_GT", "HOCConfig", "HOCGAN", "HOCGenerator", "composite_batches", "fill_instance_holes",
           "load_segmenter", "Scale", "measure_scale", "rebuild_gan", "run_hoc", "segment_with_run", "segment_rescaled",
           "upsample_labels", "scale_figure", "summary_markdown", "cluster_stats", "estimate_instance_size", "foreground", "photo_stats"]
