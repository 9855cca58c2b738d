//! Events as the intake accepted them: every field present and in range.

use chrono::{DateTime, FixedOffset, NaiveDate};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub event_id: String,
    pub source: String,
    /// School code (hall or enterprise code for events outside schools).
    pub school: String,
    pub occurred_at: DateTime<FixedOffset>,
    pub payload: Payload,
}

impl Envelope {
    /// The person the event is about, if any: unique within the school.
    pub fn person_id(&self) -> Option<&str> {
        match &self.payload {
            Payload::Person { person_id, .. } => Some(person_id),
            Payload::Inspection(_) | Payload::Unit(_) => None,
        }
    }

    pub fn kind(&self) -> EventKind {
        match &self.payload {
            Payload::Person { fact, .. } => fact.kind(),
            Payload::Inspection(_) => EventKind::Inspection,
            // With the school's roster: the same topic, so in order with it.
            Payload::Unit(_) => EventKind::Roster,
        }
    }
}

/// The four families of events; each has its own topic in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    Roster,
    Health,
    Movement,
    Inspection,
}

impl EventKind {
    pub const ALL: [EventKind; 4] = [Self::Roster, Self::Health, Self::Movement, Self::Inspection];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Roster => "roster",
            Self::Health => "health",
            Self::Movement => "movement",
            Self::Inspection => "inspection",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Payload {
    Person { person_id: String, fact: Fact },
    Inspection(Inspection),
    Unit(UnitFact),
}

/// A fact about a unit of the school's network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UnitFact {
    /// Its display names (either may be empty, not both).
    Named { unit: crate::UnitKey, names: crate::unit::UnitNames },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    Student,
    Teacher,
    Staff,
    TemporaryHire,
    PropertyManagement,
    CanteenWorker,
    OtherResident,
}

impl Role {
    pub const ALL: [Role; 7] = [
        Self::Student,
        Self::Teacher,
        Self::Staff,
        Self::TemporaryHire,
        Self::PropertyManagement,
        Self::CanteenWorker,
        Self::OtherResident,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Student => "student",
            Self::Teacher => "teacher",
            Self::Staff => "staff",
            Self::TemporaryHire => "temporary_hire",
            Self::PropertyManagement => "property_management",
            Self::CanteenWorker => "canteen_worker",
            Self::OtherResident => "other_resident",
        }
    }
}

/// A person's place in the five-level network. Empty strings mean "none" (staff have no
/// grade or class; not everyone has a dorm).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Placement {
    pub department: String,
    pub grade: String,
    pub class: String,
    pub dorm: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Slot {
    Morning,
    Noon,
    Evening,
    Gate,
    Canteen,
}

impl Slot {
    pub const ALL: [Slot; 5] = [Self::Morning, Self::Noon, Self::Evening, Self::Gate, Self::Canteen];

    /// The three daily checks every person on campus must have.
    pub fn is_daily_quota(self) -> bool {
        matches!(self, Self::Morning | Self::Noon | Self::Evening)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Morning => "morning",
            Self::Noon => "noon",
            Self::Evening => "evening",
            Self::Gate => "gate",
            Self::Canteen => "canteen",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Symptom {
    Fever,
    Cough,
    Fatigue,
    OtherRespiratory,
}

impl Symptom {
    pub const ALL: [Symptom; 4] = [Self::Fever, Self::Cough, Self::Fatigue, Self::OtherRespiratory];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fever => "fever",
            Self::Cough => "cough",
            Self::Fatigue => "fatigue",
            Self::OtherRespiratory => "other_respiratory",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Diagnosis {
    Suspected,
    Confirmed,
    Excluded,
    Recovered,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HistoryKind {
    Travel,
    Contact,
    /// Close contact of a suspected or confirmed case (a family member or friend).
    CloseContact,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum IsolationKind {
    Home,
    Centralized,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Direction {
    In,
    Out,
}

/// What an event says about a person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Fact {
    // roster
    Registered {
        role: Role,
        placement: Placement,
        city: String,
        on_campus: bool,
    },
    Moved {
        placement: Placement,
    },
    Left,
    // health
    Temperature {
        slot: Slot,
        celsius: f64,
    },
    Symptoms(Vec<Symptom>),
    HealthCard {
        abnormal_last_14_days: bool,
    },
    Diagnosed(Diagnosis),
    SickAbsenceStarted {
        reason: String,
    },
    SickAbsenceEnded,
    // movement
    Whereabouts {
        province: String,
        city: String,
        in_key_area: bool,
        on_campus: bool,
    },
    TwoHistories {
        kind: HistoryKind,
        date: NaiveDate,
    },
    Returned {
        date: NaiveDate,
        batch: u32,
    },
    IsolationStarted {
        kind: IsolationKind,
        place: String,
        roommates: Vec<String>,
    },
    Released,
    GatePassed(Direction),
    LeaveRequested {
        until: NaiveDate,
        reason: String,
    },
    LeaveClosed,
    /// Not posted by anyone: the fold derives it when a centralized-observation roommate
    /// shows abnormal signs, so that this person's period runs again from `onset`.
    RoommateShowedSigns {
        onset: NaiveDate,
    },
}

impl Fact {
    pub fn kind(&self) -> EventKind {
        match self {
            Self::Registered { .. } | Self::Moved { .. } | Self::Left => EventKind::Roster,
            Self::Temperature { .. }
            | Self::Symptoms(_)
            | Self::HealthCard { .. }
            | Self::Diagnosed(_)
            | Self::SickAbsenceStarted { .. }
            | Self::SickAbsenceEnded => EventKind::Health,
            _ => EventKind::Movement,
        }
    }
}

/// The nine items of the service-window checklist, in the seed's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChecklistItem {
    EntranceTemperature,
    MasksRequired,
    StaffProtection,
    StaffHealthMonitored,
    DisinfectionVentilation,
    ThermometersSanitizer,
    NoContactService,
    HealthPublicity,
    StaffTrained,
}

impl ChecklistItem {
    pub const ALL: [ChecklistItem; 9] = [
        Self::EntranceTemperature,
        Self::MasksRequired,
        Self::StaffProtection,
        Self::StaffHealthMonitored,
        Self::DisinfectionVentilation,
        Self::ThermometersSanitizer,
        Self::NoContactService,
        Self::HealthPublicity,
        Self::StaffTrained,
    ];
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChecklistResult {
    pub item: ChecklistItem,
    pub passed: bool,
    pub finding: String,
    pub deadline: Option<NaiveDate>,
}

/// About a service hall (the envelope's unit): an inspection, a rectification, or the
/// hall's roster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Inspection {
    Inspected {
        inspection_id: String,
        city: String,
        items: Vec<ChecklistResult>,
    },
    Rectified {
        inspection_id: String,
        item: ChecklistItem,
    },
    /// Registered, or its details changed: the latest registration by event time holds.
    HallRegistered(Hall),
    /// Closed from the event's day, until a later registration.
    HallClosed,
}

/// What a hall's registration says of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hall {
    pub names: crate::unit::UnitNames,
    pub city: String,
    pub kind: HallKind,
}

/// The kinds of halls that serve the public, as the seed lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HallKind {
    /// The department's service hall.
    ServiceHall,
    SocialInsuranceBureau,
    TalentBureau,
    ExaminationBureau,
    /// The work-injury rehabilitation hospital.
    RehabilitationHospital,
    /// A city's human-resources and social-security hall.
    CityHall,
}

impl HallKind {
    pub const ALL: [HallKind; 6] = [
        Self::ServiceHall,
        Self::SocialInsuranceBureau,
        Self::TalentBureau,
        Self::ExaminationBureau,
        Self::RehabilitationHospital,
        Self::CityHall,
    ];
}
