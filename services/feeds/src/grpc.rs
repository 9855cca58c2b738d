//! The `Feeds` gRPC service: an office subscribes from a cursor and receives its feed,
//! then new items as they are published; offices are listed; files are exported.

use std::sync::Arc;
use std::time::Duration;

use chrono::FixedOffset;
use domain::access::{Access, AuditLog, NoAudit};
use domain::{Level, UnitKey};
use export::Format;
use prost::Message;
use reports::ReadModel;
use reports::grpc::{
    Today, may_read, may_read_inspections, may_see_persons, parse_inspection_unit, store_failed, within_horizon,
};
use reports::inspection::FindingFilter;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use wire::pb;

use crate::{Clock, FeedError, FeedStore, Office, Offices, files};

#[derive(Clone)]
pub struct FeedsService {
    store: FeedStore,
    model: ReadModel,
    offices: Arc<Offices>,
    clock: Clock,
    zone: FixedOffset,
    /// Becomes true when the server stops: open subscriptions end, so that a graceful
    /// shutdown does not wait for subscribers to hang up.
    stopping: watch::Receiver<bool>,
    audit: Arc<dyn AuditLog>,
    /// Today and the horizon the observation list's day must lie within, as for
    /// `Reports.ListKeyPersons`; unchecked if not set.
    list_days: Option<(Today, u32)>,
    /// How the DHIS2 export names daybook's figures and units.
    dhis2: Arc<export::dhis2::Mapping>,
}

impl FeedsService {
    pub fn new(store: FeedStore, model: ReadModel, offices: Offices, clock: Clock, zone: FixedOffset) -> Self {
        let stopping = watch::channel(false).1;
        Self {
            store,
            model,
            offices: Arc::new(offices),
            clock,
            zone,
            stopping,
            audit: Arc::new(NoAudit),
            list_days: None,
            dhis2: Arc::default(),
        }
    }

    /// Today in the province, by the feeds' clock.
    fn today(&self) -> domain::Day {
        self.clock.now().with_timezone(&self.zone).date_naive()
    }

    /// Names the DHIS2 export's data set, data elements and units as `mapping` says.
    pub fn with_dhis2(mut self, mapping: export::dhis2::Mapping) -> Self {
        self.dhis2 = Arc::new(mapping);
        self
    }

    /// Refuses an observation list of a day in the future or more than `horizon_days`
    /// before `today`.
    pub fn with_horizon(mut self, today: Today, horizon_days: u32) -> Self {
        self.list_days = Some((today, horizon_days));
        self
    }

    /// Ends every subscription when `stopping` turns true.
    pub fn with_stopping(mut self, stopping: watch::Receiver<bool>) -> Self {
        self.stopping = stopping;
        self
    }

    /// Notes person-level reads in `audit`.
    pub fn with_audit(mut self, audit: Arc<dyn AuditLog>) -> Self {
        self.audit = audit;
        self
    }

    pub fn into_server(self) -> pb::feeds_server::FeedsServer<Self> {
        pb::feeds_server::FeedsServer::new(self)
    }

    fn offices(&self) -> Result<Vec<Office>, FeedError> {
        let cities =
            self.model.projections().units(Some(Level::City), None)?.into_iter().map(|(u, _)| u.path).collect();
        Ok(self.offices.resolve(&cities))
    }
}

/// Whether `access` reads everything `office` receives: every city it lists, or the
/// province for an office of all cities (or one no longer configured).
pub fn may_read_office(access: &Access, office: Option<&Office>) -> bool {
    match office {
        Some(office) if !office.cities.iter().any(|c| c == "*") => office.cities.iter().all(|c| access.reads_city(c)),
        _ => access.reads_province(),
    }
}

/// An alert as a caller without the right to person-level data may see it: who is left out.
fn without_persons(mut item: pb::FeedItem) -> pb::FeedItem {
    if let Some(pb::feed_item::Item::Alert(alert)) = &mut item.item {
        alert.person_id.clear();
        alert.event_id.clear();
    }
    item
}

/// A failure of the server, not of the request.
pub(crate) fn internal(e: impl std::fmt::Display) -> Status {
    tracing::error!(error = %e, "feeds query failed");
    Status::internal(e.to_string())
}

/// What a client is told when the store fails under a query: its code says whether to
/// try again (the disk) or not (a defect, a corrupt record).
impl From<FeedError> for Status {
    fn from(e: FeedError) -> Self {
        match e {
            FeedError::Projections(e) => store_failed(e),
            FeedError::Reports(e) => e.into(),
            FeedError::Storage(store::Error::Io(_)) | FeedError::Log(_) => {
                tracing::error!(error = %e, "feeds query failed");
                Status::unavailable(e.to_string())
            }
            FeedError::Corrupt { .. } => {
                tracing::error!(error = %e, "feeds query failed");
                Status::data_loss(e.to_string())
            }
            e => internal(e),
        }
    }
}

impl FeedsService {
    /// An export's day as the request gives it; today if empty.
    fn export_day(&self, date: &str) -> Result<domain::Day, Status> {
        if date.is_empty() {
            return Ok(self.today());
        }
        wire::parse_date("date", date).map_err(|e| Status::invalid_argument(e.to_string()))
    }

    /// The inspection reports of a day under a unit (province, cities, halls), or the
    /// findings under it as they stood then, as a table file.
    fn export_inspections(
        &self,
        access: &Access,
        kind: pb::ExportKind,
        format: Format,
        request: &pb::ExportRequest,
    ) -> Result<pb::ExportFile, Status> {
        if format == Format::Dhis2 {
            return Err(Status::invalid_argument("format: EXPORT_FORMAT_DHIS2_JSON carries daily reports only"));
        }
        let under = parse_inspection_unit("unit", &request.unit)?;
        let day = self.export_day(&request.date)?;
        may_read_inspections(&self.model, access, "unit", &under)?;
        let (table, what) = if kind == pb::ExportKind::InspectionReports {
            let reports = self.model.inspection_reports(&under, day)?.unwrap_or_default();
            (export::inspection_table(&reports), "inspection-reports")
        } else {
            let findings = self.model.findings(&under, day, FindingFilter::All)?.unwrap_or_default();
            (export::findings_table(&findings), "findings")
        };
        let content = export::write(&table, format).map_err(internal)?;
        Ok(pb::ExportFile {
            file_name: files::file_name(what, &under, day, format),
            content_type: format.content_type().to_owned(),
            content,
        })
    }
}

#[tonic::async_trait]
impl pb::feeds_server::Feeds for FeedsService {
    type SubscribeStream = ReceiverStream<Result<pb::FeedItem, Status>>;

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let access = wire::access_of(&request)?;
        let request = request.into_inner();
        let office = request.office;
        let configured = self.offices()?.into_iter().find(|o| o.id == office);
        if configured.is_none() && !self.store.offices_with_items()?.contains(&office) {
            return Err(Status::not_found(format!("office: no office {office:?}; ListOffices names them")));
        }
        if !may_read_office(&access, configured.as_ref()) {
            return Err(Status::permission_denied(format!(
                "office: token {} may not read the feed of {office}",
                access.name
            )));
        }
        let slot = access.open_stream().map_err(Status::resource_exhausted)?;
        if access.persons {
            self.audit.record(&access, "Feeds.Subscribe", &office, "the office's feed, alerts naming persons");
        }
        let (tx, rx) = mpsc::channel(256);
        let store = self.store.clone();
        let mut published = store.subscribe();
        let mut stopping = self.stopping.clone();
        let subscribed = self.store.metrics().subscribed(&office);
        tokio::spawn(async move {
            let (_slot, _subscribed) = (slot, subscribed);
            let mut after = request.after;
            loop {
                let items = match store.items_after(&office, after, 512) {
                    Ok(items) => items,
                    Err(e) => {
                        let _ = tx.send(Err(e.into())).await;
                        return;
                    }
                };
                if *stopping.borrow() {
                    return;
                }
                if access.is_revoked() {
                    let _ = tx.send(Err(Status::unauthenticated("authorization: the token was revoked"))).await;
                    return;
                }
                if items.is_empty() {
                    tokio::select! {
                        _ = stopping.changed() => return,
                        _ = published.changed() => {}
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        () = tx.closed() => return,
                    }
                    continue;
                }
                for (cursor, bytes) in items {
                    let item = pb::FeedItem::decode(bytes.as_slice())
                        .map(|item| if access.persons { item } else { without_persons(item) })
                        .map_err(internal);
                    if tx.send(item).await.is_err() {
                        return;
                    }
                    after = cursor;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn list_offices(
        &self,
        request: Request<pb::ListOfficesRequest>,
    ) -> Result<Response<pb::ListOfficesResponse>, Status> {
        let access = wire::access_of(&request)?;
        let offices = self
            .offices()?
            .into_iter()
            .filter(|o| may_read_office(&access, Some(o)))
            .map(|o| pb::Office {
                id: o.id,
                name: o.name,
                cities: o.cities,
                levels: o.levels.iter().map(|l| wire::level_to_proto(*l) as i32).collect(),
            })
            .collect();
        Ok(Response::new(pb::ListOfficesResponse { offices }))
    }

    async fn export(&self, request: Request<pb::ExportRequest>) -> Result<Response<pb::ExportFile>, Status> {
        let access = wire::access_of(&request)?;
        let request = request.into_inner();
        let format = match pb::ExportFormat::try_from(request.format) {
            Ok(pb::ExportFormat::Csv) => Format::Csv,
            Ok(pb::ExportFormat::Xlsx) => Format::Xlsx,
            Ok(pb::ExportFormat::Dhis2Json) => Format::Dhis2,
            _ => {
                return Err(Status::invalid_argument(
                    "format: choose EXPORT_FORMAT_CSV, EXPORT_FORMAT_XLSX or EXPORT_FORMAT_DHIS2_JSON",
                ));
            }
        };
        if let Ok(kind @ (pb::ExportKind::InspectionReports | pb::ExportKind::Findings)) =
            pb::ExportKind::try_from(request.kind)
        {
            return self.export_inspections(&access, kind, format, &request).map(Response::new);
        }
        let under: UnitKey = if request.unit.is_empty() {
            UnitKey::province()
        } else {
            request.unit.parse().map_err(|e| Status::invalid_argument(format!("unit: {e}")))?
        };
        may_read(self.model.projections(), &access, "unit", &under)?;
        if under.level != Level::Province && self.model.projections().unit(&under).map_err(store_failed)?.is_none() {
            return Err(Status::not_found(format!("unit: {under} has no one registered in it")));
        }
        let day = self.export_day(&request.date)?;
        let (model, within) = (self.model.clone(), under.clone());
        let (content, what) = match pb::ExportKind::try_from(request.kind) {
            Ok(pb::ExportKind::DailyReports) => {
                let level = wire::level_from_proto(request.level).unwrap_or(Level::School);
                let rows = tokio::task::spawn_blocking(move || files::report_rows(&model, level, &within, day))
                    .await
                    .map_err(internal)??;
                let content = match format {
                    // Complete (sealed reports only) as of the export's day.
                    Format::Dhis2 => export::dhis2::data_value_set(&rows, day, Some(self.today()), &self.dhis2),
                    // The form to print, then the whole table.
                    Format::Xlsx => {
                        let title = format!("日报表 Daily report form — {under}, {} — {day}", level.as_str());
                        export::report_workbook(&rows, &title)
                    }
                    Format::Csv => export::write(&export::report_table(&rows), Format::Csv),
                };
                (content.map_err(internal)?, format!("daily-reports-{}", level.as_str()))
            }
            Ok(pb::ExportKind::ObservationList) => {
                if format == Format::Dhis2 {
                    return Err(Status::invalid_argument(
                        "format: EXPORT_FORMAT_DHIS2_JSON carries daily reports, not the observation list",
                    ));
                }
                may_see_persons(&access)?;
                if let Some((today, horizon_days)) = &self.list_days {
                    within_horizon(day, today(), *horizon_days)?;
                }
                let rows = files::observation_rows(self.model.projections(), &under, day)?;
                self.audit.record(&access, "Feeds.Export", &under.to_string(), "observation list");
                let content = export::write(&export::observation_table(&rows), format).map_err(internal)?;
                (content, "observation-list".to_owned())
            }
            _ => {
                return Err(Status::invalid_argument(
                    "kind: choose EXPORT_KIND_DAILY_REPORTS, EXPORT_KIND_OBSERVATION_LIST, \
                     EXPORT_KIND_INSPECTION_REPORTS or EXPORT_KIND_FINDINGS",
                ));
            }
        };
        Ok(Response::new(pb::ExportFile {
            file_name: files::file_name(&what, &under, day, format),
            content_type: format.content_type().to_owned(),
            content,
        }))
    }
}
