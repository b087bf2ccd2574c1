//! Fold throughput and peak memory on a generated workload (default 1M
//! events; `IDFOLD_BENCH_EVENTS` overrides), beside its ceiling measured in
//! the same run: plain sled batch writes of one random key per event.
//!
//! Run: `cargo bench --bench fold_throughput`

use std::time::Instant;

use idfold_log::{DataDir, DeadLetterStore, EmbeddedLog, EventLog};
use idfold_producer::{Publisher, RawInput};
use idfold_projector::{FoldOptions, Projector};
use idfold_workload::{generate, WorkloadSpec};
use rand::{Rng, SeedableRng};

const BATCH: usize = 20_000;

/// The same allocator as the `idfold` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let events: usize = std::env::var("IDFOLD_BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let spec = WorkloadSpec { events, workspaces: 200, seed: 42, ..WorkloadSpec::default() };
    println!("workload: {events} events, {} workspaces, seed {}", spec.workspaces, spec.seed);

    let ceiling = plain_sled_writes(events)?;

    let tmp = tempfile::tempdir()?;
    let dir = DataDir::open(tmp.path())?;
    let log = EmbeddedLog::open(&dir)?;
    let dead_letters = DeadLetterStore::open(&dir)?;
    let lines = generate(&spec);
    let started = Instant::now();
    let publisher = Publisher::new(&log, &dead_letters, "file");
    let mut rejected = 0;
    for chunk in lines.chunks(10_000) {
        let inputs: Vec<RawInput> = chunk
            .iter()
            .map(|l| RawInput { bytes: l.as_bytes().to_vec(), position: None, truncated: false })
            .collect();
        rejected += publisher.publish("bench", &inputs)?.rejected.len();
    }
    let ingest_rate = events as f64 / started.elapsed().as_secs_f64();
    drop(lines);
    assert_eq!(rejected, 0, "the generated workload is valid");

    let rss_before = memory_kib("VmRSS");
    eprintln!("ingest done: {ingest_rate:.0} events/s; folding");
    reset_peak_memory();
    let started = Instant::now();
    let mut projector = Projector::open(&dir, FoldOptions { batch_size: BATCH, ..FoldOptions::default() })?;
    let report = projector.fold_until_idle(&log, |_| {})?;
    let fold_secs = started.elapsed().as_secs_f64();
    let fold_rate = report.read as f64 / fold_secs;
    let peak = memory_kib("VmHWM");

    // Stage costs, to see where a fold's time goes: decoding the log, and
    // the pure fold in memory.
    let started = Instant::now();
    let mut decoded = Vec::with_capacity(events);
    let mut offset = 0;
    loop {
        let records = log.read_from(0, offset, BATCH)?;
        let Some(last) = records.last() else { break };
        offset = last.offset + 1;
        for r in &records {
            if let Ok(event) = idfold_events::decode_avro(&r.payload) {
                decoded.push(event);
            }
        }
    }
    let decode_rate = decoded.len() as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut states: std::collections::HashMap<String, idfold_projector::WorkspaceState> = Default::default();
    for event in &decoded {
        let state = states
            .entry(event.workspace_id.clone())
            .or_insert_with(|| idfold_projector::WorkspaceState::new(&event.workspace_id));
        state.apply(idfold_projector::FoldRecord::from_event(event));
    }
    let pure_rate = decoded.len() as f64 / started.elapsed().as_secs_f64();
    drop(states);
    drop(decoded);

    println!();
    println!("{:<58} {:>14}", "measure", "value");
    println!("{:<58} {:>14.0}", "ceiling: plain sled batch writes, 1 random key/event (keys/s)", ceiling);
    println!("{:<58} {:>14.0}", "ingest: validate + Avro + durable log append (events/s)", ingest_rate);
    println!("{:<58} {:>14.0}", "stage: read + Avro decode + validate only (events/s)", decode_rate);
    println!("{:<58} {:>14.0}", "stage: pure in-memory fold, no I/O (events/s)", pure_rate);
    println!("{:<58} {:>14.0}", "fold: log -> profiles + MAU in sled (events/s)", fold_rate);
    println!("{:<58} {:>14.2}", "fold / ceiling", fold_rate / ceiling);
    println!("{:<58} {:>14}", "fold: folded / duplicates dropped", format!("{}/{}", report.folded, report.duplicates));
    println!("{:<58} {:>14}", "memory: RSS before fold (MiB)", rss_before / 1024);
    println!("{:<58} {:>14}", "memory: peak RSS during fold (MiB)", peak / 1024);
    println!("{:<58} {:>14}", "store size on disk (MiB)", dir.size_on_disk()? / (1024 * 1024));
    Ok(())
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
        for _ in 0..BATCH.min(events - written) {
            let key: [u8; 16] = rng.gen();
            batch.insert(&key, &[1u8; 8]);
        }
        db.apply_batch(batch)?;
        written += BATCH;
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

/// Linux: writing 5 to clear_refs resets the peak RSS (VmHWM) to the current RSS.
fn reset_peak_memory() {
    std::fs::write("/proc/self/clear_refs", "5").ok();
}
