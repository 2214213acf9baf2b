//! Items and the catalog that holds them, with the data contract they must meet.
//!
//! The item schema is generic: an `id`, a `title`, named free-text fields,
//! named multi-valued `tags` (genre, mood, category, ...), named scalar
//! `attributes` (artist, year, price, ...) and an optional embedding `vector`.
//! A JSON Lines catalog has one item per line:
//!
//! ```json
//! {"id":"trk-00001","title":"Neon Harbor","text":{"description":"A dreamy synthpop song"},
//!  "tags":{"genre":["synthpop"],"mood":["dreamy"]},"attributes":{"artist":"The Velvet Foxes","year":1987}}
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

mod load;

#[cfg(any(test, feature = "encoder"))]
pub(crate) use load::truncate_text;
pub use load::{LoadOptions, LongText, Typing};

/// Longest accepted id, in bytes.
pub const MAX_ID_BYTES: usize = 512;
/// Longest accepted text value (title, text field, attribute or tag), in bytes.
pub const MAX_TEXT_BYTES: usize = 64 << 10;
/// Largest accepted vector dimension.
pub const MAX_DIM: usize = 4096;

/// A scalar attribute value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Attribute {
    /// A string such as an artist or brand name.
    Text(String),
    /// A finite number such as a year or a price.
    Number(f64),
}

impl Attribute {
    /// The string value, if this is text.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Attribute::Text(s) => Some(s),
            Attribute::Number(_) => None,
        }
    }

    /// The numeric value, if this is a number.
    pub fn as_number(&self) -> Option<f64> {
        match self {
            Attribute::Number(x) => Some(*x),
            Attribute::Text(_) => None,
        }
    }
}

impl std::fmt::Display for Attribute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Attribute::Text(s) => f.write_str(s),
            Attribute::Number(x) => write!(f, "{x}"),
        }
    }
}

/// One catalog item.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// Unique external id.
    pub id: String,
    /// Display title; searched with the highest boost by default.
    pub title: String,
    /// Further named free-text fields (e.g. `description`).
    pub text: BTreeMap<String, String>,
    /// Named multi-valued categorical fields (e.g. `genre`, `mood`).
    pub tags: BTreeMap<String, Vec<String>>,
    /// Named scalar fields (e.g. `artist`, `year`).
    pub attributes: BTreeMap<String, Attribute>,
    /// An embedding supplied by the user; all supplied vectors share one dimension.
    pub vector: Option<Vec<f32>>,
}

/// The value of one stored field of an item, as a result carries it
/// ([`Request::fields`](crate::Request::fields)). In JSON: a string, a
/// number, or (for a tag field) a list of strings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FieldValue {
    /// A number attribute.
    Number(f64),
    /// The title, a text field or a text attribute.
    Text(String),
    /// A tag field's values.
    List(Vec<String>),
}

impl Item {
    /// A new item with an id and a title and nothing else.
    pub fn new(id: impl Into<String>, title: impl Into<String>) -> Self {
        Item {
            id: id.into(),
            title: title.into(),
            ..Item::default()
        }
    }

    /// The value of stored field `name`, if this item has it: `title`, or a
    /// text field, attribute or tag field, by its bare name (looked up in
    /// that order: attributes, text fields, tags) or qualified as
    /// `text.NAME`, `attributes.NAME` or `tags.NAME`.
    pub fn field(&self, name: &str) -> Option<FieldValue> {
        let attribute = |n: &str| {
            self.attributes.get(n).map(|a| match a {
                Attribute::Text(s) => FieldValue::Text(s.clone()),
                Attribute::Number(x) => FieldValue::Number(*x),
            })
        };
        let text = |n: &str| self.text.get(n).map(|s| FieldValue::Text(s.clone()));
        let tags = |n: &str| self.tags.get(n).map(|v| FieldValue::List(v.clone()));
        match name.split_once('.') {
            _ if name == "title" => Some(FieldValue::Text(self.title.clone())),
            Some(("attributes", n)) => attribute(n),
            Some(("text", n)) => text(n),
            Some(("tags", n)) => tags(n),
            _ => attribute(name).or_else(|| text(name)).or_else(|| tags(name)),
        }
    }
}

/// A validated set of items with unique ids. Items get dense internal ids
/// `0..len()` in file order.
///
/// ```
/// use twostage::{Attribute, Catalog, Item};
/// # fn main() -> twostage::Result<()> {
/// let jsonl = r#"{"id":"t1","title":"Blue Train","tags":{"genre":["jazz"]},"attributes":{"artist":"Coltrane","year":1958}}"#;
/// let catalog = Catalog::from_jsonl_reader(jsonl.as_bytes(), "items.jsonl".as_ref())?;
/// assert_eq!(catalog.get("t1").unwrap().attributes["year"], Attribute::Number(1958.0));
///
/// // Or from items built in code, under the same contract.
/// let mut item = Item::new("t2", "Giant Steps");
/// item.tags.insert("genre".into(), vec!["jazz".into()]);
/// let catalog = Catalog::new(vec![item])?;
/// assert_eq!(catalog.len(), 1);
///
/// // A bad line names the file, the line and the field.
/// let e = Catalog::from_jsonl_reader(r#"{"id":"x","title":7}"#.as_bytes(), "items.jsonl".as_ref()).unwrap_err();
/// assert!(e.to_string().contains("items.jsonl") && e.to_string().contains("title"));
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    items: Vec<Item>,
    by_id: HashMap<String, u32>,
    dim: Option<usize>,
    /// Text values the loader cut under [`LongText::Truncate`].
    truncated: usize,
    /// Attribute name → (it is a number, the item that fixed its type).
    kinds: HashMap<String, (bool, u32)>,
}

impl Catalog {
    /// Validates `items` against the data contract. Errors name the item's
    /// position (as `line`, 1-based) and the field.
    pub fn new(items: Vec<Item>) -> Result<Catalog> {
        let source = Path::new("<items>");
        let mut catalog = Catalog::default();
        for (i, item) in items.into_iter().enumerate() {
            let err = |field: &str, reason: String| Error::InvalidData {
                path: source.into(),
                line: Some(i + 1),
                field: field.into(),
                reason,
            };
            check_id(&item.id).map_err(|r| err("id", r))?;
            check_text(&item.title).map_err(|r| err("title", r))?;
            for (name, value) in &item.text {
                check_name(name).map_err(|r| err("text", r))?;
                check_text(value).map_err(|r| err(&format!("text.{name}"), r))?;
            }
            for (name, values) in &item.tags {
                check_name(name).map_err(|r| err("tags", r))?;
                for v in values {
                    check_text(v).map_err(|r| err(&format!("tags.{name}"), r))?;
                }
            }
            for (name, value) in &item.attributes {
                check_name(name).map_err(|r| err("attributes", r))?;
                match value {
                    Attribute::Text(s) => check_text(s).map_err(|r| err(&format!("attributes.{name}"), r))?,
                    Attribute::Number(x) if !x.is_finite() => return Err(err(&format!("attributes.{name}"), "not a finite number".into())),
                    Attribute::Number(_) => {}
                }
            }
            if let Some(v) = &item.vector {
                if let Some(j) = v.iter().position(|x| !x.is_finite()) {
                    return Err(err(&format!("vector[{j}]"), "not a finite number".into()));
                }
            }
            catalog.push(item).map_err(|(field, reason)| err(&field, reason))?;
        }
        Ok(catalog)
    }

    /// Whether attribute `name` holds numbers (`Some(true)`) or strings, as
    /// the first item with it fixed; `None` if no item has it.
    pub fn attribute_is_number(&self, name: &str) -> Option<bool> {
        self.kinds.get(name).map(|&(number, _)| number)
    }

    /// Adds a validated item, checking uniqueness, the vector dimension and
    /// that each attribute keeps the type its first item gave it.
    fn push(&mut self, item: Item) -> std::result::Result<(), (String, String)> {
        if self.items.len() >= u32::MAX as usize - 1 {
            return Err(("id".into(), "too many items (at most 2^32 - 2)".into()));
        }
        if let Some(v) = &item.vector {
            if v.is_empty() || v.len() > MAX_DIM {
                return Err(("vector".into(), format!("dimension {} is not in 1..={MAX_DIM}", v.len())));
            }
            match self.dim {
                Some(d) if d != v.len() => return Err(("vector".into(), format!("dimension {} differs from earlier items' {d}", v.len()))),
                _ => self.dim = Some(v.len()),
            }
            // Every finite component can still square and sum past f32::MAX,
            // which the build's normalisation and distances could not use.
            if !v.iter().map(|x| x * x).sum::<f32>().is_finite() {
                return Err((
                    "vector".into(),
                    "its squared norm overflows 32-bit floats: scale the vector down".into(),
                ));
            }
        }
        for (name, value) in &item.attributes {
            let is_number = matches!(value, Attribute::Number(_));
            if let Some(&(number, first)) = self.kinds.get(name) {
                if number != is_number {
                    let kind = |number: bool| if number { "a number" } else { "a string" };
                    return Err((
                        format!("attributes.{name}"),
                        format!(
                            "{} where item `{}` gave {}: an attribute has one type in every item \
                             (a loader under Typing::Coerce converts it where the meaning is clear)",
                            kind(is_number),
                            self.items[first as usize].id,
                            kind(number),
                        ),
                    ));
                }
            }
        }
        if let Some(&first) = self.by_id.get(&item.id) {
            return Err((
                "id".into(),
                format!("duplicate id `{}` (first seen at item {})", item.id, first + 1),
            ));
        }
        let next = self.items.len() as u32;
        for (name, value) in &item.attributes {
            self.kinds
                .entry(name.clone())
                .or_insert((matches!(value, Attribute::Number(_)), next));
        }
        self.by_id.insert(item.id.clone(), next);
        self.items.push(item);
        Ok(())
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when there are no items.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// All items, in internal-id order.
    pub fn items(&self) -> &[Item] {
        &self.items
    }

    /// The item with external id `id`.
    pub fn get(&self, id: &str) -> Option<&Item> {
        self.index_of(id).and_then(|i| self.items.get(i as usize))
    }

    /// The internal id of external id `id`.
    pub fn index_of(&self, id: &str) -> Option<u32> {
        self.by_id.get(id).copied()
    }

    /// How many text values the loader cut under [`LongText::Truncate`]
    /// (0 for a catalog loaded under the default [`LongText::Refuse`]).
    pub fn truncated_fields(&self) -> usize {
        self.truncated
    }

    /// The dimension of the vectors the catalog supplies, if any item has one.
    pub fn vector_dim(&self) -> Option<usize> {
        self.dim
    }

    /// Consumes the catalog, returning its items.
    pub fn into_items(self) -> Vec<Item> {
        self.items
    }
}

fn check_id(id: &str) -> std::result::Result<(), String> {
    if id.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if id.len() > MAX_ID_BYTES {
        return Err(format!("longer than {MAX_ID_BYTES} bytes"));
    }
    if id.chars().any(char::is_control) {
        return Err("contains a control character".into());
    }
    Ok(())
}

fn check_text(s: &str) -> std::result::Result<(), String> {
    if s.len() > MAX_TEXT_BYTES {
        return Err(format!("text of {} bytes is longer than the limit of {MAX_TEXT_BYTES}", s.len()));
    }
    Ok(())
}

fn check_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
        return Err(format!("field name `{name}` must be 1..=128 printable characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    fn load(text: &str) -> Result<Catalog> {
        Catalog::from_jsonl_reader(text.as_bytes(), Path::new("items.jsonl"))
    }

    #[test]
    fn parses_the_generic_schema() {
        let c = load(concat!(
            r#"{"id":"a","title":"A song","text":{"description":"slow"},"tags":{"genre":["jazz","soul"],"mood":"calm"},"attributes":{"artist":"X","year":1999},"vector":[1,0]}"#,
            "\n",
            r#"{"id":"b","title":"B"}"#
        ))
        .unwrap();
        assert_eq!(c.len(), 2);
        let a = c.get("a").unwrap();
        assert_eq!(a.tags["mood"], vec!["calm"]);
        assert_eq!(a.attributes["year"], Attribute::Number(1999.0));
        assert_eq!(c.vector_dim(), Some(2));
        assert_eq!(c.index_of("b"), Some(1));
    }

    #[test]
    fn a_vector_whose_squared_norm_overflows_is_bad_data() {
        // Each component is a finite f32; their squares sum past f32::MAX.
        let e = load("{\"id\":\"a\",\"title\":\"t\",\"vector\":[3e19,3e19]}").unwrap_err();
        assert!(e.is_caller_error(), "{e}");
        assert!(e.to_string().contains("line 1") && e.to_string().contains("squared norm"), "{e}");
        assert!(load("{\"id\":\"a\",\"title\":\"t\",\"vector\":[1e18,1e18]}").is_ok());
    }

    #[test]
    fn errors_name_line_and_field() {
        let cases = [
            ("{\"title\":\"t\"}", "line 1", "`id`"),
            (
                "{\"id\":\"a\",\"title\":\"t\"}\n{\"id\":\"a\",\"title\":\"u\"}",
                "line 2",
                "duplicate",
            ),
            ("{\"id\":\"a\",\"title\":\"t\",\"vector\":[1,\"x\"]}", "line 1", "vector[1]"),
            ("{\"id\":\"a\",\"title\":\"t\",\"vector\":[1e39]}", "line 1", "vector[0]"),
            (
                "{\"id\":\"a\",\"title\":\"t\",\"vector\":[1]}\n{\"id\":\"b\",\"title\":\"t\",\"vector\":[1,2]}",
                "line 2",
                "differs",
            ),
            ("{\"id\":\"a\",\"title\":7}", "line 1", "`title`"),
            ("{\"id\":\"a\",\"title\":\"t\",\"tilte\":\"x\"}", "line 1", "`tilte`"),
            (
                "{\"id\":\"a\",\"title\":\"t\",\"attributes\":{\"year\":null}}",
                "line 1",
                "attributes.year",
            ),
            ("{\"id\":\"  \",\"title\":\"t\"}", "line 1", "`id`"),
        ];
        for (text, line, needle) in cases {
            let e = load(text).unwrap_err().to_string();
            assert!(e.contains(line) && e.contains(needle), "{text} -> {e}");
        }
    }

    #[test]
    fn empty_file_and_huge_text_are_refused() {
        assert!(load("").unwrap_err().to_string().contains("no items"));
        let big = "x".repeat(MAX_TEXT_BYTES + 1);
        let e = load(&format!("{{\"id\":\"a\",\"title\":\"t\",\"text\":{{\"description\":\"{big}\"}}}}")).unwrap_err();
        assert!(e.to_string().contains("text.description"), "{e}");
    }

    #[test]
    fn over_long_text_is_cut_at_a_word_and_counted_when_asked() {
        let long = "word ".repeat(MAX_TEXT_BYTES / 5 + 10);
        let lines = format!(
            "{{\"id\":\"a\",\"title\":\"short\",\"text\":{{\"description\":\"{long}\"}},\"tags\":{{\"k\":[\"{long}\",\"ok\"]}}}}\n\
             {{\"id\":\"b\",\"title\":\"{long}\",\"attributes\":{{\"artist\":\"{long}\",\"year\":1990}}}}\n"
        );
        let refused = Catalog::from_jsonl_reader(lines.as_bytes(), Path::new("items.jsonl")).unwrap_err();
        assert!(refused.to_string().contains("text.description"), "{refused}");

        let c = Catalog::from_jsonl_reader_with(lines.as_bytes(), Path::new("items.jsonl"), LongText::Truncate { max_bytes: 100 }).unwrap();
        assert_eq!(c.truncated_fields(), 4, "description, one tag value, title, artist");
        let a = c.get("a").unwrap();
        let d = &a.text["description"];
        assert!(
            d.len() <= 100 && d.starts_with("word word") && d.ends_with("word"),
            "cut at a word: {d:?}"
        );
        assert_eq!(a.tags["k"][1], "ok");
        assert!(a.tags["k"][0].len() <= 100);
        let b = c.get("b").unwrap();
        assert!(b.title.len() <= 100);
        assert_eq!(b.attributes["year"], Attribute::Number(1990.0));
        assert!(b.attributes["artist"].as_text().is_some_and(|t| t.len() <= 100));

        // Values within the limit are kept whole and not counted.
        let c =
            Catalog::from_jsonl_reader_with(lines.as_bytes(), Path::new("x"), LongText::Truncate { max_bytes: MAX_TEXT_BYTES }).unwrap();
        assert_eq!(c.truncated_fields(), 4);
        assert_eq!(c.get("a").unwrap().title, "short");
        for bad in [0, MAX_TEXT_BYTES + 1] {
            let e = Catalog::from_jsonl_reader_with(lines.as_bytes(), Path::new("x"), LongText::Truncate { max_bytes: bad }).unwrap_err();
            assert!(matches!(e, Error::InvalidConfig(_)), "{e}");
        }
    }

    #[test]
    fn truncation_never_splits_a_character() {
        assert_eq!(truncate_text("ééé", 3), "é");
        assert_eq!(truncate_text("ab cd", 4), "ab");
        assert_eq!(truncate_text("abcd", 4), "abcd");
        assert_eq!(truncate_text("abcdef", 3), "abc");
    }

    #[test]
    fn a_field_keeps_the_type_its_first_item_gave_it() {
        let lines = concat!(
            r#"{"id":"a","title":"t","tags":{"genre":["jazz"]},"attributes":{"year":1999,"artist":"X"}}"#,
            "\n",
            r#"{"id":"b","title":"t","tags":{"genre":"soul"},"attributes":{"year":"1950","artist":7}}"#,
        );
        let strict = |text: &str| load(text).unwrap_err().to_string();
        let e = strict(lines);
        assert!(
            e.contains("line 2") && e.contains("tags.genre") && e.contains("item `a` gave a list"),
            "{e}"
        );
        let e = strict(&lines.replace(r#""genre":"soul""#, r#""genre":["soul"]"#));
        assert!(
            e.contains("line 2") && e.contains("attributes.artist") && e.contains("a number where item `a` gave a string"),
            "{e}"
        );
        let e = strict(
            &lines
                .replace(r#""genre":"soul""#, r#""genre":["soul"]"#)
                .replace(r#""artist":7"#, r#""artist":"Y""#),
        );
        assert!(
            e.contains("attributes.year") && e.contains("a string where item `a` gave a number"),
            "{e}"
        );

        let coerce = LoadOptions::default().typing(Typing::Coerce);
        let c = Catalog::from_jsonl_reader_with(lines.as_bytes(), Path::new("items.jsonl"), coerce).unwrap();
        let b = c.get("b").unwrap();
        assert_eq!(b.attributes["year"], Attribute::Number(1950.0));
        assert_eq!(b.attributes["artist"], Attribute::Text("7".into()));
        assert_eq!(b.tags["genre"], ["soul"]);
        assert_eq!(
            (
                c.attribute_is_number("year"),
                c.attribute_is_number("artist"),
                c.attribute_is_number("x")
            ),
            (Some(true), Some(false), None)
        );
        // What has no clear meaning is refused even then.
        let e =
            Catalog::from_jsonl_reader_with(lines.replace("1950", "the fifties").as_bytes(), Path::new("items.jsonl"), coerce).unwrap_err();
        assert!(e.to_string().contains("`the fifties` is not a number"), "{e}");

        // Items built in code meet the same rule.
        let mut a = Item::new("a", "t");
        a.attributes.insert("year".into(), Attribute::Number(1999.0));
        let mut b = Item::new("b", "t");
        b.attributes.insert("year".into(), Attribute::Text("1950".into()));
        let e = Catalog::new(vec![a, b]).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("attributes.year"), "{e}");
    }

    #[test]
    fn in_memory_items_meet_the_same_contract() {
        let mut bad = Item::new("a", "t");
        bad.vector = Some(vec![f32::NAN]);
        assert!(Catalog::new(vec![bad]).unwrap_err().to_string().contains("vector[0]"));
        assert!(Catalog::new(vec![Item::new("a", "t"), Item::new("a", "u")]).is_err());
    }
}
