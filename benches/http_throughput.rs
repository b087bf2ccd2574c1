//! `idfold serve` under load from a separate process (this one): Segment
//! batch requests of 100 events over loopback, each answered only once
//! durable, beside the same server's `GET /healthz` rate measured in the
//! same run (the ceiling: HTTP and the load generator with no work behind
//! them). Embedded mode always; Kafka mode when a broker is given
//! (`deploy/kafka.sh with cargo bench --bench http_throughput`, or
//! IDFOLD_BENCH_KAFKA=HOST:PORT). The fold runs inside the server as it
//! would in production, sharing the cores.
//!
//! It also measures `GET .../profiles/{id}/segments` (what decides whether
//! to show a survey) with 20 segments stored, beside the same ceiling.
//!
//! `IDFOLD_BENCH_SECONDS` (default 10) sets each measurement's length,
//! `IDFOLD_BENCH_CLIENTS` (default 16) the concurrent connections.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use rand::Rng;

const BIN: &str = env!("CARGO_BIN_EXE_idfold");
const EVENTS_PER_REQUEST: usize = 100;
const WRITE_KEY: &str = "wk_bench_0123456789abcdef";
const READ_TOKEN: &str = "rt_bench_0123456789abcdef";

struct Measured {
    requests_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    failed: usize,
}

fn main() -> anyhow::Result<()> {
    let seconds: u64 = env_number("IDFOLD_BENCH_SECONDS", 10);
    let clients: usize = env_number("IDFOLD_BENCH_CLIENTS", 16);
    println!("{clients} client connections, {seconds} s per measurement, {EVENTS_PER_REQUEST} events per batch request");
    println!();
    println!("| mode | batch: events/s | p50 | p99 | ceiling: GET /healthz, same server, req/s | non-2xx |");
    println!("|---|---:|---:|---:|---:|---:|");

    let data = tempfile::tempdir()?;
    let server = Server::start(&["--data", path(data.path())?])?;
    let (batch, health) = measure(&server, clients, seconds)?;
    row("embedded (sled flush per group commit)", &batch, &health);
    drop(server);

    if let Some(bootstrap) = ["IDFOLD_BENCH_KAFKA", "IDFOLD_TEST_KAFKA"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    {
        let prefix = format!("bench-http-{:08x}", rand::thread_rng().gen::<u32>());
        let topics = Command::new(BIN)
            .args(["topics", "--kafka", &bootstrap, "--topic-prefix", &prefix])
            .output()?;
        anyhow::ensure!(topics.status.success(), "idfold topics failed");
        let data = tempfile::tempdir()?;
        let server = Server::start(&[
            "--data",
            path(data.path())?,
            "--kafka",
            &bootstrap,
            "--topic-prefix",
            &prefix,
        ])?;
        let (batch, health) = measure(&server, clients, seconds)?;
        row("Kafka (acks=all, idempotent)", &batch, &health);
        drop(server);
        delete_topics(&bootstrap, &prefix);
    } else {
        println!("(no broker: Kafka mode skipped; run with deploy/kafka.sh with cargo bench --bench http_throughput)");
    }
    let (segments, health, users) = measure_segments(clients, seconds)?;
    println!();
    println!("| read | req/s | p50 | p99 | ceiling: GET /healthz, same server, req/s | non-2xx |");
    println!("|---|---:|---:|---:|---:|---:|");
    println!(
        "| segments of one profile (20 segments, {users} identified profiles in the workspace) | {:.0} | {:.2} ms | {:.2} ms | {:.0} (p50 {:.2} ms) | {} |",
        segments.requests_per_s, segments.p50_ms, segments.p99_ms, health.requests_per_s, health.p50_ms, segments.failed
    );
    println!();

    Ok(())
}

fn row(mode: &str, batch: &Measured, health: &Measured) {
    let events = batch.requests_per_s * EVENTS_PER_REQUEST as f64;
    println!(
        "| {mode} | {events:.0} | {:.1} ms | {:.1} ms | {:.0} (p50 {:.2} ms) | {} |",
        batch.p50_ms, batch.p99_ms, health.requests_per_s, health.p50_ms, batch.failed
    );
}

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn path(p: &std::path::Path) -> anyhow::Result<&str> {
    p.to_str()
        .ok_or_else(|| anyhow::anyhow!("a non-UTF-8 temporary path"))
}

fn write_auth() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{WRITE_KEY}:"))
    )
}

/// The same server's `/healthz`, after a warm-up: the ceiling.
fn ceiling(server: &Server, clients: usize, seconds: u64) -> Measured {
    let health_url = format!("{}/healthz", server.base);
    let _ = load(clients, 1, "", |_, _| {
        ("GET", health_url.clone(), Vec::new())
    });
    load(clients, seconds, "", |_, _| {
        ("GET", health_url.clone(), Vec::new())
    })
}

/// The ceiling first, then the batch endpoint, each after a warm-up.
fn measure(server: &Server, clients: usize, seconds: u64) -> anyhow::Result<(Measured, Measured)> {
    let health = ceiling(server, clients, seconds);
    let batch_url = format!("{}/v1/batch", server.base);
    let auth = write_auth();
    let _ = load(clients, 2, &auth, |c, n| {
        ("POST", batch_url.clone(), batch_body(c, n + 1_000_000_000))
    });
    let batch = load(clients, seconds, &auth, |c, n| {
        ("POST", batch_url.clone(), batch_body(c, n))
    });
    Ok((batch, health))
}

/// Twenty segments of every kind of condition, as a survey product would keep.
fn segment_filters() -> Vec<String> {
    let mut filters = Vec::new();
    for i in 0..4 {
        let plan = ["free", "pro", "team", "enterprise"][i];
        filters.push(format!(r#"{{"trait": "plan", "eq": "{plan}"}}"#));
        filters.push(format!(
            r#"{{"event": "Feature Used", "count_at_least": {}, "within_days": 30}}"#,
            i + 1
        ));
        filters.push(format!(
            r#"{{"all": [{{"survey": "s-{i}", "action": "shown", "when": "ever"}}, {{"survey": "s-{i}", "action": "responded", "when": "never"}}]}}"#
        ));
        filters.push(format!(
            r#"{{"any": [{{"trait": "seats", "gte": {}}}, {{"last_seen": {{"within_days": {}}}}}]}}"#,
            10 * (i + 1),
            7 * (i + 1)
        ));
        filters.push(format!(
            r#"{{"not": {{"trait": "name", "contains": "User {i}"}}}}"#
        ));
    }
    filters
}

/// `GET /v1/workspaces/ws-0/profiles/user:N/segments` with 20 segments
/// stored, on a folded generated workload, beside the same server's
/// `/healthz`.
fn measure_segments(clients: usize, seconds: u64) -> anyhow::Result<(Measured, Measured, usize)> {
    let data = tempfile::tempdir()?;
    let dir = path(data.path())?;
    let workload = data.path().join("workload.ndjson");
    let generated = Command::new(BIN)
        .args(["generate", "--events", "100000", "--workspaces", "5"])
        .output()?;
    std::fs::write(&workload, generated.stdout)?;
    for args in [
        vec!["ingest", "--data", dir, path(&workload)?],
        vec!["run", "--data", dir, "--until-idle"],
    ] {
        let out = Command::new(BIN).args(&args).output()?;
        anyhow::ensure!(out.status.success(), "idfold {args:?} failed");
    }
    let export = Command::new(BIN)
        .args(["export", "--data", dir, "--workspace", "ws-0"])
        .output()?;
    let users: Vec<String> = String::from_utf8_lossy(&export.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|p| {
            p["id"]
                .as_str()
                .filter(|id| id.starts_with("user:"))
                .map(str::to_owned)
        })
        .collect();
    anyhow::ensure!(!users.is_empty(), "no identified profiles in ws-0");
    let server = Server::start(&["--data", dir])?;
    let read_auth = format!("Bearer {READ_TOKEN}");
    let agent = ureq::AgentBuilder::new().build();
    for (i, filter) in segment_filters().iter().enumerate() {
        agent
            .put(&format!(
                "{}/v1/workspaces/ws-0/segments/segment-{i}",
                server.base
            ))
            .set("Authorization", &read_auth)
            .send_string(filter)?;
    }
    let health = ceiling(&server, clients, seconds);
    let url = |n: usize| {
        format!(
            "{}/v1/workspaces/ws-0/profiles/{}/segments",
            server.base,
            users[n % users.len()]
        )
    };
    let _ = load(clients, 1, &read_auth, |c, n| {
        ("GET", url(c * 7919 + n), Vec::new())
    });
    let segments = load(clients, seconds, &read_auth, |c, n| {
        ("GET", url(c * 7919 + n), Vec::new())
    });
    Ok((segments, health, users.len()))
}

/// A Segment batch: mostly tracks, an identify with an email now and then,
/// over a few thousand users; message ids unique per client and request.
fn batch_body(client: usize, request: usize) -> Vec<u8> {
    let mut items = Vec::with_capacity(EVENTS_PER_REQUEST);
    for i in 0..EVENTS_PER_REQUEST {
        let user = (request * 7 + i * 13 + client) % 5_000;
        let id = format!("b-{client}-{request}-{i}");
        items.push(if i % 10 == 0 {
            format!(r#"{{"type":"identify","messageId":"{id}","userId":"u-{user}","anonymousId":"d-{user}","timestamp":"2026-11-01T10:00:00Z","traits":{{"email":"user{user}@example.com","plan":"pro"}}}}"#)
        } else {
            format!(r#"{{"type":"track","messageId":"{id}","userId":"u-{user}","event":"Clicked","timestamp":"2026-11-01T10:00:00Z","properties":{{"button":"save","i":{i}}}}}"#)
        });
    }
    format!(
        r#"{{"batch":[{}],"sentAt":"2026-11-01T10:00:00Z","context":{{"library":{{"name":"bench"}}}}}}"#,
        items.join(",")
    )
    .into_bytes()
}

/// `clients` threads, each on its own keep-alive connection, sending what
/// `request(client, n)` gives for `seconds`; latencies of 2xx answers.
fn load<F>(clients: usize, seconds: u64, auth: &str, request: F) -> Measured
where
    F: Fn(usize, usize) -> (&'static str, String, Vec<u8>) + Sync,
{
    let latencies = Mutex::new(Vec::<Duration>::new());
    let failed = Mutex::new(0usize);
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for client in 0..clients {
            let (latencies, failed, stop, request, auth) =
                (&latencies, &failed, &stop, &request, &auth);
            scope.spawn(move || {
                let agent = ureq::AgentBuilder::new()
                    .timeout(Duration::from_secs(30))
                    .build();
                let mut mine = Vec::new();
                let mut bad = 0;
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let (method, url, body) = request(client, n);
                    let sent = Instant::now();
                    let answer = agent
                        .request(method, &url)
                        .set("Authorization", auth)
                        .set("Content-Type", "application/json")
                        .send_bytes(&body);
                    match answer {
                        Ok(response) if response.status() == 200 => {
                            let _ = response.into_string();
                            mine.push(sent.elapsed());
                        }
                        _ => bad += 1,
                    }
                    n += 1;
                }
                latencies
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend(mine);
                *failed.lock().unwrap_or_else(|p| p.into_inner()) += bad;
            });
        }
        std::thread::sleep(Duration::from_secs(seconds));
        stop.store(true, Ordering::Relaxed);
    });
    let elapsed = started.elapsed().as_secs_f64();
    let mut latencies = latencies.into_inner().unwrap_or_else(|p| p.into_inner());
    latencies.sort();
    let percentile = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    Measured {
        requests_per_s: latencies.len() as f64 / elapsed,
        p50_ms: percentile(0.50),
        p99_ms: percentile(0.99),
        failed: failed.into_inner().unwrap_or_else(|p| p.into_inner()),
    }
}

/// `idfold serve` (the release build), killed on drop.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(args: &[&str]) -> anyhow::Result<Server> {
        let mut child = Command::new(BIN)
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("IDFOLD_WRITE_KEYS", format!("bench:{WRITE_KEY}"))
            .env("IDFOLD_READ_TOKENS", format!("ws-0:{READ_TOKEN}"))
            .env("IDFOLD_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stderr"))?;
        let mut lines = BufReader::new(stderr).lines();
        let base = loop {
            match lines.next() {
                Some(line) => {
                    if let Some(address) = line?.strip_prefix("listening on ") {
                        break address.trim().to_owned();
                    }
                }
                None => anyhow::bail!("idfold serve exited before listening"),
            }
        };
        // Keep draining its stderr so it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Ok(Server { child, base })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn delete_topics(bootstrap: &str, prefix: &str) {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    let Ok(admin) = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create::<AdminClient<DefaultClientContext>>()
    else {
        return;
    };
    let topics: Vec<String> = [
        "raw.identify",
        "raw.traits",
        "raw.track",
        "raw.survey",
        "events",
        "dead-letters",
    ]
    .iter()
    .map(|t| format!("{prefix}.{t}"))
    .collect();
    let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    let _ = futures_executor::block_on(admin.delete_topics(&refs, &AdminOptions::new()));
}
