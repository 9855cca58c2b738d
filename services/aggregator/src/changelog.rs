//! The changelog between aggregators (Kafka mode).
//!
//! Each aggregator folds the schools on its partitions. Every unit record it changes
//! (school and below; cities and the province are summed from schools when read) goes
//! into an outbox in the same sled batch as the state, then to a compacted changelog
//! topic keyed by the record's key. Every aggregator applies the whole changelog to its
//! own view, so any instance answers for every unit. Each value carries a version (how
//! far its school's partition was folded), and a view keeps the highest: a new owner
//! replaying a partition, or an old owner still flushing, never winds a report back.

use eventlog::{EventLog, Polled, Record};

use crate::AggregateError;
use crate::store::{self, Projections};

/// The changelog's topic (short name; the Kafka log adds its prefix).
pub const TOPIC: &str = "unit-records";

/// Publishes everything in the outbox of `fold` and clears what was published. Returns
/// how many records went out.
pub async fn publish_outbox<L: EventLog>(fold: &Projections, changelog: &L) -> Result<usize, AggregateError> {
    let mut pending = Vec::new();
    for item in fold.tree.scan_prefix(b"x") {
        let (k, v) = item?;
        pending.push((k.to_vec(), v.to_vec()));
    }
    if pending.is_empty() {
        return Ok(0);
    }
    let records = pending
        .iter()
        .map(|(k, v)| Record {
            topic: TOPIC.to_owned(),
            // The record's key without the outbox prefix: `u…` or `n…`, as in the store.
            key: String::from_utf8_lossy(&k[1..]).into_owned(),
            headers: vec![("daybook-record".to_owned(), if k[1] == b'u' { "unit-day" } else { "unit" }.to_owned())],
            payload: v.clone(),
        })
        .collect();
    changelog.append(records).await?;
    for (k, v) in &pending {
        // A newer value written meanwhile stays for the next round.
        let _ = fold.tree.compare_and_swap(k, Some(v.as_slice()), None::<&[u8]>)?;
    }
    Ok(pending.len())
}

/// Applies changelog records to a view, keeping the highest version of each key, and
/// stores the changelog positions with them in one batch.
pub fn apply(view: &Projections, records: &[Polled]) -> Result<(), AggregateError> {
    let mut batch = sled::Batch::default();
    let mut newest: std::collections::HashMap<Vec<u8>, (u64, Vec<u8>)> = std::collections::HashMap::new();
    let mut positions = std::collections::BTreeMap::new();
    for polled in records {
        positions.insert(polled.at.clone(), polled.offset + 1);
        let key = polled.record.key.as_bytes().to_vec();
        let (version, value): (u64, Vec<u8>) = store::decode(&key, &polled.record.payload)?;
        let held = match newest.get(&key) {
            Some((v, _)) => Some(*v),
            None => {
                let vk = store::version_key(&key);
                view.tree.get(&vk)?.map(|b| u64::from_be_bytes(b.as_ref().try_into().unwrap_or([0; 8])))
            }
        };
        if held.is_none_or(|held| version >= held) {
            newest.insert(key, (version, value));
        }
    }
    for (key, (version, value)) in newest {
        batch.insert(store::version_key(&key), &version.to_be_bytes());
        batch.insert(key, value);
    }
    for (tp, next) in positions {
        batch.insert(store::position_key(&tp), &next.to_be_bytes());
    }
    view.tree.apply_batch(batch)?;
    Ok(())
}
