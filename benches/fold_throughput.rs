//! Fold throughput and peak memory on a generated workload (default 1M
//! events over 200 workspaces; `IDFOLD_BENCH_EVENTS` overrides), beside its
//! ceiling measured in the same run: plain sled batch writes of one random
//! key per event. The fold runs in a child process of its own so that its
//! peak memory is its own.
//!
//! Run: `cargo bench --bench fold_throughput`

use std::path::Path;
use std::time::Instant;

use idfold_events::Event;
use idfold_log::{DataDir, DeadLetterStore, EmbeddedLog, EventLog};
use idfold_producer::{Publisher, RawInput};
use idfold_projector::{FoldOptions, FoldRecord, Projector, WorkspaceState};
use idfold_workload::{generate, WorkloadSpec};
use rand::{Rng, SeedableRng};

/// Records per fold batch; `IDFOLD_BENCH_BATCH` overrides.
fn batch_size() -> usize {
    std::env::var("IDFOLD_BENCH_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}
/// Set in the child process: the data directory to fold.
const CHILD_ENV: &str = "IDFOLD_BENCH_FOLD_DIR";

/// The same allocator as the `idfold` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        return fold_child(Path::new(&dir));
    }
    let spec = WorkloadSpec::benchmark();
    let events = spec.events;
    println!(
        "workload: {events} events, {} workspaces, seed {}",
        spec.workspaces, spec.seed
    );

    let ceiling = plain_sled_writes(events)?;

    let tmp = tempfile::tempdir()?;
    let (ingest_rate, stages) = {
        let dir = DataDir::open(tmp.path(), std::time::Duration::ZERO)?;
        let log = EmbeddedLog::open(&dir)?;
        let dead_letters = DeadLetterStore::open(&dir)?;
        let lines = generate(&spec);
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
        let ingest_rate = events as f64 / started.elapsed().as_secs_f64();
        assert_eq!(rejected, 0, "the generated workload is valid");
        (ingest_rate, stage_rates(&log)?)
    };

    // The fold, in a process of its own (the data directory is closed here).
    let out = std::process::Command::new(std::env::current_exe()?)
        .env(CHILD_ENV, tmp.path())
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "fold child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let child: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let number = |k: &str| child[k].as_f64().unwrap_or(f64::NAN);
    let fold_rate = number("events_per_second");

    println!();
    println!("{:<62} {:>12}", "measure", "value");
    println!(
        "{:<62} {:>12.0}",
        "ceiling: plain sled batch writes, 1 random key/event (keys/s)", ceiling
    );
    println!(
        "{:<62} {:>12.0}",
        "ingest: validate + Avro + durable log append (events/s)", ingest_rate
    );
    println!(
        "{:<62} {:>12.0}",
        "stage: read + Avro decode + validate only (events/s)", stages.read_generic
    );
    println!(
        "{:<62} {:>12.0}",
        "stage: read + log reader decode (events/s)", stages.read_log_reader
    );
    println!(
        "{:<62} {:>12}",
        "decode only, in memory: generic + validate / log reader (ev/s)",
        format!(
            "{:.0}/{:.0}",
            stages.decode_generic, stages.decode_log_reader
        )
    );
    println!(
        "{:<62} {:>12.0}",
        "stage: pure in-memory fold, no I/O (events/s)", stages.pure
    );
    println!(
        "{:<62} {:>12.0}",
        "fold: log -> profiles + MAU in sled (events/s)", fold_rate
    );
    println!("{:<62} {:>12.2}", "fold / ceiling", fold_rate / ceiling);
    println!(
        "{:<62} {:>12}",
        "fold: folded / duplicates dropped",
        format!("{}/{}", child["folded"], child["duplicates"])
    );
    println!(
        "{:<62} {:>12.0}",
        "fold process: peak RSS, sled cache included (MiB)",
        number("peak_kib") / 1024.0
    );
    println!(
        "{:<62} {:>12.0}",
        "store size on disk after the fold (MiB)",
        number("disk_bytes") / (1024.0 * 1024.0)
    );
    Ok(())
}

/// The child: fold the directory, print rate and peak memory as JSON.
fn fold_child(path: &Path) -> anyhow::Result<()> {
    let dir = DataDir::open(path, std::time::Duration::ZERO)?;
    let log = EmbeddedLog::open(&dir)?;
    let started = Instant::now();
    let mut projector = Projector::open(
        &dir,
        FoldOptions {
            batch_size: batch_size(),
            ..FoldOptions::default()
        },
    )?;
    let report = projector.fold_until_idle(&log, |_| {})?;
    let rate = report.read as f64 / started.elapsed().as_secs_f64();
    let result = serde_json::json!({
        "events_per_second": rate,
        "folded": report.folded,
        "duplicates": report.duplicates,
        "peak_kib": memory_kib("VmHWM"),
        "disk_bytes": dir.size_on_disk()?,
    });
    println!("{result}");
    Ok(())
}

/// Events per second of each stage of a fold, measured apart.
struct StageRates {
    /// Reading the log and decoding it as the edge does (generic Avro
    /// decode, then full validation): how the fold read it before.
    read_generic: f64,
    /// Reading the log and decoding it as the fold does now.
    read_log_reader: f64,
    /// The two decoders alone, on records already in memory.
    decode_generic: f64,
    decode_log_reader: f64,
    /// The fold in memory, without I/O.
    pure: f64,
}

/// Where a fold's time goes: reading and decoding the log, and the pure
/// fold in memory.
fn stage_rates(log: &EmbeddedLog) -> anyhow::Result<StageRates> {
    let generic = |payload: &[u8]| idfold_events::decode_avro(payload).ok();
    let log_reader = |payload: &[u8]| match idfold_events::decode_log_payload(payload) {
        Ok(idfold_events::LogPayload::Event(event)) => Some(event),
        _ => None,
    };
    let read_and_decode = |decode: &dyn Fn(&[u8]) -> Option<Event>| {
        let started = Instant::now();
        let mut decoded = Vec::new();
        let mut offset = 0;
        loop {
            let records = log.read_from(0, offset, batch_size())?;
            let Some(last) = records.last() else { break };
            offset = last.offset + 1;
            decoded.extend(records.iter().filter_map(|r| decode(&r.payload)));
        }
        let rate = decoded.len() as f64 / started.elapsed().as_secs_f64();
        anyhow::Ok((rate, decoded))
    };
    // Decoding alone first, so that the records held for it are freed
    // before the events of the passes that read the log are held.
    let payloads: Vec<Vec<u8>> = log
        .read_from(0, 0, usize::MAX)?
        .into_iter()
        .map(|r| r.payload)
        .collect();
    let decode_only = |decode: &dyn Fn(&[u8]) -> Option<Event>| {
        let started = Instant::now();
        let count = payloads.iter().filter_map(|p| decode(p)).count();
        count as f64 / started.elapsed().as_secs_f64()
    };
    let decode_generic = decode_only(&generic);
    let decode_log_reader = decode_only(&log_reader);
    drop(payloads);

    let (read_generic, by_generic) = read_and_decode(&generic)?;
    let generic_count = by_generic.len();
    drop(by_generic);
    let (read_log_reader, decoded) = read_and_decode(&log_reader)?;
    anyhow::ensure!(
        generic_count == decoded.len(),
        "both decoders read every event"
    );

    let started = Instant::now();
    let mut states: std::collections::HashMap<String, WorkspaceState> = Default::default();
    let count = decoded.len();
    for mut event in decoded {
        let workspace_id = std::mem::take(&mut event.workspace_id);
        let state = states
            .entry(workspace_id)
            .or_insert_with_key(|w| WorkspaceState::new(w));
        state.apply(FoldRecord::from_event(event));
    }
    let pure = count as f64 / started.elapsed().as_secs_f64();
    Ok(StageRates {
        read_generic,
        read_log_reader,
        decode_generic,
        decode_log_reader,
        pure,
    })
}

/// The ceiling: one random 16-byte key per event, written in sled batches of
/// the fold's size, then flushed.
fn plain_sled_writes(events: usize) -> anyhow::Result<f64> {
    let tmp = tempfile::tempdir()?;
    let db = sled::open(tmp.path())?;
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
