//! The Kafka side of the command line: `topics`, `run --kafka`,
//! `rebuild --kafka` and `dlq --kafka`.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use idfold_cluster::Ownership;
use idfold_kafka::{FoldStage, KafkaSettings, RawStage, RunMode, Watermarks};
use idfold_log::DataDir;
use idfold_projector::Projector;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
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
        if with_producer {
            let report = RawStage::new(&settings, batch)?.run(RunMode::UntilIdle, &stop, |_| {})?;
            super::say(&format!(
                "moved {} raw records: {} accepted, {} rejected",
                report.consumed, report.accepted, report.rejected
            ));
        }
        if with_fold {
            let dir = data.open()?;
            let projector = Projector::open(&dir, options(fold))?;
            let total = FoldStage::new(&settings, projector, batch, Arc::default())?.run(
                RunMode::UntilIdle,
                &stop,
                |_| {},
            )?;
            summary("folded", &total, false);
        }
        return Ok(ExitCode::SUCCESS);
    }
    // Only the fold stage keeps state: a producer-only run leaves the
    // directory to others.
    let dir = match stages {
        Stages::All | Stages::Fold => Some(data.open()?),
        Stages::Producer => None,
    };
    follow(&settings, dir.as_ref(), fold, stages, &stop, None)?;
    Ok(ExitCode::SUCCESS)
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
pub fn follow(
    settings: &KafkaSettings,
    dir: Option<&DataDir>,
    fold: &FoldArgs,
    stages: Stages,
    stop: &Arc<AtomicBool>,
    cluster: Option<&ClusterRole>,
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
        let stage = RawStage::new(settings, batch)?;
        let stop = stop.clone();
        Some(std::thread::spawn(move || {
            let outcome = stage.run(RunMode::Follow, &stop, |report| {
                tracing::info!(
                    consumed = report.consumed,
                    accepted = report.accepted,
                    rejected = report.rejected,
                    "raw records moved"
                );
            });
            // One stage failing stops the other.
            stop.store(true, Ordering::SeqCst);
            outcome
        }))
    } else {
        None
    };
    let folded = if with_fold {
        let dir = dir.context("the fold stage needs a data directory")?;
        let projector = Projector::open(dir, options(fold))?;
        let ownership = cluster.map_or_else(Arc::default, |c| c.ownership.clone());
        let outcome =
            FoldStage::new(settings, projector, batch, ownership).and_then(|mut stage| {
                if let Some(cluster) = cluster {
                    stage.announce_as(&cluster.instance, &cluster.url)?;
                }
                stage.run(RunMode::Follow, stop, |total| {
                    tracing::info!(
                        folded = total.folded,
                        duplicates = total.duplicates,
                        "folded"
                    );
                })
            });
        stop.store(true, Ordering::SeqCst);
        Some(outcome)
    } else {
        None
    };
    if let Some(handle) = producer {
        let report = handle
            .join()
            .map_err(|_| anyhow::anyhow!("the producer stage panicked"))??;
        super::say(&format!(
            "stopped after moving {} raw records: {} accepted, {} rejected",
            report.consumed, report.accepted, report.rejected
        ));
    }
    if let Some(outcome) = folded {
        summary("stopped after folding", &outcome?, false);
    }
    Ok(())
}

/// Drops the projection and folds the canonical log again from its start.
pub fn rebuild(data: &DataArgs, kafka: &KafkaArgs, fold: &FoldArgs) -> anyhow::Result<ExitCode> {
    let settings = required(kafka)?;
    let (stop, _signals) = stop_on_signal()?;
    let dir = data.open()?;
    let projector = Projector::open(&dir, options(fold))?;
    let mut stage = FoldStage::new(&settings, projector, fold.batch_size, Arc::default())?;
    stage.clear_state()?;
    let total = stage.run(RunMode::UntilIdle, &stop, |_| {})?;
    summary("rebuilt from", &total, false);
    Ok(ExitCode::SUCCESS)
}

/// Prints the dead-letter topic from its start to its end now.
pub fn dlq(kafka: &KafkaArgs, json: bool) -> anyhow::Result<ExitCode> {
    let settings = required(kafka)?;
    let topic = settings.topics.dead_letters.clone();
    let mut config = rdkafka::ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.bootstrap)
        .set("group.id", "idfold-dlq-reader")
        .set("enable.auto.commit", "false")
        .set("log_level", "3");
    let consumer: BaseConsumer = config.create()?;
    let end = Watermarks::fetch(&consumer, &settings.bootstrap, std::slice::from_ref(&topic))?;
    let mut assignment = TopicPartitionList::new();
    let mut remaining = 0;
    for ((t, partition), (low, high)) in &end.bounds {
        assignment.add_partition_offset(t, *partition, Offset::Beginning)?;
        remaining += (high - low).max(0);
    }
    consumer.assign(&assignment)?;
    let mut letters = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while letters.len() < remaining as usize {
        if std::time::Instant::now() > deadline {
            anyhow::bail!(
                "the dead-letter topic did not deliver its {remaining} records within 30 s"
            );
        }
        match consumer.poll(std::time::Duration::from_millis(200)) {
            None => continue,
            Some(Err(error)) => return Err(error.into()),
            Some(Ok(message)) => {
                let (Some(&(_, high)), offset) = (
                    end.bounds.get(&(topic.clone(), message.partition())),
                    message.offset(),
                ) else {
                    continue;
                };
                if offset >= high {
                    continue;
                }
                let mut headers = BTreeMap::new();
                if let Some(list) = message.headers() {
                    for header in list.iter() {
                        let value = header
                            .value
                            .map(|v| String::from_utf8_lossy(v).into_owned())
                            .unwrap_or_default();
                        headers.insert(header.key.to_owned(), value);
                    }
                }
                let raw = message.payload().unwrap_or_default();
                letters.push(json!({
                    "partition": message.partition(),
                    "offset": offset,
                    "headers": headers,
                    "raw": String::from_utf8_lossy(raw),
                }));
            }
        }
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if json {
        writeln!(out, "{}", Value::Array(letters))?;
    } else {
        for letter in &letters {
            let header = |name: &str| letter["headers"][name].as_str().unwrap_or("").to_owned();
            writeln!(
                out,
                "{:>3}:{:<6} {}:{} {}: {}",
                letter["partition"],
                letter["offset"],
                header("idfold.source"),
                letter["headers"]
                    .get("idfold.source.offset")
                    .or_else(|| letter["headers"].get("idfold.source.line"))
                    .and_then(Value::as_str)
                    .unwrap_or(""),
                header("idfold.reason"),
                header("idfold.message")
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
