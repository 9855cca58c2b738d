//! A synthetic province built from the seed's figures (156 technical schools in Guangdong's
//! 21 cities, 558,000 students, 32,000 staff), and one day of its events posted to a running
//! daybook server: registrations, three temperature checks, two histories, returns and
//! isolation, fevers, symptoms, gate passes and the rare suspected case. Beside the schools,
//! the province's service-window halls (the department's five, and each city's: 72 at scale
//! 1, 26 at small scales) with their inspections, about twice a week each, failed items and
//! their rectifications (see [`halls`] for the cadence and how `scale` counts halls).
//! Everything is deterministic in `(scale, seed, date)`; registrations (persons' and
//! halls') keep the same event ids from day to day, so simulating a second day re-sends
//! them and the server counts them as duplicates.

mod day;
pub mod halls;
mod province;
mod random;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::NaiveDate;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Endpoint;
use wire::pb;
use wire::pb::intake_client::IntakeClient;

pub use day::{SOURCE, day_events};
pub use halls::{Hall, hall_events};
pub use province::{Class, Dorm, GRADES, Person, Province, School, Whereabouts};

/// What to simulate and where to post it.
#[derive(Debug, Clone)]
pub struct SimulateOptions {
    /// The daybook server, e.g. "http://127.0.0.1:50051".
    pub target: String,
    /// 1 is the whole province; it multiplies schools and persons.
    pub scale: f64,
    pub seed: u64,
    pub date: NaiveDate,
    /// Concurrent `PublishStream` calls.
    pub streams: usize,
    /// Shows a progress bar on stderr.
    pub progress: bool,
    /// The bearer token to post with, when the server checks access.
    pub token: Option<String>,
    /// TLS to an `https://` target.
    pub tls: Option<tonic::transport::ClientTlsConfig>,
}

impl Default for SimulateOptions {
    fn default() -> Self {
        Self {
            target: "http://127.0.0.1:50051".into(),
            scale: 1.0,
            seed: 1,
            date: NaiveDate::from_ymd_opt(2020, 3, 2).expect("a valid date"),
            streams: 4,
            progress: false,
            token: None,
            tls: None,
        }
    }
}

/// What was sent and what the server answered, summed over the streams.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub schools: usize,
    pub halls: usize,
    pub persons: usize,
    pub events_sent: u64,
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: u64,
    /// Up to 10 rejected events, as "event id: error".
    pub first_problems: Vec<String>,
}

const FIRST_PROBLEMS: usize = 10;
/// Events buffered per stream: enough to keep the stream busy, small enough to bound
/// memory, since the province's events (~2 M at scale 1) are never all held at once.
const CHANNEL_CAPACITY: usize = 1024;

/// Generates the province and posts one day of its events to `options.target`.
///
/// Schools, then halls, are handed out one at a time to `options.streams` producers, each
/// feeding its own `PublishStream` call; a school's (or hall's) events therefore travel in
/// order on one stream.
pub async fn run(options: &SimulateOptions) -> anyhow::Result<Summary> {
    if !(options.scale.is_finite() && options.scale > 0.0) {
        bail!("scale must be a positive number, not {}", options.scale);
    }
    let target = options.target.clone();
    let endpoint = Endpoint::from_shared(target.clone())
        .with_context(|| format!("{target:?} is not a valid server address; expected e.g. http://127.0.0.1:50051"))?
        .connect_timeout(Duration::from_secs(10));
    let endpoint = match &options.tls {
        Some(tls) => endpoint.tls_config(tls.clone()).context("TLS settings")?,
        None => endpoint,
    };
    let channel =
        endpoint.connect().await.with_context(|| format!("cannot connect to the daybook server at {target}"))?;
    // The answer lists every duplicate; re-sending a whole province's registrations
    // makes it far larger than tonic's default 4 MB limit.
    let authorization = match &options.token {
        Some(token) => Some(format!("Bearer {token}").parse().context("the token is not valid ASCII")?),
        None => None,
    };
    let with_token = move |mut request: tonic::Request<()>| {
        if let Some(value) = &authorization {
            request.metadata_mut().insert("authorization", tonic::metadata::MetadataValue::clone(value));
        }
        Ok(request)
    };
    let client = IntakeClient::with_interceptor(channel, with_token).max_decoding_message_size(usize::MAX);

    let (scale, seed, date) = (options.scale, options.seed, options.date);
    let province = Arc::new(tokio::task::spawn_blocking(move || Province::generate(scale, seed)).await?);
    let (schools, halls) = (province.schools().len(), province.halls().len());

    let bar = if options.progress {
        // A hall sends its registration and, on about two days in seven, an inspection.
        let estimate = (province.persons() as f64 * day::EVENTS_PER_PERSON) as u64 + 2 * halls as u64;
        ProgressBar::new(estimate).with_style(
            ProgressStyle::with_template(
                "{elapsed_precise} [{wide_bar}] {human_pos}/~{human_len} events, {per_sec}, eta {eta}",
            )?
            .progress_chars("=> "),
        )
    } else {
        ProgressBar::hidden()
    };

    let next_unit = Arc::new(AtomicUsize::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let mut producers = Vec::new();
    let mut calls = Vec::new();
    for _ in 0..options.streams.max(1) {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let (province, next_unit, sent, bar) = (province.clone(), next_unit.clone(), sent.clone(), bar.clone());
        // Generating is CPU work, so it runs off the async threads.
        producers.push(tokio::task::spawn_blocking(move || {
            loop {
                let unit = next_unit.fetch_add(1, Ordering::Relaxed);
                let events = if unit < schools {
                    day_events(&province, unit, date, seed)
                } else if let Some(hall) = province.halls().get(unit - schools) {
                    hall_events(hall, date, seed)
                } else {
                    return;
                };
                for event in events {
                    if tx.blocking_send(event).is_err() {
                        return; // the call failed; its error is reported below
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                    bar.inc(1);
                }
            }
        }));
        let mut client = client.clone();
        calls.push(tokio::spawn(async move { client.publish_stream(ReceiverStream::new(rx)).await }));
    }

    let mut summary = Summary { schools, halls, persons: province.persons(), ..Summary::default() };
    let mut failure = None;
    for call in calls {
        match call.await? {
            Ok(response) => add(&mut summary, response.into_inner()),
            Err(status) => {
                failure.get_or_insert(status);
            }
        }
    }
    bar.finish_and_clear();
    if let Some(status) = failure {
        // The failed call's producer stops at its next send; no need to wait for it.
        return Err(status).with_context(|| format!("publishing to the daybook server at {target} failed"));
    }
    // Every call ended normally, so every stream was closed by its producer.
    for producer in producers {
        producer.await?;
    }
    summary.events_sent = sent.load(Ordering::Relaxed);
    Ok(summary)
}

fn add(summary: &mut Summary, response: pb::PublishStreamResponse) {
    summary.accepted += response.accepted;
    summary.duplicates += response.duplicates;
    summary.rejected += response.rejected;
    let rejected = response.problems.into_iter().filter(|p| p.outcome == pb::Outcome::Rejected as i32);
    for problem in rejected.take(FIRST_PROBLEMS.saturating_sub(summary.first_problems.len())) {
        summary.first_problems.push(format!("{}: {}", problem.event_id, problem.error));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Mutex;

    use tokio::net::TcpListener;
    use tokio_stream::wrappers::TcpListenerStream;
    use tonic::{Request, Response, Status, Streaming};

    use super::*;

    /// Validates like the server and remembers event ids, in memory.
    #[derive(Default)]
    struct FakeIntake {
        seen: Mutex<HashSet<String>>,
    }

    #[tonic::async_trait]
    impl pb::intake_server::Intake for FakeIntake {
        async fn publish(&self, _: Request<pb::Event>) -> Result<Response<pb::PublishResult>, Status> {
            Err(Status::unimplemented("publish"))
        }

        async fn publish_batch(
            &self,
            _: Request<pb::PublishBatchRequest>,
        ) -> Result<Response<pb::PublishBatchResponse>, Status> {
            Err(Status::unimplemented("publish_batch"))
        }

        async fn publish_stream(
            &self,
            request: Request<Streaming<pb::Event>>,
        ) -> Result<Response<pb::PublishStreamResponse>, Status> {
            let mut events = request.into_inner();
            let mut response = pb::PublishStreamResponse::default();
            let mut index = 0;
            while let Some(event) = events.message().await? {
                let mut result = pb::PublishResult { index, event_id: event.event_id.clone(), ..Default::default() };
                index += 1;
                // One event in a hundred thousand is spoiled, to see rejections come back.
                let spoiled = event.event_id.ends_with("P00007-t-noon");
                let mut event = event;
                if spoiled {
                    event.source.clear();
                }
                match wire::event_from_proto(event) {
                    Err(e) => {
                        response.rejected += 1;
                        result.outcome = pb::Outcome::Rejected as i32;
                        result.error = e.to_string();
                        response.problems.push(result);
                    }
                    Ok(envelope) if !self.seen.lock().unwrap().insert(envelope.event_id.clone()) => {
                        response.duplicates += 1;
                        result.outcome = pb::Outcome::Duplicate as i32;
                        response.problems.push(result);
                    }
                    Ok(_) => response.accepted += 1,
                }
            }
            Ok(Response::new(response))
        }
    }

    async fn fake_server() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let service = pb::intake_server::IntakeServer::new(FakeIntake::default());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        format!("http://{address}")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_second_day_resends_registrations_as_duplicates() {
        let options = SimulateOptions {
            target: fake_server().await,
            scale: 0.01,
            seed: 4,
            streams: 3,
            ..SimulateOptions::default()
        };
        let first = run(&options).await.unwrap();
        assert_eq!(first.schools, 2);
        assert!(first.events_sent > 3 * first.persons as u64, "{first:?}");
        assert_eq!(first.accepted + first.duplicates + first.rejected, first.events_sent);
        assert_eq!(first.duplicates, 0);
        // Both schools have a person P00007 whose noon check may have been spoiled.
        assert!(first.rejected <= 2 && first.first_problems.len() as u64 == first.rejected, "{first:?}");
        assert!(first.first_problems.iter().all(|p| p.contains("source: must not be empty")), "{first:?}");

        let second = run(&SimulateOptions { date: options.date.succ_opt().unwrap(), ..options.clone() }).await.unwrap();
        // Each person's registration, each school's name and each hall's registration, sent again.
        assert_eq!(first.halls, 26);
        assert_eq!(second.duplicates, second.persons as u64 + second.schools as u64 + second.halls as u64);
        assert_eq!(second.accepted + second.duplicates + second.rejected, second.events_sent);
    }

    #[tokio::test]
    async fn a_server_that_is_not_there_is_named_in_the_error() {
        // A port that was free a moment ago: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let target = format!("http://127.0.0.1:{port}");
        let error = run(&SimulateOptions { target: target.clone(), scale: 0.001, ..SimulateOptions::default() })
            .await
            .unwrap_err();
        assert!(
            format!("{error:#}").contains(&format!("cannot connect to the daybook server at {target}")),
            "{error:#}"
        );
    }

    #[tokio::test]
    async fn a_bad_scale_is_refused() {
        let error = run(&SimulateOptions { scale: -1.0, ..SimulateOptions::default() }).await.unwrap_err();
        assert!(error.to_string().contains("scale"), "{error}");
    }
}
