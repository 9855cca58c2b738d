//! The ids intake has accepted, to answer a repeated event as a duplicate.
//!
//! Held in memory as 128-bit keyed hashes of `school/event id`, grouped by the day the
//! event happened, and persisted as one sled entry per request (not one per event: a
//! sled insert costs about as much as everything else intake does for an event). Days
//! before the horizon are dropped, from memory and from sled: intake refuses events that
//! old before it asks, so their ids are never looked up again.
//!
//! The hash is SipHash-1-3 under a key drawn when the index is created and kept with it,
//! so that no client can make two ids collide on purpose; two ids colliding by chance
//! needs about 2^64 ids.

use std::collections::{BTreeMap, HashSet};
use std::hash::Hasher;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{Datelike, NaiveDate};
use siphasher::sip128::{Hasher128, SipHasher13};

const KEY_ENTRY: &[u8] = b"key";
/// Entries: `d`, the day as YYYYMMDD (big-endian u32), the entry's number (big-endian
/// u64); the value is the hashes of that request's new ids of that day, 16 bytes each.
const DAY_PREFIX: u8 = b'd';

pub struct AcceptedIds {
    tree: store::Tree,
    key: (u64, u64),
    days: Mutex<BTreeMap<NaiveDate, HashSet<u128>>>,
    next_entry: AtomicU64,
}

/// An id as the index knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdHash(u128);

fn day_number(day: NaiveDate) -> u32 {
    day.year().max(0) as u32 * 10_000 + day.month() * 100 + day.day()
}

fn entry_key(day: NaiveDate, entry: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(13);
    key.push(DAY_PREFIX);
    key.extend_from_slice(&day_number(day).to_be_bytes());
    key.extend_from_slice(&entry.to_be_bytes());
    key
}

fn parse_entry_key(key: &[u8]) -> Option<(NaiveDate, u64)> {
    let rest = key.strip_prefix(&[DAY_PREFIX])?;
    let day = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
    let entry = u64::from_be_bytes(rest.get(4..12)?.try_into().ok()?);
    let day = NaiveDate::from_ymd_opt((day / 10_000) as i32, day / 100 % 100, day % 100)?;
    Some((day, entry))
}

impl AcceptedIds {
    /// Loads the index kept in `tree`, dropping the days before `keep_from`.
    pub fn open(tree: store::Tree, keep_from: NaiveDate) -> Result<Self, store::Error> {
        let key = match tree.get(KEY_ENTRY)? {
            Some(bytes) if bytes.len() == 16 => {
                let (a, b) = bytes.split_at(8);
                (u64::from_be_bytes(a.try_into().expect("8")), u64::from_be_bytes(b.try_into().expect("8")))
            }
            _ => {
                let key: (u64, u64) = (rand::random(), rand::random());
                let mut bytes = key.0.to_be_bytes().to_vec();
                bytes.extend_from_slice(&key.1.to_be_bytes());
                tree.insert(KEY_ENTRY, bytes)?;
                tree.flush()?;
                key
            }
        };
        let mut days: BTreeMap<NaiveDate, HashSet<u128>> = BTreeMap::new();
        let mut next_entry = 0;
        for item in tree.scan_prefix([DAY_PREFIX]) {
            let (k, v) = item?;
            let Some((day, entry)) = parse_entry_key(&k) else { continue };
            next_entry = next_entry.max(entry + 1);
            let ids = days.entry(day).or_default();
            ids.extend(v.chunks_exact(16).map(|c| u128::from_be_bytes(c.try_into().expect("16"))));
        }
        let index = Self { tree, key, days: Mutex::new(days), next_entry: AtomicU64::new(next_entry) };
        index.forget_before(keep_from)?;
        Ok(index)
    }

    pub fn hash(&self, school: &str, event_id: &str) -> IdHash {
        let mut h = SipHasher13::new_with_keys(self.key.0, self.key.1);
        // Length first, so that no two (school, id) pairs hash the same bytes.
        h.write_u64(school.len() as u64);
        h.write(school.as_bytes());
        h.write(event_id.as_bytes());
        IdHash(h.finish128().as_u128())
    }

    /// Whether an event with this id was accepted (on any day kept).
    pub fn contains(&self, id: IdHash) -> bool {
        self.days.lock().expect("not poisoned").values().any(|ids| ids.contains(&id.0))
    }

    /// Records ids the log now holds, with the day each event happened, as one entry per
    /// day (a request's events are almost all of one day).
    pub fn insert(&self, ids: &[(IdHash, NaiveDate)]) -> Result<(), store::Error> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut by_day: BTreeMap<NaiveDate, Vec<u8>> = BTreeMap::new();
        for (id, day) in ids {
            by_day.entry(*day).or_default().extend_from_slice(&id.0.to_be_bytes());
        }
        // Separate inserts, not a batch: each entry stands alone, and a sled batch takes a
        // process-wide lock that every flush waits on.
        for (day, bytes) in by_day {
            self.tree.insert(entry_key(day, self.next_entry.fetch_add(1, Ordering::Relaxed)), bytes)?;
        }
        let mut days = self.days.lock().expect("not poisoned");
        for (id, day) in ids {
            days.entry(*day).or_default().insert(id.0);
        }
        Ok(())
    }

    /// Drops the days before `day`, from memory and from sled; called on every request,
    /// so it returns at once when there is nothing that old.
    pub fn forget_before(&self, day: NaiveDate) -> Result<(), store::Error> {
        {
            let mut days = self.days.lock().expect("not poisoned");
            if days.first_key_value().is_none_or(|(first, _)| *first >= day) {
                return Ok(());
            }
            *days = days.split_off(&day);
        }
        // Plain removes, not a batch: see `insert`.
        for item in self.tree.range(vec![DAY_PREFIX]..entry_key(day, 0)) {
            self.tree.remove(item?.0)?;
        }
        Ok(())
    }

    /// Ids held in memory, for tests and metrics.
    pub fn len(&self) -> usize {
        self.days.lock().expect("not poisoned").values().map(HashSet::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2020, 3, d).unwrap()
    }

    fn tree(dir: &std::path::Path) -> store::Tree {
        store::Store::open(dir).unwrap().open_tree("accepted").unwrap()
    }

    #[test]
    fn ids_survive_a_reopen_and_days_before_the_horizon_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        {
            let index = AcceptedIds::open(tree(dir.path()), day(1)).unwrap();
            let (a, b) = (index.hash("S1", "e1"), index.hash("S1", "e2"));
            assert_ne!(a, b);
            assert_ne!(index.hash("S1", "e1"), index.hash("S2", "e1"), "the school is part of the id");
            assert_ne!(index.hash("S1/e", "1"), index.hash("S1", "e/1"), "no ambiguity at the separator");
            index.insert(&[(a, day(2)), (b, day(5))]).unwrap();
            assert!(index.contains(a) && index.contains(b));
            assert!(!index.contains(index.hash("S1", "e3")));
        }
        let index = AcceptedIds::open(tree(dir.path()), day(1)).unwrap();
        assert!(index.contains(index.hash("S1", "e1")), "same key after a reopen");
        assert_eq!(index.len(), 2);
        index.forget_before(day(3)).unwrap();
        assert!(!index.contains(index.hash("S1", "e1")));
        assert!(index.contains(index.hash("S1", "e2")));
        drop(index);
        let index = AcceptedIds::open(tree(dir.path()), day(1)).unwrap();
        assert_eq!(index.len(), 1, "forgotten in sled too");
        index.insert(&[(index.hash("S1", "e4"), day(5))]).unwrap();
        drop(index);
        let index = AcceptedIds::open(tree(dir.path()), day(4)).unwrap();
        assert_eq!(index.len(), 2, "a new entry after a reopen does not overwrite an old one");
    }

    #[test]
    fn entry_keys_read_back() {
        assert_eq!(parse_entry_key(&entry_key(day(9), 42)), Some((day(9), 42)));
        assert!(entry_key(day(9), u64::MAX) < entry_key(day(10), 0), "days sort before entries");
    }
}
