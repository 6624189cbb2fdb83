"""indprior: learn segmentation masks with the independence prior (Dai et al., AAAI 2019).

Modules, one idea each:
  config    experiment dataclasses and the smoke / cpu / paper profiles
  data      CUB-200-2011 layout loader, single-image (HOC) loader, synthetic data generators
  metrics   foreground and instance metrics
  models    instance providers, layout module, composition module, discriminator
  losses    hinge loss, mask-area and binarisation penalties, differentiable augmentation
  train     the generic Trainer loop, checkpoints and the JSONL log
  windows   box windows of a split, window masks pasted back into images (task 1 and ReDO)
  task1     foreground segmentation with box annotations (train, segment, evaluate)
  selftrain task 1's optional second stage: self-training on GrabCut pseudo-labels (not in the paper)
  hoc       instances from one image of a homogeneous object cluster
  siseg     SISeg-style instance segmenter (foreground, displacement field, boundary)
  redo      the ReDO baseline;  baselines: GrabCut and watershed
  viz       figures
"""

__version__ = "0.1.0"
