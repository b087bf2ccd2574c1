//! Profiles by any identifier: a device or email that resolves to a user
//! returns the user's profile, with `resolved_from` naming what was asked.

use idfold_events::{
    normalize_identifier, parse_profile_id, Identifier, IdentifierKind, InvalidProfileId,
};
use idfold_projector::ProfileView;
use serde_json::Value;

use crate::error::ReadError;

/// `user_id=`, `email=` or `anonymous_id=`: exactly one, normalised as at
/// ingest (see `idfold_events::normalize_identifier`), so that what finds a
/// profile is what the person typed, in any of the forms that read the same.
pub fn lookup_identifier(
    user_id: Option<&str>,
    email: Option<&str>,
    anonymous_id: Option<&str>,
) -> Result<Identifier, ReadError> {
    let given: Vec<(IdentifierKind, &str)> = [
        user_id.map(|u| (IdentifierKind::User, u)),
        email.map(|e| (IdentifierKind::Email, e)),
        anonymous_id.map(|a| (IdentifierKind::Anonymous, a)),
    ]
    .into_iter()
    .flatten()
    .collect();
    let Ok([(kind, text)]) = <[(IdentifierKind, &str); 1]>::try_from(given) else {
        return Err(ReadError::BadParameter {
            field: "user_id",
            message: "or `email` or `anonymous_id`: give exactly one".into(),
        });
    };
    let value = normalize_identifier(kind, text).map_err(|why| ReadError::InvalidIdentifier {
        field: kind.field(),
        message: why.to_string(),
    })?;
    Ok(Identifier { kind, value })
}

/// A path id: `user:U`, `email:E` or `anonymous:D`, percent-decoded by the
/// router, its value normalised as at ingest.
pub fn path_identifier(text: &str) -> Result<Identifier, ReadError> {
    parse_profile_id(text).map_err(|e| match e {
        InvalidProfileId::Form => ReadError::BadParameter {
            field: "id",
            message: format!("must be `user:ID`, `email:ADDRESS` or `anonymous:ID`, not {text:?}"),
        },
        value @ InvalidProfileId::Value(..) => ReadError::InvalidIdentifier {
            field: "id",
            message: value.to_string(),
        },
    })
}

/// The profile JSON as `idfold profile` prints it: the typed view, with
/// `resolved_from` naming what was asked when it resolved to another
/// profile (in its sorted place among the keys).
pub fn answer(
    asked: &Identifier,
    found: Option<(Identifier, ProfileView)>,
) -> Result<Value, ReadError> {
    let (target, profile) = found.ok_or(ReadError::NotFound("such profile"))?;
    let mut json = serde_json::to_value(&profile).map_err(|e| ReadError::Output(e.to_string()))?;
    if &target != asked {
        if let Value::Object(map) = &mut json {
            map.insert("resolved_from".into(), Value::from(asked.to_string()));
        }
    }
    Ok(json)
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
        assert_eq!(
            path_identifier("user:u-1").ok(),
            Some(Identifier::user("u-1"))
        );
        assert!(path_identifier("u-1").is_err());
    }

    #[test]
    fn lookups_and_paths_normalise_as_ingest_does() {
        for text in ["Ｕ１@example.com", "u1@example.com", "U1@Example.COM"] {
            assert_eq!(
                lookup_identifier(None, Some(text), None).ok(),
                Some(Identifier::email("u1@example.com"))
            );
            assert_eq!(
                path_identifier(&format!("email:{text}")).ok(),
                Some(Identifier::email("u1@example.com"))
            );
        }
        assert_eq!(
            path_identifier("anonymous: ｄ-1 ").ok(),
            Some(Identifier::anonymous("d-1"))
        );
    }

    #[test]
    fn blank_looking_ids_are_invalid_fields() {
        for (user, field) in [
            ("", "user_id"),
            ("\u{200B}", "user_id"),
            ("ｎｕｌｌ", "user_id"),
        ] {
            let e = lookup_identifier(Some(user), None, None).expect_err(user);
            assert_eq!((e.code(), e.field()), ("invalid_field", Some(field)));
            assert_eq!(e.status(), axum::http::StatusCode::BAD_REQUEST);
        }
        let e = lookup_identifier(None, None, Some("nil")).expect_err("nil");
        assert_eq!(
            (e.code(), e.field()),
            ("invalid_field", Some("anonymous_id"))
        );
        assert!(e.to_string().contains("placeholder"), "{e}");
        for id in [
            "user:",
            "user:\u{200B}",
            "user:nil",
            "email:a\u{200B}@b.co",
            "anonymous:  ",
        ] {
            let e = path_identifier(id).expect_err(id);
            assert_eq!(
                (e.code(), e.field()),
                ("invalid_field", Some("id")),
                "{id:?}"
            );
        }
        let e = path_identifier("person:x").expect_err("form");
        assert_eq!(e.code(), "invalid_parameter");
    }

    #[test]
    fn a_resolved_identifier_is_named() {
        let user = Identifier::user("u");
        let profile =
            idfold_projector::ProfileAggregate::default().view("w", &user, vec![], vec![]);
        let asked = Identifier::anonymous("d");
        let answered = answer(&asked, Some((user.clone(), profile.clone())));
        assert_eq!(
            answered
                .ok()
                .map(|p| (p["resolved_from"].clone(), p["id"].clone())),
            Some((Value::from("anonymous:d"), Value::from("user:u")))
        );
        let own = answer(&user, Some((user.clone(), profile.clone())));
        let own = own.ok().unwrap_or_default();
        assert!(own.get("resolved_from").is_none(), "{own}");
        assert_eq!(
            serde_json::from_value::<ProfileView>(own).ok(),
            Some(profile),
            "the typed view as it is"
        );
        assert_eq!(
            answer(&asked, None).err().map(|e| e.code()),
            Some("not_found")
        );
    }
}
