//! Kafka for process-level tests: the broker `deploy/kafka.sh` started
//! (`IDFOLD_TEST_KAFKA`), a set of topics with a random prefix deleted on
//! drop, a broker of a test's own, and the Python client that is not idfold.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use futures_executor::block_on;
use rand::Rng;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;

use super::{Idfold, BIN};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The shared test broker, which `tests/run.sh` (through `deploy/kafka.sh
/// with`) starts and names in `IDFOLD_TEST_KAFKA`. Without one a Kafka test
/// fails, in CI and out of it: it never passes by skipping.
pub fn test_broker() -> String {
    match std::env::var("IDFOLD_TEST_KAFKA") {
        Ok(bootstrap) if !bootstrap.trim().is_empty() => bootstrap,
        _ => panic!(
            "no Kafka broker: IDFOLD_TEST_KAFKA is not set. Run every test with \
             `tests/run.sh` (it starts a real broker), or start one with \
             `deploy/kafka.sh start` and set IDFOLD_TEST_KAFKA=127.0.0.1:19092"
        ),
    }
}

/// idfold's topics under a random prefix on `bootstrap`, created with
/// `idfold topics`; deleted, with the consumer groups, on drop.
pub struct KafkaTopics {
    pub bootstrap: String,
    pub prefix: String,
}

impl KafkaTopics {
    pub fn create(bootstrap: &str, partitions: u32) -> KafkaTopics {
        let prefix = format!("test-{:016x}", rand::thread_rng().gen::<u64>());
        let topics = KafkaTopics {
            bootstrap: bootstrap.to_owned(),
            prefix,
        };
        topics.create_topics(partitions);
        topics
    }

    /// `--kafka B --topic-prefix P --kafka-session-timeout 6`: a killed
    /// member's partitions move after 6 s (the broker's minimum).
    pub fn args(&self) -> Vec<String> {
        [
            "--kafka",
            &self.bootstrap,
            "--topic-prefix",
            &self.prefix,
            "--kafka-session-timeout",
            "6",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    pub fn events_topic(&self) -> String {
        format!("{}.events", self.prefix)
    }

    pub fn dead_letter_topic(&self) -> String {
        format!("{}.dead-letters", self.prefix)
    }

    /// Publishes NDJSON events to the raw topics with the Python client:
    /// `json` lines as they are, `avro` lines as Avro single objects
    /// (fastavro), plus three bad records when `bad`.
    pub fn publish_raw(
        &self,
        json: Option<&Path>,
        avro: Option<&Path>,
        bad: bool,
    ) -> serde_json::Value {
        let mut cmd = python_client();
        cmd.args(["publish", &self.bootstrap, &self.prefix]);
        if let Some(path) = json {
            cmd.arg("--json").arg(path);
        }
        if let Some(path) = avro {
            cmd.arg("--avro").arg(path);
        }
        if bad {
            cmd.arg("--bad");
        }
        parse_json(&checked(cmd))
    }

    /// The dead-letter topic read back by the Python client.
    pub fn read_dead_letters(&self, count: usize) -> serde_json::Value {
        let mut cmd = python_client();
        cmd.args([
            "dead-letters",
            &self.bootstrap,
            &self.dead_letter_topic(),
            &count.to_string(),
        ]);
        parse_json(&checked(cmd))
    }
}

impl KafkaTopics {
    /// The latest value per key of a compacted topic (`mau`, `profiles`),
    /// read by the Python client: key -> JSON value, null for a tombstone.
    pub fn read_latest(&self, suffix: &str) -> serde_json::Map<String, serde_json::Value> {
        let mut cmd = python_client();
        cmd.args([
            "latest",
            &self.bootstrap,
            &format!("{}.{suffix}", self.prefix),
        ]);
        match parse_json(&checked(cmd)) {
            serde_json::Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    /// A consumer group's members (`fold` or `producer`), as the Python
    /// client's admin API describes them.
    pub fn group_members(&self, stage: &str) -> serde_json::Value {
        let mut cmd = python_client();
        cmd.args([
            "group-members",
            &self.bootstrap,
            &format!("{}-{stage}", self.prefix),
        ]);
        parse_json(&checked(cmd))
    }

    fn topic_names(&self) -> Vec<String> {
        [
            "events",
            "dead-letters",
            "mau",
            "profiles",
            "raw.identify",
            "raw.traits",
            "raw.track",
            "raw.survey",
        ]
        .iter()
        .map(|t| format!("{}.{t}", self.prefix))
        .collect()
    }

    fn delete_all(&self) {
        let Ok(admin) = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .create::<AdminClient<DefaultClientContext>>()
        else {
            return;
        };
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let topics = self.topic_names();
        let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
        let _ = block_on(admin.delete_topics(&topic_refs, &options));
        let p = &self.prefix;
        let groups = [format!("{p}-producer"), format!("{p}-fold")];
        let group_refs: Vec<&str> = groups.iter().map(String::as_str).collect();
        let _ = block_on(admin.delete_groups(&group_refs, &options));
    }

    /// Deletes the topics and creates them again, empty (an operator's
    /// mistake the fold must notice).
    pub fn recreate(&self, partitions: u32) {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        self.delete_all();
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .create()
            .expect("a client");
        let names = self.topic_names();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let metadata = consumer
                .fetch_metadata(None, Duration::from_secs(10))
                .expect("metadata");
            if !metadata
                .topics()
                .iter()
                .any(|t| names.iter().any(|n| n == t.name()))
            {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "topics were not deleted"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        self.create_topics(partitions);
    }

    /// `idfold topics` for this prefix.
    fn create_topics(&self, partitions: u32) {
        let out = Command::new(BIN)
            .arg("topics")
            .args(self.args())
            .args(["--kafka-partitions", &partitions.to_string()])
            .output()
            .expect("idfold topics runs");
        assert!(
            out.status.success(),
            "idfold topics failed (is the broker at {} up?): {}{}",
            self.bootstrap,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for KafkaTopics {
    fn drop(&mut self) {
        self.delete_all();
    }
}

/// A broker of the test's own (to stop and start it), on `port` with its
/// data in a temporary directory; stopped and deleted on drop.
pub struct OwnBroker {
    pub port: u16,
    home: tempfile::TempDir,
}

impl OwnBroker {
    pub fn start(port: u16) -> OwnBroker {
        let broker = OwnBroker {
            port,
            home: tempfile::tempdir().expect("a temporary directory"),
        };
        broker.script("start");
        broker
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn script(&self, action: &str) {
        let mut cmd = Command::new(repo().join("deploy/kafka.sh"));
        cmd.arg(action)
            .env("KAFKA_PORT", self.port.to_string())
            .env("KAFKA_HOME", self.home.path());
        checked(cmd);
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("deploy/kafka.sh"))
            .arg("stop")
            .env("KAFKA_PORT", self.port.to_string())
            .env("KAFKA_HOME", self.home.path())
            .output();
    }
}

fn python_client() -> Command {
    let mut cmd = Command::new("python3");
    cmd.arg(repo().join("tests/clients/kafka_client.py"));
    cmd
}

fn checked(mut cmd: Command) -> Output {
    let out = cmd.output().expect("the command runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn parse_json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

/// Splits an NDJSON file in two at line `at`: (first part, rest).
pub fn split_lines(path: &Path, at: usize) -> (PathBuf, PathBuf) {
    let text = std::fs::read_to_string(path).expect("readable");
    let lines: Vec<&str> = text.lines().collect();
    let dir = path.parent().expect("a parent directory");
    let (first, rest) = (dir.join("first.ndjson"), dir.join("rest.ndjson"));
    std::fs::write(&first, lines[..at].join("\n") + "\n").expect("written");
    std::fs::write(&rest, lines[at..].join("\n") + "\n").expect("written");
    (first, rest)
}

/// The message_ids of every record in the canonical log `topic`, read from
/// each partition's start to its end with a consumer of the test's own.
pub fn read_canonical_message_ids(
    bootstrap: &str,
    topic: &str,
) -> std::collections::BTreeSet<String> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    use rdkafka::{Offset, TopicPartitionList};
    let timeout = Duration::from_secs(10);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "idfold-test-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("a consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .expect("topic metadata");
    let partitions: Vec<i32> = metadata.topics()[0]
        .partitions()
        .iter()
        .map(|p| p.id())
        .collect();
    let mut remaining = std::collections::BTreeMap::new();
    let mut assignment = TopicPartitionList::new();
    for p in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, timeout)
            .expect("watermarks");
        if high > low {
            remaining.insert(p, high);
            assignment
                .add_partition_offset(topic, p, Offset::Beginning)
                .expect("assignable");
        }
    }
    consumer.assign(&assignment).expect("assigned");
    let mut ids = std::collections::BTreeSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !remaining.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "could not read {topic} to its end: {remaining:?} left"
        );
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let message = message.expect("a record");
        let payload = message.payload().expect("a payload");
        let event = idfold_events::decode_avro(payload).expect("a canonical event");
        ids.insert(event.message_id);
        if remaining
            .get(&message.partition())
            .is_some_and(|high| message.offset() + 1 >= *high)
        {
            remaining.remove(&message.partition());
        }
    }
    ids
}

/// `idfold <sub> <the topics' Kafka args> <extra>`, asserting exit 0:
/// (stdout, stderr).
pub fn on_kafka(
    idfold: &Idfold,
    topics: &KafkaTopics,
    sub: &str,
    extra: &[&str],
) -> (String, String) {
    let kafka = topics.args();
    let mut args: Vec<&str> = kafka.iter().map(String::as_str).collect();
    args.extend_from_slice(extra);
    let out = idfold.run(sub, &args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "idfold {sub} {args:?} failed: {stderr}"
    );
    (String::from_utf8(out.stdout).expect("UTF-8"), stderr)
}
