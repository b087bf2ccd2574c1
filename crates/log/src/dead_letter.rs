//! Rejected inputs, kept with their original bytes, reason and origin.

use serde::{Deserialize, Serialize};

use crate::embedded::decode_u64;
use crate::{DataDir, DeadLetterSink, LogError};

const DLQ_TREE: &str = "dlq";

/// One rejected input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// A stable reason code (`invalid_json`, `too_large`, ...).
    pub reason: String,
    pub field: Option<String>,
    pub message: String,
    /// Where it came from: a file path, `stdin`, a topic...
    pub source: String,
    /// The source's partition, for sources that have them (topics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<u32>,
    /// The line (files) or offset (logs) within the source.
    pub position: Option<u64>,
    /// The original bytes (the first `bytes_kept` of them when `truncated`).
    #[serde(with = "base64_bytes")]
    pub raw: Vec<u8>,
    pub truncated: bool,
    /// The workspace whose write key sent it, where one was known (HTTP);
    /// absent in records written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
}

mod base64_bytes {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone)]
pub struct DeadLetterStore {
    dir: DataDir,
    tree: sled::Tree,
}

impl DeadLetterStore {
    pub fn open(dir: &DataDir) -> Result<DeadLetterStore, LogError> {
        Ok(DeadLetterStore {
            dir: dir.clone(),
            tree: dir.tree(DLQ_TREE)?,
        })
    }

    /// Stores the rejections in one batch (made durable by the caller's flush).
    pub fn store(&self, letters: &[DeadLetter]) -> Result<(), LogError> {
        if letters.is_empty() {
            return Ok(());
        }
        let bytes: usize = letters.iter().map(|l| l.raw.len() + 256).sum();
        self.dir.ensure_space(bytes as u64)?;
        let first = match self.tree.last()? {
            Some((key, _)) => decode_u64(&key, "dead letter key")? + 1,
            None => 0,
        };
        let mut batch = sled::Batch::default();
        for (seq, letter) in (first..).zip(letters) {
            let value = serde_json::to_vec(letter).map_err(|e| LogError::Corrupt {
                what: "dead letter".into(),
                detail: e.to_string(),
            })?;
            batch.insert(&seq.to_be_bytes(), value);
        }
        self.dir.written(self.tree.apply_batch(batch))?;
        Ok(())
    }

    /// Every dead letter with its sequence number, oldest first.
    pub fn list(&self) -> Result<Vec<(u64, DeadLetter)>, LogError> {
        self.tree
            .iter()
            .map(|entry| {
                let (key, value) = entry?;
                let letter = serde_json::from_slice(&value).map_err(|e| LogError::Corrupt {
                    what: "dead letter".into(),
                    detail: e.to_string(),
                })?;
                Ok((decode_u64(&key, "dead letter key")?, letter))
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.tree.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }
}

impl DeadLetterSink for DeadLetterStore {
    /// Stores and flushes: durable on return.
    fn append(&self, letters: &[DeadLetter]) -> Result<(), LogError> {
        if letters.is_empty() {
            return Ok(());
        }
        self.store(letters)?;
        self.dir.flush()
    }
}
