//! `idfold run` and `idfold rebuild`: drive the projector over the embedded log.

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use idfold_log::{DataDir, EmbeddedLog};
use idfold_projector::{BatchReport, FoldOptions, Projector};

use crate::FoldArgs;

/// How long the following fold waits when the log has nothing new.
const IDLE_POLL: Duration = Duration::from_millis(200);

fn options(args: &FoldArgs) -> FoldOptions {
    FoldOptions {
        batch_size: args.batch_size.max(1),
        max_resident_events: args.max_resident_events,
    }
}

fn summary(verb: &str, total: &BatchReport) {
    eprintln!(
        "{verb} {} events ({} duplicates dropped, {} undecodable), position {}",
        total.folded, total.duplicates, total.undecodable, total.next_offset
    );
}

pub fn run(data: &Path, until_idle: bool, args: &FoldArgs) -> anyhow::Result<ExitCode> {
    let dir = DataDir::open(data)?;
    let log = EmbeddedLog::open(&dir)?;
    let mut projector = Projector::open(&dir, options(args))?;
    if until_idle {
        let total = projector.fold_until_idle(&log, |_| {})?;
        summary("folded", &total);
        return Ok(ExitCode::SUCCESS);
    }
    tracing::info!(data = %data.display(), "following the embedded log; Ctrl-C or SIGTERM stops after the current batch");
    let stop = Arc::new(AtomicBool::new(false));
    // A worker thread of its own, so signals are seen while a batch folds.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let flag = stop.clone();
    runtime.spawn(async move {
        wait_for_shutdown().await;
        flag.store(true, Ordering::SeqCst);
    });
    let mut total = BatchReport::default();
    while !stop.load(Ordering::SeqCst) {
        let mut read = 0;
        for partition in idfold_log::EventLog::partitions(&log) {
            let batch = projector.fold_batch(&log, partition)?;
            read += batch.read;
            if batch.read > 0 {
                total.folded += batch.folded;
                total.duplicates += batch.duplicates;
                total.undecodable += batch.undecodable;
                total.next_offset = batch.next_offset;
                tracing::info!(
                    folded = batch.folded,
                    duplicates = batch.duplicates,
                    position = batch.next_offset,
                    "folded a batch"
                );
            }
            if stop.load(Ordering::SeqCst) {
                break;
            }
        }
        if read == 0 {
            runtime.block_on(async { tokio::time::sleep(IDLE_POLL).await });
        }
    }
    projector.store().flush()?;
    summary("stopped after folding", &total);
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

pub fn rebuild(data: &Path, args: &FoldArgs) -> anyhow::Result<ExitCode> {
    let dir = DataDir::open(data)?;
    let log = EmbeddedLog::open(&dir)?;
    let mut projector = Projector::open(&dir, options(args))?;
    let total = projector.rebuild(&log, |_| {})?;
    summary("rebuilt from", &total);
    Ok(ExitCode::SUCCESS)
}
