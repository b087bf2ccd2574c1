//! The two Kafka stages beside their ceiling, measured in the same run on
//! the same broker: a no-op rdkafka consumer reading the same topic.
//! (a) producer stage: raw topic -> validate -> canonical log (acks=all,
//!     idempotent) with raw offsets committed after the acks;
//! (b) fold stage: canonical log -> stitching, profiles, MAU -> sled, one
//!     atomic batch per partition per flush.
//! Each is timed until caught up on the pre-loaded events (default 1M over
//! 200 workspaces; `IDFOLD_BENCH_EVENTS` overrides).
//! (c) the fold stage with 1, 2 and 3 instances in one consumer group (each
//!     its own data directory and thread, as separate processes would be),
//!     until every partition is folded, beside the same ceiling as (b);
//! (d) the rebuild of one partition holding every event: a fresh fold of a
//!     canonical log of one partition, beside a no-op consumer of it.
//!
//! Run: `deploy/kafka.sh with cargo bench --bench kafka_throughput`
//! (or set IDFOLD_BENCH_KAFKA=HOST:PORT for a broker of your own).

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use idfold_kafka::{ensure_topics, FoldStage, KafkaSettings, RawStage, RunMode};
use idfold_log::DataDir;
use idfold_producer::{validate, RawInput};
use idfold_projector::{FoldOptions, Projector};
use idfold_workload::{generate, WorkloadSpec};
use rand::Rng;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Records per producer-stage batch and per fold flush.
const BATCH: usize = 20_000;

fn main() -> anyhow::Result<()> {
    let Some(bootstrap) = ["IDFOLD_BENCH_KAFKA", "IDFOLD_TEST_KAFKA"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    else {
        eprintln!("needs a broker: deploy/kafka.sh with cargo bench --bench kafka_throughput");
        return Ok(());
    };
    let spec = WorkloadSpec::benchmark();
    let events = spec.events;
    let prefix = format!("bench-{:08x}", rand::thread_rng().gen::<u32>());
    let mut settings = KafkaSettings::new(&bootstrap, &prefix);
    // One raw topic for every type (allowed, and what a Segment-style
    // forwarder would do).
    settings.topics.raw = vec![format!("{prefix}.raw")];
    settings.partitions = 6;
    ensure_topics(&settings)?;

    println!(
        "workload: {events} events, {} workspaces; broker {bootstrap}; 6 partitions",
        spec.workspaces
    );
    let lines = generate(&spec);
    let started = Instant::now();
    preload(&settings, &lines)?;
    println!(
        "pre-loaded the raw topic in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let validate_rate = validate_alone(&lines)?;
    drop(lines);

    let stop = AtomicBool::new(false);
    let raw_ceiling = noop_consumer(&settings, &settings.topics.raw[0], events)?;
    let started = Instant::now();
    let report = RawStage::new(&settings, BATCH)?.run(RunMode::UntilIdle, &stop, |_| {})?;
    let producer_rate = report.consumed as f64 / started.elapsed().as_secs_f64();
    anyhow::ensure!(
        report.accepted as usize == events,
        "all events accepted: {report:?}"
    );

    let fold_ceiling = noop_consumer(&settings, &settings.topics.events, events)?;
    let tmp = tempfile::tempdir()?;
    let projector = fresh_projector(&tmp)?;
    let started = Instant::now();
    let total = FoldStage::new(&settings, projector, BATCH, Default::default())?.run(
        RunMode::UntilIdle,
        &stop,
        |_| {},
    )?;
    let fold_rate = total.read as f64 / started.elapsed().as_secs_f64();
    anyhow::ensure!(total.read == events, "all events folded: {total:?}");

    let mut instances = Vec::new();
    for count in 1..=3 {
        let rate = fold_with_instances(&settings, count, events)?;
        instances.push((count, rate));
    }

    // One partition holding every event: what moving it costs.
    let one = format!("{}-one", settings.topics.events);
    let mut single = settings.clone();
    single.topics.events = one.clone();
    single.producer_group = format!("{prefix}-one-producer");
    single.fold_group = format!("{prefix}-one-fold");
    single.partitions = 1;
    ensure_topics(&single)?;
    RawStage::new(&single, BATCH)?.run(RunMode::UntilIdle, &stop, |_| {})?;
    let one_ceiling = noop_consumer(&single, &one, events)?;
    let one_started = Instant::now();
    let rebuilt = fold_with_instances(&single, 1, events)?;
    let one_seconds = one_started.elapsed().as_secs_f64();

    println!();
    println!("| stage | events/s | ceiling: no-op rdkafka consumer, same topic | ratio |");
    println!("|---|---:|---:|---:|");
    println!("| (a) producer stage: raw -> validate -> canonical log (acks=all) | {producer_rate:.0} | {raw_ceiling:.0} | {:.2} |", producer_rate / raw_ceiling);
    println!("| the producer stage's own work alone: validate + Avro encode, in memory, one core | {validate_rate:.0} | | |");
    println!(
        "| (b) fold stage: canonical log -> sled | {fold_rate:.0} | {fold_ceiling:.0} | {:.2} |",
        fold_rate / fold_ceiling
    );
    for (count, rate) in instances {
        println!(
            "| (c) fold stage, {count} instance(s) in one group, 6 partitions | {rate:.0} | {fold_ceiling:.0} | {:.2} |",
            rate / fold_ceiling
        );
    }
    println!(
        "| (d) rebuild of one partition of {events} events: {one_seconds:.1} s | {rebuilt:.0} | {one_ceiling:.0} | {:.2} |",
        rebuilt / one_ceiling
    );
    delete_topics(&settings);
    delete_topics(&single);
    Ok(())
}

/// `count` fold stages in one fresh consumer group, each with a data
/// directory of its own, following the canonical log until every partition
/// is folded to its end by one of them: events per second, group joins and
/// rebalances included.
fn fold_with_instances(
    settings: &KafkaSettings,
    count: usize,
    events: usize,
) -> anyhow::Result<f64> {
    use std::sync::Arc;
    let mut group = settings.clone();
    group.fold_group = format!(
        "{}-{count}x-{:04x}",
        settings.fold_group,
        rand::thread_rng().gen::<u16>()
    );
    let stop = Arc::new(AtomicBool::new(false));
    let ownerships: Vec<Arc<idfold_cluster::Ownership>> =
        (0..count).map(|_| Arc::default()).collect();
    let partitions = {
        let consumer: BaseConsumer = settings_consumer(settings, &group.fold_group).create()?;
        let metadata =
            consumer.fetch_metadata(Some(&settings.topics.events), Duration::from_secs(10))?;
        metadata
            .topics()
            .first()
            .map_or(0, |t| t.partitions().len())
    };
    let started = Instant::now();
    let workers: Vec<_> = ownerships
        .iter()
        .map(|ownership| {
            let (group, stop, ownership) = (group.clone(), stop.clone(), ownership.clone());
            std::thread::spawn(move || -> anyhow::Result<()> {
                let tmp = tempfile::tempdir()?;
                let projector = fresh_projector(&tmp)?;
                FoldStage::new(&group, projector, BATCH, ownership)?.run(
                    RunMode::Follow,
                    &stop,
                    |_| {},
                )?;
                Ok(())
            })
        })
        .collect();
    // Done when every partition is held, complete, by one of them.
    let deadline = started + Duration::from_secs(900);
    loop {
        let ready: std::collections::BTreeSet<u32> = ownerships
            .iter()
            .flat_map(|o| o.held())
            .filter(|(_, state)| *state == idfold_cluster::PartitionState::Ready)
            .map(|(p, _)| p)
            .collect();
        if ready.len() == partitions || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let seconds = started.elapsed().as_secs_f64();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for worker in workers {
        worker
            .join()
            .map_err(|_| anyhow::anyhow!("a fold stage panicked"))??;
    }
    Ok(events as f64 / seconds)
}

/// A projector on a fresh data directory (kept while `tmp` lives).
fn fresh_projector(tmp: &tempfile::TempDir) -> anyhow::Result<Projector> {
    let dir = DataDir::open(tmp.path(), Duration::ZERO)?;
    Ok(Projector::open(
        &dir,
        FoldOptions {
            batch_size: BATCH,
            ..FoldOptions::default()
        },
    )?)
}

/// Validation and encoding alone, from memory, on one core: the work the
/// producer stage does per event, without any I/O.
fn validate_alone(lines: &[String]) -> anyhow::Result<f64> {
    let inputs: Vec<RawInput> = lines
        .iter()
        .map(|l| RawInput {
            bytes: l.as_bytes().to_vec(),
            ..RawInput::default()
        })
        .collect();
    let started = Instant::now();
    let mut accepted = 0;
    for chunk in inputs.chunks(BATCH) {
        let refs: Vec<&RawInput> = chunk.iter().collect();
        accepted += validate("bench", &refs)?.report.accepted;
    }
    let rate = accepted as f64 / started.elapsed().as_secs_f64();
    anyhow::ensure!(accepted == lines.len(), "the workload is valid");
    Ok(rate)
}

/// Writes the lines to the raw topic as fast as the client goes.
fn preload(settings: &KafkaSettings, lines: &[String]) -> anyhow::Result<()> {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &settings.bootstrap)
        .set("linger.ms", "20")
        .set("compression.type", "lz4")
        .set("queue.buffering.max.messages", "500000")
        .create()?;
    let topic = settings.topics.raw[0].as_str();
    for line in lines {
        let mut record = BaseRecord::<(), str>::to(topic).payload(line.as_str());
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    producer.poll(Duration::from_millis(10));
                    record = back;
                }
            }
        }
    }
    producer.flush(Duration::from_secs(120))?;
    Ok(())
}

/// Reads `expected` records of `topic` in a fresh group and does nothing
/// with them: the rate at which this broker and client can deliver.
fn noop_consumer(settings: &KafkaSettings, topic: &str, expected: usize) -> anyhow::Result<f64> {
    let group = format!("{}-noop-{topic}", settings.fold_group);
    let consumer: BaseConsumer = settings_consumer(settings, &group).create()?;
    // The clock includes the group join, as the stages' clocks do.
    let started = Instant::now();
    consumer.subscribe(&[topic])?;
    let mut seen = 0usize;
    let deadline = started + Duration::from_secs(600);
    while seen < expected && Instant::now() < deadline {
        if let Some(Ok(_)) = consumer.poll(Duration::from_millis(100)) {
            seen += 1;
        }
    }
    anyhow::ensure!(
        seen == expected,
        "the no-op consumer saw {seen} of {expected}"
    );
    Ok(seen as f64 / started.elapsed().as_secs_f64())
}

fn settings_consumer(settings: &KafkaSettings, group: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100");
    config
}

fn delete_topics(settings: &KafkaSettings) {
    use rdkafka::admin::{AdminClient, AdminOptions};
    let Ok(admin) = ClientConfig::new()
        .set("bootstrap.servers", &settings.bootstrap)
        .create::<AdminClient<rdkafka::client::DefaultClientContext>>()
    else {
        return;
    };
    let names = [
        settings.topics.raw[0].as_str(),
        settings.topics.events.as_str(),
        settings.topics.dead_letters.as_str(),
        settings.topics.mau.as_str(),
        settings.topics.profiles.as_str(),
        settings.topics.instances.as_str(),
    ];
    let _ = futures_executor::block_on(admin.delete_topics(&names, &AdminOptions::new()));
}
