//! Reports and alerts as JSON, for scripts and for the offices' Kafka topics when they ask
//! for JSON values: the protobuf messages' fields under their protobuf names, enums by
//! their protobuf value names.

use crate::pb;

/// The report as JSON for scripts; field names as in the protobuf.
pub fn report_to_json(r: &pb::DailyReport) -> serde_json::Value {
    let roles = r.population_by_role.unwrap_or_default();
    let symptoms = r.symptoms.unwrap_or_default();
    let mut json = serde_json::json!({
        "unit": r.unit,
        "name_zh": r.name_zh,
        "name_en": r.name_en,
        "level": pb::Level::try_from(r.level).map(|l| l.as_str_name()).unwrap_or_default(),
        "date": r.date,
        "zero_report": r.zero_report,
        "population": r.population,
        "population_by_role": {
            "student": roles.student, "teacher": roles.teacher, "staff": roles.staff,
            "temporary_hire": roles.temporary_hire, "property_management": roles.property_management,
            "canteen_worker": roles.canteen_worker, "other_resident": roles.other_resident,
        },
        "present_on_campus": r.present_on_campus,
        "in_key_area": r.in_key_area,
        "two_histories": r.two_histories,
        "close_contacts": r.close_contacts,
        "checks": r.checks.iter().map(|c| serde_json::json!({
            "slot": pb::Slot::try_from(c.slot).map(|s| s.as_str_name()).unwrap_or_default(),
            "done": c.done, "expected": c.expected,
        })).collect::<Vec<_>>(),
        "fever": r.fever,
        "symptoms": {
            "fever": symptoms.fever, "cough": symptoms.cough, "fatigue": symptoms.fatigue,
            "other_respiratory": symptoms.other_respiratory,
        },
        "suspected_new": r.suspected_new,
        "suspected_current": r.suspected_current,
        "confirmed_new": r.confirmed_new,
        "confirmed_current": r.confirmed_current,
        "home_observation": r.home_observation,
        "centralized_observation": r.centralized_observation,
        "released": r.released,
        "observation_started": r.observation_started,
        "due_for_release": r.due_for_release,
        "observation_extended": r.observation_extended,
        "batches": r.batches.iter().map(|b| serde_json::json!({
            "batch": b.batch, "planned": b.planned, "returned": b.returned, "not_yet_returned": b.not_yet_returned,
        })).collect::<Vec<_>>(),
        "gate_in_kept_out": r.gate_in_kept_out,
        "returned_without_health_card": r.returned_without_health_card,
        "boarder_left_without_leave": r.boarder_left_without_leave,
        "releases_refused": r.releases_refused,
        "observation_missing": r.observation_missing,
        "sick_absent": r.sick_absent,
        "sick_absence_started": r.sick_absence_started,
        "back_in_class": r.back_in_class,
        "returned": r.returned,
        "health_cards": r.health_cards,
        "gate_in": r.gate_in,
        "gate_out": r.gate_out,
    });
    // The publication fields (kept apart: one json! this size hits the macro's limit).
    let extra = serde_json::json!({
        "checked_any": r.checked_any,
        "abnormal": r.abnormal,
        "leave_overdue": r.leave_overdue,
        "unrostered": r.unrostered,
        "status": pb::ReportStatus::try_from(r.status).map(|s| s.as_str_name()).unwrap_or_default(),
        "version": r.version,
        "revised": r.revised,
        "changes": r.changes.iter().map(|c| serde_json::json!({
            "field": c.field, "before": c.before, "after": c.after,
        })).collect::<Vec<_>>(),
        "reporting": r.reporting.as_ref().map(|rate| serde_json::json!({
            "expected": rate.expected, "actual": rate.actual, "on_time": rate.on_time,
            "missing": rate.missing, "late": rate.late,
        })),
    });
    if let (Some(out), serde_json::Value::Object(extra)) = (json.as_object_mut(), extra) {
        out.extend(extra);
    }
    json
}

/// An alert as JSON; field names as in the protobuf.
pub fn alert_to_json(a: &pb::Alert) -> serde_json::Value {
    serde_json::json!({
        "event_id": a.event_id,
        "kind": pb::AlertKind::try_from(a.kind).map(|k| k.as_str_name()).unwrap_or_default(),
        "school": a.school,
        "city": a.city,
        "person_id": a.person_id,
        "occurred_at": a.occurred_at,
        "celsius": a.celsius,
        "units": a.units,
        "reason": a.reason,
        "date": a.date,
        "inspection_id": a.inspection_id,
        "item": pb::ChecklistItem::try_from(a.item).map(|k| k.as_str_name()).unwrap_or_default(),
        "deadline": a.deadline,
        "last_inspected": a.last_inspected,
    })
}

/// A feed item as JSON: its cursor and office, and its report or alert under that name.
pub fn feed_item_to_json(item: &pb::FeedItem) -> serde_json::Value {
    let mut json = serde_json::json!({ "cursor": item.cursor, "office": item.office });
    match &item.item {
        Some(pb::feed_item::Item::Report(report)) => json["report"] = report_to_json(report),
        Some(pb::feed_item::Item::Alert(alert)) => json["alert"] = alert_to_json(alert),
        Some(pb::feed_item::Item::InspectionReport(report)) => {
            json["inspection_report"] = crate::inspection_report_to_json(report)
        }
        None => {}
    }
    json
}

/// An inspection finding as JSON.
pub fn finding_to_json(f: &pb::Finding) -> serde_json::Value {
    serde_json::json!({
        "hall": f.hall,
        "city": f.city,
        "inspection_id": f.inspection_id,
        "item": pb::ChecklistItem::try_from(f.item).map(|k| k.as_str_name()).unwrap_or_default(),
        "finding": f.finding,
        "opened": f.opened,
        "deadline": f.deadline,
        "status": pb::FindingStatus::try_from(f.status).map(|s| s.as_str_name()).unwrap_or_default(),
        "rectified": f.rectified,
        "rectified_by_reinspection": f.rectified_by_reinspection,
    })
}
