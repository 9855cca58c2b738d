//! The fold alone, for profiling, with no server, log or feeds around it. Two phases:
//!
//! - **rebuild**: all simulated days but the last, encoded as the log holds them and
//!   folded into empty projections the way `aggregator::run` does while behind (one
//!   partition after another, polls of `POLL_MAX`, a checkpoint when `checkpoint_worth_it`,
//!   stored by a writer thread while folding goes on);
//! - **live**: the last day in the order it happens, in polls of 500 with a checkpoint
//!   after each, as a caught-up aggregator folds a day on top of the history.
//!
//! `cargo run --release -p aggregator --example fold_days -- [scale] [days] [rebuild]`
//! (defaults 0.05 and 10; `rebuild`: skip the live day); prints wall and CPU seconds and folded events per CPU second.

use std::time::Instant;

// The allocator daybook's binaries use (see services/daybook/src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use aggregator::{FoldConfig, Folder, Projections};
use eventlog::{Polled, Record, TopicPartition};
use prost::Message;
use wire::pb;

fn main() {
    aggregator::keep_freed_memory_a_while();
    let mut args = std::env::args().skip(1);
    let scale: f64 = args.next().map_or(0.05, |a| a.parse().expect("scale: a number"));
    let days: u64 = args.next().map_or(10, |a| a.parse().expect("days: a whole number"));
    let live_too = args.next().is_none_or(|a| a != "rebuild");
    assert!(days >= 2, "days: at least 2 (a rebuild, then a live day)");
    let province = simulator::Province::generate(scale, 1);
    let last = chrono::NaiveDate::from_ymd_opt(2026, 11, 1).expect("a date");
    let day = |back: u64| {
        let date = last - chrono::Days::new(back);
        let mut events: Vec<pb::Event> = (0..province.schools().len())
            .flat_map(|school| simulator::day_events(&province, school, date, 1))
            .collect();
        events.sort_by(|a, b| a.occurred_at.cmp(&b.occurred_at));
        events
    };
    let mut offsets = [0u64; 16];
    let mut as_log = |events: Vec<pb::Event>| -> Vec<Polled> {
        events
            .into_iter()
            .map(|event| {
                // The topics intake writes to: unit namings with the roster.
                let topic = match event.payload {
                    Some(pb::event::Payload::Roster(_) | pb::event::Payload::Unit(_)) => 0,
                    Some(pb::event::Payload::Health(_)) => 1,
                    Some(pb::event::Payload::Inspection(_)) => 3,
                    _ => 2,
                };
                let site = if event.site.is_empty() { event.school.clone() } else { event.site.clone() };
                let partition = eventlog::partition_for(&site, 4);
                let offset = &mut offsets[topic * 4 + partition as usize];
                let at =
                    TopicPartition { topic: ["roster", "health", "movement", "inspection"][topic].into(), partition };
                let payload = event.encode_to_vec();
                let record = Record { topic: at.topic.clone(), key: site, headers: vec![], payload };
                *offset += 1;
                Polled { at, offset: *offset - 1, record }
            })
            .collect()
    };
    // Appended in the order things happen, day after day.
    let mut history = as_log((1..days).rev().flat_map(day).collect());
    // Read while rebuilding one partition after another, each in append order.
    history.sort_by(|a, b| (&a.at.topic, a.at.partition, a.offset).cmp(&(&b.at.topic, b.at.partition, b.offset)));
    let live = as_log(day(0));

    // Printed before the fold starts, so that a profiler can attach for the fold alone.
    println!("history of {} records ready, folding (pid {})", history.len(), std::process::id());
    let dir = tempfile::tempdir().expect("a temporary directory");
    let tree = aggregator::store::open(dir.path()).expect("a store");
    let config = FoldConfig::default();
    let mut folder = Folder::new(Projections::new(tree.clone()), config.rules, config.zone).expect("a folder");
    measure(&format!("rebuild of {} days", days - 1), history.len(), || {
        let (mut folded, mut last_checkpoint) = (0, Instant::now());
        for poll in history.chunks(aggregator::POLL_MAX) {
            folded += folder.fold_records(poll).expect("folded").folded;
            if folder.caches_full() {
                folder.checkpoint().expect("stored");
                last_checkpoint = Instant::now();
            } else if aggregator::checkpoint_worth_it(&folder, last_checkpoint.elapsed()) {
                folder.start_checkpoint().expect("handed to the writer");
                last_checkpoint = Instant::now();
            }
        }
        folder.checkpoint().expect("stored");
        folded
    });
    if live_too {
        measure("the next day live", live.len(), || {
            live.chunks(500).map(|poll| folder.fold_batch(poll).expect("folded and stored").folded).sum()
        });
    }
    // What the store holds, by key prefix (see `aggregator::store`): entries and bytes.
    let mut by_prefix: std::collections::BTreeMap<char, (u64, u64)> = Default::default();
    for entry in tree.iter() {
        let (key, value) = entry.expect("readable");
        let sum = by_prefix.entry(char::from(key[0])).or_default();
        *sum = (sum.0 + 1, sum.1 + (key.len() + value.len()) as u64);
    }
    for (prefix, (entries, bytes)) in by_prefix {
        println!("  {prefix}: {entries} entries, {bytes} bytes, {} bytes each", bytes / entries);
    }
}

fn measure(what: &str, records: usize, fold: impl FnOnce() -> u64) {
    let (started, cpu_before, rss_before) = (Instant::now(), cpu(), rss_mib());
    let folded = fold();
    let (wall, cpu) = (started.elapsed().as_secs_f64(), cpu() - cpu_before);
    println!(
        "{what}: {records} records, {folded} folded: wall {wall:.2} s, CPU {cpu:.2} s, {:.0} folded/CPU s, resident memory {rss_before} -> {} MiB",
        folded as f64 / cpu,
        rss_mib()
    );
}

/// VmRSS of this process (MiB): the folder's caches and sled's.
fn rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("a VmRSS line");
    line.split_whitespace().nth(1).and_then(|kib| kib.parse::<u64>().ok()).expect("kB") / 1024
}

/// utime + stime of this process, all threads (seconds).
fn cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let fields: Vec<&str> = stat.rsplit_once(')').expect("a stat line").1.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    ticks / 100.0
}
