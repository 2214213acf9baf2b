//! The HTTP service killed with SIGKILL right after it acknowledged live
//! writes (`POST /items`, `DELETE /items/{id}`, `POST /events`): restarted on the same
//! index, it serves every acknowledged write, and none is lost or doubled.

#![cfg(feature = "encoder")]

mod common;
#[path = "common/process.rs"]
mod process;

use std::path::Path;

use process::Service;
use serde_json::Value;
use twostage::{Catalog, Events, IndexBuilder};

const TOKEN: &str = "kill-test-token";

fn start(index: &Path) -> Service {
    Service::start(&["--index", index.to_str().unwrap()], &[("TWOSTAGE_ADMIN_TOKEN", TOKEN)])
}

fn call(method: &str, url: &str, body: Option<&str>) -> (u16, String) {
    let request = ureq::request(method, url).set("Authorization", &format!("Bearer {TOKEN}"));
    let result = match body {
        Some(b) => request.send_string(b),
        None => request.call(),
    };
    match result {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
        Err(e) => panic!("{method} {url}: {e}"),
    }
}

fn live(url: &str) -> Value {
    let (status, body) = call("GET", &format!("{url}/healthz"), None);
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<Value>(&body).unwrap()["live"].clone()
}

#[test]
fn acknowledged_writes_survive_sigkill_of_the_service() {
    let data = common::data_dir();
    let text: String = std::fs::read_to_string(data.join("items.jsonl"))
        .unwrap()
        .lines()
        .take(1000)
        .flat_map(|l| [l, "\n"])
        .collect();
    let catalog = Catalog::from_jsonl_reader(text.as_bytes(), Path::new("items.jsonl")).unwrap();
    let events = Events::from_jsonl_reader(&b""[..], Path::new("events.jsonl"), &catalog).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let index = tmp.path().join("index");
    IndexBuilder::new()
        .without_ranker_training()
        .build(&catalog, &events, &index)
        .unwrap();

    let ids: Vec<&str> = catalog.items().iter().map(|i| i.id.as_str()).collect();
    let (mut deleted, mut plays, mut added) = (0usize, 0usize, 0usize);
    for round in 0..5 {
        let service = start(&index);
        let before = live(&service.url);
        assert_eq!(before["deleted"], deleted, "round {round}: deletions acknowledged before the kill");
        assert_eq!(before["events"], plays, "round {round}: events acknowledged before the kill");
        assert_eq!(before["added"], added, "round {round}: items added before the kill");
        let new: Vec<String> = (0..3)
            .map(|k| format!(r#"{{"id":"live-{round}-{k}","title":"Quokka{round} Zyzzyva{k}"}}"#))
            .collect();
        let (status, body) = call(
            "POST",
            &format!("{}/items", service.url),
            Some(&format!(r#"{{"items":[{}]}}"#, new.join(","))),
        );
        assert_eq!(status, 200, "{body}");
        added += new.len();
        for id in &ids[round * 7..round * 7 + 7] {
            let (status, body) = call("DELETE", &format!("{}/items/{id}", service.url), None);
            assert_eq!(status, 200, "{body}");
            deleted += 1;
        }
        let batch: Vec<String> = (0..25)
            .map(|k| format!(r#"{{"user":"u{round}","item":"{}","ts":{}}}"#, ids[500 + k % 5], 1_800_000_000 + k))
            .collect();
        let (status, body) = call(
            "POST",
            &format!("{}/events", service.url),
            Some(&format!(r#"{{"events":[{}]}}"#, batch.join(","))),
        );
        assert_eq!(status, 200, "{body}");
        plays += batch.len();
        // Killed the moment the last write was acknowledged.
        service.kill();
    }
    let service = start(&index);
    let after = live(&service.url);
    assert_eq!(
        (after["deleted"].as_u64(), after["events"].as_u64(), after["added"].as_u64()),
        (Some(deleted as u64), Some(plays as u64), Some(added as u64)),
        "{after}"
    );
    // An added item is served by its own words.
    for round in 0..5 {
        for k in 0..3 {
            let body = serde_json::json!({"context": {"search": {"text": format!("quokka{round} zyzzyva{k}")}}, "k": 1}).to_string();
            let (status, answer) = call("POST", &format!("{}/recommend", service.url), Some(&body));
            assert_eq!(status, 200, "{answer}");
            assert!(
                answer.contains(&format!("\"live-{round}-{k}\"")),
                "live-{round}-{k} is lost: {answer}"
            );
        }
    }
    // A deleted item is never served: ask for it by its own title.
    for item in &catalog.items()[..35] {
        let body = serde_json::json!({"context": {"search": {"text": item.title}}, "k": 50}).to_string();
        let (status, answer) = call("POST", &format!("{}/recommend", service.url), Some(&body));
        assert_eq!(status, 200, "{answer}");
        assert!(
            !answer.contains(&format!("\"{}\"", item.id)),
            "{} was deleted but is served",
            item.id
        );
    }
}
