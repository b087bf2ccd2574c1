//! Drives the fold from a log: read a batch from the stored position, apply
//! it to resident workspaces, and commit the changed keys together with the
//! new position. Workspaces stay in memory up to a bound, least recently
//! used first out; an evicted one reloads from its stored chunks.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use idfold_events::decode_avro;
use idfold_log::{DataDir, DeadLetter, DeadLetterStore, EventLog};
use idfold_telemetry::names;

use crate::error::ProjectorError;
use crate::record::FoldRecord;
use crate::store::{Checkpoint, StateStore};
use crate::workspace::{Applied, WorkspaceState};

#[derive(Debug, Clone, Copy)]
pub struct FoldOptions {
    /// Log records per batch (one atomic commit each).
    pub batch_size: usize,
    /// Accepted events kept in memory across resident workspaces; a single
    /// workspace larger than this is still held whole while it is folded.
    pub max_resident_events: usize,
}

impl Default for FoldOptions {
    fn default() -> Self {
        FoldOptions {
            batch_size: 20_000,
            max_resident_events: 2_000_000,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchReport {
    pub read: usize,
    pub folded: usize,
    pub duplicates: usize,
    pub undecodable: usize,
    pub next_offset: u64,
}

#[derive(Debug)]
struct Resident {
    state: WorkspaceState,
    last_used: u64,
}

#[derive(Debug)]
pub struct Projector {
    store: StateStore,
    dead_letters: DeadLetterStore,
    resident: HashMap<String, Resident>,
    batches: u64,
    options: FoldOptions,
}

impl Projector {
    pub fn open(dir: &DataDir, options: FoldOptions) -> Result<Projector, ProjectorError> {
        Ok(Projector {
            store: StateStore::open(dir)?,
            dead_letters: DeadLetterStore::open(dir)?,
            resident: HashMap::new(),
            batches: 0,
            options,
        })
    }

    pub fn store(&self) -> &StateStore {
        &self.store
    }

    fn resident_events(&self) -> usize {
        self.resident.values().map(|r| r.state.event_count()).sum()
    }

    fn workspace(&mut self, workspace_id: &str) -> Result<&mut WorkspaceState, ProjectorError> {
        if !self.resident.contains_key(workspace_id) {
            let state = self.store.load_workspace(workspace_id)?;
            metrics::counter!(names::FOLD_WORKSPACE_LOADS).increment(1);
            self.resident.insert(
                workspace_id.to_owned(),
                Resident {
                    state,
                    last_used: self.batches,
                },
            );
        }
        let resident =
            self.resident
                .get_mut(workspace_id)
                .ok_or_else(|| ProjectorError::Corrupt {
                    key: workspace_id.into(),
                    detail: "not resident".into(),
                })?;
        resident.last_used = self.batches;
        Ok(&mut resident.state)
    }

    /// Folds the next batch of `partition`. `read == 0` means caught up.
    pub fn fold_batch(
        &mut self,
        log: &dyn EventLog,
        partition: u32,
    ) -> Result<BatchReport, ProjectorError> {
        let started = Instant::now();
        let first_offset = self.store.position(partition)?;
        let records = log.read_from(partition, first_offset, self.options.batch_size)?;
        let mut report = BatchReport {
            read: records.len(),
            next_offset: first_offset,
            ..BatchReport::default()
        };
        let Some(last) = records.last() else {
            return Ok(report);
        };
        report.next_offset = last.offset + 1;
        self.batches += 1;
        let mut touched: BTreeMap<String, ()> = BTreeMap::new();
        let mut dead = Vec::new();
        for record in &records {
            match decode_avro(&record.payload) {
                Ok(event) => {
                    let state = self.workspace(&event.workspace_id)?;
                    match state.apply(FoldRecord::from_event(&event)) {
                        Applied::Folded => report.folded += 1,
                        Applied::Duplicate => report.duplicates += 1,
                    }
                    touched.insert(event.workspace_id, ());
                }
                Err(rejection) => {
                    report.undecodable += 1;
                    dead.push(DeadLetter {
                        reason: rejection.reason.as_str().to_owned(),
                        field: rejection.field,
                        message: rejection.message,
                        source: format!("log partition {partition}"),
                        position: Some(record.offset),
                        raw: record.payload.clone(),
                        truncated: false,
                    });
                }
            }
        }
        let workspaces = touched
            .into_keys()
            .filter_map(|w| {
                let changes = self.resident.get_mut(&w)?.state.take_changes();
                Some((w, changes))
            })
            .collect();
        self.store.commit(&Checkpoint {
            partition,
            first_offset,
            next_offset: report.next_offset,
            workspaces,
        })?;
        // Dead letters are written after the state: a crash in between
        // refolds the batch and may store the same dead letter twice, never none.
        self.dead_letters.append(&dead)?;
        log.commit(partition, report.next_offset)?;
        self.evict();
        self.record_metrics(partition, &report, started);
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
                total.read += batch.read;
                total.folded += batch.folded;
                total.duplicates += batch.duplicates;
                total.undecodable += batch.undecodable;
                total.next_offset = batch.next_offset;
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
        progress: impl FnMut(&BatchReport),
    ) -> Result<BatchReport, ProjectorError> {
        self.resident.clear();
        self.store.clear()?;
        self.fold_until_idle(log, progress)
    }

    fn evict(&mut self) {
        let mut resident = self.resident_events();
        if resident <= self.options.max_resident_events {
            return;
        }
        let mut by_age: Vec<(u64, String, usize)> = self
            .resident
            .iter()
            .map(|(w, r)| (r.last_used, w.clone(), r.state.event_count()))
            .collect();
        by_age.sort();
        for (_, w, events) in by_age {
            if resident <= self.options.max_resident_events {
                break;
            }
            // Every resident workspace is clean after a commit: dropping it loses nothing.
            self.resident.remove(&w);
            resident -= events;
        }
    }

    fn record_metrics(&self, partition: u32, report: &BatchReport, started: Instant) {
        metrics::counter!(names::EVENTS_FOLDED).increment(report.folded as u64);
        metrics::counter!(names::EVENTS_DUPLICATE).increment(report.duplicates as u64);
        metrics::counter!(names::LOG_RECORDS_UNDECODABLE).increment(report.undecodable as u64);
        metrics::histogram!(names::FOLD_BATCH_EVENTS).record(report.read as f64);
        metrics::histogram!(names::FOLD_BATCH_DURATION).record(started.elapsed().as_secs_f64());
        metrics::gauge!(names::FOLD_POSITION, "partition" => partition.to_string())
            .set(report.next_offset as f64);
        metrics::gauge!(names::FOLD_RESIDENT_EVENTS).set(self.resident_events() as f64);
    }
}
