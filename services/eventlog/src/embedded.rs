//! The embedded log: one sled tree per topic partition, keyed by big-endian offset, on
//! the local disk. Appends are flushed before they return, so they survive a crash.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::{Appended, EventLog, LogConsumer, LogError, Polled, PositionLookup, Record, TopicPartition, partition_for};

#[derive(Clone)]
pub struct EmbeddedLog {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    partitions: u32,
    /// Next offset per partition; the lock also orders concurrent appends.
    next: Mutex<HashMap<TopicPartition, u64>>,
    /// Bumped after every durable append so that waiting consumers wake.
    appended: watch::Sender<u64>,
}

impl std::fmt::Debug for EmbeddedLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedLog").field("partitions", &self.inner.partitions).finish()
    }
}

fn tree_name(tp: &TopicPartition) -> String {
    format!("log/{}/{}", tp.topic, tp.partition)
}

impl EmbeddedLog {
    /// Opens (or creates) the log under `dir` with `partitions` partitions per topic. The
    /// partition count is fixed at creation: reopening with another count is refused,
    /// because it would send a school's events to a different partition.
    pub fn open(dir: &Path, partitions: u32) -> Result<Self, LogError> {
        let db = sled::open(dir)?;
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
        let mut next = HashMap::new();
        for name in db.tree_names() {
            let Some(tp) = parse_tree_name(&name) else { continue };
            let tree = db.open_tree(&name)?;
            let end = match tree.last()? {
                Some((k, _)) => offset_of(&k, &tp)? + 1,
                None => 0,
            };
            next.insert(tp, end);
        }
        let (appended, _) = watch::channel(0);
        Ok(Self { inner: Arc::new(Inner { db, partitions, next: Mutex::new(next), appended }) })
    }

    pub fn partitions(&self) -> u32 {
        self.inner.partitions
    }
}

fn parse_tree_name(name: &[u8]) -> Option<TopicPartition> {
    let name = std::str::from_utf8(name).ok()?.strip_prefix("log/")?;
    let (topic, partition) = name.rsplit_once('/')?;
    Some(TopicPartition { topic: topic.to_owned(), partition: partition.parse().ok()? })
}

fn offset_of(key: &[u8], at: &TopicPartition) -> Result<u64, LogError> {
    let bytes: [u8; 8] =
        key.try_into().map_err(|_| LogError::Corrupt { at: at.clone(), reason: "offset key is not 8 bytes".into() })?;
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
        {
            let mut next = inner.next.lock().expect("log offsets lock poisoned");
            let mut batches: HashMap<TopicPartition, sled::Batch> = HashMap::new();
            for record in &records {
                let tp = TopicPartition {
                    topic: record.topic.clone(),
                    partition: partition_for(&record.key, inner.partitions),
                };
                let offset = next.entry(tp.clone()).or_insert(0);
                let value = postcard::to_stdvec(record)
                    .map_err(|e| LogError::Corrupt { at: tp.clone(), reason: e.to_string() })?;
                batches.entry(tp.clone()).or_default().insert(&offset.to_be_bytes(), value);
                out.push(Appended { partition: tp.partition, offset: *offset });
                *offset += 1;
            }
            for (tp, batch) in batches {
                inner.db.open_tree(tree_name(&tp))?.apply_batch(batch)?;
            }
        }
        // Durable before anyone is told: one flush covers every append before it.
        inner.db.flush_async().await?;
        inner.appended.send_modify(|n| *n += 1);
        Ok(out)
    }

    fn subscribe(&self, _group: &str, positions: PositionLookup) -> Result<EmbeddedConsumer, LogError> {
        // One process owns the embedded log, so every consumer is given every partition.
        Ok(EmbeddedConsumer {
            log: self.clone(),
            positions,
            cursor: HashMap::new(),
            wake: self.inner.appended.subscribe(),
        })
    }

    fn end_offsets(&self) -> Result<Vec<(TopicPartition, u64)>, LogError> {
        let next = self.inner.next.lock().expect("log offsets lock poisoned");
        let mut out: Vec<_> = next.iter().map(|(tp, n)| (tp.clone(), *n)).collect();
        out.sort();
        Ok(out)
    }
}

pub struct EmbeddedConsumer {
    log: EmbeddedLog,
    positions: PositionLookup,
    cursor: HashMap<TopicPartition, u64>,
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
            let tree = self.log.inner.db.open_tree(tree_name(&tp))?;
            let mut last = from;
            for item in tree.range(from.to_be_bytes()..end.to_be_bytes()).take(max - out.len()) {
                let (k, v) = item?;
                let offset = offset_of(&k, &tp)?;
                let record: Record = postcard::from_bytes(&v)
                    .map_err(|e| LogError::Corrupt { at: tp.clone(), reason: e.to_string() })?;
                out.push(Polled { at: tp.clone(), offset, record });
                last = offset + 1;
            }
            self.cursor.insert(tp, last);
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

    #[test]
    fn reopening_with_another_partition_count_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(EmbeddedLog::open(dir.path(), 4).unwrap());
        let err = EmbeddedLog::open(dir.path(), 8).unwrap_err();
        assert!(err.to_string().contains("has 4 partitions, not 8"), "{err}");
    }
}
