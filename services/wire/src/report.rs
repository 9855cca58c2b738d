//! Domain reports to protobuf.

use domain::alert::{Alert, AlertKind, FedAlert};
use domain::event::{HistoryKind, IsolationKind, Role, Slot, Symptom};
use domain::person::KeyPerson;
use domain::report::ReportStatus;
use domain::{DailyReport, Day, Level};

use crate::pb;

pub fn level_to_proto(level: Level) -> pb::Level {
    match level {
        Level::Province => pb::Level::Province,
        Level::City => pb::Level::City,
        Level::School => pb::Level::School,
        Level::Department => pb::Level::Department,
        Level::Grade => pb::Level::Grade,
        Level::Class => pb::Level::Class,
        Level::Dorm => pb::Level::Dorm,
    }
}

/// `None` for `LEVEL_UNSPECIFIED` (or an unknown number): every level.
pub fn level_from_proto(raw: i32) -> Option<Level> {
    Some(match pb::Level::try_from(raw).ok()? {
        pb::Level::Unspecified => return None,
        pb::Level::Province => Level::Province,
        pb::Level::City => Level::City,
        pb::Level::School => Level::School,
        pb::Level::Department => Level::Department,
        pb::Level::Grade => Level::Grade,
        pb::Level::Class => Level::Class,
        pb::Level::Dorm => Level::Dorm,
    })
}

pub fn role_to_proto(role: Role) -> pb::Role {
    match role {
        Role::Student => pb::Role::Student,
        Role::Teacher => pb::Role::Teacher,
        Role::Staff => pb::Role::Staff,
        Role::TemporaryHire => pb::Role::TemporaryHire,
        Role::PropertyManagement => pb::Role::PropertyManagement,
        Role::CanteenWorker => pb::Role::CanteenWorker,
        Role::OtherResident => pb::Role::OtherResident,
    }
}

pub fn history_to_proto(kind: HistoryKind) -> pb::HistoryKind {
    match kind {
        HistoryKind::Travel => pb::HistoryKind::HistoryTravel,
        HistoryKind::Contact => pb::HistoryKind::HistoryContact,
        HistoryKind::CloseContact => pb::HistoryKind::HistoryCloseContact,
    }
}

pub fn isolation_to_proto(kind: IsolationKind) -> pb::IsolationKind {
    match kind {
        IsolationKind::Home => pb::IsolationKind::IsolationHome,
        IsolationKind::Centralized => pb::IsolationKind::IsolationCentralized,
    }
}

fn slot_to_proto(slot: Slot) -> pb::Slot {
    match slot {
        Slot::Morning => pb::Slot::Morning,
        Slot::Noon => pb::Slot::Noon,
        Slot::Evening => pb::Slot::Evening,
        Slot::Gate => pb::Slot::Gate,
        Slot::Canteen => pb::Slot::Canteen,
    }
}

pub fn report_to_proto(r: &DailyReport) -> pb::DailyReport {
    let role = |wanted: Role| r.population_by_role.iter().find(|(role, _)| *role == wanted).map_or(0, |(_, n)| *n);
    let symptom = |wanted: Symptom| r.symptoms.iter().find(|(s, _)| *s == wanted).map_or(0, |(_, n)| *n);
    pb::DailyReport {
        unit: r.unit.to_string(),
        level: level_to_proto(r.unit.level) as i32,
        date: r.date.format("%Y-%m-%d").to_string(),
        population: r.population,
        population_by_role: Some(pb::RoleCounts {
            student: role(Role::Student),
            teacher: role(Role::Teacher),
            staff: role(Role::Staff),
            temporary_hire: role(Role::TemporaryHire),
            property_management: role(Role::PropertyManagement),
            canteen_worker: role(Role::CanteenWorker),
            other_resident: role(Role::OtherResident),
        }),
        present_on_campus: r.present_on_campus,
        in_key_area: r.in_key_area,
        two_histories: r.two_histories,
        close_contacts: r.close_contacts,
        checks: r
            .checks
            .iter()
            .map(|c| pb::SlotCoverage { slot: slot_to_proto(c.slot) as i32, done: c.done, expected: c.expected })
            .collect(),
        fever: r.fever,
        symptoms: Some(pb::SymptomCounts {
            fever: symptom(Symptom::Fever),
            cough: symptom(Symptom::Cough),
            fatigue: symptom(Symptom::Fatigue),
            other_respiratory: symptom(Symptom::OtherRespiratory),
        }),
        suspected_new: r.suspected_new,
        suspected_current: r.suspected_current,
        confirmed_new: r.confirmed_new,
        confirmed_current: r.confirmed_current,
        home_observation: r.home_observation,
        centralized_observation: r.centralized_observation,
        released: r.released,
        observation_started: r.observation_started,
        due_for_release: r.due_for_release,
        observation_extended: r.observation_extended,
        batches: r
            .batches
            .iter()
            .map(|b| pb::BatchCount {
                batch: b.batch,
                planned: b.planned,
                returned: b.returned,
                not_yet_returned: b.planned.saturating_sub(b.returned),
            })
            .collect(),
        gate_in_kept_out: r.gate_in_kept_out,
        returned_without_health_card: r.returned_without_health_card,
        boarder_left_without_leave: r.boarder_left_without_leave,
        releases_refused: r.releases_refused,
        observation_missing: r.observation_missing,
        sick_absent: r.sick_absent,
        sick_absence_started: r.sick_absence_started,
        back_in_class: r.back_in_class,
        leave_overdue: r.leave_overdue,
        unrostered: r.unrostered,
        returned: r.returned,
        health_cards: r.health_cards,
        gate_in: r.gate_in,
        gate_out: r.gate_out,
        zero_report: r.zero_report,
        checked_any: r.checked_any,
        expected_by_deadline: r.expected_by_deadline,
        checked_by_deadline: r.checked_by_deadline,
        name_zh: r.names.zh.clone(),
        name_en: r.names.en.clone(),
        abnormal: r.abnormal,
        status: status_to_proto(r.status) as i32,
        version: r.version,
        revised: r.revised,
        changes: r
            .changes
            .iter()
            .map(|c| pb::FieldChange { field: c.field.clone(), before: c.before, after: c.after })
            .collect(),
        reporting: r.reporting.as_ref().map(|rate| pb::ReportingRate {
            expected: rate.expected,
            actual: rate.actual,
            on_time: rate.on_time,
            missing: rate.missing.iter().map(ToString::to_string).collect(),
            late: rate.late.iter().map(ToString::to_string).collect(),
        }),
    }
}

pub fn status_to_proto(status: ReportStatus) -> pb::ReportStatus {
    match status {
        ReportStatus::Open => pb::ReportStatus::Open,
        ReportStatus::OnTime => pb::ReportStatus::OnTime,
        ReportStatus::Late => pb::ReportStatus::Late,
        ReportStatus::Missing => pb::ReportStatus::Missing,
        ReportStatus::Incomplete => pb::ReportStatus::Incomplete,
    }
}

/// A person of the key-person lists; a date not set is empty.
pub fn key_person_to_proto(p: &KeyPerson) -> pb::KeyPerson {
    let date = |d: Day| d.format("%Y-%m-%d").to_string();
    pb::KeyPerson {
        school: p.school.clone(),
        person_id: p.person.clone(),
        role: role_to_proto(p.role) as i32,
        placement: Some(pb::Placement {
            department: p.placement.department.clone(),
            grade: p.placement.grade.clone(),
            class_name: p.placement.class.clone(),
            dorm: p.placement.dorm.clone(),
        }),
        in_key_area: p.in_key_area,
        history: p.two_histories.map_or(0, |(kind, _)| history_to_proto(kind) as i32),
        history_date: p.two_histories.map(|(_, d)| date(d)).unwrap_or_default(),
        close_contact_date: p.close_contact.map(date).unwrap_or_default(),
        observation: p.observation.map_or(0, |(kind, _, _)| isolation_to_proto(kind) as i32),
        observation_start: p.observation.map(|(_, s, _)| date(s)).unwrap_or_default(),
        observation_expected_end: p.observation.map(|(_, _, e)| date(e)).unwrap_or_default(),
        release_refused: p.release_refused.map(|r| r.to_string()).unwrap_or_default(),
        observation_missing: p.observation_missing.map_or(0, |(k, _)| isolation_to_proto(k) as i32),
        observation_missing_until: p.observation_missing.map(|(_, until)| date(until)).unwrap_or_default(),
        key_area_return_date: p.key_area_return.map(date).unwrap_or_default(),
    }
}

pub fn alert_to_proto(a: &Alert) -> pb::Alert {
    let (kind, celsius, reason) = match a.kind {
        AlertKind::Fever { celsius } => (pb::AlertKind::Fever, celsius, String::new()),
        AlertKind::Suspected => (pb::AlertKind::Suspected, 0.0, String::new()),
        AlertKind::Confirmed => (pb::AlertKind::Confirmed, 0.0, String::new()),
        AlertKind::KeptOutGateIn => (pb::AlertKind::KeptOutGateIn, 0.0, String::new()),
        AlertKind::ReleaseRefused(refusal) => (pb::AlertKind::ReleaseRefused, 0.0, refusal.to_string()),
    };
    pb::Alert {
        event_id: a.event_id.clone(),
        kind: kind as i32,
        school: a.school.clone(),
        city: a.city.clone(),
        person_id: a.person.clone(),
        occurred_at: a.occurred_at.to_rfc3339(),
        celsius,
        units: a.units.iter().map(ToString::to_string).collect(),
        reason,
        ..Default::default()
    }
}

/// The alert of a feed item (`None` for a report), as an edge shows it.
pub fn fed_alert(cursor: u64, item: &[u8]) -> Result<Option<FedAlert>, prost::DecodeError> {
    use prost::Message;
    let Some(pb::feed_item::Item::Alert(a)) = pb::FeedItem::decode(item)?.item else { return Ok(None) };
    let kind = match pb::AlertKind::try_from(a.kind).unwrap_or(pb::AlertKind::Unspecified) {
        pb::AlertKind::Fever => "fever",
        pb::AlertKind::Suspected => "suspected",
        pb::AlertKind::Confirmed => "confirmed",
        pb::AlertKind::KeptOutGateIn => "kept_out_gate_in",
        pb::AlertKind::ReleaseRefused => "release_refused",
        pb::AlertKind::FindingOverdue => "finding_overdue",
        pb::AlertKind::HallNotInspected => "hall_not_inspected",
        pb::AlertKind::Unspecified => "unspecified",
    };
    Ok(Some(FedAlert {
        cursor,
        kind: kind.to_owned(),
        celsius: (a.kind == pb::AlertKind::Fever as i32).then_some(a.celsius),
        event_id: a.event_id,
        school: a.school,
        city: a.city,
        person: a.person_id,
        // An inspection alert is about a sealed day, not an event's instant.
        occurred_at: if a.occurred_at.is_empty() { a.date } else { a.occurred_at },
        reason: a.reason,
        units: a.units,
    }))
}
