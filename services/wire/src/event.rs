//! Protobuf events to domain events, with validation.

use chrono::{DateTime, NaiveDate};
use domain::event::{
    ChecklistItem, ChecklistResult, Diagnosis, Direction, Hall, HallKind, HistoryKind, Inspection, IsolationKind,
    Placement, Role, Slot, Symptom,
};
use domain::{Envelope, Fact, Payload};

use crate::pb;

/// A field that failed validation, named by its path in the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

fn bad(field: &str, reason: impl Into<String>) -> FieldError {
    FieldError { field: field.to_owned(), reason: reason.into() }
}

const TEMPERATURE_RANGE: std::ops::RangeInclusive<f64> = 30.0..=45.0;

/// Codes (ids of events, schools, persons, units, inspections), in bytes.
pub const MAX_CODE_BYTES: usize = 128;
/// Short free text (source, place, province, city), in bytes.
pub const MAX_TEXT_BYTES: usize = 256;
/// Longer free text (a leave's or sick absence's reason, an inspection finding), in bytes.
pub const MAX_NOTE_BYTES: usize = 1024;
/// Roommates one centralized-observation room may name: rooms hold a few persons, a
/// shared dormitory at most a few dozen; more is a mistake, and each pairing is folded.
pub const MAX_ROOMMATES: usize = 50;
/// How far a payload date (a return, a contact, a leave's end, a deadline) may lie from
/// the event's own date: two years either way, leap day included.
pub const DATE_WINDOW_DAYS: i64 = 731;
/// At most this many characters of a bad value are quoted back in an error.
const QUOTED_CHARS: usize = 40;

/// `value` quoted for an error message: at most [`QUOTED_CHARS`] characters of it, so a
/// megabyte value makes a short error.
pub fn quoted(value: &str) -> String {
    match value.char_indices().nth(QUOTED_CHARS) {
        None => format!("{value:?}"),
        Some((cut, _)) => format!("{:?}… ({} bytes)", &value[..cut], value.len()),
    }
}

/// A required code: school, department, person and so on. Codes end up in unit keys,
/// where ':' and '/' are separators.
fn code(field: &str, value: String) -> Result<String, FieldError> {
    checked_code(value, true).map_err(|reason| bad(field, reason))
}

/// `value` if it is a valid code, else why not. The caller names the field, so that a
/// nested field's name is only built for an error.
fn checked_code(value: String, required: bool) -> Result<String, String> {
    if required && value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.len() > MAX_CODE_BYTES {
        return Err(format!("is {} bytes long, at most {MAX_CODE_BYTES} allowed", value.len()));
    }
    let refused = |c: char| matches!(c, '/' | ':') || c.is_whitespace() || c.is_control();
    // Codes are nearly always plain ASCII: a byte scan clears them without decoding chars;
    // anything else (a non-ASCII byte, or a refused one) gets the exact check.
    let plain = value.bytes().all(|b| b.is_ascii_graphic() && b != b'/' && b != b':');
    if !plain && let Some(c) = value.chars().find(|c| refused(*c)) {
        return Err(format!("{} contains {c:?}; codes may not contain '/', ':' or spaces", quoted(&value)));
    }
    Ok(value)
}

/// Free text of at most `max` bytes; `required` refuses an empty or blank one.
fn text(field: &str, value: String, max: usize, required: bool) -> Result<String, FieldError> {
    if value.len() > max {
        return Err(bad(field, format!("is {} bytes long, at most {max} allowed", value.len())));
    }
    if required && value.trim().is_empty() {
        return Err(bad(field, "must not be empty"));
    }
    Ok(value)
}

/// A date exactly `YYYY-MM-DD` (no sign, no spaces, two-digit month and day), as every
/// request names a day; the error names `field` and quotes the start of `value`.
pub fn parse_date(field: &str, value: &str) -> Result<NaiveDate, FieldError> {
    let b = value.as_bytes();
    let shaped = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| if i == 4 || i == 7 { *c == b'-' } else { c.is_ascii_digit() });
    let parsed = shaped.then(|| NaiveDate::parse_from_str(value, "%Y-%m-%d").ok()).flatten();
    parsed.ok_or_else(|| bad(field, format!("{} is not a date in the form YYYY-MM-DD", quoted(value))))
}

/// A payload date: exactly `YYYY-MM-DD` (no sign, no spaces, two-digit month and day),
/// and within [`DATE_WINDOW_DAYS`] of `around`, the event's own date, so that the fold's
/// date arithmetic (a date plus the observation period) stays far inside the calendar.
fn date(field: &str, value: &str, around: NaiveDate) -> Result<NaiveDate, FieldError> {
    let parsed = parse_date(field, value)?;
    if (parsed - around).num_days().abs() > DATE_WINDOW_DAYS {
        return Err(bad(
            field,
            format!("{value} is more than two years from the event's own date, {around} (occurred_at)"),
        ));
    }
    Ok(parsed)
}

fn enum_value<E: TryFrom<i32>>(field: &str, raw: i32) -> Result<E, FieldError> {
    match E::try_from(raw) {
        Ok(v) if raw != 0 => Ok(v),
        Ok(_) => Err(bad(field, "must be set")),
        Err(_) => Err(bad(field, format!("{raw} is not a known value"))),
    }
}

/// Validates a posted event and turns it into the domain's envelope.
pub fn event_from_proto(event: pb::Event) -> Result<Envelope, FieldError> {
    let event_id = code("event_id", event.event_id)?;
    let source = text("source", event.source, MAX_TEXT_BYTES, true)?;
    let school = envelope_site(event.site, event.school)?;
    let occurred_at = DateTime::parse_from_rfc3339(&event.occurred_at).map_err(|_| {
        bad(
            "occurred_at",
            format!(
                "{} is not an RFC 3339 time with a zone offset, e.g. 2020-02-26T07:40:00+08:00",
                quoted(&event.occurred_at)
            ),
        )
    })?;
    let on = occurred_at.date_naive();
    let payload = match event.payload {
        None => return Err(bad("payload", "missing; set one of roster, health, movement, inspection, unit")),
        Some(pb::event::Payload::Roster(r)) => roster(r)?,
        Some(pb::event::Payload::Health(h)) => health(h)?,
        Some(pb::event::Payload::Movement(m)) => movement(m, on)?,
        Some(pb::event::Payload::Inspection(i)) => Payload::Inspection(inspection(i, on)?),
        Some(pb::event::Payload::Unit(u)) => Payload::Unit(unit_fact(u, &school)?),
    };
    Ok(Envelope { event_id, source, school, occurred_at, payload })
}

/// The event's site: `site`, or `school` (its former name) when `site` is empty.
fn envelope_site(site: String, school: String) -> Result<String, FieldError> {
    if site.is_empty() {
        return code("school", school);
    }
    let site = code("site", site)?;
    if !school.is_empty() && school != site {
        return Err(bad("school", format!("{} differs from site {}; set one of them", quoted(&school), quoted(&site))));
    }
    Ok(site)
}

/// A fact about a unit of `school`: the school itself or one below it, each segment of its
/// key a code.
fn unit_fact(u: pb::UnitEvent, school: &str) -> Result<domain::event::UnitFact, FieldError> {
    let Some(pb::unit_event::Change::Named(named)) = u.change else {
        return Err(bad("unit.change", "missing; set named"));
    };
    let field = "unit.named.unit";
    let unit: domain::UnitKey = named.unit.parse().map_err(|e| bad(field, format!("{}: {e}", quoted(&named.unit))))?;
    if unit.level < domain::Level::School {
        return Err(bad(field, format!("{unit} is not a unit of a school (school, department, grade, class, dorm)")));
    }
    for segment in unit.path.split('/') {
        checked_code(segment.to_owned(), true).map_err(|reason| bad(field, reason))?;
    }
    if unit.path.split('/').next() != Some(school) {
        return Err(bad(field, format!("{unit} is not a unit of school {} (the event's school)", quoted(school))));
    }
    let names = domain::unit::UnitNames {
        zh: text("unit.named.name_zh", named.name_zh, MAX_TEXT_BYTES, false)?,
        en: text("unit.named.name_en", named.name_en, MAX_TEXT_BYTES, false)?,
    };
    if names.zh.trim().is_empty() && names.en.trim().is_empty() {
        return Err(bad("unit.named.name_zh", "and name_en are both empty: give at least one"));
    }
    Ok(domain::event::UnitFact::Named { unit, names })
}

fn placement(prefix: &str, p: Option<pb::Placement>, role: Option<Role>) -> Result<Placement, FieldError> {
    let p = p.ok_or_else(|| bad(prefix, "missing"))?;
    let field = |name: &str, value: String, required: bool| {
        checked_code(value, required).map_err(|reason| bad(&format!("{prefix}.{name}"), reason))
    };
    let placement = Placement {
        department: field("department", p.department, true)?,
        grade: field("grade", p.grade, false)?,
        class: field("class_name", p.class_name, false)?,
        dorm: field("dorm", p.dorm, false)?,
    };
    if role == Some(Role::Student) && (placement.grade.is_empty() || placement.class.is_empty()) {
        return Err(bad(&format!("{prefix}.class_name"), "a student needs a grade and a class"));
    }
    if !placement.class.is_empty() && placement.grade.is_empty() {
        return Err(bad(&format!("{prefix}.grade"), "a class needs its grade"));
    }
    Ok(placement)
}

fn roster(r: pb::RosterEvent) -> Result<Payload, FieldError> {
    use pb::roster_event::Change;
    let person_id = code("roster.person_id", r.person_id)?;
    let fact = match r.change {
        None => return Err(bad("roster.change", "missing; set one of registered, moved, left")),
        Some(Change::Registered(reg)) => {
            let role = match enum_value::<pb::Role>("roster.registered.role", reg.role)? {
                pb::Role::Unspecified => unreachable!("refused by enum_value"),
                pb::Role::Student => Role::Student,
                pb::Role::Teacher => Role::Teacher,
                pb::Role::Staff => Role::Staff,
                pb::Role::TemporaryHire => Role::TemporaryHire,
                pb::Role::PropertyManagement => Role::PropertyManagement,
                pb::Role::CanteenWorker => Role::CanteenWorker,
                pb::Role::OtherResident => Role::OtherResident,
            };
            Fact::Registered {
                role,
                placement: placement("roster.registered.placement", reg.placement, Some(role))?,
                city: code("roster.registered.city", reg.city)?,
                on_campus: reg.on_campus,
            }
        }
        Some(Change::Moved(m)) => Fact::Moved { placement: placement("roster.moved.placement", m.placement, None)? },
        Some(Change::Left(_)) => Fact::Left,
    };
    Ok(Payload::Person { person_id, fact })
}

fn health(h: pb::HealthEvent) -> Result<Payload, FieldError> {
    use pb::health_event::Kind;
    let person_id = code("health.person_id", h.person_id)?;
    let fact = match h.kind {
        None => {
            return Err(bad(
                "health.kind",
                "missing; set one of temperature, symptoms, health_card, diagnosis, sick_absence_started, sick_absence_ended",
            ));
        }
        Some(Kind::Temperature(t)) => {
            let slot = match enum_value::<pb::Slot>("health.temperature.slot", t.slot)? {
                pb::Slot::Unspecified => unreachable!("refused by enum_value"),
                pb::Slot::Morning => Slot::Morning,
                pb::Slot::Noon => Slot::Noon,
                pb::Slot::Evening => Slot::Evening,
                pb::Slot::Gate => Slot::Gate,
                pb::Slot::Canteen => Slot::Canteen,
            };
            if !TEMPERATURE_RANGE.contains(&t.celsius) {
                return Err(bad("health.temperature.celsius", format!("{} is outside 30.0..=45.0", t.celsius)));
            }
            Fact::Temperature { slot, celsius: t.celsius }
        }
        Some(Kind::Symptoms(s)) => {
            if s.symptoms.is_empty() {
                return Err(bad("health.symptoms.symptoms", "must list at least one symptom"));
            }
            if s.symptoms.len() > Symptom::ALL.len() {
                return Err(bad(
                    "health.symptoms.symptoms",
                    format!("lists {} symptoms; there are {}, each at most once", s.symptoms.len(), Symptom::ALL.len()),
                ));
            }
            let mut symptoms: Vec<Symptom> = Vec::with_capacity(s.symptoms.len());
            for (i, raw) in s.symptoms.iter().enumerate() {
                let field = format!("health.symptoms.symptoms[{i}]");
                let symptom = match enum_value::<pb::Symptom>(&field, *raw)? {
                    pb::Symptom::Unspecified => unreachable!("refused by enum_value"),
                    pb::Symptom::Fever => Symptom::Fever,
                    pb::Symptom::Cough => Symptom::Cough,
                    pb::Symptom::Fatigue => Symptom::Fatigue,
                    pb::Symptom::OtherRespiratory => Symptom::OtherRespiratory,
                };
                if symptoms.contains(&symptom) {
                    return Err(bad(&field, format!("{} is listed twice", symptom.as_str())));
                }
                symptoms.push(symptom);
            }
            Fact::Symptoms(symptoms)
        }
        Some(Kind::HealthCard(c)) => Fact::HealthCard { abnormal_last_14_days: c.abnormal_last_14_days },
        Some(Kind::Diagnosis(d)) => {
            Fact::Diagnosed(match enum_value::<pb::DiagnosisKind>("health.diagnosis.kind", d.kind)? {
                pb::DiagnosisKind::DiagnosisUnspecified => unreachable!("refused by enum_value"),
                pb::DiagnosisKind::DiagnosisSuspected => Diagnosis::Suspected,
                pb::DiagnosisKind::DiagnosisConfirmed => Diagnosis::Confirmed,
                pb::DiagnosisKind::DiagnosisExcluded => Diagnosis::Excluded,
                pb::DiagnosisKind::DiagnosisRecovered => Diagnosis::Recovered,
            })
        }
        Some(Kind::SickAbsenceStarted(s)) => Fact::SickAbsenceStarted {
            reason: text("health.sick_absence_started.reason", s.reason, MAX_NOTE_BYTES, false)?,
        },
        Some(Kind::SickAbsenceEnded(_)) => Fact::SickAbsenceEnded,
    };
    Ok(Payload::Person { person_id, fact })
}

/// `on`: the event's own date, around which its payload dates must lie.
fn movement(m: pb::MovementEvent, on: NaiveDate) -> Result<Payload, FieldError> {
    use pb::movement_event::Kind;
    let person_id = code("movement.person_id", m.person_id)?;
    let fact = match m.kind {
        None => {
            return Err(bad(
                "movement.kind",
                "missing; set one of whereabouts, two_histories, returned, isolation_started, released, gate_passed, leave_requested, leave_closed",
            ));
        }
        Some(Kind::Whereabouts(w)) => {
            let province = text("movement.whereabouts.province", w.province, MAX_TEXT_BYTES, true)?;
            let city = text("movement.whereabouts.city", w.city, MAX_TEXT_BYTES, false)?;
            Fact::Whereabouts { province, city, in_key_area: w.in_key_area, on_campus: w.on_campus }
        }
        Some(Kind::TwoHistories(t)) => Fact::TwoHistories {
            kind: match enum_value::<pb::HistoryKind>("movement.two_histories.kind", t.kind)? {
                pb::HistoryKind::HistoryUnspecified => unreachable!("refused by enum_value"),
                pb::HistoryKind::HistoryTravel => HistoryKind::Travel,
                pb::HistoryKind::HistoryContact => HistoryKind::Contact,
                pb::HistoryKind::HistoryCloseContact => HistoryKind::CloseContact,
            },
            date: date("movement.two_histories.date", &t.date, on)?,
        },
        Some(Kind::Returned(r)) => {
            if !(1..=6).contains(&r.batch) {
                return Err(bad("movement.returned.batch", format!("{} is outside 1..=6", r.batch)));
            }
            Fact::Returned { date: date("movement.returned.date", &r.date, on)?, batch: r.batch }
        }
        Some(Kind::IsolationStarted(i)) => {
            if i.roommates.len() > MAX_ROOMMATES {
                return Err(bad(
                    "movement.isolation_started.roommates",
                    format!("names {} roommates, at most {MAX_ROOMMATES} allowed", i.roommates.len()),
                ));
            }
            Fact::IsolationStarted {
                kind: match enum_value::<pb::IsolationKind>("movement.isolation_started.kind", i.kind)? {
                    pb::IsolationKind::IsolationUnspecified => unreachable!("refused by enum_value"),
                    pb::IsolationKind::IsolationHome => IsolationKind::Home,
                    pb::IsolationKind::IsolationCentralized => IsolationKind::Centralized,
                },
                place: text("movement.isolation_started.place", i.place, MAX_TEXT_BYTES, false)?,
                roommates: i
                    .roommates
                    .into_iter()
                    .enumerate()
                    .map(|(n, r)| code(&format!("movement.isolation_started.roommates[{n}]"), r))
                    .collect::<Result<_, _>>()?,
            }
        }
        Some(Kind::Released(_)) => Fact::Released,
        Some(Kind::GatePassed(g)) => {
            Fact::GatePassed(match enum_value::<pb::Direction>("movement.gate_passed.direction", g.direction)? {
                pb::Direction::Unspecified => unreachable!("refused by enum_value"),
                pb::Direction::In => Direction::In,
                pb::Direction::Out => Direction::Out,
            })
        }
        Some(Kind::LeaveRequested(l)) => {
            let until = date("movement.leave_requested.until", &l.until, on)?;
            Fact::LeaveRequested {
                until,
                reason: text("movement.leave_requested.reason", l.reason, MAX_NOTE_BYTES, false)?,
            }
        }
        Some(Kind::LeaveClosed(_)) => Fact::LeaveClosed,
    };
    Ok(Payload::Person { person_id, fact })
}

fn checklist_item(field: &str, raw: i32) -> Result<ChecklistItem, FieldError> {
    use pb::ChecklistItem as P;
    Ok(match enum_value::<P>(field, raw)? {
        P::ChecklistUnspecified => unreachable!("refused by enum_value"),
        P::ChecklistEntranceTemperature => ChecklistItem::EntranceTemperature,
        P::ChecklistMasksRequired => ChecklistItem::MasksRequired,
        P::ChecklistStaffProtection => ChecklistItem::StaffProtection,
        P::ChecklistStaffHealthMonitored => ChecklistItem::StaffHealthMonitored,
        P::ChecklistDisinfectionVentilation => ChecklistItem::DisinfectionVentilation,
        P::ChecklistThermometersSanitizer => ChecklistItem::ThermometersSanitizer,
        P::ChecklistNoContactService => ChecklistItem::NoContactService,
        P::ChecklistHealthPublicity => ChecklistItem::HealthPublicity,
        P::ChecklistStaffTrained => ChecklistItem::StaffTrained,
    })
}

fn inspection(i: pb::InspectionEvent, on: NaiveDate) -> Result<Inspection, FieldError> {
    use pb::inspection_event::Kind;
    match i.kind {
        None => Err(bad("inspection.kind", "missing; set one of inspected, rectified, hall_registered, hall_closed")),
        Some(Kind::Inspected(ins)) => {
            let inspection_id = code("inspection.inspected.inspection_id", ins.inspection_id)?;
            let city = code("inspection.inspected.city", ins.city)?;
            if ins.items.len() > ChecklistItem::ALL.len() {
                return Err(bad(
                    "inspection.inspected.items",
                    format!("has {} items; the checklist has 9, each once", ins.items.len()),
                ));
            }
            let mut items = Vec::with_capacity(ins.items.len());
            for (n, r) in ins.items.into_iter().enumerate() {
                let field = format!("inspection.inspected.items[{n}]");
                let item = checklist_item(&format!("{field}.item"), r.item)?;
                if items.iter().any(|i: &ChecklistResult| i.item == item) {
                    return Err(bad(&format!("{field}.item"), format!("{item:?} is listed twice")));
                }
                let deadline = if r.passed {
                    None
                } else {
                    if r.finding.trim().is_empty() {
                        return Err(bad(&format!("{field}.finding"), "a failed item needs a finding"));
                    }
                    Some(date(&format!("{field}.deadline"), &r.deadline, on)?)
                };
                let finding = text(&format!("{field}.finding"), r.finding, MAX_NOTE_BYTES, false)?;
                items.push(ChecklistResult { item, passed: r.passed, finding, deadline });
            }
            if items.len() != ChecklistItem::ALL.len() {
                return Err(bad(
                    "inspection.inspected.items",
                    format!("has {} items; the checklist has 9, each once", items.len()),
                ));
            }
            Ok(Inspection::Inspected { inspection_id, city, items })
        }
        Some(Kind::Rectified(r)) => Ok(Inspection::Rectified {
            inspection_id: code("inspection.rectified.inspection_id", r.inspection_id)?,
            item: checklist_item("inspection.rectified.item", r.item)?,
        }),
        Some(Kind::HallRegistered(h)) => {
            let names = domain::unit::UnitNames {
                zh: text("inspection.hall_registered.name_zh", h.name_zh, MAX_TEXT_BYTES, false)?,
                en: text("inspection.hall_registered.name_en", h.name_en, MAX_TEXT_BYTES, false)?,
            };
            if names.zh.trim().is_empty() && names.en.trim().is_empty() {
                return Err(bad("inspection.hall_registered.name_zh", "and name_en are both empty: give at least one"));
            }
            let city = code("inspection.hall_registered.city", h.city)?;
            let kind = hall_kind("inspection.hall_registered.kind", h.kind)?;
            Ok(Inspection::HallRegistered(Hall { names, city, kind }))
        }
        Some(Kind::HallClosed(pb::HallClosed {})) => Ok(Inspection::HallClosed),
    }
}

fn hall_kind(field: &str, raw: i32) -> Result<HallKind, FieldError> {
    use pb::HallKind as P;
    Ok(match enum_value::<P>(field, raw)? {
        P::Unspecified => unreachable!("refused by enum_value"),
        P::ServiceHall => HallKind::ServiceHall,
        P::SocialInsuranceBureau => HallKind::SocialInsuranceBureau,
        P::TalentBureau => HallKind::TalentBureau,
        P::ExaminationBureau => HallKind::ExaminationBureau,
        P::RehabilitationHospital => HallKind::RehabilitationHospital,
        P::CityHall => HallKind::CityHall,
    })
}

/// A hall's kind as protobuf.
pub fn hall_kind_to_proto(kind: HallKind) -> pb::HallKind {
    use pb::HallKind as P;
    match kind {
        HallKind::ServiceHall => P::ServiceHall,
        HallKind::SocialInsuranceBureau => P::SocialInsuranceBureau,
        HallKind::TalentBureau => P::TalentBureau,
        HallKind::ExaminationBureau => P::ExaminationBureau,
        HallKind::RehabilitationHospital => P::RehabilitationHospital,
        HallKind::CityHall => P::CityHall,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temperature(celsius: f64) -> pb::Event {
        pb::Event {
            site: String::new(),
            event_id: "e1".into(),
            source: "test".into(),
            school: "S1".into(),
            occurred_at: "2020-02-26T07:40:00+08:00".into(),
            payload: Some(pb::event::Payload::Health(pb::HealthEvent {
                person_id: "P1".into(),
                kind: Some(pb::health_event::Kind::Temperature(pb::TemperatureTaken {
                    slot: pb::Slot::Morning as i32,
                    celsius,
                })),
            })),
        }
    }

    #[test]
    fn a_good_event_converts() {
        let envelope = event_from_proto(temperature(36.6)).unwrap();
        assert_eq!(envelope.person_id(), Some("P1"));
        assert_eq!(
            envelope.payload,
            Payload::Person { person_id: "P1".into(), fact: Fact::Temperature { slot: Slot::Morning, celsius: 36.6 } }
        );
    }

    #[test]
    fn errors_name_the_field_and_the_reason() {
        assert_eq!(
            event_from_proto(temperature(52.1)).unwrap_err().to_string(),
            "health.temperature.celsius: 52.1 is outside 30.0..=45.0"
        );
        let mut e = temperature(36.6);
        e.occurred_at = "yesterday".into();
        assert!(
            event_from_proto(e)
                .unwrap_err()
                .to_string()
                .starts_with("occurred_at: \"yesterday\" is not an RFC 3339 time")
        );
        let mut e = temperature(36.6);
        e.school = "S/1".into();
        assert_eq!(event_from_proto(e).unwrap_err().field, "school");
        let mut e = temperature(36.6);
        e.payload = None;
        assert_eq!(event_from_proto(e).unwrap_err().field, "payload");
        let mut e = temperature(f64::NAN);
        e.event_id = "e2".into();
        assert_eq!(event_from_proto(e).unwrap_err().field, "health.temperature.celsius");
    }

    #[test]
    fn codes_refuse_separators_and_spaces_in_any_script() {
        assert_eq!(checked_code("校区1".into(), true), Ok("校区1".into()));
        for refused in ["a b", "a/b", "a:b", "a\tb", "a\u{7f}", "东\u{3000}区", "a\u{85}"] {
            assert!(checked_code(refused.into(), true).unwrap_err().contains("codes may not contain"), "{refused:?}");
        }
        assert_eq!(checked_code(String::new(), true).unwrap_err(), "must not be empty");
        assert_eq!(checked_code(String::new(), false), Ok(String::new()));
        assert!(checked_code("x".repeat(129), false).unwrap_err().contains("at most 128"));
        // A placement's fields are named in full.
        let e = pb::Event {
            payload: Some(pb::event::Payload::Roster(pb::RosterEvent {
                person_id: "P1".into(),
                change: Some(pb::roster_event::Change::Moved(pb::Moved {
                    placement: Some(pb::Placement {
                        department: "D1".into(),
                        dorm: "B 2".into(),
                        ..Default::default()
                    }),
                })),
            })),
            ..temperature(36.6)
        };
        assert_eq!(event_from_proto(e).unwrap_err().field, "roster.moved.placement.dorm");
    }

    #[test]
    fn a_unit_is_named_only_below_its_own_school_with_a_name() {
        let naming = |unit: &str, zh: &str, en: &str| pb::Event {
            payload: Some(pb::event::Payload::Unit(pb::UnitEvent {
                change: Some(pb::unit_event::Change::Named(pb::UnitNamed {
                    unit: unit.into(),
                    name_zh: zh.into(),
                    name_en: en.into(),
                })),
            })),
            ..temperature(36.6)
        };
        let envelope = event_from_proto(naming("class:S1/D1/2019/C01", "一班", "")).unwrap();
        assert_eq!(envelope.kind(), domain::event::EventKind::Roster, "with the school's roster");
        for (unit, zh, en, field) in [
            ("school:S2", "别校", "", "unit.named.unit"),
            ("city:Guangzhou", "广州", "", "unit.named.unit"),
            ("class:S1/D1/C01", "一班", "", "unit.named.unit"),
            ("dorm:S1/B 2", "二号楼", "", "unit.named.unit"),
            ("school:S1", " ", "", "unit.named.name_zh"),
        ] {
            assert_eq!(event_from_proto(naming(unit, zh, en)).unwrap_err().field, field, "{unit} {zh:?}");
        }
        let long = "名".repeat(100);
        assert_eq!(event_from_proto(naming("school:S1", &long, "")).unwrap_err().field, "unit.named.name_zh");
    }

    #[test]
    fn a_student_without_a_class_is_refused() {
        let e = pb::Event {
            payload: Some(pb::event::Payload::Roster(pb::RosterEvent {
                person_id: "P1".into(),
                change: Some(pb::roster_event::Change::Registered(pb::Registered {
                    role: pb::Role::Student as i32,
                    placement: Some(pb::Placement { department: "D1".into(), ..Default::default() }),
                    city: "Wuhan".into(),
                    on_campus: true,
                })),
            })),
            ..temperature(36.6)
        };
        assert_eq!(
            event_from_proto(e).unwrap_err().to_string(),
            "roster.registered.placement.class_name: a student needs a grade and a class"
        );
    }
}

#[cfg(test)]
mod bounds {
    //! What the fold can fold: dates it can add a period to, lists it folds in linear time,
    //! values of bounded size; and errors that stay short whatever was sent.
    use super::*;

    fn movement(kind: pb::movement_event::Kind) -> pb::Event {
        pb::Event {
            site: String::new(),
            event_id: "e1".into(),
            source: "test".into(),
            school: "S1".into(),
            occurred_at: "2026-03-02T08:00:00+08:00".into(),
            payload: Some(pb::event::Payload::Movement(pb::MovementEvent { person_id: "P1".into(), kind: Some(kind) })),
        }
    }

    fn history(date: &str) -> pb::Event {
        movement(pb::movement_event::Kind::TwoHistories(pb::TwoHistoriesDeclared {
            kind: pb::HistoryKind::HistoryTravel as i32,
            date: date.into(),
        }))
    }

    #[test]
    fn payload_dates_are_strict_and_near_the_event() {
        use pb::movement_event::Kind;
        for refused in
            ["+262142-12-31", "2026-1-1", "2026-01-1", " 2026-03-01", "2026-03-01 ", "-2026-03-01", "26-03-01"]
        {
            let e = event_from_proto(history(refused)).unwrap_err();
            assert_eq!(e.field, "movement.two_histories.date", "{refused:?}");
            assert!(e.reason.contains("YYYY-MM-DD"), "{refused:?}: {e}");
        }
        // Two years from the event's own date (2026-03-02), either way, and not a day more.
        assert!(event_from_proto(history("2028-03-02")).is_ok());
        assert!(event_from_proto(history("2024-03-01")).is_ok());
        for far in ["2028-03-04", "2024-02-29", "9999-12-31", "0001-01-01"] {
            let e = event_from_proto(history(far)).unwrap_err();
            assert!(e.reason.contains("more than two years"), "{far}: {e}");
        }
        let returned = |date: &str| Kind::Returned(pb::Returned { date: date.into(), batch: 1 });
        assert_eq!(event_from_proto(movement(returned("+262142-12-31"))).unwrap_err().field, "movement.returned.date");
        let leave = Kind::LeaveRequested(pb::LeaveRequested { until: "262142-12-31".into(), reason: String::new() });
        assert_eq!(event_from_proto(movement(leave)).unwrap_err().field, "movement.leave_requested.until");
        let contact = Kind::TwoHistories(pb::TwoHistoriesDeclared {
            kind: pb::HistoryKind::HistoryCloseContact as i32,
            date: "+262142-12-20".into(),
        });
        assert_eq!(event_from_proto(movement(contact)).unwrap_err().field, "movement.two_histories.date");
    }

    #[test]
    fn a_huge_value_is_refused_by_name_with_a_short_error() {
        let huge = "9".repeat(1 << 20);
        let e = event_from_proto(history(&huge)).unwrap_err();
        assert_eq!(e.field, "movement.two_histories.date");
        assert!(e.to_string().len() < 200, "{} bytes", e.to_string().len());
        assert!(e.reason.contains("1048576 bytes"), "{e}");
        for (field, event) in [
            ("event_id", pb::Event { event_id: huge.clone(), ..history("2026-03-01") }),
            ("source", pb::Event { source: huge.clone(), ..history("2026-03-01") }),
            ("school", pb::Event { school: huge.clone(), ..history("2026-03-01") }),
            ("occurred_at", pb::Event { occurred_at: huge.clone(), ..history("2026-03-01") }),
        ] {
            let e = event_from_proto(event).unwrap_err();
            assert_eq!(e.field, field);
            assert!(e.to_string().len() < 200, "{field}: {} bytes", e.to_string().len());
        }
        let place = pb::movement_event::Kind::IsolationStarted(pb::IsolationStarted {
            kind: pb::IsolationKind::IsolationHome as i32,
            place: huge.clone(),
            roommates: vec![],
        });
        assert_eq!(event_from_proto(movement(place)).unwrap_err().field, "movement.isolation_started.place");
        let whereabouts = pb::movement_event::Kind::Whereabouts(pb::WhereaboutsDeclared {
            province: "Hubei".into(),
            city: huge.clone(),
            in_key_area: true,
            on_campus: false,
        });
        assert_eq!(event_from_proto(movement(whereabouts)).unwrap_err().field, "movement.whereabouts.city");
        let leave = pb::movement_event::Kind::LeaveRequested(pb::LeaveRequested {
            until: "2026-03-03".into(),
            reason: "x".repeat(MAX_NOTE_BYTES + 1),
        });
        assert_eq!(event_from_proto(movement(leave)).unwrap_err().field, "movement.leave_requested.reason");
        // A code with a bad character far into it is quoted by its start only.
        let e = checked_code(format!("{}/", "a".repeat(1000)), true).unwrap_err();
        assert!(e.len() < 200, "{e}");
    }

    #[test]
    fn a_room_names_at_most_a_few_dozen_roommates() {
        let room = |n: usize| {
            movement(pb::movement_event::Kind::IsolationStarted(pb::IsolationStarted {
                kind: pb::IsolationKind::IsolationCentralized as i32,
                place: "hotel".into(),
                roommates: (0..n).map(|i| format!("R{i}")).collect(),
            }))
        };
        assert!(event_from_proto(room(MAX_ROOMMATES)).is_ok());
        let e = event_from_proto(room(40_000)).unwrap_err();
        assert_eq!(e.field, "movement.isolation_started.roommates");
        assert!(e.reason.contains("40000"), "{e}");
    }

    #[test]
    fn each_symptom_is_listed_at_most_once() {
        let symptoms = |list: &[pb::Symptom]| pb::Event {
            payload: Some(pb::event::Payload::Health(pb::HealthEvent {
                person_id: "P1".into(),
                kind: Some(pb::health_event::Kind::Symptoms(pb::SymptomsReported {
                    symptoms: list.iter().map(|s| *s as i32).collect(),
                })),
            })),
            ..history("2026-03-01")
        };
        use pb::Symptom::{Cough, Fatigue};
        assert!(event_from_proto(symptoms(&[Cough, Fatigue])).is_ok());
        let e = event_from_proto(symptoms(&[Cough, Fatigue, Cough])).unwrap_err();
        assert_eq!(e.to_string(), "health.symptoms.symptoms[2]: cough is listed twice");
        let e = event_from_proto(symptoms(&[Cough; 6000])).unwrap_err();
        assert_eq!(e.field, "health.symptoms.symptoms");
    }
}
