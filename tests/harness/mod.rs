//! One harness for process-level tests: a fresh data directory removed on
//! drop, and the real `idfold` binary run against it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub mod http;
pub mod kafka;

pub const BIN: &str = env!("CARGO_BIN_EXE_idfold");

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The records of an `idfold export`: (kind: `profile` or `mau`, workspace,
/// the JSON without its `record` field, as the API serves it).
pub fn export_records(export: &str) -> Vec<(String, String, serde_json::Value)> {
    export
        .lines()
        .map(|line| {
            let mut value: serde_json::Value = serde_json::from_str(line).expect("JSON");
            let record = value["record"].as_str().unwrap_or_default().to_owned();
            if let Some(map) = value.as_object_mut() {
                map.remove("record");
            }
            let workspace = value["workspace_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            (record, workspace, value)
        })
        .collect()
}

/// The lines of a fixture file that belong to `workspace`.
pub fn fixture_lines(name: &str, workspace: &str) -> Vec<String> {
    std::fs::read_to_string(fixture(name))
        .expect("fixture")
        .lines()
        .filter(|l| l.contains(&format!("\"workspace_id\":\"{workspace}\"")))
        .map(str::to_owned)
        .collect()
}

/// Runs `command` with `input` on its stdin; its output.
pub fn run_with_stdin(mut command: Command, input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{command:?} runs: {e}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("written");
    child.wait_with_output().expect("the command ends")
}

/// Polls `done` every 100 ms, failing after a minute.
pub fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// `child`'s stderr (piped), collected line by line by a thread.
pub fn collect_stderr(child: &mut Child) -> Arc<Mutex<String>> {
    let stderr = child.stderr.take().expect("stderr piped");
    let log = Arc::new(Mutex::new(String::new()));
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let mut log = sink.lock().unwrap_or_else(|p| p.into_inner());
            log.push_str(&line);
            log.push('\n');
        }
    });
    log
}

/// What `collect_stderr` collected so far.
pub fn collected(log: &Mutex<String>) -> String {
    log.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Sends SIG`name` (`TERM`, `KILL`) to `child`, unless it has exited.
pub fn signal(child: &mut Child, name: &str) {
    if matches!(child.try_wait(), Ok(None)) {
        Command::new("kill")
            .arg(format!("-{name}"))
            .arg(child.id().to_string())
            .status()
            .expect("kill runs");
    }
}

/// `signal`, then `child`'s exit status: waited for within `within` when
/// given (past it, `child` is killed and the test fails saying `what` did
/// not stop, with `log()`), then 100 ms more for the thread of
/// `collect_stderr` to take the last lines.
pub fn signal_and_wait(
    child: &mut Child,
    name: &str,
    within: Option<Duration>,
    what: &str,
    log: impl Fn() -> String,
) -> ExitStatus {
    signal(child, name);
    let status = match within {
        None => child.wait().expect("reaped"),
        Some(within) => {
            let deadline = Instant::now() + within;
            loop {
                if let Some(status) = child.try_wait().expect("waitable") {
                    break status;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    panic!("{what} did not stop on SIG{name}:\n{}", log());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    };
    std::thread::sleep(Duration::from_millis(100));
    status
}

/// Kills and reaps the child, if any (for `Drop`).
pub fn kill_and_reap(child: &mut Option<Child>) {
    if let Some(mut child) = child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// An idfold data directory, deleted when dropped.
pub struct Idfold {
    _dir: TempDir,
    data: PathBuf,
}

impl Idfold {
    pub fn new() -> Idfold {
        let dir = tempfile::tempdir().expect("a temporary directory");
        Idfold {
            data: dir.path().to_owned(),
            _dir: dir,
        }
    }

    /// One whose data directory does not exist yet (for `compact --into`).
    pub fn not_created() -> Idfold {
        let dir = tempfile::tempdir().expect("a temporary directory");
        Idfold {
            data: dir.path().join("data"),
            _dir: dir,
        }
    }

    pub fn data(&self) -> &Path {
        &self.data
    }

    /// `idfold <sub> --data DIR <args...>`, waited for.
    pub fn run(&self, sub: &str, args: &[&str]) -> Output {
        self.command(sub, args).output().expect("idfold runs")
    }

    /// Like `run`, asserting exit 0 and returning stdout.
    pub fn ok(&self, sub: &str, args: &[&str]) -> String {
        let out = self.run(sub, args);
        assert!(
            out.status.success(),
            "idfold {sub} {args:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8 output")
    }

    pub fn command(&self, sub: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.arg(sub).arg("--data").arg(self.data()).args(args);
        cmd.env_remove("IDFOLD_DATA").stdin(Stdio::null());
        cmd
    }

    pub fn spawn(&self, sub: &str, args: &[&str]) -> Child {
        self.command(sub, args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("idfold starts")
    }

    pub fn ingest(&self, file: &Path) -> String {
        self.ok("ingest", &["--json", file.to_str().expect("UTF-8 path")])
    }

    pub fn fold(&self) -> String {
        self.ok("run", &["--until-idle"]);
        self.export()
    }

    pub fn export(&self) -> String {
        self.ok("export", &[])
    }

    pub fn json(&self, sub: &str, args: &[&str]) -> serde_json::Value {
        serde_json::from_str(&self.ok(sub, args)).expect("JSON output")
    }
}

/// A generated workload written to a temporary NDJSON file.
pub fn generated_workload(events: usize, seed: u64) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("workload.ndjson");
    let out = Command::new(BIN)
        .args([
            "generate",
            "--events",
            &events.to_string(),
            "--seed",
            &seed.to_string(),
        ])
        .output()
        .expect("idfold generate runs");
    assert!(out.status.success());
    std::fs::write(&path, out.stdout).expect("workload written");
    (dir, path)
}
