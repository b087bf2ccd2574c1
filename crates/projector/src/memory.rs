//! The fold rules over a store held in memory: what the property tests and
//! the benchmark's pure-fold stage run. It keeps the same encoded entries
//! the sled store keeps, so a test that drops the rules' cache between
//! batches reads everything back through the same encodings.

use std::collections::{BTreeMap, HashMap};

use idfold_events::{ErasureRequest, Identifier, Month};
use serde_json::Value;

use crate::erasure::ErasureRecord;
use crate::error::ProjectorError;
use crate::mau::{MauRow, MonthCounts};
use crate::record::FoldRecord;
use crate::state::{decode_hashes, decode_history_chunk, decode_target, MessageHash, SeenMark};
use crate::workspace::{render_target, Applied, StateReader, WorkspaceChanges, WorkspaceState};

/// One workspace's entries, as the store would hold them.
#[derive(Debug, Default)]
struct MemoryStore {
    nodes: BTreeMap<Identifier, Vec<u8>>,
    targets: BTreeMap<Identifier, Vec<u8>>,
    history: BTreeMap<Identifier, Vec<Vec<u8>>>,
    user_events: BTreeMap<Identifier, Vec<Vec<u8>>>,
    seen: HashMap<MessageHash, SeenMark>,
    months: BTreeMap<Month, MonthCounts>,
    rows: BTreeMap<String, MauRow>,
    identifiers: BTreeMap<Identifier, Identifier>,
}

fn corrupt(what: &str, detail: String) -> ProjectorError {
    ProjectorError::Corrupt {
        key: what.to_owned(),
        detail,
    }
}

impl StateReader for MemoryStore {
    fn node(&self, _: &str, id: &Identifier) -> Result<Option<Vec<u8>>, ProjectorError> {
        Ok(self.nodes.get(id).cloned())
    }

    fn target(&self, _: &str, id: &Identifier) -> Result<Option<Vec<u8>>, ProjectorError> {
        Ok(self.targets.get(id).cloned())
    }

    fn history(&self, _: &str, id: &Identifier) -> Result<Vec<FoldRecord>, ProjectorError> {
        let mut records = Vec::new();
        for chunk in self.history.get(id).into_iter().flatten() {
            records.extend(decode_history_chunk(chunk).map_err(|e| corrupt("history", e))?);
        }
        Ok(records)
    }

    fn user_events(&self, _: &str, user: &Identifier) -> Result<Vec<MessageHash>, ProjectorError> {
        Ok(self
            .user_events
            .get(user)
            .into_iter()
            .flatten()
            .flat_map(|chunk| decode_hashes(chunk))
            .collect())
    }

    fn seen(&self, _: &str, hash: MessageHash) -> Result<Option<SeenMark>, ProjectorError> {
        Ok(self.seen.get(&hash).copied())
    }

    fn month(&self, _: &str, month: Month) -> Result<Option<MonthCounts>, ProjectorError> {
        Ok(self.months.get(&month).copied())
    }
}

impl MemoryStore {
    /// Writes a batch's changes as [`crate::StateStore::commit`] does.
    fn commit(&mut self, changes: WorkspaceChanges) {
        self.seen.extend(changes.seen);
        for (id, bytes, replace) in changes.history {
            let chunks = self.history.entry(id).or_default();
            if replace {
                chunks.clear();
            }
            if !bytes.is_empty() {
                chunks.push(bytes);
            }
        }
        for (id, bytes, replace) in changes.user_events {
            let chunks = self.user_events.entry(id).or_default();
            if replace {
                chunks.clear();
            }
            if !bytes.is_empty() {
                chunks.push(bytes);
            }
        }
        for (map, entries) in [
            (&mut self.nodes, changes.nodes),
            (&mut self.targets, changes.targets),
        ] {
            for (id, bytes) in entries {
                match bytes {
                    Some(bytes) => map.insert(id, bytes),
                    None => map.remove(&id),
                };
            }
        }
        for (id, target) in changes.identifiers {
            match target {
                Some(target) => self.identifiers.insert(id, target),
                None => self.identifiers.remove(&id),
            };
        }
        for (month, counts) in changes.month_counts {
            match counts {
                Some(counts) => self.months.insert(month, counts),
                None => self.months.remove(&month),
            };
            self.rows.remove(&month.to_string());
        }
        for row in changes.months {
            self.rows.insert(row.month.clone(), row);
        }
    }
}

/// A workspace folded into memory: the rules, their cache, and the store.
#[derive(Debug)]
pub struct MemoryFold {
    workspace_id: String,
    state: WorkspaceState,
    store: MemoryStore,
    batch: u64,
}

impl MemoryFold {
    pub fn new(workspace_id: &str) -> MemoryFold {
        MemoryFold::with_erasures(workspace_id, &[])
    }

    /// A workspace whose stored erasures are these (a rebuild's start).
    pub fn with_erasures(workspace_id: &str, erasures: &[ErasureRecord]) -> MemoryFold {
        let mut store = MemoryStore::default();
        for record in erasures {
            for hex in &record.message_ids {
                if let Some(hash) = MessageHash::from_hex(hex) {
                    store.seen.insert(hash, SeenMark::Forgotten);
                }
            }
        }
        let mut fold = MemoryFold {
            workspace_id: workspace_id.to_owned(),
            state: WorkspaceState::new(workspace_id, erasures),
            store,
            batch: 1,
        };
        fold.state.begin_batch(fold.batch);
        // Months only erased people made are listed from the start.
        for record in erasures {
            for (month, counts) in record.retained_months() {
                let row = counts.added_to(MonthCounts::default().row(workspace_id, month));
                fold.store.rows.insert(month.to_string(), row);
            }
        }
        fold
    }

    pub fn apply(&mut self, record: FoldRecord) -> Result<Applied, ProjectorError> {
        self.state.apply(&self.store, record)
    }

    pub fn erase(&mut self, request: &ErasureRequest) -> Result<ErasureRecord, ProjectorError> {
        self.state.erase(&self.store, request)
    }

    pub fn has_erasure(&self, erasure_id: &str) -> bool {
        self.state.has_erasure(erasure_id)
    }

    /// Ends a batch: its changes go to the store. With `drop_cache`,
    /// everything the rules held is dropped and read back when needed.
    pub fn commit(&mut self, drop_cache: bool) {
        let changes = self.state.take_changes(false);
        self.store.commit(changes);
        self.batch += 1;
        if drop_cache {
            self.state.evict_before(u64::MAX);
        }
        self.state.begin_batch(self.batch);
    }

    /// Every profile (committed), sorted by id.
    pub fn profiles(&self) -> BTreeMap<String, Value> {
        self.store
            .targets
            .iter()
            .filter_map(|(id, bytes)| {
                let target = decode_target(bytes).ok()?;
                let json = render_target(&self.workspace_id, id, &target)?;
                Some((id.to_string(), serde_json::from_slice(&json).ok()?))
            })
            .collect()
    }

    /// Whose `id` is now (committed): itself when unknown.
    pub fn resolve_now(&self, id: &Identifier) -> Identifier {
        self.store
            .identifiers
            .get(id)
            .cloned()
            .unwrap_or_else(|| id.clone())
    }

    /// The emails and devices known (committed), each with its profile.
    pub fn identifiers(&self) -> &BTreeMap<Identifier, Identifier> {
        &self.store.identifiers
    }

    /// Every month's MAU row (committed), ascending.
    pub fn mau_rows(&self) -> Vec<MauRow> {
        self.store.rows.values().cloned().collect()
    }

    /// Bytes of every stored entry, for a state-per-event figure.
    pub fn stored_bytes(&self) -> usize {
        let maps = self.store.nodes.values().chain(self.store.targets.values());
        maps.map(Vec::len).sum::<usize>()
            + self
                .store
                .history
                .values()
                .chain(self.store.user_events.values())
                .flatten()
                .map(Vec::len)
                .sum::<usize>()
            + self.store.seen.len() * 17
    }
}
