//! JSON to [`Filter`], with errors that point at the bad part.
//!
//! ```json
//! {"all": [
//!   {"trait": "plan", "eq": "pro"},
//!   {"any": [{"event": "Exported", "count_at_least": 3, "within_days": 30},
//!            {"survey": "nps", "action": "responded", "when": "never"}]},
//!   {"not": {"last_seen": {"before": "2026-01-01T00:00:00Z"}}}
//! ]}
//! ```

use idfold_events::{parse_rfc3339, SurveyAction};
use serde_json::{Map, Value};

use crate::filter::{Filter, SeenField, TimeTest, TraitTest, When};

/// How deep `all` / `any` / `not` may nest, and how many conditions one
/// filter may hold: a segment is evaluated on every profile.
pub const MAX_DEPTH: usize = 16;
pub const MAX_CONDITIONS: usize = 200;
/// The most values one `in` may list.
pub const MAX_IN_VALUES: usize = 1000;
/// The longest window, in days.
pub const MAX_DAYS: u64 = 366;

/// Where (a JSON pointer into the filter) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    pub pointer: String,
    pub message: String,
}

impl std::fmt::Display for FilterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = if self.pointer.is_empty() {
            "the filter"
        } else {
            &self.pointer
        };
        write!(f, "at {at}: {}", self.message)
    }
}

impl std::error::Error for FilterError {}

const TRAIT_OPERATORS: [&str; 9] = [
    "eq", "ne", "in", "exists", "gt", "lt", "gte", "lte", "contains",
];

struct Parser {
    conditions: usize,
}

pub fn parse(value: &Value) -> Result<Filter, FilterError> {
    Parser { conditions: 0 }.filter(value, "", 0)
}

fn error(pointer: &str, message: impl Into<String>) -> FilterError {
    FilterError {
        pointer: pointer.to_owned(),
        message: message.into(),
    }
}

fn child(pointer: &str, key: &str) -> String {
    // RFC 6901 escaping of `~` and `/`.
    format!("{pointer}/{}", key.replace('~', "~0").replace('/', "~1"))
}

fn only_keys(
    object: &Map<String, Value>,
    allowed: &[&str],
    pointer: &str,
) -> Result<(), FilterError> {
    match object.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(unknown) => Err(error(
            &child(pointer, unknown),
            format!("unknown key; this condition takes {}", allowed.join(", ")),
        )),
        None => Ok(()),
    }
}

fn text<'v>(
    object: &'v Map<String, Value>,
    key: &str,
    pointer: &str,
) -> Result<&'v str, FilterError> {
    match object.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(_) => Err(error(&child(pointer, key), "must be a non-empty string")),
        None => Err(error(pointer, format!("`{key}` is required"))),
    }
}

fn days(value: &Value, pointer: &str) -> Result<u32, FilterError> {
    value
        .as_u64()
        .filter(|d| (1..=MAX_DAYS).contains(d))
        .and_then(|d| u32::try_from(d).ok())
        .ok_or_else(|| {
            error(
                pointer,
                format!("must be a whole number of days from 1 to {MAX_DAYS}"),
            )
        })
}

impl Parser {
    fn filter(
        &mut self,
        value: &Value,
        pointer: &str,
        depth: usize,
    ) -> Result<Filter, FilterError> {
        if depth > MAX_DEPTH {
            return Err(error(
                pointer,
                format!("nests deeper than {MAX_DEPTH} levels"),
            ));
        }
        self.conditions += 1;
        if self.conditions > MAX_CONDITIONS {
            return Err(error(
                pointer,
                format!("the filter holds more than {MAX_CONDITIONS} conditions"),
            ));
        }
        let Some(object) = value.as_object() else {
            return Err(error(
                pointer,
                "must be a JSON object (a condition, or all / any / not)",
            ));
        };
        if object.contains_key("all") || object.contains_key("any") {
            let key = if object.contains_key("all") {
                "all"
            } else {
                "any"
            };
            only_keys(object, &[key], pointer)?;
            let here = child(pointer, key);
            let Some(items) = object.get(key).and_then(Value::as_array) else {
                return Err(error(&here, "must be an array of filters"));
            };
            if items.is_empty() {
                return Err(error(&here, "must hold at least one filter"));
            }
            let parsed = items
                .iter()
                .enumerate()
                .map(|(i, item)| self.filter(item, &child(&here, &i.to_string()), depth + 1))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(if key == "all" {
                Filter::All(parsed)
            } else {
                Filter::Any(parsed)
            });
        }
        if let Some(inner) = object.get("not") {
            only_keys(object, &["not"], pointer)?;
            return Ok(Filter::Not(Box::new(self.filter(
                inner,
                &child(pointer, "not"),
                depth + 1,
            )?)));
        }
        if object.contains_key("trait") {
            return trait_condition(object, pointer);
        }
        if object.contains_key("event") {
            return track_condition(object, pointer);
        }
        if object.contains_key("survey") {
            return survey_condition(object, pointer);
        }
        for (key, which) in [
            ("first_seen", SeenField::First),
            ("last_seen", SeenField::Last),
        ] {
            if let Some(test) = object.get(key) {
                only_keys(object, &[key], pointer)?;
                return Ok(Filter::Seen {
                    which,
                    test: time_test(test, &child(pointer, key))?,
                });
            }
        }
        Err(error(
            pointer,
            "is not a filter: use all, any, not, trait, event, survey, first_seen or last_seen",
        ))
    }
}

fn trait_condition(object: &Map<String, Value>, pointer: &str) -> Result<Filter, FilterError> {
    let name = text(object, "trait", pointer)?.to_owned();
    let mut allowed = vec!["trait"];
    allowed.extend(TRAIT_OPERATORS);
    only_keys(object, &allowed, pointer)?;
    let operators: Vec<&str> = TRAIT_OPERATORS
        .into_iter()
        .filter(|op| object.contains_key(*op))
        .collect();
    let [op] = operators.as_slice() else {
        return Err(error(
            pointer,
            format!(
                "a trait condition takes exactly one of {}",
                TRAIT_OPERATORS.join(", ")
            ),
        ));
    };
    let here = child(pointer, op);
    let value = object.get(*op).cloned().unwrap_or(Value::Null);
    let number = |v: &Value| v.as_f64().ok_or_else(|| error(&here, "must be a number"));
    let test = match *op {
        "eq" => TraitTest::Eq(value),
        "ne" => TraitTest::Ne(value),
        "in" => match value {
            Value::Array(items) if items.len() > MAX_IN_VALUES => {
                return Err(error(
                    &here,
                    format!("lists more than {MAX_IN_VALUES} values"),
                ))
            }
            Value::Array(items) => TraitTest::In(items),
            _ => return Err(error(&here, "must be an array of values")),
        },
        "exists" => match value {
            Value::Bool(b) => TraitTest::Exists(b),
            _ => return Err(error(&here, "must be true or false")),
        },
        "gt" => TraitTest::Gt(number(&value)?),
        "lt" => TraitTest::Lt(number(&value)?),
        "gte" => TraitTest::Gte(number(&value)?),
        "lte" => TraitTest::Lte(number(&value)?),
        _ => match value {
            Value::String(s) => TraitTest::Contains(s),
            _ => return Err(error(&here, "must be a string")),
        },
    };
    Ok(Filter::Trait { name, test })
}

fn track_condition(object: &Map<String, Value>, pointer: &str) -> Result<Filter, FilterError> {
    only_keys(object, &["event", "count_at_least", "within_days"], pointer)?;
    let event = text(object, "event", pointer)?.to_owned();
    let at_least = match object.get("count_at_least") {
        None => 1,
        Some(v) => v.as_u64().filter(|n| *n >= 1).ok_or_else(|| {
            error(
                &child(pointer, "count_at_least"),
                "must be a whole number of at least 1",
            )
        })?,
    };
    let within_days = object
        .get("within_days")
        .map(|v| days(v, &child(pointer, "within_days")))
        .transpose()?;
    Ok(Filter::Track {
        event,
        at_least,
        within_days,
    })
}

fn survey_condition(object: &Map<String, Value>, pointer: &str) -> Result<Filter, FilterError> {
    only_keys(
        object,
        &["survey", "action", "when", "within_days"],
        pointer,
    )?;
    let survey_id = text(object, "survey", pointer)?.to_owned();
    let action_text = text(object, "action", pointer)?;
    let action = SurveyAction::parse(action_text).ok_or_else(|| {
        error(
            &child(pointer, "action"),
            "must be shown, dismissed or responded",
        )
    })?;
    let when = match (object.get("when"), object.get("within_days")) {
        (Some(Value::String(w)), None) if w == "ever" => When::Ever,
        (Some(Value::String(w)), None) if w == "never" => When::Never,
        (None, Some(d)) => When::WithinDays(days(d, &child(pointer, "within_days"))?),
        (None, None) => When::Ever,
        (Some(_), None) => {
            return Err(error(
                &child(pointer, "when"),
                "must be \"ever\" or \"never\"",
            ))
        }
        (Some(_), Some(_)) => {
            return Err(error(pointer, "takes `when` or `within_days`, not both"))
        }
    };
    Ok(Filter::Survey {
        survey_id,
        action,
        when,
    })
}

fn time_test(value: &Value, pointer: &str) -> Result<TimeTest, FilterError> {
    let Some(object) = value.as_object() else {
        return Err(error(
            pointer,
            "must be an object: {\"before\": TIME}, {\"after\": TIME} or {\"within_days\": N}",
        ));
    };
    only_keys(object, &["before", "after", "within_days"], pointer)?;
    if object.len() != 1 {
        return Err(error(
            pointer,
            "takes exactly one of before, after, within_days",
        ));
    }
    let time = |key: &str| {
        object
            .get(key)
            .and_then(Value::as_str)
            .and_then(parse_rfc3339)
            .ok_or_else(|| {
                error(
                    &child(pointer, key),
                    "must be an RFC 3339 time, e.g. 2026-01-01T00:00:00Z",
                )
            })
    };
    if object.contains_key("before") {
        Ok(TimeTest::Before(time("before")?))
    } else if object.contains_key("after") {
        Ok(TimeTest::After(time("after")?))
    } else {
        let d = object.get("within_days").cloned().unwrap_or(Value::Null);
        Ok(TimeTest::WithinDays(days(
            &d,
            &child(pointer, "within_days"),
        )?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn pointer(value: Value) -> String {
        match parse(&value) {
            Err(e) => e.pointer,
            Ok(f) => panic!("{value} parsed as {f:?}"),
        }
    }

    #[test]
    fn every_condition_parses() {
        let filter = json!({"all": [
            {"trait": "plan", "eq": "pro"}, {"trait": "plan", "ne": "free"},
            {"trait": "plan", "in": ["pro", "team"]}, {"trait": "age", "exists": true},
            {"trait": "age", "gt": 18}, {"trait": "age", "lt": 65}, {"trait": "age", "gte": 18.5},
            {"trait": "age", "lte": 65}, {"trait": "name", "contains": "an"},
            {"event": "Exported", "count_at_least": 3, "within_days": 30}, {"event": "Exported"},
            {"survey": "nps", "action": "responded", "when": "never"},
            {"survey": "nps", "action": "shown", "within_days": 7},
            {"any": [{"first_seen": {"after": "2026-01-01T00:00:00Z"}}, {"last_seen": {"within_days": 3}}]},
            {"not": {"last_seen": {"before": "2025-01-01T00:00:00Z"}}}
        ]});
        let parsed = parse(&filter);
        assert!(
            matches!(parsed, Ok(Filter::All(ref items)) if items.len() == 15),
            "{parsed:?}"
        );
    }

    #[test]
    fn errors_point_at_the_bad_part() {
        assert_eq!(
            pointer(json!({"all": [{"trait": "a", "eq": 1}, {"trait": "b", "gt": "x"}]})),
            "/all/1/gt"
        );
        assert_eq!(pointer(json!({"any": []})), "/any");
        assert_eq!(
            pointer(json!({"not": {"survey": "s", "action": "clicked"}})),
            "/not/action"
        );
        assert_eq!(
            pointer(json!({"all": [{"event": "E", "within_days": 0}]})),
            "/all/0/within_days"
        );
        assert_eq!(pointer(json!({"trait": "a", "eq": 1, "ne": 2})), "");
        assert_eq!(
            pointer(json!({"trait": "a", "eq": 1, "colour": "red"})),
            "/colour"
        );
        assert_eq!(
            pointer(json!({"last_seen": {"before": "yesterday"}})),
            "/last_seen/before"
        );
        assert_eq!(pointer(json!({"all": [{"a/b": 1}]})), "/all/0");
        assert_eq!(pointer(json!([1, 2])), "");
        let mut deep = json!({"trait": "a", "exists": true});
        for _ in 0..=MAX_DEPTH {
            deep = json!({"not": deep});
        }
        assert!(parse(&deep).is_err());
    }

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (0u64..40).prop_map(Value::from),
            prop_oneof![
                Just("eq"),
                Just("plan"),
                Just("ever"),
                Just("never"),
                Just("responded"),
                Just("2026-01-01T00:00:00Z")
            ]
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 40, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("all"),
                        Just("any"),
                        Just("not"),
                        Just("trait"),
                        Just("eq"),
                        Just("in"),
                        Just("gt"),
                        Just("exists"),
                        Just("contains"),
                        Just("event"),
                        Just("count_at_least"),
                        Just("within_days"),
                        Just("survey"),
                        Just("action"),
                        Just("when"),
                        Just("first_seen"),
                        Just("last_seen"),
                        Just("before"),
                        Just("after"),
                    ]
                    .prop_map(str::to_owned),
                    inner,
                    0..4
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Any JSON: a filter or an error whose pointer resolves in it, never a panic.
        #[test]
        fn any_json_parses_or_points_into_itself(value in any_json()) {
            if let Err(e) = parse(&value) {
                // The pointer names an existing part, or the parent of a missing key.
                let target = value.pointer(&e.pointer);
                prop_assert!(target.is_some(), "{} does not resolve in {}", e.pointer, value);
            }
        }
    }
}
