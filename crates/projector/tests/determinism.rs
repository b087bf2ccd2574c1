//! The projection is a function of the set of accepted events: checked over
//! random workloads against a from-scratch oracle, in any order, with
//! re-deliveries, and with the changes the store would write replayed.

use std::collections::{BTreeMap, BTreeSet};

use idfold_events::{
    month_end_nanos, month_of, EventKind, Identifier, IdentifierKind, Month, SurveyAction,
};
use idfold_projector::{
    FoldRecord, MauRow, ProfileAggregate, SurveyStep, TraitChanges, WorkspaceState,
};
use idfold_stitching::{asserted_links, IdentityGraph};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

const DAY: i64 = 86_400 * 1_000_000_000;
/// 2026-01-01T00:00:00Z
const START: i64 = 1_767_225_600 * 1_000_000_000;

#[derive(Debug, Clone)]
struct Spec {
    kind: u8,
    user: Option<u8>,
    email: Option<u8>,
    device: Option<u8>,
    day: i64,
    key: u8,
    value: u8,
    survey: u8,
    action: u8,
    response: u8,
}

fn arb_spec() -> impl Strategy<Value = Spec> {
    (
        0..4u8,
        prop::option::weighted(0.5, 0..3u8),
        prop::option::weighted(0.3, 0..3u8),
        prop::option::weighted(0.7, 0..4u8),
        0..80i64,
        (0..3u8, 0..3u8, 0..2u8, 0..3u8, 0..2u8),
    )
        .prop_map(
            |(kind, user, email, device, day, (key, value, survey, action, response))| Spec {
                kind,
                user,
                email,
                device,
                day,
                key,
                value,
                survey,
                action,
                response,
            },
        )
}

/// Turns specs into valid records with unique message ids (the validator's
/// rules: identify/traits need a user or email, and one identifier at least).
fn records(specs: &[Spec]) -> Vec<FoldRecord> {
    specs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let kind = EventKind::ALL[usize::from(s.kind)];
            let mut user = s.user.map(|u| format!("u{u}"));
            let email = s.email.map(|e| format!("e{e}@x.io"));
            let device = s.device.map(|d| format!("d{d}"));
            let needs_identified = matches!(kind, EventKind::Identify | EventKind::Traits);
            if (needs_identified && email.is_none() || device.is_none() && email.is_none())
                && user.is_none()
            {
                user = Some("u0".into());
            }
            let k = format!("k{}", s.key);
            let v = json!(s.value);
            let object =
                |pairs: Vec<(String, Value)>| pairs.into_iter().collect::<Map<String, Value>>();
            FoldRecord {
                // Few distinct times, so (time, message_id) ties are exercised.
                message_id: format!("m{:03}", (i * 7919) % 1000),
                time: START + s.day * DAY / 2,
                kind,
                user_id: user,
                email,
                anonymous_id: device,
                traits: match kind {
                    EventKind::Identify => Some(TraitChanges {
                        set: object(vec![(k.clone(), v.clone())]),
                        ..Default::default()
                    }),
                    EventKind::Traits => Some(TraitChanges {
                        set: object(vec![(k.clone(), v.clone())]),
                        set_once: object(vec![(format!("once{}", s.value), json!(i))]),
                        unset: if s.action == 0 {
                            vec![format!("k{}", (s.key + 1) % 3)]
                        } else {
                            vec![]
                        },
                    }),
                    _ => None,
                },
                track_event: (kind == EventKind::Track).then(|| format!("ev{}", s.key)),
                survey: (kind == EventKind::Survey).then(|| {
                    let action = [
                        SurveyAction::Shown,
                        SurveyAction::Dismissed,
                        SurveyAction::Responded,
                    ][usize::from(s.action)];
                    SurveyStep {
                        survey_id: format!("s{}", s.survey),
                        action,
                        response_id: (action == SurveyAction::Responded)
                            .then(|| format!("r{}", s.response)),
                        answers: object(vec![(k.clone(), v.clone())]),
                        context: object(vec![("src".into(), json!(s.key))]),
                    }
                }),
            }
        })
        .collect()
}

/// Everything the store would hold, rendered from in-memory state.
#[derive(Debug, Default, PartialEq)]
struct Snapshot {
    profiles: BTreeMap<String, Value>,
    identifiers: BTreeMap<String, String>,
    months: BTreeMap<String, MauRow>,
}

fn snapshot(state: &WorkspaceState, identifiers: &BTreeSet<Identifier>) -> Snapshot {
    Snapshot {
        profiles: state
            .profile_ids()
            .iter()
            .filter_map(|id| Some((id.to_string(), state.profile_json(id)?)))
            .collect(),
        identifiers: identifiers
            .iter()
            .map(|id| (id.to_string(), state.resolve_now(id).to_string()))
            .collect(),
        months: state
            .mau_rows()
            .into_iter()
            .map(|r| (r.month.clone(), r))
            .collect(),
    }
}

fn all_identifiers(records: &[FoldRecord]) -> BTreeSet<Identifier> {
    records
        .iter()
        .flat_map(|r| r.identifiers())
        .filter(|i| i.kind != IdentifierKind::User)
        .collect()
}

/// The definitions, computed from scratch: resolve every event with all
/// links for profiles, and with only the links dated before the month's end
/// for that month's MAU.
fn oracle(records: &[FoldRecord]) -> Snapshot {
    let links = |horizon: i64| {
        let mut graph = IdentityGraph::default();
        for r in records.iter().filter(|r| r.time < horizon) {
            for (from, to) in asserted_links(
                r.user_id.as_deref(),
                r.email.as_deref(),
                r.anonymous_id.as_deref(),
            ) {
                graph.insert_link(from, to, r.order());
            }
        }
        graph
    };
    let graph = links(i64::MAX);
    let mut aggregates: BTreeMap<Identifier, ProfileAggregate> = BTreeMap::new();
    for r in records {
        aggregates
            .entry(graph.resolve_identity(&r.subject(), r.time))
            .or_default()
            .apply(r);
    }
    let identifiers = all_identifiers(records);
    let mut snap = Snapshot::default();
    for (id, aggregate) in &aggregates {
        let now_here = |kind| {
            identifiers
                .iter()
                .filter(|i| i.kind == kind && graph.resolve_now(i) == *id)
                .map(|i| i.value.clone())
                .collect::<Vec<_>>()
        };
        let json = aggregate.render(
            "w",
            id,
            now_here(IdentifierKind::Email),
            now_here(IdentifierKind::Anonymous),
        );
        snap.profiles.insert(id.to_string(), json);
    }
    for id in &identifiers {
        snap.identifiers
            .insert(id.to_string(), graph.resolve_now(id).to_string());
    }
    let months: BTreeSet<Month> = records.iter().map(|r| month_of(r.time)).collect();
    for month in months {
        let month_graph = links(month_end_nanos(month));
        let mut identified = BTreeSet::new();
        let mut anonymous = BTreeSet::new();
        for r in records.iter().filter(|r| month_of(r.time) == month) {
            let target = month_graph.resolve_identity(&r.subject(), r.time);
            if target.is_identified() {
                identified.insert(target);
            } else if r.is_survey() {
                anonymous.insert(target);
            }
        }
        let (i, a) = (identified.len() as u64, anonymous.len() as u64);
        snap.months.insert(
            month.to_string(),
            MauRow {
                workspace_id: "w".into(),
                month: month.to_string(),
                identified: i,
                anonymous: a,
                total: i + a,
            },
        );
    }
    snap
}

/// Applies events in order, replaying `take_changes` into a map as the
/// store would, with a batch boundary wherever `cuts` says.
fn fold(records: &[FoldRecord], cuts: &[bool]) -> (WorkspaceState, Snapshot) {
    let mut state = WorkspaceState::new("w");
    let mut stored = Snapshot::default();
    let drain = |state: &mut WorkspaceState, stored: &mut Snapshot| {
        let changes = state.take_changes();
        for (id, json) in changes.profiles {
            match json {
                Some(json) => stored.profiles.insert(id.to_string(), json),
                None => stored.profiles.remove(&id.to_string()),
            };
        }
        for (id, target) in changes.identifiers {
            stored
                .identifiers
                .insert(id.to_string(), target.to_string());
        }
        for row in changes.months {
            stored.months.insert(row.month.clone(), row);
        }
    };
    for (i, r) in records.iter().enumerate() {
        state.apply(r.clone());
        if cuts.get(i).copied().unwrap_or(false) {
            drain(&mut state, &mut stored);
        }
    }
    drain(&mut state, &mut stored);
    (state, stored)
}

fn permute<T: Clone>(items: &[T], seed: u64) -> Vec<T> {
    let mut out = items.to_vec();
    let mut x = seed | 1;
    for i in (1..out.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.swap(i, (x % (i as u64 + 1)) as usize);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn fold_equals_the_definitions_in_any_order_with_redeliveries(
        specs in prop::collection::vec(arb_spec(), 1..60),
        seed in any::<u64>(),
        redeliver in prop::collection::vec(any::<prop::sample::Index>(), 0..15),
        cuts in prop::collection::vec(any::<bool>(), 0..80),
    ) {
        let records = records(&specs);
        let expected = oracle(&records);

        let (in_order, stored) = fold(&records, &cuts);
        let ids = all_identifiers(&records);
        prop_assert_eq!(&snapshot(&in_order, &ids), &expected);
        prop_assert_eq!(&stored, &expected, "the changes handed to the store add up to the state");

        let mut shuffled = permute(&records, seed);
        for index in &redeliver {
            let copy = index.get(&records).clone();
            let at = index.index(shuffled.len() + 1);
            shuffled.insert(at, copy);
        }
        let (reordered, stored) = fold(&shuffled, &cuts);
        prop_assert_eq!(&snapshot(&reordered, &ids), &expected);
        prop_assert_eq!(&stored, &expected);
    }
}

#[test]
fn a_sign_in_in_a_later_month_does_not_rewrite_a_closed_month() {
    let survey = |mid: &str, day: i64, device: &str| FoldRecord {
        message_id: mid.into(),
        time: START + day * DAY,
        kind: EventKind::Survey,
        user_id: None,
        email: None,
        anonymous_id: Some(device.into()),
        traits: None,
        track_event: None,
        survey: Some(SurveyStep {
            survey_id: "s".into(),
            action: SurveyAction::Shown,
            response_id: None,
            answers: Map::new(),
            context: Map::new(),
        }),
    };
    let sign_in = FoldRecord {
        kind: EventKind::Identify,
        user_id: Some("u".into()),
        survey: None,
        traits: Some(TraitChanges::default()),
        ..survey("m3", 40, "d")
    };
    let jan = Month {
        year: 2026,
        month: 1,
    };
    let feb = Month {
        year: 2026,
        month: 2,
    };
    let mut state = WorkspaceState::new("w");
    state.apply(survey("m1", 3, "d"));
    state.apply(survey("m2", 35, "d"));
    assert_eq!(
        (state.mau_row(jan).anonymous, state.mau_row(feb).anonymous),
        (1, 1)
    );
    state.apply(sign_in);
    assert_eq!(state.mau_row(jan).anonymous, 1, "January stays anonymous");
    assert_eq!(state.mau_row(jan).identified, 0);
    assert_eq!(
        (state.mau_row(feb).identified, state.mau_row(feb).anonymous),
        (1, 0),
        "February counts the device once, as its user"
    );
    let profile = state
        .profile_json(&Identifier::user("u"))
        .unwrap_or_default();
    assert_eq!(
        profile["event_counts"]["survey"],
        json!(2),
        "the user adopts the device's history"
    );
    assert_eq!(profile["anonymous_ids"], json!(["d"]));
    assert!(state.profile_json(&Identifier::anonymous("d")).is_none());
}
