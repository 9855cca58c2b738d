//! A person's days, and the report changes an event causes.
//!
//! A person has an entry for each day on which an event about them happened; a day
//! without an entry inherits the state of the entry before it. An event on day D updates
//! D's entry (created from the day before if missing) and the state of every later entry,
//! so a late event corrects the days after it too. Each changed entry comes back as a
//! [`DayChange`]: the person's old and new contribution, and the days it stands for.

use std::collections::BTreeMap;
use std::ops::Bound::{Excluded, Unbounded};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::Day;
use crate::event::Fact;
use crate::person::{Contribution, KeyPerson, PersonDay, PersonState, Rules, Stamp};
use crate::unit::UnitKey;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    /// Boxed: a B-tree leaf has room for 11 entries whether it holds 1 or 11, so
    /// unboxed a person with a day or two cost a whole leaf of days (7 KB when a day held
    /// its state inline; 840 bytes with states shared), boxed about 150 bytes and the days.
    pub days: BTreeMap<Day, Box<PersonDay>>,
    /// The events of this person folded into it (not the roommates' signs it received, nor
    /// normal readings, which fold again as a no-op), so that the fold skips one delivered
    /// again: the check costs no store access of its own, since the timeline is loaded and
    /// written with every event of the person.
    pub folded: FoldedIds,
    /// The unit keys of the latest placement seen, built once (a cache, not state).
    #[serde(skip)]
    units: UnitsMemo,
}

/// The units a person counts in, for one city and placement: most events leave the
/// placement as it was, and building unit keys was the fold's biggest allocation.
///
/// Known by the stamps of the writes that set the city (the registration) and the
/// placement, not by their strings: within one person's timeline a stamp names one event,
/// which wrote one value (the fold keeps a person's events apart by the same hash), and
/// comparing the strings cost a cache miss each at province size. A timeline is one
/// school's person: the school never changes.
#[derive(Debug, Clone, Default)]
struct UnitsMemo(Option<(Stamp, Stamp, Arc<[UnitKey]>)>);

impl PartialEq for UnitsMemo {
    /// A cache: two timelines with the same days and ids are equal whatever it holds.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl UnitsMemo {
    /// `entry.contribution(school, day, rules)`, with the unit list shared while the
    /// place stays the same.
    fn contribution(&mut self, entry: &PersonDay, school: &str, day: Day, rules: &Rules) -> Option<Contribution> {
        let tally = entry.tally(day, rules)?;
        if entry.city().is_none() {
            // Not on the roster: their school alone, rare enough to build each time.
            return Some(Contribution { units: Arc::from([UnitKey::school(school)]), tally });
        }
        let (registered, placed) = (entry.state.registration.stamp, entry.state.placement.stamp);
        let units = match &self.0 {
            Some((r, p, units)) if *r == registered && *p == placed => {
                debug_assert_eq!(
                    **units,
                    *UnitKey::for_person(entry.city()?, school, &entry.state.placement.value),
                    "the same stamps stand for the same place"
                );
                units.clone()
            }
            _ => {
                let units: Arc<[UnitKey]> =
                    UnitKey::for_person(entry.city()?, school, &entry.state.placement.value).into();
                self.0 = Some((registered, placed, units.clone()));
                units
            }
        };
        Some(Contribution { units, tally })
    }
}

/// A set of event ids, as the 64-bit FNV-1a hash of the id ([`Stamp::tiebreak`]).
/// Within one person's events a collision (which would skip an event) is negligible:
/// about n²/2⁶⁵ for n events, 3·10⁻¹⁴ for a thousand.
///
/// Kept sorted in memory; stored as 8 bytes per id (postcard would spend 9 to 10 on a
/// hash as a varint).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FoldedIds(Vec<u64>);

impl FoldedIds {
    /// Adds `id`; false if it was there already.
    pub fn insert(&mut self, id: u64) -> bool {
        match self.0.binary_search(&id) {
            Ok(_) => false,
            Err(at) => {
                self.0.insert(at, id);
                true
            }
        }
    }

    pub fn contains(&self, id: u64) -> bool {
        self.0.binary_search(&id).is_ok()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for FoldedIds {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut bytes = Vec::with_capacity(self.0.len() * 8);
        for id in &self.0 {
            bytes.extend_from_slice(&id.to_le_bytes());
        }
        serializer.serialize_bytes(&bytes)
    }
}

impl<'de> Deserialize<'de> for FoldedIds {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Ids;
        impl serde::de::Visitor<'_> for Ids {
            type Value = FoldedIds;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("event id hashes, 8 bytes each")
            }

            fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<FoldedIds, E> {
                if !bytes.len().is_multiple_of(8) {
                    return Err(E::invalid_length(bytes.len(), &self));
                }
                let mut ids: Vec<u64> =
                    bytes.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))).collect();
                // Written sorted; sorting again costs nothing then and keeps lookups right.
                ids.sort_unstable();
                ids.dedup();
                Ok(FoldedIds(ids))
            }
        }
        deserializer.deserialize_bytes(Ids)
    }
}

/// Applies `event` to `entry`; if another day shared the state it had, returns that state
/// and the entry's new one, for the days sharing it to take as is. (A state held by one
/// day alone is changed in place: no other day can be sharing what it was.)
fn apply_noting_shared(
    entry: &mut PersonDay,
    event: impl FnOnce(&mut PersonDay),
) -> Option<(Arc<PersonState>, Arc<PersonState>)> {
    let before = (Arc::strong_count(&entry.state) > 1).then(|| entry.state.clone());
    event(entry);
    before.map(|before| (before, entry.state.clone()))
}

/// A person's entry in the key-person lists through time: from each day listed on, the
/// entry (`None`: not a key person), so that a list can be read as of any day.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyPersonHistory(pub Vec<(Day, Option<KeyPerson>)>);

impl KeyPersonHistory {
    /// The entry as of the end of `day`.
    pub fn on(&self, day: Day) -> Option<&KeyPerson> {
        let after = self.0.partition_point(|(from, _)| *from <= day);
        after.checked_sub(1).and_then(|at| self.0[at].1.as_ref())
    }

    /// Never a key person: nothing to keep.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A person's contribution moved from `old` to `new` on `day`, and their state part did
/// so for every day after it up to `until` (exclusive; `None`: from then on).
#[derive(Debug, Clone, PartialEq)]
pub struct DayChange {
    pub day: Day,
    pub until: Option<Day>,
    pub old: Option<Contribution>,
    pub new: Option<Contribution>,
}

impl Timeline {
    /// Records that the person's own event `stamp` is being folded; false if an event
    /// with the same id was folded before (its stamp's tiebreak is the id's hash).
    pub fn first_fold(&mut self, stamp: Stamp) -> bool {
        self.folded.insert(stamp.tiebreak)
    }

    /// Folds one event that happened on `day`.
    pub fn apply(&mut self, school: &str, day: Day, fact: &Fact, stamp: Stamp, rules: &Rules) -> Vec<DayChange> {
        self.apply_acked(school, day, fact, stamp, None, rules)
    }

    /// [`Self::apply`] of an event acknowledged at `acked` (milliseconds since the epoch;
    /// `None` if not known, taken as in time), which decides timeliness.
    pub fn apply_acked(
        &mut self,
        school: &str,
        day: Day,
        fact: &Fact,
        stamp: Stamp,
        acked: Option<i64>,
        rules: &Rules,
    ) -> Vec<DayChange> {
        let mut changes = Vec::new();
        if !self.days.contains_key(&day) {
            let carried = self.days.range(..day).next_back().map(|(_, before)| before.carried()).unwrap_or_default();
            self.days.insert(day, Box::new(carried));
        }
        // Updated in place: a person's entry holds sets and strings, not worth a clone.
        let entry = self.days.get_mut(&day).expect("inserted above");
        let old = self.units.contribution(entry, school, day, rules);
        // Later days that shared the state this one had share the state it has now: the
        // same event on the same state gives the same state, so it is applied once.
        let mut carried_over = apply_noting_shared(entry, |e| e.apply_acked(fact, stamp, acked, day, rules));
        let new = self.units.contribution(entry, school, day, rules);
        // Each entry's span ends where the next entry begins.
        let later: Vec<Day> = self.days.range((Excluded(day), Unbounded)).map(|(d, _)| *d).collect();
        changes.push(DayChange { day, until: later.first().copied(), old, new });

        for (i, later_day) in later.iter().enumerate() {
            let entry = self.days.get_mut(later_day).expect("listed above");
            let old = self.units.contribution(entry, school, *later_day, rules);
            match &carried_over {
                Some((before, after)) if Arc::ptr_eq(&entry.state, before) => entry.state = after.clone(),
                _ => carried_over = apply_noting_shared(entry, |e| e.apply_state_acked(fact, stamp, acked, day, rules)),
            }
            let new = self.units.contribution(entry, school, *later_day, rules);
            if old != new {
                changes.push(DayChange { day: *later_day, until: later.get(i + 1).copied(), old, new });
            }
        }
        changes.extend(self.mark_due_days(school, day, rules));
        changes
    }

    /// Time alone changes what a person counts as (due for release, no longer required
    /// to be observed). Days without an entry inherit the day before, so each such day
    /// gets an entry of its own.
    fn mark_due_days(&mut self, school: &str, from: Day, rules: &Rules) -> Vec<DayChange> {
        let mut changes = Vec::new();
        let mut cursor = self.days.range(..=from).next_back().map(|(d, _)| *d);
        while let Some(entry_day) = cursor {
            let entry = &self.days[&entry_day];
            let next = self.next_day_after(entry_day);
            if let Some(turn) = entry.turning_point(entry_day, rules).filter(|t| next.is_none_or(|n| n > *t)) {
                let carried = entry.carried();
                // What unit records hold for `turn` now: the entry's state as of its own day,
                // without what counts on that day alone (an extension that day, say).
                let old = self
                    .units
                    .contribution(&carried, school, entry_day, rules)
                    .map(|c| Contribution { tally: c.tally.state_only(), ..c });
                let new = self.units.contribution(&carried, school, turn, rules);
                self.days.insert(turn, Box::new(carried));
                changes.push(DayChange { day: turn, until: next, old, new });
            }
            cursor = self.next_day_after(entry_day);
        }
        changes
    }

    /// The person as of the end of `day` (state only if they did nothing that day).
    pub fn on(&self, day: Day) -> Option<PersonDay> {
        match self.days.get(&day) {
            Some(entry) => Some(PersonDay::clone(entry)),
            None => self.days.range(..day).next_back().map(|(_, e)| e.carried()),
        }
    }

    /// The person's entry in the key-person lists from each day on where it changes (a
    /// day without an entry is as the entry before it, time's turns included: see
    /// [`Self::mark_due_days`]), from the first day they were one; empty if never.
    pub fn key_person_history(&self, school: &str, person: &str, rules: &Rules) -> KeyPersonHistory {
        let mut changes: Vec<(Day, Option<KeyPerson>)> = Vec::new();
        for (day, entry) in &self.days {
            let now = entry.key_person(school, person, *day, rules);
            let same = match changes.last() {
                Some((_, last)) => *last == now,
                None => now.is_none(),
            };
            if !same {
                changes.push((*day, now));
            }
        }
        KeyPersonHistory(changes)
    }

    fn next_day_after(&self, day: Day) -> Option<Day> {
        self.days.range((Excluded(day), Unbounded)).next().map(|(d, _)| *d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Placement, Role, Slot};
    use crate::tally::Measure;

    fn day(n: u32) -> Day {
        Day::from_ymd_opt(2020, 2, n).unwrap()
    }

    fn registered() -> Fact {
        Fact::Registered {
            role: Role::Teacher,
            placement: Placement { department: "D".into(), ..Placement::default() },
            city: "C".into(),
            on_campus: true,
        }
    }

    #[test]
    fn folded_ids_are_a_set_of_event_ids() {
        let mut t = Timeline::default();
        assert!(t.first_fold(Stamp::new(5, "e1")));
        assert!(t.first_fold(Stamp::new(1, "e2")));
        assert!(!t.first_fold(Stamp::new(9, "e1")), "same id, whatever its time");
        assert!(t.folded.contains(Stamp::new(0, "e2").tiebreak));
    }

    #[test]
    fn a_normal_reading_folded_again_changes_nothing_whatever_came_between() {
        let rules = Rules::default();
        let reading = Fact::Temperature { slot: Slot::Noon, celsius: 36.6 };
        let fever = Fact::Temperature { slot: Slot::Noon, celsius: 38.0 };
        assert!(rules.refolds_as_no_op(&reading));
        assert!(!rules.refolds_as_no_op(&fever), "a fever reading alerts and marks an abnormal day");
        assert!(!rules.refolds_as_no_op(&registered()));
        assert!(!rules.refolds_as_no_op(&Fact::GatePassed(crate::event::Direction::In)));

        let moved = Fact::Moved { placement: Placement { department: "E".into(), ..Placement::default() } };
        let mut once = Timeline::default();
        once.apply("S", day(1), &registered(), Stamp::new(day_ms(1), "a"), &rules);
        once.apply("S", day(2), &reading, Stamp::new(day_ms(2), "b"), &rules);
        once.apply("S", day(2), &moved, Stamp::new(day_ms(2) + 1, "c"), &rules);
        once.apply("S", day(3), &fever, Stamp::new(day_ms(3), "d"), &rules);
        let mut twice = once.clone();
        let changes = twice.apply("S", day(2), &reading, Stamp::new(day_ms(2), "b"), &rules);
        assert!(changes.iter().all(|c| c.old == c.new), "no unit's count moves: {changes:?}");
        assert_eq!(twice, once);
    }

    #[test]
    fn a_day_without_events_inherits_state_but_not_flows() {
        let rules = Rules::default();
        let mut t = Timeline::default();
        t.apply("S", day(1), &registered(), Stamp::new(1, "a"), &rules);
        t.apply("S", day(1), &Fact::Temperature { slot: Slot::Morning, celsius: 38.0 }, Stamp::new(2, "b"), &rules);
        let next = t.on(day(5)).unwrap().contribution("S", day(5), &rules).unwrap().tally;
        assert_eq!(next.get(Measure::Population), 1);
        assert_eq!(next.get(Measure::Fever), 0);
    }

    #[test]
    fn a_late_event_corrects_later_days_until_a_newer_write() {
        let rules = Rules::default();
        let mut t = Timeline::default();
        t.apply("S", day(1), &registered(), Stamp::new(day_ms(1), "a"), &rules);
        t.apply("S", day(3), &Fact::GatePassed(crate::event::Direction::Out), Stamp::new(day_ms(3), "b"), &rules);
        // Late: isolation started on day 2; days 2 and 3 change, day 3 inherits it.
        let changes = t.apply(
            "S",
            day(2),
            &Fact::IsolationStarted {
                kind: crate::event::IsolationKind::Home,
                place: String::new(),
                roommates: vec![],
            },
            Stamp::new(day_ms(2), "c"),
            &rules,
        );
        let days: Vec<Day> = changes.iter().map(|c| c.day).collect();
        // Day 16: the 14 days of home observation run out; it gets an entry of its own.
        assert_eq!(days, [day(2), day(3), day(16)]);
        assert_eq!(changes[0].until, Some(day(3)));
        assert_eq!(changes[1].until, None);
        assert_eq!(changes[2].new.as_ref().unwrap().tally.get(Measure::DueForRelease), 1);
        assert_eq!(changes[2].old.as_ref().unwrap().tally.get(Measure::DueForRelease), 0);
        let on3 = t.on(day(3)).unwrap().contribution("S", day(3), &rules).unwrap().tally;
        assert_eq!(on3.get(Measure::HomeObservation), 1);
        assert_eq!(on3.get(Measure::PresentOnCampus), 0);
        let on1 = t.on(day(1)).unwrap().contribution("S", day(1), &rules).unwrap().tally;
        assert_eq!(on1.get(Measure::HomeObservation), 0);
    }

    #[test]
    fn days_share_a_state_until_something_changes_it_and_a_late_event_keeps_them_sharing() {
        let rules = Rules::default();
        let mut t = Timeline::default();
        let check = |n: u32| {
            (Fact::Temperature { slot: Slot::Morning, celsius: 36.5 }, Stamp::new(day_ms(n), &format!("t{n}")))
        };
        t.apply("S", day(1), &registered(), Stamp::new(day_ms(1), "r"), &rules);
        for n in 2..=5 {
            let (fact, stamp) = check(n);
            t.apply("S", day(n), &fact, stamp, &rules);
        }
        let shares = |t: &Timeline, a: u32, b: u32| Arc::ptr_eq(&t.days[&day(a)].state, &t.days[&day(b)].state);
        assert!((2..=5).all(|n| shares(&t, 1, n)), "checks alone change no state");
        // A late gate pass on day 3 changes days 3 to 5, which share the new state.
        t.apply("S", day(3), &Fact::GatePassed(crate::event::Direction::Out), Stamp::new(day_ms(3), "g"), &rules);
        assert!(shares(&t, 1, 2));
        assert!(!shares(&t, 2, 3));
        assert!(shares(&t, 3, 4) && shares(&t, 3, 5));
        assert!(!t.days[&day(5)].state.on_campus.value, "the later days changed too");
        assert!(t.days[&day(2)].state.on_campus.value, "the day before did not");
    }

    fn day_ms(n: u32) -> i64 {
        day(n).and_hms_opt(10, 0, 0).unwrap().and_utc().timestamp_millis()
    }

    fn isolated_on(t: &mut Timeline, n: u32, kind: crate::event::IsolationKind, roommates: &[&str]) {
        let fact = Fact::IsolationStarted {
            kind,
            place: "campus".into(),
            roommates: roommates.iter().map(|r| r.to_string()).collect(),
        };
        t.apply("S", day(n), &fact, Stamp::new(day_ms(n), &format!("iso{n}")), &Rules::default());
    }

    fn due_on(t: &Timeline, n: u32) -> bool {
        let rules = Rules::default();
        t.on(day(n)).unwrap().contribution("S", day(n), &rules).unwrap().tally.get(Measure::DueForRelease) == 1
    }

    #[test]
    fn a_leave_ends_after_its_last_day_and_one_run_out_off_campus_is_overdue() {
        let rules = Rules::default();
        let mut t = Timeline::default();
        t.apply("S", day(1), &registered(), Stamp::new(day_ms(1), "r"), &rules);
        let leave = Fact::LeaveRequested { until: day(3), reason: String::new() };
        t.apply("S", day(2), &leave, Stamp::new(day_ms(2), "l"), &rules);
        let expected = |t: &Timeline, n| tally_on(t, n).get(Measure::ChecksExpected);
        assert_eq!((expected(&t, 2), expected(&t, 3), expected(&t, 4), expected(&t, 9)), (0, 0, 1, 1));
        assert!(t.days.contains_key(&day(4)), "the day after the leave has an entry of its own");
        assert_eq!(tally_on(&t, 4).get(Measure::FlagLeaveOverdue), 0, "on campus: back");
        // Went out on day 2 and did not come back: overdue from day 4, until back.
        t.apply("S", day(2), &Fact::GatePassed(crate::event::Direction::Out), Stamp::new(day_ms(2) + 1, "o"), &rules);
        let overdue = |t: &Timeline, n| tally_on(t, n).get(Measure::FlagLeaveOverdue);
        assert_eq!((overdue(&t, 3), overdue(&t, 4), overdue(&t, 8)), (0, 1, 1));
        assert_eq!(tally_on(&t, 2).get(Measure::FlagBoarderLeftWithoutLeave), 0);
        t.apply("S", day(6), &Fact::GatePassed(crate::event::Direction::In), Stamp::new(day_ms(6), "i"), &rules);
        assert_eq!((overdue(&t, 5), overdue(&t, 6), expected(&t, 6)), (1, 0, 1));
    }

    #[test]
    fn contact_history_counts_fourteen_days_from_the_last_contact_not_the_return() {
        let rules = Rules::default();
        let mut t = Timeline::default();
        t.apply("S", day(1), &registered(), Stamp::new(day_ms(1), "r"), &rules);
        let contact = Fact::TwoHistories { kind: crate::event::HistoryKind::Contact, date: day(3) };
        t.apply("S", day(8), &contact, Stamp::new(day_ms(8), "h"), &rules);
        isolated_on(&mut t, 8, crate::event::IsolationKind::Home, &[]);
        let observation = t.on(day(10)).unwrap().observation(day(10), &rules).unwrap();
        assert_eq!((observation.start, observation.expected_end), (day(3), day(17)));
        assert!(!due_on(&t, 16));
        assert!(due_on(&t, 17));
        assert!(due_on(&t, 20), "still due on later days without events");
    }

    #[test]
    fn a_roommates_fever_on_day_13_starts_the_period_again() {
        let rules = Rules::default();
        let mut t = Timeline::default();
        t.apply("S", day(1), &registered(), Stamp::new(day_ms(1), "r"), &rules);
        isolated_on(&mut t, 1, crate::event::IsolationKind::Centralized, &["B"]);
        let changes =
            t.apply("S", day(13), &Fact::RoommateShowedSigns { onset: day(13) }, Stamp::new(day_ms(13), "x"), &rules);
        let extended = changes.iter().find(|c| c.day == day(13)).unwrap();
        assert_eq!(extended.new.as_ref().unwrap().tally.get(Measure::ObservationExtended), 1);
        assert!(!due_on(&t, 15), "the first period would have ended on day 15");
        assert!(!due_on(&t, 26));
        assert!(due_on(&t, 27));
    }

    #[test]
    fn own_fever_extends_and_a_late_reading_moves_the_release_too() {
        let rules = Rules::default();
        let mut t = Timeline::default();
        t.apply("S", day(1), &registered(), Stamp::new(day_ms(1), "r"), &rules);
        isolated_on(&mut t, 2, crate::event::IsolationKind::Centralized, &[]);
        t.apply(
            "S",
            day(20),
            &Fact::Temperature { slot: Slot::Morning, celsius: 36.5 },
            Stamp::new(day_ms(20), "t"),
            &rules,
        );
        assert!(due_on(&t, 16));
        // Arrives late: a fever on day 10.
        t.apply(
            "S",
            day(10),
            &Fact::Temperature { slot: Slot::Noon, celsius: 38.4 },
            Stamp::new(day_ms(10), "f"),
            &rules,
        );
        assert!(!due_on(&t, 16));
        assert!(!due_on(&t, 23));
        assert!(due_on(&t, 24));
    }

    fn released_on(t: &mut Timeline, n: u32) -> Vec<DayChange> {
        t.apply("S", day(n), &Fact::Released, Stamp::new(day_ms(n) + 1, &format!("rel{n}")), &Rules::default())
    }

    fn tally_on(t: &Timeline, n: u32) -> crate::tally::Tally {
        t.on(day(n)).unwrap().contribution("S", day(n), &Rules::default()).unwrap().tally
    }

    #[test]
    fn a_release_before_the_period_has_run_out_is_refused_with_the_reason() {
        let rules = Rules::default();
        let mut t = Timeline::default();
        t.apply("S", day(1), &registered(), Stamp::new(day_ms(1), "r"), &rules);
        isolated_on(&mut t, 2, crate::event::IsolationKind::Home, &[]);
        released_on(&mut t, 10);
        let on10 = tally_on(&t, 10);
        assert_eq!((on10.get(Measure::FlagReleaseRefused), on10.get(Measure::Released)), (1, 0));
        assert_eq!(on10.get(Measure::HomeObservation), 1, "still under observation");
        assert_eq!(tally_on(&t, 12).get(Measure::FlagReleaseRefused), 0, "refused once, on its day");
        let refusal = t.on(day(12)).unwrap().state.release_refusal(&rules).unwrap();
        assert_eq!(
            refusal.to_string(),
            "release refused: not eligible before 2020-02-16, the period runs from 2020-02-02"
        );
        let key = t.on(day(12)).unwrap().key_person("S", "P", day(12), &rules).unwrap();
        assert_eq!(key.release_refused, Some(refusal));
        assert!(due_on(&t, 16), "the refused release does not end the observation");

        released_on(&mut t, 16);
        let on16 = tally_on(&t, 16);
        assert_eq!((on16.get(Measure::Released), on16.get(Measure::FlagReleaseRefused)), (1, 0));
        assert_eq!(on16.get(Measure::HomeObservation), 0);
        assert_eq!(tally_on(&t, 17).get(Measure::HomeObservation), 0);
    }

    #[test]
    fn a_late_roommate_sign_before_the_release_refuses_it_after_the_fact() {
        let rules = Rules::default();
        let mut t = Timeline::default();
        t.apply("S", day(1), &registered(), Stamp::new(day_ms(1), "r"), &rules);
        isolated_on(&mut t, 1, crate::event::IsolationKind::Centralized, &["B"]);
        released_on(&mut t, 15);
        assert_eq!(tally_on(&t, 15).get(Measure::Released), 1);
        assert_eq!(tally_on(&t, 18).get(Measure::CentralizedObservation), 0);
        // Arrives late: the roommate had a fever on day 13, before the release.
        t.apply("S", day(13), &Fact::RoommateShowedSigns { onset: day(13) }, Stamp::new(day_ms(13), "x"), &rules);
        let on15 = tally_on(&t, 15);
        assert_eq!((on15.get(Measure::Released), on15.get(Measure::FlagReleaseRefused)), (0, 1));
        assert_eq!(tally_on(&t, 18).get(Measure::CentralizedObservation), 1, "back under observation");
        let refusal = t.on(day(18)).unwrap().state.release_refusal(&rules).unwrap().to_string();
        assert!(refusal.ends_with("(started again by a roommate's abnormal signs)"), "{refusal}");
        assert!(refusal.contains("not eligible before 2020-02-27"), "{refusal}");
        assert!(due_on(&t, 27));
    }

    #[test]
    fn a_release_of_someone_not_under_observation_is_refused() {
        let rules = Rules::default();
        let mut t = Timeline::default();
        t.apply("S", day(1), &registered(), Stamp::new(day_ms(1), "r"), &rules);
        released_on(&mut t, 3);
        assert_eq!(tally_on(&t, 3).get(Measure::FlagReleaseRefused), 1);
        let refusal = t.on(day(3)).unwrap().state.release_refusal(&rules).unwrap();
        assert_eq!(refusal.to_string(), "release refused: not under observation");
        // A later observation is not ended by the earlier, refused release.
        isolated_on(&mut t, 5, crate::event::IsolationKind::Home, &[]);
        assert_eq!(tally_on(&t, 6).get(Measure::HomeObservation), 1);
        assert_eq!(t.on(day(6)).unwrap().state.release_refusal(&rules), None);
    }

    fn person(role: Role) -> Fact {
        Fact::Registered {
            role,
            placement: Placement { department: "D".into(), grade: "G".into(), class: "C".into(), dorm: String::new() },
            city: "C".into(),
            on_campus: true,
        }
    }

    #[test]
    fn students_with_two_histories_must_be_in_centralized_observation_staff_at_home() {
        let rules = Rules::default();
        let travel = Fact::TwoHistories { kind: crate::event::HistoryKind::Travel, date: day(2) };
        let missing = |t: &Timeline, n| tally_on(t, n).get(Measure::FlagObservationMissing);
        let mut student = Timeline::default();
        student.apply("S", day(1), &person(Role::Student), Stamp::new(day_ms(1), "r"), &rules);
        student.apply("S", day(3), &travel, Stamp::new(day_ms(3), "h"), &rules);
        assert_eq!((missing(&student, 2), missing(&student, 3)), (0, 1));
        let key = student.on(day(3)).unwrap().key_person("S", "P", day(3), &rules).unwrap();
        assert_eq!(key.observation_missing, Some((crate::event::IsolationKind::Centralized, day(16))));
        isolated_on(&mut student, 4, crate::event::IsolationKind::Home, &[]);
        assert_eq!(missing(&student, 4), 1, "home is not enough for a student");
        isolated_on(&mut student, 5, crate::event::IsolationKind::Centralized, &[]);
        assert_eq!(missing(&student, 5), 0);

        let mut teacher = Timeline::default();
        teacher.apply("S", day(1), &person(Role::Teacher), Stamp::new(day_ms(1), "r"), &rules);
        teacher.apply("S", day(3), &travel, Stamp::new(day_ms(3), "h"), &rules);
        assert_eq!(missing(&teacher, 10), 1, "no events since day 3: the flag carries");
        assert_eq!(missing(&teacher, 15), 1);
        assert_eq!(missing(&teacher, 16), 0, "14 days after the travel date nothing is required");
        isolated_on(&mut teacher, 4, crate::event::IsolationKind::Home, &[]);
        assert_eq!(missing(&teacher, 4), 0);
    }

    #[test]
    fn a_close_contact_must_be_in_centralized_observation_whatever_the_role() {
        let rules = Rules::default();
        let mut t = Timeline::default();
        t.apply("S", day(1), &person(Role::Teacher), Stamp::new(day_ms(1), "r"), &rules);
        let contact = Fact::TwoHistories { kind: crate::event::HistoryKind::CloseContact, date: day(2) };
        t.apply("S", day(3), &contact, Stamp::new(day_ms(3), "c"), &rules);
        let missing = |t: &Timeline, n| tally_on(t, n).get(Measure::FlagObservationMissing);
        assert_eq!((missing(&t, 3), missing(&t, 15), missing(&t, 16)), (1, 1, 0), "14 days from the contact");
        isolated_on(&mut t, 4, crate::event::IsolationKind::Home, &[]);
        assert_eq!(missing(&t, 4), 1, "home is not enough for a close contact");
        isolated_on(&mut t, 5, crate::event::IsolationKind::Centralized, &[]);
        assert_eq!(missing(&t, 5), 0);
    }

    #[test]
    fn anyone_back_from_a_key_area_must_be_in_centralized_observation() {
        let rules = Rules::default();
        let mut t = Timeline::default();
        t.apply("S", day(1), &person(Role::Staff), Stamp::new(day_ms(1), "r"), &rules);
        let back = Fact::Returned { date: day(5), batch: 3 };
        t.apply("S", day(5), &back, Stamp::new(day_ms(5), "b"), &rules);
        assert_eq!(tally_on(&t, 5).get(Measure::FlagObservationMissing), 1);
        assert_eq!(tally_on(&t, 19).get(Measure::FlagObservationMissing), 0);
        let returned_in_batch_one = Fact::Returned { date: day(5), batch: 1 };
        let mut u = Timeline::default();
        u.apply("S", day(1), &person(Role::Staff), Stamp::new(day_ms(1), "r"), &rules);
        u.apply("S", day(5), &returned_in_batch_one, Stamp::new(day_ms(5), "b"), &rules);
        assert_eq!(tally_on(&u, 5).get(Measure::FlagObservationMissing), 0, "never recorded in a key area");
    }

    fn in_hubei() -> Fact {
        Fact::Whereabouts { province: "Hubei".into(), city: "Wuhan".into(), in_key_area: true, on_campus: false }
    }

    #[test]
    fn back_from_a_key_area_in_any_batch_needs_centralized_observation_from_the_return() {
        let rules = Rules::default();
        let events = [
            (1, person(Role::Staff), "r"),
            (1, in_hubei(), "w"),
            (5, Fact::Returned { date: day(5), batch: 1 }, "b"),
            (
                6,
                Fact::IsolationStarted {
                    kind: crate::event::IsolationKind::Centralized,
                    place: "x".into(),
                    roommates: vec![],
                },
                "i",
            ),
            (19, Fact::Released, "rel"),
        ];
        let fold = |order: &[usize]| {
            let mut t = Timeline::default();
            for &i in order {
                let (n, fact, id) = &events[i];
                t.apply("S", day(*n), fact, Stamp::new(day_ms(*n), id), &rules);
            }
            t
        };
        let t = fold(&[0, 1, 2, 3, 4]);
        let reversed = fold(&[4, 2, 3, 1, 0]);
        for n in 1..=22 {
            assert_eq!(tally_on(&reversed, n), tally_on(&t, n), "day {n}: the same in any order of arrival");
        }
        let missing = |n| tally_on(&t, n).get(Measure::FlagObservationMissing);
        assert_eq!((missing(1), missing(5), missing(6)), (0, 1, 0), "required from the return, whatever the batch");
        let on5 = t.on(day(5)).unwrap();
        assert_eq!(on5.state.back_from_key_area(), Some(day(5)));
        assert!(!on5.state.in_key_area.value, "no longer there; the stay is kept");
        let observation = t.on(day(10)).unwrap().observation(day(10), &rules).unwrap();
        assert_eq!((observation.start, observation.expected_end), (day(5), day(19)), "14 days from the return");
        assert!(!due_on(&t, 18));
        let on19 = tally_on(&t, 19);
        assert_eq!((on19.get(Measure::Released), on19.get(Measure::FlagReleaseRefused)), (1, 0), "due that day");
        assert_eq!(tally_on(&t, 20).get(Measure::CentralizedObservation), 0);
        let key = t.on(day(20)).unwrap().key_person("S", "P", day(20), &rules).unwrap();
        assert_eq!((key.key_area_return, key.in_key_area, key.observation), (Some(day(5)), false, None));
    }

    #[test]
    fn a_return_before_the_stay_is_no_return_from_it() {
        let rules = Rules::default();
        let mut t = Timeline::default();
        t.apply("S", day(1), &person(Role::Student), Stamp::new(day_ms(1), "r"), &rules);
        t.apply("S", day(2), &Fact::Returned { date: day(2), batch: 1 }, Stamp::new(day_ms(2), "b"), &rules);
        // Went to Hubei after coming back to school: there now, not back from it.
        t.apply("S", day(4), &in_hubei(), Stamp::new(day_ms(4), "w"), &rules);
        let on4 = t.on(day(4)).unwrap();
        assert_eq!(on4.state.back_from_key_area(), None);
        assert_eq!(tally_on(&t, 4).get(Measure::FlagObservationMissing), 0);
        assert_eq!(tally_on(&t, 4).get(Measure::InKeyArea), 1);
        // A return in batch 3 is one from a key area, stay recorded or not.
        let mut u = Timeline::default();
        u.apply("S", day(1), &person(Role::Student), Stamp::new(day_ms(1), "r"), &rules);
        u.apply("S", day(3), &Fact::Returned { date: day(3), batch: 3 }, Stamp::new(day_ms(3), "b"), &rules);
        assert_eq!(u.on(day(3)).unwrap().state.back_from_key_area(), Some(day(3)));
        assert_eq!(
            (
                tally_on(&u, 16).get(Measure::FlagObservationMissing),
                tally_on(&u, 17).get(Measure::FlagObservationMissing)
            ),
            (1, 0)
        );
    }
}
