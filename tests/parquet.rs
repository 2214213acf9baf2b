//! Catalogs and events from Parquet: the same data as JSON Lines loads the
//! same, and contract errors name the file, row group, row and column.
//! The Parquet files are written on the fly with arrow's own writer.

#![cfg(feature = "parquet")]

use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{Float32Builder, ListBuilder, MapBuilder, StringBuilder};
use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, StructArray, TimestampMillisecondArray};
use arrow_schema::{DataType, Field};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use twostage::{Catalog, Error, Events, IndexBuilder};

/// Writes `columns` to `path` in row groups of `group_rows` rows.
fn write(path: &Path, columns: Vec<(&str, ArrayRef)>, group_rows: usize) {
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let props = WriterProperties::builder().set_max_row_group_size(group_rows).build();
    let mut w = ArrowWriter::try_new(std::fs::File::create(path).unwrap(), batch.schema(), Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

fn strings(v: &[&str]) -> ArrayRef {
    Arc::new(StringArray::from(v.to_vec()))
}

/// id, title, text (a map), tags (a struct of string lists), attributes (a struct), vector (a list of f32).
fn catalog_columns(ids: &[&str], years: Vec<f64>) -> Vec<(&'static str, ArrayRef)> {
    let n = ids.len();
    let mut text = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
    let mut genre = ListBuilder::new(StringBuilder::new());
    let mut vector = ListBuilder::new(Float32Builder::new());
    for i in 0..n {
        text.keys().append_value("description");
        text.values().append_value(format!("song number {i}"));
        text.append(true).unwrap();
        genre.values().append_value(if i % 2 == 0 { "jazz" } else { "rock" });
        genre.append(true);
        vector.values().append_slice(&[1.0, i as f32]);
        vector.append(true);
    }
    let genre: ArrayRef = Arc::new(genre.finish());
    let tags = StructArray::from(vec![(Arc::new(Field::new("genre", genre.data_type().clone(), true)), genre)]);
    let artist = strings(&(0..n).map(|i| if i < 3 { "Coltrane" } else { "Davis" }).collect::<Vec<_>>());
    let year: ArrayRef = Arc::new(Float64Array::from(years));
    let attributes = StructArray::from(vec![
        (Arc::new(Field::new("artist", DataType::Utf8, true)), artist),
        (Arc::new(Field::new("year", DataType::Float64, true)), year),
    ]);
    let titles: Vec<String> = ids.iter().map(|id| format!("Title {id}")).collect();
    vec![
        ("id", strings(ids)),
        ("title", Arc::new(StringArray::from(titles)) as ArrayRef),
        ("text", Arc::new(text.finish()) as ArrayRef),
        ("tags", Arc::new(tags) as ArrayRef),
        ("attributes", Arc::new(attributes) as ArrayRef),
        ("vector", Arc::new(vector.finish()) as ArrayRef),
    ]
}

const IDS: [&str; 6] = ["t0", "t1", "t2", "t3", "t4", "t5"];

#[test]
fn parquet_loads_what_json_lines_loads() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let items = dir.path().join("items.parquet");
    write(&items, catalog_columns(&IDS, (0..6).map(|i| 1990.0 + i as f64).collect()), 4);
    let from_parquet = Catalog::from_parquet_path(&items)?;

    let jsonl: String = (0..6)
        .map(|i| {
            let genre = if i % 2 == 0 { "jazz" } else { "rock" };
            let artist = if i < 3 { "Coltrane" } else { "Davis" };
            format!(
                "{{\"id\":\"t{i}\",\"title\":\"Title t{i}\",\"text\":{{\"description\":\"song number {i}\"}},\"tags\":{{\"genre\":[\"{genre}\"]}},\"attributes\":{{\"artist\":\"{artist}\",\"year\":{}}},\"vector\":[1,{i}]}}\n",
                1990 + i
            )
        })
        .collect();
    let from_jsonl = Catalog::from_jsonl_reader(jsonl.as_bytes(), "items.jsonl".as_ref())?;
    assert_eq!(from_parquet.items(), from_jsonl.items());

    // Events: ts as an Arrow timestamp (milliseconds) or plain integer seconds, type optional.
    let events = dir.path().join("events.parquet");
    let users: Vec<String> = (0..40).map(|i| format!("u{}", i / 4)).collect();
    let items_col: Vec<&str> = (0..40).map(|i| IDS[(i * 5) % 6]).collect();
    let ts: Vec<i64> = (0..40).map(|i| (1_700_000_000 + i * 60) * 1000 + 999).collect();
    let kinds: Vec<Option<&str>> = (0..40).map(|i| if i % 7 == 3 { Some("skip") } else { None }).collect();
    write(
        &events,
        vec![
            ("user", Arc::new(StringArray::from(users.clone())) as ArrayRef),
            ("item", strings(&items_col)),
            ("ts", Arc::new(TimestampMillisecondArray::from(ts.clone())) as ArrayRef),
            ("type", Arc::new(StringArray::from(kinds.clone())) as ArrayRef),
        ],
        16,
    );
    let log = Events::from_parquet_path(&events, &from_parquet)?;
    let jsonl: String = (0..40)
        .map(|i| {
            let kind = kinds[i].map(|k| format!(",\"type\":\"{k}\"")).unwrap_or_default();
            format!(
                "{{\"user\":\"{}\",\"item\":\"{}\",\"ts\":{}{kind}}}\n",
                users[i],
                items_col[i],
                ts[i] / 1000
            )
        })
        .collect();
    let expected = Events::from_jsonl_reader(jsonl.as_bytes(), "events.jsonl".as_ref(), &from_jsonl)?;
    assert_eq!(log.events(), expected.events());
    assert_eq!(log.users(), expected.users());

    let seconds = dir.path().join("events-seconds.parquet");
    let ts_seconds: Vec<i64> = ts.iter().map(|t| t / 1000).collect();
    write(
        &seconds,
        vec![
            ("user", Arc::new(StringArray::from(users)) as ArrayRef),
            ("item", strings(&items_col)),
            ("ts", Arc::new(Int64Array::from(ts_seconds)) as ArrayRef),
        ],
        64,
    );
    assert_eq!(Events::from_parquet_path(&seconds, &from_parquet)?.len(), 40);

    // And an index builds from it.
    let report = IndexBuilder::new()
        .without_ranker_training()
        .build(&from_parquet, &log, dir.path().join("index"))?;
    assert_eq!(report.stats.items, 6);
    Ok(())
}

fn parquet_error(e: Error) -> (usize, usize, String, String) {
    match e {
        Error::InvalidParquet {
            row_group,
            row,
            column,
            reason,
            path,
        } => {
            assert!(path.extension().is_some_and(|x| x == "parquet"), "{path:?}");
            (row_group, row, column, reason)
        }
        other => panic!("expected InvalidParquet, got {other}"),
    }
}

#[test]
fn contract_errors_name_row_group_row_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let items = dir.path().join("items.parquet");

    // A duplicate id in the second row group (rows of 2): group 1, row 1.
    write(&items, catalog_columns(&["a", "b", "c", "a", "e"], vec![2000.0; 5]), 2);
    let e = Catalog::from_parquet_path(&items).unwrap_err();
    assert!(e.is_caller_error());
    assert!(e.to_string().contains("row group 1, row 1: column `id`"), "{e}");
    let (group, row, column, reason) = parquet_error(e);
    assert_eq!((group, row, column.as_str()), (1, 1, "id"));
    assert!(reason.contains("duplicate"), "{reason}");

    // A non-finite number inside a struct column.
    write(&items, catalog_columns(&["a", "b", "c"], vec![2000.0, f64::NAN, 2001.0]), 2);
    let (group, row, column, _) = parquet_error(Catalog::from_parquet_path(&items).unwrap_err());
    assert_eq!((group, row, column.as_str()), (0, 1, "attributes.year"));

    // A column the contract does not know, and a wrongly typed one.
    let mut cols = catalog_columns(&["a"], vec![2000.0]);
    cols.push(("colour", strings(&["red"])));
    write(&items, cols, 8);
    assert_eq!(parquet_error(Catalog::from_parquet_path(&items).unwrap_err()).2, "colour");
    let mut cols = catalog_columns(&["a"], vec![2000.0]);
    cols[1] = ("title", Arc::new(Int64Array::from(vec![7])) as ArrayRef);
    write(&items, cols, 8);
    let (_, _, column, reason) = parquet_error(Catalog::from_parquet_path(&items).unwrap_err());
    assert_eq!(column, "title");
    assert!(reason.contains("expected a string"), "{reason}");

    // Events naming an unknown item, in row group 2.
    write(&items, catalog_columns(&IDS, vec![2000.0; 6]), 8);
    let catalog = Catalog::from_parquet_path(&items).unwrap();
    let events = dir.path().join("events.parquet");
    let mut item_col = vec!["t1"; 7];
    item_col[5] = "nope";
    write(
        &events,
        vec![
            ("user", strings(&["u"; 7])),
            ("item", strings(&item_col)),
            (
                "ts",
                Arc::new(TimestampMillisecondArray::from(vec![1_700_000_000_000i64; 7]).with_timezone("UTC")) as ArrayRef,
            ),
        ],
        2,
    );
    let (group, row, column, reason) = parquet_error(Events::from_parquet_path(&events, &catalog).unwrap_err());
    assert_eq!((group, row, column.as_str()), (2, 1, "item"));
    assert!(reason.contains("nope"), "{reason}");

    // Not Parquet at all: a file-level contract error naming the file; a missing file is I/O.
    std::fs::write(&items, b"id,title\na,b\n").unwrap();
    let e = Catalog::from_parquet_path(&items).unwrap_err();
    assert!(
        matches!(e, Error::InvalidData { .. }) && e.to_string().contains("items.parquet"),
        "{e}"
    );
    assert!(matches!(
        Catalog::from_parquet_path(dir.path().join("missing.parquet")),
        Err(Error::Io { .. })
    ));
}
