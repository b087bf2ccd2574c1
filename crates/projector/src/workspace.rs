//! One workspace's fold rules: dedupe, stitching, profiles and MAU, kept so
//! that the state is a function of the set of accepted events whatever the
//! order. The rules read only what an event touches (its identifiers'
//! nodes, the targets it lands on, its month) through a [`StateReader`],
//! and hand back what changed with [`WorkspaceState::take_changes`]; no
//! workspace is ever loaded whole.
//!
//! A user's events never move (users are never merged): they are folded
//! into the user's own contribution and only their hashes kept. An email's
//! or device's events can move when a late link arrives: they are kept in
//! its history, read only when a link changes where it resolves.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use idfold_events::{
    format_nanos, month_end_nanos, month_of, ErasureRequest, EventOrder, EventTime, Identifier,
    IdentifierKind, Month,
};
use idfold_stitching::{asserted_links, follow, Link, LinkInsert, LinkTimeline, MAX_HOPS};

use crate::erasure::{ErasureRecord, RetainedMau};
use crate::error::ProjectorError;
use crate::mau::{adjust_activity, remove_activity, MauRow, MonthCounts};
use crate::profile::ProfileAggregate;
use crate::record::FoldRecord;
use crate::state::{
    decode_node, decode_target, encode_hashes, encode_history_record, encode_node, encode_target,
    MessageHash, NodeRecord, SeenMark, TargetRecord,
};
use crate::view::ProfileView;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Folded,
    /// A message_id already folded in this workspace: dropped (first wins).
    Duplicate,
    /// A message_id of an erased person's event: dropped for good.
    Forgotten,
}

/// Where the rules read the state they do not hold: the store, or a map
/// in a test.
pub trait StateReader {
    /// An identifier's node, encoded.
    fn node(&self, workspace: &str, id: &Identifier) -> Result<Option<Vec<u8>>, ProjectorError>;
    /// A target's record, encoded.
    fn target(&self, workspace: &str, id: &Identifier) -> Result<Option<Vec<u8>>, ProjectorError>;
    /// An email's or device's kept events, in the order they were folded.
    fn history(&self, workspace: &str, id: &Identifier) -> Result<Vec<FoldRecord>, ProjectorError>;
    /// The hashes of a user's events.
    fn user_events(
        &self,
        workspace: &str,
        user: &Identifier,
    ) -> Result<Vec<MessageHash>, ProjectorError>;
    fn seen(&self, workspace: &str, hash: MessageHash) -> Result<Option<SeenMark>, ProjectorError>;
    fn month(&self, workspace: &str, month: Month) -> Result<Option<MonthCounts>, ProjectorError>;
}

/// What the store must write after a run of `apply`, encoded.
#[derive(Debug, Default)]
pub struct WorkspaceChanges {
    /// Profile id -> its JSON bytes, or None where it no longer exists;
    /// rendered only when asked for (the Kafka profile topic).
    pub profiles: Vec<(Identifier, Option<Vec<u8>>)>,
    /// The changed months' MAU rows.
    pub months: Vec<MauRow>,
    /// Erasures applied: the store keeps them.
    pub erasures: Vec<ErasureRecord>,
    pub(crate) month_counts: Vec<(Month, Option<MonthCounts>)>,
    pub(crate) nodes: Vec<(Identifier, Option<Vec<u8>>)>,
    pub(crate) targets: Vec<(Identifier, Option<Vec<u8>>)>,
    /// Email or device -> the profile it resolves to now, or None where it
    /// is no longer known (erased).
    pub(crate) identifiers: Vec<(Identifier, Option<Identifier>)>,
    pub(crate) seen: Vec<(MessageHash, SeenMark)>,
    /// New history records per email or device; `true` where the whole
    /// history is replaced by them (an erasure dropped some).
    pub(crate) history: Vec<(Identifier, Vec<u8>, bool)>,
    /// New event hashes per user; `true` where the user's are dropped first.
    pub(crate) user_events: Vec<(Identifier, Vec<u8>, bool)>,
}

/// What a cached entry weighs beyond its stored bytes: its key, the map's
/// slot, the allocation.
const ENTRY_OVERHEAD: usize = 96;

/// A cached entry. Between batches only its bytes as stored stay, so the
/// budget weighs exactly what is kept; a batch decodes what it touches
/// (its working set, dropped when its changes are taken).
#[derive(Debug)]
struct Cached<T> {
    /// As the store holds it; None: absent from the store.
    stored: Option<Vec<u8>>,
    /// Decoded in this batch (None: not yet); `Some(None)`: absent.
    decoded: Option<Option<T>>,
    last_used: u64,
}

impl<T> Cached<T> {
    fn bytes(&self, key: &Identifier) -> usize {
        ENTRY_OVERHEAD + key.value.len() + self.stored.as_ref().map_or(0, Vec::len)
    }
}

/// Makes `id`'s entry decoded for this batch, reading it from the store
/// when it is not cached; says whether it was decoded now.
fn load_entry<T>(
    cache: &mut HashMap<Identifier, Cached<T>>,
    id: &Identifier,
    batch: u64,
    fetch: impl FnOnce() -> Result<Option<Vec<u8>>, ProjectorError>,
    decode: fn(&[u8]) -> Result<T, String>,
) -> Result<bool, ProjectorError> {
    let cached = match cache.entry(id.clone()) {
        std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
        std::collections::hash_map::Entry::Vacant(entry) => entry.insert(Cached {
            stored: fetch()?,
            decoded: None,
            last_used: batch,
        }),
    };
    cached.last_used = batch;
    if cached.decoded.is_some() {
        return Ok(false);
    }
    let value = cached
        .stored
        .as_deref()
        .map(decode)
        .transpose()
        .map_err(|detail| ProjectorError::Corrupt {
            key: id.to_string(),
            detail,
        })?;
    cached.decoded = Some(value);
    Ok(true)
}

/// The decoded value of `id` (loaded in this batch), created when absent.
fn entry_mut<'a, T: Default>(
    cache: &'a mut HashMap<Identifier, Cached<T>>,
    id: &Identifier,
    batch: u64,
) -> &'a mut T {
    let cached = cache.entry(id.clone()).or_insert(Cached {
        stored: None,
        decoded: None,
        last_used: batch,
    });
    debug_assert!(
        cached.decoded.is_some() || cached.stored.is_none(),
        "{id} changed unread"
    );
    cached
        .decoded
        .get_or_insert(None)
        .get_or_insert_with(T::default)
}

#[derive(Debug, Default)]
struct Pending {
    seen: HashMap<MessageHash, SeenMark>,
    history: BTreeMap<Identifier, Vec<FoldRecord>>,
    history_replaced: BTreeMap<Identifier, Vec<FoldRecord>>,
    user_events: BTreeMap<Identifier, Vec<MessageHash>>,
    user_events_dropped: BTreeSet<Identifier>,
    nodes: BTreeSet<Identifier>,
    targets: BTreeSet<Identifier>,
    profiles: BTreeSet<Identifier>,
    months: BTreeSet<Month>,
    identifiers: BTreeSet<Identifier>,
    erasures: Vec<ErasureRecord>,
    /// Months' counts before an erasure changed them.
    months_before: Option<BTreeMap<Month, MonthCounts>>,
}

/// Where one event counts: its profile (all links) and its month's MAU
/// target (links made before the month's end).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Placement {
    profile: Identifier,
    mau: Identifier,
}

#[derive(Debug)]
pub struct WorkspaceState {
    workspace_id: String,
    nodes: HashMap<Identifier, Cached<NodeRecord>>,
    targets: HashMap<Identifier, Cached<TargetRecord>>,
    months: HashMap<Month, MonthCounts>,
    /// Identifiers whose chain of nodes is loaded in this batch.
    chains: HashSet<Identifier>,
    /// The entries decoded in this batch (dropped to their bytes after it).
    decoded_nodes: Vec<Identifier>,
    decoded_targets: Vec<Identifier>,
    erasure_ids: HashSet<String>,
    /// What erased people still count for, per month.
    retained: BTreeMap<Month, RetainedMau>,
    /// The current batch, for least-recently-used eviction.
    batch: u64,
    pending: Pending,
}

impl WorkspaceState {
    /// A workspace with its stored erasures applied.
    pub fn new(workspace_id: &str, erasures: &[ErasureRecord]) -> WorkspaceState {
        let mut state = WorkspaceState {
            workspace_id: workspace_id.to_owned(),
            nodes: HashMap::new(),
            targets: HashMap::new(),
            months: HashMap::new(),
            chains: HashSet::new(),
            decoded_nodes: Vec::new(),
            decoded_targets: Vec::new(),
            erasure_ids: HashSet::new(),
            retained: BTreeMap::new(),
            batch: 0,
            pending: Pending::default(),
        };
        for record in erasures {
            if state.erasure_ids.insert(record.erasure_id.clone()) {
                for (month, retained) in record.retained_months() {
                    state.retained.entry(month).or_default().add(retained);
                }
            }
        }
        state
    }

    pub fn workspace_id(&self) -> &str {
        &self.workspace_id
    }

    /// Starts a batch: what is cached stays, what was loaded for chains is
    /// walked again as needed.
    pub fn begin_batch(&mut self, batch: u64) {
        self.batch = batch;
        self.chains.clear();
    }

    /// Bytes held in cached nodes and targets (their encoded sizes).
    pub fn resident_bytes(&self) -> usize {
        self.nodes.iter().map(|(k, c)| c.bytes(k)).sum::<usize>()
            + self.targets.iter().map(|(k, c)| c.bytes(k)).sum::<usize>()
    }

    /// Cached entries with their last use, for eviction across workspaces.
    pub fn cache_ages(&self) -> Vec<(u64, usize)> {
        self.nodes
            .iter()
            .map(|(k, c)| (c.last_used, c.bytes(k)))
            .chain(self.targets.iter().map(|(k, c)| (c.last_used, c.bytes(k))))
            .collect()
    }

    /// Drops cached entries last used before `batch` (all are clean
    /// between batches); returns the bytes freed.
    pub fn evict_before(&mut self, batch: u64) -> usize {
        let mut freed = 0;
        self.nodes.retain(|k, c| {
            let keep = c.last_used >= batch;
            if !keep {
                freed += c.bytes(k);
            }
            keep
        });
        self.targets.retain(|k, c| {
            let keep = c.last_used >= batch;
            if !keep {
                freed += c.bytes(k);
            }
            keep
        });
        freed
    }

    // --- loading -------------------------------------------------------

    fn load_node(&mut self, r: &dyn StateReader, id: &Identifier) -> Result<(), ProjectorError> {
        let workspace = &self.workspace_id;
        if load_entry(
            &mut self.nodes,
            id,
            self.batch,
            || r.node(workspace, id),
            decode_node,
        )? {
            self.decoded_nodes.push(id.clone());
        }
        Ok(())
    }

    fn load_target(&mut self, r: &dyn StateReader, id: &Identifier) -> Result<(), ProjectorError> {
        let workspace = &self.workspace_id;
        if load_entry(
            &mut self.targets,
            id,
            self.batch,
            || r.target(workspace, id),
            decode_target,
        )? {
            self.decoded_targets.push(id.clone());
        }
        Ok(())
    }

    fn load_month(&mut self, r: &dyn StateReader, month: Month) -> Result<(), ProjectorError> {
        if !self.months.contains_key(&month) {
            let counts = r.month(&self.workspace_id, month)?.unwrap_or_default();
            self.months.insert(month, counts);
        }
        Ok(())
    }

    /// Loads the nodes `id` can resolve through (device -> email -> user).
    fn load_chain(&mut self, r: &dyn StateReader, id: &Identifier) -> Result<(), ProjectorError> {
        if id.kind == IdentifierKind::User || self.chains.contains(id) {
            return Ok(());
        }
        let mut frontier = vec![id.clone()];
        for _ in 0..MAX_HOPS {
            let mut next = BTreeSet::new();
            for at in &frontier {
                self.load_node(r, at)?;
                if let Some(node) = self.node(at) {
                    let mut last: Option<&Identifier> = None;
                    for link in node.timeline.links() {
                        if link.target.kind != IdentifierKind::User && last != Some(&link.target) {
                            next.insert(link.target.clone());
                        }
                        last = Some(&link.target);
                    }
                }
            }
            if next.is_empty() {
                break;
            }
            frontier = next.into_iter().collect();
        }
        self.chains.insert(id.clone());
        Ok(())
    }

    fn node(&self, id: &Identifier) -> Option<&NodeRecord> {
        self.nodes.get(id)?.decoded.as_ref()?.as_ref()
    }

    /// The node of `id` (loaded), created when absent, marked changed.
    fn node_mut(&mut self, id: &Identifier) -> &mut NodeRecord {
        self.pending.nodes.insert(id.clone());
        entry_mut(&mut self.nodes, id, self.batch)
    }

    fn target(&self, id: &Identifier) -> Option<&TargetRecord> {
        self.targets.get(id)?.decoded.as_ref()?.as_ref()
    }

    /// The target record of `id` (loaded), created when absent, marked changed.
    fn target_mut(&mut self, id: &Identifier) -> &mut TargetRecord {
        self.pending.targets.insert(id.clone());
        entry_mut(&mut self.targets, id, self.batch)
    }

    /// Drops `id`'s node (loaded in this batch).
    fn forget_node(&mut self, id: &Identifier) {
        if let Some(cached) = self.nodes.get_mut(id) {
            cached.decoded = Some(None);
        }
        self.pending.nodes.insert(id.clone());
    }

    fn is_known(&self, id: &Identifier) -> bool {
        self.node(id).is_some_and(NodeRecord::is_known)
    }

    fn seen(
        &self,
        r: &dyn StateReader,
        hash: MessageHash,
    ) -> Result<Option<SeenMark>, ProjectorError> {
        match self.pending.seen.get(&hash) {
            Some(mark) => Ok(Some(*mark)),
            None => r.seen(&self.workspace_id, hash),
        }
    }

    /// An email's or device's events: stored, then this batch's.
    fn history(
        &self,
        r: &dyn StateReader,
        id: &Identifier,
    ) -> Result<Vec<FoldRecord>, ProjectorError> {
        let mut records = match self.pending.history_replaced.get(id) {
            Some(kept) => kept.clone(),
            None if self.node(id).is_none_or(|n| !n.has_history) => Vec::new(),
            None => r.history(&self.workspace_id, id)?,
        };
        records.extend(self.pending.history.get(id).into_iter().flatten().cloned());
        Ok(records)
    }

    // --- resolution ----------------------------------------------------

    fn timeline(&self, id: &Identifier) -> Option<&LinkTimeline> {
        self.node(id).map(|n| &n.timeline)
    }

    fn place(&self, subject: &Identifier, time: EventTime) -> Placement {
        let horizon = month_end_nanos(month_of(time));
        Placement {
            profile: follow(subject, |at| self.timeline(at), |t| t.target_at(time)),
            mau: follow(
                subject,
                |at| self.timeline(at),
                |t| t.target_at_within(time, horizon),
            ),
        }
    }

    fn resolve_now(&self, id: &Identifier) -> Identifier {
        follow(id, |at| self.timeline(at), LinkTimeline::latest)
    }

    // --- the rules -------------------------------------------------------

    /// Folds one accepted event.
    pub fn apply(
        &mut self,
        r: &dyn StateReader,
        record: FoldRecord,
    ) -> Result<Applied, ProjectorError> {
        let hash = MessageHash::of(&record.message_id);
        match self.seen(r, hash)? {
            Some(SeenMark::Forgotten) => return Ok(Applied::Forgotten),
            Some(SeenMark::Folded) => return Ok(Applied::Duplicate),
            None => {}
        }
        self.pending.seen.insert(hash, SeenMark::Folded);
        let mut new_ids = Vec::new();
        for id in record.identifiers() {
            if id.kind != IdentifierKind::User {
                self.load_node(r, &id)?;
                if !self.is_known(&id) {
                    self.pending.identifiers.insert(id.clone());
                    new_ids.push(id);
                }
            }
        }
        let order = record.order();
        let links = asserted_links(
            record.user_id.as_deref(),
            record.email.as_deref(),
            record.anonymous_id.as_deref(),
        );
        for (from, to) in links {
            self.load_chain(r, &from)?;
            let outcome = self
                .timeline(&from)
                .map_or(LinkInsert::Changed, |t| t.classify(&order, &to));
            match outcome {
                LinkInsert::Changed => self.relink(r, std::slice::from_ref(&from), |state| {
                    state.insert_link(r, &from, &to, &order)
                })?,
                LinkInsert::Redundant => self.insert_link(r, &from, &to, &order)?,
                LinkInsert::Duplicate => {}
            }
        }
        let subject = record.subject();
        self.load_chain(r, &subject)?;
        let placement = self.place(&subject, record.time);
        let month = month_of(record.time);
        self.adjust(r, &placement.mau, month, record.is_survey(), true)?;
        self.load_target(r, &placement.profile)?;
        self.target_mut(&placement.profile)
            .contributions
            .entry(subject.clone())
            .or_default()
            .apply(&record);
        self.pending.profiles.insert(placement.profile);
        if subject.kind == IdentifierKind::User {
            self.pending
                .user_events
                .entry(subject)
                .or_default()
                .push(hash);
        } else {
            if !self.node(&subject).is_some_and(|n| n.has_history) {
                self.node_mut(&subject).has_history = true;
            }
            self.pending
                .history
                .entry(subject)
                .or_default()
                .push(record);
        }
        // Known now: each new email or device resolves somewhere.
        for id in new_ids {
            let now = self.resolve_now(&id);
            self.add_resolving(r, &now, &id)?;
        }
        Ok(Applied::Folded)
    }

    /// One event more (or less) at `target` in `month`.
    fn adjust(
        &mut self,
        r: &dyn StateReader,
        target: &Identifier,
        month: Month,
        survey: bool,
        add: bool,
    ) -> Result<(), ProjectorError> {
        self.load_target(r, target)?;
        self.load_month(r, month)?;
        self.note_month_before(month);
        let activity = self
            .target(target)
            .and_then(|t| t.months.get(&month).copied())
            .unwrap_or_default();
        let counts = self.months.entry(month).or_default();
        let after = adjust_activity(target, activity, counts, survey, add);
        let record = self.target_mut(target);
        if after.events == 0 {
            record.months.remove(&month);
        } else {
            record.months.insert(month, after);
        }
        self.pending.months.insert(month);
        Ok(())
    }

    fn note_month_before(&mut self, month: Month) {
        if let Some(before) = &mut self.pending.months_before {
            let counts = self.months.get(&month).copied().unwrap_or_default();
            before.entry(month).or_insert(counts);
        }
    }

    fn insert_link(
        &mut self,
        r: &dyn StateReader,
        from: &Identifier,
        to: &Identifier,
        order: &EventOrder,
    ) -> Result<(), ProjectorError> {
        self.load_node(r, from)?;
        let outcome = self.node_mut(from).timeline.insert(Link {
            key: order.clone(),
            target: to.clone(),
        });
        if outcome != LinkInsert::Duplicate {
            self.load_node(r, to)?;
            if !self.node(to).is_some_and(|n| n.referrers.contains(from)) {
                self.node_mut(to).referrers.insert(from.clone());
            }
        }
        if outcome == LinkInsert::Changed {
            // Chains through `from` may now reach another node.
            self.chains.clear();
        }
        Ok(())
    }

    /// Changes the graph with `change` (a link inserted, an erased
    /// person's links removed) and moves what it moves: the events of
    /// `changed` (and of devices linked to those that are emails) between
    /// profiles and MAU targets, and their `resolving` entries.
    fn relink(
        &mut self,
        r: &dyn StateReader,
        changed: &[Identifier],
        change: impl FnOnce(&mut Self) -> Result<(), ProjectorError>,
    ) -> Result<(), ProjectorError> {
        let mut affected: BTreeSet<Identifier> = BTreeSet::new();
        for id in changed {
            affected.insert(id.clone());
            if id.kind == IdentifierKind::Email {
                self.load_node(r, id)?;
                if let Some(node) = self.node(id) {
                    affected.extend(node.referrers.iter().cloned());
                }
            }
        }
        let mut before = Vec::with_capacity(affected.len());
        for id in &affected {
            self.load_chain(r, id)?;
            let history = self.history(r, id)?;
            let placements: Vec<Placement> =
                history.iter().map(|e| self.place(id, e.time)).collect();
            before.push((id.clone(), history, placements, self.resolve_now(id)));
        }

        change(self)?;

        for (id, history, old, old_now) in before {
            self.load_chain(r, &id)?;
            let mut moved = false;
            for (entry, old) in history.iter().zip(&old) {
                let new = self.place(&id, entry.time);
                if new.mau != old.mau {
                    let month = month_of(entry.time);
                    self.adjust(r, &old.mau, month, entry.is_survey(), false)?;
                    self.adjust(r, &new.mau, month, entry.is_survey(), true)?;
                }
                moved |= new.profile != old.profile;
            }
            if moved {
                self.replace_contributions(r, &id, &history, &old)?;
            }
            let new_now = self.resolve_now(&id);
            if new_now != old_now && self.is_known(&id) {
                self.pending.identifiers.insert(id.clone());
                self.remove_resolving(r, &old_now, &id)?;
                self.add_resolving(r, &new_now, &id)?;
            }
        }
        Ok(())
    }

    /// Refolds one source's contributions from its history, placed anew.
    fn replace_contributions(
        &mut self,
        r: &dyn StateReader,
        source: &Identifier,
        history: &[FoldRecord],
        old: &[Placement],
    ) -> Result<(), ProjectorError> {
        let mut fresh: BTreeMap<Identifier, ProfileAggregate> = BTreeMap::new();
        for entry in history {
            let target = self.place(source, entry.time).profile;
            fresh.entry(target).or_default().apply(entry);
        }
        let stale: BTreeSet<Identifier> = old.iter().map(|p| p.profile.clone()).collect();
        for target in stale.iter().chain(fresh.keys()) {
            self.load_target(r, target)?;
            self.pending.profiles.insert(target.clone());
            if self
                .target(target)
                .is_some_and(|t| t.contributions.contains_key(source))
            {
                self.target_mut(target).contributions.remove(source);
            }
        }
        for (target, aggregate) in fresh {
            self.target_mut(&target)
                .contributions
                .insert(source.clone(), aggregate);
        }
        Ok(())
    }

    fn add_resolving(
        &mut self,
        r: &dyn StateReader,
        target: &Identifier,
        id: &Identifier,
    ) -> Result<(), ProjectorError> {
        self.load_target(r, target)?;
        if !self
            .target(target)
            .is_some_and(|t| t.resolving.contains(id))
        {
            self.target_mut(target).resolving.insert(id.clone());
            self.pending.profiles.insert(target.clone());
        }
        Ok(())
    }

    fn remove_resolving(
        &mut self,
        r: &dyn StateReader,
        target: &Identifier,
        id: &Identifier,
    ) -> Result<(), ProjectorError> {
        self.load_target(r, target)?;
        if self
            .target(target)
            .is_some_and(|t| t.resolving.contains(id))
        {
            self.target_mut(target).resolving.remove(id);
            self.pending.profiles.insert(target.clone());
        }
        Ok(())
    }

    // --- erasure -----------------------------------------------------------

    /// Whether the erasure `erasure_id` is applied already (a re-delivered
    /// or replayed request changes nothing).
    pub fn has_erasure(&self, erasure_id: &str) -> bool {
        self.erasure_ids.contains(erasure_id)
    }

    /// Forgets the person `request.profile` resolves to now: every event
    /// placed in their profile, and so their traits, responses and links to
    /// emails and devices. What is left is exactly the fold of the
    /// remaining events; each month's MAU keeps the count it had.
    pub fn erase(
        &mut self,
        r: &dyn StateReader,
        request: &ErasureRequest,
    ) -> Result<ErasureRecord, ProjectorError> {
        self.load_chain(r, &request.profile)?;
        let profile = self.resolve_now(&request.profile);
        self.load_target(r, &profile)?;
        self.load_node(r, &profile)?;
        let person = self.target(&profile).cloned().unwrap_or_default();
        let emails = count_kind(&person.resolving, IdentifierKind::Email);
        let devices = count_kind(&person.resolving, IdentifierKind::Anonymous);
        let responses = person
            .profile()
            .map_or(0, |p: ProfileAggregate| p.response_count());

        // Every identifier that may resolve to the person: itself, what
        // links to it, and what links to those.
        let mut candidates: BTreeSet<Identifier> = BTreeSet::new();
        candidates.insert(profile.clone());
        let direct: Vec<Identifier> = self
            .node(&profile)
            .map(|n| n.referrers.iter().cloned().collect())
            .unwrap_or_default();
        for id in direct {
            self.load_node(r, &id)?;
            if let Some(node) = self.node(&id) {
                candidates.extend(node.referrers.iter().cloned());
            }
            candidates.insert(id);
        }
        let sources: Vec<Identifier> = candidates
            .iter()
            .filter(|c| c.kind != IdentifierKind::User)
            .cloned()
            .collect();
        let now_before: Vec<(Identifier, Identifier)> = {
            for id in &sources {
                self.load_chain(r, id)?;
            }
            sources
                .iter()
                .map(|id| (id.clone(), self.resolve_now(id)))
                .collect()
        };

        self.pending.months_before = Some(BTreeMap::new());
        let mut forgotten: BTreeSet<MessageHash> = BTreeSet::new();
        if profile.kind == IdentifierKind::User {
            let mut hashes = r.user_events(&self.workspace_id, &profile)?;
            if self.pending.user_events_dropped.contains(&profile) {
                hashes.clear();
            }
            hashes.extend(
                self.pending
                    .user_events
                    .remove(&profile)
                    .unwrap_or_default(),
            );
            forgotten.extend(hashes);
            self.pending.user_events_dropped.insert(profile.clone());
        }
        // The person's events among emails' and devices': dropped from
        // their histories and from the MAU targets they counted at.
        for id in &sources {
            let history = self.history(r, id)?;
            let total = history.len();
            let mut kept = Vec::with_capacity(total);
            for entry in history {
                let placed = self.place(id, entry.time);
                if placed.profile == profile {
                    forgotten.insert(MessageHash::of(&entry.message_id));
                    if placed.mau != profile {
                        let month = month_of(entry.time);
                        self.adjust(r, &placed.mau, month, entry.is_survey(), false)?;
                    }
                } else {
                    kept.push(entry);
                }
            }
            if kept.len() != total {
                self.node_mut(id).has_history = !kept.is_empty();
                self.pending.history.remove(id);
                self.pending.history_replaced.insert(id.clone(), kept);
            }
        }
        // Every event counted at the person as a MAU target is the
        // person's (a MAU target is the profile's, or an email or device
        // on the way to it): the person's month rows go whole.
        let months: Vec<(Month, crate::mau::Activity)> =
            person.months.iter().map(|(m, a)| (*m, *a)).collect();
        for (month, activity) in months {
            self.load_month(r, month)?;
            self.note_month_before(month);
            if let Some(counts) = self.months.get_mut(&month) {
                remove_activity(&profile, activity, counts);
            }
            self.pending.months.insert(month);
        }
        // The person's profile goes; nothing else contributes to it.
        self.target_mut(&profile).contributions.clear();
        self.target_mut(&profile).months.clear();
        self.pending.profiles.insert(profile.clone());

        // The links the person's events asserted go, and what they placed
        // elsewhere is placed again.
        let linked: Vec<Identifier> = sources
            .iter()
            .filter(|id| {
                self.node(id).is_some_and(|n| {
                    n.timeline
                        .links()
                        .iter()
                        .any(|l| forgotten.contains(&MessageHash::of(&l.key.message_id)))
                })
            })
            .cloned()
            .collect();
        self.relink(r, &linked, |state| {
            for id in &linked {
                let mut targets = BTreeSet::new();
                state.node_mut(id).timeline.remove_links(|l| {
                    let gone = forgotten.contains(&MessageHash::of(&l.key.message_id));
                    if gone {
                        targets.insert(l.target.clone());
                    }
                    gone
                });
                for target in targets {
                    let still = state
                        .node(id)
                        .is_some_and(|n| n.timeline.links().iter().any(|l| l.target == target));
                    if !still {
                        state.load_node(r, &target)?;
                        state.node_mut(&target).referrers.remove(id);
                    }
                }
            }
            state.chains.clear();
            Ok(())
        })?;

        // Each email and device that resolved to the person now resolves
        // elsewhere, or is no longer known.
        for (id, old_now) in now_before {
            self.pending.identifiers.insert(id.clone());
            self.remove_resolving(r, &old_now, &id)?;
            if self.is_known(&id) {
                let now = self.resolve_now(&id);
                self.add_resolving(r, &now, &id)?;
            } else if self.node(&id).is_some_and(|n| n.referrers.is_empty()) {
                self.forget_node(&id);
            }
        }
        if profile.kind == IdentifierKind::User {
            self.forget_node(&profile);
        }
        for hash in &forgotten {
            self.pending.seen.insert(*hash, SeenMark::Forgotten);
        }

        let before = self.pending.months_before.take().unwrap_or_default();
        let mut record = ErasureRecord {
            erasure_id: request.erasure_id.clone(),
            requested_at: format_nanos(request.requested_at),
            events: forgotten.len() as u64,
            responses,
            emails,
            devices,
            message_ids: forgotten.iter().map(|h| h.to_hex()).collect(),
            retained: BTreeMap::new(),
            log_purged: false,
        };
        for (month, was) in before {
            let now = self.months.get(&month).copied().unwrap_or_default();
            let delta = RetainedMau {
                identified: i64_of(was.identified) - i64_of(now.identified),
                anonymous: i64_of(was.anonymous) - i64_of(now.anonymous),
            };
            // A month only the person made (even one of zeros: a device's
            // page views) stays listed, with what it counted.
            let gone = now.active_targets == 0 && !self.retained.contains_key(&month);
            if !delta.is_zero() || gone {
                self.retained.entry(month).or_default().add(delta);
                record.retained.insert(month.to_string(), delta);
                self.pending.months.insert(month);
            }
        }
        self.erasure_ids.insert(request.erasure_id.clone());
        self.pending.erasures.push(record.clone());
        Ok(record)
    }

    // --- changes -----------------------------------------------------------

    fn mau_row(&self, month: Month) -> Option<MauRow> {
        let counts = self.months.get(&month).copied().unwrap_or_default();
        let row = counts.row(&self.workspace_id, month);
        match self.retained.get(&month) {
            Some(retained) => Some(retained.added_to(row)),
            None if counts.active_targets > 0 => Some(row),
            None => None,
        }
    }

    /// Drains what changed since the last call, encoded for the store;
    /// with `render_profiles`, the changed profiles' JSON too.
    pub fn take_changes(&mut self, render_profiles: bool) -> WorkspaceChanges {
        let pending = std::mem::take(&mut self.pending);
        let mut changes = WorkspaceChanges {
            erasures: pending.erasures,
            ..WorkspaceChanges::default()
        };
        for month in &pending.months {
            let counts = self.months.get(month).copied().unwrap_or_default();
            let stored = (counts != MonthCounts::default()).then_some(counts);
            changes.month_counts.push((*month, stored));
            if let Some(row) = self.mau_row(*month) {
                changes.months.push(row);
            }
        }
        for id in &pending.nodes {
            let Some(cached) = self.nodes.get_mut(id) else {
                continue;
            };
            let encoded = cached
                .decoded
                .as_ref()
                .and_then(Option::as_ref)
                .filter(|n| n.is_known() || !n.referrers.is_empty())
                .map(encode_node);
            cached.stored.clone_from(&encoded);
            changes.nodes.push((id.clone(), encoded));
        }
        for id in &pending.targets {
            let Some(cached) = self.targets.get_mut(id) else {
                continue;
            };
            let encoded = cached
                .decoded
                .as_ref()
                .and_then(Option::as_ref)
                .filter(|t| !t.is_empty())
                .map(encode_target);
            cached.stored.clone_from(&encoded);
            changes.targets.push((id.clone(), encoded));
        }
        if render_profiles {
            for id in &pending.profiles {
                let json = self
                    .target(id)
                    .and_then(|t| render_target(&self.workspace_id, id, t));
                changes.profiles.push((id.clone(), json));
            }
        }
        for id in pending.identifiers {
            let now = self.is_known(&id).then(|| self.resolve_now(&id));
            changes.identifiers.push((id, now));
        }
        changes.seen = pending.seen.into_iter().collect();
        let mut replaced = pending.history_replaced;
        for (id, records) in pending.history {
            let mut bytes = Vec::new();
            let whole = replaced.remove(&id);
            let is_whole = whole.is_some();
            for record in whole.iter().flatten().chain(&records) {
                encode_history_record(record, &mut bytes);
            }
            changes.history.push((id, bytes, is_whole));
        }
        for (id, kept) in replaced {
            let mut bytes = Vec::new();
            for record in &kept {
                encode_history_record(record, &mut bytes);
            }
            changes.history.push((id, bytes, true));
        }
        let mut dropped = pending.user_events_dropped;
        for (id, hashes) in pending.user_events {
            let drop = dropped.remove(&id);
            changes.user_events.push((id, encode_hashes(&hashes), drop));
        }
        for id in dropped {
            changes.user_events.push((id, Vec::new(), true));
        }
        // What the batch decoded goes back to its bytes.
        for id in std::mem::take(&mut self.decoded_nodes) {
            if let Some(cached) = self.nodes.get_mut(&id) {
                cached.decoded = None;
            }
        }
        for id in std::mem::take(&mut self.decoded_targets) {
            if let Some(cached) = self.targets.get_mut(&id) {
                cached.decoded = None;
            }
        }
        changes
    }
}

/// A target's profile: its contributions merged, with the emails and
/// devices that resolve to it now. None where no event lands there.
pub fn render_view(
    workspace_id: &str,
    id: &Identifier,
    target: &TargetRecord,
) -> Option<ProfileView> {
    let profile = target.profile()?;
    let (emails, devices) = resolving_lists(target);
    Some(profile.view(workspace_id, id, emails, devices))
}

/// A target's profile JSON: its contributions merged, with the emails and
/// devices that resolve to it now. None where no event lands there.
pub fn render_target(
    workspace_id: &str,
    id: &Identifier,
    target: &TargetRecord,
) -> Option<Vec<u8>> {
    let profile = target.profile()?;
    let (emails, devices) = resolving_lists(target);
    Some(profile.render_bytes(workspace_id, id, emails, devices))
}

/// The emails and devices of a target's `resolving` set, by kind.
pub fn resolving_lists(target: &TargetRecord) -> (Vec<String>, Vec<String>) {
    let mut emails = Vec::new();
    let mut devices = Vec::new();
    for id in &target.resolving {
        match id.kind {
            IdentifierKind::Email => emails.push(id.value.clone()),
            IdentifierKind::Anonymous => devices.push(id.value.clone()),
            IdentifierKind::User => {}
        }
    }
    (emails, devices)
}

fn count_kind(ids: &BTreeSet<Identifier>, kind: IdentifierKind) -> u64 {
    ids.iter().filter(|id| id.kind == kind).count() as u64
}

fn i64_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
