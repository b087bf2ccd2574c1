//! Fold throughput, peak memory and state size on generated workloads, each
//! beside its ceiling measured in the same run: plain sled batch writes of
//! one random key per event. Every fold runs in a child process of its own
//! so that its peak memory is its own.
//!
//! 1. The mixed workload: 1M events over 200 workspaces
//!    (`IDFOLD_BENCH_EVENTS` overrides), with the stages measured apart.
//! 2. One workspace growing: 250k, 1M and 4M events
//!    (`IDFOLD_BENCH_SERIES=250000,1000000,4000000`): peak RSS must not
//!    grow with the workspace.
//! 3. A late link: a device with N earlier events signs in; the time to
//!    place its events again (`IDFOLD_BENCH_LATE=10,1000,100000`).
//!
//! Run: `cargo bench --bench fold_throughput`

use std::path::Path;
use std::time::Instant;

use idfold_log::{DataDir, EmbeddedLog, EventLog};
use idfold_producer::{Publisher, RawInput};
use idfold_projector::{FoldOptions, FoldRecord, MemoryFold, Projector};
use idfold_workload::{generate, WorkloadSpec};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// Records per fold batch; `IDFOLD_BENCH_BATCH` overrides.
fn batch_size() -> usize {
    std::env::var("IDFOLD_BENCH_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

fn list(var: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(var)
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}

/// Set in the child process: the data directory to fold.
const CHILD_ENV: &str = "IDFOLD_BENCH_FOLD_DIR";
/// Set in the child process that measures the ceiling: how many keys.
const CEILING_ENV: &str = "IDFOLD_BENCH_CEILING_KEYS";

/// The same allocator as the `idfold` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        return fold_child(Path::new(&dir));
    }
    if let Some(keys) = std::env::var(CEILING_ENV).ok().and_then(|v| v.parse().ok()) {
        println!("{}", plain_sled_writes(keys)?);
        return Ok(());
    }
    mixed_workload()?;
    single_workspace_series()?;
    late_links()?;
    Ok(())
}

fn mixed_workload() -> anyhow::Result<()> {
    let spec = WorkloadSpec::benchmark();
    let events = spec.events;
    println!(
        "== mixed workload: {events} events, {} workspaces, seed {}",
        spec.workspaces, spec.seed
    );
    let ceiling = ceiling_in_child(events)?;
    let tmp = tempfile::tempdir()?;
    let ingest_rate = ingest(tmp.path(), &spec)?;
    let (decode_rate, pure_rate) = {
        let dir = DataDir::open(tmp.path(), std::time::Duration::ZERO)?;
        stage_rates(&EmbeddedLog::open(&dir)?)?
    };
    let child = fold_in_child(tmp.path())?;
    let number = |k: &str| child[k].as_f64().unwrap_or(f64::NAN);
    let fold_rate = number("events_per_second");

    println!("{:<62} {:>12}", "measure", "value");
    let row = |name: &str, value: f64| println!("{name:<62} {value:>12.0}");
    row(
        "ceiling: plain sled batch writes, 1 random key/event (keys/s)",
        ceiling,
    );
    row(
        "ingest: validate + Avro + durable log append (events/s)",
        ingest_rate,
    );
    row(
        "stage: read + decode the canonical log (events/s)",
        decode_rate,
    );
    row(
        "stage: pure fold, in-memory store, no I/O (events/s)",
        pure_rate,
    );
    row("fold: log -> profiles + MAU in sled (events/s)", fold_rate);
    println!("{:<62} {:>12.2}", "fold / ceiling", fold_rate / ceiling);
    println!(
        "{:<62} {:>12}",
        "fold: folded / duplicates dropped",
        format!("{}/{}", child["folded"], child["duplicates"])
    );
    row(
        "fold process: peak RSS, sled cache included (MiB)",
        number("peak_kib") / 1024.0,
    );
    print_sizes(&child);
    print_split(&child);
    Ok(())
}

fn single_workspace_series() -> anyhow::Result<()> {
    let sizes = list("IDFOLD_BENCH_SERIES", &[250_000, 1_000_000, 4_000_000]);
    println!();
    println!("== one workspace growing: {sizes:?} events");
    println!("(the ceiling is measured on at most {CEILING_MAX_KEYS} keys: see plain_sled_writes)");
    println!(
        "{:>9} {:>10} {:>10} {:>6} {:>9} {:>10} {:>10} {:>22}",
        "events",
        "fold ev/s",
        "ceiling",
        "ratio",
        "peak MiB",
        "state B/ev",
        "log B/ev",
        "decode/rules/enc/commit"
    );
    let mut peaks = Vec::new();
    for &events in &sizes {
        let spec = WorkloadSpec {
            events,
            workspaces: 1,
            ..WorkloadSpec::benchmark()
        };
        let ceiling = ceiling_in_child(events.min(CEILING_MAX_KEYS))?;
        let tmp = tempfile::tempdir()?;
        ingest(tmp.path(), &spec)?;
        let child = fold_in_child(tmp.path())?;
        let number = |k: &str| child[k].as_f64().unwrap_or(f64::NAN);
        let rate = number("events_per_second");
        let peak = number("peak_kib") / 1024.0;
        peaks.push(peak);
        println!(
            "{events:>9} {rate:>10.0} {ceiling:>10.0} {:>6.2} {peak:>9.0} {:>10.0} {:>10.0} {:>22}",
            rate / ceiling,
            number("state_bytes") / number("folded"),
            number("log_bytes") / number("read"),
            split_text(&child),
        );
    }
    if let (Some(first), Some(last)) = (peaks.first(), peaks.last()) {
        println!(
            "peak RSS, largest / smallest workspace: {:.2}x (goal <= 1.3x)",
            last / first
        );
    }
    Ok(())
}

/// A device with N earlier events signs in: the batch holding the sign-in
/// places all N again (profile and MAU target).
fn late_links() -> anyhow::Result<()> {
    println!();
    println!("== late link: a device with N earlier events signs in");
    println!(
        "{:>9} {:>14} {:>14}",
        "N", "re-place (ms)", "per event (us)"
    );
    for n in list("IDFOLD_BENCH_LATE", &[10, 1_000, 100_000]) {
        let tmp = tempfile::tempdir()?;
        let dir = DataDir::open(tmp.path(), std::time::Duration::ZERO)?;
        let log = EmbeddedLog::open(&dir)?;
        let dead_letters = idfold_log::DeadLetterStore::open(&dir)?;
        let publisher = Publisher::new(&log, &dead_letters, "file");
        let line = |i: usize, extra: Value| {
            let mut event = json!({
                "type": "track", "message_id": format!("m-{i}"), "workspace_id": "late",
                "timestamp": format!("2026-01-01T00:00:{:02}.{:09}Z", (i / 1_000_000_000) % 60, i % 1_000_000_000),
                "anonymous_id": "device-1", "event": "Page Viewed",
            });
            if let (Some(event), Some(extra)) = (event.as_object_mut(), extra.as_object()) {
                event.extend(extra.clone());
            }
            RawInput {
                bytes: event.to_string().into_bytes(),
                ..RawInput::default()
            }
        };
        for chunk in (0..n).collect::<Vec<_>>().chunks(10_000) {
            let inputs: Vec<RawInput> = chunk.iter().map(|&i| line(i, json!({}))).collect();
            publisher.publish("bench", &inputs)?;
        }
        let mut projector = Projector::open(&dir, FoldOptions::default())?;
        projector.fold_until_idle(&log, |_| {})?;
        publisher.publish(
            "bench",
            &[line(
                n,
                json!({"type": "identify", "user_id": "user-1", "event": null}),
            )],
        )?;
        let started = Instant::now();
        let report = projector.fold_until_idle(&log, |_| {})?;
        let took = started.elapsed();
        anyhow::ensure!(report.folded == 1, "the sign-in folds");
        let moved = projector
            .store()
            .profile_view("late", &idfold_events::Identifier::user("user-1"))?
            .map(|p| p.event_counts.track)
            .unwrap_or(0);
        anyhow::ensure!(moved == n as u64, "the user adopts the device's {n} events");
        println!(
            "{n:>9} {:>14.2} {:>14.2}",
            took.as_secs_f64() * 1e3,
            took.as_secs_f64() * 1e6 / n as f64
        );
    }
    Ok(())
}

/// Validates and appends the workload to a fresh embedded log; events/s.
fn ingest(path: &Path, spec: &WorkloadSpec) -> anyhow::Result<f64> {
    let dir = DataDir::open(path, std::time::Duration::ZERO)?;
    let log = EmbeddedLog::open(&dir)?;
    let dead_letters = idfold_log::DeadLetterStore::open(&dir)?;
    let lines = generate(spec);
    let started = Instant::now();
    let publisher = Publisher::new(&log, &dead_letters, "file");
    let mut rejected = 0;
    for chunk in lines.chunks(10_000) {
        let inputs: Vec<RawInput> = chunk
            .iter()
            .map(|l| RawInput {
                bytes: l.as_bytes().to_vec(),
                ..RawInput::default()
            })
            .collect();
        rejected += publisher.publish("bench", &inputs)?.rejected.len();
    }
    let rate = lines.len() as f64 / started.elapsed().as_secs_f64();
    anyhow::ensure!(rejected == 0, "the generated workload is valid");
    Ok(rate)
}

/// The ceiling, measured in a child process: sled does not give back all
/// the memory a database held when it is dropped.
fn ceiling_in_child(keys: usize) -> anyhow::Result<f64> {
    let out = std::process::Command::new(std::env::current_exe()?)
        .env(CEILING_ENV, keys.to_string())
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "ceiling child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}

/// Folds the directory in a child process (the directory is closed here).
fn fold_in_child(path: &Path) -> anyhow::Result<Value> {
    let out = std::process::Command::new(std::env::current_exe()?)
        .env(CHILD_ENV, path)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "fold child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// The child: fold the directory with the default memory budget, print
/// rate, peak memory, sizes and the time split as JSON.
fn fold_child(path: &Path) -> anyhow::Result<()> {
    let mut options = FoldOptions {
        batch_size: batch_size(),
        ..FoldOptions::default()
    };
    if let Some(mib) = std::env::var("IDFOLD_BENCH_BUDGET_MIB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        options.memory_budget = mib * 1024 * 1024;
    }
    let dir = DataDir::open_sized(path, std::time::Duration::ZERO, options.sled_cache_bytes())?;
    let log = EmbeddedLog::open(&dir)?;
    let started = Instant::now();
    let mut projector = Projector::open(&dir, options)?;
    let report = projector.fold_until_idle(&log, |_| {})?;
    let seconds = started.elapsed().as_secs_f64();
    let peak_kib = memory_kib("VmHWM");
    let timings = projector.timings();
    let by_kind = projector.store().state_bytes_by_kind()?;
    let state_bytes: u64 = by_kind.values().map(|(_, bytes)| bytes).sum();
    let mut log_bytes = 0u64;
    let mut offset = 0;
    loop {
        let records = log.read_from(0, offset, 50_000)?;
        let Some(last) = records.last() else { break };
        offset = last.offset + 1;
        log_bytes += records.iter().map(|r| r.payload.len() as u64).sum::<u64>();
    }
    let kinds: serde_json::Map<String, Value> = by_kind
        .iter()
        .map(|(kind, (keys, bytes))| (kind.to_string(), json!([keys, bytes])))
        .collect();
    let result = json!({
        "events_per_second": report.read as f64 / seconds,
        "read": report.read,
        "folded": report.folded,
        "duplicates": report.duplicates,
        "peak_kib": peak_kib,
        "disk_bytes": dir.size_on_disk()?,
        "state_bytes": state_bytes,
        "state_by_kind": kinds,
        "log_bytes": log_bytes,
        "budget_mib": options.memory_budget / (1024 * 1024),
        "seconds": seconds,
        "split": {
            "decode": timings.decode.as_secs_f64(),
            "rules": timings.apply.as_secs_f64(),
            "encode": timings.encode.as_secs_f64(),
            "commit": timings.commit.as_secs_f64(),
        },
    });
    println!("{result}");
    Ok(())
}

fn split_text(child: &Value) -> String {
    let total = child["seconds"].as_f64().unwrap_or(f64::NAN);
    let part = |k: &str| 100.0 * child["split"][k].as_f64().unwrap_or(f64::NAN) / total;
    format!(
        "{:.0}/{:.0}/{:.0}/{:.0}%",
        part("decode"),
        part("rules"),
        part("encode"),
        part("commit")
    )
}

fn print_split(child: &Value) {
    println!(
        "{:<62} {:>12}",
        "fold time: decode / rules / encode / commit",
        split_text(child)
    );
}

fn print_sizes(child: &Value) {
    let number = |k: &str| child[k].as_f64().unwrap_or(f64::NAN);
    println!(
        "{:<62} {:>12.0}",
        "state: bytes per folded event (keys + values)",
        number("state_bytes") / number("folded")
    );
    println!(
        "{:<62} {:>12.0}",
        "log: bytes per event (Avro records)",
        number("log_bytes") / number("read")
    );
    println!(
        "{:<62} {:>12.0}",
        "data directory on disk after the fold (MiB)",
        number("disk_bytes") / (1024.0 * 1024.0)
    );
    if let Some(kinds) = child["state_by_kind"].as_object() {
        let parts: Vec<String> = kinds
            .iter()
            .map(|(kind, v)| {
                let bytes = v[1].as_f64().unwrap_or(0.0);
                format!("{kind} {:.0}", bytes / number("folded"))
            })
            .collect();
        println!("state by kind, bytes per event: {}", parts.join(", "));
    }
}

/// Where a fold's time goes without sled: decoding the log, and the pure
/// fold into an in-memory store (the same rules and encodings).
fn stage_rates(log: &EmbeddedLog) -> anyhow::Result<(f64, f64)> {
    let started = Instant::now();
    let mut decoded = Vec::new();
    let mut offset = 0;
    loop {
        let records = log.read_from(0, offset, batch_size())?;
        let Some(last) = records.last() else { break };
        offset = last.offset + 1;
        decoded.extend(records.iter().filter_map(|r| {
            match idfold_events::decode_log_payload(&r.payload) {
                Ok(idfold_events::LogPayload::Event(e)) => Some(e),
                _ => None,
            }
        }));
    }
    let decode_rate = decoded.len() as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut folds: std::collections::HashMap<String, MemoryFold> = Default::default();
    let count = decoded.len();
    for (i, mut event) in decoded.into_iter().enumerate() {
        let workspace_id = std::mem::take(&mut event.workspace_id);
        let fold = folds
            .entry(workspace_id)
            .or_insert_with_key(|w| MemoryFold::new(w));
        fold.apply(FoldRecord::from_event(event))?;
        if i % batch_size() == 0 {
            for fold in folds.values_mut() {
                fold.commit(false);
            }
        }
    }
    let pure_rate = count as f64 / started.elapsed().as_secs_f64();
    Ok((decode_rate, pure_rate))
}

/// The most keys the ceiling writes: plain sled holds about 3.5 KB of
/// memory per random key written in batches (whatever its cache capacity),
/// so 4M keys need some 14 GB; above this the 1M-key rate stands in (it
/// only falls with size, so the ratio beside it is the kinder one to sled).
const CEILING_MAX_KEYS: usize = 1_000_000;

/// The ceiling: one random 16-byte key per event, written in sled batches of
/// the fold's size, then flushed, with the page cache the fold's sled has.
fn plain_sled_writes(events: usize) -> anyhow::Result<f64> {
    let tmp = tempfile::tempdir()?;
    let db = sled::Config::new()
        .path(tmp.path())
        .cache_capacity(FoldOptions::default().sled_cache_bytes())
        .open()?;
    let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
    let started = Instant::now();
    let mut written = 0;
    while written < events {
        let mut batch = sled::Batch::default();
        for _ in 0..batch_size().min(events - written) {
            let key: [u8; 16] = rng.gen();
            batch.insert(&key, &[1u8; 8]);
        }
        db.apply_batch(batch)?;
        written += batch_size();
    }
    db.flush()?;
    Ok(events as f64 / started.elapsed().as_secs_f64())
}

fn memory_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}
