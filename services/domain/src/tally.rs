//! The measures of a daily report as one vector of counts.
//!
//! A person's contribution to a day is a tally of zeros and ones; a unit's report is the
//! sum of its persons' tallies. Keeping every measure in one vector lets folds move a
//! person between units with one subtraction and one addition.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::event::{Role, Slot, Symptom};

macro_rules! measures {
    ($($name:ident: $kind:ident,)*) => {
        /// One count of the daily report. `State` measures describe the end of the day and
        /// carry over to days with no events; `Flow` measures count what happened that day.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Measure { $($name,)* }

        impl Measure {
            pub const ALL: &'static [Measure] = &[$(Measure::$name,)*];
            pub const COUNT: usize = Self::ALL.len();

            pub fn is_state(self) -> bool {
                match self { $(Measure::$name => matches!(MeasureKind::$kind, MeasureKind::State),)* }
            }
        }
    };
}

enum MeasureKind {
    State,
    Flow,
}

measures! {
    Population: State,
    Student: State,
    Teacher: State,
    Staff: State,
    TemporaryHire: State,
    PropertyManagement: State,
    CanteenWorker: State,
    OtherResident: State,
    PresentOnCampus: State,
    InKeyArea: State,
    TwoHistories: State,
    ChecksExpected: State,
    CheckedMorning: Flow,
    CheckedNoon: Flow,
    CheckedEvening: Flow,
    CheckedGate: Flow,
    CheckedCanteen: Flow,
    Fever: Flow,
    SymptomFever: Flow,
    SymptomCough: Flow,
    SymptomFatigue: Flow,
    SymptomOtherRespiratory: Flow,
    SuspectedNew: Flow,
    SuspectedCurrent: State,
    ConfirmedNew: Flow,
    ConfirmedCurrent: State,
    HomeObservation: State,
    CentralizedObservation: State,
    Released: Flow,
    SickAbsent: State,
    Returned: Flow,
    HealthCards: Flow,
    GateIn: Flow,
    GateOut: Flow,
    ObservationStarted: Flow,
    DueForRelease: State,
    ObservationExtended: Flow,
    Batch1Planned: State,
    Batch1Returned: State,
    Batch2Planned: State,
    Batch2Returned: State,
    Batch3Planned: State,
    Batch3Returned: State,
    FlagGateInKeptOut: Flow,
    FlagReturnedWithoutHealthCard: Flow,
    FlagBoarderLeftWithoutLeave: Flow,
    CloseContacts: State,
    // Persons expected in the daily checks who had at least one that day: coverage.
    CheckedExpected: Flow,
    // Releases posted before the person was due (or while not under observation).
    FlagReleaseRefused: Flow,
    // Persons the rules put under observation who are not under it (or at home where
    // centralized observation is required).
    FlagObservationMissing: State,
    // Sick absence that began that day, and persons back in class after one (复课).
    SickAbsenceStarted: Flow,
    BackInClass: Flow,
}

impl Measure {
    pub fn population_of(role: Role) -> Measure {
        match role {
            Role::Student => Self::Student,
            Role::Teacher => Self::Teacher,
            Role::Staff => Self::Staff,
            Role::TemporaryHire => Self::TemporaryHire,
            Role::PropertyManagement => Self::PropertyManagement,
            Role::CanteenWorker => Self::CanteenWorker,
            Role::OtherResident => Self::OtherResident,
        }
    }

    pub fn checked(slot: Slot) -> Measure {
        match slot {
            Slot::Morning => Self::CheckedMorning,
            Slot::Noon => Self::CheckedNoon,
            Slot::Evening => Self::CheckedEvening,
            Slot::Gate => Self::CheckedGate,
            Slot::Canteen => Self::CheckedCanteen,
        }
    }

    pub fn symptom(symptom: Symptom) -> Measure {
        match symptom {
            Symptom::Fever => Self::SymptomFever,
            Symptom::Cough => Self::SymptomCough,
            Symptom::Fatigue => Self::SymptomFatigue,
            Symptom::OtherRespiratory => Self::SymptomOtherRespiratory,
        }
    }
}

/// Counts indexed by [`Measure`]. Signed, so that a delta is a tally too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tally([i32; Measure::COUNT]);

impl Default for Tally {
    fn default() -> Self {
        Self([0; Measure::COUNT])
    }
}

impl Tally {
    pub fn get(&self, measure: Measure) -> i32 {
        self.0[measure as usize]
    }

    pub fn set(&mut self, measure: Measure, value: i32) {
        self.0[measure as usize] = value;
    }

    pub fn mark(&mut self, measure: Measure, on: bool) {
        if on {
            self.0[measure as usize] += 1;
        }
    }

    pub fn add(&mut self, other: &Tally) {
        self.0.iter_mut().zip(other.0).for_each(|(a, b)| *a += b);
    }

    pub fn subtract(&mut self, other: &Tally) {
        self.0.iter_mut().zip(other.0).for_each(|(a, b)| *a -= b);
    }

    pub fn negated(&self) -> Tally {
        Tally(self.0.map(|v| -v))
    }

    pub fn is_zero(&self) -> bool {
        self.0.iter().all(|&v| v == 0)
    }

    /// Only the state measures: what a day with no events inherits from the day before.
    pub fn state_only(&self) -> Tally {
        let mut out = *self;
        for &m in Measure::ALL {
            if !m.is_state() {
                out.set(m, 0);
            }
        }
        out
    }
}

// Stored as a plain sequence so that adding a measure at the end keeps old records
// readable (missing counts read as zero).
impl Serialize for Tally {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.as_slice().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Tally {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let values = Vec::<i32>::deserialize(deserializer)?;
        let mut tally = Tally::default();
        tally.0.iter_mut().zip(values).for_each(|(slot, v)| *slot = v);
        Ok(tally)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_then_subtract_is_identity() {
        let mut a = Tally::default();
        a.mark(Measure::Fever, true);
        a.mark(Measure::Population, true);
        let mut sum = Tally::default();
        sum.add(&a);
        sum.add(&a);
        sum.subtract(&a);
        assert_eq!(sum, a);
        assert_eq!(sum.state_only().get(Measure::Fever), 0);
        assert_eq!(sum.state_only().get(Measure::Population), 1);
    }
}
