//! Catalog and events parsing: any bytes give a catalog/log or a typed
//! error, never a panic.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use twostage::{Catalog, Events, Item};

fn catalog() -> &'static Catalog {
    static C: OnceLock<Catalog> = OnceLock::new();
    C.get_or_init(|| {
        let items = ["a", "b", "trk-1", "東京"].iter().map(|id| Item::new(*id, "t")).collect();
        Catalog::new(items).expect("fixed catalog is valid")
    })
}

fuzz_target!(|data: &[u8]| {
    // First byte picks the parser, so one corpus covers both formats.
    let Some((&which, rest)) = data.split_first() else { return };
    if which % 2 == 0 {
        if let Ok(c) = Catalog::from_jsonl_reader(rest, Path::new("items.jsonl")) {
            assert!(!c.is_empty());
            // What loaded must also pass the in-memory contract.
            Catalog::new(c.into_items()).expect("a parsed catalog re-validates");
        }
    } else if let Ok(ev) = Events::from_jsonl_reader(rest, Path::new("events.jsonl"), catalog()) {
        assert!(ev.events().iter().all(|e| (e.item as usize) < catalog().len()));
        let _ = ev.sessions(1800);
    }
});
