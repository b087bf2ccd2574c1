//! `idfold`: the command line around the pipeline. Each subcommand is an
//! adapter: it opens the data directory and calls the producer, the
//! projector or the store.

mod commands;

/// The fold allocates many small strings and maps; mimalloc serves them
/// markedly faster than the system allocator (see the fold benchmark).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "idfold",
    version,
    about = "Identity stitching and two-mode MAU, folded from a durable log"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the embedded log and the projections live.
#[derive(Debug, Args)]
pub struct DataArgs {
    /// Data directory (writers create it if missing).
    #[arg(long, env = "IDFOLD_DATA", default_value = "idfold-data")]
    pub data: PathBuf,
    /// Seconds to wait while another idfold process holds the directory.
    #[arg(long, env = "IDFOLD_LOCK_WAIT_SECS", default_value_t = 30)]
    pub lock_wait: u64,
}

impl DataArgs {
    /// For commands that write: creates the directory if missing.
    pub fn open(&self) -> anyhow::Result<idfold_log::DataDir> {
        Ok(idfold_log::DataDir::open(
            &self.data,
            std::time::Duration::from_secs(self.lock_wait),
        )?)
    }

    /// For commands that only read: the directory must hold data already.
    pub fn open_existing(&self) -> anyhow::Result<idfold_log::DataDir> {
        Ok(idfold_log::DataDir::open_existing(
            &self.data,
            std::time::Duration::from_secs(self.lock_wait),
        )?)
    }
}

/// Exit code of an operational failure (1 is `ingest --strict` with
/// rejections, 2 a missing profile or a usage error).
const EXIT_FAILURE: u8 = 3;

#[derive(Debug, Args)]
pub struct FoldArgs {
    /// Log records folded and committed per atomic batch.
    #[arg(long, default_value_t = 20_000)]
    pub batch_size: usize,
    /// Accepted events kept in memory across workspaces before the least
    /// recently used are dropped (they reload from disk when needed).
    #[arg(long, default_value_t = 2_000_000)]
    pub max_resident_events: usize,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate NDJSON events (files, or stdin) and append the accepted ones to the log.
    Ingest {
        #[command(flatten)]
        data: DataArgs,
        /// NDJSON files; stdin when none (or `-`).
        files: Vec<PathBuf>,
        /// Print {"accepted":n,"rejected":n} on stdout.
        #[arg(long)]
        json: bool,
        /// Exit 1 when any input is rejected.
        #[arg(long)]
        strict: bool,
    },
    /// Fold the log into profiles and MAU; keeps following it unless --until-idle.
    Run {
        #[command(flatten)]
        data: DataArgs,
        /// Fold what is in the log, then exit.
        #[arg(long)]
        until_idle: bool,
        #[command(flatten)]
        fold: FoldArgs,
    },
    /// Monthly active users of a workspace.
    Mau {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        workspace: String,
        /// YYYY-MM; every month with activity when absent.
        #[arg(long)]
        month: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// One profile, looked up by user id, email or anonymous id.
    Profile {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        workspace: String,
        #[command(flatten)]
        id: commands::query::LookupArgs,
        #[arg(long)]
        json: bool,
    },
    /// Every profile, then every MAU row, as NDJSON (byte-identical for identical state).
    Export {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        workspace: Option<String>,
    },
    /// The rejected inputs with their reasons.
    Dlq {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        json: bool,
    },
    /// Drop every projection and refold the whole log.
    Rebuild {
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        fold: FoldArgs,
    },
    /// Ingest a built-in sample workload, fold it and print its MAU.
    Demo {
        /// Data directory; a fresh temporary one when absent.
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Print a generated, realistic workload as NDJSON.
    Generate {
        #[arg(long, default_value_t = 10_000)]
        events: usize,
        #[arg(long, default_value_t = 20)]
        workspaces: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    idfold_telemetry::describe();
    commands::init_logging(matches!(cli.command, Command::Run { .. }));
    let outcome = match cli.command {
        Command::Ingest {
            data,
            files,
            json,
            strict,
        } => commands::ingest::run(&data, &files, json, strict),
        Command::Run {
            data,
            until_idle,
            fold,
        } => commands::fold::run(&data, until_idle, &fold),
        Command::Mau {
            data,
            workspace,
            month,
            json,
        } => commands::query::mau(&data, &workspace, month.as_deref(), json),
        Command::Profile {
            data,
            workspace,
            id,
            json,
        } => commands::query::profile(&data, &workspace, &id, json),
        Command::Export { data, workspace } => commands::query::export(&data, workspace.as_deref()),
        Command::Dlq { data, json } => commands::query::dlq(&data, json),
        Command::Rebuild { data, fold } => commands::fold::rebuild(&data, &fold),
        Command::Demo { data } => commands::demo::run(data),
        Command::Generate {
            events,
            workspaces,
            seed,
        } => commands::generate::run(events, workspaces, seed),
    };
    match outcome {
        Ok(code) => code,
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// The reader of our output went away (`idfold export | head`): not an error.
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        let io =
            cause
                .downcast_ref::<std::io::Error>()
                .or_else(
                    || match cause.downcast_ref::<idfold_projector::ProjectorError>() {
                        Some(idfold_projector::ProjectorError::Output(e)) => Some(e),
                        _ => None,
                    },
                );
        io.is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
