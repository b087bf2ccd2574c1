//! Fuzzing the configuration file's reader: a full file with its values
//! replaced, deleted, duplicated, their types swapped, nested deep, and its
//! text cut, lines dropped or repeated, bytes spliced in. Whatever the
//! file: no panic, every problem names a key and says what is wrong, and
//! no secret of the file is ever quoted.

#[path = "../../../tests/fuzz_support/mod.rs"]
mod fuzz_support;

use idfold_config::IdfoldConfig;
use proptest::prelude::*;

const SECRETS: [&str; 2] = ["wk_secret_acme_0123456789", "rt_secret_acme_0123456789"];

fn full_file() -> String {
    format!(
        r#"data = "/var/lib/idfold"
listen = "0.0.0.0:8088"
metrics_addr = "127.0.0.1:9464"
[log]
format = "json"
level = "info"
[kafka]
bootstrap = "k1:9092,k2:9092"
topic_prefix = "idfold"
raw_topics = ["apps.events"]
acks = "all"
compression = "lz4"
partitions = 6
session_timeout_secs = 10
instance_id = "idfold-0"
[limits]
max_inflight_requests = 256
write_queue = 128
ack_timeout_secs = 10
batch_size = 20000
lock_wait_secs = 30
[fold]
memory_budget = "512MiB"
[[workspaces]]
id = "acme"
write_keys = ["{}"]
read_tokens = ["{}"]
"#,
        SECRETS[0], SECRETS[1]
    )
}

/// Reads `text` and checks what it gives: problems, or a syntax error.
fn check(text: &str) {
    match IdfoldConfig::parse(text) {
        Ok((config, shape)) => {
            let problems: Vec<_> = shape.into_iter().chain(config.check()).collect();
            for problem in &problems {
                assert!(!problem.key.is_empty(), "{problem:?}");
                assert!(!problem.message.trim().is_empty(), "{problem:?}");
                let shown = problem.to_string();
                for secret in SECRETS {
                    assert!(!shown.contains(secret), "a secret quoted: {shown}");
                }
            }
            let _ = config.environment();
        }
        Err(detail) => assert!(!detail.trim().is_empty()),
    }
}

/// The full file as JSON, so the shared mutations apply to it.
fn full_file_as_json() -> serde_json::Value {
    let table: toml::Table = toml::from_str(&full_file()).expect("the full file parses");
    serde_json::to_value(table).expect("as JSON")
}

#[derive(Debug, Clone)]
enum LineEdit {
    Drop(usize),
    Repeat(usize),
    Splice(usize, &'static [u8]),
    Cut(usize),
}

fn line_edit() -> impl Strategy<Value = LineEdit> {
    prop_oneof![
        any::<usize>().prop_map(LineEdit::Drop),
        any::<usize>().prop_map(LineEdit::Repeat),
        (any::<usize>(), prop::sample::select(fuzz_support::TOKENS))
            .prop_map(|(at, token)| LineEdit::Splice(at, token)),
        any::<usize>().prop_map(LineEdit::Cut),
    ]
}

fn edited(text: &str, edits: &[LineEdit]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for edit in edits {
        let n = lines.len().max(1);
        match edit {
            LineEdit::Drop(at) if !lines.is_empty() => {
                lines.remove(at % n);
            }
            LineEdit::Repeat(at) if !lines.is_empty() => {
                let line = lines[at % n].clone();
                lines.insert(at % n, line);
            }
            LineEdit::Splice(at, token) => {
                let mut joined = lines.join("\n").into_bytes();
                let at = at % (joined.len() + 1);
                joined.splice(at..at, token.iter().copied());
                lines = String::from_utf8_lossy(&joined)
                    .lines()
                    .map(str::to_owned)
                    .collect();
            }
            LineEdit::Cut(at) => {
                let joined = lines.join("\n");
                let mut at = at % (joined.len() + 1);
                while !joined.is_char_boundary(at) {
                    at -= 1;
                }
                lines = joined[..at].lines().map(str::to_owned).collect();
            }
            _ => {}
        }
    }
    lines.join("\n")
}

proptest! {
    #![proptest_config(fuzz_support::config())]

    #[test]
    fn a_file_with_any_value_changed_is_read_or_explained(changes in fuzz_support::mutations()) {
        let bytes = fuzz_support::mutated(&full_file_as_json(), &changes);
        // Back to TOML where the change left a document TOML can hold.
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            return Ok(());
        };
        if let Ok(text) = toml::to_string(&value) {
            check(&text);
        }
    }

    #[test]
    fn a_file_with_its_text_edited_is_read_or_explained(
        edits in prop::collection::vec(line_edit(), 1..5),
    ) {
        check(&edited(&full_file(), &edits));
    }
}

#[test]
fn the_full_file_is_valid() {
    let (config, shape) = IdfoldConfig::parse(&full_file()).expect("TOML");
    assert!(shape.is_empty(), "{shape:?}");
    assert_eq!(config.check(), vec![]);
}
