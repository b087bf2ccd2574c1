//! Two-mode monthly active users, kept per (target, month) as counts of the
//! events that resolve there, so that a moved event changes only the rows
//! it concerns and a month's totals follow from the rows as they change.

use idfold_events::{Identifier, IdentifierKind, Month};
use serde::{Deserialize, Serialize};

/// One month's MAU, the row `idfold mau` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MauRow {
    pub workspace_id: String,
    pub month: String,
    pub identified: u64,
    pub anonymous: u64,
    pub total: u64,
}

/// How many of a month's events resolve to one target (its MAU row key is
/// (target, month); per-day rows would sit beside it keyed by day).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activity {
    pub events: u64,
    pub survey_events: u64,
}

/// A month's totals over its targets' activity, as events made them (an
/// erased person's retained counts are added when the row is read).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonthCounts {
    /// Distinct identified targets (users, emails) with an event.
    pub identified: u64,
    /// Distinct device targets with a survey event.
    pub anonymous: u64,
    /// Targets with any event: 0 means the month has no events left.
    pub active_targets: u64,
}

/// MAU's rule: identified = distinct identified targets of any event in the
/// month; anonymous = distinct device targets of survey events.
fn counts_as(target: &Identifier, a: Activity) -> (bool, bool) {
    match target.kind {
        IdentifierKind::User | IdentifierKind::Email => (a.events > 0, false),
        IdentifierKind::Anonymous => (false, a.survey_events > 0),
    }
}

/// Adds (or removes) one event at `target` in a month: the target's new
/// activity, and the month's totals changed to match.
pub fn adjust_activity(
    target: &Identifier,
    activity: Activity,
    counts: &mut MonthCounts,
    survey: bool,
    add: bool,
) -> Activity {
    let step = |n: u64| {
        if add {
            n.saturating_add(1)
        } else {
            n.saturating_sub(1)
        }
    };
    let mut after = activity;
    after.events = step(after.events);
    if survey {
        after.survey_events = step(after.survey_events);
    }
    let (id0, anon0) = counts_as(target, activity);
    let (id1, anon1) = counts_as(target, after);
    counts.identified = counts.identified + u64::from(id1) - u64::from(id0);
    counts.anonymous = counts.anonymous + u64::from(anon1) - u64::from(anon0);
    let (active0, active1) = (activity.events > 0, after.events > 0);
    counts.active_targets = counts.active_targets + u64::from(active1) - u64::from(active0);
    after
}

/// Takes a target's whole activity out of a month (an erased person).
pub fn remove_activity(target: &Identifier, activity: Activity, counts: &mut MonthCounts) {
    let (id0, anon0) = counts_as(target, activity);
    counts.identified -= u64::from(id0);
    counts.anonymous -= u64::from(anon0);
    counts.active_targets -= u64::from(activity.events > 0);
}

impl MonthCounts {
    pub fn row(&self, workspace_id: &str, month: Month) -> MauRow {
        MauRow {
            workspace_id: workspace_id.to_owned(),
            month: month.to_string(),
            identified: self.identified,
            anonymous: self.anonymous,
            total: self.identified + self.anonymous,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_targets_in_and_out() {
        let mut counts = MonthCounts::default();
        let d = Identifier::anonymous("d");
        let u = Identifier::user("u");
        let mut dev = adjust_activity(&d, Activity::default(), &mut counts, false, true);
        assert_eq!(
            (counts.anonymous, counts.active_targets),
            (0, 1),
            "a device counts only with a survey event"
        );
        dev = adjust_activity(&d, dev, &mut counts, true, true);
        let mut user = adjust_activity(&u, Activity::default(), &mut counts, false, true);
        user = adjust_activity(&u, user, &mut counts, false, true);
        assert_eq!((counts.identified, counts.anonymous), (1, 1));
        dev = adjust_activity(&d, dev, &mut counts, true, false);
        assert_eq!(counts.anonymous, 0);
        assert_eq!(dev.events, 1);
        user = adjust_activity(&u, user, &mut counts, false, false);
        assert_eq!(counts.identified, 1, "one event of u is left");
        remove_activity(&u, user, &mut counts);
        remove_activity(&d, dev, &mut counts);
        assert_eq!(counts, MonthCounts::default());
    }
}
