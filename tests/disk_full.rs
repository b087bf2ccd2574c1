//! A full disk under `idfold serve` (embedded log): writes are answered 503
//! with Retry-After while there is no room, the process keeps answering
//! reads and `/healthz`, `/readyz` says why it is not ready, the fold waits,
//! and everything resumes by itself once space is freed. Nothing answered
//! 2xx is lost. Runs on a small tmpfs, so it needs root (CI runs as root).

mod harness;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::http::{agent, basic, get, request, Server};
use harness::{export_records, fixture, Idfold, BIN};
use serde_json::json;

const ACME_KEY: &str = "wk_acme_test_0123456789";
const ACME_TOKEN: &str = "rt_acme_test_0123456789";

/// A size-limited tmpfs mounted over a directory, unmounted on drop.
struct SmallFilesystem {
    at: PathBuf,
}

impl SmallFilesystem {
    fn mount_over(at: &Path, size: &str) -> SmallFilesystem {
        let uid = Command::new("id").arg("-u").output().expect("id runs");
        assert!(
            String::from_utf8_lossy(&uid.stdout).trim() == "0",
            "tests/disk_full.rs mounts a small tmpfs to fill it, which needs root \
             (CI runs as root): run it as root, e.g. `sudo -E cargo test --test disk_full`"
        );
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .expect("mount runs");
        assert!(
            mounted.status.success(),
            "cannot mount a tmpfs over {}: {}",
            at.display(),
            String::from_utf8_lossy(&mounted.stderr)
        );
        SmallFilesystem { at: at.to_owned() }
    }

    /// Writes a filler file until the filesystem refuses more; with
    /// `leave`, then gives that many bytes back.
    fn fill(&self, leave: u64) {
        let path = self.filler();
        let mut file = std::fs::File::create(&path).expect("filler created");
        for chunk in [64 * 1024, 4096, 1] {
            let bytes = vec![0u8; chunk];
            while file.write_all(&bytes).is_ok() {}
        }
        let full = file.metadata().expect("filler metadata").len();
        file.set_len(full.saturating_sub(leave))
            .expect("filler shortened");
    }

    fn free(&self) {
        std::fs::remove_file(self.filler()).expect("filler removed");
    }

    fn filler(&self) -> PathBuf {
        self.at.join("filler")
    }
}

impl Drop for SmallFilesystem {
    fn drop(&mut self) {
        // Lazy: a process still holding a file there cannot keep it mounted.
        let _ = Command::new("umount").arg("-l").arg(&self.at).status();
    }
}

/// Polls `done` until it holds, failing after a minute with `log()` (the
/// stderr of the processes the test started).
fn wait_for(what: &str, log: impl Fn() -> String, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; stderr:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An idfold process the test reads the stderr of, killed on drop.
struct Running {
    child: Option<Child>,
    log: Arc<Mutex<String>>,
}

impl Running {
    fn spawn(idfold: &Idfold, args: &[&str]) -> Running {
        let mut child = Command::new(BIN)
            .args(args)
            .arg("--data")
            .arg(idfold.data())
            .env_remove("IDFOLD_DATA")
            .env_remove("IDFOLD_KAFKA")
            .env_remove("IDFOLD_WRITE_KEYS")
            .env_remove("IDFOLD_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("idfold starts");
        let log = harness::collect_stderr(&mut child);
        Running {
            child: Some(child),
            log,
        }
    }

    fn log(&self) -> String {
        harness::collected(&self.log)
    }

    fn wait_for_line(&self, what: &str, needle: &str) {
        wait_for(what, || self.log(), || self.log().contains(needle));
    }

    fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGTERM (unless it has exited), then the exit status.
    fn stop(mut self) -> (ExitStatus, String) {
        let mut child = self.child.take().expect("started");
        let within = Some(Duration::from_secs(60));
        let status = harness::signal_and_wait(&mut child, "TERM", within, "idfold", || self.log());
        (status, self.log())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        harness::kill_and_reap(&mut self.child);
    }
}

fn track(user: &str) -> Vec<u8> {
    json!({
        "type": "track", "userId": user, "event": "Clicked", "messageId": format!("m-{user}"),
        "timestamp": "2026-10-05T12:00:00Z",
    })
    .to_string()
    .into_bytes()
}

fn send(server: &Server, user: &str) -> harness::http::Reply {
    send_to(&server.base, user)
}

fn send_to(base: &str, user: &str) -> harness::http::Reply {
    request(
        &agent(),
        "POST",
        &format!("{base}/v1/track"),
        &[("Authorization", &basic(ACME_KEY))],
        &track(user),
    )
}

fn profile_status(server: &Server, user: &str) -> u16 {
    let bearer = format!("Bearer {ACME_TOKEN}");
    request(
        &agent(),
        "GET",
        &server.url(&format!("/v1/workspaces/acme/profiles/user:{user}")),
        &[("Authorization", &bearer)],
        b"",
    )
    .status
}

/// The sum of a counter's samples in `/metrics` whose labels contain `label`.
fn counter(server: &Server, name: &str, label: &str) -> f64 {
    get(&server.url("/metrics"))
        .text
        .lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn start(idfold: &Idfold) -> Server {
    let config = fixture("serve.toml");
    Server::start(
        idfold,
        &["--config", config.to_str().expect("UTF-8 path")],
        &[],
    )
}

/// Every user of the acme workspace in `idfold export`.
fn exported_users(idfold: &Idfold) -> Vec<String> {
    export_records(&idfold.export())
        .into_iter()
        .filter(|(record, workspace, _)| record == "profile" && workspace == "acme")
        .filter_map(|(_, _, value)| Some(value["user_id"].as_str()?.to_owned()))
        .collect()
}

/// Every acknowledged user, and no other, in `idfold export`.
fn assert_all_folded(idfold: &Idfold, mut acknowledged: Vec<String>) {
    let mut exported = exported_users(idfold);
    exported.sort();
    acknowledged.sort();
    assert_eq!(exported, acknowledged, "every acknowledged event is folded");
}

/// A process's exit 0, given its `stop()`; its log.
fn assert_exit_0(what: &str, (status, log): (ExitStatus, String)) -> String {
    assert!(status.success(), "{what} did not exit 0: {status}\n{log}");
    log
}

/// An event of `user` accepted (200) by the server at `base` (`log()`: its
/// stderr); `user` joins `acknowledged`.
fn send_acknowledged(
    base: &str,
    user: &str,
    log: impl Fn() -> String,
    acknowledged: &mut Vec<String>,
) {
    let reply = send_to(base, user);
    assert_eq!(reply.status, 200, "{reply:?}\n{}", log());
    acknowledged.push(user.to_owned());
}

/// A track event of each of `users` (with `properties`, when given) in the
/// log by `idfold ingest`, not yet folded; each user joins `acknowledged`.
fn ingest_tracks(
    idfold: &Idfold,
    users: impl IntoIterator<Item = String>,
    properties: Option<serde_json::Value>,
    acknowledged: &mut Vec<String>,
) {
    let mut lines = tempfile::NamedTempFile::new().expect("a temporary file");
    for user in users {
        let mut event = json!({
            "type": "track", "message_id": format!("m-{user}"), "workspace_id": "acme",
            "timestamp": "2026-10-05T12:00:00Z", "user_id": user, "event": "Clicked",
        });
        if let Some(properties) = &properties {
            event["properties"] = properties.clone();
        }
        writeln!(lines, "{event}").expect("written");
        acknowledged.push(user);
    }
    idfold.ingest(lines.path());
}

/// What a full disk looks like from outside while the server runs.
fn assert_refuses_writes_and_answers_reads(server: &Server, user: &str, read_user: &str) {
    let log = || server.log();
    let refused = send(server, user);
    assert_eq!(
        (refused.status, refused.code()),
        (503, "log_unavailable"),
        "{refused:?}\n{}",
        log()
    );
    assert!(refused.retry_after.is_some(), "{refused:?}");
    assert_eq!(get(&server.url("/healthz")).status, 200, "{}", log());
    assert_eq!(profile_status(server, read_user), 200, "{}", log());
    let ready = get(&server.url("/readyz"));
    assert_eq!(ready.status, 503, "{ready:?}");
    assert!(
        ready.body["reason"]
            .as_str()
            .is_some_and(|r| r.contains("filesystem is full")),
        "{ready:?}"
    );
}

#[test]
fn a_full_disk_is_waited_out_by_serve_and_nothing_acknowledged_is_lost() {
    let idfold = Idfold::new();
    let disk = SmallFilesystem::mount_over(idfold.data(), "16m");
    let mut acknowledged = Vec::new();

    let server = start(&idfold);
    for i in 0..10 {
        let user = format!("before-{i}");
        send_acknowledged(&server.base, &user, || server.log(), &mut acknowledged);
    }
    wait_for(
        "the first events folded",
        || server.log(),
        || profile_status(&server, "before-9") == 200,
    );

    disk.fill(0);
    assert_refuses_writes_and_answers_reads(&server, "during-0", "before-0");
    // The fold waits, says so, and counts its tries, without stopping.
    wait_for(
        "the fold's waits counted",
        || server.log(),
        || counter(&server, "idfold_disk_full_waits_total", "stage=\"fold\"") >= 2.0,
    );
    assert!(
        server.log().contains("the fold waits for free space"),
        "{}",
        server.log()
    );
    assert_refuses_writes_and_answers_reads(&server, "during-1", "before-1");

    disk.free();
    wait_for(
        "ready again once space is freed",
        || server.log(),
        || get(&server.url("/readyz")).status == 200,
    );
    // The refused events, retried as a client does, and new ones.
    for user in ["during-0", "during-1", "after-0"] {
        send_acknowledged(&server.base, user, || server.log(), &mut acknowledged);
    }
    wait_for(
        "the events after the wait folded",
        || server.log(),
        || profile_status(&server, "after-0") == 200,
    );
    let log = assert_exit_0("serve", server.stop());
    assert!(log.contains("the fold resumes"), "{log}");

    // A restart with a little room left (sled opens, writes do not fit):
    // it waits, not ready, instead of exiting.
    disk.fill(1024 * 1024);
    let server = start(&idfold);
    assert_refuses_writes_and_answers_reads(&server, "restart-0", "after-0");
    disk.free();
    wait_for(
        "ready after the restart once space is freed",
        || server.log(),
        || get(&server.url("/readyz")).status == 200,
    );
    send_acknowledged(
        &server.base,
        "restart-0",
        || server.log(),
        &mut acknowledged,
    );
    assert_exit_0("serve", server.stop());

    assert_all_folded(&idfold, acknowledged);
}

#[test]
fn serve_started_on_a_full_disk_waits_to_open_it_and_run_waits_to_fold() {
    let idfold = Idfold::new();
    let disk = SmallFilesystem::mount_over(idfold.data(), "16m");
    let config = fixture("serve.toml");
    let config = config.to_str().expect("UTF-8 path");
    let mut acknowledged = Vec::new();

    let server = start(&idfold);
    for user in ["first-0", "first-1"] {
        send_acknowledged(&server.base, user, || server.log(), &mut acknowledged);
    }
    assert_exit_0("serve", server.stop());

    // No room at all: sled cannot even open the directory (it writes to
    // open it). serve says so and waits, rather than exiting.
    disk.fill(0);
    let mut serve = Running::spawn(
        &idfold,
        &["serve", "--listen", "127.0.0.1:0", "--config", config],
    );
    serve.wait_for_line(
        "serve saying it waits for space to open",
        "opening the data directory waits for free space",
    );
    assert!(
        serve.log().contains("filesystem is full"),
        "{}",
        serve.log()
    );
    assert!(serve.is_running(), "{}", serve.log());
    disk.free();
    serve.wait_for_line("serve listening once space is freed", "listening on ");
    let log = serve.log();
    let base = log
        .lines()
        .find_map(|l| l.split_once("listening on ")?.1.split(['"', ' ']).next())
        .expect("an address")
        .trim()
        .to_owned();
    send_acknowledged(&base, "second-0", || serve.log(), &mut acknowledged);
    assert_exit_0("serve", serve.stop());

    // Events in the log, not yet folded; a following `run` on a full
    // disk waits, then folds them once there is room.
    let users = ["third-0", "third-1"].map(str::to_owned);
    ingest_tracks(&idfold, users, None, &mut acknowledged);
    disk.fill(1024 * 1024);
    let run = Running::spawn(&idfold, &["run"]);
    run.wait_for_line("run saying it waits", "the fold waits for free space");
    disk.free();
    run.wait_for_line("run resuming", "the fold resumes");
    run.wait_for_line("run folding", "folded a batch");
    assert_exit_0("run", run.stop());

    assert_all_folded(&idfold, acknowledged);
}

#[test]
fn the_disk_reserve_is_a_setting() {
    // More than any disk has free: every write is refused, reads are not.
    let idfold = Idfold::new();
    let config = fixture("serve.toml");
    let server = Server::start(
        &idfold,
        &["--config", config.to_str().expect("UTF-8 path")],
        &[("IDFOLD_DISK_RESERVE_MB", "1000000000")],
    );
    let refused = send(&server, "u-0");
    assert_eq!(
        (refused.status, refused.code()),
        (503, "log_unavailable"),
        "{refused:?}\n{}",
        server.log()
    );
    let ready = get(&server.url("/readyz"));
    assert!(
        ready.body["reason"]
            .as_str()
            .is_some_and(|r| r.contains("1048576000000000 needed")),
        "{ready:?}"
    );
    assert_eq!(get(&server.url("/healthz")).status, 200);
    assert_exit_0("serve", server.stop());
}

/// With no reserve, sled itself runs into the full disk and then refuses
/// every write until it is reopened, space or not. serve waits while the
/// disk is full, then stops with a message saying to restart it; the
/// restart folds everything that was acknowledged.
#[test]
fn when_sled_itself_hits_the_full_disk_serve_stops_for_a_restart_and_loses_nothing() {
    let idfold = Idfold::new();
    let disk = SmallFilesystem::mount_over(idfold.data(), "16m");
    let config = fixture("serve.toml");
    let config = config.to_str().expect("UTF-8 path");

    // Acknowledged, in the log, not yet folded.
    let mut acknowledged = Vec::new();
    let users = (0..3000).map(|i| format!("u-{i}"));
    let properties = json!({"note": "x".repeat(200)});
    ingest_tracks(&idfold, users, Some(properties), &mut acknowledged);
    // Room for sled to open, not for the fold's state.
    disk.fill(768 * 1024);
    let serve = Running::spawn(
        &idfold,
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--config",
            config,
            "--disk-reserve-mb",
            "0",
        ],
    );
    serve.wait_for_line(
        "the fold running into the full disk",
        "the fold waits for free space",
    );
    disk.free();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut serve = serve;
    while serve.is_running() {
        assert!(
            Instant::now() < deadline,
            "serve did not stop:\n{}",
            serve.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, log) = serve.stop();
    assert_eq!(status.code(), Some(3), "{log}");
    assert!(log.contains("restart idfold"), "{log}");

    let server = start(&idfold);
    wait_for(
        "the restarted serve to fold the rest",
        || server.log(),
        || profile_status(&server, "u-2999") == 200,
    );
    assert_exit_0("serve", server.stop());
    assert_all_folded(&idfold, acknowledged);
}
