//! The projection in sled. Keys put a workspace's entries together:
//! `<kind byte><workspace_id>\0<rest>`. Kinds (see docs/fold.md):
//! `N` an identifier's node (links, referrers), `T` a target's record
//! (profile contributions, monthly activity, who resolves to it), `H` an
//! email's or device's kept events, one chunk per batch, `U` a user's event
//! hashes, one chunk per batch, `s` one message-id hash (dedupe), `n` a
//! month's counts, `m` its MAU row as the read side serves it, `i` email or
//! device -> the profile it resolves to now, `x` erasure records; `o` the
//! log position per partition, `e` the epoch (bumped by a rebuild), `l` the
//! log the positions are in, `v` the format. A rebuild keeps the epoch and
//! the erasure records.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use idfold_events::{Identifier, IdentifierKind, Month};
use idfold_log::DataDir;
use serde_json::Value;

use crate::erasure::{ErasureRecord, RetainedMau};
use crate::error::ProjectorError;
use crate::mau::{MauRow, MonthCounts};
use crate::record::FoldRecord;
use crate::state::{
    decode_hashes, decode_history_chunk, decode_target, MessageHash, SeenMark, TargetRecord,
};
use crate::view::ProfileView;
use crate::workspace::{render_target, render_view, StateReader, WorkspaceChanges};

const STATE_TREE: &str = "state";
const NODE: u8 = b'N';
const TARGET: u8 = b'T';
const HISTORY: u8 = b'H';
const USER_EVENTS: u8 = b'U';
const SEEN: u8 = b's';
const MONTH_COUNTS: u8 = b'n';
const MAU: u8 = b'm';
const IDENTIFIER: u8 = b'i';
const POSITION: u8 = b'o';
const EPOCH: u8 = b'e';
const LOG_NAME: u8 = b'l';
const ERASURE: u8 = b'x';
const FORMAT: u8 = b'v';
/// The state's format: v1 kept every event as JSON in per-workspace chunks.
const FORMAT_VERSION: &[u8] = b"2";

fn key(kind: u8, workspace_id: &str, rest: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + workspace_id.len() + rest.len());
    k.push(kind);
    k.extend_from_slice(workspace_id.as_bytes());
    k.push(0);
    k.extend_from_slice(rest);
    k
}

fn id_key(kind: u8, workspace_id: &str, id: &Identifier) -> Vec<u8> {
    key(kind, workspace_id, id.to_string().as_bytes())
}

/// The prefix of an identifier's chunks (history, user events).
fn chunk_prefix(kind: u8, workspace_id: &str, id: &Identifier) -> Vec<u8> {
    let mut k = id_key(kind, workspace_id, id);
    k.push(0);
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

/// A key and its value.
type Entry = (Vec<u8>, Vec<u8>);

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
    /// Opens the projection; one of an older format is refused with the
    /// way out (`idfold rebuild`).
    pub fn open(dir: &DataDir) -> Result<StateStore, ProjectorError> {
        let store = StateStore::open_any_format(dir)?;
        store.check_format()?;
        Ok(store)
    }

    /// Opens the projection whatever its format (for a rebuild, which
    /// replaces it).
    pub fn open_any_format(dir: &DataDir) -> Result<StateStore, ProjectorError> {
        Ok(StateStore {
            dir: dir.clone(),
            tree: dir.tree(STATE_TREE)?,
        })
    }

    fn check_format(&self) -> Result<(), ProjectorError> {
        match self.tree.get([FORMAT])? {
            Some(found) if found.as_ref() == FORMAT_VERSION => Ok(()),
            Some(found) => Err(ProjectorError::NeedsRebuild {
                found: String::from_utf8_lossy(&found).into_owned(),
                reads: String::from_utf8_lossy(FORMAT_VERSION).into_owned(),
            }),
            None if self.tree.is_empty() => {
                self.dir
                    .written(self.tree.insert([FORMAT], FORMAT_VERSION))?;
                Ok(())
            }
            None => Err(ProjectorError::NeedsRebuild {
                found: "1".to_owned(),
                reads: String::from_utf8_lossy(FORMAT_VERSION).into_owned(),
            }),
        }
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

    /// The erasure records of one workspace, what its state starts from.
    pub fn workspace_erasures(
        &self,
        workspace_id: &str,
    ) -> Result<Vec<ErasureRecord>, ProjectorError> {
        self.erasures(Some(workspace_id))
            .map(|r| r.map(|(_, record)| record))
            .collect()
    }

    /// Writes one checkpoint in a single atomic sled batch.
    pub fn commit(&self, checkpoint: &Checkpoint) -> Result<(), ProjectorError> {
        let mut batch = sled::Batch::default();
        let mut chunk_id = checkpoint.partition.to_be_bytes().to_vec();
        chunk_id.extend_from_slice(&checkpoint.first_offset.to_be_bytes());
        for (w, changes) in &checkpoint.workspaces {
            for (hash, mark) in &changes.seen {
                batch.insert(key(SEEN, w, &hash.0), &[mark.to_byte()]);
            }
            for (kind, chunks) in [
                (HISTORY, &changes.history),
                (USER_EVENTS, &changes.user_events),
            ] {
                for (id, bytes, replace) in chunks {
                    let prefix = chunk_prefix(kind, w, id);
                    if *replace {
                        for entry in self.tree.scan_prefix(&prefix) {
                            batch.remove(entry?.0);
                        }
                    }
                    if !bytes.is_empty() {
                        let mut k = prefix;
                        k.extend_from_slice(&chunk_id);
                        batch.insert(k, bytes.as_slice());
                    }
                }
            }
            for (kind, entries) in [(NODE, &changes.nodes), (TARGET, &changes.targets)] {
                for (id, bytes) in entries {
                    let k = id_key(kind, w, id);
                    match bytes {
                        Some(bytes) => batch.insert(k, bytes.as_slice()),
                        None => batch.remove(k),
                    }
                }
            }
            for (id, target) in &changes.identifiers {
                let k = id_key(IDENTIFIER, w, id);
                match target {
                    Some(target) => batch.insert(k, target.to_string().as_bytes()),
                    None => batch.remove(k),
                }
            }
            let rows: BTreeSet<&str> = changes.months.iter().map(|r| r.month.as_str()).collect();
            for (month, counts) in &changes.month_counts {
                let name = month.to_string();
                let k = key(MONTH_COUNTS, w, name.as_bytes());
                match counts {
                    Some(counts) => {
                        batch.insert(k, postcard::to_stdvec(counts).unwrap_or_default())
                    }
                    None => batch.remove(k),
                }
                if !rows.contains(name.as_str()) {
                    batch.remove(key(MAU, w, name.as_bytes()));
                }
            }
            for row in &changes.months {
                let value = serde_json::to_vec(row).map_err(|e| corrupt(b"mau", e))?;
                batch.insert(key(MAU, w, row.month.as_bytes()), value);
            }
            for record in &changes.erasures {
                batch.insert(
                    key(ERASURE, w, record.erasure_id.as_bytes()),
                    encode_erasure(record)?,
                );
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

    /// What a cleared store starts from, for the erasures it keeps: the
    /// MAU rows erased people alone make up (so they count even where no
    /// remaining event touches their month), and their events' hashes
    /// marked forgotten (so a replay drops them).
    fn erasure_seeds(&self, v1: bool) -> Result<Vec<Entry>, ProjectorError> {
        let mut retained: BTreeMap<(String, Month), RetainedMau> = BTreeMap::new();
        let mut seeds = Vec::new();
        for record in self.erasures(None) {
            let (workspace, mut record) = record?;
            for (month, counts) in record.retained_months() {
                retained
                    .entry((workspace.clone(), month))
                    .or_default()
                    .add(counts);
            }
            if v1 {
                // v1 kept the message ids themselves.
                record.message_ids = record
                    .message_ids
                    .iter()
                    .map(|m| MessageHash::of(m).to_hex())
                    .collect();
                seeds.push((
                    key(ERASURE, &workspace, record.erasure_id.as_bytes()),
                    encode_erasure(&record)?,
                ));
            }
            for hex in &record.message_ids {
                if let Some(hash) = MessageHash::from_hex(hex) {
                    seeds.push((
                        key(SEEN, &workspace, &hash.0),
                        vec![SeenMark::Forgotten.to_byte()],
                    ));
                }
            }
        }
        for ((workspace, month), counts) in retained {
            let row = counts.added_to(MonthCounts::default().row(&workspace, month));
            let value = serde_json::to_vec(&row).map_err(|e| corrupt(b"mau", e))?;
            seeds.push((key(MAU, &workspace, month.to_string().as_bytes()), value));
        }
        Ok(seeds)
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
    /// first, with the epoch bumped, the format set and the erasures' seeds
    /// written, in one batch: a crash part-way through leaves a store that
    /// folds from the start again (its remaining entries are dropped by the
    /// next rebuild), never one that skips events or forgets an erased
    /// person's months. Erasure records stay.
    pub fn clear(&self) -> Result<(), ProjectorError> {
        let v1 = self.tree.get([FORMAT])?.is_none();
        let seeds = self.erasure_seeds(v1)?;
        let mut first = sled::Batch::default();
        for entry in self.tree.scan_prefix([POSITION]) {
            first.remove(entry?.0);
        }
        first.insert(&[EPOCH][..], &(self.epoch()? + 1).to_be_bytes());
        first.insert(&[FORMAT][..], FORMAT_VERSION);
        for (k, v) in &seeds {
            first.insert(k.as_slice(), v.as_slice());
        }
        self.tree.apply_batch(first)?;
        let kept: BTreeSet<&[u8]> = seeds.iter().map(|(k, _)| k.as_slice()).collect();
        let mut batch = sled::Batch::default();
        let mut pending = 0;
        for entry in self.tree.iter() {
            let (k, _) = entry?;
            let keep = k.as_ref() == [EPOCH]
                || k.as_ref() == [FORMAT]
                || k.first() == Some(&ERASURE)
                || kept.contains(k.as_ref());
            if !keep {
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

    fn target_record(
        &self,
        workspace_id: &str,
        id: &Identifier,
    ) -> Result<Option<TargetRecord>, ProjectorError> {
        let k = id_key(TARGET, workspace_id, id);
        self.tree
            .get(&k)?
            .map(|v| decode_target(&v).map_err(|e| corrupt(&k, e)))
            .transpose()
    }

    /// A profile's JSON bytes, rendered from its target record.
    pub fn profile_bytes(
        &self,
        workspace_id: &str,
        id: &Identifier,
    ) -> Result<Option<Vec<u8>>, ProjectorError> {
        Ok(self
            .target_record(workspace_id, id)?
            .and_then(|t| render_target(workspace_id, id, &t)))
    }

    pub fn profile(
        &self,
        workspace_id: &str,
        id: &Identifier,
    ) -> Result<Option<Value>, ProjectorError> {
        self.profile_bytes(workspace_id, id)?
            .map(|v| serde_json::from_slice(&v).map_err(|e| corrupt(b"profile", e)))
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
        let k = id_key(IDENTIFIER, workspace_id, id);
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
        Ok(self
            .target_record(workspace_id, id)?
            .and_then(|t| render_view(workspace_id, id, &t)))
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
        self.target_records(workspace_id).filter_map(|entry| {
            entry
                .map(|(workspace, id, target)| render_view(&workspace, &id, &target))
                .transpose()
        })
    }

    pub fn mau_row(&self, workspace_id: &str, month: Month) -> Result<MauRow, ProjectorError> {
        let k = key(MAU, workspace_id, month.to_string().as_bytes());
        match self.tree.get(&k)? {
            Some(v) => parse_mau(&k, &v),
            None => Ok(MonthCounts::default().row(workspace_id, month)),
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

    /// Every profile's JSON bytes, sorted by workspace then id; all
    /// workspaces when `None`.
    pub fn profiles_bytes(
        &self,
        workspace_id: Option<&str>,
    ) -> impl Iterator<Item = Result<Vec<u8>, ProjectorError>> + '_ {
        self.target_records(workspace_id).filter_map(|entry| {
            entry
                .map(|(workspace, id, target)| render_target(&workspace, &id, &target))
                .transpose()
        })
    }

    /// Every profile's JSON, sorted by workspace then id; all workspaces
    /// when `None`.
    pub fn profiles(
        &self,
        workspace_id: Option<&str>,
    ) -> impl Iterator<Item = Result<Value, ProjectorError>> + '_ {
        self.profiles_bytes(workspace_id)
            .map(|bytes| serde_json::from_slice(&bytes?).map_err(|e| corrupt(b"profile", e)))
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

    /// Bytes of state per kind of entry (keys and values), for the
    /// benchmark's state-per-event figure and `docs/fold.md`.
    pub fn state_bytes_by_kind(&self) -> Result<BTreeMap<char, (u64, u64)>, ProjectorError> {
        let mut out: BTreeMap<char, (u64, u64)> = BTreeMap::new();
        for entry in self.tree.iter() {
            let (k, v) = entry?;
            let kind = k.first().map_or('?', |b| char::from(*b));
            let slot = out.entry(kind).or_default();
            slot.0 += 1;
            slot.1 += (k.len() + v.len()) as u64;
        }
        Ok(out)
    }
}

impl StateStore {
    /// Every target record, with its workspace and id, sorted by workspace
    /// then id; all workspaces when `None`.
    fn target_records(
        &self,
        workspace_id: Option<&str>,
    ) -> impl Iterator<Item = Result<(String, Identifier, TargetRecord), ProjectorError>> + '_ {
        self.tree
            .scan_prefix(workspace_prefix(TARGET, workspace_id))
            .map(|entry| {
                let (k, v) = entry?;
                let (workspace, id) = split_id_key(&k).ok_or_else(|| corrupt(&k, "key"))?;
                let target = decode_target(&v).map_err(|e| corrupt(&k, e))?;
                Ok((workspace, id, target))
            })
    }
}

/// (workspace, identifier) of an `<kind><ws>\0<id>` key.
fn split_id_key(k: &[u8]) -> Option<(String, Identifier)> {
    let rest = k.get(1..)?;
    let zero = rest.iter().position(|&b| b == 0)?;
    let workspace = std::str::from_utf8(rest.get(..zero)?).ok()?;
    let id = std::str::from_utf8(rest.get(zero + 1..)?).ok()?;
    Some((workspace.to_owned(), Identifier::parse(id)?))
}

impl StateReader for StateStore {
    fn node(&self, workspace: &str, id: &Identifier) -> Result<Option<Vec<u8>>, ProjectorError> {
        Ok(self
            .tree
            .get(id_key(NODE, workspace, id))?
            .map(|v| v.to_vec()))
    }

    fn target(&self, workspace: &str, id: &Identifier) -> Result<Option<Vec<u8>>, ProjectorError> {
        Ok(self
            .tree
            .get(id_key(TARGET, workspace, id))?
            .map(|v| v.to_vec()))
    }

    fn history(&self, workspace: &str, id: &Identifier) -> Result<Vec<FoldRecord>, ProjectorError> {
        let mut records = Vec::new();
        for entry in self.tree.scan_prefix(chunk_prefix(HISTORY, workspace, id)) {
            let (k, v) = entry?;
            records.extend(decode_history_chunk(&v).map_err(|e| corrupt(&k, e))?);
        }
        Ok(records)
    }

    fn user_events(
        &self,
        workspace: &str,
        user: &Identifier,
    ) -> Result<Vec<MessageHash>, ProjectorError> {
        let mut hashes = Vec::new();
        for entry in self
            .tree
            .scan_prefix(chunk_prefix(USER_EVENTS, workspace, user))
        {
            hashes.extend(decode_hashes(&entry?.1));
        }
        Ok(hashes)
    }

    fn seen(&self, workspace: &str, hash: MessageHash) -> Result<Option<SeenMark>, ProjectorError> {
        Ok(self
            .tree
            .get(key(SEEN, workspace, &hash.0))?
            .map(|v| SeenMark::from_byte(v.first().copied().unwrap_or(0))))
    }

    fn month(&self, workspace: &str, month: Month) -> Result<Option<MonthCounts>, ProjectorError> {
        let k = key(MONTH_COUNTS, workspace, month.to_string().as_bytes());
        self.tree
            .get(&k)?
            .map(|v| postcard::from_bytes(&v).map_err(|e| corrupt(&k, e)))
            .transpose()
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
