#!/usr/bin/env python3
"""Builds a WordNet reverse-dictionary search task in twostage's JSONL formats.

The definition part of a synset's gloss is the search query; the synset (its
lemmas) is the item to find. Items carry only the lemmas (title), the part of
speech (tag) and the lexicographer file (attribute), never the gloss.

Reads WordNet 3.0's data.noun/data.verb/data.adj/data.adv (e.g. Debian's
wordnet-base, /usr/share/wordnet) with the standard library only, and writes
items.jsonl, events.jsonl (training queries as search events), queries.jsonl
(held-out test queries, disjoint from the training ones) and README.md.
Deterministic for a given seed.

Usage:
  python3 scripts/wordnet_task.py --wordnet /usr/share/wordnet --out data/wordnet \
      [--items 20000] [--train-queries 4000] [--test-queries 1000] [--seed 7]
"""
import argparse
import json
import os
import random
import re
import sys

POS_FILES = [("noun", "n"), ("verb", "v"), ("adj", "a"), ("adv", "r")]
POS_NAME = {"n": "noun", "v": "verb", "a": "adj", "s": "adj", "r": "adv"}

# WordNet 3.0's lexicographer files, by number (the `lexnames` file of the
# WordNet distribution; Debian's wordnet-base does not ship it).
LEXNAMES = [
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal",
    "noun.artifact", "noun.attribute", "noun.body", "noun.cognition",
    "noun.communication", "noun.event", "noun.feeling", "noun.food",
    "noun.group", "noun.location", "noun.motive", "noun.object",
    "noun.person", "noun.phenomenon", "noun.plant", "noun.possession",
    "noun.process", "noun.quantity", "noun.relation", "noun.shape",
    "noun.state", "noun.substance", "noun.time", "verb.body", "verb.change",
    "verb.cognition", "verb.communication", "verb.competition",
    "verb.consumption", "verb.contact", "verb.creation", "verb.emotion",
    "verb.motion", "verb.perception", "verb.possession", "verb.social",
    "verb.stative", "verb.weather", "adj.ppl",
]

# Adjective position markers glued to a lemma: (a), (p), (ip).
ADJ_MARKER = re.compile(r"\((?:a|p|ip)\)$")
EXAMPLE_START = re.compile(r';\s*"')
QUOTED = re.compile(r'"[^"]*"')

START_TS = 1_700_000_000
STEP_S = 60


def definition(gloss):
    """The definition part of a gloss: up to the first `; "example"`, with
    any remaining quoted examples removed and whitespace collapsed."""
    m = EXAMPLE_START.search(gloss)
    if m:
        gloss = gloss[: m.start()]
    gloss = QUOTED.sub(" ", gloss)
    gloss = " ".join(gloss.split())
    return gloss.strip(" ;,:")


def parse_data_file(path, pos_letter):
    """Yields (item_id, pos_name, lexname, lemmas, definition) per synset."""
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("  "):  # license header
                continue
            head, sep, gloss = line.partition(" | ")
            if not sep:
                gloss = ""
            fields = head.split()
            offset, lex_filenum, ss_type = fields[0], int(fields[1]), fields[2]
            w_cnt = int(fields[3], 16)
            lemmas = []
            for i in range(w_cnt):
                word = ADJ_MARKER.sub("", fields[4 + 2 * i]).replace("_", " ")
                if word not in lemmas:
                    lemmas.append(word)
            lexname = LEXNAMES[lex_filenum] if lex_filenum < len(LEXNAMES) else str(lex_filenum)
            yield (f"wn-{pos_letter}-{offset}", POS_NAME[ss_type], lexname, lemmas,
                   definition(gloss.strip()))


def contains_lemma(query, lemmas):
    q = query.lower()
    for lemma in lemmas:
        if re.search(r"(?<!\w)" + re.escape(lemma.lower()) + r"(?!\w)", q):
            return True
    return False


def dump(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wordnet", required=True, help="directory with data.noun etc.")
    ap.add_argument("--out", required=True)
    ap.add_argument("--items", type=int, default=20000)
    ap.add_argument("--train-queries", type=int, default=4000)
    ap.add_argument("--test-queries", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    synsets = []
    skipped = 0
    for name, letter in POS_FILES:
        path = os.path.join(args.wordnet, "data." + name)
        if not os.path.isfile(path):
            sys.exit(f"missing {path}")
        for s in parse_data_file(path, letter):
            if len(s[4].split()) < 3:
                skipped += 1
            else:
                synsets.append(s)
    synsets.sort(key=lambda s: s[0])
    if args.items > len(synsets):
        sys.exit(f"--items {args.items} > {len(synsets)} eligible synsets")
    if args.train_queries + args.test_queries > args.items:
        sys.exit("--train-queries + --test-queries exceeds --items")

    rng = random.Random(args.seed)
    items = rng.sample(synsets, args.items)
    query_synsets = rng.sample(items, args.test_queries + args.train_queries)
    test, train = query_synsets[: args.test_queries], query_synsets[args.test_queries :]
    items.sort(key=lambda s: s[0])

    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "items.jsonl"), "w", encoding="utf-8", newline="\n") as f:
        for item_id, pos, lexname, lemmas, _ in items:
            f.write(dump({"id": item_id, "title": ", ".join(lemmas), "tags": {"pos": [pos]},
                          "attributes": {"lexname": lexname}}) + "\n")
    with open(os.path.join(args.out, "events.jsonl"), "w", encoding="utf-8", newline="\n") as f:
        for i, (item_id, _, _, _, query) in enumerate(train):
            f.write(dump({"user": f"u-{i + 1:06d}", "item": item_id, "ts": START_TS + STEP_S * i,
                          "type": "search", "query": query}) + "\n")
    with open(os.path.join(args.out, "queries.jsonl"), "w", encoding="utf-8", newline="\n") as f:
        for i, (item_id, _, _, _, query) in enumerate(test):
            f.write(dump({"id": f"q-{i + 1:04d}", "query": query, "relevant": {item_id: 2}}) + "\n")

    leak = sum(contains_lemma(s[4], s[3]) for s in test)
    by_def = {}
    for s in items:
        by_def.setdefault(s[4].lower(), []).append(s[0])
    shared = sum(1 for s in test if len(by_def[s[4].lower()]) > 1)
    leak_pct = 100.0 * leak / max(1, len(test))

    readme = f"""# WordNet reverse dictionary

A search-quality task built from WordNet 3.0: the definition of a synset is
the query, the synset is the item to find ("reverse dictionary").

Generated, not committed (see `.gitignore`). To rebuild:

    bash scripts/fetch_wordnet.sh
    # or, with WordNet's data files already in place:
    python3 scripts/wordnet_task.py --wordnet /usr/share/wordnet --out data/wordnet \\
        --items {args.items} --train-queries {args.train_queries} --test-queries {args.test_queries} --seed {args.seed}

## Source

WordNet 3.0, Princeton University (https://wordnet.princeton.edu/), read from
the `data.noun`, `data.verb`, `data.adj` and `data.adv` files of Debian's
`wordnet-base` package. License: the WordNet 3.0 license (permissive,
BSD-like): "WordNet 3.0 Copyright 2006 by Princeton University. All rights
reserved." The full license text is in `/usr/share/doc/wordnet-base/copyright`
and must accompany any copy of these files.

## How it was generated

- Eligible synsets: all parts of speech whose gloss definition (the gloss up
  to the first `; "example"`, with quoted examples removed) has at least
  3 words: {len(synsets)} eligible, {skipped} skipped.
- `items.jsonl`: {len(items)} synsets sampled with Python's `random.Random({args.seed})`.
  id `wn-<n|v|a|r>-<offset>` (WordNet 3.0 data-file offset; adjective
  satellites are `a`), title = the lemmas joined with ", " (underscores as
  spaces, adjective markers such as `(p)` removed), tag `pos`
  (noun/verb/adj/adv), attribute `lexname` (lexicographer file, e.g.
  `noun.animal`). The gloss is deliberately not part of the item.
- `queries.jsonl`: {len(test)} test queries: the definition of a sampled item,
  `relevant` = that synset with grade 2.
- `events.jsonl`: {len(train)} training queries as `search` events, one user per
  query (`u-000001`...), ts from {START_TS} in {STEP_S} s steps. Training and
  test synsets are disjoint; both are drawn from the items.
- Queries are not filtered: {leak} of {len(test)} test queries ({leak_pct:.1f}%) contain
  one of the target's lemmas as a whole word (case-insensitive).
  {shared} test queries have a definition shared by another item; only
  their own synset is marked relevant.
"""
    with open(os.path.join(args.out, "README.md"), "w", encoding="utf-8", newline="\n") as f:
        f.write(readme)

    print(f"eligible synsets {len(synsets)} (skipped {skipped}); items {len(items)}, "
          f"train queries {len(train)}, test queries {len(test)}")
    print(f"test queries containing a target lemma as a word: {leak}/{len(test)} ({leak_pct:.1f}%)")
    print(f"test queries whose definition another item shares: {shared}")


if __name__ == "__main__":
    main()
