//! One module per subcommand family.

pub mod demo;
pub mod fold;
pub mod generate;
pub mod ingest;
pub mod kafka;
pub mod query;

use tracing_subscriber::EnvFilter;

/// Logs go to stderr; `IDFOLD_LOG` sets the filter (default: info for the
/// long-running fold, warnings only for one-shot commands).
pub fn init_logging(long_running: bool) {
    let default = if long_running { "info" } else { "warn" };
    let filter = EnvFilter::try_from_env("IDFOLD_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
