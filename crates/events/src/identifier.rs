//! The one normalisation every identifier goes through, wherever it enters
//! idfold: events, Segment calls, URL paths, CLI flags, lookups, erasure.
//! Two strings a person reads as the same identifier come out as one
//! string; one that reads as blank or as "no identifier" is refused.
//!
//! The rule, in order:
//! 1. Unicode NFKC: compatibility forms fold to their plain form (fullwidth
//!    `ｕ１` is `u1`, a no-break space is a space, decomposed `é` is composed).
//! 2. Emails only: lower-cased (Unicode lower case, as earlier versions
//!    stored them), then NFKC again, so the result is stable.
//! 3. Leading and trailing white space is removed.
//! 4. Refused: control characters (U+0000..U+001F, U+007F..U+009F, tab and
//!    line breaks included), invisible characters (default-ignorable code
//!    points such as U+200B..U+200F, U+2060, U+FEFF, the soft hyphen and
//!    variation selectors; other format characters; line and paragraph
//!    separators; the braille blank), an empty result, one that is too long
//!    (256 characters for user and device ids, 254 for emails), a
//!    placeholder (compared case-insensitively: `null`, `nil`, `undefined`,
//!    `0`, ... see [`PLACEHOLDER_IDENTIFIERS`]) and, for emails, an address
//!    that is not plausible.
//!
//! Invisible characters are refused rather than removed: an id that carries
//! one was damaged somewhere, and guessing which visible id was meant could
//! merge two people.
//!
//! Pure: no I/O, and it never panics.

use std::fmt;

use unicode_normalization::{is_nfkc_quick, IsNormalized, UnicodeNormalization};

use crate::model::{Identifier, IdentifierKind};

/// The longest user or device id, in characters after normalisation.
pub const MAX_IDENTIFIER_CHARS: usize = 256;
/// The longest email address, in characters after normalisation.
pub const MAX_EMAIL_CHARS: usize = 254;

/// Identifier values that clients send when they have no identifier. Compared
/// after normalisation, ignoring case.
pub const PLACEHOLDER_IDENTIFIERS: [&str; 14] = [
    "null",
    "(null)",
    "nil",
    "undefined",
    "none",
    "nan",
    "anonymous",
    "guest",
    "unknown",
    "0",
    "-1",
    "true",
    "false",
    "[object Object]",
];

/// A character named in a message as `U+200B`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodePoint(pub char);

impl fmt::Display for CodePoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "U+{:04X}", u32::from(self.0))
    }
}

/// Why a string is not an identifier. The messages complete a sentence
/// that starts with the field's name (`` `user_id` must not be blank``).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidIdentifier {
    #[error("must not be blank")]
    Blank,
    #[error("must be at most {max} characters, not {chars}")]
    TooLong { max: usize, chars: usize },
    #[error("contains the control character {0}; an identifier is one line of visible text")]
    Control(CodePoint),
    #[error("contains the invisible character {0}; an identifier is visible text only")]
    Invisible(CodePoint),
    #[error("is the placeholder \"{0}\", not a real identifier")]
    Placeholder(String),
    #[error("is not a plausible email address: {0}")]
    NotAnEmail(&'static str),
}

/// Why a `kind:value` profile id is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidProfileId {
    #[error("must be `user:ID`, `email:ADDRESS` or `anonymous:ID`")]
    Form,
    #[error("has {} that {}", .0.value_name(), .1)]
    Value(IdentifierKind, InvalidIdentifier),
}

/// The normalised form of `text` as an identifier of `kind`; see the module
/// docs for the rule. Idempotent: a normalised id normalises to itself.
pub fn normalize_identifier(kind: IdentifierKind, text: &str) -> Result<String, InvalidIdentifier> {
    let email = kind == IdentifierKind::Email;
    let normalized = if text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        // Printable ASCII, nearly every id: its own NFKC form, with no
        // control or invisible character to look for.
        let trimmed = text.trim_matches(' ');
        if email {
            trimmed.to_ascii_lowercase()
        } else {
            trimmed.to_owned()
        }
    } else {
        // Checked before trimming too, which would drop a trailing line
        // break or line separator: refused wherever they stand.
        refuse_unseen(text)?;
        let normalized = canonical_form(text, email);
        refuse_unseen(&normalized)?;
        normalized
    };
    if normalized.is_empty() {
        return Err(InvalidIdentifier::Blank);
    }
    if email {
        if let Some(why) = email_problem(&normalized) {
            return Err(InvalidIdentifier::NotAnEmail(why));
        }
    } else {
        // A string has no more characters than bytes: only a long one is
        // counted (this runs for every id the fold reads).
        if normalized.len() > MAX_IDENTIFIER_CHARS {
            let chars = normalized.chars().count();
            if chars > MAX_IDENTIFIER_CHARS {
                return Err(InvalidIdentifier::TooLong {
                    max: MAX_IDENTIFIER_CHARS,
                    chars,
                });
            }
        }
        if is_placeholder(&normalized) {
            return Err(InvalidIdentifier::Placeholder(normalized));
        }
    }
    Ok(normalized)
}

/// Control and invisible characters, which no person reads.
fn refuse_unseen(text: &str) -> Result<(), InvalidIdentifier> {
    for c in text.chars() {
        if c.is_control() {
            return Err(InvalidIdentifier::Control(CodePoint(c)));
        }
        if is_invisible(c) {
            return Err(InvalidIdentifier::Invisible(CodePoint(c)));
        }
    }
    Ok(())
}

/// Parses the `kind:value` form of a profile id (`user:U`, `email:E`,
/// `anonymous:D`) as a person gives it, normalising the value.
pub fn parse_profile_id(text: &str) -> Result<Identifier, InvalidProfileId> {
    let (prefix, value) = text.split_once(':').ok_or(InvalidProfileId::Form)?;
    let kind = IdentifierKind::from_prefix(prefix).ok_or(InvalidProfileId::Form)?;
    let value = normalize_identifier(kind, value).map_err(|e| InvalidProfileId::Value(kind, e))?;
    Ok(Identifier { kind, value })
}

/// NFKC (emails also lower-cased), trimmed, repeated until it no longer
/// changes so that the result is a fixed point.
fn canonical_form(text: &str, email: bool) -> String {
    let mut current = text.to_owned();
    // NFKC, lower-casing and trimming each keep the others' work except in
    // rare interactions (a lower-case form that decomposes, a trim that
    // exposes a combining mark): a few rounds reach the fixed point.
    for _ in 0..4 {
        let mut next = nfkc(&current);
        if email {
            let lowered = next.to_lowercase();
            if lowered != next {
                next = nfkc(&lowered);
            }
        }
        let next = next.trim().to_owned();
        if next == current {
            break;
        }
        current = next;
    }
    current
}

fn nfkc(text: &str) -> String {
    if is_nfkc_quick(text.chars()) == IsNormalized::Yes {
        text.to_owned()
    } else {
        text.nfkc().collect()
    }
}

/// ASCII case suffices after NFKC: no character left by it lower-cases to
/// ASCII but ASCII itself (the Kelvin sign, say, became `K`). No
/// allocation: this runs for every id the fold reads.
fn is_placeholder(normalized: &str) -> bool {
    PLACEHOLDER_IDENTIFIERS
        .iter()
        .any(|p| p.eq_ignore_ascii_case(normalized))
}

/// Characters that show nothing, or nothing of their own: Unicode's
/// default-ignorable code points, the other format characters (Cf), the
/// line and paragraph separators, and the blanks that fonts draw empty.
pub fn is_invisible(c: char) -> bool {
    matches!(
        u32::from(c),
        0x00AD
            | 0x034F
            | 0x061C
            | 0x0600..=0x0605
            | 0x06DD
            | 0x070F
            | 0x0890..=0x0891
            | 0x08E2
            | 0x115F..=0x1160
            | 0x17B4..=0x17B5
            | 0x180B..=0x180F
            | 0x200B..=0x200F
            | 0x2028..=0x202E
            | 0x2060..=0x206F
            | 0x2800
            | 0x3164
            | 0xFE00..=0xFE0F
            | 0xFEFF
            | 0xFFA0
            | 0xFFF0..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0000..=0xE0FFF
    )
}

/// Why a normalised email address is not plausible, if it is not.
fn email_problem(email: &str) -> Option<&'static str> {
    if email.len() > MAX_EMAIL_CHARS && email.chars().count() > MAX_EMAIL_CHARS {
        return Some("it is longer than 254 characters");
    }
    if email.chars().any(char::is_whitespace) {
        return Some("it contains white space");
    }
    let mut parts = email.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return Some("it must contain exactly one `@`");
    };
    if local.is_empty() {
        return Some("the part before `@` is empty");
    }
    if !domain.contains('.') {
        return Some("the domain has no `.`");
    }
    if domain.starts_with('.') || domain.ends_with('.') {
        return Some("the domain starts or ends with `.`");
    }
    if domain.split('.').any(str::is_empty) {
        return Some("the domain has an empty label");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KINDS: [IdentifierKind; 3] = [
        IdentifierKind::User,
        IdentifierKind::Email,
        IdentifierKind::Anonymous,
    ];

    fn user(text: &str) -> Result<String, InvalidIdentifier> {
        normalize_identifier(IdentifierKind::User, text)
    }

    fn email(text: &str) -> Result<String, InvalidIdentifier> {
        normalize_identifier(IdentifierKind::Email, text)
    }

    #[test]
    fn blank_looking_ids_are_refused() {
        for kind in [IdentifierKind::User, IdentifierKind::Anonymous] {
            for text in ["", "   ", "\u{3000}", "\u{00A0}\u{2003}"] {
                assert_eq!(
                    normalize_identifier(kind, text),
                    Err(InvalidIdentifier::Blank),
                    "{text:?}"
                );
            }
            for (text, c) in [
                ("\u{200B}", '\u{200B}'),
                ("null\u{200B}", '\u{200B}'),
                ("u\u{200C}1", '\u{200C}'),
                ("u\u{200D}1", '\u{200D}'),
                ("\u{2060}u1", '\u{2060}'),
                ("\u{FEFF}u1", '\u{FEFF}'),
                ("u\u{00AD}1", '\u{00AD}'),
                ("u1\u{FE0F}", '\u{FE0F}'),
                ("\u{3164}", '\u{3164}'),
                ("u1\u{2028}", '\u{2028}'),
                ("\u{2800}", '\u{2800}'),
                ("u\u{202E}1", '\u{202E}'),
            ] {
                assert_eq!(
                    normalize_identifier(kind, text),
                    Err(InvalidIdentifier::Invisible(CodePoint(c))),
                    "{text:?}"
                );
            }
            for (text, c) in [("\t", '\t'), ("u1\n", '\n'), ("u\u{0085}", '\u{0085}')] {
                assert_eq!(
                    normalize_identifier(kind, text),
                    Err(InvalidIdentifier::Control(CodePoint(c))),
                    "{text:?}"
                );
            }
        }
    }

    #[test]
    fn placeholders_are_refused_in_any_form() {
        for text in [
            "null",
            "NULL",
            "ｎｕｌｌ",
            " Null ",
            "nil",
            "NIL",
            "ｎｉｌ",
            "(null)",
            "undefined",
            "０",
            "-1",
            "[object object]",
        ] {
            assert!(
                matches!(user(text), Err(InvalidIdentifier::Placeholder(_))),
                "{text:?}: {:?}",
                user(text)
            );
        }
        // Fullwidth capitals are the placeholder too.
        assert!(matches!(
            user("ＮＩＬ"),
            Err(InvalidIdentifier::Placeholder(_))
        ));
        // Near-misses are real ids.
        for text in ["nullable", "00", "nil-1", "guest-42", "-10"] {
            assert_eq!(user(text), Ok(text.to_owned()));
        }
    }

    #[test]
    fn ids_that_read_the_same_are_one() {
        assert_eq!(user("ｕ１"), Ok("u1".to_owned()));
        assert_eq!(user(" u-1 "), Ok("u-1".to_owned()));
        assert_eq!(user("a\u{00A0}b"), Ok("a b".to_owned()));
        assert_eq!(user("e\u{0301}"), user("\u{00E9}"));
        assert_eq!(user("\u{00E9}"), Ok("\u{00E9}".to_owned()));
        // User and device ids keep their case: `U1` and `u1` are two users.
        assert_eq!(user("U1"), Ok("U1".to_owned()));
    }

    #[test]
    fn emails_are_also_lower_cased() {
        for text in [
            "Ｕ１@example.com",
            "u1@example.com",
            "U1@Example.COM",
            " u1@EXAMPLE.com ",
        ] {
            assert_eq!(email(text), Ok("u1@example.com".to_owned()), "{text:?}");
        }
        assert_eq!(
            email("e\u{0301}@example.com"),
            email("\u{00C9}@example.com")
        );
        assert_eq!(
            email("u1\u{200B}@example.com"),
            Err(InvalidIdentifier::Invisible(CodePoint('\u{200B}')))
        );
        for bad in [
            "",
            "ada",
            "a b@example.com",
            "ada@example",
            "a@b@c.d",
            "@x.io",
        ] {
            assert!(email(bad).is_err(), "{bad:?}");
        }
        assert!(matches!(
            email(&format!("{}@example.com", "a".repeat(243))),
            Err(InvalidIdentifier::NotAnEmail(_))
        ));
        assert!(email(&format!("{}@example.com", "a".repeat(242))).is_ok());
    }

    #[test]
    fn length_is_counted_after_normalisation() {
        assert_eq!(user(&"x".repeat(256)), Ok("x".repeat(256)));
        assert_eq!(
            user(&"x".repeat(257)),
            Err(InvalidIdentifier::TooLong {
                max: 256,
                chars: 257
            })
        );
        // 256 decomposed pairs compose to 256 characters.
        assert_eq!(user(&"e\u{0301}".repeat(256)), Ok("\u{00E9}".repeat(256)));
    }

    #[test]
    fn profile_ids_parse_and_normalise() {
        assert_eq!(
            parse_profile_id("email:Alice@Example.com"),
            Ok(Identifier::email("alice@example.com"))
        );
        assert_eq!(parse_profile_id("user:ｕ１"), Ok(Identifier::user("u1")));
        assert_eq!(
            parse_profile_id("anonymous:d:1"),
            Ok(Identifier::anonymous("d:1"))
        );
        assert_eq!(parse_profile_id("u1"), Err(InvalidProfileId::Form));
        assert_eq!(parse_profile_id("person:u1"), Err(InvalidProfileId::Form));
        assert_eq!(
            parse_profile_id("user:"),
            Err(InvalidProfileId::Value(
                IdentifierKind::User,
                InvalidIdentifier::Blank
            ))
        );
        assert_eq!(
            parse_profile_id("user:\u{200B}"),
            Err(InvalidProfileId::Value(
                IdentifierKind::User,
                InvalidIdentifier::Invisible(CodePoint('\u{200B}'))
            ))
        );
    }

    #[test]
    fn messages_name_the_character_and_the_kind() {
        assert_eq!(
            parse_profile_id("anonymous:nil")
                .err()
                .map(|e| e.to_string())
                .as_deref(),
            Some("has an anonymous id that is the placeholder \"nil\", not a real identifier")
        );
        let message = user("u\u{200B}").err().map(|e| e.to_string());
        assert_eq!(
            message.as_deref(),
            Some("contains the invisible character U+200B; an identifier is visible text only")
        );
    }

    fn arb_text() -> impl Strategy<Value = String> {
        // Arbitrary text, and text built from the characters that matter.
        let tricky = prop::sample::select(vec![
            'a', 'A', 'é', 'e', '\u{0301}', 'ß', 'İ', 'ı', 'ς', 'Σ', '@', '.', ' ', '\u{00A0}',
            '\u{3000}', '\u{200B}', '\u{FEFF}', '\u{00AD}', 'ｎ', 'Ｕ', '１', 'ﬀ', 'ǅ', 'Ω', 'Å',
            '\u{1100}', '\u{1161}', '\u{11A8}', '\u{0345}', 'ͅ', '\t', '\u{7f}', '0', '-',
        ]);
        prop_oneof![
            any::<String>(),
            prop::collection::vec(tricky, 0..12).prop_map(|c| c.into_iter().collect()),
        ]
    }

    proptest! {
        #[test]
        fn normalisation_is_idempotent_and_clean(text in arb_text()) {
            for kind in KINDS {
                if let Ok(once) = normalize_identifier(kind, &text) {
                    prop_assert_eq!(normalize_identifier(kind, &once), Ok(once.clone()));
                    prop_assert!(!once.chars().any(|c| c.is_control() || is_invisible(c)), "{:?}", once);
                    prop_assert!(!once.is_empty());
                    prop_assert_eq!(once.trim(), once.as_str());
                    let nfkc: String = once.nfkc().collect();
                    prop_assert_eq!(&nfkc, &once);
                }
            }
        }

        #[test]
        fn emails_equal_after_nfkc_and_case_folding_are_one(text in arb_text()) {
            let address = |t: &str| format!("{t}@example.com");
            let folded = |t: &str| -> String { nfkc(&nfkc(t).to_lowercase()) };
            let one = email(&address(&text));
            // The folded form itself, and the same address typed in other
            // case or composition forms, give the same answer: the same
            // address, or a refusal for the same reason (the character it
            // names is the one each form holds: U+3164 folds to U+1160).
            let same = |a: &Result<String, InvalidIdentifier>, b: &Result<String, InvalidIdentifier>| match (a, b) {
                (Ok(a), Ok(b)) => a == b,
                (Err(a), Err(b)) => std::mem::discriminant(a) == std::mem::discriminant(b),
                _ => false,
            };
            let of_folded = email(&address(&folded(&text)));
            prop_assert!(same(&of_folded, &one), "{:?} vs {:?}", of_folded, one);
            for variant in [
                text.to_uppercase(),
                text.to_lowercase(),
                text.nfkd().collect::<String>(),
                text.nfc().collect::<String>(),
            ] {
                if folded(&variant) == folded(&text) {
                    let of_variant = email(&address(&variant));
                    prop_assert!(same(&of_variant, &one), "{:?}: {:?} vs {:?}", variant, of_variant, one);
                }
            }
        }

        #[test]
        fn arbitrary_strings_never_panic(text in any::<String>()) {
            for kind in KINDS {
                let _ = normalize_identifier(kind, &text);
            }
            let _ = parse_profile_id(&text);
        }
    }
}
