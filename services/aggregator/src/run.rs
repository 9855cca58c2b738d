//! The aggregator's loop ([`run`]): it polls the log, has the fold thread fold each poll
//! and store it when a checkpoint is due, commits or publishes what is stored, quarantines
//! a record whose fold panicked, and every few seconds measures the lag and looks for
//! stalled partitions. It reacts to one [`Event`] at a time, each handled by a method of
//! [`Aggregator`].

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use eventlog::{EventLog, LogConsumer, LogError, Polled, TopicPartition};

use crate::{
    AggregateError, AggregatorMetrics, BatchOutcome, FoldConfig, Folder, POLL_MAX, Projections, Stalled, changelog,
    checkpoint_worth_it, quarantine, stall, stored_positions, watch_stalls,
};

/// A member judges the partitions other members fold by the offsets the group commits,
/// over this many stall times: a commit follows a checkpoint and its changelog
/// publication, and an owner folding a backlog checkpoints up to a minute apart.
const OTHERS_STALL_FACTOR: u32 = 3;

/// What the aggregator's loop reacts to, one at a time.
enum Event {
    /// Stop: a publication under way is finished, and what was folded is stored.
    Shutdown,
    /// The log answered a poll.
    Polled(Result<Vec<Polled>, LogError>),
    /// A poll was folded.
    Folded(BatchOutcome),
    /// What was folded was stored, or handed to the writer: the log may be committed (a
    /// commit claims only what has settled, `Folder::checkpointed`), or over Kafka the
    /// outbox published first.
    Checkpointed,
    /// A poll short of [`POLL_MAX`] was folded and stored: no backlog is left.
    CaughtUp,
    /// Folding this record panicked: it goes to the quarantine, and folding starts again
    /// from the store, past it.
    Poisoned(Box<quarantine::Quarantined>),
    /// The outbox went to the changelog, or failed to; what it covers may be committed.
    Published { covers: Vec<(eventlog::TopicPartition, u64)>, published: Result<usize, AggregateError> },
    /// A second passed since the last tick, as a poll was folded: the fold rate; every
    /// fifth, the lag and stalls.
    Tick,
}

/// The outbox's way to the changelog (Kafka mode; without a changelog nothing is ever due).
struct Outbox {
    /// It holds what a checkpoint stored (or what a crash left): to publish next, once
    /// no publication is under way.
    due: bool,
    /// Going out while the next batches fold (a changelog append is a broker round trip).
    publishing: Option<Publication>,
}

impl Outbox {
    /// Whether the changelog has yet to take the publication under way.
    fn behind(&self) -> bool {
        self.publishing.as_ref().is_some_and(|p| !p.task.is_finished())
    }

    /// The publication under way, once it has ended.
    fn ended(&mut self) -> Option<Publication> {
        self.publishing.take_if(|p| p.task.is_finished())
    }
}

/// How a folded poll is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Store {
    /// Not yet: behind, and a checkpoint is not worth its cost yet.
    Later,
    /// By a writer thread, while the next polls fold.
    InBackground,
    /// Now, returning once it is stored.
    Now,
}

impl Store {
    /// `behind`: polls come back full, or over Kafka the changelog still takes the last
    /// publication (what is stored now could not go out before it ends anyway); then a
    /// checkpoint waits until it is worth it and fewer, coalesced changes go out. Only
    /// without a changelog is it written in the background: over Kafka the outbox may go
    /// out only once stored. Full caches are stored at once: only a checkpoint stored
    /// with nothing folded since may drop them.
    pub(crate) fn of(behind: bool, worth_it: bool, caches_full: bool, changelog: bool) -> Self {
        match (!behind || worth_it || caches_full, behind && !changelog && !caches_full) {
            (false, _) => Self::Later,
            (true, true) => Self::InBackground,
            (true, false) => Self::Now,
        }
    }
}

/// Every second, and every fifth second.
struct Ticks {
    second: Instant,
    /// The first lag is measured a second in (the feeds' hold needs it), then every 5 s.
    lag_round: u8,
}

impl Ticks {
    fn new() -> Self {
        Self { second: Instant::now(), lag_round: 4 }
    }

    fn due(&self) -> bool {
        self.second.elapsed() >= Duration::from_secs(1)
    }

    /// Whether the lag is due (reading the log's ends costs the broker a request per
    /// partition: every 5 s).
    fn tick(&mut self) -> bool {
        self.second = Instant::now();
        self.lag_round = (self.lag_round + 1) % 5;
        self.lag_round == 0
    }
}

/// What an aggregator folds, into what, and how.
pub struct Aggregating<L, C> {
    /// The event log, read as a member of `group`.
    pub log: L,
    /// Over Kafka, the group's changelog: every change is also published there (after it
    /// is stored, before the log position is committed to the group).
    pub changelog: Option<C>,
    pub group: String,
    pub projections: Projections,
    pub fold: FoldConfig,
    pub metrics: AggregatorMetrics,
}

/// Consumes the log and folds everything into the projections until `shutdown`
/// completes.
pub async fn run<L: EventLog, C: EventLog>(
    setup: Aggregating<L, C>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AggregateError> {
    let mut aggregator = Aggregator::start(&setup)?;
    tokio::pin!(shutdown);
    loop {
        match aggregator.next_event(shutdown.as_mut()).await {
            Event::Shutdown => return aggregator.shut_down().await,
            Event::Polled(polled) => aggregator.polled(polled).await?,
            Event::Folded(outcome) => aggregator.folded(outcome),
            Event::Checkpointed => aggregator.checkpointed()?,
            Event::CaughtUp => aggregator.caught_up(),
            Event::Poisoned(record) => aggregator.poisoned(*record).await?,
            Event::Published { covers, published } => {
                if !aggregator.published(covers, published, shutdown.as_mut()).await? {
                    return Ok(());
                }
            }
            Event::Tick => aggregator.tick()?,
        }
    }
}

/// One aggregator: what its loop holds between events, and a method for each event.
struct Aggregator<'r, L: EventLog, C: EventLog> {
    log: &'r L,
    changelog: Option<&'r C>,
    group: &'r str,
    projections: &'r Projections,
    config: &'r FoldConfig,
    metrics: &'r AggregatorMetrics,
    /// `None` only while a poll folds on the fold thread.
    folder: Option<Folder>,
    /// `None` only while it is replaced: the old one leaves the group before a new one joins.
    consumer: Option<L::Consumer>,
    stalls: stall::StallWatch,
    /// The partitions other members of the group fold, judged by the group's commits.
    unowned: stall::StallWatch,
    last_reading: Option<Vec<TopicPartition>>,
    fold_thread: FoldThread,
    ticks: Ticks,
    last_checkpoint: Instant,
    outbox: Outbox,
    /// Behind, the next poll is read while the last one folds (reading the log is work of
    /// its own, on another core).
    ahead: Option<Result<Vec<Polled>, LogError>>,
    /// Events that follow from the one handled, before anything else is waited for.
    follow: VecDeque<Event>,
    /// A catch-up under way (a rebuild, a restart after downtime); its progress is logged.
    catch_up: Option<CatchUp>,
}

/// A backlog being folded (polls come back full): since when, the events folded by then,
/// and when progress was last logged.
struct CatchUp {
    since: Instant,
    folded_before: u64,
    logged: Instant,
}

impl CatchUp {
    /// How often a catch-up logs its progress.
    const EVERY: Duration = Duration::from_secs(10);
}

impl<'r, L: EventLog, C: EventLog> Aggregator<'r, L, C> {
    fn start(setup: &'r Aggregating<L, C>) -> Result<Self, AggregateError> {
        let Aggregating { log, changelog, group, projections, fold: config, metrics } = setup;
        let changelog = changelog.as_ref();
        let mut aggregator = Self {
            log,
            changelog,
            group,
            projections,
            config,
            metrics,
            folder: None,
            consumer: Some(log.subscribe(group, stored_positions(projections))?),
            stalls: stall::StallWatch::new(config.stall_after),
            unowned: stall::StallWatch::new(config.stall_after * OTHERS_STALL_FACTOR),
            last_reading: None,
            fold_thread: FoldThread::start()?,
            ticks: Ticks::new(),
            last_checkpoint: Instant::now(),
            // Whatever a crash left in the outbox goes out first.
            outbox: Outbox { due: changelog.is_some(), publishing: None },
            ahead: None,
            follow: VecDeque::new(),
            catch_up: None,
        };
        aggregator.folder = Some(aggregator.new_folder()?);
        metrics.quarantined.set(projections.quarantined_count() as i64);
        Ok(aggregator)
    }

    fn new_folder(&self) -> Result<Folder, AggregateError> {
        let folder = Folder::new(self.projections.clone(), self.config.rules, self.config.zone)?;
        Ok(if self.changelog.is_some() { folder.with_changelog() } else { folder })
    }

    fn folder(&self) -> &Folder {
        self.folder.as_ref().expect("the folder is back from the fold thread between events")
    }

    fn consumer(&mut self) -> &mut L::Consumer {
        self.consumer.as_mut().expect("a consumer but while it is replaced")
    }

    /// Subscribes again, from the stored positions (a poll read ahead is dropped).
    fn subscribe_again(&mut self) -> Result<(), AggregateError> {
        self.ahead = None;
        drop(self.consumer.take());
        self.consumer = Some(self.log.subscribe(self.group, stored_positions(self.projections))?);
        Ok(())
    }

    /// The next event: one that followed from the last, a publication ended, or else (a
    /// due publication started) shutdown or the log's answer to a poll.
    async fn next_event(&mut self, shutdown: Pin<&mut impl Future<Output = ()>>) -> Event {
        if let Some(event) = self.follow.pop_front() {
            return event;
        }
        if let Some(done) = self.outbox.ended() {
            let published = done.task.await.expect("changelog task panicked");
            return Event::Published { covers: done.covers, published };
        }
        if self.outbox.due
            && self.outbox.publishing.is_none()
            && let Some(changelog) = self.changelog
        {
            let (projections, changelog) = (self.projections.clone(), changelog.clone());
            self.outbox.publishing = Some(Publication {
                covers: checkpointed(self.folder()),
                task: tokio::spawn(async move { changelog::publish_outbox(&projections, &changelog).await }),
            });
            self.outbox.due = false;
        }
        let (ahead, consumer) = (&mut self.ahead, self.consumer.as_mut().expect("a consumer between events"));
        tokio::select! {
            biased;
            () = shutdown => Event::Shutdown,
            polled = async {
                match ahead.take() {
                    Some(polled) => polled,
                    None => consumer.poll(POLL_MAX, Duration::from_millis(200)).await,
                }
            } => Event::Polled(polled),
        }
    }

    /// A publication under way is finished, so a graceful stop commits it; what was folded
    /// and not stored is stored (a crash would fold it again).
    async fn shut_down(mut self) -> Result<(), AggregateError> {
        if let Some(done) = self.outbox.publishing.take()
            && done.task.await.expect("changelog task panicked").is_ok()
        {
            self.consumer().commit(&done.covers)?;
        }
        let mut folder = self.folder.take().expect("the folder is back from the fold thread between events");
        if folder.pending() > 0 || folder.checkpoint_under_way() {
            tokio::task::spawn_blocking(move || folder.checkpoint()).await.expect("fold task panicked")?;
        }
        Ok(())
    }

    async fn polled(&mut self, polled: Result<Vec<Polled>, LogError>) -> Result<(), AggregateError> {
        let records = match polled {
            Ok(records) => records,
            Err(LogError::Unavailable(reason)) => {
                tracing::warn!(%reason, "log unavailable; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        // A full poll: the aggregator is behind, folding a backlog. Caught up again only
        // once this poll is folded and stored: the feeds must not seal without it.
        let full = records.len() == POLL_MAX;
        if full {
            self.projections.set_catching_up(true);
            self.behind();
        }
        // An empty poll after folded ones stores them (the log ran dry right after a full
        // poll), and waits for a checkpoint under way.
        let folder = self.folder();
        if !records.is_empty() || folder.pending() > 0 || folder.checkpoint_under_way() {
            self.fold(records, full).await?;
        }
        if !full {
            self.follow.push_back(Event::CaughtUp);
        }
        if self.ticks.due() {
            self.follow.push_back(Event::Tick);
        }
        Ok(())
    }

    /// Folds `records` on the fold thread, storing them if a checkpoint is due; reads the
    /// next poll meanwhile when behind.
    async fn fold(&mut self, records: Vec<Polled>, full: bool) -> Result<(), AggregateError> {
        let behind = full || self.outbox.behind();
        let has_changelog = self.changelog.is_some();
        let folded_total = self.metrics.folded_total.clone();
        let last_checkpoint = self.last_checkpoint;
        let mut folder = self.folder.take().expect("the folder is back from the fold thread between events");
        // Folding is CPU and sled work: keep it off the async workers.
        let folding = self.fold_thread.run(move || {
            let outcome = folder.fold_records(&records).and_then(|outcome| {
                // Counted before the checkpoint makes the fold visible, so the status
                // never reports fewer events than the reports already show.
                folded_total.fetch_add(outcome.folded, std::sync::atomic::Ordering::Relaxed);
                let worth_it = checkpoint_worth_it(&folder, last_checkpoint.elapsed());
                let store = Store::of(behind, worth_it, folder.caches_full(), has_changelog);
                match store {
                    Store::Later => folder.settle_if_stored()?,
                    Store::InBackground => folder.start_checkpoint()?,
                    Store::Now => folder.checkpoint()?,
                }
                Ok((outcome, store != Store::Later))
            });
            (folder, outcome)
        });
        // Only without a changelog (the embedded log): a Kafka poll that does not wait
        // returns what the client has buffered, often a short batch, which would look
        // caught up and force the checkpoints and publications that behind avoids.
        if full && !has_changelog {
            let consumer = self.consumer.as_mut().expect("a consumer between events");
            self.ahead = Some(consumer.poll(POLL_MAX, Duration::ZERO).await);
        }
        let (returned, outcome) = folding.await?;
        self.folder = Some(returned);
        match outcome {
            Err(AggregateError::Poisoned(record)) => self.follow.push_back(Event::Poisoned(record)),
            outcome => {
                let (outcome, stored) = outcome?;
                self.follow.push_back(Event::Folded(outcome));
                if stored {
                    self.follow.push_back(Event::Checkpointed);
                }
            }
        }
        Ok(())
    }

    fn folded(&mut self, outcome: BatchOutcome) {
        let metrics = self.metrics;
        if outcome.unreadable > 0 {
            metrics.quarantined.inc_by(outcome.unreadable as i64);
        }
        metrics.folded.inc_by(outcome.folded);
        let unrostered = self.folder.as_mut().expect("the folder is back from the fold thread").take_unrostered();
        for (school, n) in unrostered {
            metrics.unrostered.get_or_create(&vec![("school".to_owned(), school)]).inc_by(n);
        }
        metrics.duplicates.inc_by(outcome.duplicates);
        metrics.replayed.inc_by(outcome.replayed);
        metrics.unreadable.inc_by(outcome.unreadable);
    }

    /// Over Kafka the outbox goes out next; without, the log is committed.
    fn checkpointed(&mut self) -> Result<(), AggregateError> {
        self.last_checkpoint = Instant::now();
        if self.changelog.is_some() {
            self.outbox.due = true;
        } else {
            let positions = checkpointed(self.folder());
            self.consumer().commit(&positions)?;
        }
        Ok(())
    }

    /// Quarantines `record` and folds on with a new folder from the store, past it.
    async fn poisoned(&mut self, record: quarantine::Quarantined) -> Result<(), AggregateError> {
        tracing::error!(at = %record.at(), offset = record.offset, reason = %record.reason,
            "quarantining a record whose fold failed; folding again from the stored state");
        // The checkpoint under way was started before the record: let it land.
        let abandoned = self.folder.take().expect("the folder is back from the fold thread between events");
        tokio::task::spawn_blocking(move || abandoned.wait_for_writer()).await.expect("fold task panicked")?;
        self.projections.quarantine(&record)?;
        self.folder = Some(self.new_folder()?);
        self.metrics.quarantined.set(self.projections.quarantined_count() as i64);
        self.subscribe_again()
    }

    /// Commits what a publication covers; retries one the changelog could not take.
    /// Whether to go on (`false`: shutdown came while waiting to retry).
    async fn published(
        &mut self,
        covers: Vec<(TopicPartition, u64)>,
        published: Result<usize, AggregateError>,
        shutdown: Pin<&mut impl Future<Output = ()>>,
    ) -> Result<bool, AggregateError> {
        match published {
            Ok(_) => self.consumer().commit(&covers)?,
            Err(AggregateError::Log(LogError::Unavailable(reason))) => {
                tracing::warn!(%reason, "changelog unavailable; retrying");
                self.outbox.due = true;
                tokio::select! {
                    () = shutdown => return Ok(false),
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
            Err(e) => return Err(e),
        }
        Ok(true)
    }

    /// Events folded by this process's aggregators so far.
    fn folded_total(&self) -> u64 {
        self.metrics.folded_total.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A full poll: a backlog is being folded; logged as it begins.
    fn behind(&mut self) {
        if self.catch_up.is_none() {
            tracing::info!("catching up with the log");
            let now = Instant::now();
            self.catch_up = Some(CatchUp { since: now, folded_before: self.folded_total(), logged: now });
        }
    }

    /// A short poll folded and stored: a catch-up under way has ended.
    fn caught_up(&mut self) {
        self.projections.set_catching_up(false);
        if let Some(catch_up) = self.catch_up.take() {
            let folded = self.folded_total().saturating_sub(catch_up.folded_before);
            tracing::info!(folded, seconds = catch_up.since.elapsed().as_secs(), "caught up with the log");
        }
    }

    /// Every ten seconds of a catch-up: how far behind it is (`rows`: this member's
    /// partitions, position and end), how fast it folds, how long is left at that pace.
    fn log_catch_up(&mut self, rows: &[(TopicPartition, u64, u64)]) {
        let folded_total = self.folded_total();
        let Some(catch_up) = self.catch_up.as_mut().filter(|c| c.logged.elapsed() >= CatchUp::EVERY) else { return };
        let backlog: u64 = rows.iter().map(|(_, position, end)| end.saturating_sub(*position)).sum();
        let folded = folded_total.saturating_sub(catch_up.folded_before);
        let per_second = folded as f64 / catch_up.since.elapsed().as_secs_f64();
        let seconds_left = (per_second > 0.0).then(|| (backlog as f64 / per_second).ceil() as u64);
        tracing::info!(folded, backlog, per_second = per_second.round(), ?seconds_left, "catching up with the log");
        catch_up.logged = Instant::now();
    }

    /// Every fifth second: the lag, and the stalls of this member's partitions and of
    /// those no member here reads; either subscribes again.
    fn tick(&mut self) -> Result<(), AggregateError> {
        if !self.ticks.tick() {
            return Ok(());
        }
        let mut rows = update_lag(self.log, self.folder(), self.metrics, self.projections);
        let reading = self.consumer().reading();
        let others = reading.as_ref().and_then(|reading| others_rows(self.log, self.group, &rows, reading));
        // Only the partitions this member reads can stall here; the others are another
        // member's to fold, watched through the group's commits below.
        if let Some(reading) = &reading {
            rows.retain(|(tp, _, _)| reading.contains(tp));
        }
        self.log_catch_up(&rows);
        if reading != self.last_reading {
            // Partitions changed hands: their new owners get the whole time.
            self.unowned.restart();
            self.last_reading = reading;
        }
        let (projections, metrics) = (self.projections, Some(self.metrics));
        let own_stalled = watch_stalls(&mut self.stalls, &rows, projections, metrics, Stalled::Own);
        let others_stalled = others
            .is_some_and(|others| watch_stalls(&mut self.unowned, &others, projections, metrics, Stalled::InTheGroup));
        if own_stalled {
            self.stalls.cured();
        }
        if others_stalled {
            self.unowned.cured();
        }
        if own_stalled || others_stalled {
            self.subscribe_again()?;
        }
        Ok(())
    }
}

/// The thread an aggregator folds on: its own, at a lower priority than the rest of the
/// process (by [`FOLD_NICE`]; the checkpoint writers it starts inherit it). When intake
/// and folding both want the cores, intake, which clients wait on, goes first and the
/// fold catches up after; alone (a rebuild, or aggregators apart from intake), the fold
/// has them all. Measured on the province day (2 cores, two aggregators): 4-stream intake
/// at 97k events/s with the fold at the same priority, 92k at nice 5, 178k at nice 10; the
/// day was folded 23–26 s after its first event either way.
pub(crate) struct FoldThread {
    jobs: std::sync::mpsc::Sender<Box<dyn FnOnce() + Send>>,
}

/// How much nicer the fold threads are than the process: CFS gives a thread at nice 10
/// about a tenth of the share of one at 0, so a fold under a sustained stream of intake
/// still moves.
pub(crate) const FOLD_NICE: i32 = 10;

impl FoldThread {
    pub(crate) fn start() -> Result<Self, AggregateError> {
        let (jobs, received) = std::sync::mpsc::channel::<Box<dyn FnOnce() + Send>>();
        std::thread::Builder::new()
            .name("fold".into())
            .spawn(move || {
                lower_priority();
                // Ends when the aggregator drops its end.
                for job in received {
                    job();
                }
            })
            .map_err(AggregateError::NoFoldThread)?;
        Ok(Self { jobs })
    }

    /// Hands `job` to the fold thread at once, and gives its result without blocking a
    /// worker. Not an `async fn`, whose body would wait for the first poll: the aggregator
    /// reads the next poll of the log before it awaits the fold, and the two are meant to
    /// overlap. A job that panicked is an error: the aggregator stops, and with it the
    /// server, rather than leave its share of the schools unfolded while the others go on.
    pub(crate) fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> impl Future<Output = Result<T, AggregateError>> {
        let (answer, result) = tokio::sync::oneshot::channel();
        let job = Box::new(move || {
            let _ = answer.send(job());
        });
        // A panic ended the thread, dropping `answer` (or `received`, for a later job).
        let sent = self.jobs.send(job).map_err(|_| AggregateError::FoldPanicked);
        async move {
            sent?;
            result.await.map_err(|_| AggregateError::FoldPanicked)
        }
    }
}

/// Lowers the calling thread's priority by [`FOLD_NICE`] (at most to 19); on Linux a
/// thread's nice value is its own. Best effort: at the process's priority, folding only
/// yields less to intake.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: nice takes a plain integer and touches no memory of ours.
    #[allow(unsafe_code)]
    let lowered = unsafe { libc::nice(FOLD_NICE) } != -1;
    #[cfg(not(target_os = "linux"))]
    let lowered = false;
    if !lowered {
        tracing::debug!("fold thread left at the default priority");
    }
}

/// The outbox on its way to the changelog, and the log positions it makes safe to commit.
struct Publication {
    covers: Vec<(eventlog::TopicPartition, u64)>,
    task: tokio::task::JoinHandle<Result<usize, AggregateError>>,
}

/// The positions the last checkpoint stored: as far as the log may be committed.
fn checkpointed(folder: &Folder) -> Vec<(eventlog::TopicPartition, u64)> {
    folder.checkpointed().iter().map(|(tp, n)| (tp.clone(), *n)).collect()
}

/// Measures the lag of every partition; `(partition, position, end)` of each, none when
/// the log's ends cannot be read now.
pub(crate) fn update_lag<L: EventLog>(
    log: &L,
    folder: &Folder,
    metrics: &AggregatorMetrics,
    projections: &Projections,
) -> Vec<(eventlog::TopicPartition, u64, u64)> {
    let Ok(ends) = log.end_offsets() else { return Vec::new() };
    let mut backlog = 0u64;
    let mut rows = Vec::with_capacity(ends.len());
    for (tp, end) in ends {
        let labels = vec![("topic".to_owned(), tp.topic.clone()), ("partition".to_owned(), tp.partition.to_string())];
        let position = folder.position(&tp).unwrap_or(0);
        let lag = end.saturating_sub(position);
        metrics.position.get_or_create(&labels).set(position as i64);
        metrics.lag.get_or_create(&labels).set(lag as i64);
        backlog += lag;
        rows.push((tp, position, end));
    }
    projections.set_backlog(backlog);
    rows
}

/// `(partition, committed, end)` of each partition of `rows` that this member does not
/// read: the group's committed offset stands for its owner's position. `None` when the
/// log has no groups or the offsets cannot be read now (a busy broker must not restart
/// the clocks).
fn others_rows<L: EventLog>(
    log: &L,
    group: &str,
    rows: &[(eventlog::TopicPartition, u64, u64)],
    reading: &[eventlog::TopicPartition],
) -> Option<Vec<(eventlog::TopicPartition, u64, u64)>> {
    if rows.is_empty() {
        return None; // the ends could not be read
    }
    let committed = log.group_positions(group).ok()??;
    let others = rows.iter().filter(|(tp, _, _)| !reading.contains(tp));
    Some(others.map(|(tp, _, end)| (tp.clone(), committed.get(tp).copied().unwrap_or(0), *end)).collect())
}
