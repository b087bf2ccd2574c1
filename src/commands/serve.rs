//! `idfold serve`: the HTTP front door together with the pipeline. On the
//! embedded log the fold runs on a thread beside the server; on Kafka the
//! server writes to the canonical log and the stages follow it.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use idfold_access::{AccessConfig, ReadTokens, WriteKeys};
use idfold_config::IdfoldConfig;
use idfold_intake::{
    router, BodyTimeouts, ConnectionLimits, DurableWriter, IntakeState, Limits, Readiness,
    SharedDeadLetterSink, SharedEventSink,
};
use idfold_log::{DeadLetterStore, EmbeddedLog};
use idfold_projector::{BatchReport, Projector, StateStore};
use idfold_read_api::{ClusterView, ErasureLog, ReadState, SegmentStore};
use rand::Rng;

use super::fold::{options, summary, DiskWait, EMBEDDED_LOG};
use crate::{DataArgs, FoldArgs, KafkaArgs, Stages};

/// The workspace the generated development key writes to.
const DEV_WORKSPACE: &str = "dev";
/// How long the embedded fold sleeps when the log has nothing new.
const FOLD_IDLE: Duration = Duration::from_millis(100);

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free one; the line "listening on
    /// http://ADDR" says which).
    #[arg(long, env = "IDFOLD_LISTEN", default_value = "127.0.0.1:8088")]
    pub listen: SocketAddr,
    /// Requests handled at once; more are answered 503 with Retry-After.
    #[arg(long, env = "IDFOLD_MAX_INFLIGHT_REQUESTS", default_value_t = 256)]
    pub max_inflight_requests: usize,
    /// Connections open at once; one more is answered 503 and closed.
    #[arg(long, env = "IDFOLD_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// Seconds a connection has to send a request's headers (from accept,
    /// or from a later request's first byte) before it is closed.
    #[arg(long, env = "IDFOLD_HEADER_READ_TIMEOUT_SECS", default_value_t = 10)]
    pub header_read_timeout: u64,
    /// Seconds a kept-alive connection may wait for its next request.
    #[arg(long, env = "IDFOLD_KEEP_ALIVE_IDLE_SECS", default_value_t = 60)]
    pub keep_alive_idle: u64,
    /// Seconds a request body may go without a byte before it is answered 408.
    #[arg(long, env = "IDFOLD_BODY_PROGRESS_TIMEOUT_SECS", default_value_t = 10)]
    pub body_progress_timeout: u64,
    /// Seconds a request body may take in all before it is answered 408.
    #[arg(long, env = "IDFOLD_BODY_TIMEOUT_SECS", default_value_t = 30)]
    pub body_timeout: u64,
    /// Requests waiting for the log writer; more are answered 503.
    #[arg(long, env = "IDFOLD_WRITE_QUEUE", default_value_t = 128)]
    pub write_queue: usize,
    /// Seconds a request waits for the log to acknowledge it before it is
    /// answered 503 (it may then be in the log: a retry is dropped as a duplicate).
    #[arg(long, env = "IDFOLD_ACK_TIMEOUT_SECS", default_value_t = 10)]
    pub ack_timeout: u64,
    /// On Kafka: which stages run beside the server.
    #[arg(long, value_enum, default_value_t = Stages::All)]
    pub stages: Stages,
    /// Serve /metrics on this address instead of on --listen (keep it off
    /// the port the world reaches).
    #[arg(long, env = "IDFOLD_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// On Kafka: the URL other instances reach this one's API at (they
    /// forward reads of the workspaces it holds here). Default
    /// `http://LISTEN-ADDRESS`; needed when listening on 0.0.0.0.
    #[arg(long, env = "IDFOLD_ADVERTISE_URL")]
    pub advertise_url: Option<String>,
    /// Mark the dashboard's session cookie `Secure`: turn it on whenever
    /// the dashboard is reached over HTTPS (a TLS proxy in front).
    #[arg(
        long,
        env = "IDFOLD_DASHBOARD_SECURE_COOKIE",
        default_value_t = false,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub dashboard_secure_cookie: bool,
}

/// Who may write and read what: from the configuration, or, with none,
/// a generated development key and token for workspace `dev`.
struct Access {
    write_keys: WriteKeys,
    read_tokens: ReadTokens,
    workspaces: Vec<String>,
    /// (write key, read token), printed at start in development mode.
    development: Option<(String, String)>,
}

fn random_secret(prefix: &str) -> String {
    let mut rng = rand::thread_rng();
    let hex: String = (0..32)
        .map(|_| char::from_digit(rng.gen_range(0..16), 16).unwrap_or('0'))
        .collect();
    format!("{prefix}{hex}")
}

/// Workspaces, write keys and read tokens come from the configuration file
/// (`--config`) and from IDFOLD_WRITE_KEYS / IDFOLD_READ_TOKENS
/// (`workspace:secret,...`). With neither, serve listens on loopback only
/// with a generated development key.
fn access(args: &ServeArgs, file: Option<&IdfoldConfig>) -> anyhow::Result<Access> {
    let mut config = file.map(IdfoldConfig::access).unwrap_or_default();
    if let Ok(entries) = std::env::var("IDFOLD_WRITE_KEYS") {
        config.add_env_keys(&entries)?;
    }
    if let Ok(entries) = std::env::var("IDFOLD_READ_TOKENS") {
        config.add_env_read_tokens(&entries)?;
    }
    let write_keys = config.write_keys()?;
    if write_keys.is_empty() && !config.workspaces.is_empty() {
        anyhow::bail!(
            "the configuration lists workspaces ({}) but no write keys: add `write_keys` \
             to them, or leave them out to serve the development workspace on loopback",
            config.workspace_ids().join(", ")
        );
    }
    if !write_keys.is_empty() {
        return Ok(Access {
            read_tokens: config.read_tokens()?,
            write_keys,
            workspaces: config
                .workspace_ids()
                .into_iter()
                .map(str::to_owned)
                .collect(),
            development: None,
        });
    }
    if !args.listen.ip().is_loopback() {
        anyhow::bail!(
            "no write keys are configured, so idfold serves only on loopback; \
             give --config (or IDFOLD_WRITE_KEYS) to listen on {}",
            args.listen
        );
    }
    let (key, token) = (random_secret("idfold_dev_"), random_secret("idfold_read_"));
    let mut dev = AccessConfig::default();
    dev.add_env_keys(&format!("{DEV_WORKSPACE}:{key}"))?;
    dev.add_env_read_tokens(&format!("{DEV_WORKSPACE}:{token}"))?;
    Ok(Access {
        write_keys: dev.write_keys()?,
        read_tokens: dev.read_tokens()?,
        workspaces: vec![DEV_WORKSPACE.to_owned()],
        development: Some((key, token)),
    })
}

/// The embedded log is this process's own directory: if the writer thread
/// runs, it is there, and it takes writes while its filesystem has room.
struct EmbeddedReadiness(idfold_log::DataDir);

impl Readiness for EmbeddedReadiness {
    fn check(&self) -> Result<(), String> {
        self.0.ensure_space(0).map_err(|e| e.to_string())
    }
}

/// Ready when the broker answers with the canonical log and no stage is
/// waiting out a fault.
struct KafkaReadiness {
    writer: Arc<idfold_kafka::KafkaWriter>,
    stages: Arc<idfold_kafka::StageHealth>,
}

impl Readiness for KafkaReadiness {
    fn check(&self) -> Result<(), String> {
        self.writer.check_reachable(Duration::from_secs(2))?;
        self.stages.check()
    }
}

pub fn run(
    data: &DataArgs,
    kafka: &KafkaArgs,
    fold: &FoldArgs,
    args: &ServeArgs,
    file: Option<&IdfoldConfig>,
    metrics: idfold_telemetry::PrometheusHandle,
) -> anyhow::Result<ExitCode> {
    let access = access(args, file)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(args.listen))
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let ack_timeout = Duration::from_secs(args.ack_timeout.max(1));
    // The fold's state, read by the read API while the fold writes it.
    let dir = open_waiting_for_space(data, fold)?;
    let secs = |n: u64| Duration::from_secs(n.max(1));
    let limits = Limits {
        max_inflight_requests: args.max_inflight_requests,
        body: BodyTimeouts {
            progress: secs(args.body_progress_timeout),
            total: secs(args.body_timeout),
        },
    };
    let connections = ConnectionLimits {
        max_connections: args.max_connections.max(1),
        header_read_timeout: secs(args.header_read_timeout),
        keep_alive_idle: secs(args.keep_alive_idle),
        body_progress_timeout: limits.body.progress,
    };

    // The log the server writes to, and the pipeline that follows it.
    let (writer, writer_thread, pipeline, log_name, erasures, cluster): (
        _,
        _,
        std::thread::JoinHandle<anyhow::Result<()>>,
        String,
        ErasureLog,
        Option<ClusterView>,
    ) = match kafka.settings() {
        None => {
            let log = Arc::new(EmbeddedLog::open(&dir)?);
            let dead_letters = Arc::new(DeadLetterStore::open(&dir)?);
            let projector = Projector::open(&dir, options(fold))?;
            let batch_size = options(fold).batch_size;
            projector.store().bind_log(EMBEDDED_LOG)?;
            let events: SharedEventSink = log.clone();
            let erasures = ErasureLog::new(events.clone(), true);
            let letters: SharedDeadLetterSink = dead_letters;
            let (writer, writer_thread) =
                DurableWriter::start(events, letters, args.write_queue, ack_timeout)?;
            let stop = stop.clone();
            let pipeline = std::thread::Builder::new()
                .name("fold".into())
                .spawn(move || fold_embedded(&log, projector, batch_size, &stop))?;
            let state = IntakeState::new(
                access.write_keys.clone(),
                writer,
                Box::new(EmbeddedReadiness(dir.clone())),
                limits,
                super::system_clock,
            );
            (
                state,
                writer_thread,
                pipeline,
                format!("embedded log in {}", data.data.display()),
                erasures,
                None,
            )
        }
        Some(settings) => {
            if settings.acks != idfold_kafka::Acks::All {
                anyhow::bail!(
                    "serve answers 2xx only for events every in-sync replica has written; \
                     --kafka-acks leader would break that promise: leave it at `all`"
                );
            }
            let kafka_writer = Arc::new(idfold_kafka::KafkaWriter::new(&settings)?);
            let events: SharedEventSink = kafka_writer.clone();
            let erasures = ErasureLog::new(events.clone(), false);
            let letters: SharedDeadLetterSink = kafka_writer.clone();
            let (writer, writer_thread) =
                DurableWriter::start(events, letters, args.write_queue, ack_timeout)?;
            let log_name = format!(
                "Kafka at {} (canonical log {}, dead letters {})",
                settings.bootstrap, settings.topics.events, settings.topics.dead_letters
            );
            let follow_dir = dir.clone();
            let follow_fold = fold.clone();
            let stages = args.stages;
            // This instance among the others: what its fold holds, said
            // on P.instances; what the others hold, read from there.
            let url = match &args.advertise_url {
                Some(url) => url.trim_end_matches('/').to_owned(),
                None if address.ip().is_unspecified() => anyhow::bail!(
                    "serve listens on {address}: give --advertise-url (the URL other \
                     instances reach this one at) so they can forward reads here"
                ),
                None => format!("http://{address}"),
            };
            let role = super::kafka::ClusterRole {
                ownership: Arc::default(),
                // Unique where the URL is: every instance has its own.
                instance: settings
                    .instance_id
                    .clone()
                    .unwrap_or_else(|| format!("idfold-{url}")),
                url,
            };
            let registry = Arc::new(idfold_cluster::Registry::default());
            let view = ClusterView::new(&role.instance, role.ownership.clone(), registry.clone());
            {
                let (settings, stop, ownership) =
                    (settings.clone(), stop.clone(), role.ownership.clone());
                std::thread::Builder::new()
                    .name("instances".into())
                    .spawn(move || {
                        idfold_kafka::follow_instances(&settings, &registry, &ownership, &stop)
                    })?;
            }
            let stop = stop.clone();
            let health = Arc::new(idfold_kafka::StageHealth::default());
            let stage_health = health.clone();
            let pipeline = std::thread::Builder::new()
                .name("stages".into())
                .spawn(move || {
                    let outcome = super::kafka::follow(
                        &settings,
                        Some(&follow_dir),
                        &follow_fold,
                        stages,
                        &stop,
                        Some(&role),
                        &stage_health,
                    );
                    // However the stages end, the server stops with them.
                    stop.store(true, Ordering::SeqCst);
                    outcome
                })?;
            let state = IntakeState::new(
                access.write_keys.clone(),
                writer,
                Box::new(KafkaReadiness {
                    writer: kafka_writer,
                    stages: health,
                }),
                limits,
                super::system_clock,
            );
            (
                state,
                writer_thread,
                pipeline,
                log_name,
                erasures,
                Some(view),
            )
        }
    };
    let reads = ReadState::new(
        access.read_tokens.clone(),
        StateStore::open(&dir)?,
        SegmentStore::open(&dir)?,
        super::system_clock,
        Some(erasures),
        cluster,
        idfold_read_api::DashboardSettings {
            secure_cookie: args.dashboard_secure_cookie,
        },
    );

    // Listened for before anyone is told where to connect: a SIGTERM right
    // after start is a clean stop too.
    let shutdown = {
        let _inside = runtime.enter();
        super::shutdown_signal()
    };
    // The development key comes first: whoever reads `listening on` has it.
    if let Some((key, token)) = &access.development {
        eprintln!(
            "no write keys configured: serving workspace `{DEV_WORKSPACE}` on loopback only; \
             development write key: {key} read token: {token}"
        );
    }
    super::say(&format!("listening on http://{address}"));
    tracing::info!(%address, log = %log_name, workspaces = ?access.workspaces, "serving");

    let separate_metrics =
        super::MetricsServer::start_if(args.metrics_addr, Some(metrics.clone()))?;
    let mut app = router(writer).merge(idfold_read_api::router(reads));
    if separate_metrics.is_none() {
        app = app.merge(super::metrics_router(metrics));
    }
    let app = app
        .route("/openapi.json", axum::routing::get(openapi))
        .layer(axum::middleware::from_fn_with_state(
            limits.body,
            idfold_intake::timed_bodies,
        ))
        .layer(axum::middleware::from_fn(idfold_intake::json_errors))
        .layer(axum::middleware::from_fn(
            idfold_intake::record_http_metrics,
        ))
        .layer(axum::middleware::map_response(
            idfold_read_api::security_headers,
        ));
    let pipeline_stop = stop.clone();
    // After the signal, requests get this long to finish; a client that
    // holds a request open cannot keep the process from stopping.
    let drain = ack_timeout + Duration::from_secs(5);
    let (signalled, mut on_signal) = tokio::sync::watch::channel(false);
    let served = runtime.block_on(async move {
        let server = idfold_intake::serve_connections(listener, app, connections, async move {
            tokio::select! {
                _ = shutdown => {}
                // A pipeline that failed takes the server down with it.
                _ = wait_for_flag(pipeline_stop) => {}
            }
            let _ = signalled.send(true);
        });
        tokio::select! {
            served = server => served,
            _ = async {
                let _ = on_signal.wait_for(|s| *s).await;
                tokio::time::sleep(drain).await;
            } => {
                tracing::warn!(?drain, "requests still open after the drain time; closing them");
                Ok(())
            }
        }
    });
    // Drops what is left of open connections, and with them the last
    // handles on the writer's queue.
    runtime.shutdown_timeout(Duration::from_secs(1));
    // Every answered request is durable; the writer drains what is left
    // (requests that gave up waiting). A log that does not answer is not
    // waited for past the drain time: nothing it holds was acknowledged.
    let deadline = std::time::Instant::now() + drain;
    while !writer_thread.is_finished() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if writer_thread.is_finished() {
        writer_thread
            .join()
            .map_err(|_| anyhow::anyhow!("the log writer panicked"))?;
    } else {
        tracing::warn!("the log is not answering; stopping without the writes it holds (none was acknowledged)");
    }
    stop.store(true, Ordering::SeqCst);
    let pipeline = pipeline
        .join()
        .map_err(|_| anyhow::anyhow!("the pipeline panicked"))?;
    served.context("the HTTP server failed")?;
    pipeline?;
    super::say("stopped");
    Ok(ExitCode::SUCCESS)
}

/// The OpenAPI document of every route served, kept in the repository.
const OPENAPI: &str = include_str!("../../docs/openapi.json");

async fn openapi() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
}

async fn wait_for_flag(flag: Arc<AtomicBool>) {
    while !flag.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Opens the data directory; sled writes to open one, so on a full
/// filesystem it waits for space (saying so) rather than exiting.
fn open_waiting_for_space(data: &DataArgs, fold: &FoldArgs) -> anyhow::Result<idfold_log::DataDir> {
    let mut disk = DiskWait::default();
    loop {
        match data.open_for_fold(fold) {
            Ok(dir) => {
                disk.resumed("opening the data directory");
                return Ok(dir);
            }
            Err(error)
                if error
                    .downcast_ref::<idfold_log::LogError>()
                    .is_some_and(idfold_log::LogError::is_disk_full) =>
            {
                disk.wait("open", "opening the data directory", &error, None)
            }
            Err(error) => return Err(error),
        }
    }
}

/// Folds the embedded log as the server appends to it; on stop, folds what
/// is left and flushes, so a clean stop leaves nothing unfolded. A full
/// disk is waited out (the server keeps answering, writes get 503); any
/// other failure stops the server.
fn fold_embedded(
    log: &EmbeddedLog,
    mut projector: Projector,
    batch_size: usize,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let mut total = BatchReport::default();
    let mut signal = super::fold::CaughtUpSignal::default();
    let mut disk = DiskWait::default();
    let outcome = (|| -> anyhow::Result<()> {
        loop {
            let stopping = stop.load(Ordering::SeqCst);
            let folded = projector.fold_batch(log, 0).and_then(|batch| {
                if batch.read == 0 {
                    projector.store().flush()?;
                }
                Ok(batch)
            });
            let batch = match folded {
                Ok(batch) => batch,
                // What is not folded stays in the log, folded at the next start.
                Err(error) if error.is_disk_full() && stopping => return Ok(()),
                Err(error) if error.is_disk_full() => {
                    disk.wait("fold", "the fold", &error, Some(stop));
                    continue;
                }
                Err(error) => return Err(error.into()),
            };
            disk.resumed("the fold");
            signal.observe(0, batch.read, batch_size, projector.store().position(0)?);
            total.add(&batch);
            if batch.read == 0 {
                if stopping {
                    return Ok(());
                }
                std::thread::sleep(FOLD_IDLE);
            }
        }
    })();
    // Whatever happened, a failed fold stops the server too.
    stop.store(true, Ordering::SeqCst);
    if let Err(error) = projector.store().flush() {
        // Nothing acknowledged hangs on it: the log holds every event.
        tracing::warn!("the fold's last state is not flushed: {error}; it is refolded from the log at the next start");
        if outcome.is_ok() && !error.is_disk_full() {
            return Err(error.into());
        }
    }
    summary("stopped after folding", &total, true);
    outcome
}
