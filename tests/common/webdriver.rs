//! A minimal W3C WebDriver client over `ureq`, driving headless Chromium
//! through `chromedriver`, for tests that check a page in a real browser.
//!
//! Only what those tests use: a session, navigation, finding and clicking
//! elements, typing, running a script, a screenshot.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use serde_json::{json, Value};

/// The key under which WebDriver returns an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The Chromium and chromedriver binaries, when both are installed.
pub struct Browser {
    pub chromium: PathBuf,
    pub chromedriver: PathBuf,
}

impl Browser {
    /// `TWOSTAGE_CHROMIUM` / `TWOSTAGE_CHROMEDRIVER`, else the usual names on
    /// `PATH` (Debian's `chromium` and `chromium-driver` packages).
    pub fn find() -> Option<Browser> {
        let chromium = find_binary("TWOSTAGE_CHROMIUM", &["chromium", "chromium-browser", "google-chrome"])?;
        let chromedriver = find_binary("TWOSTAGE_CHROMEDRIVER", &["chromedriver"])?;
        Some(Browser { chromium, chromedriver })
    }
}

fn find_binary(var: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(var).map(PathBuf::from) {
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// A chromedriver process and one headless browser session; dropping it
/// ends the session and the chromedriver process it started.
pub struct Session {
    driver: Child,
    base: String,
    agent: ureq::Agent,
}

impl Session {
    /// Starts chromedriver on a free loopback port and opens a headless
    /// session of `browser.chromium` with a `width`×`height` window.
    pub fn start(browser: &Browser, width: u32, height: u32) -> Result<Session> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let driver = Command::new(&browser.chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", browser.chromedriver.display()))?;
        let mut session = Session {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            agent: ureq::AgentBuilder::new().timeout(Duration::from_secs(60)).build(),
        };
        session.wait_for_driver()?;
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": browser.chromium,
                // --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         format!("--window-size={width},{height}")],
            },
        }}});
        let created = session.send("POST", "/session", Some(caps))?;
        let id = created["sessionId"].as_str().ok_or_else(|| anyhow!("no sessionId in {created}"))?;
        session.base = format!("{}/session/{id}", session.base);
        Ok(session)
    }

    fn wait_for_driver(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(resp) = self.agent.get(&format!("{}/status", self.base)).call() {
                let status = resp.into_string().ok().and_then(|t| serde_json::from_str::<Value>(&t).ok());
                if status.is_some_and(|v| v["value"]["ready"] == true) {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!("chromedriver did not become ready at {}", self.base);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// One WebDriver command; its `value`.
    fn send(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let req = self.agent.request(method, &url);
        let result = match body {
            Some(b) => req.set("content-type", "application/json").send_string(&b.to_string()),
            None => req.call(),
        };
        let text = match result {
            Ok(resp) => resp.into_string()?,
            Err(ureq::Error::Status(code, resp)) => bail!("{method} {path}: {code} {}", resp.into_string()?),
            Err(e) => return Err(e).with_context(|| format!("{method} {path}")),
        };
        let v: Value = serde_json::from_str(&text).with_context(|| format!("{method} {path}: {text}"))?;
        Ok(v["value"].clone())
    }

    /// Loads `url`.
    pub fn goto(&self, url: &str) -> Result<()> {
        self.send("POST", "/url", Some(json!({ "url": url }))).map(drop)
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page.
    pub fn script(&self, script: &str, args: Value) -> Result<Value> {
        self.send("POST", "/execute/sync", Some(json!({ "script": script, "args": args })))
    }

    /// The first element matching the CSS `selector`.
    pub fn find(&self, selector: &str) -> Result<String> {
        let v = self.send("POST", "/element", Some(json!({"using": "css selector", "value": selector})))?;
        v[ELEMENT]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("no element for {selector}: {v}"))
    }

    /// Types `text` into the element.
    pub fn type_into(&self, element: &str, text: &str) -> Result<()> {
        self.send("POST", &format!("/element/{element}/value"), Some(json!({ "text": text })))
            .map(drop)
    }

    /// Clicks the element.
    pub fn click(&self, element: &str) -> Result<()> {
        self.send("POST", &format!("/element/{element}/click"), Some(json!({}))).map(drop)
    }

    /// Polls `script` until it returns something truthy (not null, false,
    /// 0 or ""), and returns that, or fails after `timeout`.
    pub fn wait_for(&self, script: &str, timeout: Duration) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.script(script, json!([]))?;
            let truthy = !(v.is_null() || v == false || v == 0 || v == "");
            if truthy {
                return Ok(v);
            }
            if Instant::now() > deadline {
                bail!("timed out after {timeout:?} waiting for: {script}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Saves a PNG screenshot of the window to `path`.
    pub fn screenshot(&self, path: &Path) -> Result<()> {
        use base64::Engine as _;
        let v = self.send("GET", "/screenshot", None)?;
        let b64 = v.as_str().ok_or_else(|| anyhow!("no screenshot in {v}"))?;
        let png = base64::engine::general_purpose::STANDARD.decode(b64)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Closes the browser; then the driver this session started.
        let _ = self.agent.delete(&self.base).call();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
