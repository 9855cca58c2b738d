//! Intake: the `Intake` gRPC service. Validates every event (a bad one is refused with
//! the field and the reason, and never costs its batch the good ones), drops repeated
//! event ids, appends the rest to the event log and answers only once the log has them
//! durably.
//!
//! Deduplication here answers clients ("this id was accepted before"); it is a local
//! index, so a crash between the log's acknowledgement and the index write can let a
//! retried event into the log twice. The aggregator folds each (school, event id) once,
//! which is what keeps counts exact.

use std::collections::HashSet;
use std::path::Path;

use domain::event::EventKind;
use eventlog::{EventLog, LogError, Record};
use futures::StreamExt;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use prost::Message;
use tonic::{Request, Response, Status, Streaming};
use wire::pb;

/// The most events one `PublishBatch` may carry.
pub const MAX_BATCH: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("deduplication index failed: {0}")]
    Index(#[from] sled::Error),
}

impl From<IntakeError> for Status {
    fn from(e: IntakeError) -> Status {
        match &e {
            // Nothing of the request was acknowledged: the client may retry all of it.
            IntakeError::Log(LogError::Unavailable(_)) => Status::unavailable(e.to_string()),
            _ => Status::internal(e.to_string()),
        }
    }
}

type Labels = Vec<(String, String)>;

#[derive(Clone, Default)]
pub struct IntakeMetrics {
    pub accepted: Family<Labels, Counter>,
    pub duplicates: Family<Labels, Counter>,
    pub refused: Family<Labels, Counter>,
}

impl std::fmt::Debug for IntakeMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntakeMetrics").finish_non_exhaustive()
    }
}

impl IntakeMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register("daybook_events_accepted", "Events durable in the log, by kind", self.accepted.clone());
        registry.register(
            "daybook_events_duplicate",
            "Events answered as duplicates, by kind",
            self.duplicates.clone(),
        );
        registry.register(
            "daybook_events_refused",
            "Events refused as invalid, by kind and field",
            self.refused.clone(),
        );
    }
}

pub struct IntakeService<L> {
    log: L,
    seen: sled::Tree,
    metrics: IntakeMetrics,
    /// How far back an event may have happened: older ones are refused, as a day that far
    /// back has been reported.
    horizon: chrono::TimeDelta,
}

impl<L: EventLog> IntakeService<L> {
    /// `index_dir` holds the deduplication index (event ids already accepted).
    pub fn open(log: L, index_dir: &Path, metrics: IntakeMetrics, horizon_days: u32) -> Result<Self, IntakeError> {
        let seen = sled::open(index_dir)?.open_tree("accepted_event_ids")?;
        Ok(Self { log, seen, metrics, horizon: chrono::TimeDelta::days(i64::from(horizon_days)) })
    }

    /// Refuses events from before the horizon, or from more than a day ahead (a clock
    /// that far off is a mistake, not a time zone).
    fn check_time(&self, envelope: &domain::Envelope) -> Result<(), wire::FieldError> {
        let now = chrono::Utc::now();
        let at = envelope.occurred_at;
        let bad = |reason: String| wire::FieldError { field: "occurred_at".to_owned(), reason };
        if at < now - self.horizon {
            return Err(bad(format!(
                "{} is older than the {}-day horizon for late events",
                at.to_rfc3339(),
                self.horizon.num_days()
            )));
        }
        if at > now + chrono::TimeDelta::days(1) {
            return Err(bad(format!("{} is in the future", at.to_rfc3339())));
        }
        Ok(())
    }

    pub fn into_server(self) -> pb::intake_server::IntakeServer<Self> {
        pb::intake_server::IntakeServer::new(self)
    }

    /// Validates, deduplicates and appends `events`; one result per event, in order.
    pub async fn publish_many(&self, events: Vec<pb::Event>) -> Result<Vec<pb::PublishResult>, IntakeError> {
        let mut results = Vec::with_capacity(events.len());
        let mut records = Vec::new();
        let mut new_ids: Vec<(usize, Vec<u8>, EventKind)> = Vec::new();
        let mut in_this_request = HashSet::new();
        for (index, event) in events.into_iter().enumerate() {
            let mut result =
                pb::PublishResult { index: index as u64, event_id: event.event_id.clone(), ..Default::default() };
            let payload = event.encode_to_vec();
            let kind_hint = kind_of(&event);
            match wire::event_from_proto(event).and_then(|envelope| self.check_time(&envelope).map(|()| envelope)) {
                Err(e) => {
                    self.metrics.refused.get_or_create(&labels(kind_hint, Some(&e.field))).inc();
                    result.outcome = pb::Outcome::Rejected as i32;
                    result.error = e.to_string();
                }
                Ok(envelope) => {
                    let id = format!("{}/{}", envelope.school, envelope.event_id).into_bytes();
                    if self.seen.contains_key(&id)? || !in_this_request.insert(id.clone()) {
                        self.metrics.duplicates.get_or_create(&labels(Some(envelope.kind()), None)).inc();
                        result.outcome = pb::Outcome::Duplicate as i32;
                    } else {
                        records.push(Record {
                            topic: envelope.kind().as_str().to_owned(),
                            key: envelope.school.clone(),
                            headers: vec![
                                ("daybook-event-kind".to_owned(), envelope.kind().as_str().to_owned()),
                                ("daybook-schema-version".to_owned(), wire::SCHEMA_VERSION.to_owned()),
                            ],
                            payload,
                        });
                        new_ids.push((index, id, envelope.kind()));
                    }
                }
            }
            results.push(result);
        }
        self.log.append(records).await?;
        let mut index_batch = sled::Batch::default();
        for (index, id, kind) in new_ids {
            results[index].outcome = pb::Outcome::Accepted as i32;
            self.metrics.accepted.get_or_create(&labels(Some(kind), None)).inc();
            index_batch.insert(id, &[]);
        }
        self.seen.apply_batch(index_batch)?;
        Ok(results)
    }
}

fn kind_of(event: &pb::Event) -> Option<EventKind> {
    use pb::event::Payload;
    Some(match event.payload.as_ref()? {
        Payload::Roster(_) => EventKind::Roster,
        Payload::Health(_) => EventKind::Health,
        Payload::Movement(_) => EventKind::Movement,
        Payload::Inspection(_) => EventKind::Inspection,
    })
}

fn labels(kind: Option<EventKind>, field: Option<&str>) -> Labels {
    let mut out = vec![("kind".to_owned(), kind.map_or("none", EventKind::as_str).to_owned())];
    if let Some(field) = field {
        out.push(("field".to_owned(), field.to_owned()));
    }
    out
}

#[tonic::async_trait]
impl<L: EventLog> pb::intake_server::Intake for IntakeService<L> {
    async fn publish(&self, request: Request<pb::Event>) -> Result<Response<pb::PublishResult>, Status> {
        let mut results = self.publish_many(vec![request.into_inner()]).await?;
        let result = results.pop().expect("one result per event");
        if result.outcome == pb::Outcome::Rejected as i32 {
            return Err(Status::invalid_argument(result.error));
        }
        Ok(Response::new(result))
    }

    async fn publish_batch(
        &self,
        request: Request<pb::PublishBatchRequest>,
    ) -> Result<Response<pb::PublishBatchResponse>, Status> {
        let events = request.into_inner().events;
        if events.len() > MAX_BATCH {
            return Err(Status::invalid_argument(format!(
                "events: {} events, at most {MAX_BATCH} per batch",
                events.len()
            )));
        }
        let results = self.publish_many(events).await?;
        Ok(Response::new(pb::PublishBatchResponse { results }))
    }

    async fn publish_stream(
        &self,
        request: Request<Streaming<pb::Event>>,
    ) -> Result<Response<pb::PublishStreamResponse>, Status> {
        let mut chunks = request.into_inner().ready_chunks(1024);
        let mut response = pb::PublishStreamResponse::default();
        let mut base = 0u64;
        while let Some(chunk) = chunks.next().await {
            let events = chunk.into_iter().collect::<Result<Vec<_>, Status>>()?;
            let count = events.len() as u64;
            for mut result in self.publish_many(events).await? {
                result.index += base;
                match pb::Outcome::try_from(result.outcome) {
                    Ok(pb::Outcome::Accepted) => response.accepted += 1,
                    Ok(pb::Outcome::Duplicate) => response.duplicates += 1,
                    _ => {
                        response.rejected += 1;
                        response.problems.push(result);
                    }
                }
            }
            base += count;
        }
        Ok(Response::new(response))
    }
}
