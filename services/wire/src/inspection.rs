//! Inspection reports, findings and their alerts as protobuf and JSON.

use domain::Day;
use domain::event::ChecklistItem;
use domain::inspection::{
    Finding, FindingStatus, InspectionAlert, InspectionAlertKind, InspectionReport, InspectionUnit, item_index,
};

use crate::pb;

fn date(day: Day) -> String {
    day.format("%Y-%m-%d").to_string()
}

/// A checklist item as protobuf (the checklist's order, from 1).
pub fn checklist_item_to_proto(item: ChecklistItem) -> i32 {
    item_index(item) as i32 + 1
}

pub fn inspection_report_to_proto(r: &InspectionReport) -> pb::InspectionReport {
    let t = &r.tally;
    let status = if r.version == 0 { pb::ReportStatus::Open } else { pb::ReportStatus::OnTime };
    pb::InspectionReport {
        unit: r.unit.to_string(),
        date: date(r.day),
        city: r.city.clone(),
        name_zh: r.names.zh.clone(),
        name_en: r.names.en.clone(),
        halls_registered: t.halls_registered,
        halls_inspected: t.halls_inspected,
        window_days: r.window_days,
        halls_inspected_in_window: t.halls_inspected_in_window,
        halls_not_inspected_in_window: t.halls_not_inspected_in_window.iter().cloned().collect(),
        items_failed: t.items_failed.to_vec(),
        findings_opened: t.findings_opened,
        findings_rectified: t.findings_rectified,
        findings_open: t.findings_open,
        findings_overdue: t.findings_overdue,
        halls_ever_inspected: t.halls_ever_inspected,
        halls_compliant: t.halls_compliant,
        compliance_rate: t.compliance_rate(),
        status: status as i32,
        version: r.version,
        revised: r.version > 1,
        kind: r.kind.map_or(0, |k| crate::event::hall_kind_to_proto(k) as i32),
    }
}

pub fn finding_to_proto(hall: &str, city: &str, f: &Finding) -> pb::Finding {
    let status = match f.status {
        FindingStatus::Open => pb::FindingStatus::Open,
        FindingStatus::Overdue => pb::FindingStatus::Overdue,
        FindingStatus::Rectified => pb::FindingStatus::Rectified,
    };
    pb::Finding {
        hall: hall.to_owned(),
        city: city.to_owned(),
        inspection_id: f.inspection_id.clone(),
        item: checklist_item_to_proto(f.item),
        finding: f.finding.clone(),
        opened: date(f.opened),
        deadline: date(f.deadline),
        status: status as i32,
        rectified: f.rectified.map(date).unwrap_or_default(),
        rectified_by_reinspection: f.by_reinspection,
    }
}

/// An inspection alert as the feeds carry it: `school` is the hall, `event_id` the alert's
/// key (what makes it the same alert again).
pub fn inspection_alert_to_proto(a: &InspectionAlert) -> pb::Alert {
    let mut alert = pb::Alert {
        event_id: a.key(),
        school: a.hall.clone(),
        city: a.city.clone(),
        date: date(a.day),
        units: vec![InspectionUnit::Province.to_string(), format!("city:{}", a.city), format!("hall:{}", a.hall)],
        ..Default::default()
    };
    match &a.kind {
        InspectionAlertKind::FindingOverdue(f) => {
            alert.kind = pb::AlertKind::FindingOverdue as i32;
            alert.inspection_id = f.inspection_id.clone();
            alert.item = checklist_item_to_proto(f.item);
            alert.deadline = date(f.deadline);
            alert.reason = format!(
                "finding of inspection {} on item {} ({:?}) not rectified by {}: {}",
                f.inspection_id,
                item_index(f.item) + 1,
                f.item,
                date(f.deadline),
                f.finding
            );
        }
        InspectionAlertKind::NotInspected { last } => {
            alert.kind = pb::AlertKind::HallNotInspected as i32;
            alert.last_inspected = last.map(date).unwrap_or_default();
            alert.reason = match last {
                Some(last) => format!("not inspected since {}", date(*last)),
                None => "never inspected".to_owned(),
            };
        }
    }
    alert
}

/// An inspection report as JSON (the CLI's `--json`, JSON feed topics).
pub fn inspection_report_to_json(r: &pb::InspectionReport) -> serde_json::Value {
    serde_json::json!({
        "unit": r.unit,
        "date": r.date,
        "city": r.city,
        "name_zh": r.name_zh,
        "name_en": r.name_en,
        "kind": pb::HallKind::try_from(r.kind).map(|k| k.as_str_name()).unwrap_or_default(),
        "halls_registered": r.halls_registered,
        "halls_inspected": r.halls_inspected,
        "window_days": r.window_days,
        "halls_inspected_in_window": r.halls_inspected_in_window,
        "halls_not_inspected_in_window": r.halls_not_inspected_in_window,
        "items_failed": r.items_failed,
        "findings_opened": r.findings_opened,
        "findings_rectified": r.findings_rectified,
        "findings_open": r.findings_open,
        "findings_overdue": r.findings_overdue,
        "halls_ever_inspected": r.halls_ever_inspected,
        "halls_compliant": r.halls_compliant,
        "compliance_rate": r.compliance_rate,
        "status": pb::ReportStatus::try_from(r.status).map(|s| s.as_str_name()).unwrap_or_default(),
        "version": r.version,
        "revised": r.revised,
    })
}
