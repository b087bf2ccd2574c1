//! The embedded log: one partition in a sled tree keyed by big-endian offset.

use std::sync::Mutex;

use crate::{DataDir, EventLog, EventSink, LogEntry, LogError, LogRecord};

const LOG_TREE: &str = "log";
const META_TREE: &str = "log_meta";
const COMMITTED_KEY: &[u8] = b"committed";
/// The end of the log when records were last deleted: deleting the last
/// records must not hand their offsets out again, or a fold that is past
/// them would skip the new ones.
const END_FLOOR_KEY: &[u8] = b"end_floor";

#[derive(Debug)]
pub struct EmbeddedLog {
    dir: DataDir,
    records: sled::Tree,
    meta: sled::Tree,
    /// Serialises appends so offsets are dense and ordered.
    append_lock: Mutex<()>,
}

impl EmbeddedLog {
    pub fn open(dir: &DataDir) -> Result<EmbeddedLog, LogError> {
        Ok(EmbeddedLog {
            dir: dir.clone(),
            records: dir.tree(LOG_TREE)?,
            meta: dir.tree(META_TREE)?,
            append_lock: Mutex::new(()),
        })
    }

    fn next_offset(&self) -> Result<u64, LogError> {
        let after_last = match self.records.last()? {
            Some((key, _)) => decode_u64(&key, "log offset")? + 1,
            None => 0,
        };
        let floor = match self.meta.get(END_FLOOR_KEY)? {
            Some(v) => decode_u64(&v, "end floor")?,
            None => 0,
        };
        Ok(after_last.max(floor))
    }

    /// The offset committed by the last fold, if any.
    pub fn committed(&self) -> Result<Option<u64>, LogError> {
        self.meta
            .get(COMMITTED_KEY)?
            .map(|v| decode_u64(&v, "committed offset"))
            .transpose()
    }
}

/// Reads an 8-byte big-endian key or value (offsets, sequence numbers).
pub(crate) fn decode_u64(bytes: &[u8], what: &str) -> Result<u64, LogError> {
    let array: [u8; 8] = bytes.try_into().map_err(|_| LogError::Corrupt {
        what: what.into(),
        detail: format!("{} bytes, expected 8", bytes.len()),
    })?;
    Ok(u64::from_be_bytes(array))
}

impl EmbeddedLog {
    /// Appends in order (one partition: keys do not matter); returns the
    /// offset of the first entry.
    pub fn append_entries(&self, entries: &[LogEntry]) -> Result<u64, LogError> {
        let _guard = self
            .append_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Refused before sled sees it: a write sled fails for lack of
        // space stops it writing anything until it is reopened.
        let bytes: usize = entries.iter().map(|e| e.payload.len() + 8).sum();
        self.dir.ensure_space(bytes as u64)?;
        let first = self.next_offset()?;
        let mut batch = sled::Batch::default();
        for (i, entry) in (first..).zip(entries) {
            batch.insert(&i.to_be_bytes(), entry.payload.as_slice());
        }
        self.dir.written(self.records.apply_batch(batch))?;
        // Durable before we answer: an accepted event must survive a crash.
        self.dir.flush()?;
        Ok(first)
    }
}

impl EventSink for EmbeddedLog {
    fn append(&self, entries: &[LogEntry]) -> Result<(), LogError> {
        self.append_entries(entries).map(|_| ())
    }
}

impl EventLog for EmbeddedLog {
    fn read_from(
        &self,
        partition: u32,
        offset: u64,
        max: usize,
    ) -> Result<Vec<LogRecord>, LogError> {
        if partition != 0 {
            return Ok(Vec::new());
        }
        self.records
            .range(offset.to_be_bytes()..)
            .take(max)
            .map(|entry| {
                let (key, value) = entry?;
                Ok(LogRecord {
                    partition,
                    offset: decode_u64(&key, "log offset")?,
                    payload: value.to_vec(),
                })
            })
            .collect()
    }

    fn end_offset(&self, partition: u32) -> Result<u64, LogError> {
        if partition != 0 {
            return Ok(0);
        }
        self.next_offset()
    }

    fn partitions(&self) -> Vec<u32> {
        vec![0]
    }

    fn name(&self) -> &str {
        "embedded"
    }

    fn commit(&self, _partition: u32, next_offset: u64) -> Result<(), LogError> {
        self.dir
            .written(self.meta.insert(COMMITTED_KEY, &next_offset.to_be_bytes()))?;
        Ok(())
    }

    fn can_forget(&self) -> bool {
        true
    }

    fn forget(&self, partition: u32, offsets: &[u64]) -> Result<(), LogError> {
        if partition != 0 || offsets.is_empty() {
            return Ok(());
        }
        let _guard = self
            .append_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.dir.ensure_space(0)?;
        self.dir.written(
            self.meta
                .insert(END_FLOOR_KEY, &self.next_offset()?.to_be_bytes()),
        )?;
        let mut batch = sled::Batch::default();
        for offset in offsets {
            batch.remove(&offset.to_be_bytes());
        }
        self.dir.written(self.records.apply_batch(batch))?;
        self.dir.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A log in a fresh directory (kept while the `TempDir` lives).
    fn fresh_log() -> Result<(tempfile::TempDir, EmbeddedLog), LogError> {
        let tmp = tempfile::tempdir().map_err(|e| LogError::Open {
            path: "tmp".into(),
            source: e,
        })?;
        let dir = DataDir::open(tmp.path(), Duration::ZERO)?;
        Ok((tmp, EmbeddedLog::open(&dir)?))
    }

    fn entry(payload: &[u8]) -> LogEntry {
        LogEntry {
            key: "w".into(),
            payload: payload.to_vec(),
        }
    }

    #[test]
    fn appends_are_dense_and_read_back_in_order() -> Result<(), LogError> {
        let (_tmp, log) = fresh_log()?;
        assert_eq!(log.append_entries(&[entry(b"a"), entry(b"b")])?, 0);
        assert_eq!(log.append_entries(&[entry(b"c")])?, 2);
        let read = log.read_from(0, 1, 10)?;
        let payloads: Vec<_> = read.iter().map(|r| (r.offset, r.payload.clone())).collect();
        assert_eq!(payloads, vec![(1, b"b".to_vec()), (2, b"c".to_vec())]);
        assert_eq!(log.end_offset(0)?, 3);
        Ok(())
    }

    #[test]
    fn forgotten_records_leave_a_gap_and_their_offsets_are_not_reused() -> Result<(), LogError> {
        let (_tmp, log) = fresh_log()?;
        log.append_entries(&[entry(b"a"), entry(b"b"), entry(b"c")])?;
        log.forget(0, &[1, 2])?;
        let offsets: Vec<u64> = log.read_from(0, 0, 10)?.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![0]);
        assert_eq!(
            log.append_entries(&[entry(b"d")])?,
            3,
            "2 is not handed out again"
        );
        Ok(())
    }

    #[test]
    fn an_unfinished_snapshot_left_by_a_full_disk_does_not_stop_the_next_open(
    ) -> Result<(), LogError> {
        let tmp = tempfile::tempdir().map_err(|e| LogError::Open {
            path: "tmp".into(),
            source: e,
        })?;
        {
            let dir = DataDir::open(tmp.path(), Duration::ZERO)?;
            EmbeddedLog::open(&dir)?.append_entries(&[entry(b"a")])?;
        }
        // What sled 0.34 leaves when ENOSPC hits its snapshot write: an
        // empty file it would take for the newest, corrupt, snapshot.
        let stray = tmp
            .path()
            .join("db")
            .join("snap.7FFFFFFFFFFFFFFF.generating");
        std::fs::write(&stray, b"").map_err(|e| LogError::Open {
            path: stray.clone(),
            source: e,
        })?;
        let dir = DataDir::open(tmp.path(), Duration::ZERO)?;
        let log = EmbeddedLog::open(&dir)?;
        assert_eq!(log.read_from(0, 0, 10)?.len(), 1);
        assert!(!stray.exists());
        Ok(())
    }

    #[test]
    fn once_sled_failed_for_lack_of_space_writes_wait_for_a_restart() -> Result<(), LogError> {
        let tmp = tempfile::tempdir().map_err(|e| LogError::Open {
            path: "tmp".into(),
            source: e,
        })?;
        let dir = DataDir::open(tmp.path(), Duration::ZERO)?;
        let log = EmbeddedLog::open(&dir)?;
        log.append_entries(&[entry(b"a")])?;
        // What sled answers (and keeps answering) after its ENOSPC.
        let full = sled::Error::Io(std::io::Error::from_raw_os_error(28));
        let failed = dir.written::<()>(Err(full));
        assert!(matches!(failed, Err(LogError::DiskFull { .. })));
        assert!(dir.is_poisoned());
        // Space is back (the temporary directory has room), sled is not:
        // neither a write nor a flush reaches it.
        let refused = log.append_entries(&[entry(b"b")]);
        assert!(
            matches!(refused, Err(LogError::NeedsReopen { .. })),
            "{refused:?}"
        );
        assert!(refused.is_err_and(|e| e.is_retryable() && !e.is_disk_full()));
        assert!(matches!(dir.flush(), Err(LogError::NeedsReopen { .. })));
        assert_eq!(log.read_from(0, 0, 10)?.len(), 1, "reads still answer");
        Ok(())
    }

    #[test]
    fn a_second_opener_is_told_the_directory_is_in_use() -> Result<(), LogError> {
        let tmp = tempfile::tempdir().map_err(|e| LogError::Open {
            path: "tmp".into(),
            source: e,
        })?;
        let _first = DataDir::open(tmp.path(), Duration::ZERO)?;
        assert!(matches!(
            DataDir::open(tmp.path(), Duration::ZERO),
            Err(LogError::Locked { .. })
        ));
        Ok(())
    }
}
