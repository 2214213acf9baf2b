//! BM25F lexical retrieval over the catalog's text fields (tantivy).
//!
//! Every searched field is analysed by its own analyzer (schema) and its
//! terms are written, each repeated by the field's weight, into one indexed
//! field. tantivy's BM25 over that field is BM25F (Robertson & Zaragoza,
//! "The Probabilistic Relevance Framework", 2009, §3.6): weighted term
//! frequencies and a weighted length, one saturation and one IDF per term
//! across fields. So one title word cannot outweigh a description that
//! matches the whole query (per-field scores taken as a dis-max did), and a
//! word repeated in two fields does not count twice.
//!
//! User text is never parsed as query syntax: it is run through the same
//! analyzers and becomes a disjunction of term queries, so `AND`, quotes,
//! `field:value` or a stray `(` are just words. The disjunction is scored
//! with tantivy's block-max WAND top-k; a filter is applied to an
//! over-fetched pruned top-k, and only when that leaves too few hits is
//! every match scored under the filter.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use tantivy::collector::{FilterCollector, TopDocs};
use tantivy::directory::{Directory, RamDirectory};
use tantivy::query::{Bm25StatisticsProvider, BooleanQuery, BoostQuery, Occur, Query, TermQuery};
use tantivy::schema::{Field, IndexRecordOption, Schema as TantivySchema, TextFieldIndexing, TextOptions, FAST, INDEXED};
use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, TextAnalyzer, WhitespaceTokenizer,
};
use tantivy::{DocAddress, Index, IndexReader, IndexWriter, ReloadPolicy, Searcher, TantivyDocument, Term};

use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::request::TextStatistics;
use crate::schema::{Analyzer, Schema};

/// Name under which the indexed field's tokenizer is registered: the text
/// written to it is already analysed, terms separated by spaces.
const TERMS_TOKENIZER: &str = "twostage-terms";
/// The one indexed text field.
const TEXT_FIELD: &str = "text";
/// The u64 fast field holding the internal item id.
const ITEM_FIELD: &str = "item";
/// At most this many distinct query terms are used per analyzer; a 100 KB
/// query must not become a 20,000-clause boolean query.
pub(crate) const MAX_QUERY_TERMS: usize = 32;
/// tantivy's footer ends with two u32s (footer length, magic number).
const TANTIVY_FOOTER_MIN_BYTES: usize = 8;
/// A filtered search first takes this many times `n` pruned hits and
/// filters them; only when fewer than `n` pass is every match scored.
const FILTER_OVERFETCH: usize = 4;

fn words_analyzer() -> TextAnalyzer {
    // Unicode-aware word split, lower case, accents folded ("Beyoncé" finds
    // "beyonce"); names and titles match as written.
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

fn english_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .filter(Stemmer::new(Language::English))
        .build()
}

fn terms_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(WhitespaceTokenizer::default()).build()
}

/// Runs `analyzer` over `text`, calling `emit` per token, until `emit`
/// returns false.
fn tokens(analyzer: Analyzer, text: &str, mut emit: impl FnMut(&str) -> bool) {
    thread_local! {
        // Feature assembly analyses two texts per candidate: build the
        // analyzers once per thread, not once per call.
        static ANALYZERS: std::cell::RefCell<[TextAnalyzer; 2]> =
            std::cell::RefCell::new([words_analyzer(), english_analyzer()]);
    }
    ANALYZERS.with(|a| {
        let mut analyzers = a.borrow_mut();
        let a = match analyzer {
            Analyzer::Words => &mut analyzers[0],
            Analyzer::English => &mut analyzers[1],
        };
        let mut stream = a.token_stream(text);
        while stream.advance() {
            if !emit(&stream.token().text) {
                break;
            }
        }
    })
}

/// Analyses `text` into at most [`MAX_QUERY_TERMS`] distinct words as
/// written (the words analyzer), in order of first appearance. The ranker's
/// match features compare these.
pub(crate) fn analyze(text: &str) -> Vec<String> {
    let mut terms: Vec<String> = Vec::new();
    tokens(Analyzer::Words, text, |t| {
        if !terms.iter().any(|x| x == t) {
            terms.push(t.to_string());
        }
        terms.len() < MAX_QUERY_TERMS
    });
    terms
}

fn tantivy_error(e: tantivy::TantivyError) -> Error {
    Error::internal_by("lexical", e)
}

/// The searchable text of one field of one item, per the schema.
pub(crate) fn field_text(catalog_item: &crate::catalog::Item, source: &str) -> String {
    match source.split_once('.') {
        None if source == "title" => catalog_item.title.clone(),
        Some(("text", name)) => catalog_item.text.get(name).cloned().unwrap_or_default(),
        Some(("tags", name)) => catalog_item.tags.get(name).map(|v| v.join(" ")).unwrap_or_default(),
        Some(("attributes", name)) => catalog_item.attributes.get(name).map(|a| a.to_string()).unwrap_or_default(),
        _ => String::new(),
    }
}

fn tantivy_schema() -> (TantivySchema, Field, Field) {
    let mut builder = TantivySchema::builder();
    let indexing = TextFieldIndexing::default()
        .set_tokenizer(TERMS_TOKENIZER)
        .set_index_option(IndexRecordOption::WithFreqs);
    let text = builder.add_text_field(TEXT_FIELD, TextOptions::default().set_indexing_options(indexing));
    let item = builder.add_u64_field(ITEM_FIELD, FAST | INDEXED);
    (builder.build(), text, item)
}

/// The BM25F document of one item: every searched field's terms, each
/// repeated by the field's weight, separated by spaces.
fn weighted_terms(item: &crate::catalog::Item, schema: &Schema, out: &mut String) {
    out.clear();
    for spec in &schema.text_fields {
        let text = field_text(item, &spec.source);
        // The schema was validated: a whole number from 1 to MAX_BOOST.
        let repeat = spec.boost as usize;
        tokens(spec.analyzer, &text, |t| {
            for _ in 0..repeat {
                out.push_str(t);
                out.push(' ');
            }
            true
        });
    }
}

/// Writes a tantivy index of `catalog`'s text fields into `dir` (created).
/// `indexed(documents so far)` is called as documents are added.
pub(crate) fn build(catalog: &Catalog, schema: &Schema, dir: &Path, indexed: &dyn Fn(usize)) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let (tschema, text_field, item_field) = tantivy_schema();
    let index = Index::create_in_dir(dir, tschema).map_err(tantivy_error)?;
    index.tokenizers().register(TERMS_TOKENIZER, terms_analyzer());
    // One indexing thread keeps the build reproducible and the index in few segments.
    let mut writer = index
        .writer_with_num_threads::<TantivyDocument>(1, 256 << 20)
        .map_err(tantivy_error)?;
    let mut terms = String::new();
    for (i, item) in catalog.items().iter().enumerate() {
        let mut doc = TantivyDocument::default();
        weighted_terms(item, schema, &mut terms);
        if !terms.is_empty() {
            doc.add_text(text_field, &terms);
        }
        doc.add_u64(item_field, i as u64);
        writer.add_document(doc).map_err(tantivy_error)?;
        if (i + 1) % crate::progress::REPORT_EVERY == 0 {
            indexed(i + 1);
        }
    }
    indexed(catalog.len());
    writer.commit().map_err(tantivy_error)?;
    let segments = index.searchable_segment_ids().map_err(tantivy_error)?;
    if segments.len() > 1 {
        writer.merge(&segments).wait().map_err(tantivy_error)?;
    }
    writer.wait_merging_threads().map_err(tantivy_error)?;
    drop(index);
    // tantivy leaves its (released) lock files behind on disk. They are not
    // index data, and a lock file loaded into the in-memory directory at
    // open would read as a held lock: leave none in the index.
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        let is_lock = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(".tantivy-") && n.ends_with(".lock"));
        if is_lock {
            std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        }
    }
    Ok(())
}

/// An opened lexical index, held in memory from bytes already verified
/// against the manifest (so tantivy never reads an unchecked byte from disk).
pub(crate) struct LexicalIndex {
    index: Index,
    reader: IndexReader,
    /// Adds upserted items' documents, opened by the first upsert.
    writer: std::sync::Mutex<Option<IndexWriter>>,
    field: Field,
    item_field: Field,
    /// The distinct analyzers of the schema's fields: a search is analysed
    /// by each, so its words meet every field's terms.
    analyzers: Vec<Analyzer>,
    schema: Schema,
}

/// The text index as of one moment: what one request searches, however
/// many upserts commit while it runs.
#[derive(Clone)]
pub(crate) struct TextSnapshot(Searcher);

/// A more-like-this query keeps this many of the item's terms (Lucene
/// MoreLikeThis's default `maxQueryTerms`).
pub(crate) const MLT_TERMS: usize = 25;
/// A more-like-this query leaves out terms in more than this share of the
/// items (Lucene MoreLikeThis's `maxDocFreqPct`): they say little about what
/// is alike, and their long posting lists are most of the query's cost.
/// Measured (BENCHMARKS.md): on the man-pages SEE ALSO task Recall@10 0.5541
/// with every term, 0.5318 at 5%, 0.5560 at 15%, 0.5578 at 30%; listening p99
/// at 100k items 10.3, 1.7, 5.1 and 5.6 ms...
pub(crate) const MLT_MAX_DOC_SHARE: f64 = 0.15;
/// ...and never terms in more than this many items: a posting list's length
/// grows with the catalog, so a share alone lets large catalogs' queries grow
/// without bound (at 1M items and 15%, listening p99 was 35 ms)...
pub(crate) const MLT_MAX_DOC_FREQ: u64 = 5_000;
/// ...unless they are in at most this many items (a small catalog's terms
/// are all in a large share of it).
pub(crate) const MLT_ALWAYS_DOC_FREQ: u64 = 50;

impl LexicalIndex {
    /// Opens from `files` (path relative to the text directory → bytes).
    pub(crate) fn from_files(files: &BTreeMap<String, Vec<u8>>, schema: &Schema, source: &Path) -> Result<LexicalIndex> {
        // Our checksums have already passed, so this only sees bytes the
        // builder wrote, or bytes crafted to match. tantivy is not hardened
        // against the latter: a panic inside it becomes a corruption error.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Self::open_verified(files, schema, source)))
            .unwrap_or_else(|_| Err(Error::corrupt(source, "the text index could not be decoded (tantivy panicked)")))
    }

    fn open_verified(files: &BTreeMap<String, Vec<u8>>, schema: &Schema, source: &Path) -> Result<LexicalIndex> {
        let dir = RamDirectory::create();
        for (name, bytes) in files {
            // tantivy 0.27 checks a footer-carrying file for 4 bytes but then
            // reads 8 from its end, and panics on a file of 4 to 7 bytes
            // (found by fuzzing). Every file but the two JSON ones carries one.
            if !name.ends_with(".json") {
                if bytes.len() < TANTIVY_FOOTER_MIN_BYTES {
                    return Err(Error::corrupt(source.join(name), "shorter than a tantivy file footer"));
                }
                // Every file's own footer checksum, whatever `.managed.json`
                // lists: tantivy's `Index::validate_checksum` only checks the
                // files that list names, so a damaged list hid a damaged file
                // (found by fuzzing; tantivy then panicked opening it).
                let slice = tantivy::directory::FileSlice::from(bytes.clone());
                let footer_ok = tantivy::directory::footer::Footer::extract_footer(slice)
                    .ok()
                    .and_then(|(footer, body)| body.read_bytes().ok().map(|b| crc32fast::hash(b.as_slice()) == footer.crc))
                    .unwrap_or(false);
                if !footer_ok {
                    return Err(Error::corrupt(source.join(name), "tantivy footer missing or checksum mismatch"));
                }
            }
            dir.atomic_write(Path::new(name), bytes)
                .map_err(|e| Error::io(source.join(name), e))?;
        }
        let index = Index::open(dir).map_err(|e| Error::corrupt_by(source, e))?;
        // tantivy's own per-file footer checksums, checked before any segment
        // is opened: a second line of defence behind the manifest's.
        let damaged = index.validate_checksum().map_err(|e| Error::corrupt_by(source, e))?;
        if let Some(file) = damaged.iter().next() {
            return Err(Error::corrupt(source.join(file), "tantivy footer checksum mismatch"));
        }
        let (expected, field, item_field) = tantivy_schema();
        let found = index.schema();
        let same = expected.fields().count() == found.fields().count()
            && expected.fields().all(|(f, entry)| found.get_field_entry(f).name() == entry.name());
        if !same {
            return Err(Error::corrupt(source, "text index fields do not match this version's"));
        }
        index.tokenizers().register(TERMS_TOKENIZER, terms_analyzer());
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(|e| Error::corrupt_by(source, e))?;
        let mut analyzers: Vec<Analyzer> = schema.text_fields.iter().map(|f| f.analyzer).collect();
        analyzers.sort_by_key(|a| *a as u8);
        analyzers.dedup();
        Ok(LexicalIndex {
            index,
            reader,
            writer: std::sync::Mutex::new(None),
            field,
            item_field,
            analyzers,
            schema: schema.clone(),
        })
    }

    /// The index as of now, for one request to search throughout.
    pub(crate) fn snapshot(&self) -> TextSnapshot {
        TextSnapshot(self.reader.searcher())
    }

    /// Stages the documents of upserted `items` (internal id, record), each
    /// replacing the item's earlier document: searchable from the snapshot
    /// [`Self::publish`] returns, gone if [`Self::discard`] is called instead.
    pub(crate) fn stage(&self, items: &[(u32, &crate::catalog::Item)]) -> Result<()> {
        let mut guard = self
            .writer
            .lock()
            .map_err(|_| Error::internal("lexical", "a writer panicked while holding the text index"))?;
        if guard.is_none() {
            // One thread: live batches are small, and the service's cores serve requests.
            let w = self
                .index
                .writer_with_num_threads::<TantivyDocument>(1, 32 << 20)
                .map_err(tantivy_error)?;
            *guard = Some(w);
        }
        let Some(writer) = guard.as_mut() else {
            return Err(Error::internal("lexical", "the text index writer was not opened"));
        };
        let mut terms = String::new();
        for &(i, item) in items {
            writer.delete_term(Term::from_field_u64(self.item_field, u64::from(i)));
            let mut doc = TantivyDocument::default();
            weighted_terms(item, &self.schema, &mut terms);
            if !terms.is_empty() {
                doc.add_text(self.field, &terms);
            }
            doc.add_u64(self.item_field, u64::from(i));
            writer.add_document(doc).map_err(tantivy_error)?;
        }
        Ok(())
    }

    /// Commits what [`Self::stage`] staged and returns the snapshot that
    /// searches it.
    pub(crate) fn publish(&self) -> Result<TextSnapshot> {
        let mut guard = self
            .writer
            .lock()
            .map_err(|_| Error::internal("lexical", "a writer panicked while holding the text index"))?;
        if let Some(writer) = guard.as_mut() {
            writer.commit().map_err(tantivy_error)?;
            self.reader.reload().map_err(tantivy_error)?;
        }
        Ok(self.snapshot())
    }

    /// Drops what [`Self::stage`] staged (its write failed).
    pub(crate) fn discard(&self) {
        if let Ok(mut guard) = self.writer.lock() {
            if let Some(writer) = guard.as_mut() {
                if writer.rollback().is_err() {
                    // The writer is unusable: the next upsert opens another.
                    *guard = None;
                }
            }
        }
    }

    /// The search terms of `text`: its words through every analyzer the
    /// index uses, distinct, at most [`MAX_QUERY_TERMS`] per analyzer.
    pub(crate) fn query_terms(&self, text: &str) -> Vec<String> {
        let mut terms: Vec<String> = Vec::new();
        for &analyzer in &self.analyzers {
            let mut taken = 0;
            tokens(analyzer, text, |t| {
                if !terms.iter().any(|x| x == t) {
                    terms.push(t.to_string());
                    taken += 1;
                }
                taken < MAX_QUERY_TERMS
            });
        }
        terms
    }

    /// The salient terms of `item`, for a more-like-this query: its
    /// weighted terms (as indexed) ranked by tf·idf, the [`MLT_TERMS`] best
    /// that some other item also has and at most [`MLT_MAX_DOC_SHARE`] of the
    /// items and [`MLT_MAX_DOC_FREQ`] items (or [`MLT_ALWAYS_DOC_FREQ`]) have, each with its tf·idf over the best
    /// one's as its boost (Lucene MoreLikeThis's `boost` option). As
    /// MoreLikeThis does for a field without term vectors, the item's text
    /// is analysed again.
    pub(crate) fn salient_terms(&self, snapshot: &TextSnapshot, item: &crate::catalog::Item) -> Result<Vec<(String, f32)>> {
        let mut text = String::new();
        weighted_terms(item, &self.schema, &mut text);
        let mut tf: std::collections::HashMap<&str, u32> = std::collections::HashMap::new();
        for t in text.split(' ').filter(|t| !t.is_empty()) {
            *tf.entry(t).or_insert(0) += 1;
        }
        let searcher = &snapshot.0;
        let docs = searcher.num_docs() as f64;
        let mut scored: Vec<(f64, &str)> = Vec::with_capacity(tf.len());
        for (term, n) in tf {
            let df = searcher.doc_freq(&Term::from_field_text(self.field, term)).map_err(tantivy_error)?;
            if df >= 2 && (df <= MLT_ALWAYS_DOC_FREQ || (df <= MLT_MAX_DOC_FREQ && df as f64 <= MLT_MAX_DOC_SHARE * docs)) {
                scored.push((f64::from(n) * (1.0 + ((docs + 1.0) / (df as f64 + 1.0)).ln()), term));
            }
        }
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
        let best = scored.first().map_or(1.0, |s| s.0);
        Ok(scored
            .into_iter()
            .take(MLT_TERMS)
            .map(|(s, t)| (t.to_string(), (s / best) as f32))
            .collect())
    }

    /// The BM25 statistics of `terms` (from [`Self::query_terms`]) in this index.
    pub(crate) fn statistics(&self, snapshot: &TextSnapshot, terms: &[String]) -> Result<TextStatistics> {
        let searcher = &snapshot.0;
        let mut doc_freq = std::collections::BTreeMap::new();
        for t in terms {
            let n = searcher.doc_freq(&Term::from_field_text(self.field, t)).map_err(tantivy_error)?;
            doc_freq.insert(t.clone(), n);
        }
        Ok(TextStatistics {
            // As tantivy's own provider counts them.
            docs: Bm25StatisticsProvider::total_num_docs(searcher).map_err(tantivy_error)?,
            tokens: searcher.total_num_tokens(self.field).map_err(tantivy_error)?,
            doc_freq,
        })
    }

    /// The `n` best BM25F matches for `terms` (from [`Self::query_terms`])
    /// among items `accept` lets through, best first, as (item, score);
    /// scored with `statistics` in place of this index's own when given.
    pub(crate) fn search(
        &self,
        snapshot: &TextSnapshot,
        terms: &[String],
        n: usize,
        accept: Arc<dyn Fn(u32) -> bool + Send + Sync>,
        statistics: Option<&TextStatistics>,
    ) -> Result<Vec<(u32, f32)>> {
        let weighted: Vec<(&str, f32)> = terms.iter().map(|t| (t.as_str(), 1.0)).collect();
        self.search_weighted(snapshot, &weighted, n, accept, statistics)
    }

    /// [`Self::search`] with a boost per term (a term's BM25F score is
    /// multiplied by it; tantivy passes boosts down to the term scorers, so
    /// block-max WAND pruning still applies).
    pub(crate) fn search_weighted(
        &self,
        snapshot: &TextSnapshot,
        terms: &[(&str, f32)],
        n: usize,
        accept: Arc<dyn Fn(u32) -> bool + Send + Sync>,
        statistics: Option<&TextStatistics>,
    ) -> Result<Vec<(u32, f32)>> {
        if terms.is_empty() || n == 0 {
            return Ok(Vec::new());
        }
        let clauses: Vec<(Occur, Box<dyn Query>)> = terms
            .iter()
            .map(|&(t, boost)| {
                let q = TermQuery::new(Term::from_field_text(self.field, t), IndexRecordOption::WithFreqs);
                let q: Box<dyn Query> = if boost == 1.0 {
                    Box::new(q)
                } else {
                    Box::new(BoostQuery::new(Box::new(q), boost))
                };
                (Occur::Should, q)
            })
            .collect();
        let query = BooleanQuery::new(clauses);
        let searcher = &snapshot.0;
        // Pruned top-k first. The accepted hits among the best `m` are the
        // best accepted hits overall as long as at least `n` of them are
        // accepted, or the `m` were every match.
        let m = n.saturating_mul(FILTER_OVERFETCH);
        // Scoring and pruning alike read the provider: block-max WAND
        // bounds come from the same BM25 weights.
        let global = statistics.map(|s| Catalogwide { statistics: s });
        let provider: &dyn Bm25StatisticsProvider = match &global {
            Some(g) => g,
            None => searcher,
        };
        let hits = searcher
            .search_with_statistics_provider(&query, &TopDocs::with_limit(m).order_by_score(), provider)
            .map_err(tantivy_error)?;
        let complete = hits.len() < m;
        let mut out = Vec::with_capacity(n);
        for (score, addr) in hits {
            match item_of(searcher, addr)? {
                Some(item) if accept(item) => out.push((item, score)),
                _ => {}
            }
            if out.len() == n {
                return Ok(out);
            }
        }
        if complete {
            return Ok(out);
        }
        // A selective filter: score every match it lets through.
        let filter = move |item: u64| u32::try_from(item).is_ok_and(|i| accept(i));
        let collector = FilterCollector::new(ITEM_FIELD.to_string(), filter, TopDocs::with_limit(n).order_by_score());
        let hits = searcher
            .search_with_statistics_provider(&query, &collector, provider)
            .map_err(tantivy_error)?;
        let mut out = Vec::with_capacity(hits.len());
        for (score, addr) in hits {
            if let Some(item) = item_of(searcher, addr)? {
                out.push((item, score));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
impl LexicalIndex {
    /// The text index of `catalog`, built and opened as an index is.
    pub(crate) fn in_memory(catalog: &Catalog, schema: &Schema) -> LexicalIndex {
        let tmp = tempfile::tempdir().expect("a temporary directory");
        build(catalog, schema, tmp.path(), &|_| {}).expect("the text index builds");
        let files: BTreeMap<String, Vec<u8>> = std::fs::read_dir(tmp.path())
            .expect("the text index directory")
            .map(|e| {
                let e = e.expect("a directory entry");
                (
                    e.file_name().into_string().expect("a UTF-8 name"),
                    std::fs::read(e.path()).expect("a readable file"),
                )
            })
            .collect();
        LexicalIndex::from_files(&files, schema, Path::new("text")).expect("the text index opens")
    }
}

/// BM25 statistics given with a request, for tantivy's scorers.
struct Catalogwide<'a> {
    statistics: &'a TextStatistics,
}

impl Bm25StatisticsProvider for Catalogwide<'_> {
    fn total_num_tokens(&self, _field: Field) -> tantivy::Result<u64> {
        Ok(self.statistics.tokens)
    }

    fn total_num_docs(&self) -> tantivy::Result<u64> {
        Ok(self.statistics.docs)
    }

    fn doc_freq(&self, term: &Term) -> tantivy::Result<u64> {
        // `resolve` refused statistics without every term of the search;
        // a more-like-this term is never scored with them.
        Ok(term
            .value()
            .as_str()
            .and_then(|t| self.statistics.doc_freq.get(t))
            .copied()
            .unwrap_or(0))
    }
}

/// The catalog index of the document at `addr`.
fn item_of(searcher: &Searcher, addr: DocAddress) -> Result<Option<u32>> {
    let column = searcher
        .segment_reader(addr.segment_ord)
        .fast_fields()
        .u64(ITEM_FIELD)
        .map_err(tantivy_error)?;
    Ok(column.first(addr.doc_id).and_then(|v| u32::try_from(v).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn analysis_folds_case_and_accents_and_ignores_syntax() {
        assert_eq!(
            analyze("Beyoncé AND (title:\"Halo\")~2 ^3 *"),
            vec!["beyonce", "and", "title", "halo", "2", "3"]
        );
        assert!(analyze("   ").is_empty());
        assert!(analyze("🎵🎶").is_empty());
        assert_eq!(analyze("東京 Ünïcode").len(), 2);
        let long: String = (0..10_000).map(|i| format!("w{i} ")).collect();
        assert_eq!(analyze(&long).len(), MAX_QUERY_TERMS);
    }

    fn open(catalog: &Catalog, schema: &Schema) -> LexicalIndex {
        LexicalIndex::in_memory(catalog, schema)
    }

    fn item(id: &str, title: &str, description: &str) -> crate::catalog::Item {
        let mut it = crate::catalog::Item::new(id, title);
        it.text.insert("description".into(), description.into());
        it
    }

    #[test]
    fn bm25f_lets_a_matching_description_beat_one_title_word() {
        // The case: three items whose short name holds one query
        // word, one whose description matches nearly the whole query.
        let catalog = Catalog::new(vec![
            item("osmose", "osmose-emulator", "Sega Master System emulator for games"),
            item("deepin", "deepin-terminal", "a terminal for the deepin desktop"),
            item("xfce4", "xfce4-terminal", "the Xfce terminal, with tabs"),
            item(
                "qt",
                "libqtermwidget5-1",
                "Terminal emulator widget for Qt 5 (shared libraries), used by terminals",
            ),
        ])
        .unwrap();
        let schema = Schema::infer(&catalog);
        let index = open(&catalog, &schema);
        let terms = index.query_terms("Terminal emulator widget for Qt 5 (shared libraries)");
        let hits = index.search(&index.snapshot(), &terms, 4, Arc::new(|_| true), None).unwrap();
        assert_eq!(hits[0].0, 3, "{hits:?}");
        // Stemmed: "terminals" and "emulators" find their singular forms.
        let hits = index
            .search(&index.snapshot(), &index.query_terms("emulators"), 4, Arc::new(|_| true), None)
            .unwrap();
        assert_eq!(hits.len(), 2, "{hits:?}");
        // More like this: the other terminals, never an unrelated emulator first.
        let salient = index.salient_terms(&index.snapshot(), &catalog.items()[1]).unwrap();
        assert!(salient.iter().all(|(_, b)| *b > 0.0 && *b <= 1.0));
        assert!(salient.iter().any(|(t, _)| t == "termin"), "{salient:?}");
        let salient: Vec<(&str, f32)> = salient.iter().map(|(t, b)| (t.as_str(), *b)).collect();
        let hits = index
            .search_weighted(&index.snapshot(), &salient, 4, Arc::new(|i| i != 1), None)
            .unwrap();
        assert!([2, 3].contains(&hits[0].0), "{hits:?}");
    }

    #[test]
    fn more_like_this_leaves_out_terms_most_items_have() {
        // 400 items: "song" in all, "blue" in 60 (15% of 400), "jazz" in 61,
        // "rare" in 3; item 0 has them all.
        let items = (0..400)
            .map(|i| {
                let mut text = String::from("song");
                for (word, n) in [("blue", 60), ("jazz", 61), ("rare", 3)] {
                    if i < n {
                        text += &format!(" {word}");
                    }
                }
                item(&format!("i{i}"), &format!("t{i}"), &text)
            })
            .collect();
        let catalog = Catalog::new(items).unwrap();
        let index = open(&catalog, &Schema::infer(&catalog));
        let terms: Vec<String> = index
            .salient_terms(&index.snapshot(), &catalog.items()[0])
            .unwrap()
            .into_iter()
            .map(|t| t.0)
            .collect();
        assert!(
            terms.contains(&"rare".to_string()) && terms.contains(&"blue".to_string()),
            "{terms:?}"
        );
        assert!(!terms.contains(&"jazz".to_string()), "in more than 15% of the items: {terms:?}");
        assert!(!terms.contains(&"song".to_string()), "{terms:?}");
    }

    #[test]
    fn a_filtered_search_is_the_filtered_full_ranking() {
        // Every item matches; the filter keeps one in seven, so the pruned
        // over-fetch cannot fill n and the full filtered scoring runs.
        let items = (0..300)
            .map(|i| item(&format!("i{i}"), &format!("song {i}"), &"la ".repeat(1 + i % 17)))
            .collect();
        let catalog = Catalog::new(items).unwrap();
        let index = open(&catalog, &Schema::infer(&catalog));
        let terms = index.query_terms("la song");
        let all = index.search(&index.snapshot(), &terms, 300, Arc::new(|_| true), None).unwrap();
        assert_eq!(all.len(), 300);
        for (keep, n) in [(7, 10), (2, 10), (1, 5)] {
            let got = index
                .search(&index.snapshot(), &terms, n, Arc::new(move |i| i % keep == 0), None)
                .unwrap();
            let want: Vec<(u32, f32)> = all.iter().copied().filter(|(i, _)| i % keep == 0).take(n).collect();
            let scores = |v: &[(u32, f32)]| v.iter().map(|h| h.1).collect::<Vec<_>>();
            // Equal scores may come in either order: compare the scores.
            assert_eq!(scores(&got), scores(&want), "keep 1 in {keep}");
            assert!(got.iter().all(|(i, _)| i % keep == 0));
        }
    }

    #[test]
    fn bytes_that_pass_our_checksums_but_not_tantivys_are_corrupt() {
        let items = (0..20)
            .map(|i| crate::catalog::Item::new(format!("i{i}"), format!("title {i}")))
            .collect();
        let catalog = Catalog::new(items).unwrap();
        let schema = Schema::infer(&catalog);
        let tmp = tempfile::tempdir().unwrap();
        build(&catalog, &schema, tmp.path(), &|_| {}).unwrap();
        let mut files: BTreeMap<String, Vec<u8>> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.file_name().into_string().unwrap(), std::fs::read(e.path()).unwrap())
            })
            .collect();
        let search = |idx: &LexicalIndex| {
            idx.search(&idx.snapshot(), &analyze("title 3"), 5, Arc::new(|_| true), None)
                .unwrap()
        };
        assert!(!search(&LexicalIndex::from_files(&files, &schema, Path::new("text")).unwrap()).is_empty());
        // Damage the middle of the largest segment file (behind its footer checksum).
        let (name, bytes) = files
            .iter_mut()
            .filter(|(n, _)| !n.ends_with(".json"))
            .max_by_key(|(_, b)| b.len())
            .unwrap();
        let name = name.clone();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x10;
        let e = LexicalIndex::from_files(&files, &schema, Path::new("text"))
            .err()
            .expect("damage not detected");
        assert!(e.to_string().contains(&name), "{e}");
        // Files of 4 to 7 bytes made tantivy's footer check panic (found by fuzzing).
        for len in 0..TANTIVY_FOOTER_MIN_BYTES {
            files.get_mut(&name).unwrap().truncate(len);
            let e = LexicalIndex::from_files(&files, &schema, Path::new("text"))
                .err()
                .expect("truncation not detected");
            assert!(e.to_string().contains(&name), "{e}");
        }
    }

    #[test]
    fn an_upsert_replaces_a_document_and_a_snapshot_keeps_its_moment() {
        let catalog = Catalog::new(vec![item("a", "red song", "loud"), item("b", "blue song", "quiet")]).unwrap();
        let index = open(&catalog, &Schema::infer(&catalog));
        let hits = |snap: &TextSnapshot, q: &str| -> Vec<u32> {
            let mut v: Vec<u32> = index
                .search(snap, &index.query_terms(q), 10, Arc::new(|_| true), None)
                .unwrap()
                .into_iter()
                .map(|h| h.0)
                .collect();
            v.sort_unstable();
            v
        };
        let before = index.snapshot();
        // Item 1 changes its words; item 2 is new.
        let changed = item("b", "green song", "quiet");
        let added = item("c", "blue tune", "new");
        index.stage(&[(1, &changed), (2, &added)]).unwrap();
        let after = index.publish().unwrap();
        assert_eq!(hits(&after, "blue"), [2]);
        assert_eq!(hits(&after, "green"), [1]);
        assert_eq!(hits(&after, "song"), [0, 1], "the old document of item 1 is gone");
        assert_eq!(hits(&before, "blue"), [1], "an earlier snapshot still sees its moment");
        // A discarded stage leaves nothing behind.
        index.stage(&[(3, &item("d", "blue", ""))]).unwrap();
        index.discard();
        assert_eq!(hits(&index.publish().unwrap(), "blue"), [2]);
    }
}
