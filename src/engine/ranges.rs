//! Range filters: every number attribute of the catalog as a column with
//! its items sorted by value, so a request's bounds (`year >= 2000`) become
//! a per-item check for the retrievers' filter and, by binary search, the
//! exact list of items inside them: what the vector retrievers scan instead
//! of walking their graph when a filter lets through few items.

use std::collections::BTreeMap;

use crate::catalog::{Attribute, Item};
use crate::error::{Error, Result};
use crate::request::RangeFilter;

/// The number attributes of an index's items.
#[derive(Default)]
pub(crate) struct NumberColumns {
    names: Vec<String>,
    columns: Vec<Column>,
}

/// One number attribute: each item's value (NaN where the item has none, or
/// has text there), and the items that have one, ascending by value.
struct Column {
    values: Vec<f64>,
    sorted: Vec<u32>,
}

/// A request's bounds on one column, as closed or open ends.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bounds {
    column: usize,
    lower: Option<(f64, bool)>,
    upper: Option<(f64, bool)>,
}

/// The items a resolved range admits, as a slice of a column's sorted items.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Span {
    column: usize,
    start: usize,
    end: usize,
}

impl Span {
    /// Number of items inside.
    pub fn len(&self) -> usize {
        self.end - self.start
    }
}

impl Bounds {
    /// Whether value `v` lies within the bounds.
    pub fn admits(&self, v: f64) -> bool {
        // NaN (no value) fails every comparison, so it is never admitted.
        let above = match self.lower {
            None => !v.is_nan(),
            Some((b, true)) => v >= b,
            Some((b, false)) => v > b,
        };
        let below = match self.upper {
            None => true,
            Some((b, true)) => v <= b,
            Some((b, false)) => v < b,
        };
        above && below
    }
}

impl NumberColumns {
    /// The columns of every attribute that some item holds as a number.
    pub fn of(items: &[Item]) -> NumberColumns {
        let mut index: BTreeMap<&str, usize> = BTreeMap::new();
        for item in items {
            for (name, value) in &item.attributes {
                if matches!(value, Attribute::Number(_)) && !index.contains_key(name.as_str()) {
                    index.insert(name, index.len());
                }
            }
        }
        let mut columns: Vec<Column> = (0..index.len())
            .map(|_| Column {
                values: vec![f64::NAN; items.len()],
                sorted: Vec::new(),
            })
            .collect();
        for (i, item) in items.iter().enumerate() {
            for (name, value) in &item.attributes {
                if let (Attribute::Number(v), Some(&c)) = (value, index.get(name.as_str())) {
                    if v.is_finite() {
                        columns[c].values[i] = *v;
                    }
                }
            }
        }
        for c in &mut columns {
            // Item ids are < items.len() <= u32::MAX (the store's invariant).
            c.sorted = (0..c.values.len() as u32).filter(|&i| !c.values[i as usize].is_nan()).collect();
            c.sorted.sort_by(|&a, &b| c.values[a as usize].total_cmp(&c.values[b as usize]));
        }
        let mut names: Vec<(String, usize)> = index.into_iter().map(|(n, c)| (n.to_string(), c)).collect();
        names.sort_by_key(|&(_, c)| c);
        NumberColumns {
            names: names.into_iter().map(|(n, _)| n).collect(),
            columns,
        }
    }

    /// `filter` checked against this index: a named number attribute, at
    /// least one finite bound, and not both the open and the closed form of
    /// the same end.
    pub fn bounds(&self, filter: &RangeFilter) -> Result<Bounds> {
        let attr = &filter.attr;
        let Some(column) = self.names.iter().position(|n| n == attr) else {
            let known = if self.names.is_empty() {
                "none".to_string()
            } else {
                self.names.join(", ")
            };
            return Err(Error::InvalidRequest(format!(
                "range: `{attr}` is not a number attribute of this index (number attributes: {known})"
            )));
        };
        let end = |closed: Option<f64>, open: Option<f64>, names: (&str, &str)| -> Result<Option<(f64, bool)>> {
            let bound = match (closed, open) {
                (Some(_), Some(_)) => {
                    return Err(Error::InvalidRequest(format!(
                        "range on `{attr}`: set {} or {}, not both",
                        names.0, names.1
                    )))
                }
                (Some(v), None) => Some((v, true)),
                (None, Some(v)) => Some((v, false)),
                (None, None) => None,
            };
            match bound {
                Some((v, _)) if !v.is_finite() => Err(Error::InvalidRequest(format!("range on `{attr}`: the bound {v} is not finite"))),
                b => Ok(b),
            }
        };
        let lower = end(filter.gte, filter.gt, ("gte", "gt"))?;
        let upper = end(filter.lte, filter.lt, ("lte", "lt"))?;
        if lower.is_none() && upper.is_none() {
            return Err(Error::InvalidRequest(format!(
                "range on `{attr}` has no bound (set gte, gt, lte or lt)"
            )));
        }
        Ok(Bounds { column, lower, upper })
    }

    /// The column of number attribute `attr`.
    pub fn column(&self, attr: &str) -> Option<usize> {
        self.names.iter().position(|n| n == attr)
    }

    /// The largest value in `column`.
    pub fn newest(&self, column: usize) -> Option<f64> {
        let c = self.columns.get(column)?;
        c.sorted.last().map(|&i| c.values[i as usize])
    }

    /// The number attributes, for error messages.
    pub fn names(&self) -> String {
        if self.names.is_empty() {
            "none".to_string()
        } else {
            self.names.join(", ")
        }
    }

    /// Whether `item`'s value lies within `b` (an item without one never does).
    pub fn admits(&self, b: &Bounds, item: u32) -> bool {
        self.columns[b.column].values.get(item as usize).is_some_and(|&v| b.admits(v))
    }

    /// The items within `b`, by two binary searches.
    pub fn span(&self, b: &Bounds) -> Span {
        let c = &self.columns[b.column];
        let value = |i: &u32| c.values[*i as usize];
        let start = match b.lower {
            None => 0,
            Some((x, true)) => c.sorted.partition_point(|i| value(i) < x),
            Some((x, false)) => c.sorted.partition_point(|i| value(i) <= x),
        };
        let end = match b.upper {
            None => c.sorted.len(),
            Some((x, true)) => c.sorted.partition_point(|i| value(i) <= x),
            Some((x, false)) => c.sorted.partition_point(|i| value(i) < x),
        };
        Span {
            column: b.column,
            start,
            end: end.max(start),
        }
    }

    /// The items of `span`, ascending by value.
    pub fn items(&self, span: &Span) -> &[u32] {
        self.columns
            .get(span.column)
            .and_then(|c| c.sorted.get(span.start..span.end))
            .unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items() -> Vec<Item> {
        [Some(1990.0), Some(2000.0), None, Some(2005.0), Some(2010.0)]
            .iter()
            .enumerate()
            .map(|(i, y)| {
                let mut item = Item::new(format!("i{i}"), "t");
                if let Some(y) = y {
                    item.attributes.insert("year".into(), Attribute::Number(*y));
                }
                item.attributes.insert("artist".into(), Attribute::Text("a".into()));
                item
            })
            .collect()
    }

    fn range(gte: Option<f64>, gt: Option<f64>, lte: Option<f64>, lt: Option<f64>) -> RangeFilter {
        RangeFilter {
            attr: "year".into(),
            gte,
            gt,
            lte,
            lt,
        }
    }

    #[test]
    fn a_span_holds_exactly_the_items_the_check_admits() {
        let cols = NumberColumns::of(&items());
        for f in [
            range(Some(2000.0), None, None, Some(2010.0)),
            range(None, Some(2000.0), Some(2010.0), None),
            range(None, None, Some(1999.0), None),
            range(Some(2011.0), None, None, None),
            range(Some(2005.0), None, Some(2000.0), None),
        ] {
            let b = cols.bounds(&f).unwrap();
            let mut span: Vec<u32> = cols.items(&cols.span(&b)).to_vec();
            span.sort_unstable();
            let admitted: Vec<u32> = (0..5).filter(|&i| cols.admits(&b, i)).collect();
            assert_eq!(span, admitted, "{f:?}");
        }
        let b = cols.bounds(&range(Some(2000.0), None, None, Some(2010.0))).unwrap();
        assert_eq!(cols.items(&cols.span(&b)), [1, 3], "2000 <= year < 2010; item 2 has no year");
    }

    #[test]
    fn bad_ranges_are_refused_with_the_field_named() {
        let cols = NumberColumns::of(&items());
        let err = |f: RangeFilter| cols.bounds(&f).unwrap_err().to_string();
        assert!(err(RangeFilter {
            attr: "artist".into(),
            ..range(Some(1.0), None, None, None)
        })
        .contains("`artist` is not a number attribute"));
        assert!(err(range(None, None, None, None)).contains("no bound"));
        assert!(err(range(Some(1.0), Some(1.0), None, None)).contains("gte or gt, not both"));
        assert!(err(range(None, None, Some(f64::NAN), None)).contains("not finite"));
    }
}
