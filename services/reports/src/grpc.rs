//! The `Reports` gRPC service: daily reports (through the read model), unit listings, key
//! persons and fold status.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aggregator::{AggregateError, Projections};
use domain::access::{Access, AuditLog, NoAudit};
use domain::{DailyReport, Day, UnitKey};
use eventlog::{EventLog, TopicPartition};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use wire::pb;

use domain::inspection::InspectionUnit;

use crate::inspection::FindingFilter;
use crate::{ReadModel, ReportError};

/// One partition the reports depend on: how far the log goes and how far it is folded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    pub at: TopicPartition,
    pub end: u64,
    pub position: u64,
}

/// Tells, for `GetStatus`, how far behind the reports are; it differs by log.
pub type StatusSource = Arc<dyn Fn() -> Result<Vec<PartitionLag>, String> + Send + Sync>;

/// The status of a single process on a log: the log's ends against the positions stored
/// with the projections.
pub fn local_status<L: EventLog>(log: L, projections: Projections) -> StatusSource {
    Arc::new(move || {
        let positions = projections.positions().map_err(|e| e.to_string())?;
        let ends = log.end_offsets().map_err(|e| e.to_string())?;
        Ok(ends
            .into_iter()
            .map(|(at, end)| PartitionLag { position: positions.get(&at).copied().unwrap_or(0), at, end })
            .collect())
    })
}

pub struct ReportsService {
    model: ReadModel,
    status: StatusSource,
    folded_total: Arc<AtomicU64>,
    /// The store this instance's aggregators fold into (over Kafka not the view the
    /// reports are read from): its quarantine and its stalled partitions.
    quarantine: Option<Projections>,
    audit: Arc<dyn AuditLog>,
    /// The province's date now: reports of later days are refused.
    today: Today,
    /// Days back from today a key-person list can be asked for (`horizon-days`).
    horizon_days: u32,
}

/// Reads the province's current date.
pub type Today = Arc<dyn Fn() -> Day + Send + Sync>;

impl ReportsService {
    pub fn new(model: ReadModel, status: StatusSource, folded_total: Arc<AtomicU64>) -> Self {
        let zone = chrono::FixedOffset::east_opt(8 * 3600).expect("valid offset");
        let today: Today = Arc::new(move || chrono::Utc::now().with_timezone(&zone).date_naive());
        // The configuration's default horizon.
        let horizon_days = 7;
        Self { model, status, folded_total, quarantine: None, audit: Arc::new(NoAudit), today, horizon_days }
    }

    /// Reads the province's date off `today` (the server's clock in the province's zone).
    pub fn with_today(mut self, today: Today) -> Self {
        self.today = today;
        self
    }

    /// A date as a request gives it (empty: today), refused if it is after today: no
    /// report exists yet.
    fn parse_date(&self, text: &str) -> Result<Day, Status> {
        report_day("date", text, (self.today)())
    }

    /// Answers key-person lists as of a day at most `days` before today.
    pub fn with_horizon(mut self, days: u32) -> Self {
        self.horizon_days = days;
        self
    }

    /// Notes person-level reads in `audit`.
    pub fn with_audit(mut self, audit: Arc<dyn AuditLog>) -> Self {
        self.audit = audit;
        self
    }

    /// Lists in `GetStatus` the quarantine of the aggregators folding into `folded`.
    pub fn with_quarantine(mut self, folded: Projections) -> Self {
        self.quarantine = Some(folded);
        self
    }

    pub fn into_server(self) -> pb::reports_server::ReportsServer<Self> {
        pb::reports_server::ReportsServer::new(self)
    }
}

/// What a client is told when the store fails under a query: its code says whether to
/// try again (the disk) or not (a defect, a corrupt record).
impl From<ReportError> for Status {
    fn from(e: ReportError) -> Self {
        tracing::error!(error = %e, "report query failed");
        use store::Error::{Corruption, Io};
        match &e {
            ReportError::Projections(AggregateError::Storage(Io(_)) | AggregateError::Log(_))
            | ReportError::Storage(Io(_)) => Status::unavailable(e.to_string()),
            ReportError::Projections(AggregateError::Corrupt { .. } | AggregateError::Storage(Corruption { .. }))
            | ReportError::Storage(Corruption { .. })
            | ReportError::Corrupt { .. } => Status::data_loss(e.to_string()),
            _ => Status::internal(e.to_string()),
        }
    }
}

/// A failure of the projections under a query, as a client is told it.
pub fn store_failed(e: AggregateError) -> Status {
    ReportError::from(e).into()
}

impl ReportsService {
    fn known(&self, field: &str, unit: &UnitKey) -> Result<(), Status> {
        known(self.model.projections(), field, unit)
    }

    /// `PERMISSION_DENIED` for a unit outside the caller's read scope.
    fn readable(&self, access: &Access, field: &str, unit: &UnitKey) -> Result<(), Status> {
        may_read(self.model.projections(), access, field, unit)
    }
}

/// `NOT_FOUND` for a unit nobody is registered in (the province always exists).
pub fn known(projections: &Projections, field: &str, unit: &UnitKey) -> Result<(), Status> {
    if unit.level == domain::Level::Province || projections.unit(unit).map_err(store_failed)?.is_some() {
        Ok(())
    } else {
        Err(Status::not_found(format!("{field}: {unit} has no one registered in it")))
    }
}

/// `unit`'s report for `day` as GetDailyReport answers it (the console's JSON too): the
/// caller's scope checked, `NOT_FOUND` for a unit no one counted in by then.
pub fn daily_report(
    model: &ReadModel,
    access: &Access,
    unit: &str,
    date: &str,
    today: Day,
) -> Result<DailyReport, Status> {
    let unit = parse_unit("unit", unit)?;
    let day = report_day("date", date, today)?;
    may_read(model.projections(), access, "unit", &unit)?;
    match model.report(&unit, day)? {
        Some(report) => Ok(report),
        None => Err(Status::not_found(match model.first_day(&unit)? {
            Some(first) => format!("unit: {unit} did not exist on {day}: no one counted in it before {first}"),
            None => format!("unit: {unit} has no one registered in it"),
        })),
    }
}

/// `PERMISSION_DENIED`, naming the unit, for a unit outside `access`'s read scope.
pub fn may_read(projections: &Projections, access: &Access, field: &str, unit: &UnitKey) -> Result<(), Status> {
    if access.may_read(unit, |school| projections.city_of(school)) {
        Ok(())
    } else {
        Err(Status::permission_denied(format!("{field}: token {} may not read {unit}", access.name)))
    }
}

/// `PERMISSION_DENIED` for a caller without the right to person-level data.
pub fn may_see_persons(access: &Access) -> Result<(), Status> {
    match access.persons {
        true => Ok(()),
        false => Err(Status::permission_denied(format!(
            "token {} has no right to person-level data (counts only)",
            access.name
        ))),
    }
}

/// The field a request names its unit by: `unit`, or when that is empty the field's
/// former name, still read from older clients; with its name, for errors.
fn renamed<'a>(current: (&'a str, &'a str), former: (&'a str, &'a str)) -> (&'a str, &'a str) {
    if current.1.is_empty() && !former.1.is_empty() { former } else { current }
}

/// A unit key as a request gives it; `INVALID_ARGUMENT` naming `field` if it is not one.
pub fn parse_unit(field: &str, text: &str) -> Result<UnitKey, Status> {
    text.parse().map_err(|e| Status::invalid_argument(format!("{field}: {e}")))
}

/// A report's day as a request gives it in `field`: `YYYY-MM-DD`, not after `today`;
/// empty, today.
pub fn report_day(field: &str, text: &str, today: Day) -> Result<Day, Status> {
    if text.is_empty() {
        return Ok(today);
    }
    let day = wire::parse_date(field, text).map_err(|e| Status::invalid_argument(e.to_string()))?;
    not_after_today(field, day, today)
}

fn parse_date(text: &str) -> Result<Day, Status> {
    wire::parse_date("date", text).map_err(|e| Status::invalid_argument(e.to_string()))
}

/// The day a key-person list (or the observation list's file) is asked for: `date` read
/// as GetDailyReport reads it, `today` if empty; refused, with the reason, if in the
/// future or more than `horizon_days` before `today` (as late events are).
pub fn list_day(date: &str, today: Day, horizon_days: u32) -> Result<Day, Status> {
    let day = if date.is_empty() { today } else { parse_date(date)? };
    within_horizon(day, today, horizon_days)
}

/// `day`, unless after `today`: nothing is known of it yet.
fn not_after_today(field: &str, day: Day, today: Day) -> Result<Day, Status> {
    match day > today {
        true => Err(Status::invalid_argument(format!("{field}: {day} is in the future (today is {today})"))),
        false => Ok(day),
    }
}

/// `day`, unless in the future or more than `horizon_days` before `today`.
pub fn within_horizon(day: Day, today: Day, horizon_days: u32) -> Result<Day, Status> {
    not_after_today("date", day, today)?;
    let oldest = today.checked_sub_days(chrono::Days::new(horizon_days.into())).unwrap_or(Day::MIN);
    if day < oldest {
        return Err(Status::invalid_argument(format!(
            "date: {day} is older than the {horizon_days}-day horizon (today is {today})"
        )));
    }
    Ok(day)
}

/// An inspection report's unit as a request gives it; `INVALID_ARGUMENT` naming `field`
/// if it is not one.
pub fn parse_inspection_unit(field: &str, text: &str) -> Result<InspectionUnit, Status> {
    InspectionUnit::parse(text).ok_or_else(|| {
        Status::invalid_argument(format!(
            "{field}: {} is not an inspection unit (province, city:<city>, hall:<hall>)",
            wire::quoted(text)
        ))
    })
}

/// `NOT_FOUND` for a city not the province's or a hall with no events;
/// `PERMISSION_DENIED` for a unit outside the caller's read scope (a city's token reads
/// its city's halls; a school's none).
pub fn may_read_inspections(
    model: &ReadModel,
    access: &Access,
    field: &str,
    unit: &InspectionUnit,
) -> Result<(), Status> {
    let city = match unit {
        InspectionUnit::Province => None,
        InspectionUnit::City(city) => Some(city.clone()),
        InspectionUnit::Hall(hall) => {
            let log = model.projections().hall_log(hall).map_err(store_failed)?;
            let Some(log) = log else {
                return Err(Status::not_found(format!("{field}: {unit} has no events")));
            };
            let city = log.latest_registration().map(|h| h.city.clone());
            city.or_else(|| log.standing(Day::MAX).map(|s| s.city.to_owned()))
        }
    };
    if !model.inspection_unit_known(unit)? {
        return Err(Status::not_found(format!("{field}: {unit} is not a city of the province")));
    }
    let readable = match &city {
        None => access.reads_province(),
        Some(city) => access.reads_city(city),
    };
    if readable {
        Ok(())
    } else {
        Err(Status::permission_denied(format!("{field}: token {} may not read {unit}", access.name)))
    }
}

/// `unit`'s inspection report for `day` as GetInspectionReport answers it (the console's
/// JSON too).
pub fn inspection_report(
    model: &ReadModel,
    access: &Access,
    unit: &str,
    date: &str,
    today: Day,
) -> Result<domain::inspection::InspectionReport, Status> {
    let unit = parse_inspection_unit("unit", unit)?;
    let day = report_day("date", date, today)?;
    may_read_inspections(model, access, "unit", &unit)?;
    model.inspection_report(&unit, day)?.ok_or_else(|| Status::not_found(format!("unit: {unit} is not known")))
}

/// The findings under `unit` as `ListFindings` answers them (the console's JSON too).
pub fn findings(
    model: &ReadModel,
    access: &Access,
    unit: &str,
    date: &str,
    filter: FindingFilter,
    today: Day,
) -> Result<Vec<domain::inspection::HallFinding>, Status> {
    let unit = parse_inspection_unit("unit", unit)?;
    let day = report_day("date", date, today)?;
    may_read_inspections(model, access, "unit", &unit)?;
    model.findings(&unit, day, filter)?.ok_or_else(|| Status::not_found(format!("unit: {unit} is not known")))
}

/// A findings filter as protobuf gives it.
pub fn finding_filter(raw: i32) -> Result<FindingFilter, Status> {
    match pb::FindingFilter::try_from(raw) {
        Ok(pb::FindingFilter::All) => Ok(FindingFilter::All),
        Ok(pb::FindingFilter::Open) => Ok(FindingFilter::Open),
        Ok(pb::FindingFilter::Overdue) => Ok(FindingFilter::Overdue),
        Err(_) => Err(Status::invalid_argument(format!("filter: {raw} is not a known value"))),
    }
}

/// Reports streamed ahead of a slow reader, at most.
const REPORTS_AHEAD: usize = 256;

#[tonic::async_trait]
impl pb::reports_server::Reports for ReportsService {
    async fn get_daily_report(
        &self,
        request: Request<pb::DailyReportRequest>,
    ) -> Result<Response<pb::DailyReport>, Status> {
        let access = wire::access_of(&request)?;
        let request = request.into_inner();
        let report = daily_report(&self.model, &access, &request.unit, &request.date, (self.today)())?;
        Ok(Response::new(wire::report_to_proto(&report)))
    }

    type ListDailyReportsStream = ReceiverStream<Result<pb::DailyReport, Status>>;

    async fn list_daily_reports(
        &self,
        request: Request<pb::DailyReportsRequest>,
    ) -> Result<Response<Self::ListDailyReportsStream>, Status> {
        let access = wire::access_of(&request)?;
        let request = request.into_inner();
        #[allow(deprecated)]
        let (field, text) = renamed(("unit", &request.unit), ("under", &request.under));
        let under = parse_unit(field, text)?;
        let day = self.parse_date(&request.date)?;
        let level = wire::level_from_proto(request.level);
        self.readable(&access, field, &under)?;
        self.known(field, &under)?;
        let slot = access.open_stream().map_err(Status::resource_exhausted)?;
        let (tx, rx) = tokio::sync::mpsc::channel(REPORTS_AHEAD);
        let model = self.model.clone();
        // sled reads block: the walk runs on a blocking thread and stops when the reader goes.
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            let sent = model
                .reports(&under, day, level, |report| tx.blocking_send(Ok(wire::report_to_proto(&report))).is_ok());
            if let Err(e) = sent {
                let _ = tx.blocking_send(Err(e.into()));
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn list_units(
        &self,
        request: Request<pb::ListUnitsRequest>,
    ) -> Result<Response<pb::ListUnitsResponse>, Status> {
        let access = wire::access_of(&request)?;
        let request = request.into_inner();
        let level = wire::level_from_proto(request.level);
        #[allow(deprecated)]
        let (field, text) = renamed(("unit", &request.unit), ("parent", &request.parent));
        let parent = if text.is_empty() { None } else { Some(parse_unit(field, text)?) };
        if let Some(parent) = &parent {
            self.known(field, parent)?;
        }
        let units = self.model.projections().units(level, parent.as_ref()).map_err(store_failed)?;
        // Only the units the caller may read; a school's city is in its own record.
        let city_of = |school: &str| {
            units
                .iter()
                .find(|(u, _)| u.level == domain::Level::School && u.path == school)
                .map(|(_, i)| i.city.clone())
        };
        let readable: Vec<bool> = units.iter().map(|(unit, _)| access.may_read(unit, city_of)).collect();
        Ok(Response::new(pb::ListUnitsResponse {
            units: units
                .iter()
                .zip(readable)
                .filter(|(_, readable)| *readable)
                .map(|((unit, info), _)| pb::Unit {
                    level: wire::level_to_proto(unit.level) as i32,
                    unit: unit.to_string(),
                    parent: info.parent.as_ref().map(|p| p.to_string()).unwrap_or_default(),
                })
                .collect(),
        }))
    }

    async fn list_key_persons(
        &self,
        request: Request<pb::KeyPersonsRequest>,
    ) -> Result<Response<pb::KeyPersonsResponse>, Status> {
        let access = wire::access_of(&request)?;
        let request = request.into_inner();
        let unit = parse_unit("unit", &request.unit)?;
        let day = list_day(&request.date, (self.today)(), self.horizon_days)?;
        self.readable(&access, "unit", &unit)?;
        may_see_persons(&access)?;
        self.known("unit", &unit)?;
        let persons = self.model.projections().key_persons(&unit, day).map_err(store_failed)?;
        self.audit.record(&access, "Reports.ListKeyPersons", &unit.to_string(), "key persons and their observation");
        Ok(Response::new(pb::KeyPersonsResponse { persons: persons.iter().map(wire::key_person_to_proto).collect() }))
    }

    async fn get_inspection_report(
        &self,
        request: Request<pb::InspectionReportRequest>,
    ) -> Result<Response<pb::InspectionReport>, Status> {
        let access = wire::access_of(&request)?;
        let request = request.into_inner();
        let report = inspection_report(&self.model, &access, &request.unit, &request.date, (self.today)())?;
        Ok(Response::new(wire::inspection_report_to_proto(&report)))
    }

    type ListInspectionReportsStream = ReceiverStream<Result<pb::InspectionReport, Status>>;

    async fn list_inspection_reports(
        &self,
        request: Request<pb::InspectionReportRequest>,
    ) -> Result<Response<Self::ListInspectionReportsStream>, Status> {
        let access = wire::access_of(&request)?;
        let request = request.into_inner();
        let unit = parse_inspection_unit("unit", &request.unit)?;
        let day = self.parse_date(&request.date)?;
        may_read_inspections(&self.model, &access, "unit", &unit)?;
        let reports = self.model.inspection_reports(&unit, day)?.unwrap_or_default();
        let (tx, rx) = tokio::sync::mpsc::channel(reports.len().max(1));
        for report in &reports {
            let _ = tx.try_send(Ok(wire::inspection_report_to_proto(report)));
        }
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn list_findings(
        &self,
        request: Request<pb::ListFindingsRequest>,
    ) -> Result<Response<pb::ListFindingsResponse>, Status> {
        let access = wire::access_of(&request)?;
        let request = request.into_inner();
        let filter = finding_filter(request.filter)?;
        let found = findings(&self.model, &access, &request.unit, &request.date, filter, (self.today)())?;
        Ok(Response::new(pb::ListFindingsResponse {
            findings: found.iter().map(|f| wire::finding_to_proto(&f.hall, &f.city, &f.finding)).collect(),
        }))
    }

    async fn get_status(&self, request: Request<pb::StatusRequest>) -> Result<Response<pb::StatusResponse>, Status> {
        // Positions and lag name no unit; the quarantine names schools and events.
        let province = wire::access_of(&request)?.reads_province();
        // Kafka answers offsets with blocking calls.
        let status = self.status.clone();
        let lags = tokio::task::spawn_blocking(move || status())
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(Status::unavailable)?;
        let mut stalled = self.model.projections().stalled();
        stalled.extend(self.quarantine.iter().flat_map(Projections::stalled));
        let partitions: Vec<pb::PartitionStatus> = lags
            .into_iter()
            .map(|l| pb::PartitionStatus {
                stalled: stalled.contains(&l.at),
                topic: l.at.topic,
                partition: l.at.partition,
                end_offset: l.end,
                position: l.position,
                lag: l.end.saturating_sub(l.position),
            })
            .collect();
        let (quarantined, quarantine) = match &self.quarantine {
            Some(folded) if province => {
                (folded.quarantined_count() as u64, folded.quarantine_listing(100).map_err(store_failed)?)
            }
            Some(folded) => (folded.quarantined_count() as u64, Vec::new()),
            None => (0, Vec::new()),
        };
        Ok(Response::new(pb::StatusResponse {
            total_lag: partitions.iter().map(|p| p.lag).sum(),
            partitions,
            events_folded: self.folded_total.load(Ordering::Relaxed),
            quarantined,
            quarantine,
        }))
    }
}
