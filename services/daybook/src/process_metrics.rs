//! What operators watch of the process itself, read from `/proc` at each scrape: CPU
//! time, resident memory, open file descriptors; and which build is running.

use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// Registers `daybook_build_info` and the process metrics in `registry`.
pub fn register(registry: &mut Registry) {
    registry.register(
        "daybook_build",
        "The running daybook's version",
        Info::new(vec![("version".to_owned(), env!("CARGO_PKG_VERSION").to_owned())]),
    );
    registry.register_collector(Box::new(Process));
}

#[derive(Debug)]
struct Process;

impl Collector for Process {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        let cpu = ConstCounter::new(cpu_in(&stat).as_secs_f64());
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "User and system CPU time",
            None,
            cpu.metric_type(),
        )?)?;
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let resident = ConstGauge::new(resident_bytes(&status));
        let help = "Resident memory";
        resident.encode(encoder.encode_descriptor(
            "process_resident_memory_bytes",
            help,
            None,
            resident.metric_type(),
        )?)?;
        let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as i64);
        let open = ConstGauge::new(fds);
        open.encode(encoder.encode_descriptor(
            "process_open_fds",
            "Open file descriptors",
            None,
            open.metric_type(),
        )?)?;
        Ok(())
    }
}

/// utime + stime of a `/proc/…/stat` line, in clock ticks of 1/100 s (Linux's USER_HZ).
pub fn cpu_in(stat: &str) -> Duration {
    // The command name (field 2) may hold spaces: count fields after its ')'.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = after.split_whitespace().skip(11).take(2).filter_map(|f| f.parse::<u64>().ok()).sum();
    Duration::from_millis(ticks * 10)
}

/// VmRSS of a `/proc/…/status` text, in bytes.
fn resident_bytes(status: &str) -> i64 {
    let kib =
        status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()?.parse().ok());
    kib.unwrap_or(0i64) * 1024
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_fields_are_read_past_a_command_name_with_spaces() {
        let stat = "42 (a b) S 1 42 42 0 -1 4194560 100 0 0 0 250 150 0 0 20 0 3 0 1 1 1";
        assert_eq!(cpu_in(stat), Duration::from_secs(4));
        assert_eq!(resident_bytes("Name:\tdaybook\nVmRSS:\t  2048 kB\n"), 2 * 1024 * 1024);
    }
}
