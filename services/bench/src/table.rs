//! The markdown the bench writes: where it ran, then one table of every measure for each
//! log beside the raw baselines and issue 6's targets, then the notes that qualify them.

use std::fmt::Write;
use std::time::Duration;

use crate::inspections::Inspections;
use crate::raw::RawFigures;
use crate::serve::{Busy, DaysRebuilt, Figures, REPORT_CLIENTS, Rate};
use crate::{Args, Load};

/// Events of a whole province day, as issue 6 counts them.
const PROVINCE_DAY_EVENTS: f64 = 3_500_000.0;
/// Days issue 6's rebuild target covers, and its limit.
const TARGET_DAYS: f64 = 30.0;
const TARGET_REBUILD_SECONDS: f64 = 600.0;
/// Units of the whole province, as issue 6 counts them.
const PROVINCE_UNITS: f64 = 110_000.0;
const NOT_MEASURED: &str = "n/a";

pub struct Header {
    pub cpu: String,
    pub cores: usize,
    pub memory: String,
    pub commit: String,
    pub date: String,
    pub command: String,
    pub load: String,
    pub persons: usize,
    pub halls: usize,
}

impl Header {
    pub fn collect(args: &Args, with_kafka: bool, load: &Load) -> Header {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or("unknown CPU".to_owned(), |(_, name)| name.trim().to_owned());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            .map_or("unknown memory".to_owned(), |kib| format!("{:.1} GiB", kib / 1024.0 / 1024.0));
        let mut options = String::new();
        if !with_kafka {
            options += " --no-kafka";
        }
        if args.fresh != 200 {
            options += &format!(" --fresh {}", args.fresh);
        }
        if args.days != 30 {
            options += &format!(" --days {}", args.days);
        }
        if args.days_runs != 3 {
            options += &format!(" --days-runs {}", args.days_runs);
        }
        if args.runs != 3 {
            options += &format!(" --runs {}", args.runs);
        }
        if let Some(n) = args.fold_threads {
            options += &format!(" --fold-threads {n}");
        }
        let command = format!(
            "cargo run --release -p bench -- --scale {} --seed {}{options} --out {}",
            args.scale,
            args.seed,
            args.out.display()
        );
        let load_line = format!(
            "scale {}, seed {}: {} schools, {} persons, {} service halls, {} events on {} ({:.1} MiB as protobuf)",
            args.scale,
            args.seed,
            load.schools,
            thousands(load.persons as f64),
            load.halls,
            thousands(load.events() as f64),
            load.date,
            load.encoded_bytes() as f64 / 1024.0 / 1024.0
        );
        Header {
            cpu,
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory,
            commit: git_commit(),
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            command,
            load: load_line,
            persons: load.persons,
            halls: load.halls,
        }
    }
}

fn git_commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        None => "unknown".to_owned(),
        Some(commit) if git(&["status", "--porcelain"]).is_some_and(|s| !s.is_empty()) => {
            format!("{commit} (with uncommitted changes)")
        }
        Some(commit) => commit,
    }
}

/// Nearest-rank percentile: the smallest sample with at least `p`% of samples at or
/// below it.
pub fn percentile(samples: &[Duration], p: f64) -> Option<Duration> {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len().max(1)) - 1).copied()
}

/// `1234567.8` as "1,234,568".
pub fn thousands(x: f64) -> String {
    if !x.is_finite() {
        return NOT_MEASURED.to_owned();
    }
    let digits = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if x < -0.5 { format!("-{out}") } else { out }
}

fn cell<T>(value: Option<T>, show: impl FnOnce(T) -> String) -> String {
    value.map_or(NOT_MEASURED.to_owned(), show)
}

fn per_second(rate: Option<Rate>) -> String {
    cell(rate, |r| thousands(r.per_second()))
}

/// Events over the CPU time spent folding them.
/// A fold's CPU in milliseconds, and its folded events per CPU second.
fn fold_cost(cost: &crate::inspections::FoldCost) -> String {
    format!("{:.1} ({}/s)", cost.cpu.as_secs_f64() * 1000.0, thousands(cost.per_cpu_second()))
}

fn per_cpu_second(rate: Rate, cpu: Duration) -> f64 {
    rate.count as f64 / cpu.as_secs_f64().max(0.01)
}

/// Events per second, and per CPU second.
fn with_per_cpu_second(rate: Rate, cpu: Duration) -> String {
    format!("{} ({}/CPU s)", thousands(rate.per_second()), thousands(per_cpu_second(rate, cpu)))
}

/// The rebuild's events per CPU second of the process: the fold per core, whatever the
/// process's threads were doing beside it (the log's reads, checkpoints, sled's writes).
fn fold_per_core(f: &Figures) -> Option<f64> {
    Some(per_cpu_second(f.rebuild?, f.rebuild_cpu?))
}

fn seconds(rate: Option<Rate>) -> String {
    cell(rate, |r| format!("{:.2}", r.seconds))
}

fn ratio(daybook: Option<Rate>, raw: Option<Rate>) -> String {
    cell(daybook.zip(raw), |(d, r)| format!("{:.2}×", d.per_second() / r.per_second()))
}

fn cores(busy: Option<Busy>) -> String {
    cell(busy, |b| format!("{:.2}", b.cores()))
}

fn millis(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// "target: embedded met, Kafka **missed**", naming only the verdicts there are.
fn judged(target: &str, verdicts: &[(&str, Option<bool>)]) -> String {
    let said: Vec<String> = verdicts
        .iter()
        .filter_map(|(who, ok)| ok.map(|ok| format!("{who} {}", if ok { "met" } else { "**missed**" })))
        .collect();
    if said.is_empty() { target.to_owned() } else { format!("{target}: {}", said.join(", ")) }
}

/// A markdown table, its columns padded so that it reads as text too.
pub fn markdown_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .chain([header[c].chars().count(), 3])
                .max()
                .unwrap_or(3)
        })
        .collect();
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(s, &w)| format!("{s:w$}")).collect();
        format!("| {} |\n", padded.join(" | "))
    };
    let mut out = line(header.iter().map(|s| (*s).to_owned()).collect());
    out += &line(widths.iter().map(|w| "-".repeat(*w)).collect());
    for row in rows {
        out += &line(row.clone());
    }
    out
}

pub fn render(
    header: &Header,
    args: &Args,
    embedded: &Figures,
    days: Option<&DaysRebuilt>,
    inspections: Option<&Inspections>,
    kafka: Option<&(Figures, RawFigures)>,
) -> String {
    let e = embedded;
    let k = kafka.map(|(daybook, _)| daybook);
    let raw = kafka.map(|(_, raw)| raw);
    let both = |f: &dyn Fn(&Figures) -> String| [f(e), k.map_or("not run".to_owned(), f)];
    let at_least = |rate: Option<Rate>, floor: f64| rate.map(|r| r.per_second() >= floor);
    let folders = crate::serve::aggregators(args).max(1);
    let ratio_at_least =
        |d: Option<Rate>, r: Option<Rate>, floor: f64| d.zip(r).map(|(d, r)| d.per_second() / r.per_second() >= floor);
    // For targets that are totals over the whole province: what this run's rate gives.
    let extrapolated = |what: f64, rate: Option<Rate>| cell(rate, |r| format!("{:.0} s", what / r.per_second()));
    let p = |f: &Figures, q: f64| percentile(&f.freshness, q);
    let per_person = |bytes: Option<u64>| cell(bytes, |b| thousands(b as f64 / header.persons.max(1) as f64));
    let units = thousands(e.reports.map_or(0, |r| r.count) as f64);
    let streamed = e.end_to_end.map_or(0, |r| r.count);
    let alone = k.and_then(|f| f.intake_alone).map(|(rate, _)| rate);

    let row = |label: String, cells: [String; 2], raw: String, ratio: String, target: String| {
        vec![label, cells[0].clone(), cells[1].clone(), raw, ratio, target]
    };
    let dash = || "—".to_owned();
    let rows = vec![
        row(
            "intake, unary `Publish`, 1 client, one at a time (events/s)".into(),
            both(&|f| per_second(f.unary)),
            dash(),
            dash(),
            dash(),
        ),
        row(
            format!("intake, streaming `PublishStream`, {} streams (events/s)", args.streams),
            both(&|f| match f.streams_resent {
                0 => per_second(f.streaming),
                n => format!("{} ({n} streams sent again)", per_second(f.streaming)),
            }),
            format!("producer: {}", per_second(raw.map(|r| r.produce))),
            ratio(k.and_then(|f| f.streaming), raw.map(|r| r.produce)),
            judged(
                "≥ 100,000",
                &[
                    ("embedded", at_least(e.streaming, 100_000.0)),
                    ("Kafka", at_least(k.and_then(|f| f.streaming), 100_000.0)),
                ],
            ),
        ),
        row(
            "intake alone (`daybook intake`, nothing reading its topics), the same streams, as the raw producer runs alone (events/s)"
                .into(),
            [
                "—".to_owned(),
                k.map_or("not run".to_owned(), |f| match f.intake_alone {
                    None => NOT_MEASURED.to_owned(),
                    Some((rate, 0)) => per_second(Some(rate)),
                    Some((rate, n)) => format!("{} ({n} streams sent again)", per_second(Some(rate))),
                }),
            ],
            format!("producer: {}", per_second(raw.map(|r| r.produce))),
            ratio(alone, raw.map(|r| r.produce)),
            judged("Kafka ≥ 0.7× raw producer", &[("ratio", ratio_at_least(alone, raw.map(|r| r.produce), 0.7))]),
        ),
        row(
            "the broker's CPU meanwhile, in cores (1.00: a whole core all the time): intake alone; the rebuild below"
                .into(),
            [
                "—".to_owned(),
                k.map_or("not run".to_owned(), |f| {
                    format!("{}; {}", cores(f.broker_busy_intake), cores(f.broker_busy_rebuild))
                }),
            ],
            raw.map_or(NOT_MEASURED.to_owned(), |r| {
                format!("producer: {}; consumer: {}", cores(r.broker_busy.0), cores(r.broker_busy.1))
            }),
            "—".to_owned(),
            "—".to_owned(),
        ),
        row(
            "end-to-end, first event posted → all folded (events/s)".into(),
            both(&|f| per_second(f.end_to_end)),
            format!("consumer: {}", per_second(raw.map(|r| r.consume))),
            ratio(k.and_then(|f| f.end_to_end), raw.map(|r| r.consume)),
            dash(),
        ),
        row(
            format!("end-to-end, the streamed day, {} events (s); of several runs, the median (fastest–slowest)", thousands(streamed as f64)),
            both(&|f| match f.end_to_end_runs {
                Some((fastest, slowest, _)) => format!("{} ({fastest:.2}–{slowest:.2})", seconds(f.end_to_end)),
                None => seconds(f.end_to_end),
            }),
            dash(),
            dash(),
            format!(
                "province day (≈ 3.5 M events) < 60 s; at these rates: embedded {}, Kafka {}",
                extrapolated(PROVINCE_DAY_EVENTS, e.end_to_end),
                extrapolated(PROVINCE_DAY_EVENTS, k.and_then(|f| f.end_to_end))
            ),
        ),
        row(
            format!(
                "rebuild: the whole log folded into empty projections (events/s, and folded per CPU second of the process); embedded: by {folders} aggregator(s), one per core"
            ),
            both(&|f| match (f.rebuild, f.rebuild_cpu) {
                (Some(rate), Some(cpu)) => with_per_cpu_second(rate, cpu),
                (rate, _) => per_second(rate),
            }),
            format!("consumer: {}", per_second(raw.map(|r| r.consume))),
            ratio(k.and_then(|f| f.rebuild), raw.map(|r| r.consume)),
            judged(
                "fold ≥ 200,000 per core; ≥ 0.5× raw consumer",
                &[
                    ("embedded", fold_per_core(e).map(|n| n >= 200_000.0)),
                    ("Kafka", k.and_then(fold_per_core).map(|n| n >= 200_000.0)),
                    ("ratio", ratio_at_least(k.and_then(|f| f.rebuild), raw.map(|r| r.consume), 0.5)),
                ],
            ),
        ),
        row(
            "rebuild over Kafka: the fold alone, first event folded → last, before the changelog's last records and the view (events/s, and folded per CPU second of the process)"
                .into(),
            [
                "—".to_owned(),
                k.map_or("not run".to_owned(), |f| {
                    f.rebuild_fold_alone.map_or(NOT_MEASURED.to_owned(), |(rate, cpu)| with_per_cpu_second(rate, cpu))
                }),
            ],
            format!("consumer: {}", per_second(raw.map(|r| r.consume))),
            ratio(k.and_then(|f| f.rebuild_fold_alone.map(|(rate, _)| rate)), raw.map(|r| r.consume)),
            "— (judged on the whole rebuild, above)".to_owned(),
        ),
        row(
            "rebuild over Kafka: changelog records the aggregator published meanwhile (records, and per second of the rebuild)"
                .into(),
            [
                "—".to_owned(),
                k.map_or("not run".to_owned(), |f| match (f.rebuild_changelog, f.rebuild) {
                    (Some(records), Some(rate)) => format!(
                        "{} ({}/s)",
                        thousands(records as f64),
                        thousands(records as f64 / rate.seconds.max(0.001))
                    ),
                    _ => NOT_MEASURED.to_owned(),
                }),
            ],
            format!("producer: {}", per_second(raw.map(|r| r.produce))),
            "—".to_owned(),
            "—".to_owned(),
        ),
        row(
            match days {
                Some(d) => format!(
                    "rebuild: {} simulated days from the log, {} records ({} folded), start-up included, median of {} (fastest–slowest) (s)",
                    d.days,
                    thousands(d.total.count as f64),
                    thousands(d.folded as f64),
                    d.runs.2
                ),
                None => "rebuild: days from the log (s)".into(),
            },
            [
                cell(days, |d| {
                    format!("{:.1} ({:.1}–{:.1})", d.total.seconds, d.runs.0, d.runs.1)
                }),
                "not measured".into(),
            ],
            dash(),
            dash(),
            match days {
                // The target is the whole province's 30 days; this run's rate says what
                // that would take.
                Some(d) => {
                    let province = TARGET_DAYS * PROVINCE_DAY_EVENTS / d.total.per_second();
                    judged(
                        &format!("30 province days (≈ 105 M events) < 10 min; at this rate {province:.0} s"),
                        &[("embedded", Some(province < TARGET_REBUILD_SECONDS))],
                    )
                }
                None => "30 days < 10 min".into(),
            },
        ),
        row(
            "rebuild of the days, the median run: CPU of its process until all is folded, all threads (s), and folded events per CPU second"
                .into(),
            [
                cell(days, |d| {
                    let seconds = d.cpu.as_secs_f64();
                    format!("{seconds:.1} ({}/s)", thousands(d.folded as f64 / seconds.max(0.01)))
                }),
                "not measured".into(),
            ],
            dash(),
            dash(),
            match days {
                Some(d) => {
                    let per_core = d.folded as f64 / d.cpu.as_secs_f64().max(0.01);
                    judged("fold ≥ 200,000 events/s per core", &[("embedded", Some(per_core >= 200_000.0))])
                }
                None => "—".into(),
            },
        ),
        row(
            "then the days sealed and in the offices' feeds, the feeds having held the seal while the backlog was folded (s)"
                .into(),
            [cell(days, |d| format!("{:.1}", d.sealed.as_secs_f64())), "not measured".into()],
            dash(),
            dash(),
            dash(),
        ),
        row(
            match inspections {
                Some(i) => format!(
                    "inspections at province scale: the {} halls' events of {} days, {} records ({} folded), folded alone into empty projections (`aggregator::Folder` in this process, no server or log), median of {}: CPU (ms), and folded events per CPU second",
                    i.halls,
                    i.days,
                    thousands(i.halls_fold.records as f64),
                    thousands(i.halls_fold.folded as f64),
                    i.halls_fold.runs
                ),
                None => "inspections at province scale: the halls' events folded alone (ms CPU)".into(),
            },
            [
                cell(inspections, |i| fold_cost(&i.halls_fold)),
                "not measured".into(),
            ],
            dash(),
            dash(),
            match inspections {
                Some(i) => {
                    let (h, s) = (i.halls_fold, i.schools_fold);
                    format!(
                        "issue 27: beside the schools' fold (next row): {:.1}× a school event's CPU per event; the {} days cost what {} school events do",
                        h.cpu_per_event().as_secs_f64() / s.cpu_per_event().as_secs_f64().max(1e-12),
                        i.days,
                        thousands(h.cpu.as_secs_f64() / s.cpu_per_event().as_secs_f64().max(1e-12))
                    )
                }
                None => "issue 27: beside the schools' fold".into(),
            },
        ),
        row(
            match inspections {
                Some(i) => format!(
                    "the schools' fold measured the same way: the day's {} school events at this scale ({} folded), median of {}: CPU (ms), and folded events per CPU second",
                    thousands(i.schools_fold.records as f64),
                    thousands(i.schools_fold.folded as f64),
                    i.schools_fold.runs
                ),
                None => "the schools' fold measured the same way (ms CPU)".into(),
            },
            [
                cell(inspections, |i| fold_cost(&i.schools_fold)),
                "not measured".into(),
            ],
            dash(),
            dash(),
            dash(),
        ),
        row(
            format!("freshness, acknowledged → in the class report, p50 of {} (ms)", args.fresh),
            both(&|f| cell(p(f, 50.0), millis)),
            dash(),
            dash(),
            dash(),
        ),
        row(
            "freshness, p99 (ms)".into(),
            both(&|f| cell(p(f, 99.0), millis)),
            dash(),
            dash(),
            judged(
                "< 1,000 ms",
                &[
                    ("embedded", p(e, 99.0).map(|d| d < Duration::from_secs(1))),
                    ("Kafka", k.and_then(|f| p(f, 99.0)).map(|d| d < Duration::from_secs(1))),
                ],
            ),
        ),
        row(
            format!("every unit's report for the day, {units} units, {REPORT_CLIENTS} readers (s)"),
            both(&|f| seconds(f.reports)),
            dash(),
            dash(),
            format!(
                "≈ 110,000 units < 2 s; at these rates: embedded {}, Kafka {}",
                extrapolated(PROVINCE_UNITS, e.reports),
                extrapolated(PROVINCE_UNITS, k.and_then(|f| f.reports))
            ),
        ),
        row("every unit's report (units/s)".into(), both(&|f| per_second(f.reports)), dash(), dash(), dash()),
        row(
            format!("every unit's report for the day, {units} units, one `ListDailyReports` stream, median of 5 (s)"),
            both(&|f| seconds(f.reports_streamed)),
            dash(),
            dash(),
            {
                let province = |rate: Option<Rate>| rate.map(|r| PROVINCE_UNITS / r.per_second());
                let said = |s: Option<f64>| s.map_or_else(dash, |s| format!("{s:.1} s"));
                let (pe, pk) = (province(e.reports_streamed), province(k.and_then(|f| f.reports_streamed)));
                judged(
                    &format!("≈ 110,000 units < 2 s; at these rates embedded {}, Kafka {}", said(pe), said(pk)),
                    &[("embedded", pe.map(|s| s < 2.0)), ("Kafka", pk.map(|s| s < 2.0))],
                )
            },
        ),
        row(
            "peak memory, VmHWM of the bench process (MiB)".into(),
            both(&|f| cell(f.peak_memory, peak_mib)),
            dash(),
            dash(),
            dash(),
        ),
        row(
            "peak memory of the days' rebuild and seal, VmHWM of its process, the highest of the runs (MiB)".into(),
            [cell(days.and_then(|d| d.peak_memory), peak_mib), "not measured".into()],
            dash(),
            dash(),
            dash(),
        ),
        row(
            "on disk, whole data directory (bytes/person)".into(),
            both(&|f| per_person(f.data_dir_bytes)),
            dash(),
            dash(),
            dash(),
        ),
        row(
            "on disk, projections sled (bytes/person)".into(),
            both(&|f| per_person(f.projections_bytes)),
            dash(),
            dash(),
            dash(),
        ),
        row(
            "projections' state: keys and values in sled (bytes/person)".into(),
            both(&|f| per_person(f.projections_live_bytes)),
            dash(),
            dash(),
            judged(
                "resident state < 1 KiB per person",
                &[
                    ("embedded", e.projections_live_bytes.map(|b| b < 1024 * header.persons as u64)),
                    ("Kafka", k.and_then(|f| f.projections_live_bytes).map(|b| b < 1024 * header.persons as u64)),
                ],
            ),
        ),
        row(
            match days {
                Some(d) => format!("projections' state after the {} days' rebuild, the feeds apart (bytes/person)", d.days),
                None => "projections' state after the days' rebuild, the feeds apart (bytes/person)".into(),
            },
            [cell(days, |d| thousands(d.state_bytes as f64 / header.persons.max(1) as f64)), "not measured".into()],
            dash(),
            dash(),
            judged(
                "resident state < 1 KiB per person",
                &[("embedded", days.map(|d| d.state_bytes < 1024 * header.persons as u64))],
            ),
        ),
        row(
            "the offices' feeds after the days' rebuild and seal: reports sealed and sent (bytes/person)"
                .into(),
            [cell(days, |d| thousands(d.feed_bytes as f64 / header.persons.max(1) as f64)), "not measured".into()],
            dash(),
            dash(),
            dash(),
        ),
        row(
            "profile of the hottest path".into(),
            ["`PROFILE.md`".into(), "—".into()],
            dash(),
            dash(),
            "flamegraph or callgrind summary: perf, see PROFILE.md".into(),
        ),
    ];

    let mut out = String::new();
    let _ = writeln!(out, "# Benchmarks\n");
    let _ = writeln!(out, "Written by `daybook-bench` (`services/bench`); issue 6 says what it should cover.\n");
    let _ = writeln!(out, "- command: `{}`", header.command);
    let _ = writeln!(out, "- machine: {}, {} cores, {} memory", header.cpu, header.cores, header.memory);
    let _ = writeln!(out, "- commit: {}", header.commit);
    let _ = writeln!(out, "- date: {}", header.date);
    let _ = writeln!(out, "- load: {}\n", header.load);
    out += &markdown_table(
        &[
            "measure",
            "embedded log",
            "Kafka (tansu)",
            "raw rdkafka, same broker",
            "Kafka daybook / raw",
            "issue 6 target",
        ],
        &rows,
    );
    out += &notes(args, header, inspections);
    out
}

fn notes(args: &Args, header: &Header, inspections: Option<&Inspections>) -> String {
    format!(
        "
Notes:

- **Kafka is tansu 0.6.0 with `memory://` storage and one record per batch**
  (`producer.batch.num.messages=1`), for daybook and the raw producer alike: tansu's memory
  storage cannot fetch from inside a record batch and its sqlite storage crawls at 100k
  records (deploy/KAFKA.md). The Kafka column measures daybook on this broker, not on Apache
  Kafka; the ratio to the raw client on the same broker is the telling figure.
- **Runs**: the embedded log is measured {runs} times, each on a new server and data directory;
  its column is the run with the median end-to-end time, and that row gives the fastest and
  slowest (single runs on this shared machine vary by a fifth). The Kafka column is one run.
- Everything shares the machine's {cores} cores: the bench's gRPC clients, the server (started
  in-process with `daybook::start_roles`, 4 partitions per topic, the day's close a day later than
  the default: the simulated day is today, and its reports are then never sealed while measured,
  whatever the hour), and on Kafka the tansu process.
- Unary intake: {unary} events spread over the day, one `Publish` at a time. Streaming: the rest
  of the day on {streams} concurrent `PublishStream` calls, whole schools and halls per stream; a stream that
  intake answers UNAVAILABLE (the log did not acknowledge within its 10 s delivery timeout) is sent
  again whole, as a client would, and its time counts (the cell says how many). Raw producer:
  the same event bytes (the protobuf `Event`, key = school or hall, no headers) to one topic of 4
  partitions, idempotent, `acks=all`, lz4, linger 5 ms, as many in flight as librdkafka queues.
  On Kafka, daybook's intake runs while its own aggregator consumes the events and publishes the
  changelog to the same tansu on the same cores; the raw producer runs alone. So the ratio to it
  is judged on intake alone: the same streams posted again, after the rest of the Kafka column,
  to `daybook intake` (the role deployed apart over Kafka) writing to topics of its own that
  nothing reads. tansu's CPU is the bottleneck of the whole Kafka column.
- End-to-end: from the first streamed event posted until `GetStatus` says `total_lag == 0`
  (polled every 50 ms; on Kafka every 500 ms, since each status asks the broker for every
  partition's offsets); over Kafka that includes the changelog and the view.
- Rebuild: the embedded run deletes the projections and restarts the server; the Kafka run starts
  a new aggregator group (the `aggregate` role) on a new data directory. Timed from the first
  event folded (the server's count of events folded, in memory, read every millisecond), as
  the raw consumer (all partitions assigned, records counted, not decoded) is timed from its
  first record, so start-up and group joining are left out; until the status says all is
  folded, over Kafka committed to the group and applied to the view. Per core is the
  events folded over the CPU time the process spent in that time, all its threads (the log's
  reads, checkpoints and sled's writes with the fold): the cores are not all busy all the
  time, so the rate divided by the cores would understate what a core folds. Over Kafka the
  aggregator also publishes every unit record it changes to its group's changelog (the raw
  consumer writes nothing), and a checkpoint's positions are committed only once that is
  acknowledged: the row after gives how many records that was, and at what rate, to set
  against the raw producer on the same broker.
- The broker's CPU: the tansu process's user and system time (`/proc/PID/stat`) over each
  span (the streams of intake alone; the Kafka rebuild from starting its aggregator until
  its view has applied the changelog; the raw producer's and consumer's runs), divided by
  the span's wall-clock time. Near 1.00 a core went to the broker all along.
- Freshness: {fresh} fever readings of new students of one class, posted one at a time after the
  bulk load; from the `Publish` acknowledgement until `GetDailyReport` of the class counts it,
  polled every 2 ms. The Kafka log runs with daybook's default `fetch_wait_ms=100` (the raw
  consumer too), and tansu 0.6.0 sleeps half the fetch wait after every fetch, records found or
  not (tansu-storage `service/fetch.rs`): each Kafka hop costs up to about 50 ms, and there are
  two (the events, then the changelog to the view).
- Every unit's report: `ListUnits`, then one `GetDailyReport` per unit on {readers} concurrent
  readers; and in one call, `ListDailyReports` for the province (a server stream of every unit's
  report, schools read once for the cities and the province), read to its end, five times, the
  median shown.
- Peak memory: VmHWM of the bench process, reset before each log's run (`/proc/self/clear_refs`);
  each rebuild of the days runs in a process of its own (a server restarted to rebuild), whose
  VmHWM is its own;
  it includes the bench's own copy of the day's events, and not tansu. Bytes per person: the
  files under the data directory (embedded: log, intake index, projections; Kafka: intake index,
  and the projections, which hold this aggregator's state and its view of the changelog) over
  {persons} persons. The state itself is the sum of the projections' keys and values, read
  after the server stops; sled's files are several times larger (a log-structured store keeps
  old versions of pages until it reclaims their segments), which the on-disk rows show. The
  state after the days' rebuild is the same sum once those days are folded. It grows with the
  days: a person's timeline keeps, per day with an entry, the state fields that changed and the
  day's flows, and the ids of the events folded but normal readings (8 bytes each); each unit
  keeps a record per day (sparse when most counts are zero). The offices' feeds (the reports
  sealed and sent, kept for subscribers who resume, never pruned) have a row of their own,
  measured once the publisher has sealed the past days within daybook's horizon (it holds the
  seal while the fold catches up): each unit's report of each of those days, once per office
  that receives it.
- The targets are for the whole province on this machine; for totals, the target cell gives what
  this run's rates would take at province size. Below `--scale 1` that flatters the fold: per
  event it costs more at province size (larger maps and sled trees, caches that no longer hold
  everyone, and each checkpoint of a rebuild rewriting more timelines).
  `services/bench/BENCHMARKS-province.md` is the province itself (`--scale 1`, embedded log;
  its command is in its header); the day there is the simulator's, about 2.2 M events, not
  the target's 3.5 M.
- Rebuild of days: {days} simulated days ending today (the same province, seed and
  simulator) are written straight into a new embedded log as intake writes them (intake is not
  timed here), then the server starts on empty projections; timed from the start of the server
  until `GetStatus` says nothing is left to fold; {days_runs} time(s), on new projections and in a
  new process (`daybook-bench --rebuild-child`) each time, the median shown with the fastest and
  slowest (runs on this shared machine vary by a fifth). The feeds hold their seal meanwhile;
  the seal follows, timed until the province's report of the last day due is sealed.
  Registrations repeat every day with the same
  ids, so fewer events are folded than records read. Not run on Kafka (tansu's memory storage
  would hold every day in memory, at the Kafka column's rate several minutes per day).
- Inspections (issue 27): the load and the days above include the service halls' events at
  this scale (the simulator's halls: the department's five and each city's, {load_halls} here,
  each inspected about twice a week). Their own rows take the province's halls ({halls} at
  scale 1, whatever `--scale`) over {hall_days} days ending today: a few dozen events a day,
  which a server's run could not time apart from its start-up. So they are folded alone in
  the bench's process by the aggregator's `Folder` into empty projections, as a rebuild folds
  (one partition after another, polls of 32,768, checkpoints as the aggregator takes them, the
  last stored), {hall_runs} times on new projections, the median by CPU shown; and the day's
  school events the same way ({school_runs} times), so that the two costs stand side by side,
  measured alike. CPU: `getrusage` of the process, all threads (the checkpoint writer's too),
  in microseconds. A hall's registration repeats every day with the same id: folded once.
  Reading the inspection reports (a hall's whole history for each day asked) and sealing them
  are not in these rows; the days' rebuild and seal above include them at this scale.
- Aggregators: on the embedded log, {fold_threads} in the server, each folding a share of its 4
  partitions (daybook's `--fold-threads`: one per core by default), on threads at a lower
  priority than intake's. On Kafka, one.
- Profile: `services/bench/PROFILE.md` (perf, intake streaming and the fold).
",
        cores = header.cores,
        unary = thousands(args.unary as f64),
        streams = args.streams,
        fresh = args.fresh,
        readers = REPORT_CLIENTS,
        persons = thousands(header.persons as f64),
        days = args.days,
        days_runs = args.days_runs.max(1),
        runs = args.runs.max(1),
        fold_threads = crate::serve::aggregators(args),
        load_halls = header.halls,
        halls = inspections.map_or(NOT_MEASURED.to_owned(), |i| i.halls.to_string()),
        hall_days = inspections.map_or(args.days.max(1), |i| i.days),
        hall_runs = crate::inspections::HALL_RUNS,
        school_runs = crate::inspections::SCHOOL_RUNS,
    ) + if args.fresh == 0 { "- Freshness was not measured in this run (`--fresh 0`).\n" } else { "" }
}

/// A VmHWM in MiB, and whether it covers only what it says (reset before) or the whole run.
fn peak_mib((bytes, reset): (u64, bool)) -> String {
    let mib = format!("{:.0}", bytes as f64 / 1024.0 / 1024.0);
    if reset { mib } else { format!("{mib} (peak of the whole run so far)") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).rev().map(ms).collect();
        assert_eq!(percentile(&samples, 50.0), Some(ms(50)));
        assert_eq!(percentile(&samples, 99.0), Some(ms(99)));
        assert_eq!(percentile(&samples, 100.0), Some(ms(100)));
        assert_eq!(percentile(&samples, 0.0), Some(ms(1)));
        assert_eq!(percentile(&[ms(7)], 99.0), Some(ms(7)));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn numbers_get_thousands_separators() {
        assert_eq!(thousands(0.4), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1234567.8), "1,234,568");
        assert_eq!(thousands(-12345.0), "-12,345");
        assert_eq!(thousands(f64::NAN), "n/a");
    }

    #[test]
    fn tables_are_padded_markdown_and_missing_figures_say_so() {
        let rows = vec![
            vec!["intake".to_owned(), per_second(Some(Rate { count: 3000, seconds: 1.5 }))],
            vec!["profile".to_owned(), per_second(None)],
        ];
        let table = markdown_table(&["measure", "events/s"], &rows);
        assert_eq!(
            table,
            "| measure | events/s |\n\
             | ------- | -------- |\n\
             | intake  | 2,000    |\n\
             | profile | n/a      |\n"
        );
    }

    #[test]
    fn the_fold_per_core_is_per_cpu_second_and_unknown_without_the_cpu() {
        let rebuilt = |cpu: Option<u64>| Figures {
            rebuild: Some(Rate { count: 600_000, seconds: 2.0 }),
            rebuild_cpu: cpu.map(Duration::from_secs),
            ..Figures::default()
        };
        // 300,000 events/s on two cores, of which 3 CPU s of the 4 were spent.
        assert_eq!(fold_per_core(&rebuilt(Some(3))), Some(200_000.0));
        assert_eq!(fold_per_core(&rebuilt(Some(4))), Some(150_000.0));
        assert_eq!(fold_per_core(&rebuilt(None)), None);
    }

    #[test]
    fn the_ratio_to_the_raw_producer_is_judged_on_intake_alone() {
        let header = Header {
            cpu: "cpu".into(),
            cores: 2,
            memory: "1 GiB".into(),
            commit: "abc".into(),
            date: "today".into(),
            command: "bench".into(),
            load: "load".into(),
            persons: 1_000,
            halls: 26,
        };
        let args = <Args as clap::Parser>::parse_from(["daybook-bench"]);
        let rate = |per_second: u64| Some(Rate { count: per_second * 10, seconds: 10.0 });
        let busy = |cpu: u64, wall: u64| Some(Busy { cpu: Duration::from_secs(cpu), wall: Duration::from_secs(wall) });
        // Beside its aggregator, intake sends half what the raw producer does; alone, 0.8×.
        let daybook = Figures {
            streaming: rate(500),
            intake_alone: Some((Rate { count: 8_000, seconds: 10.0 }, 1)),
            rebuild: rate(100),
            rebuild_fold_alone: rate(400).map(|r| (r, Duration::from_secs(20))),
            rebuild_changelog: Some(2_000),
            broker_busy_intake: busy(9, 10),
            ..Figures::default()
        };
        let raw = RawFigures {
            produce: Rate { count: 10_000, seconds: 10.0 },
            consume: Rate { count: 1, seconds: 1.0 },
            broker_busy: (busy(10, 10), busy(3, 4)),
        };
        let table = render(&header, &args, &Figures::default(), None, None, Some(&(daybook, raw)));
        let line = |starts: &str| table.lines().find(|l| l.starts_with(starts)).expect("the row").to_owned();
        let beside = line("| intake, streaming");
        assert!(beside.contains("0.50×") && !beside.contains("ratio"), "{beside}");
        let alone = line("| intake alone");
        assert!(alone.contains("| 800 (1 streams sent again)"), "{alone}");
        assert!(alone.contains("0.80×") && alone.contains("ratio met"), "{alone}");
        let changelog = line("| rebuild over Kafka: changelog");
        assert!(changelog.contains("2,000 (200/s)") && changelog.contains("producer: 1,000"), "{changelog}");
        let fold_alone = line("| rebuild over Kafka: the fold alone");
        assert!(fold_alone.contains("| 400 (200/CPU s) ") && fold_alone.contains("| 400.00× "), "{fold_alone}");
        // The broker's CPU over wall time, for each of the four; the rebuild's unread.
        let broker = line("| the broker's CPU");
        assert!(broker.contains("| 0.90; n/a ") && broker.contains("| producer: 1.00; consumer: 0.75 "), "{broker}");
    }

    #[test]
    fn the_inspections_fold_stands_beside_the_schools() {
        let header = Header {
            cpu: "cpu".into(),
            cores: 2,
            memory: "1 GiB".into(),
            commit: "abc".into(),
            date: "today".into(),
            command: "bench".into(),
            load: "load".into(),
            persons: 1_000,
            halls: 26,
        };
        let args = <Args as clap::Parser>::parse_from(["daybook-bench"]);
        let cost = |records: usize, folded: u64, cpu_ms: u64| crate::inspections::FoldCost {
            records,
            folded,
            cpu: Duration::from_millis(cpu_ms),
            wall: Duration::from_millis(cpu_ms),
            runs: 3,
        };
        // Halls: 1,000 events in 20 ms (20 µs each); schools: 100,000 in 500 ms (5 µs each).
        let inspections = Inspections {
            halls: 72,
            days: 30,
            halls_fold: cost(3_000, 1_000, 20),
            schools_fold: cost(100_000, 100_000, 500),
        };
        let table = render(&header, &args, &Figures::default(), None, Some(&inspections), None);
        let line = |starts: &str| table.lines().find(|l| l.starts_with(starts)).expect("the row").to_owned();
        let halls = line("| inspections at province scale");
        assert!(halls.contains("the 72 halls' events of 30 days, 3,000 records (1,000 folded)"), "{halls}");
        assert!(halls.contains("| 20.0 (50,000/s) "), "{halls}");
        assert!(halls.contains("4.0× a school event's") && halls.contains("what 4,000 school events do"), "{halls}");
        let schools = line("| the schools' fold measured the same way");
        assert!(schools.contains("| 500.0 (200,000/s) "), "{schools}");
        assert!(table.contains("each city's, 26 here") && table.contains("halls (72 at"), "{table}");
    }

    #[test]
    fn verdicts_name_who_met_the_target() {
        assert_eq!(judged("< 1 s", &[("embedded", Some(true)), ("Kafka", None)]), "< 1 s: embedded met");
        assert_eq!(judged("< 1 s", &[("Kafka", Some(false))]), "< 1 s: Kafka **missed**");
        assert_eq!(judged("< 1 s", &[]), "< 1 s");
    }
}
