//! Drives the fold from a log: read a batch from the stored position, apply
//! it to the workspaces' states (which read from sled what the batch
//! touches), and commit the changed keys together with the new position.
//! What the states cache stays within the memory budget, least recently
//! used first out; an evicted entry is read again when next needed.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use idfold_events::{decode_log_payload, EventKind, LogPayload};
use idfold_log::{DataDir, DeadLetter, DeadLetterStore, EventLog, LogError, LogRecord};
use idfold_telemetry::names;

use crate::erasure::ErasureRecord;
use crate::error::ProjectorError;
use crate::record::FoldRecord;
use crate::state::MessageHash;
use crate::store::{Checkpoint, StateStore};
use crate::workspace::{Applied, WorkspaceChanges, WorkspaceState};

/// How often the fold measures the store's size on disk (it lists files).
const STORE_SIZE_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Events folded and dropped as duplicates in one batch, by type.
#[derive(Debug, Default)]
struct KindCounts([(u64, u64); 4]);

impl KindCounts {
    fn slot(kind: EventKind) -> usize {
        EventKind::ALL.iter().position(|k| *k == kind).unwrap_or(0)
    }

    fn add(&mut self, kind: EventKind, folded: bool) {
        if let Some(slot) = self.0.get_mut(Self::slot(kind)) {
            if folded {
                slot.0 += 1;
            } else {
                slot.1 += 1;
            }
        }
    }

    fn of(&self, kind: EventKind) -> (u64, u64) {
        self.0.get(Self::slot(kind)).copied().unwrap_or_default()
    }
}

/// Log records read at a time while looking for an erasure's events.
const PURGE_SCAN_BATCH: usize = 10_000;

#[derive(Debug, Clone, Copy)]
pub struct FoldOptions {
    /// Log records per batch (one atomic commit each).
    pub batch_size: usize,
    /// Bytes the fold keeps resident (its caches); sled's own page cache
    /// is sized from it too.
    pub memory_budget: u64,
}

impl FoldOptions {
    /// sled's page cache: half the budget; the fold's own caches keep
    /// within the other half.
    pub fn sled_cache_bytes(&self) -> u64 {
        self.memory_budget / 2
    }

    fn own_cache_bytes(&self) -> usize {
        usize::try_from(self.memory_budget / 2).unwrap_or(usize::MAX)
    }
}

/// The default `fold.memory_budget`: 512 MiB.
pub const DEFAULT_MEMORY_BUDGET: u64 = 512 * 1024 * 1024;

impl Default for FoldOptions {
    fn default() -> Self {
        FoldOptions {
            batch_size: 20_000,
            memory_budget: DEFAULT_MEMORY_BUDGET,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchReport {
    pub read: usize,
    pub folded: usize,
    pub duplicates: usize,
    /// Events of erased people seen again (a replay or re-delivery): dropped.
    pub forgotten: usize,
    /// Erasure requests applied.
    pub erasures: usize,
    pub undecodable: usize,
    pub next_offset: u64,
}

impl BatchReport {
    /// Adds a later batch to a running total.
    pub fn add(&mut self, later: &BatchReport) {
        self.read += later.read;
        self.folded += later.folded;
        self.duplicates += later.duplicates;
        self.forgotten += later.forgotten;
        self.erasures += later.erasures;
        self.undecodable += later.undecodable;
        if later.read > 0 {
            self.next_offset = later.next_offset;
        }
    }
}

/// Where a fold's time went, summed over its batches.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageTimings {
    /// Reading the canonical log's records into events.
    pub decode: Duration,
    /// The rules: dedupe, stitching, profiles, MAU, reads of what they touch.
    pub apply: Duration,
    /// Encoding the changed entries.
    pub encode: Duration,
    /// Publishing changes (Kafka), dead letters and the atomic sled commit.
    pub commit: Duration,
}

/// The workspaces' states (each a cache of what its events touched), kept
/// across reopenings of the data directory (a following `run` lets go of
/// it between polls).
#[derive(Debug, Default)]
pub struct WorkspaceCache {
    resident: HashMap<String, WorkspaceState>,
    /// The store's epoch these states were loaded at; a rebuild changes it.
    epoch: u64,
    /// The position each partition was at after this cache's last commit:
    /// if the store is elsewhere, another process folded in between.
    positions: BTreeMap<u32, u64>,
    batches: u64,
    /// When the store's size was last measured for /metrics.
    size_measured: Option<Instant>,
    timings: StageTimings,
}

impl WorkspaceCache {
    fn resident_bytes(&self) -> usize {
        self.resident
            .values()
            .map(WorkspaceState::resident_bytes)
            .sum()
    }
}

/// Where each batch's changes go before the batch commits: Kafka's
/// compacted MAU and profile topics. Published first, so a crash can only
/// publish a change again (the same value: the fold is deterministic),
/// never lose one.
pub trait ChangeSink: Send {
    fn publish(&self, changes: &[(String, WorkspaceChanges)]) -> Result<(), LogError>;
}

struct Publishing(Box<dyn ChangeSink>);

impl std::fmt::Debug for Publishing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChangeSink")
    }
}

#[derive(Debug)]
pub struct Projector {
    store: StateStore,
    dead_letters: DeadLetterStore,
    cache: WorkspaceCache,
    options: FoldOptions,
    /// Log records of the last committed batch that belong to erased
    /// people (re-delivered events, a re-delivered request): a log that
    /// can delete records deletes them after the commit.
    forgotten_records: Vec<u64>,
    /// Whether erasures a crash left unpurged have been looked for yet.
    purge_checked: bool,
    changes: Option<Publishing>,
}

impl Projector {
    pub fn open(dir: &DataDir, options: FoldOptions) -> Result<Projector, ProjectorError> {
        Projector::with_cache(dir, options, WorkspaceCache::default())
    }

    /// Opens a projection of any format, to [`Projector::rebuild`] it.
    pub fn open_for_rebuild(
        dir: &DataDir,
        options: FoldOptions,
    ) -> Result<Projector, ProjectorError> {
        let store = StateStore::open_any_format(dir)?;
        Ok(Projector {
            store,
            dead_letters: DeadLetterStore::open(dir)?,
            cache: WorkspaceCache::default(),
            options,
            forgotten_records: Vec::new(),
            purge_checked: false,
            changes: None,
        })
    }

    /// Opens with workspaces kept from an earlier opening; they are dropped
    /// when the store was rebuilt since.
    pub fn with_cache(
        dir: &DataDir,
        options: FoldOptions,
        mut cache: WorkspaceCache,
    ) -> Result<Projector, ProjectorError> {
        let store = StateStore::open(dir)?;
        let epoch = store.epoch()?;
        let mut moved = false;
        for (&partition, &position) in &cache.positions {
            moved |= store.position(partition)? != position;
        }
        if cache.epoch != epoch || moved {
            cache = WorkspaceCache {
                epoch,
                ..WorkspaceCache::default()
            };
        }
        Ok(Projector {
            store,
            dead_letters: DeadLetterStore::open(dir)?,
            cache,
            options,
            forgotten_records: Vec::new(),
            purge_checked: false,
            changes: None,
        })
    }

    /// Publishes every batch's changes to `sink` before committing it.
    pub fn publish_changes_to(&mut self, sink: Box<dyn ChangeSink>) {
        self.changes = Some(Publishing(sink));
    }

    /// Gives the workspaces back, closing this projector's hold on the store.
    pub fn into_cache(self) -> WorkspaceCache {
        self.cache
    }

    /// Where this fold's time went so far.
    pub fn timings(&self) -> StageTimings {
        self.cache.timings
    }

    pub fn store(&self) -> &StateStore {
        &self.store
    }

    /// Folds the next batch of `partition`. `read == 0` means caught up.
    pub fn fold_batch(
        &mut self,
        log: &dyn EventLog,
        partition: u32,
    ) -> Result<BatchReport, ProjectorError> {
        self.store.ensure_space()?;
        if !self.purge_checked {
            // Erasures whose purge a crash interrupted.
            self.purge_erased(log)?;
            self.purge_checked = true;
        }
        let from = self.store.position(partition)?;
        // Read before the records: every offset below it that the read does
        // not return is a gap (an erasure deleted it), not a record to come.
        let end = log.end_offset(partition)?;
        let records = log.read_from(partition, from, self.options.batch_size)?;
        if records.is_empty() && end > from {
            self.store.skip_gap(partition, end)?;
            self.cache.positions.insert(partition, end);
            log.commit(partition, end)?;
        }
        let report = self.fold_records(partition, records)?;
        if report.read > 0 {
            log.commit(partition, report.next_offset)?;
        }
        let forgotten = std::mem::take(&mut self.forgotten_records);
        if !forgotten.is_empty() && log.can_forget() {
            // Committed first: a crash before this leaves them in the log,
            // dropped again by any refold (which deletes them then).
            log.forget(partition, &forgotten)?;
        }
        if report.erasures > 0 {
            self.purge_erased(log)?;
        }
        let position = self.store.position(partition)?;
        let labels = [
            ("topic", log.name().to_owned()),
            ("partition", partition.to_string()),
        ];
        metrics::gauge!(names::CONSUMER_POSITION, &labels).set(position as f64);
        metrics::gauge!(names::CONSUMER_LAG, &labels)
            .set(log.end_offset(partition)?.saturating_sub(position) as f64);
        Ok(report)
    }

    /// Deletes the events of applied erasures, and the requests themselves,
    /// from a log that can delete records (the embedded one), then marks the
    /// erasures purged. Runs after the erasure is committed: a crash in
    /// between leaves them marked unpurged, and the next fold purges them.
    pub fn purge_erased(&mut self, log: &dyn EventLog) -> Result<(), ProjectorError> {
        let mut pending: Vec<(String, ErasureRecord)> = Vec::new();
        for entry in self.store.erasures(None) {
            let (workspace, record) = entry?;
            if !record.log_purged {
                pending.push((workspace, record));
            }
        }
        if pending.is_empty() || !log.can_forget() {
            return Ok(());
        }
        let forgotten: HashSet<(&str, MessageHash)> = pending
            .iter()
            .flat_map(|(w, r)| {
                r.message_ids
                    .iter()
                    .filter_map(|m| MessageHash::from_hex(m))
                    .map(move |h| (w.as_str(), h))
            })
            .collect();
        let requests: HashSet<(&str, &str)> = pending
            .iter()
            .map(|(w, r)| (w.as_str(), r.erasure_id.as_str()))
            .collect();
        for partition in log.partitions() {
            let mut offsets = Vec::new();
            let mut from = 0;
            loop {
                let records = log.read_from(partition, from, PURGE_SCAN_BATCH)?;
                let Some(last) = records.last() else {
                    break;
                };
                from = last.offset + 1;
                for record in &records {
                    let hit = match decode_log_payload(&record.payload) {
                        Ok(LogPayload::Event(e)) => forgotten
                            .contains(&(e.workspace_id.as_str(), MessageHash::of(&e.message_id))),
                        Ok(LogPayload::Erasure(r)) => {
                            requests.contains(&(r.workspace_id.as_str(), r.erasure_id.as_str()))
                        }
                        Err(_) => false,
                    };
                    if hit {
                        offsets.push(record.offset);
                    }
                }
            }
            log.forget(partition, &offsets)?;
        }
        for (workspace, record) in pending {
            self.store.mark_log_purged(&workspace, record)?;
        }
        self.store.flush()
    }

    /// Folds records of `partition` that a consumer has read, in offset
    /// order, and commits them with the partition's new position. Records
    /// before the stored position (a re-delivery) were folded already and
    /// are skipped; a gap after it (Kafka's compaction or transaction
    /// markers) is not an error.
    pub fn fold_records(
        &mut self,
        partition: u32,
        records: Vec<LogRecord>,
    ) -> Result<BatchReport, ProjectorError> {
        let outcome = self.try_fold_records(partition, records);
        if outcome.is_err() {
            // A batch that did not commit may have changed resident states
            // (cached entries, drained changes): drop them all, they are
            // read again from what is committed.
            self.cache.resident.clear();
        }
        outcome
    }

    fn try_fold_records(
        &mut self,
        partition: u32,
        mut records: Vec<LogRecord>,
    ) -> Result<BatchReport, ProjectorError> {
        let started = Instant::now();
        let first_offset = self.store.position(partition)?;
        records.retain(|r| r.offset >= first_offset);
        let mut report = BatchReport {
            read: records.len(),
            next_offset: first_offset,
            ..BatchReport::default()
        };
        let Some(last) = records.last() else {
            return Ok(report);
        };
        report.next_offset = last.offset + 1;
        self.cache.batches += 1;
        let batch = self.cache.batches;
        let mut touched: BTreeSet<String> = BTreeSet::new();
        let mut dead = Vec::new();
        let mut loads = 0;
        self.forgotten_records.clear();
        let mut by_kind = KindCounts::default();
        let store = &self.store;
        let decoded: Vec<_> = records
            .iter()
            .map(|r| decode_log_payload(&r.payload))
            .collect();
        let decoded_at = Instant::now();
        self.cache.timings.decode += decoded_at - started;
        for (record, payload) in records.iter().zip(decoded) {
            match payload {
                Ok(LogPayload::Event(mut event)) => {
                    let workspace_id = std::mem::take(&mut event.workspace_id);
                    let (state, loaded) = workspace_state(
                        &mut self.cache,
                        store,
                        &workspace_id,
                        batch,
                        &mut touched,
                    )?;
                    loads += u64::from(loaded);
                    let kind = event.kind();
                    match state.apply(store, FoldRecord::from_event(event))? {
                        Applied::Folded => {
                            report.folded += 1;
                            by_kind.add(kind, true);
                        }
                        Applied::Duplicate => {
                            report.duplicates += 1;
                            by_kind.add(kind, false);
                        }
                        Applied::Forgotten => {
                            report.forgotten += 1;
                            self.forgotten_records.push(record.offset);
                        }
                    }
                }
                Ok(LogPayload::Erasure(request)) => {
                    let (state, loaded) = workspace_state(
                        &mut self.cache,
                        store,
                        &request.workspace_id,
                        batch,
                        &mut touched,
                    )?;
                    loads += u64::from(loaded);
                    // Applied once: a replay or re-delivery of the request
                    // finds its record, which the state loaded.
                    if state.has_erasure(&request.erasure_id) {
                        // A re-delivered request: it names the person.
                        self.forgotten_records.push(record.offset);
                    } else {
                        let record = state.erase(store, &request)?;
                        report.erasures += 1;
                        tracing::info!(
                            erasure_id = record.erasure_id,
                            events = record.events,
                            "erased a person"
                        );
                    }
                }
                Err(rejection) => {
                    report.undecodable += 1;
                    dead.push(undecodable_letter(partition, record, rejection));
                }
            }
        }
        let applied_at = Instant::now();
        self.cache.timings.apply += applied_at - decoded_at;
        let render_profiles = self.changes.is_some();
        let workspaces: Vec<(String, WorkspaceChanges)> = touched
            .into_iter()
            .filter_map(|w| {
                let changes = self
                    .cache
                    .resident
                    .get_mut(&w)?
                    .take_changes(render_profiles);
                Some((w, changes))
            })
            .collect();
        let encoded_at = Instant::now();
        self.cache.timings.encode += encoded_at - applied_at;
        if let Some(Publishing(sink)) = &self.changes {
            sink.publish(&workspaces)?;
        }
        // Dead letters go first: a crash before the commit refolds the batch
        // and may store the same dead letter twice, never none.
        self.dead_letters.store(&dead)?;
        self.store.commit(&Checkpoint {
            partition,
            first_offset,
            next_offset: report.next_offset,
            workspaces,
        })?;
        self.cache.positions.insert(partition, report.next_offset);
        self.cache.timings.commit += encoded_at.elapsed();
        self.evict();
        self.record_metrics(&report, &by_kind, loads, started);
        Ok(report)
    }

    /// Folds every partition until the log has nothing more.
    pub fn fold_until_idle(
        &mut self,
        log: &dyn EventLog,
        mut progress: impl FnMut(&BatchReport),
    ) -> Result<BatchReport, ProjectorError> {
        let mut total = BatchReport::default();
        for partition in log.partitions() {
            loop {
                let batch = self.fold_batch(log, partition)?;
                if batch.read == 0 {
                    break;
                }
                total.add(&batch);
                progress(&batch);
            }
        }
        self.store.flush()?;
        Ok(total)
    }

    /// Drops every projection and refolds the whole log.
    pub fn rebuild(
        &mut self,
        log: &dyn EventLog,
        mut progress: impl FnMut(&BatchReport),
    ) -> Result<BatchReport, ProjectorError> {
        self.store.clear()?;
        self.cache = WorkspaceCache {
            epoch: self.store.epoch()?,
            ..WorkspaceCache::default()
        };
        let mut end = 0u64;
        for partition in log.partitions() {
            end += log.end_offset(partition)?;
        }
        metrics::gauge!(names::REBUILD_PROGRESS).set(0.0);
        let mut read = 0u64;
        let total = self.fold_until_idle(log, |batch| {
            read += batch.read as u64;
            if end > 0 {
                metrics::gauge!(names::REBUILD_PROGRESS).set((read as f64 / end as f64).min(1.0));
            }
            progress(batch);
        })?;
        metrics::gauge!(names::REBUILD_PROGRESS).set(1.0);
        Ok(total)
    }

    /// Drops the least recently used cached entries until what the fold
    /// holds is within its share of the budget (sled's page cache has the
    /// rest). Every entry is clean after a commit: dropping it loses nothing.
    fn evict(&mut self) {
        let budget = self.options.own_cache_bytes();
        let resident = self.cache.resident_bytes();
        if resident <= budget {
            return;
        }
        // The oldest batches go first, down to three quarters of the share.
        let mut ages: Vec<(u64, usize)> = self
            .cache
            .resident
            .values()
            .flat_map(WorkspaceState::cache_ages)
            .collect();
        ages.sort_unstable();
        let mut to_free = resident - budget * 3 / 4;
        let mut cutoff = 0;
        for (last_used, bytes) in ages {
            if to_free == 0 {
                break;
            }
            cutoff = last_used + 1;
            to_free = to_free.saturating_sub(bytes);
        }
        for state in self.cache.resident.values_mut() {
            state.evict_before(cutoff);
        }
    }

    fn record_metrics(
        &mut self,
        report: &BatchReport,
        by_kind: &KindCounts,
        loads: u64,
        started: Instant,
    ) {
        for kind in EventKind::ALL {
            let (folded, duplicates) = by_kind.of(kind);
            if folded > 0 {
                metrics::counter!(names::EVENTS_FOLDED, "type" => kind.as_str()).increment(folded);
            }
            if duplicates > 0 {
                metrics::counter!(names::EVENTS_DUPLICATE, "type" => kind.as_str())
                    .increment(duplicates);
            }
        }
        metrics::counter!(names::DEAD_LETTERS_WRITTEN, "source" => "log")
            .increment(report.undecodable as u64);
        metrics::counter!(names::EVENTS_FORGOTTEN).increment(report.forgotten as u64);
        metrics::counter!(names::ERASURES_APPLIED).increment(report.erasures as u64);
        metrics::counter!(names::LOG_RECORDS_UNDECODABLE).increment(report.undecodable as u64);
        metrics::counter!(names::FOLD_WORKSPACE_LOADS).increment(loads);
        metrics::histogram!(names::FOLD_BATCH_EVENTS).record(report.read as f64);
        metrics::histogram!(names::FOLD_BATCH_DURATION).record(started.elapsed().as_secs_f64());
        metrics::gauge!(names::FOLD_RESIDENT_BYTES).set(self.cache.resident_bytes() as f64);
        if self
            .cache
            .size_measured
            .is_none_or(|at| at.elapsed() >= STORE_SIZE_EVERY)
        {
            self.cache.size_measured = Some(Instant::now());
            if let Ok(bytes) = self.store.size_on_disk() {
                metrics::gauge!(names::STORE_SIZE).set(bytes as f64);
            }
        }
    }
}

fn undecodable_letter(
    partition: u32,
    record: &LogRecord,
    rejection: idfold_events::Rejection,
) -> DeadLetter {
    DeadLetter {
        reason: rejection.reason.as_str().to_owned(),
        field: rejection.field,
        message: rejection.message,
        source: "log".to_owned(),
        partition: Some(partition),
        position: Some(record.offset),
        raw: record.payload.clone(),
        truncated: false,
        workspace: None,
    }
}

/// The state of `workspace_id`, created (with its erasures) when not
/// resident; says whether it was created.
fn workspace_state<'a>(
    cache: &'a mut WorkspaceCache,
    store: &StateStore,
    workspace_id: &str,
    batch: u64,
    touched: &mut BTreeSet<String>,
) -> Result<(&'a mut WorkspaceState, bool), ProjectorError> {
    let created = !cache.resident.contains_key(workspace_id);
    if created {
        let erasures = store.workspace_erasures(workspace_id)?;
        cache.resident.insert(
            workspace_id.to_owned(),
            WorkspaceState::new(workspace_id, &erasures),
        );
    }
    let state = cache
        .resident
        .get_mut(workspace_id)
        .ok_or_else(|| ProjectorError::Corrupt {
            key: workspace_id.to_owned(),
            detail: "workspace state vanished".to_owned(),
        })?;
    if touched.insert(workspace_id.to_owned()) {
        state.begin_batch(batch);
    }
    Ok((state, created))
}
