//! `idfold run` and `idfold rebuild`: drive the projector over the embedded log.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
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

/// The longest pause between tries while the data directory's filesystem
/// is full, and how often a waiting stage says so.
const DISK_RETRY_MAX: Duration = Duration::from_secs(2);
const DISK_WARN_EVERY: Duration = Duration::from_secs(10);

/// Waits out a full disk: backs off, counts each try, and says once per
/// interval what waits and why.
#[derive(Debug, Default)]
pub struct DiskWait {
    since: Option<Instant>,
    last_warn: Option<Instant>,
    tries: u64,
    backoff: Duration,
}

impl DiskWait {
    /// One pause before the next try (cut short by `stop`).
    pub fn wait(
        &mut self,
        stage: &'static str,
        what: &str,
        error: &dyn std::fmt::Display,
        stop: Option<&AtomicBool>,
    ) {
        metrics::counter!(idfold_telemetry::names::DISK_FULL_WAITS, "stage" => stage).increment(1);
        self.tries += 1;
        let now = Instant::now();
        self.since.get_or_insert(now);
        if self
            .last_warn
            .is_none_or(|at| now.duration_since(at) >= DISK_WARN_EVERY)
        {
            tracing::warn!(tries = self.tries, "{what} waits for free space: {error}");
            self.last_warn = Some(now);
        }
        self.backoff = (self.backoff * 2).clamp(Duration::from_millis(50), DISK_RETRY_MAX);
        let until = now + self.backoff;
        while Instant::now() < until && !stop.is_some_and(|s| s.load(Ordering::SeqCst)) {
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// After a try that succeeded: says so if it had been waiting.
    pub fn resumed(&mut self, what: &str) {
        if let Some(since) = self.since {
            tracing::info!(
                waited_secs = since.elapsed().as_secs(),
                "{what} resumes: the data directory's filesystem has room again"
            );
            *self = DiskWait::default();
        }
    }
}

/// The name a data directory folding the embedded log is bound to.
pub const EMBEDDED_LOG: &str = "embedded";

pub fn options(args: &FoldArgs) -> FoldOptions {
    FoldOptions {
        batch_size: args.batch_size.max(1),
        memory_budget: args.memory_budget.bytes(),
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
        let dir = data.open_existing_for_fold(args)?;
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
    let mut disk = DiskWait::default();
    while !stop.load(Ordering::SeqCst) {
        // Hold the directory while there is work, at most MAX_HOLD at a time.
        // A long `ingest` may hold it for a while: a follower waits it out.
        let dir = match DataDir::open_existing(&data.data, Duration::from_secs(data.lock_wait)) {
            Ok(dir) => dir.with_space_reserve(data.space_reserve()),
            Err(LogError::Locked { .. }) => {
                tracing::info!("the data directory is busy; waiting");
                runtime.block_on(async { tokio::time::sleep(IDLE_POLL).await });
                continue;
            }
            // sled writes to open: a full disk is waited out like a busy one.
            Err(full) if full.is_disk_full() => {
                disk.wait("fold", "the fold", &full, Some(&stop));
                continue;
            }
            Err(other) => return Err(other.into()),
        };
        let log = EmbeddedLog::open(&dir)?;
        let mut projector = Projector::with_cache(&dir, options(args), cache)?;
        projector.store().bind_log(EMBEDDED_LOG)?;
        let held = Instant::now();
        let mut idle = false;
        let mut full = None;
        'hold: while !idle && !stop.load(Ordering::SeqCst) && held.elapsed() < MAX_HOLD {
            idle = true;
            for partition in log.partitions() {
                let batch = match projector.fold_batch(&log, partition) {
                    Ok(batch) => batch,
                    // Waited for with the directory let go, for the other
                    // commands to use meanwhile.
                    Err(error) if error.is_disk_full() => {
                        full = Some(error);
                        break 'hold;
                    }
                    Err(error) => return Err(error.into()),
                };
                disk.resumed("the fold");
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
        if dir.is_poisoned() {
            // sled takes no more writes from this process: wait for room
            // (a restart needs some to open), then stop for a restart.
            while !stop.load(Ordering::SeqCst) {
                match dir.ensure_space(0) {
                    Err(error) if error.is_disk_full() => {
                        disk.wait("fold", "the fold", &error, Some(&stop))
                    }
                    Err(error) => return Err(error.into()),
                    Ok(()) => {
                        return Err(LogError::NeedsReopen {
                            path: data.data.clone(),
                        }
                        .into())
                    }
                }
            }
            break;
        }
        match projector.store().flush() {
            Err(error) if error.is_disk_full() => full = Some(error),
            flushed => flushed?,
        }
        cache = projector.into_cache();
        drop(log);
        drop(dir);
        if let Some(error) = full {
            // A batch that failed may have left resident states half-changed.
            cache = WorkspaceCache::default();
            disk.wait("fold", "the fold", &error, Some(&stop));
            continue;
        }
        let pause = if idle { IDLE_POLL } else { HAND_OVER };
        runtime.block_on(async { tokio::time::sleep(pause).await });
    }
    summary("stopped after folding", &total, true);
    Ok(ExitCode::SUCCESS)
}

pub fn rebuild(data: &DataArgs, args: &FoldArgs) -> anyhow::Result<ExitCode> {
    let dir = data.open_existing_for_fold(args)?;
    let log = EmbeddedLog::open(&dir)?;
    let mut projector = Projector::open_for_rebuild(&dir, options(args))?;
    let progress = super::progress::records("rebuilding", log.end_offset(0)?);
    let total = projector.rebuild(&log, |batch| progress.inc(batch.read as u64))?;
    progress.finish_and_clear();
    projector.store().bind_log(EMBEDDED_LOG)?;
    summary("rebuilt from", &total, true);
    Ok(ExitCode::SUCCESS)
}
