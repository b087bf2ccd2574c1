//! `/metrics` after a real workload: parsed by Prometheus' own `promtool`,
//! and its values checked against what was sent: every input received is
//! either accepted or rejected, by reason; folded events, HTTP requests by
//! route and status as real histograms; no workspace id or secret in it.

mod harness;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harness::http::{basic, call, post, read_token, write_key, Server};
use harness::kafka::{test_broker, KafkaTopics};
use harness::{fixture, wait_for, Idfold};

/// One sample: name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// The samples of a text exposition (after promtool has said it is valid).
fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let value: f64 = value.parse().ok()?;
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => {
                    let body = rest.strip_suffix('}')?;
                    let labels = body
                        .split("\",")
                        .filter(|p| !p.is_empty())
                        .filter_map(|pair| {
                            let (k, v) = pair.split_once("=\"")?;
                            Some((k.to_owned(), v.trim_end_matches('"').to_owned()))
                        })
                        .collect();
                    (name.to_owned(), labels)
                }
                None => (series.to_owned(), BTreeMap::new()),
            };
            Some((name, labels, value))
        })
        .collect()
}

/// The sum of `name` over the series whose labels include `with`.
fn sum(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, labels, _)| {
            n == name
                && with
                    .iter()
                    .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| v)
        .sum()
}

/// `promtool check metrics` reads the exposition from stdin: exit 0 when
/// it parses and follows Prometheus' naming rules.
fn promtool_check(text: &str) {
    let mut promtool = Command::new("promtool");
    promtool.args(["check", "metrics"]);
    let out = harness::run_with_stdin(promtool, text.as_bytes());
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn serve_s_metrics_parse_with_promtool_and_add_up() {
    let idfold = Idfold::new();
    let config = fixture("serve.toml");
    let server = Server::start(&idfold, &["--config", config.to_str().expect("UTF-8")], &[]);
    let acme = basic(write_key("acme"));

    // 8 Segment items: 4 accepted (one a group call, not stored), 4 rejected.
    let batch = std::fs::read(fixture("segment-mixed-batch.json")).expect("fixture");
    let reply = post(
        &server.url("/v1/batch"),
        &[("Authorization", &acme)],
        &batch,
    );
    assert_eq!(reply.status, 200);
    // The sample's acme lines: most valid, a few not, one sent twice.
    let sample = harness::fixture_lines("sample.ndjson", "acme");
    let reply = post(
        &server.url("/v1/events"),
        &[("Authorization", &acme)],
        sample.join("\n").as_bytes(),
    );
    assert_eq!(reply.status, 200);
    let sample_accepted = reply.body["accepted"].as_f64().expect("a count");
    let sample_rejected = reply.body["errors"].as_array().expect("errors").len() as f64;
    assert!(sample_rejected > 0.0);
    // A refused request, and a read.
    assert_eq!(post(&server.url("/v1/batch"), &[], b"{}").status, 401);
    let mau = call(
        &server,
        "GET",
        "/v1/workspaces/acme/mau?month=2026-01",
        Some(read_token("acme")),
    );
    assert_eq!(mau.status, 200);

    let received = 8.0 + sample.len() as f64;
    // In the log: the batch's 3 events and the sample's accepted lines; the
    // fold folds each, or drops it as a duplicate.
    let stored = 3.0 + sample_accepted;
    let handled = |s: &[Sample]| {
        sum(s, "idfold_events_folded_total", &[]) + sum(s, "idfold_events_duplicate_total", &[])
    };
    let mut text = String::new();
    wait_for("the fold to count every stored event", || {
        text = harness::http::get(&server.url("/metrics")).text;
        handled(&samples(&text)) >= stored
    });
    promtool_check(&text);
    let s = samples(&text);

    let accepted = sum(&s, "idfold_events_accepted_total", &[("source", "http")]);
    let rejected = sum(&s, "idfold_events_rejected_total", &[("source", "http")]);
    assert_eq!(
        sum(&s, "idfold_events_received_total", &[("source", "http")]),
        received
    );
    assert_eq!(
        accepted + rejected,
        received,
        "accepted + rejected = received"
    );
    assert_eq!(
        (accepted, rejected),
        (4.0 + sample_accepted, 4.0 + sample_rejected)
    );
    assert_eq!(
        sum(&s, "idfold_events_accepted_total", &[("type", "group")]),
        1.0
    );
    for reason in ["no_identifier", "unknown_type", "wrong_workspace"] {
        assert!(
            sum(&s, "idfold_events_rejected_total", &[("reason", reason)]) >= 1.0,
            "{reason}"
        );
    }
    assert_eq!(
        sum(
            &s,
            "idfold_dead_letters_written_total",
            &[("source", "http")]
        ),
        rejected
    );
    assert_eq!(handled(&s), stored);
    assert_eq!(
        sum(&s, "idfold_events_duplicate_total", &[]),
        1.0,
        "the sample holds one event twice"
    );
    assert_eq!(
        sum(&s, "idfold_consumer_lag_records", &[("topic", "embedded")]),
        0.0
    );
    assert!(sum(&s, "idfold_store_size_bytes", &[]) > 0.0);
    assert_eq!(sum(&s, "idfold_build_info", &[]), 1.0);

    // HTTP: by route template, method and status; latency as a histogram.
    let batch_ok = [
        ("route", "/v1/batch"),
        ("method", "POST"),
        ("status", "200"),
    ];
    assert_eq!(sum(&s, "idfold_http_requests_total", &batch_ok), 1.0);
    assert_eq!(
        sum(
            &s,
            "idfold_http_requests_total",
            &[("route", "/v1/batch"), ("status", "401")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &s,
            "idfold_http_requests_total",
            &[
                ("route", "/v1/workspaces/{workspace}/mau"),
                ("status", "200")
            ]
        ),
        1.0
    );
    assert!(text.contains("# TYPE idfold_http_request_duration_seconds histogram"));
    assert!(text.contains("# TYPE idfold_fold_batch_duration_seconds histogram"));
    assert_eq!(
        sum(
            &s,
            "idfold_http_request_duration_seconds_bucket",
            &[("route", "/v1/batch"), ("le", "+Inf")]
        ),
        2.0,
        "every /v1/batch request is in the histogram"
    );
    // Bounded labels only: no workspace, no id, no secret.
    for private in ["acme", "u-carol", "wk_acme", "rt_acme"] {
        assert!(!text.contains(private), "{private} in /metrics");
    }
}

#[test]
fn run_serves_metrics_on_its_own_address_while_it_follows() {
    let idfold = Idfold::new();
    let ingested: serde_json::Value =
        serde_json::from_str(&idfold.ingest(&fixture("sample.ndjson"))).expect("JSON");
    let accepted = ingested["accepted"].as_f64().expect("a count");
    let mut child = idfold
        .command("run", &["--metrics-addr", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("idfold run starts");
    let stderr = child.stderr.take().expect("piped");
    let (lines, address) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("metrics on ") {
                let _ = lines.send(rest.trim().to_owned());
            }
        }
    });
    let url = address
        .recv_timeout(Duration::from_secs(30))
        .expect("run says where its metrics are");
    let deadline = Instant::now() + Duration::from_secs(30);
    let handled = loop {
        let text = harness::http::get(&url).text;
        let s = samples(&text);
        let handled = sum(&s, "idfold_events_folded_total", &[])
            + sum(&s, "idfold_events_duplicate_total", &[]);
        if handled >= accepted || Instant::now() > deadline {
            promtool_check(&text);
            break handled;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().expect("run ends");
    assert!(status.success());
    assert_eq!(
        handled, accepted,
        "every accepted event folded or dropped as a duplicate"
    );
}

/// On Kafka, librdkafka's statistics give each consumer's position and lag
/// per topic partition, and the producer's queue.
#[test]
fn on_kafka_position_and_lag_are_reported_per_topic_partition() {
    let topics = KafkaTopics::create(&test_broker(), 2);
    let idfold = Idfold::new();
    let config = fixture("serve.toml");
    let mut args = topics.args();
    args.extend([
        "--config".to_owned(),
        config.to_str().expect("UTF-8").to_owned(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start(&idfold, &args, &[]);
    let sample = harness::fixture_lines("sample.ndjson", "acme");
    let reply = post(
        &server.url("/v1/events"),
        &[("Authorization", &basic(write_key("acme")))],
        sample.join("\n").as_bytes(),
    );
    assert_eq!(reply.status, 200);
    let accepted = reply.body["accepted"].as_f64().expect("a count");
    let events = topics.events_topic();
    let on_events = [("topic", events.as_str())];
    let mut text = String::new();
    // Statistics come every 5 s.
    wait_for("the fold consumer's position to reach the end", || {
        text = harness::http::get(&server.url("/metrics")).text;
        let s = samples(&text);
        sum(&s, "idfold_consumer_position", &on_events) == accepted
            && sum(&s, "idfold_consumer_lag_records", &on_events) == 0.0
    });
    promtool_check(&text);
    let s = samples(&text);
    let partitions: std::collections::BTreeSet<&str> = s
        .iter()
        .filter(|(n, labels, _)| {
            n == "idfold_consumer_lag_records"
                && labels.get("topic").map(String::as_str) == Some(events.as_str())
        })
        .filter_map(|(_, labels, _)| labels.get("partition").map(String::as_str))
        .collect();
    assert_eq!(partitions.len(), 2, "both partitions of {events}: {text}");
    assert!(text.contains("# TYPE idfold_kafka_producer_queue_messages gauge"));
    assert_eq!(sum(&s, "idfold_kafka_delivery_errors_total", &[]), 0.0);
}
