"""Per photo: the share of neighbouring centre peaks joined by a level ridge (`scale.ridge_share`), and whether its
lone objects alone read elongated (`_width_length` on the foreground, the reading before session 40's change).

    PYTHONPATH=lib .venv/bin/python docs/experiments/session40/level.py KINDS [SEEDS]

Session 40's numbers came from a first version of this script with its own per-pair loop (samples 1 px apart along
each segment). The library's vectorised `ridge_share` samples a little more densely; on the 128 photos compared
(110 development rods, fruit / discs / nuclei 107, 123, 180, 184, 155, 5) it differs on 22 by at most 0.024, with
the same extremes (rods 0.518-1.000; fruit 107, 123, 180 and discs 184 0.077-0.25).
"""
import sys, json
from indprior.data.suite.kinds import make_hoc
from indprior.hoc import scale as S
kinds = sys.argv[1].split(","); seeds = list(range(10)) + list(range(100, 200))
if len(sys.argv) > 2: seeds = [int(x) for x in sys.argv[2].split(",")]
for k in kinds:
    for s in seeds:
        fg = S.photo_stats(make_hoc(k, s)[0]).fg
        pts, r = S.centre_peaks(fg)
        width, length = S._width_length(fg, pts, r)
        print(json.dumps({"kind": k, "seed": s, "share": round(S.ridge_share(fg, pts, r), 3),
                          "lone_objects_long": S.is_elongated(length, width)}), flush=True)
