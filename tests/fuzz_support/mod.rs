//! Structure-aware mutations of JSON documents, shared by the fuzz tests of
//! every decoder (each crate's `tests/fuzz*.rs` includes this file by
//! path). A valid document gets a field replaced, deleted, duplicated or
//! its type swapped, a value nested deep, raw tokens spliced in, or its
//! text truncated, so inputs reach past the first check of a decoder.

#![allow(dead_code)]

use proptest::prelude::*;
use serde_json::{Map, Value};

/// One change to a document. `at` picks a node (value-level changes) or a
/// byte position (text-level ones), modulo how many there are.
#[derive(Debug, Clone)]
pub enum Mutation {
    Replace {
        at: usize,
        with: Value,
    },
    Delete {
        at: usize,
    },
    SwapType {
        at: usize,
    },
    Nest {
        at: usize,
        depth: usize,
        in_arrays: bool,
    },
    /// The object's first key written a second time, with this value.
    Duplicate {
        at: usize,
        with: Value,
    },
    Splice {
        at: usize,
        token: &'static [u8],
    },
    Truncate {
        at: usize,
    },
}

/// Tokens decoders get wrong: numbers past i64/u64/f64, lone surrogates,
/// NUL, invisible and look-alike text, stray structure.
pub const TOKENS: &[&[u8]] = &[
    b"1e400",
    b"-1e400",
    b"18446744073709551616",
    b"12345678901234567890123",
    b"-0",
    b"0.5",
    b"NaN",
    b"\"\\ud800\"",
    b"\"\\u0000\"",
    b"\"\\u200b\"",
    b"\"\xef\xbd\x8e\xef\xbd\x95\xef\xbd\x8c\xef\xbd\x8c\"",
    b"\"nil\"",
    b"\"null\"",
    b"\"\"",
    b"\xff\xfe",
    b"\"2200-01-01T00:00:00Z\"",
    b"\"0001-01-01T00:00:00Z\"",
    b"\"9999-12-31T23:59:59+14:00\"",
    b"[",
    b"]",
    b"{",
    b"}",
    b",",
    b":",
    b"\"",
    b"\\",
    b"\n",
    b"\r\n",
    b"null",
    b"true",
    b"{\"writeKey\":\"x\"}",
];

/// Strings worth trying as values: blank-looking, look-alike, odd times,
/// and one longer than an event may be.
fn interesting_string() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,24}",
        Just(String::new()),
        Just(" ".to_owned()),
        Just("\u{200b}".to_owned()),
        Just("ｎｕｌｌ".to_owned()),
        Just("null".to_owned()),
        Just("u1@EXAMPLE.com".to_owned()),
        Just("2026-02-30T00:00:00Z".to_owned()),
        Just("2262-04-12T00:00:00Z".to_owned()),
        Just("1677-09-21T00:00:00Z".to_owned()),
        Just("../../etc".to_owned()),
        Just("identify".to_owned()),
        Just("track".to_owned()),
        Just("x".repeat(40_000)),
    ]
}

pub fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        interesting_string().prop_map(Value::String),
    ]
}

/// Any JSON value, a few levels deep.
pub fn any_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z_]{1,12}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

pub fn mutation() -> impl Strategy<Value = Mutation> {
    let at = any::<usize>();
    prop_oneof![
        3 => (at, any_value()).prop_map(|(at, with)| Mutation::Replace { at, with }),
        3 => at.prop_map(|at| Mutation::Delete { at }),
        3 => at.prop_map(|at| Mutation::SwapType { at }),
        1 => (at, 1usize..300, any::<bool>())
            .prop_map(|(at, depth, in_arrays)| Mutation::Nest { at, depth, in_arrays }),
        2 => (at, leaf()).prop_map(|(at, with)| Mutation::Duplicate { at, with }),
        2 => (at, prop::sample::select(TOKENS))
            .prop_map(|(at, token)| Mutation::Splice { at, token }),
        1 => at.prop_map(|at| Mutation::Truncate { at }),
    ]
}

/// One to four mutations, applied in order.
pub fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec(mutation(), 1..5)
}

#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
}

/// Every node's path, in pre-order (the root first).
fn paths(value: &Value) -> Vec<Vec<Step>> {
    fn walk(value: &Value, here: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
        out.push(here.clone());
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    here.push(Step::Key(key.clone()));
                    walk(child, here, out);
                    here.pop();
                }
            }
            Value::Array(items) => {
                for (index, child) in items.iter().enumerate() {
                    here.push(Step::Index(index));
                    walk(child, here, out);
                    here.pop();
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(value, &mut Vec::new(), &mut out);
    out
}

fn node_mut<'a>(value: &'a mut Value, path: &[Step]) -> Option<&'a mut Value> {
    path.iter()
        .try_fold(value, |node, step| match (step, node) {
            (Step::Key(key), Value::Object(map)) => map.get_mut(key),
            (Step::Index(index), Value::Array(items)) => items.get_mut(*index),
            _ => None,
        })
}

/// The same content as another JSON type.
fn swapped(value: &Value) -> Value {
    match value {
        Value::Null => Value::Bool(false),
        Value::Bool(b) => Value::String(b.to_string()),
        Value::Number(n) => Value::String(n.to_string()),
        Value::String(s) => match s.parse::<f64>() {
            Ok(n) => Value::from(n),
            Err(_) => Value::Array(vec![Value::String(s.clone())]),
        },
        Value::Array(items) => items.first().cloned().unwrap_or(Value::Object(Map::new())),
        Value::Object(map) => Value::Array(map.values().cloned().collect()),
    }
}

fn apply(document: &mut Value, mutation: &Mutation) {
    let all = paths(document);
    let pick = |at: usize| all[at % all.len()].clone();
    match mutation {
        Mutation::Replace { at, with } => {
            if let Some(node) = node_mut(document, &pick(*at)) {
                *node = with.clone();
            }
        }
        Mutation::Delete { at } => {
            let path = pick(*at);
            let Some((last, parent)) = path.split_last() else {
                *document = Value::Null;
                return;
            };
            match (last, node_mut(document, parent)) {
                (Step::Key(key), Some(Value::Object(map))) => {
                    map.remove(key);
                }
                (Step::Index(index), Some(Value::Array(items))) if *index < items.len() => {
                    items.remove(*index);
                }
                _ => {}
            }
        }
        Mutation::SwapType { at } => {
            if let Some(node) = node_mut(document, &pick(*at)) {
                *node = swapped(node);
            }
        }
        Mutation::Nest {
            at,
            depth,
            in_arrays,
        } => {
            if let Some(node) = node_mut(document, &pick(*at)) {
                let mut nested = node.clone();
                for _ in 0..*depth {
                    nested = if *in_arrays {
                        Value::Array(vec![nested])
                    } else {
                        let mut map = Map::new();
                        map.insert("a".into(), nested);
                        Value::Object(map)
                    };
                }
                *node = nested;
            }
        }
        // Text-level: applied when the document is written.
        Mutation::Duplicate { .. } | Mutation::Splice { .. } | Mutation::Truncate { .. } => {}
    }
}

/// `value` as JSON text, with the first key of its `dup`-th object (in
/// pre-order, modulo their number) written twice, the second time as `with`.
fn write(value: &Value, duplicate: Option<(usize, &Value)>) -> Vec<u8> {
    fn objects(value: &Value) -> usize {
        match value {
            Value::Object(map) => 1 + map.values().map(objects).sum::<usize>(),
            Value::Array(items) => items.iter().map(objects).sum(),
            _ => 0,
        }
    }
    fn go(value: &Value, target: Option<(usize, &Value)>, seen: &mut usize, out: &mut Vec<u8>) {
        match value {
            Value::Object(map) => {
                let mine = *seen;
                *seen += 1;
                out.push(b'{');
                let mut first = true;
                for (key, child) in map {
                    if !first {
                        out.push(b',');
                    }
                    first = false;
                    out.extend(serde_json::to_vec(key).unwrap_or_default());
                    out.push(b':');
                    go(child, target, seen, out);
                }
                if let (Some((index, with)), Some(key)) = (target, map.keys().next()) {
                    if index == mine {
                        out.push(b',');
                        out.extend(serde_json::to_vec(key).unwrap_or_default());
                        out.push(b':');
                        out.extend(serde_json::to_vec(with).unwrap_or_default());
                    }
                }
                out.push(b'}');
            }
            Value::Array(items) => {
                out.push(b'[');
                for (i, child) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    go(child, target, seen, out);
                }
                out.push(b']');
            }
            leaf => out.extend(serde_json::to_vec(leaf).unwrap_or_default()),
        }
    }
    let count = objects(value);
    let target = duplicate
        .filter(|_| count > 0)
        .map(|(at, with)| (at % count.max(1), with));
    let mut out = Vec::new();
    go(value, target, &mut 0, &mut out);
    out
}

/// The document after `mutations`, as bytes.
pub fn mutated(document: &Value, mutations: &[Mutation]) -> Vec<u8> {
    let mut value = document.clone();
    for mutation in mutations {
        apply(&mut value, mutation);
    }
    let duplicate = mutations.iter().find_map(|m| match m {
        Mutation::Duplicate { at, with } => Some((*at, with)),
        _ => None,
    });
    let mut text = write(&value, duplicate);
    for mutation in mutations {
        match mutation {
            Mutation::Splice { at, token } => {
                let at = at % (text.len() + 1);
                text.splice(at..at, token.iter().copied());
            }
            Mutation::Truncate { at } => text.truncate(at % (text.len() + 1)),
            _ => {}
        }
    }
    text
}

/// A valid document picked from `documents`, then mutated.
pub fn mutated_from(documents: Vec<Value>) -> impl Strategy<Value = Vec<u8>> {
    (prop::sample::select(documents), mutations())
        .prop_map(|(document, mutations)| mutated(&document, &mutations))
}

/// Arbitrary bytes, or arbitrary text that looks a little like JSON.
pub fn junk() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        "[\\[\\]{}\":,0-9a-z \\\\nul-]{0,200}".prop_map(String::into_bytes),
    ]
}

/// The proptest settings of every fuzz test: 256 cases, no failure files.
pub fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// The sample events (`tests/fixtures/sample.ndjson`), one a line.
pub const SAMPLE: &str = include_str!("../fixtures/sample.ndjson");

/// The sample's lines that are JSON.
pub fn sample_documents() -> Vec<Value> {
    SAMPLE
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}
