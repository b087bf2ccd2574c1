//! The filter, as parsed.

use idfold_events::{EventTime, SurveyAction};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    All(Vec<Filter>),
    Any(Vec<Filter>),
    Not(Box<Filter>),
    Trait {
        name: String,
        test: TraitTest,
    },
    /// At least `at_least` track events named `event`, in the last
    /// `within_days` UTC days (today included) when given.
    Track {
        event: String,
        at_least: u64,
        within_days: Option<u32>,
    },
    Survey {
        survey_id: String,
        action: SurveyAction,
        when: When,
    },
    Seen {
        which: SeenField,
        test: TimeTest,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum TraitTest {
    Eq(Value),
    /// Not equal, a missing trait included.
    Ne(Value),
    In(Vec<Value>),
    Exists(bool),
    Gt(f64),
    Lt(f64),
    Gte(f64),
    Lte(f64),
    /// A string trait containing the text (case-sensitive).
    Contains(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    Ever,
    Never,
    WithinDays(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeenField {
    First,
    Last,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeTest {
    Before(EventTime),
    After(EventTime),
    WithinDays(u32),
}
