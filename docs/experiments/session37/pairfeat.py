"""Per instance going into split_side_by_side (zoom 1): how many GT rods it holds, and candidate cues.
argv: run_dir:kind:seed ...  -> jsonl rows per instance (n_gt, minor/width, vote kappa across, angle, resid ratio)"""
from scipy import ndimage
import sys, json, numpy as np, torch, tempfile, cv2
torch.set_num_threads(1)
from indprior.hoc import segment as SG, grouping as G
from indprior.data.suite.kinds import make_hoc
from indprior.hoc.grouping import _principal, _k_lines
cap = {}
orig_split, orig_pred = SG.split_side_by_side, SG.predict_instances
def pred(*a, **k):
    lab, maps = orig_pred(*a, **k)
    cap.setdefault("maps", maps)
    return lab, maps
def split(labels, span, width, **k):
    if "labels" not in cap:
        cap.update(labels=labels.copy(), span=span, width=width)
    return orig_split(labels, span, width, **k)
SG.split_side_by_side, SG.predict_instances = split, pred
def kappa1d(v):
    v = np.sort(v); best = None
    # 2-means in 1D from median split
    t = np.median(v)
    for _ in range(30):
        a, b = v[v <= t], v[v > t]
        if len(a) < 3 or len(b) < 3: return 0.0, 0.0
        nt = (a.mean() + b.mean()) / 2
        if abs(nt - t) < 1e-6: break
        t = nt
    a, b = v[v <= t], v[v > t]
    sep = b.mean() - a.mean()
    dev = np.concatenate([a - a.mean(), b - b.mean()])
    return float(sep / np.sqrt((dev ** 2).mean() + 1e-9)), float(sep)
for spec in sys.argv[1:]:
    run, k, s = spec.split(":"); s = int(s)
    img, gt = make_hoc(k, s)
    cap.clear()
    with tempfile.TemporaryDirectory() as d:
        SG.segment_with_run(run, img, d, same_scale=True, device="cpu")
    lab, off, bnd, width, span = cap["labels"], cap["maps"]["offset"], cap["maps"]["boundary"], cap["width"], cap["span"]
    g = cv2.resize(gt, (lab.shape[1], lab.shape[0]), interpolation=cv2.INTER_NEAREST)
    garea = np.bincount(g.ravel())
    for i, sl in enumerate(ndimage.find_objects(lab), start=1):
        if sl is None: continue
        m = lab[sl] == i
        ys, xs = np.nonzero(m)
        if len(ys) < 40: continue
        gi = g[sl][m]; cnt = np.bincount(gi, minlength=len(garea))
        held = [j for j in np.flatnonzero(cnt) if j > 0 and cnt[j] >= 0.25 * garea[j] and cnt[j] >= 0.15 * len(ys)]
        p = np.stack([ys, xs], 1).astype(float)
        c, dmaj, major, minor = _principal(p)
        across = np.array([-dmaj[1], dmaj[0]])
        Y, X = ys + sl[0].start, xs + sl[1].start
        arr = p + np.stack([off[0, Y, X], off[1, Y, X]], 1)
        kap, sep = kappa1d(arr @ across)
        # 2-line fit
        proj = (p - c) @ across
        start = (proj > np.median(proj)).astype(int)
        asg = _k_lines(p, start, 2)
        ang, rr = None, None
        if asg is not None:
            ds = [_principal(p[asg == j]) for j in (0, 1)]
            ang = float(np.degrees(np.arccos(min(1, abs(ds[0][1] @ ds[1][1])))))
            def res(q):
                cc, dd, mj, _ = _principal(q); v = q - cc
                t = np.clip(v @ dd, -0.45 * mj, 0.45 * mj)
                return np.linalg.norm(v - t[:, None] * dd[None], axis=1).mean()
            rr = float(res(p) / ((res(p[asg == 0]) * (asg == 0).sum() + res(p[asg == 1]) * (asg == 1).sum()) / len(p)))
        # boundary inside the instance
        bmean = float(bnd[Y, X].mean())
        bb = bnd[sl]
        pcs = {}
        for t in (0.3, 0.5, 0.7):
            pl, n = ndimage.label(m & (bb < t))
            sz = np.bincount(pl.ravel(), minlength=n + 1)[1:]
            pcs[t] = sorted([int(x) for x in sz if x >= 10], reverse=True)[:3]
        inner = ndimage.binary_erosion(m, iterations=2)
        infrac = float((bb[inner] > 0.5).mean()) if inner.any() else 0.0
        print(json.dumps(dict(run=f"{k}{s}", inst=i, n_gt=len(held), area=len(ys), minor_w=round(minor / width, 2),
                              major_l=round(major / span, 2), kappa=round(kap, 2), sep_w=round(sep / width, 2),
                              angle=None if ang is None else round(ang, 1), resid=None if rr is None else round(rr, 2),
                              bnd=round(bmean, 3), pcs=pcs, infrac=round(infrac, 3))), flush=True)
