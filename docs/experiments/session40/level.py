"""Photo-level: share of neighbouring centre-peak pairs (< 1.3 widths apart) joined by a level ridge (the distance
transform along the segment between them >= 0.8 of the smaller peak's radius)."""
import sys, json, numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree
from indprior.data.suite.kinds import make_hoc
from indprior.hoc import scale as S
def level_share(fg, thr=0.8, reach=1.3):
    dt = ndi.distance_transform_edt(fg); pts, r = S.centre_peaks(fg); width = 2 * float(np.median(r))
    pairs = cKDTree(pts).query_pairs(reach * width, output_type="ndarray")
    if len(pairs) == 0: return 0.0, 0
    lev = []
    for i, j in pairs:
        n = int(np.ceil(np.hypot(*(pts[i] - pts[j])))) + 1
        yy = np.linspace(pts[i, 0], pts[j, 0], n); xx = np.linspace(pts[i, 1], pts[j, 1], n)
        m = ndi.map_coordinates(dt, [yy, xx], order=1).min()
        lev.append(m / min(r[i], r[j]))
    lev = np.array(lev); return float((lev >= thr).mean()), len(lev)
kinds = sys.argv[1].split(","); seeds = list(range(10)) + list(range(100, 200))
if len(sys.argv) > 2: seeds = [int(x) for x in sys.argv[2].split(",")]
for k in kinds:
    for s in seeds:
        st = S.photo_stats(make_hoc(k, s)[0]); sh, n = level_share(st.fg)
        print(json.dumps({"kind": k, "seed": s, "share": round(sh, 3), "pairs": n, "el": S.is_elongated(st.length, st.width)}), flush=True)
