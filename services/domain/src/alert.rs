//! Immediate reports: what the offices must hear at once, without waiting for the close.
//! A fever reading, a suspected or confirmed diagnosis, a person who must stay out
//! (under observation or ill) coming in through the gate.

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

use crate::event::{Diagnosis, Direction, Fact};
use crate::person::{PersonState, Refusal, Rules};
use crate::unit::UnitKey;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum AlertKind {
    Fever {
        celsius: f64,
    },
    Suspected,
    Confirmed,
    KeptOutGateIn,
    /// A release posted before the person was due: they stay under observation.
    ReleaseRefused(Refusal),
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fever { .. } => "fever",
            Self::Suspected => "suspected",
            Self::Confirmed => "confirmed",
            Self::KeptOutGateIn => "kept_out_gate_in",
            Self::ReleaseRefused(_) => "release_refused",
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
            Fact::GatePassed(Direction::In) if after.kept_out(rules) => Some(Self::KeptOutGateIn),
            Fact::Released => after.release_refusal(rules).map(Self::ReleaseRefused),
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

/// An alert as the offices' feeds carry it, read back by an edge that shows it (the
/// console): the kind by name (`fever`, `suspected`, `confirmed`, `kept_out_gate_in`,
/// `release_refused`), a refused release's reason in words, the units as keys. Person
/// and event are empty for a reader without the right to person-level data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FedAlert {
    /// Where it stands in the office's feed.
    pub cursor: u64,
    pub kind: String,
    pub event_id: String,
    pub school: String,
    pub city: String,
    pub person: String,
    /// RFC 3339, as the event said.
    pub occurred_at: String,
    /// Fever readings only.
    pub celsius: Option<f64>,
    pub reason: String,
    /// The units the person counts in, province down to dorm (`school:S1`, …).
    pub units: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{IsolationKind, Slot};
    use crate::person::{Lww, Stamp};

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

    #[test]
    fn a_refused_release_alerts_with_its_reason_and_a_valid_one_does_not() {
        let rules = Rules::default();
        let day = |d| chrono::NaiveDate::from_ymd_opt(2020, 3, d).unwrap();
        let mut observed = PersonState {
            isolation: Lww { value: Some(IsolationKind::Home), stamp: Stamp::new(1, "i") },
            isolation_since: Lww { value: Some(day(1)), stamp: Stamp::new(1, "i") },
            release: Lww { value: Some(day(5)), stamp: Stamp::new(2, "r") },
            ..PersonState::default()
        };
        let Some(AlertKind::ReleaseRefused(refusal)) = AlertKind::of(&Fact::Released, &observed, &rules) else {
            panic!("refused release raised no alert");
        };
        assert_eq!(
            refusal.to_string(),
            "release refused: not eligible before 2020-03-15, the period runs from 2020-03-01"
        );
        observed.release.value = Some(day(15));
        assert_eq!(AlertKind::of(&Fact::Released, &observed, &rules), None);
    }
}
