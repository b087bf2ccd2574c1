//! Group commit: one thread writes what every waiting request validated in
//! one durable write (one sled flush, or one wait for Kafka's acks), then
//! answers them all. The queue is bounded: a full one is answered 503 at
//! once instead of growing.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use idfold_log::{DeadLetterSink, EventSink};
use idfold_producer::{ProducerError, Publisher, Validated};
use idfold_telemetry::names;
use tokio::sync::oneshot;

use crate::error::IntakeError;

pub type SharedEventSink = Arc<dyn EventSink + Send + Sync>;
pub type SharedDeadLetterSink = Arc<dyn DeadLetterSink + Send + Sync>;

/// While the log keeps failing retryably (a full disk, a broker away), one
/// WARN line per this interval, not one per write.
const RETRYABLE_WARN_EVERY: Duration = Duration::from_secs(10);

/// At most this many requests, or this many inputs, per durable write.
const MAX_GROUP_REQUESTS: usize = 512;
const MAX_GROUP_INPUTS: usize = 100_000;

struct ClearOnDrop(Arc<AtomicBool>);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// How a write ended, for each request in it.
#[derive(Debug, Clone)]
enum Written {
    Durable,
    Unavailable,
    Refused(String),
}

struct Job {
    validated: Validated,
    reply: oneshot::Sender<Written>,
}

#[derive(Debug)]
pub struct DurableWriter {
    queue: SyncSender<Job>,
    /// Requests sent to the writer and not yet taken by it.
    waiting: Arc<AtomicUsize>,
    running: Arc<AtomicBool>,
    ack_timeout: Duration,
}

impl DurableWriter {
    /// Starts the writer thread. `queue_requests` bounds the requests
    /// waiting for it; `ack_timeout` bounds how long a request waits.
    pub fn start(
        events: SharedEventSink,
        dead_letters: SharedDeadLetterSink,
        queue_requests: usize,
        ack_timeout: Duration,
    ) -> std::io::Result<(DurableWriter, JoinHandle<()>)> {
        let (queue, jobs) = sync_channel(queue_requests.max(1));
        let running = Arc::new(AtomicBool::new(true));
        let flag = running.clone();
        let waiting = Arc::new(AtomicUsize::new(0));
        let taken = waiting.clone();
        let handle = std::thread::Builder::new()
            .name("durable-writer".into())
            .spawn(move || {
                // Cleared however the thread ends, a panic included, so
                // `/readyz` stops saying ready.
                let _running = ClearOnDrop(flag);
                write_groups(&jobs, &taken, &*events, &*dead_letters);
            })?;
        Ok((
            DurableWriter {
                queue,
                waiting,
                running,
                ack_timeout,
            },
            handle,
        ))
    }

    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    /// Returns once the batch is durable, or says why it is not.
    pub async fn write(&self, validated: Validated) -> Result<(), IntakeError> {
        let (reply, answer) = oneshot::channel();
        // Counted before it is sent, so the writer never takes more than
        // was counted.
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let sent = self.queue.try_send(Job { validated, reply });
        let waiting = if sent.is_err() {
            self.waiting
                .fetch_sub(1, Ordering::SeqCst)
                .saturating_sub(1)
        } else {
            self.waiting.load(Ordering::SeqCst)
        };
        metrics::gauge!(names::HTTP_WRITE_QUEUE).set(waiting as f64);
        match sent {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(IntakeError::Overloaded),
            Err(TrySendError::Disconnected(_)) => return Err(IntakeError::ShuttingDown),
        }
        match tokio::time::timeout(self.ack_timeout, answer).await {
            Err(_) => Err(IntakeError::AckTimeout),
            Ok(Err(_)) => Err(IntakeError::LogUnavailable),
            Ok(Ok(Written::Durable)) => Ok(()),
            Ok(Ok(Written::Unavailable)) => Err(IntakeError::LogUnavailable),
            Ok(Ok(Written::Refused(detail))) => Err(IntakeError::LogRefused(detail)),
        }
    }
}

/// Until every sender is gone: take what is waiting, write it, answer.
fn write_groups(
    jobs: &Receiver<Job>,
    waiting: &AtomicUsize,
    events: &(dyn EventSink + Send + Sync),
    dead_letters: &(dyn DeadLetterSink + Send + Sync),
) {
    let publisher = Publisher::new(events, dead_letters, "http");
    let mut last_warn: Option<Instant> = None;
    let mut unreported = 0usize;
    while let Ok(first) = jobs.recv() {
        let mut replies = vec![first.reply];
        let mut group = first.validated;
        while replies.len() < MAX_GROUP_REQUESTS && group.received() < MAX_GROUP_INPUTS {
            match jobs.try_recv() {
                Ok(job) => {
                    group.extend(job.validated);
                    replies.push(job.reply);
                }
                Err(_) => break,
            }
        }
        let left = waiting
            .fetch_sub(replies.len(), Ordering::SeqCst)
            .saturating_sub(replies.len());
        metrics::gauge!(names::HTTP_WRITE_QUEUE).set(left as f64);
        let written = match publisher.write(&group) {
            Ok(()) => {
                if unreported > 0 || last_warn.is_some() {
                    tracing::info!("writes to the log succeed again");
                    (last_warn, unreported) = (None, 0);
                }
                Written::Durable
            }
            Err(error) => {
                unreported += replies.len();
                let due = last_warn.is_none_or(|at| at.elapsed() >= RETRYABLE_WARN_EVERY);
                if !error.is_retryable() || due {
                    tracing::warn!(
                        requests = unreported,
                        retryable = error.is_retryable(),
                        "a write to the log failed: {error}: {}",
                        source_text(&error)
                    );
                    unreported = 0;
                    if error.is_retryable() {
                        last_warn = Some(Instant::now());
                    }
                }
                if error.is_retryable() {
                    Written::Unavailable
                } else {
                    Written::Refused(source_text(&error))
                }
            }
        };
        for reply in replies {
            // A request that gave up waiting has gone; nothing to tell it.
            let _ = reply.send(written.clone());
        }
    }
}

fn source_text(error: &ProducerError) -> String {
    match error {
        ProducerError::Log(log) => log.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use idfold_log::{DeadLetter, LogEntry, LogError};
    use idfold_producer::{validate, RawInput};
    use std::sync::Mutex;

    /// A log that holds writes back until released, and counts them.
    #[derive(Default)]
    struct GatedLog {
        open: Mutex<bool>,
        writes: Mutex<Vec<usize>>,
        fail: Mutex<Option<bool>>,
    }

    impl EventSink for GatedLog {
        fn append(&self, entries: &[LogEntry]) -> Result<(), LogError> {
            while !*self.open.lock().unwrap_or_else(|p| p.into_inner()) {
                std::thread::sleep(Duration::from_millis(5));
            }
            match *self.fail.lock().unwrap_or_else(|p| p.into_inner()) {
                Some(true) => {
                    return Err(LogError::Unavailable {
                        detail: "down".into(),
                    })
                }
                Some(false) => {
                    return Err(LogError::Refused {
                        detail: "no".into(),
                    })
                }
                None => {}
            }
            self.writes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(entries.len());
            Ok(())
        }
    }

    impl DeadLetterSink for GatedLog {
        fn append(&self, _: &[DeadLetter]) -> Result<(), LogError> {
            Ok(())
        }
    }

    fn one_event(id: usize) -> Validated {
        let bytes = format!(
            r#"{{"type":"track","message_id":"m{id}","workspace_id":"w","timestamp":"2026-01-01T00:00:00Z","user_id":"u","event":"E"}}"#
        )
        .into_bytes();
        let input = RawInput {
            bytes,
            ..RawInput::default()
        };
        validate("test", &[&input]).unwrap_or_default()
    }

    fn runtime() -> tokio::runtime::Runtime {
        match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn waiting_requests_share_one_write_and_a_full_queue_is_refused() {
        let log = Arc::new(GatedLog::default());
        let Ok((writer, handle)) =
            DurableWriter::start(log.clone(), log.clone(), 4, Duration::from_secs(30))
        else {
            panic!("no writer thread")
        };
        let writer = Arc::new(writer);
        let rt = runtime();
        // The first write blocks the thread; four more fill the queue.
        let mut waiting = Vec::new();
        for id in 0..5 {
            let w = writer.clone();
            waiting.push(rt.spawn(async move { w.write(one_event(id)).await }));
            std::thread::sleep(Duration::from_millis(30));
        }
        let refused = rt.block_on(writer.write(one_event(99)));
        assert_eq!(refused.err().map(|e| e.code()), Some("overloaded"));
        *log.open.lock().unwrap_or_else(|p| p.into_inner()) = true;
        for w in waiting {
            assert!(matches!(rt.block_on(w), Ok(Ok(()))));
        }
        // One write for the first request, one for the four queued behind it.
        assert_eq!(
            *log.writes.lock().unwrap_or_else(|p| p.into_inner()),
            vec![1, 4]
        );
        drop(writer);
        assert!(handle.join().is_ok());
    }

    #[test]
    fn failures_are_told_apart_and_a_slow_log_times_out() {
        let log = Arc::new(GatedLog::default());
        let Ok((writer, _handle)) =
            DurableWriter::start(log.clone(), log.clone(), 4, Duration::from_millis(100))
        else {
            panic!("no writer thread")
        };
        let rt = runtime();
        let timed_out = rt.block_on(writer.write(one_event(1)));
        assert_eq!(timed_out.err().map(|e| e.code()), Some("log_timeout"));
        *log.fail.lock().unwrap_or_else(|p| p.into_inner()) = Some(true);
        *log.open.lock().unwrap_or_else(|p| p.into_inner()) = true;
        let down = rt.block_on(writer.write(one_event(2)));
        assert_eq!(down.err().map(|e| e.code()), Some("log_unavailable"));
        *log.fail.lock().unwrap_or_else(|p| p.into_inner()) = Some(false);
        let refused = rt.block_on(writer.write(one_event(3)));
        assert_eq!(refused.err().map(|e| e.code()), Some("log_refused"));
    }
}
