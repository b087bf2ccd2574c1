//! The pipeline on a real Apache Kafka broker (`deploy/kafka.sh`): the same
//! projection as the embedded log, from idfold's own producer and from a
//! client that is not idfold, dead letters with their reasons, and no loss
//! or double count across SIGKILL and a broker restart.

mod harness;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use harness::kafka::{on_kafka, split_lines, test_broker, KafkaTopics, OwnBroker};
use harness::{fixture, generated_workload, Idfold};
use idfold_projector::ProfileView;
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
    // profiles, latest value per key, for any Kafka client to read; a
    // profile reads as the typed view every reader of idfold uses.
    let mut rows = serde_json::Map::new();
    let mut profiles = BTreeMap::new();
    for (record, workspace, value) in harness::export_records(&expected) {
        if record == "mau" {
            let month = value["month"].as_str().unwrap_or_default().to_owned();
            rows.insert(format!("{workspace}/{month}"), value);
        } else {
            let profile: ProfileView = serde_json::from_value(value).expect("an exported profile");
            if profile.is_identified() {
                profiles.insert(format!("{workspace}/{}", profile.id), profile);
            }
        }
    }
    assert_eq!(topics.read_latest("mau"), rows);
    let published: BTreeMap<String, ProfileView> = topics
        .read_latest("profiles")
        .into_iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(key, value)| match serde_json::from_value(value) {
            Ok(profile) => (key, profile),
            Err(e) => panic!("{key} is not a profile: {e}"),
        })
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

/// `idfold run --kafka ... --metrics-addr 127.0.0.1:0` following, its
/// stderr kept (printed by any wait that fails), its /metrics read.
struct Follower {
    child: Option<Child>,
    log: std::sync::Arc<std::sync::Mutex<String>>,
    metrics: String,
}

impl Follower {
    fn start(idfold: &Idfold, topics: &KafkaTopics, extra: &[&str]) -> Follower {
        let mut args = vec!["--metrics-addr", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let mut child = spawn_on_kafka(idfold, topics, &args, Stdio::piped());
        let log = harness::collect_stderr(&mut child);
        let mut follower = Follower {
            child: Some(child),
            log,
            metrics: String::new(),
        };
        follower.wait_for_log("metrics on ");
        let address = follower
            .log()
            .lines()
            .find_map(|l| {
                l.split_once("metrics on ")
                    .map(|(_, a)| a.trim().to_owned())
            })
            .expect("the address");
        follower.metrics = address;
        follower
    }

    fn log(&self) -> String {
        harness::collected(&self.log)
    }

    fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// Waits up to three minutes for `done`, failing with the log.
    fn wait(&mut self, what: &str, mut done: impl FnMut(&Follower) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(180);
        while !done(self) {
            assert!(
                self.alive(),
                "idfold run exited waiting for {what}:\n{}",
                self.log()
            );
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn wait_for_log(&mut self, text: &str) {
        self.wait(&format!("`{text}` in the log"), |f| f.log().contains(text));
    }

    /// The sum of a metric's samples (every label set).
    fn metric(&self, name: &str) -> f64 {
        let text =
            harness::http::try_request(&harness::http::agent(), "GET", &self.metrics, &[], b"")
                .map(|r| r.text)
                .unwrap_or_default();
        metric_sum(&text, name)
    }

    /// SIGTERM; exit status and the whole log.
    fn stop(mut self) -> (std::process::ExitStatus, String) {
        let mut child = self.child.take().expect("running");
        let status =
            harness::signal_and_wait(&mut child, "TERM", None, "idfold run", || self.log());
        (status, self.log())
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        harness::kill_and_reap(&mut self.child);
    }
}

/// The sum of every sample of `name` in a Prometheus text exposition.
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Accepted events of an `ingest --json` answer.
fn accepted(stdout: &str) -> f64 {
    let counts: serde_json::Value = serde_json::from_str(stdout).expect("JSON counts");
    counts["accepted"].as_f64().expect("a count")
}

#[test]
fn serve_and_run_started_right_after_topics_fold_everything_they_are_given() {
    let sample = fixture("sample.ndjson");
    let expected = embedded_export(&[&sample]);

    // serve, the moment `idfold topics` returned: leaders of new topics
    // may still be elected, which must not stop it (whether an election
    // is caught depends on timing: on a loaded machine it often is).
    let serve_topics = KafkaTopics::create(&test_broker(), 6);
    let serving = Idfold::new();
    let mut args = serve_topics.args();
    args.extend(["--stages".into(), "fold".into(), "--config".into()]);
    args.push(fixture("serve.toml").to_str().expect("UTF-8").to_owned());
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = harness::http::Server::start(&serving, &arg_refs, &[]);

    // run, likewise, on topics of its own.
    let run_topics = KafkaTopics::create(&test_broker(), 6);
    let following = Idfold::new();
    let mut follower = Follower::start(&following, &run_topics, &["--stages", "fold"]);

    harness::http::send_events(
        &server,
        "acme",
        &harness::fixture_lines("sample.ndjson", "acme"),
    );
    let writer = Idfold::new();
    let (stdout, _) = on_kafka(
        &writer,
        &run_topics,
        "ingest",
        &["--json", sample.to_str().unwrap_or_default()],
    );
    let sent = accepted(&stdout);

    // serve folds what it acknowledged: every acme month as one fold has it.
    for (record, workspace, row) in harness::export_records(&expected) {
        if record != "mau" || workspace != "acme" {
            continue;
        }
        let path = format!(
            "/v1/workspaces/acme/mau?month={}",
            row["month"].as_str().unwrap_or_default()
        );
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let reply = harness::http::call(
                &server,
                "GET",
                &path,
                Some(harness::http::read_token("acme")),
            );
            if reply.status == 200 && reply.body == row {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "serve never folded {path}: {} {}\n{}",
                reply.status,
                reply.text,
                server.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    // A body that is not UTF-8 is dead-lettered on Kafka with the workspace
    // of its key, and `dlq --kafka --json` gives its bytes exactly.
    let garbled = b"{\"type\":\"track\",\"event\":\"\xff\xfe\"}".to_vec();
    let refused = harness::http::post(
        &server.url("/v1/events"),
        &[(
            "Authorization",
            &harness::http::basic(harness::http::write_key("acme")),
        )],
        &garbled,
    );
    assert_eq!(refused.status, 400, "{refused:?}");
    let (letters, _) = on_kafka(&Idfold::new(), &serve_topics, "dlq", &["--json"]);
    let letters: serde_json::Value = serde_json::from_str(&letters).expect("JSON");
    let kept = letters
        .as_array()
        .expect("an array")
        .iter()
        .find(|l| l["headers"]["idfold.workspace"] == "acme" && l.get("raw_base64").is_some())
        .unwrap_or_else(|| panic!("no dead letter of acme in base64: {letters}"));
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(kept["raw_base64"].as_str().expect("a string"))
        .expect("base64");
    assert_eq!(raw, garbled);

    // run folds everything, and says when each partition caught up.
    follower.wait("every event folded", |f| {
        f.metric("idfold_events_folded_total") + f.metric("idfold_events_duplicate_total") >= sent
    });
    follower.wait_for_log("caught up");
    follower.wait("every partition caught up", |f| {
        f.metric("idfold_fold_partition_caught_up") >= 6.0
    });
    let (status, log) = follower.stop();
    assert!(
        status.success(),
        "run stops cleanly on SIGTERM: {status}\n{log}"
    );
    assert_eq!(following.export(), expected, "{log}");
    let (status, log) = server.stop();
    assert!(
        status.success(),
        "serve stops cleanly on SIGTERM: {status}\n{log}"
    );
}

#[test]
fn serve_as_a_static_member_waits_out_a_broker_restart_under_load_and_folds_every_acknowledged_event(
) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    test_broker();
    let broker = OwnBroker::start(19_492);
    let topics = KafkaTopics::create(&broker.bootstrap(), 3);
    let idfold = Idfold::new();
    let mut args = topics.args();
    args.extend(
        [
            "--stages",
            "fold",
            "--instance-id",
            "static-0",
            "--batch-size",
            "100",
            "--ack-timeout",
            "2",
            "--config",
        ]
        .map(String::from),
    );
    args.push(fixture("serve.toml").to_str().expect("UTF-8").to_owned());
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = harness::http::Server::start(&idfold, &arg_refs, &[]);
    let wait = |what: &str, done: &mut dyn FnMut() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(180);
        while !done() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let ready = || harness::http::get(&server.url("/readyz")).status;

    // Two clients send batches of tracks for as long as the test runs.
    let acknowledged = Arc::new(Mutex::new(std::collections::BTreeSet::<String>::new()));
    let done = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..2)
        .map(|client| {
            let (url, acknowledged, done) =
                (server.url("/v1/batch"), acknowledged.clone(), done.clone());
            std::thread::spawn(move || {
                let agent = harness::http::agent();
                let auth = harness::http::basic(harness::http::write_key("acme"));
                let mut sent = 0u64;
                while !done.load(Ordering::SeqCst) {
                    let ids: Vec<String> = (0..20)
                        .map(|i| format!("load-{client}-{sent}-{i}"))
                        .collect();
                    let batch: Vec<serde_json::Value> = ids
                        .iter()
                        .enumerate()
                        .map(|(i, id)| {
                            serde_json::json!({"type": "track", "messageId": id,
                                "userId": format!("u-{client}-{i}"), "event": "Load"})
                        })
                        .collect();
                    let body = serde_json::json!({ "batch": batch }).to_string();
                    let reply = harness::http::try_request(
                        &agent,
                        "POST",
                        &url,
                        &[("Authorization", &auth)],
                        body.as_bytes(),
                    );
                    if reply.is_ok_and(|r| r.status == 200) {
                        acknowledged
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .extend(ids);
                    } else {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    sent += 1;
                }
            })
        })
        .collect();
    let acked = || acknowledged.lock().unwrap_or_else(|p| p.into_inner()).len();
    wait("load to be acknowledged", &mut || acked() >= 1_000);

    broker.script("stop");
    wait("readiness to report the broker gone", &mut || {
        ready() == 503
    });
    broker.script("start");
    wait("readiness to come back", &mut || ready() == 200);
    let before = acked();
    wait("load acknowledged after the restart", &mut || {
        acked() >= before + 1_000
    });
    done.store(true, Ordering::SeqCst);
    for client in clients {
        client.join().expect("client");
    }

    // Every acknowledged event is in the canonical log, and the fold, still
    // this process, folds every distinct event the log holds.
    let in_log =
        harness::kafka::read_canonical_message_ids(&broker.bootstrap(), &topics.events_topic());
    let acknowledged = acknowledged
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let lost: Vec<&String> = acknowledged.difference(&in_log).collect();
    assert!(lost.is_empty(), "acknowledged but not in the log: {lost:?}");
    let metrics = || harness::http::get(&server.url("/metrics")).text;
    wait("every event of the log folded", &mut || {
        metric_sum(&metrics(), "idfold_events_folded_total") >= in_log.len() as f64
    });
    assert_eq!(
        metric_sum(&metrics(), "idfold_events_folded_total"),
        in_log.len() as f64,
        "each event folded once"
    );
    assert!(
        metric_sum(&metrics(), "idfold_kafka_transient_errors_total") > 0.0,
        "the outage is counted"
    );
    assert_eq!(harness::http::get(&server.url("/healthz")).status, 200);
    let (status, log) = server.stop();
    assert!(status.success(), "serve stops cleanly: {status}\n{log}");
    // Faults are logged once per interval per source (about five sources),
    // not once per attempt: no 10-second window has more than a few lines.
    let mut per_window = std::collections::BTreeMap::<String, usize>::new();
    for line in log.lines().filter(|l| l.contains(" WARN ")) {
        // `2026-11-30T05:32:13.286Z ...`: the window is the time to the ten seconds.
        let window = line.get(..18).unwrap_or_default().to_owned();
        *per_window.entry(window).or_default() += 1;
    }
    let busiest = per_window.values().max().copied().unwrap_or(0);
    assert!(
        busiest <= 12,
        "{busiest} WARN lines in ten seconds: faults are logged per attempt:\n{log}"
    );
}
