//! The changelog between aggregators (Kafka mode).
//!
//! Each aggregator folds the schools on its partitions. Every unit record it changes
//! (school and below; cities and the province are summed from schools when read) goes
//! into an outbox in the same sled batch as the state, then to a compacted changelog
//! topic keyed by the record's key. Every aggregator applies the whole changelog to its
//! own view, so any instance answers for every unit.
//!
//! Each value carries its reach: how far its school's partition was folded, per topic. A
//! view refuses a value whose reach the held value's reach covers (it was folded from a
//! subset of the same events: a new owner replaying the partition, an old owner still
//! flushing, a restart after a crash). Any other value is newer in some events and taken;
//! if it lacks some events of the held value, the owner folds those next and publishes
//! the records they touch again, so the view converges on the full fold.

use std::collections::{BTreeMap, HashMap};

use domain::Day;
use eventlog::{EventLog, Polled, Record};
use serde::{Deserialize, Serialize};

use crate::AggregateError;
use crate::store::{self, Projections};

/// Next offset to fold per topic, for one partition.
pub type Reach = BTreeMap<String, u64>;

/// One unit record on its way through the changelog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub partition: u32,
    pub reach: Reach,
    /// The record's value as the store keeps it.
    pub value: Vec<u8>,
}

/// Whether `a` has folded everything `b` has.
pub fn covers(a: &Reach, b: &Reach) -> bool {
    b.iter().all(|(topic, n)| a.get(topic).copied().unwrap_or(0) >= *n)
}

/// The changelog's topic (short name; the Kafka log adds its prefix).
pub const TOPIC: &str = "unit-records";

/// Records per changelog append. Each append must be acknowledged within the log's
/// delivery timeout; an outbox grown large (a long backlog, a broker outage) goes out in
/// pieces that each can be, rather than as one append retried forever.
const APPEND_AT_MOST: usize = 2_048;

/// Publishes everything in the outbox of `fold` and clears what was published. Returns
/// how many records went out.
pub async fn publish_outbox<L: EventLog>(fold: &Projections, changelog: &L) -> Result<usize, AggregateError> {
    let mut pending = Vec::new();
    for item in fold.tree.scan_prefix(b"x") {
        let (k, v) = item?;
        pending.push((k.to_vec(), v.to_vec()));
    }
    // Publish (and let the caller commit) only what survives a crash, so a restarted
    // owner never lags its own copies.
    fold.tree.flush_async().await?;
    if pending.is_empty() {
        return Ok(0);
    }
    for piece in pending.chunks(APPEND_AT_MOST) {
        let records = piece
            .iter()
            .map(|(k, v)| Record {
                topic: TOPIC.to_owned(),
                // The record's key without the outbox prefix: `u…` or `n…`, as in the store.
                key: String::from_utf8_lossy(&k[1..]).into_owned(),
                headers: vec![("daybook-record".to_owned(), record_kind(k[1]).to_owned())],
                payload: v.clone(),
            })
            .collect();
        changelog.append(records).await?;
        for (k, v) in piece {
            // A newer value written meanwhile stays for the next round.
            let _ = fold.tree.compare_and_swap(k, Some(v.as_slice()), None::<&[u8]>)?;
        }
    }
    Ok(pending.len())
}

fn record_kind(prefix: u8) -> &'static str {
    match prefix {
        b'u' => "unit-day",
        b'n' => "unit",
        b'a' => "alert",
        b'H' => "hall",
        _ => "key-person",
    }
}

/// Applies changelog records to a view, refusing copies older than the one held, and
/// stores the changelog positions with them in one batch.
pub fn apply(view: &Projections, records: &[Polled]) -> Result<(), AggregateError> {
    let mut batch = ::store::Batch::default();
    let mut held: HashMap<Vec<u8>, Reach> = HashMap::new();
    let mut taken: HashMap<Vec<u8>, Change> = HashMap::new();
    let mut positions = BTreeMap::new();
    for polled in records {
        positions.insert(polled.at.clone(), polled.offset + 1);
        let key = polled.record.key.as_bytes().to_vec();
        let change: Change = store::decode(&key, &polled.record.payload)?;
        if !held.contains_key(&key) {
            let vk = store::version_key(&key);
            let stored = view.tree.get(&vk)?.map(|b| store::decode::<Reach>(&vk, &b)).transpose()?;
            held.insert(key.clone(), stored.unwrap_or_default());
        }
        let current = held.get_mut(&key).expect("inserted above");
        if !current.is_empty() && covers(current, &change.reach) {
            continue;
        }
        *current = change.reach.clone();
        taken.insert(key, change);
    }
    for (key, change) in taken {
        // Tell the feeds which schools' days changed.
        if let Some((unit, day)) = store::parse_unit_day_key(&key) {
            let school = unit.path.split('/').next().unwrap_or_default().to_owned();
            batch.insert(store::mark_key(day, &school), &store::mark_value());
        }
        if let Some(hall) = store::parse_hall_log_key(&key)
            && let Some(day) = first_new_day(view, hall, &key, &change.value)?
        {
            batch.insert(store::mark_key(day, hall), &store::mark_value());
        }
        batch.insert(store::version_key(&key), store::encode(&change.reach));
        if change.value.is_empty() {
            batch.remove(key);
        } else {
            batch.insert(key, change.value);
        }
    }
    for (tp, next) in positions {
        batch.insert(store::position_key(&tp), &next.to_be_bytes());
    }
    view.tree.apply(batch)?;
    view.written();
    Ok(())
}

/// The earliest day of an event in the hall's new log that the view's copy lacks: its
/// reports changed from that day on.
fn first_new_day(view: &Projections, hall: &str, key: &[u8], value: &[u8]) -> Result<Option<Day>, AggregateError> {
    if value.is_empty() {
        return Ok(None);
    }
    let new: domain::inspection::HallLog = store::decode(key, value)?;
    let held = view.hall_log(hall)?.unwrap_or_default();
    Ok(new.first_day_unlike(&held))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use eventlog::{Appended, EmbeddedLog, LogError, PositionLookup, TopicPartition};

    use super::*;

    /// The embedded log, noting the size of every append.
    #[derive(Clone)]
    struct Counting {
        log: EmbeddedLog,
        appends: Arc<Mutex<Vec<usize>>>,
    }

    impl EventLog for Counting {
        type Consumer = <EmbeddedLog as EventLog>::Consumer;

        async fn append(&self, records: Vec<Record>) -> Result<Vec<Appended>, LogError> {
            self.appends.lock().unwrap().push(records.len());
            self.log.append(records).await
        }

        fn subscribe(&self, group: &str, positions: PositionLookup) -> Result<Self::Consumer, LogError> {
            self.log.subscribe(group, positions)
        }

        fn read_all(&self, positions: PositionLookup) -> Result<Self::Consumer, LogError> {
            self.log.read_all(positions)
        }

        fn end_offsets(&self) -> Result<Vec<(TopicPartition, u64)>, LogError> {
            self.log.end_offsets()
        }
    }

    #[tokio::test]
    async fn a_large_outbox_goes_out_whole_in_appends_of_bounded_size() {
        let dir = tempfile::tempdir().unwrap();
        let fold = Projections::new(store::open(&dir.path().join("fold")).unwrap());
        let changelog =
            Counting { log: EmbeddedLog::open(&dir.path().join("log"), 1).unwrap(), appends: Arc::default() };
        let n = APPEND_AT_MOST * 2 + 5;
        for i in 0..n {
            let change = Change { partition: 0, reach: Reach::new(), value: vec![1] };
            fold.tree.insert(store::outbox_key(format!("u\0S{i}").as_bytes()), store::encode(&change)).unwrap();
        }
        assert_eq!(publish_outbox(&fold, &changelog).await.unwrap(), n);
        assert_eq!(*changelog.appends.lock().unwrap(), [APPEND_AT_MOST, APPEND_AT_MOST, 5]);
        let published: u64 = changelog.end_offsets().unwrap().iter().map(|(_, end)| end).sum();
        assert_eq!(published, n as u64);
        assert!(fold.tree.scan_prefix(b"x").next().is_none(), "the outbox is empty");
    }
}
