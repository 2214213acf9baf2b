//! Loading a catalog from JSON Lines or Parquet records: the per-load
//! policies ([`LoadOptions`]: over-long text, typing) and the parsing of one
//! record into an [`Item`] under them.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;

use serde_json::Value;

use super::{check_id, check_name, check_text, Attribute, Catalog, Item, MAX_TEXT_BYTES};
use crate::error::{Error, Result};
use crate::jsonl::{self, kind, Record};

/// What the catalog loaders do with a text value (title, text field, tag or
/// text attribute) longer than the limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum LongText {
    /// Refuse the catalog, naming the item and the field (the default:
    /// nothing is changed without the caller asking).
    #[default]
    Refuse,
    /// Cut every longer value to at most `max_bytes` (at most
    /// [`MAX_TEXT_BYTES`]), at a whitespace where there is one, and count it
    /// ([`Catalog::truncated_fields`], and the build report).
    Truncate {
        /// The longest value kept, in bytes.
        max_bytes: usize,
    },
}

/// How the catalog loaders hold each field to one type. The first item that
/// has a field fixes its type: an attribute is a string or a number, a tag
/// field is one string or a list of strings. Without this rule a stray
/// `"year": "1950"` would make `year` a searched text field of the whole
/// catalog, and a number filter would silently miss that item.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Typing {
    /// A value of another type than the field's is refused, naming the
    /// line, the field and the item that fixed its type (the default).
    #[default]
    Strict,
    /// Convert where the meaning is unambiguous, refuse the rest: a string
    /// that is a finite number where the field is a number (`"1950"`), a
    /// number where the field is text (written as JSON writes it), a single
    /// string where the tag field is a list (a one-element list), and a list
    /// where it was a single string (a multi-valued field).
    Coerce,
}

/// The policies of one catalog load. Converts from a [`LongText`] alone.
///
/// ```no_run
/// # fn main() -> twostage::Result<()> {
/// use twostage::{Catalog, LoadOptions, LongText, Typing};
/// let options = LoadOptions::default().long_text(LongText::Truncate { max_bytes: 16 << 10 }).typing(Typing::Coerce);
/// let catalog = Catalog::from_jsonl_path_with("items.jsonl", options)?;
/// eprintln!("{} text values cut to 16 KiB", catalog.truncated_fields());
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Over-long text values (default: [`LongText::Refuse`]).
    pub long_text: LongText,
    /// Values of another type than their field's (default: [`Typing::Strict`]).
    pub typing: Typing,
}

impl LoadOptions {
    /// Sets the over-long text policy.
    pub fn long_text(mut self, policy: LongText) -> LoadOptions {
        self.long_text = policy;
        self
    }

    /// Sets the typing policy.
    pub fn typing(mut self, policy: Typing) -> LoadOptions {
        self.typing = policy;
        self
    }
}

impl From<LongText> for LoadOptions {
    fn from(long_text: LongText) -> LoadOptions {
        LoadOptions::default().long_text(long_text)
    }
}

/// `text` cut to at most `max_bytes`, at the last whitespace before the cut
/// when there is one (never inside a character).
pub(crate) fn truncate_text(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    match text[..end].rfind(char::is_whitespace) {
        Some(ws) if ws > 0 => &text[..ws],
        _ => &text[..end],
    }
}

/// The policies of one load, what they cut, and the shape each tag field
/// was first given in (attribute types the catalog itself keeps).
struct Rules {
    options: LoadOptions,
    truncated: usize,
    /// Tag field → (given as a list, the id of the item that first had it).
    tag_shapes: HashMap<String, (bool, String)>,
}

impl Rules {
    fn new(options: LoadOptions) -> Result<Rules> {
        if let LongText::Truncate { max_bytes } = options.long_text {
            if !(1..=MAX_TEXT_BYTES).contains(&max_bytes) {
                return Err(Error::InvalidConfig(format!(
                    "LongText::Truncate max_bytes = {max_bytes} is not in 1..={MAX_TEXT_BYTES}"
                )));
            }
        }
        Ok(Rules {
            options,
            truncated: 0,
            tag_shapes: HashMap::new(),
        })
    }

    /// `s` as the catalog keeps it, or why it is refused.
    fn text(&mut self, s: &str) -> std::result::Result<String, String> {
        match self.options.long_text {
            LongText::Truncate { max_bytes } if s.len() > max_bytes => {
                self.truncated += 1;
                Ok(truncate_text(s, max_bytes).to_string())
            }
            _ => check_text(s).map(|()| s.to_string()),
        }
    }

    /// Checks tag field `name` of item `id` is given in the shape its first
    /// item gave it, unless coercing.
    fn tag_shape(&mut self, name: &str, id: &str, is_list: bool) -> std::result::Result<(), String> {
        let (first_list, first_id) = self.tag_shapes.entry(name.to_string()).or_insert_with(|| (is_list, id.to_string()));
        if *first_list == is_list || self.options.typing == Typing::Coerce {
            return Ok(());
        }
        let shape = |list: bool| if list { "a list of strings" } else { "one string" };
        Err(format!(
            "{} where item `{first_id}` gave {}: give every item the same shape, or load with Typing::Coerce",
            shape(is_list),
            shape(*first_list)
        ))
    }
}

impl Catalog {
    /// Loads a JSON Lines catalog file.
    pub fn from_jsonl_path(path: impl AsRef<Path>) -> Result<Catalog> {
        Catalog::from_jsonl_path_with(path, LoadOptions::default())
    }

    /// [`Catalog::from_jsonl_path`] with policies for over-long text and
    /// mixed types ([`LoadOptions`], or a [`LongText`] alone):
    ///
    /// ```no_run
    /// # fn main() -> twostage::Result<()> {
    /// use twostage::{Catalog, LongText};
    /// let catalog = Catalog::from_jsonl_path_with("items.jsonl", LongText::Truncate { max_bytes: 16 << 10 })?;
    /// eprintln!("{} text values cut to 16 KiB", catalog.truncated_fields());
    /// # Ok(()) }
    /// ```
    pub fn from_jsonl_path_with(path: impl AsRef<Path>, options: impl Into<LoadOptions>) -> Result<Catalog> {
        let path = path.as_ref();
        Catalog::from_jsonl_reader_with(jsonl::open(path)?, path, options)
    }

    /// Loads a JSON Lines catalog from a reader; `source` names it in errors.
    pub fn from_jsonl_reader(reader: impl BufRead, source: &Path) -> Result<Catalog> {
        Catalog::from_jsonl_reader_with(reader, source, LoadOptions::default())
    }

    /// [`Catalog::from_jsonl_reader`] with load policies.
    pub fn from_jsonl_reader_with(reader: impl BufRead, source: &Path, options: impl Into<LoadOptions>) -> Result<Catalog> {
        Catalog::from_records(source, options.into(), |each| jsonl::for_each_record(reader, source, each))
    }

    /// Loads a Parquet catalog file (feature `parquet`): the columns are the
    /// JSON Lines fields (`id`, `title`, `text`, `tags`, `attributes`,
    /// `vector`; see the README for the Arrow types) and every row meets the
    /// same data contract. Errors name the file, row group, row and column.
    #[cfg(feature = "parquet")]
    pub fn from_parquet_path(path: impl AsRef<Path>) -> Result<Catalog> {
        Catalog::from_parquet_path_with(path, LoadOptions::default())
    }

    /// [`Catalog::from_parquet_path`] with load policies.
    #[cfg(feature = "parquet")]
    pub fn from_parquet_path_with(path: impl AsRef<Path>, options: impl Into<LoadOptions>) -> Result<Catalog> {
        let path = path.as_ref();
        Catalog::from_records(path, options.into(), |each| crate::parquet::for_each_record(path, each))
    }

    /// Validates the records `drive` produces, in order, into a catalog.
    fn from_records(source: &Path, options: LoadOptions, drive: impl FnOnce(jsonl::RecordSink<'_>) -> Result<usize>) -> Result<Catalog> {
        let mut catalog = Catalog::default();
        let mut rules = Rules::new(options)?;
        let n = drive(&mut |rec| {
            let item = parse_item(&rec, &mut rules, &catalog)?;
            let line = rec.line;
            catalog.push(item).map_err(|(field, reason)| Error::InvalidData {
                path: source.into(),
                line: Some(line),
                field,
                reason,
            })
        })?;
        if n == 0 {
            return Err(jsonl::file_error(source, "<file>", "the catalog has no items"));
        }
        catalog.truncated = rules.truncated;
        Ok(catalog)
    }
}

/// One record as an item; `catalog` (the items before it) gives the types
/// its attributes must have.
fn parse_item(rec: &Record<'_>, rules: &mut Rules, catalog: &Catalog) -> Result<Item> {
    rec.deny_unknown(&["id", "title", "text", "tags", "attributes", "vector"])?;
    let id = rec.required_str("id")?;
    check_id(id).map_err(|r| rec.error("id", r))?;
    let title = rules.text(rec.required_str("title")?).map_err(|r| rec.error("title", r))?;
    let mut item = Item::new(id, title);

    if let Some(map) = rec.optional_object("text")? {
        for (name, value) in map {
            let field = format!("text.{name}");
            check_name(name).map_err(|r| rec.error(&field, r))?;
            let Value::String(s) = value else {
                return Err(rec.error(field, format!("expected a string, found {}", kind(value))));
            };
            let s = rules.text(s).map_err(|r| rec.error(&field, r))?;
            item.text.insert(name.clone(), s);
        }
    }
    if let Some(map) = rec.optional_object("tags")? {
        for (name, value) in map {
            let field = format!("tags.{name}");
            check_name(name).map_err(|r| rec.error(&field, r))?;
            let raw: Vec<&String> = match value {
                Value::String(s) => vec![s],
                Value::Array(vs) => vs
                    .iter()
                    .enumerate()
                    .map(|(j, v)| match v {
                        Value::String(s) => Ok(s),
                        other => Err(rec.error(format!("{field}[{j}]"), format!("expected a string, found {}", kind(other)))),
                    })
                    .collect::<Result<_>>()?,
                other => return Err(rec.error(field, format!("expected an array of strings, found {}", kind(other)))),
            };
            rules.tag_shape(name, id, value.is_array()).map_err(|r| rec.error(&field, r))?;
            let values = raw
                .into_iter()
                .map(|v| rules.text(v).map_err(|r| rec.error(&field, r)))
                .collect::<Result<Vec<String>>>()?;
            item.tags.insert(name.clone(), values);
        }
    }
    if let Some(map) = rec.optional_object("attributes")? {
        for (name, value) in map {
            let field = format!("attributes.{name}");
            check_name(name).map_err(|r| rec.error(&field, r))?;
            let coerce = rules.options.typing == Typing::Coerce;
            let attr = match (value, catalog.attribute_is_number(name)) {
                // The number as JSON wrote it ("1950", not "1950.0").
                (Value::Number(n), Some(false)) if coerce => Attribute::Text(n.to_string()),
                (Value::String(s), Some(true)) if coerce => match s.trim().parse::<f64>() {
                    Ok(x) if x.is_finite() => Attribute::Number(x),
                    _ => return Err(rec.error(field, format!("`{s}` is not a number, and the field is numeric"))),
                },
                (Value::String(s), _) => Attribute::Text(rules.text(s).map_err(|r| rec.error(&field, r))?),
                (Value::Number(n), _) => match n.as_f64() {
                    Some(x) if x.is_finite() => Attribute::Number(x),
                    _ => return Err(rec.error(field, "not a finite number")),
                },
                (other, _) => return Err(rec.error(field, format!("expected a string or a number, found {}", kind(other)))),
            };
            item.attributes.insert(name.clone(), attr);
        }
    }
    match rec.obj.get("vector") {
        None | Some(Value::Null) => {}
        Some(Value::Array(xs)) => {
            let mut v = Vec::with_capacity(xs.len());
            for (j, x) in xs.iter().enumerate() {
                // f64 -> f32 can overflow to infinity: check after the cast.
                match x.as_f64().map(|x| x as f32) {
                    Some(x) if x.is_finite() => v.push(x),
                    _ => return Err(rec.error(format!("vector[{j}]"), "not a finite 32-bit number")),
                }
            }
            item.vector = Some(v);
        }
        Some(other) => return Err(rec.error("vector", format!("expected an array of numbers, found {}", kind(other)))),
    }
    Ok(item)
}
