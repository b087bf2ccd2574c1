//! The dashboard in real headless Chromium: it signs in with a read token,
//! the page loads with no console error and fetches nothing but itself,
//! the bars' numbers are the API's, drawn to scale, the tables match the
//! API, and a screenshot is kept in `target/test-artifacts/dashboard.png`;
//! sign-out ends the session, and a form on another site cannot sign in.
//! Over plain HTTP: the session cookie is not the token and dies at
//! sign-out, posts from another origin are refused, and every response of
//! the server carries the security headers.

mod harness;

use std::path::Path;
use std::process::Command;

use harness::http::{
    basic, call, post, read_token, request, send_events, write_key, Reply, Server,
};
use harness::{fixture, fixture_lines, wait_for, Idfold};
use serde_json::{json, Value};

#[test]
fn the_dashboard_shows_the_api_s_numbers_in_chromium_with_no_console_errors() {
    let idfold = Idfold::new();
    let config = fixture("serve.toml");
    let server = Server::start(&idfold, &["--config", config.to_str().expect("UTF-8")], &[]);
    let _log = LogOnFailure(&server);
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

    // The browser holds a session id, not the token, out of scripts' reach.
    let cookie = &seen["cookie"];
    assert_eq!(cookie["httpOnly"], true, "{seen}");
    assert_eq!(cookie["sameSite"], "Strict", "{seen}");
    assert_eq!(cookie["secure"], false, "plain HTTP by default: {seen}");
    let value = cookie["value"].as_str().unwrap_or_default();
    assert!(value.len() == 64 && !value.contains(token), "{seen}");
    // Signed out, and the old cookie put back opens nothing.
    assert_eq!(seen["signedOut"], true, "{seen}");
    assert_eq!(seen["oldCookie"]["status"], 401, "{seen}");
    assert_eq!(seen["oldCookie"]["signInForm"], true, "{seen}");
    // Another site can neither frame the dashboard nor sign a visitor in.
    assert_eq!(seen["framed"]["form"], false, "{seen}");
    assert!(
        seen["foreign"].as_array().is_some_and(|e| e
            .iter()
            .any(|e| e.as_str().is_some_and(|e| e.contains("frame-ancestors")))),
        "Chromium names the refusal: {seen}"
    );
    assert_eq!(seen["csrf"]["status"], 403, "{seen}");
    assert_eq!(
        seen["csrf"]["body"]["error"]["code"], "cross_origin",
        "{seen}"
    );
    assert_eq!(seen["csrf"]["signedIn"], false, "{seen}");
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

/// An agent that shows redirects instead of following them, so the
/// sign-in's own answer (303 and its cookie) is what the test reads.
fn no_redirects() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .redirects(0)
        .timeout(std::time::Duration::from_secs(60))
        .build()
}

fn sign_in(server: &Server, token: &str, extra: &[(&str, &str)]) -> Reply {
    let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded")];
    headers.extend_from_slice(extra);
    request(
        &no_redirects(),
        "POST",
        &server.url("/dashboard/session"),
        &headers,
        format!("token={token}").as_bytes(),
    )
}

/// The session id a sign-in's `Set-Cookie` holds.
fn session_of(reply: &Reply) -> String {
    let cookie = reply.header("set-cookie").unwrap_or_default();
    let value = cookie
        .strip_prefix("idfold_session=")
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("a session cookie in {reply:?}"));
    value.to_owned()
}

fn open_dashboard(server: &Server, session: &str) -> Reply {
    let cookie = format!("idfold_session={session}");
    request(
        &no_redirects(),
        "GET",
        &server.url("/"),
        &[("Cookie", &cookie)],
        b"",
    )
}

fn sign_out(server: &Server, session: &str, extra: &[(&str, &str)]) -> Reply {
    let cookie = format!("idfold_session={session}");
    let mut headers = vec![("Cookie", cookie.as_str())];
    headers.extend_from_slice(extra);
    request(
        &no_redirects(),
        "POST",
        &server.url("/dashboard/logout"),
        &headers,
        b"",
    )
}

fn is_sign_in_page(reply: &Reply) -> bool {
    reply.text.contains("action=\"/dashboard/session\"") && !reply.text.contains("idfold · ")
}

/// Prints the server's stderr if the test fails while this is held.
struct LogOnFailure<'a>(&'a Server);

impl Drop for LogOnFailure<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("idfold serve's stderr:\n{}", self.0.log());
        }
    }
}

fn serve_toml(idfold: &Idfold, args: &[&str]) -> Server {
    let config = fixture("serve.toml");
    let mut all = vec!["--config", config.to_str().expect("UTF-8")];
    all.extend_from_slice(args);
    Server::start(idfold, &all, &[])
}

#[test]
fn the_session_cookie_is_a_random_id_that_signing_out_ends_on_the_server() {
    let idfold = Idfold::new();
    let server = serve_toml(&idfold, &[]);
    let _log = LogOnFailure(&server);
    let token = read_token("acme");

    let signed_in = sign_in(&server, token, &[]);
    assert_eq!(signed_in.status, 303, "{signed_in:?}\n{}", server.log());
    assert_eq!(signed_in.header("location"), Some("/"));
    let cookie = signed_in
        .header("set-cookie")
        .unwrap_or_default()
        .to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=28800"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP by default: {cookie}"
    );
    assert!(
        !cookie.contains(token),
        "the token is not the cookie: {cookie}"
    );
    let session = session_of(&signed_in);
    assert_eq!(session.len(), 64, "{session}");

    let page = open_dashboard(&server, &session);
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("idfold · acme"), "{}", page.text);
    // The token itself, as a cookie, opens nothing.
    let forged = open_dashboard(&server, token);
    assert_eq!(forged.status, 401);
    assert!(is_sign_in_page(&forged), "{}", forged.text);

    // A second browser signed in: signing the first out leaves it be.
    let other = session_of(&sign_in(&server, token, &[]));
    assert_ne!(other, session);
    let signed_out = sign_out(&server, &session, &[]);
    assert_eq!(signed_out.status, 303, "{signed_out:?}");
    let removal = signed_out.header("set-cookie").unwrap_or_default();
    assert!(
        removal.starts_with("idfold_session=;") && removal.contains("Max-Age=0"),
        "{removal}"
    );
    // The old cookie, kept by whoever copied it, opens nothing any more.
    let after = open_dashboard(&server, &session);
    assert_eq!(after.status, 401);
    assert!(is_sign_in_page(&after), "{}", after.text);
    assert!(
        after
            .header("set-cookie")
            .is_some_and(|c| c.contains("Max-Age=0")),
        "the browser is told to drop it: {after:?}"
    );
    assert!(open_dashboard(&server, &other)
        .text
        .contains("idfold · acme"));

    // No cookie at all: the sign-in page, as ever.
    let fresh = request(&no_redirects(), "GET", &server.url("/"), &[], b"");
    assert_eq!(fresh.status, 200);
    assert!(is_sign_in_page(&fresh), "{}", fresh.text);
}

#[test]
fn dashboard_posts_from_another_origin_are_refused() {
    let idfold = Idfold::new();
    let server = serve_toml(&idfold, &[]);
    let _log = LogOnFailure(&server);
    let token = read_token("acme");
    let own_origin = server.base.clone();
    let own_page = server.url("/");

    for forged in [
        vec![("Origin", "http://evil.example")],
        vec![("Origin", "null")],
        vec![("Referer", "http://evil.example/form.html")],
        vec![("Sec-Fetch-Site", "cross-site")],
        vec![
            ("Origin", "http://evil.example"),
            ("Referer", own_page.as_str()),
        ],
    ] {
        let refused = sign_in(&server, token, &forged);
        assert_eq!(refused.status, 403, "{forged:?}: {refused:?}");
        assert_eq!(refused.code(), "cross_origin", "{refused:?}");
        assert!(refused.body["error"]["message"].is_string());
        assert_eq!(
            refused.header("set-cookie"),
            None,
            "no session: {refused:?}"
        );
    }

    let own = sign_in(
        &server,
        token,
        &[("Origin", &own_origin), ("Sec-Fetch-Site", "same-origin")],
    );
    assert_eq!(own.status, 303, "{own:?}");
    let session = session_of(&own);
    let by_referer = sign_in(&server, token, &[("Referer", &own_page)]);
    assert_eq!(by_referer.status, 303, "{by_referer:?}");

    // Sign-out too: another site cannot end a session either.
    let refused = sign_out(&server, &session, &[("Origin", "http://evil.example")]);
    assert_eq!(refused.status, 403, "{refused:?}");
    assert_eq!(refused.code(), "cross_origin");
    assert!(open_dashboard(&server, &session)
        .text
        .contains("idfold · acme"));
    let ended = sign_out(&server, &session, &[("Origin", &own_origin)]);
    assert_eq!(ended.status, 303, "{ended:?}");
    assert_eq!(open_dashboard(&server, &session).status, 401);
}

#[test]
fn the_cookie_is_secure_when_configured_so_flag_over_file() {
    let idfold = Idfold::new();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = dir.path().join("idfold.toml");
    let serve = std::fs::read_to_string(fixture("serve.toml")).expect("fixture");
    std::fs::write(
        &config,
        format!("[dashboard]\nsecure_cookie = true\n{serve}"),
    )
    .expect("written");
    let config = config.to_str().expect("UTF-8");
    let token = read_token("acme");
    let cookie_of = |server: &Server| {
        let reply = sign_in(server, token, &[]);
        assert_eq!(reply.status, 303, "{reply:?}\n{}", server.log());
        reply.header("set-cookie").unwrap_or_default().to_owned()
    };
    let secure = |cookie: &str| cookie.split("; ").any(|a| a == "Secure");

    let from_file = Server::start(&idfold, &["--config", config], &[]);
    let cookie = cookie_of(&from_file);
    assert!(secure(&cookie), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    drop(from_file);

    let flag_off = Server::start(
        &idfold,
        &["--config", config, "--dashboard-secure-cookie=false"],
        &[],
    );
    assert!(!secure(&cookie_of(&flag_off)));
    drop(flag_off);

    let from_env = serve_toml_env(&idfold, &[("IDFOLD_DASHBOARD_SECURE_COOKIE", "true")]);
    assert!(secure(&cookie_of(&from_env)));
    drop(from_env);

    let flag_on = serve_toml(&idfold, &["--dashboard-secure-cookie"]);
    assert!(secure(&cookie_of(&flag_on)));
}

fn serve_toml_env(idfold: &Idfold, env: &[(&str, &str)]) -> Server {
    let config = fixture("serve.toml");
    Server::start(idfold, &["--config", config.to_str().expect("UTF-8")], env)
}

#[test]
fn every_response_says_nosniff_and_no_read_is_stored_or_framed() {
    let idfold = Idfold::new();
    let server = serve_toml(&idfold, &["--metrics-addr", "127.0.0.1:0"]);
    let _log = LogOnFailure(&server);
    let token = read_token("acme");
    let metrics = {
        let mut url = None;
        wait_for("the metrics address in the log", || {
            url = server.log().lines().find_map(|l| {
                let (_, rest) = l.split_once("metrics on ")?;
                rest.split(['"', ' ']).next().map(str::to_owned)
            });
            url.is_some()
        });
        url.unwrap_or_default()
    };
    let agent = no_redirects();
    let get = |url: &str, headers: &[(&str, &str)]| request(&agent, "GET", url, headers, b"");
    let bearer = format!("Bearer {token}");
    let key = basic(write_key("acme"));

    let answers = [
        ("a 404", get(&server.url("/no/such/route"), &[])),
        ("/healthz", get(&server.url("/healthz"), &[])),
        ("/metrics on its own port", get(&metrics, &[])),
        (
            "an intake 400",
            request(
                &agent,
                "POST",
                &server.url("/v1/events"),
                &[("Authorization", &key)],
                b"{not json",
            ),
        ),
        ("an intake 401", post(&server.url("/v1/events"), &[], b"{}")),
        (
            "a read 401",
            get(&server.url("/v1/workspaces/acme/mau?month=2026-01"), &[]),
        ),
        (
            "a read 405",
            request(
                &agent,
                "PATCH",
                &server.url("/v1/workspaces/acme/mau"),
                &[],
                b"",
            ),
        ),
        (
            "read JSON",
            get(
                &server.url("/v1/workspaces/acme/mau?month=2026-01"),
                &[("Authorization", &bearer)],
            ),
        ),
        (
            "read CSV",
            get(
                &server.url("/v1/workspaces/acme/responses"),
                &[("Authorization", &bearer), ("Accept", "text/csv")],
            ),
        ),
        ("the sign-in page", get(&server.url("/"), &[])),
        (
            "a refused sign-in",
            sign_in(&server, "rt_nobody_0123456789abcdef", &[]),
        ),
        (
            "a cross-origin sign-in",
            sign_in(&server, token, &[("Origin", "http://evil.example")]),
        ),
    ];
    for (what, reply) in &answers {
        assert_eq!(
            reply.header("x-content-type-options"),
            Some("nosniff"),
            "{what}: {reply:?}"
        );
    }
    let status = |what: &str| {
        answers
            .iter()
            .find(|(w, _)| *w == what)
            .map_or(0, |(_, r)| r.status)
    };
    assert_eq!(status("a 404"), 404);
    assert_eq!(status("an intake 400"), 400);
    assert_eq!(status("read JSON"), 200);
    assert_eq!(status("read CSV"), 200);
    assert_eq!(status("/metrics on its own port"), 200);
    for (what, reply) in &answers {
        if what.starts_with("read") || what.starts_with("the sign-in") {
            assert_eq!(
                reply.header("cache-control"),
                Some("no-store"),
                "{what}: {reply:?}"
            );
        }
    }
    let csv = &answers[8].1;
    assert!(
        csv.header("content-type")
            .is_some_and(|t| t.starts_with("text/csv")),
        "{csv:?}"
    );

    // The dashboard, signed in: not stored, not framed, no script at all.
    let session = session_of(&sign_in(&server, token, &[]));
    let page = open_dashboard(&server, &session);
    assert!(page.text.contains("idfold · acme"));
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    let policy = page.header("content-security-policy").unwrap_or_default();
    for directive in [
        "frame-ancestors 'none'",
        "default-src 'none'",
        "form-action 'self'",
    ] {
        assert!(policy.contains(directive), "{directive} in {policy}");
    }
}
