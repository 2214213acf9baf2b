//! indicatif progress bars for twostage's [`Progress`] reports: one bar per
//! phase, with its rate and ETA. Shared by the examples that build or train
//! (included with `#[path]`; a directory without `main.rs` is not an example).

#![allow(dead_code)]

use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};
use twostage::Progress;

/// The bar of the phase being reported; a new phase finishes the previous bar.
#[derive(Default)]
pub struct PhaseBars {
    current: Mutex<Option<(&'static str, ProgressBar)>>,
}

/// The style every bar uses: phase, bar, count, unit, rate, ETA.
pub fn style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix:>15} [{bar:32}] {pos}/{len} {msg} ({per_sec}, ETA {eta}) {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

impl PhaseBars {
    /// Shows `p` (callable from any thread).
    pub fn update(&self, p: &Progress) {
        let Ok(mut current) = self.current.lock() else { return };
        if current.as_ref().map(|(phase, _)| *phase) != Some(p.phase) {
            if let Some((_, bar)) = current.take() {
                bar.finish();
            }
            let bar = ProgressBar::new(p.total)
                .with_style(style())
                .with_prefix(p.phase)
                .with_message(p.unit);
            *current = Some((p.phase, bar));
        }
        if let Some((_, bar)) = current.as_ref() {
            bar.set_length(p.total);
            // Parallel phases may report slightly out of order: keep the largest.
            if p.done > bar.position() {
                bar.set_position(p.done);
            }
        }
    }

    /// Finishes the last bar.
    pub fn finish(&self) {
        if let Ok(mut current) = self.current.lock() {
            if let Some((_, bar)) = current.take() {
                bar.finish();
            }
        }
    }
}
