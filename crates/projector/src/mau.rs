//! Two-mode monthly active users, kept as counts so a month reads in O(1).

use std::collections::{BTreeMap, HashMap};

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

#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Activity {
    events: u64,
    survey_events: u64,
}

/// Per target, how many of the month's events resolve to it; the two counts
/// follow from those as they change.
#[derive(Debug, Clone, Default, PartialEq)]
struct MonthActivity {
    targets: HashMap<Identifier, Activity>,
    identified: u64,
    anonymous: u64,
}

impl MonthActivity {
    fn counts_as(target: &Identifier, a: Activity) -> (bool, bool) {
        match target.kind {
            IdentifierKind::User | IdentifierKind::Email => (a.events > 0, false),
            IdentifierKind::Anonymous => (false, a.survey_events > 0),
        }
    }

    fn adjust(&mut self, target: &Identifier, survey: bool, add: bool) {
        let before = self.targets.get(target).copied().unwrap_or_default();
        let mut after = before;
        let step = |n: u64| {
            if add {
                n.saturating_add(1)
            } else {
                n.saturating_sub(1)
            }
        };
        after.events = step(after.events);
        if survey {
            after.survey_events = step(after.survey_events);
        }
        let (id0, anon0) = Self::counts_as(target, before);
        let (id1, anon1) = Self::counts_as(target, after);
        self.identified = self.identified + u64::from(id1) - u64::from(id0);
        self.anonymous = self.anonymous + u64::from(anon1) - u64::from(anon0);
        if after.events == 0 {
            self.targets.remove(target);
        } else {
            self.targets.insert(target.clone(), after);
        }
    }
}

/// MAU of one workspace: identified = distinct identified targets of any
/// event in the month; anonymous = distinct device targets of survey events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MonthlyActiveUsers {
    months: BTreeMap<Month, MonthActivity>,
}

impl MonthlyActiveUsers {
    pub fn add(&mut self, month: Month, target: &Identifier, survey: bool) {
        self.months
            .entry(month)
            .or_default()
            .adjust(target, survey, true);
    }

    pub fn remove(&mut self, month: Month, target: &Identifier, survey: bool) {
        if let Some(activity) = self.months.get_mut(&month) {
            activity.adjust(target, survey, false);
        }
    }

    pub fn row(&self, workspace_id: &str, month: Month) -> MauRow {
        let (identified, anonymous) = self
            .months
            .get(&month)
            .map_or((0, 0), |a| (a.identified, a.anonymous));
        MauRow {
            workspace_id: workspace_id.to_owned(),
            month: month.to_string(),
            identified,
            anonymous,
            total: identified + anonymous,
        }
    }

    pub fn months(&self) -> impl Iterator<Item = Month> + '_ {
        self.months.keys().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_targets_in_and_out() {
        let m = Month {
            year: 2026,
            month: 3,
        };
        let mut mau = MonthlyActiveUsers::default();
        let d = Identifier::anonymous("d");
        let u = Identifier::user("u");
        mau.add(m, &d, false);
        assert_eq!(
            mau.row("w", m).total,
            0,
            "a device counts only with a survey event"
        );
        mau.add(m, &d, true);
        mau.add(m, &u, false);
        mau.add(m, &u, false);
        assert_eq!(
            (mau.row("w", m).identified, mau.row("w", m).anonymous),
            (1, 1)
        );
        mau.remove(m, &d, true);
        assert_eq!(mau.row("w", m).anonymous, 0);
        mau.remove(m, &u, false);
        assert_eq!(mau.row("w", m).identified, 1, "one event of u is left");
    }
}
