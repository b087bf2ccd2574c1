//! The file's shape, its environment variables, and its checks.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use idfold_access::{AccessConfig, WorkspaceAccess};
use serde::Deserialize;

use crate::error::ConfigError;

/// Everything idfold reads from the file. Unknown keys are errors, so a
/// typo is reported rather than ignored.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdfoldConfig {
    /// The data directory (`--data`, `IDFOLD_DATA`).
    pub data: Option<PathBuf>,
    /// `serve`'s address (`--listen`, `IDFOLD_LISTEN`).
    pub listen: Option<String>,
    /// `run`'s metrics address (`--metrics-addr`, `IDFOLD_METRICS_ADDR`).
    pub metrics_addr: Option<String>,
    #[serde(default)]
    pub log: LogSection,
    /// Present: run on Kafka.
    pub kafka: Option<KafkaSection>,
    #[serde(default)]
    pub limits: LimitsSection,
    #[serde(default)]
    pub workspaces: Vec<WorkspaceAccess>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// `text` (default) or `json` (`--log-format`, `IDFOLD_LOG_FORMAT`).
    pub format: Option<LogFormat>,
    /// A `tracing` filter such as `info` or `idfold=debug` (`IDFOLD_LOG`).
    pub level: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Acks {
    All,
    Leader,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSection {
    /// `HOST:PORT[,HOST:PORT...]` (`--kafka`, `IDFOLD_KAFKA`).
    pub bootstrap: String,
    pub topic_prefix: Option<String>,
    pub raw_topics: Option<Vec<String>>,
    pub acks: Option<Acks>,
    pub compression: Option<Compression>,
    pub partitions: Option<i32>,
    pub session_timeout_secs: Option<u64>,
    /// Static membership in the consumer groups (`IDFOLD_INSTANCE_ID`).
    pub instance_id: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    pub max_inflight_requests: Option<usize>,
    pub write_queue: Option<usize>,
    pub ack_timeout_secs: Option<u64>,
    pub batch_size: Option<usize>,
    pub max_resident_events: Option<usize>,
    pub lock_wait_secs: Option<u64>,
    pub disk_reserve_mb: Option<u64>,
}

/// One thing wrong with a file that parsed: the key and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.key, self.message)
    }
}

fn problem(key: &str, message: impl Into<String>) -> Problem {
    Problem {
        key: key.to_owned(),
        message: message.into(),
    }
}

impl IdfoldConfig {
    /// Reads and parses the file; its values are checked by [`Self::check`].
    pub fn from_file(path: &Path) -> Result<IdfoldConfig, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        // The error's Display points at the line and column, with the line.
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: shown,
            detail: e.to_string(),
        })
    }

    /// Reads, parses and checks: the file as `serve` and `run` take it.
    pub fn load(path: &Path) -> Result<IdfoldConfig, ConfigError> {
        let config = IdfoldConfig::from_file(path)?;
        let problems = config.check();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid {
                path: path.display().to_string(),
                problems,
            })
        }
    }

    /// Every problem with the values, each saying what to do. Secrets are
    /// never quoted.
    pub fn check(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        for (key, address) in [
            ("listen", &self.listen),
            ("metrics_addr", &self.metrics_addr),
        ] {
            if let Some(address) = address {
                if address.parse::<SocketAddr>().is_err() {
                    problems.push(problem(
                        key,
                        format!("{address:?} is not an IP address and port, such as \"127.0.0.1:8088\" or \"0.0.0.0:8088\""),
                    ));
                }
            }
        }
        if self.data.as_ref().is_some_and(|d| d.as_os_str().is_empty()) {
            problems.push(problem("data", "is empty: give the data directory's path"));
        }
        if let Some(level) = &self.log.level {
            if level.trim().is_empty() {
                problems.push(problem(
                    "log.level",
                    "is empty: give a level such as \"info\" or a filter such as \"idfold=debug\"",
                ));
            }
        }
        if let Some(kafka) = &self.kafka {
            check_kafka(kafka, &mut problems);
        }
        check_limits(&self.limits, &mut problems);
        let access = AccessConfig {
            workspaces: self.workspaces.clone(),
        };
        for error in [access.write_keys().err(), access.read_tokens().err()]
            .into_iter()
            .flatten()
        {
            problems.push(problem("workspaces", error.to_string()));
        }
        let mut seen = std::collections::BTreeSet::new();
        for workspace in &self.workspaces {
            if !seen.insert(workspace.id.as_str()) {
                problems.push(problem(
                    "workspaces",
                    format!(
                        "workspace {:?} is listed twice: list it once with all its keys",
                        workspace.id
                    ),
                ));
            }
        }
        // A value becomes an environment variable, which cannot hold NUL.
        for (name, value) in self.environment() {
            if value.contains('\0') {
                problems.push(problem(name, "contains a NUL character"));
            }
        }
        if self.workspaces.iter().any(|w| {
            w.id.contains('\0')
                || w.write_keys
                    .iter()
                    .chain(&w.read_tokens)
                    .any(|k| k.contains('\0'))
        }) {
            problems.push(problem("workspaces", "a value contains a NUL character"));
        }
        problems.dedup();
        problems
    }

    /// The environment variables the file stands for, as `(name, value)`:
    /// each is used where neither the command line nor the environment
    /// sets it. Secrets are not among them (they are read from the file).
    pub fn environment(&self) -> Vec<(&'static str, String)> {
        let mut env = Vec::new();
        let mut put = |name: &'static str, value: Option<String>| {
            if let Some(value) = value {
                env.push((name, value));
            }
        };
        put(
            "IDFOLD_DATA",
            self.data.as_ref().map(|d| d.display().to_string()),
        );
        put("IDFOLD_LISTEN", self.listen.clone());
        put("IDFOLD_METRICS_ADDR", self.metrics_addr.clone());
        put(
            "IDFOLD_LOG_FORMAT",
            self.log.format.map(|f| {
                match f {
                    LogFormat::Text => "text",
                    LogFormat::Json => "json",
                }
                .to_owned()
            }),
        );
        put("IDFOLD_LOG", self.log.level.clone());
        if let Some(kafka) = &self.kafka {
            put("IDFOLD_KAFKA", Some(kafka.bootstrap.clone()));
            put("IDFOLD_KAFKA_PREFIX", kafka.topic_prefix.clone());
            put(
                "IDFOLD_KAFKA_RAW_TOPICS",
                kafka.raw_topics.as_ref().map(|t| t.join(",")),
            );
            put(
                "IDFOLD_KAFKA_ACKS",
                kafka.acks.map(|a| {
                    match a {
                        Acks::All => "all",
                        Acks::Leader => "leader",
                    }
                    .to_owned()
                }),
            );
            put(
                "IDFOLD_KAFKA_COMPRESSION",
                kafka.compression.map(|c| {
                    match c {
                        Compression::None => "none",
                        Compression::Gzip => "gzip",
                        Compression::Snappy => "snappy",
                        Compression::Lz4 => "lz4",
                    }
                    .to_owned()
                }),
            );
            put(
                "IDFOLD_KAFKA_PARTITIONS",
                kafka.partitions.map(|p| p.to_string()),
            );
            put(
                "IDFOLD_KAFKA_SESSION_TIMEOUT_SECS",
                kafka.session_timeout_secs.map(|s| s.to_string()),
            );
            put("IDFOLD_INSTANCE_ID", kafka.instance_id.clone());
        }
        let limits = &self.limits;
        let as_u64 = |n: Option<usize>| n.and_then(|n| u64::try_from(n).ok());
        for (name, value) in [
            (
                "IDFOLD_MAX_INFLIGHT_REQUESTS",
                as_u64(limits.max_inflight_requests),
            ),
            ("IDFOLD_WRITE_QUEUE", as_u64(limits.write_queue)),
            ("IDFOLD_ACK_TIMEOUT_SECS", limits.ack_timeout_secs),
            ("IDFOLD_BATCH_SIZE", as_u64(limits.batch_size)),
            (
                "IDFOLD_MAX_RESIDENT_EVENTS",
                as_u64(limits.max_resident_events),
            ),
            ("IDFOLD_LOCK_WAIT_SECS", limits.lock_wait_secs),
            ("IDFOLD_DISK_RESERVE_MB", limits.disk_reserve_mb),
        ] {
            put(name, value.map(|n| n.to_string()));
        }
        env
    }

    /// The workspaces and their secrets, for `serve`.
    pub fn access(&self) -> AccessConfig {
        AccessConfig {
            workspaces: self.workspaces.clone(),
        }
    }
}

fn check_kafka(kafka: &KafkaSection, problems: &mut Vec<Problem>) {
    let hosts: Vec<&str> = kafka.bootstrap.split(',').map(str::trim).collect();
    if hosts.iter().any(|h| {
        h.rsplit_once(':')
            .is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
    }) {
        problems.push(problem(
            "kafka.bootstrap",
            format!(
                "{:?} is not a list of HOST:PORT separated by commas, such as \"kafka-1:9092,kafka-2:9092\"",
                kafka.bootstrap
            ),
        ));
    }
    if let Some(prefix) = &kafka.topic_prefix {
        let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if prefix.is_empty() || prefix.len() > 200 || !prefix.chars().all(legal) {
            problems.push(problem(
                "kafka.topic_prefix",
                format!("{prefix:?} cannot start a Kafka topic name: use 1 to 200 of ASCII letters, digits, `.`, `_` and `-`"),
            ));
        }
    }
    if kafka
        .raw_topics
        .as_ref()
        .is_some_and(|t| t.is_empty() || t.iter().any(|t| t.trim().is_empty()))
    {
        problems.push(problem(
            "kafka.raw_topics",
            "lists no topic, or an empty name: leave it out for <prefix>.raw.<type>, or name the topics",
        ));
    }
    if kafka.partitions.is_some_and(|p| p < 1) {
        problems.push(problem("kafka.partitions", "must be at least 1"));
    }
    if kafka
        .session_timeout_secs
        .is_some_and(|s| !(6..=1800).contains(&s))
    {
        problems.push(problem(
            "kafka.session_timeout_secs",
            "must be between 6 and 1800: the broker refuses other session timeouts by default",
        ));
    }
}

fn check_limits(limits: &LimitsSection, problems: &mut Vec<Problem>) {
    let at_least_one = [
        ("limits.max_inflight_requests", limits.max_inflight_requests),
        ("limits.write_queue", limits.write_queue),
        ("limits.batch_size", limits.batch_size),
        ("limits.max_resident_events", limits.max_resident_events),
        (
            "limits.ack_timeout_secs",
            limits
                .ack_timeout_secs
                .and_then(|n| usize::try_from(n).ok()),
        ),
    ];
    for (key, value) in at_least_one {
        if value == Some(0) {
            problems.push(problem(key, "must be at least 1"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<IdfoldConfig, ConfigError> {
        let dir = tempfile::tempdir().map_err(|source| ConfigError::Read {
            path: "tmp".into(),
            source,
        })?;
        let path = dir.path().join("idfold.toml");
        std::fs::write(&path, text).map_err(|source| ConfigError::Read {
            path: "tmp".into(),
            source,
        })?;
        IdfoldConfig::from_file(&path)
    }

    #[test]
    fn a_full_file_maps_to_its_environment_variables() -> Result<(), ConfigError> {
        let config = parse(
            r#"
            data = "/var/lib/idfold"
            listen = "0.0.0.0:8088"
            [log]
            format = "json"
            [kafka]
            bootstrap = "k1:9092,k2:9092"
            acks = "all"
            compression = "zstd_is_not_here_so_lz4"
            "#,
        );
        assert!(
            matches!(&config, Err(ConfigError::Parse { detail, .. }) if detail.contains("compression") || detail.contains("lz4")),
            "an unknown compression is named: {config:?}"
        );
        let config = parse(
            r#"
            data = "/var/lib/idfold"
            listen = "0.0.0.0:8088"
            [log]
            format = "json"
            [kafka]
            bootstrap = "k1:9092,k2:9092"
            compression = "gzip"
            [limits]
            batch_size = 5000
            [[workspaces]]
            id = "acme"
            write_keys = ["wk_acme_0123456789abcdef"]
            read_tokens = ["rt_acme_0123456789abcdef"]
            "#,
        )?;
        assert_eq!(config.check(), vec![]);
        let env = config.environment();
        for expected in [
            ("IDFOLD_DATA", "/var/lib/idfold"),
            ("IDFOLD_LISTEN", "0.0.0.0:8088"),
            ("IDFOLD_LOG_FORMAT", "json"),
            ("IDFOLD_KAFKA", "k1:9092,k2:9092"),
            ("IDFOLD_KAFKA_COMPRESSION", "gzip"),
            ("IDFOLD_BATCH_SIZE", "5000"),
        ] {
            assert!(
                env.iter().any(|(k, v)| (*k, v.as_str()) == expected),
                "{expected:?} in {env:?}"
            );
        }
        assert!(
            !env.iter().any(|(_, v)| v.contains("0123456789abcdef")),
            "secrets never become environment variables"
        );
        Ok(())
    }

    #[test]
    fn each_problem_names_its_key_and_never_a_secret() -> Result<(), ConfigError> {
        let config = parse(
            r#"
            listen = "localhost"
            [kafka]
            bootstrap = "no-port"
            partitions = 0
            [limits]
            write_queue = 0
            [[workspaces]]
            id = "acme"
            write_keys = ["short-secret"]
            [[workspaces]]
            id = "acme"
            "#,
        )?;
        let problems = config.check();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        for key in [
            "listen",
            "kafka.bootstrap",
            "kafka.partitions",
            "limits.write_queue",
            "workspaces",
        ] {
            assert!(keys.contains(&key), "{key} in {problems:?}");
        }
        assert!(!problems
            .iter()
            .any(|p| p.to_string().contains("short-secret")));
        Ok(())
    }

    #[test]
    fn a_nul_character_is_a_problem_not_a_crash_later() -> Result<(), ConfigError> {
        let config = parse("data = \"a\\u0000b\"\n")?;
        assert_eq!(config.check().len(), 1, "{:?}", config.check());
        Ok(())
    }

    #[test]
    fn a_misspelt_key_is_an_error_that_lists_the_right_ones() {
        let error = parse("lisen = \"127.0.0.1:1\"\n")
            .err()
            .map(|e| e.to_string());
        let text = error.unwrap_or_default();
        assert!(
            text.contains("lisen") && text.contains("listen") && text.contains("line 1"),
            "{text}"
        );
    }
}
