//! Service-window inspections as a [`Projection`], the report kind beside the schools':
//! each hall's events kept whole as its [`HallLog`] (a set, so folding is order-free and
//! a re-delivery changes nothing), stored as one `H` record per hall, which the changelog
//! carries to every view. Reports are read off the logs (`reports::inspection`).

use std::collections::{BTreeMap, HashMap};

use chrono::FixedOffset;
use domain::inspection::HallLog;
use domain::person::Stamp;
use domain::{Day, Envelope, Payload};

use super::projection::{CacheBounds, Folded, Projection, Staged};
use crate::AggregateError;
use crate::store::{self, Projections};

pub(crate) struct InspectionFold {
    projections: Projections,
    zone: FixedOffset,
    /// Halls' logs as folded: kept across checkpoints, since a checkpoint is stored in the
    /// background while the fold goes on (the store may not hold the last one yet).
    logs: HashMap<String, HallLog>,
    /// Halls changed since the last checkpoint, with the earliest day of an event added.
    changed: BTreeMap<String, Day>,
    max_halls: usize,
    unrostered: BTreeMap<String, u64>,
}

impl InspectionFold {
    pub(crate) fn new(projections: &Projections, zone: FixedOffset) -> Self {
        Self {
            projections: projections.clone(),
            zone,
            logs: HashMap::new(),
            changed: BTreeMap::new(),
            max_halls: 100_000,
            unrostered: BTreeMap::new(),
        }
    }
}

impl Projection for InspectionFold {
    fn folds(&self, payload: &Payload) -> bool {
        matches!(payload, Payload::Inspection(_))
    }

    fn fold(&mut self, envelope: &Envelope, _acked: Option<i64>) -> Result<Folded, AggregateError> {
        let Payload::Inspection(event) = &envelope.payload else {
            unreachable!("the folder hands this fold only what `folds` takes")
        };
        let hall = &envelope.school;
        if !self.logs.contains_key(hall) {
            let stored = self.projections.hall_log(hall)?.unwrap_or_default();
            self.logs.insert(hall.clone(), stored);
        }
        let log = self.logs.get_mut(hall).expect("inserted above");
        let day = envelope.occurred_at.with_timezone(&self.zone).date_naive();
        let stamp = Stamp::new(envelope.occurred_at.timestamp_millis(), &envelope.event_id);
        if !log.insert(&envelope.event_id, stamp, day, event.clone()) {
            return Ok(Folded::Duplicate);
        }
        if log.latest_registration().is_none() {
            *self.unrostered.entry(hall.clone()).or_default() += 1;
        }
        let first = self.changed.entry(hall.clone()).or_insert(day);
        *first = (*first).min(day);
        Ok(Folded::New)
    }

    fn stage(&mut self, staged: &mut Staged) -> Result<(), AggregateError> {
        for (hall, day) in std::mem::take(&mut self.changed) {
            let log = &self.logs[&hall];
            staged.record(&hall, store::hall_log_key(&hall), store::encode(log));
            staged.mark(day, hall);
        }
        Ok(())
    }

    fn dirty_entries(&self) -> usize {
        self.changed.len()
    }

    fn caches_full(&self) -> bool {
        self.logs.len() > self.max_halls
    }

    fn drop_full(&mut self) {
        if self.caches_full() {
            self.logs.clear();
        }
    }

    fn set_cache_bounds(&mut self, bounds: CacheBounds) {
        self.max_halls = bounds.units;
    }

    fn take_unrostered(&mut self) -> BTreeMap<String, u64> {
        std::mem::take(&mut self.unrostered)
    }
}
