//! The schools' daily report as a [`Projection`]: each person event folded into the
//! person's timeline and their units' tallies ([`domain::delta`]), its alert raised and
//! its roommates told ([`domain::roommates`]); stored as timelines, unit days, key-person
//! histories, roommate pairings and alerts (`store` has the keys).

use std::collections::BTreeMap;

use chrono::FixedOffset;
use domain::alert::{Alert, AlertKind};
use domain::delta::UnitDelta;
use domain::person::Stamp;
use domain::roommates;
use domain::timeline::{DayChange, Timeline};
use domain::{Day, Envelope, Fact, Level, Payload, Rules, Tally, UnitKey};

use super::cache::Caches;
use super::projection::{CacheBounds, Folded, Projection, Staged};
use crate::AggregateError;
use crate::store::{self, Projections};

pub(crate) struct SchoolFold {
    projections: Projections,
    rules: Rules,
    zone: FixedOffset,
    /// Timelines, unit tallies and roommate pairings in memory.
    caches: Caches,
    /// The store holds `e` keys (folded event ids) written before the ids moved into the
    /// timelines: they are still asked, so an upgraded store skips what it folded.
    legacy_seen: bool,
    /// The store held legacy `k` key-person entries when this fold started: a person
    /// written removes theirs (their history, `h`, replaces it).
    legacy_key_persons: bool,
    /// Scratch for encoding timelines (sled copies the bytes).
    encode_buf: Vec<u8>,
    /// Alerts raised since the last checkpoint.
    alerts: Vec<Alert>,
    /// Events folded for persons not registered at their school, by school, since
    /// [`Projection::take_unrostered`] was last called.
    unrostered: BTreeMap<String, u64>,
}

impl SchoolFold {
    pub(crate) fn new(projections: &Projections, rules: Rules, zone: FixedOffset) -> Result<Self, AggregateError> {
        let legacy_seen = projections.tree.scan_prefix(b"e\0").next().transpose()?.is_some();
        let caches = Caches::new(projections, projections.has_legacy_timelines()?);
        Ok(Self {
            projections: projections.clone(),
            rules,
            zone,
            caches,
            legacy_seen,
            legacy_key_persons: projections.has_legacy_key_persons()?,
            encode_buf: Vec::new(),
            alerts: Vec::new(),
            unrostered: BTreeMap::new(),
        })
    }

    fn fold_person(
        &mut self,
        envelope: &Envelope,
        person_id: &str,
        fact: &Fact,
        stamp: Stamp,
        acked: Option<i64>,
    ) -> Result<(), AggregateError> {
        let school = envelope.school.as_str();
        let day = envelope.occurred_at.with_timezone(&self.zone).date_naive();
        self.fold_fact(school, person_id, day, fact, stamp, acked)?;
        // As folded, for the metrics (the reports judge on the day's end, in any order).
        if self.timeline(school, person_id)?.days.get(&day).is_some_and(|e| e.state.registration.value.is_none()) {
            *self.unrostered.entry(school.to_owned()).or_default() += 1;
        }
        self.raise_alert(envelope, person_id, day, fact)?;
        self.share_with_roommates(school, person_id, day, fact, stamp)
    }

    /// An event the offices must hear of at once becomes an alert record, published to
    /// them by the feeds without waiting for the day's close.
    fn raise_alert(&mut self, envelope: &Envelope, person: &str, day: Day, fact: &Fact) -> Result<(), AggregateError> {
        let rules = self.rules;
        let school = envelope.school.as_str();
        // The day's entry exists: the fact was just folded into it.
        let Some(entry) = self.timeline(school, person)?.days.get(&day) else { return Ok(()) };
        let Some(kind) = AlertKind::of(fact, &entry.state, &rules) else { return Ok(()) };
        let (city, units) = self.alert_place(school, person, day)?;
        self.alerts.push(Alert {
            event_id: envelope.event_id.clone(),
            kind,
            school: school.to_owned(),
            city,
            person: person.to_owned(),
            occurred_at: envelope.occurred_at,
            units,
        });
        Ok(())
    }

    /// Where an alert about `person` on `day` goes: their city and units as of that day;
    /// not registered (yet: events of one person travel on several topics), the school's
    /// city as registered and the school alone, never a unit with an empty code.
    fn alert_place(&mut self, school: &str, person: &str, day: Day) -> Result<(String, Vec<UnitKey>), AggregateError> {
        let timeline = self.timeline(school, person)?;
        let entry = timeline.days.range(..=day).next_back().map(|(_, e)| e);
        let (city, placement) = match entry.and_then(|e| Some((e.city()?.to_owned(), e.state.placement.value.clone())))
        {
            Some(registered) => registered,
            None => (self.projections.city_of(school).unwrap_or_default(), Default::default()),
        };
        let units = UnitKey::for_person(&city, school, &placement);
        Ok((city, units))
    }

    /// Alerts raised before their person's registration was folded (it came later in the
    /// same checkpoint, on another topic) go where the registration places them.
    fn place_unplaced_alerts(&mut self) -> Result<(), AggregateError> {
        for at in 0..self.alerts.len() {
            if !self.alerts[at].city.is_empty() {
                continue;
            }
            let alert = &self.alerts[at];
            let (school, person) = (alert.school.clone(), alert.person.clone());
            let day = alert.occurred_at.with_timezone(&self.zone).date_naive();
            let (city, units) = self.alert_place(&school, &person, day)?;
            (self.alerts[at].city, self.alerts[at].units) = (city, units);
        }
        Ok(())
    }

    /// Folds one fact into one person's timeline and the units they count in.
    fn fold_fact(
        &mut self,
        school: &str,
        person: &str,
        day: Day,
        fact: &Fact,
        stamp: Stamp,
        acked: Option<i64>,
    ) -> Result<(), AggregateError> {
        let changes = self.caches.persons.apply(school, person, day, fact, stamp, acked, &self.rules)?;
        for change in changes {
            self.apply_change(&change)?;
        }
        Ok(())
    }

    /// The person's timeline, loaded if not in memory.
    fn timeline(&mut self, school: &str, person: &str) -> Result<&mut Timeline, AggregateError> {
        self.caches.persons.timeline(school, person)
    }

    /// Does what the roommate rule ([`domain::roommates`]) asks of `person`'s fact: their
    /// signs folded into each roommate's timeline, or a pairing stored and each side's
    /// signs folded into the other's.
    fn share_with_roommates(
        &mut self,
        school: &str,
        person: &str,
        day: Day,
        fact: &Fact,
        stamp: Stamp,
    ) -> Result<(), AggregateError> {
        match roommates::sharing(person, day, fact, &self.rules) {
            None => {}
            Some(roommates::Sharing::Signs { onset }) => {
                let paired = self.caches.pairings.of(school, person)?.clone();
                let recipients = roommates::recipients(person, &paired, self.timeline(school, person)?);
                for roommate in recipients {
                    self.fold_fact(school, &roommate, day, &roommates::signs(onset), stamp, None)?;
                }
            }
            Some(roommates::Sharing::Pairing { roommates: named }) => {
                let mine = roommates::own_abnormal_days(self.timeline(school, person)?);
                for roommate in named {
                    self.caches.pairings.pair(school, roommate, person)?;
                    self.caches.pairings.pair(school, person, roommate)?;
                    let theirs = roommates::own_abnormal_days(self.timeline(school, roommate)?);
                    for onset in mine.iter().copied() {
                        self.fold_fact(school, roommate, onset, &roommates::signs(onset), stamp, None)?;
                    }
                    for onset in theirs {
                        self.fold_fact(school, person, onset, &roommates::signs(onset), stamp, None)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Moves one person's contribution on one day (and its state part on the days after
    /// it, up to the person's next entry) from the old units to the new ones.
    fn apply_change(&mut self, change: &DayChange) -> Result<(), AggregateError> {
        for UnitDelta { units, delta, counts_there } in change.unit_deltas() {
            self.add_to_units(units, change, &delta, counts_there)?;
        }
        Ok(())
    }

    /// Adds `delta` to each of a person's `units` (province down); `register`:
    /// they count there now, so a unit new to the store is registered with their city.
    fn add_to_units(
        &mut self,
        units: &[UnitKey],
        change: &DayChange,
        delta: &Tally,
        register: bool,
    ) -> Result<(), AggregateError> {
        // A person's units are the province, their city, their school, then below it; a
        // person not on the roster counts in their school alone, which registers nothing
        // (its city is not known).
        let path = |at: usize| units.get(at).map_or("", |u| u.path.as_str());
        let registered = units.first().is_some_and(|u| u.level == Level::Province);
        let registry = (register && registered).then(|| (path(1), path(2)));
        for unit in units {
            self.caches.units.add(unit, change, delta, registry)?;
        }
        Ok(())
    }
}

impl Projection for SchoolFold {
    fn folds(&self, payload: &Payload) -> bool {
        matches!(payload, Payload::Person { .. })
    }

    fn fold(&mut self, envelope: &Envelope, acked: Option<i64>) -> Result<Folded, AggregateError> {
        let Payload::Person { person_id, fact } = &envelope.payload else {
            unreachable!("the folder hands this fold only what `folds` takes")
        };
        let school = envelope.school.as_str();
        let stamp = Stamp::new(envelope.occurred_at.timestamp_millis(), &envelope.event_id);
        // A (school, event id) folded before is skipped: folding twice is not a no-op
        // (a re-folded isolation shares signs again, a gate pass re-alerts). The ids
        // live in the event's own person's timeline, which folding loads anyway.
        // A normal reading is the exception: folded again it changes nothing, and
        // keeping its id would make up most of a timeline after weeks.
        if self.legacy_seen && self.projections.tree.contains_key(store::seen_key(school, &envelope.event_id))? {
            return Ok(Folded::Duplicate);
        }
        if !self.rules.refolds_as_no_op(fact) && !self.timeline(school, person_id)?.first_fold(stamp) {
            return Ok(Folded::Duplicate);
        }
        self.fold_person(envelope, person_id, fact, stamp, acked)?;
        Ok(Folded::New)
    }

    fn stage(&mut self, staged: &mut Staged) -> Result<(), AggregateError> {
        self.place_unplaced_alerts()?;
        let (rules, store, encode_buf) = (&self.rules, &self.projections, &mut self.encode_buf);
        let legacy_key_persons = self.legacy_key_persons;
        self.caches.persons.take_changed(|slot| {
            let key = slot.key.as_str();
            let (school, person) = key.split_once('/').expect("keys are school/person");
            crate::timeline_codec::encode(&slot.timeline, encode_buf);
            let batch = staged.batch(school);
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
                staged.record(school, store::key_person_history_key(school, person), value);
            }
            let legacy = store::key_person_key(school, person);
            if legacy_key_persons && store.tree.contains_key(&legacy)? {
                staged.record(school, legacy, Vec::new());
            }
            slot.key_person = Some(now);
            Ok::<_, AggregateError>(())
        })?;
        self.caches.pairings.take_changed(|key, paired| {
            let (school, person) = key.split_once('/').expect("keys are school/person");
            staged.batch(school).insert(store::roommates_key(school, person), store::encode(paired));
        });
        let school_of = |unit: &UnitKey| unit.path.split('/').next().unwrap_or_default().to_owned();
        self.caches.units.take_changed(|unit, day, tally| {
            staged.mark(day, school_of(unit));
            staged.record(&school_of(unit), store::unit_day_key(unit, day), store::encode(tally));
        });
        for alert in self.alerts.drain(..) {
            staged.record(&alert.school, store::alert_key(&alert.school, &alert.event_id), store::encode(&alert));
        }
        for (school, unit, info) in self.caches.units.take_registered() {
            staged.record(&school, store::unit_key(&unit), store::encode(&info));
        }
        Ok(())
    }

    /// Timelines and unit days (key persons, alerts and the outbox are left out).
    fn dirty_entries(&self) -> usize {
        self.caches.persons.changed() + self.caches.units.changed_days()
    }

    fn caches_full(&self) -> bool {
        self.caches.full()
    }

    fn drop_full(&mut self) {
        self.caches.drop_full();
    }

    fn set_cache_bounds(&mut self, bounds: CacheBounds) {
        self.caches.set_bounds(bounds.subjects, bounds.subject_days, bounds.units);
    }

    fn take_unrostered(&mut self) -> BTreeMap<String, u64> {
        std::mem::take(&mut self.unrostered)
    }
}
