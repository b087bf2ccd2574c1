//! The projection is a function of the set of accepted events: checked over
//! random workloads against a from-scratch oracle, in any order, with
//! re-deliveries, and with batches whose cache is dropped so that every
//! entry is read back from what the store holds.

use std::collections::{BTreeMap, BTreeSet};

use idfold_events::{
    month_end_nanos, month_of, ErasureRequest, EventKind, Identifier, IdentifierKind, Month,
    SurveyAction,
};
use idfold_projector::{
    Applied, ErasureRecord, FoldRecord, MauRow, MemoryFold, ProfileAggregate, SurveyStep,
    TraitChanges,
};
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

/// Everything the store holds.
#[derive(Debug, Default, PartialEq)]
struct Snapshot {
    profiles: BTreeMap<String, Value>,
    identifiers: BTreeMap<String, String>,
    months: BTreeMap<String, MauRow>,
}

/// A workspace folded in memory, read after committing what is pending.
struct State(MemoryFold);

impl State {
    fn new() -> State {
        State(MemoryFold::new("w"))
    }

    fn with_erasure(erasure: &ErasureRecord) -> State {
        State(MemoryFold::with_erasures(
            "w",
            std::slice::from_ref(erasure),
        ))
    }

    fn apply(&mut self, record: FoldRecord) -> Applied {
        self.0.apply(record).expect("a memory store does not fail")
    }

    fn erase(&mut self, request: &ErasureRequest) -> ErasureRecord {
        self.0.erase(request).expect("a memory store does not fail")
    }

    fn profile_json(&mut self, id: &Identifier) -> Option<Value> {
        self.0.commit(false);
        self.0.profiles().remove(&id.to_string())
    }

    fn mau_rows(&mut self) -> Vec<MauRow> {
        self.0.commit(false);
        self.0.mau_rows()
    }

    fn mau_row(&mut self, month: Month) -> MauRow {
        let rows = self.mau_rows();
        rows.into_iter()
            .find(|r| r.month == month.to_string())
            .unwrap_or(MauRow {
                workspace_id: "w".into(),
                month: month.to_string(),
                identified: 0,
                anonymous: 0,
                total: 0,
            })
    }
}

fn snapshot(state: &mut State, identifiers: &BTreeSet<Identifier>) -> Snapshot {
    state.0.commit(false);
    Snapshot {
        profiles: state.0.profiles(),
        identifiers: identifiers
            .iter()
            .map(|id| (id.to_string(), state.0.resolve_now(id).to_string()))
            .collect(),
        months: state
            .0
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

/// A link as the issue states it: (from, to, event time, message_id).
type NaiveLink = (Identifier, Identifier, i64, String);

/// The links each event asserts, written out again from the words
/// (not with the stitching crate): a device to the user (or, with no user,
/// the email); an email to the user.
fn naive_links(records: &[FoldRecord]) -> Vec<NaiveLink> {
    let mut links = Vec::new();
    for r in records {
        let at = |from: Identifier, to: Identifier| (from, to, r.time, r.message_id.clone());
        let user = r.user_id.clone().map(Identifier::user);
        let email = r.email.clone().map(Identifier::email);
        if let Some(device) = r.anonymous_id.clone().map(Identifier::anonymous) {
            if let Some(to) = user.clone().or(email.clone()) {
                links.push(at(device, to));
            }
        }
        if let (Some(e), Some(u)) = (email, user) {
            links.push(at(e, u));
        }
    }
    links
}

/// `resolve(X, t)` straight from the definition, seeing only links dated
/// before `horizon`: the latest link at or before t, else the first one;
/// then the target resolves again at the same t.
fn naive_resolve(links: &[NaiveLink], id: &Identifier, t: i64, horizon: i64) -> Identifier {
    let mut current = id.clone();
    for _ in 0..3 {
        let mut own: Vec<&NaiveLink> = links
            .iter()
            .filter(|l| l.0 == current && l.2 < horizon)
            .collect();
        own.sort_by(|a, b| (a.2, &a.3).cmp(&(b.2, &b.3)));
        let Some(first) = own.first() else { break };
        let chosen = own.iter().rev().find(|l| l.2 <= t).unwrap_or(first);
        current = chosen.1.clone();
    }
    current
}

/// The definitions, computed from scratch: resolve every event with all
/// links for profiles, and with only the links dated before the month's end
/// for that month's MAU.
fn oracle(records: &[FoldRecord]) -> Snapshot {
    let links = naive_links(records);
    let resolve = |id: &Identifier, t: i64| naive_resolve(&links, id, t, i64::MAX);
    let resolve_now = |id: &Identifier| naive_resolve(&links, id, i64::MAX, i64::MAX);
    let mut aggregates: BTreeMap<Identifier, ProfileAggregate> = BTreeMap::new();
    for r in records {
        aggregates
            .entry(resolve(&r.subject(), r.time))
            .or_default()
            .apply(r);
    }
    let identifiers = all_identifiers(records);
    let mut snap = Snapshot::default();
    for (id, aggregate) in &aggregates {
        let now_here = |kind| {
            identifiers
                .iter()
                .filter(|i| i.kind == kind && resolve_now(i) == *id)
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
            .insert(id.to_string(), resolve_now(id).to_string());
    }
    let months: BTreeSet<Month> = records.iter().map(|r| month_of(r.time)).collect();
    for month in months {
        let horizon = month_end_nanos(month);
        let mut identified = BTreeSet::new();
        let mut anonymous = BTreeSet::new();
        for r in records.iter().filter(|r| month_of(r.time) == month) {
            let target = naive_resolve(&links, &r.subject(), r.time, horizon);
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

/// Applies events in order, with a batch boundary wherever `cuts` says;
/// at each, everything cached is dropped and read back from the store.
fn fold(records: &[FoldRecord], cuts: &[bool]) -> State {
    let mut state = State::new();
    for (i, r) in records.iter().enumerate() {
        state.apply(r.clone());
        if cuts.get(i).copied().unwrap_or(false) {
            state.0.commit(true);
        }
    }
    state
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

    /// A profile is the merge of its sources' contributions: aggregates of
    /// disjoint parts of any set of events merge into the aggregate of the
    /// whole, whatever the split and the order of the merges.
    #[test]
    fn aggregates_of_disjoint_parts_merge_into_the_aggregate_of_the_whole(
        specs in prop::collection::vec(arb_spec(), 1..60),
        parts in prop::collection::vec(0..4usize, 60),
        seed in any::<u64>(),
    ) {
        let records = records(&specs);
        let mut whole = ProfileAggregate::default();
        let mut split = vec![ProfileAggregate::default(); 4];
        let mut seen = BTreeSet::new();
        for (i, r) in records.iter().enumerate() {
            if !seen.insert(r.message_id.clone()) {
                continue;
            }
            whole.apply(r);
            split[parts[i % parts.len()]].apply(r);
        }
        let mut merged = ProfileAggregate::default();
        for part in permute(&split, seed) {
            merged.merge(&part);
        }
        prop_assert_eq!(merged, whole);
    }

    #[test]
    fn fold_equals_the_definitions_in_any_order_with_redeliveries(
        specs in prop::collection::vec(arb_spec(), 1..60),
        seed in any::<u64>(),
        redeliver in prop::collection::vec(any::<prop::sample::Index>(), 0..15),
        cuts in prop::collection::vec(any::<bool>(), 0..80),
    ) {
        let records = records(&specs);
        let expected = oracle(&records);

        let mut in_order = fold(&records, &cuts);
        let ids = all_identifiers(&records);
        prop_assert_eq!(&snapshot(&mut in_order, &ids), &expected);
        prop_assert_eq!(
            in_order.0.identifiers().keys().cloned().collect::<BTreeSet<_>>(),
            ids.clone(),
            "every email and device is known"
        );

        let mut shuffled = permute(&records, seed);
        for index in &redeliver {
            let copy = index.get(&records).clone();
            let at = index.index(shuffled.len() + 1);
            shuffled.insert(at, copy);
        }
        let mut reordered = fold(&shuffled, &cuts);
        prop_assert_eq!(&snapshot(&mut reordered, &ids), &expected);
    }

    /// Erasing a user leaves exactly the fold of everyone else's events,
    /// keeps every month's MAU as it was, hands the store changes that add
    /// up to that, and a refold (a rebuild with the events gone, or a replay
    /// that re-delivers them) with the erasure record loaded ends the same.
    #[test]
    fn an_erasure_forgets_one_person_and_nothing_else(
        specs in prop::collection::vec(arb_spec(), 1..60),
        seed in any::<u64>(),
        who in 0..3u8,
        cuts in prop::collection::vec(any::<bool>(), 0..80),
    ) {
        let records = records(&specs);
        let mut state = fold(&records, &cuts);
        let months_before = state.mau_rows();
        let person = Identifier::user(format!("u{who}"));
        let erasure = state.erase(&ErasureRequest {
            erasure_id: "er-1".into(),
            workspace_id: "w".into(),
            profile: person.clone(),
            requested_at: START,
        });
        state.0.commit(true);

        let forgotten: BTreeSet<&str> = erasure.message_ids.iter().map(String::as_str).collect();
        let rest: Vec<FoldRecord> = records
            .iter()
            .filter(|r| !forgotten.contains(idfold_projector::MessageHash::of(&r.message_id).to_hex().as_str()))
            .cloned()
            .collect();
        prop_assert!(rest.iter().all(|r| r.user_id.as_deref() != Some(person.value.as_str())),
            "every event of the user is forgotten");
        let carried = records.iter().filter(|r| r.user_id.as_deref() == Some(person.value.as_str())).count();
        prop_assert!(erasure.events as usize >= carried);

        let ids = all_identifiers(&rest);
        let erased = snapshot(&mut state, &ids);
        let expected = oracle(&rest);
        prop_assert_eq!(&erased.profiles, &expected.profiles, "profiles are the fold of the rest");
        prop_assert_eq!(&erased.identifiers, &expected.identifiers);
        prop_assert!(!erased.profiles.contains_key(&person.to_string()));
        prop_assert_eq!(&state.mau_rows(), &months_before, "months keep their counts");
        prop_assert_eq!(
            state.0.identifiers().keys().cloned().collect::<BTreeSet<_>>(),
            ids.clone(),
            "the person's emails and devices are no longer known"
        );

        // The embedded log after the purge: the rest only.
        let mut rebuilt = State::with_erasure(&erasure);
        for r in permute(&rest, seed) {
            rebuilt.apply(r);
        }
        prop_assert_eq!(&snapshot(&mut rebuilt, &ids), &erased);
        // Kafka's log, or a late re-delivery: every event again, any order.
        let mut replayed = State::with_erasure(&erasure);
        for r in permute(&records, seed.rotate_left(7)) {
            replayed.apply(r);
        }
        prop_assert_eq!(&snapshot(&mut replayed, &ids), &erased);
        prop_assert!(replayed.0.has_erasure("er-1"));
    }
}

#[test]
fn an_erased_person_who_comes_back_starts_a_fresh_profile() {
    let identify = |mid: &str, day: i64, traits: Value| FoldRecord {
        message_id: mid.into(),
        time: START + day * DAY,
        kind: EventKind::Identify,
        user_id: Some("u".into()),
        email: Some("u@x.io".into()),
        anonymous_id: Some("d".into()),
        traits: Some(TraitChanges {
            set: traits.as_object().cloned().unwrap_or_default(),
            ..TraitChanges::default()
        }),
        track_event: None,
        survey: None,
    };
    let mut state = State::new();
    state.apply(identify("m1", 1, json!({"plan": "pro"})));
    let erasure = state.erase(&ErasureRequest {
        erasure_id: "er".into(),
        workspace_id: "w".into(),
        profile: Identifier::email("u@x.io"),
        requested_at: START + 2 * DAY,
    });
    assert_eq!((erasure.events, erasure.emails, erasure.devices), (1, 1, 1));
    assert!(state.profile_json(&Identifier::user("u")).is_none());
    assert_eq!(
        state.apply(identify("m1", 1, json!({"plan": "pro"}))),
        Applied::Forgotten
    );
    state.apply(identify("m2", 3, json!({"seat": 1})));
    let fresh = state
        .profile_json(&Identifier::user("u"))
        .unwrap_or_default();
    assert_eq!(
        fresh["traits"],
        json!({"seat": 1}),
        "nothing of before comes back"
    );
    let jan = Month {
        year: 2026,
        month: 1,
    };
    assert_eq!(
        state.mau_row(jan).identified,
        2,
        "the erased person still counts, and the one who came back is new"
    );
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
    let mut state = State::new();
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

#[test]
fn the_first_event_folded_with_a_message_id_wins() {
    let specs = vec![
        Spec {
            kind: 2,
            user: Some(1),
            email: None,
            device: None,
            day: 2,
            key: 0,
            value: 0,
            survey: 0,
            action: 0,
            response: 0,
        },
        Spec {
            kind: 2,
            user: Some(2),
            email: None,
            device: None,
            day: 3,
            key: 1,
            value: 0,
            survey: 0,
            action: 0,
            response: 0,
        },
    ];
    let mut recs = records(&specs);
    recs[1].message_id = recs[0].message_id.clone();
    let mut state = State::new();
    assert_eq!(state.apply(recs[0].clone()), Applied::Folded);
    assert_eq!(state.apply(recs[1].clone()), Applied::Duplicate);
    assert!(state.profile_json(&Identifier::user("u1")).is_some());
    assert!(
        state.profile_json(&Identifier::user("u2")).is_none(),
        "the second event with that id is dropped"
    );
}
