//! The inspection tables the offices read (DOMAIN.md, "What the offices read":
//! window-inspection compliance by hall and city, with open findings): one row per unit's
//! inspection report of a day, and one row per finding. Headers in both languages, as the
//! daily report table's.

use domain::event::{ChecklistItem, HallKind};
use domain::inspection::{FindingStatus, HallFinding, InspectionReport, InspectionUnit};

use crate::{Cell, Header, Table};

/// The checklist's items in both languages, in the seed's order.
pub fn item_header(item: ChecklistItem) -> Header {
    match item {
        ChecklistItem::EntranceTemperature => Header::new("入口测温", "Entrance temperature checks"),
        ChecklistItem::MasksRequired => Header::new("佩戴口罩", "Masks required"),
        ChecklistItem::StaffProtection => Header::new("工作人员防护", "Staff protection"),
        ChecklistItem::StaffHealthMonitored => Header::new("工作人员健康监测", "Staff health monitored"),
        ChecklistItem::DisinfectionVentilation => Header::new("消毒通风", "Disinfection and ventilation"),
        ChecklistItem::ThermometersSanitizer => Header::new("体温计和消毒液", "Thermometers and sanitizer"),
        ChecklistItem::NoContactService => Header::new("不见面服务", "No-contact service"),
        ChecklistItem::HealthPublicity => Header::new("健康宣传", "Health publicity"),
        ChecklistItem::StaffTrained => Header::new("工作人员培训", "Staff trained"),
    }
}

fn kind_label(kind: HallKind) -> &'static str {
    match kind {
        HallKind::ServiceHall => "厅服务大厅 / Department's service hall",
        HallKind::SocialInsuranceBureau => "社保局 / Social-insurance bureau",
        HallKind::TalentBureau => "人才局 / Talent bureau",
        HallKind::ExaminationBureau => "考试院 / Examination bureau",
        HallKind::RehabilitationHospital => "工伤康复医院 / Work-injury rehabilitation hospital",
        HallKind::CityHall => "市人社服务大厅 / City hall",
    }
}

fn level_label(unit: &InspectionUnit) -> &'static str {
    match unit {
        InspectionUnit::Province => "省 / province",
        InspectionUnit::City(_) => "市 / city",
        InspectionUnit::Hall(_) => "窗口单位 / hall",
    }
}

fn status_label(status: FindingStatus) -> &'static str {
    match status {
        FindingStatus::Open => "未整改 / open",
        FindingStatus::Overdue => "逾期未整改 / overdue",
        FindingStatus::Rectified => "已整改 / rectified",
    }
}

/// One row per inspection report: unit, names, level, kind, date, version, the halls'
/// counts, the nine items' failures, the findings' counts and the compliance rate.
pub fn inspection_table(reports: &[InspectionReport]) -> Table {
    let mut headers = vec![
        Header::new("单位", "Unit"),
        Header::new("名称", "Name"),
        Header::new("层级", "Level"),
        Header::new("类型", "Kind"),
        Header::new("日期", "Date"),
        Header::new("版本（0=未封存）", "Version (0 = not sealed)"),
        Header::new("登记窗口单位", "Halls registered"),
        Header::new("当日检查", "Halls inspected that day"),
        Header::new("检查周期（天）", "Window (days)"),
        Header::new("周期内已检查", "Inspected within the window"),
        Header::new("周期内未检查", "Not inspected within the window"),
    ];
    headers.extend(ChecklistItem::ALL.map(item_header));
    headers.extend([
        Header::new("新增问题", "Findings opened"),
        Header::new("当日整改", "Findings rectified"),
        Header::new("未整改问题", "Findings open"),
        Header::new("逾期未整改", "Findings overdue"),
        Header::new("已检查单位", "Halls ever inspected"),
        Header::new("达标单位", "Halls compliant"),
        Header::new("达标率", "Compliance rate"),
    ]);
    let rows = reports
        .iter()
        .map(|r| {
            let t = &r.tally;
            let mut row: Vec<Cell> = vec![
                r.unit.to_string().into(),
                r.names.label().into(),
                level_label(&r.unit).into(),
                r.kind.map_or(Cell::Empty, |k| kind_label(k).into()),
                r.day.into(),
                r.version.into(),
                t.halls_registered.into(),
                t.halls_inspected.into(),
                r.window_days.into(),
                t.halls_inspected_in_window.into(),
                t.halls_not_inspected_in_window.iter().cloned().collect::<Vec<_>>().join(" ").into(),
            ];
            row.extend(t.items_failed.map(Cell::from));
            row.extend([
                t.findings_opened.into(),
                t.findings_rectified.into(),
                t.findings_open.into(),
                t.findings_overdue.into(),
                t.halls_ever_inspected.into(),
                t.halls_compliant.into(),
                if t.halls_ever_inspected == 0 { Cell::Empty } else { Cell::Percent(t.compliance_rate()) },
            ]);
            row
        })
        .collect();
    Table { sheet: "窗口检查 Inspections".to_owned(), headers, rows }
}

/// One row per finding: hall, city, inspection, item, what was found, opened, deadline,
/// status, rectified and how.
pub fn findings_table(findings: &[HallFinding]) -> Table {
    let headers = vec![
        Header::new("窗口单位", "Hall"),
        Header::new("城市", "City"),
        Header::new("检查编号", "Inspection"),
        Header::new("检查项目", "Item"),
        Header::new("问题", "Finding"),
        Header::new("发现日期", "Opened"),
        Header::new("整改期限", "Deadline"),
        Header::new("状态", "Status"),
        Header::new("整改日期", "Rectified"),
        Header::new("经复查确认", "Rectified by re-inspection"),
    ];
    let rows = findings
        .iter()
        .map(|r| {
            let f = &r.finding;
            vec![
                r.hall.as_str().into(),
                r.city.as_str().into(),
                f.inspection_id.as_str().into(),
                item_header(f.item).label().into(),
                f.finding.as_str().into(),
                f.opened.into(),
                f.deadline.into(),
                status_label(f.status).into(),
                f.rectified.map_or(Cell::Empty, Cell::from),
                f.by_reinspection.into(),
            ]
        })
        .collect();
    Table { sheet: "整改问题 Findings".to_owned(), headers, rows }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use domain::Day;
    use domain::inspection::InspectionTally;
    use domain::unit::UnitNames;

    use super::*;

    #[test]
    fn every_header_is_unique_in_both_languages_and_rows_are_as_wide() {
        let day = Day::from_ymd_opt(2020, 3, 1).unwrap();
        let report = InspectionReport {
            unit: InspectionUnit::City("Foshan".into()),
            day,
            city: "Foshan".into(),
            names: UnitNames { zh: "佛山市".into(), en: "Foshan".into() },
            kind: None,
            window_days: 7,
            tally: InspectionTally {
                halls_registered: 2,
                items_failed: [0, 1, 0, 0, 0, 0, 0, 0, 2],
                ..Default::default()
            },
            version: 1,
        };
        let table = inspection_table(&[report]);
        let zh: BTreeSet<_> = table.headers.iter().map(|h| h.zh).collect();
        let en: BTreeSet<_> = table.headers.iter().map(|h| h.en).collect();
        assert_eq!((zh.len(), en.len()), (table.headers.len(), table.headers.len()));
        assert_eq!(table.rows[0].len(), table.headers.len());
        let masks = table.headers.iter().position(|h| h.en == "Masks required").unwrap();
        assert_eq!(table.rows[0][masks], Cell::Int(1));
        let rate = table.headers.iter().position(|h| h.en == "Compliance rate").unwrap();
        assert_eq!(table.rows[0][rate], Cell::Empty, "no hall inspected: no rate, not 0 %");
    }
}
