//! One workspace's fold: dedup, stitching, profiles and MAU, kept so that
//! the state is a function of the set of accepted events whatever the order.
//! Each identifier keeps the events it was the subject of, so a late link
//! can move them to another profile (or another month's target).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use idfold_events::{month_end_nanos, month_of, EventTime, Identifier, IdentifierKind, Month};
use idfold_stitching::{asserted_links, IdentityGraph, LinkInsert};
use serde_json::Value;

use crate::mau::{MauRow, MonthlyActiveUsers};
use crate::profile::ProfileAggregate;
use crate::record::FoldRecord;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Folded,
    /// A message_id already folded in this workspace: dropped (first wins).
    Duplicate,
}

/// What the store must write after a run of `apply`.
#[derive(Debug, Default)]
pub struct WorkspaceChanges {
    /// The newly folded records, one JSON object per line.
    pub new_records: Vec<u8>,
    /// Profile id -> its JSON bytes, or None where it no longer exists.
    pub profiles: Vec<(Identifier, Option<Vec<u8>>)>,
    /// Email or device -> the profile it resolves to now.
    pub identifiers: Vec<(Identifier, Identifier)>,
    pub months: Vec<MauRow>,
}

#[derive(Debug, Default)]
struct Dirty {
    new_records: Vec<u8>,
    profiles: BTreeSet<Identifier>,
    identifiers: BTreeSet<Identifier>,
    months: BTreeSet<Month>,
}

#[derive(Debug, Default)]
pub struct WorkspaceState {
    workspace_id: String,
    seen: HashSet<String>,
    graph: IdentityGraph,
    /// subject identifier -> the accepted events it was the subject of.
    histories: HashMap<Identifier, Vec<HistoryEntry>>,
    profiles: HashMap<Identifier, ProfileAggregate>,
    mau: MonthlyActiveUsers,
    dirty: Dirty,
    events: usize,
}

/// One event in its subject's history: what placing it needs, and the
/// record itself encoded (decoded only when a profile is refolded), which
/// keeps a resident event to a few hundred bytes.
#[derive(Debug)]
struct HistoryEntry {
    time: EventTime,
    survey: bool,
    encoded: Box<[u8]>,
}

impl HistoryEntry {
    fn decode(&self) -> Option<FoldRecord> {
        serde_json::from_slice(&self.encoded).ok()
    }
}

/// Where one event counts: its profile (all links) and its month's MAU
/// target (links made before the month's end).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Placement {
    profile: Identifier,
    mau: Identifier,
}

impl WorkspaceState {
    pub fn new(workspace_id: &str) -> WorkspaceState {
        WorkspaceState {
            workspace_id: workspace_id.to_owned(),
            ..WorkspaceState::default()
        }
    }

    pub fn workspace_id(&self) -> &str {
        &self.workspace_id
    }

    /// Accepted events held in memory.
    pub fn event_count(&self) -> usize {
        self.events
    }

    fn place(&self, subject: &Identifier, time: EventTime) -> Placement {
        let horizon = month_end_nanos(month_of(time));
        Placement {
            profile: self.graph.resolve_identity(subject, time),
            mau: self.graph.resolve_within(subject, time, horizon),
        }
    }

    fn is_known(&self, id: &Identifier) -> bool {
        self.histories.contains_key(id) || self.graph.timeline(id).is_some()
    }

    /// Folds one accepted event.
    pub fn apply(&mut self, record: FoldRecord) -> Applied {
        if !self.seen.insert(record.message_id.clone()) {
            return Applied::Duplicate;
        }
        for id in record.identifiers() {
            if id.kind != IdentifierKind::User && !self.is_known(&id) {
                self.dirty.identifiers.insert(id);
            }
        }
        let order = record.order();
        let links = asserted_links(
            record.user_id.as_deref(),
            record.email.as_deref(),
            record.anonymous_id.as_deref(),
        );
        for (from, to) in links {
            match self.graph.classify_link(&from, &to, &order) {
                LinkInsert::Changed => self.relink(from, to, &order),
                LinkInsert::Redundant => {
                    self.graph.insert_link(from, to, order.clone());
                }
                LinkInsert::Duplicate => {}
            }
        }
        let subject = record.subject();
        let placement = self.place(&subject, record.time);
        let month = month_of(record.time);
        self.mau.add(month, &placement.mau, record.is_survey());
        self.dirty.months.insert(month);
        self.profiles
            .entry(placement.profile.clone())
            .or_default()
            .apply(&record);
        self.dirty.profiles.insert(placement.profile);
        // Encoded once: the history keeps these bytes and the store's chunk
        // is the same lines. (Encoding cannot fail: every map key is a
        // string and a serde_json number is always finite.)
        let encoded = serde_json::to_vec(&record).unwrap_or_default();
        self.dirty.new_records.extend_from_slice(&encoded);
        self.dirty.new_records.push(b'\n');
        self.histories
            .entry(subject)
            .or_default()
            .push(HistoryEntry {
                time: record.time,
                survey: record.is_survey(),
                encoded: encoded.into_boxed_slice(),
            });
        self.events += 1;
        Applied::Folded
    }

    /// Inserts a link that changes resolution, and moves what it moves: the
    /// events of `from` (and of devices linked to `from`, when it is an
    /// email) between profiles and MAU targets.
    fn relink(&mut self, from: Identifier, to: Identifier, order: &idfold_events::EventOrder) {
        let mut affected = vec![from.clone()];
        if from.kind == IdentifierKind::Email {
            affected.extend(self.graph.referrers(&from).cloned());
        }
        let before: Vec<(Identifier, Vec<Placement>)> = affected
            .iter()
            .map(|id| {
                let placements = self.histories.get(id).map_or_else(Vec::new, |h| {
                    h.iter().map(|e| self.place(id, e.time)).collect()
                });
                (id.clone(), placements)
            })
            .collect();
        let now_before: Vec<Identifier> = affected
            .iter()
            .map(|id| self.graph.resolve_now(id))
            .collect();

        self.graph.insert_link(from, to, order.clone());

        let mut moved_profiles = BTreeSet::new();
        for (id, old) in &before {
            let Some(history) = self.histories.get(id) else {
                continue;
            };
            for (entry, old) in history.iter().zip(old) {
                let new = self.place(id, entry.time);
                if new.mau != old.mau {
                    let month = month_of(entry.time);
                    self.mau.remove(month, &old.mau, entry.survey);
                    self.mau.add(month, &new.mau, entry.survey);
                    self.dirty.months.insert(month);
                }
                if new.profile != old.profile {
                    moved_profiles.insert(old.profile.clone());
                    moved_profiles.insert(new.profile);
                }
            }
        }
        for (id, old_now) in affected.iter().zip(now_before) {
            let new_now = self.graph.resolve_now(id);
            if new_now != old_now {
                self.dirty.identifiers.insert(id.clone());
                self.dirty.profiles.insert(old_now);
                self.dirty.profiles.insert(new_now);
            }
        }
        for target in moved_profiles {
            self.recompute_profile(target);
        }
    }

    /// Refolds one profile from the histories of every identifier that may
    /// resolve to it.
    fn recompute_profile(&mut self, target: Identifier) {
        let mut aggregate = ProfileAggregate::default();
        for candidate in self.graph.candidates(&target) {
            for entry in self.histories.get(&candidate).into_iter().flatten() {
                if self.graph.resolve_identity(&candidate, entry.time) == target {
                    if let Some(record) = entry.decode() {
                        aggregate.apply(&record);
                    }
                }
            }
        }
        if aggregate.is_empty() {
            self.profiles.remove(&target);
        } else {
            self.profiles.insert(target.clone(), aggregate);
        }
        self.dirty.profiles.insert(target);
    }

    /// The profile JSON of `id`, if any event resolves to it.
    pub fn profile_json(&self, id: &Identifier) -> Option<Value> {
        let (emails, devices) = self.identifiers_resolving_to(id);
        Some(
            self.profiles
                .get(id)?
                .render(&self.workspace_id, id, emails, devices),
        )
    }

    /// The same, as the bytes the store keeps.
    pub fn profile_bytes(&self, id: &Identifier) -> Option<Vec<u8>> {
        let (emails, devices) = self.identifiers_resolving_to(id);
        Some(
            self.profiles
                .get(id)?
                .render_bytes(&self.workspace_id, id, emails, devices),
        )
    }

    /// The emails and devices that resolve to `id` now.
    fn identifiers_resolving_to(&self, id: &Identifier) -> (Vec<String>, Vec<String>) {
        let mut emails = Vec::new();
        let mut devices = Vec::new();
        for candidate in self.graph.candidates(id) {
            if self.graph.resolve_now(&candidate) != *id {
                continue;
            }
            match candidate.kind {
                IdentifierKind::Email => emails.push(candidate.value),
                IdentifierKind::Anonymous => devices.push(candidate.value),
                IdentifierKind::User => {}
            }
        }
        (emails, devices)
    }

    pub fn resolve_now(&self, id: &Identifier) -> Identifier {
        self.graph.resolve_now(id)
    }

    pub fn mau_row(&self, month: Month) -> MauRow {
        self.mau.row(&self.workspace_id, month)
    }

    /// Every month with at least one event, ascending.
    pub fn mau_rows(&self) -> Vec<MauRow> {
        self.mau.months().map(|m| self.mau_row(m)).collect()
    }

    /// Every profile id, sorted.
    pub fn profile_ids(&self) -> Vec<Identifier> {
        let ids: BTreeMap<String, &Identifier> = self
            .profiles
            .keys()
            .map(|id| (id.to_string(), id))
            .collect();
        ids.into_values().cloned().collect()
    }

    /// Drains what changed since the last call, rendered for the store.
    pub fn take_changes(&mut self) -> WorkspaceChanges {
        let dirty = std::mem::take(&mut self.dirty);
        WorkspaceChanges {
            new_records: dirty.new_records,
            profiles: dirty
                .profiles
                .into_iter()
                .map(|id| {
                    let json = self.profile_bytes(&id);
                    (id, json)
                })
                .collect(),
            identifiers: dirty
                .identifiers
                .into_iter()
                .map(|id| {
                    let now = self.graph.resolve_now(&id);
                    (id, now)
                })
                .collect(),
            months: dirty.months.into_iter().map(|m| self.mau_row(m)).collect(),
        }
    }

    /// Forgets pending changes (after loading state that is already stored).
    pub fn discard_changes(&mut self) {
        self.dirty = Dirty::default();
    }
}
