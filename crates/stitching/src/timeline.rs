//! One identifier's links, in (event time, message_id) order.

use idfold_events::{EventOrder, EventTime, Identifier};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub key: EventOrder,
    pub target: Identifier,
}

/// What inserting a link did to the timeline's resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkInsert {
    /// A link with this key is already there (a re-delivery).
    Duplicate,
    /// Stored, but no event resolves differently for it (the link repeats the
    /// target in force just before it), neither now nor in any month.
    Redundant,
    /// Stored, and some times (or some months' views) now resolve differently.
    Changed,
}

/// An email's or device's links. Every link is kept, even one that repeats
/// its predecessor's target: a late link inserted between two of them must
/// end where the next one begins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkTimeline {
    links: Vec<Link>,
}

impl LinkTimeline {
    /// What inserting `target` at `key` would do, without doing it.
    pub fn classify(&self, key: &EventOrder, target: &Identifier) -> LinkInsert {
        match self.links.binary_search_by(|l| l.key.cmp(key)) {
            Ok(_) => LinkInsert::Duplicate,
            // A new first link changes which months see any link at all,
            // so it always counts as a change.
            Err(0) => LinkInsert::Changed,
            Err(pos) if self.links[pos - 1].target == *target => LinkInsert::Redundant,
            Err(_) => LinkInsert::Changed,
        }
    }

    pub fn insert(&mut self, link: Link) -> LinkInsert {
        let outcome = self.classify(&link.key, &link.target);
        if outcome != LinkInsert::Duplicate {
            let pos = self.links.partition_point(|l| l.key < link.key);
            self.links.insert(pos, link);
        }
        outcome
    }

    /// A timeline of stored links, put in (time, message_id) order.
    pub fn from_links(mut links: Vec<Link>) -> LinkTimeline {
        links.sort_by(|a, b| a.key.cmp(&b.key));
        links.dedup_by(|a, b| a.key == b.key);
        LinkTimeline { links }
    }

    /// Drops the links `forget` names (an erased person's); says whether
    /// any went.
    pub fn remove_links(&mut self, mut forget: impl FnMut(&Link) -> bool) -> bool {
        let before = self.links.len();
        self.links.retain(|l| !forget(l));
        self.links.len() != before
    }

    pub fn links(&self) -> &[Link] {
        &self.links
    }

    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }

    /// The direct target at `time`: the latest link at or before it, or, before
    /// the first link, the first link's (a visitor's history before signing
    /// in is adopted by the user it first signs in as).
    pub fn target_at(&self, time: EventTime) -> Option<&Identifier> {
        self.target_at_within(time, EventTime::MAX)
    }

    /// Like [`Self::target_at`], seeing only links dated before `horizon`.
    pub fn target_at_within(&self, time: EventTime, horizon: EventTime) -> Option<&Identifier> {
        let first = self.links.first().filter(|l| l.key.time < horizon)?;
        let at_or_before = self
            .links
            .partition_point(|l| l.key.time <= time && l.key.time < horizon);
        match at_or_before {
            0 => Some(&first.target),
            n => self.links.get(n - 1).map(|l| &l.target),
        }
    }

    /// The target now: the latest link's.
    pub fn latest(&self) -> Option<&Identifier> {
        self.links.last().map(|l| &l.target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(time: EventTime, mid: &str, user: &str) -> Link {
        Link {
            key: EventOrder {
                time,
                message_id: mid.into(),
            },
            target: Identifier::user(user),
        }
    }

    #[test]
    fn shared_device_splits_by_time() {
        let mut t = LinkTimeline::default();
        assert_eq!(t.insert(link(10, "a", "u1")), LinkInsert::Changed);
        assert_eq!(t.insert(link(20, "b", "u2")), LinkInsert::Changed);
        assert_eq!(
            t.target_at(5),
            Some(&Identifier::user("u1")),
            "before first link: first target"
        );
        assert_eq!(t.target_at(10), Some(&Identifier::user("u1")));
        assert_eq!(t.target_at(19), Some(&Identifier::user("u1")));
        assert_eq!(t.target_at(20), Some(&Identifier::user("u2")));
        assert_eq!(t.latest(), Some(&Identifier::user("u2")));
    }

    #[test]
    fn ties_are_broken_by_message_id() {
        let mut t = LinkTimeline::default();
        t.insert(link(10, "b", "u2"));
        t.insert(link(10, "a", "u1"));
        assert_eq!(t.target_at(10), Some(&Identifier::user("u2")));
        assert_eq!(t.target_at(9), Some(&Identifier::user("u1")));
    }

    #[test]
    fn repeated_target_is_redundant_but_kept() {
        let mut t = LinkTimeline::default();
        t.insert(link(10, "a", "u1"));
        assert_eq!(t.insert(link(30, "c", "u1")), LinkInsert::Redundant);
        assert_eq!(t.insert(link(30, "c", "u1")), LinkInsert::Duplicate);
        // A late link between them ends where the kept one begins.
        assert_eq!(t.insert(link(20, "b", "u2")), LinkInsert::Changed);
        assert_eq!(t.target_at(25), Some(&Identifier::user("u2")));
        assert_eq!(t.target_at(30), Some(&Identifier::user("u1")));
    }

    #[test]
    fn horizon_hides_later_links() {
        let mut t = LinkTimeline::default();
        t.insert(link(10, "a", "u1"));
        t.insert(link(20, "b", "u2"));
        assert_eq!(t.target_at_within(5, 10), None);
        assert_eq!(t.target_at_within(5, 11), Some(&Identifier::user("u1")));
        assert_eq!(t.target_at_within(15, 20), Some(&Identifier::user("u1")));
        assert_eq!(t.target_at_within(15, 21), Some(&Identifier::user("u1")));
    }
}
