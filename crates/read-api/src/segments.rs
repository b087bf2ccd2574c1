//! Stored segments (per workspace, by name) and their evaluation: the
//! members of a segment, paged by profile id, and the segments a profile
//! is in.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use base64::Engine;
use idfold_log::{DataDir, LogError};
use idfold_segments::{parse, Filter};
use serde_json::Value;

use crate::error::ReadError;

const SEGMENTS_TREE: &str = "segments";

/// The most segments one workspace may keep, and the largest filter: each
/// is evaluated on every profile a members request reads.
pub const MAX_SEGMENTS: usize = 100;
pub const MAX_FILTER_BYTES: usize = 64 * 1024;

pub(crate) type Parsed = Arc<Vec<(String, Value, Filter)>>;

/// The segment definitions, in a tree of their own: a `rebuild` clears
/// the projections, not them. Parsed filters are kept per workspace, and
/// dropped when one of its segments is stored or deleted (this process is
/// the only writer).
#[derive(Debug, Clone)]
pub struct SegmentStore {
    /// For the free-space check before a write (a full disk is a 503).
    dir: DataDir,
    tree: sled::Tree,
    parsed: Arc<RwLock<HashMap<String, Parsed>>>,
}

fn key(workspace: &str, name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(workspace.len() + name.len() + 1);
    k.extend_from_slice(workspace.as_bytes());
    k.push(0);
    k.extend_from_slice(name.as_bytes());
    k
}

/// `[A-Za-z0-9_-]{1,64}`, so names sit in paths and keys unescaped.
pub fn check_name(name: &str) -> Result<(), ReadError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(ReadError::BadParameter {
            field: "name",
            message: "may only hold ASCII letters, digits, `_` and `-` (1 to 64)".into(),
        })
    }
}

impl SegmentStore {
    pub fn open(dir: &DataDir) -> Result<SegmentStore, LogError> {
        Ok(SegmentStore {
            dir: dir.clone(),
            tree: dir.tree(SEGMENTS_TREE)?,
            parsed: Arc::default(),
        })
    }

    pub fn put(&self, workspace: &str, name: &str, filter: &Value) -> Result<(), ReadError> {
        let is_new = self
            .tree
            .get(key(workspace, name))
            .map_err(store)?
            .is_none();
        if is_new && self.all(workspace)?.len() >= MAX_SEGMENTS {
            return Err(ReadError::BadParameter {
                field: "name",
                message: format!(
                    "would be segment {} of this workspace; the limit is {MAX_SEGMENTS}",
                    MAX_SEGMENTS + 1
                ),
            });
        }
        self.forget(workspace);
        let value = filter.to_string().into_bytes();
        self.writable(value.len())?;
        self.dir
            .written(self.tree.insert(key(workspace, name), value))
            .map_err(stored)?;
        self.dir.written(self.tree.flush()).map_err(stored)?;
        Ok(())
    }

    pub fn get(&self, workspace: &str, name: &str) -> Result<Option<Value>, ReadError> {
        self.tree
            .get(key(workspace, name))
            .map_err(store)?
            .map(|v| serde_json::from_slice(&v).map_err(|e| ReadError::Output(e.to_string())))
            .transpose()
    }

    /// True when there was one to delete.
    pub fn delete(&self, workspace: &str, name: &str) -> Result<bool, ReadError> {
        self.forget(workspace);
        self.writable(0)?;
        let removed = self
            .dir
            .written(self.tree.remove(key(workspace, name)))
            .map_err(stored)?;
        self.dir.written(self.tree.flush()).map_err(stored)?;
        Ok(removed.is_some())
    }

    fn forget(&self, workspace: &str) {
        if let Ok(mut parsed) = self.parsed.write() {
            parsed.remove(workspace);
        }
    }

    /// Every segment of a workspace, by name, parsed (once, then kept).
    pub fn all(&self, workspace: &str) -> Result<Parsed, ReadError> {
        if let Some(kept) = self
            .parsed
            .read()
            .ok()
            .and_then(|p| p.get(workspace).cloned())
        {
            return Ok(kept);
        }
        let loaded = Arc::new(self.load(workspace)?);
        if let Ok(mut parsed) = self.parsed.write() {
            parsed.insert(workspace.to_owned(), loaded.clone());
        }
        Ok(loaded)
    }

    fn load(&self, workspace: &str) -> Result<Vec<(String, Value, Filter)>, ReadError> {
        let prefix = key(workspace, "");
        self.tree
            .scan_prefix(&prefix)
            .map(|entry| {
                let (k, v) = entry.map_err(store)?;
                let name = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
                let json: Value =
                    serde_json::from_slice(&v).map_err(|e| ReadError::Output(e.to_string()))?;
                let filter = parse(&json).map_err(|e| ReadError::Output(e.to_string()))?;
                Ok((name, json, filter))
            })
            .collect()
    }
}

fn store(error: sled::Error) -> ReadError {
    ReadError::Store(idfold_projector::ProjectorError::from(error))
}

fn stored(error: LogError) -> ReadError {
    ReadError::Store(idfold_projector::ProjectorError::from(error))
}

impl SegmentStore {
    /// Refused (503) while the disk lacks room: sled must never meet a full
    /// disk itself (it then refuses every write until reopened).
    fn writable(&self, bytes: usize) -> Result<(), ReadError> {
        self.dir
            .ensure_space(u64::try_from(bytes).unwrap_or(u64::MAX))
            .map_err(stored)
    }
}

/// A members page's cursor: the last profile id listed.
pub fn encode_cursor(profile_id: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(profile_id)
}

pub fn decode_cursor(text: &str) -> Result<String, ReadError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or(ReadError::BadParameter {
            field: "cursor",
            message: "is not a cursor this API gave".into(),
        })
}
