//! The one configuration file (`--config`, `IDFOLD_CONFIG`): where the data
//! lives, where to listen, Kafka and its topics, limits, the fold's memory
//! budget, logging, and the workspaces with their write keys and read
//! tokens. Every setting but the secrets also has an environment variable
//! and a command-line flag; the order is flag, then environment, then file,
//! then the built-in default. `idfold config check` runs
//! [`IdfoldConfig::check`] and explains each problem.

mod error;
mod file;
mod size;

pub use error::ConfigError;
pub use file::{
    Acks, Compression, FoldSection, IdfoldConfig, KafkaSection, LimitsSection, LogFormat,
    LogSection, Problem, Retired, RETIRED,
};
pub use size::{ByteSize, MemoryBudget};
