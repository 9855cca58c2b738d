//! The embedded log: sled on the local disk, one tree per topic partition. Appends are
//! flushed before they return, so they survive a crash.
//!
//! A tree holds *segments*: one sled entry per run of consecutive records of one append,
//! keyed by the big-endian offset of its first record (see [`segment`]). A sled insert
//! costs far more than the bytes it carries (a leaf splits every few inserts), so writing
//! one entry per few dozen records instead of one per record is most of the log's speed.
//! Consumers see a record only once the flush that made it durable has returned.
//!
//! Logs written by earlier versions (one entry per record, trees `log/<topic>/<n>`) are
//! rewritten into segments when opened.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::{Appended, EventLog, LogConsumer, LogError, Polled, PositionLookup, Record, TopicPartition, partition_for};

/// A segment is closed once its encoded records reach this size, so that a sled leaf of
/// segments stays well under sled's blob threshold (segment size / 4 = 128 KiB).
const SEGMENT_BYTES: usize = 6 * 1024;

#[derive(Clone)]
pub struct EmbeddedLog {
    inner: Arc<Inner>,
    /// The partitions this handle's consumers read (all, unless made by [`Self::share`]).
    share: Share,
}

/// Partitions `p` with `p % of == index`: one member's part of the log, as a member of a
/// Kafka consumer group is assigned part of a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Share {
    index: u32,
    of: u32,
}

impl Share {
    const ALL: Share = Share { index: 0, of: 1 };

    fn holds(self, tp: &TopicPartition) -> bool {
        tp.partition % self.of == self.index
    }
}

struct Inner {
    db: sled::Db,
    partitions: u32,
    /// Next offset per partition and the partition trees; the lock also orders
    /// concurrent appends.
    writer: Mutex<Writer>,
    /// Next offset per partition of what is durable: what consumers may read.
    durable: Mutex<HashMap<TopicPartition, u64>>,
    /// Bumped after every durable append so that waiting consumers wake.
    appended: watch::Sender<u64>,
    /// One flush at a time (group commit). sled 0.34 deadlocks when many flushes wait
    /// on its I/O pool while a batch waits for its global lock: a flush holds that lock
    /// shared while it waits for a buffer write that no pool thread is free to do.
    /// The value is the count of appends the last flush covered.
    flushed: tokio::sync::Mutex<u64>,
}

#[derive(Default)]
struct Writer {
    next: HashMap<TopicPartition, u64>,
    trees: HashMap<TopicPartition, sled::Tree>,
    /// Appends applied to sled so far.
    applied: u64,
}

impl std::fmt::Debug for EmbeddedLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedLog").field("partitions", &self.inner.partitions).field("share", &self.share).finish()
    }
}

fn tree_name(tp: &TopicPartition) -> String {
    format!("seg/{}/{}", tp.topic, tp.partition)
}

/// Trees of the earlier, one-record-per-entry format.
const LEGACY_PREFIX: &str = "log/";

impl EmbeddedLog {
    /// Opens (or creates) the log under `dir` with `partitions` partitions per topic. The
    /// partition count is fixed at creation: reopening with another count is refused,
    /// because it would send a school's events to a different partition.
    pub fn open(dir: &Path, partitions: u32) -> Result<Self, LogError> {
        let db = crate::open_sled(dir)?;
        let stored = db.get("meta/partitions")?.map(|v| u32::from_be_bytes(v.as_ref().try_into().unwrap_or([0; 4])));
        match stored {
            Some(n) if n != partitions => {
                return Err(LogError::Config(format!("log at {} has {n} partitions, not {partitions}", dir.display())));
            }
            Some(_) => {}
            None => {
                db.insert("meta/partitions", &partitions.to_be_bytes())?;
                db.flush()?;
            }
        }
        for name in db.tree_names() {
            if let Some(tp) = parse_tree_name(&name, LEGACY_PREFIX) {
                migrate_legacy(&db, &name, &tp)?;
            }
        }
        let mut writer = Writer::default();
        for name in db.tree_names() {
            let Some(tp) = parse_tree_name(&name, "seg/") else { continue };
            let tree = db.open_tree(&name)?;
            let end = match tree.last()? {
                Some((k, v)) => offset_of(&k, &tp)? + segment::count(&v).ok_or_else(|| corrupt(&tp, "bad segment"))?,
                None => 0,
            };
            writer.next.insert(tp.clone(), end);
            writer.trees.insert(tp, tree);
        }
        let durable = Mutex::new(writer.next.clone());
        let (appended, _) = watch::channel(0);
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                partitions,
                writer: Mutex::new(writer),
                durable,
                appended,
                flushed: tokio::sync::Mutex::new(0),
            }),
            share: Share::ALL,
        })
    }

    pub fn partitions(&self) -> u32 {
        self.inner.partitions
    }

    /// The same log, whose consumers read (and whose `end_offsets` give) only the
    /// partitions `p` with `p % of == index`: `of` aggregators in this process, one per
    /// `index`, fold the log in parallel, each a disjoint set of schools. Appends are
    /// unchanged.
    pub fn share(&self, index: u32, of: u32) -> Self {
        assert!(index < of, "share {index} of {of}: the index must be below the count");
        Self { inner: self.inner.clone(), share: Share { index, of } }
    }

    fn tree(&self, tp: &TopicPartition) -> Result<sled::Tree, LogError> {
        Ok(self.inner.db.open_tree(tree_name(tp))?)
    }
}

fn corrupt(at: &TopicPartition, reason: &str) -> LogError {
    LogError::Corrupt { at: at.clone(), reason: reason.to_owned() }
}

/// Rewrites a partition of the one-record-per-entry format into segments, then drops it.
/// Starting over from an empty segment tree makes a migration cut short by a crash safe
/// to run again.
fn migrate_legacy(db: &sled::Db, name: &[u8], tp: &TopicPartition) -> Result<(), LogError> {
    let legacy = db.open_tree(name)?;
    let target = db.open_tree(tree_name(tp))?;
    target.clear()?;
    let mut batch = sled::Batch::default();
    let mut open: Option<(u64, segment::Builder)> = None;
    for item in legacy.iter() {
        let (k, v) = item?;
        let offset = offset_of(&k, tp)?;
        let record: Record = postcard::from_bytes(&v).map_err(|e| corrupt(tp, &e.to_string()))?;
        // A segment holds consecutive offsets only.
        if let Some((first, builder)) = open.take_if(|(first, b)| *first + b.len() != offset || b.full()) {
            batch.insert(&first.to_be_bytes(), builder.finish());
        }
        open.get_or_insert_with(|| (offset, segment::Builder::default())).1.push(&record);
    }
    if let Some((first, builder)) = open {
        batch.insert(&first.to_be_bytes(), builder.finish());
    }
    target.apply_batch(batch)?;
    db.flush()?;
    db.drop_tree(name)?;
    db.flush()?;
    Ok(())
}

fn parse_tree_name(name: &[u8], prefix: &str) -> Option<TopicPartition> {
    let name = std::str::from_utf8(name).ok()?.strip_prefix(prefix)?;
    let (topic, partition) = name.rsplit_once('/')?;
    Some(TopicPartition { topic: topic.to_owned(), partition: partition.parse().ok()? })
}

fn offset_of(key: &[u8], at: &TopicPartition) -> Result<u64, LogError> {
    let bytes: [u8; 8] = key.try_into().map_err(|_| corrupt(at, "offset key is not 8 bytes"))?;
    Ok(u64::from_be_bytes(bytes))
}

impl EventLog for EmbeddedLog {
    type Consumer = EmbeddedConsumer;

    async fn append(&self, records: Vec<Record>) -> Result<Vec<Appended>, LogError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let inner = &self.inner;
        let mut out = Vec::with_capacity(records.len());
        // Where each partition's records start, in the order first seen.
        let mut parts: Vec<(TopicPartition, Vec<&Record>)> = Vec::new();
        for record in &records {
            let partition = partition_for(&record.key, inner.partitions);
            let slot = match parts.iter().position(|(tp, _)| tp.partition == partition && tp.topic == record.topic) {
                Some(slot) => slot,
                None => {
                    parts.push((TopicPartition { topic: record.topic.clone(), partition }, Vec::new()));
                    parts.len() - 1
                }
            };
            parts[slot].1.push(record);
        }
        let (reached, mine) = {
            let mut writer = inner.writer.lock().expect("log writer lock poisoned");
            let mut next_of = HashMap::with_capacity(parts.len());
            for (tp, part) in &parts {
                if !writer.trees.contains_key(tp) {
                    let tree = self.tree(tp)?;
                    writer.trees.insert(tp.clone(), tree);
                }
                let start = writer.next.get(tp).copied().unwrap_or(0);
                let mut batch = sled::Batch::default();
                let mut first = start;
                let mut builder = segment::Builder::default();
                for record in part {
                    if builder.full() {
                        let n = builder.len();
                        batch.insert(&first.to_be_bytes(), std::mem::take(&mut builder).finish());
                        first += n;
                    }
                    builder.push(record);
                }
                let end = first + builder.len();
                batch.insert(&first.to_be_bytes(), builder.finish());
                writer.trees[tp].apply_batch(batch)?;
                writer.next.insert(tp.clone(), end);
                next_of.insert(tp.clone(), start);
            }
            // Offsets in the order the records came.
            for record in &records {
                let partition = partition_for(&record.key, inner.partitions);
                let tp = TopicPartition { topic: record.topic.clone(), partition };
                let offset = next_of.get_mut(&tp).expect("every partition was written");
                out.push(Appended { partition, offset: *offset });
                *offset += 1;
            }
            writer.applied += 1;
            (writer.next.clone(), writer.applied)
        };
        // Durable before anyone is told: one flush covers every append applied before it
        // starts, so an append a flush begun after it covered needs no flush of its own.
        {
            let mut flushed = inner.flushed.lock().await;
            if *flushed < mine {
                let covers = inner.writer.lock().expect("log writer lock poisoned").applied;
                inner.db.flush_async().await?;
                *flushed = covers;
            }
        }
        {
            let mut durable = inner.durable.lock().expect("log durable lock poisoned");
            for (tp, end) in reached {
                let known = durable.entry(tp).or_insert(0);
                *known = (*known).max(end);
            }
        }
        inner.appended.send_modify(|n| *n += 1);
        Ok(out)
    }

    fn subscribe(&self, _group: &str, positions: PositionLookup) -> Result<EmbeddedConsumer, LogError> {
        // One process owns the embedded log, so every consumer is given every partition of
        // its handle's share, whatever its group.
        Ok(EmbeddedConsumer {
            log: self.clone(),
            positions,
            cursor: HashMap::new(),
            trees: HashMap::new(),
            wake: self.inner.appended.subscribe(),
        })
    }

    /// The next offset of every partition, counting only what is durable.
    fn end_offsets(&self) -> Result<Vec<(TopicPartition, u64)>, LogError> {
        let durable = self.inner.durable.lock().expect("log durable lock poisoned");
        let mut out: Vec<_> =
            durable.iter().filter(|(tp, _)| self.share.holds(tp)).map(|(tp, n)| (tp.clone(), *n)).collect();
        out.sort();
        Ok(out)
    }
}

pub struct EmbeddedConsumer {
    log: EmbeddedLog,
    positions: PositionLookup,
    cursor: HashMap<TopicPartition, u64>,
    trees: HashMap<TopicPartition, sled::Tree>,
    wake: watch::Receiver<u64>,
}

impl EmbeddedConsumer {
    fn read_available(&mut self, max: usize) -> Result<Vec<Polled>, LogError> {
        let mut out = Vec::new();
        let ends = self.log.end_offsets()?;
        for (tp, end) in ends {
            if out.len() >= max {
                break;
            }
            let positions = &self.positions;
            let from = *self.cursor.entry(tp.clone()).or_insert_with(|| positions(&tp).unwrap_or(0));
            if from >= end {
                continue;
            }
            if !self.trees.contains_key(&tp) {
                let tree = self.log.tree(&tp)?;
                self.trees.insert(tp.clone(), tree);
            }
            let tree = &self.trees[&tp];
            // The segment holding `from` starts at or before it.
            let start = match tree.range(..=from.to_be_bytes()).next_back() {
                Some(item) => offset_of(&item?.0, &tp)?,
                None => from,
            };
            let until = end.min(from + (max - out.len()) as u64);
            let mut next = from;
            for item in tree.range(start.to_be_bytes()..until.to_be_bytes()) {
                let (k, v) = item?;
                next = segment::read(&tp, offset_of(&k, &tp)?, &v, next, until, &mut out)?;
            }
            self.cursor.insert(tp, next);
        }
        Ok(out)
    }
}

impl LogConsumer for EmbeddedConsumer {
    async fn poll(&mut self, max: usize, wait: Duration) -> Result<Vec<Polled>, LogError> {
        self.wake.borrow_and_update();
        let records = self.read_available(max)?;
        if !records.is_empty() {
            return Ok(records);
        }
        // Nothing yet: sleep until an append lands or the wait runs out.
        let _ = tokio::time::timeout(wait, self.wake.changed()).await;
        self.read_available(max)
    }

    fn commit(&mut self, _positions: &[(TopicPartition, u64)]) -> Result<(), LogError> {
        Ok(())
    }
}

/// The encoding of a segment: a format byte (1), the record count, then per record the
/// key, the headers (or 0: the same as the record before), and the payload; lengths and
/// counts are LEB128 varints. The topic is the tree's.
mod segment {
    use super::{LogError, Polled, Record, TopicPartition, corrupt};

    const FORMAT: u8 = 1;

    #[derive(Default)]
    pub(super) struct Builder {
        body: Vec<u8>,
        count: u64,
        last_headers: Option<Vec<(String, String)>>,
    }

    impl Builder {
        pub(super) fn len(&self) -> u64 {
            self.count
        }

        pub(super) fn full(&self) -> bool {
            self.body.len() >= super::SEGMENT_BYTES
        }

        pub(super) fn push(&mut self, record: &Record) {
            put_bytes(&mut self.body, record.key.as_bytes());
            if self.last_headers.as_ref() == Some(&record.headers) {
                put_varint(&mut self.body, 0);
            } else {
                put_varint(&mut self.body, record.headers.len() as u64 + 1);
                for (name, value) in &record.headers {
                    put_bytes(&mut self.body, name.as_bytes());
                    put_bytes(&mut self.body, value.as_bytes());
                }
                self.last_headers = Some(record.headers.clone());
            }
            put_bytes(&mut self.body, &record.payload);
            self.count += 1;
        }

        pub(super) fn finish(self) -> Vec<u8> {
            let mut out = Vec::with_capacity(self.body.len() + 11);
            out.push(FORMAT);
            put_varint(&mut out, self.count);
            out.extend_from_slice(&self.body);
            out
        }
    }

    /// How many records a segment holds.
    pub(super) fn count(bytes: &[u8]) -> Option<u64> {
        let mut rest = bytes.strip_prefix(&[FORMAT])?;
        get_varint(&mut rest)
    }

    /// Appends to `out` the records of the segment starting at offset `first` whose
    /// offsets are in `from..until`; returns the offset after the last one read (`from`
    /// if none was).
    pub(super) fn read(
        tp: &TopicPartition,
        first: u64,
        bytes: &[u8],
        from: u64,
        until: u64,
        out: &mut Vec<Polled>,
    ) -> Result<u64, LogError> {
        let bad = || corrupt(tp, &format!("segment at {first} does not decode"));
        let mut rest = bytes.strip_prefix(&[FORMAT]).ok_or_else(bad)?;
        let count = get_varint(&mut rest).ok_or_else(bad)?;
        let mut headers: Vec<(String, String)> = Vec::new();
        let mut next = from;
        for offset in first..(first + count).min(until) {
            let key = get_bytes(&mut rest).ok_or_else(bad)?;
            let marker = get_varint(&mut rest).ok_or_else(bad)?;
            if marker > 0 {
                headers.clear();
                for _ in 1..marker {
                    let name = get_str(&mut rest).ok_or_else(bad)?;
                    let value = get_str(&mut rest).ok_or_else(bad)?;
                    headers.push((name.to_owned(), value.to_owned()));
                }
            }
            let payload = get_bytes(&mut rest).ok_or_else(bad)?;
            if offset < from {
                continue;
            }
            let key = std::str::from_utf8(key).map_err(|_| bad())?.to_owned();
            let record = Record { topic: tp.topic.clone(), key, headers: headers.clone(), payload: payload.to_vec() };
            out.push(Polled { at: tp.clone(), offset, record });
            next = offset + 1;
        }
        Ok(next)
    }

    fn put_varint(out: &mut Vec<u8>, mut value: u64) {
        while value >= 0x80 {
            out.push((value as u8) | 0x80);
            value >>= 7;
        }
        out.push(value as u8);
    }

    fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
        put_varint(out, bytes.len() as u64);
        out.extend_from_slice(bytes);
    }

    fn get_varint(rest: &mut &[u8]) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, tail) = rest.split_first()?;
            *rest = tail;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Some(value);
            }
        }
        None
    }

    fn get_bytes<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
        let len = usize::try_from(get_varint(rest)?).ok()?;
        if rest.len() < len {
            return None;
        }
        let (bytes, tail) = rest.split_at(len);
        *rest = tail;
        Some(bytes)
    }

    fn get_str<'a>(rest: &mut &'a [u8]) -> Option<&'a str> {
        std::str::from_utf8(get_bytes(rest)?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(topic: &str, key: &str, payload: &str) -> Record {
        Record {
            topic: topic.into(),
            key: key.into(),
            headers: vec![("kind".into(), topic.into())],
            payload: payload.as_bytes().to_vec(),
        }
    }

    #[tokio::test]
    async fn a_key_keeps_its_order_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = EmbeddedLog::open(dir.path(), 4).unwrap();
            let appended = log.append(vec![record("health", "S1", "a"), record("health", "S1", "b")]).await.unwrap();
            assert_eq!(appended[0].partition, appended[1].partition);
            assert_eq!(appended[1].offset, appended[0].offset + 1);
        }
        let log = EmbeddedLog::open(dir.path(), 4).unwrap();
        log.append(vec![record("health", "S1", "c")]).await.unwrap();
        let mut consumer = log.subscribe("g", Arc::new(|_| None)).unwrap();
        let polled = consumer.poll(10, Duration::from_millis(10)).await.unwrap();
        let payloads: Vec<&[u8]> = polled.iter().map(|p| p.record.payload.as_slice()).collect();
        assert_eq!(payloads, [b"a", b"b", b"c"]);
        assert_eq!(polled.iter().map(|p| p.offset).collect::<Vec<_>>(), [0, 1, 2]);
    }

    #[tokio::test]
    async fn a_consumer_starts_where_its_positions_say() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(dir.path(), 1).unwrap();
        log.append(vec![record("t", "k", "0"), record("t", "k", "1"), record("t", "k", "2")]).await.unwrap();
        let mut consumer = log.subscribe("g", Arc::new(|_| Some(2))).unwrap();
        let polled = consumer.poll(10, Duration::from_millis(10)).await.unwrap();
        assert_eq!(polled.len(), 1);
        assert_eq!(polled[0].record.payload, b"2");
    }

    #[tokio::test]
    async fn a_waiting_consumer_wakes_on_append() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(dir.path(), 2).unwrap();
        let mut consumer = log.subscribe("g", Arc::new(|_| None)).unwrap();
        let writer = log.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            writer.append(vec![record("t", "k", "x")]).await.unwrap();
        });
        let polled = consumer.poll(10, Duration::from_secs(30)).await.unwrap();
        assert_eq!(polled.len(), 1);
    }

    fn numbered(n: usize) -> Vec<Record> {
        (0..n)
            .map(|i| record(if i % 3 == 0 { "roster" } else { "health" }, &format!("S{}", i % 5), &format!("{i:0200}")))
            .collect()
    }

    /// Polls `max` at a time until nothing is left.
    async fn drain(consumer: &mut EmbeddedConsumer, max: usize) -> Vec<Polled> {
        let mut all = Vec::new();
        loop {
            let polled = consumer.poll(max, Duration::from_millis(1)).await.unwrap();
            if polled.is_empty() {
                return all;
            }
            assert!(polled.len() <= max);
            all.extend(polled);
        }
    }

    /// Every record comes back once, with the offset its append answered, in append order
    /// per partition, whatever the poll size cuts through.
    async fn assert_reads_back(log: &EmbeddedLog, written: &[(Record, Appended)]) {
        for max in [1, 7, 100, 4096] {
            let mut consumer = log.subscribe("g", Arc::new(|_| None)).unwrap();
            let polled = drain(&mut consumer, max).await;
            assert_eq!(polled.len(), written.len(), "poll size {max}");
            let mut expected: Vec<(TopicPartition, u64, &Record)> = written
                .iter()
                .map(|(r, a)| (TopicPartition { topic: r.topic.clone(), partition: a.partition }, a.offset, r))
                .collect();
            expected.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
            let mut got: Vec<(TopicPartition, u64, &Record)> =
                polled.iter().map(|p| (p.at.clone(), p.offset, &p.record)).collect();
            got.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
            assert_eq!(got, expected, "poll size {max}");
        }
    }

    #[tokio::test]
    async fn many_records_span_segments_and_read_back_from_any_position() {
        let dir = tempfile::tempdir().unwrap();
        let mut written = Vec::new();
        {
            let log = EmbeddedLog::open(dir.path(), 3).unwrap();
            for chunk in numbered(2_000).chunks(600) {
                let appended = log.append(chunk.to_vec()).await.unwrap();
                written.extend(chunk.iter().cloned().zip(appended));
            }
            assert_reads_back(&log, &written).await;
        }
        // Reopened: the ends are where they were, and appends continue from there.
        let log = EmbeddedLog::open(dir.path(), 3).unwrap();
        let more = numbered(50);
        let appended = log.append(more.clone()).await.unwrap();
        written.extend(more.into_iter().zip(appended));
        assert_reads_back(&log, &written).await;
        let total: u64 = log.end_offsets().unwrap().iter().map(|(_, n)| n).sum();
        assert_eq!(total, 2_050);
        // A consumer told to start in the middle of a segment starts exactly there.
        let tp = TopicPartition { topic: "health".into(), partition: written[1].1.partition };
        let mut consumer = log.subscribe("g", Arc::new(|_| Some(37))).unwrap();
        let polled = drain(&mut consumer, 10).await;
        let first = polled.iter().filter(|p| p.at == tp).map(|p| p.offset).min();
        assert_eq!(first, Some(37));
    }

    #[tokio::test]
    async fn shares_split_the_partitions_and_together_read_everything_once() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(dir.path(), 5).unwrap();
        let written = log.append(numbered(500)).await.unwrap();
        let mut seen = Vec::new();
        for index in 0..2 {
            let share = log.share(index, 2);
            let ends = share.end_offsets().unwrap();
            assert!(!ends.is_empty() && ends.iter().all(|(tp, _)| tp.partition % 2 == index), "{ends:?}");
            let mut consumer = share.subscribe("g", Arc::new(|_| None)).unwrap();
            let polled = drain(&mut consumer, 64).await;
            assert!(polled.iter().all(|p| p.at.partition % 2 == index));
            seen.extend(polled.into_iter().map(|p| (p.at.partition, p.offset)));
        }
        seen.sort_unstable();
        let mut expected: Vec<(u32, u64)> = written.iter().map(|a| (a.partition, a.offset)).collect();
        expected.sort_unstable();
        assert_eq!(seen, expected);
    }

    #[tokio::test]
    async fn a_log_of_the_earlier_format_is_rewritten_into_segments() {
        let dir = tempfile::tempdir().unwrap();
        let records = numbered(300);
        let mut written = Vec::new();
        {
            // One entry per record, keyed by offset, as the log used to be written.
            let db = sled::open(dir.path()).unwrap();
            db.insert("meta/partitions", &2u32.to_be_bytes()).unwrap();
            let mut next: HashMap<TopicPartition, u64> = HashMap::new();
            for record in &records {
                let tp = TopicPartition { topic: record.topic.clone(), partition: partition_for(&record.key, 2) };
                let offset = next.entry(tp.clone()).or_insert(0);
                let tree = db.open_tree(format!("log/{}/{}", tp.topic, tp.partition)).unwrap();
                tree.insert(offset.to_be_bytes(), postcard::to_stdvec(record).unwrap()).unwrap();
                written.push((record.clone(), Appended { partition: tp.partition, offset: *offset }));
                *offset += 1;
            }
            db.flush().unwrap();
        }
        let log = EmbeddedLog::open(dir.path(), 2).unwrap();
        assert!(log.inner.db.tree_names().iter().all(|n| !n.starts_with(b"log/")));
        assert_reads_back(&log, &written).await;
        let more = numbered(10);
        let appended = log.append(more.clone()).await.unwrap();
        written.extend(more.into_iter().zip(appended));
        assert_reads_back(&log, &written).await;
    }

    #[test]
    fn reopening_with_another_partition_count_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(EmbeddedLog::open(dir.path(), 4).unwrap());
        let err = EmbeddedLog::open(dir.path(), 8).unwrap_err();
        assert!(err.to_string().contains("has 4 partitions, not 8"), "{err}");
    }
}
