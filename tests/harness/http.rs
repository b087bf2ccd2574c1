//! `idfold serve` for process-level tests: started on 127.0.0.1:0, its
//! address read from its log, stopped (SIGTERM, then SIGKILL) on drop; and
//! a small HTTP client around ureq.

use std::io::Write;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;

use super::{kill_and_reap, signal_and_wait, Idfold, BIN};

pub struct Server {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// The generated development key, when serve runs without keys.
    pub dev_key: Option<String>,
    /// The generated development read token, likewise.
    pub dev_read_token: Option<String>,
    log: Arc<Mutex<String>>,
}

impl Server {
    /// `idfold serve --data DIR --listen 127.0.0.1:0 <args>`, with `env`.
    pub fn start(idfold: &Idfold, args: &[&str], env: &[(&str, &str)]) -> Server {
        Server::start_with_open_files(idfold, args, env, None)
    }

    /// Likewise, under `ulimit -n OPEN_FILES` when given.
    pub fn start_with_open_files(
        idfold: &Idfold,
        args: &[&str],
        env: &[(&str, &str)],
        open_files: Option<u32>,
    ) -> Server {
        let mut cmd = match open_files {
            None => Command::new(BIN),
            Some(n) => {
                let mut sh = Command::new("sh");
                sh.args(["-c", &format!("ulimit -n {n} && exec \"$0\" \"$@\""), BIN]);
                sh
            }
        };
        cmd.arg("serve")
            .arg("--data")
            .arg(idfold.data())
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env_remove("IDFOLD_DATA")
            .env_remove("IDFOLD_KAFKA")
            .env_remove("IDFOLD_WRITE_KEYS")
            .env_remove("IDFOLD_CONFIG")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("idfold serve starts");
        let log = super::collect_stderr(&mut child);
        let mut server = Server {
            child: Some(child),
            base: String::new(),
            dev_key: None,
            dev_read_token: None,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let log = server.log();
            // A text line, or a JSON log line with the same message.
            let listening = log.lines().find_map(|l| {
                let (_, rest) = l.split_once("listening on ")?;
                rest.split(['"', ' ']).next().map(str::to_owned)
            });
            if let Some(address) = listening {
                server.base = address.trim().to_owned();
                server.dev_key = log
                    .split_whitespace()
                    .find(|w| w.starts_with("idfold_dev_"))
                    .map(str::to_owned);
                server.dev_read_token = log
                    .split_whitespace()
                    .find(|w| w.starts_with("idfold_read_"))
                    .map(str::to_owned);
                return server;
            }
            let exited = server
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            assert!(exited.is_none(), "idfold serve exited ({exited:?}):\n{log}");
            assert!(
                Instant::now() < deadline,
                "idfold serve did not start:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// What serve wrote to stderr so far.
    pub fn log(&self) -> String {
        super::collected(&self.log)
    }

    /// SIGTERM, and the exit status (within 60 s) and the whole log.
    pub fn stop(mut self) -> (ExitStatus, String) {
        let mut child = self.child.take().expect("running");
        let within = Some(Duration::from_secs(60));
        let status = signal_and_wait(&mut child, "TERM", within, "idfold serve", || self.log());
        (status, self.log())
    }
}

impl Server {
    /// SIGKILL: no shutdown path runs.
    pub fn kill(mut self) -> String {
        if let Some(mut child) = self.child.take() {
            signal_and_wait(&mut child, "KILL", None, "idfold serve", || self.log());
        }
        self.log()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        kill_and_reap(&mut self.child);
    }
}

/// An HTTP answer: status, JSON body (Null when not JSON), Retry-After.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// The body parsed as JSON (`Null` when it is not JSON).
    pub body: serde_json::Value,
    /// The body as text.
    pub text: String,
    pub retry_after: Option<String>,
    /// Every header, names lower-cased.
    pub headers: Vec<(String, String)>,
}

impl Reply {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One agent per thread keeps its connection alive.
pub fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .build()
}

pub fn request(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    try_request(agent, method, url, headers, body).unwrap_or_else(|e| panic!("{method} {url}: {e}"))
}

/// A request whose transport may fail (a server going away): the error
/// as text instead of a panic.
pub fn try_request(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Reply, String> {
    let mut req = agent.request(method, url);
    for (name, value) in headers {
        req = req.set(name, value);
    }
    let response = match req.send_bytes(body) {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(e.to_string()),
    };
    let status = response.status();
    let retry_after = response.header("Retry-After").map(str::to_owned);
    let headers = response
        .headers_names()
        .into_iter()
        .filter_map(|n| {
            let value = response.header(&n)?.to_owned();
            Some((n.to_ascii_lowercase(), value))
        })
        .collect();
    let text = response.into_string().unwrap_or_default();
    Ok(Reply {
        status,
        body: serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        text,
        retry_after,
        headers,
    })
}

pub fn post(url: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    request(&agent(), "POST", url, headers, body)
}

pub fn get(url: &str) -> Reply {
    request(&agent(), "GET", url, &[], b"")
}

/// `Basic base64(key:)`: how Segment's libraries send a write key.
pub fn basic(key: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{key}:"))
    )
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

/// The workspaces of `tests/fixtures/serve.toml` used by the tests:
/// (id, write key, read token). Test values, not secrets.
pub const SERVE_TOML_WORKSPACES: [(&str, &str, &str); 2] = [
    ("acme", "wk_acme_test_0123456789", "rt_acme_test_0123456789"),
    (
        "globex",
        "wk_globex_test_0123456789",
        "rt_globex_test_0123456789",
    ),
];

fn serve_toml_workspace(workspace: &str) -> (&'static str, &'static str, &'static str) {
    SERVE_TOML_WORKSPACES
        .into_iter()
        .find(|(w, _, _)| *w == workspace)
        .expect("a workspace of serve.toml")
}

pub fn write_key(workspace: &str) -> &'static str {
    serve_toml_workspace(workspace).1
}

pub fn read_token(workspace: &str) -> &'static str {
    serve_toml_workspace(workspace).2
}

/// Events as NDJSON to `/v1/events` with the workspace's write key; 200.
pub fn send_events(server: &Server, workspace: &str, events: &[String]) {
    let reply = post(
        &server.url("/v1/events"),
        &[("Authorization", &basic(write_key(workspace)))],
        events.join("\n").as_bytes(),
    );
    assert_eq!(reply.status, 200, "{reply:?}");
}

/// A read API call with `Authorization: Bearer TOKEN` when given.
pub fn call(server: &Server, method: &str, path: &str, token: Option<&str>) -> Reply {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer
        .iter()
        .map(|b| ("Authorization", b.as_str()))
        .collect();
    request(&agent(), method, &server.url(path), &headers, b"")
}
