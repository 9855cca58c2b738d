//! The raw baselines: the day's events, encoded as daybook puts them on the log, sent by
//! a plain rdkafka producer to a topic of their own and read back by a plain consumer.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::Context;
use prost::Message;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message as _;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::Load;
use crate::serve::{Busy, Rate, broker_busy};

/// As many partitions as each of daybook's topics has in the run.
const PARTITIONS: i32 = 4;

pub struct RawFigures {
    pub produce: Rate,
    /// From the first record received, as daybook's rebuild counts from its first fold.
    pub consume: Rate,
    /// The broker's CPU while producing, and while consuming.
    pub broker_busy: (Option<Busy>, Option<Busy>),
}

pub async fn measure(broker: &str, broker_pid: Option<u32>, load: &Load) -> anyhow::Result<RawFigures> {
    let topic = crate::unique_name("raw");
    create_topic(broker, &topic).await?;
    // Key and value as daybook's log writes them: the site (school or hall), and the protobuf event.
    let records: Vec<(String, Vec<u8>)> = load.all().map(|e| (crate::site(e).to_owned(), e.encode_to_vec())).collect();
    eprintln!("  producing {} records", records.len());
    let (produce, produce_busy) = broker_busy(broker_pid, produce(broker, &topic, &records)).await?;
    eprintln!("  consuming them");
    let bytes = records.iter().map(|(_, value)| value.len()).sum();
    let (consume, consume_busy) = broker_busy(broker_pid, consume(broker, &topic, records.len(), bytes)).await?;
    Ok(RawFigures { produce, consume, broker_busy: (produce_busy, consume_busy) })
}

async fn create_topic(broker: &str, topic: &str) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", broker).create()?;
    let new = NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics([&new], &options).await? {
        result.map_err(|(name, code)| anyhow::anyhow!("creating topic {name}: {code}"))?;
    }
    Ok(())
}

/// Sends every record with the producer settings of daybook's Kafka log, as many in
/// flight as librdkafka's queue holds, and waits for every acknowledgement.
async fn produce(broker: &str, topic: &str, records: &[(String, Vec<u8>)]) -> anyhow::Result<Rate> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        // tansu 0.6.0's memory storage cannot fetch from inside a batch (deploy/KAFKA.md).
        .set("batch.num.messages", "1")
        .create()?;
    let started = Instant::now();
    let mut in_flight = VecDeque::new();
    for (key, value) in records {
        let mut record = FutureRecord::to(topic).key(key).payload(value);
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    in_flight.push_back(delivery);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    delivered(in_flight.pop_front().context("queue full with nothing in flight")?).await?;
                }
                Err((e, _)) => return Err(e).context("producing"),
            }
        }
    }
    for delivery in in_flight {
        delivered(delivery).await?;
    }
    Ok(Rate::new(records.len(), started.elapsed()))
}

async fn delivered(delivery: DeliveryFuture) -> anyhow::Result<()> {
    match delivery.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => Err(e).context("delivering"),
        Err(_) => anyhow::bail!("the producer dropped a delivery"),
    }
}

/// Records in `topic` (of [`PARTITIONS`] partitions): the sum of its end offsets.
pub async fn records_in(broker: &str, topic: &str) -> anyhow::Result<u64> {
    let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", broker).create()?;
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut records = 0;
        for partition in 0..PARTITIONS {
            let (low, high) = consumer
                .fetch_watermarks(&topic, partition, Duration::from_secs(10))
                .with_context(|| format!("end offset of {topic} partition {partition}"))?;
            records += (high - low).max(0) as u64;
        }
        Ok(records)
    })
    .await?
}

/// Reads the topic from the start until `count` records (of `bytes` value bytes in all)
/// are in; partitions are assigned, not subscribed, so no group has to form.
async fn consume(broker: &str, topic: &str, count: usize, bytes: usize) -> anyhow::Result<Rate> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker)
        .set("group.id", format!("{topic}-reader"))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "100")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let (mut first, mut seen, mut seen_bytes) = (None, 0, 0);
    while seen < count {
        let message = tokio::time::timeout(Duration::from_secs(60), consumer.recv())
            .await
            .with_context(|| format!("only {seen} of {count} records arrived"))??;
        first.get_or_insert_with(Instant::now);
        seen += 1;
        seen_bytes += message.payload().map_or(0, <[u8]>::len);
    }
    anyhow::ensure!(seen_bytes == bytes, "read {seen_bytes} value bytes, sent {bytes}");
    let first = first.unwrap_or_else(Instant::now);
    Ok(Rate::new(count.saturating_sub(1), first.elapsed()))
}
