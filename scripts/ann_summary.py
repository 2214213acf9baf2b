#!/usr/bin/env python3
"""Median q/s per (system, ef) over the rounds written by compare_ann.sh."""
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
acc = {}
for r in range(1, rounds + 1):
    ours = json.load(open(f"{out}/ann-round{r}.json"))
    for row in ours["rows"]:
        if row["threads"] == 1:
            acc.setdefault((f"twostage {row['layout']}", row["ef"]), []).append((row["recall@10"], row["qps"]))
    ref = json.load(open(f"{out}/ref-round{r}.json"))
    for lib, v in ref["libs"].items():
        for row in v["rows"]:
            acc.setdefault((f"{lib} {v['version']}", row["ef"]), []).append((row["recall@10"], row["qps"]))
print(f"| system | ef | recall@10 | q/s, median of {rounds} rounds (each the median of 3 passes) | per-round q/s |")
print("|---|---:|---:|---:|---|")
for (sysname, ef), v in sorted(acc.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    rec = statistics.median(x[0] for x in v)
    qps = [x[1] for x in v]
    print(f"| {sysname} | {ef} | {rec:.4f} | {statistics.median(qps):.0f} | {' '.join(f'{q:.0f}' for q in qps)} |")
