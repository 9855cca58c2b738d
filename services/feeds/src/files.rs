//! Files for the offices: the daily report table of a level and the observation list,
//! as CSV or XLSX (the `export` crate writes them), from the same read model as the gRPC
//! reports.

use aggregator::Projections;
use domain::event::IsolationKind;
use domain::{Day, Level, UnitKey};
use export::{Format, ObservationRow, ReportRow};
use reports::ReadModel;

use crate::FeedError;

/// Every report of `level` under `under` on `day`, with its publication state.
pub fn report_rows(model: &ReadModel, level: Level, under: &UnitKey, day: Day) -> Result<Vec<ReportRow>, FeedError> {
    let under = if level == Level::Province { UnitKey::province() } else { under.clone() };
    let mut rows = Vec::new();
    model.reports(&under, day, Some(level), |report| {
        rows.push(ReportRow {
            version: report.version,
            status: report.status.as_str().to_owned(),
            revised: report.revised,
            coverage: report.coverage().unwrap_or(f64::NAN),
            report,
        });
        true
    })?;
    Ok(rows)
}

/// Persons under home or centralized observation under `under` at the end of `day`, as
/// the list stood then, by the unit they were listed in (their class, else the lowest
/// unit they had).
pub fn observation_rows(
    projections: &Projections,
    under: &UnitKey,
    day: Day,
) -> Result<Vec<ObservationRow>, FeedError> {
    let mut rows = Vec::new();
    for person in projections.key_persons(under, day)? {
        let Some((kind, start, expected_end)) = person.observation else { continue };
        let units = UnitKey::for_person(&person.city, &person.school, &person.placement);
        let listed = units.iter().filter(|u| u.level != Level::Dorm).max_by_key(|u| u.level);
        rows.push(ObservationRow {
            unit: listed.map(ToString::to_string).unwrap_or_default(),
            school: person.school.clone(),
            person: person.person.clone(),
            kind: match kind {
                IsolationKind::Home => "home",
                IsolationKind::Centralized => "centralized",
            }
            .to_owned(),
            start,
            expected_end,
            status: match (expected_end <= day, person.release_refused) {
                (true, _) => "due for release",
                (false, Some(_)) => "under observation, release refused",
                (false, None) => "under observation",
            }
            .to_owned(),
        });
    }
    rows.sort_by(|a, b| (&a.unit, &a.person).cmp(&(&b.unit, &b.person)));
    Ok(rows)
}

/// A file name that says what the file holds.
pub fn file_name(what: &str, under: &impl std::fmt::Display, day: Day, format: Format) -> String {
    let unit: String =
        under.to_string().chars().map(|c| if c.is_alphanumeric() || c == '-' { c } else { '_' }).collect();
    format!("daybook-{what}-{unit}-{}.{}", day.format("%Y-%m-%d"), format.extension())
}
