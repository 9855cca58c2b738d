//! Units' display names as a [`Projection`]: the second report kind's way in, beside the
//! schools' daily report. Each unit's names are a last-writer-wins register stamped with
//! the naming event's time, so folding is order-free and folding an event again changes
//! nothing; stored as `N` records, which the changelog carries to every view.

use std::collections::{BTreeMap, HashMap};

use domain::event::UnitFact;
use domain::person::Stamp;
use domain::{Envelope, Payload, UnitKey};

use super::projection::{CacheBounds, Folded, Projection, Staged};
use crate::AggregateError;
use crate::store::{self, NamedUnit, Projections};

pub(crate) struct NamesFold {
    projections: Projections,
    /// Named since the last checkpoint, with the school whose batch stores it.
    changed: HashMap<UnitKey, (String, NamedUnit)>,
    /// The stamps held, kept across checkpoints: a checkpoint is stored in the background
    /// while the fold goes on, so the store may not hold the last one yet.
    held: HashMap<UnitKey, Stamp>,
    max_units: usize,
}

impl NamesFold {
    pub(crate) fn new(projections: &Projections) -> Self {
        Self { projections: projections.clone(), changed: HashMap::new(), held: HashMap::new(), max_units: 1_000_000 }
    }
}

impl Projection for NamesFold {
    fn folds(&self, payload: &Payload) -> bool {
        matches!(payload, Payload::Unit(UnitFact::Named { .. }))
    }

    fn fold(&mut self, envelope: &Envelope, _acked: Option<i64>) -> Result<Folded, AggregateError> {
        let Payload::Unit(UnitFact::Named { unit, names }) = &envelope.payload else {
            unreachable!("the folder hands this fold only what `folds` takes")
        };
        let stamp = Stamp::new(envelope.occurred_at.timestamp_millis(), &envelope.event_id);
        let held = match self.held.get(unit) {
            Some(stamp) => Some(*stamp),
            None => self.projections.named_unit(unit)?.map(|named| named.stamp),
        };
        match held {
            // The same naming again (a re-delivery): its register already holds it.
            Some(held) if held == stamp => Ok(Folded::Duplicate),
            // A later naming is held: this one is folded and changes nothing.
            Some(held) if held > stamp => Ok(Folded::New),
            _ => {
                let named = NamedUnit { names: names.clone(), stamp };
                self.held.insert(unit.clone(), stamp);
                self.changed.insert(unit.clone(), (envelope.school.clone(), named));
                Ok(Folded::New)
            }
        }
    }

    fn stage(&mut self, staged: &mut Staged) -> Result<(), AggregateError> {
        for (unit, (school, named)) in self.changed.drain() {
            staged.record(&school, store::unit_names_key(&unit), store::encode(&named));
        }
        Ok(())
    }

    fn dirty_entries(&self) -> usize {
        self.changed.len()
    }

    fn caches_full(&self) -> bool {
        self.held.len() > self.max_units
    }

    fn drop_full(&mut self) {
        if self.caches_full() {
            self.held.clear();
        }
    }

    fn set_cache_bounds(&mut self, bounds: CacheBounds) {
        self.max_units = bounds.units;
    }

    fn take_unrostered(&mut self) -> BTreeMap<String, u64> {
        BTreeMap::new()
    }
}
