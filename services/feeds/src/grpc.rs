//! The `Feeds` gRPC service: an office subscribes from a cursor and receives its feed,
//! then new items as they are published; offices are listed; files are exported.

use std::sync::Arc;
use std::time::Duration;

use aggregator::Projections;
use chrono::FixedOffset;
use domain::close::CloseRules;
use domain::{Level, UnitKey};
use export::Format;
use prost::Message;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use wire::pb;

use crate::{Clock, FeedError, FeedStore, Office, Offices, files};

#[derive(Clone)]
pub struct FeedsService {
    store: FeedStore,
    projections: Projections,
    offices: Arc<Offices>,
    close: CloseRules,
    clock: Clock,
    zone: FixedOffset,
    /// Becomes true when the server stops: open subscriptions end, so that a graceful
    /// shutdown does not wait for subscribers to hang up.
    stopping: watch::Receiver<bool>,
}

impl FeedsService {
    pub fn new(
        store: FeedStore,
        projections: Projections,
        offices: Offices,
        close: CloseRules,
        clock: Clock,
        zone: FixedOffset,
    ) -> Self {
        let stopping = watch::channel(false).1;
        Self { store, projections, offices: Arc::new(offices), close, clock, zone, stopping }
    }

    /// Ends every subscription when `stopping` turns true.
    pub fn with_stopping(mut self, stopping: watch::Receiver<bool>) -> Self {
        self.stopping = stopping;
        self
    }

    pub fn into_server(self) -> pb::feeds_server::FeedsServer<Self> {
        pb::feeds_server::FeedsServer::new(self)
    }

    fn offices(&self) -> Result<Vec<Office>, FeedError> {
        let cities = self.projections.units(Some(Level::City), None)?.into_iter().map(|(u, _)| u.path).collect();
        Ok(self.offices.resolve(&cities))
    }
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
            FeedError::Projections(e) => e.into(),
            FeedError::Storage(sled::Error::Io(_)) | FeedError::Log(_) => {
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

#[tonic::async_trait]
impl pb::feeds_server::Feeds for FeedsService {
    type SubscribeStream = ReceiverStream<Result<pb::FeedItem, Status>>;

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let request = request.into_inner();
        let office = request.office;
        let known =
            self.offices()?.iter().any(|o| o.id == office) || self.store.offices_with_items()?.contains(&office);
        if !known {
            return Err(Status::not_found(format!("office: no office {office:?}; ListOffices names them")));
        }
        let (tx, rx) = mpsc::channel(256);
        let store = self.store.clone();
        let mut published = store.subscribe();
        let mut stopping = self.stopping.clone();
        tokio::spawn(async move {
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
                    let item = pb::FeedItem::decode(bytes.as_slice()).map_err(internal);
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
        _: Request<pb::ListOfficesRequest>,
    ) -> Result<Response<pb::ListOfficesResponse>, Status> {
        let offices = self
            .offices()?
            .into_iter()
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
        let request = request.into_inner();
        let format = match pb::ExportFormat::try_from(request.format) {
            Ok(pb::ExportFormat::Csv) => Format::Csv,
            Ok(pb::ExportFormat::Xlsx) => Format::Xlsx,
            _ => return Err(Status::invalid_argument("format: choose EXPORT_FORMAT_CSV or EXPORT_FORMAT_XLSX")),
        };
        let under: UnitKey = if request.unit.is_empty() {
            UnitKey::province()
        } else {
            request.unit.parse().map_err(|e| Status::invalid_argument(format!("unit: {e}")))?
        };
        if under.level != Level::Province && self.projections.unit(&under)?.is_none() {
            return Err(Status::not_found(format!("unit: {under} has no one registered in it")));
        }
        let day = if request.date.is_empty() {
            self.clock.now().with_timezone(&self.zone).date_naive()
        } else {
            wire::parse_date("date", &request.date).map_err(|e| Status::invalid_argument(e.to_string()))?
        };
        let (projections, store, close, within) =
            (self.projections.clone(), self.store.clone(), self.close, under.clone());
        let (table, what) = match pb::ExportKind::try_from(request.kind) {
            Ok(pb::ExportKind::DailyReports) => {
                let level = wire::level_from_proto(request.level).unwrap_or(Level::School);
                let rows = tokio::task::spawn_blocking(move || {
                    files::report_rows(&projections, &store, &close, level, &within, day)
                })
                .await
                .map_err(internal)??;
                (export::report_table(&rows), format!("daily-reports-{}", level.as_str()))
            }
            Ok(pb::ExportKind::ObservationList) => {
                let rows = files::observation_rows(&projections, &under, day)?;
                (export::observation_table(&rows), "observation-list".to_owned())
            }
            _ => {
                return Err(Status::invalid_argument(
                    "kind: choose EXPORT_KIND_DAILY_REPORTS or EXPORT_KIND_OBSERVATION_LIST",
                ));
            }
        };
        let content = export::write(&table, format).map_err(internal)?;
        Ok(Response::new(pb::ExportFile {
            file_name: files::file_name(&what, &under, day, format),
            content_type: format.content_type().to_owned(),
            content,
        }))
    }
}
