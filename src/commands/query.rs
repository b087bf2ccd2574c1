//! The read commands: `mau`, `profile`, `export`, `dlq`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use idfold_events::{
    normalize_identifier, parse_month, parse_profile_id, Identifier, IdentifierKind,
    InvalidIdentifier,
};
use idfold_log::{DataDir, DeadLetterStore, EmbeddedLog, EventLog};

use crate::DataArgs;
use idfold_projector::{MauRow, StateStore};
use serde_json::{json, Value};

/// Which profile: each flag is normalised as ingest normalises the field
/// (`idfold_events::normalize_identifier`), so `--email U1@Example.COM`
/// finds what `u1@example.com` was stored as; a blank-looking value is a
/// usage error (exit 2) naming the flag.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct LookupArgs {
    #[arg(long, value_parser = user_id_flag)]
    user_id: Option<String>,
    #[arg(long, value_parser = email_flag)]
    email: Option<String>,
    #[arg(long, value_parser = anonymous_id_flag)]
    anonymous_id: Option<String>,
}

fn user_id_flag(text: &str) -> Result<String, InvalidIdentifier> {
    normalize_identifier(IdentifierKind::User, text)
}

fn email_flag(text: &str) -> Result<String, InvalidIdentifier> {
    normalize_identifier(IdentifierKind::Email, text)
}

fn anonymous_id_flag(text: &str) -> Result<String, InvalidIdentifier> {
    normalize_identifier(IdentifierKind::Anonymous, text)
}

impl LookupArgs {
    pub fn identifier(&self) -> Option<Identifier> {
        match (&self.user_id, &self.email, &self.anonymous_id) {
            (Some(u), _, _) => Some(Identifier::user(u.clone())),
            (_, Some(e), _) => Some(Identifier::email(e.clone())),
            (_, _, Some(d)) => Some(Identifier::anonymous(d.clone())),
            _ => None,
        }
    }
}

/// Says so on stderr when the log holds events the fold has not reached.
fn note_unfolded(dir: &DataDir, store: &StateStore) -> anyhow::Result<()> {
    let log = EmbeddedLog::open(dir)?;
    for partition in log.partitions() {
        let behind = log
            .end_offset(partition)?
            .saturating_sub(store.position(partition)?);
        if behind > 0 {
            eprintln!("note: {behind} events in the log are not folded yet; run `idfold run --until-idle`");
        }
    }
    Ok(())
}

pub fn mau(
    data: &DataArgs,
    workspace: &str,
    month: Option<&str>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let dir = data.open_existing()?;
    let store = StateStore::open(&dir)?;
    note_unfolded(&dir, &store)?;
    let mut out = std::io::stdout().lock();
    match month {
        Some(text) => {
            let month = parse_month(text)
                .with_context(|| format!("--month must be YYYY-MM, got {text:?}"))?;
            let row = store.mau_row(workspace, month)?;
            if json {
                writeln!(out, "{}", serde_json::to_string(&row)?)?;
            } else {
                print_table(&mut out, &[row])?;
            }
        }
        None => {
            let rows = store.mau_rows(Some(workspace))?;
            if json {
                writeln!(out, "{}", serde_json::to_string(&rows)?)?;
            } else {
                print_table(&mut out, &rows)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn print_table(out: &mut dyn Write, rows: &[MauRow]) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<20} {:<8} {:>12} {:>12} {:>12}",
        "workspace", "month", "identified", "anonymous", "total"
    )?;
    for r in rows {
        writeln!(
            out,
            "{:<20} {:<8} {:>12} {:>12} {:>12}",
            r.workspace_id, r.month, r.identified, r.anonymous, r.total
        )?;
    }
    Ok(())
}

pub fn profile(
    data: &DataArgs,
    workspace: &str,
    lookup: &LookupArgs,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let id = lookup
        .identifier()
        .context("give one of --user-id, --email, --anonymous-id")?;
    let dir = data.open_existing()?;
    let store = StateStore::open(&dir)?;
    note_unfolded(&dir, &store)?;
    let Some(found) = store.lookup_view(workspace, &id)? else {
        eprintln!("no profile for {id} in workspace {workspace}");
        return Ok(ExitCode::from(2));
    };
    // What the read API answers for the same lookup.
    let profile = idfold_read_api::profile_answer(&id, Some(found))?;
    let text = if json {
        serde_json::to_string(&profile)?
    } else {
        serde_json::to_string_pretty(&profile)?
    };
    writeln!(std::io::stdout().lock(), "{text}")?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct ResponsesArgs {
    /// Only this survey's responses.
    #[arg(long)]
    survey_id: Option<String>,
    /// From this date (YYYY-MM-DD) or RFC 3339 time, inclusive.
    #[arg(long)]
    from: Option<String>,
    /// Until this date or time, exclusive.
    #[arg(long)]
    to: Option<String>,
    /// Only the responses of this profile (`user:ID`, `email:ADDRESS`,
    /// `anonymous:ID`; a device or email that resolves to a user gives the user's).
    #[arg(long, value_parser = parse_profile_id)]
    profile: Option<Identifier>,
    /// CSV (one column per answer key) instead of NDJSON.
    #[arg(long)]
    csv: bool,
}

/// `idfold responses`: what `GET .../responses` pages through, all at once.
pub fn responses(
    data: &DataArgs,
    workspace: &str,
    args: &ResponsesArgs,
) -> anyhow::Result<ExitCode> {
    let time = |field, text: &Option<String>| {
        text.as_deref()
            .map(|t| idfold_read_api::time_param(field, t))
            .transpose()
            .map_err(|e| anyhow::anyhow!("--{field}: {e}"))
    };
    let filter = idfold_read_api::ResponseFilter {
        survey_id: args.survey_id.clone(),
        from: time("from", &args.from)?,
        to: time("to", &args.to)?,
    };
    let dir = data.open_existing()?;
    let store = StateStore::open(&dir)?;
    note_unfolded(&dir, &store)?;
    let mut rows = Vec::new();
    match &args.profile {
        Some(id) => {
            let Some((_, profile)) = store.lookup_view(workspace, id)? else {
                eprintln!("no profile for {id} in workspace {workspace}");
                return Ok(ExitCode::from(2));
            };
            rows.extend(idfold_read_api::responses_of(&profile, &filter));
        }
        None => {
            for profile in store.profile_views(Some(workspace)) {
                rows.extend(idfold_read_api::responses_of(&profile?, &filter));
            }
        }
    }
    let (rows, _) = idfold_read_api::page(rows, None, usize::MAX);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if args.csv {
        out.write_all(&idfold_read_api::to_csv(&rows)?)?;
    } else {
        for row in &rows {
            writeln!(out, "{}", serde_json::to_string(row)?)?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

pub fn export(data: &DataArgs, workspace: Option<&str>) -> anyhow::Result<ExitCode> {
    let dir = data.open_existing()?;
    let store = StateStore::open(&dir)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    store.export(workspace, &mut out)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

pub fn dlq(data: &DataArgs, json: bool) -> anyhow::Result<ExitCode> {
    let dir = data.open_existing()?;
    let letters = DeadLetterStore::open(&dir)?.list()?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if json {
        let items: Vec<Value> = letters
            .iter()
            .map(|(seq, l)| {
                let mut item = json!({
                    "seq": seq, "reason": l.reason, "field": l.field, "message": l.message,
                    "source": l.source, "position": l.position, "truncated": l.truncated,
                    "workspace": l.workspace,
                });
                // The original bytes: as text when they are UTF-8, else base64.
                match std::str::from_utf8(&l.raw) {
                    Ok(text) => item["raw"] = json!(text),
                    Err(_) => {
                        use base64::Engine;
                        item["raw_base64"] =
                            json!(base64::engine::general_purpose::STANDARD.encode(&l.raw));
                    }
                }
                item
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string(&items)?)?;
    } else {
        for (seq, l) in &letters {
            let at = l.position.map(|p| format!(":{p}")).unwrap_or_default();
            writeln!(out, "{seq:>6} {}{at} {}: {}", l.source, l.reason, l.message)?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
