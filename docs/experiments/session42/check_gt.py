"""The size check (indprior.hoc.checks) on development photos' GT label maps, which must pass, and on the same maps
cut in two (pieces) and joined in pairs (two objects to an instance), which it should catch.

    PYTHONPATH=lib .venv/bin/python docs/experiments/session42/check_gt.py KINDS SEEDS > rows.jsonl
    PYTHONPATH=lib .venv/bin/python docs/experiments/session42/check_gt.py --table rows.jsonl

Each row: kind, seed, and per map (gt, cut, pairs) [verdict, lone objects, area_vs_lone, fill, fill_expected].
Rods are checked as the run reads them (elongated); the others as round.
"""
import collections
import json
import sys

from indprior.data.suite import make_hoc
from indprior.hoc import checks, photo_stats


def rows(kinds: list[str], seeds: list[int]):
    for kind in kinds:
        for seed in seeds:
            img, gt = make_hoc(kind, seed)
            stats = photo_stats(img)
            row = {"kind": kind, "seed": seed}
            for name, lab in (("gt", gt), ("cut", checks.cut_in_two(gt)), ("pairs", checks.joined_in_pairs(gt))):
                c = checks.size_check(lab, stats, elongated=kind == "rods")
                row[name] = [c["verdict"], c["lone_objects"], c["area_vs_lone"], c["fill"], c["fill_expected"]]
            yield row


def table(path: str) -> str:
    """Per kind and map: how many photos the check passes, and the ranges of area_vs_lone and fill / expected."""
    out = ["| kind | map | photos | verdicts | area / lone objects' (range) | fill / expected (range) |",
           "|---|---|---|---|---|---|"]
    data = [json.loads(x) for x in open(path)]
    for kind in dict.fromkeys(r["kind"] for r in data):
        for name in ("gt", "cut", "pairs"):
            vs = [r[name] for r in data if r["kind"] == kind]
            verdicts = collections.Counter(v[0] for v in vs)
            area = [v[2] for v in vs if v[2] is not None]
            fill = [v[3] / v[4] for v in vs if v[3] is not None]
            span = lambda x: f"{min(x):.2f}-{max(x):.2f}" if x else "-"  # noqa: E731
            out.append(f"| {kind} | {name} | {len(vs)} | {', '.join(f'{k} {n}' for k, n in verdicts.most_common())} "
                       f"| {span(area)} | {span(fill)} |")
    return "\n".join(out)


if __name__ == "__main__":
    if sys.argv[1] == "--table":
        print(table(sys.argv[2]))
    else:
        for r in rows(sys.argv[1].split(","), [int(s) for s in sys.argv[2].split(",")]):
            print(json.dumps(r), flush=True)
