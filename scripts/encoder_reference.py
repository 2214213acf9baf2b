#!/usr/bin/env python3
"""Reference sentence embeddings of all-MiniLM-L6-v2 from sentence-transformers.

Produced tests/data/minilm_reference.json, against which the Rust (candle) port
of the encoder is tested. Setup and run (CPU only, offline):

    python3 -m venv /tmp/st-venv
    /tmp/st-venv/bin/pip install torch sentence-transformers
    scripts/fetch_minilm.sh                      # -> models/all-MiniLM-L6-v2
    HF_HUB_OFFLINE=1 /tmp/st-venv/bin/python scripts/encoder_reference.py \\
        --model models/all-MiniLM-L6-v2 --out tests/data/minilm_reference.json

(The committed file came from sentence-transformers 6.2.0 and torch 2.15.0 from
PyPI; its "producer" field says which versions made it.)

The reference is whatever SentenceTransformer(DIR, device="cpu").encode() does:
BERT WordPiece with max_seq_length 256 from sentence_bert_config.json (not the
128 truncation / fixed padding baked into tokenizer.json), mean pooling over the
attention mask, then the Normalize module if modules.json lists one (recorded as
"normalized"). normalize_embeddings=False, so nothing is added on top of the
model's own modules. "tokens" counts the word-pieces fed to the model for that
text, [CLS] and [SEP] included, after truncation to 256. Embeddings are rounded
to 7 significant digits.
"""
import argparse
import json
import os
import sys

import sentence_transformers
import torch
from sentence_transformers import SentenceTransformer

LONG_MUSIC = (
    "The history of recorded music is, in large part, a history of compromise between what "
    "musicians wanted to capture and what the machines of the day could hold. The earliest "
    "wax cylinders held about two minutes of sound, so singers shortened their songs, dropped "
    "verses and sped up the tempo to fit. When the shellac disc arrived, the limit stretched to "
    "roughly three minutes a side, and that number quietly shaped popular song for decades: "
    "radio programmers, jukebox operators and record labels all came to expect a single that "
    "ended before the listener grew restless. Long-playing vinyl changed the arithmetic again. "
    "With twenty minutes or more per side, an album could be a sequence rather than a "
    "collection, and artists began to think about transitions, moods and the arc of a whole "
    "evening of listening. Jazz players stretched their solos, classical labels issued complete "
    "symphonies without awkward breaks, and folk singers recorded long ballads that had "
    "previously survived only in live performance. Magnetic tape brought a different kind of "
    "freedom. Engineers could cut and splice, musicians could overdub a second guitar or a "
    "harmony vocal, and producers started to treat the studio itself as an instrument. Echo "
    "chambers, tape delay and close microphones gave records a texture that no concert hall "
    "could reproduce. The compact disc promised perfection, seventy-four minutes of silence "
    "without hiss, and for a while albums swelled to fill the space, sometimes to their "
    "detriment. Then came compressed files, portable players holding thousands of songs, and "
    "finally streaming services that hold tens of millions. Today the limit is not the medium "
    "but the attention of the listener, and the playlist has replaced the album as the unit "
    "most people reach for. Recommendation systems decide which song follows which, guided by "
    "skips, replays, saved tracks and the quiet signal of a listener who lets a record play "
    "to the end. Some critics mourn the loss of the carefully sequenced album; others point out "
    "that mixtapes, radio shows and dance floors always mixed songs from different sources. "
    "What seems certain is that every new format has changed not only how music is stored but "
    "how it is written, performed and heard, and that the next change is probably already "
    "under way in a bedroom studio somewhere, with an old laptop, a cheap microphone and a "
    "songwriter who has never once thought about the length of a wax cylinder at all."
)

LONG_TRAVEL = (
    "Day 1 (Monday, 3 June 2024): we left Lisbon at 07:45 on the regional train, 2nd class, "
    "seats 41 and 42, and reached Coimbra by 10:10 - twenty-five minutes late because of work "
    "on the line near Entroncamento. The old university sits on the hill above the river, and "
    "the walk up from the station took about 35 minutes with our bags; in hindsight, a taxi for "
    "8 or 9 euros would have been wiser. Lunch was a bowl of caldo verde, grilled sardines and "
    "a glass of vinho verde for 14.50 each. In the afternoon we visited the Joanina library, "
    "where the guide explained that a colony of small bats lives among the shelves and eats the "
    "insects that would otherwise damage the books; every evening the staff cover the tables "
    "with leather sheets to protect them. Day 2: rain all morning, so we stayed in the cafe on "
    "Rua Ferreira Borges, wrote postcards and planned the rest of the route. The forecast "
    "promised 24 degrees and sun for Porto, so we changed our tickets (a fee of 3 euros per "
    "person) and took the 13:04 Alfa Pendular instead of the slower InterCidade. Porto was "
    "loud, steep and beautiful. Our apartment on the fourth floor had no lift, 87 steps, and a "
    "view over the tiled roofs to the Douro and the port lodges on the other bank. That evening "
    "we crossed the upper deck of the Dom Luis I bridge on foot, watched the sun go down from "
    "the Serra do Pilar terrace and ate far too many pasteis de nata. Day 3: a boat trip up the "
    "Douro valley, 9 hours door to door, with a stop at a quinta where the owner poured three "
    "tawny ports of 10, 20 and 30 years and talked about the terraces his grandfather built by "
    "hand. The vineyards climb so steeply that the harvest is still carried out in baskets on "
    "people's backs. Day 4: markets, bookshops and a long, slow lunch; then the night train "
    "plans fell through (the sleeper to Madrid had been cancelled months ago, which nobody had "
    "told the booking site), so we flew home on Friday morning instead. Total spent: roughly "
    "1,150 euros for two people over four nights, of which about a third went on food and wine. "
    "Things to remember next time: book the library slot online in advance, carry a light rain "
    "jacket even in June, buy a rechargeable Andante card in Porto on day one, and never trust "
    "an app that claims a train exists without checking the operator's own timetable first. "
    "Would we go back? Absolutely, but in September, when the grapes are being picked."
)

LONG_TECH = (
    "An inverted index maps each term to the list of documents that contain it, usually stored "
    "as sorted document identifiers so that lists can be intersected and merged quickly. When a "
    "query arrives, the engine looks up the posting list of every query term, walks the lists "
    "in parallel, and computes a score such as BM25 for each candidate document. BM25 combines "
    "three ideas: terms that are rare across the collection matter more than common ones, a "
    "term that appears many times in a document matters more than one that appears once, but "
    "with diminishing returns, and long documents should not win simply because they contain "
    "more words. Two parameters control this behaviour, k1 for term-frequency saturation and b "
    "for length normalisation, with typical values around 1.2 and 0.75. Dense retrieval takes "
    "a different approach. A neural encoder, for example a small transformer with six layers "
    "and a hidden size of 384, maps every document and every query to a fixed-length vector, "
    "and relevance is estimated by the cosine similarity or dot product between them. Because "
    "the vectors capture meaning rather than exact wording, a query like cheap flights to the "
    "coast can match a page that only talks about low-cost airfares to seaside towns. The price "
    "is computation: every document must be encoded ahead of time, and finding the nearest "
    "vectors among millions requires an approximate nearest-neighbour index such as HNSW, IVF "
    "or product quantisation, each trading memory, build time and recall against one another. "
    "Many production systems therefore use two stages. The first stage retrieves a few hundred "
    "candidates cheaply, with BM25, with an approximate vector search, or with both merged by "
    "reciprocal rank fusion. The second stage reranks those candidates with a more expensive "
    "model that can look at the query and the document together, or with a learned ranker "
    "that combines dozens of features such as freshness, popularity, click-through rate and "
    "the scores from the first stage. Evaluation relies on offline metrics like recall at k, "
    "mean reciprocal rank and normalised discounted cumulative gain, computed against judged "
    "query-document pairs, and on online experiments that compare user behaviour between two "
    "versions of the system. Care is needed at every step: tokenisation must match between "
    "indexing and querying, embeddings from different model versions must never be mixed in "
    "one index, and any truncation of long documents, for instance to 256 word pieces, silently "
    "discards whatever text follows the cut, so the beginning of a document weighs far more "
    "than its end. Logging the exact model, tokenizer and index parameters alongside every "
    "result makes such problems far easier to track down later."
)

# Between 128 and 256 word-pieces: a 128-token limit would cut it, 256 does not.
MEDIUM = (
    "Late at night the city grows quiet in layers. First the traffic thins, then the bars "
    "pull down their shutters, and finally even the delivery scooters disappear, leaving only "
    "the hum of the refrigerators in the corner shop and the occasional night bus sighing at "
    "an empty stop. This is the hour for slow music: a piano recorded close enough that you "
    "hear the felt of the hammers, a double bass that seems to breathe, a voice that does not "
    "need to be loud because nobody else is talking. Some people fill these hours with podcasts "
    "or the television, but others prefer a playlist that starts gently and grows gentler "
    "still, until the last track fades into the sound of rain against the window and the "
    "listener, without quite noticing, has fallen asleep. Good night-time albums are rarely "
    "the most famous ones; they are the records that never demand attention and never break "
    "the spell."
)

TEXTS = [
    "Hello world",
    "music",
    "Jazz",
    "sad piano songs for rainy days",
    "upbeat workout playlist 140 bpm",
    "What is the capital of France?",
    "how do I reset my password",
    "The quick brown fox jumps over the lazy dog.",
    "A man is playing a guitar on a quiet street corner while people walk past.",
    "The new phone has a better camera, but the battery life is disappointing.",
    "Café crème, naïve façade, résumé and piñata at the fiancée's soirée.",
    "Müller übte Klavier, während die Bäume vor dem Fenster im Föhn schwankten.",
    "東京の夜はとても静かで、雨の音だけが聞こえる。",
    "我喜欢在下雨天听古典音乐。",
    "비 오는 날에 듣기 좋은 노래",
    "Москва — столица России, и зимой там очень холодно.",
    "أحب الاستماع إلى الموسيقى الهادئة في المساء",
    "party time 🎉🎶🔥 let's go!!!",
    "😀",
    "I ❤️ NY 🗽 — best pizza 🍕 ever",
    "THIS IS ALL UPPER CASE AND VERY LOUD",
    "mIxEd CaSe TeXt LiKe ThIs",
    "Wait... what?!?! No way -- really??? (yes, really.)",
    "!!! ??? ... ;;; --- ***",
    "Call 555-0199 before 10:30pm on 12/31/2024; price $1,299.99 (15% off), ref #A7-42.",
    "3.14159 2.71828 1.41421 1.61803",
    "spaces    between     words\tand\ttabs\nand\n\nnewlines",
    "   leading and trailing whitespace   ",
    "user@example.com visited https://example.org/path?query=1&x=y",
    "def fibonacci(n): return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)",
    "C'est la vie, n'est-ce pas? ¿Dónde está la biblioteca? ¡Olé!",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    MEDIUM,
    LONG_MUSIC,
    LONG_TRAVEL,
    LONG_TECH,
]


def token_counts(model, texts):
    # Count per text so no padding of a batch can leak in.
    prep = getattr(model, "preprocess", None) or model.tokenize
    return [int(prep([t])["attention_mask"].sum()) for t in texts]


def has_normalize(model_dir):
    with open(os.path.join(model_dir, "modules.json")) as f:
        modules = json.load(f)
    return any(m.get("type", "").endswith("models.Normalize") for m in modules)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="sentence-transformers model dir")
    ap.add_argument("--out", required=True, help="JSON file to write")
    args = ap.parse_args()

    model = SentenceTransformer(args.model, device="cpu")
    emb = model.encode(TEXTS, batch_size=8, normalize_embeddings=False, convert_to_numpy=True)
    tokens = token_counts(model, TEXTS)
    assert emb.shape == (len(TEXTS), 384), emb.shape
    assert model.max_seq_length == 256, model.max_seq_length
    assert sum(n == 256 for n in tokens) >= 3, tokens
    assert any(128 < n < 256 for n in tokens), tokens

    doc = {
        "model": "all-MiniLM-L6-v2",
        "producer": "sentence-transformers %s, torch %s"
        % (sentence_transformers.__version__, torch.__version__.split("+")[0]),
        "max_seq_length": model.max_seq_length,
        "normalized": has_normalize(args.model),
        "sentences": [
            {"text": t, "tokens": n, "embedding": [float("%.7g" % x) for x in e.tolist()]}
            for t, n, e in zip(TEXTS, tokens, emb)
        ],
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print("wrote %s: %d sentences, tokens %s" % (args.out, len(TEXTS), tokens), file=sys.stderr)


if __name__ == "__main__":
    main()
