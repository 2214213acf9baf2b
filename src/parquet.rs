//! Reading catalogs and events from Parquet (feature `parquet`).
//!
//! Each row becomes the same JSON object a JSON Lines file would hold
//! (columns are the fields; structs and maps become objects, lists arrays,
//! nulls absent fields) and goes through the very same loader, so the data
//! contract cannot drift between the formats. Only where a row sits differs:
//! a contract error is re-addressed from "line" to row group, row and column.

use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::Array;
use arrow_schema::{DataType, TimeUnit};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Map, Number, Value};

use crate::error::{Error, Result};
use crate::jsonl::{Record, RecordSink};

/// Rows decoded per Arrow batch: bounded memory whatever the file's size.
const BATCH_ROWS: usize = 4096;

fn file_error(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::InvalidData {
        path: path.to_path_buf(),
        line: None,
        field: "<file>".into(),
        reason: format!("not a readable Parquet file: {reason}"),
    }
}

/// Where global row `index` (0-based) sits: (row group, row within it).
fn locate(starts: &[usize], index: usize) -> (usize, usize) {
    let group = starts.partition_point(|&s| s <= index).saturating_sub(1);
    (group, index - starts.get(group).copied().unwrap_or(0))
}

/// Calls `each` with every row of the Parquet file at `path` as a record
/// whose `line` is the 1-based row number in the file; errors about a row
/// come back naming its row group, row and column. Returns the row count.
pub(crate) fn for_each_record(path: &Path, each: RecordSink<'_>) -> Result<usize> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| file_error(path, e))?;
    let mut starts = Vec::new();
    let mut total = 0usize;
    for g in builder.metadata().row_groups() {
        starts.push(total);
        total += usize::try_from(g.num_rows()).unwrap_or(0);
    }
    let at = |index: usize, column: String, reason: String| {
        let (row_group, row) = locate(&starts, index);
        Error::InvalidParquet {
            path: path.to_path_buf(),
            row_group,
            row,
            column,
            reason,
        }
    };
    let reader = builder.with_batch_size(BATCH_ROWS).build().map_err(|e| file_error(path, e))?;
    let mut index = 0usize;
    for batch in reader {
        let batch = batch.map_err(|e| file_error(path, e))?;
        let schema = batch.schema();
        for row in 0..batch.num_rows() {
            let mut obj = Map::new();
            for (field, column) in schema.fields().iter().zip(batch.columns()) {
                let value = to_json(column.as_ref(), row).map_err(|(sub, reason)| at(index, format!("{}{sub}", field.name()), reason))?;
                if !value.is_null() {
                    obj.insert(field.name().clone(), value);
                }
            }
            let line = index + 1;
            each(Record { source: path, line, obj }).map_err(|e| match e {
                Error::InvalidData {
                    line: Some(l),
                    field,
                    reason,
                    ..
                } if l == line => at(index, field, reason),
                other => other,
            })?;
            index += 1;
        }
    }
    Ok(index)
}

fn number(x: f64) -> Result<Value, (String, String)> {
    Number::from_f64(x)
        .map(Value::Number)
        .ok_or_else(|| (String::new(), "not a finite number".into()))
}

/// Seconds since the epoch, rounded down, from a timestamp in `unit`s.
fn seconds(v: i64, unit: &TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => v,
        TimeUnit::Millisecond => v.div_euclid(1_000),
        TimeUnit::Microsecond => v.div_euclid(1_000_000),
        TimeUnit::Nanosecond => v.div_euclid(1_000_000_000),
    }
}

/// Row `i` of `a` as JSON. Errors carry a path suffix into the value
/// (`.genre`, `[3]`) and a reason.
fn to_json(a: &dyn Array, i: usize) -> Result<Value, (String, String)> {
    if a.is_null(i) {
        return Ok(Value::Null);
    }
    let nested = |sub: String, r: Result<Value, (String, String)>| r.map_err(|(rest, reason)| (format!("{sub}{rest}"), reason));
    Ok(match a.data_type() {
        DataType::Null => Value::Null,
        DataType::Boolean => Value::Bool(a.as_boolean().value(i)),
        DataType::Int8 => a.as_primitive::<Int8Type>().value(i).into(),
        DataType::Int16 => a.as_primitive::<Int16Type>().value(i).into(),
        DataType::Int32 => a.as_primitive::<Int32Type>().value(i).into(),
        DataType::Int64 => a.as_primitive::<Int64Type>().value(i).into(),
        DataType::UInt8 => a.as_primitive::<UInt8Type>().value(i).into(),
        DataType::UInt16 => a.as_primitive::<UInt16Type>().value(i).into(),
        DataType::UInt32 => a.as_primitive::<UInt32Type>().value(i).into(),
        DataType::UInt64 => a.as_primitive::<UInt64Type>().value(i).into(),
        DataType::Float32 => number(f64::from(a.as_primitive::<Float32Type>().value(i)))?,
        DataType::Float64 => number(a.as_primitive::<Float64Type>().value(i))?,
        DataType::Utf8 => a.as_string::<i32>().value(i).into(),
        DataType::LargeUtf8 => a.as_string::<i64>().value(i).into(),
        DataType::Utf8View => a.as_string_view().value(i).into(),
        DataType::Timestamp(unit, _) => {
            let v = match unit {
                TimeUnit::Second => a.as_primitive::<TimestampSecondType>().value(i),
                TimeUnit::Millisecond => a.as_primitive::<TimestampMillisecondType>().value(i),
                TimeUnit::Microsecond => a.as_primitive::<TimestampMicrosecondType>().value(i),
                TimeUnit::Nanosecond => a.as_primitive::<TimestampNanosecondType>().value(i),
            };
            seconds(v, unit).into()
        }
        DataType::List(_) => list(a.as_list::<i32>().value(i).as_ref())?,
        DataType::LargeList(_) => list(a.as_list::<i64>().value(i).as_ref())?,
        DataType::FixedSizeList(_, _) => list(a.as_fixed_size_list().value(i).as_ref())?,
        DataType::Struct(fields) => {
            let s = a.as_struct();
            let mut obj = Map::new();
            for (f, col) in fields.iter().zip(s.columns()) {
                let v = nested(format!(".{}", f.name()), to_json(col.as_ref(), i))?;
                if !v.is_null() {
                    obj.insert(f.name().clone(), v);
                }
            }
            Value::Object(obj)
        }
        DataType::Map(_, _) => {
            let entries = a.as_map().value(i);
            let (keys, values) = (entries.column(0), entries.column(1));
            let mut obj = Map::new();
            for j in 0..entries.len() {
                let Value::String(key) = to_json(keys.as_ref(), j)? else {
                    return Err((String::new(), format!("map keys must be strings, found {}", keys.data_type())));
                };
                let v = nested(format!(".{key}"), to_json(values.as_ref(), j))?;
                if !v.is_null() {
                    obj.insert(key, v);
                }
            }
            Value::Object(obj)
        }
        other => return Err((String::new(), format!("unsupported Arrow type {other}"))),
    })
}

fn list(values: &dyn Array) -> Result<Value, (String, String)> {
    (0..values.len())
        .map(|j| to_json(values, j).map_err(|(rest, reason)| (format!("[{j}]{rest}"), reason)))
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_located_in_their_row_group() {
        let starts = [0, 10, 25];
        assert_eq!(locate(&starts, 0), (0, 0));
        assert_eq!(locate(&starts, 9), (0, 9));
        assert_eq!(locate(&starts, 10), (1, 0));
        assert_eq!(locate(&starts, 30), (2, 5));
    }

    #[test]
    fn timestamps_round_down_to_seconds() {
        assert_eq!(seconds(1_700_000_000_999, &TimeUnit::Millisecond), 1_700_000_000);
        assert_eq!(seconds(-1, &TimeUnit::Nanosecond), -1);
    }
}
