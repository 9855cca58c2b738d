//! `/api/v1/…`: JSON answers to the console's questions, each checked as the gRPC Reports
//! service checks the same question (`reports::grpc`). Reports are the domain's
//! `DailyReport` serialized as is, each beside its unit's key (`"unit": "school:S1"`).

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::routing::{MethodRouter, get};
use domain::access::Access;
use domain::inspection::{InspectionReport, InspectionUnit};
use domain::{DailyReport, Day, Level, UnitKey};
use reports::grpc::{
    daily_report, known, list_day, may_read, may_read_inspections, may_see_persons, parse_inspection_unit, parse_unit,
    report_day, store_failed,
};
use reports::inspection::FindingFilter;
use serde_json::{Value, json};
use tonic::Status;

use crate::{Console, Query, error, json_response};

/// The longest series one request may ask for.
pub const MAX_SERIES_DAYS: u64 = 366;
/// Alerts one request returns at most, and by default.
const MAX_ALERTS: usize = 1000;
const DEFAULT_ALERTS: usize = 100;
/// Alerts one request looks through at most (before the caller's scope narrows them).
const MAX_SCAN: usize = 10_000;

pub(crate) fn routes(console: Console) -> Router {
    Router::new()
        .route("/api/v1/info", json_get(info))
        .route("/api/v1/report", json_get(report))
        .route("/api/v1/children", json_get(children))
        .route("/api/v1/series", json_get(series))
        .route("/api/v1/stragglers", json_get(stragglers))
        .route("/api/v1/key-persons", json_get(|c, a, q| persons(c, a, q, false)))
        .route("/api/v1/observation", json_get(|c, a, q| persons(c, a, q, true)))
        .route("/api/v1/alerts", json_get(alerts))
        .route("/api/v1/inspections", json_get(inspections))
        .route("/api/v1/live", get(crate::live::live))
        .with_state(console)
}

/// The caller's access as the gate left it; a request that passed no gate is refused.
pub(crate) fn access_of(request: &Request) -> Result<Access, Status> {
    request
        .extensions()
        .get::<Access>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("no credentials were checked for this request"))
}

/// A GET answered by `answer` on a blocking thread (sled reads block).
fn json_get<F>(answer: F) -> MethodRouter<Console>
where
    F: Fn(&Console, &Access, &Query) -> Result<Value, Status> + Clone + Send + Sync + 'static,
{
    get(move |State(console): State<Console>, request: Request| {
        let answer = answer.clone();
        async move {
            let access = match access_of(&request) {
                Ok(access) => access,
                Err(status) => return error(&status),
            };
            let query = Query::parse(request.uri().query().unwrap_or(""));
            match tokio::task::spawn_blocking(move || answer(&console, &access, &query)).await {
                Ok(Ok(body)) => json_response(StatusCode::OK, &body),
                Ok(Err(status)) => error(&status),
                Err(e) => error(&Status::internal(format!("query failed: {e}"))),
            }
        }
    })
}

/// A unit report's day: `date`, else the province's today.
fn day_of(console: &Console, query: &Query, field: &str) -> Result<Day, Status> {
    match query.get(field) {
        Some(text) => report_day(field, text, console.today()),
        None => Ok(console.province_day()),
    }
}

fn unit_of(console: &Console, access: &Access, query: &Query, field: &str) -> Result<UnitKey, Status> {
    let unit = parse_unit(field, query.text(field))?;
    may_read(console.inner.model.projections(), access, field, &unit)?;
    Ok(unit)
}

fn keyed(report: &DailyReport) -> Value {
    json!({ "unit": report.unit.to_string(), "report": report })
}

fn json_of(value: impl serde::Serialize) -> Result<Value, Status> {
    serde_json::to_value(value).map_err(|e| Status::internal(e.to_string()))
}

/// Who the caller is, what it reads, and the days it can pick.
fn info(console: &Console, access: &Access, _: &Query) -> Result<Value, Status> {
    let model = &console.inner.model;
    let read: Vec<String> = access.read.iter().map(ToString::to_string).collect();
    Ok(json!({
        "name": access.name,
        "read": read,
        "home": read.first(),
        "persons": access.persons,
        "today": console.province_day(),
        "horizon_days": console.inner.horizon_days,
        "sealed_through": model.sealed_through()?,
        "alerts": console.inner.feeds.is_some(),
    }))
}

/// `unit`'s report for `date`, with the units above it (for the breadcrumb) and its first
/// day (the day picker's earliest).
fn report(console: &Console, access: &Access, query: &Query) -> Result<Value, Status> {
    let model = &console.inner.model;
    let date = day_of(console, query, "date")?.format("%Y-%m-%d").to_string();
    let report = daily_report(model, access, query.text("unit"), &date, console.today())?;
    let projections = model.projections();
    let school = match report.unit.level {
        Level::Province | Level::City => None,
        _ => report.unit.path.split('/').next(),
    };
    let city = school.and_then(|s| projections.city_of(s)).unwrap_or_default();
    let mut above = Vec::new();
    let mut at = report.unit.clone();
    while let Some(parent) = at.parent(&city) {
        let readable = access.may_read(&parent, |s| projections.city_of(s));
        above.push(json!({ "unit": parent.to_string(), "readable": readable }));
        at = parent;
    }
    above.reverse();
    let mut body = keyed(&report);
    body["above"] = Value::Array(above);
    body["first_day"] = json_of(model.first_day(&report.unit)?)?;
    body["revisions"] = json_of(model.revisions(&report.unit, report.date)?)?;
    body["sealed_through"] = json_of(model.sealed_through()?)?;
    Ok(body)
}

/// The reports of the units directly below `unit` on `date`.
fn children(console: &Console, access: &Access, query: &Query) -> Result<Value, Status> {
    let model = &console.inner.model;
    let unit = unit_of(console, access, query, "unit")?;
    let day = day_of(console, query, "date")?;
    known(model.projections(), "unit", &unit)?;
    let children = model.children(&unit, day)?.unwrap_or_default();
    Ok(json!({
        "unit": unit.to_string(),
        "date": day,
        "children": children.iter().map(keyed).collect::<Vec<_>>(),
    }))
}

/// `unit`'s reports from `from` to `to` (by default the 14 days up to the province's today).
fn series(console: &Console, access: &Access, query: &Query) -> Result<Value, Status> {
    let model = &console.inner.model;
    let unit = unit_of(console, access, query, "unit")?;
    let to = day_of(console, query, "to")?;
    let from = match query.get("from") {
        Some(text) => report_day("from", text, console.today())?,
        None => to - chrono::Days::new(13),
    };
    if from > to {
        return Err(Status::invalid_argument(format!("from: {from} is after to ({to})")));
    }
    if (to - from).num_days() >= MAX_SERIES_DAYS as i64 {
        return Err(Status::invalid_argument(format!(
            "from: {from} to {to} is more than {MAX_SERIES_DAYS} days; ask for a shorter range"
        )));
    }
    known(model.projections(), "unit", &unit)?;
    let days = model.series(&unit, from, to)?;
    Ok(json!({ "unit": unit.to_string(), "from": from, "to": to, "days": days }))
}

/// The schools under `under` missing or late on a sealed `date`; on a day still open,
/// those whose checks have not yet reached the coverage a report needs (`not_yet`).
fn stragglers(console: &Console, access: &Access, query: &Query) -> Result<Value, Status> {
    let model = &console.inner.model;
    let under = unit_of(console, access, query, "under")?;
    let day = day_of(console, query, "date")?;
    known(model.projections(), "under", &under)?;
    let keys = |units: &[UnitKey]| units.iter().map(ToString::to_string).collect::<Vec<_>>();
    Ok(match model.stragglers(&under, day)? {
        Some(rate) => json!({
            "under": under.to_string(),
            "date": day,
            "sealed": true,
            "expected": rate.expected,
            "actual": rate.actual,
            "on_time": rate.on_time,
            "missing": keys(&rate.missing),
            "late": keys(&rate.late),
        }),
        None => {
            let mut not_yet = Vec::new();
            let mut expected = 0;
            model.reports(&under, day, Some(Level::School), |report| {
                if report.population > 0 {
                    expected += 1;
                    if !model.close().has_sent(&report) {
                        not_yet.push(report.unit.to_string());
                    }
                }
                true
            })?;
            json!({ "under": under.to_string(), "date": day, "sealed": false, "expected": expected, "not_yet": not_yet })
        }
    })
}

/// The key persons of `unit` as of `date` (the observation list: those under home or
/// centralized observation), as `Reports.ListKeyPersons` answers it.
fn persons(console: &Console, access: &Access, query: &Query, observed_only: bool) -> Result<Value, Status> {
    let model = &console.inner.model;
    let unit = parse_unit("unit", query.text("unit"))?;
    let date = query.get("date").map_or_else(|| console.province_day().format("%Y-%m-%d").to_string(), Into::into);
    let day = list_day(&date, console.today(), console.inner.horizon_days)?;
    may_read(model.projections(), access, "unit", &unit)?;
    may_see_persons(access)?;
    known(model.projections(), "unit", &unit)?;
    let mut persons = model.projections().key_persons(&unit, day).map_err(store_failed)?;
    if observed_only {
        persons.retain(|p| p.observation.is_some());
    }
    let what = if observed_only { "the observation list" } else { "key persons and their observation" };
    console.inner.audit.record(access, "console.persons", &unit.to_string(), what);
    Ok(json!({ "unit": unit.to_string(), "date": day, "persons": persons }))
}

/// Alerts of the caller's office feed: after cursor `after` or, without it, the newest;
/// newest first, only of schools the caller reads (under `under` if given), persons left
/// out without the right to see them. `next` is the cursor to ask after next time.
fn alerts(console: &Console, access: &Access, query: &Query) -> Result<Value, Status> {
    let Some((store, offices)) = &console.inner.feeds else {
        return Err(Status::unavailable(
            "alerts: this instance publishes no feeds (`daybook serve`, or `aggregate` with publish-feeds)",
        ));
    };
    let projections = console.inner.model.projections();
    let cities = projections.units(Some(Level::City), None).map_err(store_failed)?.into_iter().map(|(u, _)| u.path);
    let resolved = offices.resolve(&cities.collect());
    let office = match query.get("office") {
        Some(id) => {
            let office = resolved
                .iter()
                .find(|o| o.id == id)
                .ok_or_else(|| Status::not_found(format!("office: no office {id:?}")))?;
            if !feeds::grpc::may_read_office(access, Some(office)) {
                return Err(Status::permission_denied(format!(
                    "office: token {} may not read the feed of {id}",
                    access.name
                )));
            }
            office
        }
        None => resolved.iter().find(|o| feeds::grpc::may_read_office(access, Some(o))).ok_or_else(|| {
            Status::permission_denied(format!("office: token {} reads no office's whole feed", access.name))
        })?,
    };
    let under = query.get("under").map(|_| unit_of(console, access, query, "under")).transpose()?;
    let limit = match query.get("limit") {
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=MAX_ALERTS).contains(&n) => n,
            _ => {
                return Err(Status::invalid_argument(format!(
                    "limit: {text:?} is not a number from 1 to {MAX_ALERTS}"
                )));
            }
        },
        None => DEFAULT_ALERTS,
    };
    let after = match query.get("after") {
        Some(text) => Some(
            text.parse::<u64>()
                .map_err(|_| Status::invalid_argument(format!("after: {text:?} is not a cursor (a number)")))?,
        ),
        None => None,
    };
    let items = store.alerts(&office.id, after, MAX_SCAN).map_err(Status::from)?;
    let last = store.last_cursor(&office.id).map_err(Status::from)?;
    let under = under.map(|u| u.to_string());
    let mut found = Vec::new();
    for (cursor, bytes) in &items {
        let Some(mut alert) = wire::fed_alert(*cursor, bytes).map_err(|e| Status::data_loss(e.to_string()))? else {
            continue;
        };
        let school = UnitKey::school(&alert.school);
        if !access.may_read(&school, |_| Some(alert.city.clone())) {
            continue;
        }
        if under.as_ref().is_some_and(|u| *u != "province" && !alert.units.contains(u)) {
            continue;
        }
        if !access.persons {
            alert.person.clear();
            alert.event_id.clear();
        }
        found.push(alert);
    }
    let next = match after {
        // The newest: what comes next follows the feed's end.
        None => {
            found.truncate(limit);
            last
        }
        // After a cursor, oldest first: the next call goes on after the last one returned,
        // or after the last one looked at.
        Some(after) if found.len() > limit => {
            found.truncate(limit);
            found.last().map_or(after, |a| a.cursor)
        }
        Some(after) => items.last().map_or(after, |(cursor, _)| *cursor),
    };
    found.sort_by_key(|a| std::cmp::Reverse(a.cursor));
    if access.persons && found.iter().any(|a| !a.person.is_empty()) {
        console.inner.audit.record(access, "console.alerts", &office.id, "alerts naming persons");
    }
    Ok(json!({ "office": office.id, "next": next, "last": last, "alerts": found }))
}

/// An inspection report as the console shows it: its unit's key and kind, and the figures.
fn inspection_json(report: &InspectionReport) -> Value {
    let t = &report.tally;
    json!({
        "unit": report.unit.to_string(),
        "names": report.names,
        "kind": report.kind,
        "version": report.version,
        "window_days": report.window_days,
        "halls_registered": t.halls_registered,
        "halls_inspected": t.halls_inspected,
        "halls_inspected_in_window": t.halls_inspected_in_window,
        "halls_not_inspected_in_window": t.halls_not_inspected_in_window,
        "items_failed": t.items_failed,
        "findings_opened": t.findings_opened,
        "findings_rectified": t.findings_rectified,
        "findings_open": t.findings_open,
        "findings_overdue": t.findings_overdue,
        "halls_ever_inspected": t.halls_ever_inspected,
        "halls_compliant": t.halls_compliant,
        "compliance_rate": (t.halls_ever_inspected > 0).then(|| t.compliance_rate()),
    })
}

/// The service-window inspections of `unit` (the province, a city or a hall) for `date`:
/// its report, those of the units right under it (the province's cities, a city's halls),
/// and the findings open at the day's end, checked as `GetInspectionReport` and
/// `ListFindings` check them.
fn inspections(console: &Console, access: &Access, query: &Query) -> Result<Value, Status> {
    let model = &console.inner.model;
    let unit = parse_inspection_unit("unit", query.text("unit"))?;
    let day = day_of(console, query, "date")?;
    may_read_inspections(model, access, "unit", &unit)?;
    let reports = model.inspection_reports(&unit, day)?.unwrap_or_default();
    let below = |r: &&InspectionReport| {
        matches!(
            (&unit, &r.unit),
            (InspectionUnit::Province, InspectionUnit::City(_)) | (InspectionUnit::City(_), InspectionUnit::Hall(_))
        )
    };
    let findings = model.findings(&unit, day, FindingFilter::Open)?.unwrap_or_default();
    Ok(json!({
        "report": reports.iter().find(|r| r.unit == unit).map(inspection_json),
        "children": reports.iter().filter(below).map(inspection_json).collect::<Vec<_>>(),
        "findings": json_of(&findings)?,
    }))
}
