//! A profile's aggregate: a commutative fold of its events, so the same set
//! of events gives the same aggregate in any order.

use std::collections::BTreeMap;

use idfold_events::{
    format_nanos, EventKind, EventOrder, EventTime, Identifier, IdentifierKind, SurveyAction,
};
use serde_json::{json, Map, Value};

use crate::record::FoldRecord;

/// A value with the (event time, message_id) that wrote it: the greatest wins
/// for sets and answers, the smallest for `set_once`.
#[derive(Debug, Clone, PartialEq)]
struct Stamped<T> {
    order: EventOrder,
    value: T,
}

fn keep_latest<T>(slot: &mut Option<Stamped<T>>, order: &EventOrder, value: T) {
    if slot.as_ref().is_none_or(|cur| *order > cur.order) {
        *slot = Some(Stamped {
            order: order.clone(),
            value,
        });
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
struct TraitState {
    /// The greatest `set` or `unset` (None) of this name.
    latest: Option<Stamped<Option<Value>>>,
    /// The smallest `set_once`.
    first_once: Option<Stamped<Value>>,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct ResponseState {
    latest: Option<EventOrder>,
    answers: BTreeMap<String, Option<Stamped<Value>>>,
    context: BTreeMap<String, Option<Stamped<Value>>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct SurveyCounts {
    shown: u64,
    dismissed: u64,
}

#[derive(Debug, Clone, PartialEq)]
struct TrackStats {
    count: u64,
    first: EventTime,
    last: EventTime,
}

#[derive(Debug, Clone, Default, PartialEq)]
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
            });
            stats.count += 1;
            stats.first = stats.first.min(t);
            stats.last = stats.last.max(t);
        }
        if let Some(step) = &record.survey {
            let counts = self.surveys.entry(step.survey_id.clone()).or_default();
            match step.action {
                SurveyAction::Shown => counts.shown += 1,
                SurveyAction::Dismissed => counts.dismissed += 1,
                SurveyAction::Responded => {
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
        mut emails: Vec<String>,
        mut anonymous_ids: Vec<String>,
    ) -> Value {
        emails.sort();
        emails.dedup();
        anonymous_ids.sort();
        anonymous_ids.dedup();
        let time = |t: Option<EventTime>| t.map(format_nanos).map_or(Value::Null, Value::from);
        let traits: Map<String, Value> = self
            .traits
            .iter()
            .filter_map(|(name, state)| {
                let value = match &state.latest {
                    Some(latest) => latest.value.clone(),
                    None => state.first_once.as_ref().map(|once| once.value.clone()),
                };
                value.map(|v| (name.clone(), v))
            })
            .collect();
        let event_counts: Map<String, Value> = EventKind::ALL
            .iter()
            .map(|k| {
                (
                    k.as_str().to_owned(),
                    Value::from(self.event_counts.get(k).copied().unwrap_or(0)),
                )
            })
            .collect();
        let mut responded: BTreeMap<&str, u64> = BTreeMap::new();
        for (survey_id, _) in self.responses.keys() {
            *responded.entry(survey_id).or_default() += 1;
        }
        let mut surveys = Map::new();
        for survey_id in self.surveys.keys() {
            let counts = self.surveys.get(survey_id).copied().unwrap_or_default();
            let n = responded.get(survey_id.as_str()).copied().unwrap_or(0);
            surveys.insert(
                survey_id.clone(),
                json!({"shown": counts.shown, "dismissed": counts.dismissed, "responded": n}),
            );
        }
        let merged = |fields: &BTreeMap<String, Option<Stamped<Value>>>| -> Map<String, Value> {
            fields
                .iter()
                .filter_map(|(k, v)| v.as_ref().map(|l| (k.clone(), l.value.clone())))
                .collect()
        };
        let mut responses: Vec<(EventTime, &str, &str, Value)> = self
            .responses
            .iter()
            .filter_map(|((survey_id, response_id), state)| {
                let at = state.latest.as_ref()?.time;
                let body = json!({
                    "survey_id": survey_id,
                    "response_id": response_id,
                    "timestamp": format_nanos(at),
                    "answers": merged(&state.answers),
                    "context": merged(&state.context),
                });
                Some((at, response_id.as_str(), survey_id.as_str(), body))
            })
            .collect();
        responses.sort_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));
        let track: Map<String, Value> = self
            .track
            .iter()
            .map(|(name, s)| {
                (name.clone(), json!({"count": s.count, "first": format_nanos(s.first), "last": format_nanos(s.last)}))
            })
            .collect();
        let kind = if id.is_identified() {
            "identified"
        } else {
            "anonymous"
        };
        let user_id = match id.kind {
            IdentifierKind::User => Value::from(id.value.clone()),
            _ => Value::Null,
        };
        json!({
            "workspace_id": workspace_id,
            "id": id.to_string(),
            "kind": kind,
            "user_id": user_id,
            "emails": emails,
            "anonymous_ids": anonymous_ids,
            "traits": traits,
            "first_seen": time(self.first_seen),
            "last_seen": time(self.last_seen),
            "event_counts": event_counts,
            "surveys": surveys,
            "responses": responses.into_iter().map(|r| r.3).collect::<Vec<_>>(),
            "track": track,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{SurveyStep, TraitChanges};

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
            json!({"shown": 0, "dismissed": 0, "responded": 1})
        );
        assert_eq!(
            out["event_counts"],
            json!({"identify": 0, "traits": 0, "track": 0, "survey": 2})
        );
    }
}
