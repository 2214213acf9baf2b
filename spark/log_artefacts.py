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
    ap.add_argument("--out", required=True, help="directory to write the artefacts into (replaced)")
    ap.add_argument("--session-gap-secs", type=int, default=1800)
    ap.add_argument("--covisit-window", type=int, default=5)
    ap.add_argument(
        "--cooccurrence-kept",
        default="auto",
        help="partners kept per item: `all`, a number, or `auto` (all up to --max-dense-items items, else --neighbourhood), as LinearParams",
    )
    ap.add_argument("--max-dense-items", type=int, default=4000)
    ap.add_argument("--neighbourhood", type=int, default=128)
    args = ap.parse_args(argv)
    if not 1 <= args.covisit_window <= 1000 or args.session_gap_secs <= 0:
        fail("the window must be 1..=1000 and the session gap positive")

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
    span = ev.agg(F.count(F.lit(1)).alias("n"), F.min("ts").alias("first"), F.max("ts").alias("last")).first()
    events, first_ts, last_ts = span.n, span.first or 0, span.last or 0

    seq = played_sequences(sessions(ev, args.session_gap_secs)).cache()
    n_sessions = seq.groupBy("user", "sess").count().filter(F.col("count") > 1).count()
    print(f"log_artefacts: load, sessions {time.monotonic() - started:.1f} s", file=sys.stderr)

    out = args.out.rstrip("/")
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
    summary = T.StructType(
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
    row = (FORMAT, VERSION, args.session_gap_secs, args.covisit_window, kept, items, events, n_sessions, first_ts, last_ts)
    spark.createDataFrame([row], summary).coalesce(1).write.mode("overwrite").parquet(f"{out}/summary.parquet")
    print(f"log_artefacts: {events} events, {n_sessions} sessions, {items} items -> {out}")
    spark.stop()


if __name__ == "__main__":
    main()
