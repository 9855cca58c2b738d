//! `daybook inspections`: a unit's service-window inspection report and its findings from a
//! running server, as text or JSON.

use std::fmt::Write;

use wire::pb;
use wire::pb::reports_client::ReportsClient;

use crate::report::Transport;

/// `unit`'s inspection report of `date`, and its findings kept by `filter`.
pub async fn fetch<T: Transport>(
    client: &mut ReportsClient<T>,
    unit: &str,
    date: &str,
    filter: pb::FindingFilter,
) -> anyhow::Result<(pb::InspectionReport, Vec<pb::Finding>)> {
    let failed = |s: tonic::Status| anyhow::anyhow!("{:?}: {}", s.code(), s.message());
    let request = pb::InspectionReportRequest { unit: unit.to_owned(), date: date.to_owned() };
    let report = client.get_inspection_report(request).await.map_err(failed)?.into_inner();
    let request = pb::ListFindingsRequest { unit: unit.to_owned(), date: date.to_owned(), filter: filter as i32 };
    let findings = client.list_findings(request).await.map_err(failed)?.into_inner().findings;
    Ok((report, findings))
}

/// A findings filter as the command line names it.
pub fn parse_filter(text: &str) -> anyhow::Result<pb::FindingFilter> {
    match text {
        "all" => Ok(pb::FindingFilter::All),
        "open" => Ok(pb::FindingFilter::Open),
        "overdue" => Ok(pb::FindingFilter::Overdue),
        other => anyhow::bail!("findings: {other:?} is not `open`, `overdue` or `all`"),
    }
}

fn item_name(item: i32) -> String {
    let label = pb::ChecklistItem::try_from(item).map(|i| i.as_str_name()).unwrap_or("CHECKLIST_UNSPECIFIED");
    label.trim_start_matches("CHECKLIST_").to_lowercase().replace('_', " ")
}

/// The report as lines of text, then the findings one per line.
pub fn render(r: &pb::InspectionReport, findings: &[pb::Finding]) -> String {
    let mut out = String::new();
    let names = [r.name_zh.as_str(), r.name_en.as_str()].iter().filter(|n| !n.is_empty()).copied().collect::<Vec<_>>();
    let unit = if names.is_empty() { r.unit.clone() } else { format!("{} ({})", r.unit, names.join(" ")) };
    let sealed = match r.version {
        0 => "open: live figures until the day's deadline".to_owned(),
        v if r.revised => format!("sealed, version {v} (revised)"),
        v => format!("sealed, version {v}"),
    };
    let _ = writeln!(out, "Inspection report (窗口检查) for {unit} on {}: {sealed}", r.date);
    let mut row = |label: &str, value: String| {
        let _ = writeln!(out, "  {label:<44} {value:>10}");
    };
    row("halls registered", r.halls_registered.to_string());
    row("halls inspected that day", r.halls_inspected.to_string());
    row(&format!("inspected within {} days", r.window_days), r.halls_inspected_in_window.to_string());
    row("findings opened that day", r.findings_opened.to_string());
    row("findings rectified that day", r.findings_rectified.to_string());
    row("findings open", r.findings_open.to_string());
    row("findings OVERDUE", r.findings_overdue.to_string());
    row(
        "compliant halls / halls ever inspected",
        format!("{}/{} ({:.0}%)", r.halls_compliant, r.halls_ever_inspected, r.compliance_rate * 100.0),
    );
    for (n, failed) in r.items_failed.iter().enumerate().filter(|(_, f)| **f > 0) {
        row(&format!("  failed that day: {}", item_name(n as i32 + 1)), failed.to_string());
    }
    if !r.halls_not_inspected_in_window.is_empty() {
        let _ = writeln!(
            out,
            "  not inspected within {} days: {}",
            r.window_days,
            r.halls_not_inspected_in_window.join(", ")
        );
    }
    for f in findings {
        let status = pb::FindingStatus::try_from(f.status).map(|s| s.as_str_name()).unwrap_or_default();
        let status = status.trim_start_matches("FINDING_STATUS_").to_lowercase();
        let rectified = if f.rectified.is_empty() { String::new() } else { format!(" on {}", f.rectified) };
        let _ = writeln!(
            out,
            "  finding {}/{} item {} ({}): {}{rectified}; opened {}, due {}: {}",
            f.hall,
            f.inspection_id,
            f.item,
            item_name(f.item),
            status,
            f.opened,
            f.deadline,
            f.finding
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_names_the_overdue_findings_and_the_halls_not_inspected() {
        let report = pb::InspectionReport {
            unit: "city:Foshan".into(),
            date: "2020-03-03".into(),
            window_days: 7,
            halls_registered: 2,
            findings_open: 1,
            findings_overdue: 1,
            halls_not_inspected_in_window: vec!["H2".into()],
            items_failed: vec![0, 1, 0, 0, 0, 0, 0, 0, 0],
            version: 1,
            ..Default::default()
        };
        let finding = pb::Finding {
            hall: "H1".into(),
            inspection_id: "I1".into(),
            item: 2,
            status: pb::FindingStatus::Overdue as i32,
            opened: "2020-03-01".into(),
            deadline: "2020-03-02".into(),
            finding: "no reminder posted".into(),
            ..Default::default()
        };
        let text = render(&report, &[finding]);
        assert!(text.contains("sealed, version 1"), "{text}");
        assert!(text.contains("not inspected within 7 days: H2"), "{text}");
        assert!(text.contains("failed that day: masks required"), "{text}");
        assert!(
            text.contains("finding H1/I1 item 2 (masks required): overdue; opened 2020-03-01, due 2020-03-02"),
            "{text}"
        );
        assert!(parse_filter("late").is_err());
    }
}
