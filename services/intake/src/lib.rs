//! Intake: the `Intake` gRPC service. Validates every event (a bad one is refused with
//! the field and the reason, and never costs its batch the good ones), drops repeated
//! event ids, appends the rest to the event log and answers only once the log has them
//! durably.
//!
//! Deduplication here answers clients ("this id was accepted before"); it is a local
//! index, so a crash between the log's acknowledgement and the index write can let a
//! retried event into the log twice. The aggregator folds each (school, event id) once,
//! which is what keeps counts exact. The index ([`AcceptedIds`]) is in memory, written
//! once per request, and keeps only the days within the horizon.

mod accepted;

use std::collections::{HashMap, HashSet};
use std::path::Path;

pub use accepted::AcceptedIds;

use domain::access::Access;
use domain::city::Cities;
use domain::event::{EventKind, Inspection};
use domain::{Fact, Payload};
use eventlog::{EventLog, LogError, Record};
use futures::StreamExt;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use prost::Message;
use tonic::{Request, Response, Status, Streaming};
use wire::pb;

/// The most events one `PublishBatch` may carry.
pub const MAX_BATCH: usize = 10_000;

/// At most this many events of a `PublishStream` that have arrived go to the log in one
/// append (one flush); fewer when fewer are waiting.
const STREAM_CHUNK: usize = 1024;

/// A `PublishStream` answer lists at most this many problems (its counts stay exact), so
/// that it fits a client's default 4 MB message limit whatever the stream held: each
/// problem is an id of at most 128 bytes and a short error.
pub const MAX_PROBLEMS: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("deduplication index failed: {0}")]
    Index(#[from] store::Error),
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
    /// When each school's last event was acknowledged (Unix seconds): a school whose
    /// posting system went quiet stands still here.
    pub last_accepted: Family<Labels, Gauge>,
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
        registry.register(
            "daybook_school_last_event_accepted_timestamp_seconds",
            "When each school's (hall's, enterprise's) last event was acknowledged, Unix seconds",
            self.last_accepted.clone(),
        );
    }
}

/// Minutes an event may be dated ahead of the server's clock, by default.
pub const DEFAULT_CLOCK_SKEW_MINUTES: u32 = 10;

pub struct IntakeService<L> {
    log: L,
    accepted: AcceptedIds,
    metrics: IntakeMetrics,
    /// How far back an event may have happened: older ones are refused, as a day that far
    /// back has been reported.
    horizon: chrono::TimeDelta,
    /// How far ahead of the server's clock an event may be dated (a device's clock set a
    /// little fast); further ahead it is refused.
    clock_skew: chrono::TimeDelta,
    cities: Cities,
    /// school → the city of its first accepted registration.
    school_cities: store::Tree,
    /// What an event's acknowledgement time is read off (the header
    /// [`wire::ACKED_AT_HEADER`]): the clock that seals the days, so that both agree.
    ack_clock: AckClock,
}

/// A clock reading the current instant.
pub type AckClock = std::sync::Arc<dyn Fn() -> chrono::DateTime<chrono::Utc> + Send + Sync>;

impl<L: EventLog> IntakeService<L> {
    /// `index_dir` holds the deduplication index (event ids already accepted).
    /// `index_dir` also holds each school's city, as its first accepted registration gave
    /// it; `cities` are the province's.
    pub fn open(
        log: L,
        index_dir: &Path,
        metrics: IntakeMetrics,
        horizon_days: u32,
        cities: Cities,
    ) -> Result<Self, IntakeError> {
        let db = store::Store::open(index_dir)?;
        // The index of earlier versions, one sled key per event; ids in it are answered
        // by the aggregator's own deduplication from now on.
        db.drop_tree("accepted_event_ids")?;
        let horizon = chrono::TimeDelta::days(i64::from(horizon_days));
        let accepted = AcceptedIds::open(db.open_tree("accepted_ids")?, Self::first_day_kept(horizon))?;
        let school_cities = db.open_tree("school_cities")?;
        let clock_skew = chrono::TimeDelta::minutes(i64::from(DEFAULT_CLOCK_SKEW_MINUTES));
        let ack_clock: AckClock = std::sync::Arc::new(chrono::Utc::now);
        Ok(Self { log, accepted, metrics, horizon, clock_skew, cities, school_cities, ack_clock })
    }

    /// Reads acknowledgement times off `clock` (the one the day's close follows).
    pub fn with_ack_clock(mut self, clock: AckClock) -> Self {
        self.ack_clock = clock;
        self
    }

    /// Refuses events dated more than `minutes` ahead of the server's clock.
    pub fn with_clock_skew(mut self, minutes: u32) -> Self {
        self.clock_skew = chrono::TimeDelta::minutes(i64::from(minutes));
        self
    }

    /// Refuses a city that is not the province's, and a registration that would put a
    /// school in a second city. `new_schools` holds the schools of this request not yet
    /// stored, with the city their first registration gives.
    fn check_city(
        &self,
        envelope: &domain::Envelope,
        new_schools: &mut HashMap<String, String>,
    ) -> Result<(), wire::FieldError> {
        let (field, city) = match &envelope.payload {
            Payload::Person { fact: Fact::Registered { city, .. }, .. } => ("roster.registered.city", city),
            Payload::Inspection(Inspection::Inspected { city, .. }) => ("inspection.inspected.city", city),
            Payload::Inspection(Inspection::HallRegistered(hall)) => ("inspection.hall_registered.city", &hall.city),
            _ => return Ok(()),
        };
        let bad = |reason: String| wire::FieldError { field: field.to_owned(), reason };
        if !self.cities.contains(city) {
            let names: Vec<&str> = self.cities.iter().map(|c| c.name.as_str()).collect();
            return Err(bad(format!("{} is not a city of the province ({})", wire::quoted(city), names.join(", "))));
        }
        let Payload::Person { .. } = &envelope.payload else { return Ok(()) };
        let school = &envelope.school;
        let stored =
            self.school_cities.get(school.as_bytes()).map_err(|e| bad(format!("the school index failed: {e}")))?;
        let known =
            stored.map(|c| String::from_utf8_lossy(&c).into_owned()).or_else(|| new_schools.get(school).cloned());
        match known {
            Some(known) if known != *city => Err(bad(format!("school {school} is in {known}, not {city}"))),
            Some(_) => Ok(()),
            None => {
                new_schools.insert(school.clone(), city.clone());
                Ok(())
            }
        }
    }

    /// Events from before the horizon are refused before the index is asked, so the ids
    /// of days before it (a day's margin for time zones) need not be kept.
    fn first_day_kept(horizon: chrono::TimeDelta) -> chrono::NaiveDate {
        (chrono::Utc::now() - horizon - chrono::TimeDelta::days(1)).date_naive()
    }

    /// Drops the ids of days that have fallen behind the horizon (nothing, most times).
    fn forget_old_days(&self) -> Result<(), IntakeError> {
        Ok(self.accepted.forget_before(Self::first_day_kept(self.horizon))?)
    }

    /// Refuses events from before the horizon, or dated further ahead of the server's
    /// clock than the skew allowed (a reading at 19:19 posted at 08:50 is a wrong clock or
    /// a wrong date, and would fill a day not yet begun).
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
        if at > now + self.clock_skew {
            return Err(bad(format!(
                "{} is in the future (more than {} minutes ahead of the server's clock)",
                at.to_rfc3339(),
                self.clock_skew.num_minutes()
            )));
        }
        Ok(())
    }

    pub fn into_server(self) -> pb::intake_server::IntakeServer<Self> {
        pb::intake_server::IntakeServer::new(self)
    }

    /// Validates, deduplicates and appends `events`; one result per event, in order.
    /// An event for a school outside `access`'s post scope is refused by itself.
    pub async fn publish_many(
        &self,
        events: Vec<pb::Event>,
        access: &Access,
    ) -> Result<Vec<pb::PublishResult>, IntakeError> {
        let mut results = Vec::with_capacity(events.len());
        let mut records = Vec::with_capacity(events.len());
        let mut new_events: Vec<(usize, EventKind)> = Vec::new();
        self.forget_old_days()?;
        // The new ids of this request: what goes into the index once the log has them.
        let mut in_this_request = HashSet::with_capacity(events.len());
        let mut new_ids = Vec::with_capacity(events.len());
        // Counted here and added to the metrics once per kind, not once per event.
        let mut duplicates = [0u64; EventKind::ALL.len()];
        let mut new_schools = HashMap::new();
        // Appended below and answered only once durable: the instant they are acknowledged.
        let acked = (self.ack_clock)();
        let acked_at = acked.timestamp_millis().to_string();
        let mut schools_posting = HashSet::new();
        for (index, event) in events.into_iter().enumerate() {
            // An id too long to be valid is echoed by its start only.
            let event_id = match event.event_id.len() > wire::MAX_CODE_BYTES {
                true => wire::quoted(&event.event_id),
                false => event.event_id.clone(),
            };
            let mut result = pb::PublishResult { index: index as u64, event_id, ..Default::default() };
            let payload = event.encode_to_vec();
            let kind_hint = kind_of(&event);
            let checked = wire::event_from_proto(event).and_then(|envelope| {
                may_post(access, &envelope.school)?;
                self.check_time(&envelope)?;
                self.check_city(&envelope, &mut new_schools)?;
                Ok(envelope)
            });
            match checked {
                Err(e) => {
                    self.metrics.refused.get_or_create(&labels(kind_hint, Some(&e.field))).inc();
                    result.outcome = pb::Outcome::Rejected as i32;
                    result.error = e.to_string();
                }
                Ok(envelope) => {
                    let kind = envelope.kind();
                    let id = self.accepted.hash(&envelope.school, &envelope.event_id);
                    if self.accepted.contains(id) || !in_this_request.insert(id) {
                        duplicates[kind as usize] += 1;
                        result.outcome = pb::Outcome::Duplicate as i32;
                    } else {
                        let school = envelope.school.clone();
                        records.push(Record {
                            topic: kind.as_str().to_owned(),
                            key: envelope.school,
                            headers: vec![
                                (KIND_HEADER.to_owned(), kind.as_str().to_owned()),
                                (SCHEMA_HEADER.to_owned(), wire::SCHEMA_VERSION.to_owned()),
                                (POSTED_BY_HEADER.to_owned(), access.name.clone()),
                                (wire::ACKED_AT_HEADER.to_owned(), acked_at.clone()),
                            ],
                            payload,
                        });
                        new_events.push((index, kind));
                        new_ids.push((id, envelope.occurred_at.naive_utc().date()));
                        schools_posting.insert(school);
                    }
                }
            }
            results.push(result);
        }
        self.log.append(records).await?;
        let mut accepted = [0u64; EventKind::ALL.len()];
        for (index, kind) in new_events {
            results[index].outcome = pb::Outcome::Accepted as i32;
            accepted[kind as usize] += 1;
        }
        self.accepted.insert(&new_ids)?;
        for (school, city) in new_schools {
            self.school_cities.insert(school.as_bytes(), city.as_bytes())?;
        }
        for school in schools_posting {
            self.metrics.last_accepted.get_or_create(&vec![("school".to_owned(), school)]).set(acked.timestamp());
        }
        for kind in EventKind::ALL {
            if accepted[kind as usize] > 0 {
                self.metrics.accepted.get_or_create(&labels(Some(kind), None)).inc_by(accepted[kind as usize]);
            }
            if duplicates[kind as usize] > 0 {
                self.metrics.duplicates.get_or_create(&labels(Some(kind), None)).inc_by(duplicates[kind as usize]);
            }
        }
        Ok(results)
    }
}

const KIND_HEADER: &str = "daybook-event-kind";
const SCHEMA_HEADER: &str = "daybook-schema-version";
/// The name of the token that posted the event (`anyone` when access is not checked).
pub const POSTED_BY_HEADER: &str = "daybook-posted-by";

/// Refuses an event for a school the caller may not post for.
fn may_post(access: &Access, school: &str) -> Result<(), wire::FieldError> {
    match access.may_post(school) {
        true => Ok(()),
        false => Err(wire::FieldError {
            field: "school".to_owned(),
            reason: format!("permission denied: token {} may not post for school {school}", access.name),
        }),
    }
}

fn kind_of(event: &pb::Event) -> Option<EventKind> {
    use pb::event::Payload;
    Some(match event.payload.as_ref()? {
        Payload::Roster(_) => EventKind::Roster,
        Payload::Health(_) => EventKind::Health,
        Payload::Movement(_) => EventKind::Movement,
        Payload::Inspection(_) => EventKind::Inspection,
        // A unit's names go with the school's roster.
        Payload::Unit(_) => EventKind::Roster,
    })
}

/// Metric labels: the kind, and for a refusal the field without its list indices
/// (`health.symptoms.symptoms[]`), so that the series stay as few as the fields.
fn labels(kind: Option<EventKind>, field: Option<&str>) -> Labels {
    let mut out = vec![("kind".to_owned(), kind.map_or("none", EventKind::as_str).to_owned())];
    if let Some(field) = field {
        out.push(("field".to_owned(), without_indices(field)));
    }
    out
}

/// `items[3].finding` → `items[].finding`.
fn without_indices(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut in_index = false;
    for c in field.chars() {
        match c {
            '[' => {
                in_index = true;
                out.push(c);
            }
            ']' => {
                in_index = false;
                out.push(c);
            }
            _ if in_index => {}
            _ => out.push(c),
        }
    }
    out
}

#[tonic::async_trait]
impl<L: EventLog> pb::intake_server::Intake for IntakeService<L> {
    async fn publish(&self, request: Request<pb::Event>) -> Result<Response<pb::PublishResult>, Status> {
        let access = wire::access_of(&request)?;
        let event = request.into_inner();
        if !access.may_post(&event.school) {
            let refused = may_post(&access, &event.school).err().map(|e| e.to_string()).unwrap_or_default();
            return Err(Status::permission_denied(refused));
        }
        let mut results = self.publish_many(vec![event], &access).await?;
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
        let access = wire::access_of(&request)?;
        let events = request.into_inner().events;
        if events.len() > MAX_BATCH {
            return Err(Status::invalid_argument(format!(
                "events: {} events, at most {MAX_BATCH} per batch",
                events.len()
            )));
        }
        let results = self.publish_many(events, &access).await?;
        Ok(Response::new(pb::PublishBatchResponse { results }))
    }

    async fn publish_stream(
        &self,
        request: Request<Streaming<pb::Event>>,
    ) -> Result<Response<pb::PublishStreamResponse>, Status> {
        let access = wire::access_of(&request)?;
        let _slot = access.open_stream().map_err(Status::resource_exhausted)?;
        let mut chunks = request.into_inner().ready_chunks(STREAM_CHUNK);
        let mut response = pb::PublishStreamResponse::default();
        let mut base = 0u64;
        while let Some(chunk) = chunks.next().await {
            let events = chunk.into_iter().collect::<Result<Vec<_>, Status>>()?;
            let count = events.len() as u64;
            for mut result in self.publish_many(events, &access).await? {
                result.index += base;
                match pb::Outcome::try_from(result.outcome) {
                    Ok(pb::Outcome::Accepted) => response.accepted += 1,
                    Ok(pb::Outcome::Duplicate) => response.duplicates += 1,
                    _ => {
                        response.rejected += 1;
                        if response.problems.len() < MAX_PROBLEMS {
                            response.problems.push(result);
                        }
                    }
                }
            }
            base += count;
        }
        Ok(Response::new(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventlog::{EmbeddedLog, LogConsumer};
    use std::sync::Arc;
    use std::time::Duration;

    fn fever(id: &str, school: &str) -> pb::Event {
        let now = chrono::Utc::now().with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap());
        let reading = pb::TemperatureTaken { slot: pb::Slot::Noon as i32, celsius: 38.5 };
        pb::Event {
            site: String::new(),
            event_id: id.into(),
            source: "test".into(),
            school: school.into(),
            occurred_at: now.to_rfc3339(),
            payload: Some(pb::event::Payload::Health(pb::HealthEvent {
                person_id: "P1".into(),
                kind: Some(pb::health_event::Kind::Temperature(reading)),
            })),
        }
    }

    fn outcomes(results: &[pb::PublishResult]) -> Vec<pb::Outcome> {
        results.iter().map(|r| pb::Outcome::try_from(r.outcome).unwrap()).collect()
    }

    async fn logged(log: &EmbeddedLog) -> Vec<String> {
        let mut consumer = log.subscribe("t", Arc::new(|_| None)).unwrap();
        let polled = consumer.poll(1000, Duration::from_millis(10)).await.unwrap();
        polled.iter().map(|p| pb::Event::decode(p.record.payload.as_slice()).unwrap().event_id).collect()
    }

    #[tokio::test]
    async fn each_record_names_the_token_that_posted_it_and_only_its_schools_are_taken() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(&dir.path().join("log"), 2).unwrap();
        let intake =
            IntakeService::open(log.clone(), &dir.path().join("index"), IntakeMetrics::default(), 7, Cities::default())
                .unwrap();
        let source = Access::new("source-s001".into(), vec!["S001".into()], vec![], false, false);
        let results = intake.publish_many(vec![fever("e1", "S001"), fever("e1", "S002")], &source).await.unwrap();
        assert_eq!(results[0].outcome, pb::Outcome::Accepted as i32);
        assert_eq!(results[1].error, "school: permission denied: token source-s001 may not post for school S002");
        let mut consumer = log.subscribe("t", Arc::new(|_| None)).unwrap();
        let polled = consumer.poll(1000, Duration::from_millis(10)).await.unwrap();
        assert_eq!(polled.len(), 1);
        let header = polled[0].record.headers.iter().find(|(k, _)| k == POSTED_BY_HEADER);
        assert_eq!(header.map(|(_, v)| v.as_str()), Some("source-s001"));
    }

    #[tokio::test]
    async fn bad_events_are_refused_by_field_duplicates_answered_and_logged_once() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(&dir.path().join("log"), 2).unwrap();
        let intake =
            IntakeService::open(log.clone(), &dir.path().join("index"), IntakeMetrics::default(), 7, Cities::default())
                .unwrap();
        let mut bad = fever("e3", "S001");
        bad.occurred_at = "yesterday".into();
        let first = intake
            .publish_many(
                vec![fever("e1", "S001"), fever("e2", "S001"), bad, fever("e1", "S001"), fever("e1", "S002")],
                &Access::everything(),
            )
            .await
            .unwrap();
        use pb::Outcome::{Accepted, Duplicate, Rejected};
        assert_eq!(outcomes(&first), [Accepted, Accepted, Rejected, Duplicate, Accepted]);
        assert!(first[2].error.contains("occurred_at"), "{}", first[2].error);
        // Acknowledged means in the log, durable: a consumer sees them at once.
        assert_eq!(logged(&log).await.len(), 3);

        let again =
            intake.publish_many(vec![fever("e2", "S001"), fever("e4", "S001")], &Access::everything()).await.unwrap();
        assert_eq!(outcomes(&again), [Duplicate, Accepted]);
        let mut ids = logged(&log).await;
        ids.sort();
        assert_eq!(ids, ["e1", "e1", "e2", "e4"], "e1 of two schools, every id once per school");
    }
}
