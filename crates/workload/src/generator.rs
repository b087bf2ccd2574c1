//! The stream: several sessions interleaved, time advancing with the line
//! number, a few late arrivals dated days earlier, and re-deliveries that
//! copy a line sent shortly before, byte for byte.

use std::collections::VecDeque;
use std::io::Write;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::civil_time::rfc3339;
use crate::population::index;
use crate::sessions::{Draft, Session, World};
use crate::spec::{probability, WorkloadSpec};

/// Sessions in progress at once; their events interleave in the stream.
const CONCURRENT_SESSIONS: usize = 8;
/// Re-deliveries copy one of this many most recent original lines.
const REDELIVERY_WINDOW: usize = 200;
const DAY: i64 = 86_400;

/// The workload's lines, one at a time.
#[derive(Debug)]
struct Lines {
    events: usize,
    seed: u64,
    duplicate_rate: f64,
    late_rate: f64,
    start: i64,
    end: i64,
    /// Seconds between consecutive lines (at least 0).
    step: i64,
    rng: StdRng,
    world: World,
    sessions: Vec<Session>,
    recent: VecDeque<String>,
    emitted: usize,
}

impl Lines {
    fn new(spec: &WorkloadSpec) -> Self {
        let (start, end) = spec.time_range();
        let span = end - start;
        let step = span / i64::try_from(spec.events.max(1)).unwrap_or(i64::MAX);
        Lines {
            events: spec.events,
            seed: spec.seed,
            duplicate_rate: probability(spec.duplicate_rate),
            late_rate: probability(spec.late_rate),
            start,
            end,
            step,
            rng: StdRng::seed_from_u64(spec.seed),
            world: World::new(spec.seed, spec.workspaces),
            sessions: Vec::with_capacity(CONCURRENT_SESSIONS),
            recent: VecDeque::with_capacity(REDELIVERY_WINDOW),
            emitted: 0,
        }
    }

    /// The next event of a session in progress.
    fn next_draft(&mut self) -> Draft {
        loop {
            while self.sessions.len() < CONCURRENT_SESSIONS {
                let session = self.world.session(&mut self.rng);
                self.sessions.push(session);
            }
            let i = index(&mut self.rng, self.sessions.len());
            let draft = self.sessions[i].drafts.pop_front();
            if self.sessions[i].drafts.is_empty() {
                let done = self.sessions.swap_remove(i);
                self.world.release(&done);
            }
            if let Some(draft) = draft {
                return draft;
            }
        }
    }

    /// The time of line `n`: evenly spread from the first to the last
    /// month, increasing, except late arrivals dated 1-10 days earlier.
    fn timestamp(&mut self, n: usize) -> String {
        let span = i128::from(self.end - self.start);
        let offset = i128::try_from(n).unwrap_or(i128::MAX) * span
            / i128::try_from(self.events.max(1)).unwrap_or(1);
        let mut t = self.start + i64::try_from(offset).unwrap_or(0);
        if self.step > 1 {
            t += self.rng.gen_range(0..self.step);
        }
        if self.rng.gen_bool(self.late_rate) {
            t -= self.rng.gen_range(DAY..10 * DAY);
        }
        rfc3339(t.clamp(self.start, self.end - 1))
    }

    fn render(&mut self, draft: &Draft) -> String {
        let n = self.emitted;
        let timestamp = self.timestamp(n);
        let body = draft.body.as_str();
        let mut line = String::with_capacity(112 + body.len());
        line.push_str("{\"type\":\"");
        line.push_str(draft.kind);
        line.push_str("\",\"message_id\":\"");
        line.push_str(&format!("m-{}-{n}", self.seed));
        line.push_str("\",\"workspace_id\":\"");
        line.push_str(&format!("ws-{}", draft.workspace));
        line.push_str("\",\"timestamp\":\"");
        line.push_str(&timestamp);
        line.push('"');
        if !body.is_empty() {
            line.push(',');
            line.push_str(body);
        }
        line.push('}');
        line
    }
}

impl Iterator for Lines {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        if self.emitted >= self.events {
            return None;
        }
        let line = if !self.recent.is_empty() && self.rng.gen_bool(self.duplicate_rate) {
            // A re-delivery of a line sent shortly before.
            let i = index(&mut self.rng, self.recent.len());
            self.recent[i].clone()
        } else {
            let draft = self.next_draft();
            let line = self.render(&draft);
            if self.recent.len() == REDELIVERY_WINDOW {
                self.recent.pop_front();
            }
            self.recent.push_back(line.clone());
            line
        };
        self.emitted += 1;
        Some(line)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.events - self.emitted;
        (left, Some(left))
    }
}

/// The workload: exactly `spec.events` NDJSON lines (without newlines),
/// the same for the same spec on every run and machine.
pub fn generate(spec: &WorkloadSpec) -> Vec<String> {
    Lines::new(spec).collect()
}

/// Streams the lines of [`generate`], each followed by `\n`, without
/// holding them all in memory.
pub fn write_ndjson(spec: &WorkloadSpec, out: &mut dyn Write) -> std::io::Result<()> {
    for line in Lines::new(spec) {
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
    }
    Ok(())
}
