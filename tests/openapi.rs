//! The served API follows its OpenAPI document (`docs/openapi.json`):
//! schemathesis, run against a live `idfold serve`, generates valid and
//! fuzzed bad requests for every operation and checks that none gets a
//! 5xx, and that every status, content type, header and body is the one
//! the document declares.

mod harness;

use std::process::Command;

use base64::Engine;
use harness::http::{get, Server};
use harness::{fixture, Idfold};

const WRITE_KEY: &str = "wk_acme_test_0123456789";
const READ_TOKEN: &str = "rt_acme_test_0123456789";

/// `schemathesis run` on the served document, for the operations of `tags`.
fn schemathesis(server: &Server, tags: &[&str], authorization: &str) {
    let mut cmd = Command::new("python3");
    cmd.args([
        "-c",
        "import sys; from schemathesis.cli import schemathesis; sys.argv[0] = 'schemathesis'; sys.exit(schemathesis())",
        "run",
        &server.url("/openapi.json"),
        "--header",
        &format!("Authorization: {authorization}"),
        "--checks",
        "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance",
        "--max-examples",
        "15",
        "--max-time",
        "45",
        "--seed",
        "20261128",
    ]);
    for tag in tags {
        cmd.args(["--include-tag", tag]);
    }
    let out = cmd.output().expect("python3 runs schemathesis");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "schemathesis found problems:\n{text}");
    assert!(text.contains("passed"), "schemathesis ran no test:\n{text}");
}

#[test]
fn the_served_api_follows_its_openapi_document_under_fuzzing() {
    let idfold = Idfold::new();
    let config = fixture("serve.toml");
    let server = Server::start(&idfold, &["--config", config.to_str().expect("UTF-8")], &[]);
    let served = get(&server.url("/openapi.json"));
    let kept: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json"))
            .expect("docs/openapi.json"),
    )
    .expect("JSON");
    assert_eq!(
        served.body, kept,
        "the served document is the one in the repository"
    );

    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{WRITE_KEY}:"))
    );
    schemathesis(&server, &["ingest", "operations"], &basic);
    schemathesis(&server, &["read"], &format!("Bearer {READ_TOKEN}"));
    let (status, log) = server.stop();
    assert!(status.success(), "{log}");
}
