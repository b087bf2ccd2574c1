//! The file's shape, its environment variables, and its checks.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use idfold_access::{AccessConfig, WorkspaceAccess};
use serde::Deserialize;

use crate::error::ConfigError;
use crate::size::MemoryBudget;

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
    pub fold: FoldSection,
    #[serde(default)]
    pub dashboard: DashboardSection,
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
    /// How long a stage waits for a missing topic (`IDFOLD_KAFKA_TOPIC_GRACE_SECS`).
    pub topic_grace_secs: Option<u64>,
    /// Static membership in the consumer groups (`IDFOLD_INSTANCE_ID`).
    pub instance_id: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    pub max_inflight_requests: Option<usize>,
    pub max_connections: Option<usize>,
    pub header_read_timeout_secs: Option<u64>,
    pub keep_alive_idle_secs: Option<u64>,
    pub body_progress_timeout_secs: Option<u64>,
    pub body_timeout_secs: Option<u64>,
    pub write_queue: Option<usize>,
    pub ack_timeout_secs: Option<u64>,
    pub batch_size: Option<usize>,
    pub lock_wait_secs: Option<u64>,
    pub disk_reserve_mb: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FoldSection {
    /// What the fold keeps resident, sled's page cache included
    /// (`--memory-budget`, `IDFOLD_FOLD_MEMORY_BUDGET`).
    pub memory_budget: Option<MemoryBudget>,
}

/// A setting idfold no longer reads: given in the file, the environment
/// or on the command line, it is refused with what replaced it, so that a
/// deployment does not silently lose what it meant to set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retired {
    /// Its key in the file.
    pub key: &'static str,
    pub variable: &'static str,
    pub flag: &'static str,
    /// What to set instead, and how.
    pub replaced_by: &'static str,
}

impl Retired {
    /// `limits.max_resident_events`: the fold is bounded by bytes, not events.
    pub const MAX_RESIDENT_EVENTS: Retired = Retired {
        key: "limits.max_resident_events",
        variable: "IDFOLD_MAX_RESIDENT_EVENTS",
        flag: "--max-resident-events",
        replaced_by: "the fold is bounded by bytes now: set `fold.memory_budget` \
            (--memory-budget, IDFOLD_FOLD_MEMORY_BUDGET) to what it may keep resident, \
            such as \"512MiB\", instead",
    };

    /// Why it is refused, without its own name (the caller shows that).
    pub fn message(&self) -> String {
        format!("is no longer read; {}", self.replaced_by)
    }
}

/// Every retired setting.
pub const RETIRED: &[Retired] = &[Retired::MAX_RESIDENT_EVENTS];

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DashboardSection {
    /// Mark the session cookie `Secure` (`--dashboard-secure-cookie`,
    /// `IDFOLD_DASHBOARD_SECURE_COOKIE`): on whenever served over HTTPS.
    pub secure_cookie: Option<bool>,
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
    /// A key of the wrong type or unknown is an error listing every such
    /// key (see [`Self::read`]).
    pub fn from_file(path: &Path) -> Result<IdfoldConfig, ConfigError> {
        let (config, problems) = IdfoldConfig::read(path)?;
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid {
                path: path.display().to_string(),
                problems,
            })
        }
    }

    /// Reads and parses the file, collecting every key that is unknown or
    /// of the wrong type instead of stopping at the first: the file minus
    /// those keys, and one problem per key. Only a file that cannot be read
    /// or is not TOML at all is an error.
    pub fn read(path: &Path) -> Result<(IdfoldConfig, Vec<Problem>), ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        IdfoldConfig::parse(&text).map_err(|detail| ConfigError::Parse {
            path: shown,
            detail,
        })
    }

    /// [`Self::read`] on text: `Err` with the syntax error (its Display
    /// points at the line and column) when it is not TOML.
    pub fn parse(text: &str) -> Result<(IdfoldConfig, Vec<Problem>), String> {
        let mut document: toml::Value = toml::from_str(text).map_err(|e| e.to_string())?;
        let spans = toml_edit::ImDocument::parse(text).ok();
        let mut problems = Vec::new();
        // Retired keys are taken out first, each a problem saying what
        // replaced it (not the generic "unknown field").
        for retired in RETIRED {
            let segments: Vec<_> = retired
                .key
                .split('.')
                .map(|key| serde_path_to_error::Segment::Map {
                    key: key.to_owned(),
                })
                .collect();
            if value_at(&document, &segments).is_some() {
                let mut message = retired.message();
                let offset = spans
                    .as_ref()
                    .and_then(|d| key_offset(d.as_item(), &segments));
                if let Some(offset) = offset {
                    message.push_str(&format!(" (line {})", line_of(text, offset)));
                }
                problems.push((offset, problem(retired.key, message)));
                remove_path(&mut document, &segments);
            }
        }
        // The keys taken out so far: a table that then lacks a required
        // key (a workspace without the `id` of the wrong type) is their
        // consequence, not another problem.
        let mut removed: Vec<String> = Vec::new();
        // Each round takes out the key at fault; a file has finitely many.
        loop {
            match serde_path_to_error::deserialize::<_, IdfoldConfig>(document.clone()) {
                Ok(config) => return Ok((config, in_file_order(problems))),
                Err(error) => {
                    let segments: Vec<_> = error.path().iter().cloned().collect();
                    let key = match error.path().to_string() {
                        root if root == "." => "(file)".to_owned(),
                        key => key,
                    };
                    let consequence = removed.iter().any(|r| {
                        key == "(file)"
                            || r.strip_prefix(key.as_str())
                                .is_some_and(|rest| rest.starts_with(['.', '[']))
                    });
                    if consequence {
                        if !remove_path(&mut document, &segments) {
                            return Ok((IdfoldConfig::default(), in_file_order(problems)));
                        }
                        removed.push(key);
                        continue;
                    }
                    let mut message = error.into_inner().message().trim().to_owned();
                    // serde quotes the value it did not expect: not a secret.
                    if let Some(toml::Value::String(value)) = value_at(&document, &segments) {
                        if key.starts_with("workspaces") {
                            message = message.replace(&format!("{value:?}"), "(not shown)");
                        }
                    }
                    let offset = spans
                        .as_ref()
                        .and_then(|d| key_offset(d.as_item(), &segments));
                    if let Some(offset) = offset {
                        message.push_str(&format!(" (line {})", line_of(text, offset)));
                    }
                    problems.push((offset, problem(&key, message)));
                    if !remove_path(&mut document, &segments) {
                        // Nothing left to take out: what parsed is the defaults.
                        return Ok((IdfoldConfig::default(), in_file_order(problems)));
                    }
                    removed.push(key);
                }
            }
        }
    }

    /// Reads, parses and checks: the file as `serve` and `run` take it.
    pub fn load(path: &Path) -> Result<IdfoldConfig, ConfigError> {
        let (config, mut problems) = IdfoldConfig::read(path)?;
        problems.extend(config.check());
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
            put(
                "IDFOLD_KAFKA_TOPIC_GRACE_SECS",
                kafka.topic_grace_secs.map(|s| s.to_string()),
            );
        }
        let limits = &self.limits;
        let as_u64 = |n: Option<usize>| n.and_then(|n| u64::try_from(n).ok());
        for (name, value) in [
            (
                "IDFOLD_MAX_INFLIGHT_REQUESTS",
                as_u64(limits.max_inflight_requests),
            ),
            ("IDFOLD_MAX_CONNECTIONS", as_u64(limits.max_connections)),
            (
                "IDFOLD_HEADER_READ_TIMEOUT_SECS",
                limits.header_read_timeout_secs,
            ),
            ("IDFOLD_KEEP_ALIVE_IDLE_SECS", limits.keep_alive_idle_secs),
            (
                "IDFOLD_BODY_PROGRESS_TIMEOUT_SECS",
                limits.body_progress_timeout_secs,
            ),
            ("IDFOLD_BODY_TIMEOUT_SECS", limits.body_timeout_secs),
            ("IDFOLD_WRITE_QUEUE", as_u64(limits.write_queue)),
            ("IDFOLD_ACK_TIMEOUT_SECS", limits.ack_timeout_secs),
            ("IDFOLD_BATCH_SIZE", as_u64(limits.batch_size)),
            ("IDFOLD_LOCK_WAIT_SECS", limits.lock_wait_secs),
            ("IDFOLD_DISK_RESERVE_MB", limits.disk_reserve_mb),
        ] {
            put(name, value.map(|n| n.to_string()));
        }
        put(
            "IDFOLD_FOLD_MEMORY_BUDGET",
            self.fold.memory_budget.map(|b| b.to_string()),
        );
        put(
            "IDFOLD_DASHBOARD_SECURE_COOKIE",
            self.dashboard.secure_cookie.map(|on| on.to_string()),
        );
        env
    }

    /// The workspaces and their secrets, for `serve`.
    pub fn access(&self) -> AccessConfig {
        AccessConfig {
            workspaces: self.workspaces.clone(),
        }
    }
}

/// Problems as they come in the file (those without a place last).
fn in_file_order(mut problems: Vec<(Option<usize>, Problem)>) -> Vec<Problem> {
    problems.sort_by_key(|(offset, _)| offset.unwrap_or(usize::MAX));
    problems.into_iter().map(|(_, problem)| problem).collect()
}

/// A node of the parsed document, on the way down a path.
enum Node<'a> {
    Item(&'a toml_edit::Item),
    Table(&'a toml_edit::Table),
    Value(&'a toml_edit::Value),
}

/// The byte offset in the file of the last key on `path` (an array item's
/// own position when the path ends in one): where a problem points.
fn key_offset(root: &toml_edit::Item, path: &[serde_path_to_error::Segment]) -> Option<usize> {
    use serde_path_to_error::Segment;
    use toml_edit::TableLike;
    let mut node = Node::Item(root);
    let mut offset = None;
    for segment in path {
        node = match segment {
            Segment::Map { key } => {
                let table: &dyn TableLike = match node {
                    Node::Item(item) => item.as_table_like()?,
                    Node::Table(table) => table,
                    Node::Value(value) => value.as_inline_table()?,
                };
                let (found, item) = table.get_key_value(key)?;
                offset = found.span().map(|s| s.start).or(offset);
                Node::Item(item)
            }
            Segment::Seq { index } => match node {
                Node::Item(toml_edit::Item::ArrayOfTables(tables)) => {
                    let table = tables.get(*index)?;
                    offset = table.span().map(|s| s.start).or(offset);
                    Node::Table(table)
                }
                Node::Item(toml_edit::Item::Value(toml_edit::Value::Array(items)))
                | Node::Value(toml_edit::Value::Array(items)) => {
                    let value = items.get(*index)?;
                    offset = value.span().map(|s| s.start).or(offset);
                    Node::Value(value)
                }
                _ => return offset,
            },
            _ => return offset,
        };
    }
    offset
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(0, |before| before.matches('\n').count())
        + 1
}

/// The value at `path` in `document`, if there is one.
fn value_at<'a>(
    document: &'a toml::Value,
    path: &[serde_path_to_error::Segment],
) -> Option<&'a toml::Value> {
    use serde_path_to_error::Segment;
    path.iter()
        .try_fold(document, |value, segment| match (segment, value) {
            (Segment::Map { key }, toml::Value::Table(table)) => table.get(key),
            (Segment::Seq { index }, toml::Value::Array(items)) => items.get(*index),
            _ => None,
        })
}

/// Takes the value at `path` out of `document`; false when there is none
/// (the fault is the document as a whole).
fn remove_path(document: &mut toml::Value, path: &[serde_path_to_error::Segment]) -> bool {
    use serde_path_to_error::Segment;
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut value = document;
    for segment in parents {
        let next = match (segment, value) {
            (Segment::Map { key }, toml::Value::Table(table)) => table.get_mut(key),
            (Segment::Seq { index }, toml::Value::Array(items)) => items.get_mut(*index),
            _ => None,
        };
        match next {
            Some(next) => value = next,
            None => return false,
        }
    }
    match (last, value) {
        (Segment::Map { key }, toml::Value::Table(table)) => table.remove(key).is_some(),
        (Segment::Seq { index }, toml::Value::Array(items)) if *index < items.len() => {
            items.remove(*index);
            true
        }
        _ => false,
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
        ("limits.max_connections", limits.max_connections),
        ("limits.batch_size", limits.batch_size),
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
    for (key, secs) in [
        (
            "limits.header_read_timeout_secs",
            limits.header_read_timeout_secs,
        ),
        ("limits.keep_alive_idle_secs", limits.keep_alive_idle_secs),
        (
            "limits.body_progress_timeout_secs",
            limits.body_progress_timeout_secs,
        ),
        ("limits.body_timeout_secs", limits.body_timeout_secs),
    ] {
        if secs == Some(0) {
            problems.push(problem(key, "must be at least 1 (seconds)"));
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
            matches!(&config, Err(ConfigError::Invalid { problems, .. }) if problems.iter().any(|p| p.key == "kafka.compression" && p.message.contains("lz4"))),
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
            [dashboard]
            secure_cookie = true
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
            ("IDFOLD_DASHBOARD_SECURE_COOKIE", "true"),
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
    fn connection_limits_map_to_their_variables_and_zero_is_a_problem() -> Result<(), ConfigError> {
        let config = parse(
            r#"
            [limits]
            max_connections = 300
            header_read_timeout_secs = 5
            keep_alive_idle_secs = 0
            body_progress_timeout_secs = 7
            body_timeout_secs = 20
            "#,
        )?;
        let env = config.environment();
        for (name, value) in [
            ("IDFOLD_MAX_CONNECTIONS", "300"),
            ("IDFOLD_HEADER_READ_TIMEOUT_SECS", "5"),
            ("IDFOLD_BODY_PROGRESS_TIMEOUT_SECS", "7"),
            ("IDFOLD_BODY_TIMEOUT_SECS", "20"),
        ] {
            assert!(
                env.iter().any(|(n, v)| *n == name && v == value),
                "{name} in {env:?}"
            );
        }
        let keys: Vec<String> = config.check().into_iter().map(|p| p.key).collect();
        assert_eq!(keys, vec!["limits.keep_alive_idle_secs".to_owned()]);
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
            text.contains("`lisen`: unknown field") && text.contains("`listen`"),
            "{text}"
        );
    }
}

#[cfg(test)]
mod every_problem {
    use super::*;

    fn keys(text: &str) -> Vec<String> {
        match IdfoldConfig::parse(text) {
            Ok((config, problems)) => problems
                .into_iter()
                .chain(config.check())
                .map(|p| p.key)
                .collect(),
            Err(detail) => vec![format!("syntax: {detail}")],
        }
    }

    #[test]
    fn every_type_error_and_unknown_key_is_reported_with_the_value_problems() {
        let found = keys(
            r#"
            listen = 8088
            lisen = "127.0.0.1:1"
            metrics_addr = "nowhere"
            [log]
            format = "yaml"
            [limits]
            batch_size = "many"
            write_queue = 0
            lock_wait_secs = -1
            [kafka]
            bootstrap = "k1:9092"
            partitions = "six"
            [[workspaces]]
            id = 7
            "#,
        );
        for key in [
            "listen",
            "lisen",
            "metrics_addr",
            "log.format",
            "limits.batch_size",
            "limits.write_queue",
            "limits.lock_wait_secs",
            "kafka.partitions",
            "workspaces[0].id",
        ] {
            assert!(
                found.iter().any(|k| k == key),
                "{key} among the problems {found:?}"
            );
        }
    }

    #[test]
    fn each_problem_of_shape_names_its_line() -> Result<(), String> {
        let (_, problems) = IdfoldConfig::parse(
            "data = \"d\"\nlisen = 1\n\n[limits]\nbatch_size = \"x\"\n[[workspaces]]\nid = \"a\"\n[[workspaces]]\nid = 7\nwrite_keys = [\"k0123456789abcdef\", 5]\n",
        )?;
        let lines: Vec<(&str, bool)> = problems
            .iter()
            .map(|p| {
                let line = match p.key.as_str() {
                    "lisen" => "(line 2)",
                    "limits.batch_size" => "(line 5)",
                    "workspaces[1].id" => "(line 9)",
                    "workspaces[1].write_keys[1]" => "(line 10)",
                    _ => "(no line expected)",
                };
                (p.key.as_str(), p.message.ends_with(line))
            })
            .collect();
        assert_eq!(lines.len(), 4, "{problems:?}");
        assert!(lines.iter().all(|(_, ok)| *ok), "{problems:?}");
        Ok(())
    }

    #[test]
    fn the_values_around_a_wrong_one_are_kept() -> Result<(), String> {
        let (config, problems) = IdfoldConfig::parse(
            "data = \"/srv/idfold\"\n[limits]\nbatch_size = true\nwrite_queue = 9\n",
        )?;
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(config.data, Some(PathBuf::from("/srv/idfold")));
        assert_eq!(config.limits.write_queue, Some(9));
        assert_eq!(config.limits.batch_size, None);
        Ok(())
    }

    #[test]
    fn the_memory_budget_is_a_size_and_becomes_its_variable() -> Result<(), String> {
        let (config, problems) = IdfoldConfig::parse("[fold]\nmemory_budget = \"64MiB\"\n")?;
        assert_eq!(problems, vec![]);
        assert_eq!(config.check(), vec![]);
        assert_eq!(
            config.fold.memory_budget.map(MemoryBudget::bytes),
            Some(64 * 1024 * 1024)
        );
        assert!(config
            .environment()
            .contains(&("IDFOLD_FOLD_MEMORY_BUDGET", "64MiB".to_owned())));

        let (config, problems) =
            IdfoldConfig::parse("[limits]\nbatch_size = 9\n[fold]\nmemory_budget = \"3\"\n")?;
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "fold.memory_budget");
        assert!(
            problems[0].message.contains("at least 16MiB")
                && problems[0].message.ends_with("(line 4)"),
            "{problems:?}"
        );
        assert_eq!(config.limits.batch_size, Some(9));
        assert_eq!(config.fold.memory_budget, None);
        Ok(())
    }

    #[test]
    fn a_retired_key_is_refused_naming_its_replacement() -> Result<(), String> {
        let (config, problems) = IdfoldConfig::parse(
            "[limits]\nbatch_size = 9\nmax_resident_events = 5000\n[fold]\nmemory_budget = \"1GiB\"\n",
        )?;
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "limits.max_resident_events");
        assert!(
            problems[0].message.contains("`fold.memory_budget`")
                && problems[0].message.contains("IDFOLD_FOLD_MEMORY_BUDGET")
                && problems[0].message.ends_with("(line 3)"),
            "{problems:?}"
        );
        // The rest of the file is read as usual.
        assert_eq!(config.limits.batch_size, Some(9));
        assert_eq!(
            config.fold.memory_budget.map(MemoryBudget::bytes),
            Some(1 << 30)
        );
        // Whatever its type: it is the key that is retired.
        let (_, problems) = IdfoldConfig::parse("[limits]\nmax_resident_events = \"x\"\n")?;
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, vec!["limits.max_resident_events"]);
        Ok(())
    }

    #[test]
    fn a_syntax_error_still_points_at_its_line() {
        let found = keys("data = \"a\"\nlisten = \n");
        assert!(
            found.len() == 1 && found[0].starts_with("syntax") && found[0].contains("line 2"),
            "{found:?}"
        );
    }

    #[test]
    fn a_secret_of_the_wrong_type_is_not_quoted() {
        let problems = match IdfoldConfig::parse(
            "[[workspaces]]\nid = \"acme\"\nwrite_keys = \"wk_secret_0123456789\"\n",
        ) {
            Ok((_, problems)) => problems,
            Err(detail) => panic!("parses: {detail}"),
        };
        assert!(!problems.is_empty());
        let text: String = problems.iter().map(ToString::to_string).collect();
        assert!(!text.contains("wk_secret"), "{text}");
    }
}
