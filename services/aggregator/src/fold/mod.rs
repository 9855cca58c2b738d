//! Folding a batch of log records into the projections, in stages:
//!
//! - here, [`Folder`]: each record decoded (and validated again: nothing a client sent
//!   may stop the fold), skipped if below the position or in the quarantine, and handed
//!   to the report kind that folds it;
//! - `projection`: the seam a report kind plugs in by ([`projection::Projection`]);
//! - `school`: the schools' daily report, the first kind: persons' timelines and their
//!   units' tallies, alerts, roommates; `cache`: what it keeps in memory between
//!   checkpoints, and its bounds;
//! - `names`: units' display names, a second kind as small as one can be;
//! - `checkpoint`: what changed, stored in one atomic sled batch per unit (the school),
//!   then the log positions reached.

use std::collections::{BTreeMap, HashSet};

use chrono::FixedOffset;
use domain::Rules;
use eventlog::{Polled, TopicPartition};
use prost::Message;

use crate::AggregateError;
use crate::quarantine::{self, Quarantined};
use crate::store::Projections;

mod cache;
mod checkpoint;
mod inspection;
mod names;
mod projection;
mod school;

use checkpoint::{Checkpoints, Folded as CheckpointInput};
#[cfg(test)]
use projection::Staged;
use projection::{CacheBounds, Folded, Projection};

/// What one batch did, for metrics and logs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchOutcome {
    pub folded: u64,
    /// Same (school, event id) as an event folded before. A normal temperature reading
    /// is folded again instead (a no-op, see `Rules::refolds_as_no_op`) and counts as folded.
    pub duplicates: u64,
    /// Offsets below the stored position: re-delivered by the log, already folded.
    pub replayed: u64,
    /// Records that do not decode or validate (the intake never writes such records):
    /// put in the quarantine.
    pub unreadable: u64,
    /// Records skipped because they are in the quarantine.
    pub quarantined: u64,
}

/// What folding one record did.
enum Folding {
    Folded,
    Duplicate,
    Unreadable(String),
}

pub struct Folder {
    /// The report kinds, each folding the events it takes.
    kinds: Vec<Box<dyn Projection>>,
    /// Next offset to fold, per partition, as folded in memory.
    positions: BTreeMap<TopicPartition, u64>,
    /// Records taken from the log since the last checkpoint started (folded or not: their
    /// positions are not stored yet either).
    pending: u64,
    /// Stores what was folded; the positions stored.
    checkpoints: Checkpoints,
    /// Why a checkpoint or a fold failed, if one did: its changes had left memory (or
    /// half changed it), so nothing more may be folded or stored by this folder.
    failed: Option<String>,
    /// Positions of the records in the quarantine, skipped.
    in_quarantine: HashSet<(TopicPartition, u64)>,
    /// Unreadable records met since the last checkpoint, stored with it.
    new_quarantined: Vec<Quarantined>,
    /// Quarantine keys of records folded again, removed by the next checkpoint.
    released: Vec<Vec<u8>>,
}

impl Folder {
    pub fn new(projections: Projections, rules: Rules, zone: FixedOffset) -> Result<Self, AggregateError> {
        let positions = projections.positions()?;
        // Every report kind; a new one is added here.
        let kinds: Vec<Box<dyn Projection>> = vec![
            Box::new(school::SchoolFold::new(&projections, rules, zone)?),
            Box::new(names::NamesFold::new(&projections)),
            Box::new(inspection::InspectionFold::new(&projections, zone)),
        ];
        let checkpoints = Checkpoints::new(&projections, positions.clone());
        let projections_quarantine =
            projections.quarantined()?.into_iter().map(|q| (q.at(), q.offset)).collect::<HashSet<_>>();
        Ok(Self {
            kinds,
            positions,
            pending: 0,
            checkpoints,
            failed: None,
            in_quarantine: projections_quarantine,
            new_quarantined: Vec::new(),
            released: Vec::new(),
        })
    }

    /// Events folded for persons (or other subjects) not registered at their unit, by
    /// unit, since the last call.
    pub fn take_unrostered(&mut self) -> BTreeMap<String, u64> {
        let mut all = BTreeMap::new();
        for kind in &mut self.kinds {
            for (unit, n) in kind.take_unrostered() {
                *all.entry(unit).or_default() += n;
            }
        }
        all
    }

    /// Smaller caches than the defaults (tests make them tiny, so that they are dropped
    /// and reloaded all the time).
    pub fn with_cache_bounds(mut self, persons: usize, person_days: usize, units: usize) -> Self {
        let bounds = CacheBounds { subjects: persons, subject_days: person_days, units };
        self.kinds.iter_mut().for_each(|kind| kind.set_cache_bounds(bounds));
        self
    }

    /// Also writes every change to the outbox, from which [`crate::changelog`] publishes it.
    pub fn with_changelog(mut self) -> Self {
        self.checkpoints = self.checkpoints.with_outbox();
        self
    }

    /// Next offset to fold in `tp`, as stored with the state.
    pub fn position(&self, tp: &TopicPartition) -> Option<u64> {
        self.positions.get(tp).copied()
    }

    /// Next offset to fold per partition, as stored by the last checkpoint: how far the
    /// log may be committed.
    pub fn checkpointed(&self) -> &BTreeMap<TopicPartition, u64> {
        self.checkpoints.checkpointed()
    }

    /// Records taken from the log and not yet covered by a checkpoint.
    pub fn pending(&self) -> u64 {
        self.pending
    }

    /// Entries the next checkpoint would write, counting timelines and unit days (nearly
    /// all of them; key persons, alerts and the outbox are left out): its cost.
    pub fn dirty_entries(&self) -> usize {
        self.kinds.iter().map(|kind| kind.dirty_entries()).sum()
    }

    /// Whether the caches outgrew their bounds: only a checkpoint may drop them, since
    /// they hold what is not stored yet.
    pub fn caches_full(&self) -> bool {
        self.kinds.iter().any(|kind| kind.caches_full())
    }

    /// Folds `records` and stores the result with the new positions (a checkpoint).
    pub fn fold_batch(&mut self, records: &[Polled]) -> Result<BatchOutcome, AggregateError> {
        let outcome = self.fold_records(records)?;
        self.checkpoint()?;
        Ok(outcome)
    }

    /// Folds `records` into the state in memory; nothing is stored until a checkpoint
    /// ([`Self::checkpoint`], [`Self::start_checkpoint`]). A crash in between loses only
    /// what the log still holds past the stored positions.
    ///
    /// A record that does not decode goes to the quarantine with the next checkpoint. A
    /// record whose fold panics is a defect that may have left the state in memory half
    /// changed: the folder refuses to go on and answers [`AggregateError::Poisoned`] with
    /// the record, for the caller to quarantine it and start a new folder from the store,
    /// which skips it.
    pub fn fold_records(&mut self, records: &[Polled]) -> Result<BatchOutcome, AggregateError> {
        self.usable()?;
        let mut outcome = BatchOutcome::default();
        let mut folding = 0;
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.fold_each(records, &mut folding, &mut outcome)
        }));
        match result {
            Ok(folded) => folded.map(|()| outcome),
            Err(panic) => {
                let polled = &records[folding];
                let reason = format!("folding it panicked: {}", quarantine::panic_message(panic.as_ref()));
                self.failed = Some(format!("{} offset {}: {reason}", polled.at, polled.offset));
                let record = Quarantined::new(&polled.at, polled.offset, reason, polled.record.payload.clone());
                Err(AggregateError::Poisoned(Box::new(record)))
            }
        }
    }

    /// The loop of [`Self::fold_records`]; `folding` is the index of the record being
    /// folded, for a panic to name.
    fn fold_each(
        &mut self,
        records: &[Polled],
        folding: &mut usize,
        outcome: &mut BatchOutcome,
    ) -> Result<(), AggregateError> {
        for (index, polled) in records.iter().enumerate() {
            *folding = index;
            // Updated in place: the position's key is cloned once per partition, not per record.
            match self.positions.get_mut(&polled.at) {
                Some(next) if polled.offset < *next => {
                    outcome.replayed += 1;
                    continue;
                }
                Some(next) => *next = polled.offset + 1,
                None => {
                    self.positions.insert(polled.at.clone(), polled.offset + 1);
                }
            }
            self.pending += 1;
            if !self.in_quarantine.is_empty() && self.in_quarantine.contains(&(polled.at.clone(), polled.offset)) {
                outcome.quarantined += 1;
                continue;
            }
            match self.fold_one(&polled.at, &polled.record.payload, wire::acked_at(&polled.record.headers))? {
                Folding::Folded => outcome.folded += 1,
                Folding::Duplicate => outcome.duplicates += 1,
                Folding::Unreadable(reason) => {
                    tracing::error!(at = %polled.at, offset = polled.offset, %reason, "quarantining an unreadable record");
                    outcome.unreadable += 1;
                    let record = Quarantined::new(&polled.at, polled.offset, reason, polled.record.payload.clone());
                    self.new_quarantined.push(record);
                }
            }
        }
        Ok(())
    }

    /// Folds the records in the quarantine again, each in a folder of its own: one that
    /// folds leaves the quarantine with that folder's checkpoint; one that still fails
    /// stays, and its folder is dropped with whatever it half changed. How many left.
    /// Only where one process folds every partition (the embedded log): over Kafka the
    /// record's school may be folded by another aggregator now.
    pub fn refold_quarantined(
        projections: &Projections,
        rules: Rules,
        zone: FixedOffset,
    ) -> Result<usize, AggregateError> {
        let mut released = 0;
        for record in projections.quarantined()? {
            let mut folder = Folder::new(projections.clone(), rules, zone)?;
            let at = record.at();
            let folded =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| folder.fold_one(&at, &record.payload, None)));
            match folded {
                Ok(Ok(Folding::Folded | Folding::Duplicate)) => {
                    folder.released.push(record.key());
                    folder.pending += 1;
                    folder.checkpoint()?;
                    released += 1;
                    tracing::info!(%at, offset = record.offset, "a quarantined record folded; released");
                }
                Ok(Ok(Folding::Unreadable(reason))) => {
                    tracing::warn!(%at, offset = record.offset, %reason, "a quarantined record still does not decode")
                }
                Ok(Err(e)) => return Err(e),
                Err(panic) => tracing::warn!(
                    %at,
                    offset = record.offset,
                    reason = quarantine::panic_message(panic.as_ref()),
                    "a quarantined record still cannot be folded"
                ),
            }
        }
        Ok(released)
    }

    /// Folds one record's payload, acknowledged at `acked` (`None` if its record does not
    /// say; a quarantined record keeps its payload alone), unless its event was folded
    /// before.
    fn fold_one(&mut self, at: &TopicPartition, payload: &[u8], acked: Option<i64>) -> Result<Folding, AggregateError> {
        let envelope = match wire::pb::Event::decode(payload)
            .map_err(|e| e.to_string())
            .and_then(|pb| wire::event_from_proto(pb).map_err(|e| e.to_string()))
        {
            Ok(envelope) => envelope,
            Err(reason) => return Ok(Folding::Unreadable(reason)),
        };
        #[cfg(test)]
        if envelope.event_id.starts_with(tests::DEFECT) {
            panic!("a defect met folding {}", envelope.event_id);
        }
        // An event no kind folds (inspections, for now) is kept in the log only.
        let Some(kind) = self.kinds.iter_mut().find(|kind| kind.folds(&envelope.payload)) else {
            return Ok(Folding::Folded);
        };
        match kind.fold(&envelope, acked)? {
            Folded::Duplicate => Ok(Folding::Duplicate),
            Folded::New => {
                self.checkpoints.note_partition(&envelope.school, at.partition);
                Ok(Folding::Folded)
            }
        }
    }

    /// Stores everything folded since the last checkpoint with the positions it reaches,
    /// (see [`Self::start_checkpoint`]), and returns once it is stored. A person or unit day
    /// folded many times in between is written once: sled's cost is per entry written.
    pub fn checkpoint(&mut self) -> Result<(), AggregateError> {
        self.settle()?;
        if self.pending > 0 {
            self.start_checkpoint()?;
            self.settle()?;
        }
        Ok(())
    }

    /// Hands everything folded since the last checkpoint to a writer thread, which stores
    /// it while this folder folds on; at most one is under way, so this first waits for
    /// the one before. Readers of the projections see it once written;
    /// [`Self::checkpointed`] and the feeds' wake-up follow at [`Self::settle`].
    ///
    /// It is stored as one atomic sled batch per school, then the positions
    /// (the `checkpoint` module says why).
    pub fn start_checkpoint(&mut self) -> Result<(), AggregateError> {
        self.settle()?;
        if self.pending == 0 {
            return Ok(());
        }
        let folded = CheckpointInput {
            positions: &self.positions,
            quarantined: &mut self.new_quarantined,
            released: &mut self.released,
        };
        let started = self.checkpoints.start(&mut self.kinds, folded);
        self.unless_failed(started)?;
        self.pending = 0;
        Ok(())
    }

    /// Refuses to go on after a failed checkpoint.
    fn usable(&self) -> Result<(), AggregateError> {
        match &self.failed {
            Some(reason) => Err(AggregateError::CheckpointFailed(reason.clone())),
            None => Ok(()),
        }
    }

    /// Passes `result` on, remembering a failure so that nothing more is folded or stored.
    fn unless_failed<T>(&mut self, result: Result<T, AggregateError>) -> Result<T, AggregateError> {
        if let Err(e) = &result {
            self.failed = Some(e.to_string());
        }
        result
    }

    /// Whether a checkpoint is being stored.
    pub fn checkpoint_under_way(&self) -> bool {
        self.checkpoints.under_way()
    }

    /// Settles the checkpoint under way if it is stored already; does not wait.
    pub fn settle_if_stored(&mut self) -> Result<(), AggregateError> {
        if self.checkpoints.stored() { self.settle() } else { Ok(()) }
    }

    /// Drops a folder that may not go on (a fold failed), once the checkpoint it had under
    /// way, started before the failure, is stored.
    pub fn wait_for_writer(mut self) -> Result<(), AggregateError> {
        self.failed = None;
        self.settle()
    }

    /// Waits for the checkpoint under way, if any, to be stored.
    pub fn settle(&mut self) -> Result<(), AggregateError> {
        self.usable()?;
        let settled = self.checkpoints.settle();
        if !self.unless_failed(settled)? {
            return Ok(());
        }
        if self.pending > 0 {
            // Folded since: in memory only, so the caches stay whole.
            return Ok(());
        }
        // Everything is in sled now: the caches past their bounds may go.
        self.kinds.iter_mut().for_each(|kind| kind.drop_full());
        Ok(())
    }

    /// The units' batches a checkpoint would write now (tests stop halfway through them).
    #[cfg(test)]
    fn write_into(&mut self, staged: &mut Staged) -> Result<(), AggregateError> {
        self.checkpoints.stage(&mut self.kinds, &self.positions, staged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{self, UnitInfo};
    use domain::person::Stamp;
    use domain::{Day, Level, UnitKey};
    use eventlog::Record;
    use wire::pb;

    fn fever(event_id: &str, person: &str) -> pb::Event {
        reading(event_id, person, 38.5)
    }

    /// A morning temperature reading of `person` in S1.
    fn reading(event_id: &str, person: &str, celsius: f64) -> pb::Event {
        pb::Event {
            site: String::new(),
            event_id: event_id.into(),
            source: "test".into(),
            school: "S1".into(),
            occurred_at: "2020-02-26T07:40:00+08:00".into(),
            payload: Some(pb::event::Payload::Health(pb::HealthEvent {
                person_id: person.into(),
                kind: Some(pb::health_event::Kind::Temperature(pb::TemperatureTaken {
                    slot: pb::Slot::Morning as i32,
                    celsius,
                })),
            })),
        }
    }

    /// `person` registered as a student of class C1 in S1, on the fevers' day.
    fn registered(event_id: &str, person: &str) -> pb::Event {
        let placement = pb::Placement {
            department: "D1".into(),
            grade: "G1".into(),
            class_name: "C1".into(),
            ..Default::default()
        };
        pb::Event {
            occurred_at: "2020-02-26T07:00:00+08:00".into(),
            payload: Some(pb::event::Payload::Roster(pb::RosterEvent {
                person_id: person.into(),
                change: Some(pb::roster_event::Change::Registered(pb::Registered {
                    role: pb::Role::Student as i32,
                    placement: Some(placement),
                    city: "Wuhan".into(),
                    on_campus: true,
                })),
            })),
            ..fever(event_id, person)
        }
    }

    fn at(offset: u64, event: &pb::Event) -> Polled {
        let tp = TopicPartition { topic: "health".into(), partition: 0 };
        let record = Record {
            topic: tp.topic.clone(),
            key: event.school.clone(),
            headers: vec![],
            payload: event.encode_to_vec(),
        };
        Polled { at: tp, offset, record }
    }

    fn folder() -> (tempfile::TempDir, Projections, Folder) {
        let dir = tempfile::tempdir().unwrap();
        let projections = Projections::new(store::open(dir.path()).unwrap());
        let config = crate::FoldConfig::default();
        let folder = Folder::new(projections.clone(), config.rules, config.zone).unwrap();
        (dir, projections, folder)
    }

    #[test]
    fn an_event_id_is_folded_once_in_a_batch_across_batches_and_restarts() {
        let (_dir, projections, mut folder) = folder();
        let (e1, e2) = (fever("e1", "P1"), fever("e2", "P1"));
        let outcome = folder.fold_batch(&[at(0, &e1), at(1, &e1), at(2, &e2)]).unwrap();
        assert_eq!((outcome.folded, outcome.duplicates), (2, 1));
        let outcome = folder.fold_batch(&[at(3, &e2)]).unwrap();
        assert_eq!((outcome.folded, outcome.duplicates), (0, 1));
        let config = crate::FoldConfig::default();
        let mut restarted = Folder::new(projections.clone(), config.rules, config.zone).unwrap();
        let outcome = restarted.fold_batch(&[at(4, &e1), at(5, &fever("e3", "P1"))]).unwrap();
        assert_eq!((outcome.folded, outcome.duplicates), (1, 1));
        assert!(projections.tree.scan_prefix(b"e\0").next().is_none(), "no key per event");
    }

    #[test]
    fn folded_records_are_stored_at_a_checkpoint_and_folded_again_after_a_crash_before_it() {
        let (_dir, projections, mut folder) = folder();
        // Persons whose timeline is stored.
        let stored = |p: &Projections| {
            ["P1", "P2", "P3"].iter().filter(|person| !p.timeline("S1", person).unwrap().days.is_empty()).count()
        };
        folder.fold_records(&[at(0, &fever("e1", "P1")), at(1, &fever("e2", "P2"))]).unwrap();
        assert_eq!((folder.pending(), stored(&projections)), (2, 0), "nothing stored before the checkpoint");
        let tp = TopicPartition { topic: "health".into(), partition: 0 };
        assert_eq!(projections.positions().unwrap().get(&tp), None);

        // A crash: the new folder starts from what is stored, and the log delivers again.
        let config = crate::FoldConfig::default();
        let mut restarted = Folder::new(projections.clone(), config.rules, config.zone).unwrap();
        assert_eq!(restarted.position(&tp), None);
        let outcome = restarted.fold_records(&[at(0, &fever("e1", "P1")), at(1, &fever("e2", "P2"))]).unwrap();
        assert_eq!((outcome.folded, outcome.duplicates), (2, 0), "not seen: never stored");
        restarted.fold_records(&[at(2, &fever("e3", "P3"))]).unwrap();
        restarted.checkpoint().unwrap();
        assert_eq!((restarted.pending(), stored(&projections)), (0, 3));
        assert_eq!(projections.positions().unwrap().get(&tp), Some(&3));
        assert_eq!(restarted.checkpointed().get(&tp), Some(&3));
    }

    #[test]
    fn a_crash_between_the_schools_of_a_checkpoint_folds_every_record_once_after_it() {
        let in_school = |school: &str, event: pb::Event| pb::Event { school: school.into(), ..event };
        // S2 is in another city: nothing but S1's own batch can register Wuhan.
        let mut in_yichang = registered("r3", "P3");
        if let Some(pb::event::Payload::Roster(pb::RosterEvent {
            change: Some(pb::roster_event::Change::Registered(r)),
            ..
        })) = &mut in_yichang.payload
        {
            r.city = "Yichang".into();
        }
        let records: Vec<Polled> = [
            in_school("S1", registered("r1", "P1")),
            in_school("S1", registered("r2", "P2")),
            in_school("S2", in_yichang),
            in_school("S1", fever("e1", "P1")),
            in_school("S2", fever("e2", "P3")),
            in_school("S1", fever("e3", "P2")),
        ]
        .iter()
        .enumerate()
        .map(|(offset, event)| at(offset as u64, event))
        .collect();
        let units =
            [UnitKey::school("S1"), UnitKey::school("S2"), UnitKey { level: Level::Class, path: "S1/D1/G1/C1".into() }];
        let day = Day::from_ymd_opt(2020, 2, 26).unwrap();
        let tallies = |p: &Projections| units.iter().map(|u| p.tally_on(u, day).unwrap()).collect::<Vec<_>>();

        let (_clean_dir, clean, mut uninterrupted) = folder();
        uninterrupted.fold_batch(&records).unwrap();
        let expected = tallies(&clean);
        assert_eq!(expected[0].get(domain::tally::Measure::Fever), 2, "S1's two fevers, once each");
        assert_eq!(expected[1].get(domain::tally::Measure::Fever), 1);

        // The writer stores S1's batch, then the process dies: S2 and the positions are lost.
        let (_dir, projections, mut crashed) = folder();
        crashed.fold_records(&records).unwrap();
        let mut staged = Staged::default();
        crashed.write_into(&mut staged).unwrap();
        projections.tree.apply(staged.batches.remove("S1").expect("a batch of S1's entries")).unwrap();
        drop(crashed);

        let config = crate::FoldConfig::default();
        let mut restarted = Folder::new(projections.clone(), config.rules, config.zone).unwrap();
        let outcome = restarted.fold_batch(&records).unwrap();
        assert_eq!((outcome.folded, outcome.duplicates), (2, 4), "S1's four records were stored, S2's two not");
        assert_eq!(tallies(&projections), expected);
        // S1's person registered the city and the province: with S1, not on their own.
        for unit in [UnitKey::province(), UnitKey::city("Wuhan")] {
            assert!(clean.unit(&unit).unwrap().is_some());
            assert_eq!(projections.unit(&unit).unwrap(), clean.unit(&unit).unwrap(), "{unit}");
        }
    }

    #[test]
    fn an_alert_folded_before_its_persons_registration_goes_where_the_registration_places_them() {
        let (_dir, projections, mut folder) = folder();
        // The fever (health topic) is folded before the registration (roster topic).
        folder.fold_batch(&[at(0, &fever("e1", "P1")), at(1, &registered("r1", "P1"))]).unwrap();
        let alerts = projections.alerts().unwrap();
        let alert = &alerts.iter().find(|(a, _)| a.event_id == "e1").expect("the fever's alert").0;
        assert_eq!(alert.city, "Wuhan", "its city office hears of it");
        let units: Vec<String> = alert.units.iter().map(ToString::to_string).collect();
        assert!(units.contains(&"class:S1/D1/G1/C1".to_owned()), "{units:?}");
        // Someone never registered: the school's city, and the school alone.
        folder.fold_batch(&[at(2, &fever("e2", "P9"))]).unwrap();
        let alerts = projections.alerts().unwrap();
        let alert = &alerts.iter().find(|(a, _)| a.event_id == "e2").expect("the fever's alert").0;
        let units: Vec<String> = alert.units.iter().map(ToString::to_string).collect();
        assert_eq!(
            (alert.city.as_str(), units),
            ("Wuhan", vec!["province".into(), "city:Wuhan".into(), "school:S1".into()])
        );
    }

    #[test]
    fn persons_with_long_ids_alike_up_to_their_last_byte_are_folded_apart() {
        let (_dir, projections, mut folder) = folder();
        let (p1, p2) = ("P".repeat(40) + "1", "P".repeat(40) + "2");
        let records = [registered("r1", &p1), registered("r2", &p2), fever("e1", &p1), reading("n2", &p2, 36.6)];
        let records: Vec<Polled> = records.iter().enumerate().map(|(offset, e)| at(offset as u64, e)).collect();
        // In two batches: the second finds both persons in memory.
        folder.fold_batch(&records[..2]).unwrap();
        folder.fold_batch(&records[2..]).unwrap();

        let day = Day::from_ymd_opt(2020, 2, 26).unwrap();
        let tally = projections.tally_on(&UnitKey::school("S1"), day).unwrap();
        use domain::tally::Measure;
        assert_eq!((tally.get(Measure::Population), tally.get(Measure::Fever)), (2, 1));
        let id = |event_id| Stamp::new(0, event_id).tiebreak;
        assert!(projections.timeline("S1", &p1).unwrap().folded.contains(id("e1")));
        assert!(!projections.timeline("S1", &p2).unwrap().folded.contains(id("e1")));
    }

    #[test]
    fn a_normal_reading_delivered_again_is_folded_again_and_counts_once_without_its_id_kept() {
        let (_dir, projections, mut folder) = folder();
        let normal = reading("n1", "P1", 36.5);
        let outcome = folder.fold_batch(&[at(0, &registered("r1", "P1")), at(1, &normal), at(2, &normal)]).unwrap();
        assert_eq!((outcome.folded, outcome.duplicates), (3, 0), "folded again: a no-op");
        let config = crate::FoldConfig::default();
        let mut restarted = Folder::new(projections.clone(), config.rules, config.zone).unwrap();
        restarted.fold_batch(&[at(3, &normal)]).unwrap();

        let day = Day::from_ymd_opt(2020, 2, 26).unwrap();
        let tally = projections.tally_on(&UnitKey::school("S1"), day).unwrap();
        use domain::tally::Measure;
        assert_eq!((tally.get(Measure::CheckedMorning), tally.get(Measure::CheckedExpected)), (1, 1));
        assert_eq!(tally.get(Measure::Fever), 0);
        let timeline = projections.timeline("S1", "P1").unwrap();
        let id = |event_id| Stamp::new(0, event_id).tiebreak;
        assert!(timeline.folded.contains(id("r1")), "the registration's id is kept");
        assert!(!timeline.folded.contains(id("n1")), "the normal reading's is not");
    }

    #[test]
    fn a_checkpoint_stored_in_the_background_counts_once_settled_and_folding_goes_on_meanwhile() {
        let (_dir, projections, mut folder) = folder();
        let tp = TopicPartition { topic: "health".into(), partition: 0 };
        folder.fold_records(&[at(0, &fever("e1", "P1"))]).unwrap();
        folder.start_checkpoint().unwrap();
        assert!(folder.checkpoint_under_way());
        assert_eq!(folder.pending(), 0, "handed to the writer");
        // Folding goes on while it is stored; the checkpointed positions wait for it.
        folder.fold_records(&[at(1, &fever("e2", "P2"))]).unwrap();
        assert_eq!(folder.checkpointed().get(&tp), None);
        // The next checkpoint waits for the one under way, then stores what followed.
        folder.start_checkpoint().unwrap();
        assert_eq!(folder.checkpointed().get(&tp), Some(&1));
        folder.settle().unwrap();
        assert!(!folder.checkpoint_under_way());
        assert_eq!(folder.checkpointed().get(&tp), Some(&2));
        assert_eq!(projections.positions().unwrap().get(&tp), Some(&2));
        let stored = |person: &str| projections.timeline("S1", person).unwrap().days.len();
        assert_eq!((stored("P1"), stored("P2")), (1, 1));

        // A crash with a checkpoint never started: the records after it fold again.
        folder.fold_records(&[at(2, &fever("e3", "P3"))]).unwrap();
        let config = crate::FoldConfig::default();
        let mut restarted = Folder::new(projections.clone(), config.rules, config.zone).unwrap();
        assert_eq!(restarted.position(&tp), Some(2));
        let outcome = restarted.fold_batch(&[at(2, &fever("e3", "P3"))]).unwrap();
        assert_eq!((outcome.folded, outcome.duplicates), (1, 0));
    }

    #[test]
    fn units_are_registered_with_their_city_and_the_province_with_none() {
        let (_dir, projections, mut folder) = folder();
        folder.fold_batch(&[at(0, &registered("r1", "P1"))]).unwrap();
        let info = |unit: &str| projections.unit(&unit.parse().unwrap()).unwrap().expect("registered");
        assert_eq!(info("city:Wuhan"), UnitInfo { parent: Some("province".parse().unwrap()), city: "Wuhan".into() });
        // Every aggregator of a process registers the province: alike, whatever its schools.
        assert_eq!(info("province"), UnitInfo { parent: None, city: String::new() });
    }

    #[test]
    fn dirty_entries_count_what_the_next_checkpoint_writes() {
        let (_dir, projections, mut folder) = folder();
        let written =
            |p: &Projections| p.tree.iter().keys().filter(|k| matches!(k.as_ref().unwrap()[0], b't' | b'u')).count();
        let (r1, r2) = (registered("r1", "P1"), registered("r2", "P2"));
        folder.fold_records(&[at(0, &r1), at(1, &r2), at(2, &fever("e1", "P1"))]).unwrap();
        let entries = folder.dirty_entries();
        // Two timelines; the school, department, grade and class on that day.
        assert_eq!(entries, 2 + 4);
        // Folded again the same day: the same entries, nothing more to write.
        folder.fold_records(&[at(3, &fever("e2", "P2")), at(4, &fever("e3", "P1"))]).unwrap();
        assert_eq!(folder.dirty_entries(), entries);
        assert!(
            !crate::checkpoint_worth_it(&folder, std::time::Duration::from_secs(1)),
            "5 records for {entries} entries"
        );
        assert!(
            crate::checkpoint_worth_it(&folder, std::time::Duration::from_secs(61)),
            "a minute is the most it waits"
        );
        folder.checkpoint().unwrap();
        assert_eq!(written(&projections), entries);
        assert_eq!(folder.dirty_entries(), 0);
        folder.fold_records(&[at(5, &fever("e4", "P1"))]).unwrap();
        assert_eq!(folder.dirty_entries(), 1, "P1's timeline only: a fever again that morning changes no tally");
    }

    #[test]
    fn a_timeline_of_the_older_layout_is_read_and_rewritten_in_the_new_one() {
        let (_dir, projections, mut folder) = folder();
        folder.fold_batch(&[at(0, &fever("e1", "P1"))]).unwrap();
        // As a store written before `t` keys held it: the whole timeline under `p`.
        let timeline = projections.timeline("S1", "P1").unwrap();
        projections.tree.remove(store::timeline_key("S1/P1")).unwrap();
        projections.tree.insert(store::person_key("S1", "P1"), store::encode(&timeline)).unwrap();

        let config = crate::FoldConfig::default();
        let mut restarted = Folder::new(projections.clone(), config.rules, config.zone).unwrap();
        let outcome = restarted.fold_batch(&[at(1, &fever("e1", "P1")), at(2, &fever("e2", "P1"))]).unwrap();
        assert_eq!((outcome.folded, outcome.duplicates), (1, 1), "the ids came along");
        assert!(projections.tree.get(store::person_key("S1", "P1")).unwrap().is_none(), "the old key is gone");
        let now = projections.timeline("S1", "P1").unwrap();
        assert_eq!(now.folded.len(), 2);
        assert_eq!(now.days, timeline.days, "a second fever the same morning changes nothing of the day");
    }

    #[test]
    fn a_store_written_with_seen_keys_still_skips_what_they_name() {
        let (_dir, projections, _) = folder();
        projections.tree.insert(store::seen_key("S1", "e1"), &[]).unwrap();
        let config = crate::FoldConfig::default();
        let mut folder = Folder::new(projections.clone(), config.rules, config.zone).unwrap();
        let outcome = folder.fold_batch(&[at(0, &fever("e1", "P1")), at(1, &fever("e2", "P1"))]).unwrap();
        assert_eq!((outcome.folded, outcome.duplicates), (1, 1));
    }

    /// Event ids starting with this make the fold panic, as a defect would.
    pub(super) const DEFECT: &str = "defect-";

    fn fevers_in_s1(projections: &Projections) -> i32 {
        let day = Day::from_ymd_opt(2020, 2, 26).unwrap();
        projections.tally_on(&UnitKey::school("S1"), day).unwrap().get(domain::tally::Measure::Fever)
    }

    /// A fever with a travel history dated where no period can be added to it: what intake
    /// accepted before dates were bounded.
    fn poison(event_id: &str) -> pb::Event {
        pb::Event {
            payload: Some(pb::event::Payload::Movement(pb::MovementEvent {
                person_id: "P1".into(),
                kind: Some(pb::movement_event::Kind::TwoHistories(pb::TwoHistoriesDeclared {
                    kind: pb::HistoryKind::HistoryTravel as i32,
                    date: "+262142-12-31".into(),
                })),
            })),
            ..fever(event_id, "P1")
        }
    }

    #[test]
    fn an_unreadable_record_is_quarantined_with_its_position_and_the_fold_goes_on() {
        let (_dir, projections, mut folder) = folder();
        let records = [at(0, &registered("r1", "P1")), at(1, &poison("bad")), at(2, &fever("e1", "P1"))];
        let outcome = folder.fold_batch(&records).unwrap();
        assert_eq!((outcome.folded, outcome.unreadable), (2, 1));
        assert_eq!(fevers_in_s1(&projections), 1, "the record after it is folded");
        let quarantined = projections.quarantined().unwrap();
        assert_eq!(quarantined.len(), 1);
        assert_eq!((quarantined[0].topic.as_str(), quarantined[0].partition, quarantined[0].offset), ("health", 0, 1));
        assert!(quarantined[0].reason.contains("movement.two_histories.date"), "{}", quarantined[0].reason);
        assert_eq!(quarantined[0].payload, records[1].record.payload, "kept as the log holds it");

        // Stored with the positions past it: delivered again, it is not quarantined twice.
        let config = crate::FoldConfig::default();
        let mut restarted = Folder::new(projections.clone(), config.rules, config.zone).unwrap();
        let outcome = restarted.fold_batch(&[at(1, &poison("bad")), at(3, &fever("e2", "P1"))]).unwrap();
        assert_eq!((outcome.folded, outcome.replayed, outcome.unreadable), (1, 1, 0));
        assert_eq!(projections.quarantined_count(), 1);
        // Still unreadable by this release: it stays.
        assert_eq!(Folder::refold_quarantined(&projections, config.rules, config.zone).unwrap(), 0);
        assert_eq!(projections.quarantined_count(), 1);
    }

    #[test]
    fn a_record_whose_fold_panics_poisons_the_folder_and_is_skipped_by_the_next() {
        let (_dir, projections, mut folder) = folder();
        let records = [at(0, &registered("r1", "P1")), at(1, &fever("defect-1", "P1")), at(2, &fever("e1", "P1"))];
        let Err(AggregateError::Poisoned(record)) = folder.fold_records(&records) else {
            panic!("the panic is caught and names the record");
        };
        assert_eq!(record.offset, 1);
        assert!(record.reason.contains("a defect met folding defect-1"), "{}", record.reason);
        assert!(folder.fold_records(&records[2..]).is_err(), "a poisoned folder refuses to go on");
        folder.wait_for_writer().unwrap();

        // What the run loop does: quarantine it, start from the store, fold again.
        projections.quarantine(&record).unwrap();
        let config = crate::FoldConfig::default();
        let mut next = Folder::new(projections.clone(), config.rules, config.zone).unwrap();
        let outcome = next.fold_batch(&records).unwrap();
        assert_eq!((outcome.folded, outcome.quarantined), (2, 1));
        assert_eq!(fevers_in_s1(&projections), 1, "the registration and the fever after it, once each");
        // The defect is still there: refolding keeps it, and keeps the state as it was.
        assert_eq!(Folder::refold_quarantined(&projections, config.rules, config.zone).unwrap(), 0);
        assert_eq!(projections.quarantined_count(), 1);
        assert_eq!(fevers_in_s1(&projections), 1);
    }

    #[test]
    fn a_quarantined_record_that_now_folds_is_folded_once_and_released() {
        let (_dir, projections, mut folder) = folder();
        folder.fold_batch(&[at(0, &registered("r1", "P1"))]).unwrap();
        // Quarantined by an earlier release with a defect since fixed.
        let tp = TopicPartition { topic: "health".into(), partition: 0 };
        let record = Quarantined::new(&tp, 7, "folding it panicked".into(), fever("e1", "P1").encode_to_vec());
        projections.quarantine(&record).unwrap();
        let config = crate::FoldConfig::default();
        assert_eq!(Folder::refold_quarantined(&projections, config.rules, config.zone).unwrap(), 1);
        assert_eq!(projections.quarantined_count(), 0);
        assert_eq!(fevers_in_s1(&projections), 1);
        // Delivered again by the log later, it is a duplicate.
        let mut next = Folder::new(projections.clone(), config.rules, config.zone).unwrap();
        let outcome = next.fold_batch(&[at(7, &fever("e1", "P1"))]).unwrap();
        assert_eq!((outcome.folded, outcome.duplicates), (0, 1));
        assert_eq!(fevers_in_s1(&projections), 1);
    }
}
