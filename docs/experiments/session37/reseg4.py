"""Lib as is vs the lib with the groove trigger off (GROOVE = inf). argv: run:kind:seed ..."""
import sys, json, torch, tempfile
torch.set_num_threads(1)
from indprior.hoc import segment as SG, grouping as G
from indprior.hoc.outputs import scores
from indprior.data.suite.kinds import make_hoc
from indprior.data import load_label_map
g0 = G.GROOVE
for spec in sys.argv[1:]:
    run, k, s = spec.split(":"); s = int(s)
    img, gt = make_hoc(k, s)
    row = {"run": f"{k}{s}", "saved": round(scores(load_label_map(f"{run}/instances.png"), gt)["f1"], 3)}
    for name, g in (("nogroove", 1e9), ("groove", g0)):
        G.GROOVE = g
        with tempfile.TemporaryDirectory() as d:
            m = SG.segment_with_run(run, img, d, same_scale=True, device="cpu")
            lab = load_label_map(f"{d}/instances.png")
        sc = scores(lab, gt)
        row[name] = (round(sc["f1"], 3), sc["count_pred"], sc["count_gt"], m.get("rim_frame_dropped"))
    print(json.dumps(row), flush=True)
