//! One module per subcommand family.

pub mod config;
pub mod demo;
pub mod erase;
pub mod fold;
pub mod generate;
pub mod ingest;
pub mod kafka;
pub mod progress;
pub mod query;
pub mod serve;

use std::io::IsTerminal;
use std::net::SocketAddr;

use idfold_telemetry::PrometheusHandle;
use tracing_subscriber::EnvFilter;

static LOG_FORMAT: std::sync::OnceLock<crate::LogFormat> = std::sync::OnceLock::new();

/// A line for the operator on stderr: as it is in text mode, as a log
/// event with `--log-format json`, so that stderr holds JSON lines only.
pub fn say(line: &str) {
    match LOG_FORMAT.get() {
        Some(crate::LogFormat::Json) => tracing::info!("{line}"),
        _ => eprintln!("{line}"),
    }
}

/// Logs go to stderr, as text or JSON lines; `IDFOLD_LOG` sets the filter
/// (default: info for the long-running commands, warnings only for
/// one-shot ones).
pub fn init_logging(long_running: bool, format: crate::LogFormat) {
    let _ = LOG_FORMAT.set(format);
    let default = if long_running { "info" } else { "warn" };
    let filter = EnvFilter::try_from_env("IDFOLD_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    // Colour codes only for a person at a terminal: a file or a pipe (a
    // log collector, `2>log`) would get them as literal bytes.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        crate::LogFormat::Text => builder.init(),
        crate::LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// A flag raised by Ctrl-C or SIGTERM. The runtime watching for them (one
/// worker thread of its own, so signals are seen while a batch runs) lives
/// as long as the returned handle.
pub fn stop_on_signal() -> anyhow::Result<(
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    tokio::runtime::Runtime,
)> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let flag = stop.clone();
    let signal = {
        let _inside = runtime.enter();
        shutdown_signal()
    };
    runtime.spawn(async move {
        signal.await;
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    Ok((stop, runtime))
}

/// The clock the server stamps `received_at` with, evaluates segments at
/// and dates erasures by; the rules take time as an input and read none.
pub fn system_clock() -> idfold_events::EventTime {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_nanos()).unwrap_or(i64::MAX)
}

/// Ctrl-C or SIGTERM, listened for from the moment this is called (inside
/// a runtime): a signal that comes before anything awaits it is kept, not
/// left to its default action, which ends the process without a clean stop.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::terminate()).ok(),
            signal(SignalKind::interrupt()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        if let (Some(mut term), Some(mut interrupt)) = signals {
            tokio::select! {
                _ = term.recv() => {}
                _ = interrupt.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `GET /metrics` in Prometheus' text format.
pub fn metrics_router(handle: PrometheusHandle) -> axum::Router {
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let text = handle.render();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    text,
                )
            }
        }),
    )
}

/// `/metrics` on an address of its own, for `run` (`serve` has it on its
/// own port); served for as long as this is kept.
pub struct MetricsServer {
    _runtime: tokio::runtime::Runtime,
}

impl MetricsServer {
    /// Started when there is an address and a recorder.
    pub fn start_if(
        address: Option<SocketAddr>,
        handle: Option<PrometheusHandle>,
    ) -> anyhow::Result<Option<MetricsServer>> {
        match (address, handle) {
            (Some(address), Some(handle)) => MetricsServer::start(address, handle).map(Some),
            _ => Ok(None),
        }
    }

    pub fn start(address: SocketAddr, handle: PrometheusHandle) -> anyhow::Result<MetricsServer> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("metrics")
            .enable_all()
            .build()?;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(address))
            .map_err(|e| anyhow::anyhow!("cannot serve metrics on {address}: {e}"))?;
        let bound = listener.local_addr()?;
        tracing::info!(address = %bound, "serving /metrics");
        say(&format!("metrics on http://{bound}/metrics"));
        runtime.spawn(async move {
            // Its 404s and 405s in JSON too, with the headers every
            // answer of idfold carries.
            let app = metrics_router(handle)
                .layer(axum::middleware::from_fn(idfold_intake::json_errors))
                .layer(axum::middleware::map_response(
                    idfold_read_api::security_headers,
                ));
            if let Err(error) = axum::serve(listener, app).await {
                tracing::warn!(%error, "the metrics server stopped");
            }
        });
        Ok(MetricsServer { _runtime: runtime })
    }
}

/// A dead letter's original bytes in JSON: `("raw", text)` where they are
/// UTF-8, `("raw_base64", base64)` otherwise, so no byte is lost.
pub fn raw_bytes_json(raw: &[u8]) -> (&'static str, serde_json::Value) {
    match std::str::from_utf8(raw) {
        Ok(text) => ("raw", serde_json::Value::from(text)),
        Err(_) => {
            use base64::Engine;
            (
                "raw_base64",
                serde_json::Value::from(base64::engine::general_purpose::STANDARD.encode(raw)),
            )
        }
    }
}
