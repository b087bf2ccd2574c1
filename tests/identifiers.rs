//! Identifiers through the real binary: one normalisation at every edge
//! (events, Segment calls, URL paths, lookups, erasure, CLI flags), ids
//! given as big integers kept exact, and event times outside the accepted
//! range refused with a message naming it.

mod harness;

use harness::http::{basic, call, post, write_key, Reply, Server, SERVE_TOML_WORKSPACES};
use harness::{fixture, run_with_stdin, wait_for, Idfold};
use serde_json::{json, Value};

const ACME_TOKEN: &str = SERVE_TOML_WORKSPACES[0].2;
const RANGE: &str = "1970-01-01T00:00:00Z (inclusive) to 2200-01-01T00:00:00Z (exclusive)";

fn serve(idfold: &Idfold) -> Server {
    let config = fixture("serve.toml");
    Server::start(idfold, &["--config", config.to_str().expect("UTF-8")], &[])
}

/// Percent-encodes everything but unreserved ASCII, as a client building a
/// URL from what a person typed would.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn segment_batch(server: &Server, batch: Value) -> Reply {
    post(
        &server.url("/v1/batch"),
        &[
            ("Authorization", &basic(write_key("acme"))),
            ("Content-Type", "application/json"),
        ],
        json!({ "batch": batch }).to_string().as_bytes(),
    )
}

fn native(server: &Server, events: &[Value]) -> Reply {
    let body: Vec<String> = events.iter().map(Value::to_string).collect();
    post(
        &server.url("/v1/events"),
        &[("Authorization", &basic(write_key("acme")))],
        body.join("\n").as_bytes(),
    )
}

fn read(server: &Server, method: &str, path: &str) -> Reply {
    call(server, method, path, Some(ACME_TOKEN))
}

fn profile_path(id: &str) -> String {
    format!("/v1/workspaces/acme/profiles/{id}")
}

/// Shows the server's log when a check fails.
fn check(server: &Server, ok: bool, what: impl std::fmt::Display) {
    assert!(ok, "{what}\n--- idfold serve log ---\n{}", server.log());
}

#[test]
fn big_integer_user_ids_stay_distinct_users_through_the_segment_batch_endpoint() {
    let idfold = Idfold::new();
    let server = serve(&idfold);
    let ids = [
        "12345678901234567890123",
        "12345678901234567890124",
        "18446744073709551616",
        "18446744073709551617",
    ];
    // The ids as JSON numbers, in the body's own text.
    let items: Vec<String> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            format!(
                r#"{{"type":"identify","userId":{id},"messageId":"big-{i}","timestamp":"2026-01-0{}T10:00:00Z","traits":{{"n":{i}}}}}"#,
                i + 1
            )
        })
        .collect();
    let body = format!(r#"{{"batch":[{}]}}"#, items.join(","));
    let reply = post(
        &server.url("/v1/batch"),
        &[("Authorization", &basic(write_key("acme")))],
        body.as_bytes(),
    );
    check(
        &server,
        reply.status == 200 && reply.body["accepted"] == 4,
        format!("{reply:?}"),
    );
    for (i, id) in ids.iter().enumerate() {
        let path = profile_path(&format!("user:{id}"));
        wait_for("the user's profile", || {
            read(&server, "GET", &path).status == 200
        });
        let profile = read(&server, "GET", &path).body;
        check(
            &server,
            profile["id"] == format!("user:{id}") && profile["traits"]["n"] == i,
            format!("{id}: {profile}"),
        );
    }
    // A fractional number is no id.
    let reply = segment_batch(
        &server,
        json!([{"type": "track", "userId": 1.5, "event": "E", "messageId": "frac"}]),
    );
    check(
        &server,
        reply.status == 400
            && reply.body["errors"][0]["code"] == "invalid_field"
            && reply.body["errors"][0]["field"] == "userId",
        format!("{reply:?}"),
    );
}

#[test]
fn profile_ids_in_urls_lookups_and_erasure_are_normalised_like_ingest() {
    let idfold = Idfold::new();
    let server = serve(&idfold);
    let reply = segment_batch(
        &server,
        json!([
            {"type": "identify", "userId": "u-alice", "anonymousId": "d-alice", "messageId": "a1",
             "timestamp": "2026-01-05T10:00:00Z", "traits": {"email": "Alice@Example.com"}},
            {"type": "identify", "userId": "u-bob", "messageId": "b1",
             "timestamp": "2026-01-05T10:00:00Z", "traits": {"email": "bob@example.com"}},
        ]),
    );
    check(&server, reply.status == 200, format!("{reply:?}"));
    let lookup = "/v1/workspaces/acme/profiles/lookup?email=Alice@Example.com";
    wait_for("Alice folded", || {
        read(&server, "GET", lookup).status == 200
    });
    let found = read(&server, "GET", lookup).body;
    check(
        &server,
        found["id"] == "user:u-alice",
        format!("lookup: {found}"),
    );

    // Every form a person may type finds what the lookup found.
    for id in [
        "email:Alice@Example.com",
        "email:alice@example.com",
        "email: ALICE@EXAMPLE.COM ",
        "email:Ａｌｉｃｅ@ｅｘａｍｐｌｅ.com",
    ] {
        for path in [profile_path(id), profile_path(&encode(id))] {
            if path.contains(' ') || !path.is_ascii() {
                continue; // only the percent-encoded form is a URL
            }
            let reply = read(&server, "GET", &path);
            check(
                &server,
                reply.status == 200 && reply.body == found,
                format!("{path}: {reply:?}"),
            );
        }
    }
    for (id, expected) in [
        ("user:ｕ-alice", "user:u-alice"),
        ("anonymous: d-alice", "user:u-alice"),
    ] {
        let reply = read(&server, "GET", &profile_path(&encode(id)));
        check(
            &server,
            reply.status == 200 && reply.body["id"] == expected,
            format!("{id}: {reply:?}"),
        );
    }

    // Blank-looking ids are refused as invalid_field naming the field.
    for (method, path, field) in [
        ("GET", profile_path(&encode("user:\u{200B}")), "id"),
        ("GET", profile_path(&encode("user:ｎｕｌｌ")), "id"),
        ("GET", profile_path("user:nil"), "id"),
        ("GET", profile_path(&encode("anonymous: ")), "id"),
        ("DELETE", profile_path(&encode("user:null\u{200B}")), "id"),
        ("DELETE", profile_path(&encode("email:")), "id"),
        (
            "GET",
            format!(
                "/v1/workspaces/acme/profiles/lookup?user_id={}",
                encode("ｎｕｌｌ")
            ),
            "user_id",
        ),
        (
            "GET",
            format!(
                "/v1/workspaces/acme/profiles/lookup?email={}",
                encode("alice\u{200B}@example.com")
            ),
            "email",
        ),
    ] {
        let reply = read(&server, method, &path);
        check(
            &server,
            reply.status == 400
                && reply.code() == "invalid_field"
                && reply.body["error"]["field"] == field,
            format!("{method} {path}: {reply:?}"),
        );
    }

    // Erasure in the form the person gave it.
    let erase = read(
        &server,
        "DELETE",
        &profile_path(&encode("email:ALICE@example.COM")),
    );
    check(
        &server,
        erase.status == 200 || erase.status == 202,
        format!("{erase:?}"),
    );
    wait_for("Alice forgotten", || {
        read(&server, "GET", lookup).status == 404
    });
    let bob = read(&server, "GET", &profile_path("email:Bob@Example.com"));
    check(&server, bob.status == 200, format!("Bob stays: {bob:?}"));
}

#[test]
fn native_identifiers_and_times_are_checked_at_the_http_edge() {
    let idfold = Idfold::new();
    let server = serve(&idfold);
    let event = |id: &str, user: &str, timestamp: &str| {
        json!({"type": "track", "message_id": id, "timestamp": timestamp,
               "user_id": user, "event": "E"})
    };
    let reply = native(
        &server,
        &[
            event("n1", "ｎｕｌｌ", "2026-01-05T10:00:00Z"),
            event("n2", "null\u{200B}", "2026-01-05T10:00:00Z"),
            event("n3", "\u{200B}", "2026-01-05T10:00:00Z"),
            event("n4", "nil", "2026-01-05T10:00:00Z"),
            event("n5", "u-1", "2300-01-01T00:00:00Z"),
            event("n6", "u-1", "1600-01-01T00:00:00Z"),
            // A client clock 170 years ahead in sent_at only: the corrected
            // time would fall before 1970.
            json!({"type": "track", "message_id": "n7", "timestamp": "2026-01-05T10:00:00Z",
                   "sent_at": "2199-01-01T00:00:00Z", "user_id": "u-1", "event": "E"}),
            event("ok", " Ｕ-1 ", "2026-01-05T10:00:00Z"),
        ],
    );
    let errors = reply.body["errors"].as_array().cloned().unwrap_or_default();
    check(
        &server,
        reply.status == 200 && reply.body["accepted"] == 1 && errors.len() == 7,
        format!("{reply:?}"),
    );
    for (i, error) in errors.iter().enumerate() {
        let field = match i {
            0..=3 => "user_id",
            4 | 5 => "timestamp",
            _ => "sent_at",
        };
        check(
            &server,
            error["index"] == i && error["code"] == "invalid_field" && error["field"] == field,
            format!("{error}"),
        );
        if i >= 4 {
            let message = error["message"].as_str().unwrap_or_default();
            check(
                &server,
                message.contains(RANGE) && !message.contains("RFC 3339"),
                message,
            );
        }
    }
    let path = profile_path("user:U-1");
    wait_for("U-1 folded", || read(&server, "GET", &path).status == 200);
    let profile = read(&server, "GET", &path).body;
    check(
        &server,
        profile["first_seen"] == "2026-01-05T10:00:00Z",
        format!("{profile}"),
    );
}

#[test]
fn cli_flags_are_normalised_and_blank_looking_ones_are_usage_errors() {
    let idfold = Idfold::new();
    let lines = [
        json!({"type": "identify", "message_id": "a1", "workspace_id": "acme",
               "timestamp": "2026-01-05T10:00:00Z", "user_id": "u-alice",
               "email": "Alice@Example.com", "anonymous_id": "d-alice"}),
        json!({"type": "identify", "message_id": "b1", "workspace_id": "acme",
               "timestamp": "2026-01-05T10:00:00Z", "user_id": "u-bob", "email": "bob@example.com"}),
        json!({"type": "track", "message_id": "t1", "workspace_id": "acme",
               "timestamp": "2300-01-01T00:00:00Z", "user_id": "u-bob", "event": "E"}),
    ];
    let input: Vec<String> = lines.iter().map(Value::to_string).collect();
    let out = run_with_stdin(
        idfold.command("ingest", &["-"]),
        input.join("\n").as_bytes(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("line 3: invalid_field: `timestamp`") && stderr.contains(RANGE),
        "{stderr}"
    );
    idfold.ok("run", &["--until-idle"]);

    for email in [
        "Alice@Example.com",
        " ALICE@example.COM ",
        "Ａｌｉｃｅ@example.com",
    ] {
        let profile = idfold.json("profile", &["--workspace", "acme", "--email", email]);
        assert_eq!(profile["id"], "user:u-alice", "{email}: {profile}");
    }
    let profile = idfold.json("profile", &["--workspace", "acme", "--user-id", "ｕ-alice"]);
    assert_eq!(profile["id"], "user:u-alice");

    for (flag, value) in [
        ("--user-id", "ｎｕｌｌ"),
        ("--user-id", "nil"),
        ("--anonymous-id", "\u{200B}"),
        ("--email", "alice\u{200B}@example.com"),
        ("--email", " "),
    ] {
        for sub in ["profile", "erase"] {
            let out = idfold.run(sub, &["--workspace", "acme", flag, value]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{sub} {flag} {value:?}: {stderr}"
            );
            assert!(stderr.contains(flag), "names the flag: {stderr}");
        }
    }
    let out = idfold.run(
        "responses",
        &["--workspace", "acme", "--profile", "user:nil"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--profile"));

    // `idfold erase` in the form the person gave it.
    let erased = idfold.ok(
        "erase",
        &["--workspace", "acme", "--email", "ALICE@example.COM"],
    );
    assert!(erased.contains("\"status\":\"applied\""), "{erased}");
    let gone = idfold.run("profile", &["--workspace", "acme", "--user-id", "u-alice"]);
    assert_eq!(gone.status.code(), Some(2), "Alice is gone");
    let bob = idfold.json(
        "profile",
        &["--workspace", "acme", "--email", "BOB@example.com"],
    );
    assert_eq!(bob["id"], "user:u-bob");
}
