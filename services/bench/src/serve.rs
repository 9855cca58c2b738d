//! One backend's measurements: the real server started in-process on a fresh data
//! directory, driven by real gRPC clients.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use daybook::{Roles, Running, ServeArgs};
use tonic::transport::{Channel, Endpoint};
use wire::pb;
use wire::pb::intake_client::IntakeClient;
use wire::pb::reports_client::ReportsClient;

use crate::{Args, Load};

/// The event log a run uses.
pub enum Log {
    Embedded,
    /// A Kafka-API broker at this address; the run creates topics of its own there.
    Kafka {
        broker: String,
        /// The broker's process, when the bench started it: its CPU is read.
        broker_pid: Option<u32>,
    },
}

impl Log {
    /// How often the bench asks for the status while it waits on this log.
    fn status_poll(&self) -> Duration {
        match self {
            Log::Embedded => STATUS_POLL,
            Log::Kafka { .. } => KAFKA_STATUS_POLL,
        }
    }

    /// The broker's process, when the bench started one.
    fn broker_pid(&self) -> Option<u32> {
        match self {
            Log::Embedded => None,
            Log::Kafka { broker_pid, .. } => *broker_pid,
        }
    }
}

/// `count` things done in `seconds`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub count: u64,
    pub seconds: f64,
}

impl Rate {
    pub fn new(count: usize, elapsed: Duration) -> Rate {
        Rate { count: count as u64, seconds: elapsed.as_secs_f64() }
    }

    pub fn per_second(&self) -> f64 {
        if self.seconds > 0.0 { self.count as f64 / self.seconds } else { f64::NAN }
    }
}

/// What one backend measured.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub unary: Option<Rate>,
    pub streaming: Option<Rate>,
    /// Streams sent again whole after intake answered UNAVAILABLE (the log did not
    /// acknowledge in time), as a client would; their time counts in `streaming`.
    pub streams_resent: u32,
    /// Over Kafka, `daybook intake` alone streaming the day to topics of its own, nothing
    /// reading them: what to hold against the raw producer, which runs alone too; and the
    /// streams it sent again.
    pub intake_alone: Option<(Rate, u32)>,
    /// The broker's CPU over intake alone, and over the rebuild (Kafka only).
    pub broker_busy_intake: Option<Busy>,
    pub broker_busy_rebuild: Option<Busy>,
    /// From the first streamed event posted until the aggregator folded it all.
    pub end_to_end: Option<Rate>,
    /// Of several runs, the shortest and longest end-to-end times (s), and how many runs.
    pub end_to_end_runs: Option<(f64, f64, usize)>,
    /// Acknowledgement to visible, one probe event at a time.
    pub freshness: Vec<Duration>,
    /// Every unit's report for the day, one `GetDailyReport` per unit.
    pub reports: Option<Rate>,
    /// Every unit's report for the day in one `ListDailyReports` stream.
    pub reports_streamed: Option<Rate>,
    /// Folding the whole log again into empty projections, from the first event folded
    /// until the status says all is (over Kafka: committed, and in the view).
    pub rebuild: Option<Rate>,
    /// The same from the first event folded to the last, and the CPU this process spent
    /// meanwhile: over Kafka the changelog's last records and the view follow it.
    pub rebuild_fold_alone: Option<(Rate, Duration)>,
    /// The CPU this process spent over the same time (the server's, all threads; on Kafka
    /// the broker's is not in it): the fold per core.
    pub rebuild_cpu: Option<Duration>,
    /// Over Kafka, the changelog records the rebuild's aggregator published.
    pub rebuild_changelog: Option<u64>,
    /// VmHWM in bytes, and whether it was reset before this backend started.
    pub peak_memory: Option<(u64, bool)>,
    pub data_dir_bytes: Option<u64>,
    pub projections_bytes: Option<u64>,
    /// The projections' keys and values, without sled's own overhead and garbage.
    pub projections_live_bytes: Option<u64>,
}

/// How often the status is polled while waiting for the aggregator on the embedded log:
/// fine enough for runs of a second.
const STATUS_POLL: Duration = Duration::from_millis(50);
/// On Kafka, where each status asks the broker for every partition's committed and end
/// offsets: polled every 50 ms, that was broker work the raw consumer it is compared with
/// does not cause, in runs of tens of seconds.
const KAFKA_STATUS_POLL: Duration = Duration::from_millis(500);
/// How often a freshness probe's report is read.
const PROBE_POLL: Duration = Duration::from_millis(2);
const PATIENCE: Duration = Duration::from_secs(600);
/// `ListDailyReports` calls timed, of which the median is reported.
const STREAMED_READS: usize = 5;
/// Times one stream is sent again after UNAVAILABLE before the run fails.
const STREAM_RESENDS: u32 = 5;
/// Report readers running at once: a reporting front end would not read one at a time.
pub const REPORT_CLIENTS: usize = 4;

pub async fn measure(load: &Load, log: &Log, args: &Args) -> anyhow::Result<Figures> {
    let dir = tempfile::tempdir()?;
    let prefix = crate::unique_name("daybook");
    let mut figures = Figures::default();
    let peak = PeakMemory::reset();

    let server =
        Server::start(&serve_args(&dir.path().join("serve"), log, &prefix, "aggregators", args), Roles::All).await?;
    let mut intake = IntakeClient::new(server.channel.clone());
    let mut reports = ReportsClient::new(server.channel.clone());

    eprintln!("  {} events, one Publish at a time", load.sample.len());
    let started = Instant::now();
    for event in &load.sample {
        accepted(intake.publish(event.clone()).await?.into_inner())?;
    }
    figures.unary = Some(Rate::new(load.sample.len(), started.elapsed()));
    follow_folding(&mut reports, log.status_poll()).await?;

    eprintln!("  {} events on {} streams", load.streamed(), args.streams);
    let streamed = stream_bulk(&intake, load, args.streams).await?;
    figures.streaming = Some(streamed.rate);
    figures.streams_resent = streamed.resent;
    follow_folding(&mut reports, log.status_poll()).await?;
    figures.end_to_end = Some(Rate::new(load.streamed(), streamed.started.elapsed()));

    eprintln!("  freshness of {} events", args.fresh);
    figures.freshness = freshness(&mut intake, &mut reports, load, args.fresh, log.status_poll()).await?;

    eprintln!("  every unit's report");
    figures.reports = Some(all_reports(&mut reports, load).await?);
    figures.reports_streamed = Some(all_reports_streamed(&mut reports, load).await?);

    figures.peak_memory = peak.read();
    figures.data_dir_bytes = Some(dir_size(&dir.path().join("serve")));
    figures.projections_bytes = Some(dir_size(&dir.path().join("serve/projections")));
    server.running.stop().await?;
    figures.projections_live_bytes = Some(live_bytes(&dir.path().join("serve/projections"))?);

    eprintln!("  rebuilding the projections from the log");
    let rebuilt = match log {
        // The log and the intake index stay; the projections start empty and the
        // aggregator folds the log from its first offset.
        Log::Embedded => {
            std::fs::remove_dir_all(dir.path().join("serve/projections"))?;
            let config = serve_args(&dir.path().join("serve"), log, &prefix, "aggregators", args);
            rebuild(&config, Roles::All, log.status_poll()).await?
        }
        // A new aggregator group on a new data directory reads the topics from the start.
        Log::Kafka { broker, .. } => {
            let config = serve_args(&dir.path().join("rebuild"), log, &prefix, "rebuild", args);
            let (rebuilt, busy) =
                broker_busy(log.broker_pid(), rebuild(&config, Roles::Aggregate, log.status_poll())).await?;
            figures.broker_busy_rebuild = busy;
            let changelog =
                daybook::kafka::changelog_prefix(&format!("{prefix}."), &config.group) + aggregator::changelog::TOPIC;
            figures.rebuild_changelog = Some(crate::raw::records_in(broker, &changelog).await?);
            rebuilt
        }
    };
    figures.rebuild = Some(rebuilt.whole);
    figures.rebuild_cpu = Some(rebuilt.cpu);
    figures.rebuild_fold_alone = rebuilt.fold_alone;
    Ok(figures)
}

/// The day's bulk posted on concurrent streams.
struct Streamed {
    /// From the first event posted to the last answer.
    rate: Rate,
    started: Instant,
    /// Streams sent again whole after intake answered UNAVAILABLE.
    resent: u32,
}

/// Posts the day's bulk on `streams` concurrent `PublishStream` calls, whole schools (and
/// halls) per stream.
async fn stream_bulk(intake: &IntakeClient<Channel>, load: &Load, streams: usize) -> anyhow::Result<Streamed> {
    // Each stream carries whole schools and halls, so a site's events stay in order; the events
    // are copied before the clock starts, with a spare copy for sending a stream again.
    let streams = streams.max(1);
    let mut lanes = vec![Vec::new(); streams];
    for (i, school) in load.bulk.iter().enumerate() {
        lanes[i % streams].extend(school.iter().cloned());
    }
    let lanes: Vec<_> = lanes.into_iter().map(|lane| (lane.clone(), lane)).collect();
    let started = Instant::now();
    let calls: Vec<_> = lanes
        .into_iter()
        .map(|(spare, lane)| {
            let mut intake = intake.clone();
            let sent = lane.len();
            let mut first = Some(lane);
            tokio::spawn(async move {
                // Intake answers UNAVAILABLE when the log does not acknowledge in time;
                // a client sends the stream again (what was accepted comes back as
                // duplicates), a few times at most.
                let mut resent = 0;
                loop {
                    let events = first.take().unwrap_or_else(|| spare.clone());
                    match intake.publish_stream(tokio_stream::iter(events)).await {
                        Err(status) if status.code() == tonic::Code::Unavailable && resent < STREAM_RESENDS => {
                            eprintln!("  a stream is sent again: {}", status.message());
                            resent += 1;
                        }
                        answer => return answer.map(|a| (a.into_inner(), resent, sent)),
                    }
                }
            })
        })
        .collect();
    let (mut streamed, mut all_resent) = (0, 0);
    for call in calls {
        let (answer, resent, sent) = call.await??;
        anyhow::ensure!(answer.rejected == 0, "events rejected: {:?}", answer.problems);
        anyhow::ensure!(answer.accepted + answer.duplicates == sent as u64, "a stream's answer does not count it all");
        streamed += sent as u64;
        all_resent += resent;
    }
    Ok(Streamed { rate: Rate::new(streamed as usize, started.elapsed()), started, resent: all_resent })
}

/// Streams the day's bulk through `daybook intake` alone (`Roles::Intake`) to topics of
/// its own: no aggregator of the run reads them or writes a changelog on the same broker
/// and cores meanwhile, as none does beside the raw producer.
pub async fn intake_alone(load: &Load, log: &Log, args: &Args) -> anyhow::Result<(Rate, u32, Option<Busy>)> {
    let dir = tempfile::tempdir()?;
    let prefix = crate::unique_name("intake");
    let server = Server::start(&serve_args(dir.path(), log, &prefix, "intake", args), Roles::Intake).await?;
    eprintln!("  {} events on {} streams, intake alone", load.streamed(), args.streams);
    let (streamed, busy) =
        broker_busy(log.broker_pid(), stream_bulk(&IntakeClient::new(server.channel.clone()), load, args.streams))
            .await?;
    server.running.stop().await?;
    Ok((streamed.rate, streamed.resent, busy))
}

/// The run with the median end-to-end time, which also notes the range of all of them.
pub fn median_run(runs: Vec<Figures>) -> Figures {
    let (mut median, range) = median_of(runs, |f| f.end_to_end.map_or(f64::INFINITY, |r| r.seconds));
    if range.2 > 1 {
        median.end_to_end_runs = Some(range);
    }
    median
}

/// The median of `runs` by `seconds`, with the fastest and slowest times and how many
/// runs there were. `runs` must not be empty.
fn median_of<T>(mut runs: Vec<T>, seconds: impl Fn(&T) -> f64) -> (T, (f64, f64, usize)) {
    runs.sort_by(|a, b| seconds(a).total_cmp(&seconds(b)));
    let range = (seconds(&runs[0]), seconds(&runs[runs.len() - 1]), runs.len());
    (runs.swap_remove(runs.len() / 2), range)
}

/// Aggregators the server folds the embedded log with, as the bench configures it.
pub fn aggregators(args: &Args) -> u32 {
    serve_args(Path::new("unused"), &Log::Embedded, "unused", "unused", args).aggregators()
}

fn serve_args(dir: &Path, log: &Log, prefix: &str, group: &str, args: &Args) -> daybook::ServeConfig {
    let log = match log {
        Log::Embedded => None,
        // tansu 0.6.0's memory storage cannot fetch from inside a record batch, hence one
        // record per batch (deploy/KAFKA.md); its sqlite storage crawls at 100k records.
        Log::Kafka { broker, .. } => Some(format!(
            "kafka://{broker}?prefix={prefix}.&partitions=4&fetch_wait_ms=100&producer.batch.num.messages=1"
        )),
    };
    ServeArgs {
        data_dir: Some(dir.to_owned()),
        grpc_addr: Some("127.0.0.1:0".parse().expect("an address")),
        http_addr: Some("127.0.0.1:0".parse().expect("an address")),
        partitions: Some(4),
        // The simulated day is today: sealed at tomorrow's close, its reports are never
        // sealed during a run, so the figures do not depend on the hour the bench starts.
        close_lag_days: Some(1),
        // ...and posted whole, its evening ahead of the clock: a day's skew lets it in.
        clock_skew_minutes: Some(24 * 60),
        log,
        group: Some(format!("{prefix}-{group}")),
        fold_threads: args.fold_threads,
        ..ServeArgs::default()
    }
    .resolve()
    .expect("the bench's settings are valid")
}

struct Server {
    running: Running,
    channel: Channel,
}

impl Server {
    async fn start(config: &daybook::ServeConfig, roles: Roles) -> anyhow::Result<Server> {
        let running = daybook::start_roles(config, roles).await.context("starting daybook")?;
        let channel = Endpoint::from_shared(format!("http://{}", running.grpc_addr))?.connect().await?;
        Ok(Server { running, channel })
    }
}

fn accepted(result: pb::PublishResult) -> anyhow::Result<()> {
    anyhow::ensure!(
        result.outcome == pb::Outcome::Accepted as i32,
        "event {} not accepted: {:?} {}",
        result.event_id,
        result.outcome,
        result.error
    );
    Ok(())
}

/// When the aggregator had folded everything, by its status.
struct Folding {
    done: Instant,
    done_cpu: Duration,
    folded: u64,
}

/// Polls the status until nothing acknowledged is left to fold.
async fn follow_folding(reports: &mut ReportsClient<Channel>, poll: Duration) -> anyhow::Result<Folding> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let status = reports.get_status(pb::StatusRequest {}).await?.into_inner();
        let now = Instant::now();
        if status.total_lag == 0 {
            return Ok(Folding { done: now, done_cpu: process_cpu(), folded: status.events_folded });
        }
        anyhow::ensure!(now < deadline, "the aggregator still lags {} events after {PATIENCE:?}", status.total_lag);
        tokio::time::sleep(poll).await;
    }
}

/// What the server's count of events folded showed, read every millisecond (a counter in
/// memory: reading it costs the broker nothing, unlike the status).
#[derive(Debug, Clone, Copy)]
struct FoldSeen {
    /// When the count first moved, how far it was then, and this process's CPU time then.
    first: (Instant, u64, Duration),
    /// When it last moved, to what, and this process's CPU time then (read once per move:
    /// the count moves once per batch folded).
    last: (Instant, u64, Duration),
}

/// Watches `folded` until it is dropped; its answer is what it saw.
struct FoldWatch {
    stop: tokio::sync::oneshot::Sender<()>,
    seen: tokio::task::JoinHandle<Option<FoldSeen>>,
}

impl FoldWatch {
    fn start(folded: std::sync::Arc<std::sync::atomic::AtomicU64>) -> FoldWatch {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let seen = tokio::spawn(async move {
            let mut seen: Option<FoldSeen> = None;
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = &mut stopped => return seen,
                    _ = tick.tick() => {}
                }
                let n = folded.load(std::sync::atomic::Ordering::Relaxed);
                let now = Instant::now();
                match &mut seen {
                    None if n > 0 => {
                        let cpu = process_cpu();
                        seen = Some(FoldSeen { first: (now, n, cpu), last: (now, n, cpu) });
                    }
                    Some(s) if n != s.last.1 => s.last = (now, n, process_cpu()),
                    _ => {}
                }
            }
        });
        FoldWatch { stop, seen }
    }

    async fn finish(self) -> Option<FoldSeen> {
        let _ = self.stop.send(());
        self.seen.await.ok().flatten()
    }
}

/// A rebuild's figures: see [`rebuild`].
struct Rebuilt {
    whole: Rate,
    cpu: Duration,
    /// From the first event folded to the last (over Kafka, the changelog's last records
    /// and the view follow), and the CPU meanwhile.
    fold_alone: Option<(Rate, Duration)>,
}

/// Starts an aggregator on projections that are empty and times it through the log, and
/// gives the CPU this process spent meanwhile. Both count from the first event folded (the
/// server's count, read every millisecond), so start-up and joining the consumer group are
/// left out, as they are for the raw consumer; until the status says all is folded (and
/// over Kafka, committed and in the view).
async fn rebuild(config: &daybook::ServeConfig, roles: Roles, poll: Duration) -> anyhow::Result<Rebuilt> {
    let started = (Instant::now(), process_cpu());
    let probe = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let config = daybook::ServeConfig { fold_probe: Some(probe.clone()), ..config.clone() };
    let server = Server::start(&config, roles).await?;
    let watch = FoldWatch::start(probe);
    let mut reports = ReportsClient::new(server.channel.clone());
    let folding = follow_folding(&mut reports, poll).await?;
    let seen = watch.finish().await;
    server.running.stop().await?;
    Ok(match seen {
        Some(FoldSeen { first: (at, before, cpu), last: (last_at, last, last_cpu) })
            if folding.folded > before && folding.done > at =>
        {
            Rebuilt {
                whole: Rate::new((folding.folded - before) as usize, folding.done - at),
                cpu: folding.done_cpu.saturating_sub(cpu),
                fold_alone: (last_at > at)
                    .then(|| (Rate::new((last - before) as usize, last_at - at), last_cpu.saturating_sub(cpu))),
            }
        }
        _ => Rebuilt {
            whole: Rate::new(folding.folded as usize, folding.done - started.0),
            cpu: folding.done_cpu.saturating_sub(started.1),
            fold_alone: None,
        },
    })
}

/// What rebuilding `days` simulated days from the log took.
#[derive(Debug, Clone, Copy)]
pub struct DaysRebuilt {
    pub days: u32,
    /// Events folded; the rest of the records were repeated registrations.
    pub folded: u64,
    /// Records read from the log, over the time from starting the server on empty projections until
    /// everything was folded (start-up included, the process's own start apart): the median run.
    pub total: Rate,
    /// The fastest and slowest runs (s), and how many there were.
    pub runs: (f64, f64, usize),
    /// CPU time of the rebuild's process (start-up and all) until everything is folded,
    /// all threads (sled's included); the feeds hold their seal meanwhile.
    pub cpu: Duration,
    /// From everything folded to the days sealed and in the offices' feeds.
    pub sealed: Duration,
    /// The projections' keys and values once every day is folded, the feeds apart: the
    /// state after weeks.
    pub state_bytes: u64,
    /// The offices' feeds (the reports sealed and sent, and what was last published of
    /// each) once the days are sealed: what went out, kept for subscribers who resume.
    pub feed_bytes: u64,
    /// The highest VmHWM of the rebuilds' processes (bytes), and that it covers them only.
    pub peak_memory: Option<(u64, bool)>,
}

/// Writes `days` simulated days (ending today) straight into an embedded log, as intake
/// would have written them, then starts the server on empty projections and times it
/// folding them all. Intake is left out: this measures the rebuild, not the load.
pub async fn rebuild_days(args: &Args, days: u32) -> anyhow::Result<DaysRebuilt> {
    let dir = tempfile::tempdir()?;
    let serve = dir.path().join("serve");
    let config = serve_args(&serve, &Log::Embedded, &crate::unique_name("days"), "aggregators", args);
    let province = simulator::Province::generate(args.scale, args.seed);
    let today = chrono::Utc::now().with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).expect("an offset"));
    let today = today.date_naive();
    let mut written = 0usize;
    {
        let log = eventlog::EmbeddedLog::open(&serve.join("log"), config.partitions)?;
        for back in (0..days).rev() {
            let date = today - chrono::Days::new(u64::from(back));
            let schools =
                (0..province.schools().len()).map(|school| simulator::day_events(&province, school, date, args.seed));
            let halls = province.halls().iter().map(|hall| simulator::hall_events(hall, date, args.seed));
            for day in schools.chain(halls) {
                let records: Vec<eventlog::Record> = day.iter().map(log_record).collect();
                written += records.len();
                for chunk in records.chunks(4096) {
                    eventlog::EventLog::append(&log, chunk.to_vec()).await?;
                }
            }
        }
    }
    eprintln!("  {written} events of {days} days in the log; folding them from scratch");
    // The machine is shared and single runs vary by a fifth: the median of a few, each on
    // empty projections, and each in a process of its own, as a server is restarted to
    // rebuild (one process's later runs would inherit the memory of the earlier ones).
    let mut runs = Vec::new();
    for run in 0..args.days_runs.max(1) {
        if run > 0 {
            std::fs::remove_dir_all(serve.join("projections"))?;
        }
        let child = rebuild_in_child(&serve, args).await?;
        // Registrations carry the same ids every day: folded once, skipped as duplicates after.
        anyhow::ensure!(child.folded as usize <= written, "folded {} events, wrote {written}", child.folded);
        eprintln!(
            "  run {}: {:.1} s, {:.1} CPU s, sealed {:.1} s later, peak {} MiB",
            run + 1,
            child.wall.as_secs_f64(),
            child.cpu.as_secs_f64(),
            child.sealed.as_secs_f64(),
            child.peak / (1 << 20)
        );
        runs.push(child);
    }
    let peak_memory = runs.iter().map(|r| r.peak).max().map(|peak| (peak, true));
    let (RebuiltInChild { wall, cpu, folded, sealed, .. }, runs) = median_of(runs, |r| r.wall.as_secs_f64());
    let by_tree = live_bytes_by_tree(&serve.join("projections"))?;
    let feed_bytes = by_tree.get("feeds").copied().unwrap_or(0);
    let state_bytes = by_tree.values().sum::<u64>() - feed_bytes;
    Ok(DaysRebuilt {
        days,
        folded,
        total: Rate::new(written, wall),
        runs,
        cpu,
        sealed,
        state_bytes,
        feed_bytes,
        peak_memory,
    })
}

/// What one rebuild in a child process measured (see [`rebuild_child`]).
#[derive(Debug, Clone, Copy, PartialEq)]
struct RebuiltInChild {
    /// From starting the server until everything was folded.
    wall: Duration,
    /// CPU of the child over the same span, all threads.
    cpu: Duration,
    folded: u64,
    /// From everything folded to the days sealed.
    sealed: Duration,
    /// The child's VmHWM (bytes).
    peak: u64,
}

impl RebuiltInChild {
    const PREFIX: &str = "rebuilt:";

    fn line(&self) -> String {
        let (wall, cpu, sealed) = (self.wall.as_micros(), self.cpu.as_micros(), self.sealed.as_micros());
        format!("{} {wall} {cpu} {} {sealed} {}", Self::PREFIX, self.folded, self.peak)
    }

    fn parse(line: &str) -> Option<Self> {
        let fields: Vec<u64> =
            line.strip_prefix(Self::PREFIX)?.split_whitespace().map(str::parse).collect::<Result<_, _>>().ok()?;
        let &[wall, cpu, folded, sealed, peak] = fields.as_slice() else { return None };
        Some(Self {
            wall: Duration::from_micros(wall),
            cpu: Duration::from_micros(cpu),
            folded,
            sealed: Duration::from_micros(sealed),
            peak,
        })
    }
}

/// Runs [`rebuild_child`] in a new process of this binary on `serve`, and reads what it measured.
async fn rebuild_in_child(serve: &Path, args: &Args) -> anyhow::Result<RebuiltInChild> {
    let mut command = std::process::Command::new(std::env::current_exe()?);
    command.arg("--rebuild-child").arg(serve).args(["--scale", &args.scale.to_string()]);
    if let Some(threads) = args.fold_threads {
        command.args(["--fold-threads", &threads.to_string()]);
    }
    command.stderr(std::process::Stdio::inherit());
    let output = tokio::task::spawn_blocking(move || command.output()).await??;
    anyhow::ensure!(output.status.success(), "the rebuild's process failed: {}", output.status);
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .find_map(RebuiltInChild::parse)
        .ok_or_else(|| anyhow::anyhow!("the rebuild's process printed no figures: {stdout:?}"))
}

/// In the child process: starts the server on the log and empty projections in `serve`,
/// times it folding everything and then sealing the past days, and prints the figures.
pub async fn rebuild_child(serve: &Path, args: &Args) -> anyhow::Result<()> {
    let config = serve_args(serve, &Log::Embedded, &crate::unique_name("days"), "aggregators", args);
    let started = Instant::now();
    let server = Server::start(&config, Roles::All).await?;
    let mut reports = ReportsClient::new(server.channel.clone());
    let folding = follow_folding(&mut reports, STATUS_POLL).await?;
    let cpu = process_cpu();
    // The feeds held the seal while the backlog was folded: it follows now.
    let due = config.close.last_sealed_day(chrono::Utc::now().with_timezone(&config.utc_offset).naive_local());
    let sealed = sealed_after(&mut reports, due).await? - folding.done;
    server.running.stop().await?;
    let peak = PeakMemory { reset: false }.read().map_or(0, |(bytes, _)| bytes);
    let figures = RebuiltInChild { wall: folding.done - started, cpu, folded: folding.folded, sealed, peak };
    println!("{}", figures.line());
    Ok(())
}

/// When the province's report of `day` was first seen sealed (version 1 or later).
async fn sealed_after(reports: &mut ReportsClient<Channel>, day: chrono::NaiveDate) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + PATIENCE;
    let request = pb::DailyReportRequest { unit: String::new(), date: day.format("%Y-%m-%d").to_string() };
    loop {
        let report = reports.get_daily_report(request.clone()).await?.into_inner();
        let now = Instant::now();
        if report.version >= 1 {
            return Ok(now);
        }
        anyhow::ensure!(now < deadline, "the province's report of {day} not sealed after {PATIENCE:?}");
        tokio::time::sleep(STATUS_POLL).await;
    }
}

/// An event as intake puts it on the log: topic by kind, keyed by site (the school, or the
/// hall for inspections), the protobuf.
pub fn log_record(event: &pb::Event) -> eventlog::Record {
    use pb::event::Payload;
    let topic = match event.payload {
        Some(Payload::Roster(_) | Payload::Unit(_)) => "roster",
        Some(Payload::Health(_)) => "health",
        Some(Payload::Movement(_)) => "movement",
        Some(Payload::Inspection(_)) | None => "inspection",
    };
    eventlog::Record {
        topic: topic.to_owned(),
        key: crate::site(event).to_owned(),
        headers: vec![
            ("daybook-event-kind".to_owned(), topic.to_owned()),
            ("daybook-schema-version".to_owned(), wire::SCHEMA_VERSION.to_owned()),
        ],
        payload: prost::Message::encode_to_vec(event),
    }
}

/// Registers `n` new students in a class of their own, then posts a fever reading for
/// each, one at a time, and times acknowledgement → the class's fever count shows it.
async fn freshness(
    intake: &mut IntakeClient<Channel>,
    reports: &mut ReportsClient<Channel>,
    load: &Load,
    n: usize,
    poll: Duration,
) -> anyhow::Result<Vec<Duration>> {
    let (school, city) = &load.probe_school;
    let event = |id: String, time: &str, payload| pb::Event {
        site: String::new(),
        event_id: id,
        source: "bench".into(),
        school: school.clone(),
        occurred_at: format!("{}T{time}+08:00", load.date),
        payload: Some(payload),
    };
    let person = |i: usize| format!("BENCH{i:05}");
    let registrations = (0..n)
        .map(|i| {
            let registered = pb::Registered {
                role: pb::Role::Student as i32,
                placement: Some(pb::Placement {
                    department: "DBENCH".into(),
                    grade: "2019".into(),
                    class_name: "C01".into(),
                    dorm: String::new(),
                }),
                city: city.clone(),
                on_campus: true,
            };
            let change = pb::roster_event::Change::Registered(registered);
            let roster = pb::RosterEvent { person_id: person(i), change: Some(change) };
            event(format!("bench-probe-reg-{i}"), "06:00:00", pb::event::Payload::Roster(roster))
        })
        .collect();
    for result in intake.publish_batch(pb::PublishBatchRequest { events: registrations }).await?.into_inner().results {
        accepted(result)?;
    }
    follow_folding(reports, poll).await?;

    let unit = format!("class:{school}/DBENCH/2019/C01");
    let mut latencies = Vec::with_capacity(n);
    for i in 0..n {
        let reading = pb::TemperatureTaken { slot: pb::Slot::Noon as i32, celsius: 38.5 };
        let kind = pb::health_event::Kind::Temperature(reading);
        let health = pb::HealthEvent { person_id: person(i), kind: Some(kind) };
        let fever = event(format!("bench-probe-fever-{i}"), "12:00:00", pb::event::Payload::Health(health));
        accepted(intake.publish(fever).await?.into_inner())?;
        let acknowledged = Instant::now();
        // Fevers count persons, and each probe is a new person: the i-th is in once
        // the class counts i + 1.
        while (daybook::report::fetch(reports, &unit, &load.date.to_string()).await?.fever as usize) <= i {
            anyhow::ensure!(acknowledged.elapsed() < PATIENCE, "probe {i} not visible after {PATIENCE:?}");
            tokio::time::sleep(PROBE_POLL).await;
        }
        latencies.push(acknowledged.elapsed());
    }
    Ok(latencies)
}

/// Lists every unit and reads each one's report for the day (the province too), with
/// `REPORT_CLIENTS` readers sharing the list.
async fn all_reports(reports: &mut ReportsClient<Channel>, load: &Load) -> anyhow::Result<Rate> {
    let started = Instant::now();
    let listed = reports.list_units(pb::ListUnitsRequest::default()).await?.into_inner().units;
    let units: Vec<String> = listed.into_iter().map(|u| u.unit).chain(["province".to_owned()]).collect();
    let count = units.len();
    let date = load.date.to_string();
    let readers: Vec<_> = units
        .chunks(count.div_ceil(REPORT_CLIENTS).max(1))
        .map(|chunk| {
            let (mut reports, chunk, date) = (reports.clone(), chunk.to_vec(), date.clone());
            tokio::spawn(async move {
                for unit in chunk {
                    daybook::report::fetch(&mut reports, &unit, &date).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for reader in readers {
        reader.await??;
    }
    Ok(Rate::new(count, started.elapsed()))
}

/// Every unit's report for the day (the province too) in one `ListDailyReports` call.
/// The median of `STREAMED_READS` calls: one lasts a few tens of milliseconds at small
/// scales, where the shared machine's noise would decide a single reading.
async fn all_reports_streamed(reports: &mut ReportsClient<Channel>, load: &Load) -> anyhow::Result<Rate> {
    let mut reads = Vec::new();
    for _ in 0..STREAMED_READS {
        let started = Instant::now();
        let request = pb::DailyReportsRequest { date: load.date.to_string(), ..Default::default() };
        let mut stream = reports.list_daily_reports(request).await?.into_inner();
        let mut count = 0;
        while stream.message().await?.is_some() {
            count += 1;
        }
        reads.push(Rate::new(count, started.elapsed()));
    }
    reads.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
    Ok(reads[reads.len() / 2])
}

/// A process's CPU over a span of time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Busy {
    pub cpu: Duration,
    pub wall: Duration,
}

impl Busy {
    /// The cores it kept busy on average: 1.0 is one core all the time.
    pub fn cores(&self) -> f64 {
        self.cpu.as_secs_f64() / self.wall.as_secs_f64().max(0.001)
    }
}

/// Runs `work` and gives how busy the broker process `pid` was meanwhile (`None` when
/// there is no process to watch): a broker near a whole core bounds what its clients do.
pub async fn broker_busy<T>(
    pid: Option<u32>,
    work: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<(T, Option<Busy>)> {
    let before = (Instant::now(), pid.and_then(cpu_of));
    let done = work.await?;
    let busy = before
        .1
        .zip(pid.and_then(cpu_of))
        .map(|(from, to)| Busy { cpu: to.saturating_sub(from), wall: before.0.elapsed() });
    Ok((done, busy))
}

/// User and system CPU of process `pid` so far.
fn cpu_of(pid: u32) -> Option<Duration> {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().map(|stat| daybook::process_metrics::cpu_in(&stat))
}

/// CPU time this process has used, all threads: utime + stime of `/proc/self/stat`, in
/// clock ticks of 1/100 s (Linux's USER_HZ).
fn process_cpu() -> Duration {
    daybook::process_metrics::cpu_in(&std::fs::read_to_string("/proc/self/stat").unwrap_or_default())
}

/// The peak resident memory (VmHWM) of this process from a point on.
struct PeakMemory {
    /// The peak was reset (`/proc/self/clear_refs`); otherwise it is the whole run's.
    reset: bool,
}

impl PeakMemory {
    fn reset() -> Self {
        Self { reset: std::fs::write("/proc/self/clear_refs", "5").is_ok() }
    }

    /// VmHWM in bytes, and whether it covers only what followed [`Self::reset`].
    fn read(&self) -> Option<(u64, bool)> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some((kib * 1024, self.reset))
    }
}

/// Bytes of the keys and values of every tree of the sled database in `dir`: the state
/// itself. sled's files hold more (page headers, and old versions of pages until it
/// reclaims their segments).
fn live_bytes(dir: &Path) -> anyhow::Result<u64> {
    Ok(live_bytes_by_tree(dir)?.values().sum())
}

/// [`live_bytes`], tree by tree (`projections`, `feeds`, ...).
fn live_bytes_by_tree(dir: &Path) -> anyhow::Result<std::collections::BTreeMap<String, u64>> {
    let db = store::Store::open(dir)?;
    let mut by_tree = std::collections::BTreeMap::new();
    for name in db.tree_names() {
        let mut bytes = 0;
        for item in db.open_tree(&name)?.iter() {
            let (k, v) = item?;
            bytes += (k.len() + v.len()) as u64;
        }
        by_tree.insert(String::from_utf8_lossy(&name).into_owned(), bytes);
    }
    Ok(by_tree)
}

/// Bytes of the files under `dir`.
fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(m) if m.is_dir() => dir_size(&entry.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_fold_watch_sees_when_the_count_first_and_last_moved() {
        let folded = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let watch = FoldWatch::start(folded.clone());
        tokio::time::sleep(Duration::from_millis(20)).await;
        let before_first = Instant::now();
        folded.store(10, std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(20)).await;
        folded.store(25, std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let after_last = Instant::now();
        let seen = watch.finish().await.expect("the count moved");
        assert_eq!((seen.first.1, seen.last.1), (10, 25));
        assert!(seen.first.2 <= seen.last.2, "{seen:?}");
        assert!(before_first <= seen.first.0 && seen.first.0 < seen.last.0 && seen.last.0 <= after_last, "{seen:?}");
    }

    #[tokio::test]
    async fn a_count_that_never_moved_is_not_seen() {
        let watch = FoldWatch::start(std::sync::Arc::default());
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(watch.finish().await.is_none());
    }

    #[test]
    fn a_rebuilds_figures_cross_from_the_child_intact() {
        let figures = RebuiltInChild {
            wall: Duration::from_micros(157_200_001),
            cpu: Duration::from_micros(260_000_002),
            folded: 48_947_508,
            sealed: Duration::from_micros(58_000_003),
            peak: 12_458 << 20,
        };
        assert_eq!(RebuiltInChild::parse(&figures.line()), Some(figures));
        assert_eq!(RebuiltInChild::parse("some other line"), None);
        assert_eq!(RebuiltInChild::parse("rebuilt: 1 2 3"), None);
    }

    #[test]
    fn the_median_run_is_shown_with_the_range_of_all() {
        let run = |seconds: u64, unary: usize| Figures {
            end_to_end: Some(Rate::new(1000, Duration::from_secs(seconds))),
            unary: Some(Rate::new(unary, Duration::from_secs(1))),
            ..Figures::default()
        };
        let median = median_run(vec![run(3, 30), run(1, 10), run(2, 20)]);
        assert_eq!(median.unary.map(|r| r.count), Some(20), "every figure comes from the median run");
        assert_eq!(median.end_to_end_runs, Some((1.0, 3.0, 3)));
        assert_eq!(median_run(vec![run(5, 50)]).end_to_end_runs, None, "one run has no range");
    }
}
