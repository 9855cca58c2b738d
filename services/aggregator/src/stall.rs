//! A stalled consumer: its position on a partition does not move while the partition holds
//! records past it. Whatever the cause (a rebalance gone wrong, a fetch that never
//! returns), it is found within a bounded time, so that it is reported (log, metric,
//! `GetStatus`, health) and the consumer subscribed again, never left silent.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use eventlog::TopicPartition;

pub struct StallWatch {
    /// The stall time asked for.
    base: Duration,
    /// The stall time now: doubled after each cure (up to 8 times `base`), so that a
    /// consumer that is only slow is not made slower by re-subscriptions, each of which
    /// makes its group rebalance; back to `base` once nothing lags.
    after: Duration,
    /// Per partition: the position last seen, and since when it has not moved while lagging.
    since: HashMap<TopicPartition, (u64, Instant)>,
}

impl StallWatch {
    pub fn new(after: Duration) -> Self {
        Self { base: after, after, since: HashMap::new() }
    }

    /// Given `(partition, position, end)` for each partition the consumer reads, measured
    /// at `now`: those lagging at the same position for `after` or longer.
    pub fn check(&mut self, now: Instant, partitions: &[(TopicPartition, u64, u64)]) -> Vec<TopicPartition> {
        let mut stalled = Vec::new();
        let mut seen = HashMap::with_capacity(partitions.len());
        for (tp, position, end) in partitions {
            let lagging = end > position;
            let since = match self.since.get(tp) {
                Some((last, at)) if last == position && lagging => *at,
                _ => now,
            };
            if lagging && now.duration_since(since) >= self.after {
                stalled.push(tp.clone());
            }
            seen.insert(tp.clone(), (*position, since));
        }
        if partitions.iter().all(|(_, position, end)| end <= position) {
            self.after = self.base;
        }
        self.since = seen;
        stalled
    }

    /// Every clock starts over, the stall time kept: the partitions changed hands (a
    /// rebalance), so their new owners get the whole stall time.
    pub fn restart(&mut self) {
        self.since.clear();
    }

    /// After a cure (a re-subscription): every clock starts over, and the next stall must
    /// last twice as long before another.
    pub fn cured(&mut self) {
        self.since.clear();
        self.after = (self.after * 2).min(self.base * 8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_lagging_without_moving_is_stalled_once_the_time_is_up_and_not_before() {
        let tp = |p: u32| TopicPartition { topic: "health".into(), partition: p };
        let mut watch = StallWatch::new(Duration::from_secs(30));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert!(watch.check(at(0), &[(tp(0), 5, 9), (tp(1), 3, 3)]).is_empty());
        assert!(watch.check(at(29), &[(tp(0), 5, 9), (tp(1), 3, 3)]).is_empty(), "not yet");
        assert_eq!(watch.check(at(30), &[(tp(0), 5, 9), (tp(1), 3, 3)]), [tp(0)], "lagging, not moving");
        assert!(watch.check(at(31), &[(tp(0), 6, 9), (tp(1), 3, 3)]).is_empty(), "it moved: the clock starts over");
        assert!(watch.check(at(100), &[(tp(0), 9, 9), (tp(1), 3, 3)]).is_empty(), "caught up is never stalled");
        assert!(watch.check(at(120), &[(tp(0), 9, 12)]).is_empty(), "new records: the clock starts now");
        assert_eq!(watch.check(at(150), &[(tp(0), 9, 12)]), [tp(0)]);

        // Cured, the next stall must last twice as long: a slow consumer is not churned.
        watch.cured();
        assert!(watch.check(at(151), &[(tp(0), 9, 12)]).is_empty());
        assert!(watch.check(at(190), &[(tp(0), 9, 12)]).is_empty(), "39 s of 60");
        assert_eq!(watch.check(at(211), &[(tp(0), 9, 12)]), [tp(0)]);
        watch.check(at(212), &[(tp(0), 12, 12)]);
        assert!(watch.check(at(213), &[(tp(0), 12, 20)]).is_empty());
        assert_eq!(watch.check(at(243), &[(tp(0), 12, 20)]), [tp(0)], "caught up, back to 30 s");
    }
}
