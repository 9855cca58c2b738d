//! `/api/v1/live?unit=…&date=…`: server-sent events telling the page that what it shows
//! changed, so it reads it again.
//!
//! It wakes on the signals the server already has: the projections' (after every batch
//! an aggregator or the view writes: `Projections::watch_written`) and the feeds' (after
//! every pass of the publisher that published something: a seal, a revision, an alert).
//! On either it reads the unit's report and its children's again and sends `changed` only
//! if they differ from what it last saw, at most every [`MIN_SPACING`]; on the feeds'
//! signal it also sends `alerts`. A comment every heartbeat keeps the connection from
//! looking idle. The stream ends when the server stops or the token is revoked.
//!
//! | event     | data                                   | the page                    |
//! |-----------|----------------------------------------|-----------------------------|
//! | `hello`   | `{"unit": …, "date": …}`               | shows it is live            |
//! | `changed` | `{"unit": …, "date": …}`               | reads the unit again        |
//! | `alerts`  | `{}`                                   | reads alerts after its cursor |
//! | `error`   | `{"code": …, "message": …}`            | stops; shows why            |

use std::convert::Infallible;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use domain::{Day, UnitKey};
use reports::grpc::{known, may_read, parse_unit, report_day};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::api::access_of;
use crate::{Console, Query, error};

/// The least time between two looks at the unit: a busy fold writes many batches a second.
pub const MIN_SPACING: Duration = Duration::from_millis(250);

/// Looks kept for streams to share, at most.
const MAX_LOOKS: usize = 1024;

pub(crate) async fn live(State(console): State<Console>, request: Request) -> Response {
    let access = match access_of(&request) {
        Ok(access) => access,
        Err(status) => return error(&status),
    };
    let query = Query::parse(request.uri().query().unwrap_or(""));
    let checked = {
        let (console, access) = (console.clone(), access.clone());
        tokio::task::spawn_blocking(move || -> Result<(UnitKey, Day), Status> {
            let projections = console.inner.model.projections();
            let unit = parse_unit("unit", query.text("unit"))?;
            let day = match query.get("date") {
                Some(text) => report_day("date", text, console.today())?,
                None => console.province_day(),
            };
            may_read(projections, &access, "unit", &unit)?;
            known(projections, "unit", &unit)?;
            Ok((unit, day))
        })
        .await
    };
    let (unit, day) = match checked {
        Ok(Ok(checked)) => checked,
        Ok(Err(status)) => return error(&status),
        Err(e) => return error(&Status::internal(e.to_string())),
    };
    let slot = match access.open_stream() {
        Ok(slot) => slot,
        Err(why) => return error(&Status::resource_exhausted(why)),
    };
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        let _slot = slot;
        let inner = &console.inner;
        let mut written = inner.model.projections().watch_written();
        let mut published = inner.feeds.as_ref().map(|(store, _)| store.subscribe());
        let mut stopping = inner.stopping.clone();
        let about = serde_json::json!({ "unit": unit.to_string(), "date": day }).to_string();
        let mut seen = fingerprint(&console, &unit, day, generation(&written, published.as_ref())).await;
        if tx.send(frame("hello", &about)).await.is_err() {
            return;
        }
        let mut looked = Instant::now();
        // The last time anything went out: a heartbeat is due `heartbeat` after it, however
        // often the stream wakes for batches that change nothing on screen.
        let mut sent_at = Instant::now();
        loop {
            let wake = tokio::select! {
                _ = stopping.changed() => Wake::Stop,
                () = tx.closed() => Wake::Stop,
                changed = written.changed() => match changed {
                    Ok(()) => Wake::Written,
                    Err(_) => Wake::Stop,
                },
                Some(Ok(())) = async { Some(published.as_mut()?.changed().await) } => Wake::Published,
                () = tokio::time::sleep_until(sent_at + inner.heartbeat) => Wake::Heartbeat,
            };
            if access.is_revoked() {
                let revoked = serde_json::json!({ "code": "unauthenticated", "message": "the token was revoked" });
                let _ = tx.send(frame("error", &revoked.to_string())).await;
                return;
            }
            let sent = match wake {
                Wake::Stop => return,
                Wake::Heartbeat => tx.send(Bytes::from_static(b": ping\n\n")).await.map(|()| true),
                Wake::Published => tx.send(frame("alerts", "{}")).await.map(|()| true),
                Wake::Written => Ok(false),
            };
            match sent {
                Ok(true) => sent_at = Instant::now(),
                Ok(false) => {}
                Err(_) => return,
            }
            if matches!(wake, Wake::Heartbeat) {
                continue;
            }
            tokio::time::sleep_until(looked + MIN_SPACING).await;
            looked = Instant::now();
            // Signals that came while waiting are covered by this look.
            written.mark_unchanged();
            let now = fingerprint(&console, &unit, day, generation(&written, published.as_ref())).await;
            if now != seen {
                seen = now;
                if tx.send(frame("changed", &about)).await.is_err() {
                    return;
                }
                sent_at = Instant::now();
            }
        }
    });
    let body = Body::from_stream(ReceiverStream::new(rx).map(Ok::<_, Infallible>));
    let headers = [(CONTENT_TYPE, "text/event-stream"), (CACHE_CONTROL, "no-store")];
    (headers, [("x-accel-buffering", "no")], body).into_response()
}

/// What a live stream wakes for.
enum Wake {
    /// The server stops, the reader went, or the store is gone.
    Stop,
    /// A batch was written to the projections: look again.
    Written,
    /// The feeds published (an alert, a seal, a revision): say so, and look again.
    Published,
    /// Nothing for a while: a comment keeps the connection from looking idle.
    Heartbeat,
}

fn frame(event: &str, data: &str) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

/// The signals' counts a look was made at: the store's batches, the feeds' passes.
pub(crate) type Generation = (u64, Option<u64>);

fn generation(written: &watch::Receiver<u64>, published: Option<&watch::Receiver<u64>>) -> Generation {
    (*written.borrow(), published.map(|p| *p.borrow()))
}

/// A hash of the unit's report and its children's on `day`: what the page shows of them.
/// `None` when they cannot be read (the next look tries again). Streams on the same unit
/// and day share a look made at the same `generation`: a province's look reads every
/// school, and many operators watch the province.
async fn fingerprint(console: &Console, unit: &UnitKey, day: Day, generation: Generation) -> Option<u64> {
    let key = (unit.clone(), day);
    if let Some((at, hash)) = console.inner.looks.lock().expect("looks lock").get(&key)
        && *at == generation
    {
        return Some(*hash);
    }
    let console_looks = console.inner.looks.clone();
    let (console, unit) = (console.clone(), unit.clone());
    let read = tokio::task::spawn_blocking(move || -> Result<u64, reports::ReportError> {
        let model = &console.inner.model;
        let mut hasher = std::hash::DefaultHasher::new();
        format!("{:?}", model.report(&unit, day)?).hash(&mut hasher);
        format!("{:?}", model.children(&unit, day)?).hash(&mut hasher);
        Ok(hasher.finish())
    });
    match read.await {
        Ok(Ok(hash)) => {
            let mut looks = console_looks.lock().expect("looks lock");
            // Bounded by the units and days on screen; cleared rather than evicted.
            if looks.len() >= MAX_LOOKS {
                looks.clear();
            }
            looks.insert(key, (generation, hash));
            Some(hash)
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "console: live look failed");
            None
        }
        Err(_) => None,
    }
}
