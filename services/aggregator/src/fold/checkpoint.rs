//! Storing what the folder folded. A checkpoint encodes everything changed since the last
//! one into one atomic sled batch per school (each unit record also into the outbox when a
//! changelog carries them to the other instances), then a batch of the positions reached;
//! a writer thread stores them while folding goes on.
//!
//! A crash between the batches leaves some schools stored and the positions before them:
//! folding again from there skips the records of a stored school (their ids are in its
//! timelines, and its units' days were stored with them) and folds the others' once.
//! Schools share no entry: cities and the province are summed when read, and their
//! registry entries go with the school that registered them (alike whoever writes them).
//! Small batches matter: sled 0.34 keeps every page a batch replaces until the batch ends.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use domain::alert::Alert;
use domain::{Rules, UnitKey};
use eventlog::TopicPartition;

use super::cache::Caches;
use crate::AggregateError;
use crate::changelog::Change;
use crate::quarantine::Quarantined;
use crate::store::{self, Projections};

/// The folder's checkpoints: how its changes are encoded for the store, the one under
/// way, and the positions the last one stored.
pub(super) struct Checkpoints {
    store: Projections,
    rules: Rules,
    /// Whether to leave what changed in the outbox for the changelog (Kafka mode, where
    /// every instance's view is built from all instances' changes).
    outbox: bool,
    /// The store held legacy `k` key-person entries when this folder started: a person
    /// written removes theirs (their history, `h`, replaces it).
    legacy_key_persons: bool,
    /// The log partition of each school folded, for the reach of its records.
    school_partition: HashMap<String, u32>,
    /// Scratch for encoding timelines (sled copies the bytes).
    encode_buf: Vec<u8>,
    /// A checkpoint that a writer thread is storing.
    in_flight: Option<InFlight>,
    /// Next offset to fold per partition as written by the last checkpoint settled: what a
    /// commit may claim (sled may be ahead while a checkpoint is under way).
    checkpointed: BTreeMap<TopicPartition, u64>,
}

/// A checkpoint on its way into sled, and the positions it stores.
struct InFlight {
    positions: BTreeMap<TopicPartition, u64>,
    writer: std::thread::JoinHandle<sled::Result<()>>,
}

/// What a checkpoint stores besides the caches' changes.
pub(super) struct Folded<'a> {
    /// Next offset to fold per partition, as folded in memory.
    pub(super) positions: &'a BTreeMap<TopicPartition, u64>,
    pub(super) alerts: &'a mut Vec<Alert>,
    /// Unreadable records met since the last checkpoint.
    pub(super) quarantined: &'a mut Vec<Quarantined>,
    /// Quarantine keys of records folded again.
    pub(super) released: &'a mut Vec<Vec<u8>>,
}

impl Checkpoints {
    pub(super) fn new(
        store: &Projections,
        rules: Rules,
        stored: BTreeMap<TopicPartition, u64>,
    ) -> Result<Self, AggregateError> {
        Ok(Self {
            store: store.clone(),
            rules,
            outbox: false,
            legacy_key_persons: store.has_legacy_key_persons()?,
            school_partition: HashMap::new(),
            encode_buf: Vec::new(),
            in_flight: None,
            checkpointed: stored,
        })
    }

    pub(super) fn with_outbox(mut self) -> Self {
        self.outbox = true;
        self
    }

    /// Notes that `school`'s records come from `partition`: the reach of its unit records.
    pub(super) fn note_partition(&mut self, school: &str, partition: u32) {
        if self.school_partition.get(school) != Some(&partition) {
            self.school_partition.insert(school.to_owned(), partition);
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

    /// Encodes everything changed since the last checkpoint and hands it to a writer
    /// thread: the schools' batches, then the positions with the quarantine. From here the
    /// changes have left memory: a failure loses them for this folder.
    pub(super) fn start(&mut self, caches: &mut Caches, folded: Folded<'_>) -> Result<(), AggregateError> {
        let mut batches = SchoolBatches::default();
        self.encode(caches, folded.alerts, folded.positions, &mut batches)?;
        let mut positions = sled::Batch::default();
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
                for batch in batches.0.into_values() {
                    eventlog::apply_sled_batch(&tree, batch)?;
                }
                eventlog::apply_sled_batch(&tree, positions)
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

    /// Puts everything changed since the last checkpoint into `batches`, by school.
    pub(super) fn encode(
        &mut self,
        caches: &mut Caches,
        alerts: &mut Vec<Alert>,
        positions: &BTreeMap<TopicPartition, u64>,
        batches: &mut SchoolBatches,
    ) -> Result<(), AggregateError> {
        // Unit records (and alerts), which the outbox copies: (school, key, value).
        let mut changed = Vec::new();
        let (rules, store, encode_buf) = (&self.rules, &self.store, &mut self.encode_buf);
        let legacy_key_persons = self.legacy_key_persons;
        caches.persons.take_changed(|slot| {
            let key = slot.key.as_str();
            let (school, person) = key.split_once('/').expect("keys are school/person");
            crate::timeline_codec::encode(&slot.timeline, encode_buf);
            let batch = batches.of(school);
            batch.insert(store::timeline_key(key), encode_buf.as_slice());
            if std::mem::take(&mut slot.from_legacy_key) {
                batch.remove(store::person_key_joined(key));
            }
            // The key-person lists as of any day: the person's entry from each day on.
            let now = slot.timeline.key_person_history(school, person, rules);
            let before = match slot.key_person.take() {
                Some(known) => known,
                None => store.key_person_history(school, person)?,
            };
            if before != now {
                // An empty value removes the person from the lists.
                let value = if now.is_empty() { Vec::new() } else { store::encode(&now) };
                changed.push((school.to_owned(), store::key_person_history_key(school, person), value));
            }
            let legacy = store::key_person_key(school, person);
            if legacy_key_persons && store.tree.contains_key(&legacy)? {
                changed.push((school.to_owned(), legacy, Vec::new()));
            }
            slot.key_person = Some(now);
            Ok::<_, AggregateError>(())
        })?;
        caches.pairings.take_changed(|key, paired| {
            let (school, person) = key.split_once('/').expect("keys are school/person");
            batches.of(school).insert(store::roommates_key(school, person), store::encode(paired));
        });
        let school_of = |unit: &UnitKey| unit.path.split('/').next().unwrap_or_default().to_owned();
        let mut marks = BTreeSet::new();
        caches.units.take_changed(|unit, day, tally| {
            marks.insert((day, school_of(unit)));
            changed.push((school_of(unit), store::unit_day_key(unit, day), store::encode(tally)));
        });
        for alert in alerts.drain(..) {
            changed.push((
                alert.school.clone(),
                store::alert_key(&alert.school, &alert.event_id),
                store::encode(&alert),
            ));
        }
        if !self.outbox {
            // These projections are the read side: tell the feeds which days changed.
            // Over Kafka the view marks them as it applies the changelog.
            for (day, school) in marks {
                batches.of(&school).insert(store::mark_key(day, &school), &store::mark_value());
            }
        }
        for (school, unit, info) in caches.units.take_registered() {
            changed.push((school, store::unit_key(&unit), store::encode(&info)));
        }
        for (school, key, value) in changed {
            let change = self.outbox.then(|| self.change_of(&school, positions, value.clone()));
            let batch = batches.of(&school);
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
    fn change_of(&self, school: &str, positions: &BTreeMap<TopicPartition, u64>, value: Vec<u8>) -> Change {
        let partition = self.school_partition.get(school).copied().unwrap_or(0);
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

/// A checkpoint's entries, one sled batch per school.
#[derive(Default)]
pub(super) struct SchoolBatches(pub(super) BTreeMap<String, sled::Batch>);

impl SchoolBatches {
    fn of(&mut self, school: &str) -> &mut sled::Batch {
        if !self.0.contains_key(school) {
            self.0.insert(school.to_owned(), sled::Batch::default());
        }
        self.0.get_mut(school).expect("inserted above")
    }
}
