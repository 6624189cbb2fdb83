"""Per photo that reads elongated before session 41's squat test: its width, length, how many lone objects it has,
their median minor axis, and the length over that axis (under `scale.SQUAT` = 1.6: round objects).

    PYTHONPATH=<a checkout of c2b4770>/lib .venv/bin/python docs/experiments/session41/squat.py KIND [SEEDS]

Run with the library before the change (a clone of c2b4770): with today's library the photos it changes no longer
read elongated and are not printed. Session 41: every development rods photo (seeds 0-9, 100-199) 2.10-4.43,
nuclei 5 1.23, discs 155 1.04; held out (seeds 10-99, after the choice) every rods photo 2.2 or more, nuclei 46 1.26;
no other photo of any kind reads elongated.
"""
import json
import sys

import numpy as np
from skimage.measure import regionprops

from indprior.data.suite import make_hoc
from indprior.hoc import scale as S

kind = sys.argv[1]
seeds = [int(x) for x in sys.argv[2].split(",")] if len(sys.argv) > 2 else list(range(10)) + list(range(100, 200))
for seed in seeds:
    st = S.photo_stats(make_hoc(kind, seed)[0])
    if not S.is_elongated(st.length, st.width):
        continue
    pts, _ = S.centre_peaks(st.fg)
    lone = regionprops(S.single_objects(st.fg, st.width, pts))
    minor = float(np.median([p.axis_minor_length for p in lone])) if lone else 0.0
    print(json.dumps({"kind": kind, "seed": seed, "width": round(st.width, 2), "length": round(st.length, 2),
                      "n_single": len(lone), "lone_minor": round(minor, 2),
                      "len_over_minor": round(st.length / max(minor, 1e-6), 2)}), flush=True)
