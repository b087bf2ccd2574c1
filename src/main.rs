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

use clap::{Args, Parser, Subcommand, ValueEnum};
use idfold_config::{ByteSize, IdfoldConfig, MemoryBudget};

#[derive(Debug, Parser)]
#[command(
    name = "idfold",
    version,
    about = "Identity stitching and two-mode MAU, folded from a durable log"
)]
struct Cli {
    /// The configuration file (TOML; see `idfold config check`). Its
    /// settings apply where neither a flag nor an environment variable
    /// sets them; the workspaces' keys and tokens come from it.
    #[arg(long, env = "IDFOLD_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Log lines as text (default) or JSON, on stderr.
    #[arg(long, env = "IDFOLD_LOG_FORMAT", value_enum, global = true, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Check the file given with --config (or IDFOLD_CONFIG): parse it,
    /// check every value, and explain each problem. Exit 0 when it is valid.
    Check,
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
    /// MiB left free on the data directory's filesystem: writes that would
    /// leave less are refused (503 on HTTP) until space is freed.
    #[arg(long, env = "IDFOLD_DISK_RESERVE_MB", default_value_t = 4)]
    pub disk_reserve_mb: u64,
}

impl DataArgs {
    /// For commands that write: creates the directory if missing.
    pub fn open(&self) -> anyhow::Result<idfold_log::DataDir> {
        Ok(
            idfold_log::DataDir::open(&self.data, std::time::Duration::from_secs(self.lock_wait))?
                .with_space_reserve(self.space_reserve()),
        )
    }

    pub fn space_reserve(&self) -> u64 {
        self.disk_reserve_mb.saturating_mul(1024 * 1024)
    }

    /// For commands that fold: sled's page cache is a share of the fold's
    /// memory budget.
    pub fn open_for_fold(&self, fold: &FoldArgs) -> anyhow::Result<idfold_log::DataDir> {
        Ok(idfold_log::DataDir::open_sized(
            &self.data,
            std::time::Duration::from_secs(self.lock_wait),
            commands::fold::options(fold).sled_cache_bytes(),
        )?
        .with_space_reserve(self.space_reserve()))
    }

    /// [`Self::open_existing`] for commands that fold.
    pub fn open_existing_for_fold(&self, fold: &FoldArgs) -> anyhow::Result<idfold_log::DataDir> {
        Ok(idfold_log::DataDir::open_existing_sized(
            &self.data,
            std::time::Duration::from_secs(self.lock_wait),
            commands::fold::options(fold).sled_cache_bytes(),
        )?
        .with_space_reserve(self.space_reserve()))
    }

    /// For commands that only read: the directory must hold data already.
    pub fn open_existing(&self) -> anyhow::Result<idfold_log::DataDir> {
        Ok(idfold_log::DataDir::open_existing(
            &self.data,
            std::time::Duration::from_secs(self.lock_wait),
        )?
        .with_space_reserve(self.space_reserve()))
    }
}

/// Where Kafka is, when idfold runs on it instead of the embedded log.
#[derive(Debug, Args)]
pub struct KafkaArgs {
    /// Run on Apache Kafka at HOST:PORT[,HOST:PORT...] instead of the embedded log.
    #[arg(long, env = "IDFOLD_KAFKA", value_name = "HOST:PORT")]
    pub kafka: Option<String>,
    /// Names the topics (<prefix>.raw.<type>, <prefix>.events,
    /// <prefix>.dead-letters) and the consumer groups (<prefix>-producer,
    /// <prefix>-fold).
    #[arg(long, env = "IDFOLD_KAFKA_PREFIX", default_value = "idfold")]
    pub topic_prefix: String,
    /// Raw input topics instead of <prefix>.raw.<type> (repeat, or separate
    /// with commas); one topic for every type is fine.
    #[arg(
        long = "raw-topic",
        env = "IDFOLD_KAFKA_RAW_TOPICS",
        value_delimiter = ','
    )]
    pub raw_topics: Vec<String>,
    /// Producer acknowledgements: `all` (with the idempotent producer) is
    /// the only setting under which an acknowledged event survives a broker failure.
    #[arg(long, env = "IDFOLD_KAFKA_ACKS", value_enum, default_value_t = AcksArg::All)]
    pub kafka_acks: AcksArg,
    #[arg(long, env = "IDFOLD_KAFKA_COMPRESSION", value_enum, default_value_t = CompressionArg::Lz4)]
    pub kafka_compression: CompressionArg,
    /// Partitions of the topics `idfold topics` creates.
    #[arg(long, env = "IDFOLD_KAFKA_PARTITIONS", default_value_t = 6)]
    pub kafka_partitions: i32,
    /// Seconds before a silent group member's partitions go to the others.
    #[arg(long, env = "IDFOLD_KAFKA_SESSION_TIMEOUT_SECS", default_value_t = 10)]
    pub kafka_session_timeout: u64,
    /// This instance's stable name in the consumer groups (static
    /// membership): a restart within the session timeout keeps its
    /// partitions, without a rebalance. Unique per instance; a StatefulSet's
    /// pod name fits.
    #[arg(long, env = "IDFOLD_INSTANCE_ID")]
    pub instance_id: Option<String>,
    /// Seconds a stage waits for a topic that does not exist (a new topic
    /// takes a moment to reach every broker) before it stops.
    #[arg(long, env = "IDFOLD_KAFKA_TOPIC_GRACE_SECS", default_value_t = 60)]
    pub kafka_topic_grace: u64,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AcksArg {
    All,
    Leader,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CompressionArg {
    None,
    Gzip,
    Snappy,
    Lz4,
}

/// Which stages `run --kafka` runs (both by default).
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Stages {
    All,
    /// Raw topics to the canonical log only.
    Producer,
    /// The canonical log into the projection only.
    Fold,
}

impl KafkaArgs {
    /// `None` on the embedded log.
    pub fn settings(&self) -> Option<idfold_kafka::KafkaSettings> {
        // Empty means "not Kafka", so `--kafka ''` overrides IDFOLD_KAFKA.
        let bootstrap = self.kafka.as_ref().filter(|b| !b.trim().is_empty())?;
        let mut settings = idfold_kafka::KafkaSettings::new(bootstrap, &self.topic_prefix);
        if !self.raw_topics.is_empty() {
            settings.topics.raw = self.raw_topics.clone();
        }
        settings.acks = match self.kafka_acks {
            AcksArg::All => idfold_kafka::Acks::All,
            AcksArg::Leader => idfold_kafka::Acks::Leader,
        };
        settings.compression = match self.kafka_compression {
            CompressionArg::None => idfold_kafka::Compression::None,
            CompressionArg::Gzip => idfold_kafka::Compression::Gzip,
            CompressionArg::Snappy => idfold_kafka::Compression::Snappy,
            CompressionArg::Lz4 => idfold_kafka::Compression::Lz4,
        };
        settings.partitions = self.kafka_partitions;
        settings.session_timeout = std::time::Duration::from_secs(self.kafka_session_timeout);
        settings.instance_id = self.instance_id.clone().filter(|i| !i.trim().is_empty());
        settings.topic_grace = std::time::Duration::from_secs(self.kafka_topic_grace);
        Some(settings)
    }
}

/// `--workspace`: an id by the events' rule, so that a typo or a path is a
/// usage error rather than an empty answer.
fn workspace_id(text: &str) -> Result<String, String> {
    idfold_events::check_workspace_id(text)
        .map(|()| text.to_owned())
        .map_err(|rejection| format!("not a workspace id: {}", rejection.message))
}

/// Exit code of an operational failure (1 is `ingest --strict` with
/// rejections, 2 a missing profile or a usage error).
const EXIT_FAILURE: u8 = 3;

#[derive(Debug, Clone, Args)]
pub struct FoldArgs {
    /// Log records folded and committed per atomic batch.
    #[arg(long, env = "IDFOLD_BATCH_SIZE", default_value_t = 20_000)]
    pub batch_size: usize,
    /// Bytes the fold keeps resident, sled's page cache included: a size
    /// such as 512MiB, 2GiB or 800MB (no unit is bytes), at least 16MiB.
    #[arg(
        long,
        env = "IDFOLD_FOLD_MEMORY_BUDGET",
        value_name = "SIZE",
        value_parser = memory_budget,
        default_value_t = default_memory_budget()
    )]
    pub memory_budget: MemoryBudget,
    /// Retired: refused with what replaced it, so that a deployment that
    /// still sets it does not silently lose its bound.
    #[arg(
        long = "max-resident-events",
        env = "IDFOLD_MAX_RESIDENT_EVENTS",
        hide = true,
        value_name = "N",
        value_parser = retired_max_resident_events
    )]
    pub retired_max_resident_events: Option<String>,
}

/// The projector's default, which is above the floor.
fn default_memory_budget() -> MemoryBudget {
    MemoryBudget::new(ByteSize::from_bytes(
        idfold_projector::DEFAULT_MEMORY_BUDGET,
    ))
    .unwrap_or(MemoryBudget::MIN)
}

/// `--memory-budget`: the error names both ways to set it, since clap
/// names the flag even for a value from the environment.
fn memory_budget(text: &str) -> Result<MemoryBudget, String> {
    text.parse()
        .map_err(|error| format!("{error} (--memory-budget, IDFOLD_FOLD_MEMORY_BUDGET)"))
}

/// `--max-resident-events` and `IDFOLD_MAX_RESIDENT_EVENTS`, whatever their value.
fn retired_max_resident_events(_: &str) -> Result<String, String> {
    let retired = idfold_config::Retired::MAX_RESIDENT_EVENTS;
    Err(format!(
        "{} ({}) {}",
        retired.flag,
        retired.variable,
        retired.message()
    ))
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate NDJSON events (files, or stdin) and append the accepted ones to the log.
    Ingest {
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        kafka: KafkaArgs,
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
    /// On Kafka it also moves raw topics to the canonical log first.
    Run {
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        kafka: KafkaArgs,
        /// Process what is in the log (on Kafka: in the raw topics, then in
        /// the canonical log) when it starts, then exit.
        #[arg(long)]
        until_idle: bool,
        /// On Kafka: which stages to run.
        #[arg(long, value_enum, default_value_t = Stages::All)]
        stages: Stages,
        #[command(flatten)]
        fold: FoldArgs,
        /// Serve Prometheus metrics at http://ADDR/metrics while it runs.
        #[arg(long, env = "IDFOLD_METRICS_ADDR")]
        metrics_addr: Option<std::net::SocketAddr>,
    },
    /// Create the Kafka topics idfold needs, or check the ones that exist.
    Topics {
        #[command(flatten)]
        kafka: KafkaArgs,
    },
    /// Monthly active users of a workspace.
    Mau {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long, value_parser = workspace_id)]
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
        #[arg(long, value_parser = workspace_id)]
        workspace: String,
        #[command(flatten)]
        id: commands::query::LookupArgs,
        #[arg(long)]
        json: bool,
    },
    /// Survey responses of a workspace (or of one profile), as NDJSON or CSV.
    Responses {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long, value_parser = workspace_id)]
        workspace: String,
        #[command(flatten)]
        query: commands::query::ResponsesArgs,
    },
    /// Forget a person: their profile, traits, responses, emails and devices,
    /// and their events in the embedded log. Months already counted keep
    /// their MAU. (On Kafka, use `serve`'s `DELETE /v1/workspaces/W/profiles/ID`.)
    Erase {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long, value_parser = workspace_id)]
        workspace: String,
        #[command(flatten)]
        id: commands::query::LookupArgs,
        #[command(flatten)]
        fold: FoldArgs,
    },
    /// Copy the data directory's live entries into a new directory, leaving
    /// behind what sled still keeps on disk of deleted ones (erased people
    /// included). Swap the directories while idfold is stopped.
    Compact {
        #[command(flatten)]
        data: DataArgs,
        /// The new directory; must not exist yet.
        #[arg(long)]
        into: PathBuf,
    },
    /// Every profile, then every MAU row, as NDJSON (byte-identical for identical state).
    Export {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long, value_parser = workspace_id)]
        workspace: Option<String>,
    },
    /// The rejected inputs with their reasons (on Kafka: the dead-letter topic).
    Dlq {
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        kafka: KafkaArgs,
        #[arg(long)]
        json: bool,
    },
    /// Drop every projection and refold the whole log.
    Rebuild {
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        fold: FoldArgs,
        /// Serve Prometheus metrics (its progress among them) at
        /// http://ADDR/metrics while it runs.
        #[arg(long, env = "IDFOLD_METRICS_ADDR")]
        metrics_addr: Option<std::net::SocketAddr>,
    },
    /// Take events over HTTP (the native API and Segment's tracking API)
    /// and run the pipeline behind it until Ctrl-C or SIGTERM.
    Serve {
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        fold: FoldArgs,
        #[command(flatten)]
        serve: commands::serve::ServeArgs,
    },
    /// The configuration file.
    Config {
        #[command(subcommand)]
        action: ConfigCommand,
    },
    /// Ingest a built-in sample workload, fold it and print its MAU.
    Demo {
        /// Data directory; a fresh temporary one when absent.
        #[arg(long)]
        data: Option<PathBuf>,
        #[command(flatten)]
        fold: FoldArgs,
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

/// Loads the configuration file, when one is given, and sets the
/// environment variables it stands for that are not set already, so that
/// flags win over the environment, and the environment over the file.
/// `idfold config check` reads the file itself, problems and all.
fn apply_config_file() -> Result<Option<IdfoldConfig>, ExitCode> {
    // Usage errors and --help are for the real parse to report.
    let Ok(first) = Cli::try_parse() else {
        return Ok(None);
    };
    if matches!(first.command, Command::Config { .. }) {
        return Ok(None);
    }
    let Some(path) = first.config else {
        return Ok(None);
    };
    match IdfoldConfig::load(&path) {
        Ok(config) => {
            for (name, value) in config.environment() {
                if std::env::var_os(name).is_none() {
                    // Still one thread: nothing reads the environment meanwhile.
                    std::env::set_var(name, value);
                }
            }
            Ok(Some(config))
        }
        Err(error) => {
            eprintln!(
                "error: {:#}\n`idfold config check --config {}` explains every problem",
                anyhow::Error::from(error),
                path.display()
            );
            Err(ExitCode::from(2))
        }
    }
}

fn main() -> ExitCode {
    let config = match apply_config_file() {
        Ok(config) => config,
        Err(code) => return code,
    };
    let cli = Cli::parse();
    let long_running = matches!(cli.command, Command::Run { .. } | Command::Serve { .. });
    commands::init_logging(long_running, cli.log_format);
    // The recorder is for the commands that serve /metrics; others record
    // into nothing.
    let serves_metrics = long_running || matches!(cli.command, Command::Rebuild { .. });
    let metrics = if serves_metrics {
        match idfold_telemetry::install_exporter() {
            Ok(handle) => Some(handle),
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::from(EXIT_FAILURE);
            }
        }
    } else {
        None
    };
    let outcome = match cli.command {
        Command::Ingest {
            data,
            kafka,
            files,
            json,
            strict,
        } => commands::ingest::run(&data, &kafka, &files, json, strict),
        Command::Run {
            data,
            kafka,
            until_idle,
            stages,
            fold,
            metrics_addr,
        } => {
            let server = commands::MetricsServer::start_if(metrics_addr, metrics.clone());
            server.and_then(|_server| match kafka.settings() {
                Some(_) => commands::kafka::run(&data, &kafka, until_idle, &fold, stages),
                None => commands::fold::run(&data, until_idle, &fold),
            })
        }
        Command::Topics { kafka } => commands::kafka::topics(&kafka),
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
        Command::Responses {
            data,
            workspace,
            query,
        } => commands::query::responses(&data, &workspace, &query),
        Command::Erase {
            data,
            workspace,
            id,
            fold,
        } => commands::erase::run(&data, &workspace, &id, &fold),
        Command::Compact { data, into } => commands::erase::compact(&data, &into),
        Command::Export { data, workspace } => commands::query::export(&data, workspace.as_deref()),
        Command::Dlq { data, kafka, json } => match kafka.settings() {
            Some(_) => commands::kafka::dlq(&kafka, json),
            None => commands::query::dlq(&data, json),
        },
        Command::Rebuild {
            data,
            kafka,
            fold,
            metrics_addr,
        } => commands::MetricsServer::start_if(metrics_addr, metrics.clone()).and_then(|_server| {
            match kafka.settings() {
                Some(_) => commands::kafka::rebuild(&data, &kafka, &fold),
                None => commands::fold::rebuild(&data, &fold),
            }
        }),
        Command::Serve {
            data,
            kafka,
            fold,
            serve,
        } => match metrics {
            Some(handle) => {
                commands::serve::run(&data, &kafka, &fold, &serve, config.as_ref(), handle)
            }
            None => Err(anyhow::anyhow!("the metrics recorder is not installed")),
        },
        Command::Config {
            action: ConfigCommand::Check,
        } => commands::config::check(cli.config.as_deref()),
        Command::Demo { data, fold } => commands::demo::run(data, &fold),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fold_args(args: &[&str]) -> Result<FoldArgs, String> {
        let cli =
            Cli::try_parse_from(["idfold", "run"].iter().chain(args)).map_err(|e| e.to_string())?;
        match cli.command {
            Command::Run { fold, .. } => Ok(fold),
            other => Err(format!("parsed as {other:?}")),
        }
    }

    #[test]
    fn the_memory_budget_reaches_the_fold_options() -> Result<(), String> {
        let options = commands::fold::options(&fold_args(&["--memory-budget", "64MiB"])?);
        assert_eq!(options.memory_budget, 64 * 1024 * 1024);
        // Unset, it is the projector's default (this test's environment
        // does not set IDFOLD_FOLD_MEMORY_BUDGET).
        if std::env::var_os("IDFOLD_FOLD_MEMORY_BUDGET").is_none() {
            let options = commands::fold::options(&fold_args(&[])?);
            assert_eq!(
                options.memory_budget,
                idfold_projector::DEFAULT_MEMORY_BUDGET
            );
        }
        Ok(())
    }

    #[test]
    fn a_budget_below_the_floor_and_the_retired_flag_are_usage_errors() {
        let refused = fold_args(&["--memory-budget", "3"])
            .err()
            .unwrap_or_default();
        assert!(
            refused.contains("--memory-budget") && refused.contains("at least 16MiB"),
            "{refused}"
        );
        let retired = fold_args(&["--max-resident-events", "5000"])
            .err()
            .unwrap_or_default();
        assert!(retired.contains("--memory-budget"), "{retired}");
    }
}
