//! Reading JSON Lines under the data contract: one object per line, errors that
//! name the file, the line and the field.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Longest line we accept. A longer one is almost certainly not a record.
/// Larger than any valid record (whose text fields are limited to
/// `MAX_TEXT_BYTES` each), so that an oversized field of several megabytes is
/// still parsed and refused by its name; only beyond this is the line refused
/// whole, without being read into memory.
pub(crate) const MAX_LINE_BYTES: usize = 16 << 20;

/// One parsed line: its number and its object, with error helpers bound to them.
pub(crate) struct Record<'a> {
    pub source: &'a Path,
    pub line: usize,
    pub obj: Map<String, Value>,
}

impl Record<'_> {
    pub fn error(&self, field: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::InvalidData {
            path: self.source.to_path_buf(),
            line: Some(self.line),
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Rejects fields outside `allowed`: a typo should fail loudly, not be ignored.
    pub fn deny_unknown(&self, allowed: &[&str]) -> Result<()> {
        match self.obj.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(self.error(k.clone(), format!("unknown field (expected one of: {})", allowed.join(", ")))),
            None => Ok(()),
        }
    }

    pub fn required_str(&self, field: &str) -> Result<&str> {
        match self.obj.get(field) {
            None => Err(self.error(field, "missing required field")),
            Some(Value::String(s)) => Ok(s),
            Some(other) => Err(self.error(field, format!("expected a string, found {}", kind(other)))),
        }
    }

    pub fn optional_str(&self, field: &str) -> Result<Option<&str>> {
        match self.obj.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.error(field, format!("expected a string, found {}", kind(other)))),
        }
    }

    pub fn optional_object(&self, field: &str) -> Result<Option<&Map<String, Value>>> {
        match self.obj.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(other) => Err(self.error(field, format!("expected an object, found {}", kind(other)))),
        }
    }
}

/// A short name for a JSON value's type, for error messages.
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Something that calls a record callback for every record of one source
/// (a JSON Lines reader, a Parquet file) and returns how many it saw: the
/// loaders validate records the same way whatever the file format.
pub(crate) type RecordSink<'s> = &'s mut dyn for<'r> FnMut(Record<'r>) -> Result<()>;

/// Calls `each` for every non-blank line of `reader` parsed as a JSON object.
/// Accepts `\n` and `\r\n` endings. Returns the number of records seen.
pub(crate) fn for_each_record(mut reader: impl BufRead, source: &Path, mut each: impl FnMut(Record<'_>) -> Result<()>) -> Result<usize> {
    let mut buf = Vec::new();
    let mut line = 0usize;
    let mut records = 0usize;
    loop {
        buf.clear();
        line += 1;
        // Read at most one byte past the limit, so a huge line costs bounded memory.
        let n = std::io::Read::take(&mut reader, MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| Error::io(source, e))?;
        if n == 0 {
            break;
        }
        let line_error = |reason: String| Error::InvalidData {
            path: source.to_path_buf(),
            line: Some(line),
            field: "<line>".into(),
            reason,
        };
        if buf.len() > MAX_LINE_BYTES {
            return Err(line_error(format!("line longer than {MAX_LINE_BYTES} bytes")));
        }
        let text = std::str::from_utf8(&buf).map_err(|e| line_error(format!("not valid UTF-8: {e}")))?;
        let text = text.trim_end_matches(['\n', '\r']);
        if text.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(text).map_err(|e| line_error(format!("not valid JSON: {e}")))?;
        let Value::Object(obj) = value else {
            return Err(line_error(format!("expected a JSON object, found {}", kind(&value))));
        };
        records += 1;
        each(Record { source, line, obj })?;
    }
    Ok(records)
}

/// Opens `path` for buffered reading, naming the path on failure.
pub(crate) fn open(path: &Path) -> Result<std::io::BufReader<std::fs::File>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    Ok(std::io::BufReader::with_capacity(1 << 20, file))
}

/// A file-level (not line-level) contract violation.
pub(crate) fn file_error(source: &Path, field: &str, reason: impl Into<String>) -> Error {
    Error::InvalidData {
        path: PathBuf::from(source),
        line: None,
        field: field.into(),
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(text: &[u8]) -> Result<Vec<usize>> {
        let mut lines = Vec::new();
        for_each_record(text, Path::new("t.jsonl"), |r| {
            lines.push(r.line);
            Ok(())
        })?;
        Ok(lines)
    }

    #[test]
    fn skips_blank_lines_and_accepts_crlf() {
        assert_eq!(collect(b"{\"a\":1}\r\n\r\n{\"a\":2}").unwrap(), vec![1, 3]);
    }

    #[test]
    fn names_the_line_of_bad_json_and_bad_utf8() {
        let e = collect(b"{}\n{oops}\n").unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("not valid JSON"), "{e}");
        let e = collect(b"{}\n{}\n{\"a\":\"\xff\"}\n").unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("UTF-8"), "{e}");
        let e = collect(b"[1,2]\n").unwrap_err().to_string();
        assert!(e.contains("expected a JSON object"), "{e}");
    }

    #[test]
    fn refuses_overlong_lines_without_reading_them_whole() {
        let mut big = b"{\"a\":\"".to_vec();
        big.resize(MAX_LINE_BYTES + 100, b'x');
        let e = collect(&big).unwrap_err().to_string();
        assert!(e.contains("longer than"), "{e}");
    }
}
