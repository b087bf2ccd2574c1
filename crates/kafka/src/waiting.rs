//! Waiting out what passes. A broker electing leaders, restarting or
//! moving a group coordinator, and a topic not yet known to every broker,
//! are faults every cluster has: the stages wait them out with backoff,
//! rebuilding their clients where librdkafka gave one up, and stop only on
//! what waiting cannot mend. Meanwhile readiness answers 503, a counter
//! counts each fault, and one WARN line per interval says what is awaited.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use idfold_telemetry::names;

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use rdkafka::ClientContext;

use crate::error::KafkaStageError;

/// At most one WARN line per source this often; the rest are counted.
pub const WARN_EVERY: Duration = Duration::from_secs(10);
/// The first pause before a stage is built again, doubled up to the next.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A stage that ran this long without a fault starts its backoff afresh.
const HEALTHY_RUN: Duration = Duration::from_secs(30);
/// New clients given up again this many times in a row, each within
/// `HEALTHY_RUN`: not a passing fault.
const MAX_QUICK_REBUILDS: u32 = 5;

/// What each Kafka stage of this process is doing: running, or waiting
/// out a fault. Readiness reads it.
#[derive(Debug, Default)]
pub struct StageHealth {
    waiting: Mutex<BTreeMap<&'static str, String>>,
}

impl StageHealth {
    pub fn waiting(&self, stage: &'static str, what: &dyn Display) {
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.insert(stage, what.to_string());
        }
    }

    pub fn running(&self, stage: &'static str) {
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.remove(stage);
        }
    }

    /// Ok when no stage waits; otherwise what each waits for.
    pub fn check(&self) -> Result<(), String> {
        let waiting = self
            .waiting
            .lock()
            .map_err(|_| "stage health unknown".to_owned())?;
        if waiting.is_empty() {
            return Ok(());
        }
        Err(waiting
            .iter()
            .map(|(stage, what)| format!("the {stage} stage is waiting: {what}"))
            .collect::<Vec<_>>()
            .join("; "))
    }
}

/// A WARN line at most once per `WARN_EVERY` for one source, saying how
/// many occurrences it stands for; every occurrence is counted in
/// `idfold_kafka_transient_errors_total{stage}`.
#[derive(Debug)]
pub(crate) struct WarnEvery {
    stage: &'static str,
    /// When the last line was written, and occurrences since.
    last: Mutex<(Option<Instant>, u64)>,
}

impl WarnEvery {
    pub(crate) const fn new(stage: &'static str) -> WarnEvery {
        WarnEvery {
            stage,
            last: Mutex::new((None, 0)),
        }
    }

    pub(crate) fn transient(&self, waiting_for: &str, error: &dyn Display) {
        metrics::counter!(names::KAFKA_TRANSIENT_ERRORS, "stage" => self.stage).increment(1);
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        let (at, count) = &mut *last;
        *count += 1;
        if at.is_some_and(|at| at.elapsed() < WARN_EVERY) {
            return;
        }
        tracing::warn!(
            stage = self.stage,
            error = %error,
            occurrences = *count,
            "{waiting_for}"
        );
        *at = Some(Instant::now());
        *count = 0;
    }
}

/// Polls without a fault for this long mean the broker is back.
const FAULT_QUIET: Duration = Duration::from_secs(5);

/// A running stage's view of its polls: a fault marks the stage waiting
/// (and is warned about once per interval); records flowing again, or
/// polls quiet for a while, mark it running.
#[derive(Debug)]
pub(crate) struct FaultWatch {
    stage: &'static str,
    warn: &'static WarnEvery,
    pub(crate) health: Arc<StageHealth>,
    last_fault: Option<Instant>,
}

impl FaultWatch {
    pub(crate) fn new(stage: &'static str, warn: &'static WarnEvery) -> FaultWatch {
        FaultWatch {
            stage,
            warn,
            health: Arc::default(),
            last_fault: None,
        }
    }

    pub(crate) fn fault(&mut self, waiting_for: &str, error: &dyn Display) {
        self.health.waiting(self.stage, error);
        self.last_fault = Some(Instant::now());
        self.warn.transient(waiting_for, error);
    }

    pub(crate) fn polled(&mut self, got_record: bool) {
        if let Some(at) = self.last_fault {
            if got_record || at.elapsed() >= FAULT_QUIET {
                self.health.running(self.stage);
                self.last_fault = None;
            }
        }
    }
}

/// One source of warnings per kind of client.
pub(crate) static FOLD: WarnEvery = WarnEvery::new("fold");
pub(crate) static RAW: WarnEvery = WarnEvery::new("raw");
pub(crate) static WRITER: WarnEvery = WarnEvery::new("writer");
pub(crate) static INSTANCES: WarnEvery = WarnEvery::new("instances");
/// Admin requests and one-off readers (`topics`, `dlq --kafka`).
pub(crate) static ADMIN: WarnEvery = WarnEvery::new("admin");

/// librdkafka's own log lines, for a client context: a refused connection
/// is logged by every broker thread about once a second, so problems go
/// through `warn` (once per interval) and the rest to debug.
pub(crate) fn client_log(warn: &WarnEvery, level: RDKafkaLogLevel, facility: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => warn.transient(
            "Kafka client: waiting for the broker (librdkafka reconnects by itself)",
            &format_args!("{facility}: {message}"),
        ),
        _ => tracing::debug!(facility, message, "librdkafka"),
    }
}

/// librdkafka's error callback, for a client context.
pub(crate) fn client_error(warn: &WarnEvery, error: &KafkaError, reason: &str) {
    warn.transient(
        "Kafka client: waiting for the broker (librdkafka reconnects by itself)",
        &format_args!("{error}: {reason}"),
    );
}

/// The context of a client with nothing of its own to do in callbacks
/// (admin, readers): librdkafka's problems reported through `warn`.
#[derive(Debug, Clone, Copy)]
pub struct QuietContext(pub(crate) &'static WarnEvery);

impl ClientContext for QuietContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        client_log(self.0, level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        client_error(self.0, &error, reason);
    }
}

impl ConsumerContext for QuietContext {}

/// How long a stage's faults are waited out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Patience {
    /// A follower (`serve`, `run`): for as long as they last.
    Forever,
    /// A one-off command: a broker that never answered is reported at once
    /// (someone waits for the answer); once the stage ran, faults are
    /// waited out like a follower's.
    OnceStarted,
}

/// Builds a stage and runs it, building it again after every fault that
/// waiting can mend, until it finishes, fails for good, or `stop` is
/// raised while it waits (then `Ok(None)`). `build` is told whether this
/// is its first build. A topic missing for longer than `topic_grace` is
/// failing for good.
pub fn supervise<S, T>(
    stage: &'static str,
    health: &StageHealth,
    stop: &AtomicBool,
    patience: Patience,
    topic_grace: Duration,
    mut build: impl FnMut(bool) -> Result<S, KafkaStageError>,
    mut run: impl FnMut(&mut S) -> Result<T, KafkaStageError>,
) -> Result<Option<T>, KafkaStageError> {
    let warn = WarnEvery::new(stage);
    let mut backoff = FIRST_BACKOFF;
    let mut built_once = false;
    let mut missing_since: Option<Instant> = None;
    // New clients that were given up again within a short run: one or two
    // after a broker restart; many mean another member has this instance id.
    let mut quick_rebuilds = 0;
    loop {
        let started = Instant::now();
        let outcome = build(!built_once).and_then(|mut s| {
            built_once = true;
            health.running(stage);
            run(&mut s)
        });
        let error = match outcome {
            Ok(done) => {
                health.running(stage);
                return Ok(Some(done));
            }
            Err(error) => error,
        };
        // Marked before anything else: readiness says so at once.
        health.waiting(stage, &error);
        if error.is_missing_topic() {
            missing_since.get_or_insert(started);
        } else {
            missing_since = None;
        }
        let ran_long = started.elapsed() >= HEALTHY_RUN;
        if error.needs_new_client() {
            quick_rebuilds = if ran_long { 0 } else { quick_rebuilds + 1 };
        }
        if quick_rebuilds >= MAX_QUICK_REBUILDS {
            return Err(KafkaStageError::FencedRepeatedly {
                times: quick_rebuilds,
                detail: error.to_string(),
            });
        }
        let gives_up = !error.is_retryable()
            || (patience == Patience::OnceStarted && !built_once && !error.is_missing_topic())
            || missing_since.is_some_and(|since| since.elapsed() >= topic_grace);
        if gives_up {
            return Err(error);
        }
        if ran_long {
            backoff = FIRST_BACKOFF;
        }
        if error.needs_new_client() {
            metrics::counter!(names::KAFKA_CLIENT_REBUILDS, "stage" => stage).increment(1);
        }
        warn.transient(
            "waiting for Kafka; the stage is built again when it answers",
            &error,
        );
        if !sleep_unless_stopped(backoff, stop) {
            return Ok(None);
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Sleeps `pause` in short steps; false when `stop` was raised meanwhile.
pub(crate) fn sleep_unless_stopped(pause: Duration, stop: &AtomicBool) -> bool {
    let until = Instant::now() + pause;
    while Instant::now() < until {
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
    }
    !stop.load(Ordering::SeqCst)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::error::RDKafkaErrorCode;
    use std::cell::Cell;

    fn unreachable() -> KafkaStageError {
        KafkaStageError::Unreachable {
            bootstrap: "b".into(),
            detail: "down".into(),
        }
    }

    #[test]
    fn a_follower_builds_again_until_the_fault_passes_and_reports_health_meanwhile() {
        let health = StageHealth::default();
        let stop = AtomicBool::new(false);
        let builds = Cell::new(0);
        let outcome = supervise(
            "fold",
            &health,
            &stop,
            Patience::Forever,
            Duration::from_secs(60),
            |_| {
                builds.set(builds.get() + 1);
                if builds.get() < 3 {
                    // Not yet ready while it waits.
                    if builds.get() == 2 {
                        assert!(health.check().is_err());
                    }
                    Err(unreachable())
                } else {
                    Ok(())
                }
            },
            |_| Ok(7),
        );
        assert_eq!(outcome.ok().flatten(), Some(7));
        assert_eq!(builds.get(), 3);
        assert!(health.check().is_ok());
    }

    #[test]
    fn a_fenced_member_is_rebuilt_and_a_permanent_error_is_not() {
        let health = StageHealth::default();
        let stop = AtomicBool::new(false);
        let runs = Cell::new(0);
        let outcome = supervise(
            "fold",
            &health,
            &stop,
            Patience::Forever,
            Duration::from_secs(60),
            |_| Ok(()),
            |_| {
                runs.set(runs.get() + 1);
                if runs.get() == 1 {
                    Err(KafkaStageError::from(KafkaError::MessageConsumptionFatal(
                        RDKafkaErrorCode::FencedInstanceId,
                    )))
                } else {
                    Ok(runs.get())
                }
            },
        );
        assert_eq!(outcome.ok().flatten(), Some(2));

        let permanent = supervise(
            "fold",
            &health,
            &stop,
            Patience::Forever,
            Duration::from_secs(60),
            |_| Ok(()),
            |_| -> Result<(), _> {
                Err(KafkaStageError::from(KafkaError::MessageProduction(
                    RDKafkaErrorCode::TopicAuthorizationFailed,
                )))
            },
        );
        assert!(permanent.is_err());
        assert!(health.check().is_err(), "a stopped stage is not ready");
    }

    /// Supervises a stage whose every build fails with `error`: the
    /// outcome, and how many builds were tried.
    fn every_build_failing(
        patience: Patience,
        topic_grace: Duration,
        error: impl Fn() -> KafkaStageError,
    ) -> (Result<Option<()>, KafkaStageError>, usize) {
        let builds = Cell::new(0);
        let outcome = supervise(
            "fold",
            &StageHealth::default(),
            &AtomicBool::new(false),
            patience,
            topic_grace,
            |_| {
                builds.set(builds.get() + 1);
                Err::<(), _>(error())
            },
            |_| Ok(()),
        );
        (outcome, builds.get())
    }

    #[test]
    fn a_one_off_command_reports_a_broker_that_never_answered() {
        let (outcome, builds) =
            every_build_failing(Patience::OnceStarted, Duration::from_secs(60), unreachable);
        assert!(outcome.is_err());
        assert_eq!(builds, 1);
    }

    #[test]
    fn a_missing_topic_is_waited_for_only_within_the_grace() {
        let (outcome, builds) =
            every_build_failing(Patience::Forever, Duration::from_millis(600), || {
                KafkaStageError::TopicMissing {
                    topic: "p.events".into(),
                }
            });
        assert!(matches!(outcome, Err(KafkaStageError::TopicMissing { .. })));
        assert!(builds >= 2, "waited for the topic first");
    }

    #[test]
    fn a_client_fenced_again_and_again_is_another_member_with_its_instance_id() {
        let runs = Cell::new(0);
        let outcome: Result<Option<()>, _> = supervise(
            "fold",
            &StageHealth::default(),
            &AtomicBool::new(false),
            Patience::Forever,
            Duration::from_secs(60),
            |_| Ok(()),
            |_| {
                runs.set(runs.get() + 1);
                Err(KafkaStageError::from(KafkaError::MessageConsumptionFatal(
                    RDKafkaErrorCode::FencedInstanceId,
                )))
            },
        );
        assert!(matches!(
            outcome,
            Err(KafkaStageError::FencedRepeatedly { times: 5, .. })
        ));
        assert_eq!(runs.get(), 5);
    }

    #[test]
    fn a_fault_is_warned_once_per_interval_and_counted_every_time() {
        let mut watch = FaultWatch::new("raw", &RAW);
        let health = watch.health.clone();
        watch.fault("waiting", &"down");
        watch.fault("waiting", &"down");
        assert!(health.check().is_err());
        let (at, count) = *RAW.last.lock().expect("lock");
        assert!(at.is_some(), "the first one is said");
        assert_eq!(count, 1, "the second is counted for the next line");
        watch.polled(false);
        assert!(health.check().is_err(), "quiet for too short a while");
        watch.polled(true);
        assert!(health.check().is_ok(), "records flow again");
    }

    #[test]
    fn stop_ends_the_wait() {
        let health = StageHealth::default();
        let stop = AtomicBool::new(false);
        let outcome: Result<Option<()>, _> = supervise(
            "raw",
            &health,
            &stop,
            Patience::Forever,
            Duration::from_secs(60),
            |_| {
                stop.store(true, Ordering::SeqCst);
                Err(unreachable())
            },
            |_: &mut ()| Ok(()),
        );
        assert!(matches!(outcome, Ok(None)));
    }
}
