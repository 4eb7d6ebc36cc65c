//! Helpers for the dashboard tests: a `cloudburst node` playing `gateway` (its dashboard
//! URL read from its stdout), a tiny async HTTP/1.1 client over a real socket, and the
//! Python browser check (`python/tests/dashboard_browser.py`, headless Chromium).
#![allow(dead_code)]

use crate::common::wait;

use cloudburst::ids::NodeRef;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bound of one HTTP exchange in these tests.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(5);
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A node process with a dashboard; killed on drop.
pub struct GatewayNode {
    pub child: Child,
    pub node: NodeRef,
    pub addr: SocketAddr,
    pub dashboard: SocketAddr,
    pub log: PathBuf,
}

impl GatewayNode {
    /// `cloudburst node --config FILE --listen 127.0.0.1:0 --dashboard-listen 127.0.0.1:0
    /// --client-listen 127.0.0.1:0 <args>` with the secret `S` and the client token in its
    /// environment, waiting for both its dashboard line and its readiness line.
    pub fn spawn(
        config: &Path,
        log: PathBuf,
        secret: &str,
        token: &str,
        args: &[&str],
    ) -> GatewayNode {
        let stderr = std::fs::File::create(&log).expect("log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_cloudburst"))
            .arg("node")
            .arg("--config")
            .arg(config)
            .args(["--listen", "127.0.0.1:0"])
            .args(["--dashboard-listen", "127.0.0.1:0"])
            .args(["--client-listen", "127.0.0.1:0"])
            .args(args)
            .args((!args.contains(&"--join")).then_some("--bootstrap"))
            .env("CLOUDBURST_CLUSTER_SECRET", secret)
            .env("CLOUDBURST_TOKEN", token)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info,cloudburst=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("spawn cloudburst node");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let (mut dashboard, mut ready) = (None, None);
        while ready.is_none() {
            match rx.recv_timeout(READY_TIMEOUT) {
                Ok(l) if l.starts_with("cloudburst dashboard listening on http://") => {
                    dashboard = Some(parse_dashboard(&l))
                }
                Ok(l) if l.starts_with("cloudburst node ") => ready = Some(parse_ready(&l)),
                Ok(_) => {}
                Err(_) => {
                    let _ = child.kill();
                    let text = std::fs::read_to_string(&log).unwrap_or_default();
                    panic!("node not ready in {READY_TIMEOUT:?}; log:\n{text}");
                }
            }
        }
        let (node, addr) = ready.expect("ready line");
        let dashboard = dashboard.expect("the dashboard line comes before the readiness line");
        GatewayNode {
            child,
            node,
            addr,
            dashboard,
            log,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.dashboard)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for GatewayNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parse_dashboard(line: &str) -> SocketAddr {
    let rest = line.trim_start_matches("cloudburst dashboard listening on http://");
    rest.trim_end_matches('/')
        .parse()
        .expect("dashboard address")
}

fn parse_ready(line: &str) -> (NodeRef, SocketAddr) {
    cloudburst::node::parse_node_line(line)
        .unwrap_or_else(|| panic!("unexpected readiness line: {line}"))
}

/// A response: status code, headers (lower-cased names) and body.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `GET path` with an optional `Authorization` header, `Connection: close`.
pub async fn get(addr: SocketAddr, path: &str, auth: Option<&str>) -> Response {
    let auth: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
    get_with(addr, path, &auth).await
}

/// `GET path` with `headers` (a `Host` among them replaces `Host: <addr>`),
/// `Connection: close`.
pub async fn get_with(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Response {
    tokio::time::timeout(HTTP_TIMEOUT, async {
        let mut s = TcpStream::connect(addr).await.expect("connect dashboard");
        let mut head: String = headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}\r\n"))
            .collect();
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            head.push_str(&format!("Host: {addr}\r\n"));
        }
        let req = format!("GET {path} HTTP/1.1\r\n{head}Connection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.expect("write request");
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.expect("read response");
        parse_response(&String::from_utf8_lossy(&raw))
    })
    .await
    .expect("HTTP exchange within the timeout")
}

fn parse_response(raw: &str) -> Response {
    let (head, body) = raw.split_once("\r\n\r\n").expect("header/body separator");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Response {
        status,
        headers,
        body: body.to_string(),
    }
}

/// Open `/api/events` and read until `events` `snapshot` events arrived; returns the
/// `data:` payloads of every event seen (history first).
pub async fn read_events(addr: SocketAddr, query: &str, events: usize) -> Vec<(String, String)> {
    tokio::time::timeout(HTTP_TIMEOUT, async {
        let mut s = TcpStream::connect(addr).await.expect("connect dashboard");
        let req = format!("GET /api/events{query} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        s.write_all(req.as_bytes()).await.expect("write request");
        let mut text = String::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let parsed = parse_events(&text);
            if parsed.iter().filter(|(e, _)| e == "snapshot").count() >= events {
                return parsed;
            }
            let n = s.read(&mut buf).await.expect("read events");
            assert!(n > 0, "event stream closed early:\n{text}");
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    })
    .await
    .expect("events within the timeout")
}

/// `(event, data)` pairs from a raw (chunked) SSE response. Each event is written in one
/// chunk, so its `event:` and `data:` lines are adjacent.
fn parse_events(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut event = None;
    for line in text.lines() {
        if let Some(e) = line.strip_prefix("event: ") {
            event = Some(e.to_string());
        } else if let (Some(d), Some(e)) = (line.strip_prefix("data: "), event.take()) {
            out.push((e, d.to_string()));
        }
    }
    out
}

/// The headless-Chromium check (`python/tests/dashboard_browser.py`) running in a child
/// process; its stdout lines are readable as they come (it prints `page ready` once the
/// page has rendered its first snapshot).
pub struct BrowserCheck {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

/// How long the browser check may take in all (Chromium start-up included).
pub const BROWSER_TIMEOUT: Duration = Duration::from_secs(20);

impl BrowserCheck {
    /// Start it with `args` (see the script's `--help`).
    pub fn start(args: &[&str]) -> BrowserCheck {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let python = root.join(".venv/bin/python3");
        assert!(
            python.exists(),
            "{} is missing: run scripts/setup.sh (it installs selenium and chromium)",
            python.display()
        );
        let mut child = Command::new(&python)
            .arg("-u")
            .arg(root.join("python/tests/dashboard_browser.py"))
            .args(args)
            .current_dir(root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the browser check");
        let (tx, lines) = mpsc::channel();
        for out in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        BrowserCheck {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Wait for a line starting with `prefix`; panics with everything seen after `limit`.
    pub fn wait_line(&mut self, prefix: &str, limit: Duration) {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    let hit = l.starts_with(prefix);
                    self.seen.push(l);
                    if hit {
                        return;
                    }
                }
                Err(_) => panic!(
                    "browser check: no `{prefix}` line within {limit:?}; output:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Wait (bounded) for the check to exit; panics with its output unless it passed.
    pub fn finish(mut self, limit: Duration) {
        // On a timeout the panic drops `self`, which kills the check.
        let child = &mut self.child;
        let status = wait::blocking(limit, "the browser check to exit", || {
            child.try_wait().ok().flatten()
        });
        // The reader thread ends (closing the channel) at the child's end of output.
        loop {
            match self.lines.recv_timeout(Duration::from_secs(5)) {
                Ok(line) => self.seen.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => panic!("browser check output never ended"),
            }
        }
        let text = self.seen.join("\n");
        assert!(status.success(), "browser check failed ({status}):\n{text}");
        println!("{text}");
    }
}

impl Drop for BrowserCheck {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
