//! The projection in sled. Keys put a workspace's entries together:
//! `<kind byte><workspace_id>\0<rest>`. Kinds: `c` chunks of accepted events
//! (what a workspace reloads from), `p` profile JSON, `i` email/device ->
//! profile id, `m` MAU row, `x` erasure record; `o` the log position per
//! partition, `e` the epoch (bumped by a rebuild), `l` the name of the log
//! the positions are in. A rebuild keeps the epoch and the erasure records.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use idfold_events::{Identifier, IdentifierKind, Month};
use idfold_log::DataDir;
use serde_json::Value;

use crate::erasure::{ErasureRecord, RetainedMau};
use crate::error::ProjectorError;
use crate::mau::{MauRow, MonthlyActiveUsers};
use crate::record::FoldRecord;
use crate::view::ProfileView;
use crate::workspace::{keep_lines, WorkspaceChanges, WorkspaceState};

const STATE_TREE: &str = "state";
const CHUNK: u8 = b'c';
const PROFILE: u8 = b'p';
const IDENTIFIER: u8 = b'i';
const MAU: u8 = b'm';
const POSITION: u8 = b'o';
const EPOCH: u8 = b'e';
const LOG_NAME: u8 = b'l';
const ERASURE: u8 = b'x';

fn key(kind: u8, workspace_id: &str, rest: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + workspace_id.len() + rest.len());
    k.push(kind);
    k.extend_from_slice(workspace_id.as_bytes());
    k.push(0);
    k.extend_from_slice(rest);
    k
}

fn workspace_prefix(kind: u8, workspace_id: Option<&str>) -> Vec<u8> {
    match workspace_id {
        Some(w) => key(kind, w, b""),
        None => vec![kind],
    }
}

fn position_key(partition: u32) -> Vec<u8> {
    let mut k = vec![POSITION];
    k.extend_from_slice(&partition.to_be_bytes());
    k
}

fn corrupt(key: &[u8], detail: impl ToString) -> ProjectorError {
    ProjectorError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        detail: detail.to_string(),
    }
}

/// One batch's worth of writes: state and position land together or not at all.
#[derive(Debug)]
pub struct Checkpoint {
    pub partition: u32,
    /// The first offset of the batch: names its chunks.
    pub first_offset: u64,
    pub next_offset: u64,
    pub workspaces: Vec<(String, WorkspaceChanges)>,
}

#[derive(Debug, Clone)]
pub struct StateStore {
    dir: DataDir,
    tree: sled::Tree,
}

impl StateStore {
    pub fn open(dir: &DataDir) -> Result<StateStore, ProjectorError> {
        Ok(StateStore {
            dir: dir.clone(),
            tree: dir.tree(STATE_TREE)?,
        })
    }

    /// The next offset to fold in `partition`.
    pub fn position(&self, partition: u32) -> Result<u64, ProjectorError> {
        read_u64(&self.tree, &position_key(partition))
    }

    /// Ties this store to one log (`embedded`, `kafka:<topic>`): positions
    /// of one log mean nothing in another, so folding a second one into the
    /// same state would skip or repeat events.
    pub fn bind_log(&self, name: &str) -> Result<(), ProjectorError> {
        let bound =
            self.tree
                .compare_and_swap([LOG_NAME], None as Option<&[u8]>, Some(name.as_bytes()))?;
        match bound {
            Ok(()) => Ok(()),
            Err(existing) => match existing.current {
                Some(current) if current.as_ref() != name.as_bytes() => {
                    Err(ProjectorError::OtherLog {
                        folds: String::from_utf8_lossy(&current).into_owned(),
                        asked: name.to_owned(),
                    })
                }
                _ => Ok(()),
            },
        }
    }

    /// Rebuilds a workspace's in-memory state from its stored chunks.
    pub fn load_workspace(&self, workspace_id: &str) -> Result<WorkspaceState, ProjectorError> {
        let mut state = WorkspaceState::new(workspace_id);
        for record in self.erasures(Some(workspace_id)) {
            state.load_erasure(&record?.1);
        }
        for entry in self
            .tree
            .scan_prefix(workspace_prefix(CHUNK, Some(workspace_id)))
        {
            let (k, v) = entry?;
            // A chunk is one JSON record per line.
            for line in v.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                let record: FoldRecord =
                    serde_json::from_slice(line).map_err(|e| corrupt(&k, e))?;
                state.apply(record);
            }
        }
        state.discard_changes();
        Ok(state)
    }

    /// Writes one checkpoint in a single atomic sled batch.
    pub fn commit(&self, checkpoint: &Checkpoint) -> Result<(), ProjectorError> {
        let mut batch = sled::Batch::default();
        let mut chunk_id = checkpoint.partition.to_be_bytes().to_vec();
        chunk_id.extend_from_slice(&checkpoint.first_offset.to_be_bytes());
        for (w, changes) in &checkpoint.workspaces {
            self.forget_stored_records(&mut batch, w, &changes.erasures)?;
            if !changes.new_records.is_empty() {
                batch.insert(key(CHUNK, w, &chunk_id), changes.new_records.as_slice());
            }
            for (id, json) in &changes.profiles {
                let k = key(PROFILE, w, id.to_string().as_bytes());
                match json {
                    Some(json) => batch.insert(k, json.as_slice()),
                    None => batch.remove(k),
                }
            }
            for (id, target) in &changes.identifiers {
                let k = key(IDENTIFIER, w, id.to_string().as_bytes());
                match target {
                    Some(target) => batch.insert(k, target.to_string().as_bytes()),
                    None => batch.remove(k),
                }
            }
            for row in &changes.months {
                let value = serde_json::to_vec(row).map_err(|e| corrupt(b"mau", e))?;
                batch.insert(key(MAU, w, row.month.as_bytes()), value);
            }
        }
        batch.insert(
            position_key(checkpoint.partition),
            &checkpoint.next_offset.to_be_bytes(),
        );
        self.ensure_space()?;
        self.dir.written(self.tree.apply_batch(batch))?;
        Ok(())
    }

    /// Rewrites the workspace's stored chunks without the events the
    /// erasures forget, and stores the erasure records.
    fn forget_stored_records(
        &self,
        batch: &mut sled::Batch,
        workspace_id: &str,
        erasures: &[ErasureRecord],
    ) -> Result<(), ProjectorError> {
        if erasures.is_empty() {
            return Ok(());
        }
        let forgotten: BTreeSet<String> = erasures
            .iter()
            .flat_map(|e| e.message_ids.iter().cloned())
            .collect();
        for entry in self
            .tree
            .scan_prefix(workspace_prefix(CHUNK, Some(workspace_id)))
        {
            let (k, v) = entry?;
            let kept = keep_lines(&v, &forgotten);
            if kept.is_empty() {
                batch.remove(k);
            } else if kept.len() != v.len() {
                batch.insert(k, kept);
            }
        }
        for record in erasures {
            batch.insert(
                key(ERASURE, workspace_id, record.erasure_id.as_bytes()),
                encode_erasure(record)?,
            );
        }
        Ok(())
    }

    /// The erasure records of a workspace (all when `None`), with their
    /// workspace.
    pub fn erasures(
        &self,
        workspace_id: Option<&str>,
    ) -> impl Iterator<Item = Result<(String, ErasureRecord), ProjectorError>> + '_ {
        self.tree
            .scan_prefix(workspace_prefix(ERASURE, workspace_id))
            .map(|entry| {
                let (k, v) = entry?;
                let workspace = k
                    .get(1..)
                    .and_then(|rest| rest.split(|&b| b == 0).next())
                    .map(|w| String::from_utf8_lossy(w).into_owned())
                    .unwrap_or_default();
                let record = serde_json::from_slice(&v).map_err(|e| corrupt(&k, e))?;
                Ok((workspace, record))
            })
    }

    pub fn erasure(
        &self,
        workspace_id: &str,
        erasure_id: &str,
    ) -> Result<Option<ErasureRecord>, ProjectorError> {
        let k = key(ERASURE, workspace_id, erasure_id.as_bytes());
        self.tree
            .get(&k)?
            .map(|v| serde_json::from_slice(&v).map_err(|e| corrupt(&k, e)))
            .transpose()
    }

    /// Notes that an erasure's events are gone from the embedded log.
    pub fn mark_log_purged(
        &self,
        workspace_id: &str,
        mut record: ErasureRecord,
    ) -> Result<(), ProjectorError> {
        record.log_purged = true;
        self.dir.written(self.tree.insert(
            key(ERASURE, workspace_id, record.erasure_id.as_bytes()),
            encode_erasure(&record)?,
        ))?;
        Ok(())
    }

    /// The MAU rows erased people alone make up (key -> row), what a
    /// cleared store starts from so that it counts them even where no
    /// remaining event touches their month.
    fn retained_rows(&self) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, ProjectorError> {
        let mut retained: BTreeMap<(String, Month), RetainedMau> = BTreeMap::new();
        for record in self.erasures(None) {
            let (workspace, record) = record?;
            for (month, counts) in record.retained_months() {
                retained
                    .entry((workspace.clone(), month))
                    .or_default()
                    .add(counts);
            }
        }
        retained
            .into_iter()
            .map(|((workspace, month), counts)| {
                let row = counts.added_to(MonthlyActiveUsers::default().row(&workspace, month));
                let value = serde_json::to_vec(&row).map_err(|e| corrupt(b"mau", e))?;
                Ok((key(MAU, &workspace, month.to_string().as_bytes()), value))
            })
            .collect()
    }

    /// Moves the position of `partition` over offsets the log no longer
    /// holds (deleted by an erasure).
    pub fn skip_gap(&self, partition: u32, next_offset: u64) -> Result<(), ProjectorError> {
        self.dir.written(
            self.tree
                .insert(position_key(partition), &next_offset.to_be_bytes()),
        )?;
        Ok(())
    }

    pub fn size_on_disk(&self) -> Result<u64, ProjectorError> {
        Ok(self.dir.size_on_disk()?)
    }

    pub fn flush(&self) -> Result<(), ProjectorError> {
        Ok(self.dir.flush()?)
    }

    /// Refuses (retryably) while the data directory's filesystem is too
    /// full for a batch: checked before a batch changes anything, since
    /// sled stops writing for good after a write it fails for lack of space.
    pub fn ensure_space(&self) -> Result<(), ProjectorError> {
        Ok(self.dir.ensure_space(0)?)
    }

    /// Drops every projection and position, for `rebuild`. The positions go
    /// first, with the epoch bumped and the MAU rows that erased people
    /// alone make up written, in one batch: a crash part-way through leaves
    /// a store that folds from the start again (its remaining chunks only
    /// make re-folded events duplicates), never one that skips events or
    /// forgets an erased person's months. Erasure records stay.
    pub fn clear(&self) -> Result<(), ProjectorError> {
        let retained = self.retained_rows()?;
        let mut first = sled::Batch::default();
        for entry in self.tree.scan_prefix([POSITION]) {
            first.remove(entry?.0);
        }
        first.insert(&[EPOCH][..], &(self.epoch()? + 1).to_be_bytes());
        for (k, v) in &retained {
            first.insert(k.as_slice(), v.as_slice());
        }
        self.tree.apply_batch(first)?;
        let mut batch = sled::Batch::default();
        let mut pending = 0;
        for entry in self.tree.iter() {
            let (k, _) = entry?;
            let kept = k.as_ref() == [EPOCH]
                || k.first() == Some(&ERASURE)
                || retained.contains_key(k.as_ref());
            if !kept {
                batch.remove(k);
                pending += 1;
            }
            if pending == 10_000 {
                self.tree.apply_batch(std::mem::take(&mut batch))?;
                pending = 0;
            }
        }
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    /// Changes whenever the store is cleared, so cached state can tell.
    pub fn epoch(&self) -> Result<u64, ProjectorError> {
        read_u64(&self.tree, &[EPOCH])
    }

    pub fn profile(
        &self,
        workspace_id: &str,
        id: &Identifier,
    ) -> Result<Option<Value>, ProjectorError> {
        let k = key(PROFILE, workspace_id, id.to_string().as_bytes());
        self.tree
            .get(&k)?
            .map(|v| serde_json::from_slice(&v).map_err(|e| corrupt(&k, e)))
            .transpose()
    }

    /// The profile an identifier belongs to now: a user is its own profile;
    /// an email or device goes to what it resolves to.
    pub fn lookup(
        &self,
        workspace_id: &str,
        id: &Identifier,
    ) -> Result<Option<(Identifier, Value)>, ProjectorError> {
        let Some(target) = self.resolve(workspace_id, id)? else {
            return Ok(None);
        };
        Ok(self.profile(workspace_id, &target)?.map(|p| (target, p)))
    }

    /// The profile id an identifier resolves to, if it was ever seen (a
    /// user always resolves to itself).
    fn resolve(
        &self,
        workspace_id: &str,
        id: &Identifier,
    ) -> Result<Option<Identifier>, ProjectorError> {
        if id.kind == IdentifierKind::User {
            return Ok(Some(id.clone()));
        }
        let k = key(IDENTIFIER, workspace_id, id.to_string().as_bytes());
        let Some(v) = self.tree.get(&k)? else {
            return Ok(None);
        };
        let text = std::str::from_utf8(&v).map_err(|e| corrupt(&k, e))?;
        Identifier::parse(text)
            .map(Some)
            .ok_or_else(|| corrupt(&k, "not an identifier"))
    }

    /// [`Self::profile`] as the typed view readers use.
    pub fn profile_view(
        &self,
        workspace_id: &str,
        id: &Identifier,
    ) -> Result<Option<ProfileView>, ProjectorError> {
        let k = key(PROFILE, workspace_id, id.to_string().as_bytes());
        self.tree
            .get(&k)?
            .map(|v| serde_json::from_slice(&v).map_err(|e| corrupt(&k, e)))
            .transpose()
    }

    /// [`Self::lookup`] as the typed view: the profile an identifier
    /// belongs to now, and its id.
    pub fn lookup_view(
        &self,
        workspace_id: &str,
        id: &Identifier,
    ) -> Result<Option<(Identifier, ProfileView)>, ProjectorError> {
        let Some(target) = self.resolve(workspace_id, id)? else {
            return Ok(None);
        };
        Ok(self
            .profile_view(workspace_id, &target)?
            .map(|p| (target, p)))
    }

    /// [`Self::profiles`] as typed views, in the same order.
    pub fn profile_views(
        &self,
        workspace_id: Option<&str>,
    ) -> impl Iterator<Item = Result<ProfileView, ProjectorError>> + '_ {
        self.tree
            .scan_prefix(workspace_prefix(PROFILE, workspace_id))
            .map(|entry| {
                let (k, v) = entry?;
                serde_json::from_slice(&v).map_err(|e| corrupt(&k, e))
            })
    }

    pub fn mau_row(&self, workspace_id: &str, month: Month) -> Result<MauRow, ProjectorError> {
        let k = key(MAU, workspace_id, month.to_string().as_bytes());
        match self.tree.get(&k)? {
            Some(v) => parse_mau(&k, &v),
            None => Ok(MauRow {
                workspace_id: workspace_id.to_owned(),
                month: month.to_string(),
                identified: 0,
                anonymous: 0,
                total: 0,
            }),
        }
    }

    /// Every month with events, ascending; all workspaces when `None`.
    pub fn mau_rows(&self, workspace_id: Option<&str>) -> Result<Vec<MauRow>, ProjectorError> {
        self.tree
            .scan_prefix(workspace_prefix(MAU, workspace_id))
            .map(|entry| {
                let (k, v) = entry?;
                parse_mau(&k, &v)
            })
            .collect()
    }

    /// Every profile's JSON, sorted by workspace then id; all workspaces
    /// when `None`.
    pub fn profiles(
        &self,
        workspace_id: Option<&str>,
    ) -> impl Iterator<Item = Result<Value, ProjectorError>> + '_ {
        self.tree
            .scan_prefix(workspace_prefix(PROFILE, workspace_id))
            .map(|entry| {
                let (k, v) = entry?;
                serde_json::from_slice(&v).map_err(|e| corrupt(&k, e))
            })
    }

    /// `idfold export`: every profile, then every MAU row, as NDJSON sorted
    /// by workspace then id / month, object keys sorted.
    pub fn export(
        &self,
        workspace_id: Option<&str>,
        out: &mut dyn Write,
    ) -> Result<(), ProjectorError> {
        let io = ProjectorError::Output;
        for profile in self.profiles(workspace_id) {
            let mut profile = profile?;
            if let Value::Object(map) = &mut profile {
                map.insert("record".into(), Value::from("profile"));
            }
            writeln!(out, "{profile}").map_err(io)?;
        }
        for row in self.mau_rows(workspace_id)? {
            let mut value = serde_json::to_value(&row).map_err(|e| corrupt(b"mau", e))?;
            if let Value::Object(map) = &mut value {
                map.insert("record".into(), Value::from("mau"));
            }
            writeln!(out, "{value}").map_err(io)?;
        }
        Ok(())
    }
}

/// An 8-byte big-endian value, 0 when absent.
fn read_u64(tree: &sled::Tree, k: &[u8]) -> Result<u64, ProjectorError> {
    match tree.get(k)? {
        None => Ok(0),
        Some(v) => {
            let bytes: [u8; 8] = v
                .as_ref()
                .try_into()
                .map_err(|_| corrupt(k, "not 8 bytes"))?;
            Ok(u64::from_be_bytes(bytes))
        }
    }
}

fn encode_erasure(record: &ErasureRecord) -> Result<Vec<u8>, ProjectorError> {
    serde_json::to_vec(record).map_err(|e| corrupt(b"erasure", e))
}

fn parse_mau(k: &[u8], v: &[u8]) -> Result<MauRow, ProjectorError> {
    serde_json::from_slice(v).map_err(|e| corrupt(k, e))
}
