//! A consumer-group member whose starting positions come from the aggregator's own
//! state.
//!
//! The group uses the eager rebalance protocol: each rebalance revokes every partition
//! and assigns anew, and the assignment is made in our rebalance callback with the
//! offsets the [`PositionLookup`] gives, so there is exactly one code path and every
//! partition a consumer is handed, new or kept, starts where the stored state says.
//! (With cooperative rebalancing a kept partition would go on from the consumer's fetch
//! position, which the lookup may no longer agree with if a poll's records were
//! dropped; the few seconds an eager rebalance pauses a handful of aggregators do not
//! matter.) A position of `None` leaves the group's committed offset in charge, and
//! without one `auto.offset.reset=earliest`.
//!
//! The callback runs on the task that polls, inside [`LogConsumer::poll`], after the
//! previous batch has been folded and its positions stored: the lookup sees them.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::FutureExt;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol, StreamConsumer};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;

use super::{KafkaConfig, Topics};
use crate::{LogConsumer, LogError, Polled, PositionLookup, Record, TopicPartition};

/// A member of a consumer group on the Kafka log; see the module doc for where it
/// starts reading.
pub struct KafkaConsumer {
    consumer: StreamConsumer<Rebalancer>,
    topics: Arc<Topics>,
}

impl std::fmt::Debug for KafkaConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaConsumer").field("assignment", &self.assignment()).finish_non_exhaustive()
    }
}

/// The consumer's context: answers rebalances with the looked-up positions.
struct Rebalancer {
    topics: Arc<Topics>,
    positions: PositionLookup,
    /// Bumped on every rebalance event, so that `poll` can tell that the records it
    /// gathered before one may belong to partitions it no longer owns.
    rebalances: AtomicU64,
}

impl ClientContext for Rebalancer {
    fn error(&self, error: KafkaError, reason: &str) {
        super::log_client_error(&error, reason);
    }
}

impl Rebalancer {
    fn short(&self, kafka_topic: &str, partition: i32) -> Option<TopicPartition> {
        let topic = self.topics.short_name(kafka_topic)?;
        Some(TopicPartition { topic: topic.to_owned(), partition: u32::try_from(partition).ok()? })
    }

    /// Sets each partition's starting offset to the looked-up position, where there is
    /// one.
    fn position_assignment(&self, tpl: &mut TopicPartitionList) {
        let partitions: Vec<(String, i32)> =
            tpl.elements().iter().map(|e| (e.topic().to_owned(), e.partition())).collect();
        let mut stored = 0;
        for (topic, partition) in &partitions {
            let Some(tp) = self.short(topic, *partition) else { continue };
            let position = (self.positions)(&tp);
            tracing::debug!(partition = %tp, ?position, "kafka partition assigned");
            let Some(Ok(next)) = position.map(i64::try_from) else { continue };
            stored += 1;
            if let Err(e) = tpl.set_partition_offset(topic, *partition, Offset::Offset(next)) {
                tracing::error!(partition = %tp, error = %e, "could not set the starting offset");
            }
        }
        tracing::info!(partitions = partitions.len(), from_stored_positions = stored, "kafka partitions assigned");
    }
}

impl ConsumerContext for Rebalancer {
    // Replaces the default so that the assignment carries our offsets. Only safe
    // librdkafka calls: assign / unassign from inside the callback, as librdkafka asks.
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        self.rebalances.fetch_add(1, Ordering::SeqCst);
        let cooperative = matches!(consumer.rebalance_protocol(), RebalanceProtocol::Cooperative);
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.position_assignment(tpl);
                if cooperative { consumer.incremental_assign(tpl) } else { consumer.assign(tpl) }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                tracing::info!(partitions = tpl.count(), lost = consumer.assignment_lost(), "kafka partitions revoked");
                if cooperative { consumer.incremental_unassign(tpl) } else { consumer.unassign() }
            }
            other => {
                tracing::error!(error = ?other, "kafka rebalance failed; dropping the assignment");
                consumer.unassign()
            }
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "kafka rebalance: could not apply the assignment");
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(e) = result {
            // Advisory only: the positions stored with the state are the truth.
            tracing::warn!(error = %e, "kafka offset commit failed");
        }
    }
}

impl KafkaConsumer {
    pub(super) fn new(
        config: &KafkaConfig,
        group: &str,
        topics: Arc<Topics>,
        positions: PositionLookup,
    ) -> Result<Self, LogError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(LogError::Config("a kafka consumer must be created within a tokio runtime".into()));
        }
        let context = Rebalancer { topics: topics.clone(), positions, rebalances: AtomicU64::new(0) };
        let consumer: StreamConsumer<Rebalancer> = config
            .consumer(group)
            .create_with_context(context)
            .map_err(|e| LogError::Config(format!("kafka consumer: {e}")))?;
        consumer.subscribe(&topics.kafka_names()).map_err(|e| LogError::Config(format!("kafka subscribe: {e}")))?;
        Ok(Self { consumer, topics })
    }

    /// A reader of every partition, assigned by hand: no group membership, no rebalance,
    /// no commits (a group id is set only because librdkafka wants one).
    pub(super) fn assigned(
        config: &KafkaConfig,
        topics: Arc<Topics>,
        positions: PositionLookup,
    ) -> Result<Self, LogError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(LogError::Config("a kafka consumer must be created within a tokio runtime".into()));
        }
        let context =
            Rebalancer { topics: topics.clone(), positions: positions.clone(), rebalances: AtomicU64::new(0) };
        let consumer: StreamConsumer<Rebalancer> = config
            .consumer("daybook-unmanaged-reader")
            .create_with_context(context)
            .map_err(|e| LogError::Config(format!("kafka consumer: {e}")))?;
        let mut tpl = TopicPartitionList::new();
        for (kafka, partition) in topics.all_partitions() {
            let short = topics.short_name(kafka).unwrap_or_default();
            let tp = TopicPartition { topic: short.to_owned(), partition };
            let offset = match positions(&tp).map(i64::try_from) {
                Some(Ok(next)) => Offset::Offset(next),
                _ => Offset::Beginning,
            };
            tpl.add_partition_offset(kafka, partition as i32, offset)
                .map_err(|e| LogError::Config(format!("kafka assign {tp}: {e}")))?;
        }
        consumer.assign(&tpl).map_err(|e| LogError::Config(format!("kafka assign: {e}")))?;
        Ok(Self { consumer, topics })
    }

    /// The partitions this member owns now (as of its last poll), sorted.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        let Ok(tpl) = self.consumer.assignment() else { return Vec::new() };
        let mut out: Vec<_> =
            tpl.elements().iter().filter_map(|e| self.consumer.context().short(e.topic(), e.partition())).collect();
        out.sort();
        out
    }

    fn rebalances(&self) -> u64 {
        self.consumer.context().rebalances.load(Ordering::SeqCst)
    }

    fn to_polled(&self, message: &BorrowedMessage<'_>) -> Option<Polled> {
        let topic = self.topics.short_name(message.topic())?;
        let at = TopicPartition { topic: topic.to_owned(), partition: u32::try_from(message.partition()).ok()? };
        let offset = u64::try_from(message.offset()).ok()?;
        // Lossy rather than an error: a stray producer must not wedge the consumer; the
        // payload decoder downstream decides what is readable.
        let text = |bytes: Option<&[u8]>| String::from_utf8_lossy(bytes.unwrap_or_default()).into_owned();
        let headers = message
            .headers()
            .map(|h| h.iter().map(|h| (h.key.to_owned(), text(h.value))).collect())
            .unwrap_or_default();
        let record = Record {
            topic: at.topic.clone(),
            key: text(message.key()),
            headers,
            payload: message.payload().unwrap_or_default().to_vec(),
        };
        Some(Polled { at, offset, record })
    }
}

/// Errors a consumer waits out: the broker is away or the cluster is moving things.
fn transient(e: &KafkaError) -> bool {
    !matches!(e.rdkafka_error_code(), Some(RDKafkaErrorCode::Fatal))
}

impl LogConsumer for KafkaConsumer {
    async fn poll(&mut self, max: usize, wait: Duration) -> Result<Vec<Polled>, LogError> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut out: Vec<Polled> = Vec::new();
        let mut seen = self.rebalances();
        while out.len() < max {
            let received = if out.is_empty() {
                match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                    Ok(received) => received,
                    Err(_) => break,
                }
            } else {
                // More only if it is already here.
                match self.consumer.recv().now_or_never() {
                    Some(received) => received,
                    None => break,
                }
            };
            let now = self.rebalances();
            if now != seen {
                // A rebalance ran while we gathered: the records before it may be from
                // partitions now owned elsewhere, or from kept partitions that restart
                // at the looked-up position. Either way they will be read again by
                // whoever owns them, from where its state says.
                seen = now;
                out.clear();
            }
            match received {
                Ok(message) => {
                    if let Some(polled) = self.to_polled(&message) {
                        out.push(polled);
                    }
                }
                Err(e) if transient(&e) => {
                    super::log_client_error(&e, "consumer poll");
                    if matches!(e.rdkafka_error_code(), Some(RDKafkaErrorCode::AllBrokersDown)) && out.is_empty() {
                        return Err(LogError::Unavailable(format!("kafka consumer: {e}")));
                    }
                }
                Err(e) => return Err(LogError::Unavailable(format!("kafka consumer failed: {e}"))),
            }
        }
        Ok(out)
    }

    fn reading(&self) -> Option<Vec<TopicPartition>> {
        Some(self.assignment())
    }

    /// Commits asynchronously, and only the partitions this member owns, so a late
    /// commit cannot move another member's partition backwards. Never fails: the
    /// commit is advisory.
    fn commit(&mut self, positions: &[(TopicPartition, u64)]) -> Result<(), LogError> {
        let owned: HashSet<TopicPartition> = self.assignment().into_iter().collect();
        let mut tpl = TopicPartitionList::new();
        for (tp, next) in positions {
            let (Some(topic), Ok(next)) = (self.topics.kafka_name(&tp.topic), i64::try_from(*next)) else { continue };
            if owned.contains(tp)
                && let Err(e) = tpl.add_partition_offset(topic, tp.partition as i32, Offset::Offset(next))
            {
                tracing::warn!(partition = %tp, error = %e, "kafka commit: bad offset");
            }
        }
        if tpl.count() > 0
            && let Err(e) = self.consumer.commit(&tpl, CommitMode::Async)
        {
            tracing::warn!(error = %e, "kafka offset commit not sent");
        }
        Ok(())
    }
}
