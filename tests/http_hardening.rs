//! The front door against slow clients, forged fields and bad bodies, over
//! real sockets with the real binary: connections that make no progress
//! are closed and cannot keep others from being served; one workspace's
//! slow clients leave another's requests answered; received_at is the
//! server's; write keys never reach the dead letters; whole-body refusals
//! are counted and dead-lettered; every error answer is JSON.

mod harness;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use harness::http::{agent, basic, get, post, request, Server};
use harness::{fixture, wait_for, Idfold};
use serde_json::{json, Value};

const ACME_KEY: &str = "wk_acme_test_0123456789";
const BETA_KEY: &str = "wk_beta_test_0123456789";

/// `serve --config tests/fixtures/serve.toml EXTRA...`.
fn serve(idfold: &Idfold, extra: &[&str]) -> Server {
    let config = fixture("serve.toml");
    let mut args = vec!["--config", config.to_str().expect("UTF-8 path")];
    args.extend_from_slice(extra);
    Server::start(idfold, &args, &[])
}

fn address(server: &Server) -> String {
    server.base.trim_start_matches("http://").to_owned()
}

fn connect(server: &Server) -> TcpStream {
    let stream = TcpStream::connect(address(server)).expect("connects");
    // Only a guard against a test hanging for ever; every wait below ends
    // on an event (an answer, or the server closing).
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .expect("timeout set");
    stream
}

/// A connection sending acme's events to `/v1/events`, its 100-byte body
/// stopped after its first byte.
fn trickling_events(server: &Server) -> TcpStream {
    let mut stream = connect(server);
    stream
        .write_all(
            format!(
                "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Length: 100\r\n\r\n[",
                basic(ACME_KEY)
            )
            .as_bytes(),
        )
        .expect("sent");
    stream
}

/// Reads until the server closes the connection; what it sent.
fn read_to_close(stream: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            // A reset is the server closing too.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("waiting for the server to close: {e}"),
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

/// One complete answer on a kept-alive connection (by Content-Length).
fn read_answer(stream: &mut TcpStream) -> Option<(u16, String)> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&seen).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if body.len() >= length {
                let status = head.get(9..12)?.parse().ok()?;
                return Some((status, body[..length].to_owned()));
            }
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

/// The body of a raw HTTP answer, as JSON.
fn json_body(answer: &str) -> Value {
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or(Value::Null)
}

fn metrics(server: &Server) -> String {
    get(&server.url("/metrics")).text
}

/// The sum of a counter over the series whose labels include every `want`.
fn counter(text: &str, name: &str, want: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && want.iter().all(|w| l.contains(w)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn stop(server: Server) -> String {
    let (status, log) = server.stop();
    assert!(status.success(), "serve did not exit 0: {status}\n{log}");
    log
}

fn track(message_id: &str) -> Vec<u8> {
    json!({
        "type": "track", "userId": "u-1", "event": "Clicked", "messageId": message_id,
        "timestamp": "2026-10-05T12:00:00Z",
    })
    .to_string()
    .into_bytes()
}

#[test]
fn slow_clients_of_every_shape_cannot_stop_others_being_served() {
    let idfold = Idfold::new();
    let server = serve(
        &idfold,
        &[
            "--max-connections",
            "200",
            "--header-read-timeout",
            "2",
            "--keep-alive-idle",
            "5",
            "--body-progress-timeout",
            "2",
        ],
    );
    // Opened before the flood, each of one shape.
    let mut idle = connect(&server);
    let mut half_headers = connect(&server);
    half_headers
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .expect("sent");
    let mut trickled = trickling_events(&server);
    // A trickled body to a route whose body an extractor reads.
    let mut trickled_read_api = connect(&server);
    trickled_read_api
        .write_all(
            b"PUT /v1/workspaces/acme/segments/s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer rt_acme_test_0123456789\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
        )
        .expect("sent");
    let mut kept_idle = connect(&server);
    kept_idle
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("sent");
    assert_eq!(read_answer(&mut kept_idle).map(|a| a.0), Some(200));
    // A client that keeps its connection busy, before and during the flood.
    let mut regular = connect(&server);
    let mut ask_regular = |what: &str| {
        regular
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("sent");
        let answer = read_answer(&mut regular);
        assert_eq!(
            answer.as_ref().map(|a| a.0),
            Some(200),
            "{what}: {answer:?}\n{}",
            server.log()
        );
    };
    ask_regular("before the flood");

    // 600 more: idle, half-sent headers, trickled bodies; 200 is the cap.
    let mut flood = Vec::new();
    for i in 0..600 {
        let Ok(mut stream) = TcpStream::connect(address(&server)) else {
            continue;
        };
        let _ = match i % 3 {
            0 => Ok(()),
            1 => stream.write_all(b"POST /v1/track HTTP/1.1\r\nHost: x\r\nConte"),
            _ => stream.write_all(
                b"POST /v1/track HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"a\":",
            ),
        };
        flood.push(stream);
        if i % 50 == 0 {
            ask_regular("during the flood");
        }
    }
    ask_regular("with the flood open");

    // Each slow shape is closed: the body with a JSON 408.
    let answer = read_to_close(&mut trickled);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert_eq!(json_body(&answer)["code"], "body_timeout", "{answer}");
    assert!(json_body(&answer)["message"].is_string());
    let answer = read_to_close(&mut trickled_read_api);
    assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");
    assert!(json_body(&answer)["code"].is_string(), "{answer}");
    for (what, stream) in [
        ("an idle connection", &mut idle),
        ("half-sent headers", &mut half_headers),
        ("an idle keep-alive", &mut kept_idle),
    ] {
        let answer = read_to_close(stream);
        assert!(!answer.contains("200 OK"), "{what}: {answer}");
    }

    // Once the flood is closed by the server, new clients are served.
    wait_for("a new client to be served after the flood", || {
        let reply = harness::http::try_request(&agent(), "GET", &server.url("/healthz"), &[], b"");
        matches!(reply, Ok(r) if r.status == 200)
    });
    let reply = post(
        &server.url("/v1/track"),
        &[("Authorization", &basic(ACME_KEY))],
        &track("after-flood"),
    );
    assert_eq!(reply.status, 200, "{reply:?}");
    let text = metrics(&server);
    for reason in ["header_timeout", "idle_timeout", "over_limit"] {
        assert!(
            counter(
                &text,
                "idfold_http_connections_closed_total",
                &[&format!("reason=\"{reason}\"")]
            ) >= 1.0,
            "no connection closed for {reason}:\n{text}"
        );
    }
    drop(flood);
    stop(server);
}

#[test]
fn under_a_low_open_file_limit_idle_connections_cannot_stop_health_checks() {
    let idfold = Idfold::new();
    let config = fixture("serve.toml");
    // The default cap (1024) is over what `ulimit -n 512` allows: serve
    // lowers it and says so, so accept never runs out of descriptors.
    let server = Server::start_with_open_files(
        &idfold,
        &[
            "--config",
            config.to_str().expect("UTF-8 path"),
            "--header-read-timeout",
            "3",
        ],
        &[],
        Some(512),
    );
    let mut regular = connect(&server);
    let health = |stream: &mut TcpStream| {
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("sent");
        read_answer(stream).map(|a| a.0)
    };
    assert_eq!(health(&mut regular), Some(200), "{}", server.log());
    let flood: Vec<TcpStream> = (0..600)
        .filter_map(|_| TcpStream::connect(address(&server)).ok())
        .collect();
    // A kept-alive client is served with the flood open.
    assert_eq!(health(&mut regular), Some(200), "{}", server.log());
    wait_for("a new client to be served after the flood", || {
        let reply = harness::http::try_request(&agent(), "GET", &server.url("/healthz"), &[], b"");
        matches!(reply, Ok(r) if r.status == 200)
    });
    drop(flood);
    let log = stop(server);
    assert!(log.contains("open file limit"), "{log}");
    assert!(!log.contains("cannot accept connections"), "{log}");
}

#[test]
fn one_workspace_s_slow_bodies_leave_another_s_requests_answered() {
    let idfold = Idfold::new();
    // Bodies may stall for long: acme's clients hold their connections
    // for the whole test.
    let server = serve(
        &idfold,
        &["--body-progress-timeout", "600", "--body-timeout", "600"],
    );
    let mut slow = Vec::new();
    for _ in 0..256 {
        slow.push(trickling_events(&server));
    }
    // Every acme request is being read (the one the server took last is
    // past the body's first byte, since connections are served in order).
    let last = slow.last_mut().expect("one");
    last.write_all(b" ").expect("still open");
    for i in 0..20 {
        let reply = post(
            &server.url("/v1/track"),
            &[("Authorization", &basic(BETA_KEY))],
            &track(&format!("beta-{i}")),
        );
        assert_eq!(reply.status, 200, "{reply:?}\n{}", server.log());
    }
    // acme itself is still served besides its stalled clients.
    let reply = post(
        &server.url("/v1/track"),
        &[("Authorization", &basic(ACME_KEY))],
        &track("acme-fast"),
    );
    assert_eq!(reply.status, 200, "{reply:?}");
    drop(slow);
    stop(server);
}

#[test]
fn a_client_received_at_is_ignored_on_the_native_api() {
    let idfold = Idfold::new();
    let server = serve(&idfold, &[]);
    let body = [
        json!({"type": "track", "message_id": "future-received", "user_id": "u-2200",
               "event": "E", "timestamp": "2026-10-05T12:00:00Z",
               "received_at": "2200-01-01T00:00:00Z"}),
        json!({"type": "track", "message_id": "future-both", "user_id": "u-2200b",
               "event": "E", "timestamp": "2200-01-01T00:00:00Z",
               "received_at": "2200-01-01T00:00:00Z"}),
    ]
    .iter()
    .map(Value::to_string)
    .collect::<Vec<_>>()
    .join("\n");
    let reply = post(
        &server.url("/v1/events"),
        &[("Authorization", &basic(ACME_KEY))],
        body.as_bytes(),
    );
    assert!(reply.status == 200 || reply.status == 400, "{reply:?}");
    stop(server);
    // Kept with its own time: the client's receive time moved nothing.
    let kept = idfold.json(
        "profile",
        &["--workspace", "acme", "--user-id", "u-2200", "--json"],
    );
    assert_eq!(kept["first_seen"], "2026-10-05T12:00:00Z", "{kept}");
    // A timestamp in 2200 is judged against the server's clock: refused,
    // or brought back to the receive time, never in 2200.
    let future = idfold.run(
        "profile",
        &["--workspace", "acme", "--user-id", "u-2200b", "--json"],
    );
    let future = String::from_utf8_lossy(&future.stdout);
    assert!(!future.contains("\"2200-"), "{future}");
    let months = idfold.json("mau", &["--workspace", "acme", "--json"]);
    assert!(
        !months.to_string().contains("2200-"),
        "a client's clock made a month: {months}"
    );
}

#[test]
fn write_keys_never_reach_the_dead_letters_or_the_log_however_written() {
    let idfold = Idfold::new();
    let server = serve(&idfold, &[]);
    let url = |path: &str| server.url(path);
    let header = [("Authorization", basic(ACME_KEY))];
    let header: Vec<(&str, &str)> = header.iter().map(|(n, v)| (*n, v.as_str())).collect();
    // The key's name escaped: it authenticates, and the call is rejected
    // (no user), so it is dead-lettered.
    let escaped = format!(r#"{{"write\u004bey":"{ACME_KEY}","event":"E"}}"#);
    let reply = post(&url("/v1/track"), &[], escaped.as_bytes());
    assert_eq!(reply.status, 400, "{reply:?}");
    // Nested in properties and context of batch items, rejected items.
    let nested = json!({"batch": [
        {"type": "track", "event": "E", "properties": {"writeKey": ACME_KEY}},
        {"type": "track", "event": "E", "context": {"app": {"writeKey": ACME_KEY}}},
        {"type": "track", "event": "E", "write\u{004b}ey": ACME_KEY},
    ]});
    let reply = post(&url("/v1/batch"), &header, nested.to_string().as_bytes());
    assert_eq!(reply.status, 400, "{reply:?}");
    // Escaped inside a body that is not JSON as a whole.
    let truncated = format!(r#"{{"batch":[{{"write\u004bey":"{ACME_KEY}","userId":"#);
    let reply = post(&url("/v1/batch"), &header, truncated.as_bytes());
    assert_eq!(reply.status, 400, "{reply:?}");
    let log = stop(server);
    assert!(!log.contains(ACME_KEY), "the key is in the log:\n{log}");
    let out = idfold.run("dlq", &["--json"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let letters: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    assert!(
        letters.as_array().is_some_and(|l| l.len() >= 5),
        "every rejection is dead-lettered: {text}"
    );
    assert!(
        !text.contains(ACME_KEY),
        "a key in the dead letters: {text}"
    );
    assert!(
        !text.contains("wk_acme"),
        "part of a key in the dead letters: {text}"
    );
}

#[test]
fn whole_body_refusals_are_counted_and_dead_lettered_with_the_workspace() {
    let idfold = Idfold::new();
    let server = serve(&idfold, &[]);
    let key = basic(ACME_KEY);
    let auth = [("Authorization", key.as_str())];
    let oversize = vec![b' '; 600 * 1024];
    let mut invalid_utf8 = b"[{\"type\":\"track\",\"user_id\":\"".to_vec();
    invalid_utf8.extend_from_slice(&[0xff, 0xfe]);
    invalid_utf8.extend_from_slice(b"\"}]");
    // (route, headers, body, the code answered)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<u8>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "/v1/events",
            auth.to_vec(),
            b"[{\"type\": \"track\", ".to_vec(),
            "invalid_json",
        ),
        ("/v1/events", auth.to_vec(), invalid_utf8, "invalid_json"),
        ("/v1/events", auth.to_vec(), oversize, "too_large"),
        (
            "/v1/batch",
            vec![auth[0], ("Content-Encoding", "gzip")],
            b"not gzip at all".to_vec(),
            "invalid_gzip",
        ),
        (
            "/v1/batch",
            auth.to_vec(),
            b"[1, 2]".to_vec(),
            "invalid_json",
        ),
    ];
    let before = metrics(&server);
    for (path, headers, body, code) in &cases {
        let reply = post(&server.url(path), headers, body);
        assert_eq!(reply.status, 400, "{path} {code}: {reply:?}");
        assert_eq!(reply.body["code"], *code, "{reply:?}");
    }
    // Without a valid key: counted, not dead-lettered.
    let reply = post(&server.url("/v1/batch"), &[], b"{\"writeKey\": ");
    assert_eq!(reply.status, 400, "{reply:?}");
    let after = metrics(&server);
    let delta =
        |name: &str, want: &[&str]| counter(&after, name, want) - counter(&before, name, want);
    let http = ["source=\"http\""];
    assert_eq!(delta("idfold_events_received_total", &http), 6.0, "{after}");
    assert_eq!(
        delta("idfold_events_rejected_total", &http) + delta("idfold_events_accepted_total", &http),
        delta("idfold_events_received_total", &http),
        "accepted + rejected = received:\n{after}"
    );
    for (reason, n) in [
        ("invalid_json", 4.0),
        ("too_large", 1.0),
        ("invalid_gzip", 1.0),
    ] {
        assert_eq!(
            delta(
                "idfold_events_rejected_total",
                &["source=\"http\"", &format!("reason=\"{reason}\"")]
            ),
            n,
            "{reason}:\n{after}"
        );
    }
    stop(server);
    let letters = idfold.json("dlq", &["--json"]);
    let letters = letters.as_array().expect("an array");
    assert_eq!(letters.len(), 5, "{letters:?}");
    for letter in letters {
        assert_eq!(letter["workspace"], "acme", "{letter}");
        let source = letter["source"].as_str().unwrap_or("");
        assert!(
            source == "http:/v1/events" || source == "http:/v1/batch",
            "{letter}"
        );
        let kept = letter["raw"]
            .as_str()
            .map(str::len)
            .or_else(|| letter["raw_base64"].as_str().map(|b| b.len() * 3 / 4))
            .unwrap_or(0);
        assert!(kept <= 64 * 1024, "{kept} bytes kept");
    }
    let oversize = letters
        .iter()
        .find(|l| l["reason"] == "too_large")
        .expect("the oversize body");
    assert_eq!(oversize["truncated"], true);
}

#[test]
fn every_error_answer_is_json_with_code_and_message() {
    let idfold = Idfold::new();
    let server = serve(&idfold, &[]);
    let token = "Bearer rt_acme_test_0123456789";
    let check = |what: &str, status: u16, reply: &harness::http::Reply| {
        assert_eq!(reply.status, status, "{what}: {reply:?}");
        assert!(
            reply.body["code"].as_str().is_some_and(|c| !c.is_empty())
                && reply.body["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()),
            "{what}: {reply:?}"
        );
    };
    let a = agent();
    check(
        "a path that does not decode",
        400,
        &request(
            &a,
            "GET",
            &server.url("/v1/workspaces/acme/profiles/user:%FF%FE"),
            &[("Authorization", token)],
            b"",
        ),
    );
    check(
        "a sign-in form without its token",
        422,
        &request(
            &a,
            "POST",
            &server.url("/dashboard/session"),
            &[("Content-Type", "application/x-www-form-urlencoded")],
            b"nothing=here",
        ),
    );
    check("an unknown route", 404, &get(&server.url("/v2/nothing")));
    check("a wrong method", 405, &get(&server.url("/v1/track")));
    check(
        "a long URI",
        414,
        &get(&server.url(&format!("/healthz?{}", "a".repeat(10 * 1024)))),
    );
    let big = "b".repeat(40 * 1024);
    check(
        "large headers",
        431,
        &request(&a, "GET", &server.url("/healthz"), &[("X-Big", &big)], b""),
    );
    // Past hyper's own limits, and not HTTP at all: hyper's answers, in JSON.
    for (what, raw, status) in [
        (
            "a URI past 64 KiB",
            format!(
                "GET /healthz?{} HTTP/1.1\r\nHost: x\r\n\r\n",
                "a".repeat(70 * 1024)
            ),
            "414",
        ),
        (
            "headers past the read buffer",
            format!(
                "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
                "c".repeat(600 * 1024)
            ),
            "431",
        ),
        ("not HTTP", "NOT HTTP AT ALL\r\n\r\n".to_owned(), "400"),
    ] {
        let mut stream = connect(&server);
        // The server may answer and close before all is sent.
        let _ = stream.write_all(raw.as_bytes());
        let answer = read_to_close(&mut stream);
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{what}: {answer}"
        );
        let body = json_body(&answer);
        assert!(
            body["code"].is_string() && body["message"].is_string(),
            "{what}: {answer}"
        );
    }
    // The app's own 400 after an interim `100 Continue` keeps its code.
    let mut stream = connect(&server);
    stream
        .write_all(
            format!(
                "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nExpect: 100-continue\r\nConnection: close\r\nContent-Length: 3\r\n\r\n[1,",
                basic(ACME_KEY)
            )
            .as_bytes(),
        )
        .expect("sent");
    let answer = read_to_close(&mut stream);
    let last = answer.rfind("HTTP/1.1 ").map_or("", |at| &answer[at..]);
    assert!(last.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(json_body(last)["code"], "invalid_json", "{answer}");
    stop(server);
}

#[test]
fn identical_batch_items_without_message_id_are_two_events_and_a_retry_changes_nothing() {
    let idfold = Idfold::new();
    let server = serve(&idfold, &[]);
    let item = json!({"type": "track", "userId": "u-twice", "event": "Twice",
                      "timestamp": "2026-10-05T12:00:00Z"});
    let batch = json!({"batch": [item, item]}).to_string();
    for _ in 0..2 {
        let reply = post(
            &server.url("/v1/batch"),
            &[("Authorization", &basic(ACME_KEY))],
            batch.as_bytes(),
        );
        assert_eq!(
            (reply.status, reply.body["accepted"].clone()),
            (200, json!(2)),
            "{reply:?}"
        );
    }
    stop(server);
    let user = idfold.json(
        "profile",
        &["--workspace", "acme", "--user-id", "u-twice", "--json"],
    );
    assert_eq!(user["track"]["Twice"]["count"], 2, "{user}");
}

#[test]
fn a_workspace_with_too_many_reads_under_way_is_answered_503_with_retry_after() {
    // The per-workspace read bound, seen from outside: many concurrent
    // reads of one workspace get either their answer or a 503 with
    // Retry-After, never a failure of another kind; another workspace's
    // read meanwhile is answered.
    let idfold = Idfold::new();
    let server = serve(&idfold, &[]);
    let url = server.url("/v1/workspaces/acme/responses?limit=1000");
    let threads: Vec<_> = (0..40)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                request(
                    &agent(),
                    "GET",
                    &url,
                    &[("Authorization", "Bearer rt_acme_test_0123456789")],
                    b"",
                )
            })
        })
        .collect();
    let beta = request(
        &agent(),
        "GET",
        &server.url("/v1/workspaces/beta/mau?month=2026-10"),
        &[("Authorization", "Bearer rt_beta_test_0123456789")],
        b"",
    );
    assert_eq!(beta.status, 200, "{beta:?}");
    for thread in threads {
        let reply = thread.join().expect("a reply");
        match reply.status {
            200 => {}
            503 => {
                assert_eq!(reply.body["code"], "overloaded", "{reply:?}");
                assert!(reply.retry_after.is_some(), "{reply:?}");
            }
            _ => panic!("{reply:?}"),
        }
    }
    stop(server);
}
