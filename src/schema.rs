//! Which catalog fields play which role: searched text (with boosts), tags
//! for filters and overlap features, and a group key ("same artist").

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::catalog::{Attribute, Catalog};
use crate::error::{Error, Result};

/// A field searched by BM25, with its boost.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextField {
    /// Where the text comes from: `title`, `text.NAME`, `attributes.NAME` or `tags.NAME`.
    pub source: String,
    /// Multiplier on this field's BM25 score.
    pub boost: f32,
}

/// The roles of the catalog's fields. Stored in the manifest, so the engine
/// serves with exactly the schema the index was built with.
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

impl Schema {
    /// The default schema for a catalog: the title (boost 3), every text
    /// attribute (2), every text field and tag field (1) are searched; every
    /// tag field is a tag; no group key.
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
        }];
        text_fields.extend(attrs.iter().map(|a| TextField {
            source: format!("attributes.{a}"),
            boost: ATTRIBUTE_BOOST,
        }));
        text_fields.extend(text.iter().map(|t| TextField {
            source: format!("text.{t}"),
            boost: TEXT_BOOST,
        }));
        text_fields.extend(tags.iter().map(|t| TextField {
            source: format!("tags.{t}"),
            boost: TEXT_BOOST,
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
            if !(f.boost.is_finite() && f.boost > 0.0) {
                return bad(format!(
                    "text field `{}` has boost {}, expected a positive number",
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
        let mut bad = s;
        bad.text_fields[0].boost = f32::NAN;
        assert!(bad.validate(&catalog).is_err());
    }
}
