"""Computes twostage's log artefacts from an event log with Apache Spark.

The same statistics, with the same rules, as `IndexBuilder::log_artefacts`
computes in process (docs/artefacts.md is the contract, version 2): a build
reads them with `LogArtefacts::from_parquet` and `build_from_artefacts` in
place of the raw log. Everything is integer counting, so the two producers
agree exactly; scripts/spark_equivalence.sh checks that they do.

    spark-submit spark/log_artefacts.py --catalog items.jsonl \
        --events s3a://bucket/events/ --out s3a://bucket/artefacts/

Any path Spark reads works for --events, --catalog and --out (local paths,
hdfs://, s3a:// once the cluster has the Hadoop S3 connector configured).
"""

import argparse
import sys
import time

from pyspark.sql import SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

FORMAT = "twostage-log-artefacts"
VERSION = 2
RECENT_SECS = 30 * 24 * 3600  # popularity's "recent" window (retrieval/popular.rs)
KINDS = ("play", "skip", "search", "impression")

EVENT_SCHEMA = T.StructType(
    [
        T.StructField("user", T.StringType()),
        T.StructField("item", T.StringType()),
        T.StructField("ts", T.LongType()),
        T.StructField("type", T.StringType()),
        T.StructField("query", T.StringType()),
        T.StructField("session", T.StringType()),
        T.StructField("request", T.StringType()),
        T.StructField("variant", T.StringType()),
        T.StructField("position", T.LongType()),
    ]
)


def is_json(path):
    return path.endswith(".jsonl") or path.endswith(".json")


def read_rows(spark, path, schema=None):
    """Rows of a JSON Lines or Parquet source with `_row`, their order in it:
    ties in time are broken by it, as the in-process loader's stable sort
    keeps file order."""
    if is_json(path):
        df = spark.read.schema(schema).json(path) if schema else spark.read.json(path)
    else:
        df = spark.read.parquet(path)
    # Increasing with file order before any shuffle (partition index in the
    # high bits, position in the low bits).
    return df.withColumn("_row", F.monotonically_increasing_id())


def catalog_index(spark, path):
    """Item id -> internal id (its 0-based position in the catalog file)."""
    items = read_rows(spark, path, T.StructType([T.StructField("id", T.StringType())]))
    return items.select(
        F.col("id").alias("item"),
        (F.row_number().over(Window.orderBy("_row")) - 1).alias("idx"),
    )


def fail(message):
    print(f"log_artefacts: {message}", file=sys.stderr)
    sys.exit(2)


def load_events(spark, path, index):
    ev = read_rows(spark, path, EVENT_SCHEMA)
    if dict(ev.dtypes).get("ts") == "timestamp":
        ev = ev.withColumn("ts", F.col("ts").cast("long"))  # whole seconds, as the loader rounds down
    kind = F.coalesce(F.col("type"), F.lit("play"))
    ev = ev.withColumn("kind", kind)
    bad = ev.filter(~F.col("kind").isin(*KINDS)).select("kind").limit(3).collect()
    if bad:
        fail(f"event types {[r.kind for r in bad]} are not one of {', '.join(KINDS)}")
    ev = ev.filter(F.col("kind") != "impression")
    # The rules the in-process loader checks, so both producers refuse the same logs.
    missing = ev.filter(F.col("user").isNull() | F.col("item").isNull() | F.col("ts").isNull()).limit(1).count()
    if missing:
        fail("an event without user, item or ts")
    if "query" in ev.columns:
        search = F.col("kind") == "search"
        wrong = ev.filter((search & F.col("query").isNull()) | (~search & F.col("query").isNotNull())).limit(1).count()
        if wrong:
            fail("search events, and only they, carry a query")
    elif ev.filter(F.col("kind") == "search").limit(1).count():
        fail("a search event needs a query")
    unknown = ev.join(index, "item", "left_anti").select("item").limit(3).collect()
    if unknown:
        fail(f"events refer to items not in the catalog, e.g. {[r.item for r in unknown]}")
    optional = [c for c in ("query", "session") if c in ev.columns]
    ev = ev.select("user", "item", "ts", "kind", "_row", *optional)
    # A log without searches (or explicit sessions) may lack the column.
    for c in ("query", "session"):
        if c not in ev.columns:
            ev = ev.withColumn(c, F.lit(None).cast("string"))
    return ev.cache()


def sessions(ev, gap_secs):
    """Each event with its session number within its user: a new session
    after more than `gap_secs` of inactivity or where the explicit session
    id changes (events/Events::sessions)."""
    by_time = Window.partitionBy("user").orderBy("ts", "_row")
    new = (
        F.lag("ts").over(by_time).isNull()
        | ((F.col("ts") - F.lag("ts").over(by_time)) > gap_secs)
        | ~F.col("session").eqNullSafe(F.lag("session").over(by_time))
    )
    so_far = by_time.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    return ev.withColumn("new", new.cast("int")).withColumn("sess", F.sum("new").over(so_far))


def played_sequences(with_sessions):
    """Plays in session order with immediate repeats merged, numbered."""
    in_session = Window.partitionBy("user", "sess").orderBy("ts", "_row")
    plays = with_sessions.filter(F.col("kind") == "play")
    plays = plays.withColumn("prev", F.lag("item").over(in_session))
    plays = plays.filter(F.col("prev").isNull() | (F.col("prev") != F.col("item")))
    return plays.withColumn("pos", F.row_number().over(in_session))


def pair_counts(seq, window):
    """Counts of (from_item, to_item, distance): to_item played `distance`
    plays after from_item in one session, the two different."""
    in_session = Window.partitionBy("user", "sess").orderBy("pos")
    later = seq.select("item", *[F.lead("item", d).over(in_session).alias(f"at{d}") for d in range(1, window + 1)])
    pairs = later.select(
        F.col("item").alias("from_item"),
        F.explode(F.array(*[F.struct(F.lit(d).alias("distance"), F.col(f"at{d}").alias("to_item")) for d in range(1, window + 1)])).alias("p"),
    ).select("from_item", F.col("p.to_item").alias("to_item"), F.col("p.distance").cast("int").alias("distance"))
    pairs = pairs.filter(F.col("to_item").isNotNull() & (F.col("to_item") != F.col("from_item")))
    return pairs.groupBy("from_item", "to_item", "distance").agg(F.count(F.lit(1)).alias("count"))


def popularity(ev, first_ts, last_ts):
    play = F.col("kind") == "play"
    return (
        ev.filter(F.col("kind").isin("play", "skip"))
        .groupBy("item")
        .agg(
            F.sum(play.cast("long")).alias("plays"),
            F.sum((F.col("kind") == "skip").cast("long")).alias("skips"),
            F.sum((play & (F.col("ts") >= last_ts - RECENT_SECS)).cast("long")).alias("recent_plays"),
            F.sum(F.when(play, F.col("ts") - first_ts).otherwise(0)).cast("long").alias("play_seconds"),
        )
    )


def searches(ev):
    """Logged searches counted by (query, item): the query exactly as
    logged (the builder analyses its words)."""
    found = ev.filter((F.col("kind") == "search") & F.col("query").isNotNull())
    return found.groupBy("query", "item").agg(F.count(F.lit(1)).alias("count"))


def cooccurrence(ev, index, kept):
    """Users who played both items, over each user's distinct plays; an
    item's own row counts its users. With `kept`, each item keeps its
    strongest partners: most users, ties by smaller internal id. Counted on
    internal ids, each unordered pair once, then mirrored."""
    idx = F.broadcast(index)
    plays = ev.filter(F.col("kind") == "play").join(idx, "item").select("user", "idx").distinct()
    a, b = plays.alias("a"), plays.alias("b")
    half = (
        a.join(b, (F.col("a.user") == F.col("b.user")) & (F.col("a.idx") <= F.col("b.idx")))
        .groupBy(F.col("a.idx").alias("i"), F.col("b.idx").alias("j"))
        .agg(F.count(F.lit(1)).alias("users"))
    )
    own = half.filter(F.col("i") == F.col("j"))
    off = half.filter(F.col("i") != F.col("j"))
    partners = off.unionByName(off.select(F.col("j").alias("i"), F.col("i").alias("j"), "users"))
    if kept is not None:
        # Each item's partners sorted in memory (most users, then smaller id), cut to `kept`.
        ranked = partners.groupBy("i").agg(
            F.slice(F.array_sort(F.collect_list(F.struct((-F.col("users")).alias("neg"), F.col("j"), F.col("users")))), 1, kept).alias("top")
        )
        partners = ranked.select("i", F.explode("top").alias("t")).select("i", F.col("t.j").alias("j"), F.col("t.users").alias("users"))
    rows = own.unionByName(partners)
    name = lambda col, alias: idx.select(F.col("idx").alias(col), F.col("item").alias(alias))
    return rows.join(name("i", "item"), "i").join(name("j", "other"), "j").select("item", "other", "users")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--catalog", required=True, help="the catalog (JSON Lines or Parquet with an `id` column)")
    ap.add_argument("--events", required=True, help="the event log (Parquet, or JSON Lines)")
    ap.add_argument("--out", required=True, help="directory to write the artefacts into (each artefact replaced; training/ removed first)")
    ap.add_argument("--session-gap-secs", type=int, default=1800)
    ap.add_argument("--covisit-window", type=int, default=5)
    ap.add_argument(
        "--cooccurrence-kept",
        default="auto",
        help="partners kept per item: `all`, a number, or `auto` (all up to --max-dense-items items, else --neighbourhood), as LinearParams",
    )
    ap.add_argument("--max-dense-items", type=int, default=4000)
    ap.add_argument("--neighbourhood", type=int, default=128)
    ap.add_argument(
        "--training-windows",
        type=int,
        default=0,
        help="also write the ranker's training windows (TrainParams::windows, 1 to 6; 0: none)",
    )
    ap.add_argument("--max-lists", type=int, default=10000, help="logged requests kept per window (TrainParams::max_lists)")
    args = ap.parse_args(argv)
    if not 1 <= args.covisit_window <= 1000 or args.session_gap_secs <= 0:
        fail("the window must be 1..=1000 and the session gap positive")
    if not 0 <= args.training_windows <= 6 or not 0 <= args.max_lists <= 100_000_000:
        fail("--training-windows must be 0..=6 and --max-lists 0..=100000000")

    started = time.monotonic()
    spark = SparkSession.builder.appName("twostage-log-artefacts").getOrCreate()
    index = catalog_index(spark, args.catalog).cache()
    items = index.count()
    if args.cooccurrence_kept == "auto":
        kept = None if items <= args.max_dense_items else args.neighbourhood
    elif args.cooccurrence_kept == "all":
        kept = None
    else:
        kept = int(args.cooccurrence_kept)

    ev = load_events(spark, args.events, index)
    out = args.out.rstrip("/")
    # Training windows of an earlier run must not outlive it: Spark
    # overwrites each artefact it writes, and deletes nothing else.
    hadoop = spark._jvm.org.apache.hadoop.fs.Path(f"{out}/training")
    hadoop.getFileSystem(spark._jsc.hadoopConfiguration()).delete(hadoop, True)
    events, n_sessions = write_artefacts(spark, ev, index, items, kept, args, out, started)
    print(f"log_artefacts: {events} events, {n_sessions} sessions, {items} items -> {out}")
    if args.training_windows:
        write_training(spark, ev, index, items, kept, args, f"{out}/training")
    spark.stop()


SUMMARY_SCHEMA = T.StructType(
    [
        T.StructField("format", T.StringType(), False),
        T.StructField("version", T.LongType(), False),
        T.StructField("session_gap_secs", T.LongType(), False),
        T.StructField("covisit_window", T.LongType(), False),
        T.StructField("cooccurrence_kept", T.LongType(), True),
        T.StructField("items", T.LongType(), False),
        T.StructField("events", T.LongType(), False),
        T.StructField("sessions", T.LongType(), False),
        T.StructField("first_ts", T.LongType(), False),
        T.StructField("last_ts", T.LongType(), False),
    ]
)


def write_artefacts(spark, ev, index, items, kept, args, out, started):
    """Writes the five artefacts of the events `ev` into `out`; returns the
    event and session counts."""
    span = ev.agg(F.count(F.lit(1)).alias("n"), F.min("ts").alias("first"), F.max("ts").alias("last")).first()
    events, first_ts, last_ts = span.n, span.first or 0, span.last or 0

    seq = played_sequences(sessions(ev, args.session_gap_secs)).cache()
    n_sessions = seq.groupBy("user", "sess").count().filter(F.col("count") > 1).count()
    print(f"log_artefacts: load, sessions {time.monotonic() - started:.1f} s", file=sys.stderr)

    clock = time.monotonic()
    for name, df in [
        ("pairs", pair_counts(seq, args.covisit_window)),
        ("popularity", popularity(ev, first_ts, last_ts)),
        ("cooccurrence", cooccurrence(ev, index, kept)),
        ("searches", searches(ev)),
    ]:
        df.write.mode("overwrite").parquet(f"{out}/{name}.parquet")
        print(f"log_artefacts: {name} {time.monotonic() - clock:.1f} s", file=sys.stderr)
        clock = time.monotonic()
    seq.unpersist()
    row = (FORMAT, VERSION, args.session_gap_secs, args.covisit_window, kept, items, events, n_sessions, first_ts, last_ts)
    spark.createDataFrame([row], SUMMARY_SCHEMA).coalesce(1).write.mode("overwrite").parquet(f"{out}/summary.parquet")
    return events, n_sessions


# Ranker training's logged requests (ranking/dataset.rs, log_targets): the
# history a request carries, the gap within which a search is typed while a
# track plays, and how soon a play follows the search it came from.
TARGET_HISTORY = 10
HOLDOUT = 0.15  # the share of the log per training window (RANKER_HOLDOUT)
PLAYING_GAP_SECS = 1800
SEARCH_PLAY_SECS = 60
# Rust's char::is_whitespace (Unicode White_Space), for str::trim.
RUST_WHITESPACE = set("\t\n\x0b\x0c\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000") | {chr(c) for c in range(0x2000, 0x200B)}


def blank(text):
    return all(ch in RUST_WHITESPACE for ch in text)


def user_targets(events):
    """One user's events, (ts, row, kind, item, query) in time order, to the
    requests they would have been: (ts, row, kind, text, playing, history,
    negatives, item), every one the log has, whatever its window."""
    hist, skips, out = [], [], []
    last_play, pending = None, None
    for ts, row, kind, item, query in events:
        negatives = skips[-TARGET_HISTORY:]
        if kind == "search":
            recent = hist[-TARGET_HISTORY:]
            playing = last_play is not None and ts - last_play <= PLAYING_GAP_SECS
            if query is not None and not blank(query):
                if not recent:
                    out.append((ts, row, "search", query, None, [], negatives, item))
                elif playing:
                    out.append((ts, row, "session", query, recent[-1], recent[:-1], negatives, item))
                else:
                    out.append((ts, row, "personalized_search", query, None, recent, negatives, item))
            pending = (item, ts)
        elif kind == "play":
            follows = pending is not None and pending[0] == item and ts - pending[1] <= SEARCH_PLAY_SECS
            pending = None
            if not follows and hist:
                recent = hist[-TARGET_HISTORY:]
                if item not in recent:
                    out.append((ts, row, "history", None, None, recent, negatives, item))
            hist.append(item)
            last_play = ts
        elif kind == "skip":
            skips.append(item)
    return out


TARGET_SCHEMA = T.StructType(
    [
        T.StructField("position", T.LongType(), False),
        T.StructField("kind", T.StringType(), False),
        T.StructField("text", T.StringType(), True),
        T.StructField("playing", T.StringType(), True),
        T.StructField("history", T.ArrayType(T.StringType(), False), False),
        T.StructField("negatives", T.ArrayType(T.StringType(), False), False),
        T.StructField("item", T.StringType(), False),
    ]
)

WINDOW_SCHEMA = T.StructType(
    [
        T.StructField("window", T.LongType(), False),
        T.StructField("from_ts", T.LongType(), True),
        T.StructField("to_ts", T.LongType(), True),
        T.StructField("present", T.BooleanType(), False),
        T.StructField("max_lists", T.LongType(), False),
        T.StructField("holdout", T.DoubleType(), False),
    ]
)


def write_training(spark, ev, index, items, kept, args, out):
    """The training windows (docs/artefacts.md): for each window the log
    has, the artefacts of the events before it and its logged requests,
    evenly subsampled to --max-lists, as ranking/dataset.rs's
    window_targets and subsample choose them."""
    started = time.monotonic()
    n = ev.count()
    holdout, asked = HOLDOUT, args.training_windows

    def start_index(w):
        return int(max(0.0, n * (1.0 - holdout * float(w + 1))))

    wanted = {start_index(w) for w in range(asked)}
    at = dict(
        ev.select("ts").rdd.map(lambda r: r.ts).sortBy(lambda t: t).zipWithIndex().filter(lambda p: p[1] in wanted).map(lambda p: (p[1], p[0])).collect()
    )
    first_ts = ev.agg(F.min("ts")).first()[0]
    requests = (
        ev.select("user", "ts", "_row", "kind", "item", "query")
        .rdd.map(lambda r: (r.user, (r.ts, r._row, r.kind, r.item, r.query)))
        .groupByKey()
        .flatMap(lambda kv: user_targets(sorted(kv[1], key=lambda e: (e[0], e[1]))))
        .cache()
    )
    windows = []  # (from, to, targets in log order)
    for w in range(asked):
        start = at.get(start_index(w)) if n > 0 else None
        if start is None:
            break
        end = None if w == 0 else windows[-1][0]
        picked = requests.filter(lambda t, a=start, b=end: a <= t[0] and (b is None or t[0] < b)).sortBy(lambda t: (t[0], t[1])).zipWithIndex()
        count = picked.count()
        if args.max_lists == 0:
            keep = set()
        elif count <= args.max_lists:
            keep = None
        else:
            step = count / args.max_lists
            keep = {int(i * step) for i in range(args.max_lists)}
        if keep is not None:
            picked = picked.filter(lambda p, k=keep: p[1] in k)
        targets = picked.map(lambda p: p[0]).sortBy(lambda t: (t[0], t[1])).zipWithIndex()
        kept_count = count if keep is None else len(keep)
        if w > 0 and not (start < end and kept_count > 0 and first_ts < start):
            break
        windows.append((start, end, targets))
    if not windows:  # an empty log: window 0 is the whole (empty) log
        windows.append((None, None, None))

    rows = [(w, f, t, w < len(windows), args.max_lists, holdout) for w, (f, t, _) in enumerate(windows)]
    rows += [(w, None, None, False, args.max_lists, holdout) for w in range(len(windows), asked)]
    spark.createDataFrame(rows, WINDOW_SCHEMA).coalesce(1).write.mode("overwrite").parquet(f"{out}/windows.parquet")
    for w, (start, _, targets) in enumerate(windows):
        before = ev if start is None else ev.filter(F.col("ts") < start)
        write_artefacts(spark, before, index, items, kept, args, f"{out}/window-{w}", started)
        rdd = targets.map(lambda p: (p[1], *p[0][2:])) if targets is not None else spark.sparkContext.emptyRDD()
        spark.createDataFrame(rdd, TARGET_SCHEMA).write.mode("overwrite").parquet(f"{out}/window-{w}/targets.parquet")
        print(f"log_artefacts: training window {w} {time.monotonic() - started:.1f} s", file=sys.stderr)
    requests.unpersist()


if __name__ == "__main__":
    main()
