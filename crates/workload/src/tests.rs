//! Tests of the whole workload: shape, determinism, validity and realism.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use proptest::prelude::*;
use serde_json::{Map, Value};

use crate::{generate, write_ndjson, WorkloadSpec};

fn spec(events: usize) -> WorkloadSpec {
    WorkloadSpec {
        events,
        ..WorkloadSpec::default()
    }
}

fn parse(line: &str) -> Map<String, Value> {
    match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(m)) => m,
        other => panic!("not a JSON object: {line} ({other:?})"),
    }
}

fn text<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    m.get(key).and_then(Value::as_str)
}

/// Checks one event against the canonical form; Err says what is wrong.
fn check(line: &str) -> Result<Map<String, Value>, String> {
    let m = parse(line);
    let non_empty = |key: &str| match m.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.as_str()),
        other => Err(format!("`{key}` must be a non-empty string, not {other:?}")),
    };
    let object = |key: &str| match m.get(key) {
        Some(Value::Object(_)) => Ok(()),
        other => Err(format!("`{key}` must be an object, not {other:?}")),
    };
    let kind = non_empty("type")?;
    non_empty("message_id")?;
    let ws = non_empty("workspace_id")?;
    if !ws.starts_with("ws-") || !ws[3..].bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("workspace_id {ws}"));
    }
    let ts = non_empty("timestamp")?;
    let b = ts.as_bytes();
    let digits = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18];
    if b.len() != 20
        || b[19] != b'Z'
        || b[10] != b'T'
        || !digits.iter().all(|&i| b[i].is_ascii_digit())
    {
        return Err(format!("timestamp {ts}"));
    }
    let channel = match m.get("channel") {
        None => "api",
        Some(Value::String(c))
            if ["web", "mobile", "email", "link", "api"].contains(&c.as_str()) =>
        {
            c
        }
        Some(other) => return Err(format!("channel {other}")),
    };
    for key in ["user_id", "anonymous_id", "email"] {
        if let Some(v) = m.get(key) {
            let s = v.as_str().ok_or(format!("{key} is not a string"))?;
            if s.trim().is_empty()
                || idfold_events::PLACEHOLDER_IDENTIFIERS
                    .iter()
                    .any(|p| p.eq_ignore_ascii_case(s.trim()))
            {
                return Err(format!("{key} is {s:?}"));
            }
        }
    }
    if let Some(email) = text(&m, "email") {
        let plausible = email == email.to_lowercase()
            && email.split('@').count() == 2
            && email
                .split('@')
                .nth(1)
                .is_some_and(|d| d.contains('.') && !d.split('.').any(str::is_empty));
        if !plausible {
            return Err(format!("email {email}"));
        }
    }
    let identified = m.contains_key("user_id") || m.contains_key("email");
    if !identified && !m.contains_key("anonymous_id") {
        return Err("no identifier".into());
    }
    if (kind == "identify" || kind == "traits" || channel == "mobile") && !identified {
        return Err(format!("{kind} on {channel} without user_id or email"));
    }
    match kind {
        "identify" => {
            if m.contains_key("traits") {
                object("traits")?;
            }
        }
        "traits" => {
            object("traits")?;
            if m.contains_key("set_once") {
                object("set_once")?;
            }
            if let Some(unset) = m.get("unset") {
                let ok = unset
                    .as_array()
                    .is_some_and(|a| a.iter().all(Value::is_string));
                if !ok {
                    return Err(format!("unset {unset}"));
                }
            }
        }
        "track" => {
            non_empty("event")?;
            if m.contains_key("properties") {
                object("properties")?;
            }
        }
        "survey" => {
            non_empty("survey_id")?;
            let action = non_empty("action")?;
            if !["shown", "dismissed", "responded"].contains(&action) {
                return Err(format!("action {action}"));
            }
            if action != "responded" && (m.contains_key("answers") || m.contains_key("response_id"))
            {
                return Err("answers on a survey that was not responded".into());
            }
            if m.contains_key("answers") {
                object("answers")?;
            }
            if m.contains_key("response_id") {
                non_empty("response_id")?;
            }
        }
        other => return Err(format!("type {other}")),
    }
    Ok(m)
}

#[test]
fn exactly_the_requested_number_of_lines() {
    for events in [0, 1, 2, 7, 100, 3_001] {
        let lines = generate(&spec(events));
        assert_eq!(lines.len(), events);
        assert!(lines.iter().all(|l| !l.contains('\n')));
        let mut streamed = Vec::new();
        write_ndjson(&spec(events), &mut streamed).expect("writing to memory");
        let expected: String = lines.iter().map(|l| format!("{l}\n")).collect();
        assert_eq!(String::from_utf8(streamed).expect("UTF-8"), expected);
    }
}

#[test]
fn deterministic_for_a_spec_and_different_for_another_seed() {
    let spec = spec(5_000);
    let lines = generate(&spec);
    assert_eq!(lines, generate(&spec));
    assert_ne!(
        lines,
        generate(&WorkloadSpec {
            seed: 2,
            ..spec.clone()
        })
    );
    let first = parse(&lines[0]);
    assert_eq!(text(&first, "message_id"), Some("m-1-0"));
}

/// FNV-1a over the lines, newline-separated.
fn fingerprint(lines: &[String]) -> u64 {
    lines
        .iter()
        .flat_map(|l| l.bytes().chain([b'\n']))
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
}

#[test]
fn pinned_output_is_stable_across_runs_and_machines() {
    // Guards the promise that a spec means the same bytes everywhere (no
    // platform-sized integers in sampling, no hash-map order, no serde_json
    // feature dependence). Update only when changing the generator on purpose.
    let lines = generate(&WorkloadSpec {
        events: 2_000,
        workspaces: 5,
        ..WorkloadSpec::default()
    });
    assert_eq!(
        lines[0],
        r#"{"type":"survey","message_id":"m-1-0","workspace_id":"ws-1","timestamp":"2026-01-01T00:18:08Z","channel":"web","anonymous_id":"aa2ff174-7db8-4846-93bd-7a8671bed86d","survey_id":"s-1","action":"shown"}"#
    );
    assert_eq!(
        fingerprint(&lines),
        18_190_436_862_213_041_632,
        "fingerprint changed"
    );
}

#[test]
fn every_line_is_a_valid_event() {
    for seed in [1, 2, 99] {
        for line in generate(&WorkloadSpec {
            events: 20_000,
            seed,
            ..WorkloadSpec::default()
        }) {
            if let Err(why) = check(&line) {
                panic!("{why}: {line}");
            }
        }
    }
}

#[test]
fn about_the_requested_share_of_lines_are_redeliveries() {
    for (rate, low, high) in [(0.0, 0, 0), (0.02, 300, 500), (0.1, 1_750, 2_250)] {
        let lines = generate(&WorkloadSpec {
            events: 20_000,
            duplicate_rate: rate,
            ..WorkloadSpec::default()
        });
        let mut first_seen: HashMap<&str, usize> = HashMap::new();
        let mut by_message: HashMap<String, &str> = HashMap::new();
        let mut duplicates = 0;
        for (n, line) in lines.iter().enumerate() {
            if let Some(&first) = first_seen.get(line.as_str()) {
                duplicates += 1;
                assert!(
                    n - first <= 1_000,
                    "a re-delivery comes a bit later, not {} lines later",
                    n - first
                );
            } else {
                first_seen.insert(line, n);
                let id = text(&parse(line), "message_id")
                    .unwrap_or_default()
                    .to_owned();
                // A message_id is never reused for a different event.
                assert!(by_message.insert(id, line).is_none(), "{line}");
            }
        }
        assert!(
            (low..=high).contains(&duplicates),
            "rate {rate}: {duplicates} duplicates"
        );
    }
}

#[test]
fn timestamps_span_the_requested_months_mostly_in_order() {
    let cases = [
        (
            WorkloadSpec::default(),
            vec!["2026-01", "2026-02", "2026-03"],
        ),
        (
            WorkloadSpec {
                start_month: (2025, 11),
                months: 4,
                late_rate: 0.05,
                ..WorkloadSpec::default()
            },
            vec!["2025-11", "2025-12", "2026-01", "2026-02"],
        ),
        (
            WorkloadSpec {
                months: 1,
                events: 500,
                ..WorkloadSpec::default()
            },
            vec!["2026-01"],
        ),
    ];
    for (spec, expected) in cases {
        let lines = generate(&spec);
        let mut seen = HashSet::new();
        let times: Vec<String> = lines
            .iter()
            .filter(|l| seen.insert(l.as_str()))
            .map(|l| text(&parse(l), "timestamp").unwrap_or_default().to_owned())
            .collect();
        let months: BTreeSet<&str> = times.iter().map(|t| &t[..7]).collect();
        assert_eq!(months.into_iter().collect::<Vec<_>>(), expected);
        // Late arrivals: dated before an earlier line (RFC 3339 in Z sorts as text).
        let mut latest = String::new();
        let mut late = 0;
        for t in &times {
            if *t < latest {
                late += 1;
            } else {
                latest.clone_from(t);
            }
        }
        let share = late as f64 / times.len() as f64;
        assert!(
            share <= spec.late_rate * 1.6 + 0.005
                && (spec.events < 1_000 || share >= spec.late_rate * 0.5),
            "late share {share}, requested {}",
            spec.late_rate
        );
    }
}

#[test]
fn workspaces_are_skewed() {
    let lines = generate(&WorkloadSpec {
        events: 20_000,
        workspaces: 20,
        ..WorkloadSpec::default()
    });
    let mut per_workspace: BTreeMap<String, usize> = BTreeMap::new();
    for line in &lines {
        *per_workspace
            .entry(
                text(&parse(line), "workspace_id")
                    .unwrap_or_default()
                    .to_owned(),
            )
            .or_default() += 1;
    }
    assert_eq!(per_workspace.len(), 20);
    let mut sizes: Vec<usize> = per_workspace.values().copied().collect();
    sizes.sort_unstable();
    let median = sizes[10];
    assert!(sizes[19] > 4 * median, "{sizes:?}");
    assert!(
        per_workspace["ws-0"] == sizes[19],
        "ws-0 is the biggest: {per_workspace:?}"
    );

    let one = generate(&WorkloadSpec {
        events: 500,
        workspaces: 0,
        ..WorkloadSpec::default()
    });
    assert!(one
        .iter()
        .all(|l| text(&parse(l), "workspace_id") == Some("ws-0")));
}

/// Counts of the behaviours that make the workload realistic.
#[derive(Debug, Default)]
struct Behaviour {
    anonymous_only: usize,
    sign_ins: usize,
    email_only_links: usize,
    email_and_user: usize,
    mobile: usize,
    backend: usize,
    shared_devices: usize,
    users_on_several_devices: usize,
    max_devices_per_user: usize,
    never_signed_in_devices: usize,
    two_step_responses: usize,
    traits_with_set_once_and_unset: usize,
}

fn behaviour(lines: &[String]) -> Behaviour {
    let mut b = Behaviour::default();
    let mut users_of_device: HashMap<(String, String), BTreeSet<String>> = HashMap::new();
    let mut devices_of_user: HashMap<(String, String), BTreeSet<String>> = HashMap::new();
    let mut devices: HashSet<(String, String)> = HashSet::new();
    let mut responses: HashMap<String, Vec<BTreeSet<String>>> = HashMap::new();
    let mut seen = HashSet::new();
    for line in lines.iter().filter(|l| seen.insert(l.as_str())) {
        let m = parse(line);
        let ws = text(&m, "workspace_id").unwrap_or_default().to_owned();
        let (user, email, device) = (
            text(&m, "user_id"),
            text(&m, "email"),
            text(&m, "anonymous_id"),
        );
        let channel = text(&m, "channel").unwrap_or("api");
        match (user, email, device) {
            (None, None, Some(_)) => b.anonymous_only += 1,
            (None, Some(_), None) if channel == "email" || channel == "link" => {
                b.email_only_links += 1
            }
            (Some(_), Some(_), _) => b.email_and_user += 1,
            _ => {}
        }
        b.mobile += usize::from(channel == "mobile");
        b.backend += usize::from(channel == "api" && device.is_none());
        let kind = text(&m, "type").unwrap_or_default();
        if let Some(d) = device {
            devices.insert((ws.clone(), d.to_owned()));
            if let Some(u) = user {
                users_of_device
                    .entry((ws.clone(), d.to_owned()))
                    .or_default()
                    .insert(u.to_owned());
                devices_of_user
                    .entry((ws.clone(), u.to_owned()))
                    .or_default()
                    .insert(d.to_owned());
                b.sign_ins += usize::from(kind == "identify");
            }
        }
        if kind == "traits" && m.contains_key("set_once") && m.contains_key("unset") {
            b.traits_with_set_once_and_unset += 1;
        }
        if let (Some(r), Some(Value::Object(answers))) = (text(&m, "response_id"), m.get("answers"))
        {
            responses
                .entry(format!("{ws}/{r}"))
                .or_default()
                .push(answers.keys().cloned().collect());
        }
    }
    b.shared_devices = users_of_device.values().filter(|u| u.len() > 1).count();
    b.users_on_several_devices = devices_of_user.values().filter(|d| d.len() > 1).count();
    b.max_devices_per_user = devices_of_user
        .values()
        .map(BTreeSet::len)
        .max()
        .unwrap_or(0);
    b.never_signed_in_devices = devices
        .iter()
        .filter(|d| !users_of_device.contains_key(*d))
        .count();
    b.two_step_responses = responses
        .values()
        .filter(|steps| steps.len() == 2 && steps[0] != steps[1])
        .count();
    b
}

#[test]
fn the_workload_behaves_like_real_traffic() {
    let lines = generate(&WorkloadSpec {
        events: 50_000,
        ..WorkloadSpec::default()
    });
    let b = behaviour(&lines);
    let n = lines.len();
    assert!(b.anonymous_only > n / 10, "{b:?}");
    assert!(b.sign_ins > n / 50, "{b:?}");
    assert!(b.email_only_links > n / 100, "{b:?}");
    assert!(b.email_and_user > n / 100, "{b:?}");
    assert!(b.mobile > n / 100, "{b:?}");
    assert!(b.backend > n / 100, "{b:?}");
    assert!(b.shared_devices > 10, "{b:?}");
    assert!(b.users_on_several_devices > 100, "{b:?}");
    assert!(b.max_devices_per_user <= 3, "{b:?}");
    assert!(b.never_signed_in_devices > 500, "{b:?}");
    assert!(b.two_step_responses > 100, "{b:?}");
    assert!(b.traits_with_set_once_and_unset > 0, "{b:?}");
}

#[test]
fn each_email_belongs_to_at_most_one_user() {
    let lines = generate(&WorkloadSpec {
        events: 30_000,
        ..WorkloadSpec::default()
    });
    let mut owner: HashMap<(String, String), String> = HashMap::new();
    for line in &lines {
        let m = parse(line);
        if let (Some(user), Some(email)) = (text(&m, "user_id"), text(&m, "email")) {
            let ws = text(&m, "workspace_id").unwrap_or_default().to_owned();
            let previous = owner
                .entry((ws, email.to_owned()))
                .or_insert_with(|| user.to_owned());
            assert_eq!(previous, user, "{line}");
        }
    }
    assert!(lines
        .iter()
        .any(|l| l.contains("\"workspace_id\":\"ws-0\"")
            && l.contains("\"email\":\"u1@example.com\"")));
}

#[test]
fn users_and_devices_appear_in_causal_order() {
    // In line order (late arrivals only change timestamps), a user first
    // shows up signing up, and is seen on a device only after signing in on it.
    let lines = generate(&WorkloadSpec {
        events: 30_000,
        ..WorkloadSpec::default()
    });
    let mut users: HashSet<(String, String)> = HashSet::new();
    let mut signed_in: HashSet<(String, String, String)> = HashSet::new();
    for line in &lines {
        let m = parse(line);
        let ws = text(&m, "workspace_id").unwrap_or_default().to_owned();
        let kind = text(&m, "type").unwrap_or_default();
        let Some(user) = text(&m, "user_id") else {
            continue;
        };
        let device = text(&m, "anonymous_id");
        if users.insert((ws.clone(), user.to_owned())) {
            assert!(
                kind == "identify" && device.is_some(),
                "first event of {user} is a sign-up: {line}"
            );
        }
        if let Some(device) = device {
            let pair = (ws, user.to_owned(), device.to_owned());
            assert!(
                kind == "identify" || signed_in.contains(&pair),
                "{user} on {device} before signing in: {line}"
            );
            signed_in.insert(pair);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn any_spec_gives_exactly_its_number_of_valid_lines(
        events in 0usize..400,
        workspaces in 0usize..6,
        seed in any::<u64>(),
        duplicate_rate in prop_oneof![Just(0.0), Just(1.0), Just(f64::NAN), 0.0f64..0.5],
        late_rate in prop_oneof![Just(0.0), Just(1.0), -1.0f64..2.0],
        year in 1990i32..2100,
        month in 0u8..14,
        months in 0u8..30,
    ) {
        let spec = WorkloadSpec { events, workspaces, seed, duplicate_rate, late_rate, start_month: (year, month), months };
        let lines = generate(&spec);
        prop_assert_eq!(lines.len(), events);
        for line in &lines {
            prop_assert!(check(line).is_ok(), "{:?}: {}", check(line).err(), line);
        }
        prop_assert_eq!(&lines, &generate(&spec));
    }
}
