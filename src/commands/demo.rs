//! `idfold demo`: the main job end to end on the embedded default: a sample
//! workload ingested, folded, and its MAU and one stitched profile printed.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use idfold_events::Identifier;
use idfold_log::{DataDir, DeadLetterStore, EmbeddedLog};
use idfold_projector::Projector;

use super::fold::options;
use super::ingest::{ingest_sources, Source};
use super::query::print_table;

/// A small hand-written workload that shows every rule at work.
const SAMPLE: &str = include_str!("../../tests/fixtures/sample.ndjson");

use crate::FoldArgs;

pub fn run(data: Option<PathBuf>, fold: &FoldArgs) -> anyhow::Result<ExitCode> {
    // Removed on drop; unused when --data names a directory.
    let temp = tempfile::tempdir()?;
    let path = data.unwrap_or_else(|| temp.path().to_owned());
    let dir = DataDir::open(&path, std::time::Duration::ZERO)?;
    let sample = Source {
        name: "sample".into(),
        kind: "file",
        reader: Box::new(SAMPLE.as_bytes()),
    };
    let log = EmbeddedLog::open(&dir)?;
    let dead_letters = DeadLetterStore::open(&dir)?;
    let counts = ingest_sources(&log, &dead_letters, vec![sample], &mut |line, text| {
        eprintln!("line {line}: {text}")
    })?;
    let mut projector = Projector::open(&dir, options(fold))?;
    projector.store().bind_log(super::fold::EMBEDDED_LOG)?;
    let folded = projector.fold_until_idle(&log, |_| {})?;
    let mut out = std::io::stdout().lock();
    let kept = if temp.path() == path {
        " (temporary, removed on exit; pass --data DIR to keep it)"
    } else {
        ""
    };
    writeln!(out, "data directory: {}{kept}", path.display())?;
    writeln!(
        out,
        "ingested {} events ({} rejected, see `idfold dlq`); folded {} ({} re-deliveries dropped)\n",
        counts.accepted, counts.rejected, folded.folded, folded.duplicates
    )?;
    let rows = projector.store().mau_rows(None)?;
    print_table(&mut out, &rows)?;
    if let Some((_, profile)) = projector
        .store()
        .lookup_view("acme", &Identifier::anonymous("device-1"))?
    {
        writeln!(
            out,
            "\nthe profile device-1 resolves to now:\n{}",
            serde_json::to_string_pretty(&profile)?
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
