//! Storing what the folder folded. A checkpoint has each report kind stage everything
//! changed since the last one into one atomic sled batch per unit whose partition it came
//! from (the school; each unit record also into the outbox when a changelog carries them
//! to the other instances), then a batch of the positions reached; a writer thread stores
//! them while folding goes on.
//!
//! A crash between the batches leaves some units stored and the positions before them:
//! folding again from there skips the records of a stored unit (each kind keeps the ids it
//! folded with the state they changed) and folds the others' once. Units share no entry:
//! cities and the province are summed when read, and their registry entries go with the
//! school that registered them (alike whoever writes them). One batch per unit rather than
//! one for all: the store wants its batches small (the `store` crate's doc says why).

use std::collections::{BTreeMap, HashMap};

use eventlog::TopicPartition;

use super::projection::{Projection, Staged};
use crate::AggregateError;
use crate::changelog::Change;
use crate::quarantine::Quarantined;
use crate::store::{self, Projections};

/// The folder's checkpoints: how its changes are encoded for the store, the one under
/// way, and the positions the last one stored.
pub(super) struct Checkpoints {
    store: Projections,
    /// Whether to leave what changed in the outbox for the changelog (Kafka mode, where
    /// every instance's view is built from all instances' changes).
    outbox: bool,
    /// The log partition of each unit folded, for the reach of its records.
    unit_partition: HashMap<String, u32>,
    /// A checkpoint that a writer thread is storing.
    in_flight: Option<InFlight>,
    /// Next offset to fold per partition as written by the last checkpoint settled: what a
    /// commit may claim (sled may be ahead while a checkpoint is under way).
    checkpointed: BTreeMap<TopicPartition, u64>,
}

/// A checkpoint on its way into sled, and the positions it stores.
struct InFlight {
    positions: BTreeMap<TopicPartition, u64>,
    writer: std::thread::JoinHandle<::store::Result<()>>,
}

/// What a checkpoint stores besides the report kinds' changes.
pub(super) struct Folded<'a> {
    /// Next offset to fold per partition, as folded in memory.
    pub(super) positions: &'a BTreeMap<TopicPartition, u64>,
    /// Unreadable records met since the last checkpoint.
    pub(super) quarantined: &'a mut Vec<Quarantined>,
    /// Quarantine keys of records folded again.
    pub(super) released: &'a mut Vec<Vec<u8>>,
}

impl Checkpoints {
    pub(super) fn new(store: &Projections, stored: BTreeMap<TopicPartition, u64>) -> Self {
        Self {
            store: store.clone(),
            outbox: false,
            unit_partition: HashMap::new(),
            in_flight: None,
            checkpointed: stored,
        }
    }

    pub(super) fn with_outbox(mut self) -> Self {
        self.outbox = true;
        self
    }

    /// Notes that `unit`'s records come from `partition`: the reach of its unit records.
    pub(super) fn note_partition(&mut self, unit: &str, partition: u32) {
        if self.unit_partition.get(unit) != Some(&partition) {
            self.unit_partition.insert(unit.to_owned(), partition);
        }
    }

    pub(super) fn checkpointed(&self) -> &BTreeMap<TopicPartition, u64> {
        &self.checkpointed
    }

    pub(super) fn under_way(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Whether the checkpoint under way is stored already (waiting would not block).
    pub(super) fn stored(&self) -> bool {
        self.in_flight.as_ref().is_some_and(|flight| flight.writer.is_finished())
    }

    /// Stages everything changed since the last checkpoint and hands it to a writer
    /// thread: the units' batches, then the positions with the quarantine. From here the
    /// changes have left memory: a failure loses them for this folder.
    pub(super) fn start(
        &mut self,
        kinds: &mut [Box<dyn Projection>],
        folded: Folded<'_>,
    ) -> Result<(), AggregateError> {
        let mut staged = Staged::default();
        self.stage(kinds, folded.positions, &mut staged)?;
        let batches = staged.batches;
        let mut positions = ::store::Batch::default();
        // The quarantine moves with the positions: a record is in it once folding has
        // passed it for good.
        for record in folded.quarantined.drain(..) {
            positions.insert(record.key(), store::encode(&record));
        }
        for key in folded.released.drain(..) {
            positions.remove(key);
        }
        for (tp, next) in folded.positions {
            if self.checkpointed.get(tp) != Some(next) {
                positions.insert(store::position_key(tp), &next.to_be_bytes());
            }
        }
        let tree = self.store.tree.clone();
        let writer = std::thread::Builder::new()
            .name("checkpoint".into())
            .spawn(move || {
                for batch in batches.into_values() {
                    tree.apply(batch)?;
                }
                tree.apply(positions)
            })
            .map_err(|e| AggregateError::CheckpointFailed(format!("no thread to write it: {e}")))?;
        self.in_flight = Some(InFlight { positions: folded.positions.clone(), writer });
        Ok(())
    }

    /// Waits for the checkpoint under way to be stored, then tells the store's readers;
    /// whether there was one.
    pub(super) fn settle(&mut self) -> Result<bool, AggregateError> {
        let Some(InFlight { positions, writer }) = self.in_flight.take() else { return Ok(false) };
        match writer.join() {
            Ok(written) => written?,
            Err(_) => return Err(AggregateError::CheckpointFailed("its writer panicked".into())),
        }
        self.store.written();
        self.checkpointed = positions;
        Ok(true)
    }

    /// Has every kind stage what changed since the last checkpoint into `staged`, by unit;
    /// then its unit records (and, over Kafka, their outbox copies) and marks.
    pub(super) fn stage(
        &mut self,
        kinds: &mut [Box<dyn Projection>],
        positions: &BTreeMap<TopicPartition, u64>,
        staged: &mut Staged,
    ) -> Result<(), AggregateError> {
        for kind in kinds {
            kind.stage(staged)?;
        }
        if !self.outbox {
            // These projections are the read side: tell the feeds which days changed.
            // Over Kafka the view marks them as it applies the changelog.
            for (day, unit) in std::mem::take(&mut staged.marks) {
                staged.batch(&unit).insert(store::mark_key(day, &unit), &store::mark_value());
            }
        }
        for (unit, key, value) in std::mem::take(&mut staged.records) {
            let change = self.outbox.then(|| self.change_of(&unit, positions, value.clone()));
            let batch = staged.batch(&unit);
            if let Some(change) = change {
                batch.insert(store::outbox_key(&key), store::encode(&change));
            }
            if value.is_empty() {
                batch.remove(key);
            } else {
                batch.insert(key, value);
            }
        }
        Ok(())
    }

    /// A unit record as the changelog carries it: tagged with how far its school's
    /// partition was folded, so that views can tell an older copy from a newer one.
    fn change_of(&self, unit: &str, positions: &BTreeMap<TopicPartition, u64>, value: Vec<u8>) -> Change {
        let partition = self.unit_partition.get(unit).copied().unwrap_or(0);
        let reach = positions
            .iter()
            .filter(|(tp, _)| tp.partition == partition)
            .map(|(tp, n)| (tp.topic.clone(), *n))
            .collect();
        Change { partition, reach, value }
    }
}

impl Drop for Checkpoints {
    /// A checkpoint under way is finished, not left running: a folder opened next on the
    /// same store must not read a school's entries while its batch is being written (a
    /// timeline from before it, a unit day from after).
    fn drop(&mut self) {
        if let Some(flight) = self.in_flight.take()
            && !matches!(flight.writer.join(), Ok(Ok(())))
        {
            tracing::error!("a checkpoint under way failed as the folder stopped; the store holds the one before");
        }
    }
}
