//! The Prometheus exporter: one recorder for the process, histograms as
//! real histograms with buckets, and upkeep so that their memory stays
//! bounded when nobody scrapes.

use std::time::Duration;

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder};

pub use metrics_exporter_prometheus::PrometheusHandle;

use crate::names;

/// Seconds: from a fast read to a slow Kafka acknowledgement.
const SECONDS_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Records per fold batch, up to the default batch size.
const BATCH_BUCKETS: [f64; 9] = [
    1.0, 10.0, 100.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 20000.0,
];
/// How often histograms drop what the exporter no longer needs.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
#[error("cannot start the metrics exporter: {0}")]
pub struct ExporterError(#[from] BuildError);

/// Installs the process's recorder and returns the handle that renders
/// the text format; starts the upkeep thread and sets the build info.
pub fn install_exporter() -> Result<PrometheusHandle, ExporterError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS_BUCKETS)?
        .set_buckets_for_metric(
            Matcher::Full(names::FOLD_BATCH_EVENTS.into()),
            &BATCH_BUCKETS,
        )?
        .install_recorder()?;
    crate::describe();
    metrics::gauge!(names::BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    let upkeep = handle.clone();
    // A thread that only sleeps and trims: if it cannot start, metrics
    // still work, with histograms trimmed at each scrape instead.
    let _ = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || loop {
            std::thread::sleep(UPKEEP_EVERY);
            upkeep.run_upkeep();
        });
    Ok(handle)
}
