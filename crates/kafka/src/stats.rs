//! librdkafka's statistics, turned into gauges: each consumer's lag and
//! position per topic partition. librdkafka hands them over every
//! `statistics.interval.ms`, inside the consumer's poll.

use idfold_telemetry::names;
use rdkafka::client::ClientContext;
use rdkafka::consumer::ConsumerContext;
use rdkafka::Statistics;

/// Records the consumer figures of one statistics report.
pub(crate) fn record_consumer_statistics(statistics: &Statistics) {
    for (topic, topic_stats) in &statistics.topics {
        for (partition, stats) in &topic_stats.partitions {
            // -1 is the internal "unassigned" partition; lag and offsets are
            // negative where librdkafka does not know them, which for an
            // empty partition (its end is 0) means nothing to read: 0.
            // librdkafka goes on reporting partitions this consumer no
            // longer fetches (revoked ones): only active fetches count.
            if *partition < 0 || !stats.desired || stats.fetch_state != "active" {
                continue;
            }
            let lag = if stats.consumer_lag >= 0 {
                stats.consumer_lag
            } else if stats.hi_offset >= 0 {
                // Nothing read or committed yet (a new member working
                // through a backlog): all of it is behind.
                stats.hi_offset - stats.app_offset.max(stats.lo_offset).max(0)
            } else {
                continue;
            };
            let position = stats.committed_offset.max(stats.next_offset).max(0);
            let labels = [
                ("topic", topic.clone()),
                ("partition", partition.to_string()),
            ];
            metrics::gauge!(names::CONSUMER_LAG, &labels).set(lag as f64);
            metrics::gauge!(names::CONSUMER_POSITION, &labels).set(position as f64);
        }
    }
}

/// The context of consumers that need nothing else (the raw stage).
#[derive(Debug, Default, Clone, Copy)]
pub struct StatisticsContext;

impl ClientContext for StatisticsContext {
    fn stats(&self, statistics: Statistics) {
        record_consumer_statistics(&statistics);
    }

    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
        crate::waiting::client_log(&crate::waiting::RAW, level, facility, message);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        crate::waiting::client_error(&crate::waiting::RAW, &error, reason);
    }
}

impl ConsumerContext for StatisticsContext {}
