//! `idfold ingest`: NDJSON in, accepted events to the log, rejections to the
//! dead-letter store and to stderr as `line N: <code>: <message>`.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use idfold_log::{DeadLetterSink, DeadLetterStore, EmbeddedLog, EventSink};
use idfold_producer::{NdjsonReader, Publisher};
use indicatif::ProgressBar;

use crate::{DataArgs, KafkaArgs};

/// Lines validated and appended per log write, and the bytes one batch
/// may hold (memory stays bounded whatever the input).
const INGEST_BATCH: usize = 10_000;
const INGEST_BATCH_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, Default, Clone, Copy)]
pub struct IngestCounts {
    pub accepted: usize,
    pub rejected: usize,
}

/// One NDJSON input: its name (for dead letters), its metric label, its bytes.
pub struct Source {
    pub name: String,
    pub kind: &'static str,
    pub reader: Box<dyn BufRead>,
}

impl Source {
    /// A file, or stdin for `-`, its bytes counted on `progress`.
    pub fn open(path: &Path, progress: &ProgressBar) -> anyhow::Result<Source> {
        if path == Path::new("-") {
            return Ok(Source {
                name: "stdin".into(),
                kind: "stdin",
                reader: Box::new(BufReader::new(progress.wrap_read(std::io::stdin()))),
            });
        }
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        Ok(Source {
            name: path.display().to_string(),
            kind: "file",
            reader: Box::new(BufReader::with_capacity(1 << 16, progress.wrap_read(file))),
        })
    }
}

/// Reads every source in turn, numbering lines across them from 1, and
/// writes to the given sinks (the embedded log, or Kafka).
pub fn ingest_sources(
    events: &dyn EventSink,
    dead_letters: &dyn DeadLetterSink,
    sources: Vec<Source>,
    report_rejection: &mut dyn FnMut(u64, &str),
) -> anyhow::Result<IngestCounts> {
    let mut reader = NdjsonReader::new();
    let mut counts = IngestCounts::default();
    for mut source in sources {
        let publisher = Publisher::new(events, dead_letters, source.kind);
        while let Some(batch) = reader
            .read_batch(&mut source.reader, INGEST_BATCH, INGEST_BATCH_BYTES)
            .with_context(|| format!("cannot read {}", source.name))?
        {
            let report = publisher.publish(&source.name, &batch)?;
            counts.accepted += report.accepted;
            counts.rejected += report.rejected.len();
            for (index, rejection) in &report.rejected {
                let line = batch.get(*index).and_then(|i| i.position).unwrap_or(0);
                report_rejection(
                    line,
                    &format!("{}: {}", rejection.reason, rejection.message),
                );
            }
        }
    }
    Ok(counts)
}

pub fn run(
    data: &DataArgs,
    kafka: &KafkaArgs,
    files: &[PathBuf],
    json: bool,
    strict: bool,
) -> anyhow::Result<ExitCode> {
    let paths = if files.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        files.to_vec()
    };
    // The total is known when every input is a file.
    let total = paths
        .iter()
        .map(|p| {
            (p != Path::new("-"))
                .then(|| std::fs::metadata(p).ok().map(|m| m.len()))
                .flatten()
        })
        .sum::<Option<u64>>();
    let progress = super::progress::bytes("ingesting", total);
    let sources = paths
        .iter()
        .map(|p| Source::open(p, &progress))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut print = |line: u64, text: &str| progress.suspend(|| eprintln!("line {line}: {text}"));
    let counts = match kafka.settings() {
        // Validated events to the canonical log, rejections to the
        // dead-letter topic; no data directory is involved.
        Some(settings) => {
            let writer = idfold_kafka::KafkaWriter::new(&settings)?;
            ingest_sources(&writer, &writer, sources, &mut print)?
        }
        None => {
            let dir = data.open()?;
            let log = EmbeddedLog::open(&dir)?;
            let dead_letters = DeadLetterStore::open(&dir)?;
            let counts = ingest_sources(&log, &dead_letters, sources, &mut print)?;
            dir.flush()?;
            counts
        }
    };
    progress.finish_and_clear();
    if json {
        writeln!(
            std::io::stdout().lock(),
            "{}",
            serde_json::json!({"accepted": counts.accepted, "rejected": counts.rejected})
        )?;
    } else {
        eprintln!("accepted {}, rejected {}", counts.accepted, counts.rejected);
    }
    Ok(if strict && counts.rejected > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
