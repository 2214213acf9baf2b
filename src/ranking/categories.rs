//! Query–category affinity: which item categories a search's words point
//! at, learned from the logged searches and the items they led to — the
//! query classification of e-commerce search ("trail shoes" → the category
//! shoes), here over every tag value and text attribute of the catalog.
//!
//! It is a signal neither retriever has: BM25 and the content space compare
//! a query with an item's own text, while this compares it with what
//! earlier searchers using the same words chose. Two items with the same
//! title (WordNet's many senses of one word) tie in both spaces; the words
//! of a definition still say which lexicographer file it belongs to.
//!
//! For a category `c` and a query word `t`, the lift of `c` given `t` is
//! `P(c | t) / P(c)`, with `P(c | t)` smoothed towards `P(c)` by a
//! Dirichlet prior of [`PRIOR_SEARCHES`] searches, so a word seen once
//! moves it little and an unseen word not at all. A query's affinity with
//! `c` is the mean log-lift over its words; a candidate's feature is the
//! mean over its categories. An index without logged searches has an
//! empty model: the feature is 0 everywhere. A build from log artefacts
//! learns the same model from their search counts.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::catalog::{Attribute, Catalog, Item};
use crate::events::{EventKind, Events};

/// Weight of the prior, in searches: how many searches with a word it
/// takes before the word's own category counts outweigh the base rate.
/// Chosen on WordNet's 4,000 logged searches (category top-1 accuracy of
/// held-out queries: 0.51 at 1, 0.47 at 10).
const PRIOR_SEARCHES: f32 = 1.0;

/// Categories kept per word: the most frequent. Bounds the model and the
/// per-request work on a large log.
const MAX_CATEGORIES_PER_TERM: usize = 64;

/// Words kept: the most frequent in the log.
const MAX_TERMS: usize = 200_000;

/// How often each word of the logged searches went with each category.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct QueryCategories {
    /// The tag fields whose values are categories (the schema's).
    tag_fields: Vec<String>,
    /// Every category a logged search led to, by id.
    categories: Vec<CategoryKey>,
    /// Logged searches whose item has each category, by id.
    clicks: Vec<u32>,
    /// Logged searches learned from.
    searches: u32,
    /// Per word: the searches that contain it and, per category, how many
    /// of those led to an item of that category.
    terms: BTreeMap<String, TermCounts>,
}

/// Searches per category id, while learning.
type Counts = HashMap<u32, u32>;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct TermCounts {
    searches: u32,
    /// `(category, searches)`, most frequent first.
    categories: Vec<(u32, u32)>,
    /// Whether categories were left out ([`MAX_CATEGORIES_PER_TERM`]):
    /// then the word says nothing of those, rather than that it never led
    /// to them.
    truncated: bool,
}

/// An item's categories: each value of its tag fields, each text attribute.
fn categories_of<'a>(item: &'a Item, tag_fields: &'a [String]) -> impl Iterator<Item = Category<'a>> + 'a {
    let tags = tag_fields.iter().flat_map(move |f| {
        item.tags
            .get(f)
            .into_iter()
            .flatten()
            .map(move |v| Category::Tag(f.as_str(), v.as_str()))
    });
    let attributes = item.attributes.iter().filter_map(|(k, a)| match a {
        Attribute::Text(v) => Some(Category::Attribute(k.as_str(), v.as_str())),
        Attribute::Number(_) => None,
    });
    tags.chain(attributes)
}

/// One category of an item, borrowed: a value of a tag field, or a text
/// attribute's value.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Category<'a> {
    Tag(&'a str, &'a str),
    Attribute(&'a str, &'a str),
}

/// A category as the model stores it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
enum CategoryKey {
    Tag(String, String),
    Attribute(String, String),
}

impl Category<'_> {
    fn owned(self) -> CategoryKey {
        match self {
            Category::Tag(f, v) => CategoryKey::Tag(f.into(), v.into()),
            Category::Attribute(f, v) => CategoryKey::Attribute(f.into(), v.into()),
        }
    }
}

impl CategoryKey {
    fn borrowed(&self) -> Category<'_> {
        match self {
            CategoryKey::Tag(f, v) => Category::Tag(f, v),
            CategoryKey::Attribute(f, v) => Category::Attribute(f, v),
        }
    }
}

impl QueryCategories {
    /// Learns from every search event of `events` with a query: its words
    /// (as the ranker's match features analyse them) against the
    /// categories of the item it led to.
    pub fn learn(catalog: &Catalog, tag_fields: &[String], events: &Events) -> QueryCategories {
        let searches = events.events().iter().filter_map(|e| match (e.kind, &e.query) {
            (EventKind::Search, Some(q)) => Some((q.as_str(), e.item, 1)),
            _ => None,
        });
        QueryCategories::learn_counted(catalog, tag_fields, searches)
    }

    /// Learns from `(query, item, times)`: `times` searches for `query` that
    /// led to internal item `item` (unknown items are skipped). The model
    /// depends only on the multiset of searches, not on their order: the
    /// log artefacts' aggregated `searches` give the model the events give.
    pub fn learn_counted<'q>(
        catalog: &Catalog,
        tag_fields: &[String],
        searches: impl IntoIterator<Item = (&'q str, u32, u64)>,
    ) -> QueryCategories {
        let mut model = QueryCategories {
            tag_fields: tag_fields.to_vec(),
            ..QueryCategories::default()
        };
        let mut pairs: HashMap<String, (u32, Counts)> = HashMap::new();
        let mut ids: HashMap<Category<'_>, u32> = HashMap::new();
        let mut keys: Vec<Category<'_>> = Vec::new();
        for (query, item, times) in searches {
            let Some(item) = catalog.items().get(item as usize).filter(|_| times > 0) else {
                continue;
            };
            // Counts saturate: a log of billions of searches cannot wrap them.
            let times = u32::try_from(times).unwrap_or(u32::MAX);
            let mut cats: Vec<u32> = categories_of(item, tag_fields)
                .map(|c| {
                    *ids.entry(c).or_insert_with(|| {
                        keys.push(c);
                        model.clicks.push(0);
                        model.clicks.len() as u32 - 1
                    })
                })
                .collect();
            // A value repeated in a tag list (or a tag field listed twice)
            // is one category: counted twice it would exceed its word's count.
            cats.sort_unstable();
            cats.dedup();
            if cats.is_empty() {
                continue;
            }
            model.searches = model.searches.saturating_add(times);
            for &c in &cats {
                if let Some(k) = model.clicks.get_mut(c as usize) {
                    *k = k.saturating_add(times);
                }
            }
            for t in crate::retrieval::lexical::analyze(query) {
                let (n, per) = pairs.entry(t).or_default();
                *n = n.saturating_add(times);
                for &c in &cats {
                    let k = per.entry(c).or_insert(0);
                    *k = k.saturating_add(times);
                }
            }
        }
        // Ids in the categories' own order, not in order of first sight:
        // ties below are broken by id, so the model is the same whatever
        // the order of the searches.
        let mut order: Vec<u32> = (0..keys.len() as u32).collect();
        order.sort_unstable_by_key(|&c| keys[c as usize]);
        let mut renumber = vec![0u32; keys.len()];
        for (new, &old) in order.iter().enumerate() {
            renumber[old as usize] = new as u32;
        }
        model.clicks = order.iter().map(|&old| model.clicks[old as usize]).collect();
        model.categories = order.iter().map(|&old| keys[old as usize].owned()).collect();
        let mut terms: Vec<(String, (u32, Counts))> = pairs
            .into_iter()
            .map(|(t, (n, per))| (t, (n, per.into_iter().map(|(c, k)| (renumber[c as usize], k)).collect())))
            .collect();
        terms.sort_unstable_by(|a, b| b.1 .0.cmp(&a.1 .0).then_with(|| a.0.cmp(&b.0)));
        terms.truncate(MAX_TERMS);
        model.terms = terms
            .into_iter()
            .map(|(t, (searches, per))| {
                let mut categories: Vec<(u32, u32)> = per.into_iter().collect();
                categories.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                let truncated = categories.len() > MAX_CATEGORIES_PER_TERM;
                categories.truncate(MAX_CATEGORIES_PER_TERM);
                (
                    t,
                    TermCounts {
                        searches,
                        categories,
                        truncated,
                    },
                )
            })
            .collect();
        model
    }

    /// The base rate of category `c` (`None`: a category no logged search
    /// led to), smoothed so that none is zero.
    fn base_rate(&self, c: Option<u32>) -> f32 {
        let clicks = c.and_then(|c| self.clicks.get(c as usize)).copied().unwrap_or(0);
        (clicks as f32 + 1.0) / (self.searches as f32 + self.clicks.len() as f32 + 1.0)
    }

    /// The affinity of a search's words (`terms`, from
    /// `lexical::analyze`) with every category; `None` when no word was
    /// ever logged, so that nothing would move.
    pub fn affinity(&self, terms: &[String]) -> Option<Affinity<'_>> {
        let known: Vec<&TermCounts> = terms.iter().filter_map(|t| self.terms.get(t)).collect();
        if known.is_empty() {
            return None;
        }
        // log((n(t,c) + μ·p) / ((n(t) + μ)·p)) = log(1 + n(t,c)/(μ·p)) − log(1 + n(t)/μ):
        // the second part is the same for every category, the first is
        // non-zero only for the categories the word was seen with.
        // A word whose list was cut puts its share on the categories it
        // lists: the others are unknown to it (lift 1), not unseen.
        let unseen = |k: &TermCounts| -(k.searches as f32 / PRIOR_SEARCHES).ln_1p();
        let base: f32 = known.iter().filter(|k| !k.truncated).map(|k| unseen(k)).sum();
        // Keyed by the category itself, so a candidate's categories are
        // looked up by hash, without an id map of the whole catalog.
        let mut boost: HashMap<Category<'_>, f32> = HashMap::new();
        for k in &known {
            for &(c, n) in &k.categories {
                let Some(key) = self.categories.get(c as usize) else {
                    continue; // `validate` refused dangling ids at open
                };
                let p = self.base_rate(Some(c));
                let mut lift = (n as f32 / (PRIOR_SEARCHES * p)).ln_1p();
                if k.truncated {
                    lift += unseen(k);
                }
                *boost.entry(key.borrowed()).or_insert(0.0) += lift;
            }
        }
        Some(Affinity {
            model: self,
            base,
            boost,
            words: terms.len() as f32,
        })
    }

    /// Logged searches the model learned from.
    pub fn searches(&self) -> usize {
        self.searches as usize
    }

    /// Checks the internal references (after decoding a file).
    pub fn validate(&self) -> Result<(), String> {
        let n = self.clicks.len();
        if self.categories.len() != n {
            return Err("category counts are inconsistent".into());
        }
        if self.terms.len() > MAX_TERMS || self.terms.values().any(|t| t.categories.len() > MAX_CATEGORIES_PER_TERM) {
            return Err("more words or categories per word than a build keeps".into());
        }
        let refs = self
            .terms
            .values()
            .flat_map(|t| t.categories.iter().map(move |&(c, k)| (t.searches, c, k)));
        if refs.clone().any(|(s, c, k)| c as usize >= n || k > s || s > self.searches) {
            return Err("a word's category counts are inconsistent".into());
        }
        Ok(())
    }
}

/// One search's affinity with every category.
pub(crate) struct Affinity<'a> {
    model: &'a QueryCategories,
    /// The summed log-lift of a category none of the words was seen with.
    base: f32,
    /// What each category the words were seen with adds to `base`.
    boost: HashMap<Category<'a>, f32>,
    /// Words of the search, known or not: an unknown word has lift 1.
    words: f32,
}

impl Affinity<'_> {
    /// The mean log-lift of the search's words over `item`'s categories;
    /// `None` for an item without categories.
    pub fn score(&self, item: &Item) -> Option<f32> {
        let (mut sum, mut n) = (0.0f32, 0u32);
        let mut seen: Vec<Category<'_>> = Vec::new();
        for c in categories_of(item, &self.model.tag_fields) {
            // Once each, as learning counts them (items have a handful).
            if seen.contains(&c) {
                continue;
            }
            seen.push(c);
            let boost = self.boost.get(&c).copied().unwrap_or(0.0);
            sum += (self.base + boost) / self.words;
            n += 1;
        }
        (n > 0).then(|| sum / n as f32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Event;

    fn item(id: &str, kind: &str) -> Item {
        let mut it = Item::new(id, "bank");
        it.attributes.insert("lexname".into(), Attribute::Text(kind.into()));
        it.tags.insert("pos".into(), vec!["noun".into()]);
        it
    }

    fn search(item: u32, query: &str, ts: i64) -> Event {
        Event {
            user: 0,
            item,
            ts,
            kind: EventKind::Search,
            query: Some(query.into()),
            session: None,
        }
    }

    #[test]
    fn the_words_of_earlier_searches_point_at_their_items_categories() {
        let catalog = Catalog::new(vec![
            item("money", "noun.group"),
            item("river", "noun.object"),
            item("loan", "noun.group"),
            item("shore", "noun.object"),
        ])
        .unwrap();
        let log = vec![
            search(2, "a financial institution that accepts deposits", 1),
            search(0, "an institution lending money", 2),
            search(3, "sloping land beside a body of water", 3),
        ];
        let events = Events::from_events(vec!["u".into()], log, &catalog).unwrap();
        let model = QueryCategories::learn(&catalog, &["pos".to_string()], &events);
        assert_eq!(model.searches(), 3);
        model.validate().unwrap();
        let a = model
            .affinity(&crate::retrieval::lexical::analyze("a financial institution"))
            .unwrap();
        let (money, river) = (&catalog.items()[0], &catalog.items()[1]);
        let (m, r) = (a.score(money).unwrap(), a.score(river).unwrap());
        assert!(m > r, "financial words point at noun.group: {m} against {r}");
        let w = model.affinity(&crate::retrieval::lexical::analyze("land by the water")).unwrap();
        assert!(w.score(river).unwrap() > w.score(money).unwrap());
        // Words never logged move nothing; an item without categories has no score.
        assert!(model.affinity(&crate::retrieval::lexical::analyze("zebra")).is_none());
        assert!(a.score(&Item::new("bare", "bank")).is_none());
    }

    #[test]
    fn a_repeated_tag_value_is_one_category_and_the_model_still_validates() {
        let mut twice = item("money", "noun.group");
        twice.tags.insert("pos".into(), vec!["noun".into(), "noun".into()]);
        let catalog = Catalog::new(vec![twice, item("river", "noun.object")]).unwrap();
        let events = Events::from_events(vec!["u".into()], vec![search(0, "a bank for money", 1)], &catalog).unwrap();
        // The tag field listed twice too.
        let model = QueryCategories::learn(&catalog, &["pos".to_string(), "pos".to_string()], &events);
        model.validate().unwrap();
        let a = model.affinity(&crate::retrieval::lexical::analyze("money")).unwrap();
        assert!(a.score(&catalog.items()[0]).unwrap() > a.score(&catalog.items()[1]).unwrap());
    }

    #[test]
    fn a_word_whose_categories_were_cut_is_neutral_on_the_others() {
        let n = MAX_CATEGORIES_PER_TERM as u32 + 6;
        let items: Vec<Item> = (0..n).map(|i| item(&format!("i{i}"), &format!("file{i}"))).collect();
        let catalog = Catalog::new(items).unwrap();
        // "the" in a search for every item, the first ones twice: their
        // categories are the ones kept.
        let log: Vec<Event> = (0..n)
            .chain(0..MAX_CATEGORIES_PER_TERM as u32)
            .enumerate()
            .map(|(ts, i)| search(i, "the", ts as i64))
            .collect();
        let events = Events::from_events(vec!["u".into()], log, &catalog).unwrap();
        let model = QueryCategories::learn(&catalog, &[], &events);
        model.validate().unwrap();
        let a = model.affinity(&["the".to_string()]).unwrap();
        let dropped = a.score(&catalog.items()[n as usize - 1]).unwrap();
        assert_eq!(dropped, 0.0, "a category the word's list left out is unknown to it, not unseen");
        assert!(a.score(&catalog.items()[0]).unwrap().is_finite());
    }

    #[test]
    fn the_model_is_the_same_whatever_the_order_or_aggregation_of_the_searches() {
        let catalog = Catalog::new(vec![
            item("money", "noun.group"),
            item("river", "noun.object"),
            item("loan", "noun.act"),
        ])
        .unwrap();
        let tags = ["pos".to_string()];
        let searches = [("bank money", 0), ("bank water", 1), ("bank money", 0), ("lend", 2), ("bank", 1)];
        let learn = |order: &[usize]| {
            let log: Vec<Event> = order
                .iter()
                .enumerate()
                .map(|(ts, &i)| search(searches[i].1, searches[i].0, ts as i64))
                .collect();
            QueryCategories::learn(&catalog, &tags, &Events::from_events(vec!["u".into()], log, &catalog).unwrap())
        };
        let forward = learn(&[0, 1, 2, 3, 4]);
        let backward = learn(&[4, 3, 2, 1, 0]);
        assert_eq!(forward, backward, "category ids do not depend on which search came first");
        // The same searches counted: two "bank money" as one row of 2.
        let counted = QueryCategories::learn_counted(
            &catalog,
            &tags,
            [
                ("lend", 2, 1),
                ("bank money", 0, 2),
                ("bank", 1, 1),
                ("bank water", 1, 1),
                ("ignored", 7, 3),
                ("zero", 0, 0),
            ],
        );
        assert_eq!(counted, forward);
        assert_eq!(counted.searches(), 5);
    }

    #[test]
    fn no_logged_search_learns_an_empty_model() {
        let catalog = Catalog::new(vec![item("a", "x")]).unwrap();
        let events = Events::from_events(Vec::new(), Vec::new(), &catalog).unwrap();
        let model = QueryCategories::learn(&catalog, &[], &events);
        assert_eq!(model, QueryCategories::default());
        assert!(model.affinity(&["a".to_string()]).is_none());
    }

    #[test]
    fn validation_refuses_dangling_categories() {
        let mut model = QueryCategories::default();
        model.terms.insert(
            "w".into(),
            TermCounts {
                searches: 1,
                categories: vec![(3, 1)],
                truncated: false,
            },
        );
        model.searches = 1;
        assert!(model.validate().is_err());
    }
}
