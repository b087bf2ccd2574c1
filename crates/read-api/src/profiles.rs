//! Profiles by any identifier: a device or email that resolves to a user
//! returns the user's profile, with `resolved_from` naming what was asked.

use idfold_events::{normalize_email, Identifier};
use serde_json::Value;

use crate::error::ReadError;

/// `user_id=`, `email=` or `anonymous_id=`: exactly one.
pub fn lookup_identifier(
    user_id: Option<&str>,
    email: Option<&str>,
    anonymous_id: Option<&str>,
) -> Result<Identifier, ReadError> {
    let given: Vec<Identifier> = [
        user_id.map(Identifier::user),
        // Emails are stored trimmed and lower-cased.
        email.map(|e| Identifier::email(normalize_email(e))),
        anonymous_id.map(Identifier::anonymous),
    ]
    .into_iter()
    .flatten()
    .collect();
    match <[Identifier; 1]>::try_from(given) {
        Ok([id]) if !id.value.is_empty() => Ok(id),
        _ => Err(ReadError::BadParameter {
            field: "user_id",
            message: "or `email` or `anonymous_id`: give exactly one, not empty".into(),
        }),
    }
}

/// A path id: `user:U`, `email:E` or `anonymous:D`.
pub fn path_identifier(text: &str) -> Result<Identifier, ReadError> {
    Identifier::parse(text).ok_or_else(|| ReadError::BadParameter {
        field: "id",
        message: format!("must be `user:ID`, `email:ADDRESS` or `anonymous:ID`, not {text:?}"),
    })
}

/// The profile JSON as `idfold profile` prints it.
pub fn answer(asked: &Identifier, found: Option<(Identifier, Value)>) -> Result<Value, ReadError> {
    let (target, mut profile) = found.ok_or(ReadError::NotFound("such profile"))?;
    if &target != asked {
        if let Value::Object(map) = &mut profile {
            map.insert("resolved_from".into(), Value::from(asked.to_string()));
        }
    }
    Ok(profile)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_identifier_is_taken() {
        assert_eq!(
            lookup_identifier(None, Some(" Ann@Example.com "), None).ok(),
            Some(Identifier::email("ann@example.com"))
        );
        assert!(lookup_identifier(Some("u"), Some("a@b.co"), None).is_err());
        assert!(lookup_identifier(None, None, None).is_err());
        assert!(lookup_identifier(Some(""), None, None).is_err());
        assert_eq!(
            path_identifier("user:u-1").ok(),
            Some(Identifier::user("u-1"))
        );
        assert!(path_identifier("u-1").is_err());
    }

    #[test]
    fn a_resolved_identifier_is_named() {
        let profile = serde_json::json!({"id": "user:u"});
        let asked = Identifier::anonymous("d");
        let answered = answer(&asked, Some((Identifier::user("u"), profile.clone())));
        assert_eq!(
            answered.ok().map(|p| p["resolved_from"].clone()),
            Some(Value::from("anonymous:d"))
        );
        let own = answer(
            &Identifier::user("u"),
            Some((Identifier::user("u"), profile)),
        );
        assert_eq!(
            own.ok().map(|p| p.get("resolved_from").is_none()),
            Some(true)
        );
        assert_eq!(
            answer(&asked, None).err().map(|e| e.code()),
            Some("not_found")
        );
    }
}
