//! The `serve` example as a child process on a loopback port, for tests of
//! what only separate processes show (replicas, SIGKILL).

#![allow(dead_code)] // each test binary that includes this uses a part of it

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// The `serve` example, built beside the test binary by `cargo test`.
pub fn serve_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let path = dir.join("examples").join("serve");
    assert!(path.is_file(), "{} is missing: cargo test builds the examples", path.display());
    path
}

/// One `serve` process; SIGKILLed when dropped.
pub struct Service {
    pub child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Service {
    /// Starts `serve` with `args` (and `--addr 127.0.0.1:0`) and `envs`,
    /// and waits until it listens.
    pub fn start(args: &[&str], envs: &[(&str, &str)]) -> Service {
        let mut child = Command::new(serve_binary())
            .args(args)
            .args(["--addr", "127.0.0.1:0"])
            .envs(envs.iter().copied())
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        // "serving <index> (<n> items) on http://<addr> (playground: ...)"
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut said = Vec::new();
        let url = loop {
            let Some(Ok(line)) = lines.next() else {
                // E.g. an examples/serve built without a feature the test
                // needs (`cargo build --example serve`): `cargo test
                // --all-features` rebuilds it.
                panic!("serve exited before it listened:\n{}", said.join("\n"));
            };
            said.push(line.clone());
            if let Some(at) = line.find(" on http://") {
                let rest = &line[at + 4..];
                break rest[..rest.find(' ').unwrap_or(rest.len())].to_string();
            }
        };
        // Keep draining stderr so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Service { child, url }
    }

    /// SIGKILL, no shutdown: what a crash or an OOM kill does.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
