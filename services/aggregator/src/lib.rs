//! The aggregator: consumes the event log and folds it into projections kept in sled
//! (each person's timeline and each unit's daily tallies at every level), which the
//! `reports` read model answers report queries from.
//!
//! Exactly-once in effect: a checkpoint stores each school's state in one atomic sled
//! batch, then the log positions it reached; on start the consumer resumes from the stored
//! positions: what was folded after them is folded again. Records below them (a
//! re-delivery) are skipped, and a repeated event id is folded once: a school stored before
//! a crash holds the ids of what it folded with the state they produced.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::time::{Duration, Instant};

use chrono::FixedOffset;
use domain::Rules;
use eventlog::{EventLog, LogConsumer, LogError};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

pub mod changelog;
pub mod fold;
pub mod quarantine;
mod run;
pub mod stall;
pub mod store;
mod timeline_codec;

pub use fold::{BatchOutcome, Folder};
pub use run::{Aggregating, run};
pub use store::Projections;

#[derive(Debug, thiserror::Error)]
pub enum AggregateError {
    #[error("projection storage failed: {0}")]
    Storage(#[from] ::store::Error),
    #[error("projection record {key:?} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
    #[error(transparent)]
    Log(#[from] LogError),
    /// A checkpoint failed after its changes left memory: this folder can no longer tell
    /// what is stored, so it refuses to go on; a new one starts from the store.
    #[error("a checkpoint failed ({0}); the aggregator must start again from the stored state")]
    CheckpointFailed(String),
    #[error("no thread to fold on: {0}")]
    NoFoldThread(std::io::Error),
    #[error("folding panicked; the aggregator must start again from the stored state")]
    FoldPanicked,
    /// Folding this record panicked: it goes to the quarantine, and the aggregator starts
    /// again from the stored state, past it.
    #[error("record {} offset {} could not be folded: {}", .0.at(), .0.offset, .0.reason)]
    Poisoned(Box<quarantine::Quarantined>),
}

/// For binaries whose global allocator is mimalloc (`daybook`, `daybook-bench`,
/// `fold_days`): memory freed stays with the process for a minute before it goes back to
/// the kernel, not mimalloc's second. While the fold is behind, each checkpoint (about
/// one every 20 s) frees the node copies sled made for the one before and makes as many
/// again; given back in between, every page came back as a fresh one the kernel zeroes
/// (services/bench/PROFILE.md, eleventh session). The memory a process holds still
/// follows what it uses, a minute later.
pub fn keep_freed_memory_a_while() {
    #[allow(unsafe_code)]
    // Safety: sets a number in mimalloc's option table; any value is valid for it.
    unsafe {
        libmimalloc_sys::mi_option_set(PURGE_DELAY, PURGE_DELAY_MS);
    }
}

/// `mi_option_purge_delay` in mimalloc 3's options (the sys crate names older ones only).
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
const PURGE_DELAY_MS: std::ffi::c_long = 60_000;

/// How the aggregator folds: rules and the province's time zone, which decides the day.
#[derive(Debug, Clone, Copy)]
pub struct FoldConfig {
    pub rules: Rules,
    pub zone: FixedOffset,
    /// A partition lagging at the same position this long is stalled ([`stall`]).
    pub stall_after: Duration,
}

impl Default for FoldConfig {
    fn default() -> Self {
        Self {
            rules: Rules::default(),
            zone: FixedOffset::east_opt(8 * 3600).expect("valid offset"),
            stall_after: Duration::from_secs(30),
        }
    }
}

/// Records folded per batch, at most. A poll takes what is there (up to this), so it only
/// matters when the aggregator is behind: then a person or unit day touched several times
/// in a batch is written to sled once, and sled's cost is per entry written (a 30-day
/// rebuild took 27 % less CPU than with 4,096).
pub const POLL_MAX: usize = 32_768;

/// While the aggregator is behind (polls come back full), folded state is stored only
/// once a checkpoint is worth its cost, rather than after every poll: a person or unit
/// day touched by many records in between is then written once. Caught up, every poll is
/// stored at once, so freshness does not wait for these.
///
/// A checkpoint's cost is the entries it writes (sled's cost is per entry, and a rebuild
/// reads one partition after another, so each checkpoint of a province rebuild rewrites
/// the timelines of the 150,000 persons of the partition it is in, longer with every day
/// folded). So behind, a checkpoint waits until the records folded since the last one
/// are [`COALESCED_PER_ENTRY`] times the entries it would write, and at least
/// `CHECKPOINT_EVENTS`; and at most `CHECKPOINT_EVERY`, which bounds what a crash folds
/// again and how far the stored reports trail while a backlog is folded. At 16 per entry,
/// a rebuild of 30 days at a quarter of the province checkpointed every 1,048,576 records
/// and folded 165,000 events per CPU second; at 64, 189,000 to 211,000; a single checkpoint
/// at the end, 226,000 (services/bench/PROFILE.md, fourteenth session).
const CHECKPOINT_EVENTS: u64 = 1_048_576;
const COALESCED_PER_ENTRY: u64 = 64;
const CHECKPOINT_EVERY: Duration = Duration::from_secs(60);

/// Whether a folder that is behind should store what it folded (see `CHECKPOINT_EVENTS`).
pub fn checkpoint_worth_it(folder: &Folder, since_last: Duration) -> bool {
    let entries = u64::try_from(folder.dirty_entries()).unwrap_or(u64::MAX);
    folder.pending() >= CHECKPOINT_EVENTS.max(entries.saturating_mul(COALESCED_PER_ENTRY))
        || since_last >= CHECKPOINT_EVERY
}

/// Changelog records applied to a view per batch, at most.
const VIEW_POLL_MAX: usize = 8192;

type PartitionLabels = Vec<(String, String)>;

/// What an operator watches on an aggregator.
#[derive(Clone, Default)]
pub struct AggregatorMetrics {
    pub folded: Counter,
    pub duplicates: Counter,
    pub replayed: Counter,
    pub unreadable: Counter,
    /// Records in the quarantine, as the aggregators last counted.
    pub quarantined: Gauge<i64, AtomicI64>,
    pub position: Family<PartitionLabels, Gauge<i64, AtomicI64>>,
    pub lag: Family<PartitionLabels, Gauge<i64, AtomicI64>>,
    /// 1 while the partition is stalled: lagging, its position not moving.
    pub stalled: Family<PartitionLabels, Gauge<i64, AtomicI64>>,
    /// Events folded for persons not registered at their school, per school.
    pub unrostered: Family<PartitionLabels, Counter>,
    /// Events folded since start, for the status query.
    pub folded_total: Arc<AtomicU64>,
}

impl std::fmt::Debug for AggregatorMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AggregatorMetrics").finish_non_exhaustive()
    }
}

impl AggregatorMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register("daybook_events_folded", "Events folded into the projections", self.folded.clone());
        registry.register(
            "daybook_events_duplicate_skipped",
            "Events skipped at fold time: event id folded before (a normal reading is folded again, a no-op)",
            self.duplicates.clone(),
        );
        registry.register(
            "daybook_records_replayed_skipped",
            "Log records below the stored position, skipped",
            self.replayed.clone(),
        );
        registry.register(
            "daybook_records_unreadable",
            "Log records that did not decode or validate",
            self.unreadable.clone(),
        );
        registry.register(
            "daybook_records_quarantined",
            "Log records in the quarantine: unreadable, or their fold failed (listed by GetStatus)",
            self.quarantined.clone(),
        );
        registry.register(
            "daybook_log_position",
            "Next offset the aggregator folds, per partition",
            self.position.clone(),
        );
        registry.register("daybook_log_lag", "Records in the log not yet folded, per partition", self.lag.clone());
        registry.register(
            "daybook_partition_stalled",
            "1 while a partition lags and its position has not moved for the stall time",
            self.stalled.clone(),
        );
        registry.register(
            "daybook_events_unrostered",
            "Events folded for persons not on their school's roster (not registered when folded), per school",
            self.unrostered.clone(),
        );
    }

    /// Sets the stall gauge of each partition in `rows`.
    fn set_stalled(&self, rows: &[(eventlog::TopicPartition, u64, u64)], stalled: &[eventlog::TopicPartition]) {
        for (tp, _, _) in rows {
            let labels =
                vec![("topic".to_owned(), tp.topic.clone()), ("partition".to_owned(), tp.partition.to_string())];
            self.stalled.get_or_create(&labels).set(i64::from(stalled.contains(tp)));
        }
    }
}

/// Whose partitions a [`watch_stalls`] call watches, for its log line.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stalled {
    /// The consumer's own (a member's, a view's): its position.
    Own,
    /// Partitions no consumer of this member reads: the group's committed offset.
    InTheGroup,
}

/// Reports the partitions of `rows` that `watch` finds stalled (log, metric, the
/// projections for `GetStatus` and health); whether any is newly stalled, for the caller
/// to subscribe again.
fn watch_stalls(
    watch: &mut stall::StallWatch,
    rows: &[(eventlog::TopicPartition, u64, u64)],
    projections: &Projections,
    metrics: Option<&AggregatorMetrics>,
    whose: Stalled,
) -> bool {
    let stalled = watch.check(Instant::now(), rows);
    let before = projections.stalled();
    let fresh: Vec<_> = stalled.iter().filter(|tp| !before.contains(tp)).collect();
    for tp in &fresh {
        let (position, end) = rows.iter().find(|r| &r.0 == *tp).map_or((0, 0), |r| (r.1, r.2));
        match whose {
            Stalled::Own => tracing::warn!(partition = %tp, position, end,
                "partition stalled: lagging and not moving; subscribing again"),
            // Owned by a member that is gone (a broker that kept a dead member's
            // assignment, deploy/KAFKA.md) or stuck: rejoining makes the group rebalance.
            Stalled::InTheGroup => tracing::warn!(partition = %tp, committed = position, end,
                "partition stalled in the group: its committed offset lags and does not move; rejoining the group"),
        }
    }
    let reading: Vec<_> = rows.iter().map(|r| r.0.clone()).collect();
    projections.set_stalled(&reading, &stalled);
    if let Some(metrics) = metrics {
        metrics.set_stalled(rows, &stalled);
    }
    !fresh.is_empty()
}

/// Applies the changelog to `view` until `shutdown` completes: every instance reads every
/// partition of the changelog.
pub async fn run_view<C: EventLog>(
    changelog: C,
    view: Projections,
    stall_after: Duration,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AggregateError> {
    // Every partition by hand, outside any group: a view must read all of the
    // changelog, and a rebalance that left it a partition short stalled it for good.
    let mut consumer = changelog.read_all(stored_positions(&view))?;
    let mut stalls = stall::StallWatch::new(stall_after);
    tokio::pin!(shutdown);
    let mut lag_measured: Option<Instant> = None;
    loop {
        let records = tokio::select! {
            () = &mut shutdown => return Ok(()),
            polled = consumer.poll(VIEW_POLL_MAX, Duration::from_millis(200)) => polled,
        };
        match records {
            Ok(records) => {
                // Caught up only once a short poll is applied (see `run`).
                let full = records.len() == VIEW_POLL_MAX;
                if full {
                    view.set_catching_up(true);
                }
                if !records.is_empty() {
                    let target = view.clone();
                    tokio::task::spawn_blocking(move || changelog::apply(&target, &records))
                        .await
                        .expect("view task panicked")?;
                }
                if !full {
                    view.set_catching_up(false);
                }
                // The changelog's ends cost the broker a request per partition: every 5 s.
                if lag_measured.is_none_or(|at| at.elapsed() >= Duration::from_secs(5)) {
                    let (log, target) = (changelog.clone(), view.clone());
                    let rows = tokio::task::spawn_blocking(move || update_view_backlog(&log, &target))
                        .await
                        .expect("view task panicked");
                    lag_measured = Some(Instant::now());
                    if watch_stalls(&mut stalls, &rows, &view, None, Stalled::Own) {
                        stalls.cured();
                        drop(consumer);
                        consumer = changelog.read_all(stored_positions(&view))?;
                    }
                }
            }
            Err(LogError::Unavailable(reason)) => {
                tracing::warn!(%reason, "changelog unavailable; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Where to read a partition: where the stored state ends. The stored state is the truth:
/// a partition it has nothing of starts at 0, never at the group's committed offset
/// (which may run ahead of what survived a crash).
fn stored_positions(projections: &Projections) -> eventlog::PositionLookup {
    let stored = projections.clone();
    Arc::new(move |tp| Some(stored.positions().ok().and_then(|p| p.get(tp).copied()).unwrap_or(0)))
}

/// The view's lag behind the changelog, for the feeds' hold (see [`Projections::backlog`]);
/// `(partition, position, end)` of each, none when the ends cannot be read now.
fn update_view_backlog<C: EventLog>(changelog: &C, view: &Projections) -> Vec<(eventlog::TopicPartition, u64, u64)> {
    let (Ok(ends), Ok(positions)) = (changelog.end_offsets(), view.positions()) else { return Vec::new() };
    let rows: Vec<_> =
        ends.into_iter().map(|(tp, end)| (tp.clone(), positions.get(&tp).copied().unwrap_or(0), end)).collect();
    view.set_backlog(rows.iter().map(|(_, position, end)| end.saturating_sub(*position)).sum());
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::{FOLD_NICE, FoldThread, Store, update_lag};
    use eventlog::Polled;

    /// The nice value of the calling thread, from /proc (field 19 of its stat line).
    fn own_nice() -> i32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("/proc/thread-self/stat");
        let fields: Vec<&str> = stat.rsplit_once(')').expect("a stat line").1.split_whitespace().collect();
        fields[16].parse().expect("nice")
    }

    #[test]
    fn a_fold_is_stored_at_once_caught_up_and_in_the_background_only_behind_without_a_changelog() {
        // (behind, worth it, caches full, changelog)
        assert_eq!(Store::of(false, false, false, false), Store::Now);
        assert_eq!(Store::of(false, false, false, true), Store::Now);
        assert_eq!(Store::of(true, false, false, false), Store::Later);
        assert_eq!(Store::of(true, false, false, true), Store::Later);
        assert_eq!(Store::of(true, true, false, false), Store::InBackground);
        assert_eq!(Store::of(true, true, false, true), Store::Now, "the outbox goes out only once stored");
        assert_eq!(Store::of(true, false, true, false), Store::Now, "only a settled checkpoint drops the caches");
    }

    #[test]
    fn the_purge_delay_set_is_mimallocs() {
        #[allow(unsafe_code)]
        // Safety: reads and sets numbers in mimalloc's option table.
        let (before, after) = unsafe {
            let before = libmimalloc_sys::mi_option_get(PURGE_DELAY);
            keep_freed_memory_a_while();
            (before, libmimalloc_sys::mi_option_get(PURGE_DELAY))
        };
        // mimalloc 3's default purge delay is 1 s: another value there means the index
        // names another option (a mimalloc with its options renumbered).
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(before, 1_000, "option {PURGE_DELAY} is not mimalloc's purge delay");
        }
        assert_eq!(after, PURGE_DELAY_MS);
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn folding_runs_below_the_priority_of_the_rest() {
        let fold_thread = FoldThread::start().unwrap();
        let (outside, inside) = (own_nice(), fold_thread.run(own_nice).await.unwrap());
        assert_eq!(inside, (outside + FOLD_NICE).min(19), "the fold thread is at nice {inside}, the test at {outside}");
        // Jobs run one after another on the same thread.
        let first = fold_thread.run(|| std::thread::current().id()).await.unwrap();
        assert_eq!(fold_thread.run(|| std::thread::current().id()).await.unwrap(), first);
    }

    #[tokio::test]
    async fn a_fold_starts_when_handed_over_not_when_awaited() {
        let fold_thread = FoldThread::start().unwrap();
        let (started, seen) = std::sync::mpsc::channel();
        let answer = fold_thread.run(move || started.send(()).is_ok());
        // The aggregator reads the log's next poll here, before it awaits the fold.
        seen.recv_timeout(Duration::from_secs(10)).expect("the job ran before its answer was awaited");
        assert!(answer.await.unwrap());
    }

    #[tokio::test]
    async fn a_panic_while_folding_is_an_error_not_a_hang() {
        let fold_thread = FoldThread::start().unwrap();
        let panicked = fold_thread.run(|| panic!("a fold went wrong")).await;
        assert!(matches!(panicked, Err(AggregateError::FoldPanicked)), "{panicked:?}");
        // The thread is gone: what comes after fails too.
        assert!(matches!(fold_thread.run(|| 1).await, Err(AggregateError::FoldPanicked)));
    }

    /// The feeds hold their seals on this measure (`Projections::backlog`).
    #[tokio::test]
    async fn an_aggregator_measures_its_backlog_for_the_feeds() {
        let dir = tempfile::tempdir().unwrap();
        let log = eventlog::EmbeddedLog::open(&dir.path().join("log"), 2).unwrap();
        let records: Vec<eventlog::Record> = (0..5)
            .map(|i| eventlog::Record {
                topic: "health".into(),
                key: format!("S{i}"),
                headers: vec![],
                payload: b"unreadable".to_vec(),
            })
            .collect();
        log.append(records).await.unwrap();
        let db = ::store::Store::temporary().unwrap();
        let projections = Projections::new(db.open_tree("projections").unwrap());
        let writer = projections.for_writer(3);
        let config = FoldConfig::default();
        let mut folder = Folder::new(writer.clone(), config.rules, config.zone).unwrap();
        let metrics = AggregatorMetrics::default();
        writer.set_catching_up(true);
        update_lag(&log, &folder, &metrics, &writer);
        assert_eq!(projections.backlog(), Some(5), "nothing folded yet");
        let mut consumer = log.subscribe("g", Arc::new(|_| Some(0))).unwrap();
        let polled = consumer.poll(2, Duration::from_millis(100)).await.unwrap();
        assert_eq!(polled.len(), 2);
        folder.fold_records(&polled).unwrap();
        update_lag(&log, &folder, &metrics, &writer);
        assert_eq!(projections.backlog(), Some(3), "two folded (as unreadable), three to go");
    }

    /// `records` unreadable records of `health`, keyed by `key(i)`: folded, they go to the
    /// quarantine, which counts them.
    fn unreadable(records: usize, key: impl Fn(usize) -> String) -> Vec<eventlog::Record> {
        (0..records)
            .map(|i| eventlog::Record {
                topic: "health".into(),
                key: key(i),
                headers: vec![],
                payload: format!("unreadable {i}").into_bytes(),
            })
            .collect()
    }

    /// [`run`] on `log` with a 1 s stall time, until the sender is used or dropped.
    fn spawn_run<L: EventLog>(
        log: L,
        projections: &Projections,
        metrics: &AggregatorMetrics,
    ) -> (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<Result<(), AggregateError>>) {
        let config = FoldConfig { stall_after: Duration::from_secs(1), ..FoldConfig::default() };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let setup = Aggregating {
            log,
            changelog: None::<eventlog::EmbeddedLog>,
            group: "g".to_owned(),
            projections: projections.clone(),
            fold: config,
            metrics: metrics.clone(),
        };
        let running = tokio::spawn(run(setup, shutdown));
        (stop, running)
    }

    /// The embedded log, whose first consumer stops reading (as a Kafka consumer left
    /// without its partitions by a rebalance did): it polls nothing, whatever the log holds.
    #[derive(Clone)]
    struct FirstConsumerStops {
        log: eventlog::EmbeddedLog,
        subscriptions: Arc<std::sync::atomic::AtomicUsize>,
    }

    enum MaybeStopped {
        Stopped,
        Reading(<eventlog::EmbeddedLog as EventLog>::Consumer),
    }

    impl LogConsumer for MaybeStopped {
        async fn poll(&mut self, max: usize, wait: Duration) -> Result<Vec<Polled>, LogError> {
            match self {
                Self::Stopped => {
                    tokio::time::sleep(wait).await;
                    Ok(Vec::new())
                }
                Self::Reading(consumer) => consumer.poll(max, wait).await,
            }
        }

        fn commit(&mut self, _: &[(eventlog::TopicPartition, u64)]) -> Result<(), LogError> {
            Ok(())
        }
    }

    impl EventLog for FirstConsumerStops {
        type Consumer = MaybeStopped;

        async fn append(&self, records: Vec<eventlog::Record>) -> Result<Vec<eventlog::Appended>, LogError> {
            self.log.append(records).await
        }

        fn subscribe(&self, group: &str, positions: eventlog::PositionLookup) -> Result<MaybeStopped, LogError> {
            match self.subscriptions.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                0 => Ok(MaybeStopped::Stopped),
                _ => Ok(MaybeStopped::Reading(self.log.subscribe(group, positions)?)),
            }
        }

        fn read_all(&self, positions: eventlog::PositionLookup) -> Result<MaybeStopped, LogError> {
            self.subscribe("", positions)
        }

        fn end_offsets(&self) -> Result<Vec<(eventlog::TopicPartition, u64)>, LogError> {
            self.log.end_offsets()
        }
    }

    #[tokio::test]
    async fn a_consumer_that_stops_reading_is_found_stalled_and_subscribed_again() {
        let dir = tempfile::tempdir().unwrap();
        let log = eventlog::EmbeddedLog::open(&dir.path().join("log"), 1).unwrap();
        log.append(unreadable(3, |_| "S1".into())).await.unwrap();
        let stops = FirstConsumerStops { log, subscriptions: Arc::default() };
        let db = ::store::Store::temporary().unwrap();
        let projections = Projections::new(db.open_tree("projections").unwrap());
        let metrics = AggregatorMetrics::default();
        let (stop, running) = spawn_run(stops.clone(), &projections, &metrics);
        let health = eventlog::TopicPartition { topic: "health".into(), partition: 0 };
        let (mut seen_stalled, deadline) = (false, Instant::now() + Duration::from_secs(60));
        // Found stalled, subscribed again, and then the records are read (into the quarantine:
        // they do not decode) and the partition is no longer stalled.
        while projections.quarantined_count() < 3 || !projections.stalled().is_empty() {
            seen_stalled |= projections.stalled().contains(&health);
            assert!(Instant::now() < deadline, "never read: stalled {:?}", projections.stalled());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(seen_stalled, "the stall was reported before the cure");
        assert!(stops.subscriptions.load(std::sync::atomic::Ordering::SeqCst) >= 2, "subscribed again");
        let labels = vec![("topic".to_owned(), "health".to_owned()), ("partition".to_owned(), "0".to_owned())];
        assert_eq!(metrics.stalled.get_or_create(&labels).get(), 0, "the gauge is back to 0");
        stop.send(()).unwrap();
        running.await.unwrap().unwrap();
    }

    /// A group on the embedded log whose member here was given the partitions numbered 0
    /// only, while the others are owned by nobody (their owner died and the broker kept
    /// its assignment, as tansu 0.6.0 does): nothing is ever committed for them. Joining
    /// again gives this member every partition, as the rebalance it causes would.
    #[derive(Clone)]
    struct OwnerlessPartitions {
        log: eventlog::EmbeddedLog,
        subscriptions: Arc<std::sync::atomic::AtomicUsize>,
    }

    struct Member {
        consumer: <eventlog::EmbeddedLog as EventLog>::Consumer,
        reading: Vec<eventlog::TopicPartition>,
    }

    impl LogConsumer for Member {
        async fn poll(&mut self, max: usize, wait: Duration) -> Result<Vec<Polled>, LogError> {
            self.consumer.poll(max, wait).await
        }

        fn commit(&mut self, _: &[(eventlog::TopicPartition, u64)]) -> Result<(), LogError> {
            Ok(())
        }

        fn reading(&self) -> Option<Vec<eventlog::TopicPartition>> {
            Some(self.reading.clone())
        }
    }

    impl EventLog for OwnerlessPartitions {
        type Consumer = Member;

        async fn append(&self, records: Vec<eventlog::Record>) -> Result<Vec<eventlog::Appended>, LogError> {
            self.log.append(records).await
        }

        fn subscribe(&self, group: &str, positions: eventlog::PositionLookup) -> Result<Member, LogError> {
            let all: Vec<_> = self.log.end_offsets()?.into_iter().map(|(tp, _)| tp).collect();
            Ok(match self.subscriptions.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                0 => Member {
                    consumer: self.log.share(0, 2).subscribe(group, positions)?,
                    reading: all.into_iter().filter(|tp| tp.partition == 0).collect(),
                },
                _ => Member { consumer: self.log.subscribe(group, positions)?, reading: all },
            })
        }

        fn read_all(&self, positions: eventlog::PositionLookup) -> Result<Member, LogError> {
            self.subscribe("", positions)
        }

        fn end_offsets(&self) -> Result<Vec<(eventlog::TopicPartition, u64)>, LogError> {
            self.log.end_offsets()
        }

        fn group_positions(
            &self,
            _: &str,
        ) -> Result<Option<std::collections::BTreeMap<eventlog::TopicPartition, u64>>, LogError> {
            Ok(Some(std::collections::BTreeMap::new()))
        }
    }

    #[tokio::test]
    async fn a_partition_no_member_reads_is_found_stalled_in_the_group_and_the_member_rejoins() {
        let dir = tempfile::tempdir().unwrap();
        let log = eventlog::EmbeddedLog::open(&dir.path().join("log"), 2).unwrap();
        let records = unreadable(6, |i| format!("S{i}"));
        let ownerless = eventlog::TopicPartition { topic: "health".into(), partition: 1 };
        assert!(records.iter().any(|r| eventlog::partition_for(&r.key, 2) == 1), "some records are in partition 1");
        log.append(records).await.unwrap();
        let group = OwnerlessPartitions { log, subscriptions: Arc::default() };
        let db = ::store::Store::temporary().unwrap();
        let projections = Projections::new(db.open_tree("projections").unwrap());
        let (stop, running) = spawn_run(group.clone(), &projections, &AggregatorMetrics::default());
        let (mut seen_stalled, deadline) = (false, Instant::now() + Duration::from_secs(60));
        // Reported stalled (a member here owns nothing of it), the group joined again, and
        // then its records are read (into the quarantine: they do not decode).
        while projections.quarantined_count() < 6 || !projections.stalled().is_empty() {
            seen_stalled |= projections.stalled().contains(&ownerless);
            assert!(Instant::now() < deadline, "never read: stalled {:?}", projections.stalled());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(seen_stalled, "the partition nobody read was reported before the cure");
        assert_eq!(group.subscriptions.load(std::sync::atomic::Ordering::SeqCst), 2, "joined again once");
        stop.send(()).unwrap();
        running.await.unwrap().unwrap();
    }
}
