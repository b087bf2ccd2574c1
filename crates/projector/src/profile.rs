//! A profile's aggregate: a commutative fold of its events, so the same set
//! of events gives the same aggregate in any order.

use std::collections::BTreeMap;

use idfold_events::{
    format_nanos, EventKind, EventOrder, EventTime, Identifier, IdentifierKind, SurveyAction,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::record::FoldRecord;
use crate::view::{self, EventCounts, ProfileKind, ProfileView, ResponseView, SurveyStats};

/// A value with the (event time, message_id) that wrote it: the greatest wins
/// for sets and answers, the smallest for `set_once`.
#[derive(Debug, Clone, PartialEq)]
struct Stamped<T> {
    order: EventOrder,
    value: T,
}

/// A JSON value kept in the binary state as its JSON text (the binary
/// format is not self-describing; JSON text is, and re-serialises to the
/// same bytes).
trait AsJsonText: Sized {
    fn to_text(&self) -> String;
    fn from_text(text: &str) -> Result<Self, serde_json::Error>;
}

impl AsJsonText for Value {
    fn to_text(&self) -> String {
        self.to_string()
    }
    fn from_text(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// `None` (an unset trait) is the empty text, which no JSON value is.
impl AsJsonText for Option<Value> {
    fn to_text(&self) -> String {
        self.as_ref().map(Value::to_string).unwrap_or_default()
    }
    fn from_text(text: &str) -> Result<Self, serde_json::Error> {
        if text.is_empty() {
            Ok(None)
        } else {
            serde_json::from_str(text).map(Some)
        }
    }
}

impl<T: AsJsonText> Serialize for Stamped<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (
            self.order.time,
            &self.order.message_id,
            self.value.to_text(),
        )
            .serialize(serializer)
    }
}

impl<'de, T: AsJsonText> Deserialize<'de> for Stamped<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (time, message_id, text) = <(EventTime, String, String)>::deserialize(deserializer)?;
        let value = T::from_text(&text).map_err(serde::de::Error::custom)?;
        Ok(Stamped {
            order: EventOrder { time, message_id },
            value,
        })
    }
}

/// Of two stamped values, the one `later` prefers (the greatest order for
/// sets and answers, the smallest for `set_once`).
fn keep_either<T>(slot: &mut Option<Stamped<T>>, other: Option<Stamped<T>>, later: bool) {
    let Some(other) = other else { return };
    let replace = slot.as_ref().is_none_or(|cur| {
        if later {
            other.order > cur.order
        } else {
            other.order < cur.order
        }
    });
    if replace {
        *slot = Some(other);
    }
}

fn min_time(a: Option<EventTime>, b: Option<EventTime>) -> Option<EventTime> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn max_time(a: Option<EventTime>, b: Option<EventTime>) -> Option<EventTime> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

fn keep_latest<T>(slot: &mut Option<Stamped<T>>, order: &EventOrder, value: T) {
    if slot.as_ref().is_none_or(|cur| *order > cur.order) {
        *slot = Some(Stamped {
            order: order.clone(),
            value,
        });
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct TraitState {
    /// The greatest `set` or `unset` (None) of this name.
    latest: Option<Stamped<Option<Value>>>,
    /// The smallest `set_once`.
    first_once: Option<Stamped<Value>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct ResponseState {
    latest: Option<EventOrder>,
    answers: BTreeMap<String, Option<Stamped<Value>>>,
    context: BTreeMap<String, Option<Stamped<Value>>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
struct SurveyCounts {
    shown: u64,
    dismissed: u64,
    /// The latest step of each kind, for "within the last d days".
    last_shown: Option<EventTime>,
    last_dismissed: Option<EventTime>,
    last_responded: Option<EventTime>,
}

/// Nanoseconds per UTC day.
const DAY: EventTime = 86_400 * 1_000_000_000;

fn latest(slot: &mut Option<EventTime>, t: EventTime) {
    *slot = Some(slot.map_or(t, |cur| cur.max(t)));
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TrackStats {
    count: u64,
    first: EventTime,
    last: EventTime,
    /// Events per UTC day (days since the epoch), for counts over the last
    /// d days.
    days: BTreeMap<i64, u64>,
}

/// Built so that aggregates of disjoint sets of events merge into the
/// aggregate of their union ([`ProfileAggregate::merge`]): counts add,
/// first/last are min/max, traits and answers keep the latest by (time,
/// message_id), `set_once` the earliest, responses merge per (survey_id,
/// response_id). A profile is the merge of its sources' contributions, so a
/// late link moves one source's contribution instead of refolding a
/// profile from every event it ever had.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProfileAggregate {
    first_seen: Option<EventTime>,
    last_seen: Option<EventTime>,
    event_counts: BTreeMap<EventKind, u64>,
    traits: BTreeMap<String, TraitState>,
    surveys: BTreeMap<String, SurveyCounts>,
    /// (survey_id, response_id) -> the merged steps of one response.
    responses: BTreeMap<(String, String), ResponseState>,
    track: BTreeMap<String, TrackStats>,
}

impl ProfileAggregate {
    pub fn is_empty(&self) -> bool {
        self.first_seen.is_none()
    }

    /// Adds the aggregate of another, disjoint, set of events.
    pub fn merge(&mut self, other: &ProfileAggregate) {
        self.first_seen = min_time(self.first_seen, other.first_seen);
        self.last_seen = max_time(self.last_seen, other.last_seen);
        for (kind, n) in &other.event_counts {
            *self.event_counts.entry(*kind).or_default() += n;
        }
        for (name, theirs) in &other.traits {
            let mine = self.traits.entry(name.clone()).or_default();
            keep_either(&mut mine.latest, theirs.latest.clone(), true);
            keep_either(&mut mine.first_once, theirs.first_once.clone(), false);
        }
        for (survey_id, theirs) in &other.surveys {
            let mine = self.surveys.entry(survey_id.clone()).or_default();
            mine.shown += theirs.shown;
            mine.dismissed += theirs.dismissed;
            mine.last_shown = max_time(mine.last_shown, theirs.last_shown);
            mine.last_dismissed = max_time(mine.last_dismissed, theirs.last_dismissed);
            mine.last_responded = max_time(mine.last_responded, theirs.last_responded);
        }
        for (key, theirs) in &other.responses {
            let mine = self.responses.entry(key.clone()).or_default();
            if let Some(order) = &theirs.latest {
                if mine.latest.as_ref().is_none_or(|cur| order > cur) {
                    mine.latest = Some(order.clone());
                }
            }
            for (field, value) in &theirs.answers {
                keep_either(
                    mine.answers.entry(field.clone()).or_default(),
                    value.clone(),
                    true,
                );
            }
            for (field, value) in &theirs.context {
                keep_either(
                    mine.context.entry(field.clone()).or_default(),
                    value.clone(),
                    true,
                );
            }
        }
        for (event, theirs) in &other.track {
            match self.track.get_mut(event) {
                None => {
                    self.track.insert(event.clone(), theirs.clone());
                }
                Some(mine) => {
                    mine.count += theirs.count;
                    mine.first = mine.first.min(theirs.first);
                    mine.last = mine.last.max(theirs.last);
                    for (day, n) in &theirs.days {
                        *mine.days.entry(*day).or_default() += n;
                    }
                }
            }
        }
    }

    /// Distinct responses (survey_id, response_id) folded in.
    pub fn response_count(&self) -> u64 {
        self.responses.len() as u64
    }

    pub fn apply(&mut self, record: &FoldRecord) {
        let t = record.time;
        self.first_seen = Some(self.first_seen.map_or(t, |f| f.min(t)));
        self.last_seen = Some(self.last_seen.map_or(t, |l| l.max(t)));
        *self.event_counts.entry(record.kind).or_default() += 1;
        let order = record.order();
        if let Some(changes) = &record.traits {
            for (name, value) in &changes.set {
                // Within one event an unset of the same name wins over its set.
                if !changes.unset.contains(name) {
                    let slot = &mut self.traits.entry(name.clone()).or_default().latest;
                    keep_latest(slot, &order, Some(value.clone()));
                }
            }
            for name in &changes.unset {
                keep_latest(
                    &mut self.traits.entry(name.clone()).or_default().latest,
                    &order,
                    None,
                );
            }
            for (name, value) in &changes.set_once {
                let slot = &mut self.traits.entry(name.clone()).or_default().first_once;
                if slot.as_ref().is_none_or(|cur| order < cur.order) {
                    *slot = Some(Stamped {
                        order: order.clone(),
                        value: value.clone(),
                    });
                }
            }
        }
        if let Some(event) = &record.track_event {
            let stats = self.track.entry(event.clone()).or_insert(TrackStats {
                count: 0,
                first: t,
                last: t,
                days: BTreeMap::new(),
            });
            stats.count += 1;
            *stats.days.entry(t.div_euclid(DAY)).or_default() += 1;
            stats.first = stats.first.min(t);
            stats.last = stats.last.max(t);
        }
        if let Some(step) = &record.survey {
            let counts = self.surveys.entry(step.survey_id.clone()).or_default();
            match step.action {
                SurveyAction::Shown => {
                    counts.shown += 1;
                    latest(&mut counts.last_shown, t);
                }
                SurveyAction::Dismissed => {
                    counts.dismissed += 1;
                    latest(&mut counts.last_dismissed, t);
                }
                SurveyAction::Responded => {
                    latest(&mut counts.last_responded, t);
                    let response_id = step
                        .response_id
                        .clone()
                        .unwrap_or_else(|| record.message_id.clone());
                    let response = self
                        .responses
                        .entry((step.survey_id.clone(), response_id))
                        .or_default();
                    if response.latest.as_ref().is_none_or(|cur| order > *cur) {
                        response.latest = Some(order.clone());
                    }
                    for (key, value) in &step.answers {
                        keep_latest(
                            response.answers.entry(key.clone()).or_default(),
                            &order,
                            value.clone(),
                        );
                    }
                    for (key, value) in &step.context {
                        keep_latest(
                            response.context.entry(key.clone()).or_default(),
                            &order,
                            value.clone(),
                        );
                    }
                }
            }
        }
    }

    /// The profile JSON contract. `emails` and `anonymous_ids` are the
    /// identifiers that resolve to `id` now (the profile's own included).
    pub fn render(
        &self,
        workspace_id: &str,
        id: &Identifier,
        emails: Vec<String>,
        anonymous_ids: Vec<String>,
    ) -> Value {
        let view = self.view(workspace_id, id, emails, anonymous_ids);
        serde_json::to_value(&view).unwrap_or(Value::Null)
    }

    /// The same JSON as [`Self::render`], written straight to bytes (what
    /// the store keeps) without building a `Value` first.
    pub fn render_bytes(
        &self,
        workspace_id: &str,
        id: &Identifier,
        emails: Vec<String>,
        anonymous_ids: Vec<String>,
    ) -> Vec<u8> {
        let view = self.view(workspace_id, id, emails, anonymous_ids);
        // Serializing strings, numbers and JSON values cannot fail.
        serde_json::to_vec(&view).unwrap_or_default()
    }

    /// The profile as the typed view every reader parses.
    pub fn view(
        &self,
        workspace_id: &str,
        id: &Identifier,
        mut emails: Vec<String>,
        mut anonymous_ids: Vec<String>,
    ) -> ProfileView {
        emails.sort();
        emails.dedup();
        anonymous_ids.sort();
        anonymous_ids.dedup();
        let traits = self
            .traits
            .iter()
            .filter_map(|(name, state)| {
                let value = match &state.latest {
                    Some(latest) => latest.value.as_ref(),
                    None => state.first_once.as_ref().map(|once| &once.value),
                };
                value.map(|v| (name.clone(), v.clone()))
            })
            .collect();
        let count = |k: EventKind| self.event_counts.get(&k).copied().unwrap_or(0);
        let mut responded: BTreeMap<&str, u64> = BTreeMap::new();
        for (survey_id, _) in self.responses.keys() {
            *responded.entry(survey_id).or_default() += 1;
        }
        let surveys = self
            .surveys
            .iter()
            .map(|(survey_id, counts)| {
                let responded = responded.get(survey_id.as_str()).copied().unwrap_or(0);
                (
                    survey_id.clone(),
                    SurveyStats {
                        dismissed: counts.dismissed,
                        last_dismissed: counts.last_dismissed.map(format_nanos),
                        last_responded: counts.last_responded.map(format_nanos),
                        last_shown: counts.last_shown.map(format_nanos),
                        responded,
                        shown: counts.shown,
                    },
                )
            })
            .collect();
        let merged = |fields: &BTreeMap<String, Option<Stamped<Value>>>| {
            fields
                .iter()
                .filter_map(|(k, v)| v.as_ref().map(|l| (k.clone(), l.value.clone())))
                .collect()
        };
        let mut timed: Vec<(EventTime, &str, &str, &ResponseState)> = self
            .responses
            .iter()
            .filter_map(|((survey_id, response_id), state)| {
                let at = state.latest.as_ref()?.time;
                Some((at, response_id.as_str(), survey_id.as_str(), state))
            })
            .collect();
        timed.sort_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));
        let responses = timed
            .into_iter()
            .map(|(at, response_id, survey_id, state)| ResponseView {
                answers: merged(&state.answers),
                context: merged(&state.context),
                response_id: response_id.to_owned(),
                survey_id: survey_id.to_owned(),
                timestamp: format_nanos(at),
            })
            .collect();
        let track = self
            .track
            .iter()
            .map(|(name, s)| {
                (
                    name.clone(),
                    view::TrackStats {
                        count: s.count,
                        days: s.days.iter().map(|(day, n)| (day_name(*day), *n)).collect(),
                        first: format_nanos(s.first),
                        last: format_nanos(s.last),
                    },
                )
            })
            .collect();
        ProfileView {
            anonymous_ids,
            emails,
            event_counts: EventCounts {
                identify: count(EventKind::Identify),
                survey: count(EventKind::Survey),
                track: count(EventKind::Track),
                traits: count(EventKind::Traits),
            },
            first_seen: self.first_seen.map(format_nanos),
            id: id.to_string(),
            kind: if id.is_identified() {
                ProfileKind::Identified
            } else {
                ProfileKind::Anonymous
            },
            last_seen: self.last_seen.map(format_nanos),
            responses,
            surveys,
            track,
            traits,
            user_id: (id.kind == IdentifierKind::User).then(|| id.value.clone()),
            workspace_id: workspace_id.to_owned(),
        }
    }
}

/// `YYYY-MM-DD` of a day number (days since the epoch, UTC).
fn day_name(day: i64) -> String {
    let text = format_nanos(day.saturating_mul(DAY));
    text.get(..10).unwrap_or(&text).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{SurveyStep, TraitChanges};
    use serde_json::{json, Map};

    fn record(mid: &str, time: EventTime, kind: EventKind) -> FoldRecord {
        FoldRecord {
            message_id: mid.into(),
            time,
            kind,
            user_id: Some("u".into()),
            email: None,
            anonymous_id: None,
            traits: None,
            track_event: None,
            survey: None,
        }
    }

    fn traits(
        mid: &str,
        time: EventTime,
        set: Value,
        set_once: Value,
        unset: &[&str],
    ) -> FoldRecord {
        let obj = |v: Value| v.as_object().cloned().unwrap_or_default();
        FoldRecord {
            traits: Some(TraitChanges {
                set: obj(set),
                set_once: obj(set_once),
                unset: unset.iter().map(|s| s.to_string()).collect(),
            }),
            ..record(mid, time, EventKind::Traits)
        }
    }

    fn render(p: &ProfileAggregate) -> Value {
        p.render("w", &Identifier::user("u"), vec![], vec![])
    }

    #[test]
    fn bytes_are_the_json_with_sorted_keys() {
        let mut p = ProfileAggregate::default();
        p.apply(&traits(
            "a",
            1,
            json!({"b": 1, "a": {"z": 1, "y": 2}}),
            json!({}),
            &[],
        ));
        p.apply(&FoldRecord {
            track_event: Some("Open".into()),
            ..record("c", 2, EventKind::Track)
        });
        let id = Identifier::user("u");
        let bytes = p.render_bytes("w", &id, vec!["b@x.io".into(), "a@x.io".into()], vec![]);
        let value = p.render("w", &id, vec!["b@x.io".into(), "a@x.io".into()], vec![]);
        assert_eq!(
            String::from_utf8(bytes).ok(),
            serde_json::to_string(&value).ok(),
            "same bytes as the sorted-key form"
        );
        assert_eq!(value["emails"], json!(["a@x.io", "b@x.io"]));
    }

    /// What the store keeps parses back into the typed view it was
    /// written from, and writes the same bytes again.
    #[test]
    fn rendered_bytes_parse_into_the_view_and_back() {
        let mut p = ProfileAggregate::default();
        p.apply(&traits(
            "a",
            1_000_000_000,
            json!({"plan": "pro", "beta": null, "address": {"zip": "1", "city": "x"}}),
            json!({"first_plan": "trial"}),
            &[],
        ));
        p.apply(&FoldRecord {
            track_event: Some("Open".into()),
            ..record("b", 90_000_000_000_000, EventKind::Track)
        });
        for (mid, action, t) in [
            ("c", SurveyAction::Shown, 5),
            ("d", SurveyAction::Dismissed, 6),
            ("e", SurveyAction::Responded, 7),
        ] {
            p.apply(&FoldRecord {
                survey: Some(SurveyStep {
                    survey_id: "nps".into(),
                    action,
                    response_id: None,
                    answers: json!({"score": 9.5})
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
                    context: json!({"page": "/"})
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
                }),
                ..record(mid, t, EventKind::Survey)
            });
        }
        let id = Identifier::user("u");
        let emails = vec!["a@x.io".to_owned()];
        let view = p.view("w", &id, emails.clone(), vec!["d".into()]);
        let bytes = p.render_bytes("w", &id, emails, vec!["d".into()]);
        let parsed: Option<ProfileView> = serde_json::from_slice(&bytes).ok();
        assert_eq!(parsed.as_ref(), Some(&view));
        assert_eq!(
            parsed.and_then(|v| serde_json::to_vec(&v).ok()),
            Some(bytes)
        );
        assert_eq!(view.traits.get("beta"), Some(&Value::Null));
        assert_eq!(view.surveys["nps"].responded, 1);

        let empty = ProfileAggregate::default().render_bytes("w", &id, vec![], vec![]);
        let parsed: Option<ProfileView> = serde_json::from_slice(&empty).ok();
        assert_eq!(parsed.as_ref().map(|v| v.first_seen.is_none()), Some(true));
        assert_eq!(
            parsed.and_then(|v| serde_json::to_vec(&v).ok()),
            Some(empty)
        );
    }

    #[test]
    fn traits_last_writer_wins_by_time_then_message_id() {
        let mut p = ProfileAggregate::default();
        p.apply(&traits("b", 10, json!({"plan": "pro"}), json!({}), &[]));
        p.apply(&traits("a", 10, json!({"plan": "free"}), json!({}), &[]));
        p.apply(&traits("z", 5, json!({"plan": "trial"}), json!({}), &[]));
        assert_eq!(render(&p)["traits"], json!({"plan": "pro"}));
    }

    #[test]
    fn unset_removes_and_set_once_only_fills_names_never_set() {
        let mut p = ProfileAggregate::default();
        p.apply(&traits(
            "a",
            1,
            json!({"plan": "pro"}),
            json!({"first_plan": "pro", "plan": "x"}),
            &[],
        ));
        p.apply(&traits(
            "b",
            2,
            json!({}),
            json!({"first_plan": "team"}),
            &["plan"],
        ));
        p.apply(&traits(
            "c",
            0,
            json!({}),
            json!({"first_plan": "free"}),
            &[],
        ));
        assert_eq!(render(&p)["traits"], json!({"first_plan": "free"}));
    }

    #[test]
    fn response_steps_merge_per_key_and_take_the_latest_timestamp() {
        let mut p = ProfileAggregate::default();
        let step = |mid: &str, t: EventTime, answers: Value| FoldRecord {
            survey: Some(SurveyStep {
                survey_id: "s1".into(),
                action: SurveyAction::Responded,
                response_id: Some("r1".into()),
                answers: answers.as_object().cloned().unwrap_or_default(),
                context: Map::new(),
            }),
            ..record(mid, t, EventKind::Survey)
        };
        p.apply(&step("m2", 2_000_000_000, json!({"q2": "yes", "q1": 9})));
        p.apply(&step("m1", 1_000_000_000, json!({"q1": 7})));
        let out = render(&p);
        assert_eq!(
            out["responses"][0]["answers"],
            json!({"q1": 9, "q2": "yes"})
        );
        assert_eq!(
            out["responses"][0]["timestamp"],
            json!("1970-01-01T00:00:02Z")
        );
        assert_eq!(
            out["surveys"]["s1"],
            json!({"shown": 0, "dismissed": 0, "responded": 1, "last_responded": "1970-01-01T00:00:02Z"})
        );
        assert_eq!(
            out["event_counts"],
            json!({"identify": 0, "traits": 0, "track": 0, "survey": 2})
        );
    }
}
