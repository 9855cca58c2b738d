//! The `Feeds` gRPC service: an office subscribes from a cursor and receives its feed,
//! then new items as they are published; offices are listed; files are exported.

use std::sync::Arc;
use std::time::Duration;

use aggregator::Projections;
use domain::Level;
use domain::close::CloseRules;
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use wire::pb;

use crate::{FeedError, FeedStore, Office, Offices};

#[derive(Clone)]
pub struct FeedsService {
    store: FeedStore,
    projections: Projections,
    offices: Arc<Offices>,
    close: CloseRules,
}

impl FeedsService {
    pub fn new(store: FeedStore, projections: Projections, offices: Offices, close: CloseRules) -> Self {
        Self { store, projections, offices: Arc::new(offices), close }
    }

    pub fn into_server(self) -> pb::feeds_server::FeedsServer<Self> {
        pb::feeds_server::FeedsServer::new(self)
    }

    fn offices(&self) -> Result<Vec<Office>, FeedError> {
        let cities = self.projections.units(Some(Level::City), None)?.into_iter().map(|(u, _)| u.path).collect();
        Ok(self.offices.resolve(&cities))
    }

    pub fn close_rules(&self) -> CloseRules {
        self.close
    }
}

pub(crate) fn internal(e: impl std::fmt::Display) -> Status {
    tracing::error!(error = %e, "feeds query failed");
    Status::internal(e.to_string())
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
        let known = self.offices().map_err(internal)?.iter().any(|o| o.id == office)
            || self.store.offices_with_items().map_err(internal)?.contains(&office);
        if !known {
            return Err(Status::not_found(format!("office: no office {office:?}; ListOffices names them")));
        }
        let (tx, rx) = mpsc::channel(256);
        let store = self.store.clone();
        let mut published = store.subscribe();
        tokio::spawn(async move {
            let mut after = request.after;
            loop {
                let items = match store.items_after(&office, after, 512) {
                    Ok(items) => items,
                    Err(e) => {
                        let _ = tx.send(Err(internal(e))).await;
                        return;
                    }
                };
                if items.is_empty() {
                    tokio::select! {
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
            .offices()
            .map_err(internal)?
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
        let _ = request;
        Err(Status::unimplemented("export: not yet"))
    }
}
