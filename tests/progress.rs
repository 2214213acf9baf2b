//! Builds report progress per phase, ending every phase at done == total.

use std::sync::Mutex;

use twostage::{Catalog, Events, IndexBuilder, Progress};

#[test]
fn build_reports_each_phase_to_completion() {
    let items: String = (0..3000)
        .map(|i| {
            format!(
                "{{\"id\":\"t{i}\",\"title\":\"Song {i}\",\"tags\":{{\"genre\":[\"g{}\"]}}}}\n",
                i % 7
            )
        })
        .collect();
    let catalog = Catalog::from_jsonl_reader(items.as_bytes(), "items.jsonl".as_ref()).unwrap();
    let mut log = String::new();
    for user in 0..300 {
        for j in 0..10 {
            let item = (user * 7 + j * 3) % 3000;
            log += &format!(
                "{{\"user\":\"u{user}\",\"item\":\"t{item}\",\"ts\":{}}}\n",
                1_700_000_000 + user * 10_000 + j * 100
            );
        }
    }
    let events = Events::from_jsonl_reader(log.as_bytes(), "events.jsonl".as_ref(), &catalog).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let seen: Mutex<Vec<Progress>> = Mutex::new(Vec::new());
    let report = IndexBuilder::new()
        .without_ranker_training()
        .build_with_progress(&catalog, &events, dir.path().join("index"), &|p: &Progress| {
            seen.lock().unwrap().push(*p)
        })
        .unwrap();
    let seen = seen.into_inner().unwrap();

    let mut phases: Vec<&str> = seen.iter().map(|p| p.phase).collect();
    phases.dedup();
    assert_eq!(phases, ["covisitation", "linear item-item", "embeddings", "hnsw", "text index"]);
    for phase in phases {
        let reports: Vec<&Progress> = seen.iter().filter(|p| p.phase == phase).collect();
        let last = reports.last().unwrap();
        assert_eq!(last.done, last.total, "{phase} ends complete");
        assert!(reports.windows(2).all(|w| w[0].done <= w[1].done), "{phase} only moves forward");
    }
    let hnsw: Vec<u64> = seen.iter().filter(|p| p.phase == "hnsw").map(|p| p.done).collect();
    assert_eq!(*hnsw.last().unwrap(), report.stats.vectors as u64);
    assert!(hnsw.len() >= 3, "insertion reports more than its start and end: {hnsw:?}");
    let docs: Vec<u64> = seen.iter().filter(|p| p.phase == "text index").map(|p| p.done).collect();
    assert_eq!(docs, [1024, 2048, 3000]);
}
