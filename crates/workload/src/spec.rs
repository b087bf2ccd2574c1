//! What to generate: how many events, over how many workspaces and months,
//! and how many of them arrive late or twice.

use crate::civil_time::days_from_civil;

/// The shape of a generated workload. The same spec always gives the same
/// lines, byte for byte, on every machine.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadSpec {
    /// Number of NDJSON lines, re-deliveries included.
    pub events: usize,
    /// Number of workspaces (`ws-0` .. `ws-{n-1}`); sizes are skewed, `ws-0`
    /// is the biggest. 0 is treated as 1.
    pub workspaces: usize,
    pub seed: u64,
    /// Share of lines that are exact copies of a line sent shortly before
    /// (re-deliveries), in `0.0..=1.0`.
    pub duplicate_rate: f64,
    /// Share of events dated days before the stream's current time (late
    /// arrivals), in `0.0..=1.0`.
    pub late_rate: f64,
    /// (year, month 1..=12) of the first event.
    pub start_month: (i32, u8),
    /// Number of calendar months the timestamps spread over. 0 is treated as 1.
    pub months: u8,
}

impl WorkloadSpec {
    /// The benchmarks' workload: `IDFOLD_BENCH_EVENTS` events (default
    /// 1,000,000) over 200 workspaces, seed 42, so that every benchmark
    /// measures the same events.
    pub fn benchmark() -> WorkloadSpec {
        let events = std::env::var("IDFOLD_BENCH_EVENTS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1_000_000);
        WorkloadSpec {
            events,
            workspaces: 200,
            seed: 42,
            ..WorkloadSpec::default()
        }
    }
}

impl Default for WorkloadSpec {
    fn default() -> Self {
        WorkloadSpec {
            events: 10_000,
            workspaces: 20,
            seed: 1,
            duplicate_rate: 0.02,
            late_rate: 0.01,
            start_month: (2026, 1),
            months: 3,
        }
    }
}

impl WorkloadSpec {
    /// The first second of the first month and the first second after the
    /// last month (exclusive), in seconds since the Unix epoch.
    pub(crate) fn time_range(&self) -> (i64, i64) {
        let (year, month) = self.start_month;
        let first = i64::from(year) * 12 + i64::from(month.clamp(1, 12)) - 1;
        let after = first + i64::from(self.months.max(1));
        let start_of = |index: i64| {
            let month = u32::try_from(index.rem_euclid(12) + 1).unwrap_or(1);
            days_from_civil(index.div_euclid(12), month) * 86_400
        };
        (start_of(first), start_of(after))
    }
}

/// A probability usable with `gen_bool`: clamped, with NaN meaning never.
pub(crate) fn probability(p: f64) -> f64 {
    if p.is_nan() {
        0.0
    } else {
        p.clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::civil_time::rfc3339;

    #[test]
    fn time_range_covers_whole_calendar_months() {
        let spec = WorkloadSpec::default();
        let (start, end) = spec.time_range();
        assert_eq!(rfc3339(start), "2026-01-01T00:00:00Z");
        assert_eq!(rfc3339(end), "2026-04-01T00:00:00Z");

        let spec = WorkloadSpec {
            start_month: (2025, 11),
            months: 4,
            ..spec
        };
        let (start, end) = spec.time_range();
        assert_eq!(rfc3339(start), "2025-11-01T00:00:00Z");
        assert_eq!(rfc3339(end), "2026-03-01T00:00:00Z");

        let spec = WorkloadSpec {
            start_month: (2024, 12),
            months: 0,
            ..spec
        };
        let (start, end) = spec.time_range();
        assert_eq!(rfc3339(start), "2024-12-01T00:00:00Z");
        assert_eq!(rfc3339(end), "2025-01-01T00:00:00Z");
    }

    #[test]
    fn probabilities_are_clamped() {
        assert_eq!(probability(f64::NAN), 0.0);
        assert_eq!(probability(-1.0), 0.0);
        assert_eq!(probability(2.0), 1.0);
        assert_eq!(probability(0.25), 0.25);
    }
}
