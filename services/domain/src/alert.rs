//! Immediate reports: what the offices must hear at once, without waiting for the close.
//! A fever reading, a suspected or confirmed diagnosis, a person who must stay out
//! (under observation or ill) coming in through the gate.

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

use crate::event::{Diagnosis, Direction, Fact};
use crate::person::{PersonState, Rules};
use crate::unit::UnitKey;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum AlertKind {
    Fever { celsius: f64 },
    Suspected,
    Confirmed,
    KeptOutGateIn,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fever { .. } => "fever",
            Self::Suspected => "suspected",
            Self::Confirmed => "confirmed",
            Self::KeptOutGateIn => "kept_out_gate_in",
        }
    }

    /// The alert an event raises, judged with the person's state after it.
    pub fn of(fact: &Fact, after: &PersonState, rules: &Rules) -> Option<AlertKind> {
        match fact {
            Fact::Temperature { celsius, .. } if *celsius >= rules.fever_threshold_celsius => {
                Some(Self::Fever { celsius: *celsius })
            }
            Fact::Diagnosed(Diagnosis::Suspected) => Some(Self::Suspected),
            Fact::Diagnosed(Diagnosis::Confirmed) => Some(Self::Confirmed),
            Fact::GatePassed(Direction::In) if after.kept_out() => Some(Self::KeptOutGateIn),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// The event that raised it: one alert per event.
    pub event_id: String,
    pub kind: AlertKind,
    pub school: String,
    pub city: String,
    pub person: String,
    pub occurred_at: DateTime<FixedOffset>,
    /// The units the person counts in, province down to dorm.
    pub units: Vec<UnitKey>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{IsolationKind, Slot};

    #[test]
    fn fever_cases_and_a_kept_out_person_coming_in_alert() {
        let rules = Rules::default();
        let well = PersonState::default();
        let reading = |celsius| Fact::Temperature { slot: Slot::Noon, celsius };
        assert_eq!(AlertKind::of(&reading(37.3), &well, &rules), Some(AlertKind::Fever { celsius: 37.3 }));
        assert_eq!(AlertKind::of(&reading(37.2), &well, &rules), None);
        assert_eq!(AlertKind::of(&Fact::Diagnosed(Diagnosis::Suspected), &well, &rules), Some(AlertKind::Suspected));
        assert_eq!(AlertKind::of(&Fact::Diagnosed(Diagnosis::Confirmed), &well, &rules), Some(AlertKind::Confirmed));
        assert_eq!(AlertKind::of(&Fact::Diagnosed(Diagnosis::Excluded), &well, &rules), None);
        let gate_in = Fact::GatePassed(Direction::In);
        assert_eq!(AlertKind::of(&gate_in, &well, &rules), None, "a well person passes");
        let mut observed = PersonState::default();
        observed.isolation.value = Some(IsolationKind::Home);
        assert_eq!(AlertKind::of(&gate_in, &observed, &rules), Some(AlertKind::KeptOutGateIn));
        assert_eq!(AlertKind::of(&Fact::GatePassed(Direction::Out), &observed, &rules), None);
    }
}
