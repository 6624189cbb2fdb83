"""Which photos' elongated / round decision the library at PYTHONPATH makes, and the size: one JSON line per photo."""
import sys, json
from indprior.data.suite.kinds import make_hoc
from indprior.hoc.scale import photo_stats, is_elongated
kinds = sys.argv[1].split(","); seeds = [int(x) for x in sys.argv[2].split(",")]
for k in kinds:
    for s in seeds:
        try:
            st = photo_stats(make_hoc(k, s)[0])
            print(json.dumps({"kind": k, "seed": s, "el": is_elongated(st.length, st.width), "w": round(st.width, 2), "l": round(st.length, 2)}), flush=True)
        except Exception as e:
            print(json.dumps({"kind": k, "seed": s, "error": str(e)[:80]}), flush=True)
