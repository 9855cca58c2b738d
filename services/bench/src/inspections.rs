//! The service-window inspections' fold cost at province scale, beside the schools' (issue
//! 27). The province has some seventy halls, each inspected about twice a week: a day of
//! theirs is a few dozen events, which a run of the server could not time apart from its
//! start-up. So both folds are timed alone, in this process, with no server, log or feeds
//! around them: the aggregator's `Folder` folding the events into empty projections as a
//! rebuild does (polls of `POLL_MAX`, checkpoints when worth it, the last one stored), its
//! CPU read with `getrusage` (microseconds, all threads, the checkpoint writer's included).

use std::time::{Duration, Instant};

use eventlog::{Polled, TopicPartition};
use wire::pb;

use crate::{Args, Load};

/// Folds of the halls' events timed, on new projections each: they take milliseconds, so
/// the shared machine's noise would decide a single one.
pub const HALL_RUNS: usize = 5;
/// Folds of the schools' day timed.
pub const SCHOOL_RUNS: usize = 3;
/// The province's halls: those of scale 1, whatever the bench's `--scale`.
const PROVINCE: f64 = 1.0;

/// One fold measured: the median run by CPU time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FoldCost {
    pub records: usize,
    pub folded: u64,
    pub cpu: Duration,
    pub wall: Duration,
    pub runs: usize,
}

impl FoldCost {
    pub fn per_cpu_second(&self) -> f64 {
        self.folded as f64 / self.cpu.as_secs_f64().max(1e-6)
    }

    /// CPU per event folded.
    pub fn cpu_per_event(&self) -> Duration {
        self.cpu / u32::try_from(self.folded.max(1)).unwrap_or(u32::MAX)
    }
}

/// The inspections' fold and the schools', measured alike.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Inspections {
    pub halls: usize,
    pub days: u32,
    /// The province's halls' events of `days` days ending with the load's date.
    pub halls_fold: FoldCost,
    /// The load's day, its inspections left out: the schools' at the bench's scale.
    pub schools_fold: FoldCost,
}

pub fn measure(args: &Args, load: &Load) -> anyhow::Result<Inspections> {
    let days = args.days.max(1);
    let halls = simulator::halls::halls(PROVINCE);
    let hall_events: Vec<pb::Event> = (0..days)
        .rev()
        .map(|back| load.date - chrono::Days::new(u64::from(back)))
        .flat_map(|date| halls.iter().flat_map(move |hall| simulator::hall_events(hall, date, args.seed)))
        .collect();
    eprintln!("  {} halls, {} events of {days} days, folded {HALL_RUNS} times", halls.len(), hall_events.len());
    let halls_fold = fold_cost(&hall_events, HALL_RUNS)?;
    let school_events: Vec<pb::Event> =
        load.all().filter(|e| !matches!(e.payload, Some(pb::event::Payload::Inspection(_)))).cloned().collect();
    eprintln!("  the schools' {} events of the day, folded {SCHOOL_RUNS} times", school_events.len());
    let schools_fold = fold_cost(&school_events, SCHOOL_RUNS)?;
    for (what, cost) in [("halls", halls_fold), ("schools", schools_fold)] {
        eprintln!(
            "  {what}: {} records, {} folded, {:.1} ms CPU, {:.0} folded/CPU s",
            cost.records,
            cost.folded,
            cost.cpu.as_secs_f64() * 1000.0,
            cost.per_cpu_second()
        );
    }
    Ok(Inspections { halls: halls.len(), days, halls_fold, schools_fold })
}

/// `events` folded `runs` times into new, empty projections; the median run by CPU.
fn fold_cost(events: &[pb::Event], runs: usize) -> anyhow::Result<FoldCost> {
    let records = as_log(events);
    let mut costs = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let dir = tempfile::tempdir()?;
        let tree = aggregator::store::open(dir.path())?;
        let config = aggregator::FoldConfig::default();
        let mut folder = aggregator::Folder::new(aggregator::Projections::new(tree), config.rules, config.zone)?;
        let (started, cpu) = (Instant::now(), cpu_time());
        let (mut folded, mut last_checkpoint) = (0, Instant::now());
        for poll in records.chunks(aggregator::POLL_MAX) {
            folded += folder.fold_records(poll)?.folded;
            if folder.caches_full() {
                folder.checkpoint()?;
                last_checkpoint = Instant::now();
            } else if aggregator::checkpoint_worth_it(&folder, last_checkpoint.elapsed()) {
                folder.start_checkpoint()?;
                last_checkpoint = Instant::now();
            }
        }
        folder.checkpoint()?;
        let (wall, cpu) = (started.elapsed(), cpu_time().saturating_sub(cpu));
        costs.push(FoldCost { records: records.len(), folded, cpu, wall, runs: runs.max(1) });
    }
    costs.sort_by_key(|c| c.cpu);
    Ok(costs[costs.len() / 2])
}

/// The events as a rebuild reads them from the log: as intake writes them (topic by kind,
/// keyed by site), one partition after another, each in the order appended.
fn as_log(events: &[pb::Event]) -> Vec<Polled> {
    let mut offsets = std::collections::HashMap::new();
    let mut polled: Vec<Polled> = events
        .iter()
        .map(|event| {
            let record = crate::serve::log_record(event);
            let at = TopicPartition { topic: record.topic.clone(), partition: eventlog::partition_for(&record.key, 4) };
            let offset = offsets.entry(at.clone()).or_insert(0u64);
            *offset += 1;
            Polled { at, offset: *offset - 1, record }
        })
        .collect();
    polled.sort_by(|a, b| (&a.at.topic, a.at.partition, a.offset).cmp(&(&b.at.topic, b.at.partition, b.offset)));
    polled
}

/// User and system CPU of this process, all threads, those ended included (`getrusage`):
/// microseconds, where `/proc/self/stat` counts hundredths.
#[allow(unsafe_code)]
fn cpu_time() -> Duration {
    // SAFETY: getrusage writes the struct it is given; zeroed is a valid `rusage`.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer cannot fail.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let micros = |t: libc::timeval| Duration::from_micros(t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64);
    micros(usage.ru_utime) + micros(usage.ru_stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rebuild_reads_each_partition_in_order_keyed_by_site() {
        let date = chrono::NaiveDate::from_ymd_opt(2020, 3, 2).unwrap();
        let halls = simulator::halls::halls(0.01);
        let events: Vec<pb::Event> = (0..14)
            .map(|n| date + chrono::Days::new(n))
            .flat_map(|day| halls.iter().flat_map(move |hall| simulator::hall_events(hall, day, 1)))
            .collect();
        let log = as_log(&events);
        assert_eq!(log.len(), events.len());
        assert!(log.iter().all(|p| p.record.topic == "inspection"));
        assert!(log.iter().all(|p| p.record.key.starts_with("H-")), "keyed by the hall");
        assert!(log.windows(2).all(|w| (w[0].at.partition, w[0].offset) < (w[1].at.partition, w[1].offset)));
    }

    #[test]
    fn the_halls_fold_counts_each_registration_once() {
        let date = chrono::NaiveDate::from_ymd_opt(2020, 3, 2).unwrap();
        let halls = simulator::halls::halls(0.01);
        let days = 10;
        let events: Vec<pb::Event> = (0..days)
            .map(|n| date + chrono::Days::new(n))
            .flat_map(|day| halls.iter().flat_map(move |hall| simulator::hall_events(hall, day, 1)))
            .collect();
        let cost = fold_cost(&events, 1).unwrap();
        assert_eq!(cost.records, events.len());
        // A hall's registration comes every day with the same id: folded once.
        assert_eq!(cost.folded as usize, events.len() - (days as usize - 1) * halls.len());
        assert!(cost.cpu > Duration::ZERO);
    }
}
