//! NDJSON input with bounded memory: a line longer than `MAX_LINE_BYTES` is
//! kept only in part (it is over the 32 KiB event limit anyway) and the rest
//! skipped, and a batch ends at a line count or a byte budget.

use std::io::BufRead;

use crate::publisher::RawInput;

/// How much of an over-long line is kept for the dead-letter store: twice
/// the event limit, so any rejected line still shows why.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Reads lines from several sources in turn, numbering them across all of
/// them from 1. Blank lines are skipped (but counted in the numbering).
#[derive(Debug)]
pub struct NdjsonReader {
    line: u64,
}

impl Default for NdjsonReader {
    fn default() -> Self {
        NdjsonReader::new()
    }
}

impl NdjsonReader {
    pub fn new() -> NdjsonReader {
        NdjsonReader { line: 0 }
    }

    /// Reads up to `max` non-blank lines, or about `max_bytes` of them, from
    /// `reader`; `Ok(None)` at its end.
    pub fn read_batch(
        &mut self,
        reader: &mut dyn BufRead,
        max: usize,
        max_bytes: usize,
    ) -> std::io::Result<Option<Vec<RawInput>>> {
        let mut batch = Vec::new();
        let mut bytes_read = 0;
        while batch.len() < max && bytes_read < max_bytes {
            let Some((bytes, truncated)) = read_line(reader)? else {
                return Ok(if batch.is_empty() { None } else { Some(batch) });
            };
            self.line += 1;
            if bytes.iter().all(u8::is_ascii_whitespace) && !truncated {
                continue;
            }
            bytes_read += bytes.len();
            batch.push(RawInput {
                bytes,
                position: Some(self.line),
                truncated,
                ..RawInput::default()
            });
        }
        Ok(Some(batch))
    }
}

/// One line without its `\n` (and `\r`), at most `MAX_LINE_BYTES` of it.
fn read_line(reader: &mut dyn BufRead) -> std::io::Result<Option<(Vec<u8>, bool)>> {
    let mut line = Vec::new();
    let mut truncated = false;
    let mut saw_any = false;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        saw_any = true;
        let (chunk, found_newline) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], true),
            None => (buf, false),
        };
        let room = MAX_LINE_BYTES.saturating_sub(line.len());
        if chunk.len() > room {
            truncated = true;
        }
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let consumed = chunk.len() + usize::from(found_newline);
        reader.consume(consumed);
        if found_newline {
            break;
        }
    }
    if !saw_any {
        return Ok(None);
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(Some((line, truncated)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_lines_across_sources_and_skips_blanks() -> std::io::Result<()> {
        let mut reader = NdjsonReader::new();
        let mut a: &[u8] = b"{\"a\":1}\n\n{\"b\":2}\r\n";
        let mut b: &[u8] = b"{\"c\":3}";
        let first = reader.read_batch(&mut a, 10, 1 << 20)?.unwrap_or_default();
        assert_eq!(
            first.iter().map(|i| i.position).collect::<Vec<_>>(),
            vec![Some(1), Some(3)]
        );
        assert_eq!(first[1].bytes, b"{\"b\":2}");
        assert!(reader.read_batch(&mut a, 10, 1 << 20)?.is_none());
        let second = reader.read_batch(&mut b, 10, 1 << 20)?.unwrap_or_default();
        assert_eq!(second[0].position, Some(4));
        Ok(())
    }

    #[test]
    fn a_batch_ends_at_its_byte_budget() -> std::io::Result<()> {
        let mut input: &[u8] = b"aaaa\nbbbb\ncccc\n";
        let mut reader = NdjsonReader::new();
        let first = reader.read_batch(&mut input, 10, 6)?.unwrap_or_default();
        assert_eq!(first.len(), 2, "stops once 6 bytes are read");
        let rest = reader.read_batch(&mut input, 10, 6)?.unwrap_or_default();
        assert_eq!((rest.len(), rest[0].position), (1, Some(3)));
        Ok(())
    }

    #[test]
    fn over_long_lines_are_cut_not_buffered_whole() -> std::io::Result<()> {
        let mut big = vec![b'x'; MAX_LINE_BYTES * 3];
        big.extend_from_slice(b"\n{}\n");
        let mut reader = NdjsonReader::new();
        let batch = reader
            .read_batch(&mut std::io::BufReader::new(&big[..]), 10, 1 << 20)?
            .unwrap_or_default();
        assert_eq!(batch.len(), 2);
        assert!(batch[0].truncated);
        assert_eq!(batch[0].bytes.len(), MAX_LINE_BYTES);
        assert_eq!(batch[1].bytes, b"{}");
        Ok(())
    }
}
