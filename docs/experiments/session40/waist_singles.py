"""Per photo: its singles (scale.single_objects), which branch admitted each (one peak / rod shape), major/width and
the waist ratio (min of the width profile across the major axis in the middle 60 % / its max)."""
import sys, numpy as np
from scipy import ndimage as ndi
from skimage.measure import regionprops
from indprior.data.suite.kinds import make_hoc
from indprior.hoc import scale as S

def waist(mask):
    ys, xs = np.nonzero(mask); c = np.stack([ys, xs], 1).astype(float); c -= c.mean(0)
    w, v = np.linalg.eigh(np.cov(c.T)); ax = v[:, -1]
    t = c @ ax; lo, hi = t.min(), t.max(); L = hi - lo
    bins = np.floor(t - lo).astype(int); prof = np.bincount(bins).astype(float)
    mid = prof[int(0.2 * L):int(0.8 * L) + 1]
    return float(mid.min() / prof.max()) if len(mid) else 1.0

def singles_info(img):
    st = S.photo_stats(img)
    fg = st.fg
    pts, r = S.centre_peaks(fg); width = 2 * float(np.median(r))
    comps, n = ndi.label(fg)
    per = np.bincount(comps[pts[:, 0], pts[:, 1]], minlength=n + 1)
    sing = S.single_objects(fg, width, pts)
    out = []
    for p in regionprops(sing):
        rod = p.axis_major_length >= 2 * width and p.axis_minor_length <= S.ROD_WIDTH * width
        out.append(("peak" if per[p.label] == 1 else "rod", round(p.axis_major_length / width, 2), round(waist(comps == p.label), 2)))
    return st, width, out

if __name__ == "__main__":
    for spec in sys.argv[1:]:
        k, s = spec.split(":"); img, gt = make_hoc(k, int(s))
        st, width, out = singles_info(img)
        print(spec, "L/W %.2f" % (st.length / st.width), "heaped %.2f" % st.heaped, out, flush=True)
