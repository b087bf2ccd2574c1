//! The dashboard in real headless Chromium: it signs in with a read token,
//! the page loads with no console error and fetches nothing but itself,
//! the bars' numbers are the API's, drawn to scale, the tables match the
//! API, and a screenshot is kept in `target/test-artifacts/dashboard.png`.

mod harness;

use std::path::Path;
use std::process::Command;

use harness::http::{call, post, read_token, send_events, Server};
use harness::{fixture, fixture_lines, wait_for, Idfold};
use serde_json::{json, Value};

#[test]
fn the_dashboard_shows_the_api_s_numbers_in_chromium_with_no_console_errors() {
    let idfold = Idfold::new();
    let config = fixture("serve.toml");
    let server = Server::start(&idfold, &["--config", config.to_str().expect("UTF-8")], &[]);
    send_events(&server, "acme", &fixture_lines("erasure.ndjson", "acme"));
    send_events(
        &server,
        "globex",
        &fixture_lines("erasure.ndjson", "globex"),
    );
    let token = read_token("acme");
    let segment = request_put(
        &server,
        "/v1/workspaces/acme/segments/pro_users",
        token,
        &json!({"trait": "plan", "eq": "pro"}),
    );
    assert_eq!(segment, 200);
    let mau_path = "/v1/workspaces/acme/mau?from=2026-01&to=2026-03";
    let mut rows = Value::Null;
    wait_for("the fixture to be folded", || {
        rows = call(&server, "GET", mau_path, Some(token)).body["rows"].clone();
        rows[2]["identified"] == 1
    });

    // A wrong token gets the sign-in page again, with a 401.
    let refused = post(
        &server.url("/dashboard/session"),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"token=rt_nobody_0123456789abcdef",
    );
    assert_eq!(refused.status, 401);

    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).expect("artifact directory");
    let screenshot = artifacts.join("dashboard.png");
    let _ = std::fs::remove_file(&screenshot);
    let out = Command::new("node")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/dashboard.mjs"))
        .args([
            &server.url("/"),
            token,
            "alice@example.com",
            screenshot.to_str().expect("UTF-8"),
        ])
        .output()
        .expect("node runs (tests/run.sh installs Playwright's driver with npm)");
    assert!(
        out.status.success(),
        "the browser run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).expect("the script's JSON");

    assert_eq!(seen["errors"], json!([]), "console errors: {seen}");
    for url in seen["requests"].as_array().expect("requests") {
        let url = url.as_str().unwrap_or_default();
        assert!(url.starts_with(&server.url("/")), "fetched {url}");
    }
    assert!(std::fs::metadata(&screenshot).is_ok_and(|m| m.len() > 10_000));

    // The bars are the API's rows, and drawn to scale.
    let bars = seen["bars"].as_array().expect("bars");
    let api = rows.as_array().expect("rows");
    assert_eq!(bars.len(), api.len());
    for (bar, row) in bars.iter().zip(api) {
        assert_eq!(bar["month"], row["month"]);
        for count in ["identified", "anonymous", "total"] {
            assert_eq!(bar[count], row[count], "{count} of {}", row["month"]);
        }
    }
    let drawn = |bar: &Value, i: usize| bar["drawn"][i].as_f64().unwrap_or(0.0);
    let per_user = drawn(&bars[0], 0) / bars[0]["identified"].as_f64().unwrap_or(1.0);
    assert!(per_user > 1.0, "January's bar is painted: {}", bars[0]);
    for bar in bars {
        for (i, count) in ["identified", "anonymous"].iter().enumerate() {
            let expected = bar[*count].as_f64().unwrap_or(0.0) * per_user;
            assert!(
                (drawn(bar, i) - expected).abs() < 1.0,
                "{count} drawn {} for {} users: {bar}",
                drawn(bar, i),
                bar[*count]
            );
        }
    }
    // The table says the same, newest first.
    let table: Vec<Value> = api
        .iter()
        .rev()
        .map(|r| {
            json!([
                r["month"],
                r["identified"].to_string(),
                r["anonymous"].to_string(),
                r["total"].to_string()
            ])
        })
        .collect();
    assert_eq!(seen["table"], json!(table));

    // Responses newest first; segments with the API's member count.
    let responses = seen["responses"].as_array().expect("responses");
    assert_eq!(responses.len(), 2, "{responses:?}");
    assert_eq!(responses[0][1], "nps");
    assert_eq!(responses[0][2], "user:bob");
    let members = call(
        &server,
        "GET",
        "/v1/workspaces/acme/segments/pro_users/members",
        Some(token),
    );
    assert_eq!(
        seen["segments"],
        json!([["pro_users", members.body["total"].to_string()]])
    );
    // The lookup shows the API's profile.
    let profile = call(
        &server,
        "GET",
        "/v1/workspaces/acme/profiles/lookup?email=alice@example.com",
        Some(token),
    );
    assert_eq!(seen["profile"], profile.body);
    assert_eq!(seen["title"], "idfold · acme");
}

fn request_put(server: &Server, path: &str, token: &str, body: &Value) -> u16 {
    let auth = format!("Bearer {token}");
    harness::http::request(
        &harness::http::agent(),
        "PUT",
        &server.url(path),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body.to_string().as_bytes(),
    )
    .status
}
