//! The latency budget of a request (`Request::budget_ms`).
//!
//! The engine keeps, per kind of context (a listening context on a rarely
//! played item apart), a running estimate of what each
//! stage costs on this machine and this index (every request updates it,
//! budgeted or not). A budgeted request is planned from those estimates
//! before it starts: each stage is allotted a share of the budget in
//! proportion to its expected cost, and where the expected total is over
//! the budget the engine cuts, in this order, until it fits:
//!
//! 1. the vector retrievers' beams (`ef` down to the depth asked for, the
//!    depth halved);
//! 2. whole retrievers, the slowest first, but never the last one that has
//!    been finding candidates for this kind of context, nor a search's
//!    lexical retriever (skipping the content retriever also skips encoding
//!    the search text);
//! 3. the candidates scored: fewer of them reach the features and the ranker
//!    (the best-fused ones, and never fewer than `k`).
//!
//! While the request runs, a retriever that would start after the
//! retrieval share is spent is skipped, and the candidates are cut again to
//! what the time left can score. Each cut is reported in
//! `Recommendations::budget`. The first requests of a kind run uncut: the
//! estimates start empty.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::ranking::ContextKind;
use crate::request::{BudgetReport, Context, Request, Retriever, Timings};

/// Largest budget a request may ask for, in milliseconds.
pub const MAX_BUDGET_MS: f64 = 60_000.0;

/// Weight of the newest observation in a running estimate.
const SMOOTHING: f32 = 0.1;

/// Share of the budget below which a retriever's expected cost is not
/// worth skipping it for.
const MIN_SKIP_SHARE: f32 = 0.02;

/// What a narrowed beam is expected to save of the ANN retriever's cost.
const NARROW_SAVING: f32 = 0.5;

/// The cost slots an estimate is kept for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Slot {
    /// Resolving the request and its learned-space vectors.
    Encode,
    /// One retriever; for `Content` also encoding the search text.
    Retriever(Retriever),
    Fusion,
    /// Features and ranking, per candidate.
    PerCandidate,
}

const SLOTS: usize = 3 + Retriever::ALL.len();
const CLASSES: usize = 5;

impl Slot {
    fn index(self) -> usize {
        match self {
            Slot::Encode => 0,
            Slot::Retriever(r) => 1 + r.index(),
            Slot::Fusion => 1 + Retriever::ALL.len(),
            Slot::PerCandidate => 2 + Retriever::ALL.len(),
        }
    }
}

/// What a request's stage costs are estimated from: its kind of context,
/// with a listening context on a rarely played item apart (its lexical
/// more-like-this costs milliseconds, where a popular item's costs nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Class(usize);

impl Class {
    /// The class of a request of `kind`; `rare` for a listening context on
    /// an item that gets more-like-this.
    pub fn of(kind: ContextKind, rare: bool) -> Class {
        Class(match kind {
            ContextKind::Search => 0,
            ContextKind::PersonalizedSearch => 1,
            ContextKind::Listening if rare => 4,
            ContextKind::Listening => 2,
            ContextKind::History => 3,
        })
    }

    fn searches(self) -> bool {
        self.0 <= 1
    }
}

impl super::Engine {
    /// The cost class of `req` (an unknown listening item is not rare: the
    /// request fails at resolution anyway).
    pub(super) fn cost_class(&self, req: &Request) -> Class {
        let rare = match &req.context {
            Context::Listening { item }
            | Context::Session {
                text: None,
                playing: Some(item),
                ..
            } => {
                let view = self.live.view();
                self.id_of(&view.overlay, item)
                    .is_some_and(|i| view.popularity.plays(i) < super::retrievers::MORE_LIKE_THIS_MAX_PLAYS)
            }
            _ => false,
        };
        Class::of(ContextKind::of(&req.context), rare)
    }
}

/// Running estimates, per [`Class`] of request, of each slot's cost (µs) and of
/// how many hits each retriever returns; shared by every thread serving the
/// engine. Updates are lock-free and may lose a race now and then, which an
/// estimate can afford.
#[derive(Default)]
pub(crate) struct StageCosts {
    micros: [[AtomicU32; SLOTS]; CLASSES],
    hits: [[AtomicU32; SLOTS]; CLASSES],
}

fn load(a: &AtomicU32) -> f32 {
    f32::from_bits(a.load(Ordering::Relaxed))
}

fn blend(a: &AtomicU32, x: f32) {
    if !x.is_finite() || x < 0.0 {
        return;
    }
    let old = load(a);
    let new = if old > 0.0 { old + SMOOTHING * (x - old) } else { x };
    a.store(new.to_bits(), Ordering::Relaxed);
}

impl StageCosts {
    /// The estimated cost of `slot` for `class`, in µs (0 before any observation).
    pub fn micros(&self, class: Class, slot: Slot) -> f32 {
        load(&self.micros[class.0][slot.index()])
    }

    /// Records that `slot` took `took` on a request of `class`.
    pub fn observe(&self, class: Class, slot: Slot, took: Duration) {
        blend(&self.micros[class.0][slot.index()], took.as_secs_f32() * 1e6);
    }

    /// Records the per-candidate cost of features and ranking.
    pub fn observe_per_candidate(&self, class: Class, took: Duration, candidates: usize) {
        if candidates > 0 {
            blend(
                &self.micros[class.0][Slot::PerCandidate.index()],
                took.as_secs_f32() * 1e6 / candidates as f32,
            );
        }
    }

    /// Records how many hits retriever `r` returned.
    pub fn observe_hits(&self, class: Class, r: Retriever, hits: usize) {
        blend(&self.hits[class.0][Slot::Retriever(r).index()], hits as f32);
    }

    /// Whether `r` has been finding candidates for `class` (about one or more
    /// hits a request).
    fn answers(&self, class: Class, r: Retriever) -> bool {
        load(&self.hits[class.0][Slot::Retriever(r).index()]) >= 1.0
    }
}

/// A budgeted request's plan, and what was cut while it ran.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    /// Set where no cut can meet the budget: the request then runs uncut.
    pub warning: Option<String>,
    pub budget: Duration,
    /// When the retrieval share (encoding, retrievers, fusion) runs out.
    pub retrieval_deadline: Instant,
    /// When the whole budget runs out.
    pub deadline: Instant,
    /// The vector retrievers' beams are narrowed.
    pub narrow: bool,
    /// Retrievers the plan skips, by `Retriever::index`.
    pub skip: [bool; Retriever::ALL.len()],
    /// Most candidates to score (the request's `rank_depth` when uncut).
    pub score_at_most: usize,
    /// Expected µs per scored candidate (0 when unknown).
    pub per_candidate: f32,
    /// Each stage's allotment.
    pub allotted: Timings,
    /// What was cut, in order.
    pub cut: Vec<String>,
}

impl Plan {
    /// Plans `req` (which has a budget of `budget_ms`), started at `started`, from `costs`.
    pub fn new(req: &Request, class: Class, budget_ms: f64, started: Instant, costs: &StageCosts) -> Plan {
        let budget = Duration::from_secs_f64(budget_ms / 1e3);
        let budget_us = (budget_ms * 1e3) as f32;
        let est = |slot: Slot| costs.micros(class, slot);
        let mut skip = [false; Retriever::ALL.len()];
        let active = |r: Retriever, skip: &[bool; Retriever::ALL.len()]| req.candidates.get(r) > 0 && !skip[r.index()];
        let per_candidate = est(Slot::PerCandidate);
        let mut scored = req.rank_depth;
        let mut cut = Vec::new();
        let predict = |skip: &[bool; Retriever::ALL.len()], narrow: bool, scored: usize| {
            let retrievers: f32 = Retriever::ALL
                .iter()
                .filter(|&&r| active(r, skip))
                .map(|&r| {
                    let e = est(Slot::Retriever(r));
                    if narrow && r == Retriever::Ann {
                        e * (1.0 - NARROW_SAVING)
                    } else {
                        e
                    }
                })
                .sum();
            est(Slot::Encode) + retrievers + est(Slot::Fusion) + per_candidate * scored as f32
        };
        // 1. Narrower beams.
        let mut narrow = false;
        let vector = [Retriever::Ann, Retriever::Content];
        if predict(&skip, narrow, scored) > budget_us && vector.iter().any(|&r| active(r, &skip)) {
            narrow = true;
            cut.push("the ANN and content beams were narrowed (ef = depth, depth halved)".to_string());
        }
        // 2. The slowest retrievers, keeping one that answers, and a
        // search's lexical retriever: its hits give the search its
        // learned-space vector, so the ANN would go with it.
        let searches = class.searches();
        while predict(&skip, narrow, scored) > budget_us {
            let running: Vec<Retriever> = Retriever::ALL.iter().copied().filter(|&r| active(r, &skip)).collect();
            let answering = running.iter().filter(|&&r| costs.answers(class, r)).count();
            let slowest = running
                .iter()
                .copied()
                .filter(|&r| !(searches && r == Retriever::Lexical))
                .filter(|&r| answering > 1 || !costs.answers(class, r))
                .max_by(|&a, &b| est(Slot::Retriever(a)).total_cmp(&est(Slot::Retriever(b))));
            match slowest {
                // One that costs next to nothing frees nothing: the cut
                // falls on the candidates instead.
                Some(r) if est(Slot::Retriever(r)) > MIN_SKIP_SHARE * budget_us => {
                    skip[r.index()] = true;
                    cut.push(format!(
                        "skipped the {} retriever (about {:.0} µs)",
                        r.name(),
                        est(Slot::Retriever(r))
                    ));
                }
                _ => break,
            }
        }
        // 3. Fewer candidates scored.
        let over = predict(&skip, narrow, scored) - budget_us;
        // (Reported when the candidates are cut, after fusion.)
        if over > 0.0 && per_candidate > 0.0 {
            let fewer = (over / per_candidate).ceil() as usize;
            scored = scored.saturating_sub(fewer).max(req.k).min(req.rank_depth);
        }
        // Where even every cut leaves the request over its budget (a search
        // whose lexical retriever alone takes longer), cutting would cost
        // quality and still miss it: the request runs in full and says so.
        let at_best = predict(&skip, narrow, scored);
        let mut warning = None;
        // (1% over is rounding in the estimates, not a miss.)
        if at_best > budget_us * 1.01 {
            warning = Some(format!(
                "budget_ms = {budget_ms}: no cut can meet it (about {:.0} µs expected with every cut allowed), so nothing was cut",
                at_best
            ));
            (skip, narrow, scored) = ([false; Retriever::ALL.len()], false, req.rank_depth);
            cut.clear();
        }
        // Each stage's share: its expected cost, scaled to fill the budget.
        let expected = predict(&skip, narrow, scored).max(1.0);
        let scale = budget_us / expected;
        let share = |us: f32| Duration::from_secs_f32((us * scale / 1e6).max(0.0));
        let mut allotted = Timings {
            encode: share(est(Slot::Encode)),
            fusion: share(est(Slot::Fusion)),
            features: share(per_candidate * scored as f32 * 0.5),
            rank: share(per_candidate * scored as f32 * 0.5),
            total: budget,
            ..Timings::default()
        };
        for r in Retriever::ALL {
            if active(r, &skip) {
                let e = est(Slot::Retriever(r));
                *allotted.retriever_mut(r) = share(if narrow && r == Retriever::Ann {
                    e * (1.0 - NARROW_SAVING)
                } else {
                    e
                });
            }
        }
        // Unknown costs (all 0) leave the whole budget to retrieval.
        let retrieval_share = if expected > 1.0 {
            allotted.total.saturating_sub(allotted.features + allotted.rank)
        } else {
            budget
        };
        Plan {
            warning,
            budget,
            retrieval_deadline: started + retrieval_share,
            deadline: started + budget,
            narrow,
            skip,
            score_at_most: scored,
            per_candidate,
            allotted,
            cut,
        }
    }

    /// Whether retriever `r` should run now: not skipped by the plan, and
    /// (once some retriever has found candidates) not starting after the
    /// retrieval share is spent, which it records.
    pub fn runs(&mut self, r: Retriever, have_candidates: bool) -> bool {
        if self.skip[r.index()] {
            return false;
        }
        if self.warning.is_none() && have_candidates && Instant::now() >= self.retrieval_deadline {
            self.skip[r.index()] = true;
            self.cut
                .push(format!("skipped the {} retriever: the retrieval share was spent", r.name()));
            return false;
        }
        true
    }

    /// How many of `n` fused candidates to score now: the plan's limit, and
    /// what the time left can score at the expected cost; at least `k`.
    pub fn candidates_to_score(&mut self, n: usize, k: usize) -> usize {
        if self.warning.is_some() {
            return n;
        }
        let mut keep = n.min(self.score_at_most);
        if self.per_candidate > 0.0 {
            let left = self.deadline.saturating_duration_since(Instant::now()).as_secs_f32() * 1e6;
            keep = keep.min((left / self.per_candidate) as usize);
        }
        let keep = keep.max(k).min(n);
        if keep < n {
            self.cut.push(format!("scored {keep} of {n} candidates"));
        }
        keep
    }

    /// The report: the budget, its shares and the cuts; `met` is the
    /// caller's to set once the request is answered.
    pub fn report(self) -> BudgetReport {
        BudgetReport {
            budget: self.budget,
            allotted: self.allotted,
            cut: self.cut,
            met: false,
        }
    }
}

/// Checks a request's budget.
pub(super) fn check(req: &Request) -> crate::Result<()> {
    match req.budget_ms {
        Some(ms) if !(ms.is_finite() && ms > 0.0 && ms <= MAX_BUDGET_MS) => Err(crate::Error::InvalidRequest(format!(
            "budget_ms = {ms}: a budget is a positive number of milliseconds, at most {MAX_BUDGET_MS}"
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class_of(req: &Request) -> Class {
        Class::of(ContextKind::of(&req.context), false)
    }

    fn costs(kind: ContextKind, slots: &[(Slot, f32)], per_candidate: f32) -> StageCosts {
        let kind = Class::of(kind, false);
        let c = StageCosts::default();
        for &(slot, us) in slots {
            c.observe(kind, slot, Duration::from_secs_f32(us / 1e6));
            if let Slot::Retriever(r) = slot {
                c.observe_hits(kind, r, 50);
            }
        }
        c.observe_per_candidate(kind, Duration::from_secs_f32(per_candidate * 100.0 / 1e6), 100);
        c
    }

    #[test]
    fn a_generous_budget_cuts_nothing_and_shares_out_the_slack() {
        let c = costs(
            ContextKind::History,
            &[(Slot::Encode, 50.0), (Slot::Retriever(Retriever::Ann), 200.0), (Slot::Fusion, 50.0)],
            1.0,
        );
        let req = Request::new(Context::history(["a"]));
        let p = Plan::new(&req, class_of(&req), 10.0, Instant::now(), &c);
        assert!(p.cut.is_empty(), "{:?}", p.cut);
        assert_eq!(p.score_at_most, req.rank_depth);
        // 50 + 200 + 50 + 200 candidates × 1 µs = 500 µs, scaled to 10 ms.
        let ann = p.allotted.ann.as_secs_f64();
        assert!((ann - 0.004).abs() < 1e-5, "{ann}");
    }

    #[test]
    fn a_tight_budget_cuts_beams_then_the_slowest_retriever_then_candidates() {
        let c = costs(
            ContextKind::History,
            &[
                (Slot::Encode, 20.0),
                (Slot::Retriever(Retriever::Ann), 400.0),
                (Slot::Retriever(Retriever::Covisit), 600.0),
                (Slot::Retriever(Retriever::Linear), 100.0),
                (Slot::Fusion, 30.0),
            ],
            2.0,
        );
        let req = Request::new(Context::history(["a"]));
        // 20 + 400 + 600 + 100 + 30 + 400 = 1550 µs against 1 ms: narrowing
        // saves 200, skipping co-visitation 600 → 750 µs.
        let p = Plan::new(&req, class_of(&req), 1.0, Instant::now(), &c);
        assert!(p.narrow);
        assert!(p.skip[Retriever::Covisit.index()] && !p.skip[Retriever::Ann.index()]);
        assert_eq!(p.cut.len(), 2, "{:?}", p.cut);
        assert_eq!(p.score_at_most, req.rank_depth);
        // At 0.4 ms, the ANN goes too (200 narrowed against linear's 100), and then candidates.
        let p = Plan::new(&req, class_of(&req), 0.4, Instant::now(), &c);
        assert!(p.skip[Retriever::Ann.index()] && !p.skip[Retriever::Linear.index()], "{:?}", p.cut);
        // 20 + 100 + 30 = 150 µs left for 400 of scoring: 125 candidates at 2 µs.
        assert_eq!(p.score_at_most, 125, "{:?}", p.cut);
        let mut p = p;
        p.deadline = Instant::now() + Duration::from_secs(3600); // time left is no limit here
        assert_eq!(p.candidates_to_score(180, 10), 125);
        assert!(p.cut.last().unwrap().contains("125 of 180"), "{:?}", p.cut);
        assert_eq!(p.candidates_to_score(100, 10), 100, "fewer than the limit: all");
    }

    #[test]
    fn the_last_retriever_that_answers_is_kept_and_a_budget_no_cut_can_meet_cuts_nothing() {
        let c = costs(
            ContextKind::Search,
            &[
                (Slot::Retriever(Retriever::Lexical), 1500.0),
                (Slot::Retriever(Retriever::Ann), 300.0),
            ],
            2.0,
        );
        c.observe_hits(Class::of(ContextKind::Search, false), Retriever::Popular, 0);
        for _ in 0..100 {
            c.observe_hits(Class::of(ContextKind::Search, false), Retriever::Ann, 0);
        }
        let req = Request::new(Context::search("x")).k(20);
        // 1500 + 300 + 200 × 2 = 2200 µs against 1.6 ms. The ANN finds
        // nothing for searches here: it goes, lexical stays, and 150
        // candidates fewer are scored.
        let p = Plan::new(&req, class_of(&req), 1.6, Instant::now(), &c);
        assert!(!p.skip[Retriever::Lexical.index()] && p.skip[Retriever::Ann.index()], "{:?}", p.cut);
        assert_eq!(p.score_at_most, 50);
        // Where the ANN answers too, a search still keeps its lexical retriever.
        for _ in 0..100 {
            c.observe_hits(Class::of(ContextKind::Search, false), Retriever::Ann, 50);
        }
        let p = Plan::new(&req, class_of(&req), 1.6, Instant::now(), &c);
        assert!(!p.skip[Retriever::Lexical.index()] && p.skip[Retriever::Ann.index()], "{:?}", p.cut);
        assert!(p.warning.is_none());
        // Under 1.5 ms nothing can meet it: nothing is cut, and it says so.
        let mut p = Plan::new(&req, class_of(&req), 1.0, Instant::now(), &c);
        assert!(p.cut.is_empty() && !p.narrow && !p.skip.iter().any(|&s| s), "{:?}", p.cut);
        assert!(p.warning.as_deref().is_some_and(|w| w.contains("no cut can meet it")));
        assert_eq!(p.candidates_to_score(200, 20), 200);
        assert!(p.runs(Retriever::Ann, true));
    }

    #[test]
    fn unknown_costs_plan_nothing_and_bad_budgets_are_refused() {
        let req = Request::new(Context::search("x"));
        let p = Plan::new(&req, class_of(&req), 2.0, Instant::now(), &StageCosts::default());
        assert!(p.cut.is_empty() && !p.narrow && p.score_at_most == req.rank_depth);
        for ms in [0.0, -1.0, f64::NAN, f64::INFINITY, MAX_BUDGET_MS * 2.0] {
            let mut r = req.clone();
            r.budget_ms = Some(ms);
            assert!(check(&r).is_err(), "{ms}");
        }
    }
}
