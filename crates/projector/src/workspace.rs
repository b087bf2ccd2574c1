//! One workspace's fold: dedup, stitching, profiles and MAU, kept so that
//! the state is a function of the set of accepted events whatever the order.
//! Each identifier keeps the events it was the subject of, so a late link
//! can move them to another profile (or another month's target).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use idfold_events::{
    format_nanos, month_end_nanos, month_of, ErasureRequest, EventTime, Identifier, IdentifierKind,
    Month, SurveyAction,
};
use idfold_stitching::{asserted_links, IdentityGraph, LinkInsert};
use serde_json::Value;

use crate::erasure::{ErasureRecord, RetainedMau};
use crate::mau::{MauRow, MonthlyActiveUsers};
use crate::profile::ProfileAggregate;
use crate::record::FoldRecord;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Folded,
    /// A message_id already folded in this workspace: dropped (first wins).
    Duplicate,
    /// A message_id of an erased person's event: dropped for good.
    Forgotten,
}

/// What the store must write after a run of `apply`.
#[derive(Debug, Default)]
pub struct WorkspaceChanges {
    /// The newly folded records, one JSON object per line.
    pub new_records: Vec<u8>,
    /// Profile id -> its JSON bytes, or None where it no longer exists.
    pub profiles: Vec<(Identifier, Option<Vec<u8>>)>,
    /// Email or device -> the profile it resolves to now, or None where
    /// it is no longer known (erased).
    pub identifiers: Vec<(Identifier, Option<Identifier>)>,
    pub months: Vec<MauRow>,
    /// Erasures applied: the store keeps them and drops their events from
    /// the workspace's stored chunks.
    pub erasures: Vec<ErasureRecord>,
}

#[derive(Debug, Default)]
struct Dirty {
    new_records: Vec<u8>,
    profiles: BTreeSet<Identifier>,
    identifiers: BTreeSet<Identifier>,
    months: BTreeSet<Month>,
    erasures: Vec<ErasureRecord>,
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
    /// Message ids of erased people's events, and the erasures applied.
    forgotten: HashSet<String>,
    erasure_ids: HashSet<String>,
    /// What erased people still count for, per month.
    retained: BTreeMap<Month, RetainedMau>,
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
        if self.forgotten.contains(&record.message_id) {
            return Applied::Forgotten;
        }
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
        let row = self.mau.row(&self.workspace_id, month);
        match self.retained.get(&month) {
            Some(retained) => retained.added_to(row),
            None => row,
        }
    }

    /// Every month with at least one event (or an erased person's), ascending.
    pub fn mau_rows(&self) -> Vec<MauRow> {
        let months: BTreeSet<Month> = self
            .mau
            .months()
            .chain(self.retained.keys().copied())
            .collect();
        months.into_iter().map(|m| self.mau_row(m)).collect()
    }

    /// Whether the erasure `erasure_id` is applied already (a re-delivered
    /// or replayed request changes nothing).
    pub fn has_erasure(&self, erasure_id: &str) -> bool {
        self.erasure_ids.contains(erasure_id)
    }

    /// Applies a stored erasure on load: its events are dropped when seen,
    /// its MAU contributions counted.
    pub fn load_erasure(&mut self, record: &ErasureRecord) {
        if !self.erasure_ids.insert(record.erasure_id.clone()) {
            return;
        }
        self.forgotten.extend(record.message_ids.iter().cloned());
        for (month, retained) in record.retained_months() {
            self.retained.entry(month).or_default().add(retained);
        }
    }

    /// Forgets the person `request.profile` resolves to now: every event
    /// placed in their profile, and so their traits, responses and links to
    /// emails and devices. What is left is refolded, so it is exactly the
    /// fold of the remaining events; each month's MAU keeps the count it had.
    pub fn erase(&mut self, request: &ErasureRequest) -> ErasureRecord {
        let profile = self.graph.resolve_now(&request.profile);
        let (emails, devices) = self.identifiers_resolving_to(&profile);
        let mut forgotten = BTreeSet::new();
        let mut responses = BTreeSet::new();
        for candidate in self.graph.candidates(&profile) {
            for entry in self.histories.get(&candidate).into_iter().flatten() {
                if self.graph.resolve_identity(&candidate, entry.time) != profile {
                    continue;
                }
                let Some(record) = entry.decode() else {
                    continue;
                };
                if let Some(step) = &record.survey {
                    if step.action == SurveyAction::Responded {
                        responses.insert((step.survey_id.clone(), step.response_id.clone()));
                    }
                }
                forgotten.insert(record.message_id);
            }
        }

        let months_before = self.mau_rows();
        let profiles_before = self.rendered_profiles();
        let identifiers_before = self.identifier_targets();

        let mut rest = WorkspaceState::new(&self.workspace_id);
        rest.forgotten = std::mem::take(&mut self.forgotten);
        rest.forgotten.extend(forgotten.iter().cloned());
        rest.erasure_ids = std::mem::take(&mut self.erasure_ids);
        rest.erasure_ids.insert(request.erasure_id.clone());
        rest.retained = std::mem::take(&mut self.retained);
        for entry in self.histories.values().flatten() {
            if let Some(record) = entry.decode() {
                rest.apply(record);
            }
        }
        // What was pending for the store still is, minus the forgotten events.
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.new_records = keep_lines(&dirty.new_records, &forgotten);
        rest.dirty = dirty;

        let mut record = ErasureRecord {
            erasure_id: request.erasure_id.clone(),
            requested_at: format_nanos(request.requested_at),
            events: forgotten.len() as u64,
            responses: responses.len() as u64,
            emails: emails.len() as u64,
            devices: devices.len() as u64,
            message_ids: forgotten.into_iter().collect(),
            retained: BTreeMap::new(),
            log_purged: false,
        };
        for before in months_before {
            let Some(month) = idfold_events::parse_month(&before.month) else {
                continue;
            };
            let after = rest.mau_row(month);
            let delta = RetainedMau {
                identified: i64_of(before.identified) - i64_of(after.identified),
                anonymous: i64_of(before.anonymous) - i64_of(after.anonymous),
            };
            // A month only the person made (even one of zeros: a device's
            // page views) stays listed, with what it counted.
            let gone =
                !rest.mau.months().any(|m| m == month) && !rest.retained.contains_key(&month);
            if !delta.is_zero() || gone {
                rest.retained.entry(month).or_default().add(delta);
                record.retained.insert(before.month, delta);
            }
        }
        let profiles_after = rest.rendered_profiles();
        for id in profiles_before.keys().chain(profiles_after.keys()) {
            if profiles_before.get(id) != profiles_after.get(id) {
                rest.dirty.profiles.insert(id.clone());
            }
        }
        let identifiers_after = rest.identifier_targets();
        for id in identifiers_before.keys().chain(identifiers_after.keys()) {
            if identifiers_before.get(id) != identifiers_after.get(id) {
                rest.dirty.identifiers.insert(id.clone());
            }
        }
        rest.dirty.erasures.push(record.clone());
        *self = rest;
        record
    }

    /// Every profile's stored bytes.
    fn rendered_profiles(&self) -> HashMap<Identifier, Vec<u8>> {
        self.profiles
            .keys()
            .filter_map(|id| Some((id.clone(), self.profile_bytes(id)?)))
            .collect()
    }

    /// Every known email and device -> the profile it resolves to now.
    fn identifier_targets(&self) -> HashMap<Identifier, Identifier> {
        self.histories
            .keys()
            .chain(self.graph.linked())
            .filter(|id| id.kind != IdentifierKind::User)
            .map(|id| (id.clone(), self.graph.resolve_now(id)))
            .collect()
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
                    let now = self.is_known(&id).then(|| self.graph.resolve_now(&id));
                    (id, now)
                })
                .collect(),
            months: dirty.months.into_iter().map(|m| self.mau_row(m)).collect(),
            erasures: dirty.erasures,
        }
    }

    /// Forgets pending changes (after loading state that is already stored).
    pub fn discard_changes(&mut self) {
        self.dirty = Dirty::default();
    }
}

fn i64_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The JSON lines of `records` whose message id is not in `forgotten`.
pub(crate) fn keep_lines(records: &[u8], forgotten: &BTreeSet<String>) -> Vec<u8> {
    #[derive(serde::Deserialize)]
    struct MessageId {
        m: String,
    }
    let mut kept = Vec::with_capacity(records.len());
    for line in records.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let id = serde_json::from_slice::<MessageId>(line).map(|r| r.m);
        if !id.is_ok_and(|id| forgotten.contains(&id)) {
            kept.extend_from_slice(line);
            kept.push(b'\n');
        }
    }
    kept
}
