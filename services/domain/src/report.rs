//! A unit's daily report, read off the unit's tally for the day.

use serde::{Deserialize, Serialize};

use crate::Day;
use crate::event::{Role, Slot, Symptom};
use crate::tally::{Measure, Tally};
use crate::unit::UnitKey;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotCoverage {
    pub slot: Slot,
    pub done: u32,
    /// Persons expected in this slot; zero for gate and canteen, which have no quota.
    pub expected: u32,
}

/// Return to school in batches: planned for the batch, and back already.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchCount {
    pub batch: u32,
    pub planned: u32,
    pub returned: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DailyReport {
    pub unit: UnitKey,
    /// Display names, filled by whoever reads the report (empty while the unit has none);
    /// not a figure: naming a unit changes no version.
    pub names: crate::unit::UnitNames,
    pub date: Day,
    pub population: u32,
    pub population_by_role: Vec<(Role, u32)>,
    pub present_on_campus: u32,
    pub in_key_area: u32,
    pub two_histories: u32,
    /// Close contacts of a suspected or confirmed case.
    pub close_contacts: u32,
    pub checks: Vec<SlotCoverage>,
    pub fever: u32,
    pub symptoms: Vec<(Symptom, u32)>,
    pub suspected_new: u32,
    pub suspected_current: u32,
    pub confirmed_new: u32,
    pub confirmed_current: u32,
    pub home_observation: u32,
    pub centralized_observation: u32,
    pub released: u32,
    pub observation_started: u32,
    pub due_for_release: u32,
    pub observation_extended: u32,
    pub batches: Vec<BatchCount>,
    /// Persons under observation or ill who came in through the gate.
    pub gate_in_kept_out: u32,
    /// Persons who returned without a health card on or before the day.
    pub returned_without_health_card: u32,
    /// Boarders who went out through the gate of the closed campus without leave.
    pub boarder_left_without_leave: u32,
    /// Releases posted for persons not yet due: refused.
    pub releases_refused: u32,
    /// Persons not under the observation the rules require.
    pub observation_missing: u32,
    /// Persons whose leave has run out, not closed, who are not back on campus.
    pub leave_overdue: u32,
    /// Persons not on the roster (never registered at the school) with events that day.
    pub unrostered: u32,
    pub sick_absent: u32,
    /// Sick absence that began that day.
    pub sick_absence_started: u32,
    /// Back in class after a sick absence that day (复课).
    pub back_in_class: u32,
    pub returned: u32,
    pub health_cards: u32,
    pub gate_in: u32,
    pub gate_out: u32,
    /// Persons expected in the daily checks who had at least one: the report's coverage.
    pub checked_any: u32,
    /// Timeliness (issue 23): persons expected whose registration was acknowledged by the
    /// day's deadline, and of them those with a daily check acknowledged by then. Not
    /// figures of their own: they decide the status.
    pub expected_by_deadline: u32,
    pub checked_by_deadline: u32,
    /// Persons with something abnormal, each once: fever, symptoms, a suspected or
    /// confirmed diagnosis, or sick absence (begun that day or lasting at its end).
    pub abnormal: u32,
    /// Nothing abnormal in a report that counts as sent (see [`crate::close`]): a missing
    /// report is never a zero report.
    pub zero_report: bool,
    pub status: ReportStatus,
    /// 0 while the day is open; 1 when sealed; each later change adds one.
    pub version: u32,
    pub revised: bool,
    /// What a revision changed against the version before it.
    pub changes: Vec<FieldChange>,
    /// For cities and the province: how many of their schools reported.
    pub reporting: Option<ReportingRate>,
}

/// Where a unit's report for a day stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ReportStatus {
    /// Before the day's deadline: live figures, not yet a report.
    Open,
    /// Sent in time: coverage reached the threshold by the deadline.
    OnTime,
    /// Coverage reached the threshold only after the deadline.
    Late,
    /// Coverage below the threshold (or no checks at all): not sent.
    Missing,
    /// A city's or the province's: some of its schools sent, not all.
    Incomplete,
}

impl ReportStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::OnTime => "on_time",
            Self::Late => "late",
            Self::Missing => "missing",
            Self::Incomplete => "incomplete",
        }
    }

    /// Sent in full: on time or late.
    pub fn has_reported(self) -> bool {
        matches!(self, Self::OnTime | Self::Late)
    }

    /// The better of two judgements of one report: a report once sent stays sent, and
    /// moves from missing or late to on time when events that came in time are folded.
    pub fn or_better(self, other: Self) -> Self {
        let rank = |s: Self| match s {
            Self::Open | Self::Missing => 0,
            Self::Incomplete => 1,
            Self::Late => 2,
            Self::OnTime => 3,
        };
        if rank(other) > rank(self) { other } else { self }
    }
}

/// One figure a revision changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    pub field: String,
    pub before: i64,
    pub after: i64,
}

/// Reporting rates of a summary, as DHIS2 defines them: expected reports, actual reports
/// (on time or late) and reports on time, with the schools still missing or late.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportingRate {
    pub expected: u32,
    pub actual: u32,
    pub on_time: u32,
    pub missing: Vec<UnitKey>,
    pub late: Vec<UnitKey>,
}

impl ReportingRate {
    /// A city's or the province's status, from its schools' (issue 23): on time only when
    /// every school sent on time, late when every school sent and some late, incomplete
    /// while some have not sent, missing when none has (or none is expected).
    pub fn status(&self) -> ReportStatus {
        if self.actual == 0 {
            ReportStatus::Missing
        } else if self.actual < self.expected {
            ReportStatus::Incomplete
        } else if self.on_time < self.expected {
            ReportStatus::Late
        } else {
            ReportStatus::OnTime
        }
    }

    /// Counts a school expected to report, by its status: an open or incomplete report is
    /// not sent, so missing.
    pub fn count(&mut self, school: UnitKey, status: ReportStatus) {
        self.expected += 1;
        match status {
            ReportStatus::OnTime => {
                self.actual += 1;
                self.on_time += 1;
            }
            ReportStatus::Late => {
                self.actual += 1;
                self.late.push(school);
            }
            ReportStatus::Missing | ReportStatus::Open | ReportStatus::Incomplete => self.missing.push(school),
        }
    }
}

impl DailyReport {
    pub fn from_tally(unit: UnitKey, date: Day, t: &Tally) -> Self {
        // A negative count would mean a broken fold; clamp for display, tests catch it.
        let n = |m: Measure| u32::try_from(t.get(m)).unwrap_or(0);
        let symptoms: Vec<(Symptom, u32)> = Symptom::ALL.iter().map(|s| (*s, n(Measure::symptom(*s)))).collect();
        // Persons, each once: the two parts count disjoint persons.
        let abnormal = n(Measure::AbnormalOngoing) + n(Measure::AbnormalToday);
        DailyReport {
            unit,
            names: crate::unit::UnitNames::default(),
            date,
            population: n(Measure::Population),
            population_by_role: Role::ALL.iter().map(|r| (*r, n(Measure::population_of(*r)))).collect(),
            present_on_campus: n(Measure::PresentOnCampus),
            in_key_area: n(Measure::InKeyArea),
            two_histories: n(Measure::TwoHistories),
            close_contacts: n(Measure::CloseContacts),
            checks: Slot::ALL
                .iter()
                .map(|s| SlotCoverage {
                    slot: *s,
                    done: n(Measure::checked(*s)),
                    expected: if s.is_daily_quota() { n(Measure::ChecksExpected) } else { 0 },
                })
                .collect(),
            fever: n(Measure::Fever),
            symptoms,
            suspected_new: n(Measure::SuspectedNew),
            suspected_current: n(Measure::SuspectedCurrent),
            confirmed_new: n(Measure::ConfirmedNew),
            confirmed_current: n(Measure::ConfirmedCurrent),
            home_observation: n(Measure::HomeObservation),
            centralized_observation: n(Measure::CentralizedObservation),
            released: n(Measure::Released),
            observation_started: n(Measure::ObservationStarted),
            due_for_release: n(Measure::DueForRelease),
            observation_extended: n(Measure::ObservationExtended),
            batches: [
                (1, Measure::Batch1Planned, Measure::Batch1Returned),
                (2, Measure::Batch2Planned, Measure::Batch2Returned),
                (3, Measure::Batch3Planned, Measure::Batch3Returned),
            ]
            .into_iter()
            .map(|(batch, planned, returned)| BatchCount { batch, planned: n(planned), returned: n(returned) })
            .collect(),
            gate_in_kept_out: n(Measure::FlagGateInKeptOut),
            returned_without_health_card: n(Measure::FlagReturnedWithoutHealthCard),
            boarder_left_without_leave: n(Measure::FlagBoarderLeftWithoutLeave),
            releases_refused: n(Measure::FlagReleaseRefused),
            observation_missing: n(Measure::FlagObservationMissing),
            leave_overdue: n(Measure::FlagLeaveOverdue),
            unrostered: n(Measure::Unrostered),
            sick_absent: n(Measure::SickAbsent),
            sick_absence_started: n(Measure::SickAbsenceStarted),
            back_in_class: n(Measure::BackInClass),
            returned: n(Measure::Returned),
            health_cards: n(Measure::HealthCards),
            gate_in: n(Measure::GateIn),
            gate_out: n(Measure::GateOut),
            checked_any: n(Measure::CheckedExpected),
            expected_by_deadline: n(Measure::ExpectedByDeadline),
            checked_by_deadline: n(Measure::CheckedByDeadline),
            abnormal,
            // Decided by the close rules, which know whether the report counts as sent.
            zero_report: false,
            status: ReportStatus::Open,
            version: 0,
            revised: false,
            changes: Vec::new(),
            reporting: None,
        }
    }

    /// Checked persons over expected ones; `None` when nobody is expected.
    pub fn coverage(&self) -> Option<f64> {
        let expected = self.checks.iter().map(|c| c.expected).max().unwrap_or(0);
        (expected > 0).then(|| f64::from(self.checked_any) / f64::from(expected))
    }

    /// Of the persons on the roster by the deadline and expected, those checked by events
    /// acknowledged by then; `None` when nobody is.
    pub fn coverage_by_deadline(&self) -> Option<f64> {
        (self.expected_by_deadline > 0)
            .then(|| f64::from(self.checked_by_deadline) / f64::from(self.expected_by_deadline))
    }

    /// Every figure of the report by name, in a fixed order: what a version compares.
    pub fn figures(&self) -> Vec<(String, i64)> {
        let mut out: Vec<(String, i64)> = Vec::new();
        let mut put = |name: &str, v: u32| out.push((name.to_owned(), i64::from(v)));
        put("population", self.population);
        for (role, n) in &self.population_by_role {
            put(&format!("population_by_role.{}", role.as_str()), *n);
        }
        put("present_on_campus", self.present_on_campus);
        put("in_key_area", self.in_key_area);
        put("two_histories", self.two_histories);
        put("close_contacts", self.close_contacts);
        for c in &self.checks {
            put(&format!("checks.{}.done", c.slot.as_str()), c.done);
            put(&format!("checks.{}.expected", c.slot.as_str()), c.expected);
        }
        put("checked_any", self.checked_any);
        put("fever", self.fever);
        for (symptom, n) in &self.symptoms {
            put(&format!("symptoms.{}", symptom.as_str()), *n);
        }
        put("suspected_new", self.suspected_new);
        put("suspected_current", self.suspected_current);
        put("confirmed_new", self.confirmed_new);
        put("confirmed_current", self.confirmed_current);
        put("home_observation", self.home_observation);
        put("centralized_observation", self.centralized_observation);
        put("released", self.released);
        put("observation_started", self.observation_started);
        put("due_for_release", self.due_for_release);
        put("observation_extended", self.observation_extended);
        for b in &self.batches {
            put(&format!("batches.{}.planned", b.batch), b.planned);
            put(&format!("batches.{}.returned", b.batch), b.returned);
        }
        put("gate_in_kept_out", self.gate_in_kept_out);
        put("returned_without_health_card", self.returned_without_health_card);
        put("boarder_left_without_leave", self.boarder_left_without_leave);
        put("releases_refused", self.releases_refused);
        put("observation_missing", self.observation_missing);
        put("sick_absent", self.sick_absent);
        put("sick_absence_started", self.sick_absence_started);
        put("back_in_class", self.back_in_class);
        put("returned", self.returned);
        put("health_cards", self.health_cards);
        put("gate_in", self.gate_in);
        put("gate_out", self.gate_out);
        if let Some(r) = &self.reporting {
            put("reporting.expected", r.expected);
            put("reporting.actual", r.actual);
            put("reporting.on_time", r.on_time);
        }
        // Last: a figure added later keeps the positions of those published before it.
        put("leave_overdue", self.leave_overdue);
        put("unrostered", self.unrostered);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(expected: u32, actual: u32, on_time: u32) -> ReportingRate {
        ReportingRate { expected, actual, on_time, ..ReportingRate::default() }
    }

    #[test]
    fn a_roll_up_is_on_time_only_when_every_school_is() {
        assert_eq!(rate(2, 2, 2).status(), ReportStatus::OnTime);
        assert_eq!(rate(2, 2, 1).status(), ReportStatus::Late, "all sent, one late");
        assert_eq!(rate(2, 1, 1).status(), ReportStatus::Incomplete, "one on time, one missing");
        assert_eq!(rate(2, 0, 0).status(), ReportStatus::Missing);
        assert_eq!(rate(0, 0, 0).status(), ReportStatus::Missing, "no school expected: nothing sent");
        assert!(!ReportStatus::Incomplete.has_reported(), "never a zero report");
    }
}
