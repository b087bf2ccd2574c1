/// Why the configuration file could not be used.
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
}
