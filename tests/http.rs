//! `idfold serve` over real HTTP: Segment's own Python library, every auth
//! and limit case, mixed batches, and (on a real broker that is stopped
//! mid-load) that every event answered 2xx is in the canonical log.

mod harness;

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::http::{agent, basic, get, gzip, post, request, Server};
use harness::kafka::{read_canonical_message_ids, KafkaTopics, OwnBroker};
use harness::{fixture, Idfold};
use serde_json::{json, Value};

const ACME_KEY: &str = "wk_acme_test_0123456789";
const BETA_KEY: &str = "wk_beta_test_0123456789";

fn with_config(idfold: &Idfold) -> Server {
    with_config_and(idfold, &[])
}

/// `serve --config tests/fixtures/serve.toml EXTRA...`.
fn with_config_and(idfold: &Idfold, extra: &[&str]) -> Server {
    let config = fixture("serve.toml");
    let mut args = vec!["--config", config.to_str().expect("UTF-8 path")];
    args.extend_from_slice(extra);
    Server::start(idfold, &args, &[])
}

fn track(message_id: &str, extra: Value) -> Vec<u8> {
    let mut message = json!({
        "type": "track", "userId": "u-1", "event": "Clicked", "messageId": message_id,
        "timestamp": "2026-10-05T12:00:00Z",
    });
    if let (Some(m), Some(e)) = (message.as_object_mut(), extra.as_object()) {
        m.extend(e.clone());
    }
    message.to_string().into_bytes()
}

/// `idfold profile --json`, looked up by `by` (`--user-id`, `--email`, `--anonymous-id`).
fn profile(idfold: &Idfold, workspace: &str, by: &str, id: &str) -> Value {
    idfold.json("profile", &["--workspace", workspace, by, id, "--json"])
}

fn stop_cleanly(server: Server) -> String {
    let (status, log) = server.stop();
    assert!(
        status.success(),
        "serve did not exit 0 on SIGTERM: {status}\n{log}"
    );
    log
}

#[test]
fn segment_s_python_library_is_folded_into_profiles_and_mau() {
    let idfold = Idfold::new();
    let server = Server::start(&idfold, &[], &[]);
    let key = server
        .dev_key
        .clone()
        .expect("a development key is printed");
    let bulk = 250;
    let out = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/clients/segment_client.py"
        ))
        .args([&server.base, &key, &bulk.to_string()])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "the Segment client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["errors"], json!([]), "the library saw errors");
    let log = stop_cleanly(server);
    // 9 calls and the bulk, of which the group call is counted, not stored.
    let folded = format!("after folding {} events", 8 + bulk);
    assert!(log.contains(&folded), "expected `{folded}` in:\n{log}");

    let ann = profile(&idfold, "dev", "--email", "ann@example.com");
    assert_eq!(ann["user_id"], "u-ann");
    assert_eq!(ann["traits"]["plan"], "pro");
    assert_eq!(ann["anonymous_ids"], json!(["d-ann", "d-ann-phone"]));
    assert_eq!(ann["track"]["Signed Up"]["count"], 1);
    assert_eq!(
        ann["track"]["Pricing"]["count"], 1,
        "a page is a track named after it"
    );
    let bob = profile(&idfold, "dev", "--user-id", "u-bob");
    assert_eq!(bob["track"]["Clicked"]["count"], bulk);
    assert_eq!(
        bob["track"]["Home"]["count"], 1,
        "a screen is a track named after it"
    );
    let visitor = idfold.json(
        "profile",
        &[
            "--workspace",
            "dev",
            "--anonymous-id",
            "d-visitor",
            "--json",
        ],
    );
    assert_eq!(visitor["kind"], "anonymous");

    let rows = idfold.json("mau", &["--workspace", "dev", "--json"]);
    let identified: u64 = rows
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["identified"].as_u64().unwrap_or(0))
        .sum();
    let anonymous: u64 = rows
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["anonymous"].as_u64().unwrap_or(0))
        .sum();
    // u-ann and u-bob; only the visitor who saw a survey counts anonymously.
    assert_eq!((identified, anonymous), (2, 1), "{rows}");
}

#[test]
fn the_write_key_decides_the_workspace_and_is_checked_every_way_it_comes() {
    let idfold = Idfold::new();
    let server = with_config(&idfold);
    let url = server.url("/v1/track");
    let ok = |headers: &[(&str, &str)], body: &[u8]| {
        let reply = post(&url, headers, body);
        assert_eq!(reply.status, 200, "{reply:?}");
    };
    ok(
        &[("Authorization", &basic(ACME_KEY))],
        &track("k-basic", json!({})),
    );
    ok(
        &[("Authorization", &format!("Bearer {ACME_KEY}"))],
        &track("k-bearer", json!({})),
    );
    ok(&[], &track("k-body", json!({"writeKey": ACME_KEY})));
    ok(
        &[("Authorization", &basic(BETA_KEY))],
        &track("k-beta", json!({"userId": "u-beta"})),
    );

    let refused = |headers: &[(&str, &str)], body: Vec<u8>, status: u16, code: &str| {
        let reply = post(&url, headers, &body);
        assert_eq!((reply.status, reply.code()), (status, code), "{reply:?}");
        assert!(reply.body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    };
    refused(&[], track("k-none", json!({})), 401, "missing_write_key");
    refused(
        &[("Authorization", &basic("wk_acme_test_0123456780"))],
        track("k-wrong", json!({})),
        401,
        "invalid_write_key",
    );
    refused(
        &[],
        track("k-wrong-body", json!({"writeKey": "nope"})),
        401,
        "invalid_write_key",
    );
    refused(
        &[("Authorization", "Token abc")],
        track("k-scheme", json!({})),
        401,
        "invalid_authorization",
    );
    // A key of one workspace cannot write into another.
    refused(
        &[("Authorization", &basic(ACME_KEY))],
        track("k-other", json!({"workspaceId": "beta"})),
        403,
        "wrong_workspace",
    );
    let native = json!({"type": "track", "message_id": "k-native", "workspace_id": "beta",
        "timestamp": "2026-10-05T12:00:00Z", "user_id": "u-1", "event": "Clicked"});
    let reply = post(
        &server.url("/v1/events"),
        &[("Authorization", &basic(ACME_KEY))],
        native.to_string().as_bytes(),
    );
    assert_eq!(reply.status, 403, "{reply:?}");
    assert_eq!(reply.body["errors"][0]["code"], "wrong_workspace");
    // A header for one workspace and a body key for another.
    refused(
        &[("Authorization", &basic(ACME_KEY))],
        track("k-two-keys", json!({"writeKey": BETA_KEY})),
        403,
        "wrong_workspace",
    );
    // An item of a batch carrying another workspace's key (analytics.js
    // puts the key in every message), and a rejected item carrying its own.
    let items = json!({"batch": [
        {"type": "track", "userId": "u-1", "event": "Clicked", "writeKey": BETA_KEY},
        {"type": "track", "userId": "u-1", "writeKey": ACME_KEY},
    ]});
    let reply = post(
        &server.url("/v1/batch"),
        &[("Authorization", &basic(ACME_KEY))],
        items.to_string().as_bytes(),
    );
    assert_eq!(reply.status, 403, "{reply:?}");
    assert_eq!(reply.body["errors"][0]["code"], "wrong_workspace");
    assert_eq!(reply.body["errors"][1]["field"], "event");
    // Segment's libraries read `code` and `message` at the top level.
    assert_eq!(reply.body["rejected"], 2);
    let single = post(&url, &[], &track("k-none-again", json!({})));
    assert_eq!(
        (
            single.body["code"].clone(),
            single.body["message"].is_string()
        ),
        (json!("missing_write_key"), true)
    );

    let log = stop_cleanly(server);
    assert!(
        !log.contains(ACME_KEY) && !log.contains(BETA_KEY),
        "a write key reached the log:\n{log}"
    );
    let letters = idfold.ok("dlq", &["--json"]);
    assert!(
        letters.contains("k-two-keys") || letters.contains("Clicked"),
        "{letters}"
    );
    assert!(
        !letters.contains(ACME_KEY) && !letters.contains(BETA_KEY),
        "a write key reached the dead-letter store:\n{letters}"
    );
    let acme = profile(&idfold, "acme", "--user-id", "u-1");
    assert_eq!(
        acme["track"]["Clicked"]["count"], 3,
        "basic, bearer and body keys"
    );
    let beta = profile(&idfold, "beta", "--user-id", "u-beta");
    assert_eq!(beta["track"]["Clicked"]["count"], 1);
    let missing = idfold.run("profile", &["--workspace", "beta", "--user-id", "u-1"]);
    assert_eq!(
        missing.status.code(),
        Some(2),
        "nothing of acme's leaked into beta"
    );
}

#[test]
fn limits_hold_after_gzip_and_bad_bodies_get_a_coded_4xx() {
    let idfold = Idfold::new();
    let server = with_config(&idfold);
    let auth = basic(ACME_KEY);
    let key = [("Authorization", auth.as_str())];
    let gzipped = [
        ("Authorization", auth.as_str()),
        ("Content-Encoding", "gzip"),
    ];

    // One event over 32 KiB, on a single call and inside a batch.
    let big = track("big", json!({"properties": {"pad": "x".repeat(33 * 1024)}}));
    let reply = post(&server.url("/v1/track"), &key, &big);
    assert_eq!(
        (reply.status, reply.code()),
        (400, "too_large"),
        "{reply:?}"
    );
    assert!(reply.body["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("32 KiB")));
    let small = String::from_utf8(track("small", json!({}))).expect("UTF-8");
    let batch = format!(
        r#"{{"batch": [{small}, {}]}}"#,
        String::from_utf8(big.clone()).expect("UTF-8")
    );
    let reply = post(&server.url("/v1/batch"), &key, batch.as_bytes());
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(
        (
            reply.body["accepted"].clone(),
            reply.body["errors"][0]["index"].clone()
        ),
        (json!(1), json!(1))
    );
    assert_eq!(reply.body["errors"][0]["code"], "too_large");

    // A batch over 500 KiB, plain and as gzip that compresses far below it.
    let items: Vec<String> = (0..20)
        .map(|i| {
            String::from_utf8(track(
                &format!("pad-{i}"),
                json!({"properties": {"pad": "y".repeat(30 * 1024)}}),
            ))
            .expect("UTF-8")
        })
        .collect();
    let oversize = format!(r#"{{"batch": [{}]}}"#, items.join(","));
    assert!(oversize.len() > 500 * 1024);
    for (headers, body) in [
        (&key[..], oversize.clone().into_bytes()),
        (&gzipped[..], gzip(oversize.as_bytes())),
    ] {
        let reply = post(&server.url("/v1/batch"), headers, &body);
        assert_eq!(
            (reply.status, reply.code()),
            (400, "too_large"),
            "{reply:?}"
        );
        assert!(
            reply.body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("500 KiB")),
            "{reply:?}"
        );
    }
    // The same events in two batches under the limit, gzip-compressed, go in.
    for half in items.chunks(10) {
        let body = format!(r#"{{"batch": [{}]}}"#, half.join(","));
        let reply = post(&server.url("/v1/batch"), &gzipped, &gzip(body.as_bytes()));
        assert_eq!(
            (reply.status, reply.body["accepted"].clone()),
            (200, json!(10)),
            "{reply:?}"
        );
    }

    let bad = |path: &str, headers: &[(&str, &str)], body: &[u8], status: u16, code: &str| {
        let reply = post(&server.url(path), headers, body);
        assert_eq!(
            (reply.status, reply.code()),
            (status, code),
            "{path}: {reply:?}"
        );
    };
    bad("/v1/batch", &key, b"{\"batch\": [", 400, "invalid_json");
    bad("/v1/track", &key, b"not json", 400, "invalid_json");
    bad("/v1/events", &key, b"[{\"type\":", 400, "invalid_json");
    bad("/v1/batch", &key, b"{}", 400, "missing_field");
    bad(
        "/v1/batch",
        &gzipped,
        b"not gzip at all",
        400,
        "invalid_gzip",
    );
    bad(
        "/v1/batch",
        &[("Authorization", auth.as_str()), ("Content-Encoding", "br")],
        b"{}",
        415,
        "unsupported_encoding",
    );
    bad(
        "/v1/track",
        &key,
        &track("no-event", json!({"event": null})),
        400,
        "missing_field",
    );
    stop_cleanly(server);
    let acme = profile(&idfold, "acme", "--user-id", "u-1");
    assert_eq!(
        acme["track"]["Clicked"]["count"], 21,
        "small, and the 20 padded events once"
    );
}

#[test]
fn a_mixed_batch_takes_the_valid_items_reports_the_rest_by_index_and_a_retry_changes_nothing() {
    let idfold = Idfold::new();
    let server = with_config(&idfold);
    let body = std::fs::read(fixture("segment-mixed-batch.json")).expect("fixture");
    let key = [("Authorization", basic(ACME_KEY))];
    let key: Vec<(&str, &str)> = key.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let first = post(&server.url("/v1/batch"), &key, &body);
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.body["accepted"], 4, "{first:?}");
    let errors: Vec<(u64, String, Value)> = first.body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            (
                e["index"].as_u64().unwrap_or(99),
                e["code"].as_str().unwrap_or("").to_owned(),
                e["field"].clone(),
            )
        })
        .collect();
    assert_eq!(
        errors,
        vec![
            (1, "no_identifier".to_owned(), Value::Null),
            (3, "unknown_type".to_owned(), json!("type")),
            (5, "invalid_field".to_owned(), json!("timestamp")),
            (7, "wrong_workspace".to_owned(), json!("workspaceId")),
        ]
    );
    // A client that did not see the answer sends the batch again.
    let retry = post(&server.url("/v1/batch"), &key, &body);
    assert_eq!(retry.body["accepted"], 4, "{retry:?}");
    stop_cleanly(server);

    let carol = profile(&idfold, "acme", "--user-id", "u-carol");
    assert_eq!(carol["emails"], json!(["carol@example.com"]));
    assert_eq!(
        carol["track"]["Pricing"]["count"], 1,
        "the retry was dropped as a duplicate"
    );
    let month = idfold.json(
        "mau",
        &["--workspace", "acme", "--month", "2026-10", "--json"],
    );
    assert_eq!(
        (month["identified"].clone(), month["anonymous"].clone()),
        (json!(1), json!(1)),
        "{month}"
    );
    let letters = idfold.json("dlq", &["--json"]);
    let reasons: BTreeSet<&str> = letters
        .as_array()
        .expect("letters")
        .iter()
        .filter_map(|l| l["reason"].as_str())
        .collect();
    assert_eq!(
        reasons,
        BTreeSet::from([
            "invalid_field",
            "no_identifier",
            "unknown_type",
            "wrong_workspace"
        ])
    );
    assert_eq!(
        letters.as_array().map(Vec::len),
        Some(8),
        "both sendings' rejects are kept"
    );
    assert!(letters
        .as_array()
        .expect("letters")
        .iter()
        .all(|l| l["source"] == "http:/v1/batch"));
}

#[test]
fn the_single_calls_map_as_the_readme_says() {
    let idfold = Idfold::new();
    let server = with_config(&idfold);
    let auth = basic(ACME_KEY);
    let key = [("Authorization", auth.as_str())];
    let calls = [
        (
            "/v1/identify",
            json!({"userId": "u-eve", "anonymousId": "d-eve", "traits": {"email": "eve@example.com", "plan": "team"}}),
        ),
        ("/v1/track", json!({"userId": "u-eve", "event": "Exported"})),
        ("/v1/page", json!({"userId": "u-eve", "name": "Docs"})),
        ("/v1/screen", json!({"userId": "u-eve"})),
        (
            "/v1/alias",
            json!({"previousId": "d-eve-tablet", "userId": "u-eve"}),
        ),
        ("/v1/group", json!({"userId": "u-eve", "groupId": "g-1"})),
        (
            "/v1/track",
            json!({"anonymousId": "d-fan", "event": "Survey Responded", "properties": {"survey_id": "nps", "answers": {"score": 10}}}),
        ),
    ];
    for (path, body) in &calls {
        let reply = post(&server.url(path), &key, body.to_string().as_bytes());
        assert_eq!(reply.status, 200, "{path}: {reply:?}");
        assert_eq!(reply.body["success"], true);
    }
    // analytics.js's paths: the call's first letter, and `b` for a batch.
    let short = post(
        &server.url("/v1/t"),
        &key,
        br#"{"userId": "u-eve", "event": "Short"}"#,
    );
    assert_eq!(short.status, 200, "{short:?}");
    let batch = post(
        &server.url("/v1/b"),
        &key,
        br#"{"batch": [{"type": "page", "userId": "u-eve", "name": "Short Page"}]}"#,
    );
    assert_eq!(
        (batch.status, batch.body["accepted"].clone()),
        (200, json!(1)),
        "{batch:?}"
    );
    let alias = post(&server.url("/v1/alias"), &key, br#"{"userId": "u-eve"}"#);
    assert_eq!(
        (alias.status, alias.body["error"]["field"].clone()),
        (400, json!("previousId"))
    );
    stop_cleanly(server);
    let eve = idfold.json(
        "profile",
        &[
            "--workspace",
            "acme",
            "--anonymous-id",
            "d-eve-tablet",
            "--json",
        ],
    );
    assert_eq!(
        eve["user_id"], "u-eve",
        "alias linked the device to the user"
    );
    assert_eq!(eve["traits"]["plan"], "team");
    assert_eq!(eve["track"]["Docs"]["count"], 1);
    assert_eq!(eve["track"]["Screen Viewed"]["count"], 1);
    assert_eq!(eve["track"]["Short"]["count"], 1);
    assert_eq!(eve["track"]["Short Page"]["count"], 1);
    let fan = profile(&idfold, "acme", "--anonymous-id", "d-fan");
    assert_eq!(fan["event_counts"]["survey"], 1, "{fan}");
}

#[test]
fn health_readiness_and_unknown_routes_answer_json() {
    let idfold = Idfold::new();
    let server = with_config(&idfold);
    assert_eq!(get(&server.url("/healthz")).status, 200);
    let ready = get(&server.url("/readyz"));
    assert_eq!(
        (ready.status, ready.body["status"].clone()),
        (200, json!("ready"))
    );
    let missing = get(&server.url("/v2/nothing"));
    assert_eq!((missing.status, missing.code()), (404, "not_found"));
    // A browser's preflight for a cross-origin batch with a write key.
    let preflight = request(
        &agent(),
        "OPTIONS",
        &server.url("/v1/batch"),
        &[
            ("Origin", "https://app.example.com"),
            ("Access-Control-Request-Method", "POST"),
            (
                "Access-Control-Request-Headers",
                "authorization,content-type",
            ),
        ],
        b"",
    );
    assert_eq!(preflight.status, 200, "{preflight:?}");
    assert_eq!(preflight.header("access-control-allow-origin"), Some("*"));
    assert!(preflight
        .header("access-control-allow-headers")
        .is_some_and(|h| h.contains("authorization")));
    let wrong_method = get(&server.url("/v1/track"));
    assert_eq!(
        (wrong_method.status, wrong_method.code()),
        (405, "method_not_allowed")
    );
    stop_cleanly(server);
}

#[test]
fn without_write_keys_serve_refuses_anything_but_loopback() {
    let idfold = Idfold::new();
    let out = idfold.run("serve", &["--listen", "0.0.0.0:0"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("only on loopback") && stderr.contains("--config"),
        "{stderr}"
    );
    let short = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(
        short.path(),
        "[[workspaces]]\nid = \"a\"\nwrite_keys = [\"short\"]\n",
    )
    .expect("written");
    let out = idfold.run(
        "serve",
        &["--config", short.path().to_str().expect("UTF-8")],
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("shorter than 16"),
        "{out:?}"
    );
}

/// Load from several threads while the broker is stopped: requests sent
/// during the outage are never answered 2xx, and after serve is SIGKILLed
/// with the broker still down (whatever only sat in the producer's memory
/// is gone) and the broker restarted, every event answered 2xx is in the
/// canonical log.
#[test]
fn on_kafka_every_event_answered_2xx_is_in_the_log_across_a_broker_stop_and_a_kill() {
    let broker = OwnBroker::start(19392);
    let topics = KafkaTopics::create(&broker.bootstrap(), 3);
    let idfold = Idfold::new();
    let mut args: Vec<String> = topics.args();
    args.extend(["--ack-timeout", "2", "--stages", "fold"].map(String::from));
    let config = fixture("serve.toml");
    args.extend([
        "--config".to_owned(),
        config.to_str().expect("UTF-8").to_owned(),
    ]);
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start(&idfold, &arg_refs, &[]);

    let acknowledged = Arc::new(Mutex::new(BTreeSet::<String>::new()));
    // (sent, answered, status, had Retry-After)
    let answers = Arc::new(Mutex::new(Vec::<(Instant, Instant, u16, bool)>::new()));
    let done = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|worker| {
            let (url, acknowledged, answers, done) =
                (server.url("/v1/batch"), acknowledged.clone(), answers.clone(), done.clone());
            std::thread::spawn(move || {
                let client = agent();
                let auth = basic(ACME_KEY);
                let mut sent = 0u64;
                while !done.load(Ordering::SeqCst) {
                    let ids: Vec<String> = (0..50).map(|i| format!("load-{worker}-{sent}-{i}")).collect();
                    let batch: Vec<Value> = ids
                        .iter()
                        .map(|id| json!({"type": "track", "messageId": id, "userId": format!("u-{worker}"), "event": "Load"}))
                        .collect();
                    let body = json!({"batch": batch}).to_string();
                    let started = Instant::now();
                    let reply = request(&client, "POST", &url, &[("Authorization", &auth)], body.as_bytes());
                    answers.lock().expect("lock").push((started, Instant::now(), reply.status, reply.retry_after.is_some()));
                    if reply.status == 200 {
                        acknowledged.lock().expect("lock").extend(ids);
                    } else {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    sent += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    broker.script("stop");
    let broker_down = Instant::now();
    std::thread::sleep(Duration::from_secs(5));
    let ready = get(&server.url("/readyz"));
    assert_eq!(
        ready.status, 503,
        "readiness reports the broker down: {ready:?}"
    );
    done.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().expect("worker");
    }
    let during_outage = Instant::now();
    server.kill();
    broker.script("start");

    let answers = answers.lock().expect("lock").clone();
    let acked_in_outage: Vec<_> = answers
        .iter()
        .filter(|(sent, answered, status, _)| {
            *sent >= broker_down && *answered <= during_outage && *status == 200
        })
        .collect();
    assert!(
        acked_in_outage.is_empty(),
        "answered 2xx while the broker was down: {}",
        acked_in_outage.len()
    );
    let unavailable: Vec<_> = answers.iter().filter(|a| a.2 == 503).collect();
    assert!(!unavailable.is_empty(), "the outage was never answered 503");
    assert!(unavailable.iter().all(|a| a.3), "503 without Retry-After");
    assert!(
        answers.iter().all(|a| a.2 == 200 || a.2 == 503),
        "unexpected statuses"
    );
    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert!(
        acknowledged.len() > 1000,
        "too little load got through: {}",
        acknowledged.len()
    );
    let in_log = read_canonical_message_ids(&broker.bootstrap(), &topics.events_topic());
    let lost: Vec<&String> = acknowledged.difference(&in_log).take(5).collect();
    assert!(
        lost.is_empty(),
        "answered 2xx but not in the log: {lost:?} (of {})",
        acknowledged.len()
    );
}

#[test]
fn a_client_holding_a_request_open_cannot_keep_serve_from_stopping() {
    use std::io::Write;
    let idfold = Idfold::new();
    let server = with_config_and(&idfold, &["--ack-timeout", "1"]);
    let address = server.base.trim_start_matches("http://").to_owned();
    let mut held = std::net::TcpStream::connect(&address).expect("connects");
    held.write_all(b"POST /v1/track HTTP/1.1\r\nHost: x\r\n")
        .expect("half a request sent");
    // A complete request on another connection still goes in meanwhile.
    let reply = post(
        &server.url("/v1/track"),
        &[("Authorization", &basic(ACME_KEY))],
        &track("held-1", json!({})),
    );
    assert_eq!(reply.status, 200, "{reply:?}");
    let asked = Instant::now();
    let log = stop_cleanly(server);
    // The drain is --ack-timeout + 5 s.
    assert!(
        asked.elapsed() < Duration::from_secs(20),
        "took {:?}:\n{log}",
        asked.elapsed()
    );
    drop(held);
    let user = profile(&idfold, "acme", "--user-id", "u-1");
    assert_eq!(user["track"]["Clicked"]["count"], 1);
}

/// SIGTERM under load: requests in flight are finished, everything
/// answered 2xx is folded before the process exits 0, and nothing after
/// the signal is answered 2xx without being kept.
#[test]
fn nothing_answered_2xx_is_lost_across_a_sigterm_under_load() {
    let idfold = Idfold::new();
    let server = with_config(&idfold);
    let url = server.url("/v1/batch");
    let acknowledged = Arc::new(Mutex::new(BTreeSet::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|worker| {
            let (url, acknowledged, stop) = (url.clone(), acknowledged.clone(), stop.clone());
            std::thread::spawn(move || {
                let client = agent();
                let auth = basic(ACME_KEY);
                let mut sent = 0u64;
                let mut failures = 0;
                while !stop.load(Ordering::SeqCst) && failures < 20 {
                    let users: Vec<String> =
                        (0..25).map(|i| format!("u-{worker}-{sent}-{i}")).collect();
                    let batch: Vec<Value> = users
                        .iter()
                        .map(|u| json!({"type": "identify", "messageId": u, "userId": u}))
                        .collect();
                    let body = json!({ "batch": batch }).to_string();
                    let outcome = harness::http::try_request(
                        &client,
                        "POST",
                        &url,
                        &[("Authorization", &auth)],
                        body.as_bytes(),
                    );
                    match outcome {
                        Ok(reply) if reply.status == 200 => {
                            acknowledged.lock().expect("lock").extend(users)
                        }
                        _ => {
                            failures += 1;
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    }
                    sent += 1;
                }
            })
        })
        .collect();
    // Load for a while, then SIGTERM while requests are in flight.
    let deadline = Instant::now() + Duration::from_secs(20);
    while acknowledged.lock().expect("lock").len() < 2_000 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    stop_cleanly(server);
    stop.store(true, Ordering::SeqCst);
    for worker in workers {
        worker.join().expect("worker");
    }
    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert!(
        acknowledged.len() >= 2_000,
        "the load ran: {}",
        acknowledged.len()
    );

    let export = idfold.export();
    let folded: BTreeSet<String> = export
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["user_id"].as_str().map(str::to_owned))
        .collect();
    let lost: Vec<&String> = acknowledged.difference(&folded).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged events are not folded, e.g. {:?}",
        lost.len(),
        acknowledged.len(),
        lost.first()
    );
    // And the fold's position is stored: a restart folds nothing again.
    let again = idfold.run("run", &["--until-idle"]);
    assert!(
        String::from_utf8_lossy(&again.stderr).starts_with("folded 0 events"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}

#[test]
fn with_log_format_json_each_log_line_is_a_json_object_that_says_where_it_serves() {
    let idfold = Idfold::new();
    let server = with_config_and(&idfold, &["--log-format", "json"]);
    let reply = post(
        &server.url("/v1/batch"),
        &[("Authorization", &basic(ACME_KEY))],
        br#"{"batch":[{"type":"track","userId":"u-secret-trait","event":"E","properties":{"card":"4111"}}]}"#,
    );
    assert_eq!(reply.status, 200);
    let log = stop_cleanly(server);
    // Every line on stderr is a JSON object: log events and the lines for
    // the operator alike.
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    assert!(lines.iter().any(|l| l["message"]
        .as_str()
        .is_some_and(|m| m.starts_with("listening on http://"))));
    assert!(lines.iter().any(|l| l["message"] == "stopped"));
    let start = lines
        .iter()
        .find(|l| l["message"] == "serving")
        .expect("a start line");
    assert_eq!(start["level"], "INFO");
    assert!(start["address"]
        .as_str()
        .is_some_and(|a| a.starts_with("127.0.0.1:")));
    assert!(start["log"]
        .as_str()
        .is_some_and(|l| l.starts_with("embedded log in ")));
    assert!(start["workspaces"]
        .as_str()
        .is_some_and(|w| w.contains("acme")));
    for secret in [ACME_KEY, "rt_acme", "u-secret-trait", "4111"] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
}
