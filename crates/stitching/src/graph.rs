//! The identity graph of one workspace: every email's and device's timeline,
//! and who links to whom, so a profile can find the identifiers that may
//! resolve to it.

use std::collections::{BTreeSet, HashMap};

use idfold_events::{EventOrder, EventTime, Identifier, IdentifierKind};

use crate::timeline::{Link, LinkInsert, LinkTimeline};

/// The links an event asserts, as (from, to): a device to the user it carries
/// (or, with no user, to the email), and an email to the user it carries.
/// Never from a user: users are never linked, so never merged.
pub fn asserted_links(
    user_id: Option<&str>,
    email: Option<&str>,
    anonymous_id: Option<&str>,
) -> Vec<(Identifier, Identifier)> {
    let mut links = Vec::with_capacity(2);
    let user = user_id.map(Identifier::user);
    let email = email.map(Identifier::email);
    if let Some(device) = anonymous_id {
        if let Some(to) = user.clone().or_else(|| email.clone()) {
            links.push((Identifier::anonymous(device), to));
        }
    }
    if let (Some(email), Some(user)) = (email, user) {
        links.push((email, user));
    }
    links
}

/// Device -> email -> user is the longest chain; the bound only guards the loop.
pub const MAX_HOPS: usize = 3;

/// Follows `step` from `id`'s timeline to the next identifier's until one
/// has none: whose `id` is, with each hop's timeline from `timeline_of`
/// (which may hold only the timelines this walk can reach).
pub fn follow<'a>(
    id: &Identifier,
    timeline_of: impl Fn(&Identifier) -> Option<&'a LinkTimeline>,
    step: impl Fn(&'a LinkTimeline) -> Option<&'a Identifier>,
) -> Identifier {
    let mut current: Option<&'a Identifier> = None;
    for _ in 0..MAX_HOPS {
        let at = current.unwrap_or(id);
        match timeline_of(at).and_then(&step) {
            Some(next) => current = Some(next),
            None => break,
        }
    }
    current.unwrap_or(id).clone()
}

#[derive(Debug, Clone, Default)]
pub struct IdentityGraph {
    timelines: HashMap<Identifier, LinkTimeline>,
    /// target -> the identifiers with at least one link to it.
    referrers: HashMap<Identifier, BTreeSet<Identifier>>,
}

impl IdentityGraph {
    /// Adds `from -> to` at `key`. A link that would not point to a stronger
    /// kind (device -> email/user, email -> user) is refused as a duplicate
    /// would be: `asserted_links` never makes one.
    pub fn insert_link(&mut self, from: Identifier, to: Identifier, key: EventOrder) -> LinkInsert {
        if from.kind == IdentifierKind::User || to.kind >= from.kind {
            return LinkInsert::Duplicate;
        }
        let timeline = self.timelines.entry(from.clone()).or_default();
        let outcome = timeline.insert(Link {
            key,
            target: to.clone(),
        });
        if outcome != LinkInsert::Duplicate {
            self.referrers.entry(to).or_default().insert(from);
        }
        outcome
    }

    /// What [`Self::insert_link`] would do, without doing it.
    pub fn classify_link(
        &self,
        from: &Identifier,
        to: &Identifier,
        key: &EventOrder,
    ) -> LinkInsert {
        if from.kind == IdentifierKind::User || to.kind >= from.kind {
            return LinkInsert::Duplicate;
        }
        match self.timelines.get(from) {
            Some(timeline) => timeline.classify(key, to),
            None => LinkInsert::Changed,
        }
    }

    /// Whose `id` is at `time`, under every link known now.
    pub fn resolve_identity(&self, id: &Identifier, time: EventTime) -> Identifier {
        self.resolve_within(id, time, EventTime::MAX)
    }

    /// Whose `id` is at `time`, seeing only links dated before `horizon`
    /// (MAU: a month is resolved with the links made before its end).
    pub fn resolve_within(
        &self,
        id: &Identifier,
        time: EventTime,
        horizon: EventTime,
    ) -> Identifier {
        self.follow(id, |t| t.target_at_within(time, horizon))
    }

    /// Whose `id` is now: following each latest link.
    pub fn resolve_now(&self, id: &Identifier) -> Identifier {
        self.follow(id, LinkTimeline::latest)
    }

    /// Follows `step` from timeline to timeline until an identifier has none.
    fn follow<'a>(
        &'a self,
        id: &'a Identifier,
        step: impl Fn(&'a LinkTimeline) -> Option<&'a Identifier>,
    ) -> Identifier {
        follow(id, |at| self.timelines.get(at), step)
    }

    /// Every identifier with links of its own (emails and devices).
    pub fn linked(&self) -> impl Iterator<Item = &Identifier> {
        self.timelines.keys()
    }

    pub fn timeline(&self, id: &Identifier) -> Option<&LinkTimeline> {
        self.timelines.get(id)
    }

    pub fn has_links(&self, id: &Identifier) -> bool {
        self.timelines.get(id).is_some_and(|t| !t.is_empty())
    }

    /// The identifiers with a direct link to `target`.
    pub fn referrers(&self, target: &Identifier) -> impl Iterator<Item = &Identifier> {
        self.referrers.get(target).into_iter().flatten()
    }

    /// Every identifier that may resolve to `target` at some time: itself,
    /// what links to it, and what links to those (device -> email -> user).
    pub fn candidates(&self, target: &Identifier) -> BTreeSet<Identifier> {
        let mut out = BTreeSet::new();
        out.insert(target.clone());
        for direct in self.referrers(target) {
            out.insert(direct.clone());
            out.extend(self.referrers(direct).cloned());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(time: EventTime, mid: &str) -> EventOrder {
        EventOrder {
            time,
            message_id: mid.into(),
        }
    }

    #[test]
    fn device_resolves_through_email_to_user() {
        let mut g = IdentityGraph::default();
        let d = Identifier::anonymous("d");
        let e = Identifier::email("a@b.co");
        let u = Identifier::user("u");
        g.insert_link(d.clone(), e.clone(), key(10, "m1"));
        assert_eq!(g.resolve_identity(&d, 0), e);
        g.insert_link(e.clone(), u.clone(), key(50, "m2"));
        assert_eq!(
            g.resolve_identity(&d, 0),
            u,
            "targets resolve again at the same time"
        );
        assert_eq!(g.resolve_now(&d), u);
        // Before the email's link was made, a month's view still sees the email.
        assert_eq!(g.resolve_within(&d, 20, 40), e);
        assert_eq!(
            g.resolve_within(&d, 5, 10),
            d,
            "no link before the horizon: itself"
        );
        assert_eq!(g.candidates(&u), [u.clone(), e, d].into_iter().collect());
    }

    #[test]
    fn events_assert_device_and_email_links() {
        let d = Identifier::anonymous("d");
        let e = Identifier::email("a@b.co");
        let u = Identifier::user("u");
        assert_eq!(
            asserted_links(Some("u"), Some("a@b.co"), Some("d")),
            vec![(d.clone(), u.clone()), (e.clone(), u)]
        );
        assert_eq!(
            asserted_links(None, Some("a@b.co"), Some("d")),
            vec![(d, e)]
        );
        assert_eq!(asserted_links(Some("u"), None, None), vec![]);
    }

    #[test]
    fn users_are_never_linked() {
        let mut g = IdentityGraph::default();
        let u1 = Identifier::user("u1");
        let u2 = Identifier::user("u2");
        assert_eq!(
            g.insert_link(u1.clone(), u2, key(1, "m")),
            LinkInsert::Duplicate
        );
        assert_eq!(g.resolve_identity(&u1, 1), u1);
    }

    fn arb_link() -> impl Strategy<Value = (Identifier, Identifier, EventOrder)> {
        let device = (0..4u8).prop_map(|i| Identifier::anonymous(format!("d{i}")));
        let email = (0..3u8).prop_map(|i| Identifier::email(format!("e{i}@x.io")));
        let user = (0..3u8).prop_map(|i| Identifier::user(format!("u{i}")));
        let from_to = prop_oneof![
            (device.clone(), user.clone()),
            (device, email.clone()),
            (email, user),
        ];
        (from_to, 0..100i64, 0..1000u32)
            .prop_map(|((f, t), time, mid)| (f, t, key(time, &format!("m{mid}"))))
    }

    proptest! {
        /// The graph is a function of the set of links: any insertion order
        /// resolves every identifier the same way at every time, and users
        /// always resolve to themselves.
        #[test]
        fn order_of_links_does_not_matter(links in prop::collection::vec(arb_link(), 0..30), seed in any::<u64>()) {
            let mut a = IdentityGraph::default();
            for (f, t, k) in &links { a.insert_link(f.clone(), t.clone(), k.clone()); }
            let mut shuffled = links.clone();
            // Deterministic shuffle from the seed.
            let n = shuffled.len();
            for i in (1..n).rev() {
                let j = (seed.rotate_left(i as u32) as usize) % (i + 1);
                shuffled.swap(i, j);
            }
            let mut b = IdentityGraph::default();
            for (f, t, k) in &shuffled { b.insert_link(f.clone(), t.clone(), k.clone()); }
            for (f, t, _) in &links {
                for id in [f, t] {
                    for time in [-1, 0, 25, 50, 99, 200] {
                        prop_assert_eq!(a.resolve_identity(id, time), b.resolve_identity(id, time));
                        prop_assert_eq!(a.resolve_within(id, time, 60), b.resolve_within(id, time, 60));
                        let r = a.resolve_identity(id, time);
                        prop_assert!(r.kind <= id.kind);
                        if id.kind == IdentifierKind::User { prop_assert_eq!(&r, id); }
                    }
                    prop_assert_eq!(a.resolve_now(id), b.resolve_now(id));
                }
            }
        }
    }
}
