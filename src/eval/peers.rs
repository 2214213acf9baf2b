//! Peer baselines for search evaluation: what a team gets from tantivy with
//! no tuning (plain BM25 over one all-text field, and Lucene-style
//! MoreLikeThis), and reciprocal-rank fusion to combine ranked lists. They
//! run in the same evaluation as the engine's own systems, on the same
//! catalog and queries, so every quality claim is made against them.

use std::collections::{BTreeMap, HashMap, HashSet};

use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, TermQuery};
use tantivy::schema::{Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, FAST};
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{Index, IndexReader, ReloadPolicy, Searcher, TantivyDocument, Term};

use crate::catalog::{Catalog, Item};
use crate::error::{Error, Result};

/// tantivy's built-in English analyzer: SimpleTokenizer, RemoveLongFilter(40),
/// LowerCaser, Stemmer(English).
const EN_STEM: &str = "en_stem";
/// The u64 fast field holding the catalog index.
const ITEM_FIELD: &str = "item";
/// Terms a MoreLikeThis query keeps (Lucene's `maxQueryTerms` default).
pub const MLT_MAX_TERMS: usize = 25;
/// Least document frequency of a MoreLikeThis term: a term only the item
/// itself holds cannot find another item.
pub const MLT_MIN_DOC_FREQ: u64 = 2;

fn tantivy_error(e: tantivy::TantivyError) -> Error {
    Error::internal_by("peers", e)
}

/// Everything searchable about an item as one text: title, every text field, every tag value.
fn all_text(item: &Item) -> String {
    let mut parts = vec![item.title.as_str()];
    parts.extend(item.text.values().map(String::as_str));
    parts.extend(item.tags.values().flatten().map(String::as_str));
    parts.join("\n")
}

/// "Plain tantivy BM25": the catalog as one English-stemmed text field per
/// item, queried with an OR of the query's terms and ranked by tantivy's
/// BM25 (k1 1.2, b 0.75) with a plain `TopDocs` collector (block-max WAND on).
///
/// A fair peer because it is what tantivy gives out of the box, with none of
/// the engine's choices: no per-field boosts, no dis-max, no accent folding,
/// no filters, no second stage. User text is analysed, never parsed as query
/// syntax, exactly as the engine treats it, so both see the same words.
pub struct PlainBm25 {
    reader: IndexReader,
    field: Field,
    analyzer: TextAnalyzer,
    /// Each item's indexed text, re-analysed for MoreLikeThis (as Lucene
    /// does for a field without term vectors).
    texts: Vec<String>,
}

impl PlainBm25 {
    /// Indexes `catalog` in memory (one indexing thread, so the build is reproducible).
    pub fn build(catalog: &Catalog) -> Result<PlainBm25> {
        let mut builder = Schema::builder();
        let indexing = TextFieldIndexing::default()
            .set_tokenizer(EN_STEM)
            .set_index_option(IndexRecordOption::WithFreqs);
        let field = builder.add_text_field("text", TextOptions::default().set_indexing_options(indexing));
        let item_field = builder.add_u64_field(ITEM_FIELD, FAST);
        let index = Index::create_in_ram(builder.build());
        let analyzer = index
            .tokenizers()
            .get(EN_STEM)
            .ok_or_else(|| Error::internal("peers", "tantivy has no en_stem analyzer (feature `stemmer` off?)"))?;
        let writer = index.writer_with_num_threads::<TantivyDocument>(1, 128 << 20);
        let mut writer = writer.map_err(tantivy_error)?;
        let texts: Vec<String> = catalog.items().iter().map(all_text).collect();
        for (i, text) in texts.iter().enumerate() {
            let mut doc = TantivyDocument::default();
            doc.add_text(field, text);
            doc.add_u64(item_field, i as u64);
            writer.add_document(doc).map_err(tantivy_error)?;
        }
        writer.commit().map_err(tantivy_error)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(tantivy_error)?;
        Ok(PlainBm25 {
            reader,
            field,
            analyzer,
            texts,
        })
    }

    /// `text` through the index's analyzer, every token in order (repeats kept).
    fn tokens(&self, text: &str) -> Vec<String> {
        let mut analyzer = self.analyzer.clone();
        let mut stream = analyzer.token_stream(text);
        let mut out = Vec::new();
        while stream.advance() {
            out.push(stream.token().text.clone());
        }
        out
    }

    /// The `n` best hits of `query` (weighted terms, OR'ed), as catalog indexes.
    fn run(&self, searcher: &Searcher, terms: &[(String, f32)], n: usize) -> Result<Vec<u32>> {
        if terms.is_empty() || n == 0 {
            return Ok(Vec::new());
        }
        let clauses: Vec<(Occur, Box<dyn Query>)> = terms
            .iter()
            .map(|(t, boost)| {
                let q: Box<dyn Query> = Box::new(TermQuery::new(Term::from_field_text(self.field, t), IndexRecordOption::WithFreqs));
                let q = if *boost == 1.0 { q } else { Box::new(BoostQuery::new(q, *boost)) };
                (Occur::Should, q)
            })
            .collect();
        let hits = searcher
            .search(&BooleanQuery::new(clauses), &TopDocs::with_limit(n).order_by_score())
            .map_err(tantivy_error)?;
        let mut out = Vec::with_capacity(hits.len());
        for (_, addr) in hits {
            let column = searcher.segment_reader(addr.segment_ord).fast_fields().u64(ITEM_FIELD);
            let column = column.map_err(tantivy_error)?;
            out.extend(column.first(addr.doc_id).and_then(|v| u32::try_from(v).ok()));
        }
        Ok(out)
    }

    /// The `n` best BM25 matches for `query`, best first, as catalog indexes
    /// ([`Catalog::index_of`]). The query is the OR of its distinct analysed
    /// terms; quotes, `AND`, `field:` or a stray `(` are just words. A query
    /// with no terms finds nothing.
    pub fn search(&self, query: &str, n: usize) -> Result<Vec<u32>> {
        let mut terms: Vec<(String, f32)> = Vec::new();
        for t in self.tokens(query) {
            if !terms.iter().any(|(x, _)| *x == t) {
                terms.push((t, 1.0));
            }
        }
        self.run(&self.reader.searcher(), &terms, n)
    }

    /// Lucene MoreLikeThis for catalog item `item`: the [`MLT_MAX_TERMS`]
    /// terms of its own indexed text with the highest tf·idf (tf its count in
    /// the item, idf Lucene's `ClassicSimilarity` one, `1 + ln((N+1)/(df+1))`,
    /// over the index's doc frequencies; terms with df < [`MLT_MIN_DOC_FREQ`]
    /// skipped; ties broken by the term), OR'ed, each boosted by its tf·idf
    /// over the best one's (Lucene's `setBoost(true)` option), ranked by
    /// BM25. Lucene's own minimum term frequency (2) and doc frequency (5)
    /// suit long documents; catalog texts are a few dozen words, so every
    /// term counts. The item itself is left out of the `n` results.
    ///
    /// A fair "similar items" peer: the standard content-based answer of the
    /// Lucene family, with no embeddings and no behaviour data.
    pub fn more_like_this(&self, item: u32, n: usize) -> Result<Vec<u32>> {
        let unknown = || Error::UnknownItem(format!("#{item}"));
        let mut tf: BTreeMap<String, u32> = BTreeMap::new();
        for t in self.tokens(self.texts.get(item as usize).ok_or_else(unknown)?) {
            *tf.entry(t).or_insert(0) += 1;
        }
        let searcher = self.reader.searcher();
        let docs = searcher.num_docs() as f64;
        let mut scored: Vec<(String, f64)> = Vec::with_capacity(tf.len());
        for (term, count) in tf {
            let df = searcher.doc_freq(&Term::from_field_text(self.field, &term));
            let df = df.map_err(tantivy_error)?;
            if df >= MLT_MIN_DOC_FREQ {
                let idf = 1.0 + ((docs + 1.0) / (df as f64 + 1.0)).ln();
                scored.push((term, count as f64 * idf));
            }
        }
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        scored.truncate(MLT_MAX_TERMS);
        let best = scored.first().map_or(1.0, |s| s.1);
        let terms: Vec<(String, f32)> = scored.into_iter().map(|(t, s)| (t, (s / best) as f32)).collect();
        let mut hits = self.run(&searcher, &terms, n.saturating_add(1))?;
        hits.retain(|&i| i != item);
        hits.truncate(n);
        Ok(hits)
    }
}

/// Reciprocal-rank fusion (Cormack et al., 2009): an id's score is the sum,
/// over the lists holding it, of `1 / (k + rank)` with `rank` 1-based (a
/// repeat within one list counts once, at its first rank); the `n` best ids,
/// ties broken by the smaller id. `k` ≥ 0; 60 is the usual constant.
///
/// The standard way to combine retrievers without training, so a hybrid of
/// the peers (BM25 + dense) is a fair peer of the engine's learned fusion.
/// Each id's terms are added smallest first, so ids with the same ranks get
/// bit-identical scores and the result is deterministic.
pub fn rrf(lists: &[&[u32]], k: f64, n: usize) -> Vec<u32> {
    let mut ranks: HashMap<u32, Vec<usize>> = HashMap::new();
    for list in lists {
        let mut seen = HashSet::with_capacity(list.len());
        for (r, &id) in list.iter().enumerate() {
            if seen.insert(id) {
                ranks.entry(id).or_default().push(r + 1);
            }
        }
    }
    let mut scored: Vec<(u32, f64)> = ranks
        .into_iter()
        .map(|(id, mut rs)| {
            rs.sort_unstable_by(|a, b| b.cmp(a));
            (id, rs.into_iter().map(|r| 1.0 / (k + r as f64)).sum())
        })
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.into_iter().take(n).map(|(id, _)| id).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, title: &str, text: &str, tags: &[&str]) -> Item {
        let mut it = Item::new(id, title);
        it.text.insert("description".into(), text.into());
        it.tags.insert("genre".into(), tags.iter().map(|t| t.to_string()).collect());
        it
    }

    fn peer() -> PlainBm25 {
        let catalog = Catalog::new(vec![
            item("a", "Trail Kit", "run shoe for mud", &["sport"]),
            item("b", "Wool Socks", "warm socks for winter", &["clothing"]),
            item("c", "Blue Train", "jazz saxophone quartet ballad", &["jazz"]),
            item("d", "Giant Steps", "jazz saxophone quartet live", &["jazz"]),
            item("e", "Rain Coat", "keeps you dry in winter", &["clothing"]),
            item("f", "Road Racer", "a fast bicycle", &["sport"]),
        ])
        .unwrap();
        PlainBm25::build(&catalog).unwrap()
    }

    #[test]
    fn stemmed_query_finds_the_item_and_syntax_is_just_words() {
        let p = peer();
        assert_eq!(p.search("running shoes", 3).unwrap(), vec![0]);
        assert_eq!(p.search("Winter", 6).unwrap().len(), 2);
        assert!(p.search(r#"title:"x" AND ("#, 5).is_ok());
        assert_eq!(p.search("title:\"wool\" AND (", 5).unwrap(), vec![1]);
        assert!(p.search("  ()  ", 5).unwrap().is_empty());
        assert!(p.search("jazz", 0).unwrap().is_empty());
    }

    #[test]
    fn more_like_this_finds_a_related_item_never_itself() {
        let p = peer();
        assert_eq!(p.more_like_this(2, 5).unwrap().first(), Some(&3));
        for i in 0..6 {
            assert!(!p.more_like_this(i, 6).unwrap().contains(&i));
        }
        assert!(p.more_like_this(6, 5).is_err());
    }

    #[test]
    fn rrf_matches_hand_computed_order() {
        // k = 1: 8 → 1/3 + 1/2 = .83; 7 → 1/2 + 1/5 = .7; 9 → 1/4 + 1/4 = .5; 6 → 1/3.
        let a: &[u32] = &[7, 8, 9];
        let b: &[u32] = &[8, 6, 9, 7];
        assert_eq!(rrf(&[a, b], 1.0, 10), vec![8, 7, 9, 6]);
        assert_eq!(rrf(&[&[3, 3, 4][..], &[4, 3][..]], 60.0, 10), vec![3, 4]);
        assert_eq!(rrf(&[&[6][..], &[5][..]], 60.0, 10), vec![5, 6]);
        // The same ranks in any order of lists: an exact tie, broken by the id.
        assert_eq!(rrf(&[&[3, 1, 2][..], &[2, 3, 1][..], &[1, 2, 3][..]], 60.0, 3), vec![1, 2, 3]);
        assert_eq!(rrf(&[a, b], 1.0, 2), vec![8, 7]);
        assert!(rrf(&[], 60.0, 5).is_empty());
    }
}
