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
//! Two implementations: [`EmbeddedLog`] (sled, one process) and [`KafkaLog`] (a Kafka
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
    Storage(#[from] sled::Error),
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

/// Opens a sled database, waiting a little for a lock held by a handle just dropped in
/// this process: sled lets go of its file lock only when its background flusher exits, a
/// moment after the last handle is dropped (an in-process restart would fail otherwise).
/// Another process holding the lock still fails, after about two seconds.
pub fn open_sled(dir: &std::path::Path) -> sled::Result<sled::Db> {
    retry_while_locked(
        || sled::open(dir),
        |e| matches!(e, sled::Error::Io(e) if e.to_string().contains("could not acquire lock")),
    )
}

/// Applies `batch` to `tree` atomically, as `sled::Tree::apply_batch` does, then has the
/// node versions it replaced handed to be freed before returning.
///
/// sled 0.34 frees a replaced node through crossbeam's epochs: the garbage waits in a
/// thread-local bag, then in a global queue, and a thread frees some of that queue only
/// every 128th time it pins, while sled pins once per batch. A checkpoint writer applies
/// a few hundred batches: at the province, the garbage of a one-day rebuild's checkpoint
/// (800,000 entries) outlived it, and the process grew 2.5 GB into fresh memory the kernel
/// zeroed, twice the checkpoint's own CPU (services/bench/PROFILE.md, fifteenth session).
pub fn apply_sled_batch(tree: &sled::Tree, batch: sled::Batch) -> sled::Result<()> {
    tree.apply_batch(batch)?;
    free_sled_garbage();
    Ok(())
}

/// Flushes this thread's garbage to the global queue and collects from it until a marker
/// deferred after everything else has run: the queue is taken in order, so all this
/// thread deferred before the marker has been taken to be freed too. Through sled's own
/// `pin`, so that this is sled's collector whatever crossbeam the rest of the build has.
///
/// Each round moves the epoch on if no thread holds it back, and frees up to 8 bags of 64
/// deferred frees: a school's batch of a province checkpoint took 8 to 63 rounds, done at
/// once. A thread pinned meanwhile holds the epoch back (sled's flusher while it writes,
/// another writer all through its batch), so later rounds wait a little in between, and
/// after [`FREEING_WAIT`] what is left goes with a later round: the next batch's, or
/// another writer's.
fn free_sled_garbage() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let taken = std::sync::Arc::new(AtomicBool::new(false));
    let marker = taken.clone();
    let guard = sled::pin();
    guard.defer(move || marker.store(true, Ordering::Release));
    guard.flush();
    drop(guard);
    let deadline = std::time::Instant::now() + FREEING_WAIT;
    for round in 0.. {
        if taken.load(Ordering::Acquire) || std::time::Instant::now() >= deadline {
            return;
        }
        if round >= FREEING_ROUNDS_AT_ONCE {
            std::thread::sleep(Duration::from_micros(100));
        }
        sled::pin().flush();
    }
}

/// Rounds of collecting done back to back, before they wait in between.
const FREEING_ROUNDS_AT_ONCE: u32 = 64;
/// How long a batch's writer goes on collecting its garbage, at most: with 1 ms, the
/// province day's rebuild (`fold_days`) grew 1.2 GB, with 10 ms 0.8 GB.
const FREEING_WAIT: Duration = Duration::from_millis(10);

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
