//! Survey responses, read from the profiles that hold them: filtered by
//! survey and time, ordered by (survey, response, profile), paged with an
//! opaque cursor, as JSON or CSV (one column per answer key).
//!
//! Paging follows keys, not positions: a response present for the whole
//! paging is listed exactly once, whatever arrives meanwhile. A response
//! that arrives during it is listed if its key comes after the cursor.

use base64::Engine;
use idfold_events::{parse_rfc3339, EventTime};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::ReadError;

pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

/// Which responses a request asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseFilter {
    pub survey_id: Option<String>,
    /// Inclusive, on the response's last step.
    pub from: Option<EventTime>,
    /// Exclusive.
    pub to: Option<EventTime>,
}

/// Where the next page starts: after this key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Cursor {
    survey_id: String,
    response_id: String,
    profile_id: String,
}

impl Cursor {
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    pub fn decode(text: &str) -> Result<Cursor, ReadError> {
        let bad = || ReadError::BadParameter {
            field: "cursor",
            message: "is not a cursor this API gave".into(),
        };
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| bad())?;
        serde_json::from_slice(&bytes).map_err(|_| bad())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResponseRow {
    pub profile_id: String,
    pub survey_id: String,
    pub response_id: String,
    /// The response's last step.
    pub timestamp: String,
    pub answers: Map<String, Value>,
    pub context: Map<String, Value>,
    #[serde(skip)]
    at: EventTime,
}

impl ResponseRow {
    fn key(&self) -> Cursor {
        Cursor {
            survey_id: self.survey_id.clone(),
            response_id: self.response_id.clone(),
            profile_id: self.profile_id.clone(),
        }
    }
}

/// `from` / `to`: an RFC 3339 time, or a date (its midnight, UTC).
pub fn time_param(field: &'static str, text: &str) -> Result<EventTime, ReadError> {
    let full = if text.len() == 10 {
        format!("{text}T00:00:00Z")
    } else {
        text.to_owned()
    };
    parse_rfc3339(&full).ok_or_else(|| ReadError::BadParameter {
        field,
        message: format!("must be a date (YYYY-MM-DD) or an RFC 3339 time, not {text:?}"),
    })
}

pub fn limit_param(text: Option<&str>) -> Result<usize, ReadError> {
    match text {
        None => Ok(DEFAULT_LIMIT),
        Some(t) => match t.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(ReadError::BadParameter {
                field: "limit",
                message: format!("must be a whole number from 1 to {MAX_LIMIT}, not {t:?}"),
            }),
        },
    }
}

/// The responses a profile's JSON holds that pass the filter.
pub fn responses_of(profile: &Value, filter: &ResponseFilter) -> Vec<ResponseRow> {
    let profile_id = profile["id"].as_str().unwrap_or_default();
    let Some(responses) = profile["responses"].as_array() else {
        return Vec::new();
    };
    responses
        .iter()
        .filter_map(|r| {
            let timestamp = r["timestamp"].as_str()?;
            let at = parse_rfc3339(timestamp)?;
            let row = ResponseRow {
                profile_id: profile_id.to_owned(),
                survey_id: r["survey_id"].as_str()?.to_owned(),
                response_id: r["response_id"].as_str()?.to_owned(),
                timestamp: timestamp.to_owned(),
                answers: r["answers"].as_object().cloned().unwrap_or_default(),
                context: r["context"].as_object().cloned().unwrap_or_default(),
                at,
            };
            let wanted = filter
                .survey_id
                .as_ref()
                .is_none_or(|s| *s == row.survey_id)
                && filter.from.is_none_or(|f| row.at >= f)
                && filter.to.is_none_or(|t| row.at < t);
            wanted.then_some(row)
        })
        .collect()
}

/// One page of rows after `cursor`, and the cursor of the next page when
/// there are more.
pub fn page(
    mut rows: Vec<ResponseRow>,
    cursor: Option<&Cursor>,
    limit: usize,
) -> (Vec<ResponseRow>, Option<Cursor>) {
    rows.sort_by_key(ResponseRow::key);
    let mut after: Vec<ResponseRow> = rows
        .into_iter()
        .filter(|r| cursor.is_none_or(|c| r.key() > *c))
        .collect();
    let more = after.len() > limit;
    after.truncate(limit);
    let next = if more {
        after.last().map(ResponseRow::key)
    } else {
        None
    };
    (after, next)
}

/// CSV with a header row: the fixed columns, then one column per answer
/// key found in the rows (sorted). Strings are written as they are, other
/// values as JSON.
pub fn to_csv(rows: &[ResponseRow]) -> Result<Vec<u8>, csv::Error> {
    let mut answer_keys: Vec<&str> = rows
        .iter()
        .flat_map(|r| r.answers.keys().map(String::as_str))
        .collect();
    answer_keys.sort_unstable();
    answer_keys.dedup();
    let mut out = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["profile_id", "survey_id", "response_id", "timestamp"];
    header.extend(answer_keys.iter().copied());
    out.write_record(&header)?;
    for row in rows {
        let mut record = vec![
            row.profile_id.clone(),
            row.survey_id.clone(),
            row.response_id.clone(),
            row.timestamp.clone(),
        ];
        for key in &answer_keys {
            record.push(match row.answers.get(*key) {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
            });
        }
        out.write_record(&record)?;
    }
    out.into_inner()
        .map_err(|e| csv::Error::from(e.into_error()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn profile(id: &str, responses: Value) -> Value {
        json!({"id": id, "responses": responses})
    }

    fn rows() -> Vec<ResponseRow> {
        let a = profile(
            "user:a",
            json!([
                {"survey_id": "nps", "response_id": "r2", "timestamp": "2026-01-02T00:00:00Z", "answers": {"score": 9, "why": "fast, \"simple\""}},
                {"survey_id": "csat", "response_id": "r1", "timestamp": "2026-02-01T00:00:00Z", "answers": {"rating": "good"}},
            ]),
        );
        let b = profile(
            "anonymous:d",
            json!([
                {"survey_id": "nps", "response_id": "r1", "timestamp": "2026-01-05T00:00:00Z", "answers": {"score": 3}},
            ]),
        );
        let all = ResponseFilter::default();
        [responses_of(&a, &all), responses_of(&b, &all)].concat()
    }

    #[test]
    fn filters_by_survey_and_time() {
        let a = profile(
            "user:a",
            json!([
                {"survey_id": "nps", "response_id": "r2", "timestamp": "2026-01-02T00:00:00Z", "answers": {}},
                {"survey_id": "csat", "response_id": "r1", "timestamp": "2026-02-01T00:00:00Z", "answers": {}},
            ]),
        );
        let nps = ResponseFilter {
            survey_id: Some("nps".into()),
            ..ResponseFilter::default()
        };
        assert_eq!(responses_of(&a, &nps).len(), 1);
        let january = ResponseFilter {
            from: time_param("from", "2026-01-01").ok(),
            to: time_param("to", "2026-02-01").ok(),
            ..ResponseFilter::default()
        };
        let found: Vec<String> = responses_of(&a, &january)
            .into_iter()
            .map(|r| r.response_id)
            .collect();
        assert_eq!(found, vec!["r2".to_owned()], "to is exclusive");
    }

    #[test]
    fn pages_follow_keys_and_end() {
        let (first, next) = page(rows(), None, 2);
        let keys: Vec<(String, String)> = first
            .iter()
            .map(|r| (r.survey_id.clone(), r.response_id.clone()))
            .collect();
        assert_eq!(
            keys,
            vec![("csat".into(), "r1".into()), ("nps".into(), "r1".into())]
        );
        let next = next.and_then(|c| Cursor::decode(&c.encode()).ok());
        let (second, last) = page(rows(), next.as_ref(), 2);
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].response_id, "r2");
        assert!(last.is_none());
        assert!(Cursor::decode("not-a-cursor").is_err());
    }

    #[test]
    fn csv_has_a_column_per_answer_key_and_quotes_what_needs_it() {
        let (all, _) = page(rows(), None, 10);
        let text = String::from_utf8(to_csv(&all).unwrap_or_default()).unwrap_or_default();
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("profile_id,survey_id,response_id,timestamp,rating,score,why")
        );
        assert!(text.contains("\"fast, \"\"simple\"\"\""), "{text}");
    }
}
