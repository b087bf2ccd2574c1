//! Fuzzing the intake's routes in process: arbitrary and mutated bodies
//! (native events, Segment calls and batches), plain and gzip (valid,
//! corrupted, truncated), with and without a write key, on every route and
//! on paths and methods that are not routes. Whatever arrives: no panic,
//! never a 5xx, and every 4xx is JSON with a known `code` and a `message`.
//! The log behind the router is the real embedded one, on disk.

#[path = "../../../tests/fuzz_support/http.rs"]
mod fuzz_http;
#[path = "../../../tests/fuzz_support/mod.rs"]
mod fuzz_support;

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use fuzz_http::{Answer, Served};
use fuzz_support::{junk, mutated_from};
use idfold_access::{AccessConfig, WorkspaceAccess};
use idfold_events::ReasonCode;
use idfold_intake::{
    router, DurableWriter, IntakeState, Limits, Readiness, SharedDeadLetterSink, SharedEventSink,
};
use idfold_log::{DataDir, DeadLetterStore, EmbeddedLog};
use proptest::prelude::*;
use serde_json::{json, Value};

const WRITE_KEY: &str = "wk_acme_fuzz_0123456789";
/// `WRITE_KEY:` in base64, as HTTP Basic sends it.
const BASIC: &str = "Basic d2tfYWNtZV9mdXp6XzAxMjM0NTY3ODk6";

/// The codes the intake answers with (the README's list).
fn known_code(code: &str) -> bool {
    ReasonCode::parse(code).is_some()
        || [
            "missing_write_key",
            "invalid_write_key",
            "invalid_authorization",
            "unsupported_encoding",
            "invalid_gzip",
            "invalid_body",
            "body_timeout",
            "not_found",
            "method_not_allowed",
            "overloaded",
        ]
        .contains(&code)
        || fuzz_http::FRAMEWORK_CODES.contains(&code)
}

struct Ready;

impl Readiness for Ready {
    fn check(&self) -> Result<(), String> {
        Ok(())
    }
}

/// The router over a real embedded log in a temporary directory.
fn intake() -> Served {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let data = DataDir::open(dir.path(), Duration::ZERO).expect("data directory");
    let log: SharedEventSink = Arc::new(EmbeddedLog::open(&data).expect("log"));
    let letters: SharedDeadLetterSink =
        Arc::new(DeadLetterStore::open(&data).expect("dead letters"));
    let (writer, _thread) =
        DurableWriter::start(log, letters, 128, Duration::from_secs(30)).expect("writer");
    let keys = AccessConfig {
        workspaces: vec![WorkspaceAccess {
            id: "acme".into(),
            write_keys: vec![WRITE_KEY.into()],
            read_tokens: vec![],
        }],
    }
    .write_keys()
    .expect("keys");
    let state = IntakeState::new(keys, writer, Box::new(Ready), Limits::default(), || {
        1_772_359_205_000_000_000
    });
    Served::new(router(state), dir, usize::MAX)
}

/// Never a 5xx; a 4xx is JSON with a known `code` and a `message`.
fn assert_answer(what: &str, answer: &Answer) {
    let Some(value) = fuzz_http::client_error_json(what, answer) else {
        return;
    };
    let status = answer.0;
    // An error answer, or a per-item report that rejected everything
    // (README: its status is the first rejection's).
    let errors: Vec<&Value> = match value.get("errors").and_then(Value::as_array) {
        Some(items) => items.iter().collect(),
        None => vec![value.get("error").unwrap_or(&value)],
    };
    assert!(
        !errors.is_empty(),
        "{what}: {status} names no error: {value}"
    );
    for error in errors {
        fuzz_http::assert_coded(what, status, error, &value, known_code);
    }
}

fn documents() -> Vec<Value> {
    let events: Vec<Value> = fuzz_support::sample_documents();
    let segment = vec![
        json!({"type": "identify", "userId": "u1", "anonymousId": "d1", "messageId": "m1",
               "traits": {"email": "ann@example.com"}, "timestamp": "2026-03-01T09:00:00Z"}),
        json!({"type": "track", "userId": 42, "event": "Signed Up", "messageId": "m2",
               "properties": {"plan": "pro"}, "context": {"traits": {"email": "a@b.co"}}}),
        json!({"type": "page", "anonymousId": "d", "name": "Pricing"}),
        json!({"type": "alias", "previousId": "old", "userId": "u1"}),
        json!({"type": "group", "groupId": "g", "userId": "u"}),
    ];
    let mut documents = events.clone();
    documents.push(Value::Array(events.iter().take(4).cloned().collect()));
    documents.extend(segment.iter().cloned());
    documents.push(json!({"batch": segment, "sentAt": "2026-03-01T10:00:00Z",
                          "context": {"channel": "mobile"}, "writeKey": WRITE_KEY}));
    documents
}

const ROUTES: &[&str] = &[
    "/v1/events",
    "/v1/batch",
    "/v1/import",
    "/v1/b",
    "/v1/identify",
    "/v1/track",
    "/v1/page",
    "/v1/screen",
    "/v1/group",
    "/v1/alias",
    "/v1/i",
    "/v1/t",
    "/v1/p",
    "/healthz",
    "/readyz",
];

/// Known routes, and paths that are not: percent-escapes that are not
/// UTF-8, dot segments, long ones.
fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(ROUTES).prop_map(str::to_owned),
        1 => "(/[a-zA-Z0-9._~-]{0,12}|/%[0-9A-F]{2}){1,5}",
        1 => Just("/v1/%FF%FE".to_owned()),
        1 => Just("/v1/events/../batch".to_owned()),
        1 => Just(format!("/v1/{}", "a".repeat(5_000))),
    ]
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        6 => Just(Method::POST),
        1 => Just(Method::GET),
        1 => Just(Method::PUT),
        1 => Just(Method::DELETE),
        1 => Just(Method::OPTIONS),
        1 => Just(Method::PATCH),
    ]
}

fn authorization() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        8 => Just(Some(format!("Bearer {WRITE_KEY}"))),
        4 => Just(Some(BASIC.to_owned())),
        1 => Just(None),
        1 => Just(Some("Bearer wk_not_a_key_0123456789".to_owned())),
        1 => Just(Some("Basic !!!not base64".to_owned())),
        1 => Just(Some("Digest x".to_owned())),
        1 => "[ -~]{0,40}".prop_map(Some),
    ]
}

#[derive(Debug, Clone)]
enum Encoding {
    Plain,
    Gzip,
    /// Gzip, then some bytes of the compressed stream changed.
    CorruptGzip(Vec<(usize, u8)>),
    TruncatedGzip(usize),
    Other(&'static str),
}

fn encoding() -> impl Strategy<Value = Encoding> {
    prop_oneof![
        6 => Just(Encoding::Plain),
        3 => Just(Encoding::Gzip),
        1 => prop::collection::vec((any::<usize>(), 1u8..), 1..4).prop_map(Encoding::CorruptGzip),
        1 => any::<usize>().prop_map(Encoding::TruncatedGzip),
        1 => prop::sample::select(&["br", "deflate", "gzip, gzip", "", "identity", "x-gzip"][..])
            .prop_map(Encoding::Other),
    ]
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("in memory");
    encoder.finish().expect("in memory")
}

fn request(
    method: Method,
    path: &str,
    auth: Option<&str>,
    encoding: &Encoding,
    body: &[u8],
) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(auth) = auth {
        builder = builder.header(header::AUTHORIZATION, auth);
    }
    let body = match encoding {
        Encoding::Plain => body.to_vec(),
        Encoding::Other(name) => {
            builder = builder.header(header::CONTENT_ENCODING, *name);
            body.to_vec()
        }
        Encoding::Gzip => {
            builder = builder.header(header::CONTENT_ENCODING, "gzip");
            gzip(body)
        }
        Encoding::CorruptGzip(flips) => {
            builder = builder.header(header::CONTENT_ENCODING, "gzip");
            let mut compressed = gzip(body);
            for (at, byte) in flips {
                let at = at % compressed.len();
                compressed[at] ^= byte;
            }
            compressed
        }
        Encoding::TruncatedGzip(keep) => {
            builder = builder.header(header::CONTENT_ENCODING, "gzip");
            let mut compressed = gzip(body);
            compressed.truncate(keep % compressed.len());
            compressed
        }
    };
    builder
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .expect("a valid request")
}

/// A document with the route that takes it, or any route of the intake.
fn addressed_documents() -> Vec<(&'static str, Value)> {
    let documents = documents();
    let (events, segment) = documents.split_at(documents.len() - 6);
    let mut addressed: Vec<(&'static str, Value)> =
        events.iter().map(|d| ("/v1/events", d.clone())).collect();
    for (route, document) in [
        "/v1/identify",
        "/v1/track",
        "/v1/page",
        "/v1/alias",
        "/v1/group",
    ]
    .into_iter()
    .zip(segment)
    {
        addressed.push((route, document.clone()));
    }
    for route in ["/v1/batch", "/v1/import", "/v1/b"] {
        addressed.push((route, segment[5].clone()));
    }
    addressed
}

fn route_and_body() -> impl Strategy<Value = (&'static str, Vec<u8>)> {
    let own_route = prop::sample::select(addressed_documents());
    let any_route = prop::sample::select(&ROUTES[..13]);
    prop_oneof![
        // As sent by a client: accepted, which the fuzz must also reach.
        1 => own_route.clone().prop_map(|(route, d)| (route, serde_json::to_vec(&d).unwrap_or_default())),
        4 => (own_route, fuzz_support::mutations())
            .prop_map(|((route, d), changes)| (route, fuzz_support::mutated(&d, &changes))),
        1 => (any_route.clone(), mutated_from(documents())),
        1 => (any_route, junk()),
    ]
}

#[test]
fn any_request_to_an_intake_route_gets_a_coded_answer_never_a_5xx() {
    let intake = intake();
    proptest!(fuzz_support::config(), |(
        (route, body) in route_and_body(),
        auth in authorization(),
        encoding in encoding(),
    )| {
        let answer = intake.send(request(Method::POST, route, auth.as_deref(), &encoding, &body));
        assert_answer(&format!("POST {route} {encoding:?}"), &answer);
    });
}

#[test]
fn valid_documents_on_their_routes_are_accepted_plain_or_gzipped() {
    // The fuzz above must reach past authentication and parsing: the
    // documents it mutates are accepted as they are.
    let intake = intake();
    for (route, document) in [
        ("/v1/events", documents()[0].clone()),
        ("/v1/events", documents()[documents().len() - 7].clone()),
        ("/v1/identify", documents()[documents().len() - 6].clone()),
        ("/v1/batch", documents()[documents().len() - 1].clone()),
    ] {
        for (encoding, auth) in [
            (Encoding::Plain, format!("Bearer {WRITE_KEY}")),
            (Encoding::Gzip, BASIC.to_owned()),
        ] {
            let body = serde_json::to_vec(&document).expect("JSON");
            let answer = intake.send(request(Method::POST, route, Some(&auth), &encoding, &body));
            assert!(
                answer.0.is_success(),
                "{route} {encoding:?}: {} {}",
                answer.0,
                String::from_utf8_lossy(&answer.2)
            );
        }
    }
}

/// Paths and methods that are no route: the router's own answers. Also
/// what passes today (the intake has JSON fallbacks for 404 and 405).
#[test]
fn any_path_and_method_gets_a_coded_answer_never_a_5xx() {
    let intake = intake();
    proptest!(fuzz_support::config(), |(
        method in method(),
        path in path(),
        auth in authorization(),
        body in junk(),
    )| {
        let answer = intake.send(request(method.clone(), &path, auth.as_deref(), &Encoding::Plain, &body));
        assert_answer(&format!("{method} {path}"), &answer);
    });
}

/// Enable (`#[test]`) once the intake's framework answers follow the
/// README's error shape (issue 13, the HTTP helper's work): `code` and
/// `message` at the top, where Segment's libraries read them, as well as
/// under `error`. Today the 404 and 405 fallbacks have them under `error`
/// only, which the fuzz tests above accept.
#[test]
fn framework_errors_have_code_and_message_at_the_top() {
    let intake = intake();
    for (method, path) in [
        (Method::GET, "/v1/events"),
        (Method::PUT, "/v1/batch"),
        (Method::POST, "/v1/no-such-call"),
        (Method::POST, "/v1/%FF%FE"),
        (Method::GET, "/"),
    ] {
        let answer = intake.send(request(method.clone(), path, None, &Encoding::Plain, b""));
        assert!(answer.0.is_client_error(), "{method} {path}: {}", answer.0);
        assert_answer(&format!("{method} {path}"), &answer);
        let value: Value = serde_json::from_slice(&answer.2).unwrap_or_default();
        assert!(
            value["code"].as_str().is_some_and(known_code)
                && value["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{method} {path}: {value}"
        );
    }
}

#[test]
fn gzip_bodies_are_held_to_the_limit_after_decoding() {
    // Compressed small, decoded large (a gzip bomb), or just under: the
    // limit counts decoded bytes, and nothing past it is a 5xx.
    let intake = intake();
    proptest!(fuzz_support::config(), |(
        decoded_len in prop_oneof![0usize..2_048, 500_000usize..530_000, 1usize..4_000_000],
        byte in any::<u8>(),
        route in prop::sample::select(&["/v1/events", "/v1/batch", "/v1/track"][..]),
    )| {
        let body = vec![byte; decoded_len];
        let answer = intake.send(request(
            Method::POST,
            route,
            Some(&format!("Bearer {WRITE_KEY}")),
            &Encoding::Gzip,
            &body,
        ));
        assert_answer(&format!("POST {route} gzip of {decoded_len} bytes"), &answer);
        let limit = if route == "/v1/track" {
            idfold_intake::MAX_EVENT_BYTES
        } else {
            idfold_intake::MAX_BATCH_BYTES
        };
        if decoded_len > limit {
            let value: Value = serde_json::from_slice(&answer.2).unwrap_or_default();
            // 400 today; 413 would say the same.
            prop_assert!(
                [StatusCode::BAD_REQUEST, StatusCode::PAYLOAD_TOO_LARGE].contains(&answer.0),
                "{}", answer.0
            );
            prop_assert_eq!(&value["error"]["code"], "too_large");
        }
    });
}
