//! The content space: every item's text embedded by the sentence encoder,
//! searched by its own HNSW graph beside the one learned from interactions.
//! It needs no plays, which is what serves cold items, and it puts a search
//! query and the items in one space.

use crate::catalog::{Catalog, Item};
use crate::encoder::Encoder;
use crate::error::{Error, Result};
use crate::progress::{OnProgress, Progress};
use crate::retrieval::ann::{AnnIndex, AnnParams, Metric};
use crate::schema::Schema;

/// The text an item is embedded from: its searched fields, most boosted
/// first (the title, then names such as the artist, then descriptions and
/// tags), joined as sentences. The encoder reads at most its token limit, so
/// the most telling fields go first.
pub fn item_text(item: &Item, schema: &Schema) -> String {
    let mut fields: Vec<_> = schema.text_fields.iter().collect();
    // Stable: fields of equal boost keep the schema's order.
    fields.sort_by(|a, b| b.boost.total_cmp(&a.boost));
    let mut out = String::new();
    for f in fields {
        let text = crate::retrieval::lexical::field_text(item, &f.source);
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push_str(". ");
        }
        out.push_str(text);
    }
    out
}

/// Unit content vectors of every item, row-major `[items × dim]`, row i
/// for item i.
pub(crate) fn encode_catalog(encoder: &Encoder, catalog: &Catalog, schema: &Schema, on_progress: OnProgress<'_>) -> Result<Vec<f32>> {
    let _span = tracing::info_span!("content embeddings", items = catalog.len(), model = %encoder.info().name).entered();
    let texts: Vec<String> = catalog.items().iter().map(|i| item_text(i, schema)).collect();
    let n = texts.len();
    on_progress(&Progress::new("content embeddings", 0, n, "items"));
    let vectors = encoder.encode_batch(&texts, &|k| on_progress(&Progress::new("content embeddings", k, n, "items")))?;
    Ok(vectors.into_iter().flatten().collect())
}

/// The HNSW graph over `vectors` (`[items × dim]`, unit length): cosine,
/// with the interaction space's graph parameters.
pub(crate) fn build_graph(vectors: &[f32], dim: usize, params: &AnnParams, on_progress: OnProgress<'_>) -> Result<AnnIndex> {
    let _span = tracing::info_span!("content hnsw", vectors = vectors.len() / dim.max(1), dim).entered();
    let rows = vectors.len() / dim.max(1);
    let inserted = |k: usize| on_progress(&Progress::new("content hnsw", k, rows, "vectors"));
    inserted(0);
    AnnIndex::build_reporting(vectors, dim, Metric::Cosine, params, &inserted).map_err(|e| Error::internal_by("content ann build", e))
}
