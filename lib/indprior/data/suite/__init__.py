"""The HOC development suite: synthetic photos of homogeneous object clusters with exact instance label maps,
in the kinds users bring (kinds.py: nuclei, discs, fruit, dark_on_light, rods, sizes, large). Task 2's methods
are chosen on some seeds and reported on others (bench/hoc_suite.py)."""
from .kinds import COUNTS, KINDS, SIZES, make_hoc, suite

__all__ = ["COUNTS", "KINDS", "SIZES", "make_hoc", "suite"]
