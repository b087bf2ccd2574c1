//! The pipeline on a real Apache Kafka broker (`deploy/kafka.sh`): the same
//! projection as the embedded log, from idfold's own producer and from a
//! client that is not idfold, dead letters with their reasons, and no loss
//! or double count across SIGKILL and a broker restart.

mod harness;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use harness::kafka::{on_kafka, split_lines, test_broker, KafkaTopics, OwnBroker};
use harness::{fixture, generated_workload, Idfold};
use rand::Rng;

/// `idfold <sub> --data DIR <kafka args> <extra>`, asserting success;
/// returns (stdout, stderr).
fn spawn_on_kafka(idfold: &Idfold, topics: &KafkaTopics, extra: &[&str], log: Stdio) -> Child {
    let kafka = topics.args();
    let mut args: Vec<&str> = kafka.iter().map(String::as_str).collect();
    args.extend_from_slice(extra);
    idfold
        .command("run", &args)
        .env("IDFOLD_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("idfold run starts")
}

/// `ingest --kafka FILE` straight to the canonical log, then the fold stage
/// until idle; returns the fold's stderr.
fn ingest_and_fold(idfold: &Idfold, topics: &KafkaTopics, file: &std::path::Path) -> String {
    on_kafka(
        idfold,
        topics,
        "ingest",
        &[file.to_str().unwrap_or_default()],
    );
    on_kafka(idfold, topics, "run", &["--until-idle", "--stages", "fold"]).1
}

/// The export of a clean embedded ingest and fold of `files`.
fn embedded_export(files: &[&std::path::Path]) -> String {
    let idfold = Idfold::new();
    for file in files {
        idfold.ingest(file);
    }
    idfold.fold()
}

/// "moved N raw records: A accepted, R rejected" -> (N, A, R).
fn moved(stderr: &str) -> (u64, u64, u64) {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("moved "))
        .unwrap_or_else(|| panic!("no `moved` line in: {stderr}"));
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    (numbers[0], numbers[1], numbers[2])
}

fn folded(stderr: &str) -> u64 {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("folded "))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `folded` line in: {stderr}"))
}

#[test]
fn an_event_file_exports_the_same_through_kafka_as_through_the_embedded_log() {
    let bootstrap = test_broker();
    let (_w, workload) = generated_workload(3_000, 11);
    let sample = fixture("sample.ndjson");
    let expected = embedded_export(&[&sample, &workload]);

    let topics = KafkaTopics::create(&bootstrap, 3);
    let idfold = Idfold::new();
    let (counts, _) = on_kafka(
        &idfold,
        &topics,
        "ingest",
        &["--json", sample.to_str().unwrap_or_default()],
    );
    assert_eq!(counts.trim(), r#"{"accepted":19,"rejected":3}"#);
    let stderr = ingest_and_fold(&idfold, &topics, &workload);
    assert_eq!(idfold.export(), expected, "{stderr}");

    // A replay changes nothing: the same events again (a re-delivery),
    // folded again, give the same projection.
    let stderr = ingest_and_fold(&idfold, &topics, &workload);
    assert_eq!(folded(&stderr), 0, "{stderr}");
    assert_eq!(idfold.export(), expected);

    // The rejected lines went to the dead-letter topic, with their reasons.
    let letters = topics.read_dead_letters(3);
    let reasons: Vec<&str> = letters
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|l| l["headers"]["idfold.reason"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(reasons.len(), 3, "{letters}");
    assert!(
        letters[0]["headers"]["idfold.source.line"].is_string(),
        "{letters}"
    );

    // A rebuild refolds the canonical log from its start to the same state.
    let (_, stderr) = on_kafka(&idfold, &topics, "rebuild", &[]);
    assert!(stderr.contains("rebuilt from"), "{stderr}");
    assert_eq!(idfold.export(), expected);

    // The compacted topics hold the export's MAU rows and identified
    // profiles, latest value per key, for any Kafka client to read.
    let mut rows = serde_json::Map::new();
    let mut profiles = serde_json::Map::new();
    for (record, workspace, value) in harness::export_records(&expected) {
        if record == "mau" {
            let month = value["month"].as_str().unwrap_or_default().to_owned();
            rows.insert(format!("{workspace}/{month}"), value);
        } else if !value["id"]
            .as_str()
            .unwrap_or_default()
            .starts_with("anonymous:")
        {
            let id = value["id"].as_str().unwrap_or_default().to_owned();
            profiles.insert(format!("{workspace}/{id}"), value);
        }
    }
    assert_eq!(topics.read_latest("mau"), rows);
    let published: serde_json::Map<String, serde_json::Value> = topics
        .read_latest("profiles")
        .into_iter()
        .filter(|(_, v)| !v.is_null())
        .collect();
    assert_eq!(published.len(), profiles.len());
    assert_eq!(published, profiles);
}

#[test]
fn json_and_avro_from_a_client_that_is_not_idfold_are_folded_and_bad_records_dead_lettered() {
    let bootstrap = test_broker();
    let (_w, workload) = generated_workload(2_000, 12);
    let expected = embedded_export(&[&workload]);
    let (json_half, avro_half) = split_lines(&workload, 1_000);

    let topics = KafkaTopics::create(&bootstrap, 3);
    let published = topics.publish_raw(Some(&json_half), Some(&avro_half), true);
    assert_eq!(published["published"], 2_003);
    let idfold = Idfold::new();
    let (_, stderr) = on_kafka(&idfold, &topics, "run", &["--until-idle"]);
    // accepted + rejected = consumed, and nothing else was consumed.
    assert_eq!(moved(&stderr), (2_003, 2_000, 3), "{stderr}");
    assert_eq!(idfold.export(), expected);

    let letters = topics.read_dead_letters(3);
    let mut reasons: Vec<String> = letters
        .as_array()
        .map(|a| {
            a.iter()
                .map(|l| {
                    l["headers"]["idfold.reason"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned()
                })
                .collect()
        })
        .unwrap_or_default();
    reasons.sort();
    assert_eq!(
        reasons,
        ["invalid_json", "missing_field", "unknown_schema"],
        "{letters}"
    );
    for letter in letters.as_array().into_iter().flatten() {
        let headers = &letter["headers"];
        let source = headers["idfold.source"].as_str().unwrap_or("");
        assert!(
            source.starts_with(&format!("{}.raw.", topics.prefix)),
            "{letter}"
        );
        assert!(headers["idfold.source.partition"].is_string(), "{letter}");
        assert!(headers["idfold.source.offset"].is_string(), "{letter}");
        assert!(headers["idfold.message"].is_string(), "{letter}");
    }
    // The original bytes are kept.
    assert!(letters
        .as_array()
        .into_iter()
        .flatten()
        .any(|l| l["value"] == "this is not json"));
    // idfold's own reader of the topic agrees.
    let (listed, _) = on_kafka(&idfold, &topics, "dlq", &["--json"]);
    let listed: serde_json::Value = serde_json::from_str(&listed).expect("JSON");
    assert_eq!(listed.as_array().map(Vec::len), Some(3), "{listed}");
}

#[test]
fn sigkill_mid_stream_then_a_restart_gives_the_export_of_a_clean_run() {
    let bootstrap = test_broker();
    let (_w, workload) = generated_workload(40_000, 13);
    let expected = embedded_export(&[&workload]);
    let topics = KafkaTopics::create(&bootstrap, 3);
    topics.publish_raw(Some(&workload), None, false);

    let idfold = Idfold::new();
    let mut rng = rand::thread_rng();
    for _ in 0..4 {
        let mut child = spawn_on_kafka(&idfold, &topics, &["--batch-size", "500"], Stdio::null());
        std::thread::sleep(Duration::from_millis(rng.gen_range(1_500..4_000)));
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
    }
    let (_, stderr) = on_kafka(&idfold, &topics, "run", &["--until-idle"]);
    let (consumed, _, _) = moved(&stderr);
    assert!(
        consumed > 0 || folded(&stderr) > 0,
        "every kill came after the work was done; the test showed nothing: {stderr}"
    );
    assert_eq!(idfold.export(), expected);
}

#[test]
fn the_pipeline_waits_out_a_broker_restart_and_loses_nothing() {
    // Its own broker, since it stops it; without the shared one (no
    // tests/run.sh) it fails like the others.
    test_broker();
    let broker = OwnBroker::start(19_292);
    let (_w, workload) = generated_workload(30_000, 14);
    let expected = embedded_export(&[&workload]);
    let (before, after) = split_lines(&workload, 20_000);
    let topics = KafkaTopics::create(&broker.bootstrap(), 3);
    topics.publish_raw(Some(&before), None, false);

    let idfold = Idfold::new();
    let log_path = idfold.data().with_extension("log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut follower = spawn_on_kafka(
        &idfold,
        &topics,
        &["--batch-size", "1000"],
        Stdio::from(log),
    );
    std::thread::sleep(Duration::from_secs(2));

    broker.script("stop");
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        follower.try_wait().expect("status").is_none(),
        "idfold exited while the broker was down"
    );
    let mark = std::fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0);
    broker.script("start");
    topics.publish_raw(Some(&after), None, false);

    // It resumes by itself: folding shows up in its log after the restart.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let text = std::fs::read(&log_path).unwrap_or_default();
        let since =
            String::from_utf8_lossy(text.get(mark as usize..).unwrap_or_default()).into_owned();
        if since.contains("folded") && since.contains("raw records moved") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no progress after the broker came back: {since}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let pid = follower.id().to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    let status = follower.wait().expect("reaped");
    assert!(status.success(), "SIGTERM should stop it cleanly: {status}");

    on_kafka(&idfold, &topics, "run", &["--until-idle"]);
    assert_eq!(idfold.export(), expected);
    let log = std::fs::File::open(&log_path).expect("log");
    let warned = BufReader::new(log)
        .lines()
        .map_while(Result::ok)
        .any(|l| l.contains("waiting for the broker") || l.contains("writing it again"));
    assert!(warned, "the outage should have been noticed in the log");
}

#[test]
fn an_unreachable_broker_is_an_error_that_says_what_to_do() {
    let idfold = Idfold::new();
    let started = Instant::now();
    let out = Command::new(harness::BIN)
        .args(["topics", "--kafka", "127.0.0.1:9"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot reach Kafka at 127.0.0.1:9"),
        "{stderr}"
    );
    assert!(stderr.contains("deploy/kafka.sh start"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(30));
    let out = idfold.run("run", &["--kafka", "127.0.0.1:9", "--until-idle"]);
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn a_canonical_log_recreated_behind_the_fold_s_position_stops_it_with_what_to_do() {
    let topics = KafkaTopics::create(&test_broker(), 1);
    let idfold = Idfold::new();
    let (_dir, workload) = generated_workload(300, 11);
    ingest_and_fold(&idfold, &topics, &workload);
    // The topic is recreated and gets fewer records than were folded.
    topics.recreate(1);
    on_kafka(
        &idfold,
        &topics,
        "ingest",
        &[fixture("sample.ndjson").to_str().unwrap_or_default()],
    );
    let kafka = topics.args();
    let mut args: Vec<&str> = kafka.iter().map(String::as_str).collect();
    args.extend(["--until-idle", "--stages", "fold"]);
    let out = idfold.run("run", &args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("no longer holds the offset") && stderr.contains("idfold rebuild --kafka"),
        "{stderr}"
    );
    // The fix it names works: the projection is then the recreated log's.
    on_kafka(&idfold, &topics, "rebuild", &[]);
    assert_eq!(
        idfold.export(),
        embedded_export(&[&fixture("sample.ndjson")])
    );
}

#[test]
fn a_rebuild_that_cannot_reach_the_broker_leaves_the_state_as_it_was() {
    let topics = KafkaTopics::create(&test_broker(), 2);
    let idfold = Idfold::new();
    ingest_and_fold(&idfold, &topics, &fixture("sample.ndjson"));
    let before = idfold.export();
    assert!(!before.is_empty());
    // The same topics, on a broker that does not answer.
    let args = [
        "--kafka",
        "127.0.0.1:9",
        "--topic-prefix",
        topics.prefix.as_str(),
    ];
    let out = idfold.run("rebuild", &args);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(idfold.export(), before, "nothing was cleared");
}

/// Static membership: with `--instance-id` the fold joins its group under a
/// stable `group.instance.id`, and stays a member when it stops (it does
/// not leave the group, so a restart within the session timeout gets its
/// partitions back without moving anyone else's).
#[test]
fn an_instance_id_makes_the_fold_a_static_member_of_its_group() {
    let topics = KafkaTopics::create(&test_broker(), 3);
    let idfold = Idfold::new();
    let sample = fixture("sample.ndjson");
    on_kafka(
        &idfold,
        &topics,
        "ingest",
        &[sample.to_str().unwrap_or_default()],
    );
    let as_idfold_a = || {
        on_kafka(
            &idfold,
            &topics,
            "run",
            &[
                "--until-idle",
                "--stages",
                "fold",
                "--instance-id",
                "idfold-a",
            ],
        )
        .1
    };
    let stderr = as_idfold_a();
    assert_eq!(folded(&stderr), 18, "{stderr}");
    let group = topics.group_members("fold");
    let members = group["members"].as_array().expect("members");
    assert_eq!(members.len(), 1, "{group}");
    assert_eq!(
        members[0]["group_instance_id"],
        format!("idfold-a-{}-fold", topics.prefix),
        "{group}"
    );
    assert_eq!(members[0]["partitions"], serde_json::json!([0, 1, 2]));
    // Back under the same name at once: it takes its partitions up where its
    // state ends, with nothing new to fold.
    let started = Instant::now();
    let stderr = as_idfold_a();
    assert_eq!(folded(&stderr), 0, "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(30));
}
