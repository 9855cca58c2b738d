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
