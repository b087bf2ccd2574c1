use crate::size::ByteSize;

/// Why the configuration file, or a setting's value, could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The cause follows the message wherever the chain is shown; the
    /// message leaves it out so that it is not printed twice.
    #[error("cannot read the config file {path}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// Not TOML, or not the shape idfold reads; `detail` says where and why.
    #[error("the config file {path} is not valid:\n{detail}")]
    Parse { path: String, detail: String },
    #[error("the config file {path} has {} problem(s):\n{}", problems.len(), problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        path: String,
        problems: Vec<crate::Problem>,
    },
    #[error("{text:?} is not a size: give a whole number and a unit, such as \"512MiB\", \"2GiB\", \"800MB\" or \"65536KiB\" (KB, MB, GB, TB are powers of 1000; KiB, MiB, GiB, TiB of 1024; no unit is bytes)")]
    NotASize { text: String },
    #[error("{text:?} is more bytes than a 64-bit number holds")]
    SizeTooLarge { text: String },
    /// `what` names the setting in words; the caller adds its key, flag
    /// or variable, whichever the value came from.
    #[error("{what} must be at least {floor} ({} bytes), not {} bytes", floor.bytes(), size.bytes())]
    BelowFloor {
        what: &'static str,
        size: ByteSize,
        floor: ByteSize,
    },
}

impl ConfigError {
    /// The stable code of each kind of error.
    pub fn code(&self) -> &'static str {
        match self {
            ConfigError::Read { .. } => "config_unreadable",
            ConfigError::Parse { .. } => "config_not_toml",
            ConfigError::Invalid { .. } => "config_invalid",
            ConfigError::NotASize { .. } => "not_a_size",
            ConfigError::SizeTooLarge { .. } => "size_too_large",
            ConfigError::BelowFloor { .. } => "below_floor",
        }
    }
}
