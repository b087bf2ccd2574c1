//! `idfold erase`: forget a person on the embedded log; `idfold compact`:
//! leave behind what sled still keeps of deleted entries. The request goes
//! into the log like `DELETE .../profiles/{id}` puts it there, and the fold
//! applies it, so the CLI and the server erase the same way.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use idfold_log::EmbeddedLog;
use idfold_projector::Projector;
use idfold_read_api::{erasure_request, outcome_json, ErasureLog};

use super::fold::{options, EMBEDDED_LOG};
use super::query::LookupArgs;
use crate::{DataArgs, FoldArgs};

pub fn run(
    data: &DataArgs,
    workspace: &str,
    id: &LookupArgs,
    fold: &FoldArgs,
) -> anyhow::Result<ExitCode> {
    let asked = id
        .identifier()
        .context("give --user-id, --email or --anonymous-id")?;
    let dir = data.open_existing_for_fold(fold)?;
    let log = Arc::new(EmbeddedLog::open(&dir)?);
    let mut projector = Projector::open(&dir, options(fold))?;
    projector.store().bind_log(EMBEDDED_LOG)?;
    // Everything accepted so far first: the person is who they are now.
    projector.fold_until_idle(&*log, |_| {})?;
    let Some((profile, _)) = projector.store().lookup(workspace, &asked)? else {
        eprintln!("no profile for {asked} in workspace {workspace}; nothing to erase");
        // As `profile` does: 2 is "no such profile" (README).
        return Ok(ExitCode::from(2));
    };
    let request = erasure_request(workspace, profile, super::system_clock());
    ErasureLog::new(log.clone(), true).request(&request)?;
    projector.fold_until_idle(&*log, |_| {})?;
    let record = projector
        .store()
        .erasure(workspace, &request.erasure_id)?
        .context("the fold did not apply the erasure request it was given")?;
    // Counts only: the person's identifiers are not repeated anywhere.
    eprintln!(
        "erased a person of workspace {workspace}: {} events, {} responses, {} emails, {} devices",
        record.events, record.responses, record.emails, record.devices
    );
    println!("{}", outcome_json(workspace, &record, true));
    Ok(ExitCode::SUCCESS)
}

pub fn compact(data: &DataArgs, into: &Path) -> anyhow::Result<ExitCode> {
    if into.exists() {
        anyhow::bail!(
            "{} exists; give a path that does not, so nothing is overwritten",
            into.display()
        );
    }
    let dir = data.open_existing()?;
    let target = idfold_log::DataDir::open(into, std::time::Duration::ZERO)?;
    let copied = dir.copy_live_into(&target)?;
    eprintln!(
        "copied {copied} entries into {}; stop idfold, move it in place of {}, and delete the old directory",
        into.display(),
        data.data.display()
    );
    Ok(ExitCode::SUCCESS)
}
