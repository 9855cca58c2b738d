//! Records the fold could not fold, kept apart so that the fold goes on past them.
//!
//! A record lands here when it does not decode or validate (intake never writes such a
//! record: an older log, another writer, a defect), or when folding it panicked (a
//! defect). It is kept with its log position, the reason and its bytes, listed by
//! `GetStatus` and counted in `/metrics`, and never dropped silently. Every aggregator
//! folds its quarantine again once when it starts: after a release that fixes the defect,
//! the record is folded (out of order, which the fold does not mind) and leaves the
//! quarantine; still failing, it stays.
//!
//! Stored in the projection tree under `q`, key `topic/partition/offset` (both numbers
//! zero-padded, so the scan is in log order), value [`Quarantined`] (postcard).

use eventlog::TopicPartition;
use prost::Message;
use serde::{Deserialize, Serialize};
use wire::pb::QuarantinedRecord;

use crate::AggregateError;
use crate::store::{self, Projections};

/// A record kept out of the fold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quarantined {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
    /// Why it was not folded: the decoding error, or what the panic said.
    pub reason: String,
    /// When it was put here, in milliseconds since the Unix epoch.
    pub quarantined_at_ms: i64,
    /// The record's payload as the log holds it (the protobuf `Event`).
    pub payload: Vec<u8>,
}

impl Quarantined {
    pub fn new(at: &TopicPartition, offset: u64, reason: String, payload: Vec<u8>) -> Self {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        Self {
            topic: at.topic.clone(),
            partition: at.partition,
            offset,
            reason,
            quarantined_at_ms: now.map_or(0, |d| d.as_millis() as i64),
            payload,
        }
    }

    pub fn at(&self) -> TopicPartition {
        TopicPartition { topic: self.topic.clone(), partition: self.partition }
    }

    pub fn key(&self) -> Vec<u8> {
        key(&self.at(), self.offset)
    }
}

pub(crate) fn key(at: &TopicPartition, offset: u64) -> Vec<u8> {
    format!("q\0{}/{:010}/{offset:020}", at.topic, at.partition).into_bytes()
}

impl Projections {
    /// Puts `record` in the quarantine at once (not at a checkpoint: the folder that met
    /// it is about to be dropped).
    pub fn quarantine(&self, record: &Quarantined) -> Result<(), AggregateError> {
        self.tree.insert(record.key(), store::encode(record))?;
        self.tree.flush()?;
        Ok(())
    }

    /// Every record in the quarantine, in log order per partition.
    pub fn quarantined(&self) -> Result<Vec<Quarantined>, AggregateError> {
        self.tree
            .scan_prefix(b"q\0")
            .map(|item| {
                let (key, value) = item?;
                store::decode(&key, &value)
            })
            .collect()
    }

    /// How many records are in the quarantine.
    pub fn quarantined_count(&self) -> usize {
        self.tree.scan_prefix(b"q\0").count()
    }

    /// The first `limit` records in the quarantine, as `GetStatus` lists them.
    pub fn quarantine_listing(&self, limit: usize) -> Result<Vec<QuarantinedRecord>, AggregateError> {
        let mut out = Vec::new();
        for item in self.tree.scan_prefix(b"q\0").take(limit) {
            let (key, value) = item?;
            out.push(store::decode::<Quarantined>(&key, &value)?.listed());
        }
        Ok(out)
    }
}

impl Quarantined {
    /// As `GetStatus` lists it: without the payload, with its event's id and school when
    /// they decode (cut short when too long to be valid).
    fn listed(&self) -> QuarantinedRecord {
        let event = wire::pb::Event::decode(self.payload.as_slice()).unwrap_or_default();
        let short = |text: String| if text.len() > wire::MAX_CODE_BYTES { wire::quoted(&text) } else { text };
        let at = chrono::DateTime::from_timestamp_millis(self.quarantined_at_ms).unwrap_or_default();
        QuarantinedRecord {
            topic: self.topic.clone(),
            partition: self.partition,
            offset: self.offset,
            reason: self.reason.clone(),
            quarantined_at: at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            event_id: short(event.event_id),
            school: short(event.school),
        }
    }
}

/// What a panic said, for the quarantine's reason.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_owned()
    }
}
