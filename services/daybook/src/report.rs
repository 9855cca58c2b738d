//! `daybook report`: a unit's daily report from a running server, as a table or JSON.

use std::fmt::Write;
use std::time::Duration;

use wire::pb;
use wire::pb::reports_client::ReportsClient;

use crate::client::Connection;

/// A Reports client for the server at `target`, over TLS when it is `https://`, with
/// `token` when the server checks access.
pub async fn connect(
    target: &str,
    token: Option<&str>,
    tls: &crate::tls::ClientArgs,
) -> anyhow::Result<ReportsClient<Connection>> {
    Ok(ReportsClient::new(crate::client::connect(target, token, tls).await?))
}

/// What a Reports client needs of its transport: a plain channel, or one with credentials.
pub trait Transport:
    tonic::client::GrpcService<
        tonic::body::Body,
        Error: Into<tonic::codegen::StdError>,
        ResponseBody: tonic::codegen::Body<
            Data = tonic::codegen::Bytes,
            Error: Into<tonic::codegen::StdError> + Send,
        > + Send
                          + 'static,
    >
{
}

impl<T> Transport for T where
    T: tonic::client::GrpcService<
            tonic::body::Body,
            Error: Into<tonic::codegen::StdError>,
            ResponseBody: tonic::codegen::Body<
                Data = tonic::codegen::Bytes,
                Error: Into<tonic::codegen::StdError> + Send,
            > + Send
                              + 'static,
        >
{
}

pub async fn fetch<T: Transport>(
    client: &mut ReportsClient<T>,
    unit: &str,
    date: &str,
) -> anyhow::Result<pb::DailyReport> {
    let request = pb::DailyReportRequest { unit: unit.to_owned(), date: date.to_owned() };
    let report = client
        .get_daily_report(request)
        .await
        .map_err(|s| anyhow::anyhow!("{}: {}", code_name(s.code()), s.message()))?;
    Ok(report.into_inner())
}

fn code_name(code: tonic::Code) -> String {
    format!("{code:?}").to_lowercase()
}

/// Waits until the aggregator has folded everything the log holds, so that a report read
/// next includes every acknowledged event.
pub async fn wait_until_folded<T: Transport>(
    client: &mut ReportsClient<T>,
    timeout: Duration,
) -> anyhow::Result<pb::StatusResponse> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let status = client.get_status(pb::StatusRequest {}).await?.into_inner();
        if status.total_lag == 0 {
            return Ok(status);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the aggregator still lags {} events after {timeout:?}",
            status.total_lag
        );
        // Over Kafka a status costs the broker a few requests per partition.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn percent(done: u32, expected: u32) -> String {
    if expected == 0 { "-".to_owned() } else { format!("{:.1}%", f64::from(done) * 100.0 / f64::from(expected)) }
}

/// The report as a table a person reads: one line per count, Chinese term beside it.
pub fn render(r: &pb::DailyReport) -> String {
    let mut out = String::new();
    let verdict = if r.zero_report {
        "zero report: nothing abnormal (零报告)"
    } else if r.abnormal > 0 {
        "ABNORMAL: see fever, symptoms, cases or sick absence"
    } else if r.status == pb::ReportStatus::Missing as i32 {
        "MISSING: check coverage below the threshold (缺报)"
    } else {
        "nothing abnormal, but the checks are not complete yet"
    };
    let names = [r.name_zh.as_str(), r.name_en.as_str()].iter().filter(|n| !n.is_empty()).copied().collect::<Vec<_>>();
    let unit = if names.is_empty() { r.unit.clone() } else { format!("{} ({})", r.unit, names.join(" ")) };
    let _ = writeln!(out, "Daily report (日报告) for {unit} on {}: {verdict}", r.date);
    let status = match pb::ReportStatus::try_from(r.status) {
        Ok(pb::ReportStatus::OnTime) => "sent on time (按时报送)",
        Ok(pb::ReportStatus::Late) => "sent late (迟报)",
        Ok(pb::ReportStatus::Missing) => "MISSING (缺报)",
        Ok(pb::ReportStatus::Incomplete) => "INCOMPLETE: not every school has sent (部分报送)",
        _ => "open: live figures until the day's deadline",
    };
    let version = match r.version {
        0 => String::new(),
        v if r.revised => format!(", version {v} (revised)"),
        v => format!(", version {v}"),
    };
    let _ = writeln!(out, "  status: {status}{version}");
    for change in &r.changes {
        let _ = writeln!(out, "  changed: {} {} -> {}", change.field, change.before, change.after);
    }
    if let Some(rate) = &r.reporting {
        let _ = writeln!(
            out,
            "  schools reporting: {}/{} ({} on time); missing: {}",
            rate.actual,
            rate.expected,
            rate.on_time,
            if rate.missing.is_empty() { "none".to_owned() } else { rate.missing.join(", ") }
        );
    }
    let roles = r.population_by_role.unwrap_or_default();
    let symptoms = r.symptoms.unwrap_or_default();
    // The Chinese term goes last: its characters are double-width and would break columns.
    let mut row = |label: &str, value: String| {
        let (english, chinese) = label.split_once(" (").map_or((label, ""), |(e, c)| (e, c.trim_end_matches(')')));
        let _ = writeln!(out, "  {english:<42} {value:>16}  {chinese}");
    };
    row("population (人数)", r.population.to_string());
    row("  students (学生)", roles.student.to_string());
    row("  teachers (教师)", roles.teacher.to_string());
    row("  staff (职工)", roles.staff.to_string());
    row("  temporary hires (临时聘用)", roles.temporary_hire.to_string());
    row("  property management (物业)", roles.property_management.to_string());
    row("  canteen workers (食堂)", roles.canteen_worker.to_string());
    row("  other residents (其他)", roles.other_resident.to_string());
    row("present on campus (在校)", r.present_on_campus.to_string());
    row("in a key area (在重点地区)", r.in_key_area.to_string());
    row("with two histories (两史人员)", r.two_histories.to_string());
    row("close contacts of a case (密切接触者)", r.close_contacts.to_string());
    for c in &r.checks {
        let slot = pb::Slot::try_from(c.slot)
            .map(|s| s.as_str_name().trim_start_matches("SLOT_").to_lowercase())
            .unwrap_or_default();
        let value = if c.expected > 0 {
            format!("{}/{} {}", c.done, c.expected, percent(c.done, c.expected))
        } else {
            c.done.to_string()
        };
        row(&format!("temperature checks, {slot} (体温检测)"), value);
    }
    row("persons with fever (发热)", r.fever.to_string());
    row("symptom: fever (发热症状)", symptoms.fever.to_string());
    row("symptom: cough (咳嗽)", symptoms.cough.to_string());
    row("symptom: fatigue (乏力)", symptoms.fatigue.to_string());
    row("symptom: other respiratory (其他呼吸道症状)", symptoms.other_respiratory.to_string());
    row("suspected, new today / current (疑似)", format!("{} / {}", r.suspected_new, r.suspected_current));
    row("confirmed, new today / current (确诊)", format!("{} / {}", r.confirmed_new, r.confirmed_current));
    row("under home observation (居家观察)", r.home_observation.to_string());
    row("under centralized observation (集中观察)", r.centralized_observation.to_string());
    row("observation started today (新增观察)", r.observation_started.to_string());
    row("due for release (期满待解除)", r.due_for_release.to_string());
    row("observation extended today (延长观察)", r.observation_extended.to_string());
    row("released from observation today (解除观察)", r.released.to_string());
    for b in &r.batches {
        let value = format!("{} / {} / {}", b.planned, b.returned, b.not_yet_returned);
        row(&format!("return batch {}: planned / back / not yet (返校批次)", b.batch), value);
    }
    row("FLAG: under observation or ill, came in (违规入校)", r.gate_in_kept_out.to_string());
    row("FLAG: returned without health card (无健康卡返校)", r.returned_without_health_card.to_string());
    row("FLAG: boarder left without leave (未请假离校)", r.boarder_left_without_leave.to_string());
    row("FLAG: release refused, not yet due (未满解除条件)", r.releases_refused.to_string());
    row("FLAG: not under the observation required (应隔离未隔离)", r.observation_missing.to_string());
    row("FLAG: leave run out, not back (逾期未返校)", r.leave_overdue.to_string());
    row("FLAG: events for persons not on the roster (名册外)", r.unrostered.to_string());
    row("sick absent (因病缺勤)", r.sick_absent.to_string());
    row("sick absence started / back in class (复课)", format!("{} / {}", r.sick_absence_started, r.back_in_class));
    row("returned today (返校)", r.returned.to_string());
    row("health cards submitted (健康卡)", r.health_cards.to_string());
    row("gate: entered / left (门岗进出)", format!("{} / {}", r.gate_in, r.gate_out));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> pb::DailyReport {
        pb::DailyReport {
            unit: "school:S001".into(),
            date: "2020-03-02".into(),
            population: 1234,
            fever: 2,
            abnormal: 2,
            checks: vec![pb::SlotCoverage { slot: pb::Slot::Morning as i32, done: 3, expected: 4 }],
            ..Default::default()
        }
    }

    #[test]
    fn the_table_shows_each_count_with_its_label() {
        let table = render(&sample());
        assert!(table.starts_with("Daily report (日报告) for school:S001 on 2020-03-02: ABNORMAL"), "{table}");
        let line = |label: &str| table.lines().find(|l| l.trim_start().starts_with(label)).unwrap().to_owned();
        assert!(line("population").contains(" 1234  人数"), "{table}");
        assert!(line("persons with fever").contains(" 2  发热"), "{table}");
        assert!(line("temperature checks, morning").contains("3/4 75.0%"), "{table}");
    }

    #[test]
    fn json_carries_the_same_numbers() {
        let json = wire::json::report_to_json(&sample());
        assert_eq!(json["population"], 1234);
        assert_eq!(json["checks"][0]["slot"], "SLOT_MORNING");
        assert_eq!(json["checks"][0]["expected"], 4);
    }
}
