//! BM25 lexical retrieval over the catalog's text fields (tantivy).
//!
//! User text is never parsed as query syntax: it is run through the same
//! analyzer as the indexed text and becomes a disjunction of boosted term
//! queries, so `AND`, quotes, `field:value` or a stray `(` are just words.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use tantivy::collector::{FilterCollector, TopDocs};
use tantivy::directory::{Directory, RamDirectory};
use tantivy::query::{BooleanQuery, BoostQuery, DisjunctionMaxQuery, Occur, Query, TermQuery};
use tantivy::schema::{Field, IndexRecordOption, Schema as TantivySchema, TextFieldIndexing, TextOptions, FAST, INDEXED};
use tantivy::tokenizer::{AsciiFoldingFilter, LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer};
use tantivy::{Index, IndexReader, ReloadPolicy, TantivyDocument, Term};

use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::schema::Schema;

/// Name under which our analyzer is registered with tantivy.
const ANALYZER: &str = "twostage";
/// The u64 fast field holding the internal item id.
const ITEM_FIELD: &str = "item";
/// At most this many distinct query terms are used; a 100 KB query must not
/// become a 20,000-clause boolean query.
pub(crate) const MAX_QUERY_TERMS: usize = 32;
/// tantivy's footer ends with two u32s (footer length, magic number).
const TANTIVY_FOOTER_MIN_BYTES: usize = 8;
/// Weight of a term's matches in fields other than its best one.
const TIE_BREAKER: f32 = 0.2;

fn analyzer() -> TextAnalyzer {
    // Unicode-aware word split, lower case, accents folded ("Beyoncé" finds
    // "beyonce"); no stemming, so names and titles match as written.
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

/// Analyses `text` into at most [`MAX_QUERY_TERMS`] distinct terms, in order
/// of first appearance.
pub(crate) fn analyze(text: &str) -> Vec<String> {
    thread_local! {
        // Feature assembly analyses two texts per candidate: build the
        // analyzer once per thread, not once per call.
        static ANALYZER: std::cell::RefCell<TextAnalyzer> = std::cell::RefCell::new(analyzer());
    }
    ANALYZER.with(|a| {
        let mut analyzer = a.borrow_mut();
        let mut stream = analyzer.token_stream(text);
        let mut terms: Vec<String> = Vec::new();
        while stream.advance() {
            let t = &stream.token().text;
            if !terms.iter().any(|x| x == t) {
                terms.push(t.clone());
                if terms.len() == MAX_QUERY_TERMS {
                    break;
                }
            }
        }
        terms
    })
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

fn tantivy_schema(schema: &Schema) -> (TantivySchema, Vec<Field>, Field) {
    let mut builder = TantivySchema::builder();
    let indexing = TextFieldIndexing::default()
        .set_tokenizer(ANALYZER)
        .set_index_option(IndexRecordOption::WithFreqs);
    let options = TextOptions::default().set_indexing_options(indexing);
    // Field names are positional: catalog field names may hold characters
    // tantivy gives meaning to (dots are JSON paths).
    let fields = (0..schema.text_fields.len())
        .map(|i| builder.add_text_field(&format!("f{i}"), options.clone()))
        .collect();
    let item = builder.add_u64_field(ITEM_FIELD, FAST | INDEXED);
    (builder.build(), fields, item)
}

/// Writes a tantivy index of `catalog`'s text fields into `dir` (created).
/// `indexed(documents so far)` is called as documents are added.
pub(crate) fn build(catalog: &Catalog, schema: &Schema, dir: &Path, indexed: &dyn Fn(usize)) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let (tschema, fields, item_field) = tantivy_schema(schema);
    let index = Index::create_in_dir(dir, tschema).map_err(tantivy_error)?;
    index.tokenizers().register(ANALYZER, analyzer());
    // One indexing thread keeps the build reproducible and the index in few segments.
    let mut writer = index
        .writer_with_num_threads::<TantivyDocument>(1, 256 << 20)
        .map_err(tantivy_error)?;
    for (i, item) in catalog.items().iter().enumerate() {
        let mut doc = TantivyDocument::default();
        for (spec, field) in schema.text_fields.iter().zip(&fields) {
            let text = field_text(item, &spec.source);
            if !text.is_empty() {
                doc.add_text(*field, &text);
            }
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
    reader: IndexReader,
    fields: Vec<(Field, f32)>,
}

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
        let (expected, fields, _) = tantivy_schema(schema);
        let found = index.schema();
        let same = expected.fields().count() == found.fields().count()
            && expected.fields().all(|(f, entry)| found.get_field_entry(f).name() == entry.name());
        if !same {
            return Err(Error::corrupt(source, "text index fields do not match the manifest's schema"));
        }
        index.tokenizers().register(ANALYZER, analyzer());
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(|e| Error::corrupt_by(source, e))?;
        let fields = fields.into_iter().zip(schema.text_fields.iter().map(|f| f.boost)).collect();
        Ok(LexicalIndex { reader, fields })
    }

    /// The `n` best BM25 matches for `terms` (already analysed) among items
    /// `accept` lets through, best first, as (item, score).
    pub(crate) fn search(&self, terms: &[String], n: usize, accept: Arc<dyn Fn(u32) -> bool + Send + Sync>) -> Result<Vec<(u32, f32)>> {
        if terms.is_empty() || n == 0 {
            return Ok(Vec::new());
        }
        // Per term, the best field counts fully and the others a little
        // (dis-max with a tie breaker); terms add up. Summing every field
        // instead would let one word repeated in artist and album outrank an
        // item matching the whole query ("Signal Parade / Parade" over
        // "Heavy Parade" for the query "heavy parade").
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::with_capacity(terms.len());
        for term in terms {
            let per_field: Vec<Box<dyn Query>> = self
                .fields
                .iter()
                .map(|&(field, boost)| {
                    let q = TermQuery::new(Term::from_field_text(field, term), IndexRecordOption::WithFreqs);
                    Box::new(BoostQuery::new(Box::new(q), boost)) as Box<dyn Query>
                })
                .collect();
            clauses.push((
                Occur::Should,
                Box::new(DisjunctionMaxQuery::with_tie_breaker(per_field, TIE_BREAKER)),
            ));
        }
        let query = BooleanQuery::new(clauses);
        let searcher = self.reader.searcher();
        let filter = move |item: u64| u32::try_from(item).is_ok_and(|i| accept(i));
        let collector = FilterCollector::new(ITEM_FIELD.to_string(), filter, TopDocs::with_limit(n).order_by_score());
        let hits = searcher.search(&query, &collector).map_err(tantivy_error)?;
        let mut out = Vec::with_capacity(hits.len());
        for (score, addr) in hits {
            let column = searcher
                .segment_reader(addr.segment_ord)
                .fast_fields()
                .u64(ITEM_FIELD)
                .map_err(tantivy_error)?;
            if let Some(item) = column.first(addr.doc_id).and_then(|v| u32::try_from(v).ok()) {
                out.push((item, score));
            }
        }
        Ok(out)
    }
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
        let search = |idx: &LexicalIndex| idx.search(&analyze("title 3"), 5, Arc::new(|_| true)).unwrap();
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
}
