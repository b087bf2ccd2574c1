//! librdkafka's statistics, turned into gauges: each consumer's lag and
//! position per topic partition, and the producer's queue. librdkafka
//! sends them every `statistics.interval.ms` from its own thread.

use idfold_telemetry::names;
use rdkafka::client::ClientContext;
use rdkafka::consumer::ConsumerContext;
use rdkafka::Statistics;

/// Records the consumer figures of one statistics report.
pub(crate) fn record_consumer_statistics(statistics: &Statistics) {
    for (topic, topic_stats) in &statistics.topics {
        for (partition, stats) in &topic_stats.partitions {
            // -1 is the internal "unassigned" partition; lag and offsets are
            // -1 where librdkafka does not know them (yet).
            if *partition < 0 || stats.consumer_lag < 0 {
                continue;
            }
            let labels = [
                ("topic", topic.clone()),
                ("partition", partition.to_string()),
            ];
            metrics::gauge!(names::CONSUMER_LAG, &labels).set(stats.consumer_lag as f64);
            let position = stats.committed_offset.max(stats.next_offset);
            if position >= 0 {
                metrics::gauge!(names::CONSUMER_POSITION, &labels).set(position as f64);
            }
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
}

impl ConsumerContext for StatisticsContext {}
