//! The event log between intake and aggregators, shaped like Kafka so that the embedded
//! log and a Kafka cluster are interchangeable: records go to a topic and a partition
//! chosen by key, each partition is an ordered sequence of offsets, and a consumer reads
//! from a position it keeps itself.
//!
//! [`EventLog::append`] returns only once the records are durable: intake acknowledges a
//! client on that and nothing earlier. Consumers decide where to start through a
//! [`PositionLookup`], because aggregators store their position together with the state
//! it produced and must resume exactly there.
//!
//! Two implementations: [`EmbeddedLog`] (one file, one process) and [`KafkaLog`] (a Kafka
//! cluster through librdkafka, chosen with a `kafka://` URL, see [`KafkaConfig::from_url`]).

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod embedded;
mod kafka;

pub use embedded::{DiskFaults, EmbeddedLog};
pub use kafka::{DEFAULT_TOPICS, KafkaConfig, KafkaConsumer, KafkaLog};

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("log storage failed: {0}")]
    Storage(#[from] store::Error),
    #[error("log record is corrupt at {at}: {reason}")]
    Corrupt { at: TopicPartition, reason: String },
    #[error("log file is corrupt at byte {pos}: {reason}")]
    CorruptFile { pos: u64, reason: String },
    #[error("log file: {0}")]
    Io(#[from] std::io::Error),
    #[error("log unavailable: {0}")]
    Unavailable(String),
    #[error("log configuration: {0}")]
    Config(String),
}

/// One partition of one topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: u32,
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// What intake writes: a keyed payload on a topic, with Kafka-style headers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub topic: String,
    /// The partitioning key: records with the same key stay in order in one partition.
    pub key: String,
    pub headers: Vec<(String, String)>,
    pub payload: Vec<u8>,
}

/// Where an appended record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub partition: u32,
    pub offset: u64,
}

/// A record read back, with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Polled {
    pub at: TopicPartition,
    pub offset: u64,
    pub record: Record,
}

/// Answers, for a partition a consumer is given, the next offset to read. `None`: the
/// embedded log reads from the beginning; Kafka from the group's committed offset, or
/// the beginning if the group has none. Called again whenever partitions are reassigned.
pub type PositionLookup = Arc<dyn Fn(&TopicPartition) -> Option<u64> + Send + Sync>;

pub trait EventLog: Clone + Send + Sync + 'static {
    type Consumer: LogConsumer;

    /// Appends records and returns once every one is durable, in the order given.
    fn append(&self, records: Vec<Record>) -> impl Future<Output = Result<Vec<Appended>, LogError>> + Send;

    /// Joins consumer group `group`; reading starts where `positions` says.
    fn subscribe(&self, group: &str, positions: PositionLookup) -> Result<Self::Consumer, LogError>;

    /// Reads every partition, outside any group, from where `positions` says (the
    /// beginning where it says nothing): for a reader that must see all of a topic, which
    /// no rebalance should ever leave without a partition.
    fn read_all(&self, positions: PositionLookup) -> Result<Self::Consumer, LogError>;

    /// The next offset to be written in every partition, for lag.
    fn end_offsets(&self) -> Result<Vec<(TopicPartition, u64)>, LogError>;

    /// The next offset consumer group `group` has committed, per partition that has one;
    /// `None` for a log whose consumers share no group (the embedded log). Reading it
    /// does not join the group: it is how a member sees the partitions others own.
    fn group_positions(&self, group: &str) -> Result<Option<BTreeMap<TopicPartition, u64>>, LogError> {
        let _ = group;
        Ok(None)
    }
}

pub trait LogConsumer: Send + 'static {
    /// Up to `max` records, waiting at most `wait` for the first one.
    fn poll(&mut self, max: usize, wait: Duration) -> impl Future<Output = Result<Vec<Polled>, LogError>> + Send;

    /// Tells the log how far this consumer's state reaches (next offset to read), so a
    /// new owner of the partition starts near there. Advisory: positions stored with the
    /// state remain the truth.
    fn commit(&mut self, positions: &[(TopicPartition, u64)]) -> Result<(), LogError>;

    /// The partitions this consumer reads now, when a group shares them out; `None` when
    /// it reads all it is given (the embedded log, a reader of all partitions).
    fn reading(&self) -> Option<Vec<TopicPartition>> {
        None
    }
}

/// Calls `attempt` again while its error is a lock held elsewhere (`locked`), for about
/// two seconds: long enough for a handle of this process just dropped to let go.
pub(crate) fn retry_while_locked<T, E>(
    mut attempt: impl FnMut() -> Result<T, E>,
    locked: impl Fn(&E) -> bool,
) -> Result<T, E> {
    let mut waited = Duration::ZERO;
    loop {
        match attempt() {
            Err(e) if locked(&e) && waited < Duration::from_secs(2) => {
                std::thread::sleep(Duration::from_millis(20));
                waited += Duration::from_millis(20);
            }
            other => return other,
        }
    }
}

/// The partition for a key: FNV-1a, stable across builds and machines.
pub fn partition_for(key: &str, partitions: u32) -> u32 {
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    (hash % u64::from(partitions.max(1))) as u32
}
