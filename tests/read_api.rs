//! The read API of `idfold serve`, while it folds: MAU by month and range,
//! profiles by any identifier, the same answers the CLI gives from the same
//! events folded apart, and read tokens that open one workspace only.

mod harness;

use harness::http::{
    agent, call, read_token, request, send_events, write_key, Reply, Server, SERVE_TOML_WORKSPACES,
};
use harness::{fixture, wait_for, Idfold};
use serde_json::{json, Value};

fn read(server: &Server, path: &str, token: Option<&str>) -> Reply {
    call(server, "GET", path, token)
}

fn token(workspace: &str) -> &'static str {
    read_token(workspace)
}

/// A sample line as it can be sent over HTTP: there the server's clock is
/// `received_at`, so the client's receive time, and the `sent_at` that
/// would correct the timestamp by it, are left out on both sides.
fn without_client_clocks(line: &str) -> String {
    let Ok(mut event) = serde_json::from_str::<Value>(line) else {
        return line.to_owned();
    };
    match event.as_object_mut() {
        Some(fields) if fields.contains_key("received_at") => {
            fields.remove("received_at");
            fields.remove("sent_at");
            event.to_string()
        }
        _ => line.to_owned(),
    }
}

/// The sample's events, each workspace's sent with its own key as NDJSON.
fn send_sample(server: &Server) {
    for (workspace, _, _) in SERVE_TOML_WORKSPACES {
        let lines: Vec<String> = harness::fixture_lines("sample.ndjson", workspace)
            .iter()
            .map(|l| without_client_clocks(l))
            .collect();
        assert!(!lines.is_empty());
        send_events(server, workspace, &lines);
    }
}

/// The same events through the CLI on a directory of its own.
fn folded_apart() -> Idfold {
    let idfold = Idfold::new();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("sample.ndjson");
    let lines: Vec<String> = std::fs::read_to_string(fixture("sample.ndjson"))
        .expect("fixture")
        .lines()
        .map(without_client_clocks)
        .collect();
    std::fs::write(&file, lines.join("\n")).expect("written");
    idfold.ingest(&file);
    idfold.fold();
    idfold
}

#[test]
fn mau_and_profiles_read_while_serving_match_the_cli_and_tokens_open_one_workspace() {
    let expected = folded_apart();
    let idfold = Idfold::new();
    let config = fixture("serve.toml");
    let server = Server::start(&idfold, &["--config", config.to_str().expect("UTF-8")], &[]);
    send_sample(&server);

    for (workspace, _, _) in SERVE_TOML_WORKSPACES {
        // A range a month wider on each side: months without activity are zeros.
        let rows: Vec<Value> = expected
            .json("mau", &["--workspace", workspace, "--json"])
            .as_array()
            .expect("rows")
            .clone();
        let zero = |month: &str| json!({"workspace_id": workspace, "month": month, "identified": 0, "anonymous": 0, "total": 0});
        let mut wanted = vec![zero("2025-12")];
        for month in ["2026-01", "2026-02"] {
            wanted.push(
                rows.iter()
                    .find(|r| r["month"] == month)
                    .cloned()
                    .unwrap_or_else(|| zero(month)),
            );
        }
        wanted.push(zero("2026-03"));
        let path = format!("/v1/workspaces/{workspace}/mau?from=2025-12&to=2026-03");
        let mut last = Value::Null;
        wait_for("the fold to reach the API", || {
            last = read(&server, &path, Some(token(workspace))).body;
            last["rows"] == json!(wanted)
        });
        let one = read(
            &server,
            &format!("/v1/workspaces/{workspace}/mau?month=2026-01"),
            Some(token(workspace)),
        );
        assert_eq!((one.status, one.body.clone()), (200, wanted[1].clone()));
    }

    // Profiles: a device that resolves to a user answers the user, saying so.
    let by_device = expected.json(
        "profile",
        &[
            "--workspace",
            "acme",
            "--anonymous-id",
            "device-1",
            "--json",
        ],
    );
    let reply = read(
        &server,
        "/v1/workspaces/acme/profiles/lookup?anonymous_id=device-1",
        Some(token("acme")),
    );
    assert_eq!((reply.status, &reply.body), (200, &by_device));
    let id = by_device["id"].as_str().expect("an id").to_owned();
    let direct = expected.json(
        "profile",
        &[
            "--workspace",
            "acme",
            "--user-id",
            id.trim_start_matches("user:"),
            "--json",
        ],
    );
    let reply = read(
        &server,
        &format!("/v1/workspaces/acme/profiles/{}", id.replace(':', "%3A")),
        Some(token("acme")),
    );
    assert_eq!((reply.status, &reply.body), (200, &direct));
    assert!(reply.body.get("resolved_from").is_none());

    // Errors, each with its code and field.
    let code = |r: &Reply| {
        (
            r.status,
            r.body["error"]["code"].as_str().unwrap_or("").to_owned(),
        )
    };
    let missing = read(&server, "/v1/workspaces/acme/mau?month=2026-01", None);
    assert_eq!(code(&missing), (401, "missing_token".into()));
    let write_key = read(
        &server,
        "/v1/workspaces/acme/mau?month=2026-01",
        Some(write_key("acme")),
    );
    assert_eq!(
        code(&write_key),
        (401, "invalid_token".into()),
        "a write key does not read"
    );
    // Another workspace's token learns nothing, not even whether an id exists.
    for path in [
        "/v1/workspaces/acme/mau?month=2026-01",
        "/v1/workspaces/acme/profiles/lookup?anonymous_id=device-1",
        "/v1/workspaces/acme/profiles/user:nobody-at-all",
        "/v1/workspaces/no-such-workspace/mau?month=2026-01",
    ] {
        let other = read(&server, path, Some(token("globex")));
        assert_eq!(code(&other), (403, "forbidden".into()), "{path}");
    }
    let unknown = read(
        &server,
        "/v1/workspaces/acme/profiles/lookup?user_id=nobody-at-all",
        Some(token("acme")),
    );
    assert_eq!(code(&unknown), (404, "not_found".into()));
    for (path, field) in [
        ("/v1/workspaces/acme/mau?month=2026-13", "month"),
        ("/v1/workspaces/acme/mau", "month"),
        ("/v1/workspaces/acme/mau?from=2026-03&to=2026-01", "from"),
        (
            "/v1/workspaces/acme/profiles/lookup?user_id=a&email=b@c.de",
            "user_id",
        ),
        ("/v1/workspaces/acme/profiles/nobody", "id"),
    ] {
        let bad = read(&server, path, Some(token("acme")));
        assert_eq!(code(&bad), (400, "invalid_parameter".into()), "{path}");
        assert_eq!(bad.body["error"]["field"], field, "{path}");
    }
    let (status, log) = server.stop();
    assert!(status.success(), "{log}");
    for (_, _, secret) in SERVE_TOML_WORKSPACES {
        assert!(!log.contains(secret), "a read token reached the log");
    }
}

/// A survey response as a native event.
fn response(i: usize) -> String {
    json!({
        "type": "survey", "message_id": format!("resp-{i}"),
        "timestamp": format!("2026-03-{:02}T10:00:00Z", 1 + i % 28),
        "user_id": format!("u-{}", i % 5), "anonymous_id": format!("d-{}", i % 5),
        "survey_id": format!("s{}", i % 3), "action": "responded", "response_id": format!("r-{i:03}"),
        "answers": {"score": i % 11, "comment": format!("ok, \"great\" #{i}")},
    })
    .to_string()
}

fn send(server: &Server, events: &[String]) {
    send_events(server, "acme", events);
}

/// Every page of `path` (a query string included), following next_cursor.
fn every_page(server: &Server, path: &str, during: &mut dyn FnMut(usize)) -> Vec<Value> {
    let mut rows = Vec::new();
    let mut cursor: Option<String> = None;
    for n in 0.. {
        let url = match &cursor {
            Some(c) => format!("{path}&cursor={c}"),
            None => path.to_owned(),
        };
        let reply = read(server, &url, Some(token("acme")));
        assert_eq!(reply.status, 200, "{reply:?}");
        rows.extend(
            reply.body["responses"]
                .as_array()
                .expect("responses")
                .iter()
                .cloned(),
        );
        during(n);
        match reply.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    rows
}

#[test]
fn responses_page_without_skips_or_repeats_while_events_arrive_and_read_back_as_csv() {
    let idfold = Idfold::new();
    let config = fixture("serve.toml");
    let server = Server::start(&idfold, &["--config", config.to_str().expect("UTF-8")], &[]);
    let first: Vec<String> = (0..60).map(response).collect();
    send(&server, &first);
    // Another workspace's response, which acme must never list.
    let theirs = json!({"type": "survey", "message_id": "resp-globex", "timestamp": "2026-03-02T10:00:00Z",
        "user_id": "u-1", "survey_id": "s1", "action": "responded", "response_id": "r-globex", "answers": {"score": 1}});
    send_events(&server, "globex", &[theirs.to_string()]);
    wait_for("60 responses folded", || {
        read(
            &server,
            "/v1/workspaces/acme/responses?limit=1000",
            Some(token("acme")),
        )
        .body["responses"]
            .as_array()
            .is_some_and(|r| r.len() == 60)
    });

    // Page by 7 while new responses keep arriving, before and after the cursor.
    let mut more = 60;
    let rows = every_page(
        &server,
        "/v1/workspaces/acme/responses?limit=7",
        &mut |_| {
            send(&server, &[response(more)]);
            more += 1;
        },
    );
    let keys: Vec<String> = rows
        .iter()
        .map(|r| format!("{}/{}", r["survey_id"], r["response_id"]))
        .collect();
    let unique: std::collections::BTreeSet<&String> = keys.iter().collect();
    assert_eq!(unique.len(), keys.len(), "a response was listed twice");
    for i in 0..60 {
        let id = format!("r-{i:03}");
        assert!(
            rows.iter().any(|r| r["response_id"] == id.as_str()),
            "{id} was skipped"
        );
    }
    assert!(
        rows.iter().all(|r| r["response_id"] != "r-globex"),
        "another workspace's response was listed"
    );
    wait_for("globex's response folded", || {
        read(
            &server,
            "/v1/workspaces/globex/responses",
            Some(token("globex")),
        )
        .body["responses"][0]["response_id"]
            == "r-globex"
    });

    // From here on nothing arrives: wait until everything sent is folded.
    wait_for("every response folded", || {
        read(
            &server,
            "/v1/workspaces/acme/responses?limit=1000",
            Some(token("acme")),
        )
        .body["responses"]
            .as_array()
            .is_some_and(|r| r.len() == more)
    });

    // Filters: one survey, a time window.
    let s1 = every_page(
        &server,
        "/v1/workspaces/acme/responses?survey_id=s1&from=2026-03-01&to=2026-03-08&limit=5",
        &mut |_| {},
    );
    assert!(!s1.is_empty());
    assert!(s1.iter().all(
        |r| r["survey_id"] == "s1" && r["timestamp"].as_str().is_some_and(|t| t < "2026-03-08")
    ));

    // A device's responses are its user's.
    let of_user = every_page(
        &server,
        "/v1/workspaces/acme/profiles/user:u-1/responses?limit=4",
        &mut |_| {},
    );
    let of_device = every_page(
        &server,
        "/v1/workspaces/acme/profiles/anonymous:d-1/responses?limit=4",
        &mut |_| {},
    );
    assert!(!of_user.is_empty());
    assert_eq!(of_user, of_device);

    // CSV, read back by Python's csv module: the same rows, a column per answer key.
    let auth = format!("Bearer {}", token("acme"));
    let csv = agent()
        .get(&server.url("/v1/workspaces/acme/responses?survey_id=s2&limit=1000"))
        .set("Authorization", &auth)
        .set("Accept", "text/csv")
        .call()
        .expect("CSV answer");
    assert!(csv.content_type().starts_with("text/csv"));
    let text = csv.into_string().expect("text");
    let parsed = parse_csv(&text);
    let json_rows = every_page(
        &server,
        "/v1/workspaces/acme/responses?survey_id=s2&limit=1000",
        &mut |_| {},
    );
    assert_eq!(parsed.len(), json_rows.len());
    for (csv_row, json_row) in parsed.iter().zip(&json_rows) {
        assert_eq!(csv_row["response_id"], json_row["response_id"]);
        assert_eq!(csv_row["answers.comment"], json_row["answers"]["comment"]);
        assert_eq!(
            csv_row["answers.score"],
            json_row["answers"]["score"].to_string()
        );
    }
    let bad = read(
        &server,
        "/v1/workspaces/acme/responses?cursor=nope",
        Some(token("acme")),
    );
    assert_eq!(
        (bad.status, bad.body["error"]["field"].clone()),
        (400, json!("cursor"))
    );
    let bad = read(
        &server,
        "/v1/workspaces/acme/responses?limit=0",
        Some(token("acme")),
    );
    assert_eq!(
        (bad.status, bad.body["error"]["field"].clone()),
        (400, json!("limit"))
    );
    let (status, log) = server.stop();
    assert!(status.success(), "{log}");

    // The CLI lists the same responses.
    let cli = idfold.ok(
        "responses",
        &["--workspace", "acme", "--survey-id", "s2", "--csv"],
    );
    let from_cli = parse_csv(&cli);
    assert_eq!(
        from_cli.len(),
        (0..more).filter(|i| i % 3 == 2).count(),
        "every s2 response sent, folded by the clean stop"
    );
    for row in &json_rows {
        assert!(from_cli
            .iter()
            .any(|c| c["response_id"] == row["response_id"]));
    }
}

/// Rows of a CSV text as maps, parsed by Python's csv module.
fn parse_csv(text: &str) -> Vec<serde_json::Map<String, Value>> {
    let mut python = std::process::Command::new("python3");
    python.args([
        "-c",
        "import csv, json, sys; print(json.dumps(list(csv.DictReader(sys.stdin))))",
    ]);
    let out = harness::run_with_stdin(python, text.as_bytes());
    assert!(out.status.success());
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).expect("JSON");
    rows.into_iter()
        .filter_map(|r| r.as_object().cloned())
        .collect()
}

fn days_ago(days: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos() as i64;
    idfold_events::format_nanos(now - days * 86_400 * 1_000_000_000)
}

fn event(n: usize, extra: Value) -> String {
    let mut e = json!({"message_id": format!("seg-{n}")});
    if let (Some(m), Some(x)) = (e.as_object_mut(), extra.as_object()) {
        m.extend(x.clone());
    }
    e.to_string()
}

fn segment_events() -> Vec<String> {
    let mut events = vec![
        json!({"type": "identify", "user_id": "u-ann", "anonymous_id": "d-ann", "timestamp": days_ago(60), "traits": {"plan": "pro", "age": 34}}),
        json!({"type": "identify", "user_id": "u-bob", "timestamp": days_ago(60), "traits": {"plan": "free", "age": 19}}),
        json!({"type": "identify", "user_id": "u-cy", "timestamp": days_ago(60), "traits": {"plan": "pro", "name": "Cy Tan"}}),
        json!({"type": "survey", "user_id": "u-ann", "timestamp": days_ago(2), "survey_id": "nps", "action": "shown"}),
        json!({"type": "track", "user_id": "u-bob", "timestamp": days_ago(40), "event": "Exported"}),
        json!({"type": "survey", "user_id": "u-bob", "timestamp": days_ago(1), "survey_id": "nps", "action": "responded", "answers": {"score": 9}}),
        json!({"type": "survey", "anonymous_id": "d-anon", "timestamp": days_ago(0), "survey_id": "nps", "action": "shown"}),
    ];
    for _ in 0..3 {
        events.push(json!({"type": "track", "user_id": "u-ann", "timestamp": days_ago(0), "event": "Exported"}));
    }
    for _ in 0..5 {
        events.push(json!({"type": "track", "anonymous_id": "d-anon", "timestamp": days_ago(0), "event": "Exported"}));
    }
    events
        .into_iter()
        .enumerate()
        .map(|(n, e)| event(n, e))
        .collect()
}

fn segment_request(
    server: &Server,
    method: &str,
    path: &str,
    body: &str,
    workspace: &str,
) -> Reply {
    let auth = format!("Bearer {}", token(workspace));
    request(
        &agent(),
        method,
        &server.url(path),
        &[("Authorization", &auth)],
        body.as_bytes(),
    )
}

#[test]
fn segments_hold_the_identified_profiles_their_filters_say_and_point_at_bad_filters() {
    let idfold = Idfold::new();
    let config = fixture("serve.toml");
    let server = Server::start(&idfold, &["--config", config.to_str().expect("UTF-8")], &[]);
    let events = segment_events();
    send(&server, &events);
    // A pro user of another workspace: never a member of acme's segments.
    let theirs = json!({"type": "identify", "message_id": "seg-globex", "user_id": "u-zed", "timestamp": days_ago(1), "traits": {"plan": "pro", "age": 50}});
    send_events(&server, "globex", &[theirs.to_string()]);
    wait_for("globex's user folded", || {
        read(
            &server,
            "/v1/workspaces/globex/profiles/user:u-zed",
            Some(token("globex")),
        )
        .status
            == 200
    });
    wait_for("the segment events folded", || {
        read(
            &server,
            "/v1/workspaces/acme/profiles/lookup?anonymous_id=d-anon",
            Some(token("acme")),
        )
        .body["event_counts"]["track"]
            == 5
            && read(
                &server,
                "/v1/workspaces/acme/profiles/lookup?user_id=u-ann",
                Some(token("acme")),
            )
            .body["event_counts"]["track"]
                == 3
    });

    let segments = [
        (
            "pro",
            json!({"trait": "plan", "eq": "pro"}),
            vec!["user:u-ann", "user:u-cy"],
        ),
        (
            "active-exporters",
            json!({"event": "Exported", "count_at_least": 2, "within_days": 7}),
            vec!["user:u-ann"],
        ),
        (
            "nps-unanswered",
            json!({"all": [{"survey": "nps", "action": "shown", "when": "ever"}, {"survey": "nps", "action": "responded", "when": "never"}]}),
            vec!["user:u-ann"],
        ),
        (
            "not-pro",
            json!({"not": {"trait": "plan", "eq": "pro"}}),
            vec!["user:u-bob"],
        ),
        (
            "adults-or-responders",
            json!({"any": [{"trait": "age", "gte": 21}, {"survey": "nps", "action": "responded", "within_days": 3}]}),
            vec!["user:u-ann", "user:u-bob"],
        ),
        (
            "long-time-ago",
            json!({"first_seen": {"before": "2000-01-01T00:00:00Z"}}),
            vec![],
        ),
    ];
    for (name, filter, _) in &segments {
        let path = format!("/v1/workspaces/acme/segments/{name}");
        let put = segment_request(&server, "PUT", &path, &filter.to_string(), "acme");
        assert_eq!(put.status, 200, "{put:?}");
        let got = segment_request(&server, "GET", &path, "", "acme");
        assert_eq!(got.body["filter"], *filter);
    }
    for (name, _, expected) in &segments {
        // Paged one by one: every member once, the total on every page.
        let mut ids = Vec::new();
        let mut cursor = String::new();
        loop {
            let path = format!("/v1/workspaces/acme/segments/{name}/members?limit=1{cursor}");
            let page = segment_request(&server, "GET", &path, "", "acme");
            assert_eq!(page.status, 200, "{page:?}");
            assert_eq!(page.body["total"], expected.len(), "{name}");
            ids.extend(
                page.body["members"]
                    .as_array()
                    .expect("members")
                    .iter()
                    .map(|m| m["id"].as_str().unwrap_or("").to_owned()),
            );
            match page.body["next_cursor"].as_str() {
                Some(next) => cursor = format!("&cursor={next}"),
                None => break,
            }
        }
        assert_eq!(&ids, expected, "{name}");
    }
    // The segments of one profile; a device resolves to its user; an
    // anonymous visitor is in none, however many events it has.
    let of = |id: &str| {
        segment_request(
            &server,
            "GET",
            &format!("/v1/workspaces/acme/profiles/{id}/segments"),
            "",
            "acme",
        )
        .body["segments"]
            .clone()
    };
    let ann = json!([
        "active-exporters",
        "adults-or-responders",
        "nps-unanswered",
        "pro"
    ]);
    assert_eq!(of("user:u-ann"), ann);
    assert_eq!(of("anonymous:d-ann"), ann);
    assert_eq!(of("anonymous:d-anon"), json!([]));

    // A filter that does not parse: 400 pointing at the bad part.
    let bad = segment_request(
        &server,
        "PUT",
        "/v1/workspaces/acme/segments/bad",
        r#"{"all": [{"trait": "plan", "eq": "pro"}, {"event": "E", "within_days": "week"}]}"#,
        "acme",
    );
    assert_eq!(
        (
            bad.status,
            bad.body["error"]["code"].clone(),
            bad.body["error"]["field"].clone()
        ),
        (400, json!("invalid_filter"), json!("/all/1/within_days")),
        "{bad:?}"
    );
    let bad = segment_request(
        &server,
        "PUT",
        "/v1/workspaces/acme/segments/bad",
        "{not json",
        "acme",
    );
    assert_eq!(bad.body["error"]["code"], "invalid_filter");
    let bad = segment_request(
        &server,
        "PUT",
        "/v1/workspaces/acme/segments/bad%20name",
        "{}",
        "acme",
    );
    assert_eq!(bad.body["error"]["field"], "name");
    // Another workspace's token sees nothing of these.
    let other = segment_request(
        &server,
        "GET",
        "/v1/workspaces/acme/segments/pro/members",
        "",
        "globex",
    );
    assert_eq!(other.status, 403);
    let list = segment_request(
        &server,
        "GET",
        "/v1/workspaces/globex/segments",
        "",
        "globex",
    );
    assert_eq!(list.body["segments"], json!([]));
    // Deleting.
    assert_eq!(
        segment_request(
            &server,
            "DELETE",
            "/v1/workspaces/acme/segments/pro",
            "",
            "acme"
        )
        .status,
        204
    );
    assert_eq!(
        segment_request(
            &server,
            "GET",
            "/v1/workspaces/acme/segments/pro",
            "",
            "acme"
        )
        .status,
        404
    );
    assert_eq!(
        segment_request(
            &server,
            "DELETE",
            "/v1/workspaces/acme/segments/pro",
            "",
            "acme"
        )
        .status,
        404
    );
    let (status, log) = server.stop();
    assert!(status.success(), "{log}");
}

#[test]
fn every_read_route_refuses_another_workspace_s_token_the_same_way() {
    let idfold = Idfold::new();
    let config = fixture("serve.toml");
    let server = Server::start(&idfold, &["--config", config.to_str().expect("UTF-8")], &[]);
    send_sample(&server);
    let put = segment_request(
        &server,
        "PUT",
        "/v1/workspaces/acme/segments/all-pro",
        r#"{"trait": "plan", "eq": "pro"}"#,
        "acme",
    );
    assert_eq!(put.status, 200);
    let routes = [
        ("GET", "/v1/workspaces/acme/mau?month=2026-01"),
        ("GET", "/v1/workspaces/acme/mau?from=2026-01&to=2026-02"),
        (
            "GET",
            "/v1/workspaces/acme/profiles/lookup?anonymous_id=device-1",
        ),
        ("GET", "/v1/workspaces/acme/profiles/anonymous:device-1"),
        ("GET", "/v1/workspaces/acme/profiles/user:nobody"),
        ("GET", "/v1/workspaces/acme/responses"),
        (
            "GET",
            "/v1/workspaces/acme/profiles/anonymous:device-1/responses",
        ),
        ("GET", "/v1/workspaces/acme/segments"),
        ("GET", "/v1/workspaces/acme/segments/all-pro"),
        ("PUT", "/v1/workspaces/acme/segments/all-pro"),
        ("DELETE", "/v1/workspaces/acme/segments/all-pro"),
        ("GET", "/v1/workspaces/acme/segments/all-pro/members"),
        (
            "GET",
            "/v1/workspaces/acme/segments/no-such-segment/members",
        ),
        (
            "GET",
            "/v1/workspaces/acme/profiles/anonymous:device-1/segments",
        ),
    ];
    let mut answers = Vec::new();
    for (method, path) in routes {
        let reply = segment_request(
            &server,
            method,
            path,
            r#"{"trait": "plan", "eq": "free"}"#,
            "globex",
        );
        assert_eq!(reply.status, 403, "{method} {path}: {reply:?}");
        answers.push(reply.body["error"]["code"].clone());
        // The workspace's own token still gets in.
        if method == "GET" {
            let own = segment_request(&server, method, path, "", "acme");
            assert_ne!(own.status, 403, "{method} {path}");
        }
    }
    assert!(answers.iter().all(|a| *a == "forbidden"));
    // The segment is untouched by the other workspace's PUT and DELETE.
    let kept = segment_request(
        &server,
        "GET",
        "/v1/workspaces/acme/segments/all-pro",
        "",
        "acme",
    );
    assert_eq!(kept.body["filter"], json!({"trait": "plan", "eq": "pro"}));
    let (status, log) = server.stop();
    assert!(status.success(), "{log}");
}

#[test]
fn a_busy_workspace_s_point_reads_wait_their_turn_and_are_never_refused() {
    // Scans are bounded per workspace; the read that decides whether to
    // show a survey is not: forty at once of one workspace all answer.
    let idfold = Idfold::new();
    let config = fixture("serve.toml");
    let server = Server::start(&idfold, &["--config", config.to_str().expect("UTF-8")], &[]);
    send_sample(&server);
    let path = "/v1/workspaces/acme/mau?month=2026-01";
    wait_for("the fold to reach the API", || {
        read(&server, path, Some(token("acme"))).status == 200
    });
    let url = server.url(path);
    let auth = format!("Bearer {}", token("acme"));
    let threads: Vec<_> = (0..40)
        .map(|_| {
            let (url, auth) = (url.clone(), auth.clone());
            std::thread::spawn(move || {
                let client = harness::http::agent();
                (0..10)
                    .map(|_| {
                        harness::http::request(
                            &client,
                            "GET",
                            &url,
                            &[("Authorization", &auth)],
                            b"",
                        )
                        .status
                    })
                    .collect::<Vec<u16>>()
            })
        })
        .collect();
    for thread in threads {
        let statuses = thread.join().expect("a client");
        assert!(
            statuses.iter().all(|s| *s == 200),
            "{statuses:?}\n{}",
            server.log()
        );
    }
}
