//! Survey responses, read from the profiles that hold them: filtered by
//! survey and time, ordered by (survey, response, profile), paged with an
//! opaque cursor, as JSON or CSV (one column per answer key).
//!
//! Paging follows keys, not positions: a response present for the whole
//! paging is listed exactly once, whatever arrives meanwhile (a response
//! whose profile is merged into another keeps its key). A response
//! that arrives during it is listed if its key comes after the cursor.

use std::collections::BTreeMap;

use base64::Engine;
use idfold_events::{parse_rfc3339, EventTime};
use idfold_projector::ProfileView;
use serde::{Deserialize, Serialize};
use serde_json::Value;

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

/// Where the next page starts: after this (survey, response) key. The
/// profile is not part of it: stitching may move a response to another
/// profile while a client pages.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Cursor {
    survey_id: String,
    response_id: String,
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
    pub answers: BTreeMap<String, Value>,
    pub context: BTreeMap<String, Value>,
    #[serde(skip)]
    at: EventTime,
}

impl ResponseRow {
    fn key(&self) -> Cursor {
        Cursor {
            survey_id: self.survey_id.clone(),
            response_id: self.response_id.clone(),
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

/// The responses a profile holds that pass the filter.
pub fn responses_of(profile: &ProfileView, filter: &ResponseFilter) -> Vec<ResponseRow> {
    profile
        .responses
        .iter()
        .filter_map(|r| {
            let at = parse_rfc3339(&r.timestamp)?;
            let wanted = filter.survey_id.as_ref().is_none_or(|s| *s == r.survey_id)
                && filter.from.is_none_or(|f| at >= f)
                && filter.to.is_none_or(|t| at < t);
            wanted.then(|| ResponseRow {
                profile_id: profile.id.clone(),
                survey_id: r.survey_id.clone(),
                response_id: r.response_id.clone(),
                timestamp: r.timestamp.clone(),
                answers: r.answers.clone(),
                context: r.context.clone(),
                at,
            })
        })
        .collect()
}

/// One page of rows after `cursor`, and the cursor of the next page when
/// there are more. Rows sharing a key (two profiles that gave one response
/// id to one survey) stay on one page, which may then run over `limit`.
pub fn page(
    mut rows: Vec<ResponseRow>,
    cursor: Option<&Cursor>,
    limit: usize,
) -> (Vec<ResponseRow>, Option<Cursor>) {
    rows.sort_by(|a, b| (a.key(), &a.profile_id).cmp(&(b.key(), &b.profile_id)));
    let mut after: Vec<ResponseRow> = rows
        .into_iter()
        .filter(|r| cursor.is_none_or(|c| r.key() > *c))
        .collect();
    let mut end = limit.min(after.len());
    while end > 0 && end < after.len() && after[end].key() == after[end - 1].key() {
        end += 1;
    }
    let more = end < after.len();
    after.truncate(end);
    let next = if more {
        after.last().map(ResponseRow::key)
    } else {
        None
    };
    (after, next)
}

/// A cell a spreadsheet would run as a formula starts with one of these;
/// such cells get a leading `'`, so answers anyone can send stay text.
fn spreadsheet_safe(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

/// CSV with a header row: the fixed columns, then one column per answer
/// key found in the rows (sorted), named `answers.KEY` so an answer key
/// cannot pose as a fixed column. Strings are written as they are (with a
/// `'` before a leading `=`, `+`, `-`, `@`, tab or CR), other values as
/// JSON.
pub fn to_csv(rows: &[ResponseRow]) -> Result<Vec<u8>, csv::Error> {
    let mut answer_keys: Vec<&str> = rows
        .iter()
        .flat_map(|r| r.answers.keys().map(String::as_str))
        .collect();
    answer_keys.sort_unstable();
    answer_keys.dedup();
    let mut out = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> = ["profile_id", "survey_id", "response_id", "timestamp"]
        .map(str::to_owned)
        .to_vec();
    header.extend(
        answer_keys
            .iter()
            .map(|k| spreadsheet_safe(&format!("answers.{k}"))),
    );
    out.write_record(&header)?;
    for row in rows {
        let mut record = vec![
            spreadsheet_safe(&row.profile_id),
            spreadsheet_safe(&row.survey_id),
            spreadsheet_safe(&row.response_id),
            row.timestamp.clone(),
        ];
        for key in &answer_keys {
            record.push(match row.answers.get(*key) {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => spreadsheet_safe(s),
                // Numbers, booleans, arrays, objects: JSON, never a formula.
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
    use idfold_events::Identifier;
    use idfold_projector::{ProfileAggregate, ResponseView};
    use serde_json::json;

    /// A profile with these responses, each `[survey_id, response_id,
    /// timestamp, answers]`.
    fn profile(id: &str, responses: Value) -> ProfileView {
        let id = Identifier::parse(id).unwrap_or_else(|| Identifier::user(id));
        let mut view = ProfileAggregate::default().view("w", &id, vec![], vec![]);
        view.responses = responses
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| ResponseView {
                survey_id: r[0].as_str().unwrap_or_default().to_owned(),
                response_id: r[1].as_str().unwrap_or_default().to_owned(),
                timestamp: r[2].as_str().unwrap_or_default().to_owned(),
                answers: serde_json::from_value(r[3].clone()).unwrap_or_default(),
                context: BTreeMap::new(),
            })
            .collect();
        view
    }

    fn rows() -> Vec<ResponseRow> {
        let a = profile(
            "user:a",
            json!([
                ["nps", "r2", "2026-01-02T00:00:00Z", {"score": 9, "why": "fast, \"simple\""}],
                ["csat", "r1", "2026-02-01T00:00:00Z", {"rating": "good"}],
            ]),
        );
        let b = profile(
            "anonymous:d",
            json!([
                ["nps", "r1", "2026-01-05T00:00:00Z", {"score": 3}],
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
                ["nps", "r2", "2026-01-02T00:00:00Z", {}],
                ["csat", "r1", "2026-02-01T00:00:00Z", {}],
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
    fn a_response_moved_to_another_profile_between_pages_is_not_listed_again() {
        let one = |profile_id: &str, response_id: &str| {
            let json = json!([["s", response_id, "2026-01-01T00:00:00Z", {}]]);
            responses_of(&profile(profile_id, json), &ResponseFilter::default())
        };
        let before = [one("anonymous:d1", "r1"), one("anonymous:d2", "r2")].concat();
        let (first, cursor) = page(before, None, 1);
        assert_eq!(first[0].response_id, "r1");
        // d1 is stitched to u1: its response now belongs to the user.
        let after = [one("user:u1", "r1"), one("anonymous:d2", "r2")].concat();
        let (second, _) = page(after, cursor.as_ref(), 1);
        let ids: Vec<&str> = second.iter().map(|r| r.response_id.as_str()).collect();
        assert_eq!(ids, vec!["r2"]);
    }

    #[test]
    fn csv_has_a_column_per_answer_key_and_quotes_what_needs_it() {
        let (all, _) = page(rows(), None, 10);
        let text = String::from_utf8(to_csv(&all).unwrap_or_default()).unwrap_or_default();
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("profile_id,survey_id,response_id,timestamp,answers.rating,answers.score,answers.why")
        );
        assert!(text.contains("\"fast, \"\"simple\"\"\""), "{text}");
        assert_eq!(spreadsheet_safe("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(spreadsheet_safe("fine"), "fine");
    }
}
