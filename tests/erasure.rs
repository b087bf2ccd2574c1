//! Erasure: `DELETE /v1/workspaces/{w}/profiles/{id}` and `idfold erase`
//! forget a person, and nothing brings them back: not a rebuild, not a
//! re-delivery of their old events. Months already counted keep their MAU;
//! other people, and the same id in another workspace, are untouched.

mod harness;

use harness::http::{call, send_events, Server, SERVE_TOML_WORKSPACES};
use harness::kafka::{on_kafka, test_broker, KafkaTopics};
use harness::{fixture, fixture_lines, wait_for, Idfold};
use serde_json::{json, Value};

const ACME_TOKEN: &str = SERVE_TOML_WORKSPACES[0].2;
const GLOBEX_TOKEN: &str = SERVE_TOML_WORKSPACES[1].2;
/// Alice's events in acme, and what only they hold.
const ALICE_EVENTS: usize = 6;
const ALICE_TRACES: [&str; 4] = ["alice", "d-alice", "555-0100", "Report Exported"];
/// acme's MAU with Alice: January counts Alice and Bob; February Alice and
/// Bob, and Carol's device, which saw a survey; March Alice alone.
const MONTHS: [(&str, u64, u64); 3] = [("2026-01", 2, 0), ("2026-02", 2, 1), ("2026-03", 1, 0)];

fn expected_months() -> Value {
    let rows: Vec<Value> = MONTHS
        .iter()
        .map(|(month, identified, anonymous)| {
            json!({"workspace_id": "acme", "month": month, "identified": identified,
                   "anonymous": anonymous, "total": identified + anonymous})
        })
        .collect();
    json!({ "rows": rows })
}

const MAU_PATH: &str = "/v1/workspaces/acme/mau?from=2026-01&to=2026-03";

fn config() -> String {
    fixture("serve.toml").to_str().expect("UTF-8").to_owned()
}

/// Sends the fixture and waits until everything in it is folded.
fn send_fixture_and_wait(server: &Server) {
    send_events(server, "acme", &fixture_lines("erasure.ndjson", "acme"));
    send_events(server, "globex", &fixture_lines("erasure.ndjson", "globex"));
    wait_for("the fixture to be folded", || {
        call(server, "GET", MAU_PATH, Some(ACME_TOKEN)).body == expected_months()
            && call(
                server,
                "GET",
                "/v1/workspaces/globex/profiles/user:alice",
                Some(GLOBEX_TOKEN),
            )
            .status
                == 200
    });
}

/// Every way of reaching Alice in acme answers 404, and no acme answer
/// mentions anything only she sent.
fn assert_alice_gone(server: &Server) {
    for path in [
        "/v1/workspaces/acme/profiles/user:alice",
        "/v1/workspaces/acme/profiles/lookup?email=alice@example.com",
        "/v1/workspaces/acme/profiles/lookup?anonymous_id=d-alice",
        "/v1/workspaces/acme/profiles/user:alice/responses",
    ] {
        let reply = call(server, "GET", path, Some(ACME_TOKEN));
        assert_eq!((reply.status, reply.code()), (404, "not_found"), "{path}");
    }
    let responses = call(
        server,
        "GET",
        "/v1/workspaces/acme/responses?survey_id=nps",
        Some(ACME_TOKEN),
    );
    assert_eq!(responses.status, 200);
    let text = responses.body.to_string();
    assert!(text.contains("r-bob"), "Bob's response stays: {text}");
    for trace in ALICE_TRACES {
        assert!(!text.contains(trace), "{trace} in {text}");
    }
}

fn read(server: &Server, path: &str, token: &str) -> Value {
    call(server, "GET", path, Some(token)).body
}

fn acme_export(idfold: &Idfold) -> String {
    idfold.ok("export", &["--workspace", "acme"])
}

#[test]
fn an_erased_person_stays_gone_across_a_rebuild_and_a_redelivery_and_months_keep_their_counts() {
    let idfold = Idfold::new();
    let server = Server::start(&idfold, &["--config", &config()], &[]);
    send_fixture_and_wait(&server);
    let bob = call(
        &server,
        "GET",
        "/v1/workspaces/acme/profiles/user:bob",
        Some(ACME_TOKEN),
    );
    let globex_alice = call(
        &server,
        "GET",
        "/v1/workspaces/globex/profiles/user:alice",
        Some(GLOBEX_TOKEN),
    );
    assert_eq!((bob.status, globex_alice.status), (200, 200));
    let alice = call(
        &server,
        "GET",
        "/v1/workspaces/acme/profiles/user:alice",
        Some(ACME_TOKEN),
    );
    assert_eq!(alice.body["emails"], json!(["alice@example.com"]));
    assert_eq!(alice.body["anonymous_ids"], json!(["d-alice"]));

    // Refusals first: no token, another workspace's token, nobody to erase.
    let path = "/v1/workspaces/acme/profiles/email:alice@example.com";
    assert_eq!(call(&server, "DELETE", path, None).status, 401);
    let other = call(&server, "DELETE", path, Some(GLOBEX_TOKEN));
    assert_eq!((other.status, other.code()), (403, "forbidden"));
    let nobody = call(
        &server,
        "DELETE",
        "/v1/workspaces/acme/profiles/user:nobody",
        Some(ACME_TOKEN),
    );
    assert_eq!((nobody.status, nobody.code()), (404, "not_found"));
    assert_eq!(
        call(
            &server,
            "GET",
            "/v1/workspaces/acme/profiles/user:alice",
            Some(ACME_TOKEN)
        )
        .status,
        200,
        "refused erasures erase nothing"
    );

    // Erased by her email: the person it resolves to goes, whole.
    let erased = call(&server, "DELETE", path, Some(ACME_TOKEN));
    assert_eq!(erased.status, 200, "{erased:?}");
    assert_eq!(erased.body["status"], "applied");
    assert_eq!(
        erased.body["forgotten"],
        json!({"events": ALICE_EVENTS, "responses": 1, "emails": 1, "devices": 1})
    );
    assert_eq!(erased.body["log"], "deleted from the embedded log");
    assert_eq!(
        erased.body["mau_months_kept"],
        json!(["2026-01", "2026-02", "2026-03"])
    );
    let erasure_id = erased.body["erasure_id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let status_path = format!("/v1/workspaces/acme/erasures/{erasure_id}");
    assert_eq!(
        call(&server, "GET", &status_path, Some(ACME_TOKEN)).body,
        erased.body
    );
    assert_eq!(
        call(&server, "GET", &status_path, Some(GLOBEX_TOKEN)).status,
        403
    );

    assert_alice_gone(&server);
    assert_eq!(
        call(&server, "GET", MAU_PATH, Some(ACME_TOKEN)).body,
        expected_months(),
        "months already counted keep their counts"
    );
    assert_eq!(
        read(&server, "/v1/workspaces/acme/profiles/user:bob", ACME_TOKEN),
        bob.body
    );
    assert_eq!(
        read(
            &server,
            "/v1/workspaces/globex/profiles/user:alice",
            GLOBEX_TOKEN
        ),
        globex_alice.body,
        "the same id in another workspace is another person"
    );
    let (status, _) = server.stop();
    assert!(status.success());

    // The state, and a rebuild from the log: her events are not in it.
    let export = acme_export(&idfold);
    for trace in ALICE_TRACES {
        assert!(!export.contains(trace), "{trace} in the export:\n{export}");
    }
    let rebuilt = idfold.run("rebuild", &[]);
    assert!(rebuilt.status.success());
    let stderr = String::from_utf8_lossy(&rebuilt.stderr);
    assert!(
        stderr.contains("rebuilt from 5 events") && !stderr.contains("erased people"),
        "the log holds the 5 events of the others only: {stderr}"
    );
    assert_eq!(
        acme_export(&idfold),
        export,
        "a rebuild ends where the erasure left"
    );

    // Her old events delivered again are dropped; a new one starts afresh.
    let server = Server::start(&idfold, &["--config", &config()], &[]);
    let mut lines = fixture_lines("erasure.ndjson", "acme");
    lines.push(
        json!({"type": "identify", "message_id": "er-a9", "workspace_id": "acme",
               "timestamp": "2026-03-01T09:00:00Z", "user_id": "alice", "traits": {"plan": "team"}})
        .to_string(),
    );
    send_events(&server, "acme", &lines);
    let mut fresh = Value::Null;
    wait_for("the new event to be folded", || {
        fresh = read(
            &server,
            "/v1/workspaces/acme/profiles/user:alice",
            ACME_TOKEN,
        );
        fresh["id"] == "user:alice"
    });
    assert_eq!(
        fresh["traits"],
        json!({"plan": "team"}),
        "nothing of before: {fresh}"
    );
    assert_eq!(fresh["emails"], json!([]));
    assert_eq!(fresh["anonymous_ids"], json!([]));
    assert_eq!(
        call(
            &server,
            "GET",
            "/v1/workspaces/acme/profiles/lookup?anonymous_id=d-alice",
            Some(ACME_TOKEN)
        )
        .status,
        404
    );
    let mut months = expected_months();
    months["rows"][2] = json!({"workspace_id": "acme", "month": "2026-03", "identified": 2, "anonymous": 0, "total": 2});
    assert_eq!(
        call(&server, "GET", MAU_PATH, Some(ACME_TOKEN)).body,
        months
    );
    let (status, log) = server.stop();
    assert!(status.success());
    assert!(
        log.contains(&format!("{ALICE_EVENTS} events of erased people dropped")),
        "{log}"
    );
    // The re-delivered events were deleted from the log as they were dropped.
    let rebuilt = idfold.run("rebuild", &[]);
    let stderr = String::from_utf8_lossy(&rebuilt.stderr);
    assert!(
        rebuilt.status.success() && !stderr.contains("erased people"),
        "{stderr}"
    );
}

#[test]
fn idfold_erase_forgets_a_person_on_the_embedded_log() {
    let idfold = Idfold::new();
    idfold.ingest(&fixture("erasure.ndjson"));
    idfold.ok("run", &["--until-idle"]);
    let months = idfold.ok("mau", &["--workspace", "acme", "--json"]);

    let unknown = idfold.run("erase", &["--workspace", "acme", "--user-id", "nobody"]);
    assert_eq!(unknown.status.code(), Some(2), "no such profile exits 2");

    let out: Value = serde_json::from_str(&idfold.ok(
        "erase",
        &["--workspace", "acme", "--anonymous-id", "d-alice"],
    ))
    .expect("JSON");
    assert_eq!(out["forgotten"]["events"], json!(ALICE_EVENTS), "{out}");
    assert_eq!(idfold.ok("mau", &["--workspace", "acme", "--json"]), months);
    let export = acme_export(&idfold);
    for trace in ALICE_TRACES {
        assert!(!export.contains(trace), "{trace} in the export:\n{export}");
    }
    assert!(
        idfold.export().contains("enterprise"),
        "globex's Alice stays"
    );
    let gone = idfold.run("profile", &["--workspace", "acme", "--user-id", "alice"]);
    assert!(!gone.status.success());
    idfold.ok("rebuild", &[]);
    assert_eq!(acme_export(&idfold), export);
    assert_eq!(idfold.ok("mau", &["--workspace", "acme", "--json"]), months);

    // sled keeps deleted bytes in its files for a while; a compacted copy
    // holds live entries only, and folds on as the original.
    let copy = Idfold::not_created();
    idfold.ok("compact", &["--into", copy.data().to_str().expect("UTF-8")]);
    for file in walk(copy.data()) {
        let bytes = std::fs::read(&file).expect("readable");
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains("555-0100"),
            "her answer is in {}",
            file.display()
        );
    }
    assert_eq!(acme_export(&copy), export);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("a directory").flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// On Kafka the request travels the canonical log like events; the events
/// stay in Kafka (until retention), so a rebuild replays them, and the
/// stored erasure drops them again.
#[test]
fn on_kafka_an_erasure_survives_a_rebuild_that_replays_the_person_s_events() {
    let topics = KafkaTopics::create(&test_broker(), 2);
    let idfold = Idfold::new();
    let mut args: Vec<String> = topics.args();
    args.extend(["--config".to_owned(), config()]);
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start(&idfold, &arg_refs, &[]);
    send_fixture_and_wait(&server);

    let erased = call(
        &server,
        "DELETE",
        "/v1/workspaces/acme/profiles/user:alice",
        Some(ACME_TOKEN),
    );
    assert_eq!(erased.status, 200, "{erased:?}");
    assert_eq!(erased.body["forgotten"]["events"], json!(ALICE_EVENTS));
    assert_eq!(
        erased.body["log"],
        "kept in Kafka until the topics' retention removes them"
    );
    assert_alice_gone(&server);
    assert_eq!(
        call(&server, "GET", MAU_PATH, Some(ACME_TOKEN)).body,
        expected_months()
    );
    // The profile topic's latest word on her is a tombstone, which
    // compaction keeps only until delete.retention.ms; globex's Alice stays.
    let profiles = topics.read_latest("profiles");
    assert_eq!(profiles.get("acme/user:alice"), Some(&Value::Null));
    assert!(profiles["globex/user:alice"].is_object());
    assert!(profiles["acme/user:bob"].is_object());
    let (status, _) = server.stop();
    assert!(status.success());

    let export = acme_export(&idfold);
    let (_, stderr) = on_kafka(&idfold, &topics, "rebuild", &[]);
    assert!(
        stderr.contains(&format!("{ALICE_EVENTS} events of erased people dropped")),
        "the replay met her events and dropped them: {stderr}"
    );
    assert_eq!(acme_export(&idfold), export, "{stderr}");
}
