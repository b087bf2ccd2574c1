//! Topic set-up as code: create what is missing, check what exists.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_executor::block_on;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::types::RDKafkaErrorCode;

use crate::error::KafkaStageError;
use crate::settings::KafkaSettings;
use crate::waiting::QuietContext;
use crate::watermarks::{unreachable, REQUEST_TIMEOUT};

/// A week: raw topics are inputs, kept long enough to re-drive the
/// producer stage; the canonical log keeps everything.
const RAW_RETENTION_MS: &str = "604800000";
/// Attempts (200 ms apart) to read the configuration of new topics.
const CONFIG_WAIT_ATTEMPTS: usize = 25;

/// What `ensure_topics` found or did for one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicCheck {
    pub topic: String,
    /// `canonical log`, `dead letters` or `raw input`.
    pub role: &'static str,
    pub created: bool,
    pub partitions: usize,
    /// Settings that break a guarantee, each with what to do about it.
    pub problems: Vec<String>,
    /// Differences that are allowed but worth knowing.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// A source of truth: never deleted, never compacted.
    Kept,
    Raw,
    /// A view keyed by what it describes: the latest record per key.
    Compacted,
}

/// Creates the raw topics, the canonical log and the dead-letter topic
/// where missing, and checks the ones that exist instead of failing on them.
pub fn ensure_topics(settings: &KafkaSettings) -> Result<Vec<TopicCheck>, KafkaStageError> {
    let admin: AdminClient<QuietContext> = settings
        .client()
        .create_with_context(QuietContext(&crate::waiting::ADMIN))?;
    let metadata = admin
        .inner()
        .fetch_metadata(None, REQUEST_TIMEOUT)
        .map_err(|e| unreachable(&settings.bootstrap, &e))?;
    let existing: BTreeMap<String, usize> = metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| (t.name().to_owned(), t.partitions().len()))
        .collect();

    let mut wanted: Vec<(String, &'static str, Role)> = vec![
        (settings.topics.events.clone(), "canonical log", Role::Kept),
        (
            settings.topics.dead_letters.clone(),
            "dead letters",
            Role::Kept,
        ),
    ];
    for raw in &settings.topics.raw {
        if !wanted.iter().any(|(t, _, _)| t == raw) {
            wanted.push((raw.clone(), "raw input", Role::Raw));
        }
    }
    wanted.push((settings.topics.mau.clone(), "MAU rows", Role::Compacted));
    wanted.push((
        settings.topics.profiles.clone(),
        "profile changes",
        Role::Compacted,
    ));
    wanted.push((
        settings.topics.instances.clone(),
        "instances",
        Role::Compacted,
    ));

    let options = AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT));
    let partitions = settings.partitions.max(1);
    let new_topics: Vec<NewTopic<'_>> = wanted
        .iter()
        .filter(|(t, _, _)| !existing.contains_key(t))
        .map(|(topic, _, role)| {
            // -1: the broker's default.replication.factor.
            let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(-1));
            match role {
                Role::Kept => new
                    .set("retention.ms", "-1")
                    .set("retention.bytes", "-1")
                    .set("cleanup.policy", "delete"),
                Role::Raw => new.set("retention.ms", RAW_RETENTION_MS),
                Role::Compacted => new.set("cleanup.policy", "compact"),
            }
        })
        .collect();
    let mut created = Vec::new();
    if !new_topics.is_empty() {
        for result in block_on(admin.create_topics(&new_topics, &options))? {
            match result {
                Ok(topic) => created.push(topic),
                // Another instance created it in between: check it below.
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(KafkaStageError::TopicSetup {
                        topic,
                        problem: format!("cannot create it: {code}"),
                    })
                }
            }
        }
    }

    let specifiers: Vec<ResourceSpecifier<'_>> = wanted
        .iter()
        .map(|(t, _, _)| ResourceSpecifier::Topic(t))
        .collect();
    // A topic created a moment ago may not show its configuration yet.
    let mut configs = block_on(admin.describe_configs(&specifiers, &options))?;
    for _ in 0..CONFIG_WAIT_ATTEMPTS {
        let settled = configs.iter().all(|c| {
            c.as_ref()
                .is_ok_and(|c| c.get("retention.ms").is_some_and(|e| e.value.is_some()))
        });
        if settled {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        configs = block_on(admin.describe_configs(&specifiers, &options))?;
    }
    let mut checks = Vec::new();
    for ((topic, role_name, role), config) in wanted.iter().zip(configs) {
        let config = config.map_err(|code| KafkaStageError::TopicSetup {
            topic: topic.clone(),
            problem: format!("cannot read its configuration: {code}"),
        })?;
        let setting = |name: &str| {
            config
                .get(name)
                .and_then(|e| e.value.clone())
                .unwrap_or_else(|| "unknown".to_owned())
        };
        let is_new = created.contains(topic);
        let count = existing.get(topic).copied().unwrap_or(partitions as usize);
        let mut check = TopicCheck {
            topic: topic.clone(),
            role: role_name,
            created: is_new,
            partitions: count,
            problems: Vec::new(),
            notes: Vec::new(),
        };
        if *role == Role::Kept {
            for (name, want) in [("retention.ms", "-1"), ("retention.bytes", "-1")] {
                let value = setting(name);
                if value != want {
                    check.problems.push(format!(
                        "{name} is {value}: the {role_name} is a source of truth and must keep \
                         everything; set {name}={want} (kafka-configs.sh --alter --entity-type \
                         topics --entity-name {topic} --add-config {name}={want})"
                    ));
                }
            }
            let policy = setting("cleanup.policy");
            if policy.split(',').any(|p| p.trim() == "compact") {
                check.problems.push(format!(
                    "cleanup.policy is {policy}: compaction keeps one record per key and the \
                     key is the workspace, so it would delete events; set cleanup.policy=delete"
                ));
            }
        }
        if *role == Role::Compacted {
            let policy = setting("cleanup.policy");
            if !policy.split(',').any(|p| p.trim() == "compact") {
                check.notes.push(format!(
                    "cleanup.policy is {policy}: it keeps every change, not the latest per key; \
                     set cleanup.policy=compact to keep it small"
                ));
            }
        }
        if !is_new
            && *role == Role::Kept
            && topic == &settings.topics.events
            && count != partitions as usize
        {
            check.notes.push(format!(
                "has {count} partitions ({partitions} asked): idfold uses what is there. Never \
                 add partitions once it holds events: a workspace's events must stay in one \
                 partition"
            ));
        }
        checks.push(check);
    }
    Ok(checks)
}
