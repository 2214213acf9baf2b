"""Writes a small synthetic event log over the first items of data/music
that exercises every rule the log artefacts follow: events out of time
order in the file, equal timestamps (file order breaks the tie), inactivity
gaps of exactly the limit and one second more, explicit session ids that
change, immediate and later repeats, skips between plays, searches
(repeated queries, case, accents, an empty query) and impressions. Deterministic (seeded); used by scripts/spark_equivalence.sh.

    python3 spark/edge_log.py OUT.jsonl
"""

import json
import random
import sys

GAP = 1800


def main(out):
    rng = random.Random(20261206)
    items = [f"trk-{i:05d}" for i in range(1, 41)]
    rows = []
    for u in range(40):
        user = f"edge-{u:02d}"
        ts = 1_704_067_200 + rng.randrange(86_400)
        session = None
        for _ in range(rng.randrange(20, 60)):
            step = rng.choice([0, 0, 1, 30, 200, GAP, GAP + 1, 5 * GAP])
            ts += step
            if rng.random() < 0.1:
                session = rng.choice([None, "s-a", "s-b", f"s-{u}"])
            # Repeats, immediate or later, from a small pool.
            item = rng.choice(items[:8]) if rng.random() < 0.4 else rng.choice(items)
            kind = rng.choices(["play", "skip", "search", "impression"], [70, 15, 8, 7])[0]
            row = {"user": user, "item": item, "ts": ts}
            if kind != "play" or rng.random() < 0.5:
                row["type"] = kind
            if kind == "search":
                # Repeats count per (query, item); strings are compared as written.
                row["query"] = rng.choice(["edge query", "Edge Query", "edge query", "café crème", "", "  spaced  "])
            if kind == "impression":
                row.update(request=f"r-{u}-{ts}", position=rng.randrange(10))
            if session is not None:
                row["session"] = session
            rows.append(row)
    # Out of time order in the file: the loaders sort by time, stably.
    rng.shuffle(rows)
    with open(out, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    print(f"edge_log: {len(rows)} events -> {out}")


if __name__ == "__main__":
    main(sys.argv[1])
