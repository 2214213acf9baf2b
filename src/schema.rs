//! Which catalog fields play which role: searched text (with boosts), tags
//! for filters and overlap features, and a group key ("same artist").

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::catalog::{Attribute, Catalog};
use crate::error::{Error, Result};

/// A field searched by BM25F, with its weight and analyzer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextField {
    /// Where the text comes from: `title`, `text.NAME`, `attributes.NAME` or `tags.NAME`.
    pub source: String,
    /// The field's BM25F weight: each of its words counts `boost` times in
    /// the item's term frequencies and length, so a title word (3) weighs as
    /// three description words (1), and one saturation per query term
    /// spans every field. A whole number from 1 to [`MAX_BOOST`].
    pub boost: f32,
    /// How the field's text becomes terms (default: English stemming).
    #[serde(default)]
    pub analyzer: Analyzer,
}

/// How a text field's words become search terms. Every analyzer splits on
/// non-alphanumeric characters, lower-cases and folds accents ("Beyoncé"
/// finds "beyonce"); a search is analysed by every analyzer the schema uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Analyzer {
    /// Words as written: for names, codes and ids ("ls", "x86_64").
    Words,
    /// English prose: words reduced to their Snowball stem, so "terminals"
    /// finds "terminal" and "running" finds "run".
    #[default]
    English,
}

/// The roles of the catalog's fields. Stored in the manifest, so the engine
/// serves with exactly the schema the index was built with.
///
/// Start from the inferred schema and change what you need, or write the
/// whole schema as JSON (`build_index --schema FILE`, the shape
/// `build_index` prints):
///
/// ```
/// use twostage::{Catalog, Schema};
/// use twostage::schema::{Analyzer, TextField};
/// # fn main() -> twostage::Result<()> {
/// let items = r#"{"id":"ls","title":"ls","text":{"description":"list directory contents"},"tags":{"section":["1"]}}"#;
/// let catalog = Catalog::from_jsonl_reader(items.as_bytes(), "items.jsonl".as_ref())?;
/// let mut schema = Schema::infer(&catalog);
/// // Titles here are command names: match them as written, weigh them less.
/// schema.text_fields[0] = TextField { source: "title".into(), boost: 2.0, analyzer: Analyzer::Words };
/// schema.validate(&catalog)?;
/// let json = serde_json::to_string(&schema).unwrap();
/// assert_eq!(serde_json::from_str::<Schema>(&json).unwrap(), schema);
/// // Then: IndexBuilder::new().schema(schema).build(..)
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schema {
    /// Fields searched by BM25.
    pub text_fields: Vec<TextField>,
    /// Tag fields used by filters and the tag-overlap feature.
    pub tag_fields: Vec<String>,
    /// A text attribute whose equal values mean "same group" (artist, brand, author).
    pub group_key: Option<String>,
}

/// Boost of the title when the schema is inferred.
pub const TITLE_BOOST: f32 = 3.0;
/// Boost of text attributes (artist, album, brand) when the schema is inferred.
pub const ATTRIBUTE_BOOST: f32 = 2.0;
/// Boost of free-text fields and tags when the schema is inferred.
pub const TEXT_BOOST: f32 = 1.0;
/// The largest field weight: a field's words are counted this many times at
/// most, which bounds the text index's size.
pub const MAX_BOOST: f32 = 16.0;

impl Schema {
    /// The default schema for a catalog: the title (boost 3), every text
    /// attribute (2), every text field and tag field (1) are searched, all
    /// with English stemming; every tag field is a tag; no group key.
    pub fn infer(catalog: &Catalog) -> Schema {
        let mut text = BTreeSet::new();
        let mut attrs = BTreeSet::new();
        let mut tags = BTreeSet::new();
        for item in catalog.items() {
            text.extend(item.text.keys().cloned());
            tags.extend(item.tags.keys().cloned());
            attrs.extend(
                item.attributes
                    .iter()
                    .filter(|(_, a)| matches!(a, Attribute::Text(_)))
                    .map(|(k, _)| k.clone()),
            );
        }
        let mut text_fields = vec![TextField {
            source: "title".into(),
            boost: TITLE_BOOST,
            analyzer: Analyzer::default(),
        }];
        text_fields.extend(attrs.iter().map(|a| TextField {
            source: format!("attributes.{a}"),
            boost: ATTRIBUTE_BOOST,
            analyzer: Analyzer::default(),
        }));
        text_fields.extend(text.iter().map(|t| TextField {
            source: format!("text.{t}"),
            boost: TEXT_BOOST,
            analyzer: Analyzer::default(),
        }));
        text_fields.extend(tags.iter().map(|t| TextField {
            source: format!("tags.{t}"),
            boost: TEXT_BOOST,
            analyzer: Analyzer::default(),
        }));
        Schema {
            text_fields,
            tag_fields: tags.into_iter().collect(),
            group_key: None,
        }
    }

    /// The same schema with `attribute` as the group key.
    pub fn with_group_key(mut self, attribute: impl Into<String>) -> Schema {
        self.group_key = Some(attribute.into());
        self
    }

    /// Checks the schema is well formed and refers to fields the catalog has.
    pub fn validate(&self, catalog: &Catalog) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidConfig(m));
        if self.text_fields.len() > 64 {
            return bad("at most 64 text fields".into());
        }
        for f in &self.text_fields {
            if !(f.boost.is_finite() && f.boost >= 1.0 && f.boost <= MAX_BOOST && f.boost.fract() == 0.0) {
                return bad(format!(
                    "text field `{}` has boost {}, expected a whole number from 1 to {MAX_BOOST} (a BM25F weight)",
                    f.source, f.boost
                ));
            }
            let known = match f.source.split_once('.') {
                None => f.source == "title",
                Some(("text", n)) => catalog.items().iter().any(|i| i.text.contains_key(n)),
                Some(("tags", n)) => catalog.items().iter().any(|i| i.tags.contains_key(n)),
                Some(("attributes", n)) => catalog.items().iter().any(|i| i.attributes.contains_key(n)),
                Some(_) => false,
            };
            if !known {
                return bad(format!(
                    "text field `{}` is not a field of any item (expected title, text.NAME, attributes.NAME or tags.NAME)",
                    f.source
                ));
            }
        }
        if let Some(g) = &self.group_key {
            if !catalog.items().iter().any(|i| i.attributes.contains_key(g)) {
                return bad(format!("group key `{g}` is not an attribute of any item"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Item;

    #[test]
    fn infers_fields_and_validates_references() {
        let mut item = Item::new("a", "A");
        item.text.insert("description".into(), "d".into());
        item.tags.insert("genre".into(), vec!["jazz".into()]);
        item.attributes.insert("artist".into(), Attribute::Text("X".into()));
        item.attributes.insert("year".into(), Attribute::Number(1.0));
        let catalog = Catalog::new(vec![item]).unwrap();
        let s = Schema::infer(&catalog);
        let sources: Vec<_> = s.text_fields.iter().map(|f| f.source.as_str()).collect();
        assert_eq!(sources, ["title", "attributes.artist", "text.description", "tags.genre"]);
        assert_eq!(s.tag_fields, ["genre"]);
        assert!(s.clone().with_group_key("artist").validate(&catalog).is_ok());
        assert!(s.clone().with_group_key("label").validate(&catalog).is_err());
        for boost in [f32::NAN, 0.0, 1.5, MAX_BOOST + 1.0] {
            let mut bad = s.clone();
            bad.text_fields[0].boost = boost;
            let e = bad.validate(&catalog).unwrap_err().to_string();
            assert!(e.contains("title") && e.contains("whole number"), "{boost}: {e}");
        }
        // A schema file written before analyzers existed reads as English.
        let f: TextField = serde_json::from_str(r#"{"source":"title","boost":2}"#).unwrap();
        assert_eq!(f.analyzer, Analyzer::English);
        let f: TextField = serde_json::from_str(r#"{"source":"title","boost":2,"analyzer":"words"}"#).unwrap();
        assert_eq!(f.analyzer, Analyzer::Words);
        assert!(serde_json::from_str::<TextField>(r#"{"source":"title","boost":2,"analyzer":"klingon"}"#).is_err());
    }
}
