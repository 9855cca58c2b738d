//! The Kafka log, through librdkafka (bundled). One Kafka topic per short topic name,
//! `{prefix}{topic}`, created by [`KafkaLog::connect`] when missing.
//!
//! - Appends go through an idempotent producer with `acks=all`; a record's partition is
//!   [`partition_for`] its key, as in the embedded log, so one school's events stay in
//!   order in one partition whichever client wrote them. `append` answers only when the
//!   broker has acknowledged every record, and `Unavailable` once
//!   [`KafkaConfig::delivery_timeout`] has passed without that.
//! - Consumers join a consumer group with the eager protocol and never auto-commit. On
//!   every assignment each partition is looked up in the consumer's [`PositionLookup`];
//!   a position found there wins over what the group committed.

mod config;
mod consumer;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{Client, ClientContext};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

pub use self::config::{DEFAULT_TOPICS, KafkaConfig};
pub use self::consumer::KafkaConsumer;
use crate::{Appended, EventLog, LogError, PositionLookup, Record, TopicPartition, partition_for};

/// The event log on a Kafka cluster. Cheap to clone: clones share one producer.
#[derive(Clone)]
pub struct KafkaLog {
    inner: Arc<Inner>,
}

type KafkaProducer = FutureProducer<ClientLog>;

struct Inner {
    config: KafkaConfig,
    topics: Arc<Topics>,
    /// Replaced by a fresh producer after a failed append; see [`KafkaLog::retire`].
    producer: RwLock<Arc<KafkaProducer>>,
    /// For [`KafkaLog::committed`]: one member-less consumer per group asked about.
    offset_readers: Mutex<HashMap<String, Arc<BaseConsumer<ClientLog>>>>,
}

/// Logs client-level errors. librdkafka logs a broker it cannot reach itself, so those
/// reports are only repeated at debug level here.
pub(crate) struct ClientLog;

impl ClientContext for ClientLog {
    fn error(&self, error: KafkaError, reason: &str) {
        log_client_error(&error, reason);
    }
}

impl ConsumerContext for ClientLog {}

pub(crate) fn log_client_error(error: &KafkaError, reason: &str) {
    match error.rdkafka_error_code() {
        Some(RDKafkaErrorCode::AllBrokersDown | RDKafkaErrorCode::BrokerTransportFailure) => {
            tracing::debug!(%error, reason, "kafka client error");
        }
        _ => tracing::warn!(%error, reason, "kafka client error"),
    }
}

impl std::fmt::Debug for KafkaLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaLog")
            .field("brokers", &self.inner.config.brokers)
            .field("topic_prefix", &self.inner.config.topic_prefix)
            .finish_non_exhaustive()
    }
}

/// The topics a log carries: short name, broker-side name, and the partition count
/// records are spread over (fixed at `connect`, so a key keeps its partition even if
/// partitions are added behind our back).
#[derive(Debug)]
pub(crate) struct Topics {
    prefix: String,
    by_short: BTreeMap<String, TopicInfo>,
}

#[derive(Debug)]
struct TopicInfo {
    kafka: String,
    partitions: u32,
}

impl Topics {
    fn kafka_names(&self) -> Vec<&str> {
        self.by_short.values().map(|t| t.kafka.as_str()).collect()
    }

    fn kafka_name(&self, short: &str) -> Option<&str> {
        self.by_short.get(short).map(|t| t.kafka.as_str())
    }

    /// Every partition of every topic, by Kafka name.
    fn all_partitions(&self) -> impl Iterator<Item = (&str, u32)> {
        self.by_short.values().flat_map(|t| (0..t.partitions).map(|p| (t.kafka.as_str(), p)))
    }

    fn short_name<'a>(&self, kafka: &'a str) -> Option<&'a str> {
        kafka.strip_prefix(self.prefix.as_str()).filter(|short| self.by_short.contains_key(*short))
    }
}

impl KafkaLog {
    /// Connects to the cluster in `config` and creates the topics that are missing.
    /// Blocks for up to [`KafkaConfig::request_timeout`]; a cluster that does not answer
    /// by then is `Unavailable`.
    pub fn connect(config: KafkaConfig) -> Result<Self, LogError> {
        config.validate()?;
        let deadline = Instant::now() + config.request_timeout;
        ensure_topics(&config)?;
        let producer = Arc::new(create_producer(&config)?);
        let mut by_short = BTreeMap::new();
        for short in &config.topics {
            let kafka = config.kafka_topic(short);
            let partitions = wait_for_partitions(&producer, &kafka, deadline)?;
            if partitions != config.partitions as u32 {
                tracing::warn!(topic = %kafka, partitions, configured = config.partitions, "topic exists with another partition count");
            }
            by_short.insert(short.clone(), TopicInfo { kafka, partitions });
        }
        let topics = Arc::new(Topics { prefix: config.topic_prefix.clone(), by_short });
        tracing::info!(brokers = %config.brokers, prefix = %config.topic_prefix, "connected to kafka");
        let inner =
            Inner { config, topics, producer: RwLock::new(producer), offset_readers: Mutex::new(HashMap::new()) };
        Ok(Self { inner: Arc::new(inner) })
    }

    /// [`Self::connect`], again and again while the cluster is unavailable (a broker
    /// restarting, busy, not up yet), waiting 1 s, then 2, 4… up to 15 s between tries,
    /// for at most `patience`. A configuration error is answered at once.
    pub fn connect_patiently(config: KafkaConfig, patience: Duration) -> Result<Self, LogError> {
        let deadline = Instant::now() + patience;
        let mut wait = Duration::from_secs(1);
        loop {
            match Self::connect(config.clone()) {
                Err(LogError::Unavailable(reason)) if Instant::now() + wait < deadline => {
                    tracing::warn!(%reason, retry_in = ?wait, brokers = %config.brokers, "kafka not ready; trying again");
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(15));
                }
                connected => return connected,
            }
        }
    }

    pub fn config(&self) -> &KafkaConfig {
        &self.inner.config
    }

    /// The partition count of short topic `topic`, if this log carries it.
    pub fn partitions(&self, topic: &str) -> Option<u32> {
        self.inner.topics.by_short.get(topic).map(|t| t.partitions)
    }

    /// The offsets consumer group `group` has committed, for the partitions that have
    /// one. Blocks like [`EventLog::end_offsets`], at most
    /// [`KafkaConfig::request_timeout`]. Reading them does not join the group.
    pub fn committed(&self, group: &str) -> Result<BTreeMap<TopicPartition, u64>, LogError> {
        let deadline = Instant::now() + self.inner.config.request_timeout;
        let reader = {
            let mut readers = self.inner.offset_readers.lock().expect("offset readers lock poisoned");
            match readers.get(group) {
                Some(reader) => reader.clone(),
                None => {
                    let reader: BaseConsumer<ClientLog> = self
                        .inner
                        .config
                        .consumer(group)
                        .create_with_context(ClientLog)
                        .map_err(|e| LogError::Config(format!("kafka consumer: {e}")))?;
                    readers.entry(group.to_owned()).or_insert(Arc::new(reader)).clone()
                }
            }
        };
        // Never subscribed, so nothing but client events arrive: drain them.
        let _ = reader.poll(Duration::ZERO);
        let mut wanted = TopicPartitionList::new();
        for (_, kafka, partitions) in self.partitions_now(reader.client(), deadline)? {
            for partition in partitions {
                wanted.add_partition(&kafka, partition);
            }
        }
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
        let found =
            reader.committed_offsets(wanted, left).map_err(|e| classify_kafka("kafka committed offsets", &e))?;
        let mut out = BTreeMap::new();
        for element in found.elements() {
            let (Offset::Offset(next), Some(topic)) = (element.offset(), self.inner.topics.short_name(element.topic()))
            else {
                continue;
            };
            let (Ok(partition), Ok(next)) = (u32::try_from(element.partition()), u64::try_from(next)) else { continue };
            out.insert(TopicPartition { topic: topic.to_owned(), partition }, next);
        }
        Ok(out)
    }

    /// Every topic's partitions as the cluster has them now: `(short, kafka, ids)`.
    fn partitions_now<C: ClientContext>(
        &self,
        client: &Client<C>,
        deadline: Instant,
    ) -> Result<Vec<(String, String, Vec<i32>)>, LogError> {
        let mut out = Vec::new();
        for (short, info) in &self.inner.topics.by_short {
            let metadata = client
                .fetch_metadata(Some(&info.kafka), left(deadline)?)
                .map_err(|e| classify_kafka("kafka metadata", &e))?;
            let Some(topic) = metadata.topics().iter().find(|t| t.name() == info.kafka) else { continue };
            out.push((short.clone(), info.kafka.clone(), topic.partitions().iter().map(|p| p.id()).collect()));
        }
        Ok(out)
    }

    fn producer(&self) -> Arc<KafkaProducer> {
        self.inner.producer.read().expect("producer lock poisoned").clone()
    }

    /// Puts a fresh producer in place of one whose append failed. The failed one is
    /// dropped, which purges whatever it still holds, instead of being left to time its
    /// records out: an idempotent producer whose records time out bumps its epoch on its
    /// own, which Kafka accepts but tansu's sqlite storage does not (its storage task
    /// panics on the unknown epoch and every later produce fails). A fresh producer
    /// registers a new producer id and is welcome everywhere; a failed append is rare
    /// enough that the extra handshake costs nothing.
    fn retire(&self, failed: &Arc<KafkaProducer>) {
        let mut current = self.inner.producer.write().expect("producer lock poisoned");
        if !Arc::ptr_eq(&current, failed) {
            return; // another append already replaced it
        }
        match create_producer(&self.inner.config) {
            Ok(fresh) => {
                let old = std::mem::replace(&mut *current, Arc::new(fresh));
                tracing::info!("kafka producer replaced after a failed append");
                // Dropping purges and flushes for up to half a second: not on this task.
                std::thread::spawn(move || drop(old));
            }
            Err(e) => tracing::error!(error = %e, "could not create a new kafka producer; keeping the old one"),
        }
    }

    /// Enqueues every record, then waits for every acknowledgement, in input order.
    async fn deliver(
        &self,
        producer: &KafkaProducer,
        records: &[(&Record, &TopicInfo, u32)],
    ) -> Result<Vec<Appended>, LogError> {
        let timeout = self.inner.config.delivery_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut deliveries = Vec::with_capacity(records.len());
        for &(record, info, partition) in records {
            let headers =
                record.headers.iter().fold(OwnedHeaders::new_with_capacity(record.headers.len()), |h, (k, v)| {
                    h.insert(Header { key: k, value: Some(v.as_str()) })
                });
            let mut message = FutureRecord::to(&info.kafka)
                .partition(partition as i32)
                .key(record.key.as_bytes())
                .payload(record.payload.as_slice())
                .headers(headers);
            // Wait for room if the local queue is full, but never past the deadline.
            loop {
                match producer.send_result(message) {
                    Ok(delivery) => {
                        deliveries.push((delivery, partition));
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        if tokio::time::Instant::now() >= deadline {
                            return Err(LogError::Unavailable(format!(
                                "kafka producer queue still full after {timeout:?}"
                            )));
                        }
                        message = back;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Err((e, _)) => return Err(classify_kafka("kafka append", &e)),
                }
            }
        }
        let mut appended = Vec::with_capacity(deliveries.len());
        for (delivery, partition) in deliveries {
            let outcome = match tokio::time::timeout_at(deadline, delivery).await {
                Err(_) => return Err(LogError::Unavailable(format!("kafka did not acknowledge within {timeout:?}"))),
                Ok(Err(_canceled)) => return Err(LogError::Unavailable("kafka producer shut down".into())),
                Ok(Ok(outcome)) => outcome,
            };
            let done = outcome.map_err(|(e, _)| classify_kafka("kafka append", &e))?;
            let offset = u64::try_from(done.offset).map_err(|_| {
                LogError::Unavailable(format!("kafka acknowledged without an offset ({})", done.offset))
            })?;
            appended.push(Appended { partition, offset });
        }
        Ok(appended)
    }
}

fn create_producer(config: &KafkaConfig) -> Result<KafkaProducer, LogError> {
    config.producer().create_with_context(ClientLog).map_err(|e| LogError::Config(format!("kafka producer: {e}")))
}

/// Creates the topics in `config` that do not exist yet. tansu, like a careful Kafka
/// deployment, does not create topics on first use.
fn ensure_topics(config: &KafkaConfig) -> Result<(), LogError> {
    let admin: AdminClient<ClientLog> = config
        .producer()
        .create_with_context(ClientLog)
        .map_err(|e| LogError::Config(format!("kafka admin client: {e}")))?;
    let names: Vec<String> = config.topics.iter().map(|t| config.kafka_topic(t)).collect();
    let new: Vec<NewTopic<'_>> = names
        .iter()
        .map(|name| {
            config.topic_config.iter().fold(
                NewTopic::new(name, config.partitions, TopicReplication::Fixed(config.replication)),
                |topic, (key, value)| topic.set(key, value),
            )
        })
        .collect();
    let options = AdminOptions::new()
        .request_timeout(Some(config.request_timeout))
        .operation_timeout(Some(config.request_timeout));
    // The admin client's own thread completes this future: blocking on it is safe even
    // on a runtime thread, and bounded by the request timeout.
    let results = futures::executor::block_on(admin.create_topics(&new, &options))
        .map_err(|e| LogError::Unavailable(format!("creating kafka topics: {e}")))?;
    for result in results {
        match result {
            Ok(name) => tracing::info!(topic = %name, partitions = config.partitions, "created kafka topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => return Err(classify(&format!("creating kafka topic {name}"), code)),
        }
    }
    Ok(())
}

/// Waits until the cluster's metadata shows `topic` with its partitions (a topic just
/// created may take a moment to appear) and returns their count.
fn wait_for_partitions(producer: &KafkaProducer, topic: &str, deadline: Instant) -> Result<u32, LogError> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(10));
        let found = match producer.client().fetch_metadata(Some(topic), left) {
            Ok(metadata) => metadata
                .topics()
                .iter()
                .find(|t| t.name() == topic && t.error().is_none())
                .map(|t| t.partitions().len() as u32)
                .filter(|n| *n > 0),
            Err(e) => {
                tracing::debug!(topic, error = %e, "kafka metadata not yet available");
                None
            }
        };
        if let Some(n) = found {
            return Ok(n);
        }
        if Instant::now() >= deadline {
            return Err(LogError::Unavailable(format!("kafka topic {topic} did not appear in the cluster metadata")));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Refusals that retrying cannot fix are configuration errors; everything else (time
/// outs, transport, leadership moves, a broker that is down) is `Unavailable`.
fn classify(context: &str, code: RDKafkaErrorCode) -> LogError {
    use RDKafkaErrorCode as C;
    let message = format!("{context}: {code}");
    match code {
        C::MessageSizeTooLarge
        | C::InvalidMessageSize
        | C::InvalidMessage
        | C::InvalidArgument
        | C::InvalidPartitions
        | C::InvalidReplicationFactor
        | C::InvalidTopic
        | C::TopicAuthorizationFailed
        | C::ClusterAuthorizationFailed
        | C::UnknownPartition => LogError::Config(message),
        _ => LogError::Unavailable(message),
    }
}

fn classify_kafka(context: &str, error: &KafkaError) -> LogError {
    match error.rdkafka_error_code() {
        Some(code) => classify(context, code),
        None => LogError::Unavailable(format!("{context}: {error}")),
    }
}

impl EventLog for KafkaLog {
    type Consumer = KafkaConsumer;

    async fn append(&self, records: Vec<Record>) -> Result<Vec<Appended>, LogError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let topics = &self.inner.topics.by_short;
        let placed = records
            .iter()
            .map(|record| {
                let info = topics.get(&record.topic).ok_or_else(|| {
                    LogError::Config(format!(
                        "kafka log does not carry topic {:?} (it has {:?})",
                        record.topic, self.inner.config.topics
                    ))
                })?;
                Ok((record, info, partition_for(&record.key, info.partitions)))
            })
            .collect::<Result<Vec<_>, LogError>>()?;
        let producer = self.producer();
        let result = self.deliver(&producer, &placed).await;
        if let Err(e) = &result {
            tracing::warn!(error = %e, records = records.len(), "kafka append failed");
            self.retire(&producer);
        }
        result
    }

    /// Must be called within a tokio runtime: the consumer wakes itself through it.
    fn subscribe(&self, group: &str, positions: PositionLookup) -> Result<KafkaConsumer, LogError> {
        KafkaConsumer::new(&self.inner.config, group, self.inner.topics.clone(), positions)
    }

    fn read_all(&self, positions: PositionLookup) -> Result<KafkaConsumer, LogError> {
        KafkaConsumer::assigned(&self.inner.config, self.inner.topics.clone(), positions)
    }

    fn group_positions(&self, group: &str) -> Result<Option<BTreeMap<TopicPartition, u64>>, LogError> {
        self.committed(group).map(Some)
    }

    /// Blocks for one metadata request and one watermark request per partition, at most
    /// [`KafkaConfig::request_timeout`] in all.
    fn end_offsets(&self) -> Result<Vec<(TopicPartition, u64)>, LogError> {
        let producer = self.producer();
        let client = producer.client();
        let deadline = Instant::now() + self.inner.config.request_timeout;
        let mut out = Vec::new();
        for (short, kafka, partitions) in self.partitions_now(client, deadline)? {
            for partition in partitions {
                let (_, high) = client
                    .fetch_watermarks(&kafka, partition, left(deadline)?)
                    .map_err(|e| classify_kafka("kafka watermarks", &e))?;
                let tp = TopicPartition { topic: short.clone(), partition: partition as u32 };
                out.push((tp, u64::try_from(high).unwrap_or(0)));
            }
        }
        out.sort();
        Ok(out)
    }
}

/// What is left of a request deadline; `Unavailable` once it has passed.
fn left(deadline: Instant) -> Result<Duration, LogError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() { Err(LogError::Unavailable("kafka: request timed out".into())) } else { Ok(left) }
}
