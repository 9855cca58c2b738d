//! One person's state at the end of a day, and what they did that day.
//!
//! State fields are last-writer-wins registers stamped with the event time, so a person's
//! state after a set of events does not depend on the order the events arrived in. Day
//! flows are sets (a slot checked, a fever seen), so they are order-free too.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::close::Deadline;
use crate::event::{Diagnosis, Direction, Fact, HistoryKind, IsolationKind, Placement, Role, Slot, Symptom};
use crate::tally::{Measure, Tally};
use crate::unit::UnitKey;

/// Rules the fold needs that an operator may tune.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rules {
    /// A reading at or above this is a fever (national standard: 37.3 °C).
    pub fever_threshold_celsius: f64,
    /// Length of home or centralized medical observation (DOMAIN.md: 14 days).
    pub observation_days: u32,
    /// Each day's deadline, which events acknowledged in time for its report beat.
    pub deadline: Deadline,
}

impl Default for Rules {
    fn default() -> Self {
        Self { fever_threshold_celsius: 37.3, observation_days: 14, deadline: Deadline::default() }
    }
}

impl Rules {
    /// An abnormal clinical sign (DOMAIN.md): a fever reading or a symptom report.
    pub fn is_abnormal_sign(&self, fact: &Fact) -> bool {
        match fact {
            Fact::Temperature { celsius, .. } => *celsius >= self.fever_threshold_celsius,
            Fact::Symptoms(_) => true,
            _ => false,
        }
    }

    /// Whether folding `fact` a second time changes nothing, so that its event's id need
    /// not be remembered: a normal temperature reading changes no state, only marks its
    /// slot checked (a set), and raises no alert. Most events are these.
    pub fn refolds_as_no_op(&self, fact: &Fact) -> bool {
        matches!(fact, Fact::Temperature { .. }) && !self.is_abnormal_sign(fact)
    }
}

/// Where a person under observation stands on a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    pub kind: IsolationKind,
    /// The period runs from here: the return or last contact date, or the latest onset
    /// of abnormal signs (own, or of a centralized-observation roommate) since.
    pub start: NaiveDate,
    pub expected_end: NaiveDate,
    /// The period has run out with no abnormal signs: the person may be released.
    pub due_for_release: bool,
    /// Abnormal signs that day started the period again.
    pub extended_today: bool,
    /// Whose abnormal signs started the period again last, if any did.
    pub restarted_by: Option<Restart>,
}

/// Whose abnormal signs started an observation period again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Restart {
    OwnSigns,
    RoommateSigns,
}

/// Why a release was refused (DOMAIN.md: release only at the end of the period, and only
/// if the person and their roommates showed no abnormal signs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    NotUnderObservation,
    NotYetDue { start: NaiveDate, due: NaiveDate, restarted_by: Option<Restart> },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, out: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotUnderObservation => write!(out, "release refused: not under observation"),
            Self::NotYetDue { start, due, restarted_by } => {
                write!(out, "release refused: not eligible before {due}, the period runs from {start}")?;
                match restarted_by {
                    Some(Restart::OwnSigns) => write!(out, " (started again by the person's abnormal signs)"),
                    Some(Restart::RoommateSigns) => write!(out, " (started again by a roommate's abnormal signs)"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// Orders writes to a register: event time first, then the event id's hash so that two
/// events at the same instant still resolve the same way whatever their arrival order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Stamp {
    pub at_millis: i64,
    pub tiebreak: u64,
}

impl Stamp {
    pub fn new(at_millis: i64, event_id: &str) -> Self {
        // FNV-1a: stable across builds and platforms, unlike std's hasher.
        let tiebreak =
            event_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        Self { at_millis, tiebreak }
    }
}

/// A last-writer-wins register.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Lww<T> {
    pub value: T,
    pub stamp: Stamp,
}

impl<T> Lww<T> {
    fn write(&mut self, value: T, stamp: Stamp) {
        if stamp >= self.stamp {
            self.value = value;
            self.stamp = stamp;
        }
    }
}

/// Who the person is and where they stand, at the end of a day.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PersonState {
    /// Role and city from the registration; `None` until registered.
    pub registration: Lww<Option<(Role, String)>>,
    pub placement: Lww<Placement>,
    /// Registered and not left.
    pub enrolled: Lww<bool>,
    pub on_campus: Lww<bool>,
    pub in_key_area: Lww<bool>,
    pub two_histories: Lww<Option<(HistoryKind, NaiveDate)>>,
    /// The observation as started; [`PersonState::under_observation`] says whether a
    /// release has ended it.
    pub isolation: Lww<Option<IsolationKind>>,
    pub diagnosis: Lww<Option<Diagnosis>>,
    pub sick_absent: Lww<bool>,
    pub on_leave: Lww<bool>,
    /// The travel / last contact date of two histories (and, stored before `returned_on`,
    /// the date of a return in batch 3); see [`PersonState::exposure_date`].
    pub exposure: Lww<Option<NaiveDate>>,
    /// The day observation began.
    pub isolation_since: Lww<Option<NaiveDate>>,
    /// The day of the latest release posted. It ends the observation only if the person
    /// was due on that day; eligibility is derived, never stored, so a late roommate's
    /// fever dated before the release still refuses it whatever the arrival order.
    pub release: Lww<Option<NaiveDate>>,
    /// Centralized-observation roommates, as the isolation event named them.
    pub roommates: Lww<Vec<String>>,
    /// Days with abnormal signs (a fever reading, a symptom report). Grows only.
    pub abnormal_days: BTreeSet<NaiveDate>,
    /// Days on which a roommate showed abnormal signs. Grows only.
    pub roommate_onsets: BTreeSet<NaiveDate>,
    /// The batch the person came back to school with, once back.
    pub returned_batch: Lww<Option<u32>>,
    /// The day of the latest health card.
    pub health_card_on: Lww<Option<NaiveDate>>,
    /// Last contact with a suspected or confirmed case, for close contacts.
    pub close_contact: Lww<Option<NaiveDate>>,
    /// The last day of the latest leave requested (`on_leave` says whether it was closed
    /// since): from the day after, the person is expected again. Last in the stored
    /// layout; a leave stored before it has no end but its closing.
    pub leave_until: Lww<Option<NaiveDate>>,
    /// When the earliest registration was acknowledged (milliseconds since the epoch;
    /// `None` if not known): for the days whose deadline passed before it, the person was
    /// not on the roster in time to be expected in the report (issue 23). Like the two
    /// below, stored by `aggregator::timeline_codec` only.
    #[serde(skip)]
    pub registration_acked: Option<i64>,
    /// The day of the latest whereabouts placing the person in Hubei or another key area:
    /// `in_key_area` is cleared by their return, this is kept (issue 23). Stored by
    /// `aggregator::timeline_codec` only; the serde layouts (legacy `p` keys) predate it.
    #[serde(skip)]
    pub key_area_seen: Lww<Option<NaiveDate>>,
    /// The date of the latest return to school (with `returned_batch`, same write).
    /// Stored like `key_area_seen`; a return stored before it has no date (batch 3 wrote
    /// its date as the `exposure`).
    #[serde(skip)]
    pub returned_on: Lww<Option<NaiveDate>>,
}

impl PersonState {
    /// The observation the person is under: started, and not ended by a valid release.
    pub fn under_observation(&self, rules: &Rules) -> Option<IsolationKind> {
        let kind = self.isolation.value?;
        let released = self.release.stamp > self.isolation.stamp && self.release_refusal(rules).is_none();
        (!released).then_some(kind)
    }

    /// Why the latest release posted does not end the observation; `None` if it does or
    /// no release was posted since the observation started.
    pub fn release_refusal(&self, rules: &Rules) -> Option<Refusal> {
        let on = self.release.value?;
        if self.release.stamp < self.isolation.stamp {
            return None;
        }
        let Some(period) = self.period(on, rules) else { return Some(Refusal::NotUnderObservation) };
        (!period.due_for_release).then_some(Refusal::NotYetDue {
            start: period.start,
            due: period.expected_end,
            restarted_by: period.restarted_by,
        })
    }

    /// The observation rule of DOMAIN.md, on `day`, whatever releases say: 14 days
    /// (configurable) from the return or last contact date; abnormal signs of the person
    /// or a roommate during the period start it again from their onset; due for release
    /// when it has run out.
    pub fn period(&self, day: NaiveDate, rules: &Rules) -> Option<Observation> {
        let kind = self.isolation.value?;
        let since = self.isolation_since.value.unwrap_or(day);
        let first = self.exposure_date().filter(|e| *e <= since).unwrap_or(since);
        let during = |d: &&NaiveDate| **d >= first && **d <= day;
        let own = self.abnormal_days.iter().filter(during).max().copied();
        let roommate = self.roommate_onsets.iter().filter(during).max().copied();
        let onset = own.max(roommate);
        let start = onset.unwrap_or(first).max(first);
        let expected_end = days_after(start, rules.observation_days);
        let restarted_by = onset
            .filter(|o| *o > first)
            .map(|o| if own == Some(o) { Restart::OwnSigns } else { Restart::RoommateSigns });
        Some(Observation {
            kind,
            start,
            expected_end,
            due_for_release: day >= expected_end,
            extended_today: onset == Some(day) && day > first,
            restarted_by,
        })
    }

    /// The observation the rules put the person under, and the day the requirement ends
    /// (DOMAIN.md, "Isolation and medical observation"): centralized for anyone back from
    /// a key area (whatever the batch: [`Self::back_from_key_area`]), for close contacts
    /// of a case whatever their role (the national protocol; DOMAIN.md, decisions) and for
    /// students with two histories once back at school; home for staff with two
    /// histories; for the 14 days (configurable) from the return or last contact date.
    pub fn required_observation(&self, rules: &Rules) -> Option<(IsolationKind, NaiveDate)> {
        let (role, _) = self.registration.value.as_ref()?;
        let until = days_after(self.exposure_date()?, rules.observation_days);
        let histories = self.two_histories.value.is_some();
        let close_contact = self.close_contact.value.is_some();
        let kind = if self.back_from_key_area().is_some()
            || close_contact
            || (*role == Role::Student && histories && self.has_returned())
        {
            IsolationKind::Centralized
        } else if histories && *role != Role::Student {
            IsolationKind::Home
        } else {
            return None;
        };
        Some((kind, until))
    }

    /// The date the person came back from Hubei or another key area (DOMAIN.md, decisions:
    /// a fact of their history, not of the batch): a return to school after the latest
    /// whereabouts placing them in one, in any batch; or a return in batch 3, the batch
    /// of those still in Hubei (DOMAIN.md l. 64), stay recorded or not. `None` while they
    /// are there, or were never recorded there. Both registers are last-writer-wins, so
    /// comparing their stamps gives the same answer in any order of arrival.
    pub fn back_from_key_area(&self) -> Option<NaiveDate> {
        let (seen, back) = (&self.key_area_seen, &self.returned_on);
        let after_a_stay = seen.value.is_some() && self.returned_batch.stamp > seen.stamp;
        let batch_3 = self.returned_batch.value == Some(3);
        // A return stored before returns kept their date: batch 3 wrote it as the exposure.
        let stored_before = self.exposure.value.filter(|_| batch_3);
        (after_a_stay || batch_3).then(|| back.value.or(stored_before)).flatten()
    }

    /// The date the observation the rules require runs from: the travel or last contact
    /// date declared, or the return from a key area, the later of the two.
    pub fn exposure_date(&self) -> Option<NaiveDate> {
        self.exposure.value.max(self.back_from_key_area())
    }

    /// The observation the rules require, and until when, if the person is not under it
    /// (under none, or at home where centralized is required).
    pub fn observation_missing(&self, rules: &Rules) -> Option<(IsolationKind, NaiveDate)> {
        let (required, until) = self.required_observation(rules)?;
        match (required, self.under_observation(rules)) {
            (_, None) | (IsolationKind::Centralized, Some(IsolationKind::Home)) => Some((required, until)),
            _ => None,
        }
    }

    /// The return batch (DOMAIN.md, "Return to school in batches"): the one they came
    /// back with, else the one planned for them: 3 while in Hubei or another key area,
    /// 2 with two histories, 1 otherwise.
    pub fn return_batch(&self) -> u32 {
        match self.returned_batch.value {
            Some(batch) => batch,
            None if self.in_key_area.value => 3,
            None if self.two_histories.value.is_some() => 2,
            None => 1,
        }
    }

    /// On leave on `day`: requested, not closed, and `day` not past its last day.
    pub fn on_leave_on(&self, day: NaiveDate) -> bool {
        self.on_leave.value && self.leave_until.value.is_none_or(|until| day <= until)
    }

    /// The leave has run out (`day` is past its last day), it was not closed and the
    /// person is not back on campus: overdue, nowhere the school can check them.
    pub fn leave_overdue(&self, day: NaiveDate) -> bool {
        self.on_leave.value && self.leave_until.value.is_some_and(|until| day > until) && !self.on_campus.value
    }

    /// Back at school: returned with a batch, or on campus already.
    pub fn has_returned(&self) -> bool {
        self.returned_batch.value.is_some() || self.on_campus.value
    }

    /// Under observation, or ill: someone who must not come through the gate.
    pub fn kept_out(&self, rules: &Rules) -> bool {
        self.under_observation(rules).is_some()
            || self.sick_absent.value
            || matches!(self.diagnosis.value, Some(Diagnosis::Suspected | Diagnosis::Confirmed))
    }
}

/// `day` plus `days`, or the calendar's last day past it: intake bounds every date it
/// accepts, but the fold must not panic on a record that escaped the bounds (an older
/// log, a defect).
fn days_after(day: NaiveDate, days: u32) -> NaiveDate {
    day.checked_add_days(chrono::Days::new(u64::from(days))).unwrap_or(NaiveDate::MAX)
}

/// What the person did on one day; each flag counts the person once that day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayFlows {
    pub slots_checked: Vec<Slot>,
    pub fever: bool,
    pub symptoms: Vec<Symptom>,
    pub suspected_new: bool,
    pub confirmed_new: bool,
    pub released: bool,
    pub returned: bool,
    pub health_card: bool,
    pub gate_in: bool,
    pub gate_out: bool,
    pub observation_started: bool,
    pub sick_absence_started: bool,
    pub back_in_class: bool,
    /// An event of the person's own that day found them not registered (the roster
    /// broken, or the registration yet to come): counted per school while they stay so.
    /// Set only then, so that the days of persons on the roster keep their size stored.
    /// Stored as a bit of its own (`aggregator::timeline_codec`); skipped by serde, whose
    /// layouts (format 1, the legacy `p` keys) were written before it and are read only.
    #[serde(skip)]
    pub unrostered: bool,
    /// Every daily check of the day was acknowledged after its deadline: it came too late
    /// for the report to be on time. Cleared by one that came in time; stored as a bit of
    /// its own like `unrostered`, false in older layouts (in time, as before).
    #[serde(skip)]
    pub checked_late_only: bool,
}

/// Adds `item` to a set, sorted after: the same items in any order of arrival give the
/// same day. Days read from older layouts may hold theirs in arrival order, so membership
/// is a scan (of at most five), not a binary search.
fn insert<T: Ord>(set: &mut Vec<T>, item: T) {
    if !set.contains(&item) {
        set.push(item);
        set.sort_unstable();
    }
}

/// A person's state at the end of one day together with that day's flows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PersonDay {
    /// Shared with the day before while nothing changes it (most days hold only checks):
    /// a state is about 600 bytes, the day's flows 64.
    pub state: Arc<PersonState>,
    pub flows: DayFlows,
}

/// A key person as the school's lists show them (DOMAIN.md "Who is a key person" and the
/// table of persons under observation): who, where, why, and their observation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyPerson {
    pub school: String,
    pub person: String,
    pub role: Role,
    pub city: String,
    pub placement: Placement,
    pub in_key_area: bool,
    /// Back from Hubei or another key area on this date ([`PersonState::back_from_key_area`]).
    pub key_area_return: Option<NaiveDate>,
    pub two_histories: Option<(HistoryKind, NaiveDate)>,
    pub close_contact: Option<NaiveDate>,
    /// Kind, start of the period and its expected end.
    pub observation: Option<(IsolationKind, NaiveDate, NaiveDate)>,
    /// Why the latest release posted for them was refused, while they stay observed.
    pub release_refused: Option<Refusal>,
    /// The observation the rules require and they are not under, and until when it is
    /// required (the day the list is as of is before it).
    pub observation_missing: Option<(IsolationKind, NaiveDate)>,
}

/// Where a person counts on a day and what they add there.
#[derive(Debug, Clone, PartialEq)]
pub struct Contribution {
    /// Shared: most events leave a person's placement as it was, so a timeline builds
    /// the keys once and hands out the same list (see `Timeline`).
    pub units: Arc<[UnitKey]>,
    pub tally: Tally,
}

impl PersonDay {
    /// The day after: same state, nothing done yet.
    pub fn carried(&self) -> PersonDay {
        PersonDay { state: self.state.clone(), flows: DayFlows::default() }
    }

    /// Applies an event that happened on `day`, this entry's day, acknowledged in time.
    pub fn apply(&mut self, fact: &Fact, stamp: Stamp, day: NaiveDate, rules: &Rules) {
        self.apply_acked(fact, stamp, None, day, rules);
    }

    /// Applies an event that happened on `day`, this entry's day, acknowledged at `acked`
    /// (milliseconds since the epoch; `None` if not known, taken as in time).
    pub fn apply_acked(&mut self, fact: &Fact, stamp: Stamp, acked: Option<i64>, day: NaiveDate, rules: &Rules) {
        if let Fact::Temperature { slot, .. } = fact
            && slot.is_daily_quota()
        {
            let first_check = !self.flows.slots_checked.iter().any(|s| s.is_daily_quota());
            if rules.deadline.in_time(acked, day) {
                self.flows.checked_late_only = false;
            } else if first_check {
                self.flows.checked_late_only = true;
            }
        }
        self.apply_state_acked(fact, stamp, acked, day, rules);
        self.apply_flows(fact, rules);
        // A roommate's signs are derived, not an event posted about this person. Whether
        // they count is judged on the day's end state (`tally`): a registration of the
        // same day or an earlier one, arriving later, takes them off the count.
        let own = !matches!(fact, Fact::RoommateShowedSigns { .. });
        self.flows.unrostered |= own && self.state.registration.value.is_none();
    }

    /// Applies only the state part of an event of `day`: also used for later days.
    pub fn apply_state(&mut self, fact: &Fact, stamp: Stamp, day: NaiveDate, rules: &Rules) {
        self.apply_state_acked(fact, stamp, None, day, rules);
    }

    /// [`Self::apply_state`] of an event acknowledged at `acked`.
    pub fn apply_state_acked(&mut self, fact: &Fact, stamp: Stamp, acked: Option<i64>, day: NaiveDate, rules: &Rules) {
        if matches!(fact, Fact::Temperature { .. } | Fact::Symptoms(_)) && !rules.is_abnormal_sign(fact) {
            // A normal check changes no state: the day keeps sharing it.
            return;
        }
        let s = Arc::make_mut(&mut self.state);
        match fact {
            Fact::Registered { role, placement, city, on_campus } => {
                s.registration.write(Some((*role, city.clone())), stamp);
                // The earliest wins, whatever the order; an unknown time counts as earliest.
                let acked = acked.unwrap_or(i64::MIN);
                s.registration_acked = Some(s.registration_acked.map_or(acked, |at| at.min(acked)));
                s.placement.write(placement.clone(), stamp);
                s.enrolled.write(true, stamp);
                s.on_campus.write(*on_campus, stamp);
            }
            Fact::Moved { placement } => s.placement.write(placement.clone(), stamp),
            Fact::Left => s.enrolled.write(false, stamp),
            Fact::Temperature { .. } | Fact::Symptoms(_) => {
                s.abnormal_days.insert(day);
            }
            Fact::Diagnosed(d) => s.diagnosis.write(Some(*d), stamp),
            Fact::SickAbsenceStarted { .. } => s.sick_absent.write(true, stamp),
            Fact::SickAbsenceEnded => s.sick_absent.write(false, stamp),
            Fact::Whereabouts { in_key_area, on_campus, .. } => {
                s.in_key_area.write(*in_key_area, stamp);
                s.on_campus.write(*on_campus, stamp);
                if *in_key_area {
                    s.key_area_seen.write(Some(day), stamp);
                }
            }
            Fact::TwoHistories { kind: HistoryKind::CloseContact, date } => {
                s.close_contact.write(Some(*date), stamp);
                s.exposure.write(Some(*date), stamp);
            }
            Fact::TwoHistories { kind, date } => {
                s.two_histories.write(Some((*kind, *date)), stamp);
                s.exposure.write(Some(*date), stamp);
            }
            Fact::Returned { date, batch } => {
                s.on_campus.write(true, stamp);
                s.in_key_area.write(false, stamp);
                s.returned_batch.write(Some(*batch), stamp);
                // Whether they come back from a key area, and since when, is derived
                // (`back_from_key_area`): the exposure keeps the declared histories.
                s.returned_on.write(Some(*date), stamp);
            }
            Fact::IsolationStarted { kind, roommates, .. } => {
                s.isolation.write(Some(*kind), stamp);
                s.isolation_since.write(Some(day), stamp);
                s.roommates.write(roommates.clone(), stamp);
            }
            Fact::Released => s.release.write(Some(day), stamp),
            Fact::RoommateShowedSigns { onset } => {
                s.roommate_onsets.insert(*onset);
            }
            Fact::GatePassed(direction) => s.on_campus.write(*direction == Direction::In, stamp),
            Fact::LeaveRequested { until, .. } => {
                s.on_leave.write(true, stamp);
                s.leave_until.write(Some(*until), stamp);
            }
            Fact::LeaveClosed => s.on_leave.write(false, stamp),
            Fact::HealthCard { .. } => s.health_card_on.write(Some(day), stamp),
        }
    }

    /// The first day after `day` on which time alone changes what the person counts as:
    /// their observation falls due, the period the rules require one for runs out, or
    /// their leave does (the day after its last).
    pub fn turning_point(&self, day: NaiveDate, rules: &Rules) -> Option<NaiveDate> {
        let s = &self.state;
        let due = self.observation(day, rules).map(|o| o.expected_end);
        let required_until = s.required_observation(rules).map(|(_, until)| until);
        let leave_over = s.leave_until.value.filter(|_| s.on_leave.value).map(|until| days_after(until, 1));
        let rostered_in_time = s.registration_acked.and_then(|acked| rules.deadline.first_day_due_after(acked));
        due.into_iter().chain(required_until).chain(leave_over).chain(rostered_in_time).filter(|d| *d > day).min()
    }

    /// The person's observation on `day`, unless a valid release has ended it.
    pub fn observation(&self, day: NaiveDate, rules: &Rules) -> Option<Observation> {
        self.state.under_observation(rules)?;
        self.state.period(day, rules)
    }

    fn apply_flows(&mut self, fact: &Fact, rules: &Rules) {
        let f = &mut self.flows;
        match fact {
            Fact::Temperature { slot, celsius } => {
                insert(&mut f.slots_checked, *slot);
                f.fever |= *celsius >= rules.fever_threshold_celsius;
            }
            Fact::Symptoms(symptoms) => symptoms.iter().for_each(|s| insert(&mut f.symptoms, *s)),
            Fact::HealthCard { .. } => f.health_card = true,
            Fact::Diagnosed(Diagnosis::Suspected) => f.suspected_new = true,
            Fact::Diagnosed(Diagnosis::Confirmed) => f.confirmed_new = true,
            Fact::Released => f.released = true,
            Fact::Returned { .. } => f.returned = true,
            Fact::IsolationStarted { .. } => f.observation_started = true,
            Fact::SickAbsenceStarted { .. } => f.sick_absence_started = true,
            Fact::SickAbsenceEnded => f.back_in_class = true,
            Fact::GatePassed(Direction::In) => f.gate_in = true,
            Fact::GatePassed(Direction::Out) => f.gate_out = true,
            _ => {}
        }
    }

    /// The person as a key person on `day`; `None` if enrolled but not a key person.
    pub fn key_person(&self, school: &str, person: &str, day: NaiveDate, rules: &Rules) -> Option<KeyPerson> {
        let s = &self.state;
        // Asked of every day of every person written: nothing is cloned for those who are
        // not key persons (most).
        s.registration.value.as_ref()?;
        let observation = self.observation(day, rules).map(|o| (o.kind, o.start, o.expected_end));
        // As the day's report flags it: no longer once the 14 days have run out.
        let observation_missing = s.observation_missing(rules).filter(|(_, until)| day < *until);
        let key_area_return = s.back_from_key_area();
        let key = s.in_key_area.value
            || key_area_return.is_some()
            || s.two_histories.value.is_some()
            || s.close_contact.value.is_some()
            || observation.is_some()
            || observation_missing.is_some();
        let (role, city) = s.registration.value.clone().filter(|_| s.enrolled.value && key)?;
        Some(KeyPerson {
            school: school.to_owned(),
            person: person.to_owned(),
            role,
            city,
            placement: s.placement.value.clone(),
            in_key_area: s.in_key_area.value,
            key_area_return,
            two_histories: s.two_histories.value,
            close_contact: s.close_contact.value,
            release_refused: observation.and(s.release_refusal(rules)),
            observation,
            observation_missing,
        })
    }

    /// Where this person counts on `day` (this entry's day) and what they add; `None`
    /// while not enrolled. A person not registered, with events of that day, counts in
    /// their school alone, as `Unrostered` (their city is not known).
    pub fn contribution(&self, school: &str, day: NaiveDate, rules: &Rules) -> Option<Contribution> {
        let tally = self.tally(day, rules)?;
        let units = match self.city() {
            Some(city) => UnitKey::for_person(city, school, &self.state.placement.value).into(),
            None => Arc::from([UnitKey::school(school)]),
        };
        Some(Contribution { units, tally })
    }

    /// The city of the person's school as registered; `None` before registration.
    pub fn city(&self) -> Option<&str> {
        self.state.registration.value.as_ref().map(|(_, city)| city.as_str())
    }

    /// What this person adds on `day` (this entry's day) to each unit they count in;
    /// `None` while not enrolled. Not registered at the day's end, with events of their
    /// own that day: only `Unrostered`, in their school.
    pub fn tally(&self, day: NaiveDate, rules: &Rules) -> Option<Tally> {
        let s = &self.state;
        let Some((role, _)) = s.registration.value.as_ref() else {
            let mut t = Tally::default();
            t.mark(Measure::Unrostered, true);
            return self.flows.unrostered.then_some(t);
        };
        if !s.enrolled.value {
            return None;
        }
        let f = &self.flows;
        let mut t = Tally::default();
        t.mark(Measure::Population, true);
        t.mark(Measure::population_of(*role), true);
        t.mark(Measure::PresentOnCampus, s.on_campus.value);
        t.mark(Measure::InKeyArea, s.in_key_area.value);
        t.mark(Measure::TwoHistories, s.two_histories.value.is_some());
        t.mark(Measure::CloseContacts, s.close_contact.value.is_some());
        let expected = s.on_campus.value && !s.on_leave_on(day);
        t.mark(Measure::ChecksExpected, expected);
        let checked = f.slots_checked.iter().any(|slot| slot.is_daily_quota());
        t.mark(Measure::CheckedExpected, expected && checked);
        // Timeliness: the roster and the checks as acknowledged by the day's deadline.
        let rostered_in_time = s.registration_acked.is_none_or(|at| at < rules.deadline.millis_of(day));
        t.mark(Measure::ExpectedByDeadline, expected && rostered_in_time);
        t.mark(Measure::CheckedByDeadline, expected && rostered_in_time && checked && !f.checked_late_only);
        t.mark(Measure::FlagLeaveOverdue, s.leave_overdue(day));
        for slot in &f.slots_checked {
            t.mark(Measure::checked(*slot), true);
        }
        t.mark(Measure::Fever, f.fever);
        for symptom in &f.symptoms {
            t.mark(Measure::symptom(*symptom), true);
        }
        t.mark(Measure::SuspectedNew, f.suspected_new);
        t.mark(Measure::SuspectedCurrent, s.diagnosis.value == Some(Diagnosis::Suspected));
        t.mark(Measure::ConfirmedNew, f.confirmed_new);
        t.mark(Measure::ConfirmedCurrent, s.diagnosis.value == Some(Diagnosis::Confirmed));
        let under = s.under_observation(rules);
        t.mark(Measure::HomeObservation, under == Some(IsolationKind::Home));
        t.mark(Measure::CentralizedObservation, under == Some(IsolationKind::Centralized));
        let refused = f.released && s.release.value == Some(day) && s.release_refusal(rules).is_some();
        t.mark(Measure::Released, f.released && !refused);
        t.mark(Measure::FlagReleaseRefused, refused);
        t.mark(Measure::FlagObservationMissing, s.observation_missing(rules).is_some_and(|(_, until)| day < until));
        t.mark(Measure::SickAbsent, s.sick_absent.value);
        // One person, one abnormal, however many signs (issue 23).
        let ongoing =
            s.sick_absent.value || matches!(s.diagnosis.value, Some(Diagnosis::Suspected | Diagnosis::Confirmed));
        let today = f.fever || !f.symptoms.is_empty() || f.suspected_new || f.confirmed_new || f.sick_absence_started;
        t.mark(Measure::AbnormalOngoing, ongoing);
        t.mark(Measure::AbnormalToday, today && !ongoing);
        // What happened that day, not its net: off sick at 10:00 and back at 12:00 is one
        // absence begun and one return to class (issue 23).
        t.mark(Measure::SickAbsenceStarted, f.sick_absence_started);
        t.mark(Measure::BackInClass, f.back_in_class);
        t.mark(Measure::Returned, f.returned);
        t.mark(Measure::HealthCards, f.health_card);
        t.mark(Measure::GateIn, f.gate_in);
        t.mark(Measure::GateOut, f.gate_out);
        let observation = under.and_then(|_| s.period(day, rules));
        t.mark(Measure::ObservationStarted, f.observation_started);
        t.mark(Measure::DueForRelease, observation.is_some_and(|o| o.due_for_release));
        t.mark(Measure::ObservationExtended, observation.is_some_and(|o| o.extended_today));
        let batch = s.return_batch();
        for (planned, returned, n) in [
            (Measure::Batch1Planned, Measure::Batch1Returned, 1),
            (Measure::Batch2Planned, Measure::Batch2Returned, 2),
            (Measure::Batch3Planned, Measure::Batch3Returned, 3),
        ] {
            t.mark(planned, batch == n);
            t.mark(returned, batch == n && s.has_returned());
        }
        // What the rules forbid, judged on the day's end state.
        t.mark(Measure::FlagGateInKeptOut, f.gate_in && s.kept_out(rules));
        let card_in_time = s.health_card_on.value.is_some_and(|on| on <= day);
        t.mark(Measure::FlagReturnedWithoutHealthCard, f.returned && !card_in_time);
        let boarder = !s.placement.value.dorm.is_empty();
        t.mark(Measure::FlagBoarderLeftWithoutLeave, f.gate_out && boarder && !s.on_leave_on(day));
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d() -> NaiveDate {
        NaiveDate::from_ymd_opt(2020, 3, 2).unwrap()
    }

    fn registered(class: &str) -> Fact {
        Fact::Registered {
            role: Role::Student,
            placement: Placement { department: "D".into(), grade: "G".into(), class: class.into(), dorm: "R".into() },
            city: "C".into(),
            on_campus: true,
        }
    }

    #[test]
    fn a_slot_checked_again_counts_once_even_on_a_day_stored_in_arrival_order() {
        let rules = Rules::default();
        let mut day = PersonDay::default();
        // As format 1 and the `p` layout stored it: the gate reading came first.
        day.flows.slots_checked = vec![Slot::Gate, Slot::Morning];
        day.apply(&Fact::Temperature { slot: Slot::Gate, celsius: 36.5 }, Stamp::new(1, "g2"), d(), &rules);
        assert_eq!(day.flows.slots_checked, [Slot::Gate, Slot::Morning], "the gate once");
        day.flows.symptoms = vec![Symptom::Cough, Symptom::Fever];
        day.apply(&Fact::Symptoms(vec![Symptom::Cough]), Stamp::new(2, "s2"), d(), &rules);
        assert_eq!(day.flows.symptoms, [Symptom::Cough, Symptom::Fever], "the cough once");
    }

    #[test]
    fn three_fever_readings_count_one_person_with_fever() {
        let rules = Rules::default();
        let mut day = PersonDay::default();
        day.apply(&registered("A"), Stamp::new(0, "r"), d(), &rules);
        for (i, c) in [38.1, 37.3, 39.0].into_iter().enumerate() {
            day.apply(
                &Fact::Temperature { slot: Slot::Morning, celsius: c },
                Stamp::new(i as i64 + 1, "t"),
                d(),
                &rules,
            );
        }
        let tally = day.contribution("S", d(), &Rules::default()).unwrap().tally;
        assert_eq!(tally.get(Measure::Fever), 1);
        assert_eq!(tally.get(Measure::CheckedMorning), 1);
    }

    #[test]
    fn abnormal_counts_the_person_once_however_many_signs() {
        let rules = Rules::default();
        let abnormal = |day: &PersonDay| {
            let t = day.tally(d(), &rules).unwrap();
            t.get(Measure::AbnormalOngoing) + t.get(Measure::AbnormalToday)
        };
        let mut day = PersonDay::default();
        day.apply(&registered("A"), Stamp::new(0, "r"), d(), &rules);
        assert_eq!(abnormal(&day), 0);
        day.apply(&Fact::Symptoms(vec![Symptom::Cough, Symptom::Fatigue]), Stamp::new(1, "s"), d(), &rules);
        assert_eq!(abnormal(&day), 1, "two symptoms, one person");
        day.apply(&Fact::Temperature { slot: Slot::Noon, celsius: 38.0 }, Stamp::new(2, "t"), d(), &rules);
        day.apply(&Fact::Diagnosed(Diagnosis::Suspected), Stamp::new(3, "x"), d(), &rules);
        day.apply(&Fact::SickAbsenceStarted { reason: String::new() }, Stamp::new(4, "a"), d(), &rules);
        assert_eq!(abnormal(&day), 1, "fever, symptoms, suspected and off sick: still one person");
        // The next day keeps only what lasts: the diagnosis and the absence, once.
        let next = day.carried().tally(d().succ_opt().unwrap(), &rules).unwrap();
        assert_eq!((next.get(Measure::AbnormalOngoing), next.get(Measure::AbnormalToday)), (1, 0));
    }

    #[test]
    fn threshold_is_inclusive_and_configurable() {
        let strict = Rules { fever_threshold_celsius: 37.5, ..Rules::default() };
        let mut day = PersonDay::default();
        day.apply(&registered("A"), Stamp::new(0, "r"), d(), &strict);
        day.apply(&Fact::Temperature { slot: Slot::Noon, celsius: 37.4 }, Stamp::new(1, "t"), d(), &strict);
        assert_eq!(day.contribution("S", d(), &Rules::default()).unwrap().tally.get(Measure::Fever), 0);
        day.apply(&Fact::Temperature { slot: Slot::Noon, celsius: 37.5 }, Stamp::new(2, "u"), d(), &strict);
        assert_eq!(day.contribution("S", d(), &Rules::default()).unwrap().tally.get(Measure::Fever), 1);
    }

    #[test]
    fn later_event_time_wins_whatever_the_arrival_order() {
        let rules = Rules::default();
        let early = Fact::Moved {
            placement: Placement { department: "D".into(), grade: "G".into(), class: "B".into(), dorm: String::new() },
        };
        let late = Fact::Moved {
            placement: Placement { department: "D".into(), grade: "G".into(), class: "C".into(), dorm: String::new() },
        };
        let mut a = PersonDay::default();
        a.apply(&registered("A"), Stamp::new(0, "r"), d(), &rules);
        let mut b = a.clone();
        a.apply(&early, Stamp::new(5, "e"), d(), &rules);
        a.apply(&late, Stamp::new(9, "l"), d(), &rules);
        b.apply(&late, Stamp::new(9, "l"), d(), &rules);
        b.apply(&early, Stamp::new(5, "e"), d(), &rules);
        assert_eq!(a, b);
        assert_eq!(a.state.placement.value.class, "C");
    }

    #[test]
    fn nobody_counts_before_registration_or_after_leaving() {
        let rules = Rules::default();
        let mut day = PersonDay::default();
        day.apply(&Fact::Temperature { slot: Slot::Morning, celsius: 36.5 }, Stamp::new(1, "t"), d(), &rules);
        // Not on the roster: counted only as such, in the school, nowhere else.
        let unrostered = day.contribution("S", d(), &rules).expect("an event of their own that day");
        assert_eq!(&*unrostered.units, &[crate::UnitKey::school("S")]);
        assert_eq!((unrostered.tally.get(Measure::Unrostered), unrostered.tally.get(Measure::Population)), (1, 0));
        assert_eq!(unrostered.tally.get(Measure::CheckedMorning), 0);
        day.apply(&registered("A"), Stamp::new(0, "r"), d(), &rules);
        assert_eq!(day.contribution("S", d(), &Rules::default()).unwrap().tally.get(Measure::CheckedMorning), 1);
        day.apply(&Fact::Left, Stamp::new(2, "l"), d(), &rules);
        assert!(day.contribution("S", d(), &Rules::default()).is_none());
    }
}
