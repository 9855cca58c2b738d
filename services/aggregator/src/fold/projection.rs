//! The seam a report kind plugs into the fold by. The [`Folder`](super::Folder) owns what
//! every kind shares (log positions, decoding, the quarantine, checkpoints and the
//! outbox); a [`Projection`] owns one kind's events, its state in memory and its keys in
//! the store. The schools' daily report ([`super::school::SchoolFold`]) is the first; a
//! new kind (service-window inspections, migrant workers) is a new implementation listed
//! in [`super::Folder::new`], with no edit to the others.
//!
//! What every kind must keep, so that the fold stays exactly once and order-free:
//! - it skips an event it folded before (by the event's id, kept in its own state and
//!   stored with it), since the log delivers again what a crash left unstored;
//! - it writes each of its entries into the batch of the unit whose partition the event
//!   came from ([`Staged::batch`]): a unit's batch is stored atomically and the positions
//!   after every unit's (`checkpoint` says why);
//! - the records other instances' views need go through [`Staged::record`], which the
//!   changelog copies over Kafka.

use std::collections::{BTreeMap, BTreeSet};

use domain::{Day, Envelope, Payload};

use crate::AggregateError;

/// One report kind's fold.
pub(crate) trait Projection: Send {
    /// Whether this kind folds events with `payload` (exactly one kind folds each, or
    /// none: such an event is kept in the log and folded by nothing).
    fn folds(&self, payload: &Payload) -> bool;

    /// Folds one decoded event, acknowledged at `acked` (epoch millis, `None` when its
    /// record does not say); [`Folded::Duplicate`] if it was folded before.
    fn fold(&mut self, envelope: &Envelope, acked: Option<i64>) -> Result<Folded, AggregateError>;

    /// Puts everything changed since the last checkpoint into `staged`, and forgets it.
    fn stage(&mut self, staged: &mut Staged) -> Result<(), AggregateError>;

    /// Entries the next checkpoint would write (nearly all of them): its cost.
    fn dirty_entries(&self) -> usize;

    /// Whether its state in memory outgrew its bounds: only a checkpoint may drop it,
    /// since it holds what is not stored yet.
    fn caches_full(&self) -> bool;

    /// Drops the state in memory grown past its bounds, once everything is stored.
    fn drop_full(&mut self);

    /// Smaller memory bounds than the defaults (tests make them tiny).
    fn set_cache_bounds(&mut self, bounds: CacheBounds);

    /// Events folded, since the last call, about someone or something not on their unit's
    /// roster, by unit: for the operators' metrics.
    fn take_unrostered(&mut self) -> BTreeMap<String, u64>;
}

/// What folding one event did.
pub(crate) enum Folded {
    New,
    /// Folded before: nothing changed.
    Duplicate,
}

/// How much state a kind keeps in memory between checkpoints: subjects (persons, halls…),
/// their days, and units.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CacheBounds {
    pub subjects: usize,
    pub subject_days: usize,
    pub units: usize,
}

/// What a checkpoint stores: a batch per unit whose partition the changes came from (the
/// school for the schools' kind), and among the entries the unit records that the outbox
/// copies and the days whose reports changed.
#[derive(Default)]
pub(crate) struct Staged {
    pub(super) batches: BTreeMap<String, ::store::Batch>,
    /// Unit records: (unit, key, value); an empty value removes the key.
    pub(super) records: Vec<(String, Vec<u8>, Vec<u8>)>,
    /// (day, unit) whose reports changed: the feeds look at them again.
    pub(super) marks: BTreeSet<(Day, String)>,
}

impl Staged {
    /// The batch of `unit`'s entries that no other instance needs (a person's timeline).
    pub(crate) fn batch(&mut self, unit: &str) -> &mut ::store::Batch {
        if !self.batches.contains_key(unit) {
            self.batches.insert(unit.to_owned(), ::store::Batch::default());
        }
        self.batches.get_mut(unit).expect("inserted above")
    }

    /// A record every instance's view needs (a unit's tally, an alert): stored in `unit`'s
    /// batch and, over Kafka, copied to the changelog. An empty value removes the key.
    pub(crate) fn record(&mut self, unit: &str, key: Vec<u8>, value: Vec<u8>) {
        self.records.push((unit.to_owned(), key, value));
    }

    /// Tells the feeds that `unit`'s report of `day` changed.
    pub(crate) fn mark(&mut self, day: Day, unit: String) {
        self.marks.insert((day, unit));
    }
}
