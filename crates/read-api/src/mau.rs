//! `GET /v1/workspaces/{w}/mau`: one month, or every month of a range with
//! the months without activity as zeros.

use idfold_events::{parse_month, Month};

use crate::error::ReadError;

/// The longest range one request may ask for: twenty years of months.
pub const MAX_MONTHS: usize = 240;

/// Which months a MAU request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MonthQuery {
    One(Month),
    Range(Vec<Month>),
}

fn month(field: &'static str, text: &str) -> Result<Month, ReadError> {
    parse_month(text).ok_or_else(|| ReadError::BadParameter {
        field,
        message: format!("must be a month as YYYY-MM, not {text:?}"),
    })
}

/// `month=`, or `from=` and `to=` (inclusive); nothing else.
pub fn month_query(
    month_param: Option<&str>,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<MonthQuery, ReadError> {
    match (month_param, from, to) {
        (Some(m), None, None) => Ok(MonthQuery::One(month("month", m)?)),
        (None, Some(f), Some(t)) => {
            let (first, last) = (month("from", f)?, month("to", t)?);
            if first > last {
                return Err(ReadError::BadParameter {
                    field: "from",
                    message: format!("must not be after `to` ({f} > {t})"),
                });
            }
            let mut months = vec![first];
            while let Some(&latest) = months.last() {
                if latest >= last {
                    break;
                }
                if months.len() >= MAX_MONTHS {
                    return Err(ReadError::BadParameter {
                        field: "to",
                        message: format!("spans more than {MAX_MONTHS} months from `from`"),
                    });
                }
                months.push(latest.next());
            }
            Ok(MonthQuery::Range(months))
        }
        (None, Some(_), None) => Err(ReadError::BadParameter {
            field: "to",
            message: "is required with `from`".into(),
        }),
        (None, None, Some(_)) => Err(ReadError::BadParameter {
            field: "from",
            message: "is required with `to`".into(),
        }),
        (None, None, None) => Err(ReadError::BadParameter {
            field: "month",
            message: "is required (or `from` and `to` for a range)".into(),
        }),
        (Some(_), _, _) => Err(ReadError::BadParameter {
            field: "month",
            message: "cannot be combined with `from` and `to`".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(year: i32, month: u8) -> Month {
        Month { year, month }
    }

    #[test]
    fn a_range_lists_every_month_across_a_year_end() {
        assert_eq!(
            month_query(None, Some("2025-11"), Some("2026-02")).ok(),
            Some(MonthQuery::Range(vec![
                m(2025, 11),
                m(2025, 12),
                m(2026, 1),
                m(2026, 2)
            ]))
        );
        assert_eq!(
            month_query(None, Some("2026-02"), Some("2026-02")).ok(),
            Some(MonthQuery::Range(vec![m(2026, 2)]))
        );
        assert_eq!(
            month_query(Some("2026-02"), None, None).ok(),
            Some(MonthQuery::One(m(2026, 2)))
        );
    }

    #[test]
    fn bad_queries_name_the_parameter() {
        let field =
            |q: Result<MonthQuery, ReadError>| q.err().and_then(|e| e.field().map(str::to_owned));
        assert_eq!(
            field(month_query(Some("2026-13"), None, None)),
            Some("month".into())
        );
        assert_eq!(
            field(month_query(None, Some("2026-03"), Some("2026-01"))),
            Some("from".into())
        );
        assert_eq!(
            field(month_query(None, Some("2000-01"), Some("2030-01"))),
            Some("to".into())
        );
        assert_eq!(
            field(month_query(None, Some("2026-01"), None)),
            Some("to".into())
        );
        assert_eq!(field(month_query(None, None, None)), Some("month".into()));
        assert_eq!(
            field(month_query(
                Some("2026-01"),
                Some("2026-01"),
                Some("2026-02")
            )),
            Some("month".into())
        );
    }
}
