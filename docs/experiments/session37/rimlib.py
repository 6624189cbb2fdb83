"""F1 of saved runs' instances before / after the lib's drop_rim_frame. argv: run_dir ... (kind+seed from the folder name)"""
import sys, json, re
from indprior.data.suite.kinds import make_hoc
from indprior.data import load_label_map
from indprior.hoc import scale as S
from indprior.hoc.segment import drop_rim_frame
from indprior.hoc.outputs import scores
from indprior import coins, COINS_GT
for run in sys.argv[1:]:
    m = re.search(r'([a-z_]+?)(\d+)_t\d', run.split('/')[-1])
    if not m: continue
    k, s = m.group(1), int(m.group(2))
    try:
        img, gt = (coins(), load_label_map(COINS_GT)) if k == "coins" else make_hoc(k, s)
        lab = load_label_map(f"{run}/instances.png")
    except Exception as e:
        continue
    st = S.photo_stats(img)
    new, n = drop_rim_frame(lab, st.fg, st.width)
    if n or 1:
        a, b = scores(lab, gt), scores(new, gt)
        print(json.dumps({"run": run.split('/work/exp/')[-1], "dropped": n, "f1": [round(a["f1"], 3), round(b["f1"], 3)]}), flush=True)
