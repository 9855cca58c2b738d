//! `daybook export`: a report table or the observation list as a file, through the
//! `Feeds.Export` gRPC call.

use wire::pb;
use wire::pb::feeds_client::FeedsClient;

/// Asks the server over `connection` for a file; `what` is `reports`, `observation`,
/// `inspections` or `findings`.
pub async fn fetch(
    connection: crate::client::Connection,
    what: &str,
    unit: &str,
    level: &str,
    date: &str,
    format: &str,
) -> anyhow::Result<pb::ExportFile> {
    let kind = match what {
        "reports" => pb::ExportKind::DailyReports,
        "observation" => pb::ExportKind::ObservationList,
        "inspections" => pb::ExportKind::InspectionReports,
        "findings" => pb::ExportKind::Findings,
        other => anyhow::bail!("what: {other:?} is not `reports`, `observation`, `inspections` or `findings`"),
    };
    let format = match format {
        "csv" => pb::ExportFormat::Csv,
        "xlsx" => pb::ExportFormat::Xlsx,
        "dhis2" => pb::ExportFormat::Dhis2Json,
        other => anyhow::bail!("format: {other:?} is not `csv`, `xlsx` or `dhis2`"),
    };
    let level: domain::Level = level.parse().map_err(|e| anyhow::anyhow!("level: {e}"))?;
    let mut client = FeedsClient::new(connection);
    let request = pb::ExportRequest {
        kind: kind as i32,
        format: format as i32,
        unit: unit.to_owned(),
        level: wire::level_to_proto(level) as i32,
        date: date.to_owned(),
    };
    let file = client.export(request).await.map_err(|s| anyhow::anyhow!("{:?}: {}", s.code(), s.message()))?;
    Ok(file.into_inner())
}
