//! `daybook-bench` measures daybook the way issue 6 asks and writes the result as a
//! markdown table: it generates a simulated province day, starts the real server
//! in-process (first on the embedded log, then on Kafka through a tansu broker it starts
//! itself), posts the day over gRPC (a unary sample, then concurrent streams), waits for
//! the aggregator, measures freshness, every unit's report, memory and disk, rebuilds the
//! projections from the log, and finally sends the same bytes through a raw rdkafka
//! producer and consumer on the same broker, so that the table can give daybook / raw.

mod inspections;
mod raw;
mod serve;
mod table;

use std::path::PathBuf;

use chrono::NaiveDate;
use clap::Parser;
use prost::Message;
use wire::pb;

// The allocator of the daybook binary, since the bench runs the server in this process.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The measurements of `daybook-bench`; the table goes to `--out` and to stdout.
#[derive(Debug, Clone, Parser)]
#[command(name = "daybook-bench")]
pub struct Args {
    /// Share of the seed's province: 1 is 156 schools, ~590,000 persons, ~2.2 M events.
    #[arg(long, default_value_t = 0.05)]
    pub scale: f64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Where the markdown table is written.
    #[arg(long, default_value = "services/bench/BENCHMARKS.md")]
    pub out: PathBuf,
    /// Measure on Kafka too, the default: a tansu broker started for the run, and the raw
    /// baselines on it.
    #[arg(long, overrides_with = "no_kafka")]
    pub kafka: bool,
    /// Measure the embedded log only.
    #[arg(long, overrides_with = "kafka")]
    pub no_kafka: bool,
    /// Events posted one `Publish` at a time before the streams.
    #[arg(long, default_value_t = 2_000)]
    pub unary: usize,
    /// Concurrent `PublishStream` calls for the rest of the day.
    #[arg(long, default_value_t = 4)]
    pub streams: usize,
    /// Single events whose freshness is timed, after the bulk load.
    #[arg(long, default_value_t = 200)]
    pub fresh: usize,
    /// Runs on the embedded log, each on a new server and data directory; the table shows
    /// the run with the median end-to-end time, and the range of all runs.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Days simulated into an embedded log and rebuilt from it, timed (0: skip).
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    /// Rebuilds of those days, each on new projections; the table shows the median.
    #[arg(long, default_value_t = 3)]
    pub days_runs: usize,
    /// Aggregators folding the embedded log in parallel (daybook's `--fold-threads`;
    /// default: daybook's, one per core).
    #[arg(long)]
    pub fold_threads: Option<u32>,
    /// Internal: rebuild the projections in this data directory and print the figures
    /// (each of the days' rebuilds runs in a process of its own).
    #[arg(long, hide = true)]
    pub rebuild_child: Option<PathBuf>,
}

/// The simulated day every backend gets, generated once so that generating it is not
/// measured and every run sends the very same events.
pub struct Load {
    pub date: NaiveDate,
    pub schools: usize,
    /// Service-window halls, whose inspections are in the day too.
    pub halls: usize,
    pub persons: usize,
    /// The first school's code and city, where the freshness probes register.
    pub probe_school: (String, String),
    /// Posted one at a time: evenly spaced over the day, so every kind of event is in it.
    pub sample: Vec<pb::Event>,
    /// The rest, per school and then per hall, in the simulator's order.
    pub bulk: Vec<Vec<pb::Event>>,
}

impl Load {
    fn generate(scale: f64, seed: u64, unary: usize) -> Load {
        // Today in the province (+08:00): intake refuses events older than its horizon.
        let date = chrono::Utc::now().with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).expect("an offset"));
        let date = date.date_naive();
        let province = simulator::Province::generate(scale, seed);
        let days: Vec<Vec<pb::Event>> = (0..province.schools().len())
            .map(|s| simulator::day_events(&province, s, date, seed))
            .chain(province.halls().iter().map(|hall| simulator::hall_events(hall, date, seed)))
            .collect();
        let total: usize = days.iter().map(Vec::len).sum();
        let stride = (total / unary.max(1)).max(1);
        let (mut sample, mut bulk) = (Vec::new(), Vec::new());
        let mut index = 0;
        for day in days {
            let mut rest = Vec::with_capacity(day.len());
            for event in day {
                if index % stride == 0 && sample.len() < unary {
                    sample.push(event);
                } else {
                    rest.push(event);
                }
                index += 1;
            }
            bulk.push(rest);
        }
        let first = &province.schools()[0];
        Load {
            date,
            schools: province.schools().len(),
            halls: province.halls().len(),
            persons: province.persons(),
            probe_school: (first.code.clone(), first.city.to_owned()),
            sample,
            bulk,
        }
    }

    pub fn events(&self) -> usize {
        self.sample.len() + self.streamed()
    }

    pub fn streamed(&self) -> usize {
        self.bulk.iter().map(Vec::len).sum()
    }

    pub fn all(&self) -> impl Iterator<Item = &pb::Event> {
        self.sample.iter().chain(self.bulk.iter().flatten())
    }

    pub fn encoded_bytes(&self) -> usize {
        self.all().map(Message::encoded_len).sum()
    }
}

/// The site an event belongs to (a school, or a hall for inspections): `site`, else
/// `school`, its former name; the log's key, as intake writes it.
pub fn site(event: &pb::Event) -> &str {
    if event.site.is_empty() { &event.school } else { &event.site }
}

/// Topic prefix and group names of one run, so runs can share a broker.
pub fn unique_name(what: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    format!("bench-{}-{nanos:x}-{what}", std::process::id())
}

#[tokio::main]
async fn main() {
    aggregator::keep_freed_memory_a_while();
    let args = Args::parse();
    let result = match args.rebuild_child.clone() {
        Some(dir) => serve::rebuild_child(&dir, &args).await,
        None => run(args).await,
    };
    if let Err(e) = result {
        // Exit at once: returning would wait for blocking calls still stuck on a broker
        // that is gone (the runtime's drop waits for them), and hide the error.
        eprintln!("Error: {e:?}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.scale.is_finite() && args.scale > 0.0, "--scale must be a positive number");
    let with_kafka = !args.no_kafka;

    eprintln!("generating the province day (scale {}, seed {})", args.scale, args.seed);
    let load = Load::generate(args.scale, args.seed, args.unary);
    eprintln!("{} schools, {} halls, {} persons, {} events", load.schools, load.halls, load.persons, load.events());

    // Before the runs, so that it names the commit the run started on.
    let header = table::Header::collect(&args, with_kafka, &load);
    // Single runs on this shared machine vary by a fifth; the embedded log's runs are a
    // few seconds each, so it gets several (the Kafka column, tansu-bound and a minute a
    // run, is far from every limit it is judged by).
    let mut runs = Vec::new();
    for run in 1..=args.runs.max(1) {
        eprintln!("embedded log, run {run} of {}:", args.runs.max(1));
        runs.push(serve::measure(&load, &serve::Log::Embedded, &args).await?);
    }
    let embedded = serve::median_run(runs);
    let kafka = if with_kafka {
        // The broker is a child process; it is killed when `tansu` is dropped.
        let tansu = tokio::task::spawn_blocking(|| testbroker::Tansu::start("memory://tansu/")).await?;
        eprintln!("kafka log (tansu at {}):", tansu.addr());
        let log = serve::Log::Kafka { broker: tansu.addr(), broker_pid: tansu.pid() };
        let mut daybook = serve::measure(&load, &log, &args).await?;
        let (rate, resent, busy) = serve::intake_alone(&load, &log, &args).await?;
        (daybook.intake_alone, daybook.broker_busy_intake) = (Some((rate, resent)), busy);
        eprintln!("raw rdkafka baselines:");
        let raw = raw::measure(&tansu.addr(), tansu.pid(), &load).await?;
        Some((daybook, raw))
    } else {
        None
    };

    // Last: its tens of days leave the process large, which would pass for the other runs'
    // peak memory.
    let days = if args.days > 0 {
        eprintln!("rebuilding {} days from the embedded log:", args.days);
        Some(serve::rebuild_days(&args, args.days).await?)
    } else {
        None
    };

    // After the days, for the same reason: it folds in this process.
    eprintln!("the inspections' fold at province scale, beside the schools':");
    let inspections = inspections::measure(&args, &load)?;

    let text = table::render(&header, &args, &embedded, days.as_ref(), Some(&inspections), kafka.as_ref());
    std::fs::write(&args.out, &text)?;
    print!("{text}");
    Ok(())
}
