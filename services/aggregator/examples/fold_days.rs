//! The fold alone, for profiling: simulated days encoded as the log holds them, folded
//! into empty projections the way `aggregator::run` does while behind (polls of 32,768,
//! a checkpoint every 262,144 records), with no server, log or feeds around it.
//!
//! `cargo run --release -p aggregator --example fold_days -- [scale] [days]`
//! (defaults 0.05 and 10); prints wall and CPU seconds and folded events per CPU second.

use std::time::Instant;

use aggregator::{FoldConfig, Folder, Projections};
use eventlog::{Polled, Record, TopicPartition};
use prost::Message;
use wire::pb;

fn main() {
    let mut args = std::env::args().skip(1);
    let scale: f64 = args.next().map_or(0.05, |a| a.parse().expect("scale: a number"));
    let days: u64 = args.next().map_or(10, |a| a.parse().expect("days: a whole number"));
    let province = simulator::Province::generate(scale, 1);
    let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 1).expect("a date");
    // The log's order while rebuilding: one partition after another, each in append order.
    let mut partitions: Vec<Vec<Polled>> = vec![Vec::new(); 16];
    for back in (0..days).rev() {
        let date = today - chrono::Days::new(back);
        for school in 0..province.schools().len() {
            for event in simulator::day_events(&province, school, date, 1) {
                let topic = match event.payload {
                    Some(pb::event::Payload::Roster(_)) => 0,
                    Some(pb::event::Payload::Health(_)) => 1,
                    _ => 2,
                };
                let partition = eventlog::partition_for(&event.school, 4);
                let log = &mut partitions[topic * 4 + partition as usize];
                let at = TopicPartition { topic: ["roster", "health", "movement"][topic].into(), partition };
                let record = Record {
                    topic: at.topic.clone(),
                    key: event.school.clone(),
                    headers: vec![],
                    payload: event.encode_to_vec(),
                };
                log.push(Polled { at, offset: log.len() as u64, record });
            }
        }
    }
    let records: Vec<Polled> = partitions.into_iter().flatten().collect();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let projections = Projections::new(aggregator::store::open(dir.path()).expect("a store"));
    let config = FoldConfig::default();
    let mut folder = Folder::new(projections, config.rules, config.zone).expect("a folder");
    let (started, cpu_before) = (Instant::now(), cpu());
    let mut folded = 0;
    for poll in records.chunks(32_768) {
        folded += folder.fold_records(poll).expect("folded").folded;
        if folder.pending() >= 262_144 || folder.caches_full() {
            folder.checkpoint().expect("stored");
        }
    }
    folder.checkpoint().expect("stored");
    let (wall, cpu) = (started.elapsed().as_secs_f64(), cpu() - cpu_before);
    println!(
        "{} records, {folded} folded: wall {wall:.2} s, CPU {cpu:.2} s, {:.0} folded/CPU s",
        records.len(),
        folded as f64 / cpu
    );
}

/// utime + stime of this process, all threads (seconds).
fn cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let fields: Vec<&str> = stat.rsplit_once(')').expect("a stat line").1.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    ticks / 100.0
}
