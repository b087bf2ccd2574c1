//! The Kafka side of the command line: `topics`, `run --kafka`,
//! `rebuild --kafka` and `dlq --kafka`.

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use idfold_cluster::Ownership;
use idfold_kafka::{
    supervise, FoldStage, KafkaSettings, KafkaStageError, Patience, RawStage, RunMode, StageHealth,
};
use idfold_log::DataDir;
use idfold_projector::Projector;
use serde_json::{json, Value};

use super::fold::{options, summary};
use super::stop_on_signal;
use crate::{DataArgs, FoldArgs, KafkaArgs, Stages};

fn required(kafka: &KafkaArgs) -> anyhow::Result<KafkaSettings> {
    kafka
        .settings()
        .context("this command needs a broker: pass --kafka HOST:PORT (or set IDFOLD_KAFKA)")
}

pub fn topics(kafka: &KafkaArgs) -> anyhow::Result<ExitCode> {
    let settings = required(kafka)?;
    let checks = idfold_kafka::ensure_topics(&settings)?;
    let mut out = std::io::stdout().lock();
    let mut problems = 0;
    for check in &checks {
        let state = if check.created { "created" } else { "exists" };
        writeln!(
            out,
            "{state:<8} {:<40} {:<14} {} partitions",
            check.topic, check.role, check.partitions
        )?;
        for note in &check.notes {
            writeln!(out, "         note: {note}")?;
        }
        for problem in &check.problems {
            writeln!(out, "         problem: {problem}")?;
            problems += 1;
        }
    }
    Ok(if problems > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

pub fn run(
    data: &DataArgs,
    kafka: &KafkaArgs,
    until_idle: bool,
    fold: &FoldArgs,
    stages: Stages,
) -> anyhow::Result<ExitCode> {
    let settings = required(kafka)?;
    let (stop, _signals) = stop_on_signal()?;
    let batch = fold.batch_size.max(1);
    let with_producer = matches!(stages, Stages::All | Stages::Producer);
    let with_fold = matches!(stages, Stages::All | Stages::Fold);
    if until_idle {
        let health = StageHealth::default();
        if with_producer {
            let report = supervise(
                "raw",
                &health,
                &stop,
                Patience::OnceStarted,
                settings.topic_grace,
                |_| RawStage::new(&settings, batch),
                |stage| stage.run(RunMode::UntilIdle, &stop, |_| {}),
            )?
            .unwrap_or_default();
            super::say(&format!(
                "moved {} raw records: {} accepted, {} rejected",
                report.consumed, report.accepted, report.rejected
            ));
        }
        if with_fold {
            let dir = data.open_for_fold(fold)?;
            let total = supervise(
                "fold",
                &health,
                &stop,
                Patience::OnceStarted,
                settings.topic_grace,
                |_| fold_stage(&settings, &dir, fold, Arc::default()),
                |stage| stage.run(RunMode::UntilIdle, &stop, |_| {}),
            )?
            .unwrap_or_default();
            summary("folded", &total, false);
        }
        return Ok(ExitCode::SUCCESS);
    }
    // Only the fold stage keeps state: a producer-only run leaves the
    // directory to others.
    let dir = match stages {
        Stages::All | Stages::Fold => Some(data.open_for_fold(fold)?),
        Stages::Producer => None,
    };
    follow(
        &settings,
        dir.as_ref(),
        fold,
        stages,
        &stop,
        None,
        &Arc::default(),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// A fold stage on `dir`'s state, built afresh: a stage built again after
/// a fault starts from what sled holds, never from half a batch.
fn fold_stage(
    settings: &KafkaSettings,
    dir: &DataDir,
    fold: &FoldArgs,
    ownership: Arc<Ownership>,
) -> Result<FoldStage, KafkaStageError> {
    let projector = Projector::open(dir, options(fold))?;
    FoldStage::new(settings, projector, fold.batch_size.max(1), ownership)
}

/// The same, on a projection of any format: a rebuild replaces it.
fn rebuild_stage(
    settings: &KafkaSettings,
    dir: &DataDir,
    fold: &FoldArgs,
    ownership: Arc<Ownership>,
) -> Result<FoldStage, KafkaStageError> {
    let projector = Projector::open_for_rebuild(dir, options(fold))?;
    FoldStage::new(settings, projector, fold.batch_size.max(1), ownership)
}

/// `serve`'s place among several instances: what its fold holds, said on
/// `P.instances` under `instance` with the `url` its API answers at.
#[derive(Debug, Clone)]
pub struct ClusterRole {
    pub ownership: Arc<Ownership>,
    pub instance: String,
    pub url: String,
}

/// Both stages (or the ones asked for) following Kafka until `stop` is
/// raised: the raw stage on a thread of its own, the fold on this one.
/// Faults that pass (a leader election, a broker restart, a fenced static
/// member) are waited out with the stage built again, reported to `health`
/// meanwhile; only what waiting cannot mend ends a stage, and the other with it.
pub fn follow(
    settings: &KafkaSettings,
    dir: Option<&DataDir>,
    fold: &FoldArgs,
    stages: Stages,
    stop: &Arc<AtomicBool>,
    cluster: Option<&ClusterRole>,
    health: &Arc<StageHealth>,
) -> anyhow::Result<()> {
    let batch = fold.batch_size.max(1);
    let with_producer = matches!(stages, Stages::All | Stages::Producer);
    let with_fold = matches!(stages, Stages::All | Stages::Fold);
    tracing::info!(
        brokers = %settings.bootstrap,
        raw = ?settings.topics.raw,
        events = %settings.topics.events,
        data = ?dir.map(DataDir::path),
        "following Kafka; Ctrl-C or SIGTERM stops after the current batch"
    );
    let producer = if with_producer {
        let (settings, stop, health) = (settings.clone(), stop.clone(), health.clone());
        Some(std::thread::spawn(move || {
            // However this thread ends, a panic included, the fold stops too.
            let _stop_the_other = RaiseOnDrop(stop.clone());
            let outcome = supervise(
                "raw",
                &health,
                &stop,
                Patience::Forever,
                settings.topic_grace,
                |_| {
                    let mut stage = RawStage::new(&settings, batch)?;
                    stage.report_health_to(health.clone());
                    Ok(stage)
                },
                |stage| {
                    stage.run(RunMode::Follow, &stop, |report| {
                        tracing::info!(
                            consumed = report.consumed,
                            accepted = report.accepted,
                            rejected = report.rejected,
                            "raw records moved"
                        );
                    })
                },
            );
            outcome
        }))
    } else {
        None
    };
    let folded = if with_fold {
        let dir = dir.context("the fold stage needs a data directory")?;
        let ownership = cluster.map_or_else(Arc::default, |c| c.ownership.clone());
        let outcome = supervise(
            "fold",
            health,
            stop,
            Patience::Forever,
            settings.topic_grace,
            |_| {
                let mut stage = fold_stage(settings, dir, fold, ownership.clone())?;
                stage.report_health_to(health.clone());
                if let Some(cluster) = cluster {
                    stage.announce_as(&cluster.instance, &cluster.url)?;
                }
                Ok(stage)
            },
            |stage| {
                stage.run(RunMode::Follow, stop, |total| {
                    tracing::info!(
                        folded = total.folded,
                        duplicates = total.duplicates,
                        "folded"
                    );
                })
            },
        );
        stop.store(true, Ordering::SeqCst);
        Some(outcome)
    } else {
        None
    };
    if let Some(handle) = producer {
        let report = handle
            .join()
            .map_err(|_| anyhow::anyhow!("the raw stage panicked"))??
            .unwrap_or_default();
        super::say(&format!(
            "stopped after moving {} raw records: {} accepted, {} rejected",
            report.consumed, report.accepted, report.rejected
        ));
    }
    if let Some(outcome) = folded {
        summary(
            "stopped after folding",
            &outcome?.unwrap_or_default(),
            false,
        );
    }
    Ok(())
}

/// Raises its flag when dropped: one stage ending, however, stops the other.
struct RaiseOnDrop(Arc<AtomicBool>);

impl Drop for RaiseOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Drops the projection and folds the canonical log again from its start.
pub fn rebuild(data: &DataArgs, kafka: &KafkaArgs, fold: &FoldArgs) -> anyhow::Result<ExitCode> {
    let settings = required(kafka)?;
    let (stop, _signals) = stop_on_signal()?;
    let dir = data.open_for_fold(fold)?;
    let total = supervise(
        "fold",
        &StageHealth::default(),
        &stop,
        Patience::OnceStarted,
        settings.topic_grace,
        |first| {
            // Cleared once: a stage built again after a fault goes on
            // from what the rebuild folded so far.
            if first {
                let stage = rebuild_stage(&settings, &dir, fold, Arc::default())?;
                stage.clear_state()?;
                Ok(stage)
            } else {
                fold_stage(&settings, &dir, fold, Arc::default())
            }
        },
        |stage| stage.run(RunMode::UntilIdle, &stop, |_| {}),
    )?
    .unwrap_or_default();
    summary("rebuilt from", &total, false);
    Ok(ExitCode::SUCCESS)
}

/// Prints the dead-letter topic from its start to its end now; `--json`
/// gives each record's exact bytes (`raw` where they are UTF-8 text,
/// `raw_base64` otherwise), as the embedded `dlq --json` does.
pub fn dlq(kafka: &KafkaArgs, json: bool) -> anyhow::Result<ExitCode> {
    let settings = required(kafka)?;
    let letters = idfold_kafka::read_dead_letters(&settings)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if json {
        let items: Vec<Value> = letters
            .iter()
            .map(|letter| {
                let mut item = json!({
                    "partition": letter.partition,
                    "offset": letter.offset,
                    "headers": letter.headers,
                });
                let (key, raw) = super::raw_bytes_json(&letter.raw);
                item[key] = raw;
                item
            })
            .collect();
        writeln!(out, "{}", Value::Array(items))?;
    } else {
        for letter in &letters {
            let header = |name: &str| letter.headers.get(name).map_or("", String::as_str);
            let at = letter
                .headers
                .get("idfold.source.offset")
                .or_else(|| letter.headers.get("idfold.source.line"))
                .map_or("", String::as_str);
            writeln!(
                out,
                "{:>3}:{:<6} {}:{at} {}: {}",
                letter.partition,
                letter.offset,
                header("idfold.source"),
                header("idfold.reason"),
                header("idfold.message")
            )?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
