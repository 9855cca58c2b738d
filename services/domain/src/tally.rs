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
    // Persons with something abnormal, each once (ARCHITECTURE.md's first invariant), in
    // two parts so that days without events inherit only what lasts: a suspected or
    // confirmed diagnosis or sick absence at the day's end; else signs seen that day.
    AbnormalOngoing: State,
    AbnormalToday: Flow,
    // Persons whose leave ran out (past its last day), not closed, and not back on campus.
    FlagLeaveOverdue: State,
    // Persons not on the roster (never registered at the school) with events of their
    // own that day: counted in their school alone, so that a broken roster is seen.
    Unrostered: Flow,
    // Timeliness (issue 23): persons expected whose registration was acknowledged by the
    // day's deadline, and of them those with a daily check acknowledged by then.
    ExpectedByDeadline: State,
    CheckedByDeadline: Flow,
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

// Stored as a sequence of counts, so that adding a measure at the end keeps old records
// readable (missing counts read as zero). Most units are dorms and classes with a handful
// of counts that are not zero; those are stored sparse, marked by a negative first
// element (a count stored whole starts with the population, never negative):
// `[-1 - mask bits 0..31, mask bits 31.., each count that is not zero]`.
impl Serialize for Tally {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mask = self.0.iter().enumerate().filter(|(_, v)| **v != 0).fold(0u64, |m, (i, _)| m | 1 << i);
        if mask.count_ones() as usize > Measure::COUNT / 2 && self.0[0] >= 0 {
            return self.0.as_slice().serialize(serializer);
        }
        let mut sparse = Vec::with_capacity(2 + mask.count_ones() as usize);
        sparse.push(-1 - (mask & 0x7fff_ffff) as i32);
        sparse.push((mask >> 31) as i32);
        sparse.extend(self.0.iter().filter(|v| **v != 0));
        sparse.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Tally {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let values = Vec::<i32>::deserialize(deserializer)?;
        let mut tally = Tally::default();
        match values.as_slice() {
            [marker, high, counts @ ..] if *marker < 0 => {
                let mask = u64::from((-1 - *marker) as u32) | (*high as u32 as u64) << 31;
                let at = (0..64).filter(|i| mask & 1 << i != 0);
                if mask.count_ones() as usize != counts.len() || mask >> Measure::COUNT != 0 {
                    return Err(serde::de::Error::custom("a sparse tally whose mask and counts disagree"));
                }
                at.zip(counts).for_each(|(i, v)| tally.0[i] = *v);
            }
            whole => tally.0.iter_mut().zip(whole).for_each(|(slot, v)| *slot = *v),
        }
        Ok(tally)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tally_reads_back_as_written_sparse_or_whole_and_old_records_too() {
        let round_trip = |t: &Tally| postcard::from_bytes::<Tally>(&postcard::to_allocvec(t).unwrap()).unwrap();
        let mut dorm = Tally::default();
        for m in [Measure::Population, Measure::Student, Measure::CheckedEvening, Measure::BackInClass] {
            dorm.set(m, 7);
        }
        dorm.set(Measure::ALL[31], -3);
        assert_eq!(round_trip(&dorm), dorm);
        let whole = Tally(std::array::from_fn(|i| i as i32 * 1000));
        assert_eq!(round_trip(&whole), whole);
        let negative = Tally([-2; Measure::COUNT]);
        assert_eq!(round_trip(&negative), negative, "stored sparse: a whole one must not start below zero");
        assert_eq!(round_trip(&Tally::default()), Tally::default());
        // Sparse is smaller for a unit with few counts; whole is smaller for a school.
        let dense = postcard::to_allocvec(&dorm.0.as_slice()).unwrap();
        assert!(postcard::to_allocvec(&dorm).unwrap().len() * 2 < dense.len());
        // A record stored whole before there were as many measures still reads.
        let old: Vec<i32> = (1..=40).collect();
        let read: Tally = postcard::from_bytes(&postcard::to_allocvec(&old).unwrap()).unwrap();
        assert_eq!((read.get(Measure::Population), read.get(Measure::ALL[39]), read.get(Measure::ALL[40])), (1, 40, 0));
    }

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
