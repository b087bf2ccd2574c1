//! Event time as integer nanoseconds since the Unix epoch (UTC), and the
//! UTC calendar months that MAU is counted in.

use std::fmt;

use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime, UtcOffset};

/// Nanoseconds since 1970-01-01T00:00:00Z. Fits years 1678..=2261.
pub type EventTime = i64;

/// The first event time idfold accepts: 1970-01-01T00:00:00Z.
pub const EVENT_TIME_MIN: EventTime = 0;
/// The first event time past the accepted range: 2200-01-01T00:00:00Z.
/// Far inside what [`EventTime`] holds, so arithmetic on accepted times
/// (skew correction, the 24 h cap, month ends) never saturates.
pub const EVENT_TIME_END: EventTime = 7_258_118_400 * 1_000_000_000;
/// The accepted range, as messages name it.
pub const EVENT_TIME_RANGE: &str =
    "1970-01-01T00:00:00Z (inclusive) to 2200-01-01T00:00:00Z (exclusive)";

/// Why a text is not an accepted time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeProblem {
    /// Not RFC 3339 with an offset.
    Malformed,
    /// A valid RFC 3339 time outside [`EVENT_TIME_RANGE`].
    OutOfRange,
}

/// Whether an instant lies in [`EVENT_TIME_RANGE`].
pub fn in_event_time_range(nanos: i128) -> bool {
    (i128::from(EVENT_TIME_MIN)..i128::from(EVENT_TIME_END)).contains(&nanos)
}

/// Parses an RFC 3339 time with an offset that lies in [`EVENT_TIME_RANGE`].
pub fn parse_event_time(text: &str) -> Result<EventTime, TimeProblem> {
    let parsed = OffsetDateTime::parse(text, &Rfc3339).map_err(|_| TimeProblem::Malformed)?;
    let nanos = parsed.unix_timestamp_nanos();
    if !in_event_time_range(nanos) {
        return Err(TimeProblem::OutOfRange);
    }
    i64::try_from(nanos).map_err(|_| TimeProblem::OutOfRange)
}

/// Formats any instant `time` can show (years -9999..=9999) as RFC 3339 in
/// UTC; for messages about times out of range.
pub fn format_wide_nanos(nanos: i128) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("{nanos} ns after 1970-01-01T00:00:00Z"))
}

/// A UTC calendar month, ordered in time; displayed as `YYYY-MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Month {
    pub year: i32,
    /// 1..=12
    pub month: u8,
}

impl Month {
    pub fn next(self) -> Month {
        if self.month == 12 {
            Month {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Month {
                year: self.year,
                month: self.month + 1,
            }
        }
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// Parses an RFC 3339 timestamp that carries an offset (`Z` or `+hh:mm`)
/// into nanoseconds; `None` when malformed or outside the representable range.
pub fn parse_rfc3339(text: &str) -> Option<EventTime> {
    let parsed = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    i64::try_from(parsed.unix_timestamp_nanos()).ok()
}

/// Formats nanoseconds as RFC 3339 in UTC (`Z`), with fractional seconds only
/// when they are not zero: one instant always prints the same way.
pub fn format_nanos(nanos: EventTime) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))
        .ok()
        .and_then(|t| t.to_offset(UtcOffset::UTC).format(&Rfc3339).ok())
        .unwrap_or_else(|| nanos.to_string())
}

/// The UTC calendar month an instant falls in.
pub fn month_of(nanos: EventTime) -> Month {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    Month {
        year: t.year(),
        month: u8::from(t.month()),
    }
}

/// The first instant after `month` (exclusive end), in nanoseconds.
pub fn month_end_nanos(month: Month) -> EventTime {
    let next = month.next();
    let start = time::Month::try_from(next.month)
        .ok()
        .and_then(|m| Date::from_calendar_date(next.year, m, 1).ok())
        .map(|d| d.midnight().assume_utc().unix_timestamp_nanos());
    match start.map(i64::try_from) {
        Some(Ok(n)) => n,
        _ => i64::MAX,
    }
}

/// Parses `YYYY-MM`.
pub fn parse_month(text: &str) -> Option<Month> {
    let (y, m) = text.split_once('-')?;
    if y.len() != 4 || m.len() != 2 || !y.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year: i32 = y.parse().ok()?;
    let month: u8 = m.parse().ok()?;
    (1..=12).contains(&month).then_some(Month { year, month })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_offsets_to_the_same_instant() {
        assert_eq!(
            parse_rfc3339("2026-03-01T01:00:00+01:00"),
            parse_rfc3339("2026-03-01T00:00:00Z")
        );
        assert_eq!(
            parse_rfc3339("2026-03-01T00:00:00"),
            None,
            "offset is required"
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn months_are_utc() {
        let t = parse_rfc3339("2026-03-01T00:30:00+01:00").expect("valid");
        assert_eq!(month_of(t).to_string(), "2026-02");
        let end = month_end_nanos(Month {
            year: 2026,
            month: 2,
        });
        assert_eq!(Some(end), parse_rfc3339("2026-03-01T00:00:00Z"));
        assert_eq!(
            month_end_nanos(Month {
                year: 2026,
                month: 12
            }),
            parse_rfc3339("2027-01-01T00:00:00Z").expect("valid")
        );
    }

    #[test]
    fn formats_round_trip() {
        let t = parse_rfc3339("2026-03-01T10:00:00.25+02:00").expect("valid");
        assert_eq!(format_nanos(t), "2026-03-01T08:00:00.25Z");
        assert_eq!(parse_rfc3339(&format_nanos(t)), Some(t));
    }

    #[test]
    fn event_times_have_a_range() {
        assert_eq!(parse_event_time("1970-01-01T00:00:00Z"), Ok(EVENT_TIME_MIN));
        assert_eq!(
            parse_event_time("2199-12-31T23:59:59.999999999Z"),
            Ok(EVENT_TIME_END - 1)
        );
        assert_eq!(parse_rfc3339("2200-01-01T00:00:00Z"), Some(EVENT_TIME_END));
        for outside in [
            "2200-01-01T00:00:00Z",
            "1969-12-31T23:59:59.999999999Z",
            "1970-01-01T00:30:00+01:00",
            "1600-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "0000-01-01T00:00:00Z",
        ] {
            assert_eq!(
                parse_event_time(outside),
                Err(TimeProblem::OutOfRange),
                "{outside}"
            );
        }
        for bad in ["2026-01-31", "2026-01-31T12:00:00", "soon", ""] {
            assert_eq!(parse_event_time(bad), Err(TimeProblem::Malformed), "{bad}");
        }
        assert_eq!(
            format_wide_nanos(-i128::from(EVENT_TIME_END)),
            "1740-01-01T00:00:00Z"
        );
    }

    #[test]
    fn parses_months() {
        assert_eq!(
            parse_month("2026-11"),
            Some(Month {
                year: 2026,
                month: 11
            })
        );
        assert_eq!(parse_month("2026-13"), None);
        assert_eq!(parse_month("26-11"), None);
    }
}
