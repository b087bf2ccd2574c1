//! Why an input was rejected: a stable reason code, the field, and a message.

use std::fmt;

/// Stable reason codes. The strings are a contract: clients and dashboards
/// match on them, so they never change once released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReasonCode {
    InvalidJson,
    MissingField,
    InvalidField,
    UnknownType,
    NoIdentifier,
    IdentifiedUserRequired,
    TooLarge,
    UnknownSchema,
    /// The event names a workspace other than the one its write key is for.
    WrongWorkspace,
}

impl ReasonCode {
    pub const ALL: [ReasonCode; 9] = [
        ReasonCode::InvalidJson,
        ReasonCode::MissingField,
        ReasonCode::InvalidField,
        ReasonCode::UnknownType,
        ReasonCode::NoIdentifier,
        ReasonCode::IdentifiedUserRequired,
        ReasonCode::TooLarge,
        ReasonCode::UnknownSchema,
        ReasonCode::WrongWorkspace,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCode::InvalidJson => "invalid_json",
            ReasonCode::MissingField => "missing_field",
            ReasonCode::InvalidField => "invalid_field",
            ReasonCode::UnknownType => "unknown_type",
            ReasonCode::NoIdentifier => "no_identifier",
            ReasonCode::IdentifiedUserRequired => "identified_user_required",
            ReasonCode::TooLarge => "too_large",
            ReasonCode::UnknownSchema => "unknown_schema",
            ReasonCode::WrongWorkspace => "wrong_workspace",
        }
    }

    pub fn parse(code: &str) -> Option<ReasonCode> {
        ReasonCode::ALL.into_iter().find(|c| c.as_str() == code)
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rejected input. Every rejection is permanent: sending the same bytes
/// again gets the same answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct Rejection {
    pub reason: ReasonCode,
    /// The offending field (`traits.email` style path), when one is to blame.
    pub field: Option<String>,
    /// A human sentence that names the field and what was wrong with it.
    pub message: String,
}

impl Rejection {
    pub fn new(reason: ReasonCode, field: Option<&str>, message: impl Into<String>) -> Self {
        Rejection {
            reason,
            field: field.map(str::to_owned),
            message: message.into(),
        }
    }

    pub fn missing(field: &str) -> Self {
        Rejection::new(
            ReasonCode::MissingField,
            Some(field),
            format!("`{field}` is required"),
        )
    }

    pub fn invalid(field: &str, why: impl fmt::Display) -> Self {
        Rejection::new(
            ReasonCode::InvalidField,
            Some(field),
            format!("`{field}` {why}"),
        )
    }
}
