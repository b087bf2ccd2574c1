//! `idfold run` and `idfold rebuild`: drive the projector over the embedded log.

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use idfold_log::{DataDir, EmbeddedLog, EventLog, LogError};
use idfold_projector::{BatchReport, FoldOptions, Projector, WorkspaceCache};

use crate::{DataArgs, FoldArgs};

/// How long the following fold waits when the log has nothing new.
const IDLE_POLL: Duration = Duration::from_millis(200);
/// The longest the following fold holds the data directory at a stretch,
/// so `ingest` and the read commands get their turn while it catches up.
const MAX_HOLD: Duration = Duration::from_secs(2);
/// The pause after letting go while busy: long enough for a waiting
/// process (it retries every 20 ms) to take the lock.
const HAND_OVER: Duration = Duration::from_millis(60);

/// The name a data directory folding the embedded log is bound to.
pub const EMBEDDED_LOG: &str = "embedded";

pub fn options(args: &FoldArgs) -> FoldOptions {
    FoldOptions {
        batch_size: args.batch_size.max(1),
        max_resident_events: args.max_resident_events,
    }
}

/// One line on stderr about what a fold did; the position is the embedded
/// log's (one partition), so Kafka's summaries leave it out.
pub fn summary(verb: &str, total: &BatchReport, with_position: bool) {
    let position = if with_position && total.read > 0 {
        format!(", position {}", total.next_offset)
    } else {
        String::new()
    };
    let erased = if total.erasures + total.forgotten > 0 {
        format!(
            ", {} erasures applied, {} events of erased people dropped",
            total.erasures, total.forgotten
        )
    } else {
        String::new()
    };
    super::say(&format!(
        "{verb} {} events ({} duplicates dropped, {} undecodable{erased}){position}",
        total.folded, total.duplicates, total.undecodable
    ));
}

/// Says when a follower of the embedded log has caught up: a log line when
/// a batch first drains the log, and again only after it was behind for a
/// while (steady load alternates full and partial batches), and
/// `idfold_fold_partition_caught_up{topic="embedded",partition}`.
#[derive(Debug, Default)]
pub struct CaughtUpSignal {
    said: bool,
    /// Since when batches have come full (more may be waiting).
    behind_since: Option<Instant>,
}

/// Behind this long before catching up is worth a line again.
const BEHIND_WORTH_SAYING: Duration = Duration::from_secs(30);

impl CaughtUpSignal {
    /// A batch of `read` records, of at most `batch_size`, ended at `position`.
    pub fn observe(&mut self, partition: u32, read: usize, batch_size: usize, position: u64) {
        let gauge = |value: f64| {
            metrics::gauge!(
                idfold_telemetry::names::FOLD_PARTITION_CAUGHT_UP,
                "topic" => "embedded",
                "partition" => partition.to_string()
            )
            .set(value);
        };
        if read >= batch_size {
            self.behind_since.get_or_insert_with(Instant::now);
            gauge(0.0);
            return;
        }
        gauge(1.0);
        let long_behind = self
            .behind_since
            .take()
            .is_some_and(|since| since.elapsed() >= BEHIND_WORTH_SAYING);
        if !self.said || long_behind {
            self.said = true;
            tracing::info!(
                partition,
                position,
                "caught up: the fold reached the end of the embedded log"
            );
        }
    }
}

pub fn run(data: &DataArgs, until_idle: bool, args: &FoldArgs) -> anyhow::Result<ExitCode> {
    // Folding an empty or mistyped directory would create it and report
    // "folded 0 events": refused like a read.
    if until_idle {
        let dir = data.open_existing()?;
        let log = EmbeddedLog::open(&dir)?;
        let mut projector = Projector::open(&dir, options(args))?;
        projector.store().bind_log(EMBEDDED_LOG)?;
        let behind = log
            .end_offset(0)?
            .saturating_sub(projector.store().position(0)?);
        let progress = super::progress::records("folding", behind);
        let total = projector.fold_until_idle(&log, |batch| progress.inc(batch.read as u64))?;
        progress.finish_and_clear();
        summary("folded", &total, true);
        return Ok(ExitCode::SUCCESS);
    }
    // Refuse a directory with no data at once; one in use is fine (the
    // loop waits its turn).
    match DataDir::open_existing(&data.data, Duration::ZERO) {
        Ok(_) | Err(LogError::Locked { .. }) => {}
        Err(other) => return Err(other.into()),
    }
    tracing::info!(
        data = %data.data.display(),
        "following the embedded log; other idfold commands may use the directory between batches; Ctrl-C or SIGTERM stops after the current batch"
    );
    let (stop, runtime) = super::stop_on_signal()?;
    let mut total = BatchReport::default();
    let mut cache = WorkspaceCache::default();
    let mut signal = CaughtUpSignal::default();
    while !stop.load(Ordering::SeqCst) {
        // Hold the directory while there is work, at most MAX_HOLD at a time.
        // A long `ingest` may hold it for a while: a follower waits it out.
        let dir = match DataDir::open_existing(&data.data, Duration::from_secs(data.lock_wait)) {
            Ok(dir) => dir,
            Err(LogError::Locked { .. }) => {
                tracing::info!("the data directory is busy; waiting");
                runtime.block_on(async { tokio::time::sleep(IDLE_POLL).await });
                continue;
            }
            Err(other) => return Err(other.into()),
        };
        let log = EmbeddedLog::open(&dir)?;
        let mut projector = Projector::with_cache(&dir, options(args), cache)?;
        projector.store().bind_log(EMBEDDED_LOG)?;
        let held = Instant::now();
        let mut idle = false;
        while !idle && !stop.load(Ordering::SeqCst) && held.elapsed() < MAX_HOLD {
            idle = true;
            for partition in log.partitions() {
                let batch = projector.fold_batch(&log, partition)?;
                signal.observe(
                    partition,
                    batch.read,
                    options(args).batch_size,
                    projector.store().position(partition)?,
                );
                if batch.read > 0 {
                    idle = false;
                    total.add(&batch);
                    tracing::info!(
                        folded = batch.folded,
                        duplicates = batch.duplicates,
                        position = batch.next_offset,
                        "folded a batch"
                    );
                }
            }
        }
        projector.store().flush()?;
        cache = projector.into_cache();
        drop(log);
        drop(dir);
        let pause = if idle { IDLE_POLL } else { HAND_OVER };
        runtime.block_on(async { tokio::time::sleep(pause).await });
    }
    summary("stopped after folding", &total, true);
    Ok(ExitCode::SUCCESS)
}

pub fn rebuild(data: &DataArgs, args: &FoldArgs) -> anyhow::Result<ExitCode> {
    let dir = data.open_existing()?;
    let log = EmbeddedLog::open(&dir)?;
    let mut projector = Projector::open(&dir, options(args))?;
    let progress = super::progress::records("rebuilding", log.end_offset(0)?);
    let total = projector.rebuild(&log, |batch| progress.inc(batch.read as u64))?;
    progress.finish_and_clear();
    projector.store().bind_log(EMBEDDED_LOG)?;
    summary("rebuilt from", &total, true);
    Ok(ExitCode::SUCCESS)
}
