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
    pub sick_absent: u32,
    pub returned: u32,
    pub health_cards: u32,
    pub gate_in: u32,
    pub gate_out: u32,
    pub zero_report: bool,
}

impl DailyReport {
    pub fn from_tally(unit: UnitKey, date: Day, t: &Tally) -> Self {
        // A negative count would mean a broken fold; clamp for display, tests catch it.
        let n = |m: Measure| u32::try_from(t.get(m)).unwrap_or(0);
        let symptoms: Vec<(Symptom, u32)> = Symptom::ALL.iter().map(|s| (*s, n(Measure::symptom(*s)))).collect();
        let abnormal = n(Measure::Fever)
            + symptoms.iter().map(|(_, c)| c).sum::<u32>()
            + n(Measure::SuspectedNew)
            + n(Measure::SuspectedCurrent)
            + n(Measure::ConfirmedNew)
            + n(Measure::ConfirmedCurrent)
            + n(Measure::SickAbsent);
        DailyReport {
            unit,
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
            sick_absent: n(Measure::SickAbsent),
            returned: n(Measure::Returned),
            health_cards: n(Measure::HealthCards),
            gate_in: n(Measure::GateIn),
            gate_out: n(Measure::GateOut),
            zero_report: abnormal == 0,
        }
    }
}
