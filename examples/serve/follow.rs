//! Following index generations in object storage (`--index URL`, feature
//! `generations`): the service polls the store's `LATEST` pointer and swaps
//! in each new generation it could download and verify whole; a damaged or
//! partial generation is refused, recorded (and retried after a minute, in
//! case the store was only unreachable), and the current index keeps
//! serving. `/healthz` reports the state under `"generation"`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use twostage::{EngineHandle, Generation, GenerationStore};

/// What `/healthz` shows of the follower.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FollowStatus {
    /// The store followed.
    pub store: String,
    /// The generation serving.
    pub serving: Option<String>,
    /// The last generation refused, and why.
    pub refused: Option<Refusal>,
    /// Polls of the pointer so far.
    pub polls: u64,
    /// Generations swapped in after the first.
    pub swaps: u64,
}

/// A generation that could not be served.
#[derive(Clone, Debug, Serialize)]
pub struct Refusal {
    /// Its id.
    pub generation: String,
    /// Why.
    pub reason: String,
    /// When, to retry it only after [`RETRY_REFUSED`] (a store that was
    /// unreachable for a moment, not a damaged generation).
    #[serde(skip)]
    pub at: Option<std::time::Instant>,
}

/// How long a refused generation is left alone before it is tried again,
/// unless the pointer moves first.
pub const RETRY_REFUSED: Duration = Duration::from_secs(60);

/// Follows one store's `LATEST` pointer.
pub struct Follower {
    store: GenerationStore,
    cache: PathBuf,
    status: Mutex<FollowStatus>,
}

impl Follower {
    /// Downloads the latest generation of `store` into `cache` (each
    /// generation in its own directory) and returns the follower and the
    /// directory to serve first.
    pub async fn start(store: GenerationStore, cache: PathBuf) -> anyhow::Result<(Arc<Follower>, PathBuf)> {
        let latest = store
            .latest()
            .await?
            .ok_or_else(|| anyhow::anyhow!("{} has no published generation yet (no LATEST pointer)", store.url()))?;
        let dir = store.download(&latest, &cache).await?;
        let status = FollowStatus {
            store: store.url().to_string(),
            serving: Some(latest.id),
            ..FollowStatus::default()
        };
        Ok((
            Arc::new(Follower {
                store,
                cache,
                status: Mutex::new(status),
            }),
            dir,
        ))
    }

    /// The current state, for `/healthz`.
    pub fn status(&self) -> FollowStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn update(&self, f: impl FnOnce(&mut FollowStatus)) {
        if let Ok(mut s) = self.status.lock() {
            f(&mut s);
        }
    }

    /// Polls every `every` until the runtime stops.
    pub fn spawn(self: &Arc<Self>, handle: Arc<EngineHandle>, every: Duration) {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                me.poll_once(&handle).await;
            }
        });
    }

    /// One poll: a new generation the pointer names is downloaded,
    /// verified and swapped in; a failure is recorded and tried again only
    /// after [`RETRY_REFUSED`] (or at once when the pointer moves).
    pub async fn poll_once(&self, handle: &Arc<EngineHandle>) {
        self.update(|s| s.polls += 1);
        let latest = match self.store.latest().await {
            Ok(Some(g)) => g,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the generation pointer; still serving the current index");
                return;
            }
        };
        let status = self.status();
        let recently_refused = status
            .refused
            .as_ref()
            .is_some_and(|r| r.generation == latest.id && r.at.is_some_and(|at| at.elapsed() < RETRY_REFUSED));
        if status.serving.as_deref() == Some(latest.id.as_str()) || recently_refused {
            return;
        }
        match self.swap_in(&latest, handle).await {
            Ok(()) => {
                tracing::info!(generation = %latest.id, "swapped in a new generation");
                self.update(|s| {
                    s.serving = Some(latest.id.clone());
                    s.swaps += 1;
                });
                self.remove_old(&latest.id, status.serving.as_deref());
            }
            Err(e) => {
                tracing::warn!(generation = %latest.id, error = %e, "refused a generation; still serving the current index");
                self.update(|s| {
                    s.refused = Some(Refusal {
                        generation: latest.id.clone(),
                        reason: format!("{e:#}"),
                        at: Some(std::time::Instant::now()),
                    })
                });
            }
        }
    }

    async fn swap_in(&self, generation: &Generation, handle: &Arc<EngineHandle>) -> anyhow::Result<()> {
        let dir = self.store.download(generation, &self.cache).await?;
        let handle = Arc::clone(handle);
        // Opening an index is seconds of CPU: never on an async worker.
        tokio::task::spawn_blocking(move || handle.reload(&dir).map(|_| ())).await??;
        Ok(())
    }

    /// Removes cached generations other than the one serving and the one
    /// before it (which requests that started before the swap may hold).
    fn remove_old(&self, serving: &str, previous: Option<&str>) {
        let Ok(entries) = std::fs::read_dir(&self.cache) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name != serving && Some(name.as_ref()) != previous && !name.starts_with('.') {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// Whether `index` names an object store rather than a directory.
pub fn is_url(index: &Path) -> bool {
    index.to_str().is_some_and(|s| s.contains("://"))
}
