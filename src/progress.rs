//! [`Progress`]: how far a long piece of work (an index build, ranker
//! training) has come, for progress bars and logs.

/// One progress report: `done` of `total` `unit`s of `phase`.
///
/// Reports arrive in phase order and a phase's last report has
/// `done == total`. Within a phase `done` grows, except that reports from
/// parallel work (training lists) may arrive slightly out of order: a
/// progress bar should keep the largest `done` it has seen. A phase may report only its
/// start and end when its work has no natural unit count (the embeddings are
/// one matrix factorisation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// The phase: `covisitation`, `linear item-item`, `embeddings`, `hnsw`,
    /// `text index`, `training lists` or `ranker training`.
    pub phase: &'static str,
    /// Units finished so far.
    pub done: u64,
    /// Units in the phase.
    pub total: u64,
    /// What a unit is: `events`, `items`, `vectors`, `documents`, `lists`, `epochs`.
    pub unit: &'static str,
}

impl Progress {
    pub(crate) fn new(phase: &'static str, done: usize, total: usize, unit: &'static str) -> Progress {
        Progress {
            phase,
            done: done as u64,
            total: total as u64,
            unit,
        }
    }
}

/// The callback shape long operations take: called from any of the
/// operation's threads, hence `Sync`.
pub(crate) type OnProgress<'a> = &'a (dyn Fn(&Progress) + Sync);

/// Units between two reports of a per-unit loop: frequent enough for a
/// smooth bar, rare enough that the callback costs nothing measurable.
pub(crate) const REPORT_EVERY: usize = 1024;
