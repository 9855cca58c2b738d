//! What reading the embedded log back costs: writes `N` million records shaped like
//! intake's (keyed by school, two headers, a ~90-byte payload) to a fresh log in appends
//! of 4,096, then drains it as an aggregator does and prints the CPU per record read.
//!
//! `cargo run --release -p eventlog --example read_log -- 20 [DIR]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use eventlog::{EmbeddedLog, EventLog, LogConsumer, Record};

// The allocator of the daybook binary, whose costs these are.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn record(i: u64) -> Record {
    let topic = ["health", "health", "movement", "roster"][(i % 4) as usize];
    let mut payload = vec![0u8; 80 + (i % 24) as usize];
    let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for b in &mut payload {
        x ^= x >> 13;
        x = x.wrapping_mul(0x2545_f491_4f6c_dd1d);
        *b = (x >> 56) as u8;
    }
    Record {
        topic: topic.to_owned(),
        key: format!("S{:04}", i % 156),
        headers: vec![
            ("daybook-event-kind".to_owned(), topic.to_owned()),
            ("daybook-schema-version".to_owned(), "1".to_owned()),
        ],
        payload,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let millions: f64 = args.next().map_or(20.0, |a| a.parse().expect("millions of records"));
    let kept = args.next();
    let temp = tempfile::tempdir().unwrap();
    let dir = kept.map_or_else(|| temp.path().to_owned(), std::path::PathBuf::from);
    let total = (millions * 1e6) as u64;
    let log = EmbeddedLog::open(&dir, 16).unwrap();
    let written: u64 = log.end_offsets().unwrap().iter().map(|(_, n)| n).sum();
    if written < total {
        let started = Instant::now();
        let mut i = written;
        while i < total {
            let n = 4096.min(total - i);
            log.append((i..i + n).map(record).collect()).await.unwrap();
            i += n;
        }
        eprintln!("wrote {} records in {:.1} s", total - written, started.elapsed().as_secs_f64());
    }
    drop(log);
    // Reopened, as after a restart.
    let opening = Instant::now();
    let log = EmbeddedLog::open(&dir, 16).unwrap();
    eprintln!("opened in {:.2} s", opening.elapsed().as_secs_f64());
    let cpu = cpu_seconds();
    let started = Instant::now();
    let mut consumer = log.subscribe("g", Arc::new(|_| None)).unwrap();
    let mut read = 0u64;
    let mut bytes = 0u64;
    loop {
        let polled = consumer.poll(32_768, Duration::ZERO).await.unwrap();
        if polled.is_empty() {
            break;
        }
        read += polled.len() as u64;
        bytes += polled.iter().map(|p| p.record.payload.len() as u64).sum::<u64>();
    }
    let cpu = cpu_seconds() - cpu;
    println!(
        "read {read} records ({:.0} MB of payload) in {:.1} s, {cpu:.1} CPU s: {:.0} ns per record, {:.0} records per CPU s",
        bytes as f64 / 1e6,
        started.elapsed().as_secs_f64(),
        cpu * 1e9 / read as f64,
        read as f64 / cpu
    );
}
