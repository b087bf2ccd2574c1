//! A filter evaluated on a profile (the projector's typed view) at a given
//! time.

use idfold_events::{parse_rfc3339, EventTime, SurveyAction};
use idfold_projector::{ProfileView, TrackStats};
use serde_json::Value;

use crate::filter::{Filter, SeenField, TimeTest, TraitTest, When};

const DAY: EventTime = 86_400 * 1_000_000_000;

impl Filter {
    /// Whether an identified profile is in the segment at `now`. Anonymous
    /// profiles are never in one.
    pub fn matches(&self, profile: &ProfileView, now: EventTime) -> bool {
        profile.is_identified() && self.holds(profile, now)
    }

    fn holds(&self, profile: &ProfileView, now: EventTime) -> bool {
        match self {
            Filter::All(items) => items.iter().all(|f| f.holds(profile, now)),
            Filter::Any(items) => items.iter().any(|f| f.holds(profile, now)),
            Filter::Not(inner) => !inner.holds(profile, now),
            Filter::Trait { name, test } => {
                trait_holds(profile.traits.get(name).filter(|v| !v.is_null()), test)
            }
            Filter::Track {
                event,
                at_least,
                within_days,
            } => {
                profile
                    .track
                    .get(event)
                    .map_or(0, |stats| track_count(stats, *within_days, now))
                    >= *at_least
            }
            Filter::Survey {
                survey_id,
                action,
                when,
            } => {
                let survey = profile.surveys.get(survey_id);
                let (count, last) = survey.map_or((0, None), |s| match action {
                    SurveyAction::Shown => (s.shown, s.last_shown.as_deref()),
                    SurveyAction::Dismissed => (s.dismissed, s.last_dismissed.as_deref()),
                    SurveyAction::Responded => (s.responded, s.last_responded.as_deref()),
                });
                let ever = count > 0;
                match when {
                    When::Ever => ever,
                    When::Never => !ever,
                    When::WithinDays(d) => {
                        time_of(last).is_some_and(|t| t >= now.saturating_sub(i64::from(*d) * DAY))
                    }
                }
            }
            Filter::Seen { which, test } => {
                let seen = match which {
                    SeenField::First => profile.first_seen.as_deref(),
                    SeenField::Last => profile.last_seen.as_deref(),
                };
                time_of(seen).is_some_and(|t| match test {
                    TimeTest::Before(limit) => t < *limit,
                    TimeTest::After(limit) => t > *limit,
                    TimeTest::WithinDays(d) => t >= now.saturating_sub(i64::from(*d) * DAY),
                })
            }
        }
    }
}

fn time_of(text: Option<&str>) -> Option<EventTime> {
    text.and_then(parse_rfc3339)
}

fn trait_holds(value: Option<&Value>, test: &TraitTest) -> bool {
    let number = value.and_then(Value::as_f64);
    match test {
        TraitTest::Eq(expected) => value.is_some_and(|v| same(v, expected)),
        TraitTest::Ne(expected) => !value.is_some_and(|v| same(v, expected)),
        TraitTest::In(options) => value.is_some_and(|v| options.iter().any(|o| same(v, o))),
        TraitTest::Exists(wanted) => value.is_some() == *wanted,
        TraitTest::Gt(limit) => number.is_some_and(|n| n > *limit),
        TraitTest::Lt(limit) => number.is_some_and(|n| n < *limit),
        TraitTest::Gte(limit) => number.is_some_and(|n| n >= *limit),
        TraitTest::Lte(limit) => number.is_some_and(|n| n <= *limit),
        TraitTest::Contains(text) => value
            .and_then(Value::as_str)
            .is_some_and(|s| s.contains(text.as_str())),
    }
}

/// JSON equality, except that numbers compare by value: `34` and `34.0`
/// are the same trait value (clients differ in how they write numbers).
fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) if a.is_number() && b.is_number() => x == y,
        _ => a == b,
    }
}

/// Track events of one name: all of them, or those of the last `d` UTC
/// days, today included.
fn track_count(stats: &TrackStats, within_days: Option<u32>, now: EventTime) -> u64 {
    let Some(d) = within_days else {
        return stats.count;
    };
    let today = now.div_euclid(DAY);
    let first_day = today - i64::from(d) + 1;
    stats
        .days
        .iter()
        .filter_map(|(date, n)| {
            let day = parse_rfc3339(&format!("{date}T00:00:00Z"))?.div_euclid(DAY);
            (first_day..=today).contains(&day).then_some(*n)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use crate::parse;
    use idfold_events::parse_rfc3339;
    use idfold_projector::{ProfileKind, ProfileView};
    use serde_json::{json, Value};

    const NOW: &str = "2026-03-10T12:00:00Z";

    /// A profile in the projector's JSON, hand-written, read as the typed
    /// view the store gives.
    fn ann() -> ProfileView {
        let json = json!({
            "anonymous_ids": [], "emails": [], "responses": [],
            "event_counts": {"identify": 0, "survey": 3, "track": 5, "traits": 1},
            "id": "user:ann", "kind": "identified", "user_id": "ann", "workspace_id": "w",
            "first_seen": "2026-01-02T09:00:00Z", "last_seen": "2026-03-09T10:00:00Z",
            "traits": {"plan": "pro", "age": 34, "name": "Ann Lee", "beta": null},
            "track": {"Exported": {"count": 5, "first": "2026-01-03T00:00:00Z", "last": "2026-03-10T08:00:00Z",
                                   "days": {"2026-01-03": 2, "2026-03-01": 1, "2026-03-10": 2}}},
            "surveys": {"nps": {"shown": 2, "dismissed": 1, "responded": 0,
                                "last_shown": "2026-03-08T00:00:00Z", "last_dismissed": "2026-02-01T00:00:00Z"}},
        });
        match serde_json::from_value(json) {
            Ok(profile) => profile,
            Err(e) => panic!("not a profile: {e}"),
        }
    }

    fn check(filter: Value, profile: &ProfileView) -> bool {
        let now = parse_rfc3339(NOW).unwrap_or_default();
        match parse(&filter) {
            Ok(f) => f.matches(profile, now),
            Err(e) => panic!("{filter}: {e}"),
        }
    }

    #[test]
    fn trait_conditions() {
        let p = ann();
        let cases = [
            (json!({"trait": "plan", "eq": "pro"}), true),
            (json!({"trait": "plan", "eq": "free"}), false),
            (json!({"trait": "plan", "ne": "free"}), true),
            (json!({"trait": "missing", "ne": "free"}), true),
            (json!({"trait": "plan", "in": ["team", "pro"]}), true),
            (json!({"trait": "plan", "in": ["team"]}), false),
            (json!({"trait": "age", "exists": true}), true),
            (json!({"trait": "beta", "exists": true}), false),
            (json!({"trait": "beta", "exists": false}), true),
            (json!({"trait": "age", "gt": 34}), false),
            (json!({"trait": "age", "gte": 34}), true),
            (json!({"trait": "age", "lt": 40.5}), true),
            (json!({"trait": "age", "lte": 33}), false),
            (json!({"trait": "plan", "gt": 1}), false),
            (json!({"trait": "name", "contains": "Lee"}), true),
            (json!({"trait": "name", "contains": "lee"}), false),
            (json!({"trait": "age", "contains": "3"}), false),
            (json!({"trait": "age", "eq": 34.0}), true),
            (json!({"trait": "age", "in": [34.0]}), true),
            (json!({"trait": "age", "ne": 34.0}), false),
        ];
        for (filter, expected) in cases {
            assert_eq!(check(filter.clone(), &p), expected, "{filter}");
        }
    }

    #[test]
    fn track_survey_and_seen_conditions() {
        let p = ann();
        let cases = [
            (json!({"event": "Exported"}), true),
            (json!({"event": "Exported", "count_at_least": 5}), true),
            (json!({"event": "Exported", "count_at_least": 6}), false),
            // 2026-03-10 (2) and 2026-03-01 (1) are within 10 days; 2026-03-01 is not within 9.
            (
                json!({"event": "Exported", "count_at_least": 3, "within_days": 10}),
                true,
            ),
            (
                json!({"event": "Exported", "count_at_least": 3, "within_days": 9}),
                false,
            ),
            (
                json!({"event": "Exported", "count_at_least": 2, "within_days": 1}),
                true,
            ),
            (json!({"event": "Imported"}), false),
            (
                json!({"survey": "nps", "action": "shown", "when": "ever"}),
                true,
            ),
            (
                json!({"survey": "nps", "action": "responded", "when": "never"}),
                true,
            ),
            (json!({"survey": "nps", "action": "responded"}), false),
            (
                json!({"survey": "nps", "action": "shown", "within_days": 3}),
                true,
            ),
            (
                json!({"survey": "nps", "action": "dismissed", "within_days": 30}),
                false,
            ),
            (
                json!({"survey": "csat", "action": "shown", "when": "never"}),
                true,
            ),
            (
                json!({"first_seen": {"before": "2026-01-03T00:00:00Z"}}),
                true,
            ),
            (
                json!({"first_seen": {"after": "2026-01-03T00:00:00Z"}}),
                false,
            ),
            (json!({"last_seen": {"within_days": 2}}), true),
            (json!({"last_seen": {"within_days": 1}}), false),
        ];
        for (filter, expected) in cases {
            assert_eq!(check(filter.clone(), &p), expected, "{filter}");
        }
    }

    #[test]
    fn combinators_and_anonymous_profiles() {
        let p = ann();
        assert!(check(
            json!({"all": [{"trait": "plan", "eq": "pro"}, {"event": "Exported"}]}),
            &p
        ));
        assert!(!check(
            json!({"all": [{"trait": "plan", "eq": "pro"}, {"event": "Imported"}]}),
            &p
        ));
        assert!(check(
            json!({"any": [{"trait": "plan", "eq": "free"}, {"event": "Exported"}]}),
            &p
        ));
        assert!(check(json!({"not": {"trait": "plan", "eq": "free"}}), &p));
        let mut device = ann();
        device.kind = ProfileKind::Anonymous;
        device.id = "anonymous:d".into();
        device.user_id = None;
        assert!(!check(json!({"trait": "plan", "eq": "pro"}), &device));
        assert!(
            !check(json!({"not": {"trait": "plan", "eq": "free"}}), &device),
            "never, not even through not"
        );
    }
}
